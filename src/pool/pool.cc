#include "pycell/pool/pool.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "pycell/error.h"
#include "pycell/process/log.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/isolate.h"

namespace pycell::pool {

namespace {

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

Error prefixed(const std::string& prefix, const Error& e) { return Error{prefix + e.what, e.err, e.step, e.detail}; }

// What a child that ended before it was ready said about it: the record of the step that
// failed (isolate.h), the one way a sandbox reports one.
std::optional<Error> failureReport(int fd, const void* head, size_t have) {
  auto failure = sandbox::readStepFailure(fd, head, have);
  if (!failure) return std::nullopt;
  return sandbox::isolationError(*failure);
}

}  // namespace

Pool::Pool(EventLoop& loop, const sandbox::SandboxContext& ctx, const Profile& profile, sandbox::CgroupReaper& reaper)
    : loop_(loop), ctx_(ctx), profile_(profile), reaper_(reaper) {}

Pool::~Pool() { shutdown(); }

void Pool::start() {
  if (shuttingDown_) return;
  auto zygote = std::make_unique<Zygote>(loop_, ctx_, profile_, static_cast<ZygoteEvents&>(*this), ++zygoteSerial_);
  ++zygoteStarts_;
  if (auto st = zygote->start(); !st) {
    // As for a zygote that died before it was ready: counted, retried after a back-off, and
    // after five in a row every waiting claim is answered with the error. Without the retry
    // a claim made now would wait for a zygote that nobody starts.
    restartAfterDeath(false, prefixed("cannot start the zygote: ", st.error()).message());
    return;
  }
  current_ = std::move(zygote);
}

// ---- claims ----------------------------------------------------------------------------

Pool::Ticket Pool::claim(ClaimHandler handler) {
  Ticket ticket = ++ticketSerial_;
  if (auto child = children_.claimOldest()) {
    handler(std::move(*child));
    refillAfterClaim();
    return ticket;
  }
  if (backedOff()) {
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

void Pool::onExit(uint64_t childId, ExitHandler handler) {
  if (!children_.setExitHandler(childId, std::move(handler)))
    log::warn("pool[" + profile_.name + "]: an exit handler for child " + std::to_string(childId) + ", which is not claimed");
}

void Pool::forgetExit(uint64_t childId) { children_.clearExitHandler(childId); }

void Pool::serveWaiters() {
  while (!waiters_.empty()) {
    auto child = children_.claimOldest();
    if (!child) return;
    auto handler = std::move(waiters_.front().second);
    waiters_.pop_front();
    handler(std::move(*child));
  }
}

// ---- refill ----------------------------------------------------------------------------

bool Pool::backedOff() const { return consecutiveFailures_ >= kMaxConsecutiveFailures; }

void Pool::refillAfterClaim() {
  if (children_.counts().ready * 2 < static_cast<size_t>(profile_.pool.size) || profile_.pool.refillDelayMs == 0) {
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
  RefillAction action = refillAction({.counts = children_.counts(),
                                      .target = static_cast<size_t>(profile_.pool.size),
                                      .waiting = waiters_.size(),
                                      .maxStarting = static_cast<size_t>(profile_.pool.maxStarting),
                                      .zygoteReady = current_ && current_->ready(),
                                      .backedOff = backedOff(),
                                      .shuttingDown = shuttingDown_,
                                      .zygoteForks = current_ ? current_->forks() : 0,
                                      .recycleAfter = static_cast<uint64_t>(profile_.pool.recycleAfter)});
  if (action.recycle) {
    recycle();
    return;
  }
  for (size_t i = 0; i < action.forks; ++i)
    if (!forkOne()) return;
}

bool Pool::forkOne() {
  const auto& limits = profile_.limits;
  uint64_t id = nextChildId();
  auto spare = reaper_.reuse(limits.memoryMb << 20, limits.maxProcesses);
  bool recycled = spare.has_value();
  auto child = current_->fork(id, std::move(spare));
  if (!child) {
    zygoteFailed(child.error());
    return false;
  }
  if (recycled) log::debug("pool[" + profile_.name + "]: child " + std::to_string(id) + " in a recycled cgroup");
  (void)children_.add(current_->serial(), std::move(*child));
  ++forksServed_;
  return true;
}

void Pool::recycle() {
  // A fresh zygote brings fresh address layout and hash secret; the old one serves the
  // children it has and is stopped when the last of them has ended.
  log::info("pool[" + profile_.name + "]: recycling the zygote after " + std::to_string(current_->forks()) + " forks");
  retired_.push_back(std::move(current_));
  disposeFinishedRetired();
  start();
}

// ---- what a zygote reports -------------------------------------------------------------

void Pool::onZygoteReady(Zygote& zygote) {
  consecutiveFailures_ = 0;
  if (&zygote == current_.get()) refill();
}

void Pool::onForked(Zygote& zygote, uint64_t id, UniqueFd pidfd) {
  if (!children_.forked(id, zygote.serial())) return;  // not a fork this zygote was asked for
  PooledChild& child = *children_.child(id);
  child.pid = pidOfPidfd(pidfd.get());
  child.pidfd = std::move(pidfd);
  // Into its cgroup first; only then may it go on (and fork the sandbox's PID 1).
  if (auto st = child.cgroup.addProcess(child.pid); !st) {
    log::error("pool: " + st.error().message());
    ::syscall(SYS_pidfd_send_signal, child.pidfd.get(), SIGKILL, nullptr, 0);
    childSetupFailed(id, st.error());
    return;
  }
  if (auto st = writeAll(child.requestW.get(), "g"); !st) {
    childSetupFailed(id, st.error());
    return;
  }
  // Ready means isolated, warm and waiting: the child says so with one byte on its result
  // pipe. Until then a claim would wait for its set-up; it stays "starting".
  int fd = child.resultR.get();
  (void)setNonBlocking(fd);
  (void)loop_.watch(fd, EPOLLIN, [this, id, fd](uint32_t) { onResult(id, fd); });
}

void Pool::onForkRefused(Zygote& zygote, uint64_t id, const Error& why) {
  if (children_.stateOf(id) == ChildState::Forking)
    if (auto slot = children_.end(id, zygote.serial())) release(*slot);
  zygoteFailed(why);
}

void Pool::onChildExit(Zygote& zygote, uint64_t id, const ExitInfo& info) {
  if (auto slot = children_.end(id, zygote.serial())) {
    if (slot->state != ChildState::Claimed)
      unclaimedEnded(*slot, info);
    else if (slot->onExit)
      slot->onExit(info);
  }
  disposeFinishedRetired();
  refill();
}

void Pool::onZygoteDied(Zygote& zygote, const std::string& why) {
  log::warn("pool[" + profile_.name + "]: " + why + "; answering its executions and starting a new one");
  std::unique_ptr<Zygote> dead;
  bool wasCurrent = &zygote == current_.get();
  if (wasCurrent) {
    dead = std::move(current_);
  } else {
    for (auto& z : retired_)
      if (z.get() == &zygote) dead = std::move(z);
    std::erase(retired_, nullptr);
  }
  if (!dead) return;
  bool wasReady = dead->ready();
  uint64_t serial = dead->serial();
  dispose(std::move(dead));
  // Its pid namespace is gone, and every child with it: the ones not claimed are dropped,
  // claimed ones get their report now.
  for (ChildSlot& slot : children_.endZygote(serial)) {
    if (slot.state != ChildState::Claimed)
      release(slot);
    else if (slot.onExit)
      slot.onExit(ExitInfo{.status = SIGKILL, .usage = {}, .zygoteDied = true});  // SIGKILL as wait(2) encodes it
  }
  if (wasCurrent && !shuttingDown_) restartAfterDeath(wasReady, why);
  refill();
}

// ---- a child's own reports -------------------------------------------------------------

void Pool::onResult(uint64_t id, int fd) {
  // 'R' alone, or the record of the step that failed (isolate.h), then EOF.
  sandbox::StepFailureRecord record;
  ssize_t n = ::read(fd, &record, sizeof record);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  loop_.unwatch(fd);
  if (children_.stateOf(id) != ChildState::Warming) return;
  if (n == 1 && reinterpret_cast<const char*>(&record)[0] == 'R') {
    childWarm(id);
    return;
  }
  // Its set-up failed (the zygote reports the exit itself, and its wait status describes a
  // child that made no report).
  auto report = failureReport(fd, &record, n > 0 ? static_cast<size_t>(n) : 0);
  if (report) childSetupFailed(id, *report);
}

void Pool::childWarm(uint64_t id) {
  consecutiveFailures_ = 0;
  if (PooledChild* child = children_.child(id)) child->cpuWhenReady = child->cgroup.cpu().value_or(sandbox::CgroupCpu{});
  (void)children_.warm(id);
  serveWaiters();
  refill();
}

void Pool::childSetupFailed(uint64_t id, const Error& why) {
  PooledChild* child = children_.child(id);
  if (!child) return;
  child->setupFailure = why;
  if (child->resultR) loop_.unwatch(child->resultR.get());
  child->resultR.reset();  // no report left to read when its exit comes
  reaper_.add(std::move(child->cgroup));
}

void Pool::release(ChildSlot& slot) {
  if (slot.state == ChildState::Claimed) return;  // its execution holds its fds and cgroup
  if (slot.child.resultR) loop_.unwatch(slot.child.resultR.get());
  reaper_.add(std::move(slot.child.cgroup));
}

void Pool::unclaimedEnded(ChildSlot& slot, const ExitInfo& info) {
  // Ended while it set itself up: its report is in the pipe already (written first).
  if (slot.state == ChildState::Warming && slot.child.resultR)
    slot.child.setupFailure = failureReport(slot.child.resultR.get(), nullptr, 0);
  bool wasReady = slot.state == ChildState::Ready;
  release(slot);
  // A ready child that died before anyone claimed it, or one whose set-up failed.
  if (!wasReady && info.status == 0) return;
  ++consecutiveFailures_;
  // Its own report (the step that failed) when it made one.
  lastError_ = slot.child.setupFailure ? *slot.child.setupFailure
                                 : Error{"a pre-forked child ended before use (wait status " + std::to_string(info.status) + ")"};
  log::warn("pool[" + profile_.name + "]: " + lastError_.message());
  if (backedOff()) failWaiters(lastError_);
}

// ---- failures, zygotes' ends -------------------------------------------------------------

void Pool::restartAfterDeath(bool wasReady, const std::string& why) {
  // A zygote that dies before it was ever ready would die again: count it, back off, and
  // after a few in a row stop trying until someone asks for a child again.
  if (!wasReady) zygoteFailed(Error{why});
  if (backedOff()) return;
  auto delay = std::chrono::milliseconds(wasReady ? 0 : 100 << consecutiveFailures_);
  loop_.addTimer(delay, [this] {
    if (!current_ && !shuttingDown_) start();
  });
}

void Pool::dispose(std::unique_ptr<Zygote> zygote) {
  zygote->stop();
  // We may be inside one of its own handlers: delete it on the next turn of the loop.
  auto* raw = zygote.release();
  loop_.addTimer(std::chrono::milliseconds(0), [raw] { delete raw; });
}

void Pool::disposeFinishedRetired() {
  for (auto& z : retired_)
    if (children_.countOf(z->serial()) == 0) dispose(std::move(z));
  std::erase(retired_, nullptr);
}

void Pool::zygoteFailed(const Error& why) {
  ++consecutiveFailures_;
  lastError_ = why;
  log::error("pool[" + profile_.name + "]: " + why.message());
  if (backedOff()) failWaiters(why);
}

void Pool::failWaiters(const Error& why) {
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& [ticket, handler] : waiters) handler(std::unexpected(prefixed("the " + profile_.name + " pool cannot start children: ", why)));
}

json Pool::status() const {
  ChildCounts counts = children_.counts();
  return {{"profile", profile_.name},
          {"kind", "zygote"},
          {"ready", counts.ready},
          {"target", profile_.pool.size},
          {"starting", counts.starting()},
          {"claimed", counts.claimed},
          {"waiting", waiters_.size()},
          {"zygotePid", current_ ? json(current_->pid()) : json(nullptr)},
          {"zygoteReady", current_ && current_->ready()},
          {"forksServed", forksServed_},
          {"zygoteStarts", zygoteStarts_},
          {"preloaded", current_ ? current_->imported() : json::array()},
          {"preloadFailed", current_ ? current_->failed() : json::object()}};
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
  for (ChildSlot& slot : children_.endAll()) release(slot);
  current_.reset();
  retired_.clear();
}

}  // namespace pycell::pool
