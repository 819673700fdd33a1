#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "pycell/cli/cli.h"
#include "pycell/cli/usage_chart.h"
#include "pycell/exec/scheduler.h"
#include "pycell/log.h"

namespace pycell::cli {

namespace {

// The shell's conventions: 124 for a timeout (as timeout(1)), 128+N for death by signal N.
int exitCodeFor(const nlohmann::json& result) {
  std::string status = result.value("status", "error");
  if (status == "timeout") return 124;
  if (status == "killed") return 137;
  if (result["exitCode"].is_number_integer()) return result["exitCode"].get<int>();
  if (result["signal"].is_number_integer()) return 128 + result["signal"].get<int>();
  return 1;
}

std::optional<std::string> readSource(const std::string& file) {
  auto text = file == "-" ? readAll(STDIN_FILENO, 64u << 20) : readFile(file, 64u << 20);
  if (!text) {
    std::cerr << "pycell run: " << text.error().message() << "\n";
    return std::nullopt;
  }
  return *text;
}

std::optional<std::string> absolutePath(const std::string& path) {
  char real[PATH_MAX];
  if (!::realpath(path.c_str(), real)) {
    std::cerr << "pycell run: " << sysError(path).message() << "\n";
    return std::nullopt;
  }
  return std::string(real);
}

}  // namespace

int runMain(const RunOptions& options) {
  auto config = loadConfigOrReport(options.common);
  if (!config) return 2;
  auto profileIt = config->profiles.find(options.profile);
  if (profileIt == config->profiles.end()) {
    std::cerr << "pycell run: unknown profile '" << options.profile << "'\n";
    return 2;
  }
  // The person at the shell is the administrator: their flags widen the profile itself.
  Profile& profile = profileIt->second;
  profile.allowRaisingLimits = true;
  if (options.allowNetwork) profile.networkAllowed = true;
  for (const auto& [paths, writable] : {std::pair{&options.allowRead, false}, {&options.allowWrite, true}}) {
    for (const auto& p : *paths) {
      auto abs = absolutePath(p);
      if (!abs) return 2;
      profile.binds.push_back({*abs, writable});
    }
  }
  auto code = readSource(options.file);
  if (!code) return 2;
  nlohmann::json params = {{"code", *code}, {"profile", options.profile}, {"network", options.allowNetwork}};
  if (options.timeoutSeconds) {
    auto ms = static_cast<int64_t>(std::ceil(*options.timeoutSeconds * 1000));
    params["limits"]["timeoutMs"] = ms;
    params["limits"]["cpuMs"] = ms;
  }
  if (options.memoryMb) params["limits"]["memoryMb"] = *options.memoryMb;
  auto request = exec::parseExecuteParams(params, *config);
  if (!request) {
    std::cerr << "pycell run: " << request.error() << "\n";
    return 2;
  }
  if (!options.usageChartFile.empty() || !options.reportFile.empty()) request->samples = true;
  auto ctx = sandbox::makeContext(std::move(*config), options.common.server);
  if (!ctx) {
    log::error(ctx.error().message());
    return 3;
  }
  EventLoop loop;
  exec::Scheduler scheduler(loop, **ctx);
  std::optional<Result<nlohmann::json>> outcome;
  exec::Execution::OutputSink sink;
  if (!options.json) {
    sink = [](const std::string& stream, std::string_view text) {
      (void)writeAll(stream == "stderr" ? STDERR_FILENO : STDOUT_FILENO, text);
    };
  }
  auto submitted = scheduler.submit(std::move(*request), [&](Result<nlohmann::json> r) {
    outcome = std::move(r);
    loop.stop();
  }, sink);
  if (!submitted) {
    std::cerr << "pycell run: " << submitted.error().message << "\n";
    return 2;
  }
  // Ctrl-C or a TERM stops the sandbox, then us.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sigfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (sigfd) (void)loop.watch(sigfd.get(), EPOLLIN, [&](uint32_t) { scheduler.stop(*submitted, exec::StopReason::Killed); });
  if (!outcome) loop.run();
  if (!outcome || !*outcome) {
    std::cerr << "pycell run: the sandbox could not be created: "
              << (outcome ? outcome->error().message() : std::string("no result")) << "\n";
    return 3;
  }
  const auto& result = **outcome;
  bool written = true;
  auto writeOut = [&](const std::string& path, const std::string& text) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd || !writeAll(fd.get(), text)) {
      std::cerr << "pycell run: " << sysError(path).message() << "\n";
      written = false;
    }
  };
  if (!options.reportFile.empty())
    writeOut(options.reportFile, result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  if (!options.usageChartFile.empty()) {
    std::string title = (options.file == "-" ? std::string("<stdin>") : options.file) + " (" + result.value("status", "?") + ")";
    writeOut(options.usageChartFile,
             renderUsageChart(result.contains("samples") ? result["samples"] : nlohmann::json::array(), result["usage"], title));
  }
  if (!written) return 2;
  if (options.json) {
    std::cout << result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::string status = result.value("status", "error");
    if (status != "ok" && status != "error") std::cerr << "pycell: " << status << ": " << result["error"].value("message", "") << "\n";
  }
  return exitCodeFor(result);
}

}  // namespace pycell::cli
