// The host's view of a server under test, read from outside it: its process tree in /proc,
// the cgroup directories named after it, the mounts that mention pycell. Tests use it to check
// what a server leaves behind, independently of what the server says about itself.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server_process.h"

namespace pycell::testing {

// ---- processes ----------------------------------------------------------------------------

struct ProcStat {
  pid_t pid = 0;
  pid_t ppid = 0;
  char state = '?';
  unsigned long long startTime = 0;  // clock ticks since boot: tells a reused pid apart
  std::string comm;                  // the process name (/proc/<pid>/comm)
};

std::optional<ProcStat> readStat(pid_t pid);
// A field of /proc/PID/status in kB (VmRSS, VmHWM), or -1.
long procStatusKb(pid_t pid, const std::string& field);
std::vector<ProcStat> allProcesses();
// Every process whose ppid chain leads to `root` (not `root` itself).
std::vector<ProcStat> descendants(pid_t root);
// The same process (not a reused pid), not yet dead.
bool stillRunning(const ProcStat& p);
// One line per process: pid, ppid, state, command line.
std::string describeProcesses(const std::vector<ProcStat>& procs);
// VmRSS of a process in KiB, if it still runs.
std::optional<long> rssKib(pid_t pid);

// Records every descendant of `root` seen while it runs: a thread samples /proc every
// `period`, and sampleNow() adds one sample at a moment the test chooses (say, while an
// execution is known to be running). A process that lives through a sample is recorded with
// its start time, so after `root` exits the test can tell whether any of them still runs.
class DescendantTracker {
 public:
  explicit DescendantTracker(pid_t root, Millis period = Millis{100});
  ~DescendantTracker();
  DescendantTracker(const DescendantTracker&) = delete;
  DescendantTracker& operator=(const DescendantTracker&) = delete;

  pid_t root() const { return root_; }
  // The descendants right now, also recorded.
  std::vector<ProcStat> sampleNow();
  // Stops the sampling thread (the record stays).
  void stop();
  // Every process recorded so far.
  std::vector<ProcStat> seen() const;
  // Those recorded that still run.
  std::vector<ProcStat> survivors() const;

 private:
  void record(const std::vector<ProcStat>& procs);

  pid_t root_;
  Millis period_;
  mutable std::mutex mutex_;
  std::map<std::pair<pid_t, unsigned long long>, ProcStat> seen_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---- cgroups and mounts -------------------------------------------------------------------

// The directories of the cgroups this process is in, in every mounted hierarchy.
std::set<std::string> ownCgroupDirs();
// Directories named pycell-<pid> or pycell-<pid><non-digit>... below our own cgroups (where a
// server started by this process creates its own).
std::vector<std::string> pycellCgroups(pid_t serverPid);
// The lines of our mountinfo that mention pycell.
std::set<std::string> pycellMounts();

// ---- what a server leaves behind ----------------------------------------------------------

struct Leftovers {
  std::vector<ProcStat> processes;   // recorded descendants that still run
  std::vector<std::string> cgroups;  // pycell-<serverpid> directories
  std::vector<std::string> mounts;   // pycell mounts that were not there before
  bool empty() const { return processes.empty() && cgroups.empty() && mounts.empty(); }
  std::string describe() const;
};

// After the server of `tracker` exited: waits up to `grace` for its recorded descendants and
// its cgroup directories to disappear, and returns what is still there.
Leftovers awaitNothingLeft(const DescendantTracker& tracker, const std::set<std::string>& mountsBefore,
                           Millis grace = Millis{5000});

}  // namespace pycell::testing
