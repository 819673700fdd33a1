#include "pycell/exec/scheduler.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "pycell/error.h"
#include "pycell/process/log.h"
#include "pycell/protocol/untrusted_json.h"

namespace pycell::exec {

namespace {
constexpr size_t kFinishedRemembered = 1024;
// Finished results kept for `result`: the last 256, at most 64 MiB together.
constexpr size_t kResultsKept = 256;
constexpr size_t kResultBytesKept = size_t{64} << 20;

// What a request holds while it waits and runs: its code, stdin, files and inputs.
size_t requestBytes(const ExecutionRequest& r) {
  return sizeof(ExecutionRequest) + r.code.capacity() + r.stdinData.capacity() + r.executionId.size() +
         r.session.size() + protocol::approxJsonBytes(r.inputs) + protocol::approxJsonBytes(r.files) +
         protocol::approxJsonBytes(r.returnFiles);
}

std::string mib(size_t bytes) {
  if (bytes >= (1u << 20)) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}
}  // namespace

std::optional<SubmitError> Scheduler::overBudget(size_t bytes) const {
  // A request alone is always taken (the message size bounds it); one more is refused once
  // the requests held would exceed the budget.
  size_t budget = ctx_.options.maxQueuedBytes;
  if (heldBytes_ == 0 || heldBytes_ + bytes <= budget) return std::nullopt;
  return SubmitError{SubmitError::Kind::QueueFull,
                     "server busy: queued work exceeds " + mib(budget) + " (" + mib(heldBytes_) + " held by " +
                         std::to_string(active_.size()) + " executions); retry when some have finished"};
}

Scheduler::Scheduler(EventLoop& loop, const SandboxContext& ctx, bool usePools)
    : loop_(loop), ctx_(ctx), results_(kResultsKept, kResultBytesKept) {
  // A pooled child enters its own user, mount and pid namespaces: without them, no pool.
  const auto& ns = ctx.isolation.namespaces;
  if (!usePools || !ns.user || !ns.mount || !ns.pid) return;
  for (const auto& [name, profile] : ctx.config.profiles) {
    if (profile.pool.size <= 0) continue;
    if (profile.language == Language::JavaScript) {
      auto pool = std::make_unique<pool::StartedPool>(loop, ctx, profile, reaper_);
      pool->start();
      startedPools_[name] = std::move(pool);
      continue;
    }
    // Id-mapped writable binds are made by the server for each sandbox it clones (idmap.h); a
    // zygote's children could not attach them, so such a profile runs one-shot, every run alike.
    if (ctx.isolation.idmappedBinds &&
        std::any_of(profile.binds.begin(), profile.binds.end(), [](const auto& b) { return b.writable; })) {
      log::info("profile " + name + ": no pool (its allowWrite directories are id-mapped for each one-shot sandbox)");
      continue;
    }
    auto pool = std::make_unique<pool::Pool>(loop, ctx, profile, reaper_);
    pool->start();
    pools_[name] = std::move(pool);
  }
}

pool::Pool* Scheduler::poolFor(const std::string& profile, bool network, int64_t diskMb) {
  // Pooled children are forked with the network off and with working-directory tmpfs of
  // the profile's size: a request for network, or for a smaller disk, runs one-shot (an
  // unprivileged child cannot resize its mounts, and RLIMIT_FSIZE bounds single files only).
  auto it = pools_.find(profile);
  if (it == pools_.end() || network) return nullptr;
  if (diskMb < ctx_.config.profiles.at(profile).limits.diskMb) return nullptr;
  return it->second.get();
}

// As `status` reports each execution: running means the program's run has begun; queued
// is everything else not finished (in a queue, or claiming a pooled child).
size_t Scheduler::running() const {
  size_t n = 0;
  for (const auto& [id, entry] : active_) n += entry.execution->state() == ExecState::Running;
  return n;
}

size_t Scheduler::queued() const { return active_.size() - running(); }

size_t Scheduler::ownSandboxes() const {
  // Launched (running, or claiming a pooled child) and not in a session.
  return active_.size() - queue_.size() - [&] {
    size_t n = 0;
    for (const auto& [id, entry] : active_) n += !entry.execution->request().session.empty();
    return n;
  }();
}

Scheduler::~Scheduler() { shutdown(); }

std::expected<std::string, SubmitError> Scheduler::submit(ExecutionRequest request, Done done,
                                                          Execution::OutputSink output, Execution::UsageSink usage) {
  uint64_t serial = ++serial_;
  if (request.executionId.empty()) request.executionId = "exec-" + std::to_string(serial);
  std::string visible = request.executionId;
  std::string id = scoped(request.client, visible);
  if (active_.count(id)) return std::unexpected(SubmitError{SubmitError::Kind::DuplicateId, "executionId '" + visible + "' is already in use"});
  size_t bytes = requestBytes(request);
  if (auto refusal = overBudget(bytes)) return std::unexpected(std::move(*refusal));
  if (!request.session.empty())
    return submitToSession(std::move(request), std::move(done), std::move(output), std::move(usage), serial, bytes);
  if (ownSandboxes() >= static_cast<size_t>(ctx_.options.maxConcurrent) &&
      queue_.size() >= static_cast<size_t>(ctx_.options.maxQueue)) {
    return std::unexpected(SubmitError{SubmitError::Kind::QueueFull,
                                       "too many queued executions (" + std::to_string(queue_.size()) + " waiting, " +
                                           std::to_string(ownSandboxes()) + " running)"});
  }
  enroll(std::move(request), std::move(done), std::move(output), std::move(usage), serial, bytes);
  queue_.push_back(id);
  startNext();
  return visible;
}

// The execution, known by its id until retired; the caller queues it.
void Scheduler::enroll(ExecutionRequest request, Done done, Execution::OutputSink output, Execution::UsageSink usage,
                       uint64_t serial, size_t bytes) {
  std::string id = scoped(request.client, request.executionId);
  auto execution = std::make_unique<Execution>(loop_, ctx_, std::move(request), serial);
  if (output) execution->onOutput(std::move(output));
  if (usage) execution->onUsage(std::move(usage));
  execution->onDone([this, id](json result) { retire(id, std::move(result)); });
  execution->onRetry([this, id](sandbox::ExecutionCgroup dead) {
    reaper_.add(std::move(dead));
    scheduleReap();
    launch(id);  // still counted as running: it claims again, ahead of the queue
  });
  active_[id] = Entry{std::move(execution), std::move(done), bytes};
  heldBytes_ += bytes;
  ++total_;
}

void Scheduler::startNext() {
  while (!shuttingDown_ && !queue_.empty() && ownSandboxes() < static_cast<size_t>(ctx_.options.maxConcurrent)) {
    std::string id = queue_.front();
    queue_.pop_front();
    launch(id);
  }
}

void Scheduler::launch(const std::string& id) {
  auto& execution = *active_.at(id).execution;
  const auto& req = execution.request();
  if (auto* pool = poolFor(req.profile, req.network, req.limits.diskMb)) {
    // The claim may be answered right away (a ready child) or later, in arrival order.
    auto ticket = pool->claim([this, id](Result<pool::PooledChild> child) { onClaimed(id, std::move(child)); });
    if (auto it = active_.find(id); it != active_.end() && it->second.execution->state() == ExecState::Queued)
      it->second.execution->waitForChild(*pool, ticket);
    return;
  }
  // A JavaScript profile's sandboxes are started ahead of demand (started_pool.h): one that
  // is ready, or a sandbox of its own.
  if (auto it = startedPools_.find(req.profile); it != startedPools_.end() && it->second->fits(req.limits, req.network))
    if (auto sandbox = it->second->take()) {
      execution.startStarted(std::move(*sandbox));
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
  const ExecutionRequest& request = entry.execution->request();
  active_.erase(it);
  heldBytes_ -= std::min(heldBytes_, entry.bytes);
  std::erase(queue_, id);
  if (!request.session.empty())
    if (auto q = sessionQueues_.find(scoped(request.client, request.session)); q != sessionQueues_.end()) std::erase(q->second, id);
  // What is remembered for status and result; nothing when its client has gone, as nobody
  // can ask for it any more.
  if (!entry.orphaned) {
    json summary = {{"executionId", request.executionId}, {"state", "finished"},
                    {"elapsedMs", entry.execution->elapsedMs()}, {"usage", entry.execution->usageSoFar()}};
    summary["status"] = result ? (*result)["status"] : json("error");
    finished_[id] = summary;
    finishedOrder_.push_back(id);
    if (finishedOrder_.size() > kFinishedRemembered) {
      results_.forget(finishedOrder_.front());
      finished_.erase(finishedOrder_.front());
      finishedOrder_.pop_front();
    }
    if (result) results_.keep(id, *result);
  }
  // Its cgroup goes on the next turn too (scheduleReap), after the answer: its usage has
  // been read, and the rmdirs need not delay the client.
  reaper_.addLater(entry.execution->takeCgroup());
  // We may be inside one of the execution's own callbacks: destroy it on the next turn.
  graveyard_.push_back(std::move(entry.execution));
  scheduleReap();
  entry.done(std::move(result));
  startNext();
}

void Scheduler::scheduleReap() {
  if (reapScheduled_) return;
  reapScheduled_ = true;
  loop_.addTimer(std::chrono::milliseconds(0), [this] { reapCgroups(); });
}

void Scheduler::reapCgroups() {
  reapScheduled_ = false;
  graveyard_.clear();
  endedSessions_.clear();
  if (!reaper_.tryAll()) {
    reapScheduled_ = true;
    loop_.addTimer(std::chrono::milliseconds(20), [this] { reapCgroups(); });
  }
}

bool Scheduler::stop(uint64_t client, const std::string& executionId, StopReason reason) {
  auto it = active_.find(scoped(client, executionId));
  if (it == active_.end()) return false;
  it->second.execution->stop(reason);
  return true;
}

std::optional<json> Scheduler::status(uint64_t client, const std::string& executionId) const {
  std::string key = scoped(client, executionId);
  if (auto it = active_.find(key); it != active_.end()) {
    const auto& e = *it->second.execution;
    return json{{"executionId", executionId}, {"state", stateName(e.state())}, {"elapsedMs", e.elapsedMs()},
                {"usage", e.usageSoFar()}};
  }
  if (auto it = finished_.find(key); it != finished_.end()) return it->second;
  return std::nullopt;
}

Scheduler::Forget Scheduler::forget(uint64_t client, const std::string& executionId) {
  std::string key = scoped(client, executionId);
  if (active_.contains(key)) return Forget::NotFinished;
  if (!finished_.contains(key)) return Forget::Unknown;
  finished_.erase(key);
  std::erase(finishedOrder_, key);
  results_.forget(key);
  return Forget::Forgotten;
}

void Scheduler::dropClient(uint64_t client, StopReason reason) {
  std::vector<std::string> sessions, executions;
  for (const auto& [key, session] : sessions_)
    if (session->settings().client == client) sessions.push_back(session->settings().id);
  for (const auto& id : sessions) closeSession(client, id);
  for (auto& [key, entry] : active_)
    if (entry.execution->request().client == client) {
      entry.orphaned = true;
      executions.push_back(entry.execution->request().executionId);
    }
  for (const auto& id : executions) stop(client, id, reason);
  // What it finished is nobody's any more.
  std::string prefix = scoped(client, "");
  std::erase_if(finishedOrder_, [&](const std::string& key) {
    if (!key.starts_with(prefix)) return false;
    finished_.erase(key);
    results_.forget(key);
    return true;
  });
}

json Scheduler::executionList() const {
  std::vector<const Entry*> entries;
  for (const auto& [id, entry] : active_) entries.push_back(&entry);
  std::ranges::sort(entries, [](const Entry* a, const Entry* b) { return a->acceptedAt < b->acceptedAt; });
  auto now = std::chrono::steady_clock::now();
  json list = json::array();
  for (const Entry* entry : entries) {
    const Execution& e = *entry->execution;
    json usage = e.usageSoFar();
    json item = {{"executionId", e.request().executionId},
                 {"profile", e.request().profile},
                 {"state", stateName(e.state())},
                 {"ageMs", std::chrono::duration_cast<std::chrono::milliseconds>(now - entry->acceptedAt).count()},
                 {"elapsedMs", e.elapsedMs()},
                 {"cpuMs", usage.value("cpuUserMs", int64_t{0}) + usage.value("cpuSysMs", int64_t{0})}};
    if (!e.request().session.empty()) item["session"] = e.request().session;
    if (e.request().client != 0) item["client"] = e.request().client;
    list.push_back(std::move(item));
  }
  return list;
}

json Scheduler::summary() const {
  json pools = json::array();
  for (const auto& [name, pool] : pools_) pools.push_back(pool->status());
  for (const auto& [name, pool] : startedPools_) pools.push_back(pool->status());
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - startedAt_);
  return {{"uptimeMs", uptime.count()},
          {"running", running()},
          {"queued", queued()},
          {"queuedBytes", heldBytes_},
          {"executionsTotal", total_},
          {"executions", executionList()},
          {"sessions", [&] {
             json list = json::array();
             for (const auto& [id, session] : sessions_) {
               json item = session->toJson();
               if (session->settings().client != 0) item["client"] = session->settings().client;
               list.push_back(std::move(item));
             }
             return list;
           }()},
          {"pools", pools}};
}

void Scheduler::shutdown(StopReason reason) {
  // Every execution still here is answered now, with status "killed" and the output it
  // had produced: the event loop that would have carried its result has stopped.
  shuttingDown_ = true;
  std::vector<std::string> ids;
  for (const auto& [id, entry] : active_) ids.push_back(id);
  for (const auto& id : ids) {
    if (auto it = active_.find(id); it != active_.end()) it->second.execution->finishNow(reason);
  }
  graveyard_.clear();
  // With the loop stopped a session ends within terminate(), and its end takes it out of
  // sessions_ (sessionEnded): walk a copy of the ids.
  std::vector<std::string> open;
  for (const auto& [id, session] : sessions_) open.push_back(id);
  for (const auto& id : open) {
    if (auto it = sessions_.find(id); it != sessions_.end()) it->second->terminate("the server is stopping");
  }
  for (auto& [id, session] : sessions_) reaper_.add(session->takeCgroup());
  sessions_.clear();
  endedSessions_.clear();
  for (auto& [name, pool] : pools_) pool->shutdown();
  for (auto& [name, pool] : startedPools_) pool->shutdown();
  reaper_.drain(std::chrono::seconds(2));
}

// --- sessions ---------------------------------------------------------------------------

std::expected<std::string, SubmitError> Scheduler::submitToSession(ExecutionRequest request, Done done,
                                                                   Execution::OutputSink output,
                                                                   Execution::UsageSink usage, uint64_t serial,
                                                                   size_t bytes) {
  std::string sessionKey = scoped(request.client, request.session);
  auto it = sessions_.find(sessionKey);
  if (it == sessions_.end())
    return std::unexpected(SubmitError{SubmitError::Kind::BadSession, "unknown session '" + request.session + "'"});
  if (it->second->closing())
    return std::unexpected(SubmitError{SubmitError::Kind::BadSession, "unknown session '" + request.session +
                                                                          "': it has ended (" + it->second->endReason() + ")"});
  const Session& session = *it->second;
  const auto& settings = session.settings();
  if (request.profile != settings.profile)
    return std::unexpected(SubmitError{SubmitError::Kind::BadSession,
                                       "session '" + settings.id + "' runs profile '" + settings.profile + "', not '" + request.profile + "'"});
  if (request.network != settings.network)
    return std::unexpected(SubmitError{SubmitError::Kind::BadSession,
                                       "a session's network access is set by session/create"});
  // The sandbox exists: its memory, processes and disk are the session's.
  for (auto field : {&Limits::memoryMb, &Limits::maxProcesses, &Limits::diskMb}) {
    if (request.limits.*field != settings.limits.*field && request.limits.*field != ctx_.config.profiles.at(request.profile).limits.*field)
      return std::unexpected(SubmitError{SubmitError::Kind::BadSession,
                                         "memoryMb, maxProcesses and diskMb of a session are set by session/create"});
    request.limits.*field = settings.limits.*field;
  }
  auto& queue = sessionQueues_[sessionKey];
  if (queue.size() >= static_cast<size_t>(ctx_.options.maxQueue))
    return std::unexpected(SubmitError{SubmitError::Kind::QueueFull,
                                       "too many executions waiting for session '" + request.session + "'"});
  std::string visible = request.executionId, id = scoped(request.client, visible);
  enroll(std::move(request), std::move(done), std::move(output), std::move(usage), serial, bytes);
  queue.push_back(id);
  pumpSession(sessionKey);
  return visible;
}

void Scheduler::pumpSession(const std::string& sessionId) {
  auto it = sessions_.find(sessionId);
  auto q = sessionQueues_.find(sessionId);
  if (it == sessions_.end() || q == sessionQueues_.end() || q->second.empty()) return;
  if (it->second->state() != Session::State::Idle) return;
  std::string id = q->second.front();
  q->second.pop_front();
  active_.at(id).execution->startInSession(*it->second);
}

std::expected<void, SubmitError> Scheduler::createSession(SessionSettings settings, Done done) {
  auto open = std::count_if(sessions_.begin(), sessions_.end(), [](const auto& s) { return !s.second->closing(); });
  if (open >= ctx_.options.maxSessions)
    return std::unexpected(SubmitError{SubmitError::Kind::TooManySessions,
                                       "too many sessions (" + std::to_string(open) + " open); close one first"});
  uint64_t serial = ++sessionSerial_;
  if (settings.id.empty()) settings.id = "session-" + std::to_string(serial);
  std::string id = scoped(settings.client, settings.id);
  if (sessions_.count(id))
    return std::unexpected(SubmitError{SubmitError::Kind::DuplicateId, "session '" + settings.id + "' already exists"});
  auto* pool = poolFor(settings.profile, settings.network, settings.limits.diskMb);
  auto session = std::make_unique<Session>(loop_, ctx_, std::move(settings), serial);
  Session& s = *session;
  sessions_[id] = std::move(session);
  auto shared = std::make_shared<Done>(std::move(done));
  s.onReady([this, id, shared](Status st) {
    auto it = sessions_.find(id);
    if (!st || it == sessions_.end()) {
      (*shared)(std::unexpected(st ? Error{"the session ended while starting"} : st.error()));
      return;
    }
    const auto& set = it->second->settings();
    (*shared)(json{{"session", set.id},
                   {"profile", set.profile},
                   {"limits", limitsToJson(set.limits)},
                   {"pooled", it->second->usesPool()}});
    pumpSession(id);
  });
  s.onFree([this, id] { pumpSession(id); });
  s.onEnded([this, id] { sessionEnded(id); });
  if (pool) {
    pool->claim([this, id, pool](Result<pool::PooledChild> child) {
      auto it = sessions_.find(id);
      if (!child) {
        if (it != sessions_.end()) it->second->terminate(child.error().message());
        return;
      }
      if (it == sessions_.end()) {
        ::syscall(SYS_pidfd_send_signal, child->pidfd.get(), SIGKILL, nullptr, 0);
        reaper_.add(std::move(child->cgroup));
        return;
      }
      it->second->startPooled(*pool, std::move(*child));
    });
  } else if (auto st = s.startOwn(); !st) {
    s.terminate(st.error().message());
  }
  return {};
}

void Scheduler::sessionEnded(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  std::string why = it->second->endReason(), visible = it->second->settings().id;
  reaper_.add(it->second->takeCgroup());
  endedSessions_.push_back(std::move(it->second));
  sessions_.erase(it);
  scheduleReap();
  // Executions still waiting for it cannot run any more.
  if (auto q = sessionQueues_.find(id); q != sessionQueues_.end()) {
    auto waiting = std::move(q->second);
    sessionQueues_.erase(q);
    for (const auto& execId : waiting) retire(execId, std::unexpected(Error{"session '" + visible + "' ended: " + why}));
  }
}

std::optional<std::string> Scheduler::sessionProfile(uint64_t client, const std::string& id) const {
  auto it = sessions_.find(scoped(client, id));
  if (it == sessions_.end()) return std::nullopt;
  return it->second->settings().profile;
}

bool Scheduler::closeSession(uint64_t client, const std::string& id) {
  std::string key = scoped(client, id);
  auto it = sessions_.find(key);
  if (it == sessions_.end() || it->second->closing()) return false;
  // Its running execution answers "killed"; the waiting ones are answered when it ends.
  if (auto q = sessionQueues_.find(key); q != sessionQueues_.end()) {
    auto waiting = q->second;  // each stop() below retires one, which edits the queue
    for (const auto& execId : waiting) {
      if (auto e = active_.find(execId); e != active_.end()) e->second.execution->stop(StopReason::Killed);
    }
  }
  for (auto& [execId, entry] : active_) {
    if (inSession(entry, client, id) && entry.execution->state() == ExecState::Running)
      entry.execution->markStopped(StopReason::Killed);
  }
  if (auto s = sessions_.find(key); s != sessions_.end()) s->second->terminate("closed on request");
  return true;
}

std::optional<json> Scheduler::stopSession(uint64_t client, const std::string& id, StopReason reason) {
  auto it = sessions_.find(scoped(client, id));
  if (it == sessions_.end()) return std::nullopt;
  bool stopped = false;
  for (auto& [execId, entry] : active_) {
    if (inSession(entry, client, id) && entry.execution->state() == ExecState::Running) {
      entry.execution->stop(reason);
      stopped = true;
    }
  }
  return json{{"killed", stopped}, {"state", sessionStateName(it->second->state())}};
}

}  // namespace pycell::exec
