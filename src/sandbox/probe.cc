#include "pycell/sandbox/probe.h"

#include "pycell/sandbox/isolate.h"

#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>

#include "pycell/process/unique_fd.h"

namespace pycell::sandbox {

namespace {

// Runs `fn` in a forked child; returns 0 on success or the errno the child reported.
template <class Fn>
int inChild(Fn fn) {
  auto pipe = makePipe();
  if (!pipe) return pipe.error().err;
  pid_t pid = ::fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    int rc = fn();
    [[maybe_unused]] auto n = ::write(pipe->write.get(), &rc, sizeof rc);
    ::_exit(0);
  }
  pipe->write.reset();
  int rc = EIO;
  [[maybe_unused]] auto n = ::read(pipe->read.get(), &rc, sizeof rc);
  ::waitpid(pid, nullptr, 0);
  return rc;
}

int tryUnshare(unsigned long flags) { return inChild([flags] { return ::unshare(flags) == 0 ? 0 : errno; }); }

std::string errnoText(int err) { return std::strerror(err); }

const char* userNsFix() {
  return "enable unprivileged user namespaces: sysctl -w kernel.unprivileged_userns_clone=1 (Debian), "
         "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for pycell (Ubuntu 24.04), "
         "user.max_user_namespaces > 0; in Docker run with --security-opt seccomp=unconfined or a profile that "
         "allows clone/unshare with CLONE_NEWUSER";
}

// What the sandbox's isolation does first in its UTS namespace: name itself. A container's
// seccomp profile may refuse sethostname even with the namespace's CAP_SYS_ADMIN (EPERM).
int tryHostname(unsigned long userFlag) {
  return inChild([userFlag] {
    if (::unshare(userFlag | CLONE_NEWUTS) != 0) return errno;
    return ::sethostname("pycell", 6) == 0 ? 0 : errno;
  });
}

// What the sandbox's root needs: a /proc of its own pid namespace, mounted by pid 1 of that
// namespace. In a user namespace the kernel allows it only while the /proc this process sees
// has nothing mounted over parts of it (a container's masked paths: EPERM); an LSM that
// refuses mount(2) gives EACCES. Mounted over /proc in a private mount namespace of a child,
// so nothing outside it sees the mount.
int tryProcMount(const Namespaces& ns) {
  unsigned long flags = CLONE_NEWNS | (ns.user ? CLONE_NEWUSER : 0) | (ns.pid ? CLONE_NEWPID : 0);
  return inChild([flags] {
    if (::unshare(flags) != 0) return errno;
    auto mountProc = [] {
      // Private first: without a user namespace (root) the copy may still share mounts with the host's.
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
      return ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0 ? 0 : errno;
    };
    if (!(flags & CLONE_NEWPID)) return mountProc();
    // Only a child enters the new pid namespace; it reports through its exit status.
    pid_t pid = ::fork();
    if (pid < 0) return errno;
    if (pid == 0) ::_exit(mountProc());
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
  });
}

int writeText(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno;
  ssize_t n = ::write(fd.get(), text.data(), text.size());
  return n == static_cast<ssize_t>(text.size()) ? 0 : n < 0 ? errno : EIO;
}

// What a root server does for each sandbox (enter.cc writeIdMaps): map uid and gid 0 of the
// child's new user namespace to nobody. Writing another process's map with an id other than
// one's own needs CAP_SETUID / CAP_SETGID here: a container run with --cap-drop=ALL lacks them.
int tryIdMap() {
  auto ready = makePipe(), go = makePipe();
  if (!ready) return ready.error().err;
  if (!go) return go.error().err;
  pid_t pid = ::fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    go->write.reset();  // else the read below never sees EOF
    int rc = ::unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
    [[maybe_unused]] auto n = ::write(ready->write.get(), &rc, sizeof rc);
    char byte;
    [[maybe_unused]] auto m = ::read(go->read.get(), &byte, 1);  // held until the maps are written
    ::_exit(0);
  }
  ready->write.reset();
  go->read.reset();
  int err = EIO;
  [[maybe_unused]] auto n = ::read(ready->read.get(), &err, sizeof err);
  if (err == 0) {
    std::string proc = "/proc/" + std::to_string(pid);
    err = writeText(proc + "/setgroups", "deny");
    if (err == 0) err = writeText(proc + "/uid_map", "0 65534 1\n");
    if (err == 0) err = writeText(proc + "/gid_map", "0 65534 1\n");
  }
  go->write.reset();  // EOF: the child ends
  ::waitpid(pid, nullptr, 0);
  return err;
}

// RLIMIT_NPROC is counted per user namespace (ucounts) since Linux 5.14.
bool kernelCountsNprocPerNamespace() {
  struct utsname u{};
  if (::uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 5 || (major == 5 && minor >= 14);
}

}  // namespace

bool Isolation::complete() const {
  const auto& n = namespaces;
  return n.user && n.pid && n.mount && n.net && n.ipc && n.uts && seccomp && idMap;
}

nlohmann::json Isolation::toJson(bool /*degradedAllowed*/) const {
  return {{"userNamespace", namespaces.user},
          {"pidNamespace", namespaces.pid},
          {"mountNamespace", namespaces.mount},
          {"networkNamespace", namespaces.net},
          {"ipcNamespace", namespaces.ipc},
          {"utsNamespace", namespaces.uts},
          {"seccomp", seccomp},
          {"cgroup", cgroupVersionName(cgroup.version)},
          {"memoryLimit", memoryLimit()},
          {"cpuLimit", cpuLimit()},
          {"pidsLimit", pidsLimit()},
          {"network", netStack.mode()},
          {"writableBinds", writableBinds},
          {"level", complete() ? "isolated" : "degraded"}};
}

std::string Isolation::missingSummary() const {
  std::string out;
  std::set<std::string> hinted;  // each container hint once
  for (const auto& item : items) {
    if (item.ok || item.name == "cgroup") continue;
    out += item.name + " unavailable (" + item.detail + ")";
    if (!item.fix.empty()) out += "; fix: " + item.fix;
    if (std::string hint = container.inside ? containerHint(item.name, item.err) : "";
        !hint.empty() && hinted.insert(hint).second)
      out += "; " + hint;
    out += ". ";
  }
  return out;
}

Isolation probeIsolation(const CgroupSupport& cgroup) {
  Isolation iso;
  iso.cgroup = cgroup;
  iso.container = detectContainer();
  int userErr = tryUnshare(CLONE_NEWUSER);
  iso.namespaces.user = userErr == 0;
  iso.items.push_back({"userNamespace", iso.namespaces.user,
                       iso.namespaces.user ? "unshare(CLONE_NEWUSER) works" : "unshare(CLONE_NEWUSER): " + errnoText(userErr),
                       iso.namespaces.user ? "" : userNsFix(), userErr});
  // The other namespaces are tried inside a new user namespace where we have one (that is
  // how the sandbox creates them), else directly (needs CAP_SYS_ADMIN).
  unsigned long base = iso.namespaces.user ? CLONE_NEWUSER : 0;
  struct Row {
    const char* name;
    unsigned long flag;
    bool Namespaces::*field;
  };
  for (const Row& row : {Row{"pidNamespace", CLONE_NEWPID, &Namespaces::pid}, Row{"mountNamespace", CLONE_NEWNS, &Namespaces::mount},
                         Row{"networkNamespace", CLONE_NEWNET, &Namespaces::net}, Row{"ipcNamespace", CLONE_NEWIPC, &Namespaces::ipc},
                         Row{"utsNamespace", CLONE_NEWUTS, &Namespaces::uts}, Row{"cgroupNamespace", CLONE_NEWCGROUP, &Namespaces::cgroup}}) {
    int err = tryUnshare(base | row.flag);
    iso.namespaces.*(row.field) = err == 0;
    iso.items.push_back({row.name, err == 0, err == 0 ? "works" : std::string("unshare: ") + errnoText(err),
                         err == 0 ? "" : (iso.namespaces.user ? "the kernel lacks this namespace (CONFIG_*_NS)" : userNsFix()), err});
  }
  // Only where a root server maps sandboxes to nobody (context.cc): a server of another uid
  // maps its own, which needs no capability; where nobody is not mapped, root maps itself.
  if (iso.namespaces.user && ::geteuid() == 0 && idMapped("/proc/self/uid_map", 65534) &&
      idMapped("/proc/self/gid_map", 65534)) {
    int err = tryIdMap();
    iso.idMap = err == 0;
    iso.items.push_back({"idMap", err == 0,
                         err == 0 ? "a sandbox's uid and gid map to nobody (65534)"
                                  : "writing a new user namespace's uid_map and gid_map (nobody): " + errnoText(err),
                         err == 0 ? "" : "give pycell (as root) CAP_SETUID and CAP_SETGID: it maps each sandbox's ids to nobody",
                         err});
  }
  if (iso.namespaces.uts) {
    int err = tryHostname(base);
    iso.namespaces.uts = err == 0;
    iso.items.push_back({"hostname", err == 0,
                         err == 0 ? "sethostname works in a new UTS namespace"
                                  : "sethostname in a new UTS namespace: " + errnoText(err) + " (sandboxes go without a UTS namespace)",
                         err == 0 ? "" : "allow sethostname(2) in the seccomp filter pycell runs under (a container's profile)", err});
  }
  if (iso.namespaces.mount) {
    int err = tryProcMount(iso.namespaces);
    iso.namespaces.mount = err == 0;
    iso.items.push_back(
        {"procMount", err == 0,
         err == 0 ? "a new /proc mounts in a new mount namespace"
                  : "mount proc /proc in a new mount namespace: " + errnoText(err) +
                        " (sandboxes go without a mount namespace: no root of their own)",
         err == 0 ? ""
                  : "let pycell see a /proc with nothing mounted over parts of it (a container's masked paths), "
                    "and allow mount(2) in any LSM profile it runs under",
         err});
  }
  iso.netStack = probeNetStack(iso.namespaces.net, iso.namespaces.user);
  int seccompErr = inChild([] {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    auto program = compileSeccomp({});
    if (!program) return program.error().err ? program.error().err : EINVAL;
    return installSeccompFilter(program->instructions) == 0 ? 0 : errno;
  });
  iso.seccomp = seccompErr == 0;
  iso.items.push_back({"seccomp", iso.seccomp, iso.seccomp ? "filter installs" : "installing the filter: " + errnoText(seccompErr),
                       iso.seccomp ? "" : "a kernel with CONFIG_SECCOMP_FILTER; in a container, allow seccomp(2)/prctl", seccompErr});
  iso.nprocPerUserNamespace = kernelCountsNprocPerNamespace();
  bool cg = cgroup.version != CgroupVersion::None;
  iso.items.push_back({"cgroup", cg,
                       cg ? std::string("cgroup ") + cgroupVersionName(cgroup.version) + " (memory: " +
                                (cgroup.memory ? "yes" : "no") + ", pids: " + (cgroup.pids ? "yes" : "no") +
                                ", cpu: " + (cgroup.cpu ? "yes" : "no") + ")"
                          : cgroup.reason + " limits fall back to rlimits (per process, not per sandbox)",
                       cg ? "" : cgroupFix()});
  return iso;
}

bool idMapped(const char* mapFile, unsigned id) {
  auto text = readFile(mapFile, 65536);
  if (!text) return false;
  std::istringstream in(*text);
  unsigned long inside = 0, outside = 0, count = 0;
  while (in >> inside >> outside >> count)
    if (id >= inside && id - inside < count) return true;
  return false;
}

const char* cgroupFix() {
  return "run pycell as root (a writable cgroup hierarchy), or give its user a delegated cgroup v2 subtree, "
         "e.g. systemd-run --user --scope -p Delegate=yes pycell serve";
}


}  // namespace pycell::sandbox
