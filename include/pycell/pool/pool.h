#pragma once
// The zygote pool of one profile (after Android's USAP pool): a zygote interpreter that has
// imported the profile's modules, and children forked from it ahead of demand, already
// isolated, each waiting on its request pipe. A claim hands out a ready child at once, or
// queues (first come, first served) until one is ready; every child serves one execution.
#include <sys/resource.h>
#include <sys/types.h>

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "pycell/sandbox/context.h"
#include "pycell/process/event_loop.h"
#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/enter.h"

namespace pycell::pool {

using nlohmann::json;

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

// A ready child, handed to exactly one execution (or session). `pid` is the host pid of
// the child the zygote forked: the sandbox's PID 1.
struct PooledChild : sandbox::SandboxProcess {
  uint64_t id = 0;
};

class Zygote;

class Pool {
 public:
  using ClaimHandler = std::function<void(Result<PooledChild>)>;
  using ExitHandler = std::function<void(ExitInfo)>;
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
  friend class Zygote;
  void refill();
  // After a claim: at once when fewer than half the pool's children are left ready, else
  // when a claimed child ends or pool.refillDelayMs have passed, whichever comes first. A
  // fork and a child's isolation cost a few milliseconds of CPU; on two cores they would
  // otherwise compete with the execution that was just handed its child.
  void refillAfterClaim();
  [[nodiscard]] size_t startingCount() const;  // forked (or asked for) but not ready yet
  void childReady(PooledChild child);
  void childExited(uint64_t id, ExitInfo info);
  void zygoteDied(Zygote* zygote, const std::string& why);
  void zygoteFailed(const Error& why);
  void failWaiters(const Error& why);
  // Unique across pools: child ids also name their cgroups, which share one directory.
  static uint64_t nextChildId() {
    static uint64_t serial = 0;
    return ++serial;
  }

  EventLoop& loop_;
  const sandbox::SandboxContext& ctx_;
  const Profile& profile_;
  sandbox::CgroupReaper& reaper_;
  std::unique_ptr<Zygote> current_;
  std::vector<std::unique_ptr<Zygote>> retired_;  // recycled, finishing their last children
  std::deque<PooledChild> ready_;
  std::deque<std::pair<Ticket, ClaimHandler>> waiters_;
  std::map<uint64_t, ExitHandler> exits_;
  std::set<uint64_t> claimed_;  // handed to an execution, not yet reported ended
  Ticket ticketSerial_ = 0;
  uint64_t forksServed_ = 0;
  int zygoteStarts_ = 0;
  int consecutiveFailures_ = 0;
  Error lastError_;
  std::optional<Error> lastChildFailure_;  // the report of the last child whose set-up failed
  bool shuttingDown_ = false;
  std::optional<EventLoop::TimerId> refillTimer_;
};

}  // namespace pycell::pool
