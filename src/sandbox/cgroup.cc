#include "pycell/sandbox/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <linux/magic.h>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"

namespace pycell::sandbox {

const char* cgroupVersionName(CgroupVersion v) {
  switch (v) {
    case CgroupVersion::V1: return "v1";
    case CgroupVersion::V2: return "v2";
    case CgroupVersion::None: break;
  }
  return "none";
}

namespace {

struct Mount {
  std::string point;
  std::string fstype;
  std::string options;
};

std::vector<Mount> cgroupMounts() {
  std::vector<Mount> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // fields: id parent major:minor root mountpoint options ... - fstype source superoptions
    std::istringstream ss(line);
    std::string id, parent, dev, root, point, opts, tok;
    ss >> id >> parent >> dev >> root >> point >> opts;
    while (ss >> tok && tok != "-") {
    }
    std::string fstype, source, super;
    ss >> fstype >> source >> super;
    if (fstype == "cgroup" || fstype == "cgroup2") out.push_back({point, fstype, super});
  }
  return out;
}

// The server's own cgroup path in a hierarchy: "0::/x" for v2, "N:memory:/x" for v1.
std::optional<std::string> ownCgroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':');
    auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controller.empty() ? controllers.empty() : ("," + controllers + ",").find("," + controller + ",") != std::string::npos)
      return path == "/" ? std::string() : path;
  }
  return std::nullopt;
}

bool hasOption(const std::string& options, const std::string& name) {
  return ("," + options + ",").find("," + name + ",") != std::string::npos;
}

Status writeText(const std::string& path, const std::string& text) { return writeFile(path, text); }

std::string baseName() { return "pycell-" + std::to_string(::getpid()); }

CgroupSupport tryV2(const Mount& mount) {
  CgroupSupport s;
  auto own = ownCgroup("");
  if (!own) return s;
  std::string dir = mount.point + *own;
  auto controllers = readFile(dir + "/cgroup.controllers");
  if (!controllers || controllers->find("memory") == std::string::npos || controllers->find("pids") == std::string::npos) {
    s.reason = "cgroup v2: memory and pids controllers are not delegated to " + dir;
    return s;
  }
  removeStaleCgroups(dir);
  std::string base = dir + "/" + baseName();
  if (::mkdir(base.c_str(), 0755) != 0) {
    s.reason = sysError("cgroup v2: mkdir " + base).message();
    return s;
  }
  // No-internal-processes rule: controllers can be enabled for children only while this
  // cgroup has no processes of its own, so the server moves itself into a leaf first.
  auto enable = [&](const std::string& d) { return writeText(d + "/cgroup.subtree_control", "+memory +pids"); };
  if (!enable(dir)) {
    std::string leaf = dir + "/pycell-server-" + std::to_string(::getpid());
    if (::mkdir(leaf.c_str(), 0755) != 0 || !writeText(leaf + "/cgroup.procs", std::to_string(::getpid())) || !enable(dir)) {
      s.reason = "cgroup v2: cannot enable memory and pids controllers in " + dir;
      ::rmdir(base.c_str());
      return s;
    }
  }
  // Optional: execution cgroups are created directly below base, which already has the
  // controllers through its parent's subtree_control.
  (void)enable(base);
  s.version = CgroupVersion::V2;
  s.memory = s.pids = true;
  s.memoryBase = s.pidsBase = base;
  // cpu.stat's usage is there in every v2 cgroup, whether or not the cpu controller is enabled.
  if (auto stat = readFile(base + "/cpu.stat", 4096); stat && stat->find("usage_usec") != std::string::npos) {
    s.cpu = true;
    s.cpuBase = base;
  } else {
    s.reason = "cgroup v2: no cpu.stat in " + base + "; ";
  }
  return s;
}

std::string tryV1Controller(const std::vector<Mount>& mounts, const std::string& controller, std::string& reason) {
  for (const auto& m : mounts) {
    if (m.fstype != "cgroup" || !hasOption(m.options, controller)) continue;
    auto own = ownCgroup(controller);
    if (!own) continue;
    removeStaleCgroups(m.point + *own);
    std::string base = m.point + *own + "/" + baseName();
    if (::mkdir(base.c_str(), 0755) == 0 || errno == EEXIST) return base;
    reason += sysError("cgroup v1: mkdir " + base).message() + "; ";
    return {};
  }
  reason += "cgroup v1: no " + controller + " hierarchy mounted; ";
  return {};
}

}  // namespace

// A server killed with SIGKILL cannot remove its cgroups (v1 never does it by itself), and
// no server can remove the v2 leaf it runs in (`pycell-server-<pid>`, never empty while it
// lives): remove the empty ones of servers that no longer run, so they do not pile up.
void removeStaleCgroups(const std::string& parent) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_directory(ec)) continue;
    std::string pid;
    for (const char* prefix : {"pycell-server-", "pycell-"}) {
      if (name.rfind(prefix, 0) == 0) {
        pid = name.substr(std::strlen(prefix));
        break;
      }
    }
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::access(("/proc/" + pid).c_str(), F_OK) == 0) continue;  // still running (or pid reused: leave it)
    for (const auto& child : std::filesystem::directory_iterator(entry.path(), ec))
      if (child.is_directory(ec)) ::rmdir(child.path().c_str());
    ::rmdir(entry.path().c_str());
  }
}

CgroupSupport setUpCgroups() {
  auto mounts = cgroupMounts();
  std::string reasons;
  for (const auto& m : mounts) {
    struct statfs fs{};
    // A v2 hierarchy that carries the controllers; the hybrid layout's "unified" mount has none.
    if (m.fstype == "cgroup2" && ::statfs(m.point.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
      auto s = tryV2(m);
      if (s.version == CgroupVersion::V2) return s;
      if (!s.reason.empty()) reasons += s.reason + "; ";
    }
  }
  CgroupSupport s;
  s.memoryBase = tryV1Controller(mounts, "memory", reasons);
  s.pidsBase = tryV1Controller(mounts, "pids", reasons);
  s.cpuBase = tryV1Controller(mounts, "cpuacct", reasons);
  s.memory = !s.memoryBase.empty();
  s.pids = !s.pidsBase.empty();
  s.cpu = !s.cpuBase.empty();
  if (s.memory || s.pids || s.cpu) s.version = CgroupVersion::V1;
  s.reason = reasons;
  return s;
}

void removeCgroupBase(const CgroupSupport& support) {
  if (!support.memoryBase.empty()) ::rmdir(support.memoryBase.c_str());
  if (!support.pidsBase.empty() && support.pidsBase != support.memoryBase) ::rmdir(support.pidsBase.c_str());
  if (!support.cpuBase.empty() && support.cpuBase != support.memoryBase && support.cpuBase != support.pidsBase)
    ::rmdir(support.cpuBase.c_str());
}

ExecutionCgroup::ExecutionCgroup(ExecutionCgroup&& o) noexcept
    : version_(o.version_),
      memoryDir_(std::move(o.memoryDir_)),
      pidsDir_(std::move(o.pidsDir_)),
      cpuDir_(std::move(o.cpuDir_)),
      cpuFd_(std::move(o.cpuFd_)),
      peakFd_(std::move(o.peakFd_)),
      peakResettable_(o.peakResettable_),
      memoryBytes_(o.memoryBytes_),
      maxProcesses_(o.maxProcesses_),
      oomKillsBefore_(o.oomKillsBefore_),
      memoryBefore_(o.memoryBefore_) {
  o.memoryDir_.clear();
  o.pidsDir_.clear();
  o.cpuDir_.clear();
}

ExecutionCgroup& ExecutionCgroup::operator=(ExecutionCgroup&& o) noexcept {
  if (this != &o) {
    tryRemove();
    version_ = o.version_;
    memoryDir_ = std::move(o.memoryDir_);
    pidsDir_ = std::move(o.pidsDir_);
    cpuDir_ = std::move(o.cpuDir_);
    cpuFd_ = std::move(o.cpuFd_);
    peakFd_ = std::move(o.peakFd_);
    peakResettable_ = o.peakResettable_;
    memoryBytes_ = o.memoryBytes_;
    maxProcesses_ = o.maxProcesses_;
    oomKillsBefore_ = o.oomKillsBefore_;
    memoryBefore_ = o.memoryBefore_;
    o.memoryDir_.clear();
    o.pidsDir_.clear();
    o.cpuDir_.clear();
  }
  return *this;
}

ExecutionCgroup::~ExecutionCgroup() { tryRemove(); }

// The CPU counter read while a run lives (v2 cpu.stat, v1 cpuacct.usage), kept open.
Status ExecutionCgroup::openCpuCounter() {
  std::string file = cpuDir_ + (version_ == CgroupVersion::V2 ? "/cpu.stat" : "/cpuacct.usage");
  cpuFd_ = UniqueFd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!cpuFd_) return std::unexpected(sysError("open " + file));
  return {};
}

Result<ExecutionCgroup> ExecutionCgroup::create(const CgroupSupport& support, const std::string& name,
                                                int64_t memoryBytes, int64_t maxProcesses) {
  ExecutionCgroup cg;
  cg.version_ = support.version;
  auto make = [&](const std::string& base, std::string& out) -> Status {
    std::string dir = base + "/" + name;
    if (::mkdir(dir.c_str(), 0755) != 0) return std::unexpected(sysError("mkdir " + dir));
    out = dir;
    return {};
  };
  if (support.memory) {
    if (auto st = make(support.memoryBase, cg.memoryDir_); !st) return std::unexpected(st.error());
  }
  if (support.pids && support.pidsBase != support.memoryBase) {
    if (auto st = make(support.pidsBase, cg.pidsDir_); !st) return std::unexpected(st.error());
  } else if (support.pids) {
    cg.pidsDir_ = cg.memoryDir_;
  }
  if (support.cpu) {
    if (support.cpuBase == support.memoryBase && support.memory) {
      cg.cpuDir_ = cg.memoryDir_;
    } else if (support.cpuBase == support.pidsBase && support.pids) {
      cg.cpuDir_ = cg.pidsDir_;
    } else if (auto st = make(support.cpuBase, cg.cpuDir_); !st) {
      return std::unexpected(st.error());
    }
    if (auto st = cg.openCpuCounter(); !st) return std::unexpected(st.error());
  }
  std::string mem = std::to_string(memoryBytes);
  std::vector<std::pair<std::string, std::string>> writes;
  if (support.version == CgroupVersion::V2) {
    writes = {{cg.memoryDir_ + "/memory.max", mem},
              {cg.memoryDir_ + "/memory.swap.max", "0"},
              {cg.pidsDir_ + "/pids.max", std::to_string(maxProcesses)}};
  } else {
    if (support.memory) writes.push_back({cg.memoryDir_ + "/memory.limit_in_bytes", mem});
    if (support.pids) writes.push_back({cg.pidsDir_ + "/pids.max", std::to_string(maxProcesses)});
  }
  for (const auto& [file, value] : writes) {
    if (auto st = writeFile(file, value); !st) return std::unexpected(st.error());
  }
  if (support.version == CgroupVersion::V1 && support.memory) {
    // Swap would let a memory bomb outlive the limit; the file exists only with swap accounting.
    (void)writeFile(cg.memoryDir_ + "/memory.memsw.limit_in_bytes", mem);
  }
  if (support.version == CgroupVersion::V2 && support.memory) {
    // Writable only where the kernel restarts the peak per descriptor (6.12); elsewhere the
    // cgroup is not recycled.
    cg.peakResettable_ = UniqueFd(::open((cg.memoryDir_ + "/memory.peak").c_str(), O_RDWR | O_CLOEXEC)).get() >= 0;
  }
  cg.memoryBytes_ = memoryBytes;
  cg.maxProcesses_ = maxProcesses;
  return cg;
}

Status ExecutionCgroup::addProcess(pid_t pid) const {
  std::string p = std::to_string(pid);
  if (!memoryDir_.empty()) {
    if (auto st = writeFile(memoryDir_ + "/cgroup.procs", p); !st) return st;
  }
  if (!pidsDir_.empty() && pidsDir_ != memoryDir_) {
    if (auto st = writeFile(pidsDir_ + "/cgroup.procs", p); !st) return st;
  }
  if (!cpuDir_.empty() && cpuDir_ != memoryDir_ && cpuDir_ != pidsDir_) {
    if (auto st = writeFile(cpuDir_ + "/cgroup.procs", p); !st) return st;
  }
  return {};
}

Status ExecutionCgroup::setLimits(int64_t memoryBytes, int64_t maxProcesses) {
  if (memoryBytes == memoryBytes_ && maxProcesses == maxProcesses_) return {};
  std::string mem = std::to_string(memoryBytes);
  if (!memoryDir_.empty()) {
    const char* file = version_ == CgroupVersion::V2 ? "/memory.max" : "/memory.limit_in_bytes";
    // v1 keeps memsw >= limit at every step: raise memsw first, lower it last.
    std::string memsw = memoryDir_ + "/memory.memsw.limit_in_bytes";
    if (version_ == CgroupVersion::V1) (void)writeFile(memsw, mem);
    if (auto st = writeFile(memoryDir_ + file, mem); !st) return st;
    if (version_ == CgroupVersion::V1) (void)writeFile(memsw, mem);
  }
  memoryBytes_ = memoryBytes;
  if (!pidsDir_.empty()) {
    if (auto st = writeFile(pidsDir_ + "/pids.max", std::to_string(maxProcesses)); !st) return st;
  }
  maxProcesses_ = maxProcesses;
  return {};
}

static uint64_t readNumber(const std::string& path) {
  auto text = readFile(path, 4096);
  if (!text) return 0;
  try {
    return std::stoull(*text);
  } catch (...) {
    return 0;
  }
}

// The values of `keys` in a "key value" file (cpu.stat, memory.events), from one read: 0
// for a key that is not there.
template <size_t N>
static std::array<uint64_t, N> readKeys(const std::string& path, const std::array<const char*, N>& keys) {
  std::array<uint64_t, N> values{};
  auto text = readFile(path, 65536);
  if (!text) return values;
  std::istringstream in(*text);
  std::string k;
  uint64_t v;
  while (in >> k >> v)
    for (size_t i = 0; i < N; ++i)
      if (k == keys[i]) values[i] = v;
  return values;
}

static uint64_t readKey(const std::string& path, const char* key) { return readKeys<1>(path, {key})[0]; }

// A kept control file's text from its start, NUL-terminated in `buf`; false when unreadable.
template <size_t N>
static bool preadText(int fd, char (&buf)[N]) {
  ssize_t n;
  do {
    n = ::pread(fd, buf, N - 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  buf[n] = 0;
  return true;
}

static uint64_t preadNumber(int fd) {
  char buf[64];
  return preadText(fd, buf) ? std::strtoull(buf, nullptr, 10) : 0;
}

uint64_t ExecutionCgroup::oomKillsSoFar() const {
  if (memoryDir_.empty()) return 0;
  return version_ == CgroupVersion::V2 ? readKey(memoryDir_ + "/memory.events", "oom_kill")
                                       : readKey(memoryDir_ + "/memory.oom_control", "oom_kill");
}

CgroupUsage ExecutionCgroup::usage() const {
  CgroupUsage u;
  u.cpu = cpu();
  if (memoryDir_.empty()) return u;
  if (version_ == CgroupVersion::V2) {
    u.peakMemoryBytes = peakFd_ ? preadNumber(peakFd_.get()) : readNumber(memoryDir_ + "/memory.peak");
  } else {
    u.peakMemoryBytes = readNumber(memoryDir_ + "/memory.max_usage_in_bytes");
  }
  u.peakMemoryBytes = u.peakMemoryBytes > memoryBefore_ ? u.peakMemoryBytes - memoryBefore_ : 0;
  uint64_t kills = oomKillsSoFar();
  u.oomKills = kills > oomKillsBefore_ ? kills - oomKillsBefore_ : 0;
  return u;
}

bool ExecutionCgroup::recyclable() const {
  if (!active()) return false;
  if (version_ == CgroupVersion::V1) return true;
  return version_ == CgroupVersion::V2 && (memoryDir_.empty() || peakResettable_);
}

bool ExecutionCgroup::empty() const {
  if (!pidsDir_.empty()) {
    auto text = readFile(pidsDir_ + "/pids.current", 64);
    return text && (*text == "0\n" || *text == "0");
  }
  const std::string& dir = !memoryDir_.empty() ? memoryDir_ : cpuDir_;
  auto procs = readFile(dir + "/cgroup.procs", 64);
  return procs && procs->empty();
}

void ExecutionCgroup::park() {
  cpuFd_.reset();
  peakFd_.reset();
}

Status ExecutionCgroup::recycle(int64_t memoryBytes, int64_t maxProcesses) {
  if (!recyclable()) return std::unexpected(Error{"cgroup: cannot be recycled"});
  if (auto st = setLimits(memoryBytes, maxProcesses); !st) return st;
  if (!cpuDir_.empty())  // closed while it was a spare
    if (auto st = openCpuCounter(); !st) return st;
  if (!memoryDir_.empty()) {
    if (version_ == CgroupVersion::V2) {
      std::string file = memoryDir_ + "/memory.peak";
      peakFd_ = UniqueFd(::open(file.c_str(), O_RDWR | O_CLOEXEC));
      if (!peakFd_) return std::unexpected(sysError("open " + file));
      ssize_t n;
      do {
        n = ::pwrite(peakFd_.get(), "0", 1, 0);
      } while (n < 0 && errno == EINTR);
      if (n != 1) return std::unexpected(sysError("write memory.peak"));
    } else if (auto st = writeFile(memoryDir_ + "/memory.max_usage_in_bytes", "0"); !st) {
      return st;
    }
  }
  if (version_ == CgroupVersion::V1 && !cpuDir_.empty()) {
    if (auto st = writeFile(cpuDir_ + "/cpuacct.usage", "0"); !st) return st;
  }
  oomKillsBefore_ = oomKillsSoFar();
  // What is still charged from before (the previous sandbox's cached directory entries and
  // inodes, freed only under memory pressure) is not this run's: its peak counts from here.
  if (!memoryDir_.empty())
    memoryBefore_ = readNumber(memoryDir_ + (version_ == CgroupVersion::V2 ? "/memory.current" : "/memory.usage_in_bytes"));
  return {};
}

// The total is the scheduler's exact count (what the CPU limit is checked against); the
// user/system split may come from tick counters (v1 on recent kernels), which need not add up
// to it, so it only apportions the total.
std::optional<CgroupCpu> ExecutionCgroup::cpu() const {
  auto total = cpuTotalUs();
  if (!total) return std::nullopt;
  uint64_t user = 0, sys = 0;
  if (version_ == CgroupVersion::V2) {
    auto [u, s] = readKeys<2>(cpuDir_ + "/cpu.stat", {"user_usec", "system_usec"});
    user = u;
    sys = s;
  } else {
    user = readNumber(cpuDir_ + "/cpuacct.usage_user");  // Linux 4.7 and later
    sys = readNumber(cpuDir_ + "/cpuacct.usage_sys");
  }
  if (user + sys == 0) return CgroupCpu{.userUs = *total, .sysUs = 0};
  auto sysUs = static_cast<int64_t>(static_cast<double>(*total) * static_cast<double>(sys) / static_cast<double>(user + sys));
  return CgroupCpu{.userUs = *total - sysUs, .sysUs = sysUs};
}

std::optional<int64_t> ExecutionCgroup::cpuTotalUs() const {
  char buf[512];
  if (!cpuFd_ || !preadText(cpuFd_.get(), buf)) return std::nullopt;
  if (version_ == CgroupVersion::V1) return static_cast<int64_t>(std::strtoull(buf, nullptr, 10) / 1000);
  // v2: "usage_usec N" is cpu.stat's first line.
  const char* at = std::strstr(buf, "usage_usec ");
  if (!at) return std::nullopt;
  return static_cast<int64_t>(std::strtoull(at + std::strlen("usage_usec "), nullptr, 10));
}

void ExecutionCgroup::killAll() const {
  if (version_ == CgroupVersion::V2 && !memoryDir_.empty()) (void)writeFile(memoryDir_ + "/cgroup.kill", "1");
}

bool ExecutionCgroup::tryRemove() {
  bool gone = true;
  std::string* dirs[] = {&memoryDir_, &pidsDir_, &cpuDir_};
  for (auto* dir : dirs) {
    if (dir->empty()) continue;
    if (::rmdir(dir->c_str()) == 0 || errno == ENOENT) {
      std::string removed = *dir;
      for (auto* same : dirs)
        if (*same == removed) same->clear();  // one directory for several controllers (v2)
    } else {
      gone = false;
    }
  }
  if (cpuDir_.empty()) cpuFd_.reset();
  return gone;
}

bool CgroupReaper::keepAsSpare(ExecutionCgroup& cgroup) {
  if (!cgroup.recyclable() || spares_.size() >= kMaxSpares) return false;
  cgroup.park();
  spares_.push_back(std::move(cgroup));
  return true;
}

void CgroupReaper::add(ExecutionCgroup cgroup) {
  if (keepAsSpare(cgroup)) return;
  if (cgroup.active() && !cgroup.tryRemove()) lingering_.push_back(std::move(cgroup));
}

void CgroupReaper::addLater(ExecutionCgroup cgroup) {
  if (keepAsSpare(cgroup)) return;
  if (cgroup.active()) lingering_.push_back(std::move(cgroup));
}

std::optional<ExecutionCgroup> CgroupReaper::reuse(int64_t memoryBytes, int64_t maxProcesses) {
  for (auto it = spares_.begin(); it != spares_.end(); ++it) {
    if (!it->empty()) continue;  // its last processes are still being torn down
    ExecutionCgroup cgroup = std::move(*it);
    spares_.erase(it);
    if (!cgroup.recycle(memoryBytes, maxProcesses)) {
      lingering_.push_back(std::move(cgroup));  // removed instead
      return std::nullopt;
    }
    return cgroup;
  }
  return std::nullopt;
}

bool CgroupReaper::tryAll() {
  std::erase_if(lingering_, [](ExecutionCgroup& cg) { return cg.tryRemove(); });
  return lingering_.empty();
}

void CgroupReaper::drain(std::chrono::milliseconds timeout) {
  for (auto& cgroup : spares_) lingering_.push_back(std::move(cgroup));
  spares_.clear();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!tryAll() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

}  // namespace pycell::sandbox
