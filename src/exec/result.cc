// The execute result, built from a run's outcome (see result.h): no process, no clock, no
// file is read here, so every status and document can be checked on values.
#include "pycell/exec/result.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "pycell/exec/activity.h"

namespace pycell::exec {

using nlohmann::json;

namespace {

int64_t toMs(const timeval& tv) { return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000; }

bool exitedWith(const RunOutcome& o, bool zero) {
  return o.exited && WIFEXITED(o.waitStatus) && (WEXITSTATUS(o.waitStatus) == 0) == zero;
}

// The status the kernel's facts decide alone (a signal), or nothing.
std::optional<std::string> signalStatus(const RunOutcome& o) {
  if (!o.exited || !WIFSIGNALED(o.waitStatus)) return std::nullopt;
  int sig = WTERMSIG(o.waitStatus);
  int64_t cpuMs = o.usage.cpuUserMs + o.usage.cpuSysMs;
  // RLIMIT_CPU ends the run with SIGKILL at the (whole-second) limit. Nothing else inside
  // can SIGKILL the sandbox's PID 1 (its namespace cannot signal it; our own kills and
  // the OOM killer are told apart before this), but the limit counts the child's whole
  // life, its set-up included, and tick-based accounting lags on a loaded machine: half
  // the limit used is the mark of a CPU limit, rather than of a kill from outside.
  if (sig == SIGXCPU || (sig == SIGKILL && cpuMs * 2 >= o.limits.cpuMs)) return "timeout";
  return "crashed";
}

// The message of an error the server writes (the program's own error did not say it all).
std::string errorMessage(const RunOutcome& o, const std::string& status, const json& exitCode) {
  const auto& l = o.limits;
  std::string message;
  if (status == "timeout" && o.stopReason == StopReason::CpuLimit)
    message = "the run exceeded its CPU limit (" + std::to_string(l.cpuMs) + " ms CPU, all of its processes together)";
  else if (status == "timeout")
    message = "the run exceeded its time limit (" + std::to_string(l.timeoutMs) + " ms wall, " + std::to_string(l.cpuMs) + " ms CPU)";
  else if (status == "memory_limit") message = "the run exceeded its memory limit of " + std::to_string(l.memoryMb) + " MiB";
  else if (status == "output_limit") message = "the output exceeded " + std::to_string(l.maxOutputBytes) + " bytes";
  else if (status == "killed" && o.stopReason == StopReason::InputClosed) message = "input closed before the run finished";
  else if (status == "killed") message = "the run was killed on request";
  else if (status == "policy_violation") message = "the profile's policy blocked " + [&] {
    for (const auto& e : o.events)
      if (e["kind"] == "blocked") return e.value("what", std::string("an operation")) + " " + e.value("detail", std::string());
    return std::string("an operation");
  }();
  else if (status == "crashed" && o.stopReason == StopReason::Internal)
    message = "the server could not process this run: " + o.internalError;
  else if (status == "crashed" && o.zygoteDied) message = "the zygote this execution was forked from died, and the execution with it";
  else if (status == "crashed") {
    bool signaled = o.exited && WIFSIGNALED(o.waitStatus);
    message = std::string("the process died by signal ") + (signaled ? strsignal(WTERMSIG(o.waitStatus)) : "?");
  } else
    message = "the process exited with code " + (exitCode.is_null() ? std::string("?") : exitCode.dump()) +
              " without a result" + (o.channelProblem.empty() ? "" : ": " + o.channelProblem);
  if (o.inSession) message += o.sessionAlive == true ? "; the session's state was kept" : "; the session ended with it";
  return message;
}

// The result's `error`: the program's own, or the server's when the run did not end by
// itself or left no error behind (keeping where the program was: a session's interrupted
// run reports its KeyboardInterrupt's traceback).
json errorDocument(const RunOutcome& o, const std::string& status, json error, const json& exitCode) {
  bool stoppedByUs = o.stopReason != StopReason::None && status != "ok" && status != "error";
  if (!(error.is_null() && status != "ok") && !stoppedByUs) return error;
  static const std::map<std::string, std::string> types = {
      {"timeout", "Timeout"}, {"memory_limit", "MemoryLimit"}, {"output_limit", "OutputLimit"},
      {"killed", "Killed"},   {"crashed", "Crashed"},          {"error", "Error"},
      {"policy_violation", "PolicyViolation"}};
  json traceback = error.is_object() && error.contains("traceback") ? error["traceback"] : json::array();
  json line = error.is_object() && error.contains("line") ? error["line"] : json(nullptr);
  return {{"type", types.at(status)}, {"message", errorMessage(o, status, exitCode)}, {"traceback", traceback}, {"line", line}};
}

// What the program left behind, as the bootstrap reported it. The report comes out of the
// sandbox, so only well-formed entries are kept (the result stays schema-valid); they are
// moved, not copied: returned files may weigh tens of MiB.
void takeLeftBehind(json& result, json& reported) {
  auto keep = [&](const char* key, auto wellFormed) {
    json kept = json::array();
    if (!reported.contains(key) || !reported[key].is_array()) return kept;
    for (auto& entry : reported[key])
      if (entry.is_object() && wellFormed(entry)) kept.push_back(std::move(entry));
    return kept;
  };
  auto stringAt = [](const json& o, const char* k) { return o.contains(k) && o[k].is_string(); };
  result["displays"] = keep("displays", [](const json& bundle) {  // mime type -> text or base64; JSON types hold JSON
    for (const auto& [mime, data] : bundle.items())
      if (!data.is_string() && mime != "application/json" && !mime.ends_with("+json")) return false;
    return !bundle.empty();
  });
  result["files"] = keep("files", [&](const json& file) {
    return file.size() == 3 && stringAt(file, "path") && stringAt(file, "base64") && file.contains("size") &&
           file["size"].is_number_unsigned();
  });
  if (reported.contains("skippedFiles"))
    result["skippedFiles"] = keep("skippedFiles", [&](const json& skipped) {
      return skipped.size() == 2 && stringAt(skipped, "path") && stringAt(skipped, "reason");
    });
  if (reported.contains("valueTruncated") && reported["valueTruncated"] == true) result["valueTruncated"] = true;
  // Bounded and made well-formed by the channel (sanitizeReport); checked again here, as a
  // report may come from elsewhere.
  if (reported.contains("valueWarnings") && reported["valueWarnings"].is_array() && !result.contains("valueTruncated")) {
    json kept = keep("valueWarnings", [&](const json& w) {
      return w.size() == 2 && stringAt(w, "path") && stringAt(w, "reason");
    });
    if (!kept.empty()) result["valueWarnings"] = std::move(kept);
  }
}

// The kernel's usage, with what the samples add (averages and the sampled peak).
json usageWithSamples(const RunOutcome& o) {
  json usage = usageDocument(o.wallMs, o.usage);
  if (o.samples.empty()) return usage;
  int64_t rssSum = 0, rssPeak = 0;
  for (const auto& s : o.samples) {
    rssSum += s["rssBytes"].get<int64_t>();
    rssPeak = std::max(rssPeak, s["rssBytes"].get<int64_t>());
  }
  usage["avgMemoryBytes"] = rssSum / static_cast<int64_t>(o.samples.size());
  usage["peakSampledMemoryBytes"] = rssPeak;
  int64_t wall = o.wallMs;
  int64_t cpu = o.usage.cpuUserMs + o.usage.cpuSysMs;
  usage["avgCpuPercent"] = wall > 0 ? static_cast<double>(cpu) * 100.0 / static_cast<double>(wall) : 0.0;
  return usage;
}

}  // namespace

KernelUsage kernelUsage(const rusage& usage, const sandbox::CgroupUsage& cgroup) {
  return {.cpuUserMs = cgroup.cpu ? cgroup.cpu->userUs / 1000 : toMs(usage.ru_utime),
          .cpuSysMs = cgroup.cpu ? cgroup.cpu->sysUs / 1000 : toMs(usage.ru_stime),
          .peakMemoryBytes = cgroup.peakMemoryBytes ? cgroup.peakMemoryBytes : static_cast<uint64_t>(usage.ru_maxrss) * 1024,
          .oomKills = cgroup.oomKills};
}

json usageDocument(int64_t wallMs, const KernelUsage& usage) {
  return {{"wallMs", wallMs},
          {"cpuUserMs", usage.cpuUserMs},
          {"cpuSysMs", usage.cpuSysMs},
          {"peakMemoryBytes", usage.peakMemoryBytes}};
}

std::string decideStatus(const RunOutcome& o, const json& reported) {
  switch (o.stopReason) {
    case StopReason::Killed:
    case StopReason::Cancelled:
    case StopReason::Shutdown:
    case StopReason::InputClosed: return "killed";
    case StopReason::Timeout:
    case StopReason::CpuLimit: return "timeout";
    case StopReason::OutputLimit: return "output_limit";
    case StopReason::Internal: return "crashed";
    case StopReason::None: break;
  }
  if (o.memoryKilled || o.usage.oomKills > 0) return "memory_limit";
  if (auto s = signalStatus(o)) return *s;
  // Told as it happened, so a program that rewrote its report afterwards cannot hide it.
  if (o.blocked) return "policy_violation";
  if (reported.is_object() && reported.contains("status") && reported["status"].is_string()) {
    auto s = reported["status"].get<std::string>();
    if (s == "policy_violation") return s;
    // The kernel's exit code wins over a report that claims success.
    if (s == "ok" && !o.inSession && exitedWith(o, false)) return "error";
    if (s == "ok" || s == "error" || s == "memory_limit") return s;
    if (s == "timeout" && o.inSession) return s;  // the run's CPU limit, in a session
  }
  return exitedWith(o, true) ? "ok" : "error";
}

json buildResult(RunOutcome o) {
  json reported = std::move(o.report);
  std::string status = decideStatus(o, reported);
  json result = {{"executionId", o.executionId}, {"status", status}};
  bool signaled = o.exited && WIFSIGNALED(o.waitStatus);
  result["exitCode"] = o.exited && WIFEXITED(o.waitStatus) ? json(WEXITSTATUS(o.waitStatus)) : json(nullptr);
  result["signal"] = signaled ? json(WTERMSIG(o.waitStatus)) : json(nullptr);
  result["stdout"] = std::move(o.stdoutText);
  result["stderr"] = std::move(o.stderrText);
  result["truncated"] = {{"stdout", o.stdoutTruncated}, {"stderr", o.stderrTruncated}};
  // A session's interrupted run still reports (where the KeyboardInterrupt struck).
  bool fromBootstrap = reported.is_object() &&
                       (status == "ok" || status == "error" || status == "memory_limit" || status == "policy_violation" ||
                        o.sessionAlive == true);
  if (!fromBootstrap) reported = json::object();  // nothing of it is taken
  auto take = [&](const char* key) { return reported.contains(key) ? std::move(reported[key]) : json(nullptr); };
  result["value"] = take("value");
  result["valueRepr"] = take("valueRepr");
  if (!result["valueRepr"].is_string()) result["valueRepr"] = nullptr;
  result["error"] = errorDocument(o, status, take("error"), result["exitCode"]);
  takeLeftBehind(result, reported);
  result["usage"] = usageWithSamples(o);
  if (!o.samples.empty()) result["samples"] = std::move(o.samples);
  if (o.activity) result["activity"] = summarizeActivity(o.events);
  if (o.inSession) result["session"] = {{"id", o.sessionId}, {"alive", o.sessionAlive.value_or(false)}};
  return result;
}

json unbuildableResult(const std::string& executionId, int64_t wallMs, const std::string& why) {
  return {{"executionId", executionId}, {"status", "crashed"}, {"exitCode", nullptr},
          {"signal", nullptr}, {"stdout", ""}, {"stderr", ""}, {"value", nullptr}, {"valueRepr", nullptr},
          {"truncated", {{"stdout", false}, {"stderr", false}}}, {"displays", json::array()},
          {"files", json::array()},
          {"error", {{"type", "Crashed"}, {"message", "the server could not build this run's result: " + why},
                     {"traceback", json::array()}, {"line", nullptr}}},
          {"usage", {{"wallMs", wallMs}, {"cpuUserMs", 0}, {"cpuSysMs", 0}, {"peakMemoryBytes", 0}}}};
}

}  // namespace pycell::exec
