#include "pycell/sandbox/enter.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

namespace pycell::sandbox {

SandboxPlan makePlan(const PlanInputs& in) {
  SandboxPlan plan;
  IsolationSpec& iso = plan.isolation;
  iso.namespaces = in.namespaces;
  if (in.seccomp) iso.seccomp = in.seccomp->instructions;
  iso.ids.outerUid = in.outerUid;
  iso.ids.outerGid = in.outerGid;
  if (in.keepOuterIds) {
    iso.ids.insideUid = in.outerUid;
    iso.ids.insideGid = in.outerGid;
  }
  plan.executable = in.python;
  // Without a user namespace the sandbox keeps its host uid, which then owns its files.
  unsigned ownerUid = in.namespaces.user ? iso.ids.insideUid : iso.ids.outerUid;
  unsigned ownerGid = in.namespaces.user ? iso.ids.insideGid : iso.ids.outerGid;
  RootfsOptions rootfs{in.python, in.pythonRealPath, in.binds, in.limits.diskMb, ownerUid, ownerGid, in.bootstrapSource,
                       in.extraFiles, in.network};
  if (in.namespaces.mount) iso.mounts = planRootfs(rootfs);
  iso.hostWorkDir = in.hostWorkDir;
  iso.rlimits = in.rlimits ? *in.rlimits
                           : planRlimits(in.limits, {.memoryByRlimit = in.memoryByRlimit,
                                                     .processesByRlimit = true,
                                                     .reservedMb = in.reservedMb});
  bool js = in.language == Language::JavaScript;
  const char* bootstrapPath = js ? kBootstrapJsPath : kBootstrapPath;
  std::string bootstrap = !in.entry.empty()      ? in.entry
                          : in.namespaces.mount ? bootstrapPath
                                                : in.hostWorkDir + (js ? "/.pycell-bootstrap.js" : "/.pycell-bootstrap.py");
  std::string home = in.namespaces.mount ? kWorkDir : in.hostWorkDir;
  plan.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "LANG=C.UTF-8", "TMPDIR=/tmp"};
  if (js) {
    // The JavaScript heap is held to the run's memory: with a memory cgroup the kernel's
    // limit comes first (the heap is part of what it counts), without one this is the
    // limit. --disable-proto=throw: the program cannot reach an object's prototype
    // through __proto__ (the bootstrap's own objects included). --experimental-vm-modules:
    // without it node never asks the bootstrap about a script's import(), which the policy
    // must see (it prints nothing unless a program builds vm modules itself). --no-lazy: the
    // bootstrap is compiled whole at start, ahead of demand; it turns lazy compilation back
    // on for the program.
    plan.argv = {in.python, "--max-old-space-size=" + std::to_string(std::max<int64_t>(in.limits.memoryMb, 16)),
                 "--disable-proto=throw", "--experimental-vm-modules", "--no-lazy", bootstrap};
    return plan;
  }
  // -I: ignore PYTHON* variables and the user's site directory; -B: no .pyc writes;
  // -u: unbuffered, so output streams as it is produced; -X utf8: one encoding everywhere.
  plan.argv = {in.python, "-I", "-B", "-u", "-X", "utf8", bootstrap};
  // Fork safety and determinism: threaded BLAS/OpenMP in a forked child hangs.
  for (const char* e : {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1", "NUMEXPR_NUM_THREADS=1",
                        "MPLBACKEND=Agg", "MPLCONFIGDIR=/tmp/matplotlib"})
    plan.env.push_back(e);
  return plan;
}

IsolationSpec pooledChildSpec(const PlanInputs& in, unsigned zygoteUid, unsigned zygoteGid) {
  IsolationSpec spec = makePlan(in).isolation;
  spec.ids.outerUid = zygoteUid;
  spec.ids.outerGid = zygoteGid;
  spec.ids.childWritesMaps = true;
  spec.execFollows = false;
  // Its zygote built the shared part of its root, once, as the template of its children's.
  spec.mountsFromTemplate = spec.namespaces.mount;
  return spec;
}

Error isolationError(const StepFailure& failure) {
  std::string what = std::string("sandbox isolation failed at step '") + failure.step + "'";
  if (failure.detail[0]) what += std::string(" (") + failure.detail + ")";
  return Error{what, failure.err, failure.step, failure.detail};
}

namespace {

// The server's clone: resets what the server's own set-up would leave to the interpreter,
// waits for the parent's go, isolates, execs. A failed step is written on the result pipe
// (the one way every sandbox reports one, isolate.h), then one byte on the exec pipe says
// to look there.
[[noreturn]] void childMain(const SandboxPlan& plan, const ChildFds& childFds, int goFd, int execFd) {
  // Die with the server.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The server blocks signals it reads through signalfd and ignores SIGPIPE; both would
  // survive execve, so the interpreter starts with default dispositions and an empty mask.
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  char go = 0;
  if (::read(goFd, &go, 1) != 1) ::_exit(127);  // the parent gave up on us
  int fds[5] = {childFds.stdinFd, childFds.stdoutFd, childFds.stderrFd, childFds.requestFd, childFds.resultFd};
  auto isolated = isolate(plan.isolation, fds);
  StepFailure failure;
  if (isolated) {
    std::vector<char*> argv;
    for (const auto& a : plan.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : plan.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    ::execve(plan.executable.c_str(), argv.data(), envp.data());
    failure = stepFailure("execve", errno, plan.executable.c_str());
  } else {
    failure = isolated.error();
  }
  writeStepFailure(fds[4], failure);
  [[maybe_unused]] auto n = ::write(execFd, "F", 1);
  ::_exit(127);
}

Status writeIdMaps(const IdPlan& ids, pid_t pid) {
  std::string proc = "/proc/" + std::to_string(pid);
  // setgroups denied before gid_map, as a zygote's child must (it has no CAP_SETGID in its
  // parent namespace, user_namespaces(7)), so every sandbox looks the same. A root server
  // has dropped its own supplementary groups at start (makeContext): none are inherited.
  if (auto st = writeFile(proc + "/setgroups", "deny"); !st) return st;
  if (auto st = writeFile(proc + "/uid_map", std::to_string(ids.insideUid) + " " + std::to_string(ids.outerUid) + " 1\n"); !st)
    return st;
  return writeFile(proc + "/gid_map", std::to_string(ids.insideGid) + " " + std::to_string(ids.outerGid) + " 1\n");
}

// Waits for the child's exec (EOF on the close-on-exec pipe) or its failure (a byte there,
// and the step's record on the result pipe).
Status awaitExec(int execFd, int resultReader) {
  pollfd p{execFd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, 10'000);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return std::unexpected(Error{"sandbox setup did not finish within 10 s"});
  char byte = 0;
  ssize_t n;
  do {
    n = ::read(execFd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return {};
  // Non-blocking: the server holds the pipe's write end too, so a missing record must not
  // wait for an EOF that never comes.
  auto failure = readStepFailure(resultReader);
  if (!failure) return std::unexpected(Error{"sandbox setup failed (no report)"});
  return std::unexpected(isolationError(*failure));
}

}  // namespace

Result<SpawnedChild> spawnSandbox(const SandboxPlan& plan, const ChildFds& fds, int resultReader, const BeforeStart& beforeStart) {
  auto go = makePipe();
  auto exec = makePipe();
  if (!go) return std::unexpected(go.error());
  if (!exec) return std::unexpected(exec.error());
  int pidfd = -1;
  // Fork semantics (the child continues here on a copy of our stack): the server is
  // single-threaded, so the child may use the heap until it execs.
  long pid = cloneSandbox(plan.isolation.namespaces, &pidfd);
  if (pid < 0) return std::unexpected(sysError("clone3"));
  if (pid == 0) {
    go->write.reset();
    exec->read.reset();
    childMain(plan, fds, go->read.get(), exec->write.get());
  }
  SpawnedChild child{static_cast<pid_t>(pid), UniqueFd(pidfd)};
  exec->write.reset();
  go->read.reset();
  auto abandon = [&](Error e) -> Result<SpawnedChild> {
    ::kill(child.pid, SIGKILL);
    ::waitpid(child.pid, nullptr, 0);
    return std::unexpected(std::move(e));
  };
  if (plan.isolation.namespaces.user && !plan.isolation.ids.childWritesMaps) {
    if (auto st = writeIdMaps(plan.isolation.ids, child.pid); !st) return abandon(st.error());
  }
  if (beforeStart) {
    if (auto st = beforeStart(child.pid); !st) return abandon(st.error());
  }
  if (auto st = writeAll(go->write.get(), "g"); !st) return abandon(st.error());
  go->write.reset();
  if (auto st = awaitExec(exec->read.get(), resultReader); !st) return abandon(st.error());
  return child;
}

}  // namespace pycell::sandbox
