#pragma once
// One execution's life: sandbox spawn, feeding the request and stdin, capturing output,
// enforcing the wall-clock timeout and the output cap; what it gathers (RunOutcome) makes
// the result (result.h).
#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/context.h"
#include "pycell/exec/output_buffer.h"
#include "pycell/exec/result.h"
#include "pycell/exec/result_channel.h"
#include "pycell/pool/pool.h"
#include "pycell/process/event_loop.h"
#include "pycell/sandbox/cgroup.h"

namespace pycell::exec {

class Session;
using sandbox::SandboxContext;

using nlohmann::json;

struct ExecutionRequest {
  std::string executionId;
  std::string profile = "default";
  std::string code;
  json inputs;  // null when absent
  bool hasInputs = false;
  std::string stdinData;
  json files = json::object();
  json returnFiles;  // null, or the validated array of glob patterns
  Limits limits;
  bool network = false;
  std::string session;  // run inside this session (empty: a sandbox of its own)
  bool samples = false;   // sample CPU and memory into `samples` (stream, or the profile says so)
  bool internal = false;  // pycell's own code (analyze): no policy, no activity
};

enum class ExecState { Queued, Running, Finished };
[[nodiscard]] const char* stateName(ExecState s);

class Execution : private ChannelSink {
 public:
  using Done = std::function<void(json result)>;
  using OutputSink = std::function<void(const std::string& stream, std::string_view text)>;
  using UsageSink = std::function<void(const json& sample)>;

  Execution(EventLoop& loop, const SandboxContext& ctx, ExecutionRequest request, uint64_t serial);
  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;
  ~Execution();

  void onDone(Done done) { done_ = std::move(done); }
  // The token the current request carries (see result_channel.h); new for each attempt.
  [[nodiscard]] const std::string& token() const { return token_; }
  void onOutput(OutputSink sink) { output_ = std::move(sink); }
  void onUsage(UsageSink sink) { usageSink_ = std::move(sink); }
  // A pooled child that died before it read the request (killed from outside while it
  // waited) did not run anything: the execution goes back to claim another, through this.
  using Retry = std::function<void(sandbox::ExecutionCgroup deadChildsCgroup)>;
  void onRetry(Retry retry) { retry_ = std::move(retry); }

  // Spawns a one-shot sandbox. An error means nothing runs (the caller reports that the sandbox could not be created).
  [[nodiscard]] Status start();
  // Pooled: the execution waits for a child of `pool` (the claim `ticket`), then runs in it.
  void waitForChild(pool::Pool& pool, pool::Pool::Ticket ticket);
  void startPooled(pool::Pool& pool, pool::PooledChild child);
  // In a session: the request goes to the session's interpreter, which keeps its state.
  void startInSession(Session& session);
  // From the session: output, the result, or the end of the sandbox during this run.
  void sessionOutput(const std::string& stream, std::string_view chunk);
  // The report as the session's channel took it, and what the kernel accounted for the run.
  void sessionResult(json report, const rusage& usage);
  void sessionEvent(json event);
  void sessionEnded(int waitStatus, const rusage& usage, bool memoryKilled);
  // Ends the run; the result (or the cancellation) follows through onDone.
  void stop(StopReason reason);
  // Records why the run is about to end, when something else ends it (a closed session).
  void markStopped(StopReason reason) {
    if (stopReason_ == StopReason::None) stopReason_ = reason;
  }
  // Ends the run now, synchronously (the event loop has stopped): kill, reap, read what the
  // pipes hold, and deliver the result through onDone.
  void finishNow(StopReason reason);

  [[nodiscard]] const std::string& id() const { return request_.executionId; }
  [[nodiscard]] const ExecutionRequest& request() const { return request_; }
  [[nodiscard]] ExecState state() const { return state_; }
  [[nodiscard]] int64_t elapsedMs() const;
  [[nodiscard]] json usageSoFar() const;
  [[nodiscard]] StopReason stopReason() const { return stopReason_; }
  // The cgroup outlives the execution until the kernel lets it be removed.
  [[nodiscard]] sandbox::ExecutionCgroup takeCgroup() { return std::move(cgroup_); }

 private:
  struct Stream {
    UniqueFd fd;
    bool open = false;
  };
  struct Outgoing {
    UniqueFd fd;
    std::string data;
    size_t offset = 0;
  };

  void watchOutput(Stream& s, const std::string& name, OutputBuffer* buffer);
  void watchOutgoing(Outgoing& out);
  bool pumpOutgoing(Outgoing& out);
  bool readStream(Stream& s, const std::string& name, OutputBuffer* buffer, size_t maxReads = 16);
  // ChannelSink: what the result channel accepted for this run's token.
  void channelEvent(json event) override { takeEvent(std::move(event)); }
  void channelReport(json report) override;
  // Runs one event-loop callback; an exception in it ends this execution (crashed), not the server.
  template <class F>
  void guarded(F&& f) noexcept;
  void crash(const std::string& why) noexcept;
  void takeOutput(const std::string& name, OutputBuffer& buffer, std::string_view chunk);
  [[nodiscard]] json requestDocument(const json& rlimits) const;
  void takeEvent(json event);
  void startSampling();
  void armSampleTimer();
  void takeSample();
  void emitOutput(const std::string& name, std::string_view chunk);
  void run(UniqueFd stdinW, UniqueFd stdoutR, UniqueFd stderrR, UniqueFd requestW, UniqueFd resultR, const json& rlimits);
  void onExit();
  void childEnded(int status, const rusage& usage);
  [[nodiscard]] bool childNeverStarted() const;
  void retryOnAnotherChild();
  void maybeFinish();

  void finish();
  void killSandbox();
  // What the run came to, for buildResult; moves the report, events and samples out.
  [[nodiscard]] RunOutcome takeOutcome();

  EventLoop& loop_;
  const SandboxContext& ctx_;
  ExecutionRequest request_;
  uint64_t serial_;
  Done done_;
  OutputSink output_;
  UsageSink usageSink_;
  Retry retry_;
  int retries_ = 0;
  json events_ = json::array();   // activity, as the bootstrap wrote it through
  bool blocked_ = false;          // an event said the policy blocked something
  json samples_ = json::array();  // {tMs, cpuMs, rssBytes}
  std::optional<int64_t> cpuAtStart_;
  std::optional<EventLoop::TimerId> sampleTimer_;
  pid_t samplePid_ = -1;

  ExecState state_ = ExecState::Queued;
  StopReason stopReason_ = StopReason::None;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  sandbox::ExecutionCgroup cgroup_;
  Stream stdout_, stderr_, result_;
  Outgoing stdin_, requestPipe_;
  OutputBuffer stdoutBuf_, stderrBuf_;
  std::string stdoutCarry_, stderrCarry_;  // streamed bytes waiting for the rest of a character
  ResultChannel channel_;
  std::string token_;
  std::optional<json> report_;  // the report the channel took for token_, cut to the caps
  std::string internalError_;   // why the server itself ended the run (StopReason::Internal)
  std::string hostWorkDir_;  // degraded mode without a mount namespace
  sandbox::NetStack net_;    // one-shot with network: its slirp4netns, ended with the execution
  pool::Pool* pool_ = nullptr;  // pooled: where the child came from
  std::optional<pool::Pool::Ticket> ticket_;  // pooled: waiting for a child
  uint64_t pooledId_ = 0;
  bool zygoteDied_ = false;
  Session* session_ = nullptr;          // in a session: whose interpreter runs this
  std::optional<bool> sessionAlive_;    // in a session: did its state survive this run?
  bool memoryKilled_ = false;           // the session's cgroup killed it for memory

  std::chrono::steady_clock::time_point startedAt_;
  std::chrono::steady_clock::time_point exitedAt_;
  bool exited_ = false;
  int waitStatus_ = 0;
  rusage rusage_{};
  std::optional<EventLoop::TimerId> timeoutTimer_;
  std::optional<EventLoop::TimerId> drainTimer_;
};

}  // namespace pycell::exec
