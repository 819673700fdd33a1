// Hostile code: untrusted Python that tries, through ctypes and the standard library, the
// syscalls, devices, files and resource games a sandbox escape or a denial of service would
// start with. Each case runs the code through the real server and checks what it observed;
// the kernel (namespaces, seccomp, rlimits/cgroups), not Python, is what must refuse.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;
using namespace pycell::testing::hostile;
namespace fs = std::filesystem;

TEST_CASE("kernel attack surface syscalls are refused through ctypes", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  // Arguments are chosen so that, unfiltered, each call would fail differently (EFAULT,
  // EINVAL, ENOENT, ...) or succeed harmlessly inside the sandbox's namespaces.
  Json value = requireValue(*server, kPrelude +
      "out = {}\n"
      "out['io_uring_setup'] = sc(425, 1, 0)\n"
      "out['perf_event_open'] = sc(298, 0, 0, -1, -1, 0)\n"
      "out['userfaultfd'] = sc(323, 0)\n"
      "out['bpf'] = sc(321, 0, 0, 0)\n"
      "out['keyctl'] = sc(250, 0, -3, 0)\n"
      "out['add_key'] = sc(248, S(b'user'), S(b'pycell'), S(b'x'), 1, -3)\n"
      "out['setns'] = sc(308, 0, 0)\n"
      "out['pivot_root'] = sc(155, S(b'.'), S(b'.'))\n"
      "out['chroot'] = sc(161, S(b'/tmp'))\n"
      "out['umount2'] = sc(166, S(b'/proc'), 2)\n"
      "out['init_module'] = sc(175, 0, 0, S(b''))\n"
      "out['finit_module'] = sc(313, 0, S(b''), 0)\n"
      "out['kexec_load'] = sc(246, 0, 0, 0, 0)\n"
      "out['process_vm_readv'] = sc(310, 1, 0, 0, 0, 0, 0)\n"
      "out");
  INFO("sandbox: " << brief(value));
  for (const char* call : {"io_uring_setup", "perf_event_open", "userfaultfd", "bpf", "keyctl",
                           "add_key", "setns", "pivot_root", "chroot", "umount2", "init_module",
                           "finit_module", "kexec_load", "process_vm_readv"}) {
    INFO(call << ": " << value[call]);
    CHECK(eperm(value[call]));
  }
}

TEST_CASE("clone3 looks absent, clone with CLONE_NEWUSER and TIOCSTI are refused", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  Json value = requireValue(*server, kPrelude +
      "out = {}\n"
      "out['clone3'] = sc(435, 0, 0)\n"
      "out['clone_newuser'] = sc(56, 0x10000000 | 17, 0, 0, 0, 0)\n"
      "out['clone_newns'] = sc(56, 0x00020000 | 17, 0, 0, 0, 0)\n"
      "c = ctypes.c_char(b'x')\n"
      "ctypes.set_errno(0)\n"
      "rc = libc.ioctl(0, L(0x5412), ctypes.byref(c))\n"
      "out['tiocsti'] = 'ok' if rc >= 0 else name(ctypes.get_errno())\n"
      "out['fork_still_works'] = True\n"
      "pid = os.fork()\n"
      "if pid == 0:\n"
      "    os._exit(7)\n"
      "out['fork_exit'] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
      "out",
      {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  CHECK(value["clone3"] == "ENOSYS");
  CHECK(value["clone_newuser"] == "EPERM");
  CHECK(value["clone_newns"] == "EPERM");
  CHECK(value["tiocsti"] == "EPERM");
  CHECK(value["fork_exit"] == 7);  // plain clone (fork) is unaffected
}

TEST_CASE("personality cannot disable ASLR or set READ_IMPLIES_EXEC", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, kPrelude +
      "libc.personality.restype = ctypes.c_int\n"
      "def pers(p):\n"
      "    ctypes.set_errno(0)\n"
      "    rc = libc.personality(ctypes.c_ulong(p))\n"
      "    return rc if rc >= 0 else name(ctypes.get_errno())\n"
      "{'no_aslr': pers(0x0040000), 'read_implies_exec': pers(0x0400000)}");
  INFO("sandbox: " << brief(value));
  CHECK(value["no_aslr"] == "EPERM");
  CHECK(value["read_implies_exec"] == "EPERM");
}

TEST_CASE("no network socket can be created; AF_UNIX works", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
      "import socket, errno\n"
      "def try_socket(*args):\n"
      "    try:\n"
      "        socket.socket(*args).close()\n"
      "        return 'ok'\n"
      "    except OSError as e:\n"
      "        return errno.errorcode.get(e.errno, str(e.errno))\n"
      "out = {\n"
      "  'inet': try_socket(socket.AF_INET, socket.SOCK_STREAM),\n"
      "  'inet6': try_socket(socket.AF_INET6, socket.SOCK_STREAM),\n"
      "  'udp': try_socket(socket.AF_INET, socket.SOCK_DGRAM),\n"
      "  'raw': try_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),\n"
      "  'netlink': try_socket(socket.AF_NETLINK, socket.SOCK_RAW, 0),\n"
      "  'packet': try_socket(socket.AF_PACKET, socket.SOCK_RAW, 0),\n"
      "  'unix': try_socket(socket.AF_UNIX, socket.SOCK_STREAM),\n"
      "}\n"
      "a, b = socket.socketpair()\n"
      "a.sendall(b'ping')\n"
      "out['socketpair'] = b.recv(4).decode()\n"
      "try:\n"
      "    socket.create_connection(('127.0.0.1', 80), timeout=1)\n"
      "    out['connect'] = 'ok'\n"
      "except OSError as e:\n"
      "    out['connect'] = errno.errorcode.get(e.errno, str(e.errno))\n"
      "out",
      {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const char* family : {"inet", "inet6", "udp", "raw", "netlink", "packet", "connect"}) {
    INFO(family << ": " << value[family]);
    CHECK(value[family] == "EPERM");
  }
  CHECK(value["unix"] == "ok");
  CHECK(value["socketpair"] == "ping");
}

TEST_CASE("Python-level tricks (audit hooks, __subclasses__) do not get past the kernel",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
      "import sys, errno\n"
      "sys.addaudithook(lambda event, args: None)\n"
      "found = None\n"
      "todo = list(object.__subclasses__())\n"
      "seen = set()\n"
      "while todo:\n"
      "    cls = todo.pop()\n"
      "    if id(cls) in seen:\n"
      "        continue\n"
      "    seen.add(id(cls))\n"
      "    if cls.__module__ == '_socket' and cls.__name__ == 'socket':\n"
      "        found = cls\n"
      "    try:\n"
      "        todo.extend(cls.__subclasses__())\n"
      "    except TypeError:\n"
      "        pass\n"
      "if found is None:\n"
      "    import _socket\n"
      "    found = _socket.socket\n"
      "try:\n"
      "    found(2, 1, 0).close()\n"
      "    r = 'ok'\n"
      "except OSError as e:\n"
      "    r = errno.errorcode.get(e.errno, str(e.errno))\n"
      "{'walked': len(seen), 'socket': r}",
      {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  CHECK(value["socket"] == "EPERM");
}

TEST_CASE("/proc, /sys and /dev show only the sandbox", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
      "import os\n"
      "def read(path):\n"
      "    try:\n"
      "        with open(path, 'rb') as f:\n"
      "            return f.read().decode('utf-8', 'replace')\n"
      "    except OSError as e:\n"
      "        return 'error: ' + e.__class__.__name__\n"
      "{'environ1': read('/proc/1/environ'), 'mountinfo': read('/proc/self/mountinfo'),\n"
      " 'sys': os.path.exists('/sys') and os.listdir('/sys'), 'dev': sorted(os.listdir('/dev'))}",
      {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value, 6000));
  const std::string cwd = fs::current_path().string();
  for (const char* key : {"environ1", "mountinfo"}) {
    const std::string text = value[key].get<std::string>();
    INFO(key << ": " << text);
    CHECK(text.find("/home") == std::string::npos);
    CHECK(text.find("/root") == std::string::npos);
    if (cwd != "/") CHECK(text.find(cwd) == std::string::npos);
  }
  CHECK(value["mountinfo"].get<std::string>().find("/sandbox") != std::string::npos);
  CHECK(value["sys"] == false);
  const std::set<std::string> allowed = {"null",   "zero",   "full",   "random", "urandom",
                                         "fd",     "stdin",  "stdout", "stderr", "shm"};
  for (const auto& entry : value["dev"]) {
    INFO("/dev/" << entry);
    CHECK(allowed.count(entry.get<std::string>()) == 1);
  }
}

TEST_CASE("the root and /usr are read-only", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
      "import os, errno\n"
      "def attempt(f):\n"
      "    try:\n"
      "        f()\n"
      "        return 'ok'\n"
      "    except OSError as e:\n"
      "        return errno.errorcode.get(e.errno, str(e.errno))\n"
      "out = {\n"
      "  'root_file': attempt(lambda: open('/pycell-hostile', 'w').close()),\n"
      "  'root_dir': attempt(lambda: os.mkdir('/pycell-hostile-dir')),\n"
      "  'usr_file': attempt(lambda: open('/usr/pycell-hostile', 'w').close()),\n"
      "  'usr_bin_file': attempt(lambda: open('/usr/bin/pycell-hostile', 'w').close()),\n"
      "  'etc_file': attempt(lambda: open('/etc/pycell-hostile', 'w').close()),\n"
      "  'sandbox_file': attempt(lambda: open('/sandbox/ok', 'w').close()),\n"
      "  'tmp_file': attempt(lambda: open('/tmp/ok', 'w').close()),\n"
      "}\n"
      "out",
      {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const char* key : {"root_file", "root_dir", "usr_file", "usr_bin_file", "etc_file"}) {
    INFO(key << ": " << value[key]);
    CHECK((value[key] == "EROFS" || value[key] == "EACCES" || value[key] == "EPERM"));
  }
  CHECK(value["sandbox_file"] == "ok");
  CHECK(value["tmp_file"] == "ok");
}

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

TEST_CASE("one huge line of output stops at the output limit", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json result = executeCode(*server, "print('x' * 10**7)",
                            {{"timeoutMs", 5000}, {"maxOutputBytes", 65536}});
  INFO("result: " << brief(result, 500));
  CHECK(result["status"] == "output_limit");
  CHECK(result.dump().size() < 1u << 20);
  requireHealthy(*server);
}

TEST_CASE("reading stdin when none is given returns EOF promptly", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json value = requireValue(*server,
      "import sys, os\n"
      "[sys.stdin.read(), os.read(0, 16).decode(), sys.stdin.readline()]",
      {{"timeoutMs", 3000}});
  INFO("sandbox: " << brief(value));
  CHECK(value == Json::array({"", "", ""}));
  CHECK(clock.elapsed() < 3000ms);
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
