// The pool's table of children (child_table.h), on values: its transitions and the ones it
// refuses, its counts, the order of its ready queue, what a zygote's death takes with it,
// and the refill decision.
#include <catch2/catch.hpp>

#include "pycell/pool/child_table.h"

using namespace pycell::pool;

namespace {

PooledChild childNamed(uint64_t id) {
  PooledChild child;
  child.id = id;
  child.pid = static_cast<pid_t>(1000 + id);
  return child;
}

// A child of `zygote` brought to Ready through every state before it.
void addReady(ChildTable& table, uint64_t zygote, uint64_t id) {
  REQUIRE(table.add(zygote, childNamed(id)));
  REQUIRE(table.forked(id, zygote));
  REQUIRE(table.warm(id));
}

bool sameCounts(const ChildCounts& c, size_t forking, size_t warming, size_t ready, size_t claimed) {
  return c.forking == forking && c.warming == warming && c.ready == ready && c.claimed == claimed;
}

}  // namespace

TEST_CASE("a child goes forking, warming, ready, claimed, and its slot leaves at its end", "[child_table]") {
  ChildTable table;
  REQUIRE(table.add(1, childNamed(7)));
  CHECK(table.stateOf(7) == ChildState::Forking);
  CHECK(table.forked(7, 1));
  CHECK(table.stateOf(7) == ChildState::Warming);
  CHECK(table.warm(7));
  CHECK(table.stateOf(7) == ChildState::Ready);
  auto claimed = table.claimOldest();
  REQUIRE(claimed);
  CHECK(claimed->id == 7);
  CHECK(claimed->pid == 1007);
  CHECK(table.stateOf(7) == ChildState::Claimed);
  CHECK(table.child(7) == nullptr);  // its execution holds it now
  auto ended = table.end(7, 1);
  REQUIRE(ended);
  CHECK(ended->state == ChildState::Claimed);
  CHECK(ended->zygote == 1);
  CHECK_FALSE(table.stateOf(7));
  CHECK(table.size() == 0);
}

TEST_CASE("transitions a state does not allow are refused and change nothing", "[child_table]") {
  ChildTable table;
  REQUIRE(table.add(1, childNamed(1)));
  CHECK_FALSE(table.add(2, childNamed(1)));  // the id is taken
  CHECK_FALSE(table.warm(1));                 // forking cannot be ready
  CHECK_FALSE(table.setExitHandler(1, [](ExitInfo) {}));
  CHECK_FALSE(table.forked(1, 2));  // another zygote cannot report it
  CHECK(table.stateOf(1) == ChildState::Forking);
  CHECK(table.forked(1, 1));
  CHECK_FALSE(table.forked(1, 1));  // forked twice
  CHECK(table.warm(1));
  CHECK_FALSE(table.warm(1));       // ready twice
  CHECK_FALSE(table.forked(1, 1));  // back to warming
  CHECK(table.readyQueue().size() == 1);
  CHECK_FALSE(table.end(1, 2));  // another zygote cannot end it
  CHECK(table.stateOf(1) == ChildState::Ready);
  CHECK_FALSE(table.forked(99, 1));  // unknown ids
  CHECK_FALSE(table.warm(99));
  CHECK_FALSE(table.end(99, 1));
  CHECK(table.child(99) == nullptr);
  CHECK(sameCounts(table.counts(), 0, 0, 1, 0));
}

TEST_CASE("counts by state: starting is forking plus warming", "[child_table]") {
  ChildTable table;
  CHECK(sameCounts(table.counts(), 0, 0, 0, 0));
  REQUIRE(table.add(1, childNamed(1)));
  REQUIRE(table.add(1, childNamed(2)));
  REQUIRE(table.forked(2, 1));
  addReady(table, 1, 3);
  addReady(table, 1, 4);
  REQUIRE(table.claimOldest());
  ChildCounts c = table.counts();
  CHECK(sameCounts(c, 1, 1, 1, 1));
  CHECK(c.starting() == 2);
  CHECK(table.countOf(1) == 4);
  CHECK(table.countOf(2) == 0);
}

TEST_CASE("the oldest ready child is claimed first, whatever the order of the forks", "[child_table]") {
  ChildTable table;
  for (uint64_t id : {1, 2, 3}) {
    REQUIRE(table.add(1, childNamed(id)));
    REQUIRE(table.forked(id, 1));
  }
  REQUIRE(table.warm(3));
  REQUIRE(table.warm(1));
  REQUIRE(table.warm(2));
  CHECK(table.readyQueue() == std::deque<uint64_t>{3, 1, 2});
  // A ready child that ends leaves the queue; the others keep their places.
  REQUIRE(table.end(1, 1));
  CHECK(table.claimOldest()->id == 3);
  CHECK(table.claimOldest()->id == 2);
  CHECK_FALSE(table.claimOldest());
  CHECK(sameCounts(table.counts(), 0, 0, 0, 2));
}

TEST_CASE("an ended slot gives back what the table held: the child, or the exit handler of a claimed one", "[child_table]") {
  ChildTable table;
  addReady(table, 1, 5);
  auto ready = table.end(5, 1);
  REQUIRE(ready);
  CHECK(ready->state == ChildState::Ready);
  CHECK(ready->child.pid == 1005);
  CHECK(table.readyQueue().empty());

  addReady(table, 1, 6);
  REQUIRE(table.claimOldest());
  int calls = 0;
  CHECK(table.setExitHandler(6, [&calls](ExitInfo info) { calls += info.status; }));
  auto claimed = table.end(6, 1);
  REQUIRE(claimed);
  REQUIRE(claimed->onExit);
  claimed->onExit(ExitInfo{.status = 3, .usage = {}, .zygoteDied = false});
  CHECK(calls == 3);

  // A forgotten handler is gone from the slot.
  addReady(table, 1, 8);
  REQUIRE(table.claimOldest());
  CHECK(table.setExitHandler(8, [](ExitInfo) {}));
  table.clearExitHandler(8);
  table.clearExitHandler(99);  // unknown: nothing
  CHECK_FALSE(table.end(8, 1)->onExit);
}

TEST_CASE("a zygote's death takes every slot of that zygote, in any state, and no other", "[child_table]") {
  ChildTable table;
  REQUIRE(table.add(1, childNamed(1)));  // forking
  REQUIRE(table.add(1, childNamed(2)));
  REQUIRE(table.forked(2, 1));           // warming
  addReady(table, 1, 3);                 // ready
  addReady(table, 1, 4);
  REQUIRE(table.claimOldest());          // 3 claimed
  addReady(table, 2, 5);                 // the other zygote's
  REQUIRE(table.add(2, childNamed(6)));

  auto lost = table.endZygote(1);
  REQUIRE(lost.size() == 4);
  CHECK(lost[0].state == ChildState::Forking);
  CHECK(lost[1].state == ChildState::Warming);
  CHECK(lost[2].state == ChildState::Claimed);
  CHECK(lost[3].state == ChildState::Ready);
  CHECK(lost[3].child.id == 4);
  CHECK(table.countOf(1) == 0);
  CHECK(table.countOf(2) == 2);
  CHECK(table.readyQueue() == std::deque<uint64_t>{5});
  CHECK(sameCounts(table.counts(), 1, 0, 1, 0));
  CHECK(table.endZygote(1).empty());

  auto all = table.endAll();
  CHECK(all.size() == 2);
  CHECK(table.size() == 0);
  CHECK(table.readyQueue().empty());
}

// ---- the refill decision -----------------------------------------------------------------

namespace {

RefillInputs poolOf(size_t target, size_t maxStarting) {
  return RefillInputs{.counts = {},
                      .target = target,
                      .waiting = 0,
                      .maxStarting = maxStarting,
                      .zygoteReady = true,
                      .backedOff = false,
                      .shuttingDown = false,
                      .zygoteForks = 0,
                      .recycleAfter = 1000};
}

}  // namespace

TEST_CASE("refill: forks up to the target plus the waiting claims, at most maxStarting under way", "[child_table]") {
  RefillInputs in = poolOf(4, 2);
  CHECK(refillAction(in) == RefillAction{.recycle = false, .forks = 2});  // empty: maxStarting bounds it
  in.counts.ready = 3;
  CHECK(refillAction(in).forks == 1);
  in.counts.ready = 4;
  CHECK(refillAction(in).forks == 0);
  in.waiting = 3;  // the waiting claims count on top of the target
  CHECK(refillAction(in).forks == 2);
  in.counts.forking = 1;
  CHECK(refillAction(in).forks == 1);
  in.counts.warming = 1;
  CHECK(refillAction(in).forks == 0);  // two under way already
  in = poolOf(2, 2);
  in.counts.ready = 1;
  in.counts.warming = 1;
  CHECK(refillAction(in).forks == 0);  // ready + starting reach the target
  in.counts.claimed = 10;              // claimed children do not count
  CHECK(refillAction(in).forks == 0);
}

TEST_CASE("refill: nothing without a ready zygote, while backed off, or at shutdown", "[child_table]") {
  RefillInputs in = poolOf(2, 2);
  REQUIRE(refillAction(in).forks == 2);
  RefillInputs notReady = in;
  notReady.zygoteReady = false;
  CHECK(refillAction(notReady) == RefillAction{});
  RefillInputs backedOff = in;
  backedOff.backedOff = true;
  CHECK(refillAction(backedOff) == RefillAction{});
  RefillInputs stopping = in;
  stopping.shuttingDown = true;
  CHECK(refillAction(stopping) == RefillAction{});
}

TEST_CASE("refill: a zygote that has served its fork budget is recycled instead of forking", "[child_table]") {
  RefillInputs in = poolOf(2, 2);
  in.recycleAfter = 3;
  in.zygoteForks = 2;
  CHECK(refillAction(in) == RefillAction{.recycle = false, .forks = 2});
  in.zygoteForks = 3;
  CHECK(refillAction(in) == RefillAction{.recycle = true, .forks = 0});
  in.counts.ready = 2;  // even with a full pool: the next refill's zygote is fresh
  CHECK(refillAction(in).recycle);
}
