// The execute result as a pure function of a run's outcome: statuses and documents checked
// on values (no process runs here).
#include <signal.h>
#include <sys/wait.h>

#include <cstring>

#include <catch2/catch.hpp>

#include "pycell/exec/result.h"

using nlohmann::json;
using pycell::exec::buildResult;
using pycell::exec::decideStatus;
using pycell::exec::RunOutcome;
using pycell::exec::StopReason;

namespace {

// A run that ended by itself with `code`, having used a little CPU and memory.
RunOutcome exitedWith(int code, json report = nullptr) {
  RunOutcome o;
  o.executionId = "e1";
  o.limits.timeoutMs = 5000;
  o.limits.cpuMs = 2000;
  o.limits.memoryMb = 64;
  o.limits.maxOutputBytes = 1000;
  o.exited = true;
  o.waitStatus = W_EXITCODE(code, 0);
  o.wallMs = 120;
  o.usage = {.cpuUserMs = 40, .cpuSysMs = 10, .peakMemoryBytes = 30u << 20, .oomKills = 0};
  o.report = std::move(report);
  return o;
}

RunOutcome killedBySignal(int sig, int64_t cpuMs, json report = nullptr) {
  RunOutcome o = exitedWith(0, std::move(report));
  o.waitStatus = sig;  // WIFSIGNALED, no core
  o.usage.cpuUserMs = cpuMs;
  o.usage.cpuSysMs = 0;
  return o;
}

const json kOkReport = {{"status", "ok"}, {"value", 42}, {"valueRepr", "42"}, {"error", nullptr}};

}  // namespace

TEST_CASE("result: a run that returned is ok, with its value and the kernel's usage", "[result]") {
  RunOutcome o = exitedWith(0, kOkReport);
  o.stdoutText = "hello\n";
  CHECK(decideStatus(o) == "ok");
  json r = buildResult(o);
  CHECK(r["executionId"] == "e1");
  CHECK(r["status"] == "ok");
  CHECK(r["exitCode"] == 0);
  CHECK(r["signal"].is_null());
  CHECK(r["value"] == 42);
  CHECK(r["valueRepr"] == "42");
  CHECK(r["error"].is_null());
  CHECK(r["stdout"] == "hello\n");
  CHECK(r["stderr"] == "");
  CHECK(r["truncated"] == json{{"stdout", false}, {"stderr", false}});
  CHECK(r["displays"] == json::array());
  CHECK(r["files"] == json::array());
  CHECK(r["usage"] == json{{"wallMs", 120}, {"cpuUserMs", 40}, {"cpuSysMs", 10}, {"peakMemoryBytes", 30u << 20}});
  CHECK_FALSE(r.contains("activity"));
  CHECK_FALSE(r.contains("session"));
  CHECK_FALSE(r.contains("samples"));
  CHECK_FALSE(r.contains("skippedFiles"));
}

TEST_CASE("result: no report and exit code 0 is ok; no report and a nonzero code is an error", "[result]") {
  CHECK(decideStatus(exitedWith(0)) == "ok");
  RunOutcome o = exitedWith(3);
  o.channelProblem = "a line was not JSON";
  json r = buildResult(o);
  CHECK(r["status"] == "error");
  CHECK(r["exitCode"] == 3);
  CHECK(r["error"]["type"] == "Error");
  CHECK(r["error"]["message"] == "the process exited with code 3 without a result: a line was not JSON");
  CHECK(r["error"]["traceback"] == json::array());
  CHECK(r["error"]["line"].is_null());
}

TEST_CASE("result: an error the program reported is kept as it reported it", "[result]") {
  json error = {{"type", "ValueError"}, {"message", "bad"}, {"traceback", {"line 2"}}, {"line", 2}};
  json r = buildResult(exitedWith(1, {{"status", "error"}, {"error", error}}));
  CHECK(r["status"] == "error");
  CHECK(r["exitCode"] == 1);
  CHECK(r["error"] == error);
}

TEST_CASE("result: the kernel's nonzero exit code wins over a report that says ok", "[result]") {
  json report = kOkReport;
  report["exitCode"] = 0;  // the sandbox's claim, never read
  json r = buildResult(exitedWith(7, report));
  CHECK(r["status"] == "error");
  CHECK(r["exitCode"] == 7);
  CHECK(r["error"]["type"] == "Error");
  CHECK(r["error"]["message"] == "the process exited with code 7 without a result");
}

TEST_CASE("result: a run killed by a signal crashed; RLIMIT_CPU's kill is a timeout", "[result]") {
  json r = buildResult(killedBySignal(SIGSEGV, 5));
  CHECK(r["status"] == "crashed");
  CHECK(r["exitCode"].is_null());
  CHECK(r["signal"] == SIGSEGV);
  CHECK(r["error"]["type"] == "Crashed");
  CHECK(r["error"]["message"] == std::string("the process died by signal ") + strsignal(SIGSEGV));
  // SIGKILL with little CPU used: from outside, not the CPU limit (2000 ms here).
  CHECK(decideStatus(killedBySignal(SIGKILL, 999)) == "crashed");
  // Half the CPU limit or more: the CPU limit.
  CHECK(decideStatus(killedBySignal(SIGKILL, 1000)) == "timeout");
  CHECK(decideStatus(killedBySignal(SIGXCPU, 0)) == "timeout");
  json t = buildResult(killedBySignal(SIGKILL, 1900));
  CHECK(t["error"]["type"] == "Timeout");
  CHECK(t["error"]["message"] == "the run exceeded its time limit (5000 ms wall, 2000 ms CPU)");
}

TEST_CASE("result: the wall-clock timeout, whatever the report says", "[result]") {
  RunOutcome o = killedBySignal(SIGKILL, 10, kOkReport);
  o.stopReason = StopReason::Timeout;
  json r = buildResult(o);
  CHECK(r["status"] == "timeout");
  CHECK(r["signal"] == SIGKILL);
  CHECK(r["value"].is_null());  // nothing of the report is taken
  CHECK(r["valueRepr"].is_null());
  CHECK(r["error"]["type"] == "Timeout");
  CHECK(r["error"]["message"] == "the run exceeded its time limit (5000 ms wall, 2000 ms CPU)");
}

TEST_CASE("result: the cgroup's OOM kill is memory_limit", "[result]") {
  RunOutcome o = killedBySignal(SIGKILL, 1900);  // would be a CPU timeout without the OOM kill
  o.usage.oomKills = 1;
  json r = buildResult(o);
  CHECK(r["status"] == "memory_limit");
  CHECK(r["error"]["type"] == "MemoryLimit");
  CHECK(r["error"]["message"] == "the run exceeded its memory limit of 64 MiB");
  RunOutcome session = killedBySignal(SIGKILL, 5);
  session.memoryKilled = true;
  CHECK(decideStatus(session) == "memory_limit");
  // A MemoryError the program reported itself is memory_limit too, with its own error.
  json error = {{"type", "MemoryError"}, {"message", ""}, {"traceback", json::array()}, {"line", 1}};
  json own = buildResult(exitedWith(1, {{"status", "memory_limit"}, {"error", error}}));
  CHECK(own["status"] == "memory_limit");
  CHECK(own["error"] == error);
}

TEST_CASE("result: the output limit, with the truncation flags of the buffers", "[result]") {
  RunOutcome o = killedBySignal(SIGKILL, 5);
  o.stopReason = StopReason::OutputLimit;
  o.stdoutText = "head [dropped] tail";
  o.stdoutTruncated = true;
  json r = buildResult(o);
  CHECK(r["status"] == "output_limit");
  CHECK(r["stdout"] == "head [dropped] tail");
  CHECK(r["truncated"] == json{{"stdout", true}, {"stderr", false}});
  CHECK(r["error"]["type"] == "OutputLimit");
  CHECK(r["error"]["message"] == "the output exceeded 1000 bytes");
  // Truncated output of a run that ended by itself is still flagged.
  RunOutcome ok = exitedWith(0, kOkReport);
  ok.stderrTruncated = true;
  CHECK(buildResult(ok)["truncated"] == json{{"stdout", false}, {"stderr", true}});
}

TEST_CASE("result: killed by the client, cancelled, or the server stopping", "[result]") {
  for (auto reason : {StopReason::Killed, StopReason::Cancelled, StopReason::Shutdown}) {
    RunOutcome o = killedBySignal(SIGKILL, 5, kOkReport);
    o.stopReason = reason;
    json r = buildResult(o);
    CHECK(r["status"] == "killed");
    CHECK(r["value"].is_null());
    CHECK(r["error"]["type"] == "Killed");
    CHECK(r["error"]["message"] == "the run was killed on request");
  }
  // The server's input ended while it ran (EOF without shutdown).
  RunOutcome closed = killedBySignal(SIGKILL, 5, kOkReport);
  closed.stopReason = StopReason::InputClosed;
  json c = buildResult(closed);
  CHECK(c["status"] == "killed");
  CHECK(c["error"]["type"] == "Killed");
  CHECK(c["error"]["message"] == "input closed before the run finished");
  // Killed while queued: never ran, the kernel has nothing to say.
  RunOutcome queued;
  queued.executionId = "q";
  queued.stopReason = StopReason::Killed;
  json q = buildResult(queued);
  CHECK(q["status"] == "killed");
  CHECK(q["exitCode"].is_null());
  CHECK(q["signal"].is_null());
  CHECK(q["usage"] == json{{"wallMs", 0}, {"cpuUserMs", 0}, {"cpuSysMs", 0}, {"peakMemoryBytes", 0}});
}

TEST_CASE("result: the server's own failure, and a dead zygote, are crashes that say so", "[result]") {
  RunOutcome o = killedBySignal(SIGKILL, 5);
  o.stopReason = StopReason::Internal;
  o.internalError = "bad JSON";
  json r = buildResult(o);
  CHECK(r["status"] == "crashed");
  CHECK(r["error"]["message"] == "the server could not process this run: bad JSON");
  RunOutcome z = killedBySignal(SIGKILL, 5);
  z.zygoteDied = true;
  CHECK(buildResult(z)["error"]["message"] == "the zygote this execution was forked from died, and the execution with it");
}

TEST_CASE("result: kernel facts win over a lying sandbox report", "[result]") {
  // The report claims success, no signal, a tiny CPU and memory use.
  json lie = {{"status", "ok"},   {"value", 1},         {"valueRepr", "1"}, {"exitCode", 0}, {"signal", nullptr},
              {"error", nullptr}, {"usage", {{"wallMs", 1}, {"cpuUserMs", 1}, {"cpuSysMs", 0}, {"peakMemoryBytes", 1}}},
              {"files", {{{"path", "x"}, {"base64", ""}, {"size", 0u}}}}};
  SECTION("SIGKILL at the CPU limit") {
    RunOutcome o = killedBySignal(SIGKILL, 1500, lie);
    json r = buildResult(o);
    CHECK(r["status"] == "timeout");
    CHECK(r["signal"] == SIGKILL);
    CHECK(r["exitCode"].is_null());
    CHECK(r["value"].is_null());
    CHECK(r["files"] == json::array());
    CHECK(r["usage"] == json{{"wallMs", 120}, {"cpuUserMs", 1500}, {"cpuSysMs", 0}, {"peakMemoryBytes", 30u << 20}});
  }
  SECTION("the cgroup's OOM kill") {
    RunOutcome o = killedBySignal(SIGKILL, 3, lie);
    o.usage.oomKills = 2;
    o.usage.peakMemoryBytes = 64u << 20;
    json r = buildResult(o);
    CHECK(r["status"] == "memory_limit");
    CHECK(r["signal"] == SIGKILL);
    CHECK(r["usage"]["peakMemoryBytes"] == 64u << 20);
    CHECK(r["usage"]["cpuUserMs"] == 3);
  }
  SECTION("a clean exit: the program's answers are taken, the facts still are not") {
    RunOutcome o = exitedWith(0, lie);
    json r = buildResult(o);
    CHECK(r["status"] == "ok");
    CHECK(r["value"] == 1);
    CHECK(r["files"].size() == 1);
    CHECK(r["exitCode"] == 0);
    CHECK(r["signal"].is_null());
    CHECK(r["usage"] == json{{"wallMs", 120}, {"cpuUserMs", 40}, {"cpuSysMs", 10}, {"peakMemoryBytes", 30u << 20}});
  }
  SECTION("a blocked operation cannot be reported away") {
    RunOutcome o = exitedWith(0, lie);
    o.blocked = true;
    o.events = {{{"kind", "blocked"}, {"what", "import"}, {"detail", "socket"}}};
    json r = buildResult(o);
    CHECK(r["status"] == "policy_violation");
    CHECK(r["error"]["type"] == "PolicyViolation");
    CHECK(r["error"]["message"] == "the profile's policy blocked import socket");
  }
}

TEST_CASE("result: only well-formed displays and files are taken from the report", "[result]") {
  json report = {{"status", "ok"},
                 {"valueRepr", 5},  // not a string
                 {"displays", {{{"text/plain", "a"}}, {{"image/png", 3}}, json::object(), {{"application/json", {1, 2}}}}},
                 {"files", {{{"path", "a"}, {"base64", "YQ=="}, {"size", 1u}}, {{"path", "b"}, {"base64", "Yg=="}},
                            {{"path", "c"}, {"base64", "Yw=="}, {"size", -1}}}},
                 {"skippedFiles", {{{"path", "big"}, {"reason", "too large"}}, {{"path", 1}, {"reason", "x"}}}},
                 {"valueTruncated", true}};
  json r = buildResult(exitedWith(0, report));
  CHECK(r["valueRepr"].is_null());
  CHECK(r["displays"] == json{{{"text/plain", "a"}}, {{"application/json", {1, 2}}}});
  CHECK(r["files"] == json{{{"path", "a"}, {"base64", "YQ=="}, {"size", 1u}}});
  CHECK(r["skippedFiles"] == json{{{"path", "big"}, {"reason", "too large"}}});
  CHECK(r["valueTruncated"] == true);
}

TEST_CASE("result: the value's warnings are taken when well-formed, and not beside a truncated value", "[result]") {
  json report = {{"status", "ok"},
                 {"value", {1, "<object>"}},
                 {"valueRepr", "[1, <object>]"},
                 {"valueWarnings", {{{"path", "$[1]"}, {"reason", "object: no JSON form, replaced by its repr"}},
                                    {{"path", 1}, {"reason", "x"}},
                                    {{"path", "$"}, {"reason", "x"}, {"more", 1}}}}};
  json r = buildResult(exitedWith(0, report));
  CHECK(r["value"] == json({1, "<object>"}));
  CHECK(r["valueWarnings"] == json{{{"path", "$[1]"}, {"reason", "object: no JSON form, replaced by its repr"}}});
  report["valueWarnings"] = {{{"path", 1}}};
  CHECK_FALSE(buildResult(exitedWith(0, report)).contains("valueWarnings"));
  report["valueWarnings"] = {{{"path", "$[1]"}, {"reason", "r"}}};
  report["valueTruncated"] = true;
  CHECK_FALSE(buildResult(exitedWith(0, report)).contains("valueWarnings"));
}

TEST_CASE("result: a run in a session", "[result]") {
  RunOutcome o = exitedWith(0, {{"status", "timeout"}, {"error", {{"type", "Timeout"}, {"traceback", {"here"}}, {"line", 3}}}});
  o.inSession = true;
  o.sessionId = "s1";
  o.sessionAlive = true;
  o.stopReason = StopReason::Timeout;
  json r = buildResult(o);
  CHECK(r["status"] == "timeout");
  CHECK(r["session"] == json{{"id", "s1"}, {"alive", true}});
  CHECK(r["error"]["message"] == "the run exceeded its time limit (5000 ms wall, 2000 ms CPU); the session's state was kept");
  CHECK(r["error"]["traceback"] == json{"here"});  // where the interrupted run was
  CHECK(r["error"]["line"] == 3);
  // The session's CPU limit, reported by its interpreter, which lives on.
  o.stopReason = StopReason::None;
  CHECK(decideStatus(o) == "timeout");
  o.inSession = false;
  CHECK(decideStatus(o) == "ok");  // outside a session the report cannot claim a timeout
  RunOutcome ended = killedBySignal(SIGKILL, 5);
  ended.inSession = true;
  ended.sessionId = "s1";
  ended.sessionAlive = false;
  ended.stopReason = StopReason::Killed;
  json e = buildResult(ended);
  CHECK(e["session"] == json{{"id", "s1"}, {"alive", false}});
  CHECK(e["error"]["message"] == "the run was killed on request; the session ended with it");
}

TEST_CASE("result: samples add averages to the kernel's usage", "[result]") {
  RunOutcome o = exitedWith(0, kOkReport);
  o.wallMs = 100;
  o.usage.cpuUserMs = 40;
  o.usage.cpuSysMs = 10;
  o.samples = {{{"tMs", 0}, {"cpuMs", 0}, {"rssBytes", 100}}, {{"tMs", 50}, {"cpuMs", 25}, {"rssBytes", 300}}};
  json r = buildResult(o);
  CHECK(r["samples"].size() == 2);
  CHECK(r["usage"]["avgMemoryBytes"] == 200);
  CHECK(r["usage"]["peakSampledMemoryBytes"] == 300);
  CHECK(r["usage"]["avgCpuPercent"] == Approx(50.0));
  CHECK(r["usage"]["peakMemoryBytes"] == 30u << 20);  // the kernel's, not the samples'
}

TEST_CASE("result: kernel usage prefers the cgroup's peak over the largest resident set", "[result]") {
  rusage ru{};
  ru.ru_utime = {.tv_sec = 1, .tv_usec = 250'000};
  ru.ru_stime = {.tv_sec = 0, .tv_usec = 5'999};
  ru.ru_maxrss = 2048;  // KiB
  auto k = pycell::exec::kernelUsage(ru, {.peakMemoryBytes = 0, .oomKills = 0});
  CHECK(k.cpuUserMs == 1250);
  CHECK(k.cpuSysMs == 5);
  CHECK(k.peakMemoryBytes == 2048u * 1024);
  auto c = pycell::exec::kernelUsage(ru, {.peakMemoryBytes = 7u << 20, .oomKills = 1});
  CHECK(c.peakMemoryBytes == 7u << 20);
  CHECK(c.oomKills == 1);
}

TEST_CASE("result: kernel usage takes the cgroup's CPU (every process of the run) over wait4's", "[result]") {
  rusage ru{};
  ru.ru_utime = {.tv_sec = 0, .tv_usec = 400'000};  // the init and what it waited for
  auto k = pycell::exec::kernelUsage(ru, {.cpu = pycell::sandbox::CgroupCpu{.userUs = 1'800'999, .sysUs = 20'500}});
  CHECK(k.cpuUserMs == 1800);
  CHECK(k.cpuSysMs == 20);
}

TEST_CASE("result: the whole run's CPU limit (its cgroup) is timeout, with a message that names it", "[result]") {
  RunOutcome o = killedBySignal(SIGKILL, 2100, kOkReport);
  o.stopReason = StopReason::CpuLimit;
  json r = buildResult(o);
  CHECK(r["status"] == "timeout");
  CHECK(r["value"].is_null());
  CHECK(r["error"]["type"] == "Timeout");
  CHECK(r["error"]["message"] == "the run exceeded its CPU limit (2000 ms CPU, all of its processes together)");
}

TEST_CASE("result: the activity summary comes from the events the server took", "[result]") {
  RunOutcome o = exitedWith(0, kOkReport);
  o.activity = true;
  o.events = {{{"t", 0.1}, {"kind", "import"}, {"module", "json"}},
              {{"t", 0.2}, {"kind", "import"}, {"module", "json"}},
              {{"t", 0.3}, {"kind", "file"}, {"path", "a"}, {"mode", "r"}, {"allowed", true}},
              {{"t", 0.4}, {"kind", "network"}, {"operation", "connect"}, {"address", "127.0.0.1:9"}, {"allowed", false}},
              {{"t", 0.5}, {"kind", "process"}, {"operation", "os.system"}, {"detail", "ls"}},
              {{"t", 0.6}, {"kind", "blocked"}, {"what", "import"}, {"detail", "socket"}},
              {{"t", 0.7}, {"kind", "exception"}, {"type", "ValueError"}, {"message", "x"}},
              {{"t", 0.8}, {"kind", "truncated"}},
              {{"t", 0.9}, {"kind", "unknown"}}};
  json a = buildResult(o)["activity"];
  CHECK(a["imports"] == json{"json"});
  CHECK(a["files"] == json{{{"path", "a"}, {"mode", "r"}, {"allowed", true}}});
  CHECK(a["network"] == json{{{"address", "127.0.0.1:9"}, {"operation", "connect"}, {"allowed", false}}});
  CHECK(a["processes"] == json{{{"operation", "os.system"}, {"detail", "ls"}}});
  CHECK(a["blocked"] == json{{{"what", "import"}, {"detail", "socket"}}});
  CHECK(a["exceptions"] == json{{{"type", "ValueError"}, {"message", "x"}}});
  CHECK(a["truncated"] == true);
  REQUIRE(a["events"].size() == 8);  // the unknown kind is left out of the timeline
  CHECK(a["events"][0] == json{{"t", 0.1}, {"kind", "import"}, {"module", "json"}});
  CHECK(buildResult(exitedWith(0, kOkReport)).contains("activity") == false);  // the profile did not ask
}

TEST_CASE("result: the answer when the result cannot be built", "[result]") {
  json r = pycell::exec::unbuildableResult("e9", 33, "out of memory");
  CHECK(r["status"] == "crashed");
  CHECK(r["error"]["message"] == "the server could not build this run's result: out of memory");
  CHECK(r["usage"]["wallMs"] == 33);
  CHECK(r["truncated"] == json{{"stdout", false}, {"stderr", false}});
}
