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
};

[[nodiscard]] std::vector<RlimitSetting> planRlimits(const Limits& limits, const RlimitOptions& options);

// Child side: setrlimit for each row; returns the failing row's index or -1.
[[nodiscard]] int applyRlimits(const std::vector<RlimitSetting>& settings);

}  // namespace pycell::sandbox
