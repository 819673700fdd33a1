#pragma once
// Command line: `pycell serve`, `pycell run`, `pycell check`. The only layer that writes
// human-readable text to stdout (serve writes protocol frames there and nothing else).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pycell/protocol/framing.h"
#include "pycell/sandbox/config.h"
#include "pycell/server/server.h"

namespace pycell::cli {

struct CommonOptions {
  std::string configPath;
  ServerOptions server;
  std::string logLevel = "info";
};

struct ServeOptions {
  CommonOptions common;
  protocol::Framing framing = protocol::Framing::Auto;
  std::optional<int> clientProcessId;
  std::optional<server::ListenAddress> listen;  // --listen: a shared server on a socket
  std::string tokenFile;
  int maxConnections = 64;
  int maxExecutionsPerConnection = 16;
};

struct RunOptions {
  CommonOptions common;
  std::string file;  // "-" for stdin
  std::string profile;   // empty: the language's own profile ("default", "javascript")
  std::string language;  // --language; empty: by the file's extension (.js, .mjs, .cjs: javascript)
  std::optional<double> timeoutSeconds;  // wall clock (and CPU too, unless --cpu)
  std::optional<double> cpuSeconds;
  std::optional<int64_t> memoryMb;
  bool allowNetwork = false;
  std::vector<std::string> allowRead;
  std::vector<std::string> allowWrite;
  std::vector<std::pair<std::string, std::string>> env;  // --env NAME=VALUE, in order
  bool json = false;
  bool verbose = false;        // a summary on stderr at the end
  bool analyze = false;        // --analyze: the static analysis's diagnostics first, on stderr
  std::string reportFile;      // --report: the whole result (activity included) as JSON
  std::string usageChartFile;  // --usage-chart: CPU and memory over time as SVG
  std::string figuresDir;      // --figures: each figure as figure-N.png
  std::string outDir;          // --out: the files --return names, written below it
  std::vector<std::string> returnGlobs;
};

// Each returns the process exit code.
int serveMain(const ServeOptions& options, server::Dialect dialect = server::Dialect::Pycell);
int runMain(const RunOptions& options);
int checkMain(const CommonOptions& options);

// Parses argv (after the subcommand); on error prints usage to stderr and returns nullopt.
// `mcp` takes the same flags as `serve` except --framing (MCP is one message per line).
[[nodiscard]] std::optional<ServeOptions> parseServe(const std::vector<std::string>& args, bool mcp = false);
[[nodiscard]] std::optional<RunOptions> parseRun(const std::vector<std::string>& args);
[[nodiscard]] std::optional<CommonOptions> parseCheck(const std::vector<std::string>& args);

// Loads the config (built-ins when no path) and applies the log level; prints errors.
[[nodiscard]] std::optional<Config> loadConfigOrReport(const CommonOptions& options);

// The help of "pycell" (the overview) or of one command: README.md's "Command line" blocks,
// carried in the binary. nullopt for an unknown command.
[[nodiscard]] std::optional<std::string_view> helpText(std::string_view command);
// Whether the arguments ask for help (--help or -h anywhere among them).
[[nodiscard]] bool asksForHelp(const std::vector<std::string>& args);
// Every flag a command's parser accepts (--help and -h included); empty for an unknown one.
[[nodiscard]] std::vector<std::string> acceptedFlags(std::string_view command);

}  // namespace pycell::cli
