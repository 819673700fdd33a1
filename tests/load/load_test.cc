// Load: many executions of every kind through one `pycell serve`, as many clients sharing
// one connection would send them. 16 client streams are multiplexed over the server's stdio;
// each keeps one execution in flight and sends its next one when the answer arrives. The mix
// is quick prints, slow sleeps, failing code, output floods and runs killed by `kill`.
//
// Checked: every request is answered exactly once (none lost, none duplicated, no id that was
// never sent), each answer fits its kind, the server's resident memory is flat from the first
// thousand executions to the last, and after the server exits no process it started and no
// cgroup named after it remains. The figures (counts, statuses, throughput, latency, memory)
// are printed to stdout, where `ctest -V` shows them.
//
// PYCELL_LOAD_EXECUTIONS sets the number of executions (default 10,000).
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "host_view.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kStreams = 16;
// The flood's output limit: small, so a flood ends quickly and its answer stays small.
constexpr int kFloodLimitBytes = 4096;
// No message at all for this long while requests are outstanding means the server is stuck.
constexpr Millis kStallTimeout{60000};

enum class Kind { kQuick, kSlow, kFailing, kFlooding, kKilled };
constexpr Kind kKinds[] = {Kind::kQuick, Kind::kSlow, Kind::kFailing, Kind::kFlooding, Kind::kKilled};

const char* kindName(Kind kind) {
  switch (kind) {
    case Kind::kQuick: return "quick";
    case Kind::kSlow: return "slow";
    case Kind::kFailing: return "failing";
    case Kind::kFlooding: return "flooding";
    case Kind::kKilled: return "killed";
  }
  return "?";
}

size_t executionsWanted() {
  const char* value = std::getenv("PYCELL_LOAD_EXECUTIONS");
  if (value == nullptr || *value == '\0') return 10000;
  return std::stoul(value);
}

struct Sent {
  bool isKill = false;
  Kind kind = Kind::kQuick;
  size_t index = 0;  // the execution's global number
  int stream = 0;
  std::string executionId;
  Clock::time_point at;
  int answers = 0;
};

struct PendingKill {
  std::string executionId;
  std::string requestId;  // of the execute
};

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

std::string streamPrefix(int stream) {
  std::ostringstream out;
  out << 's' << std::setw(2) << std::setfill('0') << stream;
  return out.str();
}

}  // namespace

TEST_CASE("10,000 mixed executions (PYCELL_LOAD_EXECUTIONS) from 16 client streams through one server", "[load]") {
  const size_t total = executionsWanted();
  REQUIRE(total >= static_cast<size_t>(kStreams));
  // The first sample is taken once the first thousand executions are answered (half of a
  // smaller run), the last once all are.
  const size_t firstSampleAt = std::min<size_t>(1000, total / 2);

  const auto mountsBefore = pycellMounts();
  // The defaults (4 running, 64 queued) take 16 executions in flight without refusing any.
  auto server = startServer(Framing::kNdjson);
  const pid_t serverPid = server->pid();
  DescendantTracker tracker(serverPid, 200ms);

  std::mt19937 random(20240611);  // fixed: the same mix every run
  // 70% quick, 10% slow, 10% failing, 5% flooding, 5% killed.
  std::discrete_distribution<int> pickKind({70, 10, 10, 5, 5});
  std::uniform_int_distribution<int> killDelayMs(0, 200);

  std::map<std::string, Sent> sent;  // by request id
  std::multimap<Clock::time_point, PendingKill> kills;  // by due time
  size_t issued = 0, executionsAnswered = 0, killRequests = 0, killAnswers = 0;
  std::map<Kind, size_t> perKind;
  std::map<Kind, std::map<std::string, size_t>> statuses;  // kind -> status -> count
  std::vector<std::string> failures;                       // answers that do not fit their kind
  std::vector<std::string> unexpected;                     // ids never sent, or answered twice
  std::map<std::string, bool> killAnswer;                  // execute request id -> kill said killed
  std::map<std::string, std::string> killedStatus;         // execute request id -> its status
  std::vector<double> quickLatencyMs, allLatencyMs;
  size_t notificationsSeen = 0;
  std::optional<long> rssFirst, rssLast;
  size_t cgroupsMidRun = 0;  // pycell-<pid> directories seen while it ran (none without cgroups)

  auto note = [](std::vector<std::string>& list, std::string text) {
    if (list.size() < 20) list.push_back(std::move(text));
    else if (list.size() == 20) list.push_back("...");
  };
  size_t failureCount = 0, unexpectedCount = 0;

  auto sendExecution = [&](int stream) {
    size_t index = issued++;
    Kind kind = kKinds[pickKind(random)];
    std::string requestId = streamPrefix(stream) + "-" + std::to_string(index);
    std::string executionId = "x-" + requestId;
    Json params = {{"executionId", executionId}};
    switch (kind) {
      case Kind::kQuick:
        params["code"] = "print(" + std::to_string(index) + ")";
        break;
      case Kind::kSlow:
        params["code"] = "import time\ntime.sleep(0.05)\nprint('slow', " + std::to_string(index) + ")";
        break;
      case Kind::kFailing:
        params["code"] = "raise ValueError('failing " + std::to_string(index) + "')";
        break;
      case Kind::kFlooding:
        params["code"] = "for i in range(200000):\n    print('flood', i)";
        params["limits"] = {{"maxOutputBytes", kFloodLimitBytes}};
        break;
      case Kind::kKilled:
        params["code"] = "import time\ntime.sleep(0.05)\nprint('finished first')";
        break;
    }
    Sent record;
    record.kind = kind;
    record.index = index;
    record.stream = stream;
    record.executionId = executionId;
    record.at = Clock::now();
    sent[requestId] = record;
    ++perKind[kind];
    server->send({{"jsonrpc", "2.0"}, {"id", requestId}, {"method", "execute"}, {"params", params}});
    if (kind == Kind::kKilled)
      kills.emplace(record.at + Millis{killDelayMs(random)}, PendingKill{executionId, requestId});
  };

  auto sendDueKills = [&] {
    auto now = Clock::now();
    while (!kills.empty() && kills.begin()->first <= now) {
      PendingKill k = kills.begin()->second;
      kills.erase(kills.begin());
      // Already answered: nothing to kill any more (and the stream has moved on).
      if (sent[k.requestId].answers > 0) continue;
      std::string id = k.requestId + "-kill";
      Sent record;
      record.isKill = true;
      record.kind = Kind::kKilled;
      record.executionId = k.executionId;
      record.at = now;
      sent[id] = record;
      ++killRequests;
      server->send({{"jsonrpc", "2.0"}, {"id", id}, {"method", "kill"}, {"params", {{"executionId", k.executionId}}}});
    }
  };

  // Checks one execute answer against its kind; returns its status.
  auto checkExecution = [&](const std::string& id, const Sent& s, const Json& message) -> std::string {
    if (!message.contains("result")) {
      ++failureCount;
      note(failures, id + " (" + kindName(s.kind) + ") answered with an error: " + brief(message, 400));
      return "rpc-error " + (message.contains("error") ? message["error"].value("code", Json(0)).dump() : "?");
    }
    const Json& r = message["result"];
    std::string status = r.value("status", "?");
    bool fits = r.value("executionId", "") == s.executionId;
    switch (s.kind) {
      case Kind::kQuick:
        fits = fits && status == "ok" && r.value("stdout", "") == std::to_string(s.index) + "\n";
        break;
      case Kind::kSlow:
        fits = fits && status == "ok" && r.value("stdout", "") == "slow " + std::to_string(s.index) + "\n";
        break;
      case Kind::kFailing:
        fits = fits && status == "error" && r["error"].is_object() && r["error"].value("type", "") == "ValueError";
        break;
      case Kind::kFlooding:
        fits = fits && status == "output_limit" && r["truncated"].value("stdout", false);
        break;
      case Kind::kKilled:
        fits = fits && (status == "killed" || (status == "ok" && r.value("stdout", "") == "finished first\n"));
        break;
    }
    if (!fits) {
      ++failureCount;
      note(failures, id + " (" + kindName(s.kind) + "): " + brief(r, 400));
    }
    return status;
  };

  std::cout << "load: " << total << " executions from " << kStreams << " streams, server pid " << serverPid
            << std::endl;
  Stopwatch clock;
  for (int stream = 0; stream < kStreams && issued < total; ++stream) sendExecution(stream);

  size_t consumed = 0;
  auto lastMessage = Clock::now();
  auto outstanding = [&] { return executionsAnswered < total || killAnswers < killRequests; };
  auto handle = [&](const Json& message) {
    if (!message.is_object()) {
      ++unexpectedCount;
      note(unexpected, "not an object: " + brief(message, 300));
      return;
    }
    if (message.contains("method")) {  // a notification: none is asked for; counted only
      ++notificationsSeen;
      return;
    }
    std::string id = message.contains("id") && message["id"].is_string() ? message["id"].get<std::string>() : "";
    auto it = sent.find(id);
    if (it == sent.end()) {
      ++unexpectedCount;
      note(unexpected, "an answer to a request never sent: " + brief(message, 300));
      return;
    }
    Sent& s = it->second;
    if (++s.answers > 1) {
      ++unexpectedCount;
      note(unexpected, "a second answer to " + id + ": " + brief(message, 300));
      return;
    }
    if (s.isKill) {
      ++killAnswers;
      std::string executeId = id.substr(0, id.size() - std::string("-kill").size());
      if (message.contains("result")) {
        killAnswer[executeId] = message["result"].value("killed", false);
      } else {
        ++failureCount;
        note(failures, id + " answered with an error: " + brief(message, 300));
      }
      return;
    }
    double latency = std::chrono::duration<double, std::milli>(Clock::now() - s.at).count();
    allLatencyMs.push_back(latency);
    if (s.kind == Kind::kQuick) quickLatencyMs.push_back(latency);
    std::string status = checkExecution(id, s, message);
    ++statuses[s.kind][status];
    if (s.kind == Kind::kKilled) killedStatus[id] = status;
    ++executionsAnswered;
    if (executionsAnswered == firstSampleAt) {
      rssFirst = rssKib(serverPid);
      cgroupsMidRun = pycellCgroups(serverPid).size();
    }
    if (executionsAnswered % 1000 == 0 || executionsAnswered == total) {
      auto rss = rssKib(serverPid);
      std::cout << "load: " << executionsAnswered << " answered after " << clock.elapsed().count() << " ms, server RSS "
                << rss.value_or(-1) << " KiB" << std::endl;
    }
    if (executionsAnswered == total) rssLast = rssKib(serverPid);
    if (issued < total) sendExecution(s.stream);
  };

  while (outstanding()) {
    Millis wait = 200ms;
    if (!kills.empty())
      wait = std::clamp(std::chrono::duration_cast<Millis>(kills.begin()->first - Clock::now()), Millis{0}, wait);
    auto message = server->waitMessage([](const Json&) { return true; }, wait, consumed);
    if (message) {
      ++consumed;
      lastMessage = Clock::now();
      handle(*message);
    }
    sendDueKills();
    if (Clock::now() - lastMessage > kStallTimeout || server->exited()) {
      std::string missing;
      size_t n = 0;
      for (const auto& [id, s] : sent)
        if (s.answers == 0 && n++ < 20) missing += " " + id;
      FAIL("the server stopped answering with " << (total - executionsAnswered) << " executions and "
                                                << (killRequests - killAnswers) << " kills outstanding (e.g."
                                                << missing << "); " << server->describe());
    }
  }
  const Millis duration = clock.elapsed();

  // Late duplicates would come now.
  for (Stopwatch settle; settle.elapsed() < 500ms;) {
    auto message = server->waitMessage([](const Json&) { return true; }, 100ms, consumed);
    if (message) {
      ++consumed;
      handle(*message);
    }
  }
  Json summary = server->callResult("status");
  // What came with the status answer (the one integer id: ours are strings).
  for (; consumed < server->messages().size(); ++consumed) {
    const Json& message = server->messages()[consumed];
    if (message.is_object() && message.contains("id") && message["id"].is_number_integer()) continue;
    handle(Json(message));
  }

  // Every killed execution agrees with what its kill said.
  size_t killConsistencyErrors = 0;
  for (const auto& [executeId, killed] : killAnswer) {
    const std::string& status = killedStatus[executeId];
    if (killed != (status == "killed")) {
      ++killConsistencyErrors;
      note(failures, executeId + ": kill said killed=" + (killed ? "true" : "false") + " but it ended " + status);
    }
  }

  // ---- the figures ----
  const double seconds = static_cast<double>(duration.count()) / 1000.0;
  std::ostringstream report;
  report << std::fixed << std::setprecision(1);
  report << "load: " << executionsAnswered << " of " << total << " executions answered in " << seconds << " s ("
         << static_cast<double>(executionsAnswered) / seconds << " executions/s), " << kStreams << " streams\n";
  for (Kind kind : kKinds) {
    report << "load:   " << std::left << std::setw(9) << kindName(kind) << std::right << std::setw(6) << perKind[kind]
           << ":";
    for (const auto& [status, n] : statuses[kind]) report << ' ' << status << '=' << n;
    report << '\n';
  }
  report << "load: kill requests " << killRequests << " (answered " << killAnswers << "), "
         << std::count_if(killAnswer.begin(), killAnswer.end(), [](const auto& kv) { return kv.second; })
         << " said killed\n";
  report << "load: latency of quick executions (send to answer): p50 " << percentile(quickLatencyMs, 50) << " ms, p99 "
         << percentile(quickLatencyMs, 99) << " ms, max " << percentile(quickLatencyMs, 100) << " ms; all kinds p50 "
         << percentile(allLatencyMs, 50) << " ms, p99 " << percentile(allLatencyMs, 99) << " ms\n";
  report << "load: server RSS after " << firstSampleAt << ": " << rssFirst.value_or(-1) << " KiB, after " << total
         << ": " << rssLast.value_or(-1) << " KiB\n";
  report << "load: server status at the end: " << brief(summary, 300) << '\n';
  report << "load: unexpected answers " << unexpectedCount << ", answers that do not fit their kind " << failureCount
         << ", notifications " << notificationsSeen << '\n';
  std::cout << report.str() << std::flush;

  std::string failureList, unexpectedList;
  for (const auto& f : failures) failureList += "\n  " + f;
  for (const auto& u : unexpected) unexpectedList += "\n  " + u;
  INFO(report.str());
  INFO("answers that do not fit:" << failureList);
  INFO("unexpected answers:" << unexpectedList);

  // None lost, none duplicated, none unexpected.
  CHECK(issued == total);
  CHECK(executionsAnswered == total);
  CHECK(killAnswers == killRequests);
  size_t unanswered = 0;
  for (const auto& [id, s] : sent) unanswered += s.answers == 0;
  CHECK(unanswered == 0);
  CHECK(unexpectedCount == 0);
  CHECK(server->malformedOutput().empty());
  // Each answer fits its kind, and each kill agrees with its execution's end.
  CHECK(failureCount == 0);
  CHECK(killConsistencyErrors == 0);
  CHECK(summary["running"] == 0);
  CHECK(summary["queued"] == 0);
  CHECK(summary["executionsTotal"] == total);

  // Flat memory: the last thousand did not leave the server bigger than the first did.
  REQUIRE(rssFirst.has_value());
  REQUIRE(rssLast.has_value());
  CHECK(*rssLast <= *rssFirst * 3 / 2 + 4096);

  // The server ends on EOF and leaves nothing behind: no process it started, no cgroup.
  tracker.sampleNow();
  server->closeStdin();
  auto code = server->waitExit(15000ms);
  INFO(server->describe());
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  for (auto message = server->waitMessage([](const Json&) { return true; }, 0ms, consumed); message;
       message = server->waitMessage([](const Json&) { return true; }, 0ms, consumed)) {
    ++consumed;
    handle(*message);
  }
  CHECK(unexpectedCount == 0);
  tracker.stop();
  Leftovers left = awaitNothingLeft(tracker, mountsBefore);
  std::cout << "load: " << tracker.seen().size() << " server descendants seen while it ran; after it exited: "
            << left.processes.size() << " left; its cgroup directories: " << cgroupsMidRun << " while it ran, "
            << left.cgroups.size() << " left" << std::endl;
  INFO("left behind: " << left.describe());
  CHECK(left.empty());
}
