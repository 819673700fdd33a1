// removeStaleCgroups on a plain directory tree (rmdir works the same there as in a cgroup
// hierarchy): what it removes and what it must leave.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "pycell/sandbox/cgroup.h"

namespace fs = std::filesystem;

namespace {

// A pid that ran and is gone: a child we started and reaped.
pid_t deadPid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

}  // namespace

TEST_CASE("stale pycell cgroups of servers that ended are removed; live and foreign ones stay", "[cgroup]") {
  char pattern[] = "/tmp/pycell-cgroup-test-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  fs::path root = pattern;
  std::string dead = std::to_string(deadPid()), live = std::to_string(::getpid());
  std::initializer_list<std::string> names = {"pycell-" + dead, "pycell-server-" + dead, "pycell-" + live,
                                              "pycell-server-" + live, "pycell-notapid", "other-" + dead};
  for (const auto& name : names) fs::create_directory(root / name);
  fs::create_directory(root / ("pycell-" + dead) / "e12");   // an execution cgroup left inside
  fs::create_directory(root / ("pycell-" + live) / "e13");
  std::ofstream(root / ("pycell-server-" + dead + "-file")).put('x');  // not a directory

  pycell::sandbox::removeStaleCgroups(root.string());

  CHECK_FALSE(fs::exists(root / ("pycell-" + dead)));
  CHECK_FALSE(fs::exists(root / ("pycell-server-" + dead)));
  CHECK(fs::exists(root / ("pycell-" + live) / "e13"));
  CHECK(fs::exists(root / ("pycell-server-" + live)));
  CHECK(fs::exists(root / "pycell-notapid"));
  CHECK(fs::exists(root / ("other-" + dead)));
  CHECK(fs::exists(root / ("pycell-server-" + dead + "-file")));
  fs::remove_all(root);
}
