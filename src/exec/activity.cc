// The execute result's `activity`: the events a run's policy layer wrote through to the
// server as they happened (src/python/policy.py), summed up for a reader. Built here, from
// the server's own copy, so a program that tampers with the bootstrap afterwards cannot
// rewrite what it did before.
#include <set>
#include <string>

#include "pycell/exec/activity.h"
#include "pycell/protocol/untrusted_json.h"

namespace pycell::exec {

using nlohmann::json;

namespace {
std::string text(const json& event, const char* key) {
  constexpr size_t kCap = 1000;
  if (!event.contains(key) || !event[key].is_string()) return {};
  const auto& s = event[key].get_ref<const std::string&>();
  return protocol::truncateUtf8(s, kCap);  // never inside a character: the result must stay valid UTF-8
}
bool flag(const json& event, const char* key) { return event.contains(key) && event[key] == true; }
}  // namespace

json summarizeActivity(const json& events) {
  json imports = json::array(), files = json::array(), network = json::array(), processes = json::array(),
       blocked = json::array(), exceptions = json::array(), timeline = json::array();
  std::set<std::string> seen;
  bool truncated = false;
  auto first = [&](std::string key) { return seen.insert(std::move(key)).second; };
  for (const auto& event : events) {
    if (!event.is_object()) continue;
    std::string kind = text(event, "kind");
    json entry = {{"kind", kind}};
    if (event.contains("t") && event["t"].is_number()) entry["t"] = event["t"];
    if (kind == "import") {
      std::string module = text(event, "module");
      entry["module"] = module;
      if (first("i:" + module)) imports.push_back(module);
    } else if (kind == "file") {
      json f = {{"path", text(event, "path")}, {"mode", text(event, "mode")}, {"allowed", flag(event, "allowed")}};
      entry.update(f);
      if (first("f:" + f.dump(-1, ' ', false, json::error_handler_t::replace))) files.push_back(std::move(f));
    } else if (kind == "network") {
      json n = {{"address", text(event, "address")}, {"operation", text(event, "operation")}, {"allowed", flag(event, "allowed")}};
      entry.update(n);
      if (first("n:" + n.dump(-1, ' ', false, json::error_handler_t::replace))) network.push_back(std::move(n));
    } else if (kind == "process") {
      json p = {{"operation", text(event, "operation")}, {"detail", text(event, "detail")}};
      entry.update(p);
      processes.push_back(std::move(p));
    } else if (kind == "blocked") {
      json b = {{"what", text(event, "what")}, {"detail", text(event, "detail")}};
      entry.update(b);
      blocked.push_back(std::move(b));
    } else if (kind == "exception") {
      json e = {{"type", text(event, "type")}, {"message", text(event, "message")}};
      entry.update(e);
      exceptions.push_back(std::move(e));
    } else if (kind == "truncated") {
      truncated = true;
    } else {
      continue;  // not a kind the policy layer writes
    }
    timeline.push_back(std::move(entry));
  }
  return {{"imports", imports}, {"files", files},     {"network", network},   {"processes", processes},
          {"blocked", blocked}, {"exceptions", exceptions}, {"events", timeline}, {"truncated", truncated}};
}

}  // namespace pycell::exec
