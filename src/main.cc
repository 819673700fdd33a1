// pycell: one binary, three faces (serve, run, check). See README.md.
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "pycell/cli/cli.h"

int main(int argc, char** argv) {
  using namespace pycell::cli;
  // A client that goes away must not kill us with SIGPIPE mid-write: write() returns EPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    (args.empty() ? std::cerr : std::cout) << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "pycell " << PYCELL_VERSION << "\n";
    return 0;
  }
  std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "serve" || command == "--stdio") {
    auto options = parseServe(rest);
    return options ? serveMain(*options) : 2;
  }
  if (command == "mcp") {
    auto options = parseServe(rest);
    return options ? serveMain(*options, pycell::server::Server::Dialect::Mcp) : 2;
  }
  if (command == "run") {
    auto options = parseRun(rest);
    return options ? runMain(*options) : 2;
  }
  if (command == "check") {
    auto options = parseCheck(rest);
    return options ? checkMain(*options) : 2;
  }
  std::cerr << "pycell: unknown command '" << command << "'\n\n" << kUsage;
  return 2;
}
