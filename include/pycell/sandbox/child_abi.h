#pragma once
// The isolation steps a pooled child runs after its zygote forked it, as a C ABI the zygote
// (a Python interpreter) calls through ctypes. Built into libpycell_child.so, which the
// server ships inside its binary and writes into each zygote's root.
//
// Order, in the child the zygote forked (Python's os.fork, so the interpreter's own fork
// hooks run at both levels):
//   pycell_unshare()   wait for the server's go byte on fd 3 (it has put us in our cgroup),
//                      new user/mount/pid/net/ipc/uts namespaces, map our own ids;
//   os.fork()          the child becomes PID 1 of the new pid namespace;
//   pycell_relay(pid)  in the parent: wait for that child and end the same way (never returns);
//   pycell_isolate()   in the child: fresh /proc and tmpfs, hostname, rlimits, capabilities
//                      dropped, no_new_privs, seccomp last.
#include <stddef.h>
#include <stdint.h>

extern "C" {

struct pycell_child_spec {
  uint32_t uid;
  uint32_t gid;
  int64_t disk_mb;
  const uint64_t* rlimits;  // (resource, soft, hard) triples
  int32_t n_rlimits;
  const void* bpf;          // struct sock_filter[], may be null
  int32_t bpf_len;          // number of instructions
};

#define PYCELL_API __attribute__((visibility("default")))
PYCELL_API int pycell_unshare(int share_network);
PYCELL_API void pycell_relay(int pid) __attribute__((noreturn));
PYCELL_API int pycell_isolate(const struct pycell_child_spec* spec);
PYCELL_API const char* pycell_last_error(void);
}
