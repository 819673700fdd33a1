// libFuzzer target: the dispatcher, fed arbitrary message bodies. Every request it sees
// must get exactly one response (checked by counting ids), and nothing may throw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "pycell/protocol/dispatcher.h"

using namespace pycell::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<json> sent;
  std::vector<Reply> parked;
  {
    Dispatcher d([&](json m) { sent.push_back(std::move(m)); });
    d.onRequest("echo", [](const json& p, Reply r) { r.result(p); });
    // A handler that reads a typed member: a string throws (type_error, answered -32602);
    // any number converts (get<int> of 1e40 would be the handler's own undefined behaviour).
    d.onRequest("typed", [](const json& p, Reply r) { r.result(p.at("n").get<double>() + 1); });
    d.onRequest("throws", [](const json&, Reply) { throw InvalidParams("no"); });
    d.onRequest("later", [&](const json&, Reply r) { parked.push_back(std::move(r)); });
    d.onNotification("note", [](const json& p) { (void)p.at("x").get<std::string>(); });
    d.setGate([](std::string_view m) -> std::optional<RpcError> {
      if (m == "gated") return RpcError{code::kServerNotInitialized, "not yet"};
      return std::nullopt;
    });
    std::string body(reinterpret_cast<const char*>(data), size);
    d.handleBody(body);
    parked.clear();  // replies dropped unanswered answer -32603 themselves
  }
  // Every response is a JSON-RPC object (or a batch of them) with an id member.
  for (const auto& m : sent) {
    if (m.is_array()) {
      for (const auto& e : m)
        if (!e.is_object() || !e.contains("id")) std::abort();
    } else if (!m.is_object() || !m.contains("id") || (!m.contains("result") && !m.contains("error"))) {
      std::abort();
    }
  }
  // A single request (not a batch) gets exactly one response.
  json parsed = json::parse(std::string(reinterpret_cast<const char*>(data), size), nullptr, false);
  if (parsed.is_object() && parsed.contains("method") && parsed.contains("id") && sent.size() != 1) std::abort();
  return 0;
}
