#include <chrono>
#include <iostream>
#include <map>
#include <set>

#include "pycell/cli/cli.h"
#include "pycell/error.h"
#include "pycell/exec/scheduler.h"
#include "pycell/sandbox/probe.h"
#include "pycell/server/params.h"

namespace pycell::cli {

namespace {

// One real execution through the whole stack: the proof that the pieces fit together.
Result<nlohmann::json> runInSandbox(const sandbox::SandboxContext& ctx, server::RunArgs args) {
  EventLoop loop;
  exec::Scheduler scheduler(loop, ctx);
  auto request = server::runRequest(std::move(args), ctx.config);
  if (!request) return std::unexpected(Error{request.error().message});
  std::optional<Result<nlohmann::json>> outcome;
  auto submitted = scheduler.submit(std::move(*request), [&](Result<nlohmann::json> r) {
    outcome = std::move(r);
    loop.stop();
  });
  if (!submitted) return std::unexpected(Error{submitted.error().message});
  if (!outcome) loop.run();
  return std::move(*outcome);
}

// Why a run did not succeed: its error's message, else its stderr, never empty.
std::string reasonOf(const nlohmann::json& result) {
  std::string reason;
  if (result.contains("error") && result["error"].is_object() && result["error"].contains("message") &&
      result["error"]["message"].is_string())
    reason = result["error"]["message"].get<std::string>();
  if (reason.empty() && result.contains("stderr") && result["stderr"].is_string()) reason = result["stderr"].get<std::string>();
  while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
  return reason.empty() ? "no reason given" : reason;
}

struct PreloadRow {
  bool ok = false;
  std::string text;
};

// What each profile's zygote reported of its preload (the pool status's preloaded and
// preloadFailed): one run in each pooled profile waits for its zygote to be ready.
std::map<std::string, PreloadRow> preloadRows(const sandbox::SandboxContext& ctx) {
  std::map<std::string, PreloadRow> rows;
  EventLoop loop;
  exec::Scheduler scheduler(loop, ctx, /*usePools=*/true);
  std::map<std::string, std::string> failures;
  size_t pending = 0;
  const auto& ns = ctx.isolation.namespaces;
  for (const auto& [name, profile] : ctx.config.profiles) {
    if (profile.preload.empty()) continue;
    if (!ns.user || !ns.mount || !ns.pid) {
      rows[name] = {false, "not used: only a pool's zygote preloads, and pools need user, mount and pid namespaces"};
    } else if (profile.pool.size <= 0) {
      rows[name] = {false, "not used: only a pool's zygote preloads, and the profile has no pool (pool.size 0)"};
    } else if (auto request = server::runRequest({.code = "None", .profile = name}, ctx.config); !request) {
      rows[name] = {false, "cannot run in the profile: " + request.error().message};
    } else {
      auto submitted = scheduler.submit(std::move(*request), [&, name](Result<nlohmann::json> r) {
        if (!r) failures[name] = r.error().message();
        else if ((*r).value("status", "") != "ok") failures[name] = "status " + (*r).value("status", "?") + ": " + reasonOf(*r);
        if (--pending == 0) loop.stop();
      });
      if (submitted) ++pending;
      else rows[name] = {false, "cannot run in the profile: " + submitted.error().message};
    }
  }
  if (pending > 0) loop.run();
  const nlohmann::json summary = scheduler.summary();
  for (const auto& pool : summary["pools"]) {
    std::string name = pool.value("profile", "");
    if (!ctx.config.profiles.contains(name) || ctx.config.profiles.at(name).preload.empty()) continue;
    if (!pool.value("zygoteReady", false)) {
      auto failure = failures.find(name);
      rows[name] = {false, "the zygote is not ready: " + (failure != failures.end() ? failure->second : "no reason given")};
      continue;
    }
    std::string imported;
    for (const auto& module : pool["preloaded"]) imported += (imported.empty() ? "" : ", ") + module.get<std::string>();
    std::string failed;
    for (const auto& [module, why] : pool["preloadFailed"].items()) {
      std::string reason = why.is_string() ? why.get<std::string>() : why.dump();
      failed += (failed.empty() ? "" : ", ") + module + " (" + (reason.empty() ? "no reason given" : reason) + ")";
    }
    if (failed.empty()) rows[name] = {true, "the zygote imported " + (imported.empty() ? "nothing" : imported)};
    else rows[name] = {false, "the zygote imported " + (imported.empty() ? "nothing" : imported) + "; failed: " + failed};
  }
  scheduler.shutdown();
  return rows;
}

// One run of `language` in its own profile: what it printed as its version, or why not.
std::string endToEnd(const sandbox::SandboxContext& ctx, const std::string& language, bool& ok) {
  bool js = language == "javascript";
  auto started = std::chrono::steady_clock::now();
  auto r = runInSandbox(ctx, {.code = js ? "process.version" : "import sys\nsys.version.split()[0]", .language = language});
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (!r) return r.error().message();
  ok = (*r).value("status", "") == "ok" && (*r)["value"].is_string();
  return ok ? std::string("ran ") + (js ? "Node.js " : "Python ") + (*r)["value"].get<std::string>() + " in a sandbox in " +
                  std::to_string(ms) + " ms"
            : "status " + (*r).value("status", "?") + ": " + reasonOf(*r);
}

// A row that is `ok`, or a warning with its fix on the next line.
void warnRow(bool ok, const std::string& text, const std::string& fix = "") {
  std::cout << (ok ? "ok    " : "warn  ") << text << "\n";
  if (!ok && !fix.empty()) std::cout << "      fix: " << fix << "\n";
}

}  // namespace

int checkMain(const CommonOptions& options) {
  auto config = loadConfigOrReport(options);
  if (!config) return 2;
  ServerOptions server = options.server;
  server.allowDegraded = true;  // report everything, refuse nothing
  auto ctx = sandbox::makeContext(*config, server);
  if (!ctx) {
    std::cout << "FAIL  setup: " << ctx.error().message() << "\n";
    return 1;
  }
  const auto& iso = (*ctx)->isolation;
  if (iso.container.inside) std::cout << "ok    container: " << iso.container.evidence << "\n";
  std::set<std::string> hinted;  // one failure often has several rows (each namespace): its hint once
  for (const auto& item : iso.items) {
    std::cout << (item.ok ? "ok    " : "FAIL  ") << item.name << ": " << item.detail << "\n";
    if (!item.ok && !item.fix.empty()) std::cout << "      fix: " << item.fix << "\n";
    // The container's flag or field, from the one table in container.cc.
    if (std::string hint = !item.ok && iso.container.inside ? sandbox::containerHint(item.name, item.err) : "";
        !hint.empty() && hinted.insert(hint).second)
      std::cout << "      " << hint << "\n";
  }
  std::cout << std::flush;  // the rows above show even if a run below never ends
  // Not part of the isolation level: without it, runs asking for network are refused.
  warnRow(iso.netStack.available, std::string("network: ") + iso.netStack.mode() + " (" + iso.netStack.detail + ")",
          iso.netStack.fix);
  // Who owns what a sandbox writes in an allowWrite directory (idmap.h).
  warnRow(iso.writableBinds == "owner" || iso.writableBinds == "server",
          "writableBinds: " + iso.writableBinds + " (" + iso.writableBindsDetail + ")");
  // Without a memory cgroup each process has its own RLIMIT_AS: a run of N processes may
  // hold N times memoryMb. A warning, not a failure: the namespaces still isolate.
  warnRow(iso.cgroup.memory,
          iso.cgroup.memory ? "memoryLimit: cgroup (all of a run's processes together, its tmpfs pages included)"
                            : "memoryLimit: per-process (RLIMIT_AS on each process; a run of N processes may hold N "
                              "times memoryMb; its files in /sandbox, /tmp and /dev/shm hold at most diskMb together)",
          sandbox::cgroupFix());
  // Without CPU accounting in a cgroup each process has its own RLIMIT_CPU: a run that forks
  // N busy workers may use N times cpuMs (the wall-clock timeoutMs still ends it).
  warnRow(iso.cgroup.cpu,
          iso.cgroup.cpu ? "cpuLimit: cgroup (all of a run's processes together; RLIMIT_CPU on each as well)"
                         : "cpuLimit: per-process (RLIMIT_CPU on each process; a run of N busy processes may use N "
                           "times cpuMs, within its timeoutMs)",
          sandbox::cgroupFix());
  std::string pids = iso.pidsLimit();
  warnRow(pids != "per-user",
          pids == "cgroup"        ? "pidsLimit: cgroup"
          : pids == "per-sandbox" ? "pidsLimit: per-sandbox (RLIMIT_NPROC, counted in each sandbox's own user namespace)"
                                  : "pidsLimit: per-user (RLIMIT_NPROC counts every process of the uid: sandboxes share it)",
          std::string("a kernel >= 5.14 with user namespaces, or ") + sandbox::cgroupFix());
  auto preloads = preloadRows(**ctx);
  bool anyJs = false;
  for (const auto& [name, interp] : (*ctx)->interpreters) {
    bool js = (*ctx)->config.profiles.at(name).language == Language::JavaScript;
    anyJs = anyJs || js;
    std::cout << "ok    profile " << name << ": " << (js ? "node " : "python ") << interp.path << " (" << interp.realPath << ")\n";
    auto row = preloads.find(name);
    if (row == preloads.end()) continue;
    // A missing optional module is worth a line, not a failed check: the zygote logs it too.
    std::cout << (row->second.ok ? "ok    " : "warn  ") << "profile " << name << " preload: " << row->second.text << "\n";
  }
  // JavaScript is optional: without Node.js the built-in javascript profile is left out.
  for (const auto& [name, why] : (*ctx)->unavailableProfiles)
    warnRow(false, "profile " + name + ": not available (" + why + ")", "install Node.js (apt-get install nodejs)");
  bool ran = false;
  std::string detail = endToEnd(**ctx, "python", ran);
  std::cout << (ran ? "ok    " : "FAIL  ") << "execution: " << detail << "\n";
  if (anyJs) {
    bool jsRan = false;
    std::string jsDetail = endToEnd(**ctx, "javascript", jsRan);
    std::cout << (jsRan ? "ok    " : "FAIL  ") << "execution javascript: " << jsDetail << "\n";
    ran = ran && jsRan;
  }
  std::cout << "level: " << (iso.complete() ? "isolated" : "degraded") << "\n";
  return iso.complete() && ran ? 0 : 1;
}

}  // namespace pycell::cli
