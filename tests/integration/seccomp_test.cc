// The seccomp filter is an allow-list: inside a real sandbox a system call it does not list
// answers EPERM even when it is harmless (the host answers it otherwise), the newer calls
// glibc and CPython use pass, and an online run (its own path: a fresh interpreter with the
// online filter) talks TCP and UDP on loopback. The table itself: tests/sandbox/seccomp_test.cc.
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;

namespace {

// x86_64 numbers of calls the allow table leaves out although they are harmless: the
// filter's default answers them. cachestat (Linux 6.5) and mseal (6.10) are newer than the
// table; 1000 is no system call at all yet.
const std::map<std::string, std::string> kUnlisted = {
    {"cachestat", "sc(451, -1, 0, 0, 0)"},
    {"mseal", "sc(462, 0, 0, 0)"},
    {"remap_file_pages", "sc(216, 0, 0, 0, 0, 0)"},
    {"future_1000", "sc(1000)"},
};

std::string unlistedCode() {
  std::string code = kPrelude + "out = {}\n";
  for (const auto& [name, call] : kUnlisted) code += "out['" + name + "'] = " + call + "\n";
  return code;
}

// What the same calls answer on the host, outside any filter (the test process runs
// unfiltered): never EPERM, so an EPERM inside is the filter's.
std::map<std::string, int> hostAnswers() {
  auto answer = [](long rc) { return rc >= 0 ? 0 : errno; };
  std::map<std::string, int> out;
  errno = 0;
  out["cachestat"] = answer(::syscall(451, -1L, 0L, 0L, 0L));
  errno = 0;
  out["mseal"] = answer(::syscall(462, 0L, 0L, 0L));
  errno = 0;
  out["remap_file_pages"] = answer(::syscall(216, 0L, 0L, 0L, 0L, 0L));
  errno = 0;
  out["future_1000"] = answer(::syscall(1000));
  return out;
}

// tests/sandbox/typical_programs.py, which seccomp_test.cc (unit) traces outside the
// sandbox: here it runs whole inside one, with `argv` as its command line.
std::string typicalPrograms(const std::string& argv) {
  std::ifstream in(PYCELL_TYPICAL_PROGRAMS);
  REQUIRE(in.good());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return "import sys\nsys.argv = " + argv + "\n" + text;
}

bool onX86() {
#if defined(__x86_64__)
  return true;
#else
  WARN("syscall numbers are x86_64's; skipped on this machine");
  return false;
#endif
}

}  // namespace

TEST_CASE("a harmless system call the allow table does not list answers EPERM in the sandbox",
          "[security][seccomp]") {
  if (!onX86()) return;
  auto host = hostAnswers();
  for (const auto& [name, err] : host) {
    INFO("host: " << name << " -> " << err);
    CHECK(err != EPERM);
  }
  CHECK(host["future_1000"] == ENOSYS);

  auto server = startKernelServer(Framing::kNdjson);
  REQUIRE(isMachineX86(*server));
  // A pooled child (the default profile's pool) and a session.
  Json value = requireValue(*server, unlistedCode() + "out", {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const auto& [name, call] : kUnlisted) {
    INFO(name << " = " << call);
    CHECK(value[name] == "EPERM");
  }
  Json session = server->callResult("session/create", Json::object());
  INFO("session: " << brief(session));
  REQUIRE(session.contains("session"));
  Json inSession = execute(*server, {{"session", session["session"]}, {"code", unlistedCode() + "out"}});
  INFO("in the session: " << brief(inSession));
  REQUIRE(inSession["status"] == "ok");
  for (const auto& [name, call] : kUnlisted) CHECK(inSession["value"][name] == "EPERM");
  requireHealthy(*server);
}

TEST_CASE("the newer system calls glibc and CPython use pass the filter", "[security][seccomp]") {
  auto server = startKernelServer(Framing::kNdjson);
  if (!isMachineX86(*server)) return;
  // Each would answer EPERM if the table missed it; glibc falls back only on ENOSYS.
  Json value = requireValue(*server, kPrelude + R"py(
import select, time
out = {}
open('f', 'w').write('x')
out['statx'] = sc(332, -100, S(b'f'), 0, 0xfff, ctypes.create_string_buffer(256))
out['faccessat2'] = 'ok' if os.access('f', os.R_OK, effective_ids=True) else 'refused'
out['openat2'] = sc(437, -100, S(b'f'), ctypes.create_string_buffer(24), 24)
r, w = os.pipe()
os.dup2(r, 100)
os.closerange(100, 200)
out['close_range'] = sc(436, 100, 200, 0)
fd = os.pidfd_open(os.getpid())
out['pidfd_open'] = 'ok'
os.close(fd)
os.close(os.memfd_create('m'))
out['memfd_create'] = 'ok'
f, g = os.open('f', os.O_RDONLY), os.open('g', os.O_WRONLY | os.O_CREAT)
out['copy_file_range'] = 'ok' if os.copy_file_range(f, g, 1) == 1 else 'short'
out['membarrier'] = sc(324, 0, 0, 0)
out['getrandom'] = 'ok' if len(os.urandom(16)) == 16 else 'short'
out['epoll_pwait2'] = sc(441, select.epoll().fileno(), ctypes.create_string_buffer(12), 1,
                         ctypes.create_string_buffer(16), 0, 0)
out['rseq'] = sc(334, 0, 0, 1, 0)  # unregister of nothing registered here: EINVAL, not EPERM
out['personality_query'] = sc(135, 0xffffffff)
out['clock_nanosleep'] = 'ok' if time.sleep(0.001) is None else 'failed'
out
)py", {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const auto& [name, result] : value.items()) {
    INFO(name << ": " << result);
    CHECK(result != "EPERM");
    CHECK(result != "ENOSYS");
  }
  CHECK(value["statx"] == "ok");
  CHECK(value["openat2"] == "ok");
  CHECK(value["close_range"] == "ok");
  CHECK(value["personality_query"] == "ok");
}

namespace {
// Online runs need the user-mode network stack. Where the server reports none (an
// unprivileged server without access to /dev/net/tun), an online run must be refused, and
// the refusal must say why: that is what is checked there instead.
bool networkStackAvailable() {
  auto server = startServer(Framing::kNdjson);
  Json isolation = server->initialize()["isolation"];
  if (isolation["network"] == "slirp4netns") return true;
  WARN("no network stack for this server (isolation.network = " << isolation["network"].dump()
       << "): online runs are checked to be refused instead");
  return false;
}

void requireRefusedOnline(const CommandResult& r) {
  INFO("exit " << (r.exitCode ? std::to_string(*r.exitCode) : "none") << "\nstderr: " << r.err);
  CHECK(r.exitCode == 3);
  CHECK(r.err.find("network stack unavailable") != std::string::npos);
}
}  // namespace

TEST_CASE("an online run talks TCP and UDP on loopback; unlisted calls stay refused",
          "[security][seccomp]") {
  if (!onX86()) return;
  // `pycell run --allow-network`: a fresh interpreter with the online filter (any socket
  // family). Loopback only, inside the sandbox, to itself.
  CommandResult r = runPycell({"run", "-", "--allow-network", "--json", "--config", kernelOnlyConfig()},
                              unlistedCode() + R"py(
import socket
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', 0))
server.listen(1)
client = socket.create_connection(server.getsockname(), timeout=5)
conn, _ = server.accept()
client.sendall(b'tcp')
out['tcp'] = conn.recv(3).decode()
out['sndbuf'] = client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) > 0
for s in (conn, client, server):
    s.close()
u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u1.bind(('127.0.0.1', 0))
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u2.sendto(b'udp', u1.getsockname())
out['udp'] = u1.recvfrom(3)[0].decode()
out
)py");
  if (!networkStackAvailable()) return requireRefusedOnline(r);
  INFO("exit " << (r.exitCode ? std::to_string(*r.exitCode) : "none") << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exitCode == 0);
  Json result = Json::parse(r.out, nullptr, false);
  REQUIRE_FALSE(result.is_discarded());
  REQUIRE(result["status"] == "ok");
  Json value = result["value"];
  CHECK(value["tcp"] == "tcp");
  CHECK(value["udp"] == "udp");
  CHECK(value["sndbuf"] == true);
  for (const auto& [name, call] : kUnlisted) {
    INFO(name << " = " << call);
    CHECK(value[name] == "EPERM");
  }
}

TEST_CASE("the typical programs the strace test traces run whole inside the sandbox", "[seccomp]") {
  // Threads, fork and multiprocessing, select/poll/epoll, signals, mmap, sockets, sqlite,
  // numpy with OpenBLAS threads, pandas, a matplotlib figure: in a pooled child of the
  // datascience profile (its filter installed after isolation, then the warm-up), and online
  // in a fresh interpreter (`pycell run --allow-network`, TCP and UDP on loopback too).
  // The kernel-only datascience profile, with room for a run of a few seconds.
  TempFile config("typical.json", R"({"profiles": {"datascience":
      {"imports": null, "builtins": {"remove": []}, "allowRaisingLimits": true}}})");
  auto server = startServer(Framing::kNdjson, {"--config", config.path()});
  Json result = execute(*server, {{"code", typicalPrograms("['typical', '.']")},
                                  {"profile", "datascience"},
                                  {"limits", {{"timeoutMs", 60000}, {"memoryMb", 1024}, {"maxProcesses", 64}}}},
                        std::chrono::milliseconds(90000));
  INFO("pooled: " << brief(result));
  CHECK(result["status"] == "ok");
  CHECK(result["stdout"].get<std::string>().find("typical programs: done\n") != std::string::npos);

  TempFile program("typical", typicalPrograms("['typical', '.', '--online']"));
  CommandResult r = runPycell({"run", program.path(), "--allow-network", "--profile", "datascience", "--timeout", "60",
                               "--memory", "1024", "--config", config.path()},
                              {}, std::chrono::milliseconds(90000));
  if (!networkStackAvailable()) return requireRefusedOnline(r);
  INFO("online: exit " << (r.exitCode ? std::to_string(*r.exitCode) : "none") << "\nstdout: " << r.out
                       << "\nstderr: " << r.err);
  CHECK(r.exitCode == 0);
  CHECK(r.out.find("typical programs: done\n") != std::string::npos);
}
