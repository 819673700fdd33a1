#pragma once
// The isolation sequence: what every sandbox process applies to itself, in one order, on
// every path. The server plans it (an IsolationSpec, built by makePlan in enter.cc); the
// child applies it with isolate(), whether the server cloned it (a one-shot sandbox, a
// zygote: enter.cc) or a zygote forked it (a pooled child: fork_loop.cc, which gets the
// spec from the server in the zygote's init message, see zygote_wire.h).
//
// Compiled into the server and into libpycell_child.so: plain syscalls after the fork, no
// exceptions. See docs/DESIGN.md for why each step sits where it does.
#include <linux/filter.h>
#include <sys/types.h>

#include <expected>
#include <optional>
#include <string>
#include <vector>

#include "pycell/sandbox/mounts.h"
#include "pycell/sandbox/rlimits.h"

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

// The namespace flags of a sandbox, from one place for every path. `atClone` are given to
// clone; the cgroup namespace is not among them: the child unshares it in the sequence,
// once its parent has put it into its own cgroup, so that this cgroup is its namespace's
// root (`cgroupAfterJoin`).
struct NamespaceFlags {
  unsigned long atClone = 0;
  bool cgroupAfterJoin = false;
};
[[nodiscard]] NamespaceFlags namespaceFlags(const Namespaces& ns);

// clone3 with fork semantics (the child continues on a copy of the caller's stack) into
// the namespaces `ns` gives at clone time, with a pidfd. Returns the pid (0 in the child),
// or -1 with errno. The caller must be single-threaded.
[[nodiscard]] long cloneSandbox(const Namespaces& ns, int* pidfd);

struct IdPlan {
  // The sandbox's own ids, and what they are in the parent's user namespace.
  unsigned insideUid = 1000;
  unsigned insideGid = 1000;
  unsigned outerUid = 65534;
  unsigned outerGid = 65534;
  // Who writes the maps: the parent (the server), or the child itself (a zygote's child: it
  // may map only the zygote's own ids, user_namespaces(7)). setgroups is denied either way.
  bool childWritesMaps = false;
};

struct IsolationSpec {
  Namespaces namespaces;
  IdPlan ids;
  std::vector<MountOp> mounts;        // the root, applied when namespaces.mount
  // A pooled child's: its zygote built the shared part of `mounts` (kRootTemplateDir).
  bool mountsFromTemplate = false;
  // A zygote's: its children's root plan, whose shared part it builds as their template. Not
  // sent on the wire (a pooled child makes no template).
  std::vector<MountOp> childRootTemplate;
  std::string hostWorkDir;            // working directory when there is no mount namespace
  std::vector<RlimitSetting> rlimits;
  std::vector<sock_filter> seccomp;   // empty: no filter (a zygote, or degraded mode)
  // A sandbox with an id-mapped writable bind: the filter that refuses set-id bits (idmap.h),
  // installed before `seccomp`. Never sent to a zygote.
  std::vector<sock_filter> seccompSetIdBits;
  // Whether an execve follows: then fds above 4 are marked close-on-exec (the parent's
  // exec-wait pipe must stay open until then), else they are closed now.
  bool execFollows = true;
};

// A failed step: which, errno, and what it was applied to (a path, a limit).
struct StepFailure {
  char step[48] = {};
  int err = 0;
  char detail[160] = {};
};
[[nodiscard]] StepFailure stepFailure(const char* step, int err, const char* detail = "");

// Applies `spec`, top to bottom, to the calling process; `fds` (stdin, stdout, stderr,
// request, result) become 0..4 (and `fds` says so from then on: a failure is written on
// fds[4]). The caller has already waited for the parent's go (it is in its cgroup, its ids
// are mapped when the parent maps them).
[[nodiscard]] std::expected<void, StepFailure> isolate(const IsolationSpec& spec, int (&fds)[5]);

// Installs a seccomp filter on the calling thread (the last step of isolate; also the
// probe's check that filters work). 0, or -1 with errno.
[[nodiscard]] int installSeccompFilter(const std::vector<sock_filter>& program);

// The one way a child says which step failed: a fixed-size record on its result pipe,
// written in one write (atomic: smaller than PIPE_BUF), then the child exits 127. Whoever
// reads the result pipe before the program runs (the server's spawn, the pool) takes it
// with readStepFailure.
struct StepFailureRecord {
  char magic[8];  // kStepFailureMagic
  int32_t err;
  char step[48];
  char detail[160];
};
inline constexpr char kStepFailureMagic[8] = {'\0', 'p', 'y', 'c', 'e', 'l', 'l', '!'};
void writeStepFailure(int fd, const StepFailure& failure);
// Decodes a record from `data` (exactly one record's size, magic checked); false if it is
// not one.
[[nodiscard]] bool decodeStepFailure(const void* data, size_t size, StepFailure& out);
// Reads the rest of a record from `fd` without blocking (the child wrote it in one write
// before it exited or said it failed), after the `have` bytes of it already read into
// `head`; nullopt if what is there is not a whole record.
[[nodiscard]] std::optional<StepFailure> readStepFailure(int fd, const void* head = nullptr, size_t have = 0);

}  // namespace pycell::sandbox
