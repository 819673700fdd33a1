#pragma once
// The zygote pool of one profile (after Android's USAP pool): a zygote interpreter that has
// imported the profile's modules, and children forked from it ahead of demand, already
// isolated, each waiting on its request pipe. A claim hands out a ready child at once, or
// queues (first come, first served) until one is ready; every child serves one execution.
// Every child's state is one slot of a ChildTable; zygotes report through ZygoteEvents.
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pycell/error.h"
#include "pycell/pool/child_table.h"
#include "pycell/pool/zygote.h"
#include "pycell/process/event_loop.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/context.h"

namespace pycell::pool {

using nlohmann::json;

class Pool : private ZygoteEvents {
 public:
  using ClaimHandler = std::function<void(Result<PooledChild>)>;
  using ExitHandler = pool::ExitHandler;
  using Ticket = uint64_t;

  Pool(EventLoop& loop, const sandbox::SandboxContext& ctx, const Profile& profile, sandbox::CgroupReaper& reaper);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Starts the zygote; children are forked once it reports ready.
  void start();
  // A ready child now (handler called before claim returns), or later in arrival order.
  Ticket claim(ClaimHandler handler);
  void cancelClaim(Ticket ticket);
  // Where the exit report of a claimed child goes. Call right after the claim.
  void onExit(uint64_t childId, ExitHandler handler);
  void forgetExit(uint64_t childId);

  [[nodiscard]] json status() const;
  // Kills the zygotes (their pid namespaces take every child along) and waits for them.
  void shutdown();

 private:
  // ZygoteEvents: what a zygote reports.
  void onZygoteReady(Zygote& zygote) override;
  void onForked(Zygote& zygote, uint64_t id, UniqueFd pidfd) override;
  void onForkRefused(Zygote& zygote, uint64_t id, const Error& why) override;
  void onChildExit(Zygote& zygote, uint64_t id, const ExitInfo& info) override;
  void onZygoteDied(Zygote& zygote, const std::string& why) override;

  // A warming child's result pipe: `R` (warm), or the record of the step that failed.
  void onResult(uint64_t id, int fd);
  void childWarm(uint64_t id);
  // Its set-up failed: it stays warming (a fork under way) until its zygote reports the exit.
  void childSetupFailed(uint64_t id, const Error& why);
  // What an ended slot leaves: its result pipe unwatched, its cgroup to the reaper.
  void release(ChildSlot& slot);
  // A child that ended before anyone claimed it: a failure if it was ready or failed.
  void unclaimedEnded(ChildSlot& slot, const ExitInfo& info);
  // Ready children to waiting claims, oldest of each first.
  void serveWaiters();

  // The refill, decided in one place (refillAction) and done here: forks, or a recycle.
  void refill();
  // After a claim: at once when fewer than half the pool's children are left ready, else
  // when a claimed child ends or pool.refillDelayMs have passed, whichever comes first. A
  // fork and a child's isolation cost a few milliseconds of CPU; on two cores they would
  // otherwise compete with the execution that was just handed its child.
  void refillAfterClaim();
  void recycle();
  bool forkOne();
  void zygoteFailed(const Error& why);
  void failWaiters(const Error& why);
  void restartAfterDeath(bool wasReady, const std::string& why);
  // Stops a zygote now and deletes it on the next turn of the loop (its handler may be running).
  void dispose(std::unique_ptr<Zygote> zygote);
  void disposeFinishedRetired();
  [[nodiscard]] bool backedOff() const;
  // Unique across pools: child ids also name their cgroups, which share one directory.
  static uint64_t nextChildId() {
    static uint64_t serial = 0;
    return ++serial;
  }

  EventLoop& loop_;
  const sandbox::SandboxContext& ctx_;
  const Profile& profile_;
  sandbox::CgroupReaper& reaper_;
  ChildTable children_;
  std::unique_ptr<Zygote> current_;
  std::vector<std::unique_ptr<Zygote>> retired_;  // recycled, finishing their last children
  std::deque<std::pair<Ticket, ClaimHandler>> waiters_;
  Ticket ticketSerial_ = 0;
  uint64_t zygoteSerial_ = 0;
  uint64_t forksServed_ = 0;
  int zygoteStarts_ = 0;
  int consecutiveFailures_ = 0;
  Error lastError_;
  bool shuttingDown_ = false;
  std::optional<EventLoop::TimerId> refillTimer_;
};

}  // namespace pycell::pool
