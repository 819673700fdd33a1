#pragma once
// One execution's life, whatever kind of run it is (run.h): queued, claiming a pooled child,
// running, finished. It gathers what the run reports (output under its cap, activity, the
// report, the kernel's facts), enforces the wall-clock timeout, samples CPU and memory, and
// makes the result from what it gathered (RunOutcome, result.h).
#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/context.h"
#include "pycell/exec/output_buffer.h"
#include "pycell/exec/result.h"
#include "pycell/exec/run.h"
#include "pycell/pool/pool.h"
#include "pycell/pool/started_pool.h"
#include "pycell/process/event_loop.h"
#include "pycell/sandbox/cgroup.h"

namespace pycell::exec {

class Session;
using sandbox::SandboxContext;

using nlohmann::json;

struct ExecutionRequest {
  // The connection that asked for it (0: the only client). Ids are the client's own: two
  // connections of a shared server may both name an execution "a" (scheduler.h).
  uint64_t client = 0;
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
  std::map<std::string, std::string> env;  // the profile's env, then execute.env over it
  std::string filename;  // execute.filename: the code's name in tracebacks (empty: "<pycell>")
};

// What the run is doing: waiting in the server's queue, waiting for a pooled child, running
// (until the result is built), finished.
enum class ExecState { Queued, Claiming, Running, Finished };
// The state as `status` reports it: queued (claiming included), running, finished.
[[nodiscard]] const char* stateName(ExecState s);

class Execution : private RunEvents {
 public:
  using Done = std::function<void(json result)>;
  using OutputSink = std::function<void(const std::string& stream, std::string_view text)>;
  using UsageSink = std::function<void(const json& sample)>;

  Execution(EventLoop& loop, const SandboxContext& ctx, ExecutionRequest request, uint64_t serial);
  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;
  ~Execution() override;

  void onDone(Done done) { done_ = std::move(done); }
  void onOutput(OutputSink sink) { output_ = std::move(sink); }
  void onUsage(UsageSink sink) { usageSink_ = std::move(sink); }
  // A pooled child that died before it read the request (killed from outside while it
  // waited) did not run anything: the execution goes back to claim another, through this.
  using Retry = std::function<void(sandbox::ExecutionCgroup deadChildsCgroup)>;
  void onRetry(Retry retry) { retry_ = std::move(retry); }

  // Spawns a sandbox of its own. An error means nothing runs (the caller reports that the sandbox could not be created).
  [[nodiscard]] Status start();
  // Pooled: the execution waits for a child of `pool` (the claim `ticket`), then runs in it.
  void waitForChild(pool::Pool& pool, pool::Pool::Ticket ticket);
  void startPooled(pool::Pool& pool, pool::PooledChild child);
  // In a sandbox a StartedPool had ready (a JavaScript profile's): run as in one of its own.
  void startStarted(pool::StartedSandbox sandbox);
  // In a session: the request goes to the session's interpreter, which keeps its state.
  void startInSession(Session& session);
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
  // The cgroup outlives the execution until the kernel lets it be removed.
  [[nodiscard]] sandbox::ExecutionCgroup takeCgroup() { return run_ ? run_->takeCgroup() : sandbox::ExecutionCgroup{}; }

 private:
  // RunEvents: what the run reports.
  void runOutput(std::string_view stream, std::string_view chunk) override;
  void runEvent(json event) override;
  void runReport(json report) override { report_ = std::move(report); }  // cut to the caps by the channel
  void runExited(const RunEnd& end) override;
  void runDrained() override;
  void runFailed(const std::string& why) override { crash(why); }

  // From here on every kind of run is the same: the wall clock, the samples.
  void begin(std::unique_ptr<Run> run);
  [[nodiscard]] std::string requestLine(const json& rlimits, bool inSession) const;
  // Runs one event-loop callback; an exception in it ends this execution (crashed), not the server.
  template <class F>
  void guarded(F&& f) noexcept;
  void crash(const std::string& why) noexcept;
  void cancelClaim();
  void armCpuCheck(std::chrono::milliseconds delay);
  void startSampling();
  void armSampleTimer();
  void takeSample();
  void emitOutput(std::string_view name, std::string_view chunk);
  void retryOnAnotherChild();
  void finish();
  // What the run came to, for buildResult; moves the report, events and samples out.
  [[nodiscard]] RunOutcome takeOutcome();
  [[nodiscard]] bool heapLimitReached(const RunEnd& end, uint64_t peakBytes) const;

  EventLoop& loop_;
  const SandboxContext& ctx_;
  ExecutionRequest request_;
  uint64_t serial_;
  Done done_;
  OutputSink output_;
  UsageSink usageSink_;
  Retry retry_;
  int retries_ = 0;

  ExecState state_ = ExecState::Queued;
  StopReason stopReason_ = StopReason::None;
  pool::Pool* claimPool_ = nullptr;             // claiming: whose child it waits for
  std::optional<pool::Pool::Ticket> ticket_;
  std::unique_ptr<Run> run_;
  std::unique_ptr<Run> spent_;  // a pooled child that died unstarted (its callback may be on the stack)
  std::string token_;           // the current request's (see result_channel.h); new for each attempt

  json events_ = json::array();   // activity, as the bootstrap wrote it through
  bool blocked_ = false;          // an event said the policy blocked something
  json samples_ = json::array();  // {tMs, cpuMs, rssBytes}
  std::optional<int64_t> cpuAtStart_;
  std::optional<EventLoop::TimerId> sampleTimer_;
  OutputBuffer stdoutBuf_, stderrBuf_;
  std::string stdoutCarry_, stderrCarry_;  // streamed bytes waiting for the rest of a character
  std::optional<json> report_;  // the report the channel took for token_, cut to the caps
  std::string internalError_;   // why the server itself ended the run (StopReason::Internal)

  std::chrono::steady_clock::time_point startedAt_;
  std::chrono::steady_clock::time_point exitedAt_;
  std::optional<RunEnd> end_;  // the kernel's facts, once the run has exited
  std::optional<json> finalUsage_;  // the result's usage, once it is built
  std::optional<EventLoop::TimerId> timeoutTimer_;
  std::optional<EventLoop::TimerId> cpuTimer_;  // the whole run's cpuMs, where a cgroup counts it
};

}  // namespace pycell::exec
