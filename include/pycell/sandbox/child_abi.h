#pragma once
// The isolation steps of a pooled child, as a C ABI the zygote (a Python interpreter) calls
// through ctypes. Built into libpycell_child.so, which the server ships inside its binary
// and writes into each zygote's root.
//
// In the zygote, between PyOS_BeforeFork and PyOS_AfterFork_* (so the interpreter's own
// fork bookkeeping runs exactly as for os.fork):
//   pycell_clone()   a fork in new user, pid, mount, ipc, uts (and net) namespaces: the child
//                    is PID 1 of its own pid namespace and the zygote's direct child, which
//                    the zygote reaps and reports;
// then in the child, its five fds moved to 0..4:
//   pycell_enter()   wait for the server's go byte on fd 3 (it has put us in our cgroup),
//                    map our own ids, fresh /proc and tmpfs, hostname, rlimits, every
//                    capability dropped, no_new_privs, seccomp last.
#include <stddef.h>
#include <stdint.h>

extern "C" {

struct pycell_child_spec {
  uint32_t uid;  // ids inside: the zygote's own, mapped to themselves
  uint32_t gid;
  int64_t disk_mb;
  const uint64_t* rlimits;  // (resource, soft, hard) triples
  int32_t n_rlimits;
  const void* bpf;          // struct sock_filter[], may be null
  int32_t bpf_len;          // number of instructions
};

#define PYCELL_API __attribute__((visibility("default")))
// Returns the child's pid in the zygote, 0 in the child, -1 on failure (see last_error).
PYCELL_API int pycell_clone(int share_network);
// 0 when isolated; -1 with pycell_last_error() naming the step and errno.
PYCELL_API int pycell_enter(const struct pycell_child_spec* spec);
PYCELL_API const char* pycell_last_error(void);
}
