// What a sandbox writes back is untrusted: a program that forges, floods or corrupts its
// result channel ends its own run (with the kernel's account of it), never the server, and
// other requests keep being answered meanwhile. Run as root and as nobody (tests.cmake).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "host_view.h"
#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;
using namespace std::chrono_literals;

namespace {

// Walks the frames up to the bootstrap's globals: the result descriptor and the current
// request's line head (with its token). A program can always find these; what the server
// accepts from them is the point of these tests.
const std::string kChannel = R"py(
import os, sys
def channel():
    f = sys._getframe()
    while f is not None:
        g = f.f_globals
        if '_line_head' in g and '_RESULT_FD' in g:
            return g['_RESULT_FD'], g['_line_head']
        f = f.f_back
    raise RuntimeError('no bootstrap frame')
def forge(rest):
    fd, head = channel()
    data = head + rest
    while data:
        data = data[os.write(fd, data):]
)py";

struct ProcFigures {
  int64_t cpuMs = 0;
  int64_t peakKb = 0;
};

// The server's own CPU time and peak memory, from /proc (the test runs as root, or as the
// server's user).
ProcFigures serverFigures(pid_t pid) {
  ProcFigures out;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    int64_t ticks = 0;
    for (int i = 0; i < 13 && fields >> field; ++i)
      if (i == 11 || i == 12) ticks += std::stoll(field);
    out.cpuMs = ticks * 1000 / ::sysconf(_SC_CLK_TCK);
  }
  out.peakKb = procStatusKb(pid, "VmHWM");
  return out;
}

// Round trips of `status` while `busy` is true: every one must be answered; returns the
// median latency.
Millis statusLatency(ServerProcess& server, const std::function<bool()>& busy, int atLeast = 5) {
  std::vector<Millis> times;
  Stopwatch total;
  for (int i = 0; busy() || i < atLeast; ++i) {
    INFO("still busy after " << total.elapsed().count() << " ms");
    REQUIRE(total.elapsed() < 120000ms);
    Stopwatch clock;
    auto id = server.request("status");
    auto response = server.waitResponse(id, 10000ms);
    REQUIRE(response.has_value());
    REQUIRE(response->contains("result"));
    times.push_back(clock.elapsed());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

TEST_CASE("an open() of a long non-ASCII path is reported, not fatal", "[security][channel]") {
  // The policy layer records the path (cut at 1000 bytes, once inside a character).
  const std::string code =
      "try:\n    open('/tmp/' + 'a'*994 + '\\u00e9'*10)\nexcept OSError:\n    pass\n"
      "try:\n    open('/tmp/' + 'b'*995 + '\\U0001F600'*10)\nexcept OSError:\n    pass\n'done'\n";
  for (bool policy : {true, false}) {
    auto server = policy ? startServer(Framing::kNdjson) : startKernelServer(Framing::kNdjson);
    Json result = executeCode(*server, code);
    INFO("policy layer " << policy << ": " << brief(result));
    CHECK(result["status"] == "ok");
    CHECK(result["value"] == "done");
    if (policy) {
      REQUIRE(result.contains("activity"));
      bool seen = false;
      for (const auto& f : result["activity"]["files"]) seen = seen || f["path"].get<std::string>().rfind("/tmp/aaa", 0) == 0;
      CHECK(seen);
    }
    requireHealthy(*server);
  }
}

TEST_CASE("a forged report cannot hide the run's CPU time or memory", "[security][channel]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json result = executeCode(*server, kChannel + R"py(
import time
block = bytearray(48 << 20)  # touched: the kernel counts it
for i in range(0, len(block), 4096):
    block[i] = 1
t = time.process_time()
while time.process_time() - t < 1.0:
    pass
forge(b'"status":"ok","exitCode":0,"usage":{"cpuUserMs":0,"cpuSysMs":0,"maxRssKb":0,"peakMemoryBytes":0},'
      b'"value":"forged","valueRepr":"\'forged\'","error":null,"displays":[],"files":[]}\n')
os._exit(0)
)py", {{"timeoutMs", 10000}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "ok");
  CHECK(result["value"] == "forged");  // a run may lie about its own value
  const Json& usage = result["usage"];
  CHECK(usage["cpuUserMs"].get<int64_t>() + usage["cpuSysMs"].get<int64_t>() >= 700);
  CHECK(usage["peakMemoryBytes"].get<int64_t>() >= (40 << 20));
  requireHealthy(*server);
}

TEST_CASE("a forged exit code in the report loses to the kernel's", "[security][channel]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json result = executeCode(*server, kChannel + R"py(
forge(b'"status":"ok","exitCode":0,"value":"forged","valueRepr":null,"error":null}\n')
os._exit(3)
)py");
  INFO("result: " << brief(result));
  CHECK(result["exitCode"] == 3);
  CHECK(result["status"] == "error");
  requireHealthy(*server);
}

TEST_CASE("forged valueWarnings are bounded and made well-formed", "[security][channel]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json result = executeCode(*server, kChannel + R"py(
import json
warnings = [{"path": "$[%d]" % i + "x" * 2000, "reason": "r" * 2000} for i in range(60)]  # within the member's cap
warnings[0] = {"path": 5, "reason": ["not", "a", "string"]}
warnings[1] = "not an object"
warnings[2] = {"path": "$.a", "reason": "ok", "extra": "x" * 1000}
forge(b'"status":"ok","exitCode":0,"value":[1],"valueRepr":"[1]","error":null,"displays":[],"files":[],'
      b'"valueWarnings":' + json.dumps(warnings).encode() + b'}\n')
os._exit(0)
)py");
  INFO("result: " << brief(result));
  CHECK(result["status"] == "ok");
  CHECK(result["value"] == Json::array({1}));
  REQUIRE(result["valueWarnings"].is_array());
  CHECK(result["valueWarnings"].size() == 58);  // the two malformed entries dropped
  CHECK(result["valueWarnings"][0] == Json{{"path", "$.a"}, {"reason", "ok"}});
  for (const auto& w : result["valueWarnings"]) {
    CHECK(w.size() == 2);
    CHECK(w["path"].get<std::string>().size() <= 512);
    CHECK(w["reason"].get<std::string>().size() <= 256);
  }
  // More entries than the count allows, and a member past its size cap.
  for (const char* count : {"300", "2000"}) {
    Json many = executeCode(*server, kChannel + std::string(R"py(
import json
n = )py") + count + R"py(
warnings = [{"path": "$[%d]" % i, "reason": "r" * (5000 if n > 1000 else 10)} for i in range(n)]
forge(b'"status":"ok","exitCode":0,"value":[1],"valueRepr":"[1]","error":null,"displays":[],"files":[],'
      b'"valueWarnings":' + json.dumps(warnings).encode() + b'}\n')
os._exit(0)
)py");
    INFO("result: " << brief(many));
    CHECK(many["status"] == "ok");
    CHECK(many["value"] == Json::array({1}));
    if (std::string(count) == "300") CHECK(many["valueWarnings"].size() == 100);
    else CHECK_FALSE(many.contains("valueWarnings"));  // over the member's cap: dropped unparsed
  }
  requireHealthy(*server);
}

TEST_CASE("deep, huge and broken reports end as their own run's result while others are answered",
          "[security][channel]") {
  // Kernel layer only (the channel helper imports ctypes), and room for a slow machine: the
  // flood cases move 60-70 MB through the sandbox's pipe, which took over 10 s on a
  // heavily loaded 2-CPU machine; what is checked is how the run ends, not how fast.
  TempFile config("huge-reports.json", R"({"profiles": {
      "default": {"imports": null, "builtins": {"remove": []}, "limits": {"timeoutMs": 120000}},
      "datascience": {"pool": {"size": 0}}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  struct Case {
    const char* name;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"1,000,000 deep", "forge(b'\"status\":\"ok\",\"value\":' + b'[' * 1000000 + b']' * 1000000 + b'}\\n')\n"},
      {"100,000 deep", "forge(b'\"status\":\"ok\",\"value\":' + b'[' * 100000 + b']' * 100000 + b'}\\n')\n"},
      {"60 MB value", "forge(b'\"status\":\"ok\",\"value\":\"' + b'x' * (60 << 20) + b'\"}\\n')\n"},
      {"invalid UTF-8", "forge(b'\"status\":\"ok\",\"value\":\"\\xff\\xfe\",\"error\":null}\\n')\n"},
      {"60 MB line without its end", "fd, head = channel()\nos.write(fd, head + b'\"status\":\"ok\",\"value\":\"' + b'y' * (60 << 20))\n"},
      {"70 MB of lines without the token", "fd, head = channel()\nfor _ in range(70):\n    os.write(fd, b'{\"status\":\"ok\",\"value\":\"z' + b'z' * (1 << 20) + b'\"}\\n')\n"},
  };
  ProcFigures before = serverFigures(server->pid());
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      auto id = server->request("execute", {{"executionId", std::string("forged-") + c.name},
                                            {"code", kChannel + c.code + "print('wrote')\n"},
                                            {"limits", {{"timeoutMs", 120000}, {"memoryMb", 512}}}});
      // Meanwhile: another execution, and status round trips, answered as usual.
      Json other = executeCode(*server, "print('other')", {{"timeoutMs", 60000}}, 120000ms);
      CHECK(other["status"] == "ok");
      bool done = false;
      Millis median = statusLatency(*server, [&] {
        if (!done) done = server->waitResponse(id, 0ms).has_value();
        return !done;
      });
      CHECK(median < scaled(100ms));
      Json result = waitResult(*server, id, 150000ms);
      INFO(c.name << ": " << brief(result));
      CHECK(result["stdout"] == "wrote\n");
      CHECK((result["status"] == "ok" || result["status"] == "error"));
      CHECK(result["value"] != "forged");
      if (result["value"].is_string()) CHECK(result["value"].get<std::string>().size() < (1u << 20));
      CHECK(result["usage"]["wallMs"].get<int64_t>() >= 0);
      CHECK(result.dump().size() < (2u << 20));
      requireHealthy(*server);
    }
  }
  ProcFigures after = serverFigures(server->pid());
  INFO("server CPU " << before.cpuMs << " -> " << after.cpuMs << " ms, peak " << before.peakKb << " -> " << after.peakKb << " KiB");
  // The server keeps at most one bounded line of a run (64 MiB) and parses no member over its cap.
  CHECK(after.peakKb - before.peakKb < 200 * 1024);
}

TEST_CASE("in a session, a forged result line is the forging run's, never a later run's", "[security][channel]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json created = server->callResult("session/create", {{"session", "forger"}});
  REQUIRE(created["session"] == "forger");
  auto run = [&](const std::string& code) {
    return execute(*server, {{"session", "forger"}, {"code", code}, {"limits", {{"timeoutMs", 10000}}}});
  };
  Json first = run(kChannel + R"py(
forge(b'"status":"ok","exitCode":0,"value":"FORGED","valueRepr":null,"error":null}\n')
'REAL-1'
)py");
  Json second = run("'REAL-2'");
  Json third = run("'REAL-3'");
  INFO(brief(first) << "\n" << brief(second) << "\n" << brief(third));
  CHECK(first["value"] == "FORGED");  // its own lie
  CHECK(second["value"] == "REAL-2");
  CHECK(third["value"] == "REAL-3");
  CHECK(third["session"]["alive"] == true);
}

TEST_CASE("a session's thread flooding its channels between runs costs the server a bounded amount",
          "[security][channel]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json created = server->callResult("session/create", {{"session", "flood"}});
  REQUIRE(created["session"] == "flood");
  ProcFigures before = serverFigures(server->pid());
  Json first = execute(*server, {{"session", "flood"},
                                 {"code", kChannel + R"py(
import threading, time
fd, head = channel()
main = threading.main_thread()
def between_runs():
    # The run is over once the bootstrap's main thread waits for the next request.
    while True:
        frame = sys._current_frames().get(main.ident)
        if frame is not None and frame.f_code.co_name == 'next' and frame.f_back is not None \
                and frame.f_back.f_code.co_name == '_session':
            return
        time.sleep(0.002)
def flood():
    between_runs()
    line = head + b'"status":"ok","value":"' + b'f' * (8 << 20) + b'"}\n'
    for _ in range(8):
        os.write(fd, line)
        os.write(1, b'o' * (8 << 20))
threading.Thread(target=flood, daemon=True).start()
'started'
)py"},
                                 {"limits", {{"timeoutMs", 10000}}}});
  CHECK(first["value"] == "started");
  // The server ends the session once the flood passes its bound; status answers meanwhile.
  bool ended = false;
  Millis median = statusLatency(*server, [&] {
    Json sessions = server->callResult("status", Json::object())["sessions"];
    ended = sessions.is_array() && std::none_of(sessions.begin(), sessions.end(), [](const Json& s) {
      return s["session"] == "flood" && s["state"] != "closing";
    });
    return !ended;
  });
  CHECK(median < scaled(100ms));
  CHECK(ended);
  ProcFigures after = serverFigures(server->pid());
  INFO("server CPU " << before.cpuMs << " -> " << after.cpuMs << " ms, peak " << before.peakKb << " -> " << after.peakKb << " KiB");
  CHECK(after.cpuMs - before.cpuMs < 3000);
  CHECK(after.peakKb - before.peakKb < 64 * 1024);
  auto id = server->request("execute", {{"session", "flood"}, {"code", "1"}});
  auto response = server->waitResponse(id, 10000ms);
  REQUIRE(response.has_value());
  CHECK(response->contains("error"));  // the session is gone
  requireHealthy(*server);
}
