#pragma once
// The kinds of run an execution can be: a sandbox of its own, a pooled child, or a run in a
// session's interpreter (child_run.h, session.h). Each is a small type behind `Run`; each
// tells its execution what happened through `RunEvents`.
#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pycell/sandbox/cgroup.h"

namespace pycell::exec {

// The kernel's account of how a run ended.
struct RunEnd {
  int waitStatus = 0;  // wait(2)'s status; a run in a live session: its SystemExit code << 8
  rusage usage{};
  bool memoryKilled = false;         // a session's cgroup killed its interpreter for memory
  bool zygoteDied = false;           // a pooled child's zygote died (no report came for it)
  std::optional<bool> sessionAlive;  // in a session: did its state survive this run?
};

// What a run tells its execution, in this order: output and activity events while it runs,
// at most one report, `runExited` once the kernel says it ended, then `runDrained` once
// everything it wrote has been read (or a stray writer was given up on).
class RunEvents {
 public:
  virtual ~RunEvents() = default;
  virtual void runOutput(std::string_view stream, std::string_view chunk) = 0;  // "stdout" or "stderr"
  virtual void runEvent(nlohmann::json event) = 0;
  virtual void runReport(nlohmann::json report) = 0;
  virtual void runExited(const RunEnd& end) = 0;
  virtual void runDrained() = 0;
  // The server failed while handling the run (what the sandbox wrote, most likely).
  virtual void runFailed(const std::string& why) = 0;
};

class Run {
 public:
  virtual ~Run() = default;
  // The kill sequence; a session's run is interrupted (KeyboardInterrupt) so its state may
  // survive, and the session kills its interpreter if the run does not stop.
  virtual void stop() = 0;
  // The event loop has stopped: ends the run now. What can still be learned (the exit, the
  // output the pipes hold) is told through RunEvents before this returns.
  virtual void stopNow() = 0;
  // The execution has finished: descriptors and timers are let go.
  virtual void release() = 0;
  // The process whose CPU and memory are sampled.
  [[nodiscard]] virtual pid_t samplePid() const = 0;
  // The run's cgroup's usage; its CPU counts from the run's start (a pooled child's warm-up
  // is not the run's).
  [[nodiscard]] virtual sandbox::CgroupUsage cgroupUsage() const { return {}; }
  // The CPU time of all the run's processes together since it started, in microseconds,
  // cheaply (for the server's periodic check of cpuMs); none where it is not accounted
  // (no CPU cgroup; a session's run, whose interpreter checks its own cpuMs).
  [[nodiscard]] virtual std::optional<int64_t> cgroupCpuUs() const { return std::nullopt; }
  // The cgroup outlives the run until the kernel lets it be removed (a session keeps its own).
  [[nodiscard]] virtual sandbox::ExecutionCgroup takeCgroup() { return {}; }
  [[nodiscard]] virtual std::string channelProblem() const { return {}; }
  [[nodiscard]] virtual bool inSession() const { return false; }
  // A pooled child that died before it started the program, killed from outside, ran
  // nothing of it: another may (`end`: how it ended). A run's own failure (its memory limit
  // while compiling, say) is never retried.
  [[nodiscard]] virtual bool retryable(const RunEnd& end) const {
    (void)end;
    return false;
  }
};

// The kill sequence for a sandbox the server holds by pidfd (-1: already reaped): its init (whose death ends its
// pid namespace), its process group where there is no pid namespace, and its cgroup.
void killSandbox(int pidfd, pid_t pid, bool pidNamespace, const sandbox::ExecutionCgroup& cgroup);

}  // namespace pycell::exec
