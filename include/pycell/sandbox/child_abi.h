#pragma once
// libpycell_child.so: the C side of a zygote (a Python interpreter, which calls these through
// ctypes). Built into the server's binary and written into each zygote's root.
//
// The zygote receives its init message (pycell_receive_init: the JSON its Python reads, and
// the isolation spec every child applies, both made by the server), imports the profile's
// modules, says it is ready (pycell_send_ready), and hands the process to the fork loop
// (pycell_serve_forks), which runs no Python between forks. In each child, the loop waits
// for the server's go byte (it has put the child into its cgroup) and applies the isolation
// sequence (isolate.h) before it returns to Python: the same sequence, from the same kind of
// plan, as a one-shot sandbox's.
// Messages: zygote_wire.h.
#include <stddef.h>
#include <stdint.h>

extern "C" {

#define PYCELL_API __attribute__((visibility("default")))

// Receives and decodes the server's Init message on `ctl`; returns the length of its JSON
// (pycell_init_json points at it), or -1 (see pycell_last_error).
PYCELL_API long pycell_receive_init(int ctl);
PYCELL_API const char* pycell_init_json(void);
// Sends Ready with `json` ({"imported": [...], "failed": {...}}); 0, or -1.
PYCELL_API int pycell_send_ready(int ctl, const char* json, size_t len);
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
// copied (a fault and a TLB flush), which cost more than the fork itself. Serves Fork
// requests on `ctl` (answered Forked with the child's pidfd, or Error) and reports each
// child that ends (Exit, from wait4). Refuses to fork unless the process is single-threaded.
// Returns 0 in the zygote when the server closed the socket, -1 on failure (see
// last_error), and the request's id (> 0) in a new child: isolated, its five fds at 0..4,
// every other fd closed, the signal mask the zygote's at the call. A child whose isolation
// fails writes the step's record on its result pipe and exits 127: it never returns.
PYCELL_API long pycell_serve_forks(int ctl, const struct pycell_fork_hooks* hooks);

// In a child whose set-up fails after the fork loop (its warm-up): the step's record on the
// result pipe (fd 4), the same way an isolation step reports.
PYCELL_API void pycell_report_failure(const char* step, int err, const char* detail);
}

// Inside the library.
namespace pycell::sandbox {
struct IsolationSpec;
// Records "step: strerror(errno)" for pycell_last_error; returns -1.
int childFail(const char* step);
// The spec from the init message (null before pycell_receive_init succeeded).
const IsolationSpec* childIsolationSpec();
}  // namespace pycell::sandbox
