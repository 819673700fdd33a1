#pragma once
// The isolation steps of a pooled child, as a C ABI the zygote (a Python interpreter) calls
// through ctypes. Built into libpycell_child.so, which the server ships inside its binary
// and writes into each zygote's root.
//
// In the zygote (pycell_serve_forks, per request), between PyOS_BeforeFork and
// PyOS_AfterFork_* (so the interpreter's own fork bookkeeping runs exactly as for os.fork):
//   pycell_clone()   a fork in new user, pid, mount, ipc, uts (and net) namespaces: the child
//                    is PID 1 of its own pid namespace and the zygote's direct child, which
//                    the zygote reaps and reports;
// then in the child, which waits there for the server's go byte (it has put the child in
// its cgroup), copies in the pages its elder sibling learned (pycell_learn_pages) and
// moves its five fds to 0..4:
//   pycell_enter()   map our own ids, fresh /proc, one fresh tmpfs for /sandbox, /tmp and
//                    /dev/shm (scratch.h) with the binds it covers bound again on top,
//                    hostname, rlimits, every capability dropped, no_new_privs, seccomp last.
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
  // The zygote's allowRead/allowWrite binds that the child's own tmpfs would cover (under
  // /sandbox, /tmp, /dev/shm), in the zygote's order: bound again on top of it.
  const char* const* binds;
  const uint8_t* bind_writable;
  int32_t n_binds;          // at most 64
};

#define PYCELL_API __attribute__((visibility("default")))
// Returns the child's pid in the zygote, 0 in the child, -1 on failure (see last_error).
PYCELL_API int pycell_clone(int share_network);
// 0 when isolated; -1 with pycell_last_error() naming the step and errno.
PYCELL_API int pycell_enter(const struct pycell_child_spec* spec);
PYCELL_API const char* pycell_last_error(void);

// The interpreter's fork bookkeeping (PyOS_BeforeFork and PyOS_AfterFork_*), passed in by
// the zygote so this library needs no libpython.
struct pycell_fork_hooks {
  void (*before)(void);
  void (*after_parent)(void);
  void (*after_child)(void);
};

// The zygote's fork loop, in C so the zygote runs no Python between forks: Python code
// writes reference counts all over the heap, and after each fork every page it writes is
// copied (a fault and a TLB flush), which cost more than the fork itself. Serves the
// server's datagrams on `ctl` (SOCK_SEQPACKET): {"op":"fork","id":N} with five fds is
// answered {"event":"forked","id":N} with the child's pidfd, or {"event":"error",...};
// each child that ends is reported {"event":"exit","id":N,"status",...}. Refuses to fork
// unless the process is single-threaded.
// Returns 0 in the zygote when the server closed the socket, -1 on failure (see
// last_error), and N (> 0) in a new child, whose five fds are then 0..4 (also written to
// `fds`), with every other fd closed and the signal mask the zygote's at the call.
PYCELL_API long pycell_serve_forks(int ctl, int share_network, const struct pycell_fork_hooks* hooks, int* fds);
// In a child, once it has set itself up and warmed up: the zygote's first such child
// records the pages it wrote, and its later children copy those in right after the fork,
// one madvise(MADV_POPULATE_WRITE) per range instead of a fault per page. Every child must
// call this before any program runs: it unmaps the region the zygote shares with its
// children. Returns how many ranges this call recorded (0 but for the first child).
PYCELL_API int pycell_learn_pages(void);
}

// Inside the library: records "step: strerror(errno)" for pycell_last_error; returns -1.
namespace pycell::sandbox {
int childFail(const char* step);
}
