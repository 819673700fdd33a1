#include "pycell/sandbox/netstack.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

extern char** environ;

namespace pycell::sandbox {

namespace {

constexpr size_t kOutputLimit = 64 << 10;  // what slirp4netns may write to its log

std::string findOnPath(const std::string& name) {
  const char* env = ::getenv("PATH");
  std::string path = env && *env ? env : "";
  // Where Debian installs it, whatever PATH the server was started with.
  path += ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  for (size_t start = 0; start <= path.size();) {
    size_t end = std::min(path.find(':', start), path.size());
    std::string dir = path.substr(start, end - start);
    start = end + 1;
    if (dir.empty() || dir[0] != '/') continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// A copy of `fd` at 10 or above, so placing the child's fds at 3 and 4 clobbers none of them.
Result<UniqueFd> lifted(int fd) {
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 10));
  if (!copy) return std::unexpected(sysError("dup"));
  return copy;
}

// Where slirp4netns's output goes: a memory file of fixed size (writes past the end fail),
// read when it gives up: no pipe it could fill and block on.
Result<UniqueFd> makeLogFile() {
  UniqueFd log(static_cast<int>(::syscall(SYS_memfd_create, "pycell-slirp4netns", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (!log) return std::unexpected(sysError("memfd_create"));
  if (::ftruncate(log.get(), kOutputLimit) != 0 ||
      ::fcntl(log.get(), F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
    return std::unexpected(sysError("slirp4netns log"));
  return log;
}

// slirp4netns's command line, for the network namespace of `targetPid`; its fds 3 and 4 are
// the ready and exit pipes.
std::vector<std::string> slirpArgs(const std::string& binary, pid_t targetPid) {
  std::vector<std::string> args = {binary, "--configure", "--mtu=65520",
                                   "--disable-host-loopback",  // 10.0.2.2 does not lead to the host's 127.0.0.1
                                   "--enable-seccomp", "--ready-fd=3", "--exit-fd=4"};
  // As root, slirp4netns also confines itself (a mount namespace of its own, every capability
  // but CAP_NET_BIND_SERVICE dropped). Unprivileged, that would need uid 0 in the sandbox's
  // user namespace, which maps only the sandbox's own uid: it runs as the server's user then.
  if (::geteuid() == 0) args.push_back("--enable-sandbox");
  args.push_back(std::to_string(targetPid));
  args.push_back("tap0");
  return args;
}

}  // namespace

NetStackSupport probeNetStack(bool netNamespace, bool userNamespace) {
  NetStackSupport s;
  if (!netNamespace) {
    s.detail = "no network namespace for the sandbox, so network runs are refused (never the host's network)";
    s.fix = "see networkNamespace";
    return s;
  }
  if (!userNamespace && ::geteuid() != 0) {
    s.detail = "entering a sandbox's network namespace needs a user namespace when the server is not root";
    s.fix = "see userNamespace";
    return s;
  }
  s.binary = findOnPath("slirp4netns");
  if (s.binary.empty()) {
    s.detail = "slirp4netns not found on PATH, so network runs are refused";
    s.fix = "install slirp4netns (apt-get install slirp4netns)";
    return s;
  }
  UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!tun) {
    s.detail = std::string("/dev/net/tun: ") + std::strerror(errno) + ", so slirp4netns cannot make the sandbox's interface";
    s.fix = "make /dev/net/tun readable and writable for the server's user (udev gives it mode 0666), or load the tun module";
    return s;
  }
  s.available = true;
  s.detail = s.binary + ": network runs get a namespace of their own with outbound access only (no host loopback)";
  return s;
}

NetStack::NetStack(NetStack&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      readyR_(std::move(other.readyR_)),
      exitW_(std::move(other.exitW_)),
      logR_(std::move(other.logR_)) {}

NetStack& NetStack::operator=(NetStack&& other) noexcept {
  if (this != &other) {
    stop();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    readyR_ = std::move(other.readyR_);
    exitW_ = std::move(other.exitW_);
    logR_ = std::move(other.logR_);
  }
  return *this;
}

NetStack::~NetStack() { stop(); }

void NetStack::stop() {
  exitW_.reset();  // its cue to exit; the kill below does not wait for it to notice
  if (pid_ > 0) {
    if (pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    else ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  pidfd_.reset();
  readyR_.reset();
  logR_.reset();
}

Result<NetStack> NetStack::start(const std::string& binary, pid_t targetPid) {
  auto ready = makePipe();
  if (!ready) return std::unexpected(ready.error());
  auto exit = makePipe();
  if (!exit) return std::unexpected(exit.error());
  auto madeLog = makeLogFile();
  if (!madeLog) return std::unexpected(madeLog.error());
  UniqueFd log = std::move(*madeLog);
  auto logFd = lifted(log.get()), readyFd = lifted(ready->write.get()), exitFd = lifted(exit->read.get());
  for (auto* fd : {&logFd, &readyFd, &exitFd})
    if (!*fd) return std::unexpected(fd->error());

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, logFd->get(), 1);
  ::posix_spawn_file_actions_adddup2(&actions, logFd->get(), 2);
  ::posix_spawn_file_actions_adddup2(&actions, readyFd->get(), 3);
  ::posix_spawn_file_actions_adddup2(&actions, exitFd->get(), 4);
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 5);
  // The server blocks the signals it reads through a signalfd and ignores SIGPIPE; neither
  // is for slirp4netns.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
  std::vector<std::string> args = slirpArgs(binary, targetPid);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, binary.c_str(), &actions, &attr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    return std::unexpected(sysError("network stack unavailable: starting " + binary));
  }
  NetStack stack;
  stack.pid_ = pid;
  stack.pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  stack.readyR_ = std::move(ready->read);
  stack.exitW_ = std::move(exit->write);
  stack.logR_ = std::move(log);
  return stack;  // our copies of its ends (ready write, exit read) close here
}

std::string NetStack::output() {
  if (!logR_) return {};
  std::string text(kOutputLimit, '\0');
  ssize_t n = ::pread(logR_.get(), text.data(), text.size(), 0);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  text.resize(std::strlen(text.c_str()));  // the file is zero-filled past what was written
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  // The lines that say what went wrong come last; the start-up banner is noise.
  if (text.size() > 600) text = "..." + text.substr(text.size() - 600);
  for (auto& c : text)
    if (c == '\n') c = ';';
  return text;
}

Status NetStack::awaitReady(std::chrono::milliseconds timeout) {
  if (!readyR_) return {};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd p{readyR_.get(), POLLIN, 0};
  int rc;
  do {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
  } while (rc < 0 && errno == EINTR);
  char byte = 0;
  ssize_t n = rc > 0 ? ::read(readyR_.get(), &byte, 1) : -1;
  if (n == 1 && byte == '1') {
    readyR_.reset();
    logR_.reset();
    return {};
  }
  std::string said = output();
  std::string why = rc == 0 ? "slirp4netns did not bring the network up within " + std::to_string(timeout.count()) + " ms"
                            : "slirp4netns exited before the network was up";
  stop();
  return std::unexpected(Error{"network stack unavailable: " + why + (said.empty() ? "" : " (" + said + ")")});
}

}  // namespace pycell::sandbox
