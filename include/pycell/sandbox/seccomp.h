#pragma once
// The seccomp filter: compiled once in the server with libseccomp, installed in each child
// as raw BPF (no allocation, no library call after fork). Installed LAST: every earlier
// setup step needs syscalls this filter denies (mount, pivot_root, unshare...).
//
// An allow-list: the system calls in allowedSyscalls() pass (some only with safe
// arguments), every other one fails with EPERM, so a system call a future kernel adds stays
// refused until someone lists it here with a reason.
#include <linux/filter.h>

#include <span>
#include <string>
#include <vector>

#include "pycell/error.h"

namespace pycell::sandbox {

struct SeccompProgram {
  std::vector<sock_filter> instructions;
  [[nodiscard]] sock_fprog fprog() const {
    return sock_fprog{static_cast<unsigned short>(instructions.size()), const_cast<sock_filter*>(instructions.data())};
  }
};

struct SeccompOptions {
  bool allowNetwork = false;  // otherwise socket() is allowed for AF_UNIX only
};

// How an entry of the allow table is let through.
enum class SyscallRule {
  kAllow,             // always
  kEnosys,            // never: answers ENOSYS, so glibc and Python fall back to an older call
  kCloneNoNamespace,  // clone without any CLONE_NEW* flag
  kPersonalitySafe,   // personality without READ_IMPLIES_EXEC or ADDR_NO_RANDOMIZE (or the query)
  kIoctlNoInjection,  // ioctl except TIOCSTI and TIOCLINUX (bytes pushed into a terminal's input)
  kSocketFamily,      // socket: AF_UNIX only, any family when the run has network access
};

struct AllowedSyscall {
  const char* name;
  const char* reason;
  SyscallRule rule = SyscallRule::kAllow;
  // Exists on some architectures only (x86_64's legacy calls, arch_prctl): elsewhere the
  // entry is skipped. Every other entry exists on x86_64 and aarch64 alike.
  bool someArchsOnly = false;
};

// The allow table, grouped by purpose, one entry per system call (seccomp.cc).
[[nodiscard]] std::span<const AllowedSyscall> allowedSyscalls();

// System calls no entry of the table may ever name: they escape the namespaces, reach
// kernel attack surface an untrusted program never needs, or change global machine state.
// The allow-list refuses them like any unlisted call (EPERM); the list is what the unit
// tests and the docs check the table against.
[[nodiscard]] const std::vector<std::string>& deniedSyscalls();

// Refused syscalls fail with EPERM (ENOSYS for clone3, so glibc falls back to clone), so
// Python raises a readable OSError rather than dying.
[[nodiscard]] Result<SeccompProgram> compileSeccomp(const SeccompOptions& options);

}  // namespace pycell::sandbox
