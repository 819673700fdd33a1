#include "pycell/sandbox/rlimits.h"

#include <algorithm>

namespace pycell::sandbox {

std::vector<RlimitSetting> planRlimits(const Limits& limits, const RlimitOptions& options) {
  constexpr rlim_t kMiB = 1 << 20;
  // CPU in whole seconds, soft == hard: the sandboxed interpreter is PID 1 of its pid
  // namespace, which ignores the soft limit's SIGXCPU (init has no default actions), so
  // the hard limit's SIGKILL is what ends it. The server reads that as "timeout".
  rlim_t cpuSeconds = static_cast<rlim_t>((limits.cpuMs + 999) / 1000);
  rlim_t cpuHard = std::max(cpuSeconds, static_cast<rlim_t>((options.sessionCpuMs + 999) / 1000));
  std::vector<RlimitSetting> settings = {
      {RLIMIT_CORE, 0, 0},
      {RLIMIT_NOFILE, 256, 256},
      {RLIMIT_FSIZE, static_cast<rlim_t>(limits.diskMb) * kMiB, static_cast<rlim_t>(limits.diskMb) * kMiB},
      {RLIMIT_CPU, cpuSeconds, cpuHard},
      {RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024},
      {RLIMIT_MSGQUEUE, 0, 0},
      {RLIMIT_RTPRIO, 0, 0},
      {RLIMIT_NICE, 0, 0},
  };
  if (options.processesByRlimit) {
    auto n = static_cast<rlim_t>(limits.maxProcesses);
    settings.push_back({RLIMIT_NPROC, n, n});
  }
  if (options.memoryByRlimit) {
    // Address space, not resident memory, and per process: a bare interpreter maps ~14 MiB,
    // so that much comes on top. (numpy and pandas reserve ~180 MiB more than they touch:
    // profiles that preload them need a larger memoryMb where no memory cgroup exists.)
    rlim_t bytes = static_cast<rlim_t>(limits.memoryMb + options.reservedMb) * kMiB + 32 * kMiB;
    settings.push_back({RLIMIT_AS, bytes, bytes});
  }
  return settings;
}

nlohmann::json rlimitRows(const std::vector<RlimitSetting>& settings) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : settings) rows.push_back({r.resource, r.soft, r.hard});
  return rows;
}

}  // namespace pycell::sandbox
