#include "pycell/exec/session.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pycell/error.h"
#include "pycell/process/log.h"
#include "pycell/process/proc_stat.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/rlimits.h"

namespace pycell::exec {

namespace {
// How long a run has to end after its KeyboardInterrupt before the session is killed.
// After SIGINT, the program has this long to stop (the bootstrap says "stopped" when its
// code ends on KeyboardInterrupt), then the bootstrap this long to send the run's report.
constexpr auto kInterruptGrace = std::chrono::milliseconds(2000);
constexpr auto kReportGrace = std::chrono::seconds(10);
// How long an interpreter may take to say it is ready (a zygote child is ready in
// milliseconds; a sandbox of its own imports the bootstrap first).
constexpr auto kStartTimeout = std::chrono::seconds(30);
// What an idle session may write (a thread the program left running) before it is ended:
// everything is read and dropped, so this bounds what the server spends on it.
constexpr size_t kIdleByteLimit = 16u << 20;
constexpr size_t kStderrKept = 4096;
enum Which { kStdout, kStderr, kResult };

int64_t toMs(const timeval& tv) { return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000; }
}  // namespace

const char* sessionStateName(Session::State s) {
  switch (s) {
    case Session::State::Starting: return "starting";
    case Session::State::Idle: return "idle";
    case Session::State::Busy: return "busy";
    case Session::State::Ended: break;
  }
  return "ended";
}

Session::Session(EventLoop& loop, const sandbox::SandboxContext& ctx, SessionSettings settings, uint64_t serial)
    : loop_(loop), ctx_(ctx), settings_(std::move(settings)), serial_(serial) {}

Session::~Session() {
  if (state_ != State::Ended) {
    ended_ = nullptr;
    ready_ = nullptr;
    end("the server is stopping");
  }
  for (Pipe* p : {&stdout_, &stderr_, &result_})
    if (p->open) loop_.unwatch(p->fd.get());
  if (outWatched_) loop_.unwatch(proc_.requestW.get());
  if (proc_.pidfd && !pool_) loop_.unwatch(proc_.pidfd.get());
  for (auto* t : {&idleTimer_, &graceTimer_, &startTimer_, &resendTimer_})
    if (*t) loop_.cancelTimer(**t);
  if (pool_ && pooledId_) pool_->forgetExit(pooledId_);
  if (!pool_ && proc_.pidfd) ::waitpid(proc_.pid, nullptr, 0);  // killed by end(): prompt
  removeHostWorkDir(proc_.hostWorkDir);
}

Status Session::startOwn() {
  const Profile& profile = ctx_.config.profiles.at(settings_.profile);
  auto proc = spawnBootstrap(ctx_, {.profile = &profile,
                                    .limits = settings_.limits,
                                    .network = settings_.network,
                                    .cgroupName = "s" + std::to_string(serial_),
                                    .sessionCpuMs = profile.sessionCpuMs});
  if (!proc) return std::unexpected(proc.error());
  proc_ = std::move(*proc);
  (void)loop_.watch(proc_.pidfd.get(), EPOLLIN, [this](uint32_t) { guarded([this] { onOwnExit(); }); });
  begin();
  return {};
}

void Session::startPooled(pool::Pool& pool, pool::PooledChild child) {
  pool_ = &pool;
  pooledId_ = child.id;
  proc_ = std::move(static_cast<sandbox::SandboxProcess&>(child));
  if (auto st = proc_.cgroup.setLimits(settings_.limits.memoryMb << 20, settings_.limits.maxProcesses); !st)
    log::warn("cgroup limits for session " + settings_.id + ": " + st.error().message());
  pool_->onExit(pooledId_, [this](pool::ExitInfo info) {
    guarded([&] {
      pooledId_ = 0;
      exited(info.status, info.usage);
    });
  });
  begin();
}

// Both kinds: the header line that turns the bootstrap into a session loop, then wait for
// its "ready" line.
void Session::begin() {
  proc_.stdinW.reset();  // each request carries its own stdin
  stdout_ = {std::move(proc_.stdoutR), true};
  stderr_ = {std::move(proc_.stderrR), true};
  result_ = {std::move(proc_.resultR), true};
  watchInput(stdout_, kStdout);
  watchInput(stderr_, kStderr);
  watchInput(result_, kResult);
  (void)setNonBlocking(proc_.requestW.get());
  // A pooled child got the profile's limits: the session's may only be tighter.
  json rlimits = sandbox::rlimitRows(sandbox::planRlimits(
      settings_.limits, {.memoryByRlimit = !ctx_.isolation.cgroup.memory,
                         .processesByRlimit = true,
                         .sessionCpuMs = ctx_.config.profiles.at(settings_.profile).sessionCpuMs}));
  std::string token = ResultChannel::newToken();
  channel_.expect(token);  // for the ready line
  json header = {{"session", {{"id", settings_.id}, {"token", token}, {"rlimits", rlimits}}}};
  outgoing_ = header.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  pumpRequests();
  startTimer_ = loop_.addTimer(kStartTimeout, [this] {
    startTimer_.reset();
    guarded([this] { terminate("the session's interpreter did not become ready in time"); });
  });
}

void Session::watchInput(Pipe& pipe, int which) {
  (void)setNonBlocking(pipe.fd.get());
  (void)loop_.watch(pipe.fd.get(), EPOLLIN, [this, &pipe, which](uint32_t) { guarded([&] { readPipe(pipe, which); }); });
}

// At most 16 reads a call: a writer that never pauses cannot hold the event loop here.
void Session::readPipe(Pipe& pipe, int which) {
  char buf[65536];
  for (int reads = 0; pipe.open && reads < 16 && state_ != State::Ended; ++reads) {
    ssize_t n = ::read(pipe.fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      loop_.unwatch(pipe.fd.get());
      pipe.fd.reset();
      pipe.open = false;
      if (which == kResult) channel_.close(*this);
      return;
    }
    std::string_view chunk(buf, static_cast<size_t>(n));
    if (which == kResult) {
      bool current = current_ != nullptr || state_ == State::Starting;
      channel_.feed(chunk, *this);
      if (!current) takeIdleBytes(chunk.size());
      if (current_ && !channel_.problem().empty()) terminate(channel_.problem());
      continue;
    }
    if (current_) {
      current_->runOutput(which == kStdout ? "stdout" : "stderr", chunk);
    } else if (which == kStderr && state_ == State::Starting && stderrHead_.size() < kStderrKept) {
      stderrHead_.append(chunk.substr(0, kStderrKept - stderrHead_.size()));
    } else {
      takeIdleBytes(chunk.size());  // output between runs belongs to no run: dropped
    }
  }
}

void Session::takeIdleBytes(size_t n) {
  idleBytes_ += n;
  if (idleBytes_ > kIdleByteLimit && state_ != State::Ended)
    terminate("the session's interpreter wrote more than " + std::to_string(kIdleByteLimit >> 20) +
              " MiB while no run was in progress");
}

void Session::channelReady() {
  if (state_ != State::Starting) return;
  channel_.idle();
  if (startTimer_) loop_.cancelTimer(*startTimer_);
  startTimer_.reset();
  // The interpreter's set-up is not any run's: runs are charged from here on.
  if (auto stat = process::readProcStat(proc_.pid)) {
    lastCpuUserMs_ = stat->userMs;
    lastCpuSysMs_ = stat->sysMs;
  }
  setState(State::Idle);
  if (ready_) std::exchange(ready_, nullptr)(Status{});
}

void Session::channelStarted() {
  if (!current_) return;
  runStarted_ = true;
  if (interruptWanted_) sendInterrupt();
}

void Session::channelStopped() {
  // Once per run: a program that forges "stopped" lines cannot keep extending its grace.
  if (!current_ || !graceTimer_ || reportGraceGiven_) return;
  reportGraceGiven_ = true;
  loop_.cancelTimer(*graceTimer_);
  graceTimer_ = loop_.addTimer(kReportGrace, [this] {
    graceTimer_.reset();
    guarded([this] { terminate("the run stopped on KeyboardInterrupt but sent no report"); });
  });
}

void Session::channelEvent(json event) {
  if (current_) current_->runEvent(std::move(event));
}

// The kernel's account of the run: the interpreter's CPU since the last run ended (its own
// and its reaped children's), and its peak memory (the cgroup's, where there is one).
rusage Session::runUsage() {
  rusage usage{};
  auto stat = process::readProcStat(proc_.pid, /*withPeak=*/true);
  if (!stat) return usage;
  usage.ru_utime = pool::timevalFromMs(std::max<int64_t>(0, stat->userMs - lastCpuUserMs_));
  usage.ru_stime = pool::timevalFromMs(std::max<int64_t>(0, stat->sysMs - lastCpuSysMs_));
  usage.ru_maxrss = stat->peakRssKb;
  lastCpuUserMs_ = stat->userMs;
  lastCpuSysMs_ = stat->sysMs;
  return usage;
}

void Session::channelReport(json report) {
  if (!current_) return;
  // Everything the run wrote before its result is in the pipes by now.
  drainOutput();
  // The interpreter lives on: the run's exit code is its SystemExit, as the session reports
  // it; CPU and memory are the kernel's (read from /proc).
  int code = report.contains("exitCode") && report["exitCode"].is_number_integer() ? report["exitCode"].get<int>() : 0;
  RunEnd end{.waitStatus = (code & 0xff) << 8, .usage = runUsage(), .memoryKilled = false, .zygoteDied = false, .sessionAlive = true};
  current_->runReport(std::move(report));
  channel_.idle();
  idleBytes_ = 0;
  for (auto* t : {&graceTimer_, &resendTimer_})
    if (*t) loop_.cancelTimer(**t);
  graceTimer_.reset();
  resendTimer_.reset();
  setState(State::Idle);
  endRun(end);
  if (state_ == State::Idle && free_) free_();
}

void Session::endRun(const RunEnd& end) {
  if (RunEvents* events = std::exchange(current_, nullptr)) {
    events->runExited(end);
    events->runDrained();
  }
}

// A run in the session's interpreter: stopping it interrupts the program; the session
// outlives it.
namespace {
class SessionRun final : public Run {
 public:
  explicit SessionRun(Session& session) : session_(session), pid_(session.pid()) {}
  void stop() override { session_.interrupt(); }
  void stopNow() override { session_.terminate("the server is stopping"); }  // the loop has stopped: ends at once
  void release() override {}
  [[nodiscard]] pid_t samplePid() const override { return pid_; }
  [[nodiscard]] bool inSession() const override { return true; }

 private:
  Session& session_;
  pid_t pid_;
};
}  // namespace

template <class F>
void Session::guarded(F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    log::error("session " + settings_.id + ": " + e.what());
    try {
      terminate(std::string("the server could not process the session's output: ") + e.what());
    } catch (...) {
    }
  } catch (...) {
    log::error("session " + settings_.id + ": an unknown error");
  }
}

void Session::drainOutput() {
  for (auto [pipe, which] : {std::pair{&stdout_, kStdout}, {&stderr_, kStderr}}) readPipe(*pipe, which);
}

std::unique_ptr<Run> Session::run(RunEvents& events, const std::string& requestLine, const std::string& token) {
  current_ = &events;
  channel_.expect(token);
  runStarted_ = interruptWanted_ = reportGraceGiven_ = false;
  ++runs_;
  lastUsed_ = std::chrono::steady_clock::now();
  setState(State::Busy);
  outgoing_ += requestLine;
  outgoing_ += '\n';
  pumpRequests();
  return std::make_unique<SessionRun>(*this);
}

void Session::pumpRequests() {
  if (!proc_.requestW) return;
  auto written = writeSome(proc_.requestW.get(), outgoing_);
  // An error: the interpreter is gone, and its exit is on its way.
  outgoing_.erase(0, written ? *written : outgoing_.size());
  bool pending = !outgoing_.empty();
  if (pending && !outWatched_) {
    outWatched_ = loop_.watch(proc_.requestW.get(), EPOLLOUT, [this](uint32_t) { guarded([this] { pumpRequests(); }); }).has_value();
  } else if (!pending && outWatched_) {
    loop_.unwatch(proc_.requestW.get());
    outWatched_ = false;
  }
}

void Session::interrupt() {
  if (state_ != State::Busy || graceTimer_) return;
  if (runStarted_) sendInterrupt();
  else interruptWanted_ = true;  // sent when the run's code starts
  graceTimer_ = loop_.addTimer(kInterruptGrace, [this] {
    graceTimer_.reset();
    guarded([this] { terminate("the run did not stop after KeyboardInterrupt"); });
  });
}

void Session::sendInterrupt() {
  interruptWanted_ = false;
  ::syscall(SYS_pidfd_send_signal, proc_.pidfd.get(), SIGINT, nullptr, 0);
  // Node stops synchronous code on SIGINT only once the script runs (breakOnSigint): one that
  // lands between the bootstrap's "started" line and that point finds only a handler the
  // busy script never lets run. A JavaScript run is signalled again every 100 ms until it
  // says it stopped (or the grace ends); the bootstrap ignores the extra ones.
  if (ctx_.config.profiles.at(settings_.profile).language != Language::JavaScript) return;
  resendTimer_ = loop_.addTimer(std::chrono::milliseconds(100), [this] {
    resendTimer_.reset();
    if (state_ == State::Busy && graceTimer_ && !reportGraceGiven_ && proc_.pidfd) sendInterrupt();
  });
}

void Session::terminate(const std::string& why) {
  if (state_ == State::Ended) return;
  if (endReason_.empty()) endReason_ = why;
  killSandbox(proc_.pidfd.get(), proc_.pid, ctx_.isolation.namespaces.pid, proc_.cgroup);
  // The exit report (pidfd or zygote) completes the ending; without a loop to carry it
  // (shutdown), or without a process to report (it never started), end now.
  if (!loop_.running() || (!proc_.pidfd && !pooledId_)) end(why);
}

void Session::onOwnExit() {
  int status = 0;
  rusage usage{};
  if (::wait4(proc_.pid, &status, WNOHANG, &usage) != proc_.pid) return;
  loop_.unwatch(proc_.pidfd.get());
  proc_.pidfd.reset();
  exited(status, usage);
}

void Session::exited(int status, const rusage& usage) {
  if (state_ == State::Ended) return;
  drainOutput();
  readPipe(result_, kResult);  // a result written just before the end still counts
  if (state_ == State::Ended) return;
  bool oom = proc_.cgroup.usage().oomKills > 0;
  std::string why = endReason_;
  if (why.empty()) {
    if (oom) why = "the session exceeded its memory limit";
    else if (WIFSIGNALED(status)) why = std::string("the session's interpreter died by signal ") + strsignal(WTERMSIG(status));
    else why = "the session's interpreter exited with code " + std::to_string(WEXITSTATUS(status));
    if (state_ == State::Starting && !stderrHead_.empty()) why += ": " + stderrHead_;
  }
  endReason_ = why;
  if (current_) {
    RunEnd end{.waitStatus = status, .usage = usage, .memoryKilled = oom, .zygoteDied = false, .sessionAlive = false};
    // The kernel's lifetime totals: the run's share is what came after the last run ended.
    auto share = [](const timeval& tv, int64_t before) {
      return pool::timevalFromMs(std::max<int64_t>(0, toMs(tv) - before));
    };
    end.usage.ru_utime = share(usage.ru_utime, lastCpuUserMs_);
    end.usage.ru_stime = share(usage.ru_stime, lastCpuSysMs_);
    endRun(end);
  }
  end(why);
}

void Session::end(const std::string& why) {
  if (state_ == State::Ended) return;
  if (endReason_.empty()) endReason_ = why;
  if (proc_.pidfd) ::syscall(SYS_pidfd_send_signal, proc_.pidfd.get(), SIGKILL, nullptr, 0);
  proc_.cgroup.killAll();
  setState(State::Ended);
  for (auto* t : {&idleTimer_, &graceTimer_, &startTimer_}) {
    if (*t) loop_.cancelTimer(**t);
    t->reset();
  }
  endRun({.waitStatus = SIGKILL, .usage = {}, .memoryKilled = false, .zygoteDied = false, .sessionAlive = false});
  if (ready_) std::exchange(ready_, nullptr)(std::unexpected(Error{endReason_}));
  if (ended_) std::exchange(ended_, nullptr)();
}

void Session::setState(State s) {
  state_ = s;
  if (idleTimer_) loop_.cancelTimer(*idleTimer_);
  idleTimer_.reset();
  if (s == State::Idle) armIdleTimer();
}

void Session::armIdleTimer() {
  const Profile& profile = ctx_.config.profiles.at(settings_.profile);
  idleTimer_ = loop_.addTimer(std::chrono::milliseconds(profile.sessionIdleMs), [this, ms = profile.sessionIdleMs] {
    idleTimer_.reset();
    guarded([&] { terminate("the session was idle for " + std::to_string(ms / 1000) + " s and expired"); });
  });
}

json Session::toJson() const {
  auto now = std::chrono::steady_clock::now();
  auto ms = [&](auto since) { return std::chrono::duration_cast<std::chrono::milliseconds>(now - since).count(); };
  return {{"session", settings_.id},
          {"profile", settings_.profile},
          {"state", closing() && state_ != State::Ended ? "closing" : sessionStateName(state_)},
          {"executions", runs_},
          {"ageMs", ms(createdAt_)},
          {"idleMs", state_ == State::Idle ? ms(lastUsed_) : 0},
          {"pooled", pool_ != nullptr},
          {"limits", limitsToJson(settings_.limits)}};
}

}  // namespace pycell::exec
