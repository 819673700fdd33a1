#include "pycell/exec/scheduler.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pycell::exec {

namespace {
constexpr size_t kFinishedRemembered = 1024;
}

Scheduler::Scheduler(EventLoop& loop, const SandboxContext& ctx, bool usePools) : loop_(loop), ctx_(ctx) {
  // A pooled child enters its own user, mount and pid namespaces: without them, no pool.
  const auto& ns = ctx.isolation.namespaces;
  if (!usePools || !ns.user || !ns.mount || !ns.pid) return;
  for (const auto& [name, profile] : ctx.config.profiles) {
    if (profile.pool.size <= 0) continue;
    auto pool = std::make_unique<pool::Pool>(loop, ctx, profile, reaper_);
    pool->start();
    pools_[name] = std::move(pool);
  }
}

pool::Pool* Scheduler::poolFor(const ExecutionRequest& request) {
  // Pooled children are forked with the network off and with working-directory tmpfs of
  // the profile's size: a request for network, or for a smaller disk, runs one-shot (an
  // unprivileged child cannot resize its mounts, and RLIMIT_FSIZE bounds single files only).
  auto it = pools_.find(request.profile);
  if (it == pools_.end() || request.network) return nullptr;
  if (request.limits.diskMb < ctx_.config.profiles.at(request.profile).limits.diskMb) return nullptr;
  return it->second.get();
}

Scheduler::~Scheduler() { shutdown(); }

std::expected<std::string, SubmitError> Scheduler::submit(ExecutionRequest request, Done done,
                                                          Execution::OutputSink output) {
  uint64_t serial = ++serial_;
  if (request.executionId.empty()) request.executionId = "exec-" + std::to_string(serial);
  std::string id = request.executionId;
  if (active_.count(id)) return std::unexpected(SubmitError{SubmitError::Kind::DuplicateId, "executionId '" + id + "' is already in use"});
  if (running() >= static_cast<size_t>(ctx_.options.maxConcurrent) &&
      queue_.size() >= static_cast<size_t>(ctx_.options.maxQueue)) {
    return std::unexpected(SubmitError{SubmitError::Kind::QueueFull,
                                       "too many queued executions (" + std::to_string(queue_.size()) + " waiting, " +
                                           std::to_string(running()) + " running)"});
  }
  auto execution = std::make_unique<Execution>(loop_, ctx_, std::move(request), serial);
  if (output) execution->onOutput(std::move(output));
  execution->onDone([this, id](json result) { retire(id, std::move(result)); });
  active_[id] = Entry{std::move(execution), std::move(done)};
  queue_.push_back(id);
  ++total_;
  startNext();
  return id;
}

void Scheduler::startNext() {
  while (!shuttingDown_ && !queue_.empty() && running() < static_cast<size_t>(ctx_.options.maxConcurrent)) {
    std::string id = queue_.front();
    queue_.pop_front();
    launch(id);
  }
}

void Scheduler::launch(const std::string& id) {
  auto& execution = *active_.at(id).execution;
  if (auto* pool = poolFor(execution.request())) {
    // The claim may be answered right away (a ready child) or later, in arrival order.
    auto ticket = pool->claim([this, id](Result<pool::PooledChild> child) { onClaimed(id, std::move(child)); });
    if (auto it = active_.find(id); it != active_.end() && it->second.execution->state() == ExecState::Queued)
      it->second.execution->waitForChild(*pool, ticket);
    return;
  }
  if (auto started = execution.start(); !started) retire(id, std::unexpected(started.error()));
}

void Scheduler::onClaimed(const std::string& id, Result<pool::PooledChild> child) {
  auto it = active_.find(id);
  if (!child) {
    if (it != active_.end()) retire(id, std::unexpected(child.error()));
    return;
  }
  if (it == active_.end()) {
    // Nobody wants it any more; it served nobody, but a child is used once: end it.
    ::syscall(SYS_pidfd_send_signal, child->pidfd.get(), SIGKILL, nullptr, 0);
    reaper_.add(std::move(child->cgroup));
    return;
  }
  auto& execution = *it->second.execution;
  execution.startPooled(*pools_.at(execution.request().profile), std::move(*child));
}

void Scheduler::retire(const std::string& id, Result<json> result) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Entry entry = std::move(it->second);
  active_.erase(it);
  std::erase(queue_, id);
  json summary = {{"executionId", id}, {"state", "finished"}, {"elapsedMs", entry.execution->elapsedMs()},
                  {"usage", entry.execution->usageSoFar()}};
  summary["status"] = result ? (*result)["status"] : json("error");
  finished_[id] = summary;
  finishedOrder_.push_back(id);
  if (finishedOrder_.size() > kFinishedRemembered) {
    finished_.erase(finishedOrder_.front());
    finishedOrder_.pop_front();
  }
  reaper_.add(entry.execution->takeCgroup());
  // We may be inside one of the execution's own callbacks: destroy it on the next turn.
  graveyard_.push_back(std::move(entry.execution));
  scheduleReap();
  entry.done(std::move(result));
  startNext();
  if (active_.empty() && onIdle_) {
    auto idle = std::move(onIdle_);
    onIdle_ = nullptr;
    idle();
  }
}

void Scheduler::whenIdle(std::function<void()> fn) {
  if (active_.empty()) {
    fn();
    return;
  }
  onIdle_ = std::move(fn);
}

void Scheduler::scheduleReap() {
  if (reapScheduled_) return;
  reapScheduled_ = true;
  loop_.addTimer(std::chrono::milliseconds(0), [this] { reapCgroups(); });
}

void Scheduler::reapCgroups() {
  reapScheduled_ = false;
  graveyard_.clear();
  if (!reaper_.tryAll()) {
    reapScheduled_ = true;
    loop_.addTimer(std::chrono::milliseconds(20), [this] { reapCgroups(); });
  }
}

bool Scheduler::stop(const std::string& executionId, StopReason reason) {
  auto it = active_.find(executionId);
  if (it == active_.end()) return false;
  it->second.execution->stop(reason);
  return true;
}

std::optional<json> Scheduler::status(const std::string& executionId) const {
  if (auto it = active_.find(executionId); it != active_.end()) {
    const auto& e = *it->second.execution;
    return json{{"executionId", executionId}, {"state", stateName(e.state())}, {"elapsedMs", e.elapsedMs()},
                {"usage", e.usageSoFar()}};
  }
  if (auto it = finished_.find(executionId); it != finished_.end()) return it->second;
  return std::nullopt;
}

json Scheduler::summary() const {
  json pools = json::array();
  for (const auto& [name, pool] : pools_) pools.push_back(pool->status());
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - startedAt_);
  return {{"uptimeMs", uptime.count()},
          {"running", running()},
          {"queued", queued()},
          {"executionsTotal", total_},
          {"sessions", json::array()},
          {"pools", pools}};
}

void Scheduler::shutdown() {
  // Every execution still here is answered now, with status "killed" and the output it
  // had produced: the event loop that would have carried its result has stopped.
  shuttingDown_ = true;
  std::vector<std::string> ids;
  for (const auto& [id, entry] : active_) ids.push_back(id);
  for (const auto& id : ids) {
    if (auto it = active_.find(id); it != active_.end()) it->second.execution->finishNow(StopReason::Shutdown);
  }
  graveyard_.clear();
  for (auto& [name, pool] : pools_) pool->shutdown();
  reaper_.drain(std::chrono::seconds(2));
}

}  // namespace pycell::exec
