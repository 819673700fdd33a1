#pragma once
// Entering the sandbox from the server: the parent computes a SandboxPlan, spawnSandbox()
// clones a child into new namespaces, and the child applies the isolation sequence
// (isolate.h) and execs the interpreter. A pooled child applies the same sequence in its
// zygote's fork loop (fork_loop.cc), from a plan made here too (makePlan).
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/isolate.h"
#include "pycell/sandbox/mounts.h"
#include "pycell/sandbox/netstack.h"
#include "pycell/sandbox/rlimits.h"
#include "pycell/sandbox/seccomp.h"

namespace pycell::sandbox {

// A sandbox to start: the isolation it applies to itself (isolate.h), then the program.
struct SandboxPlan {
  IsolationSpec isolation;  // a network run has its own net namespace too (NetStack)
  std::string executable;   // interpreter, absolute
  std::vector<std::string> argv;
  std::vector<std::string> env;
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
// interpreter or failed a step: then the step's record is read from `resultReader` (the
// server's end of the child's result pipe) and returned as the error (Error::step).
[[nodiscard]] Result<SpawnedChild> spawnSandbox(const SandboxPlan& plan, const ChildFds& fds, int resultReader,
                                                const BeforeStart& beforeStart);

// A step failure as the server reports it.
[[nodiscard]] Error isolationError(const StepFailure& failure);

// Builds the standard plan for running the bootstrap with `python`.
struct PlanInputs {
  Namespaces namespaces;
  Language language = Language::Python;  // JavaScript: node runs bootstrap.js
  std::string python;
  std::string pythonRealPath;
  Limits limits;
  bool memoryByRlimit = false;
  int64_t reservedMb = 0;  // RLIMIT_AS on top of memoryMb (RlimitOptions::reservedMb)
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
  // A zygote keeps its outer ids inside (mapped onto themselves): its children then map
  // the sandbox's ids onto the same outer ids as a one-shot sandbox's.
  bool keepOuterIds = false;
};
[[nodiscard]] SandboxPlan makePlan(const PlanInputs& in);

// What a zygote's child applies to itself: the plan of a one-shot sandbox of the same
// profile (`in`, without entry or extra files), but its ids mapped by the child itself onto
// the zygote's, no execve after it, and the shared part of its root built by the zygote
// (the zygote's plan gets `childRootTemplate`). `zygoteUid`/`zygoteGid` are the zygote's own.
[[nodiscard]] IsolationSpec pooledChildSpec(const PlanInputs& in, unsigned zygoteUid, unsigned zygoteGid);

}  // namespace pycell::sandbox
