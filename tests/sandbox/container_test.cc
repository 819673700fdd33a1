// pycell in a container (src/sandbox/container.cc, the probe's hostname and procMount steps):
// how a container is recognised, which hint each failed step gets, and the probe run under
// the two refusals a container's defaults cause (a seccomp profile without sethostname, a
// /proc with a path mounted over it), each made for real in a forked child.
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include "pycell/sandbox/caps.h"
#include "pycell/sandbox/container.h"
#include "pycell/sandbox/probe.h"

namespace fs = std::filesystem;
using pycell::sandbox::containerHint;
using pycell::sandbox::detectContainer;

namespace {

struct ScratchRoot {
  fs::path dir;
  ScratchRoot() {
    char name[] = "/tmp/pycell-container-test-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    dir = name;
  }
  ~ScratchRoot() { fs::remove_all(dir); }
  void write(const std::string& path, const std::string& text) const {
    fs::create_directories((dir / path).parent_path());
    std::ofstream(dir / path) << text;
  }
};

struct ProbedItem {
  bool ok = false;
  int err = 0;
};

struct ChildProbe {
  bool setUp = false;  // the refusal could be made here (else the test has nothing to check)
  std::map<std::string, ProbedItem> items;
  bool uts = false, mount = false, idMap = true;
  std::string missing;  // Isolation::missingSummary
};

// probeIsolation in a forked child after `refuse` has taken a permission away from it (and
// from the probe's own children, which inherit it); the child writes what it found to a pipe.
ChildProbe probeWithout(const std::function<bool()>& refuse) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::ostringstream out;
    if (!refuse()) {
      out << "unsupported\n";
    } else {
      auto iso = pycell::sandbox::probeIsolation({});
      iso.container = {true, "test"};
      out << "ns " << iso.namespaces.uts << " " << iso.namespaces.mount << " " << iso.idMap << "\n";
      for (const auto& item : iso.items) out << "item " << item.name << " " << item.ok << " " << item.err << "\n";
      out << "missing " << iso.missingSummary() << "\n";
    }
    std::string text = out.str();
    [[maybe_unused]] auto n = ::write(fds[1], text.data(), text.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  ::waitpid(pid, nullptr, 0);
  ChildProbe probe;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string kind;
    words >> kind;
    if (kind == "ns") {
      probe.setUp = true;
      words >> probe.uts >> probe.mount >> probe.idMap;
    } else if (kind == "item") {
      std::string name;
      ProbedItem item;
      words >> name >> item.ok >> item.err;
      probe.items[name] = item;
    } else if (kind == "missing") {
      std::getline(words, probe.missing);
    }
  }
  return probe;
}

// A seccomp filter like a container runtime's default: sethostname refused with EPERM.
bool refuseSethostname() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  bool ok = ctx != nullptr && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(sethostname), 0) == 0 &&
            seccomp_load(ctx) == 0;
  if (ctx != nullptr) seccomp_release(ctx);
  return ok;
}

// A /proc with a path mounted over it, like a container runtime's masked paths (a tmpfs on
// /proc/sys), in a mount namespace of this child's own.
bool writeFile(const char* path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

bool maskProc() {
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
  // Mapped ids, as a container's root has: the probe's own user namespaces need them.
  if (!writeFile("/proc/self/setgroups", "deny") || !writeFile("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
      !writeFile("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
    return false;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  return ::mount("tmpfs", "/proc/sys", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k") == 0;
}

// A container's root run with --cap-drop=ALL: root without capabilities.
bool dropCapabilities() {
  const char* step = "";
  return ::geteuid() == 0 && pycell::sandbox::dropAllCapabilities(&step) == 0;
}

}  // namespace

TEST_CASE("a container is recognised by its runtime's marks, and a plain machine is not", "[container]") {
  ScratchRoot root;
  CHECK_FALSE(detectContainer(root.dir.string(), {}).inside);
  CHECK_FALSE(detectContainer(root.dir.string(), {{"container", ""}}).inside);
  root.write("proc/1/cgroup", "0::/init.scope\n");  // a host's systemd, cgroup v2
  CHECK_FALSE(detectContainer(root.dir.string(), {}).inside);
  root.write("proc/1/cgroup", "12:pids:/kubepods/besteffort/pod1234/abcd\n0::/\n");
  CHECK(detectContainer(root.dir.string(), {}).evidence == "/proc/1/cgroup names kubepods");
  CHECK(detectContainer(root.dir.string(), {{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}}).evidence ==
        "KUBERNETES_SERVICE_HOST in the environment (Kubernetes)");
  CHECK(detectContainer(root.dir.string(), {{"container", "podman"}}).evidence == "container=podman in the environment");
  root.write(".dockerenv", "");
  CHECK(detectContainer(root.dir.string(), {}).evidence == "/.dockerenv (Docker)");
  root.write("run/.containerenv", "engine=\"podman-4.3.1\"\n");
  auto guess = detectContainer(root.dir.string(), {{"container", "podman"}});
  CHECK(guess.inside);
  CHECK(guess.evidence == "/run/.containerenv (podman)");
}

TEST_CASE("each step a container refuses maps to the flag and the field that grant it", "[container]") {
  CHECK(containerHint("hostname", EPERM) ==
        "in a container: the container's seccomp profile refuses sethostname: run it with --security-opt "
        "seccomp=pycell.json (podman/Docker; the file is deploy/seccomp/pycell.json of pycell's source) or "
        "securityContext.seccompProfile: {type: Localhost, localhostProfile: profiles/pycell.json} (Kubernetes)");
  CHECK(containerHint("procMount", EPERM) ==
        "in a container: the container's /proc is masked: run it with --security-opt unmask=/proc/* (podman) or "
        "--security-opt systempaths=unconfined (Docker) or securityContext.procMount: Unmasked (with hostUsers: "
        "false) (Kubernetes)");
  // The same step refused by an LSM, not by the masked /proc.
  CHECK_THAT(containerHint("procMount", EACCES), Catch::Contains("apparmor=unconfined") &&
                                                     Catch::Contains("appArmorProfile: {type: Unconfined}"));
  // Docker's default profile refuses unshare(CLONE_NEWUSER): the same profile grants it.
  CHECK_THAT(containerHint("userNamespace", EPERM), Catch::Contains("seccomp=pycell.json"));
  CHECK_THAT(containerHint("userNamespace", ENOSPC), Catch::Contains("seccomp=pycell.json"));
  CHECK_THAT(containerHint("cgroup", 0), Catch::Contains("--cgroupns=private"));
  // podman's default profile refuses with ENOSYS: the same profile grants it.
  CHECK_THAT(containerHint("pidNamespace", ENOSYS), Catch::Contains("seccomp=pycell.json"));
  // A step the table does not know, or an errno its row is not about, gets no hint.
  CHECK(containerHint("hostname", EINVAL).empty());
  CHECK(containerHint("procMount", ENOENT).empty());
  CHECK(containerHint("execution", EPERM).empty());
}

TEST_CASE("every row of the hint table names a step the probe reports", "[container]") {
  auto iso = pycell::sandbox::probeIsolation({});
  for (const auto& row : pycell::sandbox::containerPermissions()) {
    INFO(row.step);
    if (row.step == "idMap" && ::geteuid() != 0) continue;  // probed for a root server only
    CHECK(std::any_of(iso.items.begin(), iso.items.end(), [&](const auto& item) { return item.name == row.step; }));
    CHECK_FALSE(row.runtime.empty());
    CHECK_FALSE(row.kubernetes.empty());
  }
}

TEST_CASE("under a seccomp profile without sethostname the probe fails the hostname step with its hint", "[container]") {
  auto probe = probeWithout(refuseSethostname);
  REQUIRE(probe.setUp);
  REQUIRE(probe.items.contains("hostname"));
  CHECK_FALSE(probe.items["hostname"].ok);
  CHECK(probe.items["hostname"].err == EPERM);
  CHECK_FALSE(probe.uts);  // the sandboxes go without it: the level is degraded
  CHECK(probe.items["procMount"].ok);
  CHECK_THAT(probe.missing, Catch::Contains("hostname unavailable") && Catch::Contains("seccomp=pycell.json") &&
                                Catch::Contains("seccompProfile"));
  CHECK_THAT(probe.missing, !Catch::Contains("procMount"));
}

TEST_CASE("under a masked /proc the probe fails the procMount step with its hint", "[container]") {
  auto probe = probeWithout(maskProc);
  REQUIRE(probe.setUp);
  REQUIRE(probe.items.contains("procMount"));
  CHECK_FALSE(probe.items["procMount"].ok);
  CHECK(probe.items["procMount"].err == EPERM);
  CHECK_FALSE(probe.mount);
  CHECK(probe.items["hostname"].ok);
  CHECK_THAT(probe.missing, Catch::Contains("procMount unavailable") && Catch::Contains("unmask=/proc/*") &&
                                Catch::Contains("procMount: Unmasked"));
}

TEST_CASE("as root without CAP_SETUID and CAP_SETGID the probe fails the idMap step with its hint", "[container]") {
  if (::geteuid() != 0) {
    WARN("not root: the idMap step is a root server's, not probed");
    return;
  }
  auto probe = probeWithout(dropCapabilities);
  REQUIRE(probe.setUp);
  REQUIRE(probe.items.contains("idMap"));
  CHECK_FALSE(probe.items["idMap"].ok);
  CHECK(probe.items["idMap"].err == EPERM);
  CHECK_FALSE(probe.idMap);
  CHECK_THAT(probe.missing, Catch::Contains("--cap-add=SETUID,SETGID") &&
                                Catch::Contains("capabilities: {add: [SETUID, SETGID]}"));
}
