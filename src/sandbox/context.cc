#include "pycell/sandbox/context.h"

#include <climits>
#include <cstdlib>
#include <memory>
#include <sstream>

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pycell/analyze_py.h"
#include "pycell/analyze_source_py.h"
#include "pycell/analyze_syntax_py.h"
#include "pycell/beside_bootstrap.h"
#include "pycell/bootstrap_py.h"
#include "pycell/analyze_js.h"
#include "pycell/bootstrap_js.h"
#include "pycell/error.h"
#include "pycell/process/log.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/idmap.h"

namespace pycell::sandbox {

SandboxContext::~SandboxContext() { removeCgroupBase(isolation.cgroup); }

PlanInputs planInputsFor(const SandboxContext& ctx, const Profile& profile) {
  PlanInputs in;
  in.namespaces = ctx.isolation.namespaces;
  in.language = profile.language;
  // V8 reserves address space it never touches (RlimitOptions::reservedMb).
  if (profile.language == Language::JavaScript) in.reservedMb = 1024;
  const auto& python = ctx.interpreters.at(profile.name);
  in.python = python.path;
  in.pythonRealPath = python.realPath;
  in.limits = profile.limits;
  in.memoryByRlimit = !ctx.isolation.cgroup.memory;
  in.binds = profile.binds;
  in.seccomp = ctx.isolation.seccomp ? &ctx.seccompOffline : nullptr;
  for (const auto& [path, source] : ctx.filesFor(profile.language)) {
    if (path == kBootstrapPath) in.bootstrapSource = source;  // the program a sandbox runs
    else in.extraFiles.push_back({path, source});
  }
  in.outerUid = ctx.sandboxUid;
  in.outerGid = ctx.sandboxGid;
  return in;
}

Result<Interpreter> resolveInterpreter(const std::string& python, const char* what) {
  if (python.empty() || python[0] != '/')
    return std::unexpected(Error{std::string(what) + " '" + python + "' must be an absolute path"});
  char real[PATH_MAX];
  if (!::realpath(python.c_str(), real)) return std::unexpected(sysError(std::string(what) + " " + python));
  struct stat st{};
  if (::stat(real, &st) != 0) return std::unexpected(sysError(std::string(what) + " " + python));
  if (!S_ISREG(st.st_mode) || ::access(real, X_OK) != 0)
    return std::unexpected(Error{std::string(what) + " " + python + " is not an executable file"});
  auto head = readFile(real, 4);
  if (!head) return std::unexpected(Error{std::string(what) + " " + python + ": " + head.error().message()});
  if (*head != "\x7f" "ELF")
    return std::unexpected(Error{std::string(what) + " " + python + " resolves to " + real +
                                 ", which is not an interpreter binary (a version-manager shim?); name the real one"});
  return Interpreter{python, real};
}

Result<std::unique_ptr<SandboxContext>> makeContext(Config config, ServerOptions options) {
  auto ctx = std::make_unique<SandboxContext>();
  ctx->sandboxFiles = {{kBootstrapPath, std::string(kBootstrapPy)}};
  for (auto [file, contents] : kBesideBootstrap)
    ctx->sandboxFiles.emplace_back("/.pycell/" + std::string(file), std::string(contents));
  // The analyzer's parts, then analyze.py, as one program (analyze.py ANALYZE_PARTS).
  for (std::string_view part : {kAnalyzeSourcePy, kAnalyzeSyntaxPy, kAnalyzePy}) {
    ctx->analyzeProgram += part;
    ctx->analyzeProgram += '\n';
  }
  ctx->analyzeProgram += "_analyze_main(inputs)\n";
  ctx->jsSandboxFiles = {{kBootstrapJsPath, std::string(kBootstrapJs)}};
  ctx->jsAnalyzeProgram = kAnalyzeJs;
  ctx->jsAnalyzeProgram += "\n_analyzeMain(inputs)\n";
  // The built-in javascript profile needs Node.js; without it the server serves Python only
  // and says so (initialize's profiles, pycell check), rather than refusing to start.
  if (auto js = config.profiles.find("javascript"); js != config.profiles.end() && js->second.python == kDefaultNode) {
    if (auto node = resolveInterpreter(kDefaultNode, "node"); !node) {
      ctx->unavailableProfiles["javascript"] = node.error().message();
      config.profiles.erase(js);
    }
  }
  for (const auto& [name, profile] : config.profiles) {
    auto interp = resolveInterpreter(profile.python, profile.language == Language::JavaScript ? "node" : "python");
    if (!interp) return std::unexpected(Error{"profile '" + name + "': " + interp.error().message()});
    ctx->interpreters[name] = *interp;
    ctx->policies[name] = {policyDocument(profile, false), policyDocument(profile, true)};
  }
  auto cgroups = setUpCgroups();
  ctx->isolation = probeIsolation(cgroups);
  if (!ctx->isolation.complete() && !options.allowDegraded) {
    // The destructor removes the cgroup directory made above.
    return std::unexpected(Error{"refusing to run untrusted code without full isolation: " +
                                 ctx->isolation.missingSummary() +
                                 "Run `pycell check` for details, or pass --allow-degraded to run with what remains."});
  }
  if (ctx->isolation.seccomp) {
    auto offline = compileSeccomp({.allowNetwork = false});
    auto online = compileSeccomp({.allowNetwork = true});
    if (!offline) return std::unexpected(offline.error());
    if (!online) return std::unexpected(online.error());
    ctx->seccompOffline = std::move(*offline);
    ctx->seccompOnline = std::move(*online);
  }
  if (::geteuid() == 0 && ::setgroups(0, nullptr) != 0 && errno != EPERM)
    return std::unexpected(sysError("setgroups (dropping the server's supplementary groups)"));
  if (::geteuid() != 0) {
    ctx->sandboxUid = ::geteuid();
    ctx->sandboxGid = ::getegid();
  } else if (!idMapped("/proc/self/uid_map", 65534) || !idMapped("/proc/self/gid_map", 65534)) {
    // Root of a user namespace that maps nobody out: there is no other uid to become.
    ctx->sandboxUid = ctx->sandboxGid = 0;
    ctx->isolation.items.push_back({"unprivilegedUid", false,
                                    "uid 65534 is not mapped in the server's user namespace; sandboxes keep its uid 0",
                                    "map more ids into the server's user namespace (e.g. newuidmap with /etc/subuid)"});
  }
  // allowWrite directories: id-mapped for a root server, where the kernel and the file
  // systems allow it (idmap.h); tried on every profile's writable binds.
  std::vector<std::string> writable;
  for (const auto& [name, profile] : config.profiles)
    for (const auto& bind : profile.binds)
      if (bind.writable) writable.push_back(bind.path);
  auto binds = probeWritableBinds(writable, ctx->sandboxUid, ctx->sandboxGid, ctx->isolation.seccomp);
  ctx->isolation.writableBinds = binds.mode;
  ctx->isolation.writableBindsDetail = binds.detail;
  ctx->isolation.idmappedBinds = binds.idmapped;
  if (!writable.empty() && (binds.mode == "nobody" || binds.mode == "mixed")) log::warn("allowWrite directories: " + binds.detail);
  ctx->config = std::move(config);
  ctx->options = options;
  return ctx;
}

}  // namespace pycell::sandbox
