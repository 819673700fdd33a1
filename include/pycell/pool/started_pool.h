#pragma once
// The pool of a JavaScript profile: sandboxes started (not forked) ahead of demand. Node
// cannot be forked safely once it runs (V8's platform threads), so a zygote does not fit;
// instead each sandbox is spawned through the same isolation sequence as a one-shot run
// (spawn.h), execs node, loads the bootstrap, says `R` on its result pipe and waits for its
// program on the request pipe. A claim takes a ready one at once; the server then owns it as
// it owns a sandbox of its own (it reaps it). Every sandbox serves one execution. From the
// outside it is a pool like the zygote pool: `status` lists it, pool.size is its target,
// it refills after each claim and restarts (with a back-off) when starts fail.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pycell/process/event_loop.h"
#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/context.h"

namespace pycell::pool {

// A ready sandbox as a claim hands it out, with its cgroup's CPU when it became ready (its
// start-up is not the run's).
struct StartedSandbox {
  sandbox::SandboxProcess proc;
  sandbox::CgroupCpu cpuWhenReady;
};

class StartedPool {
 public:
  StartedPool(EventLoop& loop, const sandbox::SandboxContext& ctx, const Profile& profile,
              sandbox::CgroupReaper& reaper);
  ~StartedPool();
  StartedPool(const StartedPool&) = delete;
  StartedPool& operator=(const StartedPool&) = delete;

  void start();
  // Whether a run with these limits and this network can use one of its sandboxes: they were
  // started with the profile's limits, and only what a cgroup can change afterwards may be
  // tighter (StartedPool::fits in started_pool.cc says which).
  [[nodiscard]] bool fits(const Limits& limits, bool network) const;
  // A ready sandbox now, or none (the caller then starts one of its own: no faster than
  // waiting for one that is still starting).
  [[nodiscard]] std::optional<StartedSandbox> take();
  [[nodiscard]] nlohmann::json status() const;
  void shutdown();

 private:
  struct Slot {
    uint64_t id = 0;
    sandbox::SandboxProcess proc;
    bool ready = false;
    std::string said;  // what it wrote so far of its `R\n`
    sandbox::CgroupCpu cpuWhenReady;
  };
  void refill();
  void startOne();
  void onResult(uint64_t id);
  void onExit(uint64_t id);
  void discard(std::vector<Slot>::iterator it);
  std::vector<Slot>::iterator find(uint64_t id);
  void failed(const std::string& why);

  EventLoop& loop_;
  const sandbox::SandboxContext& ctx_;
  const Profile& profile_;
  sandbox::CgroupReaper& reaper_;
  std::vector<Slot> slots_;
  uint64_t serial_ = 0;
  uint64_t started_ = 0;
  uint64_t served_ = 0;
  int consecutiveFailures_ = 0;
  std::string lastError_;
  bool shuttingDown_ = false;
  std::optional<EventLoop::TimerId> retryTimer_;
};

}  // namespace pycell::pool
