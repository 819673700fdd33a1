#include "pycell/sandbox/seccomp.h"

#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

namespace pycell::sandbox {

const std::vector<std::string>& deniedSyscalls() {
  // Reference: Docker's default profile and nsjail's; everything here either escapes the
  // namespaces, reaches kernel attack surface an untrusted program never needs, or changes
  // global machine state.
  static const std::vector<std::string> names = {
      "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount",
      "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "open_by_handle_at", "name_to_handle_at",
      "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd",
      "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
      "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load", "init_module",
      "finit_module", "delete_module", "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl",
      "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
      "iopl", "ioperm", "vhangup", "lookup_dcookie", "uselib", "fanotify_init", "nfsservctl",
      "set_mempolicy", "mbind", "migrate_pages", "move_pages", "get_kernel_syms", "query_module",
      "create_module", "_sysctl", "ustat", "sysfs", "vm86", "vm86old", "afs_syscall", "tuxcall",
      "security", "quotactl_fd", "landlock_create_ruleset",
  };
  return names;
}

namespace {

struct CtxDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

Status check(int rc, const std::string& what) {
  if (rc < 0) return std::unexpected(Error{"seccomp: " + what, -rc});
  return {};
}

Status denyNamespaceFlagsInClone(scmp_filter_ctx ctx) {
  // clone's first argument carries the CLONE_NEW* flags; one rule per flag, since a rule
  // compares (arg & mask) == value.
  for (uint64_t flag : {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
                        CLONE_NEWCGROUP}) {
    auto st = check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
                    "clone rule");
    if (!st) return st;
  }
  // clone3 passes flags in a struct seccomp cannot read: make it look absent, so glibc and
  // Python fall back to clone, which the rules above can inspect.
  return check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3 rule");
}

Status restrictArguments(scmp_filter_ctx ctx, const SeccompOptions& options) {
  // personality: refuse the flags that weaken the address space, READ_IMPLIES_EXEC and
  // ADDR_NO_RANDOMIZE. (Docker instead allows a list of values; libseccomp 2.5 refuses
  // several comparisons of one argument in a rule, and with one bit test per rule the
  // query value 0xffffffff, which has every bit set, is refused too: over-blocking, noted.)
  Status st;
  for (uint64_t bit : {0x0400000ULL, 0x0040000ULL}) {
    st = check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)),
               "personality rule");
    if (!st) return st;
  }
  // TIOCSTI pushes bytes into a terminal's input queue; TIOCLINUX can do the same on a VT.
  for (uint64_t request : {static_cast<uint64_t>(TIOCSTI), static_cast<uint64_t>(TIOCLINUX)}) {
    st = check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, request)),
               "ioctl rule");
    if (!st) return st;
  }
  if (!options.allowNetwork) {
    st = check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX)),
               "socket rule");
    if (!st) return st;
  }
  return {};
}

Result<SeccompProgram> exportBpf(scmp_filter_ctx ctx) {
  UniqueFd mem(::memfd_create("pycell-seccomp", MFD_CLOEXEC));
  if (!mem) return std::unexpected(sysError("memfd_create"));
  if (auto st = check(seccomp_export_bpf(ctx, mem.get()), "export"); !st) return std::unexpected(st.error());
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) return std::unexpected(Error{"seccomp: exported program has a bad size"});
  SeccompProgram program;
  program.instructions.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(mem.get(), program.instructions.data(), static_cast<size_t>(size), 0) != size)
    return std::unexpected(sysError("pread(seccomp program)"));
  return program;
}

}  // namespace

Result<SeccompProgram> compileSeccomp(const SeccompOptions& options) {
  Ctx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return std::unexpected(Error{"seccomp_init failed"});
  // Syscalls made through a foreign ABI (int 0x80 for i386, the x32 bit) do not match the
  // native rules: refuse them all rather than filter twice.
  if (auto st = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "badarch"); !st)
    return std::unexpected(st.error());
  for (const auto& name : deniedSyscalls()) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not a syscall on this architecture
    if (auto st = check(seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 0), "rule for " + name); !st)
      return std::unexpected(st.error());
  }
  if (auto st = denyNamespaceFlagsInClone(ctx.get()); !st) return std::unexpected(st.error());
  if (auto st = restrictArguments(ctx.get(), options); !st) return std::unexpected(st.error());
  return exportBpf(ctx.get());
}

int installSeccomp(const SeccompProgram& program) {
  sock_fprog prog = program.fprog();
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

}  // namespace pycell::sandbox
