#pragma once
// The sandbox's file system view, as a plan: built in the parent from the profile, then
// executed top to bottom in the child. The child sees a read-only root holding only what
// Python needs, a fresh /proc, a minimal /dev, and one tmpfs of diskMb that holds its
// working directory, /tmp and /dev/shm together. allowRead and allowWrite binds are
// nosuid and nodev (allowRead also read-only).
#include <string>
#include <vector>

#include "pycell/sandbox/config.h"

namespace pycell::sandbox {

inline constexpr const char* kWorkDir = "/sandbox";
inline constexpr const char* kBootstrapPath = "/.pycell/bootstrap.py";
inline constexpr const char* kBootstrapJsPath = "/.pycell/bootstrap.js";  // a JavaScript sandbox's
inline constexpr const char* kPolicyPath = "/.pycell/policy.py";  // next to the bootstrap, which loads it

// /sandbox (the working directory), /tmp and /dev/shm are three directories of ONE tmpfs of
// diskMb (the Scratch op), so whatever a run keeps in files and in POSIX shared memory holds
// diskMb at most all together, with or without a memory cgroup.
// Inodes of the shared tmpfs (files and directories of all three together).
inline constexpr int kScratchInodes = 16384;
// Where the shared tmpfs is mounted while its directories are bound into place; an empty
// directory of the sandbox's root (the rootfs plan makes it), unmounted again at once.
inline constexpr const char* kScratchMountPoint = "/.pycell/scratch";
// Where a zygote keeps the template of its children's root, in its own root: the shared part
// of their plan (everything but their /proc, their scratch tmpfs and what lands on it), built
// once when the zygote starts. Each child binds a copy, adds its own part and pivots into it:
// the same root as a one-shot sandbox of the profile, without ~25 bind mounts per child.
inline constexpr const char* kRootTemplateDir = "/.pycell/root";

struct MountOp {
  // Scratch: the one tmpfs that holds /sandbox, /tmp and /dev/shm (below); its
  // `data` is "diskMb:uid:gid".
  enum class Kind { Dir, Tmpfs, BindReadOnly, BindWritable, BindDevice, Proc, Symlink, File, RemountReadOnly, Scratch };
  Kind kind;
  std::string target;  // path inside the sandbox
  std::string source;  // host path (binds), link target (Symlink), contents (File)
  std::string data;    // tmpfs options
  // BindWritable: a detached id-mapped copy of `source` (idmap.h) the child inherits and
  // attaches in its place; -1: a plain bind. Never sent to a zygote.
  int fd = -1;
};

struct RootfsOptions {
  std::string python;                // the interpreter as configured (absolute)
  std::string pythonRealPath;        // ... with symlinks resolved
  std::vector<BindMount> extraBinds;  // allowRead / allowWrite
  int64_t diskMb = 64;
  unsigned insideUid = 1000;
  unsigned insideGid = 1000;
  std::string bootstrapSource;
  std::vector<std::pair<std::string, std::string>> extraFiles;  // path -> contents
  // A run with network: its own resolver files (slirp4netns's DNS) and the host's CA
  // certificates, all read-only.
  bool network = false;
};

[[nodiscard]] std::vector<MountOp> planRootfs(const RootfsOptions& options);

// Whether an op is built in each sandbox (its /proc, its scratch tmpfs, binds onto that tmpfs)
// rather than once in a zygote's template (every other op).
[[nodiscard]] bool perSandbox(const MountOp& op);

struct StepFailure;

// What the mount step builds: this sandbox's root, whole or on its zygote's template, and, in
// a zygote, the template of its children's root.
struct RootSteps {
  const std::vector<MountOp>& plan;
  bool fromTemplate = false;                           // the shared part is at kRootTemplateDir
  const std::vector<MountOp>* childTemplate = nullptr;  // a zygote's: build it at kRootTemplateDir
};

// The mount step of the isolation sequence (mount_exec.cc), in the child's new mount
// namespace: builds the root in a tmpfs mounted at `staging` (or on a bound copy of the
// template), the shared part of the plan first and then the per-sandbox part, pivots into
// it and detaches the parent's tree. Returns false with `failure` set.
[[nodiscard]] bool applyMountPlan(const RootSteps& root, const char* staging, StepFailure& failure);

}  // namespace pycell::sandbox
