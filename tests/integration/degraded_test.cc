// Where user namespaces cannot be created (Docker's default profile, Ubuntu 24.04's AppArmor
// rule, user.max_user_namespaces=0), pycell must refuse, say why and how to fix it, and with
// --allow-degraded run with what remains and say so. The tests make such a machine for real:
// inside a user namespace of its own, root lowers user.max_user_namespaces to 0, then execs
// pycell there.
#include <catch2/catch.hpp>


#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> withoutUserNamespaces(const std::vector<std::string>& pycellArgs) {
  std::vector<std::string> argv = commandLine(pycellArgs);
  // commandLine may start with setpriv (the unprivileged run): keep it outermost, so the
  // user namespace below belongs to that user.
  auto at = argv.begin();
  while (at != argv.end() && *at != pycellBinary()) ++at;
  std::vector<std::string> wrapper = {findInPath("unshare"), "--user", "--map-root-user", findInPath("sh"), "-c",
                                      "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"", "sh"};
  argv.insert(at, wrapper.begin(), wrapper.end());
  return argv;
}

}  // namespace

TEST_CASE("without user namespaces the server refuses to start, naming the cause and the fix", "[degraded]") {
  CommandResult r = runCommand(withoutUserNamespaces({"serve"}), "");
  INFO("stderr: " << r.err);
  REQUIRE(r.exitCode.has_value());
  CHECK(*r.exitCode == 3);
  CHECK(r.out.empty());  // stdout carries protocol only, and there was none
  CHECK(r.err.find("userNamespace unavailable") != std::string::npos);
  CHECK(r.err.find("fix:") != std::string::npos);
  CHECK(r.err.find("--allow-degraded") != std::string::npos);
}

TEST_CASE("pycell check reports the missing user namespace with its fix and exits 1", "[degraded]") {
  CommandResult r = runCommand(withoutUserNamespaces({"check"}), "");
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exitCode.has_value());
  CHECK(*r.exitCode == 1);
  CHECK(r.out.find("FAIL  userNamespace") != std::string::npos);
  CHECK(r.out.find("fix: enable unprivileged user namespaces") != std::string::npos);
  CHECK(r.out.find("level: degraded") != std::string::npos);
}

TEST_CASE("with --allow-degraded the server runs code, reports degraded isolation and warns the client",
          "[degraded]") {
  ServerProcess server(ServerProcess::Argv{withoutUserNamespaces({"serve", "--allow-degraded"})}, Framing::kNdjson);
  Json init = server.callResult("initialize");
  const Json& iso = init["isolation"];
  CHECK(iso["level"] == "degraded");
  CHECK(iso["userNamespace"] == false);
  CHECK(iso["seccomp"] == true);
  bool warned = false;
  for (const auto& m : server.notifications())
    if (m.value("method", "") == "window/logMessage" &&
        m["params"]["message"].get<std::string>().find("degraded") != std::string::npos)
      warned = true;
  CHECK(warned);
  Json result = executeCode(server, "import os\nprint(sorted(os.listdir('/')))\nos.path.exists('/etc/shadow')");
  INFO(brief(result));
  REQUIRE(result["status"] == "ok");
  CHECK(server.callResult("shutdown").is_null());
  server.notify("exit");
  CHECK(server.waitExit(5000ms) == 0);
  // What remains still holds: the server (root of its namespace) could build the private root.
  CHECK(result["value"] == false);
  CHECK(result["stdout"].get<std::string>().find("'sandbox'") != std::string::npos);
}
