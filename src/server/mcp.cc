// The Model Context Protocol face of the server (PROTOCOL.md section 5): `pycell mcp`.
// Same transport, executions and sandboxes as `pycell serve`; only the method table and
// the shape of answers differ. Tools: run_python, run_javascript (when a profile serves
// JavaScript), create_session, close_session.
#include <functional>
#include <map>
#include <set>
#include <stdexcept>

#include "pycell/error.h"
#include "pycell/server/connection.h"

#include "pycell/process/log.h"
#include "pycell/run_javascript_tool_json.h"  // generated from schemas/tools/run_javascript.anthropic.json
#include "pycell/run_python_tool_json.h"      // generated from schemas/tools/run_python.anthropic.json
#include "pycell/schema_config_schema_json.h"  // generated from schemas/*.json
#include "pycell/schema_execute_result_json.h"
#include "pycell/schema_session_close_result_json.h"
#include "pycell/schema_session_create_result_json.h"

namespace pycell::server {

using namespace protocol;

namespace {

// Protocol versions we speak, newest first; the client's is answered when it is one of
// them, else the newest. What we send differs in one respect: a tool's title and
// outputSchema and a result's structuredContent exist from 2025-06-18 on, so older versions
// get none of them (the same output stays in the text content).
const std::vector<std::string> kMcpVersions = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

bool hasStructuredOutput(const std::string& version) { return version >= "2025-06-18"; }  // dates compare as text

// The schema files a result schema may refer to, by the name its $ref uses.
const json& schemaFile(const std::string& name) {
  static const std::map<std::string, json> files = {
      {"config.schema.json", json::parse(kSchema_config_schema)},
      {"execute.result.json", json::parse(kSchema_execute_result)},
      {"session-create.result.json", json::parse(kSchema_session_create_result)},
      {"session-close.result.json", json::parse(kSchema_session_close_result)}};
  auto it = files.find(name);
  if (it == files.end()) throw std::logic_error("a result schema refers to " + name + ", which is not embedded");
  return it->second;
}

// A result schema of schemas/ as a tool's outputSchema: one self-contained document (what a
// $ref names in another file is copied into $defs), without $schema and $id, so that a
// client compiles it with the draft its validator defaults to (every keyword used means
// the same in draft-07 and 2020-12) and caches nothing under our $id.
json outputSchema(const std::string& file) {
  json root = schemaFile(file);
  root.erase("$schema");
  root.erase("$id");
  struct Foreign {
    std::string name, file;
    json::json_pointer at;
  };
  std::vector<Foreign> pending;
  std::set<std::string> named;
  // Rewrites each $ref into `home` (the file `node` came from) or another file as one into
  // root's $defs, and notes what to copy there.
  std::function<void(json&, const std::string&)> rewrite = [&](json& node, const std::string& home) {
    if (node.is_array())
      for (auto& item : node) rewrite(item, home);
    if (!node.is_object()) return;
    if (auto ref = node.find("$ref"); ref != node.end() && ref->is_string()) {
      std::string text = *ref;
      auto hash = text.find('#');
      std::string target = text.substr(0, hash);
      if (target.empty()) target = home;
      if (target == file) {
        *ref = hash == std::string::npos ? "#" : text.substr(hash);  // no $id left to name the file by
      } else {
        json::json_pointer at(hash == std::string::npos ? "" : text.substr(hash + 1));
        std::string name = at.empty() ? target : at.back();
        if (named.insert(name).second) {
          if (root.contains("$defs") && root["$defs"].contains(name))
            throw std::logic_error("$defs/" + name + " of " + file + " clashes with " + text);
          pending.push_back({name, target, at});
        }
        *ref = "#/$defs/" + name;
      }
    }
    for (auto& [key, value] : node.items()) rewrite(value, home);
  };
  rewrite(root, file);
  while (!pending.empty()) {
    Foreign f = std::move(pending.back());
    pending.pop_back();
    json def = schemaFile(f.file).at(f.at);
    rewrite(def, f.file);
    root["$defs"][f.name] = std::move(def);
  }
  return root;
}

// A tool as tools/list shows it to a client of `version`.
json listed(json tool, const std::string& version) {
  if (!hasStructuredOutput(version)) {
    tool.erase("title");
    tool.erase("outputSchema");
  }
  return tool;
}

// A run tool as its file in schemas/tools/ defines it for function calling (one text for
// every client), in MCP's spelling, with the `session` argument only MCP has.
json runTool(std::string_view definition, const char* title, const char* sessionDescription) {
  const json shared = json::parse(definition);
  json schema = shared.at("input_schema");
  schema["properties"]["session"] = {{"type", "string"}, {"description", sessionDescription}};
  return {{"name", shared.at("name")},
          {"title", title},
          {"description", shared.at("description")},
          {"inputSchema", std::move(schema)},
          {"outputSchema", outputSchema("execute.result.json")}};
}

json runPythonTool() {
  return runTool(kRunPythonToolJson, "Run Python in a sandbox",
                 "Run in this session (from create_session) instead of a fresh interpreter: its variables, "
                 "imports and files persist between the calls that name it");
}

// JavaScript has a tool of its own rather than a `language` argument on run_python: a model
// picks a tool by its name and description, and "run_javascript" with a description about
// Node says at a glance what a switch buried in run_python's schema would not (a model would
// send JavaScript to run_python and read a SyntaxError); and a client built for run_python
// (its name, its arguments, the function-calling files in schemas/tools/) stays unchanged.
json runJavaScriptTool() {
  return runTool(kRunJavaScriptToolJson, "Run JavaScript (Node.js) in a sandbox",
                 "Run in this session (from create_session with language \"javascript\") instead of a fresh "
                 "Node process: its globals, top-level let and const, and files persist between the calls "
                 "that name it");
}

json createSessionTool(bool javascript) {
  json properties = {{"profile", {{"type", "string"}, {"description", "Configured profile, default \"default\""}}}};
  std::string description =
      "Starts a sandboxed Python session whose variables, imports and working-directory files persist "
      "across run_python calls that pass its id. Returns the session id.";
  if (javascript) {
    properties["profile"]["description"] =
        "Configured profile; without one, \"default\" for Python and \"javascript\" for JavaScript";
    properties["language"] = {
        {"type", "string"},
        {"enum", {"python", "javascript"}},
        {"description", "The session's language: \"python\" (the default) for run_python calls, \"javascript\" "
                        "for run_javascript calls"}};
    description =
        "Starts a sandboxed session whose variables, imports and working-directory files persist across the "
        "calls that pass its id: run_python calls, or run_javascript calls for a session created with language "
        "\"javascript\". Returns the session id.";
  }
  return {{"name", "create_session"},
          {"title", javascript ? "Create a Python or JavaScript session" : "Create a Python session"},
          {"description", std::move(description)},
          {"inputSchema", {{"type", "object"}, {"properties", std::move(properties)}, {"additionalProperties", false}}},
          {"outputSchema", outputSchema("session-create.result.json")}};
}

json closeSessionTool() {
  return {{"name", "close_session"},
          {"title", "Close a Python session"},
          {"description", "Ends a session created by create_session and discards its state."},
          {"inputSchema",
           {{"type", "object"},
            {"properties", {{"session", {{"type", "string"}, {"description", "The session id"}}}}},
            {"required", {"session"}},
            {"additionalProperties", false}}},
          {"outputSchema", outputSchema("session-close.result.json")}};
}

// Whether some profile runs JavaScript: run_javascript is offered only then.
bool servesJavaScript(const Config& config) {
  for (const auto& [name, profile] : config.profiles)
    if (profile.language == Language::JavaScript) return true;
  return false;
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
  // A value of None (a trailing print(), say) says nothing a model needs to read.
  bool none = result.contains("value") && result["value"].is_null() && result.value("valueRepr", json()) == "None";
  if (result.contains("valueRepr") && result["valueRepr"].is_string() && !none)
    text("value: " + result["valueRepr"].get<std::string>());
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

// A tools/call result; structuredContent only for the versions that define it.
json toolResult(json content, json structured, bool isError, const std::string& version) {
  json result = {{"content", std::move(content)}, {"isError", isError}};
  if (hasStructuredOutput(version)) result["structuredContent"] = std::move(structured);
  return result;
}

}  // namespace

void Connection::bindMcpMethods() {
  mcpVersion_ = kMcpVersions.front();  // until initialize says otherwise
  dispatcher_.onRequest("initialize", [this](const json& params, Reply reply) { mcpInitialize(params, std::move(reply)); });
  dispatcher_.onRequest("ping", [](const json&, Reply reply) { reply.result(json::object()); });
  dispatcher_.onRequest("tools/list", [this](const json&, Reply reply) {
    // Made at each call, from this server's profiles (a process may hold servers of other
    // configurations); a client lists the tools once or twice per connection.
    bool javascript = servesJavaScript(ctx_.config);
    json tools = {runPythonTool()};
    if (javascript) tools.push_back(runJavaScriptTool());
    tools.push_back(createSessionTool(javascript));
    tools.push_back(closeSessionTool());
    json shown = json::array();
    for (const auto& tool : tools) shown.push_back(listed(tool, mcpVersion_));
    reply.result({{"tools", std::move(shown)}});
  });
  dispatcher_.onRequest("tools/call", [this](const json& params, Reply reply) { mcpCallTool(params, std::move(reply)); });
  dispatcher_.onNotification("notifications/initialized", [](const json&) {});
  dispatcher_.onNotification("notifications/cancelled", [this](const json& params) {
    if (params.is_object() && params.contains("requestId")) cancel({{"id", params["requestId"]}});
  });
}

void Connection::mcpInitialize(const json& params, Reply reply) {
  if (!admitted(params, reply)) return;
  std::string asked = decodeInitialize(params).protocolVersion;
  bool known = std::find(kMcpVersions.begin(), kMcpVersions.end(), asked) != kMcpVersions.end();
  lifecycle_ = Lifecycle::Running;
  mcpVersion_ = known ? asked : kMcpVersions.front();
  std::string tools = servesJavaScript(ctx_.config)
                          ? "Run Python with the run_python tool, JavaScript (Node.js) with run_javascript."
                          : "Run Python with the run_python tool.";
  std::string instructions = tools + " Sandbox isolation here: " +
                             std::string(ctx_.isolation.complete() ? "complete" : "DEGRADED (" + ctx_.isolation.missingSummary() + ")");
  reply.result({{"protocolVersion", mcpVersion_},
                {"capabilities", {{"tools", {{"listChanged", false}}}}},
                {"serverInfo", {{"name", "pycell"}, {"version", PYCELL_VERSION}}},
                {"instructions", instructions}});
}

void Connection::mcpCallTool(const json& params, Reply reply) {
  auto call = decodeToolCall(params);
  if (!call) throw InvalidParams(call.error().message);
  // A bad call is the model's mistake to read and correct: a tool error, not a protocol one.
  auto args = decodeToolArguments(*call);
  if (!args) return reply.result(toolError(args.error().message));
  if (call->name == "create_session") return mcpCreateSession(*args, std::move(reply));
  if (call->name == "close_session") {
    auto close = decodeCloseSessionArgs(*args);
    if (!close) return reply.result(toolError(close.error().message));
    bool closed = scheduler_.closeSession(scope_.client, close->session);
    return reply.result(toolResult({{{"type", "text"}, {"text", closed ? "closed" : "no such session"}}},
                                   {{"closed", closed}}, !closed, mcpVersion_));
  }
  bool javascript = call->name == "run_javascript" && servesJavaScript(ctx_.config);
  if (call->name != "run_python" && !javascript) throw InvalidParams(unknownTool(call->name).message);
  auto run = decodeRunToolArgs(*args, call->name);
  if (!run) return reply.result(toolError(run.error().message));
  // Each tool names its language, so that a session of the other language is refused (a
  // tool error the model reads) rather than handed code it cannot run.
  run->language = javascript ? "javascript" : "python";
  auto request = runRequest(std::move(*run), ctx_.config, sessionProfiles());
  if (!request) return reply.result(toolError(request.error().message));
  submitTracked(
      std::move(*request), std::move(reply), {},
      [version = mcpVersion_](Reply& r, Result<json> result) {
        if (!result) return r.result(toolError("the sandbox could not be created: " + result.error().message()));
        bool failed = result->value("status", "error") != "ok";
        r.result(toolResult(toolContent(*result), *result, failed, version));
      },
      [](Reply& r, const exec::SubmitError& e) {
        // A full server is no mistake of the model's to correct: a protocol error, as in serve.
        if (e.kind == exec::SubmitError::Kind::QueueFull) return r.error(code::kQueueFull, e.message);
        r.result(toolError(e.message));
      });
}

void Connection::mcpCreateSession(const json& args, Reply reply) {
  auto wanted = decodeCreateSessionArgs(args);
  if (!wanted) return reply.result(toolError(wanted.error().message));
  auto settings = sessionSettings(*wanted, ctx_.config);
  if (!settings) return reply.result(toolError(settings.error().message));
  settings->client = scope_.client;
  auto shared = std::make_shared<Reply>(std::move(reply));
  auto created = scheduler_.createSession(std::move(*settings), [shared, version = mcpVersion_](Result<json> result) {
    if (shared->answered()) return;
    if (!result) return shared->result(toolError("the session could not be started: " + result.error().message()));
    std::string id = (*result)["session"].get<std::string>();
    shared->result(toolResult({{{"type", "text"}, {"text", "session: " + id}}}, *result, false, version));
  });
  if (!created && !shared->answered()) shared->result(toolError(created.error().message));
}

}  // namespace pycell::server
