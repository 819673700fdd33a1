#include "server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef PYCELL_BINARY
#error "PYCELL_BINARY must name the pycell binary under test"
#endif

namespace pycell::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::runtime_error sysFailure(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

Millis remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
  return std::max(left, Millis{0});
}

// A write to a pipe whose reader is gone must fail with EPIPE, not kill the test runner.
void ignoreSigpipe() {
  static const bool done = [] {
    ::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

void setNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) throw sysFailure("fcntl");
}

// Reads what is available without blocking; false on EOF.
bool readAvailable(int fd, std::string& into) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return true;
    return false;  // EIO and friends: treat as closed
  }
}

// Waits for `events` on fd; returns revents (0 on timeout).
short pollOne(int fd, short events, Millis timeout) {
  pollfd p{fd, events, 0};
  for (;;) {
    int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc >= 0) return rc == 0 ? 0 : p.revents;
    if (errno != EINTR) throw sysFailure("poll");
  }
}


std::string tail(const std::string& text, size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

// ---- configuration ------------------------------------------------------------------------

std::string_view framingName(Framing framing) {
  return framing == Framing::kLsp ? "lsp" : "ndjson";
}

std::optional<uid_t> runAsUid() {
  const char* value = std::getenv("PYCELL_TEST_RUN_AS");
  if (value == nullptr || *value == '\0') return std::nullopt;
  return static_cast<uid_t>(std::stoul(value));
}

// Whether `uid` may traverse every directory down to `binary`.
static bool reachableBy(uid_t uid, const std::filesystem::path& binary) {
  for (auto p = binary.parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return false;
    if (!(st.st_mode & (st.st_uid == uid ? S_IXUSR : S_IXOTH))) return false;
    if (p == p.root_path()) break;
  }
  return true;
}

// The binary under test. For the unprivileged run, where the build directory lies below
// one the other user cannot enter (a checkout in root's home, say), a copy in a fresh
// world-readable temporary directory: the binary carries everything it needs inside it.
std::string pycellBinary() {
  static const std::string path = [] {
    std::string built = PYCELL_BINARY;
    auto uid = runAsUid();
    if (!uid || reachableBy(*uid, built)) return built;
    char dir[] = "/tmp/pycell-test-bin-XXXXXX";
    if (!::mkdtemp(dir) || ::chmod(dir, 0755) != 0) throw sysFailure("mkdtemp for a reachable binary");
    std::string copy = std::string(dir) + "/pycell";
    std::filesystem::copy_file(built, copy);
    ::chmod(copy.c_str(), 0755);
    static std::string cleanupDir = dir;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(cleanupDir, ignored);
    });
    return copy;
  }();
  return path;
}

// setpriv would only say "Permission denied": name the directory that is in the way instead.
static void requireReachableBy(uid_t uid, const std::filesystem::path& binary) {
  for (auto p = binary; !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) throw sysFailure("stat " + p.string());
    bool own = st.st_uid == uid;
    if (!(st.st_mode & (own ? S_IXUSR : S_IXOTH))) {
      throw std::runtime_error(binary.string() + " cannot be executed by uid " +
                               std::to_string(uid) + ": " + p.string() +
                               " lacks execute permission for it; build in a directory "
                               "everyone can traverse");
    }
    if (p == p.root_path()) break;
  }
}

std::string findInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = dir + "/" + name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "/usr/bin/" + name;
}

std::vector<std::string> commandLine(const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  if (auto uid = runAsUid()) {
    requireReachableBy(*uid, pycellBinary());
    std::string id = std::to_string(*uid);
    argv = {findInPath("setpriv"), "--reuid=" + id, "--regid=" + id, "--clear-groups", "--"};
  }
  argv.push_back(pycellBinary());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// ---- Fd -----------------------------------------------------------------------------------

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

int Fd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

// ---- ChildProcess -------------------------------------------------------------------------

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::vector<ChildRlimit>& rlimits) {
  ignoreSigpipe();
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) throw sysFailure("pipe2");
  Fd inRead(in[0]), inWrite(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) throw sysFailure("pipe2");
  Fd outRead(out[0]), outWrite(out[1]);

  std::string tmpl = (std::filesystem::temp_directory_path() / "pycell-it-stderr-XXXXXX").string();
  Fd err(::mkostemp(tmpl.data(), O_CLOEXEC));
  if (!err.valid()) throw sysFailure("mkostemp " + tmpl);
  ::unlink(tmpl.c_str());

  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  // Our ends only: O_NONBLOCK lives on the open file description, which the child's ends
  // do not share. Done before fork so nothing can throw with a child already running.
  setNonBlocking(inWrite.get());
  setNonBlocking(outRead.get());

  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) throw sysFailure("fork");
  if (pid == 0) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);  // an ignored disposition would survive exec
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(inRead.get(), 0) < 0 || ::dup2(outWrite.get(), 1) < 0 || ::dup2(err.get(), 2) < 0)
      ::_exit(127);
    ::close_range(3, ~0U, 0);  // no fd of the test process leaks into the server
    for (const auto& r : rlimits) {
      const rlimit value{r.soft, r.hard};
      if (::setrlimit(r.resource, &value) != 0) {
        const char msg[] = "pycell integration harness: setrlimit failed\n";
        (void)!::write(2, msg, sizeof msg - 1);
        ::_exit(127);
      }
    }
    ::execv(cargv[0], cargv.data());
    const char msg[] = "pycell integration harness: execv failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  pid_ = pid;
  stdin_ = std::move(inWrite);
  stdout_ = std::move(outRead);
  stderr_file_ = std::move(err);
}

ChildProcess::~ChildProcess() { kill(); }

void ChildProcess::kill() {
  if (pid_ <= 0 || exit_code_) return;
  ::kill(pid_, SIGKILL);  // only the pid this object started
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::optional<int> ChildProcess::poll() const {
  if (exit_code_ || pid_ <= 0) return exit_code_;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

std::string ChildProcess::stderrText() const {
  std::string text;
  char buf[65536];
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(stderr_file_.get(), buf, sizeof buf, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    offset += n;
  }
  return text;
}

// ---- ServerProcess ------------------------------------------------------------------------

ServerProcess::ServerProcess(std::vector<std::string> args, Framing framing)
    : ServerProcess(Argv{commandLine(args)}, framing) {}

ServerProcess::ServerProcess(Argv argv, Framing framing)
    : framing_(framing), args_(argv.words), child_(argv.words, argv.rlimits) {}

ServerProcess::~ServerProcess() {
  try {
    if (!exited()) {
      closeStdin();
      waitExit(Millis{2000});
    }
  } catch (const std::exception&) {
    // The ChildProcess destructor still kills and reaps it.
  }
}

void ServerProcess::send(const Json& message) {
  std::string body = message.dump();
  if (framing_ == Framing::kNdjson) {
    sendRaw(body + "\n");
  } else {
    sendRaw("Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }
}

void ServerProcess::sendRaw(std::string_view bytes) {
  if (child_.stdinFd() < 0) throw std::runtime_error("sendRaw after closeStdin");
  auto deadline = Clock::now() + Millis{10000};
  while (!bytes.empty()) {
    // Keep reading stdout while writing, so a server blocked on its own output cannot
    // deadlock with us.
    pollfd fds[2] = {{child_.stdinFd(), POLLOUT, 0}, {child_.stdoutFd(), POLLIN, 0}};
    int nfds = stdout_closed_ ? 1 : 2;
    int rc = ::poll(fds, nfds, static_cast<int>(remaining(deadline).count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) throw sysFailure("poll");
    if (rc == 0) throw std::runtime_error("server did not read its stdin for 10 s; " + describe());
    if (nfds == 2 && fds[1].revents != 0) {
      if (!readAvailable(child_.stdoutFd(), buffer_)) stdout_closed_ = true;
      parseFrames();
    }
    if (fds[0].revents != 0) {
      ssize_t n = ::write(child_.stdinFd(), bytes.data(), bytes.size());
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        throw sysFailure("write to server stdin (" + describe() + ")");
      }
    }
  }
}

int64_t ServerProcess::request(const std::string& method, Json params) {
  int64_t id = next_id_++;
  Json message = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) message["params"] = std::move(params);
  send(message);
  return id;
}

void ServerProcess::notify(const std::string& method, Json params) {
  Json message = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) message["params"] = std::move(params);
  send(message);
}

std::optional<Json> ServerProcess::waitResponse(int64_t id, Millis timeout) {
  return waitResponse(Json(id), timeout);
}

std::optional<Json> ServerProcess::waitResponse(const Json& id, Millis timeout) {
  return waitMessage(
      [&](const Json& m) {
        return m.is_object() && !m.contains("method") && m.contains("id") && m["id"] == id;
      },
      timeout);
}

std::optional<Json> ServerProcess::waitMessage(const std::function<bool(const Json&)>& match,
                                               Millis timeout, size_t from) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    for (size_t i = from; i < messages_.size(); ++i) {
      if (match(messages_[i])) return messages_[i];
    }
    from = std::max(from, messages_.size());
    if (stdout_closed_ || Clock::now() >= deadline) return std::nullopt;
    pump(remaining(deadline));
  }
}

void ServerProcess::drain() { pump(Millis{0}); }

bool ServerProcess::pump(Millis timeout) {
  if (stdout_closed_) return false;
  if (pollOne(child_.stdoutFd(), POLLIN, timeout) != 0) {
    if (!readAvailable(child_.stdoutFd(), buffer_)) stdout_closed_ = true;
    parseFrames();
  }
  return !stdout_closed_;
}

void ServerProcess::parseFrames() {
  while (framing_ == Framing::kNdjson ? parseNdjson() : parseLsp()) {
  }
}

bool ServerProcess::parseNdjson() {
  size_t nl = buffer_.find('\n');
  if (nl == std::string::npos) return false;
  std::string line = buffer_.substr(0, nl);
  buffer_.erase(0, nl + 1);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (!trim(line).empty()) accept(line);
  return true;
}

bool ServerProcess::parseLsp() {
  size_t end = buffer_.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string headers = buffer_.substr(0, end);
  std::optional<size_t> length;
  std::stringstream lines(headers);
  std::string line;
  while (std::getline(lines, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (lower(trim(line.substr(0, colon))) == "content-length") {
      try {
        length = std::stoul(trim(line.substr(colon + 1)));
      } catch (const std::exception&) {
      }
    }
  }
  if (!length) {
    malformed_.push_back("headers without Content-Length: " + headers);
    buffer_.erase(0, end + 4);
    return true;
  }
  if (buffer_.size() < end + 4 + *length) return false;
  std::string body = buffer_.substr(end + 4, *length);
  buffer_.erase(0, end + 4 + *length);
  accept(body);
  return true;
}

void ServerProcess::accept(std::string_view body) {
  Json parsed;
  try {
    parsed = Json::parse(body);
  } catch (const std::exception&) {
    malformed_.emplace_back(body);
    return;
  }
  if (parsed.is_array()) {  // a batch answer
    for (auto& m : parsed) messages_.push_back(std::move(m));
  } else {
    messages_.push_back(std::move(parsed));
  }
}

std::vector<Json> ServerProcess::notifications() const {
  std::vector<Json> out;
  for (const auto& m : messages_) {
    if (m.is_object() && m.contains("method") && !m.contains("id")) out.push_back(m);
  }
  return out;
}

void ServerProcess::closeStdin() { child_.closeStdin(); }

void ServerProcess::closeStdout() {
  child_.closeStdout();
  stdout_closed_ = true;
}

std::optional<int> ServerProcess::waitExit(Millis timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto code = child_.poll()) {
      drain();
      return code;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    // Keep reading its stdout so a server writing its last replies is never stuck.
    if (!pump(std::min(remaining(deadline), Millis{20})))
      std::this_thread::sleep_for(std::min(remaining(deadline), Millis{20}));
  }
}

bool ServerProcess::exited() { return child_.poll().has_value(); }

std::string ServerProcess::describe() const {
  std::ostringstream out;
  out << "server pid " << child_.pid() << " (pycell";
  for (const auto& a : args_) out << ' ' << a;
  out << ", " << framingName(framing_) << " framing";
  if (auto uid = runAsUid()) out << ", as uid " << *uid;
  out << ") ";
  if (auto code = child_.exitCode())
    out << "exited with " << *code;
  else
    out << "running";
  std::string err = stderrText();
  out << "\n  stderr (tail): " << (err.empty() ? "(empty)" : tail(err, 3000));
  size_t first = messages_.size() > 3 ? messages_.size() - 3 : 0;
  for (size_t i = first; i < messages_.size(); ++i)
    out << "\n  received #" << i << ": " << brief(messages_[i], 600);
  if (!buffer_.empty()) out << "\n  unparsed stdout: " << tail(buffer_, 500);
  for (const auto& m : malformed_) out << "\n  malformed stdout: " << tail(m, 300);
  return out.str();
}

Json ServerProcess::call(const std::string& method, Json params, Millis timeout) {
  int64_t id = request(method, std::move(params));
  auto response = waitResponse(id, timeout);
  if (!response) {
    throw std::runtime_error("no response to " + method + " #" + std::to_string(id) + " within " +
                             std::to_string(timeout.count()) + " ms; " + describe());
  }
  return *response;
}

Json ServerProcess::callResult(const std::string& method, Json params, Millis timeout) {
  Json response = call(method, params, timeout);
  if (!response.contains("result")) {
    throw std::runtime_error(method + " " + params.dump().substr(0, 500) + " answered " +
                             response.dump().substr(0, 2000) + " instead of a result");
  }
  return response["result"];
}

Json ServerProcess::initialize() {
  Json result = callResult("initialize", {{"processId", nullptr},
                                          {"clientInfo", {{"name", "pycell-integration-tests"}}},
                                          {"rootUri", nullptr},
                                          {"capabilities", Json::object()}});
  notify("initialized", Json::object());
  return result;
}

// ---- helpers ------------------------------------------------------------------------------

namespace {

bool hasConfig(const std::vector<std::string>& args) {
  return std::find(args.begin(), args.end(), "--config") != args.end();
}

const std::string& defaultPoolOnlyConfig() {
  static TempFile config("default-pool-only.json", R"({"profiles": {"datascience": {"pool": {"size": 0}}, "javascript": {"pool": {"size": 0}}}})");
  return config.path();
}

const std::string& kernelOnlyDefaultPoolConfig() {
  static TempFile config("kernel-only-default-pool.json", R"({"profiles": {
      "default": {"imports": null, "builtins": {"remove": []}},
      "datascience": {"imports": null, "builtins": {"remove": []}, "pool": {"size": 0}},
      "javascript": {"imports": null, "pool": {"size": 0}}}})");
  return config.path();
}

}  // namespace

std::unique_ptr<ServerProcess> startServer(Framing framing, const std::vector<std::string>& extra, Pools pools) {
  std::vector<std::string> args = {"serve", "--framing", std::string(framingName(framing))};
  args.insert(args.end(), extra.begin(), extra.end());
  if (pools == Pools::Default && !hasConfig(extra)) args.insert(args.end(), {"--config", defaultPoolOnlyConfig()});
  auto server = std::make_unique<ServerProcess>(args, framing);
  if (framing == Framing::kLsp) server->initialize();
  return server;
}

const std::string& kernelOnlyConfig() {
  static TempFile config("kernel-only.json", R"({"profiles": {
      "default": {"imports": null, "builtins": {"remove": []}},
      "datascience": {"imports": null, "builtins": {"remove": []}},
      "javascript": {"imports": null}}})");
  return config.path();
}

std::unique_ptr<ServerProcess> startKernelServer(Framing framing, std::vector<std::string> extra, Pools pools) {
  extra.insert(extra.end(), {"--config", pools == Pools::All ? kernelOnlyConfig() : kernelOnlyDefaultPoolConfig()});
  return startServer(framing, extra, pools);
}

Json execute(ServerProcess& server, Json params, Millis timeout) {
  return server.callResult("execute", std::move(params), timeout);
}

Json executeCode(ServerProcess& server, const std::string& code, Json limits, Millis timeout) {
  Json params = {{"code", code}};
  if (!limits.is_null()) params["limits"] = std::move(limits);
  return execute(server, std::move(params), timeout);
}

CommandResult runPycell(const std::vector<std::string>& args, std::string_view input,
                        Millis timeout) {
  return runCommand(commandLine(args), input, timeout);
}

CommandResult runCommand(const std::vector<std::string>& argv, std::string_view input, Millis timeout) {
  auto start = Clock::now();
  auto deadline = start + timeout;
  ChildProcess child(argv);
  CommandResult result;
  bool outOpen = true;
  auto readOut = [&](Millis wait) {
    if (outOpen && pollOne(child.stdoutFd(), POLLIN, wait) != 0)
      outOpen = readAvailable(child.stdoutFd(), result.out);
  };

  while (!input.empty() && Clock::now() < deadline) {
    readOut(Millis{0});
    if (pollOne(child.stdinFd(), POLLOUT, Millis{20}) == 0) continue;
    ssize_t n = ::write(child.stdinFd(), input.data(), input.size());
    if (n > 0) input.remove_prefix(static_cast<size_t>(n));
    if (n < 0 && errno != EAGAIN && errno != EINTR) break;  // it stopped reading: fine
  }
  child.closeStdin();

  while (Clock::now() < deadline && !child.poll()) {
    if (outOpen)
      readOut(std::min(remaining(deadline), Millis{20}));
    else
      std::this_thread::sleep_for(Millis{20});
  }
  if (!child.poll()) {
    child.kill();
    result.exitCode = std::nullopt;
  } else {
    result.exitCode = child.exitCode();
  }
  // What it wrote just before exiting (a leftover writer holding the pipe must not stall us).
  auto grace = Clock::now() + Millis{500};
  while (outOpen && Clock::now() < grace) readOut(remaining(grace));
  result.err = child.stderrText();
  result.elapsed = std::chrono::duration_cast<Millis>(Clock::now() - start);
  return result;
}

SharedDir::SharedDir(std::string_view stem) {
  std::string tmpl = "/tmp/pycell-it-" + std::string(stem) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw sysFailure("mkdtemp " + tmpl);
  path = tmpl;
  ::chmod(path.c_str(), 0777);
}

SharedDir::~SharedDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

TempFile::TempFile(std::string_view stem, std::string_view contents) {
  std::string name = "pycell-it-" + std::string(stem) + "-XXXXXX.py";
  std::string tmpl = (std::filesystem::temp_directory_path() / name).string();
  Fd fd(::mkstemps(tmpl.data(), 3));
  if (!fd.valid()) throw sysFailure("mkstemps " + tmpl);
  path_ = tmpl;
  ::fchmod(fd.get(), 0644);  // the server may run as another uid
  while (!contents.empty()) {
    ssize_t n = ::write(fd.get(), contents.data(), contents.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw sysFailure("write " + path_);
    contents.remove_prefix(static_cast<size_t>(n));
  }
}

TempFile::~TempFile() { ::unlink(path_.c_str()); }

std::string pyString(std::string_view text) { return Json(std::string(text)).dump(); }

std::string brief(const Json& value, size_t max) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() <= max ? text : text.substr(0, max) + "...";
}

Json waitResult(ServerProcess& server, int64_t id, Millis timeout) {
  auto response = server.waitResponse(id, timeout);
  if (!response) {
    throw std::runtime_error("no response to request #" + std::to_string(id) + " within " +
                             std::to_string(timeout.count()) + " ms; " + server.describe());
  }
  if (!response->contains("result"))
    throw std::runtime_error("request #" + std::to_string(id) + " answered " + brief(*response));
  return (*response)["result"];
}

std::optional<Json> awaitOutput(ServerProcess& server, const std::string& executionId, const std::string& needle,
                                size_t from, Millis timeout) {
  // waitMessage visits each message once, in order: the text streamed so far is joined, so
  // a needle cut across two notifications is found too.
  std::string streamed;
  return server.waitMessage(
      [&](const Json& m) {
        if (m.value("method", "") != "execute/output" || m["params"]["executionId"] != executionId) return false;
        streamed += m["params"]["text"].get<std::string>();
        return streamed.find(needle) != std::string::npos;
      },
      timeout, from);
}

void awaitRunning(ServerProcess& server, const std::string& executionId, Millis timeout) {
  auto deadline = Clock::now() + timeout;
  Json last;
  while (Clock::now() < deadline) {
    last = server.call("status", {{"executionId", executionId}});
    const Json* result = last.contains("result") ? &last["result"] : nullptr;
    std::string state = result && result->is_object() ? result->value("state", "") : "";
    if (state == "running") return;
    if (state == "finished") break;
    std::this_thread::sleep_for(Millis{50});
  }
  throw std::runtime_error("execution " + executionId + " never seen running; last status: " +
                           brief(last) + "; " + server.describe());
}

Millis scaled(Millis bound) {
  static const long factor = [] {
    const char* text = std::getenv("PYCELL_TEST_TIME_SCALE");
    long v = text ? std::strtol(text, nullptr, 10) : 1;
    return v >= 1 && v <= 10 ? v : 1L;
  }();
  return bound * factor;
}

std::string frameMessage(Framing framing, const std::string& body) {
  if (framing == Framing::kNdjson) return body + "\n";
  return "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

Json poolOf(ServerProcess& server, const std::string& profile) {
  Json status = server.callResult("status");
  for (const auto& pool : status["pools"])
    if (pool["profile"] == profile) return pool;
  throw std::runtime_error("no pool for " + profile + " in " + brief(status));
}

Json awaitFullPool(ServerProcess& server, const std::string& profile, Millis timeout) {
  Json pool;
  for (Stopwatch clock; clock.elapsed() < timeout; std::this_thread::sleep_for(Millis{50})) {
    pool = poolOf(server, profile);
    if ((pool["zygoteReady"] == true || pool.value("kind", "") == "started") && pool["ready"] == pool["target"]) return pool;
  }
  throw std::runtime_error("pool " + profile + " did not fill: " + brief(pool));
}

LoopbackListener listenOnLoopback() {
  LoopbackListener l;
  l.fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // port 0: any free one
  socklen_t len = sizeof addr;
  if (!l.fd.valid() || ::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(l.fd.get(), 16) != 0 || ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error(std::string("a loopback listener: ") + std::strerror(errno));
  l.port = ntohs(addr.sin_port);
  return l;
}

bool LoopbackListener::receivedNothing() const {
  pollfd p{fd.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace pycell::testing
