#pragma once
// Entering the sandbox: the parent computes a SandboxPlan, spawnSandbox() clones a child
// into new namespaces, and the child runs the isolation steps in the order childMain() in
// src/sandbox/enter.cc lists them, ending with seccomp and execve of the interpreter.
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/mounts.h"
#include "pycell/sandbox/netstack.h"
#include "pycell/sandbox/rlimits.h"
#include "pycell/sandbox/seccomp.h"

namespace pycell::sandbox {

// Which namespaces this machine can give us (found by the probe) and what we use.
struct Namespaces {
  bool user = false;
  bool pid = false;
  bool mount = false;
  bool net = false;
  bool ipc = false;
  bool uts = false;
  bool cgroup = false;
};

struct SandboxPlan {
  Namespaces namespaces;                // a network run has its own net namespace too (NetStack)
  std::vector<MountOp> rootfs;          // executed when namespaces.mount
  std::string hostWorkDir;              // working directory when there is no mount namespace
  std::vector<RlimitSetting> rlimits;
  const SeccompProgram* seccomp = nullptr;  // null only in degraded mode without seccomp
  std::string executable;               // interpreter, absolute
  std::vector<std::string> argv;
  std::vector<std::string> env;
  unsigned insideUid = 1000;
  unsigned insideGid = 1000;
  unsigned outerUid = 65534;            // what the sandbox's uid is on the host
  unsigned outerGid = 65534;
};

// The fds the child gets as 0..4: stdin, stdout, stderr, request (read), result (write).
struct ChildFds {
  int stdinFd;
  int stdoutFd;
  int stderrFd;
  int requestFd;
  int resultFd;
};

struct SpawnedChild {
  pid_t pid = -1;
  UniqueFd pidfd;
};

// A running sandbox as its owner (an execution, a session, a pool) holds it: the process,
// and the server's ends of its five pipes (stdin, stdout, stderr, request, result).
struct SandboxProcess {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd stdinW, stdoutR, stderrR, requestW, resultR;
  ExecutionCgroup cgroup;
  std::string hostWorkDir;  // degraded mode (no mount namespace): the owner removes it
  NetStack net;             // a network run's slirp4netns, up before the request is written
};

// Runs between clone and the child's first step, in the parent: e.g. joining a cgroup.
using BeforeStart = std::function<Status(pid_t)>;

// Clone, map ids, run `beforeStart`, release the child, and wait until it has exec'd the
// interpreter (or reported which step failed, with errno).
[[nodiscard]] Result<SpawnedChild> spawnSandbox(const SandboxPlan& plan, const ChildFds& fds,
                                                const BeforeStart& beforeStart);

// Builds the standard plan for running the bootstrap with `python`.
struct PlanInputs {
  Namespaces namespaces;
  std::string python;
  std::string pythonRealPath;
  Limits limits;
  bool memoryByRlimit = false;
  bool network = false;  // the resolver files and CA certificates in the root
  std::vector<BindMount> binds;
  const SeccompProgram* seccomp = nullptr;
  std::string bootstrapSource;
  std::string hostWorkDir;  // degraded mode only
  unsigned outerUid = 65534;
  unsigned outerGid = 65534;
  // A zygote: runs `entry` instead of the bootstrap, with these files in its root as well,
  // its own rlimits, and no seccomp (its children install theirs).
  std::string entry;
  std::vector<std::pair<std::string, std::string>> extraFiles;  // path -> contents
  std::optional<std::vector<RlimitSetting>> rlimits;
};
[[nodiscard]] SandboxPlan makePlan(const PlanInputs& in);

}  // namespace pycell::sandbox
