#include <algorithm>
#include <charconv>
#include <functional>
#include <iostream>
#include <map>

#include "pycell/cli/cli.h"
#include "pycell/cli_help.h"  // generated from README.md
#include "pycell/process/log.h"

namespace pycell::cli {

namespace {

using Handler = std::function<bool(const std::string& value)>;
struct Flag {
  bool takesValue;
  Handler handler;
};

template <class T>
bool parseNumber(const std::string& s, T& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && ptr == s.data() + s.size();
}

// A positive number of seconds (fractions allowed).
bool parseSeconds(const std::string& v, std::optional<double>& out) {
  double seconds = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
  if (ec != std::errc{} || ptr != v.data() + v.size() || !(seconds > 0) || seconds > 86400) return false;
  out = seconds;
  return true;
}

void addCommon(std::map<std::string, Flag>& flags, CommonOptions& c) {
  flags["--config"] = {true, [&c](const std::string& v) { c.configPath = v; return true; }};
  flags["--allow-degraded"] = {false, [&c](const std::string&) { c.server.allowDegraded = true; return true; }};
  flags["--log-level"] = {true, [&c](const std::string& v) {
                            c.logLevel = v;
                            return v == "debug" || v == "info" || v == "warn" || v == "error";
                          }};
}

// Parses flags (`--name value` or `--name=value`); positional arguments go to `positional`.
bool parseFlags(const std::vector<std::string>& args, std::map<std::string, Flag>& flags, std::vector<std::string>* positional) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.size() < 2 || arg[0] != '-' || arg == "-") {
      if (!positional) {
        std::cerr << "pycell: unexpected argument '" << arg << "'\n";
        return false;
      }
      positional->push_back(arg);
      continue;
    }
    std::optional<std::string> inlineValue;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      inlineValue = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto it = flags.find(arg);
    if (it == flags.end()) {
      std::cerr << "pycell: unknown option '" << arg << "' (see pycell --help)\n";
      return false;
    }
    std::string value;
    if (it->second.takesValue) {
      if (inlineValue) value = *inlineValue;
      else if (i + 1 < args.size()) value = args[++i];
      else {
        std::cerr << "pycell: option '" << arg << "' needs a value\n";
        return false;
      }
    }
    if (!it->second.handler(value)) {
      std::cerr << "pycell: bad value '" << value << "' for " << arg << "\n";
      return false;
    }
  }
  return true;
}

// Each command's flags, bound to the options they fill (acceptedFlags lists their names).
std::map<std::string, Flag> serveFlags(ServeOptions& o, bool mcp) {
  std::map<std::string, Flag> flags;
  addCommon(flags, o.common);
  auto& s = o.common.server;
  if (!mcp) {  // MCP is one JSON message per line, always
    flags["--framing"] = {true, [&o](const std::string& v) {
                            auto f = protocol::parseFraming(v);
                            if (f) o.framing = *f;
                            return f.has_value();
                          }};
  }
  flags["--max-message-bytes"] = {true, [&s](const std::string& v) { return parseNumber(v, s.maxMessageBytes) && s.maxMessageBytes > 0; }};
  flags["--max-concurrent"] = {true, [&s](const std::string& v) { return parseNumber(v, s.maxConcurrent) && s.maxConcurrent > 0; }};
  flags["--max-queue"] = {true, [&s](const std::string& v) { return parseNumber(v, s.maxQueue) && s.maxQueue >= 0; }};
  flags["--max-queued-bytes"] = {true, [&s](const std::string& v) { return parseNumber(v, s.maxQueuedBytes) && s.maxQueuedBytes > 0; }};
  flags["--max-sessions"] = {true, [&s](const std::string& v) { return parseNumber(v, s.maxSessions) && s.maxSessions >= 0; }};
  if (!mcp) {  // MCP clients spawn their server; a shared one speaks pycell's protocol
    flags["--listen"] = {true, [&o](const std::string& v) {
                           auto address = server::parseListenAddress(v);
                           if (!address) {
                             std::cerr << "pycell serve: --listen: " << address.error() << "\n";
                             return false;
                           }
                           o.listen = *address;
                           return true;
                         }};
    flags["--token-file"] = {true, [&o](const std::string& v) { o.tokenFile = v; return !v.empty(); }};
    flags["--max-connections"] = {true, [&o](const std::string& v) { return parseNumber(v, o.maxConnections) && o.maxConnections > 0; }};
    flags["--max-executions-per-connection"] = {true, [&o](const std::string& v) {
                                                  return parseNumber(v, o.maxExecutionsPerConnection) && o.maxExecutionsPerConnection > 0;
                                                }};
  }
  flags["--client-process-id"] = {true, [&o](const std::string& v) {
                                    int pid = 0;
                                    if (!parseNumber(v, pid) || pid <= 0) return false;
                                    o.clientProcessId = pid;
                                    return true;
                                  }};
  return flags;
}

std::map<std::string, Flag> runFlags(RunOptions& o) {
  std::map<std::string, Flag> flags;
  addCommon(flags, o.common);
  flags["--profile"] = {true, [&o](const std::string& v) { o.profile = v; return !v.empty(); }};
  flags["--language"] = {true, [&o](const std::string& v) { o.language = v; return parseLanguage(v).has_value(); }};
  flags["--timeout"] = {true, [&o](const std::string& v) { return parseSeconds(v, o.timeoutSeconds); }};
  flags["--cpu"] = {true, [&o](const std::string& v) { return parseSeconds(v, o.cpuSeconds); }};
  flags["--verbose"] = {false, [&o](const std::string&) { o.verbose = true; return true; }};
  flags["--analyze"] = {false, [&o](const std::string&) { o.analyze = true; return true; }};
  flags["--memory"] = {true, [&o](const std::string& v) {
                         int64_t mb = 0;
                         if (!parseNumber(v, mb) || mb <= 0) return false;
                         o.memoryMb = mb;
                         return true;
                       }};
  flags["--allow-network"] = {false, [&o](const std::string&) { o.allowNetwork = true; return true; }};
  flags["--allow-read"] = {true, [&o](const std::string& v) { o.allowRead.push_back(v); return !v.empty(); }};
  flags["--allow-write"] = {true, [&o](const std::string& v) { o.allowWrite.push_back(v); return !v.empty(); }};
  flags["--env"] = {true, [&o](const std::string& v) {
                      auto eq = v.find('=');
                      if (eq == 0 || eq == std::string::npos) return false;
                      o.env.emplace_back(v.substr(0, eq), v.substr(eq + 1));
                      return true;
                    }};
  flags["--json"] = {false, [&o](const std::string&) { o.json = true; return true; }};
  flags["--report"] = {true, [&o](const std::string& v) { o.reportFile = v; return !v.empty(); }};
  flags["--usage-chart"] = {true, [&o](const std::string& v) { o.usageChartFile = v; return !v.empty(); }};
  flags["--figures"] = {true, [&o](const std::string& v) { o.figuresDir = v; return !v.empty(); }};
  flags["--out"] = {true, [&o](const std::string& v) { o.outDir = v; return !v.empty(); }};
  flags["--return"] = {true, [&o](const std::string& v) { o.returnGlobs.push_back(v); return !v.empty(); }};
  return flags;
}

}  // namespace

std::optional<ServeOptions> parseServe(const std::vector<std::string>& args, bool mcp) {
  ServeOptions o;
  auto flags = serveFlags(o, mcp);
  if (!parseFlags(args, flags, nullptr)) return std::nullopt;
  auto refuse = [](const char* why) {
    std::cerr << "pycell serve: " << why << "\n";
    return std::nullopt;
  };
  if (!o.listen && !o.tokenFile.empty()) return refuse("--token-file goes with --listen");
  if (o.listen && o.clientProcessId) return refuse("--client-process-id is for a server on stdin/stdout, not with --listen");
  return o;
}

std::optional<RunOptions> parseRun(const std::vector<std::string>& args) {
  RunOptions o;
  auto flags = runFlags(o);
  std::vector<std::string> positional;
  if (!parseFlags(args, flags, &positional)) return std::nullopt;
  if (positional.size() != 1) {
    std::cerr << "pycell run: give exactly one FILE (or - for standard input)\n";
    return std::nullopt;
  }
  o.file = positional[0];
  if (o.outDir.empty() != o.returnGlobs.empty()) {
    std::cerr << "pycell run: --out DIR and --return GLOB go together\n";
    return std::nullopt;
  }
  return o;
}

std::optional<CommonOptions> parseCheck(const std::vector<std::string>& args) {
  CommonOptions o;
  std::map<std::string, Flag> flags;
  addCommon(flags, o);
  if (!parseFlags(args, flags, nullptr)) return std::nullopt;
  return o;
}

std::optional<std::string_view> helpText(std::string_view command) {
  if (command == "--stdio") command = "serve";
  for (const auto& [name, text] : kCommandHelp)
    if (name == command) return text;
  return std::nullopt;
}

bool asksForHelp(const std::vector<std::string>& args) {
  return std::ranges::any_of(args, [](const std::string& a) { return a == "--help" || a == "-h"; });
}

std::vector<std::string> acceptedFlags(std::string_view command) {
  std::map<std::string, Flag> flags;
  ServeOptions serve;
  RunOptions run;
  CommonOptions common;
  if (command == "serve" || command == "mcp") flags = serveFlags(serve, command == "mcp");
  else if (command == "run") flags = runFlags(run);
  else if (command == "check") addCommon(flags, common);
  else return {};
  std::vector<std::string> names;
  for (const auto& [name, flag] : flags) names.push_back(name);
  names.insert(names.end(), {"--help", "-h"});
  return names;
}

std::optional<Config> loadConfigOrReport(const CommonOptions& options) {
  static const std::map<std::string, log::Level> levels = {
      {"debug", log::Level::Debug}, {"info", log::Level::Info}, {"warn", log::Level::Warn}, {"error", log::Level::Error}};
  log::setLevel(levels.at(options.logLevel));
  if (options.configPath.empty()) return builtinConfig();
  auto config = loadConfig(options.configPath);
  if (!config) {
    std::cerr << "pycell: config " << config.error().message() << "\n";  // FILE[:LINE:COL]: message
    return std::nullopt;
  }
  return *config;
}

}  // namespace pycell::cli
