#include "pycell/pool/pool.h"

#include "pycell/protocol/untrusted_json.h"

#include <signal.h>
#include <sys/mman.h>
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
#include "pycell/sandbox/zygote_wire.h"
#include "pycell/zygote_py.h"

namespace pycell::pool {

namespace {

constexpr const char* kZygotePath = "/.pycell/zygote.py";
constexpr const char* kLibraryPath = "/.pycell/libpycell_child.so";
constexpr int kMaxConsecutiveFailures = 5;

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

Status sendMessage(int fd, sandbox::wire::Op op, const sandbox::wire::Header& header, const std::vector<int>& fds) {
  std::string data = sandbox::wire::encode(op, header);
  if (sandbox::sendWithFds(fd, data.data(), data.size(), fds.data(), static_cast<int>(fds.size())) < 0)
    return std::unexpected(sysError("sendmsg(zygote)"));
  return {};
}

// A memfd holding `payload`, for a message too large for a datagram.
Result<UniqueFd> memfdOf(const std::string& payload) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_memfd_create, "pycell-zygote-init", MFD_CLOEXEC)));
  if (!fd) return std::unexpected(sysError("memfd_create"));
  if (auto st = writeAll(fd.get(), payload); !st) return std::unexpected(st.error());
  return fd;
}

// One message from the zygote, checked (zygote_wire.h); nullopt at EOF or on a socket
// error. A malformed message comes back as its reason.
struct Received {
  std::optional<sandbox::wire::Header> header;  // absent: refused, for `refused`
  std::string text;
  std::string refused;
  std::vector<UniqueFd> fds;
  [[nodiscard]] sandbox::wire::Op op() const { return static_cast<sandbox::wire::Op>(header->op); }
};
std::optional<Received> receiveMessage(int fd) {
  Received r;
  std::string buffer(sizeof(sandbox::wire::Header) + sandbox::wire::kMaxText, '\0');
  int received[sandbox::kMaxPassedFds];
  int count = 0;
  bool truncated = false;
  ssize_t n = sandbox::receiveWithFds(fd, buffer.data(), buffer.size(), received, &count, &truncated);
  for (int i = 0; i < count; ++i) r.fds.emplace_back(received[i]);
  if (n <= 0) return std::nullopt;
  auto decoded = sandbox::wire::decode(buffer.data(), static_cast<size_t>(n), count, truncated);
  if (decoded) {
    r.header = decoded->header;
    r.text = std::string(decoded->text);
  } else {
    r.refused = decoded.error();
  }
  return r;
}

Error prefixed(const std::string& prefix, const Error& e) { return Error{prefix + e.what, e.err, e.step, e.detail}; }

// What a child that ended before it was ready said about it: the record of the step that
// failed (isolate.h), the one way a sandbox reports one. `head` holds what was read of it
// already; the rest is read on (the child wrote it in one write, before it exited).
std::optional<Error> failureReport(int fd, const sandbox::StepFailureRecord* head, size_t have) {
  sandbox::StepFailureRecord record{};
  if (head && have > 0) std::memcpy(&record, head, std::min(have, sizeof record));
  (void)setNonBlocking(fd, true);
  while (have < sizeof record) {
    ssize_t n = ::read(fd, reinterpret_cast<char*>(&record) + have, sizeof record - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<size_t>(n);
  }
  sandbox::StepFailure failure;
  if (sandbox::decodeStepFailure(&record, have, failure)) return sandbox::isolationError(failure);
  return std::nullopt;
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
  void handle(Received& message);
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

  // What every child of this zygote applies to itself: the plan of a one-shot sandbox of
  // the profile (the profile's limits: a claim may only tighten them; the offline seccomp
  // filter), its ids mapped onto the zygote's own.
  sandbox::PlanInputs childInputs = sandbox::planInputsFor(ctx, profile);
  sandbox::IsolationSpec childSpec = sandbox::pooledChildSpec(childInputs, ctx.sandboxUid, ctx.sandboxGid);
  childSpec.rlimits = sandbox::planRlimits(
      profile.limits,
      {.memoryByRlimit = !ctx.isolation.cgroup.memory, .processesByRlimit = true, .sessionCpuMs = profile.sessionCpuMs});

  // The zygote itself: the same kind of sandbox, running zygote.py with its library, no
  // seccomp (it must clone into new namespaces; its children install the filter), its own
  // small limits, and its outer ids kept inside.
  sandbox::PlanInputs in = childInputs;
  in.seccomp = nullptr;
  in.entry = kZygotePath;
  in.extraFiles.push_back({kZygotePath, std::string(kZygotePy)});
  in.extraFiles.push_back({kLibraryPath, std::string(reinterpret_cast<const char*>(kChildLibrary), sizeof kChildLibrary)});
  in.rlimits = std::vector<sandbox::RlimitSetting>{{RLIMIT_CORE, 0, 0}, {RLIMIT_NOFILE, 4096, 4096}};
  in.keepOuterIds = true;
  auto plan = sandbox::makePlan(in);
  sandbox::ChildFds fds{nullIn->read.get(), logPipe->write.get(), logPipe->write.get(), theirs.get(), logPipe->write.get()};
  auto child = sandbox::spawnSandbox(plan, fds, logPipe->read.get(), {});
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

  json init = {{"preload", profile.preload},
               {"childWarmup", profile.childWarmup},
               // Its hooks go in before a child is offered; each request brings the policy again.
               {"policy", ctx.policy(profile.name, false)}};
  auto payload = memfdOf(sandbox::wire::encodeInit(init.dump(), childSpec));
  if (!payload) return std::unexpected(payload.error());
  return sendMessage(control_.get(), sandbox::wire::Op::Init, {}, {payload->get()});
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
  sandbox::wire::Header request;
  request.id = id;
  auto st = sendMessage(control_.get(), sandbox::wire::Op::Fork, request,
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
  if (!message->header) {
    // The zygote runs inside the profile's sandbox: what it sends is checked like anything
    // else a sandbox writes, and a zygote that breaks the protocol is replaced.
    pool_.zygoteDied(this, "the zygote sent a malformed message (" + message->refused + ")");
    return;
  }
  handle(*message);
}

void Zygote::handle(Received& message) {
  using sandbox::wire::Op;
  const auto& h = *message.header;
  switch (message.op()) {
    case Op::Ready: {
      json doc;
      bool refused = protocol::parseUntrustedInto(message.text, {.maxDepth = 8, .maxBytes = sandbox::wire::kMaxText, .maxValues = 4096}, doc).has_value();
      ready = true;
      imported = !refused && doc.is_object() && doc.contains("imported") && doc["imported"].is_array() ? doc["imported"] : json::array();
      failed = !refused && doc.is_object() && doc.contains("failed") && doc["failed"].is_object() ? doc["failed"] : json::object();
      if (!failed.empty()) log::warn("zygote[" + pool_.profile_.name + "]: could not preload " + failed.dump(-1, ' ', false, json::error_handler_t::replace));
      pool_.consecutiveFailures_ = 0;
      pool_.refill();
      return;
    }
    case Op::Forked:
      forked(h.id, std::move(message.fds[0]));
      return;
    case Op::Exit: {
      live.erase(h.id);
      pending_.erase(h.id);
      if (auto w = warming_.find(h.id); w != warming_.end()) {
        // Ended while it set itself up: its report is in the pipe already (written first).
        pool_.lastChildFailure_ = failureReport(w->second.resultR.get(), nullptr, 0);
        pool_.loop_.unwatch(w->second.resultR.get());
        pool_.reaper_.add(std::move(w->second.cgroup));
        warming_.erase(w);
      }
      ExitInfo info;
      info.status = h.status;
      info.usage.ru_utime = timevalFromMs(h.utimeMs);
      info.usage.ru_stime = timevalFromMs(h.stimeMs);
      info.usage.ru_maxrss = h.maxrssKb;
      pool_.childExited(h.id, info);
      return;
    }
    case Op::Error:
      live.erase(h.id);
      pending_.erase(h.id);
      pool_.zygoteFailed(Error{"zygote refused to fork: " + protocol::truncateUtf8(message.text, 512)});
      return;
    default:
      pool_.zygoteDied(this, "the zygote sent a message meant for it");
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
    // 'R' alone, or the record of the step that failed (isolate.h), then EOF.
    sandbox::StepFailureRecord record;
    ssize_t n = ::read(fd, &record, sizeof record);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    pool_.loop_.unwatch(fd);
    auto it = warming_.find(id);
    if (it == warming_.end()) return;
    PooledChild ready = std::move(it->second);
    warming_.erase(it);
    if (n == 1 && reinterpret_cast<const char*>(&record)[0] == 'R') {
      pool_.childReady(std::move(ready));
      return;
    }
    // Its set-up failed (the zygote reports the exit itself).
    pool_.lastChildFailure_ = failureReport(fd, &record, n > 0 ? static_cast<size_t>(n) : 0);
    pool_.reaper_.add(std::move(ready.cgroup));
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
    zygoteFailed(prefixed("cannot start the zygote: ", st.error()));
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
      zygoteFailed(st.error());
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
    handler(std::unexpected(prefixed("the " + profile_.name + " pool cannot start children: ", lastError_)));
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
      // Its own report (the step that failed) when it made one.
      lastError_ = lastChildFailure_ ? *lastChildFailure_
                                     : Error{"a pre-forked child ended before use (wait status " + std::to_string(info.status) + ")"};
      lastChildFailure_.reset();
      log::warn("pool[" + profile_.name + "]: " + lastError_.message());
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
    if (!dead->ready) zygoteFailed(Error{why});
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

void Pool::zygoteFailed(const Error& why) {
  ++consecutiveFailures_;
  lastError_ = why;
  log::error("pool[" + profile_.name + "]: " + why.message());
  if (consecutiveFailures_ >= kMaxConsecutiveFailures) failWaiters(why);
}

void Pool::failWaiters(const Error& why) {
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& [ticket, handler] : waiters) handler(std::unexpected(prefixed("the " + profile_.name + " pool cannot start children: ", why)));
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
  failWaiters(Error{"the server is shutting down"});
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
