// The Model Context Protocol face of the server (PROTOCOL.md section 5): `pycell mcp`.
// Same transport, executions and sandboxes as `pycell serve`; only the method table and
// the shape of answers differ. Tools: run_python, create_session, close_session.
#include "pycell/error.h"
#include "pycell/server/server.h"

#include "pycell/process/log.h"
#include "pycell/run_python_tool_json.h"  // generated from schemas/tools/run_python.anthropic.json

namespace pycell::server {

using namespace protocol;

namespace {

// Protocol versions we speak; the client's is echoed when it is one of them.
const std::vector<std::string> kMcpVersions = {"2025-11-25", "2025-06-18"};

// The tool as schemas/tools/run_python.anthropic.json defines it for function calling (one
// text for every client), in MCP's spelling, with the `session` argument only MCP has.
json runPythonTool() {
  static const json shared = json::parse(kRunPythonToolJson);
  json schema = shared.at("input_schema");
  schema["properties"]["session"] = {
      {"type", "string"},
      {"description", "Run in this session (from create_session) instead of a fresh interpreter: its variables, "
                      "imports and files persist between the calls that name it"}};
  return {{"name", shared.at("name")},
          {"title", "Run Python in a sandbox"},
          {"description", shared.at("description")},
          {"inputSchema", std::move(schema)}};
}

json createSessionTool() {
  return {{"name", "create_session"},
          {"title", "Create a Python session"},
          {"description",
           "Starts a sandboxed Python session whose variables, imports and working-directory files persist "
           "across run_python calls that pass its id. Returns the session id."},
          {"inputSchema",
           {{"type", "object"},
            {"properties", {{"profile", {{"type", "string"}, {"description", "Configured profile, default \"default\""}}}}},
            {"additionalProperties", false}}}};
}

json closeSessionTool() {
  return {{"name", "close_session"},
          {"title", "Close a Python session"},
          {"description", "Ends a session created by create_session and discards its state."},
          {"inputSchema",
           {{"type", "object"},
            {"properties", {{"session", {{"type", "string"}, {"description", "The session id"}}}}},
            {"required", {"session"}},
            {"additionalProperties", false}}}};
}

json toolError(const std::string& text) {
  return {{"content", {{{"type", "text"}, {"text", text}}}}, {"isError", true}};
}

// What a model reads: output, value, error, each as text; figures as images.
json toolContent(const json& result) {
  json content = json::array();
  auto text = [&](const std::string& t) { content.push_back({{"type", "text"}, {"text", t}}); };
  std::string status = result.value("status", "error");
  if (status != "ok") text("status: " + status);
  if (!result.value("stdout", std::string()).empty()) text(result["stdout"].get<std::string>());
  if (!result.value("stderr", std::string()).empty()) text("stderr:\n" + result["stderr"].get<std::string>());
  if (result.contains("valueRepr") && result["valueRepr"].is_string()) text("value: " + result["valueRepr"].get<std::string>());
  const json& error = result.contains("error") ? result["error"] : json(nullptr);
  if (error.is_object()) {
    std::string t = error.value("type", "Error") + ": " + error.value("message", "");
    if (error.contains("line") && error["line"].is_number_integer()) t += " (line " + std::to_string(error["line"].get<int>()) + ")";
    text(t);
  }
  if (result.contains("displays") && result["displays"].is_array()) {
    for (const auto& bundle : result["displays"]) {
      if (bundle.contains("image/png") && bundle["image/png"].is_string())
        content.push_back({{"type", "image"}, {"data", bundle["image/png"]}, {"mimeType", "image/png"}});
    }
  }
  if (content.empty()) text("(no output)");
  return content;
}

}  // namespace

void Server::bindMcpMethods() {
  dispatcher_.onRequest("initialize", [this](const json& params, Reply reply) { mcpInitialize(params, std::move(reply)); });
  dispatcher_.onRequest("ping", [](const json&, Reply reply) { reply.result(json::object()); });
  dispatcher_.onRequest("tools/list", [](const json&, Reply reply) { reply.result({{"tools", {runPythonTool(), createSessionTool(), closeSessionTool()}}}); });
  dispatcher_.onRequest("tools/call", [this](const json& params, Reply reply) { mcpCallTool(params, std::move(reply)); });
  dispatcher_.onNotification("notifications/initialized", [](const json&) {});
  dispatcher_.onNotification("notifications/cancelled", [this](const json& params) {
    if (params.is_object() && params.contains("requestId")) cancel({{"id", params["requestId"]}});
  });
}

void Server::mcpInitialize(const json& params, Reply reply) {
  std::string asked = decodeInitialize(params).protocolVersion;
  bool known = std::find(kMcpVersions.begin(), kMcpVersions.end(), asked) != kMcpVersions.end();
  lifecycle_ = Lifecycle::Running;
  std::string instructions = "Run Python with the run_python tool. Sandbox isolation here: " +
                             std::string(ctx_.isolation.complete() ? "complete" : "DEGRADED (" + ctx_.isolation.missingSummary() + ")");
  reply.result({{"protocolVersion", known ? asked : kMcpVersions.front()},
                {"capabilities", {{"tools", {{"listChanged", false}}}}},
                {"serverInfo", {{"name", "pycell"}, {"version", PYCELL_VERSION}}},
                {"instructions", instructions}});
}

void Server::mcpCallTool(const json& params, Reply reply) {
  auto call = decodeToolCall(params);
  if (!call) throw InvalidParams(call.error().message);
  // A bad call is the model's mistake to read and correct: a tool error, not a protocol one.
  auto args = decodeToolArguments(*call);
  if (!args) return reply.result(toolError(args.error().message));
  if (call->name == "create_session") return mcpCreateSession(*args, std::move(reply));
  if (call->name == "close_session") {
    auto close = decodeCloseSessionArgs(*args);
    if (!close) return reply.result(toolError(close.error().message));
    bool closed = scheduler_.closeSession(close->session);
    return reply.result({{"content", {{{"type", "text"}, {"text", closed ? "closed" : "no such session"}}}},
                         {"structuredContent", {{"closed", closed}}},
                         {"isError", !closed}});
  }
  if (call->name != "run_python") throw InvalidParams(unknownTool(call->name).message);
  auto run = decodeRunPythonArgs(*args);
  if (!run) return reply.result(toolError(run.error().message));
  auto request = runRequest(std::move(*run), ctx_.config, sessionProfiles());
  if (!request) return reply.result(toolError(request.error().message));
  submitTracked(
      std::move(*request), std::move(reply), {},
      [](Reply& r, Result<json> result) {
        if (!result) return r.result(toolError("the sandbox could not be created: " + result.error().message()));
        bool failed = result->value("status", "error") != "ok";
        r.result({{"content", toolContent(*result)}, {"structuredContent", *result}, {"isError", failed}});
      },
      [](Reply& r, const exec::SubmitError& e) {
        // A full server is no mistake of the model's to correct: a protocol error, as in serve.
        if (e.kind == exec::SubmitError::Kind::QueueFull) return r.error(code::kQueueFull, e.message);
        r.result(toolError(e.message));
      });
}

void Server::mcpCreateSession(const json& args, Reply reply) {
  auto wanted = decodeCreateSessionArgs(args);
  if (!wanted) return reply.result(toolError(wanted.error().message));
  auto settings = sessionSettings(*wanted, ctx_.config);
  if (!settings) return reply.result(toolError(settings.error().message));
  auto shared = std::make_shared<Reply>(std::move(reply));
  auto created = scheduler_.createSession(std::move(*settings), [shared](Result<json> result) {
    if (shared->answered()) return;
    if (!result) return shared->result(toolError("the session could not be started: " + result.error().message()));
    std::string id = (*result)["session"].get<std::string>();
    shared->result({{"content", {{{"type", "text"}, {"text", "session: " + id}}}}, {"structuredContent", *result}, {"isError", false}});
  });
  if (!created && !shared->answered()) shared->result(toolError(created.error().message));
}

}  // namespace pycell::server
