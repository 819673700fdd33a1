#include "pycell/sandbox/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/context.h"

namespace pycell {

using nlohmann::json;

const std::vector<LimitField>& limitFields() {
  static const std::vector<LimitField> fields = {
      {"timeoutMs", &Limits::timeoutMs, 1, 24LL * 3600 * 1000},
      {"cpuMs", &Limits::cpuMs, 1, 24LL * 3600 * 1000},
      {"memoryMb", &Limits::memoryMb, 16, 1 << 20},
      {"maxOutputBytes", &Limits::maxOutputBytes, 1, 1LL << 30},
      {"maxProcesses", &Limits::maxProcesses, 1, 1 << 16},
      {"diskMb", &Limits::diskMb, 1, 1 << 20},
  };
  return fields;
}

// The built-in profiles' import lists (the choices are explained in src/python/policy.py's
// docstring). What starts processes, talks to the network, loads native code or starts
// subinterpreters is denied by default; os and sys stay (the kernel refuses what they
// could do beyond that).
const std::vector<std::string>& defaultDenyList() {
  static const std::vector<std::string> names = {
      "subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing", "concurrent.futures.process",
      "pty", "webbrowser", "socket", "_socket", "ssl", "_ssl", "socketserver", "http.client", "http.server",
      "urllib.request", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "nntplib", "xmlrpc", "ctypes",
      "_ctypes", "cffi", "_xxsubinterpreters", "_xxinterpchannels", "_interpreters", "_interpchannels",
      "_interpqueues", "concurrent.interpreters"};
  return names;
}

// The datascience profile's allow list: the numeric stack and the computational part of
// the standard library; not os, sys, subprocess, socket, ctypes, pickle, inspect, gc.
const std::vector<std::string>& datascienceAllowList() {
  static const std::vector<std::string> names = {
      "numpy", "pandas", "matplotlib", "scipy", "seaborn", "sklearn", "statsmodels", "math", "cmath",
      "statistics", "random", "decimal", "fractions", "numbers", "collections", "itertools", "functools",
      "operator", "heapq", "bisect", "array", "copy", "dataclasses", "enum", "typing", "typing_extensions",
      "abc", "contextlib", "weakref", "types", "graphlib", "string", "re", "textwrap", "difflib",
      "unicodedata", "pprint", "json", "csv", "base64", "binascii", "struct", "codecs", "html", "xml.etree",
      "tomllib", "zlib", "gzip", "bz2", "lzma", "zipfile", "tarfile", "io", "sqlite3", "datetime", "time",
      "calendar", "zoneinfo", "hashlib", "hmac", "secrets", "uuid", "warnings", "traceback", "locale",
      "pathlib", "tempfile", "glob", "fnmatch", "__future__"};
  return names;
}

// Node's own names, without the `node:` prefix (the bootstrap normalizes it): processes
// (child_process, cluster, worker_threads), the network (net, tls, dgram, dns, http, https,
// http2), the engine and the runtime's internals (vm, v8, inspector, repl, wasi,
// trace_events, module: it reaches the loader the policy hooks), and native code
// (process.binding, process.dlopen). fs and os stay: the kernel decides what they reach.
const std::vector<std::string>& javascriptDenyList() {
  static const std::vector<std::string> names = {
      "child_process", "cluster", "worker_threads", "net", "tls", "dgram", "dns", "http", "https", "http2",
      "vm", "v8", "inspector", "repl", "wasi", "trace_events", "module", "process.binding", "process.dlopen"};
  return names;
}

const char* languageName(Language language) { return language == Language::JavaScript ? "javascript" : "python"; }

std::optional<Language> parseLanguage(std::string_view name) {
  if (name == "python") return Language::Python;
  if (name == "javascript") return Language::JavaScript;
  return std::nullopt;
}

Config builtinConfig() {
  Config config;
  Profile def;
  def.name = "default";
  def.description = "Python standard library, no network, no host files";
  def.imports = {{"deny", defaultDenyList()}};
  def.removeBuiltins = {"breakpoint"};
  config.profiles[def.name] = def;
  Profile ds;
  ds.name = "datascience";
  ds.description = "numpy, pandas and matplotlib preloaded (where installed), no network, no host files";
  ds.preload = {"numpy", "pandas", "matplotlib", "matplotlib.pyplot"};
  ds.limits.memoryMb = 1024;
  ds.imports = {{"allow", datascienceAllowList()}};
  ds.removeBuiltins = {"breakpoint", "eval", "exec", "compile"};
  // A first group-by in a fresh child costs ~6 ms of copy-on-write faults and lazy set-up;
  // each ready child pays it before it is offered (about 3 MiB more private memory each).
  ds.childWarmup = "import pandas as pd\npd.DataFrame({'a': [1, 2, 1], 'b': [1.0, 2.0, 3.0]}).groupby('a').b.sum()";
  config.profiles[ds.name] = ds;
  // Left out by the server when its node is not installed (makeContext).
  Profile js;
  js.name = "javascript";
  js.description = "JavaScript on Node.js, no network, no host files";
  js.language = Language::JavaScript;
  js.python = kDefaultNode;
  js.imports = {{"deny", javascriptDenyList()}};
  config.profiles[js.name] = js;
  return config;
}

json policyDocument(const Profile& profile, bool network) {
  if (profile.imports.is_null() && profile.removeBuiltins.empty() && !profile.activity) return nullptr;
  json allowRead = json::array(), allowWrite = json::array();
  for (const auto& bind : profile.binds) (bind.writable ? allowWrite : allowRead).push_back(bind.path);
  json doc = {{"network", network}, {"workdir", "/sandbox"}, {"files", {{"allowRead", allowRead}, {"allowWrite", allowWrite}}}};
  if (!profile.imports.is_null()) doc["imports"] = profile.imports;
  if (!profile.removeBuiltins.empty()) doc["builtins"] = {{"remove", profile.removeBuiltins}};
  return doc;
}

json limitsToJson(const Limits& limits) {
  json out = json::object();
  for (const auto& f : limitFields()) out[f.name] = limits.*(f.field);
  return out;
}

// Whether a JSON number lies in [least, most], checked before any conversion: a float past
// int64_t (1e300) has no int64_t value, and an unsigned one past it would wrap to a negative.
static bool numberIn(const json& value, int64_t least, int64_t most) {
  if (value.is_number_float()) {
    double d = value.get<double>();
    return d >= static_cast<double>(least) && d <= static_cast<double>(most);
  }
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    return (least <= 0 || u >= static_cast<uint64_t>(least)) && most >= 0 && u <= static_cast<uint64_t>(most);
  }
  return value.is_number_integer() && value.get<int64_t>() >= least && value.get<int64_t>() <= most;
}

static std::expected<void, std::string> applyLimits(Limits& limits, const json& doc, const Limits* ceiling) {
  if (doc.is_null()) return {};
  if (!doc.is_object()) return std::unexpected("limits must be an object");
  for (const auto& [key, value] : doc.items()) {
    const LimitField* field = nullptr;
    for (const auto& f : limitFields())
      if (key == f.name) field = &f;
    if (!field) return std::unexpected("unknown limit '" + key + "'");
    if (!value.is_number_integer() && !(value.is_number_float() && value.get<double>() == std::floor(value.get<double>())))
      return std::unexpected("limits." + key + " must be an integer");
    if (!numberIn(value, field->min, field->max))
      return std::unexpected("limits." + key + " must be between " + std::to_string(field->min) + " and " +
                             std::to_string(field->max));
    auto v = value.is_number_float() ? static_cast<int64_t>(value.get<double>()) : value.get<int64_t>();
    if (ceiling && v > (*ceiling).*(field->field))
      return std::unexpected("limits." + key + " = " + std::to_string(v) + " exceeds the profile's limit of " +
                             std::to_string((*ceiling).*(field->field)));
    limits.*(field->field) = v;
  }
  return {};
}

std::expected<Limits, std::string> resolveLimits(const Profile& profile, const json& requested) {
  Limits limits = profile.limits;
  auto ok = applyLimits(limits, requested, profile.allowRaisingLimits ? nullptr : &profile.limits);
  if (!ok) return std::unexpected(ok.error());
  return limits;
}

// allowRead and allowWrite entries a profile may have in all.
constexpr size_t kMaxBinds = 128;

// A host path a profile may bind at the same path inside: absolute, below / (a bind of / itself
// would cover the whole root the sandbox is given), no NUL (the mount would see a shorter path),
// and no . or .. component, which would put the mount somewhere else than the path says (the
// target is the path below the new root; a .. can climb out of it).
bool bindablePath(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.size() >= 4096 || path.find('\0') != std::string::npos) return false;
  bool belowRoot = false;
  for (size_t start = 1; start <= path.size();) {
    size_t end = std::min(path.find('/', start), path.size());
    std::string_view part(path.data() + start, end - start);
    if (part == "." || part == "..") return false;
    if (!part.empty()) belowRoot = true;
    start = end + 1;
  }
  return belowRoot;
}

// The parts of a profile that are more than one value. Each says what is wrong, for
// parseProfile to name the profile; the profile being parsed is dropped on an error.

static std::expected<void, std::string> applyPreload(std::vector<std::string>& preload, const json& value) {
  preload.clear();
  for (const auto& m : value) {
    if (!m.is_string() || m.get<std::string>().empty()) return std::unexpected("preload entries must be module names");
    preload.push_back(m.get<std::string>());
  }
  return {};
}

static std::expected<void, std::string> applyPool(PoolSettings& pool, const json& value) {
  for (const auto& [pk, pv] : value.items()) {
    int PoolSettings::*field = pk == "size" ? &PoolSettings::size
                               : pk == "maxStarting" ? &PoolSettings::maxStarting
                               : pk == "recycleAfter" ? &PoolSettings::recycleAfter
                               : pk == "refillDelayMs" ? &PoolSettings::refillDelayMs
                                                       : nullptr;
    int64_t least = pk == "size" || pk == "refillDelayMs" ? 0 : 1;
    if (!field || !pv.is_number_integer() || !numberIn(pv, least, 100000))
      return std::unexpected("pool." + pk + " is unknown or out of range");
    pool.*field = pv.get<int>();
  }
  return {};
}

static std::expected<void, std::string> checkImports(const json& value) {
  if (!value.is_object()) return {};
  if (value.size() != 1 || !(value.contains("deny") || value.contains("allow")) || !value.begin()->is_array())
    return std::unexpected("imports must be {\"deny\": [modules]} or {\"allow\": [modules]}");
  for (const auto& m : *value.begin())
    if (!m.is_string() || m.get<std::string>().empty()) return std::unexpected("imports lists hold module names");
  return {};
}

static std::expected<void, std::string> applyBuiltins(std::vector<std::string>& removeBuiltins, const json& value) {
  removeBuiltins.clear();
  for (const auto& [bk, bv] : value.items()) {
    if (bk != "remove" || !bv.is_array()) return std::unexpected("builtins must be {\"remove\": [names]}");
    for (const auto& n : bv) {
      if (!n.is_string() || n.get<std::string>().empty()) return std::unexpected("builtins.remove holds builtin names");
      removeBuiltins.push_back(n.get<std::string>());
    }
  }
  return {};
}

// allowRead or allowWrite (`key`) entries, after those already there.
static std::expected<void, std::string> addBinds(std::vector<BindMount>& binds, const std::string& key, const json& value) {
  for (const auto& p : value) {
    if (!p.is_string() || !bindablePath(p.get<std::string>()))
      return std::unexpected(key + " entries must be absolute paths below / without . or .. components");
    binds.push_back({p.get<std::string>(), key == "allowWrite"});
  }
  // The mount step opens at most 256 bind sources (mount_exec.cc), the built-in ones
  // included: more would pass here and fail every sandbox.
  if (binds.size() > kMaxBinds) return std::unexpected("at most " + std::to_string(kMaxBinds) + " allowRead and allowWrite entries");
  return {};
}

Result<std::map<std::string, std::string>> decodeEnv(const json& value) {
  auto refuse = [](const std::string& why) { return std::unexpected(Error{"env: " + why}); };
  if (!value.is_object()) return refuse("must be an object of strings");
  if (value.size() > 128) return refuse("at most 128 variables");
  static const std::set<std::string> reserved = {"PATH", "HOME", "TMPDIR", "LANG", "MPLCONFIGDIR"};
  std::map<std::string, std::string> env;
  for (const auto& [name, text] : value.items()) {
    bool valid = !name.empty() && name.size() <= 256 && !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char c : name) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!valid) return refuse("'" + name.substr(0, 64) + "' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
    if (reserved.contains(name)) return refuse(name + " is set by the sandbox itself and cannot be changed");
    if (!text.is_string()) return refuse(name + " must be a string");
    const auto& s = text.get_ref<const std::string&>();
    if (s.size() > 32768 || s.find('\0') != std::string::npos) return refuse(name + ": at most 32 KiB, no NUL");
    env[name] = s;
  }
  return env;
}

// The JSON type each profile field takes, for a refusal that names both.
static const std::map<std::string, const char*>& profileFieldTypes() {
  static const std::map<std::string, const char*> types = {
      {"description", "a string"},         {"python", "a string"},           {"childWarmup", "a string"},
      {"language", "\"python\" or \"javascript\""}, {"node", "a string"},
      {"allowRaisingLimits", "a boolean"}, {"networkAllowed", "a boolean"},  {"activity", "a boolean"},
      {"samples", "a boolean"},            {"limits", "an object"},          {"pool", "an object"},
      {"builtins", "an object"},           {"imports", "an object or null"}, {"preload", "an array"},
      {"allowRead", "an array"},           {"allowWrite", "an array"},       {"samplePeriodMs", "an integer"},
      {"sessionIdleMs", "an integer"},     {"sessionCpuMs", "an integer"},   {"env", "an object"}};
  return types;
}

static std::string jsonTypeName(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number with a fraction or exponent";
    default: return "an integer";
  }
}

// What is wrong with profile field `key`: unknown, or of the wrong type.
static std::string fieldRefusal(const std::string& key, const json& value) {
  const auto& types = profileFieldTypes();
  auto it = types.find(key);
  if (it != types.end()) return "field '" + key + "' must be " + it->second + ", not " + jsonTypeName(value);
  std::string known;
  for (const auto& [name, type] : types) known += (known.empty() ? "" : ", ") + name;
  return "unknown field '" + key + "' (a profile's fields: " + known + ")";
}

// A profile's fields agree with its language: the interpreter is `python` for Python and
// `node` for JavaScript (its default, when the profile names none), and preloads and child
// warm-up code are Python's (a JavaScript sandbox is started, not forked from a zygote).
static Result<Profile> checkLanguage(Profile profile, const json& doc, std::vector<std::string>& where) {
  bool js = profile.language == Language::JavaScript;
  auto fail = [&](const std::string& key, const std::string& why) {
    where = {key};
    return std::unexpected(Error{"profile '" + profile.name + "': " + why});
  };
  if (js && doc.contains("python")) return fail("python", "a javascript profile names its interpreter with 'node', not 'python'");
  if (!js && doc.contains("node")) return fail("node", "'node' is for a javascript profile (set \"language\": \"javascript\")");
  if (js && !doc.contains("node") && profile.python == kDefaultPython) profile.python = kDefaultNode;
  if (!js && profile.python == kDefaultNode) profile.python = kDefaultPython;  // a javascript profile made python
  if (js && !profile.preload.empty()) return fail("preload", "preload is for Python profiles (zygote imports)");
  if (js && !profile.childWarmup.empty()) return fail("childWarmup", "childWarmup is for Python profiles");
  return profile;
}

// `where` is set to the path of the member at fault, from the profile down.
static Result<Profile> parseProfile(const std::string& name, const json& doc, Profile base,
                                    std::vector<std::string>& where) {
  auto fail = [&](const std::string& why) { return std::unexpected(Error{"profile '" + name + "': " + why}); };
  if (!doc.is_object()) return fail("must be an object, not " + jsonTypeName(doc));
  base.name = name;
  for (const auto& [key, value] : doc.items()) {
    where = {key};
    if (key == "description" && value.is_string()) {
      base.description = value.get<std::string>();
    } else if (key == "language" && value.is_string() && parseLanguage(value.get<std::string>())) {
      base.language = *parseLanguage(value.get<std::string>());
    } else if ((key == "python" || key == "node") && value.is_string()) {
      base.python = value.get<std::string>();
    } else if (key == "allowRaisingLimits" && value.is_boolean()) {
      base.allowRaisingLimits = value.get<bool>();
    } else if (key == "networkAllowed" && value.is_boolean()) {
      base.networkAllowed = value.get<bool>();
    } else if (key == "limits") {
      if (auto ok = applyLimits(base.limits, value, nullptr); !ok) return fail(ok.error());
    } else if (key == "preload" && value.is_array()) {
      if (auto ok = applyPreload(base.preload, value); !ok) return fail(ok.error());
    } else if (key == "childWarmup" && value.is_string()) {
      base.childWarmup = value.get<std::string>();
    } else if (key == "pool" && value.is_object()) {
      if (auto ok = applyPool(base.pool, value); !ok) return fail(ok.error());
    } else if (key == "imports" && (value.is_null() || value.is_object())) {
      if (auto ok = checkImports(value); !ok) return fail(ok.error());
      base.imports = value;
    } else if (key == "builtins" && value.is_object()) {
      if (auto ok = applyBuiltins(base.removeBuiltins, value); !ok) return fail(ok.error());
    } else if ((key == "activity" || key == "samples") && value.is_boolean()) {
      (key == "activity" ? base.activity : base.samples) = value.get<bool>();
    } else if (key == "samplePeriodMs" && value.is_number_integer()) {
      if (!numberIn(value, 10, 60000)) return fail("samplePeriodMs must be between 10 and 60000");
      base.samplePeriodMs = value.get<int64_t>();
    } else if ((key == "sessionIdleMs" || key == "sessionCpuMs") && value.is_number_integer()) {
      if (!numberIn(value, 1000, 7LL * 24 * 3600 * 1000)) return fail(key + " must be between 1000 and 604800000");
      int64_t v = value.get<int64_t>();
      (key == "sessionIdleMs" ? base.sessionIdleMs : base.sessionCpuMs) = v;
    } else if (key == "env" && value.is_object()) {
      auto env = decodeEnv(value);
      if (!env) return fail(env.error().message());
      base.env = std::move(*env);
    } else if ((key == "allowRead" || key == "allowWrite") && value.is_array()) {
      if (auto ok = addBinds(base.binds, key, value); !ok) return fail(ok.error());
    } else {
      return fail(fieldRefusal(key, value));
    }
  }
  where.clear();
  return checkLanguage(std::move(base), doc, where);
}

// parseConfig, with `where` set to the path of the member at fault (empty: the document).
static Result<Config> parseConfigAt(const json& doc, std::vector<std::string>& where) {
  Config config = builtinConfig();
  if (!doc.is_object()) return std::unexpected(Error{"config must be a JSON object, not " + jsonTypeName(doc)});
  for (const auto& [key, value] : doc.items()) {
    if (key == "$schema") continue;
    where = {key};
    if (key != "profiles") return std::unexpected(Error{"unknown config field '" + key + "' (the fields: profiles, $schema)"});
    if (!value.is_object())
      return std::unexpected(Error{"config field 'profiles' must be an object, not " + jsonTypeName(value)});
    for (const auto& [name, body] : value.items()) {
      auto base = config.profiles.count(name) ? config.profiles[name] : Profile{};
      std::vector<std::string> inProfile;
      auto profile = parseProfile(name, body, base, inProfile);
      if (!profile) {
        where = {key, name};
        where.insert(where.end(), inProfile.begin(), inProfile.end());
        return std::unexpected(profile.error());
      }
      config.profiles[name] = *profile;
    }
  }
  where.clear();
  return config;
}

Result<Config> parseConfig(const json& doc) {
  std::vector<std::string> where;
  return parseConfigAt(doc, where);
}

namespace {

// "LINE:COL" (1-based, the column in bytes) of byte `offset` of `text`.
std::string lineColumn(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1, lineStart = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      lineStart = i + 1;
    }
  }
  return std::to_string(line) + ":" + std::to_string(offset - lineStart + 1);
}

// A cursor over valid JSON text, to find where a member is (nlohmann keeps no positions).
struct MemberFinder {
  std::string_view text;
  size_t i = 0;

  [[nodiscard]] bool at(char c) const { return i < text.size() && text[i] == c; }
  void ws() {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
  }
  // Past the string at i; its decoded text.
  std::string string() {
    size_t start = i++;
    while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
    i = std::min(i + 1, text.size());
    json decoded = json::parse(text.substr(start, i - start), nullptr, false);
    return decoded.is_string() ? decoded.get<std::string>() : std::string();
  }
  // Past the value at i.
  void value() {
    if (at('"')) {
      string();
    } else if (at('{') || at('[')) {
      size_t depth = 0;
      while (i < text.size()) {
        char c = text[i];
        if (c == '"') {
          string();
          continue;
        }
        ++i;
        if (c == '{' || c == '[') ++depth;
        else if ((c == '}' || c == ']') && --depth == 0) return;
      }
    } else {
      while (i < text.size() && !at(',') && !at('}') && !at(']') && !at(' ') && !at('\n') && !at('\t') && !at('\r')) ++i;
    }
  }
  // The offset of the key of the member at path[depth...] of the object at i; of the last
  // one when a key repeats, as the parser keeps the last.
  std::optional<size_t> find(const std::vector<std::string>& path, size_t depth = 0) {
    ws();
    if (depth == path.size() || !at('{')) return std::nullopt;
    ++i;
    std::optional<size_t> found;
    while (true) {
      ws();
      if (!at('"')) return found;
      size_t keyAt = i;
      std::string key = string();
      ws();
      if (at(':')) ++i;
      ws();
      if (key == path[depth]) {
        size_t valueAt = i;
        auto inner = depth + 1 == path.size() ? std::optional(keyAt) : find(path, depth + 1);
        if (inner) found = inner;
        i = valueAt;
      }
      value();
      ws();
      if (!at(',')) return found;
      ++i;
    }
  }
};

// What nlohmann says after its "parse error at ...: " prefix.
std::string parseErrorMessage(const json::parse_error& e) {
  std::string what = e.what();
  size_t at = what.find("parse error");
  size_t colon = at == std::string::npos ? std::string::npos : what.find(": ", at);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

}  // namespace

Result<Config> loadConfig(const std::string& path) {
  // Read one byte past the bound, so that a larger file is refused, not cut to a prefix.
  constexpr size_t kMaxBytes = 16u << 20;
  auto text = readFile(path, kMaxBytes + 1);
  if (!text) return std::unexpected(Error{path + ": " + (text.error().err ? std::strerror(text.error().err) : text.error().what)});
  if (text->size() > kMaxBytes) return std::unexpected(Error{path + ": larger than 16 MiB"});
  json doc;
  try {
    doc = json::parse(*text);
  } catch (const json::parse_error& e) {
    // e.byte counts from 1: the last character read, the one at fault.
    return std::unexpected(Error{path + ":" + lineColumn(*text, e.byte > 0 ? e.byte - 1 : 0) +
                                 ": not valid JSON: " + parseErrorMessage(e)});
  }
  std::vector<std::string> where;
  auto config = parseConfigAt(doc, where);
  // A profile's `python` is looked at now, so that a bad one is reported as the other
  // refusals are (FILE:LINE:COL of its key), not later by the pool.
  const json& profiles = config && doc.contains("profiles") ? doc["profiles"] : json::object();
  for (const auto& [name, body] : profiles.items()) {
    const char* key = body.is_object() && body.contains("node") ? "node" : "python";
    if (!body.is_object() || !body.contains(key)) continue;
    if (auto interp = sandbox::resolveInterpreter(config->profiles.at(name).python, key); !interp) {
      where = {"profiles", name, key};
      config = std::unexpected(Error{"profile '" + name + "': " + interp.error().message()});
      break;
    }
  }
  if (!config) {
    auto at = where.empty() ? std::nullopt : MemberFinder{*text}.find(where);
    return std::unexpected(Error{path + (at ? ":" + lineColumn(*text, *at) : std::string()) + ": " + config.error().what});
  }
  return config;
}

}  // namespace pycell
