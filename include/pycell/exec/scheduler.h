#pragma once
// The executions of one server: at most `maxConcurrent` run, up to `maxQueue` wait in
// arrival order, and finished ones are remembered briefly for `status`.
//
// Executions and sessions belong to a client (ExecutionRequest::client, SessionSettings::client:
// one connection of a shared server; 0 when there is only one). Their ids are the client's
// own: every lookup takes the client, so a client finds, stops and attaches to its own and
// nothing of another's, and two clients may use the same id.
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pycell/error.h"
#include "pycell/exec/execution.h"
#include "pycell/exec/result_store.h"
#include "pycell/exec/session.h"
#include "pycell/pool/started_pool.h"

namespace pycell::exec {

struct SubmitError {
  enum class Kind { QueueFull, DuplicateId, BadSession, TooManySessions } kind;
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
                                                               Execution::OutputSink output = {},
                                                               Execution::UsageSink usage = {});
  // Starts a session; `done` gets {session, profile, limits, pooled} once its interpreter
  // is ready, or the error that kept it from starting.
  [[nodiscard]] std::expected<void, SubmitError> createSession(SessionSettings settings, Done done);
  // Ends a session (its running execution answers "killed"); false when there is none.
  bool closeSession(uint64_t client, const std::string& id);
  // The profile an open session runs (execute in a session defaults to it).
  [[nodiscard]] std::optional<std::string> sessionProfile(uint64_t client, const std::string& id) const;
  // Stops the session's running execution (KeyboardInterrupt first); nullopt: no session.
  [[nodiscard]] std::optional<json> stopSession(uint64_t client, const std::string& id, StopReason reason);

  // Stops a queued or running execution; false when there is none by that id.
  bool stop(uint64_t client, const std::string& executionId, StopReason reason);
  [[nodiscard]] std::optional<json> status(uint64_t client, const std::string& executionId) const;
  // The server's view: pools, every execution and session (each with its client, when not 0).
  [[nodiscard]] json summary() const;
  // The result a finished execution answered, while it is kept; nullptr otherwise.
  [[nodiscard]] const json* result(uint64_t client, const std::string& executionId) const {
    return results_.find(scoped(client, executionId));
  }
  enum class Forget { Forgotten, NotFinished, Unknown };
  // Drops what is remembered of a finished execution: its result and its status.
  Forget forget(uint64_t client, const std::string& executionId);
  // Ends what a client leaves behind (its connection closed): stops its executions, closes
  // its sessions and forgets its finished results.
  void dropClient(uint64_t client, StopReason reason);
  // Kills everything and waits (bounded) until the kernel has let go of every cgroup.
  void shutdown(StopReason reason = StopReason::Shutdown);

  [[nodiscard]] size_t running() const;
  [[nodiscard]] size_t queued() const;
  // About how much memory the requests held (queued or running) take.
  [[nodiscard]] size_t queuedBytes() const { return heldBytes_; }

  // The key an execution or session is known by inside: its client, then its id.
  [[nodiscard]] static std::string scoped(uint64_t client, std::string_view id) {
    return std::to_string(client) + ':' + std::string(id);
  }

 private:
  struct Entry {
    std::unique_ptr<Execution> execution;
    Done done;
    size_t bytes = 0;  // the request's share of the queued-work budget
    bool orphaned = false;  // its client has gone: nothing of it is remembered once it ends
    std::chrono::steady_clock::time_point acceptedAt = std::chrono::steady_clock::now();
  };
  // Whether the entry runs in the client's session `id`.
  [[nodiscard]] static bool inSession(const Entry& entry, uint64_t client, const std::string& id) {
    const auto& r = entry.execution->request();
    return r.client == client && r.session == id;
  }
  // The executions queued or running, oldest first, for the summary.
  [[nodiscard]] json executionList() const;
  // Refuses a request that would take the requests held past ServerOptions::maxQueuedBytes.
  [[nodiscard]] std::optional<SubmitError> overBudget(size_t bytes) const;
  [[nodiscard]] std::expected<std::string, SubmitError> submitToSession(ExecutionRequest request, Done done,
                                                                        Execution::OutputSink output,
                                                                        Execution::UsageSink usage, uint64_t serial,
                                                                        size_t bytes);
  void enroll(ExecutionRequest request, Done done, Execution::OutputSink output, Execution::UsageSink usage,
              uint64_t serial, size_t bytes);
  void startNext();
  void launch(const std::string& id);
  void retire(const std::string& id, Result<json> result);
  void reapCgroups();
  void scheduleReap();
  void onClaimed(const std::string& id, Result<pool::PooledChild> child);
  [[nodiscard]] pool::Pool* poolFor(const std::string& profile, bool network, int64_t diskMb);
  // Starts the session's next queued execution if its interpreter is free.
  void pumpSession(const std::string& id);
  void sessionEnded(const std::string& id);
  // Executions running in sandboxes of their own (those in sessions do not count against
  // maxConcurrent: their sandbox exists already).
  [[nodiscard]] size_t ownSandboxes() const;

  EventLoop& loop_;
  const SandboxContext& ctx_;
  std::map<std::string, Entry> active_;  // queued and running
  size_t heldBytes_ = 0;                 // the sum of their Entry::bytes
  std::deque<std::string> queue_;
  std::map<std::string, json> finished_;
  std::deque<std::string> finishedOrder_;
  ResultStore results_;
  std::vector<std::unique_ptr<Execution>> graveyard_;
  sandbox::CgroupReaper reaper_;
  std::map<std::string, std::unique_ptr<pool::Pool>> pools_;  // by profile
  std::map<std::string, std::unique_ptr<pool::StartedPool>> startedPools_;  // JavaScript profiles
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  std::map<std::string, std::deque<std::string>> sessionQueues_;  // session -> waiting executionIds
  std::vector<std::unique_ptr<Session>> endedSessions_;  // destroyed on the next turn
  uint64_t sessionSerial_ = 0;
  bool reapScheduled_ = false;
  bool shuttingDown_ = false;
  uint64_t serial_ = 0;
  uint64_t total_ = 0;
  std::chrono::steady_clock::time_point startedAt_ = std::chrono::steady_clock::now();
};

}  // namespace pycell::exec
