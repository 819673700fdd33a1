#include "pycell/server/connection.h"

#include <sys/syscall.h>
#include <unistd.h>

#include "pycell/error.h"
#include "pycell/process/log.h"
#include "pycell/process/unique_fd.h"
#include "pycell/protocol/untrusted_json.h"

namespace pycell::server {

using namespace protocol;

namespace {
// The data of a -32000 error: the reason, and for a failed isolation step which step, its
// errno and on what, the same on every path (sandbox/isolate.h).
json sandboxFailureData(const Error& e) {
  json data = {{"reason", e.message()}};
  if (!e.step.empty()) data["isolation"] = {{"step", e.step}, {"errno", e.err}, {"detail", e.detail}};
  return data;
}

// Before a token-protected connection has presented its token, it may send only small
// messages, and only for a while: a stranger cannot hold memory or a connection slot.
constexpr size_t kUnadmittedMaxBytes = 64u << 10;
constexpr auto kAdmitWithin = std::chrono::seconds(10);

size_t firstMaxBytes(const sandbox::SandboxContext& ctx, const ConnectionScope& scope) {
  return scope.token.empty() ? ctx.options.maxMessageBytes : std::min(ctx.options.maxMessageBytes, kUnadmittedMaxBytes);
}
}  // namespace

std::string requestKey(const json& id) { return id.dump(); }

// Compared in constant time over the longer of the two: how long it takes tells nothing of
// where they differ.
bool sameSecret(std::string_view given, std::string_view expected) {
  size_t n = std::max(given.size(), expected.size());
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char a = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    unsigned char b = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
    diff = static_cast<unsigned char>(diff | (a ^ b));
  }
  return diff == 0;
}

Connection::Connection(EventLoop& loop, const sandbox::SandboxContext& ctx, exec::Scheduler& scheduler, Framing framing,
                       int inFd, int outFd, Dialect dialect, ConnectionScope scope, Ended ended)
    : loop_(loop),
      ctx_(ctx),
      scheduler_(scheduler),
      // A shared server stopping has many clients to say goodbye to: each gets a moment.
      transport_(loop, *this, framing, inFd, outFd,
                 {.maxMessageBytes = firstMaxBytes(ctx, scope),
                  .finalFlush = scope.shared ? std::chrono::milliseconds(250) : std::chrono::milliseconds(5000)}),
      // Replies may outlive the connection (an execution answers after its client left).
      dispatcher_([this, alive = alive_](json m) {
        if (*alive) send(std::move(m));
      }),
      dialect_(dialect),
      scope_(std::move(scope)),
      ended_(std::move(ended)),
      admitted_(scope_.token.empty()) {
  if (dialect_ == Dialect::Mcp) bindMcpMethods();
  else bindMethods();
  dispatcher_.setGate([this](std::string_view method) { return gate(method); });
  dispatcher_.setLimits({.maxDepth = kClientMaxDepth, .maxBytes = firstMaxBytes(ctx, scope_)});
}

Connection::~Connection() {
  *alive_ = false;
  if (admitTimer_) loop_.cancelTimer(*admitTimer_);
  if (clientPidFd_) loop_.unwatch(clientPidFd_.get());
}

void Connection::bindMethods() {
  auto bind = [this](const char* method, void (Connection::*fn)(const json&, Reply)) {
    dispatcher_.onRequest(method, [this, fn](const json& params, Reply reply) { (this->*fn)(params, std::move(reply)); });
  };
  bind("initialize", &Connection::initialize);
  bind("execute", &Connection::execute);
  bind("status", &Connection::status);
  bind("kill", &Connection::kill);
  bind("result", &Connection::result);
  bind("forget", &Connection::forget);
  bind("session/create", &Connection::createSession);
  bind("analyze", &Connection::analyze);
  bind("session/close", &Connection::closeSession);
  // shutdown lets the executions in flight finish, then answers; an exit (or EOF) that
  // arrives meanwhile takes effect once it has answered. So a script may write
  // execute, shutdown, exit and close its end, and still get its result.
  // On a listener's connection, shutdown and exit end that connection only.
  dispatcher_.onRequest("shutdown", [this](const json&, Reply reply) {
    lifecycle_ = Lifecycle::ShutDown;
    draining_ = true;
    auto shared = std::make_shared<Reply>(std::move(reply));
    whenIdle([this, shared] {
      draining_ = false;
      shared->result(nullptr);
      if (exitRequested_) end({0, exec::StopReason::Shutdown});
    });
  });
  dispatcher_.onNotification("exit", [this](const json&) {
    if (draining_) exitRequested_ = true;
    else end({lifecycle_ == Lifecycle::ShutDown ? 0 : 1, exec::StopReason::Shutdown});
  });
  dispatcher_.onNotification("$/cancelRequest", [this](const json& params) { cancel(params); });
}

std::optional<RpcError> Connection::gate(std::string_view method) const {
  if (!admitted_ && method != "initialize")
    return RpcError{code::kNotPermitted, "this server needs a token: send initialize with params.token first"};
  if (lifecycle_ == Lifecycle::ShutDown) return RpcError{code::kInvalidRequest, "the server is shut down; send exit"};
  // LSP clients must initialize first; scripts speaking NDJSON may go straight to execute.
  if (dialect_ == Dialect::Pycell && lifecycle_ == Lifecycle::Uninitialized && method != "initialize" && transport_.framing() == Framing::Lsp)
    return RpcError{code::kServerNotInitialized, "server not initialized: send initialize first"};
  return std::nullopt;
}

Status Connection::watchClientProcess(int pid) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) return std::unexpected(sysError("pidfd_open(client process " + std::to_string(pid) + ")"));
  if (clientPidFd_) loop_.unwatch(clientPidFd_.get());
  clientPidFd_ = std::move(fd);
  return loop_.watch(clientPidFd_.get(), EPOLLIN, [this, pid](uint32_t) {
    log::info("client process " + std::to_string(pid) + " exited; shutting down");
    loop_.unwatch(clientPidFd_.get());
    end({0, exec::StopReason::Shutdown});
  });
}

Status Connection::start() {
  if (auto st = transport_.start(); !st) return st;
  if (!admitted_) {
    admitTimer_ = loop_.addTimer(kAdmitWithin, [this] {
      admitTimer_.reset();
      if (admitted_) return;
      log::warn(scope_.peer + ": no initialize with the token within " + std::to_string(kAdmitWithin.count()) + " s; closed");
      send(protocol::makeError(nullptr, code::kNotPermitted, "no initialize with the token within " +
                                                                 std::to_string(kAdmitWithin.count()) + " s; the connection is closed"));
      end({0, exec::StopReason::InputClosed});
    });
  }
  if (!ctx_.isolation.complete() && dialect_ == Dialect::Pycell) {
    // The transport holds it until the client's framing is known (PROTOCOL.md: replies use
    // the client's framing).
    notify("window/logMessage", {{"type", 2}, {"message", "pycell runs with degraded isolation: " + ctx_.isolation.missingSummary()}});
  }
  return {};
}

void Connection::end(End how) {
  if (over_) return;
  over_ = true;
  if (ended_) ended_(how);
}

void Connection::onFrame(const Frame& frame) {
  if (over_) return;  // a refused token ends the connection; what follows it is not read
  dispatcher_.handleFrame(frame);  // answers or logs whatever the frame holds; never throws
}

void Connection::onInputClosed() {
  if (draining_) {
    exitRequested_ = true;  // after shutdown: let it finish what it is doing
    return;
  }
  log::debug(scope_.peer + ": end of input; stopping its sandboxes");
  end({0, exec::StopReason::InputClosed});
}

// The client closed its end: nobody is listening, so stop like EOF.
void Connection::onOutputClosed(const Error& error) {
  log::warn(scope_.peer + ": " + error.message());
  end({0, exec::StopReason::Shutdown});
}

void Connection::onTransportFailed(const Error& error) {
  log::error(scope_.peer + ": " + error.message());
  end({1, exec::StopReason::Shutdown});
}

void Connection::whenIdle(std::function<void()> fn) {
  onIdle_ = std::move(fn);
  checkIdle();
}

void Connection::checkIdle() {
  if (!onIdle_ || !executionByRequest_.empty()) return;
  auto idle = std::move(onIdle_);
  onIdle_ = nullptr;
  idle();
}

std::optional<exec::SubmitError> Connection::overOwnLimit() const {
  if (scope_.maxExecutions <= 0 || executionByRequest_.size() < static_cast<size_t>(scope_.maxExecutions)) return std::nullopt;
  return exec::SubmitError{exec::SubmitError::Kind::QueueFull,
                           "too many executions of this connection (" + std::to_string(executionByRequest_.size()) +
                               " queued or running; at most " + std::to_string(scope_.maxExecutions) + ")"};
}

bool Connection::admitted(const json& params, Reply& reply) {
  if (admitted_) return true;
  std::string given = params.is_object() && params.contains("token") && params["token"].is_string() ? params["token"].get<std::string>() : "";
  if (sameSecret(given, scope_.token)) {
    admitted_ = true;
    if (admitTimer_) loop_.cancelTimer(*admitTimer_);
    admitTimer_.reset();
    transport_.setMaxMessageBytes(ctx_.options.maxMessageBytes);
    dispatcher_.setLimits({.maxDepth = kClientMaxDepth, .maxBytes = ctx_.options.maxMessageBytes});
    return true;
  }
  log::warn(scope_.peer + ": " + (given.empty() ? "no token" : "a wrong token") + " in initialize; connection refused");
  reply.error(code::kNotPermitted, given.empty() ? "this server needs a token: initialize takes params.token"
                                                 : "the token is wrong; the connection is closed");
  end({0, exec::StopReason::InputClosed});
  return false;
}

void Connection::send(json message) {
  std::string text = dumpSafe(message);
  if (text.empty()) {
    log::error("an answer could not be written: out of memory");
    return;
  }
  transport_.send(text);
}

void Connection::notify(const std::string& method, json params) {
  send({{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}});
}

void Connection::initialize(const json& params, Reply reply) {
  if (!admitted(params, reply)) return;
  // A shared server outlives its clients: one client's process does not end it.
  if (auto pid = decodeInitialize(params).processId; pid && !scope_.shared) {
    if (auto st = watchClientProcess(*pid); !st) log::warn(st.error().message());
  }
  lifecycle_ = Lifecycle::Running;
  json profiles = json::array();
  for (const auto& [name, profile] : ctx_.config.profiles)
    profiles.push_back({{"name", name}, {"description", profile.description}, {"language", languageName(profile.language)},
                        {"limits", limitsToJson(profile.limits)}});
  reply.result({{"serverInfo", {{"name", "pycell"}, {"version", PYCELL_VERSION}}},
                {"protocolVersion", 1},
                {"capabilities",
                 {{"execute", true}, {"status", true}, {"kill", true}, {"cancel", true}, {"streaming", true},
                  {"analyze", true}, {"sessions", true}, {"results", true}, {"framing", framingName(transport_.framing())}}},
                {"isolation", ctx_.isolation.toJson(ctx_.options.allowDegraded)},
                {"profiles", profiles}});
}

SessionProfileLookup Connection::sessionProfiles() const {
  // In a session, the profile defaults to the session's own.
  return [this](const std::string& session) { return scheduler_.sessionProfile(scope_.client, session); };
}

void Connection::execute(const json& params, Reply reply) {
  auto decoded = decodeExecute(params, ctx_.config, sessionProfiles());
  if (!decoded) throw InvalidParams(decoded.error().message);
  bool stream = decoded->stream;
  std::string key = requestKey(reply.id());
  exec::Execution::OutputSink output;
  // LSP work-done progress, when the client asked for it with a token.
  json token = decoded->workDoneToken;
  auto progress = [this, alive = alive_, token](json value) {
    if (*alive && !token.is_null()) notify("$/progress", {{"token", token}, {"value", std::move(value)}});
  };
  progress({{"kind", "begin"}, {"title", "pycell: running Python"}, {"cancellable", true}});
  if (stream || !token.is_null()) {
    auto lastReport = std::make_shared<std::chrono::steady_clock::time_point>();
    output = [this, alive = alive_, key, stream, progress, lastReport](const std::string& streamName, std::string_view text) {
      if (!*alive) return;
      auto now = std::chrono::steady_clock::now();
      if (now - *lastReport > std::chrono::milliseconds(250)) {  // a flood must not become a progress flood
        *lastReport = now;
        progress({{"kind", "report"}, {"message", streamName == "stderr" ? "writing to stderr" : "writing output"}});
      }
      if (!stream) return;
      notify("execute/output", {{"executionId", executionByRequest_.count(key) ? executionByRequest_[key] : ""},
                                {"stream", streamName},
                                {"text", std::string(text)}});
    };
  }
  auto answer = [](Reply& reply, Result<json>&& result) {
    if (result.has_value()) return reply.result(std::move(result.value()));
    reply.error(code::kSandboxFailed, "the sandbox could not be created", sandboxFailureData(result.error()));
  };
  auto finished = [progress](const Result<json>& result) {
    progress({{"kind", "end"}, {"message", result ? (*result)["status"].get<std::string>() : std::string("not started")}});
  };
  auto rejected = [](Reply& reply, const exec::SubmitError& e) {
    bool full = e.kind == exec::SubmitError::Kind::QueueFull || e.kind == exec::SubmitError::Kind::TooManySessions;
    reply.error(full ? code::kQueueFull : code::kInvalidParams, e.message);
  };
  submitTracked(std::move(decoded->request), std::move(reply), std::move(output), answer, rejected, finished, stream);
}

void Connection::submitTracked(exec::ExecutionRequest request, Reply reply, exec::Execution::OutputSink output,
                           std::function<void(Reply&, Result<json>&&)> answer,
                           std::function<void(Reply&, const exec::SubmitError&)> rejected,
                           std::function<void(const Result<json>&)> finished, bool streamUsage) {
  std::string key = requestKey(reply.id());
  if (auto refusal = overOwnLimit()) return rejected(reply, *refusal);
  request.client = scope_.client;
  auto shared = std::make_shared<Reply>(std::move(reply));
  auto done = [this, alive = alive_, shared, key, answer = std::move(answer), finished = std::move(finished)](Result<json> result) {
    if (!*alive) return;  // its client has gone; nobody to answer
    std::string id = executionByRequest_.count(key) ? executionByRequest_[key] : "";
    executionByRequest_.erase(key);
    if (finished) finished(result);
    if (!cancelled_.erase(id)) answer(*shared, std::move(result));
    // LSP answers a cancelled request with -32800; MCP sends no response at all.
    else if (dialect_ == Dialect::Mcp) shared->withdraw();
    else shared->error(code::kRequestCancelled, "request cancelled");
    checkIdle();
  };
  // A sandbox that fails to start answers from inside submit; hence the checks below.
  exec::Execution::UsageSink usage;
  if (streamUsage) {
    usage = [this, alive = alive_](const json& sample) {
      if (*alive) notify("execute/usage", sample);
    };
  }
  auto submitted = scheduler_.submit(std::move(request), std::move(done), std::move(output), std::move(usage));
  if (!submitted) {
    if (!shared->answered()) rejected(*shared, submitted.error());
    return;
  }
  if (!shared->answered()) executionByRequest_[key] = *submitted;
}

void Connection::status(const json& params, Reply reply) {
  auto decoded = decodeStatus(params);
  if (!decoded) throw InvalidParams(decoded.error().message);
  if (!decoded->executionId) {
    if (!scope_.admin)
      return reply.error(code::kNotPermitted, "the server's status (status without an executionId) is for the owner of its socket; ask for an executionId of yours");
    return reply.result(scheduler_.summary());
  }
  auto s = scheduler_.status(scope_.client, *decoded->executionId);
  if (!s) throw InvalidParams(unknownExecution().message);
  reply.result(*s);
}

void Connection::kill(const json& params, Reply reply) {
  auto decoded = decodeKill(params);
  if (!decoded) throw InvalidParams(decoded.error().message);
  const std::string& id = decoded->id;
  if (decoded->target == KillParams::Target::Session) {
    auto stopped = scheduler_.stopSession(scope_.client, id, exec::StopReason::Killed);
    if (!stopped) throw InvalidParams(unknownSession(id).message);
    return reply.result(*stopped);
  }
  auto before = scheduler_.status(scope_.client, id);
  if (!before) throw InvalidParams(unknownExecution().message);
  bool killed = (*before)["state"] != "finished" && scheduler_.stop(scope_.client, id, exec::StopReason::Killed);
  auto after = scheduler_.status(scope_.client, id);
  reply.result({{"killed", killed}, {"state", after ? (*after)["state"] : json("finished")}});
}

// A finished execution's result again, as `execute` answered it, while the server keeps it.
void Connection::result(const json& params, Reply reply) {
  auto id = decodeExecutionId(params, "result");
  if (!id) throw InvalidParams(id.error().message);
  if (const json* kept = scheduler_.result(scope_.client, *id)) return reply.result(*kept);
  auto s = scheduler_.status(scope_.client, *id);
  if (!s) throw InvalidParams(unknownExecution().message);
  if ((*s)["state"] != "finished") throw InvalidParams("execution '" + *id + "' has not finished (state " + (*s)["state"].get<std::string>() + ")");
  throw InvalidParams("the result of execution '" + *id + "' is no longer kept (status " + (*s)["status"].get<std::string>() + ")");
}

void Connection::forget(const json& params, Reply reply) {
  auto id = decodeExecutionId(params, "forget");
  if (!id) throw InvalidParams(id.error().message);
  switch (scheduler_.forget(scope_.client, *id)) {
    case exec::Scheduler::Forget::Forgotten: return reply.result({{"forgotten", true}});
    case exec::Scheduler::Forget::Unknown: return reply.result({{"forgotten", false}});
    case exec::Scheduler::Forget::NotFinished:
      throw InvalidParams("execution '" + *id + "' has not finished: kill it first, then forget it");
  }
}

void Connection::createSession(const json& params, Reply reply) {
  auto settings = decodeSessionCreate(params, ctx_.config);
  if (!settings) throw InvalidParams(settings.error().message);
  settings->client = scope_.client;
  auto shared = std::make_shared<Reply>(std::move(reply));
  auto created = scheduler_.createSession(std::move(*settings), [shared](Result<json> result) {
    if (shared->answered()) return;
    if (!result) shared->error(code::kSandboxFailed, "the session could not be started", sandboxFailureData(result.error()));
    else shared->result(std::move(*result));
  });
  if (!created && !shared->answered()) {
    bool full = created.error().kind == exec::SubmitError::Kind::TooManySessions;
    shared->error(full ? code::kQueueFull : code::kInvalidParams, created.error().message);
  }
}

// Static analysis with Python's own ast, inside a sandbox of the profile (the code under
// analysis is never run): src/python/analyze.py is the program, the code and the profile's
// policy its inputs, the diagnostics its value.
void Connection::analyze(const json& params, Reply reply) {
  auto decoded = decodeAnalyze(params, ctx_.config);
  if (!decoded) throw InvalidParams(decoded.error().message);
  exec::ExecutionRequest request = analyzeRequest(std::move(*decoded), ctx_);
  submitTracked(
      std::move(request), std::move(reply), {},
      [](Reply& r, Result<json>&& result) {
        if (!result) return r.error(code::kSandboxFailed, "the sandbox could not be created", sandboxFailureData(result.error()));
        auto diagnostics = analyzeDiagnostics(*result);
        if (!diagnostics)
          return r.error(code::kInternalError, "the analysis did not complete",
                         json{{"status", (*result)["status"]}, {"error", (*result)["error"]}, {"stderr", (*result)["stderr"]}});
        r.result({{"diagnostics", std::move(*diagnostics)}});
      },
      [](Reply& r, const exec::SubmitError& e) {
        r.error(e.kind == exec::SubmitError::Kind::QueueFull ? code::kQueueFull : code::kInvalidParams, e.message);
      });
}

void Connection::closeSession(const json& params, Reply reply) {
  auto decoded = decodeSessionClose(params);
  if (!decoded) throw InvalidParams(decoded.error().message);
  reply.result({{"closed", scheduler_.closeSession(scope_.client, decoded->session)}});
}

void Connection::cancel(const json& params) {
  auto id = decodeCancel(params);
  if (!id) return;
  auto it = executionByRequest_.find(requestKey(*id));
  if (it == executionByRequest_.end()) return;
  cancelled_.insert(it->second);
  scheduler_.stop(scope_.client, it->second, exec::StopReason::Cancelled);
}

}  // namespace pycell::server
