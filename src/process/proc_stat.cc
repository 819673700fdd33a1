#include "pycell/process/proc_stat.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "pycell/process/unique_fd.h"

namespace pycell::process {

std::optional<ProcStat> readProcStat(pid_t pid, bool withPeak) {
  const std::string dir = "/proc/" + std::to_string(pid);
  auto stat = readFile(dir + "/stat", 4096);
  auto statm = readFile(dir + "/statm", 4096);
  if (!stat || !statm) return std::nullopt;
  // The command name may hold anything, spaces and parentheses too: fields follow the last ')'.
  size_t close = stat->rfind(')');
  if (close == std::string::npos || close + 2 > stat->size()) return std::nullopt;
  // After it: state (field 3), then numbers; utime is field 14, stime 15, cutime 16, cstime 17.
  int64_t ticks[4] = {};
  const char* p = stat->c_str() + close + 2;
  const char state = *p;
  for (int field = 3; field <= 17 && *p; ++field) {
    const char* next = p;
    while (*next && *next != ' ') ++next;
    if (field >= 14) ticks[field - 14] = std::strtoll(p, nullptr, 10);
    p = *next ? next + 1 : next;
  }
  static const int64_t hz = [] {
    long v = ::sysconf(_SC_CLK_TCK);
    return v > 0 ? v : 100;
  }();
  static const int64_t pageSize = ::sysconf(_SC_PAGESIZE);
  ProcStat out;
  out.state = state;
  out.userMs = (ticks[0] + ticks[2]) * 1000 / hz;
  out.sysMs = (ticks[1] + ticks[3]) * 1000 / hz;
  long long pages = 0;
  const char* m = statm->c_str();
  char* end = nullptr;
  std::strtoll(m, &end, 10);
  if (end) pages = std::strtoll(end, nullptr, 10);
  out.rssBytes = pages * pageSize;
  if (withPeak) {
    if (auto status = readFile(dir + "/status", 16384)) {
      size_t at = status->find("VmHWM:");
      if (at != std::string::npos) out.peakRssKb = std::strtoll(status->c_str() + at + 6, nullptr, 10);
    }
  }
  return out;
}

}  // namespace pycell::process
