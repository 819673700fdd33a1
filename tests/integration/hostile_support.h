// Helpers shared by the hostile-code cases (hostile_test.cc, hostile_more_test.cc): a Python
// prelude for raw syscalls through ctypes, and the checks most cases end with.
#pragma once

#include <catch2/catch.hpp>

#include <string>

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

}  // namespace pycell::testing::hostile
