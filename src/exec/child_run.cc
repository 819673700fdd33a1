#include "pycell/exec/child_run.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "pycell/process/log.h"

namespace pycell::exec {

namespace {
// After the sandbox's init has ended, how long a stray process holding a pipe open may
// hold the answer back.
constexpr auto kDrainGrace = std::chrono::milliseconds(2000);
}  // namespace

void killSandbox(int pidfd, pid_t pid, bool pidNamespace, const sandbox::ExecutionCgroup& cgroup) {
  if (pidfd >= 0) ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  // The child called setsid(), so its process group is its own.
  if (!pidNamespace && pid > 0) ::kill(-pid, SIGKILL);
  cgroup.killAll();
}

ChildRun::ChildRun(EventLoop& loop, RunEvents& events, bool pidNamespace)
    : loop_(loop), events_(events), pidNamespace_(pidNamespace) {}

ChildRun::~ChildRun() { release(); }

template <class F>
void ChildRun::guarded(F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    events_.runFailed(e.what());
  } catch (...) {
    events_.runFailed("an unknown error");
  }
}

void ChildRun::begin(SandboxProcess& proc, std::string requestLine, std::string stdinData, const std::string& token) {
  pid_ = proc.pid;
  pidfd_ = std::move(proc.pidfd);
  cgroup_ = std::move(proc.cgroup);
  channel_.expect(token);
  stdin_ = {std::move(proc.stdinW), std::move(stdinData), 0};
  request_ = {std::move(proc.requestW), std::move(requestLine) + '\n', 0};
  if (probeRequest_) requestProbe_.reset(::fcntl(request_.fd.get(), F_DUPFD_CLOEXEC, 0));
  stdout_ = {std::move(proc.stdoutR), true};
  stderr_ = {std::move(proc.stderrR), true};
  result_ = {std::move(proc.resultR), true};
  watch(stdout_, "stdout");
  watch(stderr_, "stderr");
  watch(result_, "result");
  send(stdin_);
  send(request_);
}

void ChildRun::watch(Incoming& in, std::string_view name) {
  (void)setNonBlocking(in.fd.get());
  (void)loop_.watch(in.fd.get(), EPOLLIN, [this, &in, name](uint32_t) {
    guarded([&] {
      if (read(in, name)) maybeDrained();
    });
  });
}

// At most `maxReads` reads a call: a writer that never pauses cannot keep the event loop
// here (the descriptor is level-triggered, so the loop comes back for the rest).
bool ChildRun::read(Incoming& in, std::string_view name, size_t maxReads) {
  char buf[65536];
  bool isResult = &in == &result_;
  for (size_t reads = 0; in.open && reads < maxReads; ++reads) {
    ssize_t n = ::read(in.fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    if (n <= 0) {
      loop_.unwatch(in.fd.get());
      in.fd.reset();
      in.open = false;
      if (isResult) channel_.close(*this);
      return true;
    }
    std::string_view chunk(buf, static_cast<size_t>(n));
    if (isResult) channel_.feed(chunk, *this);
    else events_.runOutput(name, chunk);
  }
  return !in.open;
}

void ChildRun::send(Outgoing& out) {
  if (out.data.empty()) {
    out.fd.reset();  // EOF right away
    return;
  }
  (void)setNonBlocking(out.fd.get());
  // Written now as far as the pipe takes it (a request usually fits whole); the rest
  // whenever the program makes room.
  if (pump(out)) return;
  (void)loop_.watch(out.fd.get(), EPOLLOUT, [this, &out](uint32_t) { guarded([&] { pump(out); }); });
}

// Writes what the pipe accepts; true when done (all written, or the reader went away),
// in which case the descriptor is closed and unwatched.
bool ChildRun::pump(Outgoing& out) {
  auto written = writeSome(out.fd.get(), std::string_view(out.data).substr(out.offset));
  if (written) {
    out.offset += *written;
    out.sent += *written;
  }
  // On EPIPE (the program closed its end, or died) the rest is dropped.
  if (written && out.offset < out.data.size()) return false;
  loop_.unwatch(out.fd.get());
  out.fd.reset();
  out.data.clear();
  return true;
}

void ChildRun::exited(const RunEnd& end) {
  exited_ = true;
  // The pid namespace's init is gone, so the kernel has killed the rest; without a pid
  // namespace (degraded) the process group and the cgroup are killed explicitly.
  if (!pidNamespace_) killSandbox(-1, pid_, pidNamespace_, cgroup_);
  events_.runExited(end);
  if (drained_) return;  // the execution may have ended on this (a retry)
  // Output still in the pipes is read before the result is built, but a stray process
  // holding a pipe open must not hold the answer back.
  drainTimer_ = loop_.addTimer(kDrainGrace, [this] {
    drainTimer_.reset();
    guarded([this] {
      drained_ = true;
      events_.runDrained();
    });
  });
  maybeDrained();
}

// Answered once the kernel says the sandbox ended (wait4 here, or the zygote's report):
// exit code, signal and usage are its facts, never the report's.
void ChildRun::maybeDrained() {
  if (stdout_.open || stderr_.open || result_.open || !exited_ || drained_) return;
  drained_ = true;
  events_.runDrained();
}

void ChildRun::readAll() {
  constexpr size_t kAll = SIZE_MAX;
  read(stdout_, "stdout", kAll);
  read(stderr_, "stderr", kAll);
  read(result_, "result", kAll);
}

bool ChildRun::requestReceived() const {
  int unread = 0;
  if (!requestProbe_ || ::ioctl(requestProbe_.get(), FIONREAD, &unread) != 0) return true;
  return request_.sent > static_cast<size_t>(unread);
}

sandbox::CgroupUsage ChildRun::cgroupUsage() const {
  sandbox::CgroupUsage u = cgroup_.usage();
  if (u.cpu) {
    u.cpu->userUs = std::max<int64_t>(0, u.cpu->userUs - cpuAtStart_.userUs);
    u.cpu->sysUs = std::max<int64_t>(0, u.cpu->sysUs - cpuAtStart_.sysUs);
  }
  return u;
}

std::optional<int64_t> ChildRun::cgroupCpuUs() const {
  auto total = cgroup_.cpuTotalUs();
  if (!total) return std::nullopt;
  return std::max<int64_t>(0, *total - cpuAtStart_.totalUs());
}

void ChildRun::stop() {
  if (pid_ <= 0) return;
  // Own sandbox: its init. Pooled: the zygote's child above it, whose death takes the
  // sandbox's init with it (PR_SET_PDEATHSIG).
  killSandbox(exited_ ? -1 : pidfd_.get(), pid_, pidNamespace_, cgroup_);
}

void ChildRun::release() {
  drained_ = true;
  if (drainTimer_) loop_.cancelTimer(*drainTimer_);
  drainTimer_.reset();
  for (Incoming* in : {&stdout_, &stderr_, &result_}) {
    if (in->open) loop_.unwatch(in->fd.get());
    in->fd.reset();
    in->open = false;
  }
  for (Outgoing* out : {&stdin_, &request_}) {
    if (out->fd) loop_.unwatch(out->fd.get());
    out->fd.reset();
  }
  requestProbe_.reset();
}

Result<std::unique_ptr<OwnSandboxRun>> OwnSandboxRun::start(EventLoop& loop, RunEvents& events,
                                                            const sandbox::SandboxContext& ctx,
                                                            const SpawnSettings& settings, std::string requestLine,
                                                            std::string stdinData, const std::string& token) {
  auto proc = spawnBootstrap(ctx, settings);
  if (!proc) return std::unexpected(proc.error());
  return adopt(loop, events, ctx, std::move(*proc), {}, std::move(requestLine), std::move(stdinData), token);
}

std::unique_ptr<OwnSandboxRun> OwnSandboxRun::adopt(EventLoop& loop, RunEvents& events,
                                                    const sandbox::SandboxContext& ctx, SandboxProcess proc,
                                                    sandbox::CgroupCpu cpuWhenReady, std::string requestLine,
                                                    std::string stdinData, const std::string& token) {
  std::unique_ptr<OwnSandboxRun> run(new OwnSandboxRun(loop, events, ctx.isolation.namespaces.pid));
  run->hostWorkDir_ = std::move(proc.hostWorkDir);
  run->net_ = std::move(proc.net);
  run->cpuAtStart_ = cpuWhenReady;
  run->begin(proc, std::move(requestLine), std::move(stdinData), token);
  OwnSandboxRun* self = run.get();
  (void)loop.watch(self->pidfd_.get(), EPOLLIN, [self](uint32_t) { self->guarded([self] { self->onExit(); }); });
  return run;
}

OwnSandboxRun::~OwnSandboxRun() {
  if (pidfd_) loop_.unwatch(pidfd_.get());
  if (pid_ > 0 && !exited_) {
    stop();
    ::waitpid(pid_, nullptr, 0);  // killed: reaps promptly
  }
  removeHostWorkDir(hostWorkDir_);
}

void OwnSandboxRun::onExit() {
  RunEnd end;
  if (::wait4(pid_, &end.waitStatus, WNOHANG, &end.usage) != pid_) return;
  loop_.unwatch(pidfd_.get());
  exited(end);
}

void OwnSandboxRun::stopNow() {
  if (!exited_) {
    stop();
    RunEnd end;
    pid_t r;
    do {
      r = ::wait4(pid_, &end.waitStatus, 0, &end.usage);
    } while (r < 0 && errno == EINTR);
    exited_ = true;
    if (r == pid_) events_.runExited(end);
  }
  readAll();
}

PooledChildRun::PooledChildRun(EventLoop& loop, RunEvents& events, bool pidNamespace, pool::Pool& pool,
                               pool::PooledChild child, std::string requestLine, std::string stdinData,
                               const std::string& token)
    : ChildRun(loop, events, pidNamespace), pool_(pool), childId_(child.id) {
  probeRequest_ = true;  // the bootstrap reads its request as one line
  pool_.onExit(childId_, [this](pool::ExitInfo info) {
    guarded([&] {
      RunEnd end;
      end.waitStatus = info.status;
      end.usage = info.usage;
      end.zygoteDied = info.zygoteDied;
      exited(end);
    });
  });
  // The child's past (set-up, warm-up) is not this run's: its pool read it when it was ready.
  cpuAtStart_ = child.cpuWhenReady;
  begin(child, std::move(requestLine), std::move(stdinData), token);
}

PooledChildRun::~PooledChildRun() {
  if (!exited_) stop();
  pool_.forgetExit(childId_);
}

void PooledChildRun::stopNow() {
  if (!exited_) {
    stop();  // the zygote reaps it; its report will not come, the loop has stopped
    exited_ = true;
    RunEnd end;
    end.waitStatus = SIGKILL;
    events_.runExited(end);
  }
  readAll();
}

}  // namespace pycell::exec
