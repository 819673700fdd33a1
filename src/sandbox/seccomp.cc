#include "pycell/sandbox/seccomp.h"

#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <span>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

namespace pycell::sandbox {

namespace {

using R = SyscallRule;
constexpr bool kLegacy = true;  // someArchsOnly: x86_64's older calls, absent on aarch64

// The allow table. Groups follow Docker's default profile loosely; what is NOT here is
// refused, deniedSyscalls() names the notable ones. Derived from what CPython 3.11 on glibc
// 2.36 does for the standard library and the numeric stack (tests/sandbox/seccomp_test.cc
// traces typical programs against this table), plus harmless neighbours of those calls.
constexpr AllowedSyscall kAllowed[] = {
    // ---- file and pipe I/O
    {"read", "file and pipe I/O"},
    {"write", "file and pipe I/O"},
    {"readv", "scatter/gather I/O"},
    {"writev", "scatter/gather I/O"},
    {"pread64", "positional I/O"},
    {"pwrite64", "positional I/O"},
    {"preadv", "positional scatter/gather I/O"},
    {"pwritev", "positional scatter/gather I/O"},
    {"preadv2", "positional scatter/gather I/O with flags"},
    {"pwritev2", "positional scatter/gather I/O with flags"},
    {"lseek", "file position"},
    {"sendfile", "shutil's file copy"},
    {"copy_file_range", "os.copy_file_range, file copies"},
    {"splice", "pipe I/O without copies"},
    {"tee", "pipe I/O without copies"},
    {"vmsplice", "pipe I/O without copies"},
    {"fsync", "flush a file"},
    {"fdatasync", "flush a file's data (sqlite)"},
    {"sync_file_range", "flush part of a file"},
    {"syncfs", "flush a file system"},
    {"sync", "os.sync"},
    {"fadvise64", "os.posix_fadvise"},
    {"readahead", "read-ahead hint"},
    {"fallocate", "os.posix_fallocate"},
    {"flock", "advisory file locks"},
    // ---- file descriptors
    {"open", "open a file", R::kAllow, kLegacy},
    {"openat", "open a file"},
    {"openat2", "open a file with resolve flags"},
    {"creat", "create a file", R::kAllow, kLegacy},
    {"close", "close a descriptor"},
    {"close_range", "close descriptors in bulk (CPython's closerange)"},
    {"dup", "duplicate a descriptor"},
    {"dup2", "duplicate a descriptor", R::kAllow, kLegacy},
    {"dup3", "duplicate a descriptor"},
    {"fcntl", "descriptor flags and record locks"},
    {"ioctl", "terminal and descriptor control (isatty, FIONREAD)", R::kIoctlNoInjection},
    {"pipe", "pipes", R::kAllow, kLegacy},
    {"pipe2", "pipes"},
    {"memfd_create", "anonymous files (os.memfd_create)"},
    // ---- file names and metadata
    {"stat", "file status", R::kAllow, kLegacy},
    {"fstat", "file status"},
    {"lstat", "file status", R::kAllow, kLegacy},
    {"newfstatat", "file status (os.stat)"},
    {"statx", "extended file status"},
    {"statfs", "file system status"},
    {"fstatfs", "file system status"},
    {"access", "permission checks", R::kAllow, kLegacy},
    {"faccessat", "permission checks"},
    {"faccessat2", "permission checks with flags (glibc falls back only on ENOSYS)"},
    {"readlink", "symlink targets", R::kAllow, kLegacy},
    {"readlinkat", "symlink targets"},
    {"getdents", "directory listing", R::kAllow, kLegacy},
    {"getdents64", "directory listing"},
    {"getcwd", "working directory"},
    {"chdir", "working directory"},
    {"fchdir", "working directory"},
    {"mkdir", "create directories", R::kAllow, kLegacy},
    {"mkdirat", "create directories"},
    {"rmdir", "remove directories", R::kAllow, kLegacy},
    {"rename", "rename files", R::kAllow, kLegacy},
    {"renameat", "rename files"},
    {"renameat2", "rename files with flags"},
    {"link", "hard links", R::kAllow, kLegacy},
    {"linkat", "hard links"},
    {"unlink", "remove files", R::kAllow, kLegacy},
    {"unlinkat", "remove files"},
    {"symlink", "symbolic links", R::kAllow, kLegacy},
    {"symlinkat", "symbolic links"},
    {"mknod", "FIFOs and sockets (devices need CAP_MKNOD, dropped)", R::kAllow, kLegacy},
    {"mknodat", "FIFOs and sockets (os.mkfifo; devices need CAP_MKNOD, dropped)"},
    {"chmod", "file modes", R::kAllow, kLegacy},
    {"fchmod", "file modes"},
    {"fchmodat", "file modes"},
    {"chown", "file owners (only to ids the sandbox holds)", R::kAllow, kLegacy},
    {"fchown", "file owners (only to ids the sandbox holds)"},
    {"lchown", "file owners (only to ids the sandbox holds)", R::kAllow, kLegacy},
    {"fchownat", "file owners (only to ids the sandbox holds)"},
    {"truncate", "file sizes"},
    {"ftruncate", "file sizes"},
    {"umask", "file creation mask"},
    {"utime", "file times", R::kAllow, kLegacy},
    {"utimes", "file times", R::kAllow, kLegacy},
    {"futimesat", "file times", R::kAllow, kLegacy},
    {"utimensat", "file times (os.utime)"},
    {"getxattr", "extended attributes (shutil.copystat)"},
    {"lgetxattr", "extended attributes"},
    {"fgetxattr", "extended attributes"},
    {"listxattr", "extended attributes (shutil.copystat)"},
    {"llistxattr", "extended attributes"},
    {"flistxattr", "extended attributes"},
    {"setxattr", "extended attributes"},
    {"lsetxattr", "extended attributes"},
    {"fsetxattr", "extended attributes"},
    {"removexattr", "extended attributes"},
    {"lremovexattr", "extended attributes"},
    {"fremovexattr", "extended attributes"},
    {"inotify_init", "file change notification", R::kAllow, kLegacy},
    {"inotify_init1", "file change notification"},
    {"inotify_add_watch", "file change notification"},
    {"inotify_rm_watch", "file change notification"},
    // ---- memory
    {"brk", "heap"},
    {"mmap", "memory mappings"},
    {"munmap", "memory mappings"},
    {"mremap", "memory mappings (realloc, mmap.resize)"},
    {"mprotect", "memory protection (loader, JITs)"},
    {"madvise", "memory advice (allocators)"},
    {"msync", "flush a file mapping"},
    {"mincore", "page residency"},
    {"mlock", "lock memory (bounded by RLIMIT_MEMLOCK)"},
    {"mlock2", "lock memory (bounded by RLIMIT_MEMLOCK)"},
    {"munlock", "unlock memory"},
    {"mlockall", "lock memory (bounded by RLIMIT_MEMLOCK)"},
    {"munlockall", "unlock memory"},
    {"pkey_alloc", "memory protection keys"},
    {"pkey_free", "memory protection keys"},
    {"pkey_mprotect", "memory protection keys"},
    {"membarrier", "memory barriers across threads (runtimes, JITs)"},
    {"get_mempolicy", "read the NUMA policy (libnuma, BLAS); setting it stays refused"},
    // ---- processes and threads
    {"clone", "threads, fork and multiprocessing; namespaces refused", R::kCloneNoNamespace},
    {"clone3", "flags in memory seccomp cannot read: ENOSYS, so callers use clone", R::kEnosys},
    {"fork", "fork", R::kAllow, kLegacy},
    {"vfork", "posix_spawn and subprocess (Python's policy decides)", R::kAllow, kLegacy},
    {"execve", "run the interpreter (one-shot runs exec it after the filter)"},
    {"execveat", "run a program from a descriptor"},
    {"exit", "end a thread"},
    {"exit_group", "end the process"},
    {"wait4", "wait for children"},
    {"waitid", "wait for children"},
    {"set_tid_address", "thread start-up (glibc)"},
    {"set_robust_list", "thread start-up (glibc)"},
    {"get_robust_list", "robust futexes"},
    {"futex", "locks and condition variables"},
    {"futex_waitv", "wait on several futexes"},
    {"rseq", "restartable sequences (glibc registers one per thread)"},
    {"arch_prctl", "thread-local storage", R::kAllow, kLegacy},
    {"prctl", "process attributes (thread names, PDEATHSIG, dumpable)"},
    {"seccomp", "a program may add filters of its own: they only restrict further"},
    {"personality", "execution domain; ASLR and READ_IMPLIES_EXEC stay on", R::kPersonalitySafe},
    {"kill", "signals (inside the sandbox's pid namespace)"},
    {"tkill", "signals to a thread"},
    {"tgkill", "signals to a thread (pthread_kill, raise)"},
    {"pidfd_open", "process descriptors (os.pidfd_open)"},
    {"pidfd_send_signal", "signals through a process descriptor"},
    {"getpid", "process ids"},
    {"getppid", "process ids"},
    {"gettid", "thread ids"},
    {"getpgid", "process groups"},
    {"setpgid", "process groups"},
    {"getpgrp", "process groups", R::kAllow, kLegacy},
    {"getsid", "sessions"},
    {"setsid", "sessions"},
    {"restart_syscall", "restart a call a signal interrupted (the kernel's)"},
    // ---- signals
    {"rt_sigaction", "signal handlers"},
    {"rt_sigprocmask", "signal masks"},
    {"rt_sigreturn", "return from a signal handler"},
    {"rt_sigpending", "pending signals"},
    {"rt_sigtimedwait", "wait for signals (signal.sigwait)"},
    {"rt_sigsuspend", "wait for signals"},
    {"rt_sigqueueinfo", "queue a signal with data"},
    {"rt_tgsigqueueinfo", "queue a signal with data to a thread"},
    {"sigaltstack", "alternate signal stack (faulthandler)"},
    {"pause", "wait for a signal", R::kAllow, kLegacy},
    {"alarm", "signal.alarm", R::kAllow, kLegacy},
    {"signalfd", "signals as a descriptor", R::kAllow, kLegacy},
    {"signalfd4", "signals as a descriptor"},
    // ---- time and timers
    {"clock_gettime", "clocks (when the vDSO is not used)"},
    {"clock_getres", "clock resolution"},
    {"clock_nanosleep", "time.sleep"},
    {"nanosleep", "sleep"},
    {"gettimeofday", "clocks"},
    {"time", "clocks", R::kAllow, kLegacy},
    {"times", "os.times"},
    {"getitimer", "interval timers"},
    {"setitimer", "interval timers (signal.setitimer)"},
    {"timer_create", "POSIX timers"},
    {"timer_settime", "POSIX timers"},
    {"timer_gettime", "POSIX timers"},
    {"timer_getoverrun", "POSIX timers"},
    {"timer_delete", "POSIX timers"},
    {"timerfd_create", "timers as descriptors"},
    {"timerfd_settime", "timers as descriptors"},
    {"timerfd_gettime", "timers as descriptors"},
    // ---- waiting for events
    {"poll", "select.poll", R::kAllow, kLegacy},
    {"ppoll", "poll with a signal mask"},
    {"select", "select.select", R::kAllow, kLegacy},
    {"pselect6", "select with a signal mask"},
    {"epoll_create", "epoll", R::kAllow, kLegacy},
    {"epoll_create1", "epoll (asyncio, selectors)"},
    {"epoll_ctl", "epoll"},
    {"epoll_wait", "epoll", R::kAllow, kLegacy},
    {"epoll_pwait", "epoll"},
    {"epoll_pwait2", "epoll with a precise timeout"},
    {"eventfd", "event descriptors", R::kAllow, kLegacy},
    {"eventfd2", "event descriptors"},
    // ---- sockets (the network namespace decides what they reach)
    {"socket", "sockets: AF_UNIX only, any family with network access", R::kSocketFamily},
    {"socketpair", "connected AF_UNIX pairs (multiprocessing, asyncio)"},
    {"bind", "name a socket"},
    {"listen", "accept connections"},
    {"accept", "accept connections"},
    {"accept4", "accept connections"},
    {"connect", "connect a socket"},
    {"getsockname", "socket addresses"},
    {"getpeername", "socket addresses"},
    {"sendto", "send on a socket"},
    {"recvfrom", "receive on a socket"},
    {"sendmsg", "send with descriptors (multiprocessing)"},
    {"recvmsg", "receive with descriptors (multiprocessing)"},
    {"sendmmsg", "send several messages"},
    {"recvmmsg", "receive several messages"},
    {"shutdown", "close one direction of a socket"},
    {"setsockopt", "socket options"},
    {"getsockopt", "socket options"},
    // ---- System V and POSIX IPC (the sandbox's own IPC namespace)
    {"shmget", "System V shared memory"},
    {"shmat", "System V shared memory"},
    {"shmdt", "System V shared memory"},
    {"shmctl", "System V shared memory"},
    {"semget", "System V semaphores"},
    {"semop", "System V semaphores"},
    {"semtimedop", "System V semaphores"},
    {"semctl", "System V semaphores"},
    {"msgget", "System V message queues"},
    {"msgsnd", "System V message queues"},
    {"msgrcv", "System V message queues"},
    {"msgctl", "System V message queues"},
    {"mq_open", "POSIX message queues"},
    {"mq_unlink", "POSIX message queues"},
    {"mq_timedsend", "POSIX message queues"},
    {"mq_timedreceive", "POSIX message queues"},
    {"mq_notify", "POSIX message queues"},
    {"mq_getsetattr", "POSIX message queues"},
    // ---- kernel AIO (io_uring stays refused)
    {"io_setup", "kernel AIO (libaio)"},
    {"io_destroy", "kernel AIO (libaio)"},
    {"io_submit", "kernel AIO (libaio)"},
    {"io_cancel", "kernel AIO (libaio)"},
    {"io_getevents", "kernel AIO (libaio)"},
    {"io_pgetevents", "kernel AIO (libaio)"},
    // ---- identity and limits (no capabilities: only the ids and limits already held)
    {"getuid", "user ids"},
    {"geteuid", "user ids"},
    {"getresuid", "user ids"},
    {"getgid", "group ids"},
    {"getegid", "group ids"},
    {"getresgid", "group ids"},
    {"getgroups", "supplementary groups"},
    {"setuid", "user ids (only to the one mapped id)"},
    {"setreuid", "user ids (only to the one mapped id)"},
    {"setresuid", "user ids (only to the one mapped id)"},
    {"setfsuid", "user ids (only to the one mapped id)"},
    {"setgid", "group ids (only to the one mapped id)"},
    {"setregid", "group ids (only to the one mapped id)"},
    {"setresgid", "group ids (only to the one mapped id)"},
    {"setfsgid", "group ids (only to the one mapped id)"},
    {"setgroups", "supplementary groups (denied by the namespace's setgroups file)"},
    {"capget", "read capabilities (none are held)"},
    {"capset", "drop capabilities (none can be gained)"},
    {"getrlimit", "resource limits"},
    {"setrlimit", "resource limits (lowering; raising needs a capability)"},
    {"prlimit64", "resource limits (the bootstrap tightens its own)"},
    {"getrusage", "resource usage"},
    // ---- scheduling
    {"sched_yield", "yield the CPU"},
    {"sched_getaffinity", "CPU affinity (os.cpu_count, OpenBLAS)"},
    {"sched_setaffinity", "CPU affinity (within the cgroup's CPUs)"},
    {"sched_getparam", "scheduling parameters"},
    {"sched_setparam", "scheduling parameters (real time needs a capability)"},
    {"sched_getscheduler", "scheduling policy"},
    {"sched_setscheduler", "scheduling policy (real time needs a capability)"},
    {"sched_getattr", "scheduling attributes"},
    {"sched_setattr", "scheduling attributes (real time needs a capability)"},
    {"sched_get_priority_max", "scheduling priorities"},
    {"sched_get_priority_min", "scheduling priorities"},
    {"sched_rr_get_interval", "round-robin time slice"},
    {"getpriority", "nice values"},
    {"setpriority", "nice values (os.nice; raising priority needs a capability)"},
    {"ioprio_get", "I/O priority"},
    {"ioprio_set", "I/O priority (raising needs a capability)"},
    {"getcpu", "current CPU (allocators)"},
    // ---- system information
    {"uname", "os.uname, platform"},
    {"sysinfo", "memory and uptime (glibc's sysconf)"},
    {"getrandom", "os.urandom, secrets, hash seeds"},
};

}  // namespace

std::span<const AllowedSyscall> allowedSyscalls() { return kAllowed; }

const std::vector<std::string>& deniedSyscalls() {
  // Reference: Docker's default profile and nsjail's.
  static const std::vector<std::string> names = {
      "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount",
      "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "open_by_handle_at", "name_to_handle_at",
      "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "process_mrelease", "kcmp",
      "pidfd_getfd", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
      "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
      "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "syslog", "acct",
      "quotactl", "quotactl_fd", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
      "sethostname", "setdomainname", "iopl", "ioperm", "modify_ldt", "vhangup", "lookup_dcookie",
      "uselib", "fanotify_init", "fanotify_mark", "nfsservctl", "set_mempolicy", "mbind",
      "migrate_pages", "move_pages", "get_kernel_syms", "query_module", "create_module", "_sysctl",
      "ustat", "sysfs", "vm86", "vm86old", "afs_syscall", "tuxcall", "security",
      "landlock_create_ruleset", "memfd_secret",
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

Status allow(scmp_filter_ctx ctx, int nr, const char* name) {
  return check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0), std::string("rule for ") + name);
}

// Allowed when one argument compares as `cmp` says.
Status allowIf(scmp_filter_ctx ctx, int nr, const char* name, scmp_arg_cmp cmp) {
  return check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, cmp), std::string("rule for ") + name);
}

// Allows `nr` unless the low 32 bits of argument `arg` are one of `refused`: the kernel
// reads such an argument (ioctl's request) as 32 bits, so junk above them must not change
// the answer. libseccomp takes one comparison per argument in a rule and no rule whose action
// is the default's, so "none of these values" is written as allow rules, one per block of
// 32-bit values holding none of them: a block fixes the top bits (one masked comparison) and
// leaves the rest free. Walking the binary trie of the refused values from the top bit down,
// each branch without a refused value is one block: at most 32 per refused value.
Status allowUnlessLow32In(scmp_filter_ctx ctx, int nr, const char* name, unsigned arg, std::vector<uint32_t> refused) {
  std::sort(refused.begin(), refused.end());
  refused.erase(std::unique(refused.begin(), refused.end()), refused.end());
  auto blocks = [&](auto& self, uint32_t prefix, int depth, std::span<const uint32_t> values) -> Status {
    if (values.empty()) {
      if (depth == 0) return allow(ctx, nr, name);
      uint64_t mask = static_cast<uint32_t>(0xffffffffULL << (32 - depth));
      return allowIf(ctx, nr, name, SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, prefix));
    }
    if (depth == 32) return {};  // a refused value itself
    uint32_t bit = 1U << (31 - depth);
    auto split = std::partition_point(values.begin(), values.end(), [&](uint32_t v) { return (v & bit) == 0; });
    size_t zeros = static_cast<size_t>(split - values.begin());
    if (auto st = self(self, prefix, depth + 1, values.first(zeros)); !st) return st;
    return self(self, prefix | bit, depth + 1, values.subspan(zeros));
  };
  return blocks(blocks, 0, 0, std::span<const uint32_t>(refused));
}

Status addEntry(scmp_filter_ctx ctx, int nr, const AllowedSyscall& entry, const SeccompOptions& options) {
  switch (entry.rule) {
    case SyscallRule::kAllow:
      return allow(ctx, nr, entry.name);
    case SyscallRule::kEnosys:
      return check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0), std::string("rule for ") + entry.name);
    case SyscallRule::kCloneNoNamespace: {
      // clone's flags are a full 64-bit argument. (CLONE_NEWTIME's bit is clone's exit
      // signal: a time namespace needs unshare or clone3, both refused.)
      constexpr uint64_t kNew = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                CLONE_NEWNET | CLONE_NEWCGROUP;
      return allowIf(ctx, nr, entry.name, SCMP_A0(SCMP_CMP_MASKED_EQ, kNew, 0));
    }
    case SyscallRule::kPersonalitySafe: {
      // Neither READ_IMPLIES_EXEC nor ADDR_NO_RANDOMIZE (they weaken the address space),
      // or the query 0xffffffff, which changes nothing. The kernel reads 32 bits.
      constexpr uint64_t kWeakening = 0x0400000ULL | 0x0040000ULL;
      if (auto st = allowIf(ctx, nr, entry.name, SCMP_A0(SCMP_CMP_MASKED_EQ, kWeakening, 0)); !st) return st;
      return allowIf(ctx, nr, entry.name, SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffULL, 0xffffffffULL));
    }
    case SyscallRule::kIoctlNoInjection:
      // TIOCSTI pushes bytes into a terminal's input queue; TIOCLINUX can do the same on a VT.
      return allowUnlessLow32In(ctx, nr, entry.name, 1, {TIOCSTI, TIOCLINUX});
    case SyscallRule::kSocketFamily:
      // The one difference between the online and offline filters: offline, AF_UNIX only
      // (the sandbox's own network namespace reaches nothing anyway); online, where the
      // sandbox shares the server's network namespace, any family.
      if (options.allowNetwork) return allow(ctx, nr, entry.name);
      return allowIf(ctx, nr, entry.name, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
  }
  return std::unexpected(Error{std::string("seccomp: no rule kind for ") + entry.name});
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
  Ctx ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
  if (!ctx) return std::unexpected(Error{"seccomp_init failed"});
  // Syscalls made through a foreign ABI (int 0x80 for i386, the x32 bit) do not match the
  // native rules: refuse them all rather than filter twice.
  if (auto st = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "badarch"); !st)
    return std::unexpected(st.error());
  // A binary search over the syscall numbers rather than a list a refused call walks to
  // its end. (The kernel caches the plain allowed ones and skips the program for them.)
  if (auto st = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize"); !st)
    return std::unexpected(st.error());
  for (const auto& entry : allowedSyscalls()) {
    int nr = seccomp_syscall_resolve_name(entry.name);
    // Not a syscall on this architecture (a negative pseudo number), or newer than this
    // libseccomp: refused like any unlisted call.
    if (nr < 0) continue;
    if (auto st = addEntry(ctx.get(), nr, entry, options); !st) return std::unexpected(st.error());
  }
  return exportBpf(ctx.get());
}

}  // namespace pycell::sandbox
