// The command-line help (README.md's "Command line" blocks, carried in the binary) lists
// exactly the flags each command's parser accepts.
#include <regex>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "pycell/cli/cli.h"

using pycell::cli::acceptedFlags;
using pycell::cli::helpText;

namespace {

// The flags an "Options:" list names: each line that starts with two spaces and a flag
// ("  --name VALUE   what it does", or "  -h, --help   ...").
std::set<std::string> flagsIn(std::string_view text) {
  std::set<std::string> flags;
  static const std::regex line(R"(^  (-h, )?(--[a-z][a-z-]*)(?= |$))", std::regex::multiline);
  std::string s(text);
  for (auto it = std::sregex_iterator(s.begin(), s.end(), line); it != std::sregex_iterator(); ++it) {
    if ((*it)[1].matched) flags.insert("-h");
    flags.insert((*it)[2].str());
  }
  return flags;
}

}  // namespace

TEST_CASE("each command's help lists every flag its parser accepts, and no other", "[cli]") {
  for (const char* command : {"serve", "mcp", "run", "check"}) {
    INFO("command: " << command);
    auto text = helpText(command);
    REQUIRE(text);
    auto accepted = acceptedFlags(command);
    REQUIRE_FALSE(accepted.empty());
    CHECK(flagsIn(*text) == std::set<std::string>(accepted.begin(), accepted.end()));
    CHECK(text->find(std::string("Usage: pycell ") + command) != std::string_view::npos);
    CHECK(text->find("Exit status:") != std::string_view::npos);
    CHECK(text->find("Example") != std::string_view::npos);
  }
}

TEST_CASE("the overview names every command, and unknown commands have no help", "[cli]") {
  auto overview = helpText("pycell");
  REQUIRE(overview);
  for (const char* command : {"serve", "mcp", "run", "check", "help"}) {
    INFO("command: " << command);
    CHECK(overview->find(std::string("pycell ") + command) != std::string_view::npos);
  }
  CHECK(helpText("--stdio") == helpText("serve"));
  CHECK_FALSE(helpText("frobnicate"));
  CHECK(acceptedFlags("frobnicate").empty());
}

TEST_CASE("mcp does not take --framing; serve does", "[cli]") {
  CHECK(pycell::cli::parseServe({"--framing", "lsp"}).has_value());
  CHECK_FALSE(pycell::cli::parseServe({"--framing", "lsp"}, true).has_value());
}
