// One isolation, whatever the way a sandbox is made. A sandbox comes from four places: a
// pooled child (forked by the profile's zygote), a one-shot sandbox (a profile without a
// pool), a session (on either), and `pycell run`. The same probe runs in each and describes
// what it sees from inside: its namespaces, cgroup, credentials, capabilities, seccomp mode,
// mount tree, resource limits, id maps, host name and working directory. Every path must
// be isolated from the host, and all of them must see exactly the same thing, so a
// difference between the paths shows up here entry by entry.
//
// The second case: a set-up step that fails (a resource limit the server's own hard limit
// forbids) is answered the same way on the pooled and the one-shot path.
#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Standard library only; the default profile's policy allows reading /proc/self.
constexpr const char* kProbe = R"py(
import json, os, resource

def text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return "<unreadable: %s>" % os.strerror(e.errno or 0)

ns = {}
for name in ("user", "pid", "mnt", "net", "ipc", "uts", "cgroup"):
    try:
        ns[name] = os.readlink("/proc/self/ns/" + name)
    except OSError as e:
        ns[name] = "<unreadable: %s>" % os.strerror(e.errno or 0)

wanted = ("Seccomp", "NoNewPrivs", "CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb", "Uid", "Gid", "Groups")
status = {}
for line in text("/proc/self/status").splitlines():
    key, sep, value = line.partition(":")
    if sep and key in wanted:
        status[key] = " ".join(value.split())

# mountinfo: id parent major:minor root mountpoint options [optional fields...] - fstype source superoptions
mounts = []
for line in text("/proc/self/mountinfo").splitlines():
    left, sep, right = line.partition(" - ")
    l, r = left.split(), right.split()
    if not sep or len(l) < 6:
        mounts.append(["<unparsed>", line])
        continue
    r += [""] * (3 - len(r))
    mounts.append([l[3], l[4], l[5], r[0], r[1], r[2]])

rlimits = {}
for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
    try:
        rlimits[name] = list(resource.getrlimit(getattr(resource, name)))
    except (OSError, ValueError) as e:
        rlimits[name] = str(e)

print(json.dumps({
    "ns": ns,
    "cgroup": text("/proc/self/cgroup"),
    "status": status,
    "mounts": mounts,
    "rlimits": rlimits,
    "uid_map": text("/proc/self/uid_map"),
    "gid_map": text("/proc/self/gid_map"),
    "setgroups": text("/proc/self/setgroups"),
    "hostname": os.uname().nodename,
    "cwd": os.getcwd(),
    "uid": os.getuid(),
    "gid": os.getgid(),
    "groups": os.getgroups(),
}))
)py";

const std::vector<std::string> kNamespaces = {"user", "pid", "mnt", "net", "ipc", "uts", "cgroup"};

// What must be the same on every path: everything but the namespace inodes.
// (/proc/self/cgroup is checked on each path instead: at the namespace root it reads the same
// everywhere; anywhere else it names the sandbox's own cgroup, which differs per instance.)
const std::vector<std::string> kCompared = {"status", "mounts", "rlimits", "uid_map", "gid_map", "setgroups",
                                            "hostname", "cwd", "uid", "gid", "groups"};

// The one-shot server: the built-in default profile with its pool size set to 0, nothing else
// (datascience, which no case here uses, gets no zygote either: less load, same default).
constexpr const char* kOneShotConfig =
    R"({"profiles": {"default": {"pool": {"size": 0}}, "datascience": {"pool": {"size": 0}}}})";

struct Report {
  std::string path;  // which way the sandbox was made
  Json probe;
};

Json parseProbe(const std::string& path, const std::string& out, const std::string& context) {
  Json parsed = Json::parse(out, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object())
    throw std::runtime_error(path + ": the probe printed no JSON object; stdout: " + out.substr(0, 2000) +
                             "\n" + context);
  return parsed;
}

Json probeByExecute(ServerProcess& server, const std::string& path, Json params) {
  params["code"] = kProbe;
  Json result = execute(server, std::move(params));
  if (result.value("status", "") != "ok")
    throw std::runtime_error(path + ": the probe did not end ok: " + brief(result));
  return parseProbe(path, result.value("stdout", ""), brief(result));
}

// A session on `server`, the probe run in it, and, while the session is still open, the
// probe run on its own: two sandboxes alive at once, which must share no namespace.
std::pair<Report, Report> probeSessionAndAlone(ServerProcess& server, const std::string& alone,
                                               const std::string& inSession, bool expectPooled) {
  Json created = server.callResult("session/create", Json::object(), kExecutionTimeout);
  INFO(inSession << ": session/create answered " << brief(created));
  CHECK(created["pooled"] == expectPooled);
  std::string session = created["session"];
  Report first{inSession, probeByExecute(server, inSession, {{"session", session}})};
  Report second{alone, probeByExecute(server, alone, Json::object())};
  server.callResult("session/close", {{"session", session}});
  return {std::move(second), std::move(first)};
}

std::map<std::string, std::string> hostNamespaces() {
  std::map<std::string, std::string> out;
  for (const auto& n : kNamespaces) out[n] = fs::read_symlink("/proc/self/ns/" + n).string();
  return out;
}

std::string show(const Json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// A line diff of two lists (longest common subsequence): "  " both, "- " only in `a`,
// "+ " only in `b`, each line with its index in its own list.
std::string listDiff(const Json& a, const Json& b) {
  std::vector<std::string> x, y;
  for (const auto& e : a) x.push_back(show(e));
  for (const auto& e : b) y.push_back(show(e));
  size_t n = x.size(), m = y.size();
  std::vector<std::vector<size_t>> lcs(n + 1, std::vector<size_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::ostringstream out;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] == y[j]) {
      out << "      [" << i << "|" << j << "] " << x[i] << "\n";
      ++i, ++j;
    } else if (j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      out << "    + [" << j << "] " << y[j] << "\n";
      ++j;
    } else {
      out << "    - [" << i << "] " << x[i] << "\n";
      ++i;
    }
  }
  return out.str();
}

// How `b` differs from `a`, readable; empty when equal.
std::string valueDiff(const Json& a, const Json& b) {
  if (a == b) return {};
  std::ostringstream out;
  if (a.is_object() && b.is_object()) {
    std::map<std::string, bool> keys;
    for (const auto& [k, v] : a.items()) keys[k] = true;
    for (const auto& [k, v] : b.items()) keys[k] = true;
    for (const auto& [k, unused] : keys) {
      Json va = a.contains(k) ? a[k] : Json("<absent>");
      Json vb = b.contains(k) ? b[k] : Json("<absent>");
      if (va != vb) out << "    " << k << ": " << show(va) << "  ->  " << show(vb) << "\n";
    }
  } else if (a.is_array() && b.is_array()) {
    out << listDiff(a, b);
  } else {
    out << "    " << show(a) << "\n  ->\n    " << show(b) << "\n";
  }
  return out.str();
}

// The same probe through the four ways a sandbox is made (sessions on both servers).
std::vector<Report> probeEveryPath() {
  std::vector<Report> reports;
  {
    auto server = startServer(Framing::kNdjson);
    // The default profile has a pool here: wait for it, so the execution takes a pooled child.
    Json pool = awaitFullPool(*server, "default");
    INFO("pool: " << brief(pool));
    REQUIRE(pool["target"].get<int>() > 0);
    auto [alone, inSession] = probeSessionAndAlone(*server, "pooled", "session (pooled)", true);
    reports.push_back(std::move(alone));
    reports.push_back(std::move(inSession));
  }
  {
    TempFile config("isolation-oneshot.json", kOneShotConfig);
    auto server = startServer(Framing::kNdjson, {"--config", config.path()});
    Json status = server->callResult("status");
    INFO("status: " << brief(status));
    for (const auto& pool : status["pools"]) CHECK(pool["profile"] != "default");
    auto [alone, inSession] = probeSessionAndAlone(*server, "one-shot", "session (one-shot)", false);
    reports.push_back(std::move(alone));
    reports.push_back(std::move(inSession));
  }
  {
    // The program on stdin: `pycell run FILE` adds one mount on purpose, the script's
    // directory (or the file alone, in /tmp) read-only at its own path (tested in cli_test).
    CommandResult run = runPycell({"run", "-"}, kProbe);
    INFO("pycell run: exit " << (run.exitCode ? std::to_string(*run.exitCode) : "none (killed at timeout)")
                             << ", stderr: " << run.err.substr(0, 3000));
    REQUIRE(run.exitCode == 0);
    reports.push_back({"pycell run", parseProbe("pycell run", run.out, "stderr: " + run.err.substr(0, 2000))});
  }
  return reports;
}

// The lines of /proc/self/cgroup ("hierarchy-id:controllers:path") whose path is not the
// namespace root "/". On a cgroup v2 machine the whole file is "0::/"; where v1 hierarchies
// are mounted too, each of them has its own line, which must be at its root as well.
std::vector<std::string> cgroupLinesBelowRoot(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    size_t first = line.find(':');
    size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos || line.substr(second + 1) != "/") out.push_back(line);
  }
  return out;
}

uint64_t hexField(const Json& status, const std::string& key) {
  if (!status.contains(key) || !status[key].is_string()) return ~uint64_t{0};
  return std::stoull(status[key].get<std::string>(), nullptr, 16);
}

}  // namespace

TEST_CASE("every way of making a sandbox (pooled, one-shot, session, pycell run) gives the same isolation",
          "[isolation]") {
  std::vector<Report> reports = probeEveryPath();
  auto host = hostNamespaces();
  INFO("the test process (host) namespaces: " << Json(host).dump());
  auto uid = runAsUid();
  INFO("server and pycell run as uid " << (uid ? std::to_string(*uid) : std::string("of the test (root)")));

  // Each path on its own: isolated from the host.
  for (const auto& [path, probe] : reports) {
    INFO("path: " << path << "\n  ns: " << probe["ns"].dump() << "\n  status: " << probe["status"].dump());
    for (const auto& n : kNamespaces) {
      INFO("namespace " << n);
      std::string inside = probe["ns"].value(n, "<absent>");
      CHECK(inside.rfind(n + ":[", 0) == 0);
      CHECK(inside != host[n]);
    }
    std::string cgroup = probe["cgroup"].is_string() ? probe["cgroup"].get<std::string>() : "<absent>";
    INFO("/proc/self/cgroup:\n" << cgroup);
    CHECK(!cgroup.empty());
    CHECK(cgroupLinesBelowRoot(cgroup) == std::vector<std::string>{});
    const Json& status = probe["status"];
    CHECK(status.value("Seccomp", "") == "2");
    CHECK(status.value("NoNewPrivs", "") == "1");
    for (const char* cap : {"CapEff", "CapPrm", "CapBnd", "CapAmb"}) {
      INFO(cap << " = " << status.value(cap, "<absent>"));
      CHECK(hexField(status, cap) == 0);
    }
  }

  // Two sandboxes alive at once (a session and a run beside it, on the same server) share
  // no namespace: each gets its own, not its zygote's or its server's.
  for (const auto& [a, b] : {std::pair{"pooled", "session (pooled)"}, {"one-shot", "session (one-shot)"}}) {
    const Json* x = nullptr;
    const Json* y = nullptr;
    for (const auto& r : reports) {
      if (r.path == a) x = &r.probe;
      if (r.path == b) y = &r.probe;
    }
    REQUIRE((x && y));
    for (const auto& n : kNamespaces) {
      INFO(a << " and " << b << " (alive at the same time) in the same " << n << " namespace: "
             << (*x)["ns"].value(n, "<absent>"));
      CHECK((*x)["ns"].value(n, "<absent>") != (*y)["ns"].value(n, "<absent>"));
    }
  }

  // All paths alike: each compared with the one-shot sandbox, field by field.
  const Report* reference = nullptr;
  for (const auto& r : reports)
    if (r.path == "one-shot") reference = &r;
  REQUIRE(reference != nullptr);
  for (const auto& [path, original] : reports) {
    if (&original == &reference->probe) continue;
    Json probe = original;
    if (path.rfind("session", 0) == 0) {
      // The one limit a session sets differently, by design (rlimits.h): its interpreter's
      // hard CPU limit is the whole session's budget (the profile's sessionCpuMs, 600 s),
      // and each run moves the soft limit to what it may use. The rest must match.
      Json cpu = probe["rlimits"]["RLIMIT_CPU"];
      INFO(path << ": RLIMIT_CPU " << cpu.dump());
      CHECK(cpu[1] == 600);
      CHECK(cpu[0].get<int64_t>() >= reference->probe["rlimits"]["RLIMIT_CPU"][0].get<int64_t>());
      CHECK(cpu[0].get<int64_t>() <= 600);
      probe["rlimits"]["RLIMIT_CPU"] = reference->probe["rlimits"]["RLIMIT_CPU"];
    }
    for (const auto& field : kCompared) {
      std::string diff = valueDiff(reference->probe[field], probe[field]);
      INFO("'" << field << "' differs between " << reference->path << " (-, left) and " << path
               << " (+, right):\n" << diff);
      CHECK(diff.empty());
    }
  }
}

TEST_CASE("a failed isolation step is reported alike on the pooled and the one-shot path", "[isolation]") {
  // The server's own hard RLIMIT_FSIZE is 1 MiB, below the profile's diskMb (64): the
  // sandbox's setrlimit(RLIMIT_FSIZE, 64 MiB) fails with EPERM on either path (raising a hard
  // limit takes CAP_SYS_RESOURCE in the initial user namespace).
  constexpr rlim_t kMiB = 1 << 20;
  const std::vector<ChildRlimit> lowFsize = {{RLIMIT_FSIZE, kMiB, kMiB}};
  const Json expected = {{"step", "setrlimit"}, {"errno", 1}, {"detail", "RLIMIT_FSIZE"}};
  TempFile oneShotConfig("isolation-oneshot.json", kOneShotConfig);

  std::map<std::string, Json> isolationByPath;
  for (const auto& [path, extra] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"pooled", {}}, {"one-shot", {"--config", oneShotConfig.path()}}}) {
    std::vector<std::string> args = {"serve", "--framing", "ndjson"};
    args.insert(args.end(), extra.begin(), extra.end());
    ServerProcess server(ServerProcess::Argv{.words = commandLine(args), .rlimits = lowFsize}, Framing::kNdjson);
    Json status = server.callResult("status");
    INFO(path << ": status before " << brief(status));
    bool pooled = false;
    for (const auto& pool : status["pools"]) pooled = pooled || pool["profile"] == "default";
    CHECK(pooled == (path == "pooled"));

    // The pooled path may try a few children before it answers: wait for the answer itself.
    int64_t id = server.request("execute", {{"code", "print('must not run')"}});
    auto response = server.waitResponse(id, 2 * kExecutionTimeout);
    INFO(path << ": " << server.describe());
    REQUIRE(response.has_value());
    INFO(path << ": execute answered " << brief(*response));
    REQUIRE(response->contains("error"));
    const Json& error = (*response)["error"];
    CHECK(error.value("code", 0) == -32000);
    Json isolation = error.contains("data") && error["data"].is_object() && error["data"].contains("isolation")
                         ? error["data"]["isolation"]
                         : Json("<no error.data.isolation>");
    CHECK(isolation == expected);
    isolationByPath[path] = isolation;

    // The server goes on.
    Json after = server.call("status");
    INFO(path << ": status after " << brief(after));
    CHECK(after.contains("result"));
    CHECK_FALSE(server.exited());
  }
  INFO("pooled: " << isolationByPath["pooled"].dump() << "\none-shot: " << isolationByPath["one-shot"].dump());
  CHECK(isolationByPath["pooled"] == isolationByPath["one-shot"]);
}
