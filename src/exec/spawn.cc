#include "pycell/exec/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>

#include "pycell/error.h"
#include "pycell/process/log.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/enter.h"
#include "pycell/sandbox/idmap.h"
#include "pycell/sandbox/rlimits.h"

namespace pycell::exec {

namespace {
constexpr auto kNetStackTimeout = std::chrono::milliseconds(5000);

// What the sandbox's plan is made from: the profile's inputs, with this run's limits and
// network (and the online seccomp filter for a network run).
sandbox::PlanInputs planInputs(const sandbox::SandboxContext& ctx, const SpawnSettings& s) {
  sandbox::PlanInputs inputs = sandbox::planInputsFor(ctx, *s.profile);
  inputs.limits = s.limits;
  inputs.network = s.network;
  if (s.network && ctx.isolation.seccomp) inputs.seccomp = &ctx.seccompOnline;
  if (s.sessionCpuMs > 0)
    inputs.rlimits = sandbox::planRlimits(s.limits, {.memoryByRlimit = inputs.memoryByRlimit,
                                                     .processesByRlimit = true,
                                                     .sessionCpuMs = s.sessionCpuMs,
                                                     .reservedMb = inputs.reservedMb});
  return inputs;
}

// Degraded mode (no mount namespace): the sandbox works in a fresh host directory, which
// `proc` owns from then on, with the sandbox's files in it under flat names.
Status makeHostWorkDir(const sandbox::SandboxContext& ctx, Language language, SandboxProcess& proc) {
  char tmpl[] = "/tmp/pycell-work-XXXXXX";
  if (!::mkdtemp(tmpl)) return std::unexpected(sysError("mkdtemp"));
  proc.hostWorkDir = tmpl;
  // A root server's sandboxes run as nobody on the host, and mkdtemp's 0700 root directory
  // would refuse them: the directory becomes theirs, as /sandbox is with a mount namespace.
  // Without CAP_CHOWN (a container's root with capabilities dropped) they may at least enter
  // it and read its files (0711: not list, not write; nobody else may write either).
  if (::geteuid() == 0 && ctx.sandboxUid != 0 && ::chown(tmpl, ctx.sandboxUid, ctx.sandboxGid) != 0 &&
      ::chmod(tmpl, 0711) != 0) {
    auto e = sysError("chmod of the sandbox's work directory");
    removeHostWorkDir(proc.hostWorkDir);
    return std::unexpected(e);
  }
  for (const auto& [path, text] : ctx.filesFor(language)) {  // "/.pycell/policy.py" -> ".pycell-policy.py"
    std::string name = "/.pycell-" + path.substr(path.rfind('/') + 1);
    auto fd = UniqueFd(::open((proc.hostWorkDir + name).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!fd || !writeAll(fd.get(), text)) {
      removeHostWorkDir(proc.hostWorkDir);
      return std::unexpected(sysError("write bootstrap"));
    }
  }
  return {};
}

// Bounded wait: the request is written once this returns, and the program must find the
// network up. The interpreter is starting meanwhile, so this costs little latency. If the
// network does not come up, the sandbox is killed and reaped.
Status awaitNetStack(SandboxProcess& proc) {
  auto waitStart = std::chrono::steady_clock::now();
  if (auto up = proc.net.awaitReady(kNetStackTimeout); !up) {
    ::syscall(SYS_pidfd_send_signal, proc.pidfd.get(), SIGKILL, nullptr, 0);
    while (::waitpid(proc.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return up;
  }
  if (proc.net.running())
    log::debug("sandbox " + std::to_string(proc.pid) + ": network stack up after waiting " +
               std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - waitStart).count() / 1000.0) +
               " ms once the interpreter had started");
  return {};
}

}  // namespace

Result<SandboxProcess> spawnBootstrap(const sandbox::SandboxContext& ctx, const SpawnSettings& s) {
  const auto& iso = ctx.isolation;
  if (s.network && !iso.netStack.available)
    return std::unexpected(Error{"network stack unavailable: " + iso.netStack.detail});
  auto in = makePipe(), out = makePipe(), err = makePipe(), req = makePipe(), res = makePipe();
  for (auto* p : {&in, &out, &err, &req, &res})
    if (!*p) return std::unexpected(p->error());

  SandboxProcess proc;
  sandbox::PlanInputs inputs = planInputs(ctx, s);
  if (!iso.namespaces.mount) {
    if (auto made = makeHostWorkDir(ctx, s.profile->language, proc); !made) return std::unexpected(made.error());
    inputs.hostWorkDir = proc.hostWorkDir;
  }
  auto fail = [&](Error e) -> Result<SandboxProcess> {
    removeHostWorkDir(proc.hostWorkDir);
    return std::unexpected(std::move(e));
  };
  auto plan = sandbox::makePlan(inputs);
  // A root server's writable binds: id-mapped copies, held until the child has attached them.
  std::vector<UniqueFd> idmapped;
  if (iso.idmappedBinds && iso.namespaces.mount &&
      sandbox::attachIdmappedBinds(plan.isolation.mounts, ctx.sandboxUid, ctx.sandboxGid, idmapped))
    plan.isolation.seccompSetIdBits = sandbox::setIdBitsFilter();
  if (iso.cgroup.version != sandbox::CgroupVersion::None) {
    auto cg = sandbox::ExecutionCgroup::create(iso.cgroup, s.cgroupName, s.limits.memoryMb << 20, s.limits.maxProcesses);
    if (!cg) return fail(cg.error());
    proc.cgroup = std::move(*cg);
  }
  sandbox::ChildFds fds{in->read.get(), out->write.get(), err->write.get(), req->read.get(), res->write.get()};
  // A network run gets its own network namespace like any other, plus slirp4netns to reach
  // out through; never the host's network. slirp4netns starts as soon as the namespace
  // exists, so it comes up while the sandbox sets itself up and the interpreter starts.
  auto child = sandbox::spawnSandbox(plan, fds, res->read.get(), [&](pid_t pid) -> Status {
    if (auto st = proc.cgroup.addProcess(pid); !st) return st;
    if (!s.network) return {};
    auto net = sandbox::NetStack::start(iso.netStack.binary, pid);
    if (!net) return std::unexpected(net.error());
    proc.net = std::move(*net);
    return {};
  });
  if (!child) return fail(child.error());
  proc.pid = child->pid;
  proc.pidfd = std::move(child->pidfd);
  if (auto up = awaitNetStack(proc); !up) return fail(up.error());
  proc.stdinW = std::move(in->write);
  proc.stdoutR = std::move(out->read);
  proc.stderrR = std::move(err->read);
  proc.requestW = std::move(req->write);
  proc.resultR = std::move(res->read);
  return proc;
}

void removeHostWorkDir(const std::string& path) {
  if (path.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

}  // namespace pycell::exec
