// The zygote pool: warm interpreters fork pre-isolated children, one per execution.
#include <signal.h>

#include <catch2/catch.hpp>

#include <set>
#include <thread>

#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

Json run(ServerProcess& server, const std::string& code, const std::string& profile = "default") {
  Json result = execute(server, {{"code", code}, {"profile", profile}});
  INFO(brief(result));
  REQUIRE(result["status"] == "ok");
  return result;
}

}  // namespace

TEST_CASE("siblings forked from one zygote draw different random numbers", "[pool]") {
  auto server = startKernelServer(Framing::kNdjson, {}, Pools::All);
  awaitFullPool(*server, "datascience");
  std::set<double> numpyDraws, randomDraws;
  for (int i = 0; i < 4; ++i) {
    numpyDraws.insert(run(*server, "import numpy as np\nfloat(np.random.rand())", "datascience")["value"].get<double>());
    randomDraws.insert(run(*server, "import random\nrandom.random()")["value"].get<double>());
  }
  CHECK(numpyDraws.size() == 4);
  CHECK(randomDraws.size() == 4);
}

TEST_CASE("a preloaded module is already imported in the child, not imported again", "[pool]") {
  auto server = startKernelServer(Framing::kNdjson, {}, Pools::All);
  Json pool = awaitFullPool(*server, "datascience");
  INFO(brief(pool));
  if (pool["preloadFailed"].contains("pandas")) FAIL("pandas is not installed for the sandbox's python");
  Json result = run(*server,
                    "import sys, time\n"
                    "before = 'pandas' in sys.modules\n"
                    "t = time.perf_counter()\n"
                    "import pandas\n"
                    "[before, time.perf_counter() - t]",
                    "datascience");
  CHECK(result["value"][0] == true);
  CHECK(result["value"][1].get<double>() < 0.005);  // a dictionary lookup, not a 300 ms import
  // The stdlib profile preloads nothing of that.
  CHECK(run(*server, "import sys\n'pandas' in sys.modules")["value"] == false);
}

TEST_CASE("no state leaks from one execution to the next", "[pool]") {
  auto server = startKernelServer(Framing::kNdjson);
  run(*server,
      "import sys, os\n"
      "leaked_global = 42\n"
      "sys.modules['leak_marker'] = object()\n"
      "os.environ['LEAK'] = '1'\n"
      "open('left-behind.txt', 'w').write('x')\n"
      "open('/tmp/left-behind.txt', 'w').write('x')\n");
  Json result = run(*server,
                    "import sys, os\n"
                    "['leaked_global' in globals(), 'leak_marker' in sys.modules, 'LEAK' in os.environ,\n"
                    " os.path.exists('left-behind.txt'), os.path.exists('/tmp/left-behind.txt')]");
  CHECK(result["value"] == Json::array({false, false, false, false, false}));
}

TEST_CASE("killing the zygote mid-execution gives that execution a proper result and a new zygote", "[pool]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json before = awaitFullPool(*server, "default");
  int64_t id = server->request("execute", {{"code", "import time\ntime.sleep(30)"}, {"executionId", "victim"}});
  awaitRunning(*server, "victim");
  pid_t zygote = before["zygotePid"].get<pid_t>();
  REQUIRE(::kill(zygote, SIGKILL) == 0);  // a descendant of the server this test started

  Json result = waitResult(*server, id, 10000ms);
  INFO(brief(result));
  CHECK(result["status"] == "crashed");
  CHECK(result["error"]["message"].get<std::string>().find("zygote") != std::string::npos);

  Json after = awaitFullPool(*server, "default");
  CHECK(after["zygotePid"] != before["zygotePid"]);
  CHECK(after["zygoteStarts"].get<int>() == before["zygoteStarts"].get<int>() + 1);
  CHECK(run(*server, "6 * 7")["value"] == 42);
}

TEST_CASE("the pool refills after a burst, and every request of the burst is answered", "[pool]") {
  auto server = startKernelServer(Framing::kNdjson, {"--max-concurrent", "8"});
  awaitFullPool(*server, "default");
  std::vector<int64_t> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(server->request("execute", {{"code", "import os\nos.getpid()"}}));
  for (auto id : ids) {
    Json result = waitResult(*server, id);
    CHECK(result["status"] == "ok");
    CHECK(result["value"] == 1);  // each its own pid namespace
  }
  Json pool = awaitFullPool(*server, "default");
  CHECK(pool["forksServed"].get<int>() >= 14);
}

TEST_CASE("a claim that leaves half the pool ready refills after the delay, even while the execution runs", "[pool]") {
  TempFile config("refill", R"({"profiles": {"default": {"pool": {"size": 2, "refillDelayMs": 300}}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  Json before = awaitFullPool(*server, "default");
  int64_t id = server->request("execute", {{"code", "import time\ntime.sleep(3)\n'slept'"}});
  // Straight after the claim one child is still ready and none is starting: the refill waits.
  Json early = poolOf(*server, "default");
  INFO("early: " << brief(early));
  CHECK(before["claimed"] == 0);
  CHECK(early["ready"] == 1);
  CHECK(early["starting"] == 0);
  CHECK(early["claimed"] == 1);
  CHECK(early["forksServed"] == before["forksServed"]);
  // The delay, not the end of the 3 s execution, brings the pool back to full.
  Json full = awaitFullPool(*server, "default", 2500ms);
  CHECK(full["forksServed"].get<int>() == before["forksServed"].get<int>() + 1);
  CHECK(waitResult(*server, id)["value"] == "slept");
  // A second claim leaving half ready, whose child ends before the delay: refilled at its end.
  CHECK(run(*server, "'quick'")["value"] == "quick");
  Json after = awaitFullPool(*server, "default", 2500ms);
  CHECK(after["forksServed"].get<int>() == before["forksServed"].get<int>() + 2);
  // Both claimed children are released once the zygote has reported their exits.
  Json released = poolOf(*server, "default");
  for (Stopwatch clock; released["claimed"] != 0 && clock.elapsed() < 10s; released = poolOf(*server, "default"))
    std::this_thread::sleep_for(20ms);
  INFO("released: " << brief(released));
  CHECK(released["claimed"] == 0);
}

TEST_CASE("no program sees the page map a zygote shares with its children", "[pool]") {
  // The first child records the pages it wrote in a shared writable region; every child
  // unmaps it before it is ready, the recorder and the children that used its record alike.
  auto server = startKernelServer(Framing::kNdjson);
  awaitFullPool(*server, "default");
  for (int i = 0; i < 4; ++i) {
    Json shared = run(*server, "[l.strip() for l in open('/proc/self/maps') if l.split()[1][1:4] == 'w-s']")["value"];
    INFO("shared mappings in run " << i << ": " << brief(shared));
    CHECK(shared == Json::array());
  }
}

TEST_CASE("a zygote is recycled after its fork budget and the pool goes on serving", "[pool]") {
  TempFile config("recycle", R"({"profiles": {"default": {"pool": {"size": 1, "recycleAfter": 3}}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  for (int i = 0; i < 8; ++i) CHECK(run(*server, "1 + " + std::to_string(i))["value"] == 1 + i);
  Json pool = awaitFullPool(*server, "default");
  CHECK(pool["zygoteStarts"].get<int>() >= 3);
}

TEST_CASE("a profile with pool size 0 forks a fresh interpreter per execution", "[pool]") {
  TempFile config("nopool", R"({"profiles": {"plain": {"pool": {"size": 0}}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  Json status = server->callResult("status");
  for (const auto& pool : status["pools"]) CHECK(pool["profile"] != "plain");
  CHECK(run(*server, "import os\nos.getpid()", "plain")["value"] == 1);
}

TEST_CASE("a profile whose children cannot start answers its requests with the reason", "[pool]") {
  Json profiles = {{"profiles", {{"broken", {{"childWarmup", "raise RuntimeError('warm-up fails')"}, {"pool", {{"size", 1}}}}}}}};
  TempFile config("badwarmup", profiles.dump());
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  Json response = server->call("execute", {{"code", "1"}, {"profile", "broken"}}, 30000ms);
  INFO(brief(response));
  REQUIRE(response.contains("error"));
  CHECK(response["error"]["code"] == -32000);
  CHECK(response["error"]["data"]["reason"].get<std::string>().find("pool cannot start children") != std::string::npos);
  // The child's own words, in the answer and in the log.
  CHECK(response["error"]["data"]["reason"].get<std::string>().find("warm-up fails") != std::string::npos);
  CHECK(server->stderrText().find("warm-up fails") != std::string::npos);
  // Other profiles are unaffected.
  CHECK(execute(*server, {{"code", "2 + 2"}})["value"] == 4);
}

TEST_CASE("a zygote that cannot start: executions get the error after a back-off, never a wait without end",
          "[pool]") {
  // The zygote's own sandbox fails at its mounts (a bind source that does not exist), in the
  // server, before any zygote process runs; a runtime that refuses a step behaves alike.
  TempFile config("broken-zygote.json", R"({"profiles": {"broken": {"allowRead": ["/nonexistent-pycell-test-dir"]}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  Json answer = server->call("execute", {{"code", "1"}, {"profile", "broken"}}, Millis{20000});
  INFO(brief(answer));
  REQUIRE(answer.contains("error"));
  CHECK(answer["error"]["code"] == -32000);
  CHECK_THAT(answer["error"]["data"]["reason"].get<std::string>(),
             Catch::Contains("cannot start the zygote") && Catch::Contains("/nonexistent-pycell-test-dir"));
  // The other profiles go on.
  CHECK(executeCode(*server, "6 * 7")["value"] == 42);
}

TEST_CASE("a recycled cgroup reports each run's own usage: after a memory-limited run, the runs in the "
          "same cgroup are ok with their own peak and the profile's limit, and the next bomb is caught again",
          "[pool]") {
  // One ready child, refilled at the claim: the bomb runs in cgroup A while the next child is
  // forked into B; the run after the bomb takes B, and the child forked then gets A back,
  // recycled, for the run after that. The log says when a child went into a recycled cgroup.
  TempFile config("cgroup-reuse", R"({"profiles": {"default": {"pool": {"size": 1, "maxStarting": 1, "refillDelayMs": 0},
                                                  "limits": {"memoryMb": 192}}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path(), "--log-level", "debug"});
  Json isolation = server->initialize()["isolation"];
  INFO("isolation: " << brief(isolation));
  // 300 MiB written page by page under a 64 MiB limit (tighter than the profile's, on the claim).
  const std::string bomb = "x = bytearray(300 << 20)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\n";
  // 96 MiB: over the bomb's 64 MiB, under the profile's 192: the limit was put back.
  const std::string own = "x = bytearray(96 << 20)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\nlen(x)";
  for (int round = 0; round < 2; ++round) {
    awaitFullPool(*server, "default");
    Json bombed = execute(*server, {{"code", bomb}, {"limits", {{"memoryMb", 64}}}});
    // A cgroup's OOM kill, or without a memory cgroup RLIMIT_AS's MemoryError (per process,
    // and nothing to recycle): memory_limit either way.
    REQUIRE_STATUS(bombed, "memory_limit");
    if (isolation["memoryLimit"] != "cgroup") REQUIRE(isolation["memoryLimit"] == "per-process");
    for (int i = 0; i < 3; ++i) {
      awaitFullPool(*server, "default");
      Json result = execute(*server, {{"code", own}});
      REQUIRE_STATUS(result, "ok");
      CHECK(result["value"] == 96 << 20);
      if (isolation["memoryLimit"] != "cgroup") continue;
      // Its own peak: the 96 MiB and the interpreter, not the bomb's 64 MiB before it, nor a
      // leftover of another run on top.
      auto peak = result["usage"]["peakMemoryBytes"].get<int64_t>();
      CHECK(peak >= int64_t{96} << 20);
      CHECK(peak < int64_t{140} << 20);
    }
  }
  if (isolation["memoryLimit"] == "cgroup") {
    std::string log = server->stderrText();
    size_t recycled = 0;
    for (size_t at = log.find("in a recycled cgroup"); at != std::string::npos; at = log.find("in a recycled cgroup", at + 1))
      ++recycled;
    INFO(log);
    CHECK(recycled >= 4);  // every child after the first two
  } else {
    WARN("no memory cgroup here (cgroup: " << isolation["cgroup"] << "): nothing to recycle");
  }
}
