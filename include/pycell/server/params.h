#pragma once
// Method params, decoded at the edge: one function per method turns a request's params (or
// the typed values of `pycell run` and the MCP tools) into the structs the run layer takes.
// Every message here is what a client reads after "invalid params" (-32602, or an MCP tool
// error); the run layer below never sees params JSON.
#include <expected>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "pycell/exec/execution.h"
#include "pycell/exec/session.h"
#include "pycell/sandbox/config.h"
#include "pycell/sandbox/context.h"

namespace pycell::server {

using nlohmann::json;

// Why params were refused; `message` is the error's text, exactly as the client gets it.
struct ParamError {
  std::string message;
};

template <class T>
using Decoded = std::expected<T, ParamError>;

// The profile of an open session, for a request that names the session but no profile.
using SessionProfileLookup = std::function<std::optional<std::string>(const std::string& session)>;

// The profile a request runs under. `profile` (its own, else its session's) must serve
// `language` when both are named; with no profile, the language's own: "default" for Python
// (and when no language is named), "javascript" (else the first profile serving it) for
// JavaScript. Refused: an unknown language, an unknown profile, a mismatch.
[[nodiscard]] Decoded<std::string> profileForLanguage(const Config& config, std::optional<std::string> profile,
                                                      const std::string& language);

// --- execute --------------------------------------------------------------------------
struct ExecuteParams {
  exec::ExecutionRequest request;
  bool stream = false;          // execute/output and execute/usage notifications
  json workDoneToken = nullptr;  // LSP progress: a string or integer token, else null
};
[[nodiscard]] Decoded<ExecuteParams> decodeExecute(const json& params, const Config& config,
                                                   const SessionProfileLookup& sessionProfile = {});

// An execution asked for with typed values (`pycell run`, check, MCP run_python), checked
// as execute params are: the profile exists, the limits are in range, network is allowed.
struct RunArgs {
  std::string code{};
  std::string profile{};            // empty: the session's, else "default"
  std::string session{};            // empty: a sandbox of its own
  std::optional<json> inputs{};     // bound to `inputs` in the program
  json limits = nullptr;            // null, or execute's `limits` member ({timeoutMs: ...})
  bool network = false;
  // A limit above the profile's is lowered to it rather than refused (the run_python tool's
  // promise); values out of range are refused all the same.
  bool lowerToProfile = false;
  std::map<std::string, std::string> env{};  // over the profile's env (checked by decodeEnv)
  json returnFiles = nullptr;                // null, or glob patterns (checked as execute's)
  std::string filename{};                    // empty, or execute's `filename` (checked as it is)
  std::string language{};                    // empty, "python" or "javascript" (as execute's)
};
[[nodiscard]] Decoded<exec::ExecutionRequest> runRequest(RunArgs args, const Config& config,
                                                         const SessionProfileLookup& sessionProfile = {});

// --- session/create, session/close ----------------------------------------------------
[[nodiscard]] Decoded<exec::SessionSettings> decodeSessionCreate(const json& params, const Config& config);
// Typed (MCP create_session): an id may be empty (the server picks one).
struct SessionArgs {
  std::string id{};
  std::string profile{};   // empty: the language's default profile
  std::string language{};  // empty, "python" or "javascript"
  json limits = nullptr;
  bool network = false;
};
[[nodiscard]] Decoded<exec::SessionSettings> sessionSettings(const SessionArgs& args, const Config& config);

struct SessionCloseParams {
  std::string session{};
};
[[nodiscard]] Decoded<SessionCloseParams> decodeSessionClose(const json& params);

// --- status, kill, analyze, initialize, $/cancelRequest --------------------------------
struct StatusParams {
  std::optional<std::string> executionId;  // none: the server's summary
};
[[nodiscard]] Decoded<StatusParams> decodeStatus(const json& params);

// `result` and `forget` name one execution: {executionId}.
[[nodiscard]] Decoded<std::string> decodeExecutionId(const json& params, const char* method);

struct KillParams {
  enum class Target { Execution, Session } target = Target::Execution;
  std::string id;  // the executionId or the session id
};
[[nodiscard]] Decoded<KillParams> decodeKill(const json& params);

struct AnalyzeParams {
  std::string code{};
  std::string profile{};   // a configured profile; empty: the language's default
  std::string language{};  // empty, "python" or "javascript"
};
[[nodiscard]] Decoded<AnalyzeParams> decodeAnalyze(const json& params, const Config& config);
// The run that answers `analyze` (and `pycell run --analyze`): src/python/analyze.py in a
// sandbox of the profile, the code and the profile's policy its inputs, the diagnostics its
// value; pycell's own code (no policy, no activity), at most 20 s.
[[nodiscard]] exec::ExecutionRequest analyzeRequest(AnalyzeParams params, const sandbox::SandboxContext& ctx);
// The diagnostics of the run analyzeRequest made, from its result; nullopt when it did not
// complete.
[[nodiscard]] std::optional<json> analyzeDiagnostics(json& result);

struct InitializeParams {
  std::optional<int> processId;  // the client process to watch
  std::string protocolVersion;   // MCP: the version the client asks for (empty: none)
};
[[nodiscard]] InitializeParams decodeInitialize(const json& params);  // lenient: never refused

// The request id a cancellation names (none: nothing to cancel).
[[nodiscard]] std::optional<json> decodeCancel(const json& params);

// Refusals that depend on the server's state, not on the params' shape.
[[nodiscard]] ParamError unknownExecution();
[[nodiscard]] ParamError unknownSession(const std::string& id);

// --- MCP tools/call ---------------------------------------------------------------------
struct ToolCall {
  std::string name{};
  json arguments{};  // anything: a tool refuses what is not an object (a tool error)
};
[[nodiscard]] Decoded<ToolCall> decodeToolCall(const json& params);
[[nodiscard]] ParamError unknownTool(const std::string& name);
// A tool's arguments (any tool's: an object); the errors from here on are tool errors,
// written for the model to correct, not -32602.
[[nodiscard]] Decoded<json> decodeToolArguments(const ToolCall& call);
[[nodiscard]] Decoded<RunArgs> decodeRunPythonArgs(const json& args);
// run_python's and run_javascript's arguments (the same ones); `tool` names it in refusals.
[[nodiscard]] Decoded<RunArgs> decodeRunToolArgs(const json& args, const std::string& tool);
[[nodiscard]] Decoded<SessionArgs> decodeCreateSessionArgs(const json& args);
[[nodiscard]] Decoded<SessionCloseParams> decodeCloseSessionArgs(const json& args);

}  // namespace pycell::server
