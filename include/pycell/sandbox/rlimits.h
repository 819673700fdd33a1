#pragma once
// Resource limits for a sandboxed process, as a table: computed in the parent, applied in
// the child with one loop (no per-limit code after fork).
#include <sys/resource.h>

#include <vector>

#include "pycell/sandbox/config.h"

namespace pycell::sandbox {

struct RlimitSetting {
  int resource;
  rlim_t soft;
  rlim_t hard;
};

struct RlimitOptions {
  bool memoryByRlimit = false;  // no memory cgroup: RLIMIT_AS carries the memory limit
  bool processesByRlimit = true;  // RLIMIT_NPROC counts per user namespace; set it always
  // A process that may become a session: its hard CPU limit is the session's budget, and
  // the soft limit (each run's) is moved by the session itself. A single run lowers the
  // hard limit to its own before the program starts.
  int64_t sessionCpuMs = 0;
  // Address space reserved beyond what is used, added to RLIMIT_AS: V8 reserves about
  // 750 MiB of virtual memory at start (code range, heap cages) that it never touches; its
  // heap is held to memoryMb by --max-old-space-size instead.
  int64_t reservedMb = 0;
};

[[nodiscard]] std::vector<RlimitSetting> planRlimits(const Limits& limits, const RlimitOptions& options);

// The rows as JSON ([[resource, soft, hard], ...]) for a process that sets its own limits
// (a pooled child, the bootstrap tightening them per run).
[[nodiscard]] nlohmann::json rlimitRows(const std::vector<RlimitSetting>& settings);

}  // namespace pycell::sandbox
