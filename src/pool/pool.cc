#include "pycell/pool/pool.h"

#include "pycell/protocol/untrusted_json.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "pycell/child_so.h"
#include "pycell/log.h"
#include "pycell/sandbox/enter.h"
#include "pycell/sandbox/fd_passing.h"
#include "pycell/zygote_py.h"

namespace pycell::pool {

namespace {

constexpr const char* kZygotePath = "/.pycell/zygote.py";
constexpr const char* kLibraryPath = "/.pycell/libpycell_child.so";
constexpr int kMaxConsecutiveFailures = 5;
constexpr size_t kMaxMessage = 1 << 20;

std::string base64(const void* data, size_t size) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  for (size_t i = 0; i < size; i += 3) {
    uint32_t n = p[i] << 16 | (i + 1 < size ? p[i + 1] << 8 : 0) | (i + 2 < size ? p[i + 2] : 0);
    out += table[n >> 18 & 63];
    out += table[n >> 12 & 63];
    out += i + 1 < size ? table[n >> 6 & 63] : '=';
    out += i + 2 < size ? table[n & 63] : '=';
  }
  return out;
}

// The host pid behind a pidfd the zygote passed us (its own numbers are of its namespace).
pid_t pidOfPidfd(int pidfd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(pidfd));
  std::string key;
  while (in >> key) {
    if (key == "Pid:") {
      pid_t pid = -1;
      in >> pid;
      return pid;
    }
  }
  return -1;
}

Status sendMessage(int fd, const json& message, const std::vector<int>& fds) {
  std::string data = message.dump();
  if (sandbox::sendWithFds(fd, data.data(), data.size(), fds.data(), static_cast<int>(fds.size())) < 0)
    return std::unexpected(sysError("sendmsg(zygote)"));
  return {};
}

// One datagram and the fds that came with it; nullopt at EOF.
std::optional<std::pair<json, std::vector<UniqueFd>>> receiveMessage(int fd) {
  std::string data(kMaxMessage, '\0');
  int received[sandbox::kMaxPassedFds];
  int count = 0;
  bool truncated = false;
  ssize_t n = sandbox::receiveWithFds(fd, data.data(), data.size(), received, &count, &truncated);
  std::vector<UniqueFd> fds;
  for (int i = 0; i < count; ++i) fds.emplace_back(received[i]);
  if (n <= 0) return std::nullopt;
  data.resize(static_cast<size_t>(n));
  // The zygote runs inside the profile's sandbox: its messages are small, flat, and parsed
  // with the same limits as everything else a sandbox writes.
  json doc;
  bool refused = truncated || protocol::parseUntrustedInto(data, {.maxDepth = 8, .maxBytes = kMaxMessage, .maxValues = 4096}, doc);
  return std::make_pair(refused ? json(nullptr) : std::move(doc), std::move(fds));
}

}  // namespace

// One zygote process: its control socket, its log pipe, the forks it has under way.
class Zygote {
 public:
  Zygote(Pool& pool) : pool_(pool) {}
  ~Zygote() { stop(); }

  Status start();
  Status fork(uint64_t id);
  void stop();  // SIGKILL: its pid namespace takes every child along

  bool ready = false;
  bool retired = false;
  uint64_t forks = 0;
  std::set<uint64_t> live;  // children forked and not yet reported ended
  pid_t pid = -1;
  json imported = json::array();
  json failed = json::object();

 private:
  void onMessage();
  void onLog();
  void handle(const json& event, std::vector<UniqueFd> fds);
  void forked(uint64_t id, UniqueFd pidfd);

  Pool& pool_;
  UniqueFd pidfd_, control_, log_;
  std::map<uint64_t, PooledChild> pending_;  // asked to fork, not yet forked
  std::map<uint64_t, PooledChild> warming_;  // forked, isolating themselves
  std::string logLine_;
};

Status Zygote::start() {
  const auto& ctx = pool_.ctx_;
  const auto& profile = pool_.profile_;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return std::unexpected(sysError("socketpair"));
  UniqueFd ours(sv[0]), theirs(sv[1]);
  auto logPipe = makePipe();
  auto nullIn = makePipe();
  if (!logPipe || !nullIn) return std::unexpected(logPipe ? nullIn.error() : logPipe.error());
  nullIn->write.reset();

  sandbox::PlanInputs in = sandbox::planInputsFor(ctx, profile);
  in.seccomp = nullptr;  // the zygote must unshare; its children install the filter
  in.entry = kZygotePath;
  in.extraFiles.push_back({kZygotePath, std::string(kZygotePy)});
  in.extraFiles.push_back({kLibraryPath, std::string(reinterpret_cast<const char*>(kChildLibrary), sizeof kChildLibrary)});
  // The zygote runs only our code; its children set their own limits and seccomp.
  in.rlimits = std::vector<sandbox::RlimitSetting>{{RLIMIT_CORE, 0, 0}, {RLIMIT_NOFILE, 4096, 4096}};
  auto plan = sandbox::makePlan(in);
  sandbox::ChildFds fds{nullIn->read.get(), logPipe->write.get(), logPipe->write.get(), theirs.get(), logPipe->write.get()};
  auto child = sandbox::spawnSandbox(plan, fds, {});
  if (!child) return std::unexpected(child.error());
  pid = child->pid;
  pidfd_ = std::move(child->pidfd);
  control_ = std::move(ours);
  log_ = std::move(logPipe->read);
  (void)setNonBlocking(log_.get());
  auto& loop = pool_.loop_;
  (void)loop.watch(control_.get(), EPOLLIN, [this](uint32_t) { onMessage(); });
  (void)loop.watch(log_.get(), EPOLLIN, [this](uint32_t) { onLog(); });
  (void)loop.watch(pidfd_.get(), EPOLLIN, [this](uint32_t) { pool_.zygoteDied(this, "the zygote process exited"); });

  // What every child of this zygote applies to itself: the profile's limits (a claim may
  // only tighten them), the offline seccomp filter, the working directory's size.
  json rlimits = sandbox::rlimitRows(sandbox::planRlimits(
      profile.limits,
      {.memoryByRlimit = !ctx.isolation.cgroup.memory, .processesByRlimit = true, .sessionCpuMs = profile.sessionCpuMs}));
  const auto& bpf = ctx.seccompOffline.instructions;
  json binds = json::array();
  for (const auto& bind : in.binds)
    if (sandbox::onSandboxTmpfs(bind.path)) binds.push_back({{"path", bind.path}, {"writable", bind.writable}});
  json init = {{"binds", binds},{"preload", profile.preload},
               {"childWarmup", profile.childWarmup},
               {"uid", plan.insideUid},
               {"gid", plan.insideGid},
               {"diskMb", profile.limits.diskMb},
               {"rlimits", rlimits},
               {"seccomp", ctx.isolation.seccomp ? base64(bpf.data(), bpf.size() * sizeof(sock_filter)) : ""},
               {"shareNetwork", false},
               // Its hooks go in before a child is offered; each request brings the policy again.
               {"policy", ctx.policy(profile.name, false)}};
  return sendMessage(control_.get(), init, {});
}

Status Zygote::fork(uint64_t id) {
  auto in = makePipe(), out = makePipe(), err = makePipe(), req = makePipe(), res = makePipe();
  for (auto* p : {&in, &out, &err, &req, &res})
    if (!*p) return std::unexpected(p->error());
  PooledChild pending;
  pending.id = id;
  const auto& ctx = pool_.ctx_;
  const auto& limits = pool_.profile_.limits;
  if (ctx.isolation.cgroup.version != sandbox::CgroupVersion::None) {
    auto cg = sandbox::ExecutionCgroup::create(ctx.isolation.cgroup, "c" + std::to_string(id), limits.memoryMb << 20,
                                               limits.maxProcesses);
    if (!cg) return std::unexpected(cg.error());
    pending.cgroup = std::move(*cg);
  }
  auto st = sendMessage(control_.get(), {{"op", "fork"}, {"id", id}},
                        {in->read.get(), out->write.get(), err->write.get(), req->read.get(), res->write.get()});
  if (!st) return st;
  pending.stdinW = std::move(in->write);
  pending.stdoutR = std::move(out->read);
  pending.stderrR = std::move(err->read);
  pending.requestW = std::move(req->write);
  pending.resultR = std::move(res->read);
  pending_.emplace(id, std::move(pending));
  live.insert(id);
  ++forks;
  return {};
}

void Zygote::stop() {
  auto& loop = pool_.loop_;
  for (UniqueFd* fd : {&control_, &log_, &pidfd_})
    if (*fd) loop.unwatch(fd->get());
  if (pid > 0) {
    if (pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
  pending_.clear();
  for (auto& [id, child] : warming_) {
    loop.unwatch(child.resultR.get());
    pool_.reaper_.add(std::move(child.cgroup));
  }
  warming_.clear();
  control_.reset();
  log_.reset();
  pidfd_.reset();
}

void Zygote::onLog() {
  char buf[4096];
  ssize_t n;
  while ((n = ::read(log_.get(), buf, sizeof buf)) > 0) {
    logLine_.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = logLine_.find('\n')) != std::string::npos; logLine_.erase(0, nl + 1))
      log::warn("zygote[" + pool_.profile_.name + "]: " + logLine_.substr(0, nl));
  }
  if (n == 0) pool_.loop_.unwatch(log_.get()), log_.reset();
}

void Zygote::onMessage() {
  auto message = receiveMessage(control_.get());
  if (!message) {
    pool_.zygoteDied(this, "the zygote closed its control socket");
    return;
  }
  handle(message->first, std::move(message->second));
}

void Zygote::handle(const json& event, std::vector<UniqueFd> fds) {
  std::string kind = event.is_object() ? event.value("event", "") : "";
  if (kind == "ready") {
    ready = true;
    imported = event.value("imported", json::array());
    failed = event.value("failed", json::object());
    if (!failed.empty()) log::warn("zygote[" + pool_.profile_.name + "]: could not preload " + failed.dump());
    pool_.consecutiveFailures_ = 0;
    pool_.refill();
  } else if (kind == "forked" && fds.size() == 1) {
    forked(event.value("id", uint64_t{0}), std::move(fds[0]));
  } else if (kind == "exit") {
    uint64_t id = event.value("id", uint64_t{0});
    live.erase(id);
    pending_.erase(id);
    if (auto w = warming_.find(id); w != warming_.end()) {
      pool_.loop_.unwatch(w->second.resultR.get());
      pool_.reaper_.add(std::move(w->second.cgroup));
      warming_.erase(w);
    }
    ExitInfo info;
    info.status = event.value("status", 0);
    info.usage.ru_utime = timevalFromMs(event.value("utimeMs", int64_t{0}));
    info.usage.ru_stime = timevalFromMs(event.value("stimeMs", int64_t{0}));
    info.usage.ru_maxrss = event.value("maxrssKb", 0L);
    pool_.childExited(id, info);
  } else if (kind == "error") {
    uint64_t id = event.value("id", uint64_t{0});
    live.erase(id);
    pending_.erase(id);
    pool_.zygoteFailed("zygote refused to fork: " + event.value("message", std::string("?")));
  }
}

void Zygote::forked(uint64_t id, UniqueFd pidfd) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  PooledChild child = std::move(it->second);
  pending_.erase(it);
  child.pid = pidOfPidfd(pidfd.get());
  child.pidfd = std::move(pidfd);
  // Into its cgroup first; only then may it go on (and fork the sandbox's PID 1).
  if (auto st = child.cgroup.addProcess(child.pid); !st) {
    log::error("pool: " + st.error().message());
    ::syscall(SYS_pidfd_send_signal, child.pidfd.get(), SIGKILL, nullptr, 0);
    return;
  }
  if (auto st = writeAll(child.requestW.get(), "g"); !st) return;
  // Ready means isolated, warm and waiting: the child says so with one byte on its result
  // pipe. Until then a claim would wait for its set-up; it stays "starting".
  int fd = child.resultR.get();
  (void)setNonBlocking(fd);
  warming_.emplace(id, std::move(child));
  (void)pool_.loop_.watch(fd, EPOLLIN, [this, id, fd](uint32_t) {
    char byte = 0;
    ssize_t n = ::read(fd, &byte, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    pool_.loop_.unwatch(fd);
    auto it = warming_.find(id);
    if (it == warming_.end()) return;
    PooledChild ready = std::move(it->second);
    warming_.erase(it);
    if (n == 1 && byte == 'R') {
      pool_.childReady(std::move(ready));
    } else {
      // Its set-up failed: keep what it said on stderr for the log and the error; the
      // zygote reports the exit itself.
      char text[2048];
      (void)setNonBlocking(ready.stderrR.get());
      ssize_t got = ::read(ready.stderrR.get(), text, sizeof text);
      std::string said = got > 0 ? std::string(text, static_cast<size_t>(got)) : "";
      while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
      if (!said.empty()) log::warn("pool[" + pool_.profile_.name + "]: " + said);
      pool_.lastChildWords_ = said;
      pool_.reaper_.add(std::move(ready.cgroup));
    }
  });
}

// ---- Pool ------------------------------------------------------------------------------

Pool::Pool(EventLoop& loop, const sandbox::SandboxContext& ctx, const Profile& profile, sandbox::CgroupReaper& reaper)
    : loop_(loop), ctx_(ctx), profile_(profile), reaper_(reaper) {}

Pool::~Pool() { shutdown(); }

void Pool::start() {
  if (shuttingDown_) return;
  auto zygote = std::make_unique<Zygote>(*this);
  ++zygoteStarts_;
  if (auto st = zygote->start(); !st) {
    zygoteFailed("cannot start the zygote: " + st.error().message());
    return;
  }
  current_ = std::move(zygote);
}

void Pool::refillAfterClaim() {
  if (ready_.size() * 2 < static_cast<size_t>(profile_.pool.size) || profile_.pool.refillDelayMs == 0) {
    refill();
  } else if (!refillTimer_) {
    refillTimer_ = loop_.addTimer(std::chrono::milliseconds(profile_.pool.refillDelayMs), [this] {
      refillTimer_.reset();
      refill();
    });
  }
}

void Pool::refill() {
  if (refillTimer_) {
    loop_.cancelTimer(*refillTimer_);
    refillTimer_.reset();
  }
  if (shuttingDown_ || !current_ || !current_->ready) return;
  if (current_->forks >= static_cast<uint64_t>(profile_.pool.recycleAfter)) {
    // A fresh zygote brings fresh address layout and hash secret; the old one serves the
    // children it has and is stopped when the last of them has ended.
    log::info("pool[" + profile_.name + "]: recycling the zygote after " + std::to_string(current_->forks) + " forks");
    current_->retired = true;
    retired_.push_back(std::move(current_));
    start();
    return;
  }
  size_t starting = startingCount();
  size_t wanted = static_cast<size_t>(profile_.pool.size) + waiters_.size();
  while (ready_.size() + starting < wanted && starting < static_cast<size_t>(profile_.pool.maxStarting)) {
    if (auto st = current_->fork(nextChildId()); !st) {
      zygoteFailed(st.error().message());
      return;
    }
    ++starting;
    ++forksServed_;
  }
}

Pool::Ticket Pool::claim(ClaimHandler handler) {
  Ticket ticket = ++ticketSerial_;
  if (!ready_.empty()) {
    PooledChild child = std::move(ready_.front());
    ready_.pop_front();
    claimed_.insert(child.id);
    handler(std::move(child));
    refillAfterClaim();
    return ticket;
  }
  if (consecutiveFailures_ >= kMaxConsecutiveFailures) {
    handler(std::unexpected(Error{"the " + profile_.name + " pool cannot start children: " + lastError_}));
    // One more attempt for whoever asks next: the cause may have been passing.
    consecutiveFailures_ = kMaxConsecutiveFailures - 1;
    if (!current_) start();
    return ticket;
  }
  waiters_.emplace_back(ticket, std::move(handler));
  refill();
  return ticket;
}

void Pool::cancelClaim(Ticket ticket) {
  std::erase_if(waiters_, [ticket](const auto& w) { return w.first == ticket; });
}

void Pool::onExit(uint64_t childId, ExitHandler handler) { exits_[childId] = std::move(handler); }
void Pool::forgetExit(uint64_t childId) { exits_.erase(childId); }

void Pool::childReady(PooledChild child) {
  consecutiveFailures_ = 0;
  if (!waiters_.empty()) {
    auto handler = std::move(waiters_.front().second);
    waiters_.pop_front();
    claimed_.insert(child.id);
    handler(std::move(child));
  } else {
    ready_.push_back(std::move(child));
  }
  refill();
}

void Pool::childExited(uint64_t id, ExitInfo info) {
  bool wasClaimed = claimed_.erase(id) > 0;
  if (auto it = exits_.find(id); it != exits_.end()) {
    auto handler = std::move(it->second);
    exits_.erase(it);
    handler(info);
  } else if (!wasClaimed) {
    // A ready child that died before anyone claimed it: its setup failed.
    size_t before = ready_.size();
    std::erase_if(ready_, [&](PooledChild& c) {
      if (c.id != id) return false;
      reaper_.add(std::move(c.cgroup));
      return true;
    });
    if (ready_.size() != before || info.status != 0) {
      ++consecutiveFailures_;
      lastError_ = "a pre-forked child ended before use (wait status " + std::to_string(info.status) + ")" +
                   (lastChildWords_.empty() ? "" : ": " + lastChildWords_);
      log::warn("pool[" + profile_.name + "]: " + lastError_);
      if (consecutiveFailures_ >= kMaxConsecutiveFailures) failWaiters(lastError_);
    }
  }
  std::erase_if(retired_, [](const std::unique_ptr<Zygote>& z) { return z->live.empty(); });
  if (consecutiveFailures_ < kMaxConsecutiveFailures) refill();
}

void Pool::zygoteDied(Zygote* zygote, const std::string& why) {
  log::warn("pool[" + profile_.name + "]: " + why + "; answering its executions and starting a new one");
  std::unique_ptr<Zygote> dead;
  bool wasCurrent = zygote == current_.get();
  if (wasCurrent) {
    dead = std::move(current_);
  } else {
    for (auto& z : retired_)
      if (z.get() == zygote) dead = std::move(z);
    std::erase(retired_, nullptr);
  }
  if (!dead) return;
  dead->stop();
  // Its pid namespace is gone, and every child with it: ready ones are dropped, claimed
  // ones get their report now.
  std::set<uint64_t> lost = std::move(dead->live);
  std::erase_if(ready_, [&](PooledChild& c) {
    if (!lost.count(c.id)) return false;
    reaper_.add(std::move(c.cgroup));
    return true;
  });
  for (uint64_t id : lost) {
    claimed_.erase(id);
    auto it = exits_.find(id);
    if (it == exits_.end()) continue;
    auto handler = std::move(it->second);
    exits_.erase(it);
    ExitInfo info;
    info.status = SIGKILL;  // as wait(2) encodes death by SIGKILL
    info.zygoteDied = true;
    handler(info);
  }
  if (wasCurrent && !shuttingDown_) {
    // A zygote that dies before it was ever ready would die again: count it, back off, and
    // after a few in a row stop trying until someone asks for a child again.
    if (!dead->ready) zygoteFailed(why);
    if (consecutiveFailures_ < kMaxConsecutiveFailures) {
      auto delay = std::chrono::milliseconds(dead->ready ? 0 : 100 << consecutiveFailures_);
      loop_.addTimer(delay, [this] {
        if (!current_ && !shuttingDown_) start();
      });
    }
  }
  // We are inside one of its own handlers: destroy it on the next turn of the loop.
  auto* raw = dead.release();
  loop_.addTimer(std::chrono::milliseconds(0), [raw] { delete raw; });
}

void Pool::zygoteFailed(const std::string& why) {
  ++consecutiveFailures_;
  lastError_ = why;
  log::error("pool[" + profile_.name + "]: " + why);
  if (consecutiveFailures_ >= kMaxConsecutiveFailures) failWaiters(why);
}

void Pool::failWaiters(const std::string& why) {
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& [ticket, handler] : waiters) handler(std::unexpected(Error{"the " + profile_.name + " pool cannot start children: " + why}));
}

size_t Pool::startingCount() const {
  if (!current_) return 0;
  size_t starting = 0;
  for (uint64_t id : current_->live) {
    bool isReady = std::any_of(ready_.begin(), ready_.end(), [id](const PooledChild& c) { return c.id == id; });
    if (!isReady && !claimed_.count(id)) ++starting;
  }
  return starting;
}

json Pool::status() const {
  size_t starting = startingCount();
  return {{"profile", profile_.name},
          {"ready", ready_.size()},
          {"target", profile_.pool.size},
          {"starting", starting},
          {"waiting", waiters_.size()},
          {"zygotePid", current_ ? json(current_->pid) : json(nullptr)},
          {"zygoteReady", current_ && current_->ready},
          {"forksServed", forksServed_},
          {"zygoteStarts", zygoteStarts_},
          {"preloaded", current_ ? current_->imported : json::array()},
          {"preloadFailed", current_ ? current_->failed : json::object()}};
}

void Pool::shutdown() {
  shuttingDown_ = true;
  if (refillTimer_) loop_.cancelTimer(*refillTimer_);
  refillTimer_.reset();
  failWaiters("the server is shutting down");
  // Killing a zygote ends its pid namespace, every child in it included; their cgroups
  // can go once the kernel has finished.
  if (current_) current_->stop();
  for (auto& z : retired_) z->stop();
  for (auto& child : ready_) reaper_.add(std::move(child.cgroup));
  ready_.clear();
  current_.reset();
  retired_.clear();
}

}  // namespace pycell::pool
