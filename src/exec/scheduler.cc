#include "pycell/exec/scheduler.h"

#include <thread>

namespace pycell::exec {

namespace {
constexpr size_t kFinishedRemembered = 1024;
}

Scheduler::Scheduler(EventLoop& loop, const SandboxContext& ctx) : loop_(loop), ctx_(ctx) {}

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
  auto& entry = active_.at(id);
  if (auto started = entry.execution->start(); !started) retire(id, std::unexpected(started.error()));
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
  lingering_.push_back(entry.execution->takeCgroup());
  // We may be inside one of the execution's own callbacks: destroy it on the next turn.
  graveyard_.push_back(std::move(entry.execution));
  if (!reapScheduled_) {
    reapScheduled_ = true;
    loop_.addTimer(std::chrono::milliseconds(0), [this] { reapCgroups(); });
  }
  entry.done(std::move(result));
  startNext();
}

void Scheduler::reapCgroups() {
  reapScheduled_ = false;
  graveyard_.clear();
  std::erase_if(lingering_, [](sandbox::ExecutionCgroup& cg) { return cg.tryRemove(); });
  if (!lingering_.empty()) {
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
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - startedAt_);
  return {{"uptimeMs", uptime.count()},
          {"running", running()},
          {"queued", queued()},
          {"executionsTotal", total_},
          {"sessions", json::array()},
          {"pools", json::array()}};
}

void Scheduler::shutdown() {
  // Every execution still here is answered now, with status "killed" and the output it
  // had produced: the event loop that would have carried its result has stopped.
  shuttingDown_ = true;
  std::vector<std::string> ids(queue_.begin(), queue_.end());
  for (const auto& [id, entry] : active_)
    if (entry.execution->state() == ExecState::Running) ids.insert(ids.begin(), id);
  for (const auto& id : ids) {
    if (auto it = active_.find(id); it != active_.end()) it->second.execution->finishNow(StopReason::Shutdown);
  }
  graveyard_.clear();
  for (int i = 0; i < 100 && !lingering_.empty(); ++i) {
    std::erase_if(lingering_, [](sandbox::ExecutionCgroup& cg) { return cg.tryRemove(); });
    if (!lingering_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace pycell::exec
