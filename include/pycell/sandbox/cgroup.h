#pragma once
// Memory and process limits, and CPU accounting, through cgroups: v2 where the server's
// cgroup is delegated, v1 where only those hierarchies are writable, none otherwise (rlimits
// then carry the limits, per process). Cgroups are only ever created below the server's own,
// and removed again.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <vector>
#include <optional>
#include <string>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

namespace pycell::sandbox {

enum class CgroupVersion { None, V1, V2 };
[[nodiscard]] const char* cgroupVersionName(CgroupVersion v);

// What this machine offers, found once at start-up.
struct CgroupSupport {
  CgroupVersion version = CgroupVersion::None;
  bool memory = false;
  bool pids = false;
  // The CPU time of all of a run's processes together (v2 cpu.stat, which every cgroup has;
  // v1 the cpuacct hierarchy): what holds cpuMs for the whole run. Without it, only each
  // process's RLIMIT_CPU does.
  bool cpu = false;
  std::string memoryBase;  // our own directory below which executions get theirs (v1: memory hierarchy)
  std::string pidsBase;    // v1: pids hierarchy (v2: same as memoryBase)
  std::string cpuBase;     // v1: cpuacct hierarchy (v2: same as memoryBase)
  std::string reason;      // why not (for `pycell check`)
};

// Creates `pycell-<pid>` below the server's cgroup(s). Call once; remove with removeCgroupBase.
[[nodiscard]] CgroupSupport setUpCgroups();
void removeCgroupBase(const CgroupSupport& support);
// Removes, below `parent`, the empty `pycell-<pid>` and `pycell-server-<pid>` directories
// (and their empty subdirectories) of servers that no longer run. setUpCgroups calls it.
void removeStaleCgroups(const std::string& parent);

// CPU time, in microseconds, as the cgroup accounted it (every process that was ever in it,
// whether or not anyone waited for it).
struct CgroupCpu {
  int64_t userUs = 0;
  int64_t sysUs = 0;
  [[nodiscard]] int64_t totalUs() const { return userUs + sysUs; }
};

struct CgroupUsage {
  uint64_t peakMemoryBytes = 0;
  uint64_t oomKills = 0;
  std::optional<CgroupCpu> cpu = std::nullopt;  // none without CPU accounting
};

// One execution's cgroup. The destructor removes it (retrying later is the owner's job:
// `tryRemove` reports whether the directories are gone). Once its processes are gone it may
// instead serve another sandbox (`recycle`): what the next run reads of it is then its own.
class ExecutionCgroup {
 public:
  ExecutionCgroup() = default;
  ExecutionCgroup(ExecutionCgroup&&) noexcept;
  ExecutionCgroup& operator=(ExecutionCgroup&&) noexcept;
  ExecutionCgroup(const ExecutionCgroup&) = delete;
  ExecutionCgroup& operator=(const ExecutionCgroup&) = delete;
  ~ExecutionCgroup();

  [[nodiscard]] static Result<ExecutionCgroup> create(const CgroupSupport& support, const std::string& name,
                                                      int64_t memoryBytes, int64_t maxProcesses);
  [[nodiscard]] Status addProcess(pid_t pid) const;
  // Changes the limits (a pooled child gets its execution's limits when claimed); writes
  // nothing when they are the ones it has.
  [[nodiscard]] Status setLimits(int64_t memoryBytes, int64_t maxProcesses);
  [[nodiscard]] CgroupUsage usage() const;
  // The CPU time of all its processes so far, split into user and system (a few files read);
  // none without CPU accounting.
  [[nodiscard]] std::optional<CgroupCpu> cpu() const;
  // The same total, cheaply (one pread of a descriptor opened with the cgroup), for checks
  // while a run lives; none without CPU accounting.
  [[nodiscard]] std::optional<int64_t> cpuTotalUs() const;
  // Kills every process in it (v2 cgroup.kill; v1 has no such file, and the pid namespace's
  // init dying takes the rest with it).
  void killAll() const;
  // rmdir; false while processes still linger (they are being torn down by the kernel).
  bool tryRemove();
  // Whether it can serve another sandbox: v1, or v2 where the memory peak can be restarted
  // (memory.peak written through a descriptor restarts it for reads through that descriptor,
  // Linux 6.12 and later).
  [[nodiscard]] bool recyclable() const;
  // No process in it any more (pids.current 0, or cgroup.procs empty).
  [[nodiscard]] bool empty() const;
  // As a spare: its descriptors closed (a spare costs directories, not descriptors).
  void park();
  // Ready for a new sandbox (call it once `empty()`): the limits set to these, the memory
  // peak restarted and counted from the usage still charged now, v1's CPU counters at zero
  // (v2's cpu.stat cannot be; every reader subtracts the figure it read when its run
  // started), and the OOM kills so far taken as the new zero. An error leaves it fit only
  // for removal.
  [[nodiscard]] Status recycle(int64_t memoryBytes, int64_t maxProcesses);
  [[nodiscard]] bool active() const { return !memoryDir_.empty() || !pidsDir_.empty() || !cpuDir_.empty(); }

 private:
  [[nodiscard]] uint64_t oomKillsSoFar() const;
  [[nodiscard]] Status openCpuCounter();

  CgroupVersion version_ = CgroupVersion::None;
  std::string memoryDir_;
  std::string pidsDir_;
  std::string cpuDir_;  // may be memoryDir_ (v2)
  UniqueFd cpuFd_;      // v2 cpu.stat, v1 cpuacct.usage
  UniqueFd peakFd_;     // v2 memory.peak, opened and restarted when it was recycled
  bool peakResettable_ = false;  // v2: memory.peak opens for writing (Linux 6.12)
  int64_t memoryBytes_ = -1;  // the limits written last
  int64_t maxProcesses_ = -1;
  uint64_t oomKillsBefore_ = 0;  // the OOM-kill count when it was last recycled
  uint64_t memoryBefore_ = 0;    // the memory still charged then (the peak counts from it)
};

// Ended sandboxes' cgroups. A few are kept as spares and handed to new sandboxes (`reuse`):
// one mkdir and one rmdir per hierarchy per run are the costliest cgroup work the kernel
// does for a run (each makes or tears down every control file). The rest, and spares that
// cannot be recycled, are removed as soon as the kernel lets go of them.
class CgroupReaper {
 public:
  static constexpr size_t kMaxSpares = 16;

  void add(ExecutionCgroup cgroup);
  // Removed at the next tryAll, not now: an execution's answer goes out first.
  void addLater(ExecutionCgroup cgroup);
  // A spare whose processes are all gone, recycled with these limits; none when there is
  // none (the caller creates a cgroup).
  [[nodiscard]] std::optional<ExecutionCgroup> reuse(int64_t memoryBytes, int64_t maxProcesses);
  // One pass; true when nothing is left to remove (spares are kept).
  bool tryAll();
  // Spares included, blocking passes for at most `timeout` (at shutdown, when no event loop
  // turns any more).
  void drain(std::chrono::milliseconds timeout);

 private:
  // Parks it among the spares when it can be recycled and there is room.
  bool keepAsSpare(ExecutionCgroup& cgroup);

  std::vector<ExecutionCgroup> lingering_;
  std::vector<ExecutionCgroup> spares_;  // oldest first
};

}  // namespace pycell::sandbox
