// Hostile code after privilege: capabilities, root and setuid binaries, raised rlimits, new
// namespaces and mounts (unshare, clone, the new mount API), and other processes through
// ptrace, process_vm_*, kcmp and pidfds. Each case runs the code through the real server and
// checks what the program observed; the kernel, not Python, is what must refuse.
#include <catch2/catch.hpp>

#include <string>

#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;
using namespace std::chrono_literals;

// ---- capabilities and root ------------------------------------------------------------------

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

// ---- namespaces and mounts ------------------------------------------------------------------

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
    # clone with NEWUSER and NEWNS: hostile_seccomp_test.cc; NEWTIME's bit is clone's exit signal
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

// ---- other processes ------------------------------------------------------------------------

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
