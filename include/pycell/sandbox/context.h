#pragma once
// Everything an execution needs that is fixed once the server has started: the config,
// the probed isolation, the compiled seccomp filters, the resolved interpreters.
#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pycell/error.h"
#include "pycell/sandbox/config.h"
#include "pycell/sandbox/enter.h"
#include "pycell/sandbox/probe.h"
#include "pycell/sandbox/seccomp.h"

namespace pycell::sandbox {

struct Interpreter {
  std::string path;      // as configured
  std::string realPath;  // symlinks resolved, checked to be an ELF binary
};

struct SandboxContext {
  Config config;
  ServerOptions options;
  Isolation isolation;
  SeccompProgram seccompOffline;  // socket() limited to AF_UNIX
  SeccompProgram seccompOnline;
  std::map<std::string, Interpreter> interpreters;  // by profile name
  // Each profile's policy document (policyDocument), made once: [profile][network].
  std::map<std::string, std::array<nlohmann::json, 2>> policies;
  [[nodiscard]] const nlohmann::json& policy(const std::string& profile, bool network) const {
    return policies.at(profile)[network ? 1 : 0];
  }
  // The Python files every sandbox holds, as (path in the sandbox, contents): the bootstrap
  // (kBootstrapPath) and the modules it loads by path from beside it (policy.py and its parts,
  // values.py, ...; src/python/). Without a mount namespace they go into the host work dir instead.
  std::vector<std::pair<std::string, std::string>> sandboxFiles;
  // A JavaScript sandbox's files: bootstrap.js (kBootstrapJsPath), from src/js/.
  std::vector<std::pair<std::string, std::string>> jsSandboxFiles;
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& filesFor(Language language) const {
    return language == Language::JavaScript ? jsSandboxFiles : sandboxFiles;
  }
  // Built-in profiles left out because their interpreter is not installed: name -> why.
  std::map<std::string, std::string> unavailableProfiles;
  std::string jsAnalyzeProgram;  // `analyze` of JavaScript (src/js/analyze.js + its entry call)
  [[nodiscard]] const std::string& analyzeProgramFor(Language language) const {
    return language == Language::JavaScript ? jsAnalyzeProgram : analyzeProgram;
  }
  std::string analyzeProgram;  // `analyze` runs this in a sandbox (src/python/analyze.py after its parts, + its entry call)
  // The host-side identity of sandboxed code: nobody when the server is root (where nobody
  // exists in our user namespace), else the server's own user.
  unsigned sandboxUid = 65534;
  unsigned sandboxGid = 65534;

  SandboxContext() = default;
  SandboxContext(const SandboxContext&) = delete;
  SandboxContext& operator=(const SandboxContext&) = delete;
  ~SandboxContext();
};

// Probes the machine, sets up cgroups, compiles the filters. Refuses (with the reason and
// the fix) when isolation is incomplete and degraded mode was not allowed.
[[nodiscard]] Result<std::unique_ptr<SandboxContext>> makeContext(Config config, ServerOptions options);

// The plan inputs every sandbox of `profile` shares (namespaces, interpreter, binds, ids,
// bootstrap, the profile's limits and the offline filter); callers adjust the rest.
[[nodiscard]] PlanInputs planInputsFor(const SandboxContext& ctx, const Profile& profile);

// Resolves `python` to a real interpreter binary (a version-manager shim is a shell script).
// `what` names it in errors ("python", "node").
[[nodiscard]] Result<Interpreter> resolveInterpreter(const std::string& python, const char* what = "python");

}  // namespace pycell::sandbox
