// Hostile code against the resource limits: memory bombs, deep recursion, loops and sleeps
// that ignore signals, output floods, a full disk or inode table, and exec arguments beyond
// the kernel's bound. Each case runs the code through the real server and checks that the
// run ends with the limit's status, in time, and that the server still answers.
#include <catch2/catch.hpp>

#include <string>

#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;
using namespace std::chrono_literals;

// ---- memory ---------------------------------------------------------------------------------

TEST_CASE("a memory bomb growing a Python list ends with memory_limit", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json result = executeCode(*server, R"py(
a = []
while True:
    a.append([0] * 100000)
)py", {{"timeoutMs", 10000}, {"memoryMb", 128}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "memory_limit");
  CHECK(clock.elapsed() < 10000ms);
  requireHealthy(*server);
}

TEST_CASE("numpy arrays beyond the memory limit end with memory_limit", "[security]") {
  auto server = startKernelServer(Framing::kNdjson, {}, Pools::All);
  Json probe = execute(*server, {{"code", "import numpy\nnumpy.__version__"}, {"profile", "datascience"},
                                 {"limits", {{"timeoutMs", 10000}}}});
  if (probe["status"] != "ok") {
    WARN("numpy is not importable in the datascience profile here: " << brief(probe, 500));
    return;
  }
  // Far beyond anything: numpy's own allocation fails (MemoryError).
  Json huge = execute(*server, {{"code", "import numpy as np\nnp.ones((1 << 40,))"},
                                {"profile", "datascience"},
                                {"limits", {{"timeoutMs", 10000}, {"memoryMb", 256}}}});
  INFO("huge: " << brief(huge));
  CHECK(huge["status"] == "memory_limit");
  // Within what overcommit grants, but over the limit once touched: the cgroup (or the
  // address-space rlimit) ends it.
  Json touched = execute(*server, {{"code", "import numpy as np\na = np.ones((600 << 20) // 8)\nfloat(a.sum())"},
                                   {"profile", "datascience"},
                                   {"limits", {{"timeoutMs", 10000}, {"memoryMb", 256}}}});
  INFO("touched: " << brief(touched));
  CHECK(touched["status"] == "memory_limit");
  CHECK(touched["value"].is_null());
  Json after = execute(*server, {{"code", "import numpy as np\nint(np.ones(10).sum())"}, {"profile", "datascience"}});
  CHECK(after["value"] == 10);
  requireHealthy(*server);
}

TEST_CASE("plain deep recursion is a RecursionError with status error", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json result = executeCode(*server, R"py(
def f(n):
    return f(n + 1) + 1
f(0)
)py", {{"timeoutMs", 5000}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "error");
  CHECK(result["error"]["type"] == "RecursionError");
  CHECK(result["error"]["line"] == 3);
  requireHealthy(*server);
}

TEST_CASE("deep recursion ends as an error or a crash, not a hang", "[security]") {
  // The wall clock is raised far past what the recursion needs, so that on a loaded machine
  // (where a page fault costs a VM tens of microseconds and the run gets a fraction of a
  // core) it is still the recursion's own end that is seen, never the clock.
  TempFile config("recursion.json", R"({"profiles": {"default":
      {"imports": null, "builtins": {"remove": []}, "allowRaisingLimits": true}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  Stopwatch clock;
  Json result = executeCode(*server,
      "import sys\n"
      "sys.setrecursionlimit(10**6)\n"
      "def f(n):\n"
      "    return f(n + 1) + 1\n"
      "f(0)",
      {{"timeoutMs", 120000}, {"memoryMb", 128}, {"maxProcesses", 8}}, std::chrono::milliseconds(150000));
  INFO("result: " << brief(result));
  // Python 3.11+ keeps Python frames on the heap, so a million frames may reach the memory
  // limit before the C stack: any of these is a contained end. The clock is far away: on a
  // machine where page faults are slow (a VM: ~3.5 s to a million frames) it must still be
  // the recursion's own end, not the timeout, that stops it.
  // Without a memory cgroup (an unprivileged server) the limit is RLIMIT_AS, and unwinding a
  // million frames after the interpreter's own error can take the run to its CPU limit on a
  // loaded VM: that kernel limit is a contained end too (the wall clock, 120 s, is not).
  const Json& usage = result["usage"];
  const int64_t cpuMs = usage["cpuUserMs"].get<int64_t>() + usage["cpuSysMs"].get<int64_t>();
  CHECK((result["status"] == "error" || result["status"] == "crashed" || result["status"] == "memory_limit" ||
         (result["status"] == "timeout" && cpuMs >= 5000)));
  CHECK(clock.elapsed() < 120000ms);
  requireHealthy(*server);
}

// ---- CPU and time ---------------------------------------------------------------------------

TEST_CASE("an infinite loop that ignores signals and swallows every exception times out",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json result = executeCode(*server, R"py(
import signal
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGXCPU, signal.SIGUSR1):
    signal.signal(s, signal.SIG_IGN)
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
)py", {{"timeoutMs", 1500}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "timeout");
  CHECK(clock.elapsed() >= 1400ms);
  CHECK(clock.elapsed() < 10000ms);
  requireHealthy(*server);
}

TEST_CASE("a sleep with every signal blocked, in a child the program waits for, times out",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json result = executeCode(*server, R"py(
import os, signal, time
signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
child = os.fork()
if child == 0:
    os.setsid()
    while True:
        time.sleep(3600)
os.waitpid(child, 0)
)py", {{"timeoutMs", 1500}, {"maxProcesses", 8}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "timeout");
  CHECK(clock.elapsed() >= 1400ms);
  CHECK(clock.elapsed() < 10000ms);
  requireHealthy(*server);
}

// ---- output ---------------------------------------------------------------------------------

TEST_CASE("one huge line of output stops at the output limit", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json result = executeCode(*server, "print('x' * 10**7)",
                            {{"timeoutMs", 5000}, {"maxOutputBytes", 65536}});
  INFO("result: " << brief(result, 500));
  CHECK(result["status"] == "output_limit");
  CHECK(result.dump().size() < 1u << 20);
  requireHealthy(*server);
}

TEST_CASE("a flood on stderr ends with output_limit", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  const int cap = 65536;
  Json result = executeCode(*server, "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)",
                            {{"timeoutMs", 5000}, {"maxOutputBytes", cap}});
  INFO("result: " << brief(result, 600));
  CHECK(result["status"] == "output_limit");
  CHECK(result["truncated"]["stderr"] == true);
  CHECK(result["stderr"].get<std::string>().size() <= 2 * cap + 1024);
  CHECK(result["stderr"].get<std::string>().find("eeee") != std::string::npos);
  requireHealthy(*server);
}

TEST_CASE("an output flood from a forked child, with raw writes, ends with output_limit",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  const int cap = 65536;
  Stopwatch clock;
  Json result = executeCode(*server, R"py(
import os, time
if os.fork() == 0:
    while True:
        os.write(1, b'c' * 4096)
        os.write(2, b'd' * 4096)
time.sleep(600)
)py", {{"timeoutMs", 8000}, {"maxOutputBytes", cap}, {"maxProcesses", 8}});
  INFO("result: " << brief(result, 600));
  CHECK(result["status"] == "output_limit");
  CHECK(clock.elapsed() < 8000ms);  // the limit, not the clock, ended it
  CHECK(result["stdout"].get<std::string>().size() + result["stderr"].get<std::string>().size() <=
        4 * cap + 4096);
  requireHealthy(*server);
}

// ---- disk -----------------------------------------------------------------------------------

TEST_CASE("filling the disk or the inode table is contained", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json fill = executeCode(*server,
      "import os, errno\n"
      "out = {'written': 0, 'errors': []}\n"
      "chunk = b'\\0' * (1 << 20)\n"
      "for i in range(1):\n"
      "    try:\n"
      "        with open(f'/sandbox/fill{i}', 'wb') as f:\n"
      "            for _ in range(64):\n"
      "                f.write(chunk)\n"
      "                f.flush()\n"
      "                out['written'] += len(chunk)\n"
      "    except OSError as e:\n"
      "        out['errors'].append(errno.errorcode.get(e.errno, str(e.errno)))\n"
      "out",
      {{"timeoutMs", 5000}, {"diskMb", 8}, {"memoryMb", 256}, {"maxProcesses", 8}});
  INFO("fill: " << brief(fill));
  REQUIRE(fill["status"] == "ok");
  CHECK(fill["value"]["written"].get<long>() <= 8L << 20);
  REQUIRE(fill["value"]["errors"].size() == 1);
  for (const auto& e : fill["value"]["errors"]) CHECK((e == "ENOSPC" || e == "EFBIG"));
  requireHealthy(*server);

  Json files = executeCode(*server,
      "import os, errno\n"
      "n = 0\n"
      "try:\n"
      "    while True:\n"
      "        open(f'/sandbox/{n}', 'wb').close()\n"
      "        n += 1\n"
      "except OSError as e:\n"
      "    err = errno.errorcode.get(e.errno, str(e.errno))\n"
      "{'files': n, 'error': err}",
      {{"timeoutMs", 3000}, {"diskMb", 8}, {"memoryMb", 256}, {"maxProcesses", 8}});
  INFO("files: " << brief(files));
  CHECK((files["status"] == "ok" || files["status"] == "timeout" ||
         files["status"] == "memory_limit"));
  requireHealthy(*server);
}

TEST_CASE("filling /tmp and /dev/shm stops at diskMb with ENOSPC", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
import errno, os
out = {}
chunk = b'\0' * (1 << 20)
for d in ('/tmp', '/dev/shm'):
    written, err = 0, None
    try:
        for i in range(32):
            with open('%s/fill%d' % (d, i), 'wb') as f:
                f.write(chunk)
            written += 1
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
    out[d] = {'mib': written, 'error': err}
out
)py", {{"timeoutMs", 5000}, {"diskMb", 8}, {"memoryMb", 256}});
  INFO("sandbox: " << brief(value));
  for (const char* dir : {"/tmp", "/dev/shm"}) {
    INFO(dir);
    CHECK(value[dir]["error"] == "ENOSPC");
    CHECK(value[dir]["mib"].get<int>() <= 8);
  }
  requireHealthy(*server);
}

TEST_CASE("exhausting the inodes of /tmp and /dev/shm is contained and leaves nothing behind",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json value = requireValue(*server, R"py(
import errno, os
out = {}
for d in ('/tmp', '/dev/shm'):
    n, err = 0, None
    try:
        while n < 100000:
            os.close(os.open('%s/i%d' % (d, n), os.O_CREAT | os.O_WRONLY, 0o600))
            n += 1
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
    out[d] = {'files': n, 'error': err}
out
)py", {{"timeoutMs", 8000}, {"memoryMb", 256}});
  INFO("sandbox: " << brief(value) << " in " << clock.elapsed().count() << " ms");
  for (const char* dir : {"/tmp", "/dev/shm"}) {
    INFO(dir);
    CHECK(value[dir]["error"] == "ENOSPC");
    CHECK(value[dir]["files"].get<int>() < 100000);
  }
  // The next run starts on empty directories.
  Json next = requireValue(*server, R"py(
import os
{d: len(os.listdir(d)) for d in ('/tmp', '/dev/shm', '/sandbox')}
)py");
  INFO("next run: " << brief(next));
  CHECK(next["/tmp"] == 0);
  CHECK(next["/dev/shm"] == 0);
  CHECK(next["/sandbox"] == 0);
}

TEST_CASE("files in the request beyond diskMb end as an error and the server goes on",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json files = Json::object();
  const std::string mib(1 << 20, 'f');
  for (int i = 0; i < 12; ++i) files["f" + std::to_string(i) + ".txt"] = {{"text", mib}};
  Json result = execute(*server, {{"code", "print('ran')"}, {"files", files},
                                  {"limits", {{"diskMb", 8}, {"timeoutMs", 5000}}}});
  INFO("result: " << brief(result, 1000));
  CHECK(result["status"] == "error");
  CHECK(result["stdout"] != "ran\n");
  requireHealthy(*server);
}

TEST_CASE("diskMb bounds the whole working directory, not only each file", "[security]") {
  // Regression: pooled children had tmpfs of the profile's size, so a request's smaller
  // diskMb only limited single files (RLIMIT_FSIZE); such requests now run in a sandbox of
  // their own size.
  auto server = startKernelServer(Framing::kNdjson);
  Json result = executeCode(*server,
                            "import errno, os\n"
                            "written = 0\n"
                            "try:\n"
                            "    for i in range(6):\n"
                            "        with open('f%d' % i, 'wb') as f:\n"
                            "            f.write(b'x' * (3 << 20))\n"
                            "        written += 3\n"
                            "except OSError as e:\n"
                            "    err = errno.errorcode[e.errno]\n"
                            "st = os.statvfs('/sandbox')\n"
                            "[written, err, (st.f_blocks * st.f_frsize) >> 20]",
                            {{"diskMb", 8}, {"timeoutMs", 5000}});
  INFO(brief(result));
  REQUIRE(result["status"] == "ok");
  CHECK(result["value"][0].get<int>() <= 6);
  CHECK(result["value"][1] == "ENOSPC");
  CHECK(result["value"][2] == 8);
  CHECK(executeCode(*server, "1 + 1")["value"] == 2);
}

// ---- exec -----------------------------------------------------------------------------------

TEST_CASE("a huge argv or environment fails with E2BIG and an ordinary one still works",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
import errno, os, subprocess, sys
out = {}
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out['argv'] = attempt(lambda: os.execv(sys.executable, [sys.executable, '-c', 'pass'] + ['A' * 100000] * 200))
out['one_arg'] = attempt(lambda: os.execv(sys.executable, [sys.executable, '-c', 'pass', 'B' * (1 << 20)]))
out['env'] = attempt(lambda: os.execve(sys.executable, [sys.executable, '-c', 'pass'], {'X': 'C' * (1 << 20)}))
r = subprocess.run([sys.executable, '-c', 'import sys; print(len(sys.argv))'] + ['D' * 10000] * 100,
                   capture_output=True, text=True)
out['ordinary'] = r.stdout.strip()
out
)py", {{"timeoutMs", 8000}, {"maxProcesses", 8}, {"memoryMb", 256}});
  INFO("sandbox: " << brief(value));
  CHECK(value["argv"] == "E2BIG");
  CHECK(value["one_arg"] == "E2BIG");
  CHECK(value["env"] == "E2BIG");
  CHECK(value["ordinary"] == "101");
  requireHealthy(*server);
}
