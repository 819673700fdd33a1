#include "pycell/exec/execution.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "pycell/log.h"
#include "pycell/sandbox/enter.h"

namespace pycell::exec {

namespace {
constexpr size_t kResultLimit = 64u << 20;
constexpr auto kDrainGrace = std::chrono::milliseconds(2000);

int64_t toMs(const timeval& tv) { return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000; }

std::expected<void, std::string> checkFiles(const json& files) {
  if (!files.is_object()) return std::unexpected("files must be an object of path -> {text} or {base64}");
  for (const auto& [path, spec] : files.items()) {
    bool text = spec.is_object() && spec.contains("text") && spec["text"].is_string();
    bool b64 = spec.is_object() && spec.contains("base64") && spec["base64"].is_string();
    if (text == b64) return std::unexpected("files['" + path + "'] must be {text: string} or {base64: string}");
  }
  return {};
}
}  // namespace

const char* stateName(ExecState s) {
  switch (s) {
    case ExecState::Queued: return "queued";
    case ExecState::Running: return "running";
    case ExecState::Finished: break;
  }
  return "finished";
}

std::expected<ExecutionRequest, std::string> parseExecuteParams(const json& params, const Config& config) {
  if (!params.is_object()) return std::unexpected("params must be an object with a 'code' string");
  ExecutionRequest req;
  if (!params.contains("code") || !params["code"].is_string()) return std::unexpected("'code' must be a string");
  req.code = params["code"].get<std::string>();
  auto optString = [&](const char* key, std::string& out) -> std::expected<void, std::string> {
    if (!params.contains(key) || params[key].is_null()) return {};
    if (!params[key].is_string()) return std::unexpected(std::string("'") + key + "' must be a string");
    out = params[key].get<std::string>();
    return {};
  };
  for (auto [key, out] : {std::pair{"profile", &req.profile}, {"executionId", &req.executionId}, {"stdin", &req.stdinData}}) {
    if (auto ok = optString(key, *out); !ok) return std::unexpected(ok.error());
  }
  auto profile = config.profiles.find(req.profile);
  if (profile == config.profiles.end()) return std::unexpected("unknown profile '" + req.profile + "'");
  if (params.contains("session") && !params["session"].is_null())
    return std::unexpected("unknown session: sessions are not available in this server yet");
  if (params.contains("inputs")) {
    req.inputs = params["inputs"];
    req.hasInputs = true;
  }
  if (params.contains("files") && !params["files"].is_null()) {
    if (auto ok = checkFiles(params["files"]); !ok) return std::unexpected(ok.error());
    req.files = params["files"];
  }
  auto limits = resolveLimits(profile->second, params.contains("limits") ? params["limits"] : json(nullptr));
  if (!limits) return std::unexpected(limits.error());
  req.limits = *limits;
  if (params.contains("network") && !params["network"].is_null()) {
    if (!params["network"].is_boolean()) return std::unexpected("'network' must be a boolean");
    req.network = params["network"].get<bool>();
    if (req.network && !profile->second.networkAllowed)
      return std::unexpected("profile '" + req.profile + "' does not allow network access");
  }
  if (params.contains("stream") && !params["stream"].is_null() && !params["stream"].is_boolean())
    return std::unexpected("'stream' must be a boolean");
  // The bootstrap checks the patterns again, inside the sandbox.
  if (params.contains("returnFiles") && !params["returnFiles"].is_null()) {
    const json& globs = params["returnFiles"];
    if (!globs.is_array()) return std::unexpected("'returnFiles' must be an array of glob strings");
    if (globs.size() > 100) return std::unexpected("'returnFiles' may hold at most 100 patterns");
    for (const auto& glob : globs) {
      if (!glob.is_string()) return std::unexpected("'returnFiles' must be an array of glob strings");
      const auto& pattern = glob.get_ref<const std::string&>();
      std::string where = "returnFiles: '" + pattern + "' ";
      if (pattern.empty() || pattern.size() > 4096 || pattern.find('\0') != std::string::npos)
        return std::unexpected("returnFiles: each pattern must be a non-empty relative glob of at most 4096 bytes");
      if (pattern.front() == '/') return std::unexpected(where + "is absolute; patterns are relative to the working directory");
      for (size_t start = 0; start <= pattern.size();) {
        size_t end = std::min(pattern.find('/', start), pattern.size());
        if (pattern.compare(start, end - start, "..") == 0)
          return std::unexpected(where + "contains '..'; patterns must stay inside the working directory");
        start = end + 1;
      }
    }
    req.returnFiles = globs;
  }
  return req;
}

Execution::Execution(EventLoop& loop, const SandboxContext& ctx, ExecutionRequest request, uint64_t serial)
    : loop_(loop),
      ctx_(ctx),
      request_(std::move(request)),
      serial_(serial),
      stdoutBuf_(static_cast<size_t>(request_.limits.maxOutputBytes)),
      stderrBuf_(static_cast<size_t>(request_.limits.maxOutputBytes)) {}

Execution::~Execution() {
  if (state_ == ExecState::Running) killSandbox();
  for (Stream* s : {&stdout_, &stderr_, &result_})
    if (s->open) loop_.unwatch(s->fd.get());
  for (Outgoing* o : {&stdin_, &requestPipe_})
    if (o->fd) loop_.unwatch(o->fd.get());
  if (pidfd_) loop_.unwatch(pidfd_.get());
  if (timeoutTimer_) loop_.cancelTimer(*timeoutTimer_);
  if (drainTimer_) loop_.cancelTimer(*drainTimer_);
  if (pid_ > 0 && !exited_ && !pool_) ::waitpid(pid_, nullptr, 0);  // killed above: reaps promptly
  if (pool_) {
    if (ticket_) pool_->cancelClaim(*ticket_);
    if (pooledId_) pool_->forgetExit(pooledId_);
  }
  if (!hostWorkDir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(hostWorkDir_, ignored);
  }
}

Status Execution::start() {
  const Profile& profile = ctx_.config.profiles.at(request_.profile);
  const auto& iso = ctx_.isolation;
  auto in = makePipe(), out = makePipe(), err = makePipe(), req = makePipe(), res = makePipe();
  for (auto* p : {&in, &out, &err, &req, &res})
    if (!*p) return std::unexpected(p->error());

  sandbox::PlanInputs inputs = sandbox::planInputsFor(ctx_, profile);
  inputs.limits = request_.limits;
  inputs.network = request_.network;
  if (request_.network && iso.seccomp) inputs.seccomp = &ctx_.seccompOnline;
  if (!iso.namespaces.mount) {
    char tmpl[] = "/tmp/pycell-work-XXXXXX";
    if (!::mkdtemp(tmpl)) return std::unexpected(sysError("mkdtemp"));
    hostWorkDir_ = tmpl;
    inputs.hostWorkDir = hostWorkDir_;
    auto fd = UniqueFd(::open((hostWorkDir_ + "/.pycell-bootstrap.py").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!fd || !writeAll(fd.get(), ctx_.bootstrapSource)) return std::unexpected(sysError("write bootstrap"));
  }
  auto plan = sandbox::makePlan(inputs);

  if (iso.cgroup.version != sandbox::CgroupVersion::None) {
    auto cg = sandbox::ExecutionCgroup::create(iso.cgroup, "e" + std::to_string(serial_),
                                               request_.limits.memoryMb << 20, request_.limits.maxProcesses);
    if (!cg) return std::unexpected(cg.error());
    cgroup_ = std::move(*cg);
  }
  sandbox::ChildFds fds{in->read.get(), out->write.get(), err->write.get(), req->read.get(), res->write.get()};
  startedAt_ = std::chrono::steady_clock::now();
  auto child = sandbox::spawnSandbox(plan, fds, [this](pid_t pid) { return cgroup_.addProcess(pid); });
  if (!child) return std::unexpected(child.error());
  pid_ = child->pid;
  pidfd_ = std::move(child->pidfd);
  (void)loop_.watch(pidfd_.get(), EPOLLIN, [this](uint32_t) { onExit(); });
  run(std::move(in->write), std::move(out->read), std::move(err->read), std::move(req->write), std::move(res->read), {});
  return {};
}

void Execution::waitForChild(pool::Pool& pool, pool::Pool::Ticket ticket) {
  pool_ = &pool;
  ticket_ = ticket;
}

void Execution::startPooled(pool::Pool& pool, pool::PooledChild child) {
  pool_ = &pool;
  ticket_.reset();
  startedAt_ = std::chrono::steady_clock::now();
  pid_ = child.pid;
  pidfd_ = std::move(child.pidfd);
  pooledId_ = child.id;
  cgroup_ = std::move(child.cgroup);
  // The child was forked with the profile's limits; this execution's may be tighter.
  if (auto st = cgroup_.setLimits(request_.limits.memoryMb << 20, request_.limits.maxProcesses); !st)
    log::warn("cgroup limits for " + request_.executionId + ": " + st.error().message());
  // The zygote reaps the child and reports how it ended.
  pool_->onExit(pooledId_, [this](pool::ExitInfo info) {
    zygoteDied_ = info.zygoteDied;
    childEnded(info.status, info.usage);
  });
  json rlimits = json::array();
  for (const auto& r : sandbox::planRlimits(request_.limits, {.memoryByRlimit = !ctx_.isolation.cgroup.memory,
                                                              .processesByRlimit = true}))
    rlimits.push_back({r.resource, r.soft, r.hard});
  run(std::move(child.stdinW), std::move(child.stdoutR), std::move(child.stderrR), std::move(child.requestW),
      std::move(child.resultR), rlimits);
}

// From here on one-shot and pooled runs are the same: feed the request and stdin, capture
// output and the result, enforce the wall clock.
void Execution::run(UniqueFd stdinW, UniqueFd stdoutR, UniqueFd stderrR, UniqueFd requestW, UniqueFd resultR,
                    const json& rlimits) {
  state_ = ExecState::Running;
  json requestDoc = {{"code", request_.code}, {"files", request_.files}};
  if (request_.hasInputs) requestDoc["inputs"] = request_.inputs;
  if (!request_.returnFiles.is_null()) requestDoc["returnFiles"] = request_.returnFiles;
  if (!rlimits.empty()) requestDoc["rlimits"] = rlimits;
  stdin_ = {std::move(stdinW), request_.stdinData, 0};
  requestPipe_ = {std::move(requestW), requestDoc.dump(-1, ' ', false, json::error_handler_t::replace), 0};
  stdout_ = {std::move(stdoutR), true};
  stderr_ = {std::move(stderrR), true};
  result_ = {std::move(resultR), true};
  watchOutput(stdout_, "stdout", &stdoutBuf_);
  watchOutput(stderr_, "stderr", &stderrBuf_);
  watchOutput(result_, "result", nullptr);
  watchOutgoing(stdin_);
  watchOutgoing(requestPipe_);
  timeoutTimer_ = loop_.addTimer(std::chrono::milliseconds(request_.limits.timeoutMs), [this] {
    timeoutTimer_.reset();
    stop(StopReason::Timeout);
  });
}

void Execution::watchOutput(Stream& s, const std::string& name, OutputBuffer* buffer) {
  (void)setNonBlocking(s.fd.get());
  (void)loop_.watch(s.fd.get(), EPOLLIN, [this, &s, name, buffer](uint32_t) {
    if (readStream(s, name, buffer)) maybeFinish();
  });
}

// Reads what the pipe holds now; true when it reached EOF (and was closed).
bool Execution::readStream(Stream& s, const std::string& name, OutputBuffer* buffer) {
  char buf[65536];
  while (s.open) {
    ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    if (n <= 0) {
      loop_.unwatch(s.fd.get());
      s.fd.reset();
      s.open = false;
      std::string& carry = name == "stdout" ? stdoutCarry_ : stderrCarry_;
      if (buffer && output_ && !carry.empty()) output_(name, carry);  // an incomplete last character
      carry.clear();
      return true;
    }
    std::string_view chunk(buf, static_cast<size_t>(n));
    if (!buffer) {
      if (resultText_.size() + chunk.size() > kResultLimit) resultTooBig_ = true;
      else resultText_.append(chunk);
      continue;
    }
    buffer->append(chunk);
    if (output_ && stopReason_ == StopReason::None) emitOutput(name, chunk);
    if (stdoutBuf_.totalBytes() + stderrBuf_.totalBytes() > static_cast<size_t>(request_.limits.maxOutputBytes) &&
        stopReason_ == StopReason::None) {
      stop(StopReason::OutputLimit);
    }
  }
  return true;
}

void Execution::finishNow(StopReason reason) {
  if (state_ == ExecState::Finished) return;
  if (stopReason_ == StopReason::None) stopReason_ = reason;
  if (state_ == ExecState::Queued && ticket_) {
    pool_->cancelClaim(*ticket_);
    ticket_.reset();
  }
  if (state_ == ExecState::Running && !exited_ && pool_) {
    killSandbox();  // the zygote reaps it; its report will not come, the loop has stopped
    exited_ = true;
    exitedAt_ = std::chrono::steady_clock::now();
    waitStatus_ = SIGKILL;
  } else if (state_ == ExecState::Running && !exited_) {
    killSandbox();
    int status = 0;
    pid_t r;
    do {
      r = ::wait4(pid_, &status, 0, &rusage_);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) {
      exited_ = true;
      exitedAt_ = std::chrono::steady_clock::now();
      waitStatus_ = status;
    }
  }
  // The sandbox's init is dead, so every writer is gone: what the pipes hold is all there is.
  readStream(stdout_, "stdout", &stdoutBuf_);
  readStream(stderr_, "stderr", &stderrBuf_);
  readStream(result_, "result", nullptr);
  finish();
}

// Hands output to the sink in whole UTF-8 characters: a read may end inside one, and a
// notification carrying half a character would turn it into U+FFFD.
void Execution::emitOutput(const std::string& name, std::string_view chunk) {
  std::string& carry = name == "stdout" ? stdoutCarry_ : stderrCarry_;
  std::string text = carry + std::string(chunk);
  size_t cut = completeUtf8Prefix(text);
  carry = text.substr(cut);
  if (cut > 0) output_(name, std::string_view(text).substr(0, cut));
}

size_t completeUtf8Prefix(std::string_view s) {
  // Look back at most 3 bytes for the start of a multi-byte sequence.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

void Execution::watchOutgoing(Outgoing& o) {
  if (o.data.empty()) {
    o.fd.reset();  // EOF right away
    return;
  }
  (void)setNonBlocking(o.fd.get());
  // Written now as far as the pipe takes it (a request usually fits whole); the rest
  // whenever the program makes room.
  if (pumpOutgoing(o)) return;
  (void)loop_.watch(o.fd.get(), EPOLLOUT, [this, &o](uint32_t) {
    pumpOutgoing(o);
  });
}

// Writes what the pipe accepts; true when done (all written, or the reader went away),
// in which case the fd is closed and unwatched.
bool Execution::pumpOutgoing(Outgoing& o) {
  while (o.offset < o.data.size()) {
    ssize_t n = ::write(o.fd.get(), o.data.data() + o.offset, o.data.size() - o.offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    if (n < 0) break;  // EPIPE: the program closed its end; the rest is dropped
    o.offset += static_cast<size_t>(n);
  }
  loop_.unwatch(o.fd.get());
  o.fd.reset();
  o.data.clear();
  return true;
}

void Execution::onExit() {
  int status = 0;
  rusage usage{};
  pid_t r = ::wait4(pid_, &status, WNOHANG, &usage);
  if (r != pid_) return;
  loop_.unwatch(pidfd_.get());
  childEnded(status, usage);
}

void Execution::childEnded(int status, const rusage& usage) {
  exited_ = true;
  exitedAt_ = std::chrono::steady_clock::now();
  waitStatus_ = status;
  rusage_ = usage;
  // The pid namespace's init is gone, so the kernel has killed the rest; without a pid
  // namespace (degraded) the process group and the cgroup are killed explicitly.
  killSandbox();
  if (timeoutTimer_) {
    loop_.cancelTimer(*timeoutTimer_);
    timeoutTimer_.reset();
  }
  // Output still in the pipes is read before the result is built, but a stray process
  // holding a pipe open must not hold the answer back.
  drainTimer_ = loop_.addTimer(kDrainGrace, [this] {
    drainTimer_.reset();
    finish();
  });
  maybeFinish();
}

// The bootstrap's report, parsed once; null when there is none (or it was not valid JSON).
// Asked only once the result pipe is closed, so the text is complete.
const json& Execution::report() {
  if (!report_) {
    json parsed = resultTooBig_ ? json(nullptr) : json::parse(resultText_, nullptr, false);
    report_ = parsed.is_discarded() ? json(nullptr) : std::move(parsed);
  }
  return *report_;
}

void Execution::maybeFinish() {
  if (stdout_.open || stderr_.open || result_.open) return;
  if (!exited_ && pool_ && stopReason_ == StopReason::None) adoptReportedExit();
  if (exited_) finish();
}

// A pooled program that wrote its result and closed its output has ended: its bootstrap
// reported the exit code and usage, and calls _exit right after. Answering now spares the
// client the kernel's teardown of the sandbox's namespaces (milliseconds), and the
// zygote's report of the same exit that would follow it.
// The report is the program's own word, though: one that forged it on the result channel
// and closed its output could otherwise run on, past its timeout, with no execution left
// to end it. So what is left of the sandbox is killed here (a real bootstrap is exiting
// anyway); the signal does not wait for the teardown.
void Execution::adoptReportedExit() {
  const json& reported = report();
  if (!reported.is_object() || !reported.contains("exitCode") || !reported["exitCode"].is_number_integer() ||
      !reported.contains("usage") || !reported["usage"].is_object())
    return;
  killSandbox();
  const json& usage = reported["usage"];
  exited_ = true;
  exitedAt_ = std::chrono::steady_clock::now();
  waitStatus_ = (reported["exitCode"].get<int>() & 0xff) << 8;  // as wait(2) encodes an exit
  rusage_.ru_utime = pool::timevalFromMs(usage.value("cpuUserMs", int64_t{0}));
  rusage_.ru_stime = pool::timevalFromMs(usage.value("cpuSysMs", int64_t{0}));
  rusage_.ru_maxrss = usage.value("maxRssKb", 0L);
  pool_->forgetExit(pooledId_);
  if (timeoutTimer_) {
    loop_.cancelTimer(*timeoutTimer_);
    timeoutTimer_.reset();
  }
}

void Execution::stop(StopReason reason) {
  if (state_ == ExecState::Finished) return;
  if (stopReason_ == StopReason::None) stopReason_ = reason;
  if (state_ == ExecState::Queued) {
    if (ticket_) pool_->cancelClaim(*ticket_);
    ticket_.reset();
    finish();
    return;
  }
  killSandbox();
}

void Execution::killSandbox() {
  if (pid_ <= 0) return;
  // One-shot: the sandbox's init. Pooled: the zygote's child above it, whose death takes
  // the sandbox's init with it (PR_SET_PDEATHSIG).
  if (!exited_ && pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  // The child called setsid(), so its process group is its own.
  if (!ctx_.isolation.namespaces.pid) ::kill(-pid_, SIGKILL);
  cgroup_.killAll();
}

void Execution::finish() {
  if (state_ == ExecState::Finished) return;
  state_ = ExecState::Finished;
  if (drainTimer_) loop_.cancelTimer(*drainTimer_);
  if (timeoutTimer_) loop_.cancelTimer(*timeoutTimer_);
  drainTimer_.reset();
  timeoutTimer_.reset();
  for (Stream* s : {&stdout_, &stderr_, &result_}) {
    if (s->open) {
      loop_.unwatch(s->fd.get());
      s->fd.reset();
      s->open = false;
    }
  }
  for (Outgoing* o : {&stdin_, &requestPipe_}) {
    if (o->fd) {
      loop_.unwatch(o->fd.get());
      o->fd.reset();
    }
  }
  json result = buildResult();
  if (done_) {
    auto done = std::move(done_);
    done(std::move(result));
  }
}

int64_t Execution::elapsedMs() const {
  // Never started (killed while queued or waiting for a pooled child): no time ran.
  if (state_ == ExecState::Queued || startedAt_ == std::chrono::steady_clock::time_point{}) return 0;
  auto end = exited_ ? exitedAt_ : std::chrono::steady_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(end - startedAt_).count();
}

json Execution::usageSoFar() const {
  auto cg = cgroup_.usage();
  uint64_t peak = cg.peakMemoryBytes ? cg.peakMemoryBytes : static_cast<uint64_t>(rusage_.ru_maxrss) * 1024;
  return {{"wallMs", elapsedMs()},
          {"cpuUserMs", toMs(rusage_.ru_utime)},
          {"cpuSysMs", toMs(rusage_.ru_stime)},
          {"peakMemoryBytes", peak}};
}

std::string Execution::decideStatus(const json& reported) const {
  switch (stopReason_) {
    case StopReason::Killed:
    case StopReason::Cancelled:
    case StopReason::Shutdown: return "killed";
    case StopReason::Timeout: return "timeout";
    case StopReason::OutputLimit: return "output_limit";
    case StopReason::None: break;
  }
  if (cgroup_.usage().oomKills > 0) return "memory_limit";
  if (exited_ && WIFSIGNALED(waitStatus_)) {
    int sig = WTERMSIG(waitStatus_);
    int64_t cpuMs = toMs(rusage_.ru_utime) + toMs(rusage_.ru_stime);
    // RLIMIT_CPU ends the run with SIGKILL at the (whole-second) limit; the usage figures
    // are rounded down to milliseconds, hence the margin.
    if (sig == SIGXCPU || (sig == SIGKILL && cpuMs * 10 >= request_.limits.cpuMs * 9)) return "timeout";
    return "crashed";
  }
  if (reported.is_object() && reported.contains("status") && reported["status"].is_string()) {
    auto s = reported["status"].get<std::string>();
    if (s == "ok" || s == "error" || s == "memory_limit") return s;
  }
  return exited_ && WIFEXITED(waitStatus_) && WEXITSTATUS(waitStatus_) == 0 ? "ok" : "error";
}

json Execution::buildResult() {
  json reported = report();  // a copy: its entries are moved into the result below
  std::string status = decideStatus(reported);
  json result = {{"executionId", request_.executionId}, {"status", status}};
  bool signaled = exited_ && WIFSIGNALED(waitStatus_);
  result["exitCode"] = exited_ && WIFEXITED(waitStatus_) ? json(WEXITSTATUS(waitStatus_)) : json(nullptr);
  result["signal"] = signaled ? json(WTERMSIG(waitStatus_)) : json(nullptr);
  result["stdout"] = stdoutBuf_.text();
  result["stderr"] = stderrBuf_.text();
  result["truncated"] = {{"stdout", stdoutBuf_.truncated()}, {"stderr", stderrBuf_.truncated()}};
  bool fromBootstrap = reported.is_object() && (status == "ok" || status == "error" || status == "memory_limit");
  result["value"] = fromBootstrap && reported.contains("value") ? reported["value"] : json(nullptr);
  result["valueRepr"] = fromBootstrap && reported.contains("valueRepr") ? reported["valueRepr"] : json(nullptr);
  json error = fromBootstrap && reported.contains("error") ? reported["error"] : json(nullptr);
  if (error.is_null() && status != "ok") {
    std::string message;
    const auto& l = request_.limits;
    if (status == "timeout")
      message = "the run exceeded its time limit (" + std::to_string(l.timeoutMs) + " ms wall, " + std::to_string(l.cpuMs) + " ms CPU)";
    else if (status == "memory_limit") message = "the run exceeded its memory limit of " + std::to_string(l.memoryMb) + " MiB";
    else if (status == "output_limit") message = "the output exceeded " + std::to_string(l.maxOutputBytes) + " bytes";
    else if (status == "killed") message = "the run was killed on request";
    else if (status == "crashed" && zygoteDied_) message = "the zygote this execution was forked from died, and the execution with it";
    else if (status == "crashed") message = std::string("the process died by signal ") + (signaled ? strsignal(WTERMSIG(waitStatus_)) : "?");
    else message = "the process exited with code " + (result["exitCode"].is_null() ? std::string("?") : result["exitCode"].dump()) + " without a result";
    static const std::map<std::string, std::string> types = {
        {"timeout", "Timeout"}, {"memory_limit", "MemoryLimit"}, {"output_limit", "OutputLimit"},
        {"killed", "Killed"},   {"crashed", "Crashed"},          {"error", "Error"}};
    error = {{"type", types.at(status)}, {"message", message}, {"traceback", json::array()}, {"line", nullptr}};
  }
  result["error"] = error;
  // What the program left behind, as the bootstrap reported it. The report comes out of
  // the sandbox, so only well-formed entries are kept (the result stays schema-valid);
  // they are moved, not copied: returned files may weigh tens of MiB.
  auto keep = [&](const char* key, auto wellFormed) {
    json kept = json::array();
    if (!fromBootstrap || !reported.contains(key) || !reported[key].is_array()) return kept;
    for (auto& entry : reported[key])
      if (entry.is_object() && wellFormed(entry)) kept.push_back(std::move(entry));
    return kept;
  };
  auto stringAt = [](const json& o, const char* k) { return o.contains(k) && o[k].is_string(); };
  result["displays"] = keep("displays", [](const json& bundle) {  // mime type -> text or base64; JSON types hold JSON
    for (const auto& [mime, data] : bundle.items())
      if (!data.is_string() && mime != "application/json" && !mime.ends_with("+json")) return false;
    return !bundle.empty();
  });
  result["files"] = keep("files", [&](const json& file) {
    return file.size() == 3 && stringAt(file, "path") && stringAt(file, "base64") && file.contains("size") &&
           file["size"].is_number_unsigned();
  });
  if (fromBootstrap && reported.contains("skippedFiles"))
    result["skippedFiles"] = keep("skippedFiles", [&](const json& skipped) {
      return skipped.size() == 2 && stringAt(skipped, "path") && stringAt(skipped, "reason");
    });
  if (fromBootstrap && reported.contains("valueTruncated") && reported["valueTruncated"] == true)
    result["valueTruncated"] = true;
  result["usage"] = usageSoFar();
  return result;
}

}  // namespace pycell::exec
