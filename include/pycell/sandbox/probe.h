#pragma once
// What isolation this machine actually enforces, found by trying each feature in a
// throw-away child. Reported by `initialize.isolation` and `pycell check`, never guessed.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/enter.h"
#include "pycell/sandbox/netstack.h"

namespace pycell::sandbox {

struct ProbeItem {
  std::string name;    // e.g. "userNamespace"
  bool ok = false;
  std::string detail;  // what was tried / why it failed
  std::string fix;     // how to make it work, when it does not
};

struct Isolation {
  Namespaces namespaces;
  bool seccomp = false;
  CgroupSupport cgroup;
  NetStackSupport netStack;  // for runs with network: true; not part of complete()
  std::vector<ProbeItem> items;
  // Who owns what a sandbox creates in an allowWrite directory (idmap.h): "owner" (the
  // directory's owner, through id-mapped mounts: a root server), "server" (the server's own
  // uid: an unprivileged server), "nobody" (a root server where id-mapped mounts do not work:
  // the sandbox's host uid), "mixed" (some configured directories one way, some the other).
  // Not part of complete(). Set by makeContext.
  std::string writableBinds = "server";
  std::string writableBindsDetail;
  bool idmappedBinds = false;  // spawns try an id-mapped mount for each writable bind

  // Every namespace and seccomp: anything less is "degraded".
  [[nodiscard]] bool complete() const;
  // Whether RLIMIT_NPROC counts per user namespace (Linux 5.14 and later), so that in a
  // sandbox's own user namespace it counts that sandbox's processes alone.
  bool nprocPerUserNamespace = false;

  // What holds a run's memory: "cgroup" (all its processes together, tmpfs pages included)
  // or "per-process" (RLIMIT_AS on each process: N processes may hold N times memoryMb).
  [[nodiscard]] std::string memoryLimit() const { return cgroup.memory ? "cgroup" : "per-process"; }
  // What holds a run's CPU time: "cgroup" (all its processes together, checked by the server
  // while the run lives, RLIMIT_CPU on each process besides) or "per-process" (RLIMIT_CPU
  // alone: N busy processes may use N times cpuMs).
  [[nodiscard]] std::string cpuLimit() const { return cgroup.cpu ? "cgroup" : "per-process"; }
  // What holds a run's process count: "cgroup", "per-sandbox" (RLIMIT_NPROC counted in the
  // sandbox's own user namespace) or "per-user" (RLIMIT_NPROC counts every process of the
  // uid on the machine: older kernels, or no user namespace).
  [[nodiscard]] std::string pidsLimit() const {
    return cgroup.pids ? "cgroup" : namespaces.user && nprocPerUserNamespace ? "per-sandbox" : "per-user";
  }
  [[nodiscard]] nlohmann::json toJson(bool degradedAllowed) const;
  // One paragraph for a refusal: what is missing and how to fix it.
  [[nodiscard]] std::string missingSummary() const;
};

// Probes namespaces and seccomp; `cgroup` comes from setUpCgroups().
[[nodiscard]] Isolation probeIsolation(const CgroupSupport& cgroup);
// How to get a memory cgroup where there is none (for `pycell check` and the probe's item).
[[nodiscard]] const char* cgroupFix();

}  // namespace pycell::sandbox
