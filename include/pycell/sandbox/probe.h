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

  // Every namespace and seccomp: anything less is "degraded".
  [[nodiscard]] bool complete() const;
  [[nodiscard]] std::string memoryLimit() const { return cgroup.memory ? "cgroup" : "rlimit"; }
  [[nodiscard]] std::string pidsLimit() const { return cgroup.pids ? "cgroup" : "rlimit"; }
  [[nodiscard]] nlohmann::json toJson(bool degradedAllowed) const;
  // One paragraph for a refusal: what is missing and how to fix it.
  [[nodiscard]] std::string missingSummary() const;
};

// Probes namespaces and seccomp; `cgroup` comes from setUpCgroups().
[[nodiscard]] Isolation probeIsolation(const CgroupSupport& cgroup);

}  // namespace pycell::sandbox
