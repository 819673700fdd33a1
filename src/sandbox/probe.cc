#include "pycell/sandbox/probe.h"

#include "pycell/sandbox/isolate.h"

#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

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
  return n.user && n.pid && n.mount && n.net && n.ipc && n.uts && seccomp;
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
  for (const auto& item : items) {
    if (item.ok || item.name == "cgroup") continue;
    out += item.name + " unavailable (" + item.detail + ")";
    if (!item.fix.empty()) out += "; fix: " + item.fix;
    out += ". ";
  }
  return out;
}

Isolation probeIsolation(const CgroupSupport& cgroup) {
  Isolation iso;
  iso.cgroup = cgroup;
  int userErr = tryUnshare(CLONE_NEWUSER);
  iso.namespaces.user = userErr == 0;
  iso.items.push_back({"userNamespace", iso.namespaces.user,
                       iso.namespaces.user ? "unshare(CLONE_NEWUSER) works" : "unshare(CLONE_NEWUSER): " + errnoText(userErr),
                       iso.namespaces.user ? "" : userNsFix()});
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
                         err == 0 ? "" : (iso.namespaces.user ? "the kernel lacks this namespace (CONFIG_*_NS)" : userNsFix())});
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
                       iso.seccomp ? "" : "a kernel with CONFIG_SECCOMP_FILTER; in a container, allow seccomp(2)/prctl"});
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

const char* cgroupFix() {
  return "run pycell as root (a writable cgroup hierarchy), or give its user a delegated cgroup v2 subtree, "
         "e.g. systemd-run --user --scope -p Delegate=yes pycell serve";
}


}  // namespace pycell::sandbox
