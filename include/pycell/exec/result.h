#pragma once
// The execute result as a value: everything a run's end is judged on (what the kernel
// measured, why the server stopped it, what it printed, what the sandbox reported) in one
// plain struct, and the status and the result document as pure functions of it.
//
// What the result states as fact (exit code, signal, CPU, memory, the limit that was hit)
// comes from the kernel's fields of RunOutcome, never from `report`: the report comes out
// of the sandbox, and only the program's own answers (value, error, displays, files) are
// taken from it.
#include <sys/resource.h>

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/config.h"

namespace pycell::exec {

// Why the server ended a run (None: it ended by itself).
// InputClosed: the server's input ended (EOF, without shutdown) while the run was in flight.
// CpuLimit: the run's cgroup (all its processes together) used more than limits.cpuMs.
enum class StopReason { None, Timeout, CpuLimit, OutputLimit, Killed, Cancelled, Shutdown, InputClosed, Internal };

// CPU and memory as the kernel accounted them. CPU is the run's cgroup's (every process of
// the run, waited for or not) where there is CPU accounting, else wait4's (the sandbox's
// init and the children it waited for).
struct KernelUsage {
  int64_t cpuUserMs = 0;
  int64_t cpuSysMs = 0;
  uint64_t peakMemoryBytes = 0;  // the cgroup's peak, or else the largest resident set
  uint64_t oomKills = 0;         // the cgroup's OOM kills
};

// From wait4's (or the zygote's) rusage and the run's cgroup (whose CPU, when it has it, wins).
[[nodiscard]] KernelUsage kernelUsage(const rusage& usage, const sandbox::CgroupUsage& cgroup);
// The result's `usage`: {wallMs, cpuUserMs, cpuSysMs, peakMemoryBytes}.
[[nodiscard]] nlohmann::json usageDocument(int64_t wallMs, const KernelUsage& usage);

struct RunOutcome {
  std::string executionId;
  Limits limits;  // the limits in force

  // The kernel's facts.
  bool exited = false;  // the kernel reported the end: `waitStatus` holds it
  int waitStatus = 0;   // as wait4 returns it (a session's run that returned: its exit code << 8)
  int64_t wallMs = 0;
  KernelUsage usage;
  bool memoryKilled = false;  // a session's cgroup killed its interpreter for memory

  // The server's side.
  StopReason stopReason = StopReason::None;
  std::string internalError;  // why the server itself ended the run (StopReason::Internal)
  bool zygoteDied = false;    // pooled: the zygote above the child died

  // A run in a session.
  bool inSession = false;
  std::string sessionId;
  std::optional<bool> sessionAlive;  // did the session's state survive the run?

  // The captured output, as the output buffers hold it.
  std::string stdoutText;
  std::string stderrText;
  bool stdoutTruncated = false;
  bool stderrTruncated = false;

  // From the sandbox, untrusted (already cut to the server's caps by the result channel).
  nlohmann::json report;          // null when no report came
  std::string channelProblem;     // what was wrong with the result channel's data, if anything
  nlohmann::json events = nlohmann::json::array();  // activity, as the policy layer wrote it through
  bool blocked = false;           // an event said the policy blocked something

  nlohmann::json samples = nlohmann::json::array();  // {tMs, cpuMs, rssBytes}
  bool activity = false;          // the profile asks for the activity summary
};

// The run's status: "ok", "error", "timeout", "memory_limit", "output_limit", "killed",
// "crashed" or "policy_violation". `report` is the outcome's report (passed apart so that
// buildResult can move from it).
[[nodiscard]] std::string decideStatus(const RunOutcome& outcome, const nlohmann::json& report);
[[nodiscard]] inline std::string decideStatus(const RunOutcome& outcome) { return decideStatus(outcome, outcome.report); }

// The execute result document. Takes the outcome by value: returned files may weigh tens
// of MiB, so pass it with std::move.
[[nodiscard]] nlohmann::json buildResult(RunOutcome outcome);

// When even buildResult failed: still exactly one answer, with what is known for certain.
[[nodiscard]] nlohmann::json unbuildableResult(const std::string& executionId, int64_t wallMs, const std::string& why);

}  // namespace pycell::exec
