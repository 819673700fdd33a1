// pycell: one binary, four faces (serve, mcp, run, check). See README.md.
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "pycell/cli/cli.h"

namespace {

// `pycell help [COMMAND]`: 0, or 2 for a command that does not exist.
int printHelp(const std::string& command) {
  auto text = pycell::cli::helpText(command);
  if (!text) {
    std::cerr << "pycell: no command '" << command << "'\n\n" << *pycell::cli::helpText("pycell");
    return 2;
  }
  std::cout << *text;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pycell::cli;
  // A client that goes away must not kill us with SIGPIPE mid-write: write() returns EPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << *helpText("pycell");
    return 2;
  }
  std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "--help" || command == "-h") return printHelp("pycell");
  if (command == "help") return printHelp(rest.empty() ? "pycell" : rest[0]);
  if (command == "--version") {
    std::cout << "pycell " << PYCELL_VERSION << "\n";
    return 0;
  }
  if (helpText(command) && command != "pycell" && asksForHelp(rest)) return printHelp(command);
  if (command == "serve" || command == "--stdio") {
    auto options = parseServe(rest);
    return options ? serveMain(*options) : 2;
  }
  if (command == "mcp") {
    auto options = parseServe(rest, true);
    return options ? serveMain(*options, pycell::server::Dialect::Mcp) : 2;
  }
  if (command == "run") {
    auto options = parseRun(rest);
    return options ? runMain(*options) : 2;
  }
  if (command == "check") {
    auto options = parseCheck(rest);
    return options ? checkMain(*options) : 2;
  }
  std::cerr << "pycell: unknown command '" << command << "'\n\n" << *helpText("pycell");
  return 2;
}
