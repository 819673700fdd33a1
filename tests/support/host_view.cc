#include "host_view.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace pycell::testing {

namespace fs = std::filesystem;

// ---- processes ----------------------------------------------------------------------------

std::optional<ProcStat> readStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!in || !std::getline(in, text)) return std::nullopt;
  size_t open = text.find('(');
  size_t paren = text.rfind(')');  // comm may itself contain spaces and parentheses
  if (open == std::string::npos || paren == std::string::npos || paren < open) return std::nullopt;
  std::istringstream rest(text.substr(paren + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 20) return std::nullopt;
  // fields[0] is field 3 of proc(5): state; ppid is field 4; starttime is field 22.
  ProcStat stat;
  stat.pid = pid;
  stat.comm = text.substr(open + 1, paren - open - 1);
  stat.state = fields[0][0];
  try {
    stat.ppid = static_cast<pid_t>(std::stol(fields[1]));
    stat.startTime = std::stoull(fields[19]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return stat;
}

std::vector<ProcStat> allProcesses() {
  std::vector<ProcStat> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (auto stat = readStat(static_cast<pid_t>(std::stol(name)))) out.push_back(*stat);
  }
  return out;
}

std::vector<ProcStat> descendants(pid_t root) {
  std::multimap<pid_t, ProcStat> children;
  for (const auto& p : allProcesses()) children.emplace(p.ppid, p);
  std::vector<ProcStat> out;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    pid_t parent = todo.back();
    todo.pop_back();
    auto [begin, end] = children.equal_range(parent);
    for (auto it = begin; it != end; ++it) {
      out.push_back(it->second);
      todo.push_back(it->second.pid);
    }
  }
  return out;
}

bool stillRunning(const ProcStat& p) {
  auto now = readStat(p.pid);
  return now && now->startTime == p.startTime && now->state != 'Z' && now->state != 'X';
}

std::string describeProcesses(const std::vector<ProcStat>& procs) {
  std::ostringstream out;
  for (const auto& p : procs) {
    std::ifstream cmd("/proc/" + std::to_string(p.pid) + "/cmdline");
    std::string line((std::istreambuf_iterator<char>(cmd)), {});
    std::replace(line.begin(), line.end(), '\0', ' ');
    out << "\n  pid " << p.pid << " ppid " << p.ppid << " state " << p.state << " (" << p.comm
        << "): " << line;
  }
  return out.str();
}

std::optional<long> rssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    try {
      return std::stol(line.substr(6));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

DescendantTracker::DescendantTracker(pid_t root, Millis period) : root_(root), period_(period) {
  record(descendants(root_));
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      record(descendants(root_));
      for (Millis slept{0}; slept < period_ && !stop_.load(); slept += Millis{10})
        std::this_thread::sleep_for(Millis{10});
    }
  });
}

DescendantTracker::~DescendantTracker() { stop(); }

void DescendantTracker::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::vector<ProcStat> DescendantTracker::sampleNow() {
  auto now = descendants(root_);
  record(now);
  return now;
}

void DescendantTracker::record(const std::vector<ProcStat>& procs) {
  std::lock_guard lock(mutex_);
  for (const auto& p : procs) seen_.emplace(std::make_pair(p.pid, p.startTime), p);
}

std::vector<ProcStat> DescendantTracker::seen() const {
  std::lock_guard lock(mutex_);
  std::vector<ProcStat> out;
  for (const auto& [key, p] : seen_) out.push_back(p);
  return out;
}

std::vector<ProcStat> DescendantTracker::survivors() const {
  std::vector<ProcStat> out;
  for (const auto& p : seen())
    if (stillRunning(p)) out.push_back(p);
  return out;
}

// ---- cgroups and mounts -------------------------------------------------------------------

std::set<std::string> ownCgroupDirs() {
  std::set<fs::path> mounts = {"/sys/fs/cgroup"};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    if (entry.is_directory(ec)) mounts.insert(entry.path());
  }
  std::set<std::string> dirs;
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    size_t second = line.find(':', line.find(':') + 1);
    if (second == std::string::npos) continue;
    std::string path = line.substr(second + 1);
    for (const auto& mount : mounts) {
      if (!fs::exists(mount / "cgroup.procs", ec)) continue;  // not a cgroup mount
      fs::path dir = mount / fs::path(path).relative_path();
      if (fs::is_directory(dir, ec)) dirs.insert(dir.lexically_normal().string());
    }
  }
  return dirs;
}

std::vector<std::string> pycellCgroups(pid_t serverPid) {
  const std::string prefix = "pycell-" + std::to_string(serverPid);
  std::vector<std::string> found;
  for (const auto& root : ownCgroupDirs()) {
    std::error_code ec;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it.depth() > 8) {
        it.disable_recursion_pending();
        continue;
      }
      std::error_code dirEc;
      if (!it->is_directory(dirEc)) continue;
      std::string name = it->path().filename().string();
      if (name.rfind(prefix, 0) == 0 &&
          (name.size() == prefix.size() || !std::isdigit(static_cast<unsigned char>(name[prefix.size()]))))
        found.push_back(it->path().string());
    }
  }
  return found;
}

std::set<std::string> pycellMounts() {
  std::set<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.find("pycell") != std::string::npos) out.insert(line);
  }
  return out;
}

// ---- what a server leaves behind ----------------------------------------------------------

std::string Leftovers::describe() const {
  std::ostringstream out;
  out << processes.size() << " process(es) still running:" << describeProcesses(processes);
  out << "\n" << cgroups.size() << " cgroup(s) left:";
  for (const auto& c : cgroups) out << "\n  " << c;
  out << "\n" << mounts.size() << " new mount(s):";
  for (const auto& m : mounts) out << "\n  " << m;
  return out.str();
}

Leftovers awaitNothingLeft(const DescendantTracker& tracker, const std::set<std::string>& mountsBefore,
                           Millis grace) {
  Leftovers left;
  for (Stopwatch wait;; std::this_thread::sleep_for(Millis{50})) {
    left.processes = tracker.survivors();
    left.cgroups = pycellCgroups(tracker.root());
    left.mounts.clear();
    for (const auto& m : pycellMounts())
      if (!mountsBefore.count(m)) left.mounts.push_back(m);
    if (left.empty() || wait.elapsed() >= grace) return left;
  }
}

long procStatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

}  // namespace pycell::testing
