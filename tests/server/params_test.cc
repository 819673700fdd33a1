#include <catch2/catch.hpp>

#include "pycell/server/params.h"

using namespace pycell;
using namespace pycell::server;
using nlohmann::json;

namespace {

// The built-in profiles, plus one that allows network and samples, and one whose limits are low.
Config testConfig() {
  Config config = builtinConfig();
  Profile net = config.profiles.at("default");
  net.name = "net";
  net.networkAllowed = true;
  net.samples = true;
  config.profiles[net.name] = net;
  Profile small = config.profiles.at("default");
  small.name = "small";
  small.limits.timeoutMs = 1000;
  config.profiles[small.name] = small;
  return config;
}

// An unknown profile's refusal lists these (testConfig's, by name).
const std::string profileNames = "datascience, default, javascript, net, small";

template <class T>
std::string refusal(const Decoded<T>& decoded) {
  REQUIRE_FALSE(decoded.has_value());
  return decoded.error().message;
}

}  // namespace

TEST_CASE("execute: good params decode to the request", "[params]") {
  Config config = testConfig();
  json params = {{"code", "print(1)"},
                 {"executionId", "e1"},
                 {"profile", "net"},
                 {"stdin", "in"},
                 {"inputs", {{"xs", {1, 2}}}},
                 {"files", {{"a.txt", {{"text", "x"}}}, {"b.bin", {{"base64", "eA=="}}}}},
                 {"returnFiles", {"*.csv", "out/**"}},
                 {"limits", {{"timeoutMs", 500}, {"memoryMb", 64}}},
                 {"network", true},
                 {"stream", true},
                 {"workDoneToken", "tok"}};
  auto decoded = decodeExecute(params, config);
  REQUIRE(decoded.has_value());
  const auto& r = decoded->request;
  CHECK(r.code == "print(1)");
  CHECK(r.executionId == "e1");
  CHECK(r.profile == "net");
  CHECK(r.stdinData == "in");
  CHECK(r.hasInputs);
  CHECK(r.inputs == json{{"xs", {1, 2}}});
  CHECK(r.files == params["files"]);
  CHECK(r.returnFiles == params["returnFiles"]);
  CHECK(r.limits.timeoutMs == 500);
  CHECK(r.limits.memoryMb == 64);
  CHECK(r.limits.cpuMs == 10'000);  // the profile's
  CHECK(r.network);
  CHECK(r.samples);
  CHECK(r.session.empty());
  CHECK(decoded->stream);
  CHECK(decoded->workDoneToken == "tok");
}

TEST_CASE("execute: the defaults, and nulls as absent", "[params]") {
  Config config = testConfig();
  auto decoded = decodeExecute({{"code", "1"}, {"profile", nullptr}, {"network", nullptr}, {"stream", nullptr},
                                {"returnFiles", nullptr}, {"files", nullptr}, {"workDoneToken", {1, 2}}},
                               config);
  REQUIRE(decoded.has_value());
  const auto& r = decoded->request;
  CHECK(r.profile == "default");
  CHECK_FALSE(r.hasInputs);
  CHECK(r.files == json::object());
  CHECK(r.returnFiles.is_null());
  CHECK_FALSE(r.network);
  CHECK_FALSE(r.samples);
  CHECK_FALSE(decoded->stream);
  CHECK(decoded->workDoneToken.is_null());  // neither a string nor an integer
  CHECK(r.limits.timeoutMs == config.profiles.at("default").limits.timeoutMs);
  // inputs: null is a value the program gets.
  auto nullInputs = decodeExecute({{"code", "1"}, {"inputs", nullptr}}, config);
  REQUIRE(nullInputs.has_value());
  CHECK(nullInputs->request.hasInputs);
}

TEST_CASE("execute: a session's profile is the default for requests in it", "[params]") {
  Config config = testConfig();
  SessionProfileLookup lookup = [](const std::string& s) -> std::optional<std::string> {
    if (s == "s1") return "small";
    return std::nullopt;
  };
  auto inSession = decodeExecute({{"code", "1"}, {"session", "s1"}}, config, lookup);
  REQUIRE(inSession.has_value());
  CHECK(inSession->request.profile == "small");
  CHECK(inSession->request.session == "s1");
  CHECK(inSession->request.limits.timeoutMs == 1000);
  auto own = decodeExecute({{"code", "1"}, {"session", "s1"}, {"profile", "net"}}, config, lookup);
  REQUIRE(own.has_value());
  CHECK(own->request.profile == "net");
  auto unknown = decodeExecute({{"code", "1"}, {"session", "s2"}}, config, lookup);
  REQUIRE(unknown.has_value());
  CHECK(unknown->request.profile == "default");  // the scheduler refuses the unknown session
}

TEST_CASE("execute: wrong params get the exact messages", "[params]") {
  Config config = testConfig();
  auto refused = [&](json params) { return refusal(decodeExecute(params, config)); };
  CHECK(refused(json::array()) == "params must be an object with a 'code' string");
  CHECK(refused(nullptr) == "params must be an object with a 'code' string");
  CHECK(refused(json::object()) == "'code' must be a string");
  CHECK(refused({{"code", 42}}) == "'code' must be a string");
  CHECK(refused({{"code", "1"}, {"profile", 1}}) == "'profile' must be a string");
  CHECK(refused({{"code", "1"}, {"executionId", 7}}) == "'executionId' must be a string");
  CHECK(refused({{"code", "1"}, {"stdin", false}}) == "'stdin' must be a string");
  CHECK(refused({{"code", "1"}, {"profile", "nope"}}) == "unknown profile 'nope' (available: " + profileNames + ")");
  CHECK(refused({{"code", "1"}, {"profile", ""}}) == "unknown profile '' (available: " + profileNames + ")");
  CHECK(refused({{"code", "1"}, {"session", 7}}) == "'session' must be a string");
  CHECK(refused({{"code", "1"}, {"network", "yes"}}) == "'network' must be a boolean");
  CHECK(refused({{"code", "1"}, {"network", true}}) == "profile 'default' does not allow network access");
  CHECK(refused({{"code", "1"}, {"stream", "yes"}}) == "'stream' must be a boolean");
  const std::string badName = "'filename' must be a non-empty string of at most 4096 bytes, without NUL or line breaks";
  for (json name : {json(7), json(""), json(std::string(4097, 'a')), json(std::string("a\0b", 3)), json("a\nb")})
    CHECK(refused({{"code", "1"}, {"filename", name}}) == badName);
}

TEST_CASE("execute: filename is taken as a name, and null is no name", "[params]") {
  Config config = testConfig();
  auto named = decodeExecute({{"code", "1"}, {"filename", "/home/u/prog.py"}}, config);
  REQUIRE(named.has_value());
  CHECK(named->request.filename == "/home/u/prog.py");
  auto none = decodeExecute({{"code", "1"}, {"filename", nullptr}}, config);
  REQUIRE(none.has_value());
  CHECK(none->request.filename.empty());
  auto typed = runRequest({.code = "1", .filename = std::string(4096, 'x')}, config);
  REQUIRE(typed.has_value());
  CHECK(typed->filename.size() == 4096);
  CHECK(refusal(runRequest({.code = "1", .filename = "a\nb"}, config)).starts_with("'filename' must be"));
}

TEST_CASE("execute: limits out of range or above the profile's are refused", "[params]") {
  Config config = testConfig();
  auto refused = [&](json limits) { return refusal(decodeExecute({{"code", "1"}, {"limits", limits}}, config)); };
  CHECK(refused({{"timeoutMs", 0}}) == "limits.timeoutMs must be between 1 and 86400000");
  CHECK(refused({{"memoryMb", 8}}) == "limits.memoryMb must be between 16 and 1048576");
  CHECK(refused({{"memoryMb", "lots"}}) == "limits.memoryMb must be an integer");
  CHECK(refused({{"wallMs", 5}}) == "unknown limit 'wallMs'");
  CHECK(refused({{"timeoutMs", 20000}}) == "limits.timeoutMs = 20000 exceeds the profile's limit of 10000");
  auto small = decodeExecute({{"code", "1"}, {"profile", "small"}, {"limits", {{"timeoutMs", 5000}}}}, config);
  CHECK(refusal(small) == "limits.timeoutMs = 5000 exceeds the profile's limit of 1000");
}

TEST_CASE("execute: bad files and returnFiles get the exact messages", "[params]") {
  Config config = testConfig();
  auto refused = [&](const char* key, json value) { return refusal(decodeExecute({{"code", "1"}, {key, value}}, config)); };
  CHECK(refused("files", json::array()) == "files must be an object of path -> {text} or {base64}");
  CHECK(refused("files", {{"a", {{"text", "x"}, {"base64", "eA=="}}}}) ==
        "files['a'] must be {text: string} or {base64: string}");
  CHECK(refused("files", {{"b", {{"text", 1}}}}) == "files['b'] must be {text: string} or {base64: string}");
  CHECK(refused("files", {{"c", "text"}}) == "files['c'] must be {text: string} or {base64: string}");
  CHECK(refused("returnFiles", "*.csv") == "'returnFiles' must be an array of glob strings");
  CHECK(refused("returnFiles", {1}) == "'returnFiles' must be an array of glob strings");
  CHECK(refused("returnFiles", json(std::vector<std::string>(101, "x"))) == "'returnFiles' may hold at most 100 patterns");
  CHECK(refused("returnFiles", {""}) == "returnFiles: each pattern must be a non-empty relative glob of at most 4096 bytes");
  CHECK(refused("returnFiles", {std::string(4097, 'a')}) ==
        "returnFiles: each pattern must be a non-empty relative glob of at most 4096 bytes");
  CHECK(refused("returnFiles", {"/etc/passwd"}) ==
        "returnFiles: '/etc/passwd' is absolute; patterns are relative to the working directory");
  CHECK(refused("returnFiles", {"a/../../b"}) ==
        "returnFiles: 'a/../../b' contains '..'; patterns must stay inside the working directory");
  CHECK(refused("returnFiles", {".."}) == "returnFiles: '..' contains '..'; patterns must stay inside the working directory");
  CHECK(decodeExecute({{"code", "1"}, {"returnFiles", {"a...b", "..x/y"}}}, config).has_value());
}

TEST_CASE("execute: files keys are checked as returnFiles globs are, before anything runs", "[params]") {
  Config config = testConfig();
  auto refused = [&](const std::string& path) {
    return refusal(decodeExecute({{"code", "1"}, {"files", {{path, {{"text", "x"}}}}}}, config));
  };
  CHECK(refused("../a.txt") == "files: '../a.txt' contains '..'; paths must stay inside the working directory");
  CHECK(refused("a/../../b") == "files: 'a/../../b' contains '..'; paths must stay inside the working directory");
  CHECK(refused("..") == "files: '..' contains '..'; paths must stay inside the working directory");
  CHECK(refused("/etc/evil") == "files: '/etc/evil' is absolute; paths are relative to the working directory");
  CHECK(refused("") == "files: each path must be a non-empty relative path of at most 4096 bytes");
  CHECK(refused(std::string("a\0b", 3)) == "files: each path must be a non-empty relative path of at most 4096 bytes");
  CHECK(refused(std::string(4097, 'a')) == "files: each path must be a non-empty relative path of at most 4096 bytes");
  CHECK(refusal(decodeExecute({{"code", "1"}, {"files", {{"a", {{"text", "x"}, {"mode", 1}}}}}}, config)) ==
        "files['a'] must be {text: string} or {base64: string}");
  CHECK(decodeExecute({{"code", "1"}, {"files", {{"a...b", {{"text", "x"}}}, {"..x/y.txt", {{"base64", "eA=="}}}}}}, config)
            .has_value());
}

TEST_CASE("typed runs are checked as execute params are", "[params]") {
  Config config = testConfig();
  auto r = runRequest({.code = "1", .profile = "net", .inputs = json{{"a", 1}}, .limits = {{"timeoutMs", 300}}, .network = true},
                      config);
  REQUIRE(r.has_value());
  CHECK(r->code == "1");
  CHECK(r->profile == "net");
  CHECK(r->hasInputs);
  CHECK(r->inputs == json{{"a", 1}});
  CHECK(r->limits.timeoutMs == 300);
  CHECK(r->network);
  CHECK(r->samples);  // the profile says so
  auto plain = runRequest({.code = "1"}, config);
  REQUIRE(plain.has_value());
  CHECK(plain->profile == "default");
  CHECK_FALSE(plain->hasInputs);
  auto inSession = runRequest({.code = "1", .session = "s"}, config, [](const std::string&) { return std::optional<std::string>("small"); });
  REQUIRE(inSession.has_value());
  CHECK(inSession->profile == "small");
  CHECK(inSession->session == "s");
  CHECK(refusal(runRequest({.code = "1", .profile = "nope"}, config)) == "unknown profile 'nope' (available: " + profileNames + ")");
  CHECK(refusal(runRequest({.code = "1", .network = true}, config)) == "profile 'default' does not allow network access");
  CHECK(refusal(runRequest({.code = "1", .limits = {{"timeoutMs", "soon"}}}, config)) == "limits.timeoutMs must be an integer");
}

TEST_CASE("session/create: good params decode to the settings", "[params]") {
  Config config = testConfig();
  auto s = decodeSessionCreate({{"session", "mine"}, {"profile", "net"}, {"limits", {{"memoryMb", 128}}}, {"network", true}}, config);
  REQUIRE(s.has_value());
  CHECK(s->id == "mine");
  CHECK(s->profile == "net");
  CHECK(s->limits.memoryMb == 128);
  CHECK(s->network);
  for (json empty : {json(nullptr), json::object()}) {
    auto d = decodeSessionCreate(empty, config);
    REQUIRE(d.has_value());
    CHECK(d->id.empty());
    CHECK(d->profile == "default");
    CHECK_FALSE(d->network);
  }
  auto typed = sessionSettings({.profile = "small"}, config);
  REQUIRE(typed.has_value());
  CHECK(typed->limits.timeoutMs == 1000);
}

TEST_CASE("session/create: wrong params get the exact messages", "[params]") {
  Config config = testConfig();
  auto refused = [&](json params) { return refusal(decodeSessionCreate(params, config)); };
  CHECK(refused(json::array()) == "params must be an object");
  CHECK(refused({{"colour", "blue"}}) == "unknown field 'colour' (session/create takes session, profile, limits, network, language)");
  CHECK(refused({{"session", 5}}) == "'session' must be a string");
  CHECK(refused({{"profile", 5}}) == "'profile' must be a string");
  CHECK(refused({{"session", ""}}) == "'session' must be a non-empty string of at most 200 bytes");
  CHECK(refused({{"session", std::string(201, 's')}}) == "'session' must be a non-empty string of at most 200 bytes");
  CHECK(refused({{"profile", "nope"}}) == "unknown profile 'nope' (available: " + profileNames + ")");
  CHECK(refused({{"limits", {{"memoryMb", "lots"}}}}) == "limits.memoryMb must be an integer");
  CHECK(refused({{"network", 1}}) == "'network' must be a boolean");
  CHECK(refused({{"network", true}}) == "profile 'default' does not allow network access");
  CHECK(refusal(sessionSettings({.profile = "nope"}, config)) == "unknown profile 'nope' (available: " + profileNames + ")");
  CHECK(refusal(sessionSettings({.network = true}, config)) == "profile 'default' does not allow network access");
}

TEST_CASE("status, kill, session/close, analyze decode and refuse", "[params]") {
  Config config = testConfig();
  CHECK_FALSE(decodeStatus(nullptr)->executionId.has_value());
  CHECK_FALSE(decodeStatus(json::object())->executionId.has_value());
  CHECK(decodeStatus({{"executionId", "e"}})->executionId == "e");
  CHECK(refusal(decodeStatus({{"executionId", 12}})) == "'executionId' must be a string");

  auto killExec = decodeKill({{"executionId", "e"}});
  REQUIRE(killExec.has_value());
  CHECK(killExec->target == KillParams::Target::Execution);
  CHECK(killExec->id == "e");
  auto killSession = decodeKill({{"session", "s"}, {"executionId", "e"}});
  REQUIRE(killSession.has_value());
  CHECK(killSession->target == KillParams::Target::Session);
  CHECK(killSession->id == "s");
  CHECK(refusal(decodeKill(json::array())) == "kill takes {executionId} or {session}");
  CHECK(refusal(decodeKill(json::object())) == "'executionId' must be a string");
  CHECK(refusal(decodeKill({{"session", 1}})) == "'session' must be a string");

  CHECK(decodeSessionClose({{"session", "s"}})->session == "s");
  CHECK(refusal(decodeSessionClose(json::object())) == "session/close takes {session: string}");
  CHECK(refusal(decodeSessionClose({{"session", 3}})) == "session/close takes {session: string}");

  auto analyze = decodeAnalyze({{"code", "x = 1"}, {"profile", "small"}}, config);
  REQUIRE(analyze.has_value());
  CHECK(analyze->code == "x = 1");
  CHECK(analyze->profile == "small");
  CHECK(decodeAnalyze({{"code", "1"}, {"profile", nullptr}}, config)->profile == "default");
  CHECK(refusal(decodeAnalyze({{"code", 5}}, config)) == "analyze takes {code: string, profile?: string, language?: string}");
  CHECK(refusal(decodeAnalyze({{"code", "1"}, {"profile", 5}}, config)) == "'profile' must be a string");
  CHECK(refusal(decodeAnalyze({{"code", "1"}, {"profile", "nope"}}, config)) == "unknown profile 'nope' (available: " + profileNames + ")");

  CHECK(unknownExecution().message == "unknown executionId");
  CHECK(unknownSession("gone").message == "unknown session 'gone'");
}

TEST_CASE("initialize and $/cancelRequest are lenient", "[params]") {
  CHECK(decodeInitialize({{"processId", 42}, {"protocolVersion", "2025-06-18"}}).processId == 42);
  CHECK(decodeInitialize({{"protocolVersion", "2025-06-18"}}).protocolVersion == "2025-06-18");
  CHECK_FALSE(decodeInitialize({{"processId", "42"}, {"protocolVersion", 1}}).processId.has_value());
  CHECK(decodeInitialize(json::array()).protocolVersion.empty());
  CHECK(decodeCancel({{"id", 7}}) == json(7));
  CHECK_FALSE(decodeCancel(json::object()).has_value());
}

TEST_CASE("MCP tools/call and each tool's arguments", "[params]") {
  auto call = decodeToolCall({{"name", "run_python"}, {"arguments", {{"code", "1"}, {"session", "s"}, {"inputs", 3}, {"timeoutMs", 500}}}});
  REQUIRE(call.has_value());
  CHECK(call->name == "run_python");
  auto args = decodeToolArguments(*call);
  REQUIRE(args.has_value());
  auto run = decodeRunPythonArgs(*args);
  REQUIRE(run.has_value());
  CHECK(run->code == "1");
  CHECK(run->session == "s");
  CHECK(run->inputs == json(3));
  CHECK(run->limits == json{{"timeoutMs", 500}});
  CHECK(decodeToolCall({{"name", "x"}})->arguments == json::object());
  CHECK(refusal(decodeToolCall(json::object())) == "tools/call needs a tool name");
  CHECK(refusal(decodeToolArguments({"run_python", json::array()})) == "run_python takes an object of arguments");
  CHECK(unknownTool("nope").message == "unknown tool: nope");
  CHECK(refusal(decodeRunPythonArgs(json::object())) == "run_python needs a `code` string argument");
  CHECK(refusal(decodeRunPythonArgs({{"code", "1"}, {"session", 7}})) == "'session' must be a string");
  CHECK(decodeCreateSessionArgs(json::object())->profile.empty());  // the language's own profile
  CHECK(decodeCreateSessionArgs({{"profile", "small"}})->profile == "small");
  CHECK(refusal(decodeCreateSessionArgs({{"profile", 1}})) == "'profile' must be a string");
  CHECK(decodeCloseSessionArgs({{"session", "s"}})->session == "s");
  CHECK(refusal(decodeCloseSessionArgs(json::object())) == "close_session needs a `session` string");
  // A timeout above the profile's is lowered to it, as the tool's description says; one out
  // of range, or of the wrong type, is refused when the run is checked, as execute's would be.
  auto lowered = runRequest(*decodeRunPythonArgs({{"code", "1"}, {"timeoutMs", 86400000}}), testConfig());
  REQUIRE(lowered.has_value());
  CHECK(lowered->limits.timeoutMs == 10'000);
  CHECK(refusal(runRequest(*decodeRunPythonArgs({{"code", "1"}, {"timeoutMs", 86400001}}), testConfig())) ==
        "limits.timeoutMs must be between 1 and 86400000");
  CHECK(refusal(runRequest(*decodeRunPythonArgs({{"code", "1"}, {"timeoutMs", 0}}), testConfig())) ==
        "limits.timeoutMs must be between 1 and 86400000");
  auto slow = decodeRunPythonArgs({{"code", "1"}, {"timeoutMs", "soon"}});
  REQUIRE(slow.has_value());
  CHECK(refusal(runRequest(std::move(*slow), testConfig())) == "limits.timeoutMs must be an integer");
}

TEST_CASE("MCP run_javascript and create_session's language", "[params]") {
  // run_javascript takes run_python's arguments; refusals name the tool the model called.
  auto run = decodeRunToolArgs({{"code", "6*7"}, {"inputs", 3}, {"timeoutMs", 500}}, "run_javascript");
  REQUIRE(run.has_value());
  CHECK(run->code == "6*7");
  CHECK(run->limits == json{{"timeoutMs", 500}});
  CHECK(refusal(decodeRunToolArgs(json::object(), "run_javascript")) == "run_javascript needs a `code` string argument");
  // With its language, a run without a profile goes to the javascript profile; a Python
  // session's profile refuses it.
  run->language = "javascript";
  auto request = runRequest(*run, testConfig());
  REQUIRE(request.has_value());
  CHECK(request->profile == "javascript");
  RunArgs inSession{.code = "1", .session = "s1", .language = "javascript"};
  auto lookup = [](const std::string&) { return std::optional<std::string>("default"); };
  CHECK(refusal(runRequest(inSession, testConfig(), lookup)) == "profile 'default' runs python, not javascript");
  auto js = decodeCreateSessionArgs({{"language", "javascript"}});
  REQUIRE(js.has_value());
  CHECK(js->language == "javascript");
  auto settings = sessionSettings(*js, testConfig());
  REQUIRE(settings.has_value());
  CHECK(settings->profile == "javascript");
  CHECK(refusal(decodeCreateSessionArgs({{"language", 1}})) == "'language' must be a string");
  CHECK(refusal(sessionSettings(*decodeCreateSessionArgs({{"language", "ruby"}}), testConfig())) ==
        "unknown language 'ruby' (pycell runs python and javascript)");
}
