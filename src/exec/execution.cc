#include "pycell/exec/execution.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "pycell/error.h"
#include "pycell/exec/child_run.h"
#include "pycell/exec/result_channel.h"
#include "pycell/exec/session.h"
#include "pycell/process/log.h"
#include "pycell/process/proc_stat.h"
#include "pycell/sandbox/rlimits.h"

namespace pycell::exec {

const char* stateName(ExecState s) {
  switch (s) {
    // Not running the program yet: in a queue, or waiting for a pooled child.
    case ExecState::Queued:
    case ExecState::Claiming: return "queued";
    case ExecState::Running: return "running";
    case ExecState::Finished: break;
  }
  return "finished";
}

Execution::Execution(EventLoop& loop, const SandboxContext& ctx, ExecutionRequest request, uint64_t serial)
    : loop_(loop),
      ctx_(ctx),
      request_(std::move(request)),
      serial_(serial),
      stdoutBuf_(static_cast<size_t>(request_.limits.maxOutputBytes)),
      stderrBuf_(static_cast<size_t>(request_.limits.maxOutputBytes)) {}

Execution::~Execution() {
  // A session finishes its run before it goes; a child run kills and reaps its process.
  for (auto* t : {&timeoutTimer_, &sampleTimer_, &cpuTimer_})
    if (*t) loop_.cancelTimer(**t);
  cancelClaim();
}

Status Execution::start() {
  startedAt_ = std::chrono::steady_clock::now();
  token_ = ResultChannel::newToken();
  auto run = OwnSandboxRun::start(loop_, *this, ctx_,
                                  {.profile = &ctx_.config.profiles.at(request_.profile),
                                   .limits = request_.limits,
                                   .network = request_.network,
                                   .cgroupName = "e" + std::to_string(serial_)},
                                  requestLine({}, false), request_.stdinData, token_);
  if (!run) return std::unexpected(run.error());
  begin(std::move(*run));
  return {};
}

void Execution::startStarted(pool::StartedSandbox sandbox) {
  startedAt_ = std::chrono::steady_clock::now();
  token_ = ResultChannel::newToken();
  // Started with the profile's limits; this execution's may be tighter (StartedPool::fits).
  if (auto st = sandbox.proc.cgroup.setLimits(request_.limits.memoryMb << 20, request_.limits.maxProcesses); !st)
    log::warn("cgroup limits for " + request_.executionId + ": " + st.error().message());
  begin(OwnSandboxRun::adopt(loop_, *this, ctx_, std::move(sandbox.proc), sandbox.cpuWhenReady, requestLine({}, false),
                             request_.stdinData, token_));
}

void Execution::waitForChild(pool::Pool& pool, pool::Pool::Ticket ticket) {
  state_ = ExecState::Claiming;
  claimPool_ = &pool;
  ticket_ = ticket;
}

void Execution::cancelClaim() {
  if (ticket_ && claimPool_) claimPool_->cancelClaim(*ticket_);
  ticket_.reset();
}

void Execution::startPooled(pool::Pool& pool, pool::PooledChild child) {
  ticket_.reset();
  startedAt_ = std::chrono::steady_clock::now();
  token_ = ResultChannel::newToken();
  // The child was forked with the profile's limits; this execution's may be tighter.
  if (auto st = child.cgroup.setLimits(request_.limits.memoryMb << 20, request_.limits.maxProcesses); !st)
    log::warn("cgroup limits for " + request_.executionId + ": " + st.error().message());
  json rlimits = sandbox::rlimitRows(
      sandbox::planRlimits(request_.limits, {.memoryByRlimit = !ctx_.isolation.cgroup.memory, .processesByRlimit = true}));
  RunEvents& events = *this;
  begin(std::make_unique<PooledChildRun>(loop_, events, ctx_.isolation.namespaces.pid, pool, std::move(child),
                                         requestLine(rlimits, false), request_.stdinData, token_));
}

void Execution::startInSession(Session& session) {
  startedAt_ = std::chrono::steady_clock::now();
  token_ = ResultChannel::newToken();
  begin(session.run(*this, requestLine({}, true), token_));
}

std::string Execution::requestLine(const json& rlimits, bool inSession) const {
  json doc = {{"token", token_}, {"code", request_.code}, {"files", request_.files}};
  if (request_.hasInputs) doc["inputs"] = request_.inputs;
  if (!request_.returnFiles.is_null()) doc["returnFiles"] = request_.returnFiles;
  if (!rlimits.empty()) doc["rlimits"] = rlimits;
  if (!request_.env.empty()) doc["env"] = request_.env;
  if (!request_.filename.empty()) doc["filename"] = request_.filename;
  if (inSession) {
    doc["stdin"] = request_.stdinData;  // the session's fd 0 is shared by every run
    doc["cpuMs"] = request_.limits.cpuMs;
  }
  if (const json& policy = ctx_.policy(request_.profile, request_.network); !request_.internal && !policy.is_null())
    doc["policy"] = policy;
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

void Execution::begin(std::unique_ptr<Run> run) {
  run_ = std::move(run);
  state_ = ExecState::Running;
  timeoutTimer_ = loop_.addTimer(std::chrono::milliseconds(request_.limits.timeoutMs), [this] {
    timeoutTimer_.reset();
    guarded([this] { stop(StopReason::Timeout); });
  });
  armCpuCheck(std::chrono::milliseconds(0));
  startSampling();
}

// cpuMs for the whole run: the run's cgroup counts every process in it, so workers that fork
// and share the budget (each within its own RLIMIT_CPU) cannot use it several times over.
// Checked while the run lives, more often as the budget runs out: one pread a check.
void Execution::armCpuCheck(std::chrono::milliseconds delay) {
  cpuTimer_ = loop_.addTimer(delay, [this] {
    cpuTimer_.reset();
    if (state_ != ExecState::Running || end_ || stopReason_ != StopReason::None) return;
    guarded([this] {
      auto used = run_->cgroupCpuUs();
      if (!used) return;  // no CPU cgroup: RLIMIT_CPU holds, per process
      const int64_t limitUs = request_.limits.cpuMs * 1000;
      if (*used > limitUs) {
        stop(StopReason::CpuLimit);
        return;
      }
      // The budget left, spread over every CPU that could be spending it, bounded to 10..100 ms.
      static const int64_t cpus = std::max<long>(1, ::sysconf(_SC_NPROCESSORS_ONLN));
      armCpuCheck(std::chrono::milliseconds(std::clamp<int64_t>((limitUs - *used) / 1000 / cpus, 10, 100)));
    });
  });
}

template <class F>
void Execution::guarded(F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    crash(e.what());
  } catch (...) {
    crash("an unknown error");
  }
}

// Something in the server failed while handling this run (what the sandbox wrote, most
// likely): the run ends as crashed with the reason; the server and every other run go on.
void Execution::crash(const std::string& why) noexcept {
  try {
    if (state_ == ExecState::Finished) return;
    log::error("execution " + request_.executionId + ": " + why);
    internalError_ = why;
    stopReason_ = StopReason::Internal;
    cancelClaim();
    if (state_ == ExecState::Running && !end_) run_->stop();
    finish();
  } catch (...) {
    log::error("execution " + request_.executionId + ": could not be ended cleanly");
  }
}

void Execution::runEvent(json event) {
  // Taken from the channel (bounded in count and bytes there), and only when well-formed.
  if (!event.is_object() || !event.contains("kind") || !event["kind"].is_string()) return;
  if (event["kind"] == "blocked") blocked_ = true;
  events_.push_back(std::move(event));
}

void Execution::runOutput(std::string_view stream, std::string_view chunk) {
  OutputBuffer& buffer = stream == "stdout" ? stdoutBuf_ : stderrBuf_;
  buffer.append(chunk);
  if (output_ && stopReason_ == StopReason::None) emitOutput(stream, chunk);
  if (stdoutBuf_.totalBytes() + stderrBuf_.totalBytes() > static_cast<size_t>(request_.limits.maxOutputBytes) &&
      stopReason_ == StopReason::None) {
    stop(StopReason::OutputLimit);
  }
}

// Hands output to the sink in whole UTF-8 characters: a read may end inside one, and a
// notification carrying half a character would turn it into U+FFFD.
void Execution::emitOutput(std::string_view name, std::string_view chunk) {
  std::string& carry = name == "stdout" ? stdoutCarry_ : stderrCarry_;
  std::string text = carry + std::string(chunk);
  size_t cut = completeUtf8Prefix(text);
  carry = text.substr(cut);
  if (cut > 0) output_(std::string(name), std::string_view(text).substr(0, cut));
}

void Execution::runExited(const RunEnd& end) {
  if (state_ != ExecState::Running) return;
  // (Not when the zygote died: its executions are answered, and the pool restarts it.)
  constexpr int kMaxRetries = 3;
  if (run_->retryable(end) && retry_ && retries_ < kMaxRetries && stopReason_ == StopReason::None && !end.zygoteDied &&
      stdoutBuf_.totalBytes() == 0 && stderrBuf_.totalBytes() == 0) {
    retryOnAnotherChild();
    return;
  }
  end_ = end;
  exitedAt_ = std::chrono::steady_clock::now();
  for (auto* t : {&timeoutTimer_, &cpuTimer_}) {
    if (*t) loop_.cancelTimer(**t);
    t->reset();
  }
}

void Execution::runDrained() {
  if (state_ != ExecState::Running) return;
  // The last bytes of a stream that ended inside a character.
  for (auto [name, carry] : {std::pair{"stdout", &stdoutCarry_}, {"stderr", &stderrCarry_}}) {
    if (output_ && !carry->empty()) output_(name, *carry);
    carry->clear();
  }
  finish();
}

// A pooled child that died without reading its request ran nothing of the program (the
// kernel says so: see PooledChildRun::retryable): the execution claims another, as if it had
// just been launched.
void Execution::retryOnAnotherChild() {
  ++retries_;
  log::warn("execution " + request_.executionId + ": its pooled child died before reading its request; retrying on another (" +
            std::to_string(retries_) + "/3)");
  for (auto* t : {&timeoutTimer_, &sampleTimer_, &cpuTimer_}) {
    if (*t) loop_.cancelTimer(**t);
    t->reset();
  }
  run_->release();
  sandbox::ExecutionCgroup dead = run_->takeCgroup();
  spent_ = std::move(run_);  // we are inside its exit callback
  report_.reset();
  events_ = json::array();
  blocked_ = false;
  samples_ = json::array();
  cpuAtStart_.reset();
  state_ = ExecState::Queued;
  retry_(std::move(dead));
}

void Execution::stop(StopReason reason) {
  if (state_ == ExecState::Finished) return;
  if (stopReason_ == StopReason::None) stopReason_ = reason;
  if (state_ == ExecState::Running) {
    if (!end_) run_->stop();
    return;
  }
  cancelClaim();
  finish();
}

void Execution::finishNow(StopReason reason) {
  if (state_ == ExecState::Finished) return;
  if (stopReason_ == StopReason::None) stopReason_ = reason;
  cancelClaim();
  if (state_ == ExecState::Running) run_->stopNow();
  finish();
}

// CPU and memory of the sandbox's interpreter at the profile's period (the process the
// server knows by pid: PID 1 of the sandbox, which runs the program); CPU of all the run's
// processes where its cgroup accounts it.
void Execution::startSampling() {
  if (!request_.samples || run_->samplePid() <= 0) return;
  takeSample();
  armSampleTimer();
}

void Execution::armSampleTimer() {
  auto period = std::chrono::milliseconds(ctx_.config.profiles.at(request_.profile).samplePeriodMs);
  sampleTimer_ = loop_.addTimer(period, [this] {
    sampleTimer_.reset();
    if (state_ != ExecState::Running || end_) return;
    guarded([this] {
      takeSample();
      armSampleTimer();
    });
  });
}

void Execution::takeSample() {
  auto stat = process::readProcStat(run_->samplePid());
  // An exited process (its memory already gone) is not a sample of the run.
  if (!stat || stat->state == 'Z' || stat->state == 'X' || stat->rssBytes == 0) return;
  int64_t cpuMs = stat->userMs + stat->sysMs;
  if (!cpuAtStart_) cpuAtStart_ = cpuMs;  // a session's interpreter has a past
  cpuMs = std::max<int64_t>(0, cpuMs - *cpuAtStart_);
  // Where a cgroup accounts CPU, all of the run's processes so far (as in its usage).
  if (auto all = run_->cgroupCpuUs()) cpuMs = *all / 1000;
  auto tMs = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - startedAt_).count();
  json sample = {{"tMs", tMs}, {"cpuMs", cpuMs}, {"rssBytes", stat->rssBytes}};
  if (usageSink_) {
    json notice = sample;
    notice["executionId"] = request_.executionId;
    usageSink_(notice);
  }
  samples_.push_back(std::move(sample));
}

void Execution::finish() {
  if (state_ == ExecState::Finished) return;
  bool ran = state_ == ExecState::Running;
  state_ = ExecState::Finished;
  for (auto* t : {&timeoutTimer_, &sampleTimer_, &cpuTimer_}) {
    if (*t) loop_.cancelTimer(**t);
    t->reset();
  }
  if (ran) run_->release();
  json result;
  try {
    result = buildResult(takeOutcome());
  } catch (const std::exception& e) {
    log::error("execution " + request_.executionId + ": the result could not be built: " + e.what());
    result = unbuildableResult(request_.executionId, elapsedMs(), e.what());
  }
  if (done_) {
    auto done = std::move(done_);
    done(std::move(result));
  }
}

int64_t Execution::elapsedMs() const {
  // Never started (killed while queued or waiting for a pooled child): no time ran.
  if (!run_ || startedAt_ == std::chrono::steady_clock::time_point{}) return 0;
  auto end = end_ ? exitedAt_ : std::chrono::steady_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(end - startedAt_).count();
}

json Execution::usageSoFar() const {
  if (finalUsage_) return *finalUsage_;  // the result's: the cgroup is not read again
  return usageDocument(elapsedMs(), kernelUsage(end_ ? end_->usage : rusage{}, run_ ? run_->cgroupUsage() : sandbox::CgroupUsage{}));
}

// Node ends a run whose JavaScript heap reaches --max-old-space-size (memoryMb) with SIGABRT
// (SIGTRAP where V8 crashes on purpose, SIGSEGV where its out-of-memory handler cannot
// allocate under RLIMIT_AS); without a memory cgroup that is how the memory limit is met.
// Judged from kernel facts only: the signal, and a peak memory at 90% of the limit or more.
bool Execution::heapLimitReached(const RunEnd& end, uint64_t peakBytes) const {
  if (ctx_.config.profiles.at(request_.profile).language != Language::JavaScript || !WIFSIGNALED(end.waitStatus))
    return false;
  int sig = WTERMSIG(end.waitStatus);
  uint64_t limit = static_cast<uint64_t>(request_.limits.memoryMb) << 20;
  return (sig == SIGABRT || sig == SIGTRAP || sig == SIGSEGV) && peakBytes >= limit / 10 * 9;
}

RunOutcome Execution::takeOutcome() {
  RunOutcome o;
  o.executionId = request_.executionId;
  o.limits = request_.limits;
  o.exited = end_.has_value();
  RunEnd end = end_.value_or(RunEnd{});
  o.waitStatus = end.waitStatus;
  o.wallMs = elapsedMs();
  o.usage = kernelUsage(end.usage, run_ ? run_->cgroupUsage() : sandbox::CgroupUsage{});
  finalUsage_ = usageDocument(o.wallMs, o.usage);
  o.memoryKilled = end.memoryKilled || heapLimitReached(end, o.usage.peakMemoryBytes);
  o.stopReason = stopReason_;
  o.internalError = internalError_;
  o.zygoteDied = end.zygoteDied;
  o.inSession = run_ && run_->inSession();
  o.sessionId = request_.session;
  o.sessionAlive = end.sessionAlive;
  o.stdoutText = stdoutBuf_.text();
  o.stderrText = stderrBuf_.text();
  o.stdoutTruncated = stdoutBuf_.truncated();
  o.stderrTruncated = stderrBuf_.truncated();
  // Moved, not copied: returned files may weigh tens of MiB.
  o.report = report_ ? std::move(*report_) : json(nullptr);
  report_.reset();
  o.channelProblem = run_ ? run_->channelProblem() : std::string{};
  o.events = std::exchange(events_, json::array());
  o.blocked = blocked_;
  o.samples = std::exchange(samples_, json::array());
  o.activity = !request_.internal && ctx_.config.profiles.at(request_.profile).activity;
  return o;
}

}  // namespace pycell::exec
