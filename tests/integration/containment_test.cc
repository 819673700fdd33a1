// Containment: what sandboxed code must not be able to do, checked from both sides. The
// sandbox reports what it saw; the test, outside, checks the host (its /proc, its sockets,
// its cgroup tree) independently.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "host_view.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// ---- helpers ------------------------------------------------------------------------------

Json requireValue(ServerProcess& server, const std::string& code, Json limits = nullptr) {
  Json result = executeCode(server, code, std::move(limits));
  INFO("result: " << brief(result));
  REQUIRE(result["status"] == "ok");
  return result["value"];
}

std::string readHostFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::set<std::string> hostEntries(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  return out;
}

}  // namespace

TEST_CASE("a fork bomb is stopped and the server stays healthy", "[containment]") {
  auto server = startKernelServer(Framing::kNdjson);
  // Preconditions, checked with bounded probes so that a server without them fails this test
  // instead of fork-bombing the machine: its own PID namespace (killing its init ends every
  // process in it) and an enforced process limit.
  Json pid = requireValue(*server, "import os\nos.getpid()");
  REQUIRE(pid <= 10);
  Json forked = requireValue(*server,
                             "import os, time\n"
                             "children = []\n"
                             "for i in range(64):\n"
                             "    try:\n"
                             "        child = os.fork()\n"
                             "    except OSError:\n"
                             "        break\n"
                             "    if child == 0:\n"
                             "        time.sleep(5)\n"
                             "        os._exit(0)\n"
                             "    children.append(child)\n"
                             "for child in children:\n"
                             "    os.kill(child, 9)\n"
                             "    os.waitpid(child, 0)\n"
                             "len(children)",
                             {{"maxProcesses", 8}, {"timeoutMs", 5000}});
  INFO("forks that succeeded under maxProcesses 8: " << forked);
  REQUIRE(forked < 8);

  Stopwatch clock;
  Json result = executeCode(*server,
                            "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
                            {{"timeoutMs", 2000}, {"maxProcesses", 32}});
  INFO("result: " << brief(result));
  CHECK(result["status"] != "ok");
  CHECK(clock.elapsed() < 15000ms);

  // None of the bomb's processes survive it: what is left is the pools' standing processes
  // (a zygote each, and two processes per pre-forked child).
  auto standing = [&] {
    size_t n = 0;
    Json status = server->callResult("status");  // kept: the loop below refers into it
    for (const auto& pool : status["pools"])
      n += 1 + 2 * (pool["ready"].get<size_t>() + pool["starting"].get<size_t>());
    return n;
  };
  std::vector<ProcStat> left;
  size_t expected = 0;
  for (Stopwatch wait; wait.elapsed() < 5000ms; std::this_thread::sleep_for(100ms)) {
    left = descendants(server->pid());
    expected = standing();
    if (left.size() <= expected) break;
  }
  INFO("server descendants:" << describeProcesses(left));
  CHECK(left.size() <= expected);

  Json after = executeCode(*server, "print('alive')");
  INFO("after: " << brief(after));
  CHECK(after["status"] == "ok");
  CHECK(after["stdout"] == "alive\n");
}

TEST_CASE("host secrets, home directories and files are not readable from the sandbox",
          "[containment]") {
  TempFile marker("marker", "host-only marker 1d0c5e\n");
  std::vector<std::string> paths = {"/etc/shadow", "/root", marker.path()};
  const char* home = std::getenv("HOME");
  if (home && *home && std::string(home) != "/root") paths.push_back(home);

  auto server = startKernelServer(Framing::kNdjson);
  std::string code =
      "import os\n"
      "def probe(path):\n"
      "    try:\n"
      "        if os.path.isdir(path):\n"
      "            return {'entries': sorted(os.listdir(path))}\n"
      "        with open(path, 'rb') as f:\n"
      "            return {'bytes': f.read(4096).decode('latin-1')}\n"
      "    except OSError as e:\n"
      "        return {'error': type(e).__name__}\n"
      "paths = " + Json(paths).dump() + "\n"
      "{'uid': os.getuid(), 'seen': {p: probe(p) for p in paths}}";
  Json value = requireValue(*server, code);
  INFO("sandbox saw: " << brief(value));
  CHECK(value["uid"] != 0);

  for (const auto& path : paths) {
    const Json& seen = value["seen"][path];
    INFO("path " << path << ": " << brief(seen));
    if (seen.contains("error")) continue;  // not there, or not allowed: both fine
    if (seen.contains("bytes")) {
      std::string host = readHostFile(path).substr(0, 4096);
      CHECK(seen["bytes"] != host);  // a stand-in file is fine, the host's is not
    } else {
      // A directory of the same name may exist in the sandbox, but none of the host's
      // entries may show through.
      std::set<std::string> host = hostEntries(path);
      for (const auto& name : seen["entries"]) CHECK(host.count(name.get<std::string>()) == 0);
    }
  }
}

TEST_CASE("host processes are not visible from the sandbox", "[containment]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
                            "import os\n"
                            "try:\n"
                            "    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
                            "except OSError:\n"
                            "    pids = []\n"
                            "cmdlines = []\n"
                            "for p in pids:\n"
                            "    try:\n"
                            "        with open('/proc/%d/cmdline' % p, 'rb') as f:\n"
                            "            cmdlines.append(f.read().replace(b'\\0', b' ').decode('utf-8', 'replace'))\n"
                            "    except OSError:\n"
                            "        pass\n"
                            "{'pid': os.getpid(), 'pids': pids, 'cmdlines': cmdlines}");
  INFO("sandbox saw: " << brief(value));
  INFO("host has " << allProcesses().size() << " processes");
  CHECK(value["pid"] <= 10);
  CHECK(value["pids"].size() <= 10);
  for (const auto& pid : value["pids"]) CHECK(pid <= 20);
  for (const auto& cmd : value["cmdlines"]) {
    std::string line = cmd.get<std::string>();
    CHECK(line.find("pycell_integration_tests") == std::string::npos);
    CHECK(line.find("serve --framing") == std::string::npos);
  }
}

TEST_CASE("the sandbox cannot signal the server or the test process", "[containment]") {
  auto server = startKernelServer(Framing::kNdjson);
  const std::string serverPid = std::to_string(server->pid());
  const std::string testPid = std::to_string(::getpid());
  // Signal 0 probes the test runner (a failure here must not take the suite down with it);
  // the server's pid gets a real SIGKILL, and the parent too, as the issue asks. Each outcome
  // is printed before the next attempt, since the last one may end the sandbox itself.
  std::string code =
      "import os\n"
      "def attempt(label, pid, sig):\n"
      "    if pid == os.getpid():\n"
      "        print(label, 'is self', flush=True)\n"
      "        return\n"
      "    try:\n"
      "        os.kill(pid, sig)\n"
      "        print(label, 'delivered', flush=True)\n"
      "    except OSError as e:\n"
      "        print(label, 'refused', e.errno, flush=True)\n"
      "attempt('tests', " + testPid + ", 0)\n"
      "attempt('server', " + serverPid + ", 9)\n"
      "print('ppid', os.getppid(), flush=True)\n"
      "attempt('parent', os.getppid(), 9)\n";
  Json result = executeCode(*server, code, {{"timeoutMs", 5000}});
  INFO("result: " << brief(result));
  std::string out = result.value("stdout", "");
  CHECK(out.find("tests delivered") == std::string::npos);
  CHECK(out.find("server delivered") == std::string::npos);

  INFO(server->describe());
  CHECK_FALSE(server->exited());
  CHECK(server->call("status").contains("result"));
  Json after = executeCode(*server, "print('alive')");
  CHECK(after["stdout"] == "alive\n");
}

TEST_CASE("a TCP connection to a listener outside the sandbox fails and it receives nothing",
          "[containment]") {
  LoopbackListener listener = listenOnLoopback();
  const int port = listener.port;

  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
                            "import socket\n"
                            "try:\n"
                            "    s = socket.create_connection(('127.0.0.1', " + std::to_string(port) +
                                "), timeout=2)\n"
                            "    s.sendall(b'escaped')\n"
                            "    r = 'connected'\n"
                            "except OSError as e:\n"
                            "    r = 'failed: %s %s' % (type(e).__name__, e)\n"
                            "r");
  INFO("sandbox: " << brief(value) << "; port " << port);
  CHECK(value.get<std::string>().rfind("failed", 0) == 0);

  CHECK(listener.receivedNothing());
  CHECK(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC) < 0);
}

TEST_CASE("mount, unshare, ptrace, keyctl and bpf fail with EPERM or ENOSYS through ctypes",
          "[containment]") {
  auto server = startKernelServer(Framing::kNdjson);
  // x86_64 syscall numbers; each call would succeed, or fail differently (mount: ENOENT, as
  // its target does not exist, which also keeps this harmless where nothing is filtered),
  // without the filter.
  Json value = requireValue(
      *server,
      "import ctypes, errno, platform\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "libc.syscall.restype = ctypes.c_long\n"
      "L = ctypes.c_long\n"
      "S = ctypes.c_char_p\n"
      "calls = {\n"
      "    'mount': (165, [S(b'none'), S(b'/pycell-no-such-dir'), S(b'tmpfs'), L(0), L(0)]),\n"
      "    'unshare': (272, [L(0x10000000)]),\n"        // CLONE_NEWUSER
      "    'ptrace': (101, [L(0), L(0), L(0), L(0)]),\n"  // PTRACE_TRACEME
      "    'keyctl': (250, [L(0), L(-3), L(0)]),\n"       // GET_KEYRING_ID of the session
      "    'bpf': (321, [L(0), L(0), L(0)]),\n"           // BPF_MAP_CREATE
      "}\n"
      "out = {'machine': platform.machine()}\n"
      "for name, (nr, args) in calls.items():\n"
      "    ctypes.set_errno(0)\n"
      "    rc = libc.syscall(L(nr), *args)\n"
      "    err = ctypes.get_errno()\n"
      "    out[name] = 'succeeded' if rc >= 0 else errno.errorcode.get(err, str(err))\n"
      "out");
  INFO("sandbox: " << brief(value));
  if (value["machine"] != "x86_64") {
    WARN("syscall numbers are x86_64's; skipped on " << value["machine"]);
    return;
  }
  for (const char* call : {"mount", "unshare", "ptrace", "keyctl", "bpf"}) {
    INFO(call << ": " << value[call]);
    CHECK((value[call] == "EPERM" || value[call] == "ENOSYS"));
  }
}

TEST_CASE("nothing is left behind after the server exits", "[containment]") {
  const auto mountsBefore = pycellMounts();
  auto server = startKernelServer(Framing::kNdjson);
  const pid_t serverPid = server->pid();
  int64_t id = server->request("execute", {{"code", "import time\ntime.sleep(30)"},
                                           {"executionId", "lingering"}});
  awaitRunning(*server, "lingering");
  std::this_thread::sleep_for(300ms);

  std::vector<ProcStat> tree = descendants(serverPid);
  INFO("server " << serverPid << " descendants while running:" << describeProcesses(tree));
  REQUIRE_FALSE(tree.empty());
  auto cgroupsWhileRunning = pycellCgroups(serverPid);
  std::string during;
  for (const auto& c : cgroupsWhileRunning) during += "\n  " + c;
  INFO("its cgroups while running:" << during);

  server->closeStdin();
  auto code = server->waitExit(10000ms);
  INFO(server->describe());
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  (void)id;

  std::vector<ProcStat> alive;
  for (Stopwatch wait; wait.elapsed() < 3000ms; std::this_thread::sleep_for(50ms)) {
    alive.clear();
    for (const auto& p : tree)
      if (stillRunning(p)) alive.push_back(p);
    if (alive.empty()) break;
  }
  INFO("still running:" << describeProcesses(alive));
  CHECK(alive.empty());

  std::vector<std::string> leftover;
  for (Stopwatch wait; wait.elapsed() < 2000ms; std::this_thread::sleep_for(50ms)) {
    leftover = pycellCgroups(serverPid);
    if (leftover.empty()) break;
  }
  std::string list;
  for (const auto& c : leftover) list += "\n  " + c;
  INFO("cgroups left:" << list);
  CHECK(leftover.empty());

  std::set<std::string> newMounts;
  for (const auto& m : pycellMounts())
    if (!mountsBefore.count(m)) newMounts.insert(m);
  CHECK(newMounts.empty());
}
