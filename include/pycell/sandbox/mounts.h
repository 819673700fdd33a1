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
inline constexpr const char* kPolicyPath = "/.pycell/policy.py";  // next to the bootstrap, which loads it

// /sandbox (the working directory), /tmp and /dev/shm are three directories of ONE tmpfs of
// diskMb (the Scratch op), so whatever a run keeps in files and in POSIX shared memory holds
// diskMb at most all together, with or without a memory cgroup.
// Inodes of the shared tmpfs (files and directories of all three together).
inline constexpr int kScratchInodes = 16384;
// Where the shared tmpfs is mounted while its directories are bound into place; an empty
// directory of the sandbox's root (the rootfs plan makes it), unmounted again at once.
inline constexpr const char* kScratchMountPoint = "/.pycell/scratch";


struct MountOp {
  // Scratch: the one tmpfs that holds /sandbox, /tmp and /dev/shm (below); its
  // `data` is "diskMb:uid:gid".
  enum class Kind { Dir, Tmpfs, BindReadOnly, BindWritable, BindDevice, Proc, Symlink, File, RemountReadOnly, Scratch };
  Kind kind;
  std::string target;  // path inside the sandbox
  std::string source;  // host path (binds), link target (Symlink), contents (File)
  std::string data;    // tmpfs options
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

struct StepFailure;

// The mount step of the isolation sequence (mount_exec.cc), in the child's new mount
// namespace: builds the root in a tmpfs mounted at `staging`, pivots into it and detaches
// the parent's tree. Returns false with `failure` set.
[[nodiscard]] bool applyMountPlan(const std::vector<MountOp>& plan, const char* staging, StepFailure& failure);

}  // namespace pycell::sandbox
