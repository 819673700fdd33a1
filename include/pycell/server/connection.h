#pragma once
// One client's conversation with the server: its transport (transport.h) and the method
// table of PROTOCOL.md bound to a shared scheduler. A connection is stdio (the only client:
// the server lives and ends with it) or one of a listener's (server.h): then it sees, stops
// and attaches to only its own executions and sessions (ExecutionRequest::client), and its
// end ends only its own runs.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "pycell/error.h"
#include "pycell/exec/scheduler.h"
#include "pycell/process/event_loop.h"
#include "pycell/process/unique_fd.h"
#include "pycell/protocol/dispatcher.h"
#include "pycell/protocol/framing.h"
#include "pycell/sandbox/context.h"
#include "pycell/server/params.h"
#include "pycell/server/transport.h"

namespace pycell::server {

using protocol::json;

// The key under which a request id is remembered (ids may be numbers or strings).
[[nodiscard]] std::string requestKey(const json& id);
// Whether a presented secret equals the expected one, in time that depends on their lengths only.
[[nodiscard]] bool sameSecret(std::string_view given, std::string_view expected);

// Which method table a connection binds: pycell's own protocol (PROTOCOL.md sections 1-4)
// or the Model Context Protocol's (section 5), over the same transport and executions.
enum class Dialect { Pycell, Mcp };

// What a connection may do and see.
struct ConnectionScope {
  uint64_t client = 0;  // its number in the scheduler (0: the stdio client, the only one)
  bool shared = false;  // one of a listener's connections
  bool admin = true;    // may read the server's view (`status` without an id)
  // Non-empty: `initialize` must carry this token before anything else runs.
  std::string token;
  // Executions of this connection queued or running at once; 0: only the server's limits.
  int maxExecutions = 0;
  std::string peer = "stdio";  // who it is, for the log
};

class Connection : private MessageHandler {
 public:
  // Why it ended: the code a stdio server exits with, and what its runs are told.
  struct End {
    int exitCode = 0;
    exec::StopReason reason = exec::StopReason::Shutdown;
  };
  // Called once, from inside the event loop; the owner must not destroy the connection
  // from within it (on the loop's next turn is fine).
  using Ended = std::function<void(End)>;

  // The fds are borrowed.
  Connection(EventLoop& loop, const sandbox::SandboxContext& ctx, exec::Scheduler& scheduler,
             protocol::Framing framing, int inFd, int outFd, Dialect dialect, ConnectionScope scope, Ended ended);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() override;

  // Starts reading (and tells a client of degraded isolation).
  [[nodiscard]] Status start();
  // The stdio client's process: the connection ends when it dies.
  [[nodiscard]] Status watchClientProcess(int pid);
  // After the loop stopped: the last answers get a bounded time to go out.
  void finalFlush() { transport_.finalFlush(); }
  [[nodiscard]] const ConnectionScope& scope() const { return scope_; }
  // Bytes of answers waiting for the client.
  [[nodiscard]] size_t pendingBytes() const { return transport_.pendingBytes(); }

 private:
  enum class Lifecycle { Uninitialized, Running, ShutDown };

  void bindMethods();
  void bindMcpMethods();  // mcp.cc
  // MessageHandler: what the transport reads, and the ends of its streams.
  void onFrame(const protocol::Frame& frame) override;
  void onInputClosed() override;
  void onOutputClosed(const Error& error) override;
  void onTransportFailed(const Error& error) override;
  void send(json message);
  void notify(const std::string& method, json params);
  void end(End how);
  std::optional<protocol::RpcError> gate(std::string_view method) const;
  // A token-protected connection's `initialize`: false (answered, and the connection ends)
  // unless it carries the token.
  bool admitted(const json& params, protocol::Reply& reply);
  // Calls `fn` once none of this connection's executions is in flight.
  void whenIdle(std::function<void()> fn);
  void checkIdle();
  // Why this connection may not queue one more execution (nullopt: it may).
  [[nodiscard]] std::optional<exec::SubmitError> overOwnLimit() const;

  void initialize(const json& params, protocol::Reply reply);
  void execute(const json& params, protocol::Reply reply);
  void status(const json& params, protocol::Reply reply);
  void kill(const json& params, protocol::Reply reply);
  void result(const json& params, protocol::Reply reply);
  void forget(const json& params, protocol::Reply reply);
  void cancel(const json& params);
  void createSession(const json& params, protocol::Reply reply);
  void analyze(const json& params, protocol::Reply reply);
  // The profile of an open session, for requests that name it but no profile.
  [[nodiscard]] SessionProfileLookup sessionProfiles() const;
  void closeSession(const json& params, protocol::Reply reply);
  // Submits an execution and answers `reply` once it ends: `answer` shapes the reply from the
  // result (pycell: the result itself; MCP: tool content), `rejected` when it cannot be
  // queued, `finished` (optional) first in any case. Cancellation is handled here.
  void submitTracked(exec::ExecutionRequest request, protocol::Reply reply, exec::Execution::OutputSink output,
                     std::function<void(protocol::Reply&, Result<json>&&)> answer,
                     std::function<void(protocol::Reply&, const exec::SubmitError&)> rejected,
                     std::function<void(const Result<json>&)> finished = {}, bool streamUsage = false);

  // MCP (mcp.cc)
  void mcpInitialize(const json& params, protocol::Reply reply);
  void mcpCallTool(const json& params, protocol::Reply reply);
  void mcpCreateSession(const json& args, protocol::Reply reply);

  EventLoop& loop_;
  const sandbox::SandboxContext& ctx_;
  exec::Scheduler& scheduler_;
  // False once the connection is gone: the callbacks it gave the scheduler (and the replies
  // it handed out) may outlive it, and then do nothing.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  Transport transport_;
  protocol::Dispatcher dispatcher_;
  Dialect dialect_;
  ConnectionScope scope_;
  Ended ended_;
  bool over_ = false;  // ended_ was called
  Lifecycle lifecycle_ = Lifecycle::Uninitialized;
  bool admitted_ = false;       // presented the token (or none is needed)
  bool draining_ = false;       // shutdown received; its reply waits for the executions in flight
  bool exitRequested_ = false;  // exit (or EOF) arrived while draining
  std::function<void()> onIdle_;
  std::optional<EventLoop::TimerId> admitTimer_;  // ends a connection that never presents its token
  UniqueFd clientPidFd_;
  std::map<std::string, std::string> executionByRequest_;  // request id (dumped) -> executionId
  std::set<std::string> cancelled_;
  std::string mcpVersion_;  // the MCP protocol version initialize agreed on (mcp.cc)
};

}  // namespace pycell::server
