#include "pycell/exec/execution.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <utility>

#include "pycell/error.h"
#include "pycell/exec/session.h"
#include "pycell/exec/spawn.h"
#include "pycell/process/log.h"
#include "pycell/process/proc_stat.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/rlimits.h"

namespace pycell::exec {

namespace {
constexpr auto kDrainGrace = std::chrono::milliseconds(2000);
}  // namespace

const char* stateName(ExecState s) {
  switch (s) {
    case ExecState::Queued: return "queued";
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
  if (state_ == ExecState::Running && !session_) killSandbox();  // a session finishes its run before it goes
  for (Stream* s : {&stdout_, &stderr_, &result_})
    if (s->open) loop_.unwatch(s->fd.get());
  for (Outgoing* o : {&stdin_, &requestPipe_})
    if (o->fd) loop_.unwatch(o->fd.get());
  if (pidfd_) loop_.unwatch(pidfd_.get());
  if (timeoutTimer_) loop_.cancelTimer(*timeoutTimer_);
  if (drainTimer_) loop_.cancelTimer(*drainTimer_);
  if (sampleTimer_) loop_.cancelTimer(*sampleTimer_);
  if (pid_ > 0 && !exited_ && !pool_) ::waitpid(pid_, nullptr, 0);  // killed above: reaps promptly
  if (pool_) {
    if (ticket_) pool_->cancelClaim(*ticket_);
    if (pooledId_) pool_->forgetExit(pooledId_);
  }
  removeHostWorkDir(hostWorkDir_);
}

Status Execution::start() {
  startedAt_ = std::chrono::steady_clock::now();
  auto proc = spawnBootstrap(ctx_, {.profile = &ctx_.config.profiles.at(request_.profile),
                                    .limits = request_.limits,
                                    .network = request_.network,
                                    .cgroupName = "e" + std::to_string(serial_)});
  if (!proc) return std::unexpected(proc.error());
  hostWorkDir_ = std::move(proc->hostWorkDir);
  cgroup_ = std::move(proc->cgroup);
  net_ = std::move(proc->net);
  pid_ = proc->pid;
  pidfd_ = std::move(proc->pidfd);
  (void)loop_.watch(pidfd_.get(), EPOLLIN, [this](uint32_t) { guarded([this] { onExit(); }); });
  run(std::move(proc->stdinW), std::move(proc->stdoutR), std::move(proc->stderrR), std::move(proc->requestW),
      std::move(proc->resultR), {});
  return {};
}

void Execution::waitForChild(pool::Pool& pool, pool::Pool::Ticket ticket) {
  pool_ = &pool;
  ticket_ = ticket;
}

void Execution::startPooled(pool::Pool& pool, pool::PooledChild child) {
  pool_ = &pool;
  ticket_.reset();
  startedAt_ = std::chrono::steady_clock::now();
  pid_ = child.pid;
  pidfd_ = std::move(child.pidfd);
  pooledId_ = child.id;
  cgroup_ = std::move(child.cgroup);
  // The child was forked with the profile's limits; this execution's may be tighter.
  if (auto st = cgroup_.setLimits(request_.limits.memoryMb << 20, request_.limits.maxProcesses); !st)
    log::warn("cgroup limits for " + request_.executionId + ": " + st.error().message());
  // The zygote reaps the child and reports how it ended.
  pool_->onExit(pooledId_, [this](pool::ExitInfo info) {
    guarded([&] {
      zygoteDied_ = info.zygoteDied;
      childEnded(info.status, info.usage);
    });
  });
  json rlimits = sandbox::rlimitRows(
      sandbox::planRlimits(request_.limits, {.memoryByRlimit = !ctx_.isolation.cgroup.memory, .processesByRlimit = true}));
  run(std::move(child.stdinW), std::move(child.stdoutR), std::move(child.stderrR), std::move(child.requestW),
      std::move(child.resultR), rlimits);
}

json Execution::requestDocument(const json& rlimits) const {
  json doc = {{"token", token_}, {"code", request_.code}, {"files", request_.files}};
  if (request_.hasInputs) doc["inputs"] = request_.inputs;
  if (!request_.returnFiles.is_null()) doc["returnFiles"] = request_.returnFiles;
  if (!rlimits.empty()) doc["rlimits"] = rlimits;
  if (session_) {
    doc["stdin"] = request_.stdinData;  // the session's fd 0 is shared by every run
    doc["cpuMs"] = request_.limits.cpuMs;
  }
  if (const json& policy = ctx_.policy(request_.profile, request_.network); !request_.internal && !policy.is_null())
    doc["policy"] = policy;
  return doc;
}

void Execution::startInSession(Session& session) {
  session_ = &session;
  state_ = ExecState::Running;
  startedAt_ = std::chrono::steady_clock::now();
  token_ = ResultChannel::newToken();
  session.run(*this, requestDocument({}).dump(-1, ' ', false, json::error_handler_t::replace), token_);
  samplePid_ = session.pid();
  startSampling();
  timeoutTimer_ = loop_.addTimer(std::chrono::milliseconds(request_.limits.timeoutMs), [this] {
    timeoutTimer_.reset();
    guarded([this] { stop(StopReason::Timeout); });
  });
}

void Execution::sessionEvent(json event) { takeEvent(std::move(event)); }

void Execution::takeEvent(json event) {
  // Taken from the channel (bounded in count and bytes there), and only when well-formed.
  if (!event.is_object() || !event.contains("kind") || !event["kind"].is_string()) return;
  if (event["kind"] == "blocked") blocked_ = true;
  events_.push_back(std::move(event));
}

// Already cut to the server's caps by the channel that took it.
void Execution::channelReport(json report) { report_ = std::move(report); }

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
    if (state_ == ExecState::Queued && ticket_) pool_->cancelClaim(*ticket_);
    ticket_.reset();
    if (state_ == ExecState::Running) killSandbox();
    finish();
  } catch (...) {
    log::error("execution " + request_.executionId + ": could not be ended cleanly");
  }
}

// CPU and memory of the sandbox's interpreter at the profile's period (the process the
// server knows by pid: PID 1 of the sandbox, which runs the program).
void Execution::startSampling() {
  if (!request_.samples || samplePid_ <= 0) return;
  takeSample();
  armSampleTimer();
}

void Execution::armSampleTimer() {
  auto period = std::chrono::milliseconds(ctx_.config.profiles.at(request_.profile).samplePeriodMs);
  sampleTimer_ = loop_.addTimer(period, [this] {
    sampleTimer_.reset();
    if (state_ != ExecState::Running || exited_) return;
    guarded([this] {
      takeSample();
      armSampleTimer();
    });
  });
}

void Execution::takeSample() {
  auto stat = process::readProcStat(samplePid_);
  // An exited process (its memory already gone) is not a sample of the run.
  if (!stat || stat->state == 'Z' || stat->state == 'X' || stat->rssBytes == 0) return;
  int64_t cpuMs = stat->userMs + stat->sysMs;
  if (!cpuAtStart_) cpuAtStart_ = cpuMs;  // a session's interpreter has a past
  auto tMs = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - startedAt_).count();
  json sample = {{"tMs", tMs}, {"cpuMs", std::max<int64_t>(0, cpuMs - *cpuAtStart_)}, {"rssBytes", stat->rssBytes}};
  if (usageSink_) {
    json notice = sample;
    notice["executionId"] = request_.executionId;
    usageSink_(notice);
  }
  samples_.push_back(std::move(sample));
}

void Execution::sessionOutput(const std::string& stream, std::string_view chunk) {
  takeOutput(stream, stream == "stdout" ? stdoutBuf_ : stderrBuf_, chunk);
}

void Execution::sessionResult(json report, const rusage& usage) {
  if (state_ != ExecState::Running) return;
  exited_ = true;
  exitedAt_ = std::chrono::steady_clock::now();
  // The interpreter lives on: the exit code is the run's SystemExit, as the session reports
  // it; CPU and memory are the kernel's (the session reads them from /proc).
  int code = report.contains("exitCode") && report["exitCode"].is_number_integer() ? report["exitCode"].get<int>() : 0;
  waitStatus_ = (code & 0xff) << 8;
  rusage_ = usage;
  channelReport(std::move(report));
  sessionAlive_ = true;
  finish();
}

void Execution::sessionEnded(int waitStatus, const rusage& usage, bool memoryKilled) {
  if (state_ != ExecState::Running) return;
  exited_ = true;
  exitedAt_ = std::chrono::steady_clock::now();
  waitStatus_ = waitStatus;
  rusage_ = usage;
  memoryKilled_ = memoryKilled;
  report_ = json(nullptr);
  sessionAlive_ = false;
  finish();
}

// From here on one-shot and pooled runs are the same: feed the request and stdin, capture
// output and the result, enforce the wall clock.
void Execution::run(UniqueFd stdinW, UniqueFd stdoutR, UniqueFd stderrR, UniqueFd requestW, UniqueFd resultR,
                    const json& rlimits) {
  state_ = ExecState::Running;
  token_ = ResultChannel::newToken();
  channel_ = ResultChannel();
  channel_.expect(token_);
  json requestDoc = requestDocument(rlimits);
  stdin_ = {std::move(stdinW), request_.stdinData, 0};
  requestPipe_ = {std::move(requestW), requestDoc.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", 0};
  stdout_ = {std::move(stdoutR), true};
  stderr_ = {std::move(stderrR), true};
  result_ = {std::move(resultR), true};
  watchOutput(stdout_, "stdout", &stdoutBuf_);
  watchOutput(stderr_, "stderr", &stderrBuf_);
  watchOutput(result_, "result", nullptr);
  watchOutgoing(stdin_);
  watchOutgoing(requestPipe_);
  timeoutTimer_ = loop_.addTimer(std::chrono::milliseconds(request_.limits.timeoutMs), [this] {
    timeoutTimer_.reset();
    guarded([this] { stop(StopReason::Timeout); });
  });
  samplePid_ = pid_;
  startSampling();
}

void Execution::watchOutput(Stream& s, const std::string& name, OutputBuffer* buffer) {
  (void)setNonBlocking(s.fd.get());
  (void)loop_.watch(s.fd.get(), EPOLLIN, [this, &s, name, buffer](uint32_t) {
    guarded([&] {
      if (readStream(s, name, buffer)) maybeFinish();
    });
  });
}

// Reads what the pipe holds now; true when it reached EOF (and was closed).
// At most `maxReads` reads per call: a writer that never pauses cannot keep the event loop
// here (the descriptor is level-triggered, so the loop comes back for the rest).
bool Execution::readStream(Stream& s, const std::string& name, OutputBuffer* buffer, size_t maxReads) {
  char buf[65536];
  for (size_t reads = 0; s.open && reads < maxReads; ++reads) {
    ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    if (n <= 0) {
      loop_.unwatch(s.fd.get());
      s.fd.reset();
      s.open = false;
      std::string& carry = name == "stdout" ? stdoutCarry_ : stderrCarry_;
      if (buffer && output_ && !carry.empty()) output_(name, carry);  // an incomplete last character
      carry.clear();
      if (!buffer) channel_.close(*this);
      return true;
    }
    std::string_view chunk(buf, static_cast<size_t>(n));
    if (!buffer) {
      channel_.feed(chunk, *this);
      continue;
    }
    takeOutput(name, *buffer, chunk);
  }
  return !s.open;
}

void Execution::takeOutput(const std::string& name, OutputBuffer& buffer, std::string_view chunk) {
  buffer.append(chunk);
  if (output_ && stopReason_ == StopReason::None) emitOutput(name, chunk);
  if (stdoutBuf_.totalBytes() + stderrBuf_.totalBytes() > static_cast<size_t>(request_.limits.maxOutputBytes) &&
      stopReason_ == StopReason::None) {
    stop(StopReason::OutputLimit);
  }
}

void Execution::finishNow(StopReason reason) {
  if (state_ == ExecState::Finished) return;
  if (stopReason_ == StopReason::None) stopReason_ = reason;
  if (session_ && state_ == ExecState::Running) {
    session_->terminate("the server is stopping");  // the loop has stopped: ends at once
    finish();
    return;
  }
  if (state_ == ExecState::Queued && ticket_) {
    pool_->cancelClaim(*ticket_);
    ticket_.reset();
  }
  if (state_ == ExecState::Running && !exited_ && pool_) {
    killSandbox();  // the zygote reaps it; its report will not come, the loop has stopped
    exited_ = true;
    exitedAt_ = std::chrono::steady_clock::now();
    waitStatus_ = SIGKILL;
  } else if (state_ == ExecState::Running && !exited_) {
    killSandbox();
    int status = 0;
    pid_t r;
    do {
      r = ::wait4(pid_, &status, 0, &rusage_);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) {
      exited_ = true;
      exitedAt_ = std::chrono::steady_clock::now();
      waitStatus_ = status;
    }
  }
  // The sandbox's init is dead, so every writer is gone: what the pipes hold is all there is.
  constexpr size_t kAll = SIZE_MAX;
  readStream(stdout_, "stdout", &stdoutBuf_, kAll);
  readStream(stderr_, "stderr", &stderrBuf_, kAll);
  readStream(result_, "result", nullptr, kAll);
  finish();
}

// Hands output to the sink in whole UTF-8 characters: a read may end inside one, and a
// notification carrying half a character would turn it into U+FFFD.
void Execution::emitOutput(const std::string& name, std::string_view chunk) {
  std::string& carry = name == "stdout" ? stdoutCarry_ : stderrCarry_;
  std::string text = carry + std::string(chunk);
  size_t cut = completeUtf8Prefix(text);
  carry = text.substr(cut);
  if (cut > 0) output_(name, std::string_view(text).substr(0, cut));
}

void Execution::watchOutgoing(Outgoing& o) {
  if (o.data.empty()) {
    o.fd.reset();  // EOF right away
    return;
  }
  (void)setNonBlocking(o.fd.get());
  // Written now as far as the pipe takes it (a request usually fits whole); the rest
  // whenever the program makes room.
  if (pumpOutgoing(o)) return;
  (void)loop_.watch(o.fd.get(), EPOLLOUT, [this, &o](uint32_t) { guarded([&] { pumpOutgoing(o); }); });
}

// Writes what the pipe accepts; true when done (all written, or the reader went away),
// in which case the fd is closed and unwatched.
bool Execution::pumpOutgoing(Outgoing& o) {
  auto written = writeSome(o.fd.get(), std::string_view(o.data).substr(o.offset));
  if (written) o.offset += *written;
  // On EPIPE (the program closed its end, or died) the rest is dropped.
  if (written && o.offset < o.data.size()) return false;
  loop_.unwatch(o.fd.get());
  o.fd.reset();
  o.data.clear();
  return true;
}

void Execution::onExit() {
  int status = 0;
  rusage usage{};
  pid_t r = ::wait4(pid_, &status, WNOHANG, &usage);
  if (r != pid_) return;
  loop_.unwatch(pidfd_.get());
  childEnded(status, usage);
}

// The bootstrap says "started" on the result channel just before the program's code runs;
// a child that died silently without saying it ran nothing of the program.
bool Execution::childNeverStarted() const {
  return !channel_.started() && stdoutBuf_.totalBytes() == 0 && stderrBuf_.totalBytes() == 0;
}

void Execution::retryOnAnotherChild() {
  constexpr int kMaxRetries = 3;
  ++retries_;
  log::warn("execution " + request_.executionId + ": its pooled child died before starting it; retrying on another (" +
            std::to_string(retries_) + "/" + std::to_string(kMaxRetries) + ")");
  for (Stream* s : {&stdout_, &stderr_, &result_}) {
    if (s->open) loop_.unwatch(s->fd.get());
    *s = {};
  }
  for (Outgoing* o : {&stdin_, &requestPipe_}) {
    if (o->fd) loop_.unwatch(o->fd.get());
    *o = {};
  }
  for (auto* t : {&timeoutTimer_, &drainTimer_, &sampleTimer_}) {
    if (*t) loop_.cancelTimer(**t);
    t->reset();
  }
  pid_ = samplePid_ = -1;
  pidfd_.reset();
  pooledId_ = 0;
  channel_ = ResultChannel();
  report_.reset();
  events_ = json::array();
  blocked_ = false;
  samples_ = json::array();
  cpuAtStart_.reset();
  exited_ = false;
  waitStatus_ = 0;
  rusage_ = {};
  state_ = ExecState::Queued;
  retry_(std::move(cgroup_));
}

void Execution::childEnded(int status, const rusage& usage) {
  // (Not when the zygote died: its executions are answered, and the pool restarts it.)
  if (pool_ && retry_ && retries_ < 3 && stopReason_ == StopReason::None && state_ == ExecState::Running &&
      !zygoteDied_ && childNeverStarted()) {
    retryOnAnotherChild();
    return;
  }
  exited_ = true;
  exitedAt_ = std::chrono::steady_clock::now();
  waitStatus_ = status;
  rusage_ = usage;
  // The pid namespace's init is gone, so the kernel has killed the rest; without a pid
  // namespace (degraded) the process group and the cgroup are killed explicitly.
  killSandbox();
  if (timeoutTimer_) {
    loop_.cancelTimer(*timeoutTimer_);
    timeoutTimer_.reset();
  }
  // Output still in the pipes is read before the result is built, but a stray process
  // holding a pipe open must not hold the answer back.
  drainTimer_ = loop_.addTimer(kDrainGrace, [this] {
    drainTimer_.reset();
    guarded([this] { finish(); });
  });
  maybeFinish();
}

void Execution::maybeFinish() {
  // Answered once the kernel says the sandbox ended (wait4 here, or the zygote's): exit
  // code, signal and usage are its facts, never the report's.
  if (stdout_.open || stderr_.open || result_.open) return;
  if (exited_) finish();
}

void Execution::stop(StopReason reason) {
  if (state_ == ExecState::Finished) return;
  if (stopReason_ == StopReason::None) stopReason_ = reason;
  if (state_ == ExecState::Queued) {
    if (ticket_) pool_->cancelClaim(*ticket_);
    ticket_.reset();
    finish();
    return;
  }
  killSandbox();
}

void Execution::killSandbox() {
  if (session_) {
    // A session's run is interrupted (KeyboardInterrupt), so its state may survive;
    // the session kills its sandbox if the run does not stop.
    if (state_ == ExecState::Running && !exited_) session_->interrupt();
    return;
  }
  if (pid_ <= 0) return;
  // One-shot: the sandbox's init. Pooled: the zygote's child above it, whose death takes
  // the sandbox's init with it (PR_SET_PDEATHSIG).
  if (!exited_ && pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  // The child called setsid(), so its process group is its own.
  if (!ctx_.isolation.namespaces.pid) ::kill(-pid_, SIGKILL);
  cgroup_.killAll();
}

void Execution::finish() {
  if (state_ == ExecState::Finished) return;
  state_ = ExecState::Finished;
  if (drainTimer_) loop_.cancelTimer(*drainTimer_);
  if (timeoutTimer_) loop_.cancelTimer(*timeoutTimer_);
  if (sampleTimer_) loop_.cancelTimer(*sampleTimer_);
  drainTimer_.reset();
  timeoutTimer_.reset();
  sampleTimer_.reset();
  for (Stream* s : {&stdout_, &stderr_, &result_}) {
    if (s->open) {
      loop_.unwatch(s->fd.get());
      s->fd.reset();
      s->open = false;
    }
  }
  for (Outgoing* o : {&stdin_, &requestPipe_}) {
    if (o->fd) {
      loop_.unwatch(o->fd.get());
      o->fd.reset();
    }
  }
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
  if (state_ == ExecState::Queued || startedAt_ == std::chrono::steady_clock::time_point{}) return 0;
  auto end = exited_ ? exitedAt_ : std::chrono::steady_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(end - startedAt_).count();
}

json Execution::usageSoFar() const { return usageDocument(elapsedMs(), kernelUsage(rusage_, cgroup_.usage())); }

RunOutcome Execution::takeOutcome() {
  RunOutcome o;
  o.executionId = request_.executionId;
  o.limits = request_.limits;
  o.exited = exited_;
  o.waitStatus = waitStatus_;
  o.wallMs = elapsedMs();
  o.usage = kernelUsage(rusage_, cgroup_.usage());
  o.memoryKilled = memoryKilled_;
  o.stopReason = stopReason_;
  o.internalError = internalError_;
  o.zygoteDied = zygoteDied_;
  o.inSession = session_ != nullptr;
  o.sessionId = request_.session;
  o.sessionAlive = sessionAlive_;
  o.stdoutText = stdoutBuf_.text();
  o.stderrText = stderrBuf_.text();
  o.stdoutTruncated = stdoutBuf_.truncated();
  o.stderrTruncated = stderrBuf_.truncated();
  // Moved, not copied: returned files may weigh tens of MiB.
  o.report = report_ ? std::move(*report_) : json(nullptr);
  report_.reset();
  o.channelProblem = channel_.problem();
  o.events = std::exchange(events_, json::array());
  o.blocked = blocked_;
  o.samples = std::exchange(samples_, json::array());
  o.activity = !request_.internal && ctx_.config.profiles.at(request_.profile).activity;
  return o;
}

}  // namespace pycell::exec
