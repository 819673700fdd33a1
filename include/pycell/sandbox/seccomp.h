#pragma once
// The seccomp filter: compiled once in the server with libseccomp, installed in each child
// as raw BPF (no allocation, no library call after fork). Installed LAST: every earlier
// setup step needs syscalls this filter denies (mount, pivot_root, unshare...).
#include <linux/filter.h>

#include <string>
#include <vector>

#include "pycell/process/unique_fd.h"

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

// Denied syscalls fail with EPERM (ENOSYS for clone3, so glibc falls back to clone), so
// Python raises a readable OSError rather than dying.
[[nodiscard]] Result<SeccompProgram> compileSeccomp(const SeccompOptions& options);

// For the child: prctl(PR_SET_SECCOMP). Async-signal-safe. Requires no_new_privs first.
[[nodiscard]] int installSeccomp(const SeccompProgram& program);

// The names of the syscalls the filter denies outright, for `pycell check` and the docs.
[[nodiscard]] const std::vector<std::string>& deniedSyscalls();

}  // namespace pycell::sandbox
