#pragma once
// What the kernel accounts for one process, read from /proc: the server's source for the
// CPU time and memory of a process it cannot wait for (a session's interpreter between
// runs, a sample during a run). Never what the process says of itself.
#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace pycell::process {

struct ProcStat {
  char state = '?';         // R, S, D, Z (exited, not yet reaped), ...
  int64_t userMs = 0;       // utime + cutime (children it waited for)
  int64_t sysMs = 0;        // stime + cstime
  int64_t rssBytes = 0;     // resident now
  int64_t peakRssKb = 0;    // VmHWM
};

// /proc/PID/stat (and status for the peak); nullopt when the process is gone.
[[nodiscard]] std::optional<ProcStat> readProcStat(pid_t pid, bool withPeak = false);

}  // namespace pycell::process
