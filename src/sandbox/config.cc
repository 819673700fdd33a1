#include "pycell/sandbox/config.h"

#include <cmath>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

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
    auto v = value.get<int64_t>();
    if (v < field->min || v > field->max)
      return std::unexpected("limits." + key + " must be between " + std::to_string(field->min) + " and " +
                             std::to_string(field->max));
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

static Result<Profile> parseProfile(const std::string& name, const json& doc, Profile base) {
  auto fail = [&](const std::string& why) { return std::unexpected(Error{"profile '" + name + "': " + why}); };
  if (!doc.is_object()) return fail("must be an object");
  base.name = name;
  for (const auto& [key, value] : doc.items()) {
    if (key == "description" && value.is_string()) {
      base.description = value.get<std::string>();
    } else if (key == "python" && value.is_string()) {
      base.python = value.get<std::string>();
    } else if (key == "allowRaisingLimits" && value.is_boolean()) {
      base.allowRaisingLimits = value.get<bool>();
    } else if (key == "networkAllowed" && value.is_boolean()) {
      base.networkAllowed = value.get<bool>();
    } else if (key == "limits") {
      if (auto ok = applyLimits(base.limits, value, nullptr); !ok) return fail(ok.error());
    } else if (key == "preload" && value.is_array()) {
      base.preload.clear();
      for (const auto& m : value) {
        if (!m.is_string() || m.get<std::string>().empty()) return fail("preload entries must be module names");
        base.preload.push_back(m.get<std::string>());
      }
    } else if (key == "childWarmup" && value.is_string()) {
      base.childWarmup = value.get<std::string>();
    } else if (key == "pool" && value.is_object()) {
      for (const auto& [pk, pv] : value.items()) {
        int PoolSettings::*field = pk == "size" ? &PoolSettings::size
                                   : pk == "maxStarting" ? &PoolSettings::maxStarting
                                   : pk == "recycleAfter" ? &PoolSettings::recycleAfter
                                   : pk == "refillDelayMs" ? &PoolSettings::refillDelayMs
                                                           : nullptr;
        int64_t least = pk == "size" || pk == "refillDelayMs" ? 0 : 1;
        if (!field || !pv.is_number_integer() || pv.get<int64_t>() < least || pv.get<int64_t>() > 100000)
          return fail("pool." + pk + " is unknown or out of range");
        base.pool.*field = pv.get<int>();
      }
    } else if (key == "imports" && (value.is_null() || value.is_object())) {
      if (value.is_object()) {
        if (value.size() != 1 || !(value.contains("deny") || value.contains("allow")) || !value.begin()->is_array())
          return fail("imports must be {\"deny\": [modules]} or {\"allow\": [modules]}");
        for (const auto& m : *value.begin())
          if (!m.is_string() || m.get<std::string>().empty()) return fail("imports lists hold module names");
      }
      base.imports = value;
    } else if (key == "builtins" && value.is_object()) {
      base.removeBuiltins.clear();
      for (const auto& [bk, bv] : value.items()) {
        if (bk != "remove" || !bv.is_array()) return fail("builtins must be {\"remove\": [names]}");
        for (const auto& n : bv) {
          if (!n.is_string() || n.get<std::string>().empty()) return fail("builtins.remove holds builtin names");
          base.removeBuiltins.push_back(n.get<std::string>());
        }
      }
    } else if ((key == "activity" || key == "samples") && value.is_boolean()) {
      (key == "activity" ? base.activity : base.samples) = value.get<bool>();
    } else if (key == "samplePeriodMs" && value.is_number_integer()) {
      if (value.get<int64_t>() < 10 || value.get<int64_t>() > 60000) return fail("samplePeriodMs must be between 10 and 60000");
      base.samplePeriodMs = value.get<int64_t>();
    } else if ((key == "sessionIdleMs" || key == "sessionCpuMs") && value.is_number_integer()) {
      int64_t v = value.get<int64_t>();
      if (v < 1000 || v > 7LL * 24 * 3600 * 1000) return fail(key + " must be between 1000 and 604800000");
      (key == "sessionIdleMs" ? base.sessionIdleMs : base.sessionCpuMs) = v;
    } else if ((key == "allowRead" || key == "allowWrite") && value.is_array()) {
      for (const auto& p : value) {
        if (!p.is_string() || p.get<std::string>().empty() || p.get<std::string>()[0] != '/')
          return fail(key + " entries must be absolute paths");
        base.binds.push_back({p.get<std::string>(), key == "allowWrite"});
      }
    } else {
      return fail("unknown or mistyped field '" + key + "'");
    }
  }
  return base;
}

Result<Config> parseConfig(const json& doc) {
  Config config = builtinConfig();
  if (!doc.is_object()) return std::unexpected(Error{"config must be a JSON object"});
  for (const auto& [key, value] : doc.items()) {
    if (key == "$schema") continue;
    if (key != "profiles" || !value.is_object()) return std::unexpected(Error{"unknown or mistyped config field '" + key + "'"});
    for (const auto& [name, body] : value.items()) {
      auto base = config.profiles.count(name) ? config.profiles[name] : Profile{};
      auto profile = parseProfile(name, body, base);
      if (!profile) return std::unexpected(profile.error());
      config.profiles[name] = *profile;
    }
  }
  return config;
}

Result<Config> loadConfig(const std::string& path) {
  auto text = readFile(path, 16u << 20);
  if (!text) return std::unexpected(text.error());
  json doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded()) return std::unexpected(Error{path + ": not valid JSON"});
  auto config = parseConfig(doc);
  if (!config) return std::unexpected(Error{path + ": " + config.error().what});
  return config;
}

}  // namespace pycell
