// The configuration file: the built-in profiles, a file merged over them, and every refusal
// with the message it gives (parseConfig on JSON, loadConfig on files in a scratch directory).
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "pycell/error.h"
#include "pycell/sandbox/config.h"

using namespace pycell;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The message parseConfig refuses `doc` with (the test fails if it accepts it).
std::string refusal(const json& doc) {
  auto config = parseConfig(doc);
  REQUIRE_FALSE(config.has_value());
  return config.error().message();
}

// The message for a config holding one profile `name` with body `profile`.
std::string profileRefusal(const json& profile, const std::string& name = "p") {
  return refusal({{"profiles", {{name, profile}}}});
}

Profile parsedProfile(const json& profile, const std::string& name = "p") {
  auto config = parseConfig({{"profiles", {{name, profile}}}});
  INFO((config ? std::string() : config.error().message()));
  REQUIRE(config.has_value());
  REQUIRE(config->profiles.count(name) == 1);
  return config->profiles.at(name);
}

// A scratch directory, removed with what it holds.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    char pattern[] = "/tmp/pycell-config-test-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~ScratchDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

}  // namespace

// ---- built-in profiles -------------------------------------------------------------------

TEST_CASE("the built-in profiles: default, datascience and javascript", "[config]") {
  Config config = builtinConfig();
  REQUIRE(config.profiles.size() == 3);
  const Profile& js = config.profiles.at("javascript");
  CHECK(js.language == Language::JavaScript);
  CHECK(js.python == "/usr/bin/node");
  CHECK(js.imports["deny"] == json(javascriptDenyList()));
  CHECK(js.preload.empty());
  const Profile& def = config.profiles.at("default");
  CHECK(def.name == "default");
  CHECK(def.python == "/usr/bin/python3");
  CHECK(def.limits.timeoutMs == 10'000);
  CHECK(def.limits.cpuMs == 10'000);
  CHECK(def.limits.memoryMb == 512);
  CHECK(def.limits.maxOutputBytes == 1 << 20);
  CHECK(def.limits.maxProcesses == 64);
  CHECK(def.limits.diskMb == 64);
  CHECK_FALSE(def.allowRaisingLimits);
  CHECK_FALSE(def.networkAllowed);
  CHECK(def.binds.empty());
  CHECK(def.preload.empty());
  CHECK(def.pool.size == 2);
  CHECK(def.imports == json{{"deny", defaultDenyList()}});
  CHECK(def.removeBuiltins == std::vector<std::string>{"breakpoint"});

  const Profile& ds = config.profiles.at("datascience");
  CHECK(ds.name == "datascience");
  CHECK(ds.limits.memoryMb == 1024);
  CHECK(ds.imports == json{{"allow", datascienceAllowList()}});
  CHECK(ds.preload == std::vector<std::string>{"numpy", "pandas", "matplotlib", "matplotlib.pyplot"});
  CHECK_FALSE(ds.childWarmup.empty());
  for (const char* name : {"eval", "exec", "compile", "breakpoint"})
    CHECK(std::find(ds.removeBuiltins.begin(), ds.removeBuiltins.end(), name) != ds.removeBuiltins.end());
  // What starts processes or talks to the network is denied by default.
  for (const char* name : {"subprocess", "socket", "ctypes", "multiprocessing"}) {
    INFO(name);
    CHECK(std::find(defaultDenyList().begin(), defaultDenyList().end(), name) != defaultDenyList().end());
    CHECK(std::find(datascienceAllowList().begin(), datascienceAllowList().end(), name) == datascienceAllowList().end());
  }
}

TEST_CASE("an empty config is the built-in one; $schema is ignored", "[config]") {
  for (const json& doc : {json::object(), json{{"$schema", "https://example.invalid/x"}}, json{{"profiles", json::object()}}}) {
    auto config = parseConfig(doc);
    REQUIRE(config.has_value());
    CHECK(config->profiles.size() == 3);
    CHECK(config->profiles.at("default").limits.timeoutMs == 10'000);
  }
}

// ---- a valid file ------------------------------------------------------------------------

TEST_CASE("a profile of a built-in name is merged over it; limits one by one", "[config]") {
  Profile def = parsedProfile({{"description", "mine"}, {"limits", {{"timeoutMs", 2000}}}}, "default");
  CHECK(def.description == "mine");
  CHECK(def.limits.timeoutMs == 2000);
  CHECK(def.limits.cpuMs == 10'000);  // the built-in value stays
  CHECK(def.limits.memoryMb == 512);
  CHECK(def.imports == json{{"deny", defaultDenyList()}});
  CHECK(def.removeBuiltins == std::vector<std::string>{"breakpoint"});

  Profile ds = parsedProfile({{"preload", {"numpy"}}, {"builtins", {{"remove", {"eval"}}}}}, "datascience");
  CHECK(ds.preload == std::vector<std::string>{"numpy"});  // a list replaces the built-in one
  CHECK(ds.removeBuiltins == std::vector<std::string>{"eval"});
  CHECK(ds.limits.memoryMb == 1024);
}

TEST_CASE("a new profile starts from the defaults and takes every field", "[config]") {
  json body = {{"description", "everything"},
               {"python", "/opt/py/bin/python3"},
               {"limits", {{"timeoutMs", 1}, {"cpuMs", 86'400'000}, {"memoryMb", 16}, {"maxOutputBytes", 1LL << 30},
                           {"maxProcesses", 65536}, {"diskMb", 1.0 * (1 << 20)}}},
               {"allowRaisingLimits", true},
               {"networkAllowed", true},
               {"allowRead", {"/srv/data", "/opt/models/"}},
               {"allowWrite", {"/tmp/out"}},
               {"preload", {"json", "decimal"}},
               {"childWarmup", "import json"},
               {"pool", {{"size", 0}, {"maxStarting", 1}, {"recycleAfter", 100000}, {"refillDelayMs", 0}}},
               {"imports", {{"allow", {"math", "json"}}}},
               {"builtins", {{"remove", {"open"}}}},
               {"activity", false},
               {"samples", true},
               {"samplePeriodMs", 10},
               {"sessionIdleMs", 1000},
               {"sessionCpuMs", 604'800'000}};
  Config config;
  {
    auto parsed = parseConfig({{"profiles", {{"full", body}}}});
    REQUIRE(parsed.has_value());
    config = *parsed;
  }
  CHECK(config.profiles.size() == 4);
  const Profile& p = config.profiles.at("full");
  CHECK(p.name == "full");
  CHECK(p.description == "everything");
  CHECK(p.python == "/opt/py/bin/python3");
  CHECK(p.limits.timeoutMs == 1);
  CHECK(p.limits.cpuMs == 86'400'000);
  CHECK(p.limits.memoryMb == 16);
  CHECK(p.limits.maxOutputBytes == 1LL << 30);
  CHECK(p.limits.maxProcesses == 65536);
  CHECK(p.limits.diskMb == 1 << 20);  // a float with no fraction is an integer
  CHECK(p.allowRaisingLimits);
  CHECK(p.networkAllowed);
  REQUIRE(p.binds.size() == 3);
  CHECK(p.binds[0].path == "/srv/data");
  CHECK_FALSE(p.binds[0].writable);
  CHECK(p.binds[1].path == "/opt/models/");
  CHECK(p.binds[2].path == "/tmp/out");
  CHECK(p.binds[2].writable);
  CHECK(p.preload == std::vector<std::string>{"json", "decimal"});
  CHECK(p.childWarmup == "import json");
  CHECK(p.pool.size == 0);
  CHECK(p.pool.maxStarting == 1);
  CHECK(p.pool.recycleAfter == 100000);
  CHECK(p.pool.refillDelayMs == 0);
  CHECK(p.imports == json{{"allow", {"math", "json"}}});
  CHECK(p.removeBuiltins == std::vector<std::string>{"open"});
  CHECK_FALSE(p.activity);
  CHECK(p.samples);
  CHECK(p.samplePeriodMs == 10);
  CHECK(p.sessionIdleMs == 1000);
  CHECK(p.sessionCpuMs == 604'800'000);
  // The built-in profiles are still there, untouched.
  CHECK(config.profiles.at("default").limits.timeoutMs == 10'000);

  // Unset fields of a new profile: the defaults (not the built-in default profile's policy).
  Profile bare = parsedProfile(json::object(), "bare");
  CHECK(bare.python == "/usr/bin/python3");
  CHECK(bare.limits.memoryMb == 512);
  CHECK(bare.imports.is_null());
  CHECK(bare.removeBuiltins.empty());
  CHECK(bare.pool.size == 2);
}

TEST_CASE("imports may be null (no import policy); limits may be null (none given)", "[config]") {
  Profile def = parsedProfile({{"imports", nullptr}, {"limits", nullptr}}, "default");
  CHECK(def.imports.is_null());
  CHECK(def.limits.timeoutMs == 10'000);
  Profile deny = parsedProfile({{"imports", {{"deny", json::array()}}}});
  CHECK(deny.imports == json{{"deny", json::array()}});
}

TEST_CASE("the policy document follows the profile", "[config]") {
  Profile p = parsedProfile({{"allowRead", {"/srv/in"}}, {"allowWrite", {"/srv/out"}}, {"imports", {{"deny", {"socket"}}}},
                             {"builtins", {{"remove", {"eval"}}}}});
  json doc = policyDocument(p, true);
  CHECK(doc["network"] == true);
  CHECK(doc["files"]["allowRead"] == json{"/srv/in"});
  CHECK(doc["files"]["allowWrite"] == json{"/srv/out"});
  CHECK(doc["imports"] == json{{"deny", {"socket"}}});
  CHECK(doc["builtins"] == json{{"remove", {"eval"}}});
  // No policy at all: nothing for the bootstrap to apply.
  Profile none = parsedProfile({{"imports", nullptr}, {"activity", false}});
  CHECK(policyDocument(none, false).is_null());
}

// ---- refusals: the document and its fields ------------------------------------------------

TEST_CASE("a config that is not an object, or has an unknown or mistyped field, is refused", "[config]") {
  CHECK(refusal(json::array()) == "config must be a JSON object, not an array");
  CHECK(refusal("profiles") == "config must be a JSON object, not a string");
  CHECK(refusal(nullptr) == "config must be a JSON object, not null");
  CHECK(refusal({{"profile", json::object()}}) == "unknown config field 'profile' (the fields: profiles, $schema)");
  CHECK(refusal({{"profiles", json::array()}}) == "config field 'profiles' must be an object, not an array");
  CHECK(refusal({{"profiles", "default"}}) == "config field 'profiles' must be an object, not a string");
  CHECK(profileRefusal(json::array()) == "profile 'p': must be an object, not an array");
  CHECK(profileRefusal("default") == "profile 'p': must be an object, not a string");
}

TEST_CASE("a profile field that is unknown or of the wrong type is refused, by name and type", "[config]") {
  const std::pair<json, std::string> cases[] = {
      {{{"description", 1}}, "field 'description' must be a string, not an integer"},
      {{{"description", 5}}, "field 'description' must be a string, not an integer"},
      {{{"python", false}}, "field 'python' must be a string, not a boolean"},
      {{{"allowRaisingLimits", "yes"}}, "field 'allowRaisingLimits' must be a boolean, not a string"},
      {{{"networkAllowed", 1}}, "field 'networkAllowed' must be a boolean, not an integer"},
      {{{"preload", "numpy"}}, "field 'preload' must be an array, not a string"},
      {{{"childWarmup", json::array()}}, "field 'childWarmup' must be a string, not an array"},
      {{{"pool", 2}}, "field 'pool' must be an object, not an integer"},
      {{{"imports", {"socket"}}}, "field 'imports' must be an object or null, not an array"},
      {{{"imports", "deny"}}, "field 'imports' must be an object or null, not a string"},
      {{{"builtins", {"eval"}}}, "field 'builtins' must be an object, not an array"},
      {{{"activity", "true"}}, "field 'activity' must be a boolean, not a string"},
      {{{"samples", nullptr}}, "field 'samples' must be a boolean, not null"},
      {{{"samplePeriodMs", 50.5}}, "field 'samplePeriodMs' must be an integer, not a number with a fraction or exponent"},
      {{{"samplePeriodMs", "50"}}, "field 'samplePeriodMs' must be an integer, not a string"},
      {{{"sessionIdleMs", true}}, "field 'sessionIdleMs' must be an integer, not a boolean"},
      {{{"sessionCpuMs", 1e4}}, "field 'sessionCpuMs' must be an integer, not a number with a fraction or exponent"},
      {{{"allowRead", "/srv"}}, "field 'allowRead' must be an array, not a string"},
      {{{"allowWrite", {{"path", "/srv"}}}}, "field 'allowWrite' must be an array, not an object"},
  };
  for (const auto& [body, why] : cases) {
    INFO(body.dump());
    CHECK(profileRefusal(body) == "profile 'p': " + why);
  }
  // An unknown field is named, with the fields there are.
  for (const char* name : {"descripton", "name"}) {
    std::string refused = profileRefusal({{name, "x"}});
    CHECK(refused.starts_with("profile 'p': unknown field '" + std::string(name) + "' (a profile's fields: "));
    for (const char* field : {"description", "limits", "preload", "pool", "allowRead"})
      CHECK(refused.find(field, refused.find("fields")) != std::string::npos);
  }
}

TEST_CASE("preload, imports and builtins lists hold non-empty names", "[config]") {
  CHECK(profileRefusal({{"preload", {"numpy", ""}}}) == "profile 'p': preload entries must be module names");
  CHECK(profileRefusal({{"preload", {1}}}) == "profile 'p': preload entries must be module names");
  const std::string importsShape = "profile 'p': imports must be {\"deny\": [modules]} or {\"allow\": [modules]}";
  CHECK(profileRefusal({{"imports", json::object()}}) == importsShape);
  CHECK(profileRefusal({{"imports", {{"block", {"socket"}}}}}) == importsShape);
  CHECK(profileRefusal({{"imports", {{"deny", {"socket"}}, {"allow", {"math"}}}}}) == importsShape);
  CHECK(profileRefusal({{"imports", {{"deny", "socket"}}}}) == importsShape);
  CHECK(profileRefusal({{"imports", {{"allow", {"math", ""}}}}}) == "profile 'p': imports lists hold module names");
  CHECK(profileRefusal({{"imports", {{"allow", {nullptr}}}}}) == "profile 'p': imports lists hold module names");
  CHECK(profileRefusal({{"builtins", {{"keep", {"eval"}}}}}) == "profile 'p': builtins must be {\"remove\": [names]}");
  CHECK(profileRefusal({{"builtins", {{"remove", "eval"}}}}) == "profile 'p': builtins must be {\"remove\": [names]}");
  CHECK(profileRefusal({{"builtins", {{"remove", {""}}}}}) == "profile 'p': builtins.remove holds builtin names");
  CHECK(profileRefusal({{"builtins", {{"remove", {2}}}}}) == "profile 'p': builtins.remove holds builtin names");
}

// ---- refusals: limits ----------------------------------------------------------------------

TEST_CASE("every limit takes its range, ends included; outside it, zero, negative or huge, it is refused", "[config]") {
  for (const auto& f : limitFields()) {
    INFO(f.name);
    CHECK(parsedProfile({{"limits", {{f.name, f.min}}}}).limits.*(f.field) == f.min);
    CHECK(parsedProfile({{"limits", {{f.name, f.max}}}}).limits.*(f.field) == f.max);
    std::string range = "profile 'p': limits." + std::string(f.name) + " must be between " + std::to_string(f.min) +
                        " and " + std::to_string(f.max);
    for (const json& bad : {json(f.min - 1), json(f.max + 1), json(0), json(-1), json(INT64_MIN), json(INT64_MAX),
                            json(UINT64_MAX), json(uint64_t(1) << 63), json(1e300), json(-1e300), json(1e19), json(-0.0)}) {
      INFO(bad.dump());
      CHECK(profileRefusal({{"limits", {{f.name, bad}}}}) == range);
    }
    for (const json& bad : {json(1.5), json("100"), json(true), json(nullptr), json::array({100}), json::object()}) {
      INFO(bad.dump());
      CHECK(profileRefusal({{"limits", {{f.name, bad}}}}) == "profile 'p': limits." + std::string(f.name) + " must be an integer");
    }
  }
}

TEST_CASE("limits: an unknown name or a non-object is refused", "[config]") {
  CHECK(profileRefusal({{"limits", {{"wallMs", 100}}}}) == "profile 'p': unknown limit 'wallMs'");
  CHECK(profileRefusal({{"limits", {{"TimeoutMs", 100}}}}) == "profile 'p': unknown limit 'TimeoutMs'");
  CHECK(profileRefusal({{"limits", json::array({1})}}) == "profile 'p': limits must be an object");
  CHECK(profileRefusal({{"limits", 5}}) == "profile 'p': limits must be an object");
}

TEST_CASE("a request's limits: tightened always, raised only where the profile allows", "[config]") {
  Profile p = parsedProfile({{"limits", {{"timeoutMs", 5000}}}});
  auto tight = resolveLimits(p, {{"timeoutMs", 100}});
  REQUIRE(tight.has_value());
  CHECK(tight->timeoutMs == 100);
  CHECK(tight->cpuMs == 10'000);
  auto raised = resolveLimits(p, {{"timeoutMs", 6000}});
  REQUIRE_FALSE(raised.has_value());
  CHECK(raised.error() == "limits.timeoutMs = 6000 exceeds the profile's limit of 5000");
  // A huge float from a client is refused by range, before it is converted.
  auto huge = resolveLimits(p, {{"timeoutMs", 1e300}});
  REQUIRE_FALSE(huge.has_value());
  CHECK(huge.error() == "limits.timeoutMs must be between 1 and 86400000");
  p.allowRaisingLimits = true;
  auto up = resolveLimits(p, {{"timeoutMs", 6000}});
  REQUIRE(up.has_value());
  CHECK(up->timeoutMs == 6000);
  CHECK(limitsToJson(*up)["timeoutMs"] == 6000);
  CHECK(limitsToJson(*up).size() == limitFields().size());
}

// ---- refusals: pool and the other numbers ----------------------------------------------------

TEST_CASE("pool settings: known names, integers within range", "[config]") {
  CHECK(parsedProfile({{"pool", {{"size", 100000}, {"maxStarting", 100000}}}}).pool.size == 100000);
  const json bad[] = {
      {{"size", -1}},        {{"size", 100001}},         {{"size", 2.0}},         {{"size", "2"}},
      {{"maxStarting", 0}},  {{"recycleAfter", 0}},      {{"refillDelayMs", -5}}, {{"size", UINT64_MAX}},
      {{"size", INT64_MIN}}, {{"size", uint64_t(1) << 32}}, {{"sizes", 2}},       {{"size", nullptr}},
  };
  for (const auto& pool : bad) {
    INFO(pool.dump());
    CHECK(profileRefusal({{"pool", pool}}) == "profile 'p': pool." + pool.begin().key() + " is unknown or out of range");
  }
}

TEST_CASE("samplePeriodMs, sessionIdleMs and sessionCpuMs: within their ranges", "[config]") {
  CHECK(parsedProfile({{"samplePeriodMs", 60000}}).samplePeriodMs == 60000);
  for (const json& v : {json(9), json(60001), json(0), json(-1), json(UINT64_MAX)}) {
    INFO(v.dump());
    CHECK(profileRefusal({{"samplePeriodMs", v}}) == "profile 'p': samplePeriodMs must be between 10 and 60000");
  }
  for (const char* key : {"sessionIdleMs", "sessionCpuMs"}) {
    for (const json& v : {json(999), json(604'800'001), json(0), json(-1000), json(INT64_MAX), json(UINT64_MAX)}) {
      INFO(key << " " << v.dump());
      CHECK(profileRefusal({{key, v}}) == "profile 'p': " + std::string(key) + " must be between 1000 and 604800000");
    }
  }
}

// ---- refusals: host paths ------------------------------------------------------------------

TEST_CASE("allowRead and allowWrite take absolute paths below /, without . or .. components", "[config]") {
  for (const char* key : {"allowRead", "allowWrite"}) {
    std::string why = "profile 'p': " + std::string(key) + " entries must be absolute paths below / without . or .. components";
    for (const json& bad : {json(""), json("srv/data"), json("./srv"), json("~/data"), json("/"), json("//"),
                            json("/srv/../etc"), json("/.."), json("/../../etc"), json("/srv/./data"), json("/srv/.."),
                            json("/srv/data/."), json(std::string("/srv\0/etc", 9)), json("/" + std::string(5000, 'a')),
                            json(7), json(nullptr), json::array({"/srv"})}) {
      INFO(key << " " << bad.dump());
      CHECK(profileRefusal({{key, {"/ok", bad}}}) == why);
    }
    // Dots inside a name are names; repeated and trailing slashes change nothing.
    for (const char* good : {"/srv/.hidden", "/srv/..data", "/srv/data...", "/srv//data", "/srv/data/", "/a"}) {
      INFO(key << " " << good);
      Profile p = parsedProfile({{key, {good}}});
      REQUIRE(p.binds.size() == 1);
      CHECK(p.binds[0].path == good);
      CHECK(p.binds[0].writable == (std::string(key) == "allowWrite"));
    }
  }
}

TEST_CASE("at most 128 allowRead and allowWrite entries in all", "[config]") {
  json read = json::array(), write = json::array();
  for (int i = 0; i < 64; ++i) read.push_back("/srv/r" + std::to_string(i));
  for (int i = 0; i < 64; ++i) write.push_back("/srv/w" + std::to_string(i));
  CHECK(parsedProfile({{"allowRead", read}, {"allowWrite", write}}).binds.size() == 128);
  write.push_back("/srv/one-more");
  CHECK(profileRefusal({{"allowRead", read}, {"allowWrite", write}}) ==
        "profile 'p': at most 128 allowRead and allowWrite entries");
}

// ---- files -----------------------------------------------------------------------------------

TEST_CASE("loadConfig: a good file, and what it says when a file is missing, not JSON or refused", "[config]") {
  ScratchDir dir;
  auto good = loadConfig(dir.write("good.json", R"({"$schema": "x", "profiles": {"small": {"limits": {"timeoutMs": 500}}}})"));
  REQUIRE(good.has_value());
  CHECK(good->profiles.at("small").limits.timeoutMs == 500);
  CHECK(good->profiles.count("default") == 1);

  std::string missing = (dir.path / "missing.json").string();
  auto none = loadConfig(missing);
  REQUIRE_FALSE(none.has_value());
  CHECK(none.error().message() == missing + ": No such file or directory");

  // Bad JSON: FILE:LINE:COL of the character at fault, and what the parser says.
  std::string broken = dir.write("broken.json", R"({"profiles": {)");
  CHECK(loadConfig(broken).error().message().starts_with(broken + ":1:15: not valid JSON: syntax error"));
  std::string empty = dir.write("empty.json", "");
  CHECK(loadConfig(empty).error().message().starts_with(empty + ":1:1: not valid JSON: "));
  std::string comma = dir.write("comma.json", "{\n  \"profiles\": {\n    \"a\": {},\n  }\n}\n");
  CHECK(loadConfig(comma).error().message().starts_with(comma + ":4:3: not valid JSON: syntax error"));

  // A refused member: FILE:LINE:COL of its key.
  std::string refused = dir.write("refused.json", R"({"profiles": {"default": {"limits": {"memoryMb": 8}}}})");
  CHECK(loadConfig(refused).error().message() ==
        refused + ":1:27: profile 'default': limits.memoryMb must be between 16 and 1048576");
  std::string typed = dir.write("typed.json", "{\"profiles\": {\n  \"p\": {\"python\": \"python3\",\n"
                                              "        \"description\": 5}}}\n");
  CHECK(loadConfig(typed).error().message() ==
        typed + ":3:9: profile 'p': field 'description' must be a string, not an integer");
  // The last of a repeated key is the one the parser kept, and the one named.
  std::string twice = dir.write("twice.json", R"({"profiles": {"p": {"pool": 1}, "p": {"pool": 2}}})");
  CHECK(loadConfig(twice).error().message() == twice + ":1:39: profile 'p': field 'pool' must be an object, not an integer");
  // A key spelled with escapes is found by what it says.
  std::string escaped = dir.write("escaped.json", R"({"profiles": {"\u0070": {"x\"y": 1}}})");
  CHECK(loadConfig(escaped).error().message().starts_with(escaped + ":1:26: profile 'p': unknown field 'x\"y'"));
  // No member at fault: FILE: message.
  std::string array = dir.write("array.json", "[]");
  CHECK(loadConfig(array).error().message() == array + ": config must be a JSON object, not an array");

  // A directory is not a config file.
  REQUIRE_FALSE(loadConfig(dir.path.string()).has_value());
}

TEST_CASE("loadConfig: input is bounded; a file past 16 MiB is refused, not cut short", "[config]") {
  ScratchDir dir;
  // Valid JSON in its first 16 MiB, and garbage after: a reader that stopped at the bound
  // would accept it.
  std::string text = R"({"profiles": {}})";
  text += std::string((16u << 20) - text.size(), ' ');
  std::string atBound = dir.write("at-bound.json", text);
  CHECK(loadConfig(atBound).has_value());
  std::string over = dir.write("over.json", text + "garbage");
  auto refused = loadConfig(over);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message() == over + ": larger than 16 MiB");

  // Deep nesting is parsed without recursion and refused by shape, not by a crash.
  std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  std::string deepPath = dir.write("deep.json", deep);
  CHECK(loadConfig(deepPath).error().message() == deepPath + ": config must be a JSON object, not an array");
  std::string deepFieldPath = dir.write("deep-field.json", R"({"profiles": {"p": {"limits": )" + deep + "}}}");
  CHECK(loadConfig(deepFieldPath).error().message() == deepFieldPath + ":1:21: profile 'p': limits must be an object");
}

TEST_CASE("a profile's language: its interpreter key and the fields it takes", "[config]") {
  auto js = parseConfig({{"profiles", {{"web", {{"language", "javascript"}, {"limits", {{"memoryMb", 256}}}}}}}});
  REQUIRE(js.has_value());
  CHECK(js->profiles.at("web").language == Language::JavaScript);
  CHECK(js->profiles.at("web").python == "/usr/bin/node");  // node's default
  auto named = parseConfig({{"profiles", {{"web", {{"language", "javascript"}, {"node", "/opt/node/bin/node"}}}}}});
  REQUIRE(named.has_value());
  CHECK(named->profiles.at("web").python == "/opt/node/bin/node");
  auto refusal = [](const json& body) {
    auto config = parseConfig({{"profiles", {{"p", body}}}});
    return config ? std::string() : config.error().message();
  };
  CHECK(refusal({{"language", "ruby"}}).find("field 'language' must be \"python\" or \"javascript\"") != std::string::npos);
  CHECK(refusal({{"language", "javascript"}, {"python", "/usr/bin/python3"}}) ==
        "profile 'p': a javascript profile names its interpreter with 'node', not 'python'");
  CHECK(refusal({{"node", "/usr/bin/node"}}) == "profile 'p': 'node' is for a javascript profile (set \"language\": \"javascript\")");
  CHECK(refusal({{"language", "javascript"}, {"preload", {"fs"}}}) == "profile 'p': preload is for Python profiles (zygote imports)");
  CHECK(refusal({{"language", "javascript"}, {"childWarmup", "1"}}) == "profile 'p': childWarmup is for Python profiles");
  // The built-in javascript profile made Python by a config: python's interpreter again.
  auto back = parseConfig({{"profiles", {{"javascript", {{"language", "python"}}}}}});
  REQUIRE(back.has_value());
  CHECK(back->profiles.at("javascript").python == "/usr/bin/python3");
}
