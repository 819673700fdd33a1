#pragma once
// The executions of one server: at most `maxConcurrent` run, up to `maxQueue` wait in
// arrival order, and finished ones are remembered briefly for `status`.
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pycell/exec/execution.h"

namespace pycell::exec {

struct SubmitError {
  enum class Kind { QueueFull, DuplicateId } kind;
  std::string message;
};

class Scheduler {
 public:
  using Done = std::function<void(Result<json> result)>;

  // `usePools`: start a zygote pool for every profile that has one (the server does; a
  // single `pycell run` forks directly, which is quicker than warming a zygote first).
  Scheduler(EventLoop& loop, const SandboxContext& ctx, bool usePools = false);
  ~Scheduler();

  // Queues or starts the request. `done` is called exactly once: with the result, or with
  // the error that kept the sandbox from starting.
  [[nodiscard]] std::expected<std::string, SubmitError> submit(ExecutionRequest request, Done done,
                                                               Execution::OutputSink output = {});
  // Stops a queued or running execution; false when there is none by that id.
  bool stop(const std::string& executionId, StopReason reason);
  [[nodiscard]] std::optional<json> status(const std::string& executionId) const;
  [[nodiscard]] json summary() const;
  // Kills everything and waits (bounded) until the kernel has let go of every cgroup.
  void shutdown();

  // Calls `fn` once nothing is queued or running (now, if that is already so).
  void whenIdle(std::function<void()> fn);

  [[nodiscard]] size_t running() const { return active_.size() - queue_.size(); }
  [[nodiscard]] size_t queued() const { return queue_.size(); }

 private:
  struct Entry {
    std::unique_ptr<Execution> execution;
    Done done;
  };
  void startNext();
  void launch(const std::string& id);
  void retire(const std::string& id, Result<json> result);
  void reapCgroups();
  void scheduleReap();
  void onClaimed(const std::string& id, Result<pool::PooledChild> child);
  [[nodiscard]] pool::Pool* poolFor(const ExecutionRequest& request);

  EventLoop& loop_;
  const SandboxContext& ctx_;
  std::map<std::string, Entry> active_;  // queued and running
  std::deque<std::string> queue_;
  std::map<std::string, json> finished_;
  std::deque<std::string> finishedOrder_;
  std::vector<std::unique_ptr<Execution>> graveyard_;
  sandbox::CgroupReaper reaper_;
  std::map<std::string, std::unique_ptr<pool::Pool>> pools_;  // by profile
  bool reapScheduled_ = false;
  bool shuttingDown_ = false;
  std::function<void()> onIdle_;
  uint64_t serial_ = 0;
  uint64_t total_ = 0;
  std::chrono::steady_clock::time_point startedAt_ = std::chrono::steady_clock::now();
};

}  // namespace pycell::exec
