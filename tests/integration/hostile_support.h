// Helpers shared by the hostile-code cases (hostile_*_test.cc, one file per thing attacked):
// a Python prelude for raw syscalls through ctypes, the checks most cases end with, and the
// host's view of one sandbox's pid namespace (hostile_support.cc).
#pragma once

#include <catch2/catch.hpp>

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "server_process.h"

namespace pycell::testing::hostile {


// A helper every syscall snippet starts with: sc(nr, *args) makes a raw x86_64 syscall and
// returns 'ok' or the errno's name; a clone that succeeded exits at once in the child.
inline const std::string kPrelude =
    "import ctypes, errno, os, platform, socket\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.syscall.restype = ctypes.c_long\n"
    "L = ctypes.c_long\n"
    "def name(e):\n"
    "    return errno.errorcode.get(e, str(e))\n"
    "def sc(nr, *args):\n"
    "    ctypes.set_errno(0)\n"
    "    rc = libc.syscall(L(nr), *[L(a) if isinstance(a, int) else a for a in args])\n"
    "    e = ctypes.get_errno()\n"
    "    if rc == 0 and nr == 56 and os.getpid() != PID:\n"
    "        os._exit(0)\n"
    "    return 'ok' if rc >= 0 else name(e)\n"
    "PID = os.getpid()\n"
    "S = ctypes.c_char_p\n";

// The execution's value, after requiring status "ok".
inline Json requireValue(ServerProcess& server, const std::string& code, Json limits = nullptr) {
  Json result = executeCode(server, code, std::move(limits));
  INFO("result: " << brief(result));
  REQUIRE(result["status"] == "ok");
  return result["value"];
}

// The server still runs code and answers correctly.
inline void requireHealthy(ServerProcess& server) {
  Json after = executeCode(server, "print('alive')", {{"timeoutMs", 5000}});
  INFO("after: " << brief(after) << "\nserver: " << server.describe());
  REQUIRE(after["status"] == "ok");
  CHECK(after["stdout"] == "alive\n");
}

// Raw syscall numbers in the snippets are x86_64's: elsewhere a case is skipped, with a warning.
inline bool isMachineX86(ServerProcess& server) {
  Json machine = requireValue(server, "import platform\nplatform.machine()");
  if (machine != "x86_64") WARN("syscall numbers are x86_64's; skipped on " << machine);
  return machine == "x86_64";
}

inline bool eperm(const Json& v) { return v == "EPERM" || v == "ENOSYS"; }

// ---- one sandbox's pid namespace, seen from the host (hostile_support.cc) ------------------

// Live host processes (zombies excluded) whose pid namespace is `ns`, as
// /proc/<pid>/ns/pid reads (e.g. "pid:[4026532181]"): the processes of one sandbox, whatever
// they renamed themselves to and however they detached.
std::vector<pid_t> pidsInNamespace(const std::string& ns);

// Waits until no live process is left in `ns`; returns those still there at the timeout.
std::vector<pid_t> awaitNamespaceEmpty(const std::string& ns, Millis timeout);

// " pid(comm)" for each pid, for messages.
std::string pidList(const std::vector<pid_t>& pids);

// An open fd on a sandbox's pid namespace, so that its number ("pid:[N]") names it alone
// for as long as a test looks: once a namespace's processes are gone the kernel hands its
// inode number to the next namespace made, which may well be a new pooled child's.
class NamespaceHold {
 public:
  explicit NamespaceHold(const std::string& ns);
  NamespaceHold(const NamespaceHold&) = delete;
  NamespaceHold& operator=(const NamespaceHold&) = delete;
  ~NamespaceHold();
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct SandboxNamespace {
  std::string ns;  // as /proc/<pid>/ns/pid reads, e.g. "pid:[4026532181]"
  std::unique_ptr<NamespaceHold> hold;
};

// Starts an execution with streamed output whose program first prints
// "NS=" + os.readlink('/proc/self/ns/pid'), and returns that namespace, held open, once it
// is printed.
SandboxNamespace startAndReadNamespace(ServerProcess& server, Json params, int64_t& id);

}  // namespace pycell::testing::hostile
