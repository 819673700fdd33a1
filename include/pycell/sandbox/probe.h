#pragma once
// What isolation this machine actually enforces, found by trying each feature in a
// throw-away child. Reported by `initialize.isolation` and `pycell check`, never guessed.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pycell/sandbox/cgroup.h"
#include "pycell/sandbox/container.h"
#include "pycell/sandbox/enter.h"
#include "pycell/sandbox/netstack.h"

namespace pycell::sandbox {

struct ProbeItem {
  std::string name;    // e.g. "userNamespace"
  bool ok = false;
  std::string detail;  // what was tried / why it failed
  std::string fix;     // how to make it work, when it does not
  int err = 0;         // the errno it failed with (0: none, or not from a system call)
};

struct Isolation {
  Namespaces namespaces;
  bool seccomp = false;
  // Whether a root server may map a sandbox's uid and gid to nobody (needs CAP_SETUID and
  // CAP_SETGID, which a container may have dropped). Without it no sandbox starts.
  bool idMap = true;
  CgroupSupport cgroup;
  NetStackSupport netStack;  // for runs with network: true; not part of complete()
  std::vector<ProbeItem> items;
  // Whether pycell runs in a container: then `pycell check` and a refusal add, for each
  // failed item, the runtime flag or Kubernetes field that grants it (container.h).
  ContainerGuess container;
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
  // One paragraph for a refusal: what is missing and how to fix it (in a container: with
  // which flag or field).
  [[nodiscard]] std::string missingSummary() const;
};

// Probes namespaces, what the sandbox does in them that a container may refuse (naming
// itself, mounting its /proc) and seccomp; `cgroup` comes from setUpCgroups(). A refused
// hostname leaves the UTS namespace out (it is of no use unnamed), a refused /proc mount the
// mount namespace (the sandbox's root needs its own /proc): both make the level "degraded",
// so that a server refuses to start, naming the permission, instead of failing every run.
[[nodiscard]] Isolation probeIsolation(const CgroupSupport& cgroup);
// Whether `id` has a mapping in this process's user namespace (a /proc/self/uid_map or
// gid_map: rows of inside, outside, count).
[[nodiscard]] bool idMapped(const char* mapFile, unsigned id);
// How to get a memory cgroup where there is none (for `pycell check` and the probe's item).
[[nodiscard]] const char* cgroupFix();

}  // namespace pycell::sandbox
