// The host's view of one sandbox's pid namespace, for the hostile-code cases that check that
// nothing of a run outlives it (see hostile_support.h).
#include "hostile_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "host_view.h"

namespace pycell::testing::hostile {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string readLink(const std::string& path) {
  std::error_code ec;
  auto target = fs::read_symlink(path, ec);
  return ec ? std::string() : target.string();
}

}  // namespace

std::vector<pid_t> pidsInNamespace(const std::string& ns) {
  std::vector<pid_t> out;
  for (const auto& p : allProcesses())
    if (p.state != 'Z' && p.state != 'X' && readLink("/proc/" + std::to_string(p.pid) + "/ns/pid") == ns) out.push_back(p.pid);
  return out;
}

std::vector<pid_t> awaitNamespaceEmpty(const std::string& ns, Millis timeout) {
  std::vector<pid_t> left;
  for (Stopwatch wait; wait.elapsed() < timeout; std::this_thread::sleep_for(50ms)) {
    left = pidsInNamespace(ns);
    if (left.empty()) break;
  }
  return left;
}

std::string pidList(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t p : pids) {
    std::ifstream comm("/proc/" + std::to_string(p) + "/comm");
    std::string name;
    std::getline(comm, name);
    out += " " + std::to_string(p) + "(" + name + ")";
  }
  return out;
}

NamespaceHold::NamespaceHold(const std::string& ns) {
  unsigned long long number = 0;
  if (std::sscanf(ns.c_str(), "pid:[%llu]", &number) != 1) return;
  for (pid_t pid : pidsInNamespace(ns)) {
    int fd = ::open(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st{};
    if (fd >= 0 && ::fstat(fd, &st) == 0 && st.st_ino == number) {
      fd_ = fd;
      return;
    }
    if (fd >= 0) ::close(fd);  // that process ended, or its pid is another's now
  }
}

NamespaceHold::~NamespaceHold() {
  if (fd_ >= 0) ::close(fd_);
}

SandboxNamespace startAndReadNamespace(ServerProcess& server, Json params, int64_t& id) {
  const std::string executionId = params["executionId"];
  params["stream"] = true;
  size_t from = server.messages().size();
  id = server.request("execute", std::move(params));
  auto printed = awaitOutput(server, executionId, "NS=", from);
  INFO(server.describe());
  REQUIRE(printed.has_value());
  const std::string text = (*printed)["params"]["text"];
  size_t begin = text.find("NS=") + 3;
  size_t end = text.find(']', begin);
  REQUIRE(end != std::string::npos);
  SandboxNamespace sandbox{text.substr(begin, end + 1 - begin), nullptr};
  sandbox.hold = std::make_unique<NamespaceHold>(sandbox.ns);
  REQUIRE(sandbox.hold->held());
  return sandbox;
}

}  // namespace pycell::testing::hostile
