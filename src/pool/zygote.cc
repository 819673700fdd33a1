#include "pycell/pool/zygote.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "pycell/child_so.h"
#include "pycell/error.h"
#include "pycell/process/log.h"
#include "pycell/process/unique_fd.h"
#include "pycell/protocol/untrusted_json.h"
#include "pycell/sandbox/enter.h"
#include "pycell/sandbox/fd_passing.h"
#include "pycell/zygote_py.h"

namespace pycell::pool {

using nlohmann::json;

namespace {

constexpr const char* kZygotePath = "/.pycell/zygote.py";
constexpr const char* kLibraryPath = "/.pycell/libpycell_child.so";

Status sendMessage(int fd, sandbox::wire::Op op, const sandbox::wire::Header& header, const std::vector<int>& fds) {
  std::string data = sandbox::wire::encode(op, header);
  if (sandbox::sendWithFds(fd, data.data(), data.size(), fds.data(), static_cast<int>(fds.size())) < 0)
    return std::unexpected(sysError("sendmsg(zygote)"));
  return {};
}

// A memfd holding `payload`, for a message too large for a datagram.
Result<UniqueFd> memfdOf(const std::string& payload) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_memfd_create, "pycell-zygote-init", MFD_CLOEXEC)));
  if (!fd) return std::unexpected(sysError("memfd_create"));
  if (auto st = writeAll(fd.get(), payload); !st) return std::unexpected(st.error());
  return fd;
}

// One message from the zygote, checked (zygote_wire.h); nullopt at EOF or on a socket
// error. A malformed message comes back as its reason.
struct Received {
  std::optional<sandbox::wire::Header> header;  // absent: refused, for `refused`
  std::string text;
  std::string refused;
  std::vector<UniqueFd> fds;
};
std::optional<Received> receiveMessage(int fd) {
  Received r;
  // One buffer for every message (the server is single-threaded): a message may hold 1 MiB
  // of text, and two arrive per execution; zero-filling a fresh one each time was work on
  // the request path.
  static std::string buffer(sizeof(sandbox::wire::Header) + sandbox::wire::kMaxText, '\0');
  int received[sandbox::kMaxPassedFds];
  int count = 0;
  bool truncated = false;
  ssize_t n = sandbox::receiveWithFds(fd, buffer.data(), buffer.size(), received, &count, &truncated);
  for (int i = 0; i < count; ++i) r.fds.emplace_back(received[i]);
  if (n <= 0) return std::nullopt;
  auto decoded = sandbox::wire::decode(buffer.data(), static_cast<size_t>(n), count, truncated);
  if (decoded) {
    r.header = decoded->header;
    r.text = std::string(decoded->text);
  } else {
    r.refused = decoded.error();
  }
  return r;
}

// The zygote's own plan: the same kind of sandbox as its children's, running zygote.py
// with its library, no seccomp (it must clone into new namespaces; its children install
// the filter), its own small limits, and its outer ids kept inside.
sandbox::SandboxPlan zygotePlan(const sandbox::PlanInputs& childInputs) {
  sandbox::PlanInputs in = childInputs;
  in.seccomp = nullptr;
  in.entry = kZygotePath;
  in.extraFiles.push_back({kZygotePath, std::string(kZygotePy)});
  in.extraFiles.push_back({kLibraryPath, std::string(reinterpret_cast<const char*>(kChildLibrary), sizeof kChildLibrary)});
  in.rlimits = std::vector<sandbox::RlimitSetting>{{RLIMIT_CORE, 0, 0}, {RLIMIT_NOFILE, 4096, 4096}};
  in.keepOuterIds = true;
  return sandbox::makePlan(in);
}

}  // namespace

Status Zygote::start() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return std::unexpected(sysError("socketpair"));
  UniqueFd ours(sv[0]), theirs(sv[1]);
  auto logPipe = makePipe();
  auto nullIn = makePipe();
  if (!logPipe || !nullIn) return std::unexpected(logPipe ? nullIn.error() : logPipe.error());
  nullIn->write.reset();

  // What every child of this zygote applies to itself: the plan of a one-shot sandbox of
  // the profile (the profile's limits: a claim may only tighten them; the offline seccomp
  // filter), its ids mapped onto the zygote's own.
  sandbox::PlanInputs childInputs = sandbox::planInputsFor(ctx_, profile_);
  sandbox::IsolationSpec childSpec = sandbox::pooledChildSpec(childInputs, ctx_.sandboxUid, ctx_.sandboxGid);
  childSpec.rlimits = sandbox::planRlimits(
      profile_.limits,
      {.memoryByRlimit = !ctx_.isolation.cgroup.memory, .processesByRlimit = true, .sessionCpuMs = profile_.sessionCpuMs});

  // The zygote builds the shared part of its children's root once, as their template.
  auto plan = zygotePlan(childInputs);
  if (childSpec.mountsFromTemplate) plan.isolation.childRootTemplate = childSpec.mounts;
  sandbox::ChildFds fds{nullIn->read.get(), logPipe->write.get(), logPipe->write.get(), theirs.get(), logPipe->write.get()};
  auto child = sandbox::spawnSandbox(plan, fds, logPipe->read.get(), {});
  if (!child) return std::unexpected(child.error());
  pid_ = child->pid;
  pidfd_ = std::move(child->pidfd);
  control_ = std::move(ours);
  log_ = std::move(logPipe->read);
  (void)setNonBlocking(log_.get());
  (void)loop_.watch(control_.get(), EPOLLIN, [this](uint32_t) { onMessage(); });
  (void)loop_.watch(log_.get(), EPOLLIN, [this](uint32_t) { onLog(); });
  (void)loop_.watch(pidfd_.get(), EPOLLIN, [this](uint32_t) { events_.onZygoteDied(*this, "the zygote process exited"); });

  json init = {{"preload", profile_.preload},
               {"childWarmup", profile_.childWarmup},
               // Its hooks go in before a child is offered; each request brings the policy again.
               {"policy", ctx_.policy(profile_.name, false)}};
  auto payload = memfdOf(sandbox::wire::encodeInit(init.dump(), childSpec));
  if (!payload) return std::unexpected(payload.error());
  return sendMessage(control_.get(), sandbox::wire::Op::Init, {}, {payload->get()});
}

Result<PooledChild> Zygote::fork(uint64_t id, std::optional<sandbox::ExecutionCgroup> spare) {
  auto in = makePipe(), out = makePipe(), err = makePipe(), req = makePipe(), res = makePipe();
  for (auto* p : {&in, &out, &err, &req, &res})
    if (!*p) return std::unexpected(p->error());
  PooledChild child;
  child.id = id;
  const auto& limits = profile_.limits;
  if (spare) {
    child.cgroup = std::move(*spare);
  } else if (ctx_.isolation.cgroup.version != sandbox::CgroupVersion::None) {
    auto cg = sandbox::ExecutionCgroup::create(ctx_.isolation.cgroup, "c" + std::to_string(id), limits.memoryMb << 20,
                                               limits.maxProcesses);
    if (!cg) return std::unexpected(cg.error());
    child.cgroup = std::move(*cg);
  }
  sandbox::wire::Header request;
  request.id = id;
  auto st = sendMessage(control_.get(), sandbox::wire::Op::Fork, request,
                        {in->read.get(), out->write.get(), err->write.get(), req->read.get(), res->write.get()});
  if (!st) return std::unexpected(st.error());
  child.stdinW = std::move(in->write);
  child.stdoutR = std::move(out->read);
  child.stderrR = std::move(err->read);
  child.requestW = std::move(req->write);
  child.resultR = std::move(res->read);
  ++forks_;
  return child;
}

void Zygote::stop() {
  for (UniqueFd* fd : {&control_, &log_, &pidfd_})
    if (*fd) loop_.unwatch(fd->get());
  if (pid_ > 0) {
    if (pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  control_.reset();
  log_.reset();
  pidfd_.reset();
}

void Zygote::onLog() {
  char buf[4096];
  ssize_t n;
  while ((n = ::read(log_.get(), buf, sizeof buf)) > 0) {
    logLine_.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = logLine_.find('\n')) != std::string::npos; logLine_.erase(0, nl + 1))
      log::warn("zygote[" + profile_.name + "]: " + logLine_.substr(0, nl));
  }
  if (n == 0) loop_.unwatch(log_.get()), log_.reset();
}

void Zygote::onMessage() {
  auto message = receiveMessage(control_.get());
  if (!message) {
    events_.onZygoteDied(*this, "the zygote closed its control socket");
    return;
  }
  if (!message->header) {
    // The zygote runs inside the profile's sandbox: what it sends is checked like anything
    // else a sandbox writes, and a zygote that breaks the protocol is replaced.
    events_.onZygoteDied(*this, "the zygote sent a malformed message (" + message->refused + ")");
    return;
  }
  handle(*message->header, message->text, std::move(message->fds));
}

void Zygote::readyReport(const std::string& text) {
  json doc;
  bool refused = protocol::parseUntrustedInto(text, {.maxDepth = 8, .maxBytes = sandbox::wire::kMaxText, .maxValues = 4096}, doc).has_value();
  ready_ = true;
  imported_ = !refused && doc.is_object() && doc.contains("imported") && doc["imported"].is_array() ? doc["imported"] : json::array();
  failed_ = !refused && doc.is_object() && doc.contains("failed") && doc["failed"].is_object() ? doc["failed"] : json::object();
  if (!failed_.empty()) log::warn("zygote[" + profile_.name + "]: could not preload " + failed_.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Zygote::handle(const sandbox::wire::Header& h, const std::string& text, std::vector<UniqueFd> fds) {
  using sandbox::wire::Op;
  switch (static_cast<Op>(h.op)) {
    case Op::Ready:
      readyReport(text);
      events_.onZygoteReady(*this);
      return;
    case Op::Forked:
      events_.onForked(*this, h.id, std::move(fds[0]));
      return;
    case Op::Exit: {
      ExitInfo info;
      info.status = h.status;
      info.usage.ru_utime = timevalFromMs(h.utimeMs);
      info.usage.ru_stime = timevalFromMs(h.stimeMs);
      info.usage.ru_maxrss = h.maxrssKb;
      events_.onChildExit(*this, h.id, info);
      return;
    }
    case Op::Error:
      events_.onForkRefused(*this, h.id, Error{"zygote refused to fork: " + protocol::truncateUtf8(text, 512)});
      return;
    default:
      events_.onZygoteDied(*this, "the zygote sent a message meant for it");
  }
}

}  // namespace pycell::pool
