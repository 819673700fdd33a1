// Hostile code against the seccomp filter: an allow-list (every syscall it does not name
// answers EPERM; a few answer ENOSYS or kill with SIGSYS), reached through ctypes' raw
// syscall(), through machine code in foreign syscall ABIs (x32, int 0x80), and with junk in
// the upper bits of an ioctl's request. Each case runs the code through the real server and
// checks the errno's name the program saw; the kernel, not Python, is what must refuse.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;
using namespace std::chrono_literals;

namespace {

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

// ---- raw syscalls through ctypes ------------------------------------------------------------

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

TEST_CASE("every other syscall the allow-list leaves out answers EPERM", "[security]") {
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
