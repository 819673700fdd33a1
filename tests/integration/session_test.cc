// Sessions end to end (issue 5): state that persists between executions, isolation between
// sessions, interruption that keeps (or, when it must, loses) the state, limits, expiry.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

std::string createSession(ServerProcess& server, Json params = Json::object()) {
  Json created = server.callResult("session/create", std::move(params), kExecutionTimeout);
  INFO("session/create: " << brief(created));
  REQUIRE(created["session"].is_string());
  return created["session"].get<std::string>();
}

Json inSession(ServerProcess& server, const std::string& session, const std::string& code, Json extra = Json::object()) {
  extra["code"] = code;
  extra["session"] = session;
  return execute(server, extra);
}

Json sessionList(ServerProcess& server) { return server.callResult("status")["sessions"]; }

}  // namespace

TEST_CASE("a session keeps globals, imports and files between executions", "[session]") {
  auto framing = GENERATE(Framing::kNdjson, Framing::kLsp);
  auto server = startServer(framing);
  std::string s = createSession(*server);

  Json first = inSession(*server, s, "x = 1\nimport json\nopen('notes.txt', 'w').write('kept')\nx");
  INFO(brief(first));
  REQUIRE(first["status"] == "ok");
  CHECK(first["value"] == 1);
  CHECK(first["session"] == Json{{"id", s}, {"alive", true}});

  Json second = inSession(*server, s, "x += 1\nprint(json.dumps({'x': x}))\n(x, open('notes.txt').read())");
  INFO(brief(second));
  REQUIRE(second["status"] == "ok");
  CHECK(second["stdout"] == "{\"x\": 2}\n");
  CHECK(second["value"] == Json::array({2, "kept"}));

  // A function defined in one execution and failing in a later one: the traceback points
  // at the line where it was defined, in the execution that defined it.
  inSession(*server, s, "def f():\n    return 1 / 0\n");
  Json failed = inSession(*server, s, "y = 3\nf()");
  INFO(brief(failed));
  CHECK(failed["status"] == "error");
  CHECK(failed["error"]["type"] == "ZeroDivisionError");
  CHECK(failed["error"]["line"] == 2);
  CHECK(failed["session"]["alive"] == true);
  // An exception does not lose state; nor does SystemExit.
  CHECK(inSession(*server, s, "import sys\nsys.exit(3)")["exitCode"] == 3);
  CHECK(inSession(*server, s, "(x, y)")["value"] == Json::array({2, 3}));

  // A one-shot execution next to it sees none of it.
  Json oneShot = executeCode(*server, "'x' in globals()");
  CHECK(oneShot["value"] == false);
  CHECK_FALSE(oneShot.contains("session"));
}

TEST_CASE("sessions are isolated from each other", "[session]") {
  auto server = startServer(Framing::kNdjson);
  std::string a = createSession(*server);
  std::string b = createSession(*server, {{"session", "mine"}});
  CHECK(b == "mine");
  REQUIRE(inSession(*server, a, "secret = 42\nopen('a.txt', 'w').write('a')\nimport os\nos.getpid()")["status"] == "ok");
  Json other = inSession(*server, b, "import os\n('secret' in globals(), os.path.exists('a.txt'), sorted(os.listdir('.')))");
  INFO(brief(other));
  CHECK(other["value"] == Json::array({false, false, Json::array()}));
  // Each is PID 1 of its own pid namespace: neither can see the other's processes.
  Json pids = inSession(*server, b, "sorted(int(p) for p in os.listdir('/proc') if p.isdigit())");
  CHECK(pids["value"] == Json::array({1}));

  CHECK(server->call("session/create", {{"session", "mine"}})["error"]["code"] == -32602);
  Json list = sessionList(*server);
  INFO(brief(list));
  REQUIRE(list.size() == 2);
  std::set<std::string> ids;
  for (const auto& entry : list) {
    ids.insert(entry["session"].get<std::string>());
    CHECK(entry["state"] == "idle");
    CHECK(entry["profile"] == "default");
  }
  CHECK(ids == std::set<std::string>{a, b});
}

TEST_CASE("kill interrupts a session's run with KeyboardInterrupt and the state survives", "[session]") {
  auto server = startServer(Framing::kNdjson);
  std::string s = createSession(*server);
  REQUIRE(inSession(*server, s, "counter = 0")["status"] == "ok");
  int64_t id = server->request("execute", {{"code", "import time\nwhile True:\n    counter += 1\n    time.sleep(0.001)"},
                                           {"session", s},
                                           {"executionId", "spin"}});
  awaitRunning(*server, "spin");
  std::this_thread::sleep_for(100ms);
  Json killed = server->callResult("kill", {{"session", s}});
  CHECK(killed["killed"] == true);
  Json result = waitResult(*server, id);
  INFO(brief(result));
  CHECK(result["status"] == "killed");
  CHECK(result["session"]["alive"] == true);
  CHECK(result["error"]["type"] == "Killed");
  CHECK_THAT(result["error"]["message"].get<std::string>(), Catch::Contains("state was kept"));
  // The traceback shows where the program was, not the bootstrap's handler.
  CHECK_THAT(result["error"]["traceback"].dump(), Catch::Contains("<pycell-2>") && !Catch::Contains("bootstrap"));
  Json after = inSession(*server, s, "counter > 0");
  INFO(brief(after));
  CHECK(after["value"] == true);
  // Nothing running: kill says so.
  CHECK(server->callResult("kill", {{"session", s}})["killed"] == false);
}

TEST_CASE("a run that ignores KeyboardInterrupt is killed and its session ends", "[session]") {
  auto server = startServer(Framing::kNdjson);
  std::string s = createSession(*server);
  int64_t id = server->request("execute", {{"code", "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except KeyboardInterrupt:\n        pass"},
                                           {"session", s},
                                           {"executionId", "stubborn"},
                                           {"limits", {{"timeoutMs", 300}}}});
  Json result = waitResult(*server, id);
  INFO(brief(result));
  CHECK(result["status"] == "timeout");
  CHECK(result["session"]["alive"] == false);
  CHECK_THAT(result["error"]["message"].get<std::string>(), Catch::Contains("session ended"));
  Json gone = server->call("execute", {{"code", "1"}, {"session", s}});
  CHECK(gone["error"]["code"] == -32602);
  CHECK(sessionList(*server).empty());
  CHECK(server->callResult("session/close", {{"session", s}})["closed"] == false);
}

TEST_CASE("a run that ignores KeyboardInterrupt and forges \"stopped\" lines still ends its session", "[session]") {
  // The program reads its token from the bootstrap's frame and says "stopped" again and
  // again: the server extends the grace once, then ends the session.
  auto server = startKernelServer(Framing::kNdjson);
  std::string s = createSession(*server);
  int64_t id = server->request(
      "execute", {{"code", "import os, sys, time\n"
                           "g = sys._getframe(1).f_globals\n"
                           "while True:\n"
                           "    try:\n"
                           "        os.write(g['_RESULT_FD'], g['_line_head'] + b'\"stopped\":true}\\n')\n"
                           "        time.sleep(0.2)\n"
                           "    except KeyboardInterrupt:\n"
                           "        pass"},
                  {"session", s},
                  {"executionId", "forger"},
                  {"limits", {{"timeoutMs", 300}}}});
  Json result = waitResult(*server, id);
  INFO(brief(result));
  CHECK(result["status"] == "timeout");
  CHECK(result["session"]["alive"] == false);
  CHECK(sessionList(*server).empty());
}

TEST_CASE("a session's runs queue in order and each gets its own output", "[session]") {
  auto server = startServer(Framing::kNdjson);
  std::string s = createSession(*server);
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(server->request("execute", {{"code", "import time\ntime.sleep(0.02)\nprint(" + std::to_string(i) + ")\nn = " + std::to_string(i)},
                                              {"session", s}}));
  for (int i = 0; i < 5; ++i) {
    Json r = waitResult(*server, ids[static_cast<size_t>(i)]);
    INFO(brief(r));
    CHECK(r["status"] == "ok");
    CHECK(r["stdout"] == std::to_string(i) + "\n");
  }
  CHECK(inSession(*server, s, "n")["value"] == 4);
  // stdin comes with each request.
  Json echo = inSession(*server, s, "input() + '/' + input()", {{"stdin", "a\nb\n"}});
  CHECK(echo["value"] == "a/b");
  CHECK(inSession(*server, s, "import sys\nsys.stdin.read()")["value"] == "");
}

TEST_CASE("a session's limits hold: CPU per run, memory, processes", "[session]") {
  auto server = startServer(Framing::kNdjson);
  std::string s = createSession(*server, {{"limits", {{"memoryMb", 128}}}});
  REQUIRE(inSession(*server, s, "kept = 'yes'")["status"] == "ok");

  // The CPU limit is per run: a spin ends with CPUTimeLimitExceeded, the session goes on.
  Json spin = inSession(*server, s, "while True:\n    pass", {{"limits", {{"cpuMs", 1000}, {"timeoutMs", 8000}}}});
  INFO(brief(spin));
  CHECK(spin["status"] == "timeout");
  CHECK(spin["session"]["alive"] == true);
  CHECK(inSession(*server, s, "kept")["value"] == "yes");

  // Memory: a MemoryError (RLIMIT_AS) or the cgroup's OOM kill, but never more than the limit.
  Json bomb = inSession(*server, s, "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))");
  INFO(brief(bomb));
  CHECK(bomb["status"] == "memory_limit");

  // Limits that belong to the sandbox cannot change per run.
  Json other = server->call("execute", {{"code", "1"}, {"session", s}, {"limits", {{"memoryMb", 64}}}});
  CHECK(other["error"]["code"] == -32602);
  Json wrongProfile = server->call("execute", {{"code", "1"}, {"session", s}, {"profile", "datascience"}});
  CHECK(wrongProfile["error"]["code"] == -32602);
}

TEST_CASE("session/close ends a busy session; its runs are answered", "[session]") {
  auto server = startServer(Framing::kNdjson);
  std::string s = createSession(*server);
  int64_t running = server->request("execute", {{"code", "import time\ntime.sleep(30)"}, {"session", s}, {"executionId", "sleeper"}});
  int64_t waiting = server->request("execute", {{"code", "1"}, {"session", s}});
  awaitRunning(*server, "sleeper");
  CHECK(server->callResult("session/close", {{"session", s}})["closed"] == true);
  Json r1 = waitResult(*server, running);
  INFO(brief(r1));
  CHECK(r1["status"] == "killed");
  CHECK(r1["session"]["alive"] == false);
  Json r2 = waitResult(*server, waiting);
  CHECK(r2["status"] == "killed");
  CHECK(sessionList(*server).empty());
  // The server is fine afterwards.
  CHECK(executeCode(*server, "1 + 1")["value"] == 2);
}

TEST_CASE("idle sessions expire", "[session]") {
  TempFile config("session-config.json", R"({"profiles": {"default": {"sessionIdleMs": 1000}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  std::string s = createSession(*server);
  REQUIRE(inSession(*server, s, "x = 1")["status"] == "ok");
  std::this_thread::sleep_for(600ms);
  REQUIRE(inSession(*server, s, "x")["value"] == 1);  // a run resets the clock
  std::this_thread::sleep_for(600ms);
  CHECK(sessionList(*server).size() == 1);
  Stopwatch watch;
  while (!sessionList(*server).empty() && watch.elapsed() < 5s) std::this_thread::sleep_for(100ms);
  CHECK(sessionList(*server).empty());
  CHECK(server->call("execute", {{"code", "x"}, {"session", s}})["error"]["code"] == -32602);
}

TEST_CASE("session requests are checked", "[session]") {
  auto server = startServer(Framing::kNdjson);
  CHECK(server->call("session/create", {{"profile", "nope"}})["error"]["code"] == -32602);
  CHECK(server->call("session/create", {{"limits", {{"memoryMb", "lots"}}}})["error"]["code"] == -32602);
  CHECK(server->call("session/create", {{"colour", "blue"}})["error"]["code"] == -32602);
  CHECK(server->call("session/create", {{"network", true}})["error"]["code"] == -32602);
  CHECK(server->call("session/close", Json::object())["error"]["code"] == -32602);
  CHECK(server->call("execute", {{"code", "1"}, {"session", 7}})["error"]["code"] == -32602);
  CHECK(server->call("execute", {{"code", "1"}, {"session", "missing"}})["error"]["code"] == -32602);
  CHECK(server->call("kill", {{"session", "missing"}})["error"]["code"] == -32602);
  Json init = server->callResult("status");
  CHECK(init["sessions"] == Json::array());
}

TEST_CASE("the session limit is enforced and sessions die with the server", "[session]") {
  TempFile config("session-config.json", R"({"profiles": {"default": {"pool": {"size": 0}}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path(), "--max-sessions", "2"});
  std::string a = createSession(*server);  // no pool: sandboxes of their own
  std::string b = createSession(*server);
  CHECK(server->call("session/create")["error"]["code"] == -32001);
  for (const auto& entry : sessionList(*server)) CHECK(entry["pooled"] == false);
  REQUIRE(inSession(*server, a, "v = 'a'")["status"] == "ok");
  REQUIRE(inSession(*server, b, "v")["status"] == "error");
  CHECK(server->callResult("session/close", {{"session", b}})["closed"] == true);
  std::string c = createSession(*server);
  CHECK(inSession(*server, a, "v")["value"] == "a");
  // The server goes away with a session busy: the run is answered, nothing is left.
  int64_t id = server->request("execute", {{"code", "import time\ntime.sleep(30)"}, {"session", c}, {"executionId", "late"}});
  awaitRunning(*server, "late");
  server->closeStdin();
  auto result = server->waitResponse(id, 10s);
  REQUIRE(result);
  CHECK((*result)["result"]["status"] == "killed");
  CHECK(server->waitExit(10s) == 0);
}

// Regression: shutdown walked the open sessions while ending each one took it out of the
// same map (a use after free: the server sometimes died of SIGSEGV on its way out).
TEST_CASE("shutdown then exit with sessions open ends the server with exit code 0", "[session]") {
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    auto server = startServer(Framing::kNdjson);
    std::string a = createSession(*server);
    std::string b = createSession(*server);
    REQUIRE(inSession(*server, a, "1")["status"] == "ok");
    REQUIRE(inSession(*server, b, "2")["status"] == "ok");
    Json shutdown = server->call("shutdown");
    INFO("shutdown: " << brief(shutdown));
    CHECK(shutdown.contains("result"));
    server->notify("exit");
    CHECK(server->waitExit(10s) == 0);
  }
}
