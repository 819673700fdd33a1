#pragma once
// A pool's children in one table: each child's state, its fds and cgroup while the pool
// holds them, the zygote that forked it, where its exit report goes once claimed. Pure: the
// table moves values and checks transitions; it reads no fd and watches nothing, so it can
// be tested on values. Every transition a state does not allow is refused (false or
// nullopt) and leaves the table as it was.
//
//   Forking --forked--> Warming --warm--> Ready --claim--> Claimed
//      any state --end--> ended (its slot leaves the table; a child is never reused)
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "pycell/error.h"
#include "pycell/sandbox/enter.h"

namespace pycell::pool {

// Milliseconds as the timeval of a struct rusage (reports carry whole milliseconds).
[[nodiscard]] inline timeval timevalFromMs(int64_t ms) {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
}

// How a child ended, as its zygote saw it (the server is not its parent, so cannot wait).
struct ExitInfo {
  int status = 0;  // wait(2) status
  rusage usage{};
  bool zygoteDied = false;  // no report: the zygote (and with it the child) died
};
using ExitHandler = std::function<void(ExitInfo)>;

// A ready child, handed to exactly one execution (or session). `pid` is the host pid of
// the child the zygote forked: the sandbox's PID 1.
struct PooledChild : sandbox::SandboxProcess {
  uint64_t id = 0;
  std::optional<Error> setupFailure;  // its own report, when its set-up failed (isolate.h)
  // Its cgroup's CPU when it said it was ready (its set-up and warm-up): not a run's. Read by
  // the pool then, so that a claim reads nothing.
  sandbox::CgroupCpu cpuWhenReady;
};

enum class ChildState {
  Forking,  // the zygote was asked to fork it; its cgroup and pipes are made
  Warming,  // forked: isolating itself and warming up (or failed to, until its exit report)
  Ready,    // waiting on its request pipe, in the ready queue
  Claimed,  // handed to an execution or session (which now holds its fds and cgroup)
};

struct ChildSlot {
  ChildState state = ChildState::Forking;
  uint64_t zygote = 0;  // the serial of the zygote that forked it
  PooledChild child;    // held by the table until claimed; moved out by the claim
  ExitHandler onExit;   // claimed: where its exit report goes, if anyone listens
};

// What `status` reports, and what the refill decision counts.
struct ChildCounts {
  size_t forking = 0;
  size_t warming = 0;
  size_t ready = 0;
  size_t claimed = 0;
  [[nodiscard]] size_t starting() const { return forking + warming; }
};

class ChildTable {
 public:
  // A fork asked of `zygote`: a new Forking slot for `child` (named by child.id). Refused
  // if that id is in the table already.
  bool add(uint64_t zygote, PooledChild child);
  // Forking -> Warming, reported by the zygote that forked it (another zygote is refused).
  bool forked(uint64_t id, uint64_t zygote);
  // Warming -> Ready: the child joins the end of the ready queue.
  bool warm(uint64_t id);
  // Ready -> Claimed for the oldest ready child (first ready, first claimed): its child
  // moved out to the caller. nullopt when none is ready.
  std::optional<PooledChild> claimOldest();
  // A claimed child's exit handler; refused unless the child is claimed.
  bool setExitHandler(uint64_t id, ExitHandler handler);
  void clearExitHandler(uint64_t id);
  // Any state -> ended, reported by the zygote that forked it: the slot leaves the table
  // and is returned (its child, if the table still held it; its exit handler). nullopt if
  // `zygote` has no such child.
  std::optional<ChildSlot> end(uint64_t id, uint64_t zygote);
  // A zygote's death: every slot of that zygote ends with it (its pid namespace took the
  // children along), returned in id order.
  std::vector<ChildSlot> endZygote(uint64_t zygote);
  // Every slot (shutdown).
  std::vector<ChildSlot> endAll();

  // The child the table holds in slot `id` (its fds, to watch or write), whatever its
  // state; nullptr if unknown or claimed. Its state changes only through the calls above.
  [[nodiscard]] PooledChild* child(uint64_t id);
  [[nodiscard]] std::optional<ChildState> stateOf(uint64_t id) const;
  [[nodiscard]] ChildCounts counts() const;
  [[nodiscard]] size_t countOf(uint64_t zygote) const;  // slots of one zygote, any state
  [[nodiscard]] size_t size() const { return slots_.size(); }
  [[nodiscard]] const std::deque<uint64_t>& readyQueue() const { return readyQueue_; }

 private:
  bool move(uint64_t id, ChildState from, ChildState to);

  std::map<uint64_t, ChildSlot> slots_;
  std::deque<uint64_t> readyQueue_;  // ids of the Ready slots, oldest first
};

// The refill decision, written once (after Android's UsapPoolRefillAction): what a pool
// does now, given its table's counts and its settings. Every place that may refill (a
// claim, a child ready, a child ended, a zygote ready, the delayed refill after a claim)
// asks this and does what it says.
struct RefillInputs {
  ChildCounts counts;
  size_t target = 0;       // pool.size
  size_t waiting = 0;      // claims waiting for a child
  size_t maxStarting = 0;  // pool.maxStarting: forks under way at once
  bool zygoteReady = false;
  bool backedOff = false;      // too many failures in a row: no fork until a claim asks again
  bool shuttingDown = false;
  uint64_t zygoteForks = 0;    // forks the current zygote has served
  uint64_t recycleAfter = 1;   // pool.recycleAfter (at least 1)
};
struct RefillAction {
  bool recycle = false;  // retire the zygote (it keeps its children) and start a fresh one
  size_t forks = 0;      // forks to ask for now
  friend bool operator==(const RefillAction&, const RefillAction&) = default;
};
[[nodiscard]] RefillAction refillAction(const RefillInputs& in);

}  // namespace pycell::pool
