#pragma once
// The JSON-RPC server: binds every method of PROTOCOL.md in one table, dispatches the frames
// its transport (transport.h) reads from stdin, and hands replies and notifications back to
// the transport to write to stdout. It owns the lifecycle (initialize, shutdown, exit).
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/context.h"
#include "pycell/exec/scheduler.h"
#include "pycell/process/event_loop.h"
#include "pycell/protocol/dispatcher.h"
#include "pycell/protocol/framing.h"
#include "pycell/server/params.h"
#include "pycell/server/transport.h"

namespace pycell::server {

using protocol::json;

// The key under which a request id is remembered (ids may be numbers or strings).
[[nodiscard]] std::string requestKey(const json& id);

class Server : private MessageHandler {
 public:
  // Which method table the server binds: pycell's own protocol (PROTOCOL.md sections 1-4)
  // or the Model Context Protocol's (section 5), over the same transport and executions.
  enum class Dialect { Pycell, Mcp };

  Server(EventLoop& loop, const sandbox::SandboxContext& ctx, protocol::Framing framing, int inFd, int outFd,
         Dialect dialect = Dialect::Pycell);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() override;

  // Watches the client process; the server exits when it dies.
  [[nodiscard]] Status watchClientProcess(int pid);
  // Runs until `exit`, EOF, a signal or the client's death; returns the exit code.
  int run();

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
  void quit(int code);
  std::optional<protocol::RpcError> gate(std::string_view method) const;

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
  Transport transport_;  // before the scheduler: its executions' last answers go through it
  exec::Scheduler scheduler_;
  protocol::Dispatcher dispatcher_;
  Lifecycle lifecycle_ = Lifecycle::Uninitialized;
  Dialect dialect_;
  int exitCode_ = 0;
  bool draining_ = false;        // shutdown received; its reply waits for the executions in flight
  bool exitRequested_ = false;   // exit (or EOF) arrived while draining
  bool inputClosed_ = false;     // the loop stopped at end of input (runs in flight: InputClosed)
  UniqueFd signalFd_;
  UniqueFd clientPidFd_;
  std::map<std::string, std::string> executionByRequest_;  // request id (dumped) -> executionId
  std::set<std::string> cancelled_;
  std::string mcpVersion_;  // the MCP protocol version initialize agreed on (mcp.cc)
};

}  // namespace pycell::server
