// More hostile code, continuing hostile_test.cc: foreign syscall ABIs through machine code,
// the rest of the seccomp deny list, resource bombs and floods, escapes through the pool,
// the hidden result channel, the host's sockets and files, sibling sandboxes, and Python-level
// tricks. Each case runs the code through the real server and checks an observable outcome:
// a status, an errno's name the program returns, what the host sees from outside, and that
// the server still answers the next request.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
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

namespace {

// ---- the host's view ----------------------------------------------------------------------

std::string readLink(const std::string& path) {
  std::error_code ec;
  auto target = fs::read_symlink(path, ec);
  return ec ? std::string() : target.string();
}

// Live host processes (zombies excluded) whose pid namespace is `ns`, as
// /proc/<pid>/ns/pid reads (e.g. "pid:[4026532181]"): the processes of one sandbox, whatever
// they renamed themselves to and however they detached.
std::vector<pid_t> pidsInNamespace(const std::string& ns) {
  std::vector<pid_t> out;
  for (const auto& p : allProcesses())
    if (p.state != 'Z' && p.state != 'X' && readLink("/proc/" + std::to_string(p.pid) + "/ns/pid") == ns) out.push_back(p.pid);
  return out;
}

// Waits until no live process is left in `ns`; returns those still there at the timeout.
std::vector<pid_t> awaitNamespaceEmpty(const std::string& ns, Millis timeout) {
  std::vector<pid_t> left;
  for (Stopwatch wait; wait.elapsed() < timeout; std::this_thread::sleep_for(50ms)) {
    left = pidsInNamespace(ns);
    if (left.empty()) break;
  }
  return left;
}

std::string pidList(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t p : pids) {
    std::ifstream comm("/proc/" + std::to_string(p) + "/comm");
    std::string name;
    std::getline(comm, name);
    out += " " + std::to_string(p) + "(" + name + ")";
  }
  return out;
}

// An open fd on a sandbox's pid namespace, so that its number ("pid:[N]") names it alone
// for as long as a test looks: once a namespace's processes are gone the kernel hands its
// inode number to the next namespace made, which may well be a new pooled child's.
class NamespaceHold {
 public:
  explicit NamespaceHold(const std::string& ns) {
    unsigned long long number = 0;
    if (std::sscanf(ns.c_str(), "pid:[%llu]", &number) != 1) return;
    for (pid_t pid : pidsInNamespace(ns)) {
      int fd = ::open(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st{};
      if (fd >= 0 && ::fstat(fd, &st) == 0 && st.st_ino == number) {
        fd_ = fd;
        return;
      }
      if (fd >= 0) ::close(fd);  // that process ended, or its pid is another's now
    }
  }
  NamespaceHold(const NamespaceHold&) = delete;
  NamespaceHold& operator=(const NamespaceHold&) = delete;
  ~NamespaceHold() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct SandboxNamespace {
  std::string ns;  // as /proc/<pid>/ns/pid reads, e.g. "pid:[4026532181]"
  std::unique_ptr<NamespaceHold> hold;
};

// Starts an execution with streamed output whose program first prints
// "NS=" + os.readlink('/proc/self/ns/pid'), and returns that namespace, held open, once it
// is printed.
SandboxNamespace startAndReadNamespace(ServerProcess& server, Json params, int64_t& id) {
  const std::string executionId = params["executionId"];
  params["stream"] = true;
  size_t from = server.messages().size();
  id = server.request("execute", std::move(params));
  auto printed = server.waitMessage(
      [&](const Json& m) {
        return m.value("method", "") == "execute/output" && m["params"]["executionId"] == executionId &&
               m["params"]["text"].get<std::string>().find("NS=") != std::string::npos;
      },
      kExecutionTimeout, from);
  INFO(server.describe());
  REQUIRE(printed.has_value());
  const std::string text = (*printed)["params"]["text"];
  size_t begin = text.find("NS=") + 3;
  size_t end = text.find(']', begin);
  REQUIRE(end != std::string::npos);
  SandboxNamespace sandbox{text.substr(begin, end + 1 - begin), nullptr};
  sandbox.hold = std::make_unique<NamespaceHold>(sandbox.ns);
  REQUIRE(sandbox.hold->held());
  return sandbox;
}

// ---- small helpers -----------------------------------------------------------------------

// True when something is waiting on `fd` (a connection, a datagram).
bool readable(const Fd& fd) {
  pollfd p{fd.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Machine code, in a page made executable (mmap RWX, or RW then mprotect), called as a C
// function returning long. `fn(code)` returns the function, or None when no page can be
// made executable.
const std::string kMachineCode = R"py(
import ctypes, mmap, os
_pages = []
def fn(code):
    try:
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        m.write(code)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    except OSError:
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        m.write(code)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(4096), 5) != 0:
            return None
    _pages.append(m)
    return ctypes.CFUNCTYPE(ctypes.c_long)(addr)
# mov eax, 39 (getpid); syscall; ret: the same path with a native call, as a control
native = fn(bytes.fromhex('b827000000' '0f05' 'c3'))
if native is None:
    print('no-exec-memory', flush=True)
    raise SystemExit(0)
print('native-ok' if native() == os.getpid() else 'native-bad', flush=True)
)py";

}  // namespace

// ---- foreign syscall ABIs -------------------------------------------------------------------

TEST_CASE("an x32 syscall (nr | 0x40000000) from machine code kills the process with SIGSYS",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  // unshare(CLONE_NEWUSER) through the x32 ABI: mov eax, 0x40000110; mov edi, 0x10000000;
  // syscall; ret. The native rules never see it; the filter's architecture check must.
  Json result = executeCode(*server, kMachineCode + R"py(
x32 = fn(bytes.fromhex('b810010040' 'bf00000010' '0f05' 'c3'))
print('calling', flush=True)
print('returned', x32(), flush=True)
)py", {{"timeoutMs", 5000}});
  INFO("result: " << brief(result));
  const std::string out = result["stdout"];
  if (out.find("no-exec-memory") != std::string::npos) {
    WARN("no executable page could be made: the x32 call cannot even be attempted");
    return;
  }
  CHECK(out.find("native-ok") != std::string::npos);
  CHECK(out.find("calling") != std::string::npos);
  if (out.find("returned") == std::string::npos) {
    CHECK(result["status"] == "crashed");
    CHECK(result["signal"] == 31);  // SIGSYS
  } else {
    // Only acceptable as a refusal: -EPERM or -ENOSYS, never 0.
    CHECK((out.find("returned -1\n") != std::string::npos || out.find("returned -38\n") != std::string::npos));
  }
  requireHealthy(*server);
}

TEST_CASE("int 0x80 (the i386 syscall ABI) from machine code does not get a syscall through",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  // i386 unshare(CLONE_NEWUSER): push rbx; mov eax, 310; mov ebx, 0x10000000; int 0x80;
  // pop rbx; cdqe; ret.
  Json result = executeCode(*server, kMachineCode + R"py(
i386 = fn(bytes.fromhex('53' 'b836010000' 'bb00000010' 'cd80' '5b' '4898' 'c3'))
print('calling', flush=True)
print('returned', i386(), flush=True)
)py", {{"timeoutMs", 5000}});
  INFO("result: " << brief(result));
  const std::string out = result["stdout"];
  if (out.find("no-exec-memory") != std::string::npos) {
    WARN("no executable page could be made: int 0x80 cannot even be attempted");
    return;
  }
  CHECK(out.find("native-ok") != std::string::npos);
  CHECK(out.find("calling") != std::string::npos);
  if (out.find("returned") == std::string::npos) {
    CHECK(result["status"] == "crashed");
    // SIGSYS from the filter's architecture check; SIGSEGV where the kernel has no i386
    // emulation at all.
    CHECK((result["signal"] == 31 || result["signal"] == 11));
  } else {
    CHECK((out.find("returned -1\n") != std::string::npos || out.find("returned -38\n") != std::string::npos));
  }
  requireHealthy(*server);
}

// ---- the seccomp deny list -------------------------------------------------------------------

TEST_CASE("every other syscall of the deny list answers EPERM", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  // x86_64 numbers; arguments are harmless where a call is let through (zero lengths, bad
  // fds, NULL pointers), and several would succeed or fail otherwise (ENOSYS for the removed
  // ones, EFAULT, EBADF, a landlock ABI version), so EPERM is the filter's own answer.
  const std::map<std::string, std::string> calls = {
      {"request_key", "sc(249, 0, 0, 0, 0)"},
      {"kexec_file_load", "sc(320, -1, -1, 0, 0, 0)"},
      {"delete_module", "sc(176, 0, 0)"},
      {"reboot", "sc(169, 0, 0, 0, 0)"},
      {"swapon", "sc(167, 0, 0)"},
      {"swapoff", "sc(168, 0)"},
      {"syslog", "sc(103, 10, 0, 0)"},
      {"acct", "sc(163, 0)"},
      {"quotactl", "sc(179, 0, 0, 0, 0)"},
      {"quotactl_fd", "sc(443, -1, 0, 0, 0)"},
      {"settimeofday", "sc(164, 0, 0)"},
      {"clock_settime", "sc(227, 0, 0)"},
      {"clock_adjtime", "sc(305, 0, 0)"},
      {"adjtimex", "sc(159, 0)"},
      {"sethostname", "sc(170, S(b'x'), 1)"},
      {"setdomainname", "sc(171, S(b'x'), 1)"},
      {"iopl", "sc(172, 0)"},
      {"ioperm", "sc(173, 0, 0, 0)"},
      {"vhangup", "sc(153)"},
      {"lookup_dcookie", "sc(212, 0, 0, 0)"},
      {"uselib", "sc(134, 0)"},
      {"fanotify_init", "sc(300, 0, 0)"},
      {"nfsservctl", "sc(180, 0, 0, 0)"},
      {"set_mempolicy", "sc(238, 0, 0, 0)"},
      {"mbind", "sc(237, 0, 0, 0, 0, 0, 0)"},
      {"migrate_pages", "sc(256, 0, 0, 0, 0)"},
      {"move_pages", "sc(279, 0, 0, 0, 0, 0, 0)"},
      {"create_module", "sc(174, 0, 0)"},
      {"get_kernel_syms", "sc(177, 0)"},
      {"query_module", "sc(178, 0, 0, 0, 0, 0)"},
      {"_sysctl", "sc(156, 0)"},
      {"ustat", "sc(136, 0, 0)"},
      {"sysfs", "sc(139, 0, 0, 0)"},
      {"afs_syscall", "sc(183)"},
      {"tuxcall", "sc(184)"},
      {"security", "sc(185)"},
      {"landlock_create_ruleset", "sc(444, 0, 0, 1)"},
      {"io_uring_enter", "sc(426, -1, 0, 0, 0, 0, 0)"},
      {"io_uring_register", "sc(427, -1, 0, 0, 0)"},
      {"process_madvise", "sc(440, -1, 0, 0, 0, 0)"},
      {"open_by_handle_at", "sc(304, -1, 0, 0)"},
      {"name_to_handle_at", "sc(303, -100, S(b'/'), 0, 0, 0)"},
  };
  std::string code = kPrelude + "out = {}\n";
  for (const auto& [name, call] : calls) code += "out['" + name + "'] = " + call + "\n";
  code += "out";
  Json value = requireValue(*server, code, {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const auto& [name, call] : calls) {
    INFO(name << " = " << call << ": " << value[name]);
    CHECK(value[name] == "EPERM");
  }
  requireHealthy(*server);
}

TEST_CASE("the new mount API, unshare and clone refuse every namespace and mount operation",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  Json value = requireValue(*server, kPrelude + R"py(
out = {}
out['fsopen'] = sc(430, S(b'tmpfs'), 0)
out['fspick'] = sc(433, -100, S(b'/sandbox'), 0)
out['fsconfig'] = sc(431, -1, 0, 0, 0, 0)
out['fsmount'] = sc(432, -1, 0, 0)
out['open_tree'] = sc(428, -100, S(b'/usr'), 1 | 0x80000 | 0x8000)
out['move_mount'] = sc(429, -1, S(b''), -100, S(b'/sandbox'), 4)
out['mount_setattr'] = sc(442, -100, S(b'/sandbox'), 0, 0, 0)
out['mount_bind'] = sc(165, S(b'/usr'), S(b'/sandbox'), 0, 4096, 0)
out['mount_remount_rw'] = sc(165, 0, S(b'/'), 0, 32 | 4096, 0)
flags = {'NEWNS': 0x00020000, 'NEWCGROUP': 0x02000000, 'NEWUTS': 0x04000000,
         'NEWIPC': 0x08000000, 'NEWUSER': 0x10000000, 'NEWPID': 0x20000000,
         'NEWNET': 0x40000000, 'NEWTIME': 0x00000080}
for flag, bit in flags.items():
    out['unshare_' + flag] = sc(272, bit)
    # clone with NEWUSER and NEWNS: hostile_test.cc; NEWTIME's bit is clone's exit signal
    if flag not in ('NEWUSER', 'NEWNS', 'NEWTIME'):
        out['clone_' + flag] = sc(56, bit | 17, 0, 0, 0, 0)
out['root_writable'] = not (os.statvfs('/').f_flag & os.ST_RDONLY)
out
)py", {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  for (const auto& [name, result] : value.items()) {
    if (name == "root_writable") continue;
    INFO(name << ": " << result);
    CHECK(result == "EPERM");
  }
  CHECK(value["root_writable"] == false);
  CHECK(value.size() == 23u);
}

TEST_CASE("ptrace attach and seize, process_vm_writev, kcmp and pidfd tricks reach nothing",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  const std::string serverPid = std::to_string(server->pid());
  // A forked child goes for its parent (the sandbox's PID 1) and for the server's host pid.
  Json value = requireValue(*server, kPrelude + "SERVER = " + serverPid + R"py(
import json
r, w = os.pipe()
child = os.fork()
if child == 0:
    out = {}
    buf = ctypes.create_string_buffer(16)
    iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 16)
    out['attach_parent'] = sc(101, 16, os.getppid(), 0, 0)
    out['seize_parent'] = sc(101, 0x4206, os.getppid(), 0, 0)
    out['attach_server'] = sc(101, 16, SERVER, 0, 0)
    out['vm_writev_parent'] = sc(311, os.getppid(), iov, 1, iov, 1, 0)
    out['vm_readv_parent'] = sc(310, os.getppid(), iov, 1, iov, 1, 0)
    out['kcmp'] = sc(312, os.getppid(), os.getpid(), 0, 0, 0)
    out['pidfd_open_server'] = sc(434, SERVER, 0)
    pidfd = libc.syscall(L(434), L(os.getppid()), L(0))
    out['pidfd_open_parent'] = 'ok' if pidfd >= 0 else name(ctypes.get_errno())
    out['pidfd_getfd_parent'] = sc(438, pidfd, 1, 0) if pidfd >= 0 else 'no pidfd'
    os.write(w, json.dumps(out).encode())
    os._exit(0)
os.close(w)
data = b''.join(iter(lambda: os.read(r, 65536), b''))
os.waitpid(child, 0)
json.loads(data)
)py", {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  for (const char* call : {"attach_parent", "seize_parent", "attach_server", "vm_writev_parent",
                           "vm_readv_parent", "kcmp", "pidfd_getfd_parent"}) {
    INFO(call << ": " << value[call]);
    CHECK(value[call] == "EPERM");
  }
  // pidfd_open is allowed, but the server's pid does not exist in the sandbox's namespace.
  CHECK(value["pidfd_open_server"] == "ESRCH");
  CHECK(value["pidfd_open_parent"] == "ok");
}

TEST_CASE("TIOCSTI and TIOCLINUX are refused after setsid, also with junk in the upper bits",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  // The kernel reads an ioctl's request as 32 bits; a filter comparing all 64 would let
  // 0x1_00005412 through as TIOCSTI.
  Json value = requireValue(*server, kPrelude + R"py(
import json
r, w = os.pipe()
child = os.fork()
if child == 0:
    out = {'setsid': 'ok'}
    try:
        os.setsid()
    except OSError as e:
        out['setsid'] = name(e.errno)
    c = ctypes.c_char(b'x')
    for fd in (0, 1, 2):
        out['tiocsti_%d' % fd] = sc(16, fd, 0x5412, ctypes.byref(c))
        out['tiocsti_high_%d' % fd] = sc(16, fd, 0x100005412, ctypes.byref(c))
        out['tiocsti_high2_%d' % fd] = sc(16, fd, 0xffffffff00005412, ctypes.byref(c))
    out['tioclinux'] = sc(16, 0, 0x541C, ctypes.byref(c))
    out['tioclinux_high'] = sc(16, 0, 0x80000000541C, ctypes.byref(c))
    out['fionread'] = sc(16, 0, 0x541B, ctypes.byref(ctypes.c_int()))
    os.write(w, json.dumps(out).encode())
    os._exit(0)
os.close(w)
data = b''.join(iter(lambda: os.read(r, 65536), b''))
os.waitpid(child, 0)
json.loads(data)
)py", {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  CHECK(value["setsid"] == "ok");
  for (const auto& [name, result] : value.items()) {
    if (name == "setsid" || name == "fionread") continue;
    INFO(name << ": " << result);
    CHECK(result == "EPERM");
  }
  CHECK(value["fionread"] == "ok");  // other ioctls on the same fd work: the rule is exact
}

// ---- privilege ----------------------------------------------------------------------------

TEST_CASE("the sandbox holds no capabilities, cannot become root and cannot raise its rlimits",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
import errno, os, resource
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
out = {k: status[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp')}
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    except ValueError as e:
        return 'ValueError'
out['uid'] = os.getuid()
out['setuid0'] = attempt(lambda: os.setuid(0))
out['setgid0'] = attempt(lambda: os.setgid(0))
out['setresuid0'] = attempt(lambda: os.setresuid(0, 0, 0))
out['setgroups0'] = attempt(lambda: os.setgroups([0]))
for rl in ('RLIMIT_NPROC', 'RLIMIT_CPU', 'RLIMIT_NOFILE', 'RLIMIT_FSIZE', 'RLIMIT_CORE'):
    which = getattr(resource, rl)
    soft, hard = resource.getrlimit(which)
    if hard == resource.RLIM_INFINITY:
        out['raise_' + rl] = 'unlimited already'
    else:
        out['raise_' + rl] = attempt(lambda: resource.setrlimit(which, (hard + 1, hard + 1)))
out
)py");
  INFO("sandbox: " << brief(value));
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    INFO(cap);
    CHECK(value[cap] == "0000000000000000");
  }
  CHECK(value["NoNewPrivs"] == "1");
  CHECK(value["Seccomp"] == "2");
  CHECK(value["uid"] != 0);
  for (const char* call : {"setuid0", "setgid0", "setresuid0", "setgroups0"}) {
    INFO(call << ": " << value[call]);
    CHECK((value[call] == "EPERM" || value[call] == "EINVAL"));
  }
  for (const char* rl : {"raise_RLIMIT_NPROC", "raise_RLIMIT_CPU", "raise_RLIMIT_NOFILE",
                         "raise_RLIMIT_FSIZE", "raise_RLIMIT_CORE"}) {
    INFO(rl << ": " << value[rl]);
    CHECK((value[rl] == "ValueError" || value[rl] == "EPERM"));
  }
}

TEST_CASE("a setuid-root binary gives no privilege inside the sandbox", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
import os, stat, subprocess
out = {'nosuid': bool(os.statvfs('/usr').f_flag & os.ST_NOSUID)}
mount = '/usr/bin/mount'
out['present'] = os.path.exists(mount)
if out['present']:
    out['setuid_bit'] = bool(os.stat(mount).st_mode & stat.S_ISUID)
    os.mkdir('/sandbox/m')
    r = subprocess.run([mount, '-t', 'tmpfs', 'none', '/sandbox/m'], capture_output=True, text=True)
    out['rc'] = r.returncode
    out['stderr'] = r.stderr
    out['mounted'] = any(' /sandbox/m ' in l for l in open('/proc/self/mountinfo'))
out
)py", {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  CHECK(value["nosuid"] == true);
  if (value["present"] != true) {
    WARN("no /usr/bin/mount on this machine: only the nosuid flag was checked");
    return;
  }
  if (value["setuid_bit"] != true) WARN("/usr/bin/mount is not setuid-root here");
  CHECK(value["rc"] != 0);
  CHECK(value["mounted"] == false);
}

// ---- processes ------------------------------------------------------------------------------

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

// ---- the hidden result channel --------------------------------------------------------------

// The program's own report channel is the one fd besides 0, 1 and 2 that is a pipe.
const std::string kFindResultFd = R"py(
import os
def result_fd():
    for name in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink('/proc/self/fd/' + name)
        except OSError:
            continue  # the listing's own fd, closed by now
        if int(name) > 2 and target.startswith('pipe:'):
            return int(name)
)py";

TEST_CASE("a forged report on the result channel does not let the program outlive its run",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  // The program writes what looks like the bootstrap's final report, closes its output and
  // goes on sleeping: the server may answer early, but the sandbox must end with the answer.
  int64_t id = 0;
  Stopwatch clock;
  const auto sandbox = startAndReadNamespace(*server, {{"executionId", "forger"}, {"code", kFindResultFd + R"py(
import signal, time
print('NS=' + os.readlink('/proc/self/ns/pid'), flush=True)
time.sleep(1)
fd = result_fd()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.write(fd, b'{"status":"ok","exitCode":0,"usage":{"cpuUserMs":0,"cpuSysMs":0,"maxRssKb":0},'
             b'"value":"forged","valueRepr":"forged","error":null}')
os.close(fd)
os.close(1)
os.close(2)
time.sleep(600)
)py"}, {"limits", {{"timeoutMs", 4000}, {"maxProcesses", 8}}}}, id);
  const std::string& ns = sandbox.ns;
  INFO("namespace " << ns);
  CHECK(!pidsInNamespace(ns).empty());
  Json result = waitResult(*server, id);
  INFO("result: " << brief(result) << " after " << clock.elapsed().count() << " ms");
  CHECK((result["status"] == "ok" || result["status"] == "timeout" || result["status"] == "killed"));
  auto left = awaitNamespaceEmpty(ns, 2000ms);
  INFO("left in the run's pid namespace:" << pidList(left));
  CHECK(left.empty());
  Json status = server->callResult("status", {{"executionId", "forger"}});
  CHECK(status["state"] == "finished");
  requireHealthy(*server);
}

TEST_CASE("closing stdout, stderr and the result channel, then sleeping, still times out",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json result = executeCode(*server, kFindResultFd + R"py(
import time
fd = result_fd()
os.close(fd)
os.close(1)
os.close(2)
time.sleep(600)
)py", {{"timeoutMs", 1500}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "timeout");
  CHECK(clock.elapsed() >= 1400ms);
  CHECK(clock.elapsed() < 10000ms);
  requireHealthy(*server);
}

TEST_CASE("garbage and an oversized report on the result channel leave a proper answer",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json garbage = executeCode(*server, kFindResultFd + R"py(
os.write(result_fd(), b'{"status": "ok", "value": "forged"' + b'\xff\xfe{[' * 1000)
print('wrote garbage')
)py", {{"timeoutMs", 5000}});
  INFO("garbage: " << brief(garbage));
  CHECK((garbage["status"] == "ok" || garbage["status"] == "error"));
  CHECK(garbage["value"] != "forged");
  CHECK(garbage["stdout"] == "wrote garbage\n");
  requireHealthy(*server);

  // Beyond what the server keeps of a report (64 MiB): it stops keeping, not reading.
  Stopwatch clock;
  Json huge = executeCode(*server, kFindResultFd + R"py(
fd = result_fd()
chunk = b'[' * (1 << 20)
for _ in range(72):
    os.write(fd, chunk)
print('wrote 72 MiB')
)py", {{"timeoutMs", 8000}, {"memoryMb", 256}});
  INFO("huge: " << brief(huge));
  CHECK(huge["stdout"] == "wrote 72 MiB\n");
  CHECK((huge["status"] == "ok" || huge["status"] == "error"));
  CHECK(huge["value"].is_null());
  CHECK(huge.dump().size() < (1u << 20));
  CHECK(clock.elapsed() < 8000ms);
  requireHealthy(*server);
}

// ---- memory, recursion, time ----------------------------------------------------------------

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
  auto server = startKernelServer(Framing::kNdjson);
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

// ---- output -----------------------------------------------------------------------------------

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

// ---- exec, stdin ------------------------------------------------------------------------------

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

TEST_CASE("a huge stdin reaches the program whole", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  std::string input;
  for (int i = 0; i < 400000; ++i) input += "line " + std::to_string(i) + "\n";
  Json result = execute(*server, {{"code", "import sys\nd = sys.stdin.buffer.read()\n"
                                           "[len(d), d.count(b'\\n'), d[-12:].decode()]"},
                                  {"stdin", input},
                                  {"limits", {{"timeoutMs", 10000}, {"memoryMb", 256}}}});
  INFO("result: " << brief(result));
  REQUIRE(result["status"] == "ok");
  CHECK(result["value"][0] == input.size());
  CHECK(result["value"][1] == 400000);
  CHECK(result["value"][2] == input.substr(input.size() - 12));
  requireHealthy(*server);
}

TEST_CASE("a huge stdin the program never reads does not hold up its answer", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json result = execute(*server, {{"code", "import os\nos.close(0)\n6 * 7"},
                                  {"stdin", std::string(16u << 20, 's')},
                                  {"limits", {{"timeoutMs", 5000}}}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "ok");
  CHECK(result["value"] == 42);
  // Not held until its 5 s timeout: the run itself ended at once (carrying 16 MiB of JSON
  // there and back is the client's and the transport's time, not the run's).
  CHECK(result["usage"]["wallMs"].get<int64_t>() < 4000);
  CHECK(clock.elapsed() < scaled(5000ms));
  requireHealthy(*server);
}

// ---- host files, /proc, /sys, /dev, fds ----------------------------------------------------

TEST_CASE("host files stay out of reach through /proc/*/root, .. and symlinks", "[security]") {
  TempFile marker("hostile-marker", "host-only marker 7f3a91\n");
  auto server = startKernelServer(Framing::kNdjson);
  const std::string path = marker.path();
  const char* homeEnv = std::getenv("HOME");
  const std::string home = homeEnv && *homeEnv ? homeEnv : "/root";
  Json value = requireValue(*server, "import os\nMARKER, HOME = " + pyString(path) + ", " + pyString(home) + R"py(
def read(p):
    try:
        with open(p, 'rb') as f:
            return f.read(4096).decode('latin-1')
    except OSError as e:
        return 'error: ' + type(e).__name__
routes = [MARKER, '/proc/self/root' + MARKER, '/proc/1/root' + MARKER, '/proc/1/cwd/../..' + MARKER,
          '/sandbox/../../..' + MARKER, '/proc/self/cwd/../' + MARKER, '/.pycell/../..' + MARKER,
          '/proc/1/root/etc/shadow', '/proc/self/root/etc/shadow', '/etc/shadow', '/etc/passwd',
          '/root/.bashrc', '/root/.ssh/id_rsa', '/home', HOME + '/.bashrc', HOME + '/.ssh/id_rsa',
          '/proc/1/root' + HOME + '/.bashrc', HOME + '/.ssh/id_ed25519', HOME + '/.profile']
out = {r: read(r) for r in routes}
try:
    os.symlink(MARKER, '/sandbox/link')
    out['symlink'] = read('/sandbox/link')
except OSError as e:
    out['symlink'] = 'error: ' + type(e).__name__
try:
    os.link(MARKER, '/sandbox/hard')
    out['hardlink'] = read('/sandbox/hard')
except OSError as e:
    out['hardlink'] = 'error: ' + type(e).__name__
try:
    fd = os.open('/proc/1/root', os.O_RDONLY | os.O_DIRECTORY)
    out['openat_root'] = read('/proc/self/fd/%d' % fd + MARKER)
except OSError as e:
    out['openat_root'] = 'error: ' + type(e).__name__
out
)py");
  INFO("sandbox: " << brief(value));
  for (const auto& [route, seen] : value.items()) {
    INFO(route << ": " << seen);
    const std::string text = seen.get<std::string>();
    CHECK(text.find("marker 7f3a91") == std::string::npos);
    CHECK(text.find("root:") == std::string::npos);  // no passwd or shadow line of the host
    CHECK(text.rfind("error: ", 0) == 0);
  }
}

TEST_CASE("/proc and /sys show no host secrets and not the server", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  const std::string serverPid = std::to_string(server->pid());
  const std::string testPid = std::to_string(::getpid());
  Json value = requireValue(*server, "SERVER, TESTS = " + serverPid + ", " + testPid + R"py(
import errno, os
def attempt(f):
    try:
        return f()
    except OSError as e:
        return 'error: ' + errno.errorcode.get(e.errno, str(e.errno))
def write(p, text):
    with open(p, 'w') as f:
        f.write(text)
    return 'ok'
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
out = {
  'server_visible': os.path.exists('/proc/%d' % SERVER),
  'tests_visible': os.path.exists('/proc/%d' % TESTS),
  'nspid': status['NSpid'].split(),
  'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
  'kcore': attempt(lambda: open('/proc/kcore', 'rb').read(16) and 'read'),
  'sysrq': attempt(lambda: write('/proc/sysrq-trigger', 'h')),
  'core_pattern': attempt(lambda: write('/proc/sys/kernel/core_pattern', '|/sandbox/x')),
  'modprobe': attempt(lambda: write('/proc/sys/kernel/modprobe', '/sandbox/x')),
  'kallsyms_nonzero': attempt(lambda: sum(1 for l in open('/proc/kallsyms') if not l.startswith('0000000000000000'))),
  'sys_firmware': os.path.exists('/sys/firmware'),
  'sys_debug': os.path.exists('/sys/kernel/debug'),
  'sys_cgroup': os.path.exists('/sys/fs/cgroup'),
  'environ': open('/proc/self/environ', 'rb').read().decode('latin-1'),
}
out
)py");
  INFO("sandbox: " << brief(value));
  CHECK(value["server_visible"] == false);
  CHECK(value["tests_visible"] == false);
  CHECK(value["nspid"] == Json::array({"1"}));  // no host pid shows through
  for (const auto& pid : value["pids"]) CHECK(pid <= 20);
  CHECK(value["kcore"].get<std::string>().rfind("error: ", 0) == 0);
  CHECK(value["sysrq"].get<std::string>().rfind("error: ", 0) == 0);
  CHECK(value["core_pattern"].get<std::string>().rfind("error: ", 0) == 0);
  CHECK(value["modprobe"].get<std::string>().rfind("error: ", 0) == 0);
  if (value["kallsyms_nonzero"].is_number()) CHECK(value["kallsyms_nonzero"] == 0);
  CHECK(value["sys_firmware"] == false);
  CHECK(value["sys_debug"] == false);
  CHECK(value["sys_cgroup"] == false);
  const std::string environ = value["environ"];
  INFO("environ: " << environ);
  CHECK(environ.find("PYCELL_TEST") == std::string::npos);  // nothing of the test's environment
  const char* home = std::getenv("HOME");
  if (home && *home && std::string(home) != "/") CHECK(environ.find(std::string("HOME=") + home) == std::string::npos);
}

TEST_CASE("the program has fds 0, 1, 2 and its hidden result channel only; children get 0, 1, 2",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
import os, subprocess
names = os.listdir('/proc/self/fd')  # the listing's own fd is gone once this returns
fds = {}
for n in names:
    try:
        fds[n] = os.readlink('/proc/self/fd/' + n)
    except OSError:
        pass
r = subprocess.run(['ls', '/proc/self/fd'], capture_output=True, text=True, close_fds=False)
{'fds': fds, 'child': sorted(int(x) for x in r.stdout.split())}
)py", {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  std::set<int> extra;
  for (const auto& [fd, target] : value["fds"].items()) {
    INFO("fd " << fd << " -> " << target);
    CHECK(target.get<std::string>().rfind("pipe:", 0) == 0);  // no file, socket or anon inode
    if (std::stoi(fd) > 2) extra.insert(std::stoi(fd));
  }
  for (const char* fd : {"0", "1", "2"}) CHECK(value["fds"].contains(fd));
  CHECK(extra.size() == 1);  // the result channel
  if (!extra.empty()) CHECK(*extra.begin() >= 10);
  // ls sees its own 0, 1, 2 and the directory it lists: nothing was inherited.
  CHECK(value["child"] == Json::array({0, 1, 2, 3}));
}

TEST_CASE("device nodes cannot be created and the host's devices are absent", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
import errno, os, stat
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out = {
  'mknod_mem': attempt(lambda: os.mknod('/sandbox/mem', stat.S_IFCHR | 0o600, os.makedev(1, 1))),
  'mknod_null': attempt(lambda: os.mknod('/sandbox/null', stat.S_IFCHR | 0o666, os.makedev(1, 3))),
  'mknod_disk': attempt(lambda: os.mknod('/tmp/sda', stat.S_IFBLK | 0o600, os.makedev(8, 0))),
  'mknod_in_dev': attempt(lambda: os.mknod('/dev/kmsg', stat.S_IFCHR | 0o600, os.makedev(1, 11))),
  'write_in_dev': attempt(lambda: open('/dev/evil', 'w').close()),
  'remove_in_dev': attempt(lambda: os.unlink('/dev/null')),
  'null_works': open('/dev/null', 'w').write('x') == 1 and open('/dev/zero', 'rb').read(4) == b'\0' * 4,
}
for d in ('mem', 'kmem', 'port', 'kmsg', 'tty', 'console', 'sda', 'vda', 'nvme0', 'fuse', 'kvm',
          'net/tun', 'loop0', 'loop-control', 'dri', 'snd', 'input', 'hidraw0', 'cpu', 'mapper'):
    out['exists_' + d] = os.path.exists('/dev/' + d)
out
)py", {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const char* call : {"mknod_mem", "mknod_null", "mknod_disk", "mknod_in_dev"}) {
    INFO(call << ": " << value[call]);
    CHECK((value[call] == "EPERM" || value[call] == "EROFS"));
  }
  CHECK(value["mknod_mem"] == "EPERM");
  CHECK(value["mknod_disk"] == "EPERM");
  for (const char* call : {"write_in_dev", "remove_in_dev"}) {
    INFO(call << ": " << value[call]);
    CHECK((value[call] == "EROFS" || value[call] == "EACCES" || value[call] == "EPERM"));
  }
  CHECK(value["null_works"] == true);
  for (const auto& [key, exists] : value.items()) {
    if (key.rfind("exists_", 0) != 0) continue;
    INFO(key);
    CHECK(exists == false);
  }
}

// ---- network -------------------------------------------------------------------------------

TEST_CASE("UDP and IPv6 TCP to listeners on the host's loopback get nothing through",
          "[security]") {
  Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  REQUIRE(udp.valid());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(udp.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(udp.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int udpPort = ntohs(addr.sin_port);

  Fd tcp6(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int tcp6Port = 0;
  sockaddr_in6 addr6{};
  addr6.sin6_family = AF_INET6;
  addr6.sin6_addr = in6addr_loopback;
  if (tcp6.valid() && ::bind(tcp6.get(), reinterpret_cast<sockaddr*>(&addr6), sizeof addr6) == 0 &&
      ::listen(tcp6.get(), 16) == 0) {
    socklen_t len6 = sizeof addr6;
    REQUIRE(::getsockname(tcp6.get(), reinterpret_cast<sockaddr*>(&addr6), &len6) == 0);
    tcp6Port = ntohs(addr6.sin6_port);
  } else {
    WARN("no IPv6 loopback here: only UDP is checked");
    tcp6.reset();
  }

  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, "UDP, TCP6 = " + std::to_string(udpPort) + ", " + std::to_string(tcp6Port) + R"py(
import errno, socket
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'escaped', ('127.0.0.1', UDP))
def udp_connected():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(('127.0.0.1', UDP))
    s.send(b'escaped')
def tcp6():
    s = socket.create_connection(('::1', TCP6), timeout=2)
    s.sendall(b'escaped')
out = {'udp': attempt(udp), 'udp_connected': attempt(udp_connected)}
if TCP6:
    out['tcp6'] = attempt(tcp6)
out
)py", {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value) << "; udp port " << udpPort << ", tcp6 port " << tcp6Port);
  CHECK(value["udp"] == "EPERM");
  CHECK(value["udp_connected"] == "EPERM");
  if (tcp6Port) CHECK(value["tcp6"] == "EPERM");
  CHECK_FALSE(readable(udp));
  if (tcp6.valid()) CHECK_FALSE(readable(tcp6));
}

TEST_CASE("the host's AF_UNIX sockets, abstract and on disk, are out of reach", "[security]") {
  // AF_UNIX sockets may be created in the sandbox: what keeps the host's out of reach is the
  // network namespace (abstract names) and the mount namespace (paths).
  const std::string abstractName = "pycell-hostile-" + std::to_string(::getpid());
  Fd abstract(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  REQUIRE(abstract.valid());
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + 1, abstractName.data(), abstractName.size());
  socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstractName.size());
  REQUIRE(::bind(abstract.get(), reinterpret_cast<sockaddr*>(&a), alen) == 0);
  REQUIRE(::listen(abstract.get(), 16) == 0);

  const std::string path =
      (fs::temp_directory_path() / ("pycell-hostile-" + std::to_string(::getpid()) + ".sock")).string();
  ::unlink(path.c_str());
  Fd onDisk(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  REQUIRE(onDisk.valid());
  sockaddr_un p{};
  p.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof p.sun_path);
  std::memcpy(p.sun_path, path.data(), path.size());
  REQUIRE(::bind(onDisk.get(), reinterpret_cast<sockaddr*>(&p), sizeof p) == 0);
  ::chmod(path.c_str(), 0777);  // the server may run as another uid
  REQUIRE(::listen(onDisk.get(), 16) == 0);
  struct Unlink {
    std::string path;
    ~Unlink() { ::unlink(path.c_str()); }
  } unlinkLater{path};

  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, "ABSTRACT, PATH = " + pyString(abstractName) + ", " + pyString(path) + R"py(
import errno, socket
def connect(address, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_UNIX, kind)
    try:
        s.settimeout(2)
        s.connect(address)
        s.sendall(b'escaped')
        return 'connected'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
out = {'abstract': connect('\0' + ABSTRACT), 'path': connect(PATH)}
for p in ('/dev/log', '/run/systemd/journal/socket', '/run/systemd/private', '/var/run/docker.sock',
          '/run/docker.sock', '/run/containerd/containerd.sock', '/run/dbus/system_bus_socket',
          '/var/run/nscd/socket'):
    out[p] = connect(p, socket.SOCK_DGRAM if p == '/dev/log' else socket.SOCK_STREAM)
out
)py", {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  CHECK(value["abstract"] == "ECONNREFUSED");
  CHECK(value["path"] == "ENOENT");
  for (const auto& [where, outcome] : value.items()) {
    INFO(where << ": " << outcome);
    CHECK(outcome != "connected");
  }
  CHECK_FALSE(readable(abstract));
  CHECK_FALSE(readable(onDisk));
}

TEST_CASE("DNS resolution fails inside the sandbox", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Stopwatch clock;
  Json value = requireValue(*server, R"py(
import errno, socket
def resolve(f):
    try:
        return 'resolved: %r' % (f(),)
    except OSError as e:
        return type(e).__name__
def raw_query():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'\0' * 12, ('127.0.0.53', 53))
{
  'getaddrinfo': resolve(lambda: socket.getaddrinfo('example.com', 443)),
  'getaddrinfo_pypi': resolve(lambda: socket.getaddrinfo('pypi.org', 443, socket.AF_INET6)),
  'gethostbyname': resolve(lambda: socket.gethostbyname('example.org')),
  'raw_query': resolve(raw_query),
}
)py", {{"timeoutMs", 8000}});
  INFO("sandbox: " << brief(value));
  CHECK(value["getaddrinfo"] == "gaierror");
  CHECK(value["getaddrinfo_pypi"] == "gaierror");
  CHECK(value["gethostbyname"] == "gaierror");
  CHECK(value["raw_query"] == "PermissionError");
  CHECK(clock.elapsed() < 8000ms);  // no resolver timeouts either
}

// ---- siblings -------------------------------------------------------------------------------

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

// ---- Python-level tricks --------------------------------------------------------------------

TEST_CASE("commands reached through a __subclasses__ walk still run inside the sandbox",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == '_wrap_close'][0]
g = wrap.__init__.__globals__          # the os module's namespace, without importing os
b = g['__builtins__']
imp = b['__import__'] if isinstance(b, dict) else b.__import__
sp = imp('subprocess')
sys = imp('sys')
def run(*argv):
    r = sp.run(list(argv), capture_output=True, text=True)
    return {'rc': r.returncode, 'out': r.stdout.strip(), 'err': r.stderr.strip()[-300:]}
out = {
  'uid': g['getuid'](),
  'id': run('id', '-u'),
  'shadow': run('cat', '/etc/shadow'),
  'proc': run('ls', '/proc'),
  'socket': run(sys.executable, '-c', 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM)'),
  'system': g['system']('id -u > /sandbox/id.txt; cat /etc/shadow > /sandbox/shadow.txt 2>/dev/null'),
}
out['system_id'] = open('/sandbox/id.txt').read().strip()
out['system_shadow'] = open('/sandbox/shadow.txt').read()
out
)py", {{"timeoutMs", 8000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  const std::string uid = std::to_string(value["uid"].get<int>());
  CHECK(uid != "0");
  CHECK(value["id"]["rc"] == 0);
  CHECK(value["id"]["out"] == uid);
  CHECK(value["system_id"] == uid);
  CHECK(value["shadow"]["rc"] != 0);
  CHECK(value["shadow"]["out"] == "");
  CHECK(value["system_shadow"] == "");
  CHECK(value["socket"]["rc"] != 0);
  CHECK(value["socket"]["err"].get<std::string>().find("PermissionError") != std::string::npos);
  // ls sees a handful of pids: the sandbox's own.
  std::istringstream procs(value["proc"]["out"].get<std::string>());
  int pids = 0;
  for (std::string entry; procs >> entry;)
    if (entry.find_first_not_of("0123456789") == std::string::npos) ++pids;
  CHECK(pids >= 1);
  CHECK(pids <= 10);
}

TEST_CASE("frame walking into the bootstrap's and the zygote's globals does not weaken the kernel",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
import errno, os, socket, sys
out = {'bootstrap': False, 'zygote': False}
boot = zyg = lib = None
f = sys._getframe()
while f is not None:
    if '_RESULT_FD' in f.f_globals:
        boot = f.f_globals
    if 'fork_isolated' in f.f_globals:
        zyg = f.f_globals
        lib = f.f_locals.get('lib', lib)
    f = f.f_back
def attempt(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else 'OSError: %s' % e
if boot is not None:
    out['bootstrap'] = True
    # The bootstrap's private references and its builtins snapshot: the kernel still decides.
    out['boot_open_shadow'] = attempt(lambda: boot['_os_open']('/etc/shadow', os.O_RDONLY))
    out['boot_builtin_open'] = attempt(lambda: boot['open']('/root/.ssh/id_rsa').read())
if zyg is not None and lib is not None:
    out['zygote'] = True
    # The zygote's own way of making a sandbox, asked to share the network.
    out['zygote_fork_isolated'] = attempt(lambda: zyg['fork_isolated'](lib, 1))
out['shadow'] = attempt(lambda: open('/etc/shadow').read())
out['socket'] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
out['setuid'] = attempt(lambda: os.setuid(0))
out
)py", {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  if (value["bootstrap"] != true) WARN("the bootstrap's frames were not reachable: that part was not tried");
  if (value["zygote"] != true) WARN("no zygote frames were reachable (not a pooled run?): that part was not tried");
  if (value["bootstrap"] == true) {
    CHECK(value["boot_open_shadow"] == "ENOENT");
    CHECK(value["boot_builtin_open"] == "ENOENT");
  }
  if (value["zygote"] == true) {
    const std::string forked = value["zygote_fork_isolated"];
    CHECK(forked != "ok");
    CHECK(forked.find("Operation not permitted") != std::string::npos);
  }
  CHECK(value["shadow"] == "ENOENT");
  CHECK(value["socket"] == "EPERM");
  CHECK((value["setuid"] == "EPERM" || value["setuid"] == "EINVAL"));
  requireHealthy(*server);
}

TEST_CASE("a hostile audit hook cannot break the server, and audit hooks cannot be removed",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  // A hook that raises on every event: the bootstrap's own reporting runs into it.
  Json raising = executeCode(*server, R"py(
import sys
def hook(event, args):
    raise RuntimeError('refused: ' + event)
sys.addaudithook(hook)
print('hooked', flush=True)
open('/sandbox/x', 'w')
)py", {{"timeoutMs", 5000}});
  INFO("raising: " << brief(raising));
  CHECK(raising["status"] == "error");
  CHECK(raising["stdout"] == "hooked\n");
  requireHealthy(*server);

  // A hook that exits the process on any event.
  Json exiting = executeCode(*server, R"py(
import os, sys
sys.addaudithook(lambda event, args: os._exit(3) if event != 'os._exit' else None)
print('hooked', flush=True)
1 + 1
)py", {{"timeoutMs", 5000}});
  INFO("exiting: " << brief(exiting));
  CHECK(exiting["status"] == "error");
  CHECK(exiting["exitCode"] == 3);
  requireHealthy(*server);

  // sys offers no way to remove a hook; the interpreter's internal one is tried through
  // ctypes too. Whatever Python allows, the kernel's refusals stay.
  Json stays = requireValue(*server, R"py(
import ctypes, errno, socket, sys
seen = []
sys.addaudithook(lambda event, args: seen.append(event) if event == 'pycell.probe' else None)
out = {'sys_api': [a for a in dir(sys) if 'audit' in a.lower()]}
try:
    clear = ctypes.pythonapi._PySys_ClearAuditHooks
    clear.argtypes = [ctypes.c_void_p]
    clear(ctypes.pythonapi.PyThreadState_Get())
    out['cleared'] = True
except AttributeError:
    out['cleared'] = False
sys.audit('pycell.probe')
out['still_called'] = seen == ['pycell.probe']
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out['shadow'] = attempt(lambda: open('/etc/shadow').read())
out['socket'] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
out
)py", {{"timeoutMs", 5000}});
  INFO("stays: " << brief(stays));
  CHECK(stays["sys_api"] == Json::array({"addaudithook", "audit"}));
  if (stays["cleared"] == false) CHECK(stays["still_called"] == true);
  CHECK(stays["shadow"] == "ENOENT");
  CHECK(stays["socket"] == "EPERM");
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
