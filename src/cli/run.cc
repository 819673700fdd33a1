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
#include "pycell/error.h"
#include "pycell/exec/scheduler.h"
#include "pycell/process/log.h"
#include "pycell/process/unique_fd.h"
#include "pycell/server/params.h"

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

// The person at the shell is the administrator: their flags widen the profile itself.
bool widenProfile(const RunOptions& options, Config& config) {
  auto profileIt = config.profiles.find(options.profile);
  if (profileIt == config.profiles.end()) {
    std::string names;
    for (const auto& [known, profile] : config.profiles) names += (names.empty() ? "" : ", ") + known;
    std::cerr << "pycell run: unknown profile '" << options.profile << "' (available: " << names << ")\n";
    return false;
  }
  Profile& profile = profileIt->second;
  profile.allowRaisingLimits = true;
  if (options.allowNetwork) profile.networkAllowed = true;
  for (const auto& [paths, writable] : {std::pair{&options.allowRead, false}, {&options.allowWrite, true}}) {
    for (const auto& p : *paths) {
      auto abs = absolutePath(p);
      if (!abs) return false;
      if (!bindablePath(*abs)) {
        // realpath leaves only / itself to refuse here.
        std::cerr << "pycell run: " << (writable ? "--allow-write " : "--allow-read ") << p << " is " << *abs
                  << ": the host's root would cover the sandbox's own; name a directory below it\n";
        return false;
      }
      profile.binds.push_back({*abs, writable});
    }
  }
  return true;
}

// The flags as a request, checked as execute params are (params.h).
std::optional<exec::ExecutionRequest> requestFor(const RunOptions& options, Config& config) {
  if (!widenProfile(options, config)) return std::nullopt;
  auto code = readSource(options.file);
  if (!code) return std::nullopt;
  server::RunArgs args{.code = std::move(*code), .profile = options.profile, .network = options.allowNetwork};
  if (options.timeoutSeconds) {
    auto ms = static_cast<int64_t>(std::ceil(*options.timeoutSeconds * 1000));
    args.limits["timeoutMs"] = ms;
    args.limits["cpuMs"] = ms;
  }
  if (options.memoryMb) args.limits["memoryMb"] = *options.memoryMb;
  auto request = server::runRequest(std::move(args), config);
  if (!request) {
    std::cerr << "pycell run: " << request.error().message << "\n";
    return std::nullopt;
  }
  if (!options.usageChartFile.empty() || !options.reportFile.empty()) request->samples = true;
  return std::move(*request);
}

// --report and --usage-chart; false when one could not be written.
bool writeReports(const RunOptions& options, const nlohmann::json& result) {
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
  return written;
}

}  // namespace

int runMain(const RunOptions& options) {
  auto config = loadConfigOrReport(options.common);
  if (!config) return 2;
  auto request = requestFor(options, *config);
  if (!request) return 2;
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
  if (!writeReports(options, result)) return 2;
  if (options.json) {
    std::cout << result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::string status = result.value("status", "error");
    if (status != "ok" && status != "error") std::cerr << "pycell: " << status << ": " << result["error"].value("message", "") << "\n";
  }
  return exitCodeFor(result);
}

}  // namespace pycell::cli
