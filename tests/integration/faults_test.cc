// Faults from outside the protocol: a zygote, a sandboxed child or the pool's ready children
// SIGKILLed, the server told to stop by SIGTERM or SIGINT, its input cut in the middle of a
// frame, its client process dying or no longer reading, a working directory filled to the
// last byte. lifecycle_test.cc and
// pool_test.cc cover the quiet versions (EOF with nothing running, one execution when the
// zygote dies); here there is always work in flight. Each case ends with every request
// answered exactly once (unless the server is gone on purpose and says so), and, once the
// server has exited, none of the processes it started still running, no cgroup named after it
// and no new mount.
//
// Only processes that this test started, or descendants of the server it started, are ever
// signalled, each by pid.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "host_view.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

// A server under watch: its descendants are recorded while it runs, so that what it leaves
// behind can be told after it exited.
struct Watched {
  explicit Watched(Framing framing = Framing::kNdjson, const std::vector<std::string>& extra = {})
      : mountsBefore(pycellMounts()),
        server(startKernelServer(framing, extra)),
        tracker(std::make_unique<DescendantTracker>(server->pid(), 50ms)) {}

  ServerProcess& operator*() { return *server; }
  ServerProcess* operator->() { return server.get(); }

  std::set<std::string> mountsBefore;
  std::unique_ptr<ServerProcess> server;
  std::unique_ptr<DescendantTracker> tracker;
};

// Ends the server with EOF if it still runs (expecting exit code 0 then), and checks that it
// left nothing behind.
void requireNothingLeft(Watched& w) {
  if (!w->exited()) {
    w.tracker->sampleNow();
    w->closeStdin();
    auto code = w->waitExit(10000ms);
    INFO(w->describe());
    REQUIRE(code.has_value());
    CHECK(*code == 0);
  }
  w.tracker->stop();
  Leftovers left = awaitNothingLeft(*w.tracker, w.mountsBefore);
  std::cout << "faults: server " << w->pid() << " had " << w.tracker->seen().size()
            << " descendants; after it exited: " << left.processes.size() << " running, " << left.cgroups.size()
            << " cgroups, " << left.mounts.size() << " new mounts" << std::endl;
  INFO("server pid " << w->pid() << ", " << w.tracker->seen().size() << " descendants recorded; left behind: "
                     << left.describe());
  CHECK(left.empty());
}

// The answers (responses, not notifications) to request `id` received so far.
size_t answersTo(ServerProcess& server, const Json& id) {
  server.drain();
  size_t n = 0;
  for (const auto& m : server.messages())
    if (m.is_object() && !m.contains("method") && m.contains("id") && m["id"] == id) ++n;
  return n;
}

// Each request answered exactly once by now.
void checkAnsweredOnce(ServerProcess& server, const std::vector<int64_t>& ids) {
  for (auto id : ids) {
    INFO("request #" << id);
    CHECK(answersTo(server, id) == 1);
  }
}

bool isDescendant(pid_t pid, pid_t of) {
  for (const auto& p : descendants(of))
    if (p.pid == pid) return true;
  return false;
}

// The descendant of `root` whose process name is `comm` (set by the sandboxed code itself
// with prctl(PR_SET_NAME)), waiting up to `timeout` for it to appear.
std::optional<ProcStat> findByName(pid_t root, const std::string& comm, Millis timeout = 10000ms) {
  for (Stopwatch clock; clock.elapsed() < timeout; std::this_thread::sleep_for(20ms)) {
    for (const auto& p : descendants(root))
      if (p.comm == comm) return p;
  }
  return std::nullopt;
}

// Waits until every recorded process is gone (same pid and start time no longer running).
std::vector<ProcStat> awaitGone(const std::vector<ProcStat>& procs, Millis timeout = 5000ms) {
  std::vector<ProcStat> alive;
  for (Stopwatch clock;; std::this_thread::sleep_for(50ms)) {
    alive.clear();
    for (const auto& p : procs)
      if (stillRunning(p)) alive.push_back(p);
    if (alive.empty() || clock.elapsed() >= timeout) return alive;
  }
}

void requireHealthy(ServerProcess& server) {
  Json after = executeCode(server, "print('alive')", {{"timeoutMs", 5000}});
  INFO("after: " << brief(after) << "\nserver: " << server.describe());
  CHECK(after["status"] == "ok");
  CHECK(after["stdout"] == "alive\n");
}


const std::string kSleeper = "import time\nprint('started', flush=True)\ntime.sleep(30)";

// Each of `prefix`0..count-1 (streamed) has printed "started": it is running the program.
void awaitPrinted(ServerProcess& server, const std::string& prefix, int count, size_t from = 0) {
  for (int i = 0; i < count; ++i) {
    // The whole line: print() may write the text and its newline as two pieces.
    auto printed = awaitOutput(server, prefix + std::to_string(i), "started\n", from);
    INFO(server.describe());
    REQUIRE(printed.has_value());
  }
}
}  // namespace

TEST_CASE("SIGKILL of the zygote with executions running and queued: each is answered, its children die, the pool comes back",
          "[faults]") {
  Watched w;  // 4 executions run at once by default; more wait their turn
  Json before = awaitFullPool(*w);
  const pid_t zygote = before["zygotePid"].get<pid_t>();
  REQUIRE(isDescendant(zygote, w->pid()));

  std::vector<int64_t> running, queued;
  size_t from = w->messages().size();
  for (int i = 0; i < 4; ++i)
    running.push_back(w->request(
        "execute", {{"code", kSleeper}, {"executionId", "run-" + std::to_string(i)}, {"stream", true}}));
  for (int i = 0; i < 3; ++i)
    queued.push_back(w->request("execute", {{"code", "print('queued', " + std::to_string(i) + ")"},
                                            {"executionId", "queued-" + std::to_string(i)}}));
  // Running is not enough: each program must have printed before the kill, for the check
  // below that its output survives the zygote's death to mean anything.
  awaitPrinted(*w, "run-", 4, from);
  CHECK(w->callResult("status")["queued"] == 3);

  // The zygote, its running children and its ready ones, as they are before the kill.
  std::vector<ProcStat> zygoteTree = descendants(zygote);
  zygoteTree.push_back(*readStat(zygote));
  w.tracker->sampleNow();
  INFO("zygote " << zygote << " and its descendants:" << describeProcesses(zygoteTree));
  REQUIRE(zygoteTree.size() >= 5);  // itself and at least the four running children

  Stopwatch clock;
  REQUIRE(::kill(zygote, SIGKILL) == 0);

  for (auto id : running) {
    Json result = waitResult(*w, id, 15000ms);
    INFO(brief(result));
    CHECK(result["status"] == "crashed");
    CHECK(result["stdout"] == "started\n");
    CHECK(result["error"]["message"].get<std::string>().find("zygote") != std::string::npos);
  }
  for (size_t i = 0; i < queued.size(); ++i) {
    Json result = waitResult(*w, queued[i], 30000ms);
    INFO(brief(result));
    CHECK(result["status"] == "ok");
    CHECK(result["stdout"] == "queued " + std::to_string(i) + "\n");
  }
  std::cout << "faults: zygote SIGKILL with 4 running and 3 queued, all answered in " << clock.elapsed().count()
            << " ms" << std::endl;

  // Everything of the old zygote is gone while the server goes on.
  auto alive = awaitGone(zygoteTree);
  INFO("the old zygote's processes still running:" << describeProcesses(alive));
  CHECK(alive.empty());
  Json after = awaitFullPool(*w);
  CHECK(after["zygotePid"] != before["zygotePid"]);
  requireHealthy(*w);
  checkAnsweredOnce(*w, running);
  checkAnsweredOnce(*w, queued);
  requireNothingLeft(w);
}

TEST_CASE("SIGKILL of the sandboxed process of a running execution: it ends crashed, with its own children, and the others go on",
          "[faults]") {
  Watched w;
  awaitFullPool(*w);
  // The victim names itself (prctl PR_SET_NAME) and forks a child that names itself too, so
  // the test can find both among the server's descendants; then both sleep.
  const std::string victimCode =
      "import ctypes, os, time\n"
      "libc = ctypes.CDLL(None)\n"
      "libc.prctl(15, b'pycell-victim', 0, 0, 0)\n"
      "if os.fork() == 0:\n"
      "    libc.prctl(15, b'pycell-vchild', 0, 0, 0)\n"
      "    time.sleep(30)\n"
      "    os._exit(0)\n"
      "print('forked', flush=True)\n"
      "time.sleep(30)\n";
  int64_t victim = w->request("execute", {{"code", victimCode}, {"executionId", "victim"}});
  std::vector<int64_t> bystanders;
  for (int i = 0; i < 2; ++i)
    bystanders.push_back(w->request("execute", {{"code", "import time\ntime.sleep(1.5)\nprint('bystander', " +
                                                             std::to_string(i) + ")"},
                                                {"executionId", "bystander-" + std::to_string(i)}}));

  auto target = findByName(w->pid(), "pycell-victim");
  auto child = findByName(w->pid(), "pycell-vchild");
  INFO("server descendants:" << describeProcesses(descendants(w->pid())) << "\n" << w->describe());
  REQUIRE(target.has_value());
  REQUIRE(child.has_value());
  w.tracker->sampleNow();
  // Let it print before it dies: that output must survive in the answer.
  std::this_thread::sleep_for(300ms);
  REQUIRE(::kill(target->pid, SIGKILL) == 0);  // a descendant of the server this test started

  Json result = waitResult(*w, victim, 10000ms);
  INFO("victim: " << brief(result));
  CHECK(result["status"] == "crashed");
  CHECK((result["signal"] == 9 || result["signal"] == "SIGKILL"));
  CHECK(result["stdout"] == "forked\n");
  auto alive = awaitGone({*target, *child});
  INFO("still running:" << describeProcesses(alive));
  CHECK(alive.empty());

  for (size_t i = 0; i < bystanders.size(); ++i) {
    Json r = waitResult(*w, bystanders[i], 15000ms);
    INFO("bystander: " << brief(r));
    CHECK(r["status"] == "ok");
    CHECK(r["stdout"] == "bystander " + std::to_string(i) + "\n");
  }
  Json status = w->callResult("status");
  CHECK(status["running"] == 0);
  awaitFullPool(*w);
  requireHealthy(*w);
  checkAnsweredOnce(*w, {victim, bystanders[0], bystanders[1]});
  requireNothingLeft(w);
}

TEST_CASE("busy workers that meet the whole run's CPU limit are killed with the run, and the others go on",
          "[faults]") {
  Watched w;
  Json isolation = w->initialize()["isolation"];
  INFO("isolation: " << brief(isolation));
  // Two workers name themselves and spin; the parent only waits for them.
  const std::string burners =
      "import ctypes, os\n"
      "libc = ctypes.CDLL(None)\n"
      "pids = []\n"
      "for i in range(2):\n"
      "    pid = os.fork()\n"
      "    if pid == 0:\n"
      "        libc.prctl(15, b'pycell-burner', 0, 0, 0)\n"
      "        while True:\n"
      "            pass\n"
      "    pids.append(pid)\n"
      "print('forked', flush=True)\n"
      "[os.waitpid(pid, 0)[1] & 0x7f for pid in pids]\n";
  int64_t run = w->request("execute", {{"code", burners}, {"executionId", "burners"},
                                       {"limits", {{"cpuMs", 1000}, {"timeoutMs", 10000}}}});
  int64_t bystander = w->request("execute", {{"code", "import time\ntime.sleep(0.5)\nprint('bystander')"},
                                             {"executionId", "bystander"}});
  auto worker = findByName(w->pid(), "pycell-burner");
  INFO("server descendants:" << describeProcesses(descendants(w->pid())) << "\n" << w->describe());
  REQUIRE(worker.has_value());
  std::vector<ProcStat> workers;
  for (const auto& p : descendants(w->pid()))
    if (p.comm == "pycell-burner") workers.push_back(p);
  w.tracker->sampleNow();

  Json result = waitResult(*w, run, 15000ms);
  INFO("burners: " << brief(result));
  if (isolation["cpuLimit"] == "cgroup") {
    CHECK(result["status"] == "timeout");
    CHECK(result["error"]["message"].get<std::string>().find("CPU limit") != std::string::npos);
  } else {
    REQUIRE(isolation["cpuLimit"] == "per-process");
    WARN("no CPU cgroup here (cgroup: " << isolation["cgroup"]
         << "): each worker meets its own RLIMIT_CPU, and the run goes on (cpuLimit: per-process)");
    CHECK(result["status"] == "ok");
    REQUIRE(result["value"].size() == 2);
    for (const auto& signal : result["value"]) CHECK((signal == SIGKILL || signal == SIGXCPU));
  }
  auto alive = awaitGone(workers);
  INFO("still running:" << describeProcesses(alive));
  CHECK(alive.empty());

  Json other = waitResult(*w, bystander, 15000ms);
  INFO("bystander: " << brief(other));
  CHECK(other["status"] == "ok");
  CHECK(other["stdout"] == "bystander\n");
  requireHealthy(*w);
  checkAnsweredOnce(*w, {run, bystander});
  requireNothingLeft(w);
}

// A ready child killed from outside (the OOM killer, an administrator) may be handed out
// before the zygote has reported its death: the execution notices that the child never read
// its request, and claims another.
TEST_CASE("SIGKILL of the pool's ready children: the next executions run in live ones, none gets a dead child",
          "[faults]") {
  Watched w;
  Json pool = awaitFullPool(*w);
  const pid_t zygote = pool["zygotePid"].get<pid_t>();
  REQUIRE(isDescendant(zygote, w->pid()));
  std::vector<ProcStat> ready;
  for (const auto& p : descendants(zygote))
    if (p.ppid == zygote) ready.push_back(p);
  INFO("ready children:" << describeProcesses(ready));
  REQUIRE(ready.size() == pool["target"].get<size_t>());

  // Killed (descendants of our server), and the executions asked for at once, before the
  // zygote could report the deaths.
  for (const auto& p : ready) REQUIRE(::kill(p.pid, SIGKILL) == 0);
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(w->request("execute", {{"code", "print('after', " + std::to_string(i) + ")"}}));
  for (size_t i = 0; i < ids.size(); ++i) {
    Json result = waitResult(*w, ids[i]);
    INFO(brief(result));
    CHECK(result["status"] == "ok");
    CHECK(result["stdout"] == "after " + std::to_string(i) + "\n");
  }
  CHECK(awaitGone(ready).empty());
  awaitFullPool(*w);
  checkAnsweredOnce(*w, ids);
  requireNothingLeft(w);
}

TEST_CASE("SIGTERM or SIGINT stops the server: every execution in flight is answered killed, nothing is left",
          "[faults]") {
  const int sig = GENERATE(SIGTERM, SIGINT);
  INFO("signal " << sig);
  Watched w;
  const bool cgroups = w->initialize()["isolation"]["cgroup"] != "none";
  std::vector<int64_t> ids;
  for (int i = 0; i < 6; ++i)  // 4 running, 2 queued
    ids.push_back(w->request("execute", {{"code", kSleeper}, {"executionId", "e" + std::to_string(i)}, {"stream", true}}));
  // Each running program has printed (so its output in the answer below means something).
  awaitPrinted(*w, "e", 4);
  w.tracker->sampleNow();
  // Where the server uses cgroups, they are there now (so their absence later means something).
  if (cgroups) CHECK_FALSE(pycellCgroups(w->pid()).empty());

  Stopwatch clock;
  REQUIRE(::kill(w->pid(), sig) == 0);
  auto code = w->waitExit(10000ms);
  INFO(w->describe());
  REQUIRE(code.has_value());
  CHECK(*code == 128 + sig);
  std::cout << "faults: signal " << sig << " with 6 executions in flight: exit " << *code << " after "
            << clock.elapsed().count() << " ms" << std::endl;

  for (size_t i = 0; i < ids.size(); ++i) {
    auto response = w->waitResponse(ids[i], 0ms);
    INFO("execution e" << i);
    REQUIRE(response.has_value());
    INFO(brief(*response));
    REQUIRE(response->contains("result"));
    CHECK((*response)["result"]["status"] == "killed");
    if (i < 4) CHECK((*response)["result"]["stdout"] == "started\n");
  }
  checkAnsweredOnce(*w, ids);
  CHECK(w->malformedOutput().empty());
  requireNothingLeft(w);
}

TEST_CASE("stdin closed in the middle of a frame: the server answers what it had and exits 0, leaving nothing",
          "[faults]") {
  Framing framing = GENERATE(Framing::kNdjson, Framing::kLsp);
  INFO("framing: " << framingName(framing));
  Watched w(framing);
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i)  // 4 running, 1 queued
    ids.push_back(w->request("execute", {{"code", kSleeper}, {"executionId", "e" + std::to_string(i)}}));
  for (int i = 0; i < 4; ++i) awaitRunning(*w, "e" + std::to_string(i));
  w.tracker->sampleNow();

  // Half of an execute request, then EOF.
  std::string body = Json{{"jsonrpc", "2.0"}, {"id", "half"}, {"method", "execute"},
                          {"params", {{"code", "print('never')"}}}}.dump();
  std::string frame = framing == Framing::kLsp
                          ? "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body
                          : body + "\n";
  size_t cut = framing == Framing::kLsp ? frame.find("\r\n\r\n") + 4 + body.size() / 2 : body.size() / 2;
  w->sendRaw(frame.substr(0, cut));
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(w->exited());
  w->closeStdin();

  auto code = w->waitExit(10000ms);
  INFO(w->describe());
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto response = w->waitResponse(ids[i], 0ms);
    INFO("execution e" << i);
    REQUIRE(response.has_value());
    INFO(brief(*response));
    REQUIRE(response->contains("result"));
    CHECK((*response)["result"]["status"] == "killed");
  }
  checkAnsweredOnce(*w, ids);
  // The half request was never a request: it is not answered, and nothing unframed is written.
  CHECK(answersTo(*w, "half") == 0);
  CHECK(w->malformedOutput().empty());
  requireNothingLeft(w);
}

TEST_CASE("the client process named by --client-process-id dies mid-run: the server answers, exits and leaves nothing",
          "[faults]") {
  StandInClient client;
  Watched w(Framing::kNdjson, {"--client-process-id", std::to_string(client.pid())});
  std::vector<int64_t> ids;
  for (int i = 0; i < 6; ++i)  // 4 running, 2 queued
    ids.push_back(w->request("execute", {{"code", kSleeper}, {"executionId", "e" + std::to_string(i)}}));
  for (int i = 0; i < 4; ++i) awaitRunning(*w, "e" + std::to_string(i));
  w.tracker->sampleNow();

  Stopwatch clock;
  client.kill();
  auto code = w->waitExit(10000ms);
  INFO(w->describe());
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  std::cout << "faults: client process killed with 6 executions in flight: server exit " << *code << " after "
            << clock.elapsed().count() << " ms" << std::endl;
  // Nobody may be listening any more, but this client still is: each execution is answered.
  for (size_t i = 0; i < ids.size(); ++i) {
    auto response = w->waitResponse(ids[i], 0ms);
    INFO("execution e" << i);
    REQUIRE(response.has_value());
    INFO(brief(*response));
    CHECK((*response)["result"]["status"] == "killed");
  }
  checkAnsweredOnce(*w, ids);
  requireNothingLeft(w);
}

TEST_CASE("the client stops listening (closes its end of stdout) mid-run: the server exits and leaves nothing",
          "[faults]") {
  Watched w;
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i)  // streaming, so the server has something to write soon
    ids.push_back(w->request("execute", {{"code", "import time\nfor i in range(200):\n    print(i, flush=True)\n    time.sleep(0.05)"},
                                         {"stream", true},
                                         {"executionId", "e" + std::to_string(i)}}));
  for (int i = 0; i < 3; ++i) awaitRunning(*w, "e" + std::to_string(i));
  w.tracker->sampleNow();

  w->closeStdout();
  // Not reading any more, nor closing stdin: the failed write alone must end it.
  bool gone = false;
  for (Stopwatch clock; clock.elapsed() < 10000ms && !gone; std::this_thread::sleep_for(20ms)) gone = w->exited();
  INFO(w->describe());
  REQUIRE(gone);
  CHECK(w->waitExit(0ms) == 0);
  requireNothingLeft(w);
}

TEST_CASE("a working directory written until full: the run reports ENOSPC as its error, the others and the server go on",
          "[faults]") {
  Watched w;
  // Many files of 256 KiB, so the filesystem fills up (one big file would meet the per-file
  // size limit first, with EFBIG).
  const std::string fill =
      "import itertools\n"
      "print('filling', flush=True)\n"
      "chunk = b'x' * (256 << 10)\n"
      "for i in itertools.count():\n"
      "    with open('fill%d.bin' % i, 'wb') as f:\n"
      "        f.write(chunk)\n";
  Json limits = {{"diskMb", 4}, {"timeoutMs", 10000}};
  int64_t full = w->request("execute", {{"code", fill}, {"limits", limits}, {"executionId", "full"}});
  // Neighbours at the same time, and a neighbour that fills its own small disk the same way.
  std::vector<int64_t> others;
  for (int i = 0; i < 3; ++i)
    others.push_back(w->request("execute", {{"code", "import os\nopen('mine', 'w').write('%d' % " + std::to_string(i) +
                                                         ")\nprint(open('mine').read(), sorted(os.listdir('.')))"},
                                            {"executionId", "other-" + std::to_string(i)}}));
  int64_t full2 = w->request("execute", {{"code", fill}, {"limits", limits}, {"executionId", "full-2"}});

  for (int64_t id : {full, full2}) {
    Json result = waitResult(*w, id, 20000ms);
    INFO(brief(result));
    CHECK(result["status"] == "error");
    CHECK(result["stdout"] == "filling\n");
    REQUIRE(result["error"].is_object());
    CHECK(result["error"]["type"] == "OSError");
    CHECK(result["error"]["message"].get<std::string>().find("No space left on device") != std::string::npos);
    CHECK((result["error"]["line"] == 5 || result["error"]["line"] == 6));  // the write or the close
  }
  for (size_t i = 0; i < others.size(); ++i) {
    Json result = waitResult(*w, others[i], 20000ms);
    INFO(brief(result));
    CHECK(result["status"] == "ok");
    CHECK(result["stdout"] == std::to_string(i) + " ['mine']\n");
  }
  // The next run in the profile's own sandbox size has its whole disk back.
  Json after = executeCode(*w,
                           "import os\n"
                           "with open('big.bin', 'wb') as f:\n"
                           "    f.write(b'y' * (16 << 20))\n"
                           "[sorted(os.listdir('.')), os.path.getsize('big.bin') >> 20]");
  INFO(brief(after));
  CHECK(after["status"] == "ok");
  CHECK(after["value"] == Json::array({Json::array({"big.bin"}), 16}));
  checkAnsweredOnce(*w, {full, full2, others[0], others[1], others[2]});
  requireNothingLeft(w);
}
