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

TEST_CASE("a spare cgroup is handed out again only once its processes are gone, its counters restarted",
          "[cgroup]") {
  using namespace pycell::sandbox;
  CgroupSupport support = setUpCgroups();
  if (support.version == CgroupVersion::None) {
    // Only where this process may make cgroups (root, or a delegated v2 tree); the integration
    // tests cover the server's behaviour without them.
    REQUIRE(::geteuid() != 0);
    WARN("no cgroups to make here (" << support.reason << "): recycling not exercised");
    return;
  }
  auto openFds = [] {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
  };
  const size_t fdsBefore = openFds();
  auto made = ExecutionCgroup::create(support, "c-recycle-test-" + std::to_string(::getpid()), int64_t{64} << 20, 16);
  REQUIRE(made);
  int gate[2];
  REQUIRE(::pipe(gate) == 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    char c;
    ::close(gate[1]);
    (void)!::read(gate[0], &c, 1);
    ::_exit(0);
  }
  ::close(gate[0]);
  REQUIRE(made->addProcess(pid));
  CgroupReaper reaper;
  reaper.add(std::move(*made));
  CHECK(openFds() == fdsBefore + 1);  // the gate's write end: a spare holds no descriptor
  CHECK_FALSE(reaper.reuse(int64_t{32} << 20, 8).has_value());  // its process is still in it
  ::close(gate[1]);
  REQUIRE(::waitpid(pid, nullptr, 0) == pid);
  auto again = reaper.reuse(int64_t{32} << 20, 8);
  REQUIRE(again.has_value());
  CHECK(again->empty());
  CgroupUsage usage = again->usage();
  CHECK(usage.oomKills == 0);
  CHECK(usage.peakMemoryBytes < (uint64_t{1} << 20));  // counted from the moment it was recycled
  if (support.version == CgroupVersion::V1 && usage.cpu) CHECK(usage.cpu->totalUs() == 0);
  CHECK_FALSE(reaper.reuse(int64_t{32} << 20, 8).has_value());  // handed out once
  again.reset();  // removed
  reaper.drain(std::chrono::seconds(2));
  removeCgroupBase(support);
}
