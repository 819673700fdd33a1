// Hostile code against the process tree: fork and thread bombs, daemons that detach and
// disguise themselves, kill(-1) and signals to sibling executions, os.abort. Each case runs
// the code through the real server and checks, from the host, that nothing of the run
// outlives it (by its pid namespace, not its name) and that the server still answers.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "hostile_support.h"
#include "host_view.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// ---- bombs ----------------------------------------------------------------------------------

TEST_CASE("a thread bomb ends contained and the server stays healthy", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json result = executeCode(*server,
      "import threading, time\n"
      "n = 0\n"
      "err = None\n"
      "try:\n"
      "    while True:\n"
      "        threading.Thread(target=time.sleep, args=(10,), daemon=True).start()\n"
      "        n += 1\n"
      "except Exception as e:\n"
      "    err = type(e).__name__\n"
      "{'threads': n, 'error': err}",
      {{"timeoutMs", 3000}, {"maxProcesses", 32}, {"memoryMb", 256}});
  INFO("result: " << brief(result));
  CHECK(clock.elapsed() < 12000ms);
  if (result["status"] == "ok") {
    CHECK(result["value"]["threads"].get<int>() <= 32);
    CHECK(result["value"]["error"] == "RuntimeError");
  } else {
    CHECK((result["status"] == "error" || result["status"] == "crashed" ||
           result["status"] == "timeout" || result["status"] == "memory_limit"));
  }
  requireHealthy(*server);
}

TEST_CASE("an exponential fork bomb that ignores signals leaves no process of its sandbox",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  // A bounded probe first: where the process limit is not enforced, the bomb below would
  // take the machine rather than fail.
  Json forked = requireValue(*server, R"py(
import os, time
children = []
for i in range(64):
    try:
        child = os.fork()
    except OSError:
        break
    if child == 0:
        time.sleep(5)
        os._exit(0)
    children.append(child)
for child in children:
    os.kill(child, 9)
    os.waitpid(child, 0)
len(children)
)py", {{"maxProcesses", 8}, {"timeoutMs", 5000}});
  REQUIRE(forked < 8);

  // Every process forks, in a new session, ignoring the signals a polite teardown sends.
  int64_t id = 0;
  Stopwatch clock;
  const auto sandbox = startAndReadNamespace(*server, {{"executionId", "bomb"}, {"code", R"py(
import os, signal
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
print('NS=' + os.readlink('/proc/self/ns/pid'), flush=True)
while True:
    try:
        if os.fork() == 0:
            try:
                os.setsid()
            except OSError:
                pass
    except OSError:
        pass
)py"}, {"limits", {{"timeoutMs", 2000}, {"maxProcesses", 32}, {"memoryMb", 256}}}}, id);
  const std::string& ns = sandbox.ns;
  INFO("namespace " << ns);
  CHECK(!pidsInNamespace(ns).empty());  // the scan below does see the sandbox's processes
  Json result = waitResult(*server, id);
  INFO("result: " << brief(result));
  CHECK(result["status"] == "timeout");
  CHECK(clock.elapsed() < 15000ms);
  auto left = awaitNamespaceEmpty(ns, 5000ms);
  INFO("left in the bomb's pid namespace:" << pidList(left));
  CHECK(left.empty());
  requireHealthy(*server);
}

// ---- daemons and sessions -------------------------------------------------------------------

TEST_CASE("kill(-1), setsid and setpgid games do not hurt the server or outlive the run",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json killed = executeCode(*server, "import os\nos.kill(-1, 9)\nprint('after')",
                            {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("kill(-1): " << brief(killed));
  CHECK(killed.contains("status"));
  requireHealthy(*server);

  // A daemon that detaches (double fork, setsid, its own process group) and then sleeps: it
  // must end with the execution, whatever its session.
  const std::string marker = "987.654";
  Json daemon = executeCode(*server,
      "import os\n"
      "out = {}\n"
      "try:\n"
      "    os.setpgid(0, 0)\n"
      "    out['setpgid'] = 'ok'\n"
      "except OSError as e:\n"
      "    out['setpgid'] = e.errno\n"
      "try:\n"
      "    os.setsid()\n"
      "    out['setsid'] = 'ok'\n"
      "except OSError as e:\n"
      "    out['setsid'] = e.errno\n"
      "if os.fork() == 0:\n"
      "    os.setsid()\n"
      "    if os.fork() == 0:\n"
      "        os.setpgid(0, 0)\n"
      "        os.execv('/usr/bin/sleep', ['sleep', '" + marker + "'])\n"
      "    os._exit(0)\n"
      "import time\n"
      "time.sleep(0.3)\n"
      "out",
      {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("daemon: " << brief(daemon));
  CHECK(daemon["status"] == "ok");

  std::vector<std::string> survivors;
  for (Stopwatch wait; wait.elapsed() < 5000ms; std::this_thread::sleep_for(100ms)) {
    survivors.clear();
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
      std::ifstream in(entry.path() / "cmdline");
      std::string cmd((std::istreambuf_iterator<char>(in)), {});
      if (cmd.find(marker) != std::string::npos && cmd.find("sleep") != std::string::npos)
        survivors.push_back(entry.path().filename().string());
    }
    if (survivors.empty()) break;
  }
  INFO("surviving sleep pids: " << survivors.size());
  CHECK(survivors.empty());
  requireHealthy(*server);
}

TEST_CASE("a disguised double-forked daemon does not outlive its run", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  // The daemon renames itself, detaches from every pipe and session and ignores the usual
  // signals; it is found from outside by its pid namespace, not by its name.
  int64_t id = 0;
  const auto sandbox = startAndReadNamespace(*server, {{"executionId", "daemon"}, {"code", R"py(
import ctypes, os, signal, time
print('NS=' + os.readlink('/proc/self/ns/pid'), flush=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)
        ctypes.CDLL(None).prctl(15, b'kworker/0:1', 0, 0, 0)
        os.setpgid(0, 0)
        fd = os.open('/dev/null', os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(fd, target)
        time.sleep(600)
        os._exit(0)
    os._exit(0)
time.sleep(1)
'parent done'
)py"}, {"limits", {{"timeoutMs", 5000}, {"maxProcesses", 8}}}}, id);
  const std::string& ns = sandbox.ns;
  INFO("namespace " << ns);
  std::vector<pid_t> during;
  for (Stopwatch wait; wait.elapsed() < 2000ms && during.size() < 2; std::this_thread::sleep_for(20ms))
    during = pidsInNamespace(ns);
  INFO("during the run:" << pidList(during));
  CHECK(during.size() >= 2);  // the program and its daemon, seen from outside
  Json result = waitResult(*server, id);
  INFO("result: " << brief(result));
  CHECK(result["status"] == "ok");
  CHECK(result["value"] == "parent done");
  auto left = awaitNamespaceEmpty(ns, 5000ms);
  INFO("left in the run's pid namespace:" << pidList(left));
  CHECK(left.empty());
  requireHealthy(*server);
}

// ---- signals --------------------------------------------------------------------------------

TEST_CASE("an execution cannot signal a sibling execution running at the same time",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson, {"--max-concurrent", "4"});
  const int64_t victim = server->request(
      "execute", {{"executionId", "victim"},
                  {"code", "import time\nprint('started', flush=True)\ntime.sleep(3)\nprint('survived')"},
                  {"limits", {{"timeoutMs", 10000}}}});
  awaitRunning(*server, "victim");
  // Every process of the server on the host, the victim's among them, by host pid, plus every
  // small pid of the attacker's own namespace.
  std::string hostPidList;
  for (const auto& p : descendants(server->pid())) hostPidList += std::to_string(p.pid) + ",";
  Json attack = executeCode(*server, "HOST = [" + hostPidList + "]" + R"py(
import errno, os, signal
out = {'delivered': [], 'errors': {}}
def record(e):
    key = errno.errorcode.get(e.errno, str(e.errno))
    out['errors'][key] = out['errors'].get(key, 0) + 1
for pid in HOST + list(range(2, 4096)):
    if pid == os.getpid():
        continue
    try:
        os.kill(pid, signal.SIGKILL)
        out['delivered'].append(pid)
    except OSError as e:
        record(e)
try:
    os.kill(-1, signal.SIGKILL)
    out['kill_all'] = 'ok'
except OSError as e:
    out['kill_all'] = errno.errorcode.get(e.errno, str(e.errno))
out['host_pids'] = len(HOST)
out
)py", {{"timeoutMs", 8000}});
  INFO("attacker: " << brief(attack));
  REQUIRE(attack["status"] == "ok");
  CHECK(attack["value"]["host_pids"].get<int>() >= 2);  // at least the victim and a zygote
  CHECK(attack["value"]["delivered"].empty());
  CHECK(attack["value"]["errors"].size() == 1);
  CHECK(attack["value"]["errors"].contains("ESRCH"));
  CHECK(attack["value"]["kill_all"] == "ESRCH");
  // The attack happened while the victim ran.
  CHECK(server->callResult("status", {{"executionId", "victim"}})["state"] == "running");
  Json victimResult = waitResult(*server, victim);
  INFO("victim: " << brief(victimResult));
  CHECK(victimResult["status"] == "ok");
  CHECK(victimResult["stdout"] == "started\nsurvived\n");
  requireHealthy(*server);
}

// ---- channels between runs ---------------------------------------------------------------

TEST_CASE("two runs at the same time cannot reach each other through AF_UNIX sockets, SysV IPC, "
          "POSIX shared memory or /proc",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson, {"--max-concurrent", "4"});
  // The holder makes one of each and waits for a caller: abstract stream and datagram sockets,
  // pathname sockets in /tmp and the work directory, a SysV shared memory segment, message
  // queue and semaphore set under a fixed key, a POSIX shared memory object.
  const int64_t holder = server->request("execute", {{"executionId", "holder"}, {"stream", true},
                                                     {"limits", {{"timeoutMs", 10000}}},
                                                     {"code", R"py(
import ctypes, os, select, socket
libc = ctypes.CDLL(None, use_errno=True)
KEY = 0x50594331
made = [libc.shmget(KEY, 4096, 0o1666), libc.msgget(KEY, 0o1666), libc.semget(KEY, 1, 0o1666)]
fd = os.open('/dev/shm/pycell-cross', os.O_CREAT | os.O_RDWR, 0o666)
os.write(fd, b'secret')
listening = []
for address in ('\0pycell-cross', '/tmp/pycell-cross.sock', '/sandbox/pycell-cross.sock'):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(address)
    s.listen()
    listening.append(s)
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d.bind('\0pycell-cross-dgram')
listening.append(d)
print('ready', made, flush=True)
while True:
    for s in select.select(listening, [], [], 1.0)[0]:
        print('CONNECTED', s.getsockname(), flush=True)
        if s.type == socket.SOCK_STREAM:
            s.accept()
        else:
            s.recv(64)
)py"}});
  auto ready = awaitOutput(*server, "holder", "ready ");
  INFO("server: " << server->describe());
  REQUIRE(ready);
  INFO("holder: " << brief(*ready));
  // Each of the holder's SysV ids is valid (not -1): they exist, in its own IPC namespace.
  CHECK(brief(*ready).find("-1") == std::string::npos);

  Json attack = executeCode(*server, R"py(
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
KEY = 0x50594331
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = 'reached'
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
def sysv(call):
    def f():
        if call() < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    return f
def stream(address):
    return lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(address)
attempt('abstract', stream('\0pycell-cross'))
attempt('abstract_dgram', lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'x', '\0pycell-cross-dgram'))
attempt('path_tmp', stream('/tmp/pycell-cross.sock'))
attempt('path_work', stream('/sandbox/pycell-cross.sock'))
attempt('shmget', sysv(lambda: libc.shmget(KEY, 0, 0)))
attempt('msgget', sysv(lambda: libc.msgget(KEY, 0)))
attempt('semget', sysv(lambda: libc.semget(KEY, 0, 0)))
attempt('posix_shm', lambda: os.open('/dev/shm/pycell-cross', os.O_RDONLY))
out['pids'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
with open('/proc/net/unix') as f:
    out['names_seen'] = 'pycell-cross' in f.read()
out
)py", {{"timeoutMs", 8000}});
  INFO("attacker: " << brief(attack));
  REQUIRE(attack["status"] == "ok");
  const Json& seen = attack["value"];
  // Not there at all: the other run's network, mount and IPC namespaces are not this one's.
  CHECK(seen["abstract"] == "ECONNREFUSED");
  CHECK(seen["abstract_dgram"] == "ECONNREFUSED");
  CHECK(seen["path_tmp"] == "ENOENT");
  CHECK(seen["path_work"] == "ENOENT");
  for (const char* call : {"shmget", "msgget", "semget"}) CHECK(seen[call] == "ENOENT");
  CHECK(seen["posix_shm"] == "ENOENT");
  CHECK(seen["pids"] == Json::array({1}));  // its own PID 1, nothing else
  CHECK(seen["names_seen"] == false);
  // The holder was still waiting all along, and nothing reached it.
  CHECK(server->callResult("status", {{"executionId", "holder"}})["state"] == "running");
  REQUIRE(server->callResult("kill", {{"executionId", "holder"}})["killed"] == true);
  Json held = waitResult(*server, holder);
  INFO("holder: " << brief(held));
  CHECK(held["stdout"].get<std::string>().find("CONNECTED") == std::string::npos);
  requireHealthy(*server);
}

TEST_CASE("os.abort ends as crashed and leaves no core file", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json result = executeCode(*server,
                            "import os, resource\n"
                            "print(resource.getrlimit(resource.RLIMIT_CORE), flush=True)\n"
                            "os.abort()",
                            {{"timeoutMs", 5000}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "crashed");
  // SIGABRT; or, where the program is PID 1 of its namespace (which ignores a SIGABRT it
  // sends itself), the SIGSEGV of glibc's fallback abort instruction.
  CHECK((result["signal"] == 6 || result["signal"] == 11));
  CHECK(result["stdout"] == "(0, 0)\n");
  Json next = requireValue(*server, "import os\nsorted(os.listdir('/sandbox')) + sorted(os.listdir('/tmp'))");
  CHECK(next == Json::array());
}
