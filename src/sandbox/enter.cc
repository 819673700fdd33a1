#include "pycell/sandbox/enter.h"

#include "pycell/sandbox/caps.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <grp.h>

namespace pycell::sandbox {

SandboxPlan makePlan(const PlanInputs& in) {
  SandboxPlan plan;
  plan.namespaces = in.namespaces;
  plan.seccomp = in.seccomp;
  plan.executable = in.python;
  plan.outerUid = in.outerUid;
  plan.outerGid = in.outerGid;
  // Without a user namespace the sandbox keeps its host uid, which then owns its files.
  unsigned ownerUid = in.namespaces.user ? plan.insideUid : plan.outerUid;
  unsigned ownerGid = in.namespaces.user ? plan.insideGid : plan.outerGid;
  RootfsOptions rootfs{in.python, in.pythonRealPath, in.binds, in.limits.diskMb, ownerUid, ownerGid, in.bootstrapSource,
                       in.extraFiles, in.network};
  if (in.namespaces.mount) plan.rootfs = planRootfs(rootfs);
  plan.hostWorkDir = in.hostWorkDir;
  plan.rlimits = in.rlimits ? *in.rlimits
                            : planRlimits(in.limits, {.memoryByRlimit = in.memoryByRlimit, .processesByRlimit = true});
  std::string bootstrap = !in.entry.empty()      ? in.entry
                          : in.namespaces.mount ? kBootstrapPath
                                                : in.hostWorkDir + "/.pycell-bootstrap.py";
  // -I: ignore PYTHON* variables and the user's site directory; -B: no .pyc writes;
  // -u: unbuffered, so output streams as it is produced; -X utf8: one encoding everywhere.
  plan.argv = {in.python, "-I", "-B", "-u", "-X", "utf8", bootstrap};
  std::string home = in.namespaces.mount ? kWorkDir : in.hostWorkDir;
  plan.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "LANG=C.UTF-8", "TMPDIR=/tmp",
              // Fork safety and determinism: threaded BLAS/OpenMP in a forked child hangs.
              "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1", "NUMEXPR_NUM_THREADS=1",
              "MPLBACKEND=Agg", "MPLCONFIGDIR=/tmp/matplotlib"};
  return plan;
}

namespace {

struct ChildReport {
  char step[64];
  int err;
};

[[noreturn]] void childFail(int errFd, const char* step, int err) {
  ChildReport r{};
  std::strncpy(r.step, step, sizeof r.step - 1);
  r.err = err;
  [[maybe_unused]] auto n = ::write(errFd, &r, sizeof r);
  ::_exit(127);
}

#define CHILD_CHECK(cond, step)                     \
  do {                                              \
    if (!(cond)) childFail(errFd, step, errno);     \
  } while (0)

// Moves the five fds into 0..4. They may already sit at those numbers, so first lift them
// all above 10 and only then dup2 them down.
void placeFds(const ChildFds& fds, int errFd) {
  int src[5] = {fds.stdinFd, fds.stdoutFd, fds.stderrFd, fds.requestFd, fds.resultFd};
  int high[5];
  for (int i = 0; i < 5; ++i) {
    high[i] = ::fcntl(src[i], F_DUPFD_CLOEXEC, 10);
    CHILD_CHECK(high[i] >= 0, "dup child fds");
  }
  for (int i = 0; i < 5; ++i) CHILD_CHECK(::dup2(high[i], i) == i, "dup2 child fds");
}

// Takes the sandbox's own uid and gid. In a user namespace this happens first, before any
// mount: files created in the new tmpfs need a uid mapped in the namespace (else
// EOVERFLOW), and since uid 0 is not mapped there, the kernel's root-uid fixup does not
// strip our namespace capabilities. Without a user namespace (degraded, as root) it
// happens last, because there it does drop them.
void switchIds(const SandboxPlan& plan, int errFd) {
  // Supplementary groups (root's group 0 among them) go, where the kernel lets us.
  if (::setgroups(0, nullptr) != 0 && errno != EPERM) childFail(errFd, "setgroups", errno);
  unsigned gid = plan.namespaces.user ? plan.insideGid : plan.outerGid;
  unsigned uid = plan.namespaces.user ? plan.insideUid : plan.outerUid;
  CHILD_CHECK(::setresgid(gid, gid, gid) == 0, "setresgid");
  CHILD_CHECK(::setresuid(uid, uid, uid) == 0, "setresuid");
}

void dropCapabilities(const SandboxPlan& plan, int errFd) {
  // Without a user namespace (degraded, as root) the uid switch is what drops privilege.
  if (!plan.namespaces.user && ::geteuid() == 0 && plan.outerUid != 0) switchIds(plan, errFd);
  const char* step = "drop capabilities";
  if (dropAllCapabilities(&step) != 0) childFail(errFd, step, errno);
}

[[noreturn]] void childMain(const SandboxPlan& plan, const ChildFds& fds, int goFd, int errFd) {
  // Die with the server; and wait until the parent has mapped our ids and set our cgroup.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The server blocks signals it reads through signalfd and ignores SIGPIPE; both would
  // survive execve, so the interpreter starts with default dispositions and an empty mask.
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  char go = 0;
  if (::read(goFd, &go, 1) != 1) ::_exit(127);  // the parent gave up on us
  CHILD_CHECK(::setsid() >= 0, "setsid");
  if (plan.namespaces.user) switchIds(plan, errFd);
  if (plan.namespaces.mount) {
    ChildFailure failure;
    if (!executeRootfsPlan(plan.rootfs, "/tmp", failure)) childFail(errFd, failure.step, failure.err);
  } else {
    CHILD_CHECK(::chdir(plan.hostWorkDir.c_str()) == 0, "chdir working directory");
  }
  if (plan.namespaces.uts) CHILD_CHECK(::sethostname("pycell", 6) == 0, "sethostname");
  placeFds(fds, errFd);
  // Everything else the server had open stays behind (all of it is O_CLOEXEC too).
  CHILD_CHECK(::syscall(SYS_close_range, 5, ~0U, CLOSE_RANGE_CLOEXEC) == 0, "close_range");
  ::fcntl(errFd, F_SETFD, FD_CLOEXEC);
  int failed = applyRlimits(plan.rlimits);
  if (failed >= 0) childFail(errFd, "setrlimit", errno);
  dropCapabilities(plan, errFd);
  CHILD_CHECK(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
  // seccomp last: the steps above need syscalls it denies.
  if (plan.seccomp) CHILD_CHECK(installSeccomp(*plan.seccomp) == 0, "seccomp");
  std::vector<char*> argv;
  for (const auto& a : plan.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : plan.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::execve(plan.executable.c_str(), argv.data(), envp.data());
  childFail(errFd, "execve interpreter", errno);
}

unsigned long cloneFlags(const SandboxPlan& plan) {
  const Namespaces& ns = plan.namespaces;
  unsigned long flags = 0;
  if (ns.user) flags |= CLONE_NEWUSER;
  if (ns.pid) flags |= CLONE_NEWPID;
  if (ns.mount) flags |= CLONE_NEWNS;
  if (ns.net) flags |= CLONE_NEWNET;
  if (ns.ipc) flags |= CLONE_NEWIPC;
  if (ns.uts) flags |= CLONE_NEWUTS;
  if (ns.cgroup) flags |= CLONE_NEWCGROUP;
  return flags;
}

Status writeIdMaps(const SandboxPlan& plan, pid_t pid) {
  std::string proc = "/proc/" + std::to_string(pid);
  // Without CAP_SETGID in the parent namespace, gid_map needs setgroups denied first
  // (user_namespaces(7)); root keeps setgroups so the child can drop group 0.
  if (::geteuid() != 0) {
    if (auto st = writeFile(proc + "/setgroups", "deny"); !st) return st;
  }
  if (auto st = writeFile(proc + "/uid_map", std::to_string(plan.insideUid) + " " + std::to_string(plan.outerUid) + " 1\n"); !st)
    return st;
  return writeFile(proc + "/gid_map", std::to_string(plan.insideGid) + " " + std::to_string(plan.outerGid) + " 1\n");
}

// Waits for the child's exec (EOF on the CLOEXEC error pipe) or its failure report.
Status awaitExec(int errFd) {
  pollfd p{errFd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, 10'000);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return std::unexpected(Error{"sandbox setup did not finish within 10 s"});
  ChildReport report{};
  ssize_t n;
  do {
    n = ::read(errFd, &report, sizeof report);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return {};
  if (n != static_cast<ssize_t>(sizeof report)) return std::unexpected(Error{"sandbox setup failed (no report)"});
  report.step[sizeof report.step - 1] = '\0';
  return std::unexpected(Error{std::string("sandbox setup failed at '") + report.step + "'", report.err});
}

}  // namespace

Result<SpawnedChild> spawnSandbox(const SandboxPlan& plan, const ChildFds& fds, const BeforeStart& beforeStart) {
  auto go = makePipe();
  auto err = makePipe();
  if (!go) return std::unexpected(go.error());
  if (!err) return std::unexpected(err.error());
  int pidfd = -1;
  clone_args args{};
  args.flags = cloneFlags(plan) | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  // Raw clone3: fork semantics (the child continues here on a copy of our stack) plus new
  // namespaces and a pidfd in one step. The server is single-threaded, so the child may
  // use the heap until it execs.
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) return std::unexpected(sysError("clone3"));
  if (pid == 0) {
    go->write.reset();
    err->read.reset();
    childMain(plan, fds, go->read.get(), err->write.get());
  }
  SpawnedChild child{static_cast<pid_t>(pid), UniqueFd(pidfd)};
  err->write.reset();
  go->read.reset();
  auto abandon = [&](Error e) -> Result<SpawnedChild> {
    ::kill(child.pid, SIGKILL);
    ::waitpid(child.pid, nullptr, 0);
    return std::unexpected(std::move(e));
  };
  if (plan.namespaces.user) {
    if (auto st = writeIdMaps(plan, child.pid); !st) return abandon(st.error());
  }
  if (beforeStart) {
    if (auto st = beforeStart(child.pid); !st) return abandon(st.error());
  }
  if (auto st = writeAll(go->write.get(), "g"); !st) return abandon(st.error());
  go->write.reset();
  if (auto st = awaitExec(err->read.get()); !st) return abandon(st.error());
  return child;
}

}  // namespace pycell::sandbox
