#include "pycell/pool/started_pool.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "pycell/exec/spawn.h"
#include "pycell/process/log.h"

namespace pycell::pool {

namespace {
constexpr int kMaxConsecutiveFailures = 5;  // then no more starts until a claim asks again
constexpr std::string_view kReady = "R\n";  // the bootstrap's word that it waits for its program
}  // namespace

StartedPool::StartedPool(EventLoop& loop, const sandbox::SandboxContext& ctx, const Profile& profile,
                         sandbox::CgroupReaper& reaper)
    : loop_(loop), ctx_(ctx), profile_(profile), reaper_(reaper) {}

StartedPool::~StartedPool() { shutdown(); }

void StartedPool::start() { refill(); }

bool StartedPool::fits(const Limits& want, bool network) const {
  const Limits& have = profile_.limits;
  const auto& cg = ctx_.isolation.cgroup;
  if (network || want.diskMb != have.diskMb) return false;  // its mounts are made
  // Node's heap limit and RLIMIT_AS are fixed at start; a memory cgroup can only lower what
  // the kernel allows, below the heap limit (which the kernel's then comes before).
  if (cg.memory ? want.memoryMb > have.memoryMb : want.memoryMb != have.memoryMb) return false;
  if (cg.pids ? want.maxProcesses > have.maxProcesses : want.maxProcesses != have.maxProcesses) return false;
  // RLIMIT_CPU is the profile's; a lower cpuMs is held by the cgroup's whole-run check.
  bool cpuByCgroup = cg.cpu;
  if (cpuByCgroup ? want.cpuMs > have.cpuMs : want.cpuMs != have.cpuMs) return false;
  return true;
}

std::optional<StartedSandbox> StartedPool::take() {
  auto it = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.ready; });
  if (it == slots_.end()) {
    refill();  // a claim after failures tries again
    return std::nullopt;
  }
  loop_.unwatch(it->proc.pidfd.get());
  loop_.unwatch(it->proc.resultR.get());
  StartedSandbox out{std::move(it->proc), it->cpuWhenReady};
  slots_.erase(it);
  ++served_;
  // Started at once: a start costs the server little (a clone and an exec); node's own
  // start-up runs in the sandbox, which the kernel schedules like any other process.
  refill();
  return out;
}

void StartedPool::refill() {
  if (shuttingDown_ || retryTimer_) return;
  if (consecutiveFailures_ >= kMaxConsecutiveFailures) consecutiveFailures_ = kMaxConsecutiveFailures - 1;
  auto starting = std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.ready; });
  while (static_cast<int>(slots_.size()) < profile_.pool.size && starting < std::max(1, profile_.pool.maxStarting)) {
    size_t before = slots_.size();
    startOne();
    if (slots_.size() == before) return;  // failed: a retry is scheduled
    ++starting;
  }
}

void StartedPool::startOne() {
  uint64_t id = ++serial_;
  auto proc = exec::spawnBootstrap(ctx_, {.profile = &profile_,
                                          .limits = profile_.limits,
                                          .network = false,
                                          .cgroupName = "j" + std::to_string(id),
                                          .sessionCpuMs = 0});
  if (!proc) {
    failed(proc.error().message());
    return;
  }
  ++started_;
  slots_.push_back(Slot{.id = id, .proc = std::move(*proc), .ready = false, .said = {}, .cpuWhenReady = {}});
  Slot& slot = slots_.back();
  (void)setNonBlocking(slot.proc.resultR.get());
  (void)loop_.watch(slot.proc.resultR.get(), EPOLLIN, [this, id](uint32_t) { onResult(id); });
  (void)loop_.watch(slot.proc.pidfd.get(), EPOLLIN, [this, id](uint32_t) { onExit(id); });
}

std::vector<StartedPool::Slot>::iterator StartedPool::find(uint64_t id) {
  return std::find_if(slots_.begin(), slots_.end(), [id](const Slot& s) { return s.id == id; });
}

// Reads no further than the ready word: what follows belongs to the run that claims it.
void StartedPool::onResult(uint64_t id) {
  auto it = find(id);
  if (it == slots_.end()) return;
  char buf[2];
  size_t want = kReady.size() - it->said.size();
  ssize_t n = ::read(it->proc.resultR.get(), buf, want);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    discard(it);
    failed("a JavaScript sandbox closed its result pipe before it was ready");
    return;
  }
  it->said.append(buf, static_cast<size_t>(n));
  if (kReady.substr(0, it->said.size()) != it->said) {
    discard(it);
    failed("a JavaScript sandbox wrote something else than its ready word");
    return;
  }
  if (it->said.size() < kReady.size()) return;
  loop_.unwatch(it->proc.resultR.get());
  it->ready = true;
  it->cpuWhenReady = it->proc.cgroup.cpu().value_or(sandbox::CgroupCpu{});
  consecutiveFailures_ = 0;
}

void StartedPool::onExit(uint64_t id) {
  auto it = find(id);
  if (it == slots_.end()) return;
  int status = 0;
  if (::waitpid(it->proc.pid, &status, WNOHANG) != it->proc.pid) return;
  it->proc.pidfd = UniqueFd();  // reaped: nothing to kill
  loop_.unwatch(it->proc.resultR.get());
  std::string why = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                        : "exited with status " + std::to_string(WEXITSTATUS(status));
  bool wasReady = it->ready;
  discard(it);
  if (wasReady) {
    log::warn("profile " + profile_.name + ": a ready JavaScript sandbox ended (" + why + ")");
    refill();
  } else {
    failed("a JavaScript sandbox ended while starting (" + why + ")");
  }
}

void StartedPool::discard(std::vector<Slot>::iterator it) {
  auto& proc = it->proc;
  if (proc.pidfd) {
    loop_.unwatch(proc.pidfd.get());
    ::syscall(SYS_pidfd_send_signal, proc.pidfd.get(), SIGKILL, nullptr, 0);
    while (::waitpid(proc.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (proc.resultR) loop_.unwatch(proc.resultR.get());
  exec::removeHostWorkDir(proc.hostWorkDir);
  reaper_.add(std::move(proc.cgroup));
  slots_.erase(it);
}

// Starts again after a pause that doubles with each failure in a row (100 ms to 1.6 s);
// after five, only a claim starts one again.
void StartedPool::failed(const std::string& why) {
  lastError_ = why;
  ++consecutiveFailures_;
  log::warn("profile " + profile_.name + ": " + why);
  if (shuttingDown_ || consecutiveFailures_ >= kMaxConsecutiveFailures || retryTimer_) return;
  retryTimer_ = loop_.addTimer(std::chrono::milliseconds(100 << (consecutiveFailures_ - 1)), [this] {
    retryTimer_.reset();
    refill();
  });
}

nlohmann::json StartedPool::status() const {
  auto ready = std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.ready; });
  return {{"profile", profile_.name},
          {"kind", "started"},
          {"ready", ready},
          {"target", profile_.pool.size},
          {"starting", static_cast<int64_t>(slots_.size()) - ready},
          {"claimed", 0},
          {"waiting", 0},
          {"zygotePid", nullptr},
          {"zygoteReady", false},
          {"forksServed", started_},
          {"zygoteStarts", 0},
          {"preloaded", nlohmann::json::array()},
          {"preloadFailed", lastError_.empty() ? nlohmann::json::object() : nlohmann::json{{"start", lastError_}}}};
}

void StartedPool::shutdown() {
  shuttingDown_ = true;
  if (retryTimer_) loop_.cancelTimer(*retryTimer_);
  retryTimer_.reset();
  while (!slots_.empty()) discard(slots_.begin());
}

}  // namespace pycell::pool
