#include "pycell/protocol/dispatcher.h"

#include <memory>
#include <vector>

namespace pycell::protocol {

void Dispatcher::handleFrame(const Frame& frame) {
  switch (frame.kind) {
    case Frame::Kind::Message:
      handleBody(frame.body);
      return;
    case Frame::Kind::Oversize:
      send_(makeError(recoverId(frame.body), code::kInvalidRequest,
                      "message of " + std::to_string(frame.size) + " bytes exceeds --max-message-bytes",
                      json{{"size", frame.size}}));
      return;
    case Frame::Kind::BadHeader:
      send_(makeError(nullptr, code::kParseError, "bad message header: " + frame.error));
      return;
  }
}

namespace {
// Collects the responses of one batch and sends them as one array when the last arrives.
struct BatchCollector {
  Dispatcher::Send send;
  size_t expected = 0;
  std::vector<json> responses;
  void add(json response) {
    responses.push_back(std::move(response));
    if (responses.size() == expected) send(json(std::move(responses)));
  }
};

bool isRequest(const json& m) { return m.is_object() && m.contains("method") && m.contains("id"); }
}  // namespace

void Dispatcher::handleBody(std::string_view body) {
  json message = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) {
    send_(makeError(nullptr, code::kParseError, "parse error: the message is not valid JSON"));
    return;
  }
  if (!message.is_array()) {
    handleMessage(message, send_);
    return;
  }
  if (message.empty()) {
    send_(makeError(nullptr, code::kInvalidRequest, "invalid request: empty batch"));
    return;
  }
  auto collector = std::make_shared<BatchCollector>();
  collector->send = send_;
  for (const auto& m : message) {
    // Invalid entries are answered too (JSON-RPC 2.0 section 6); notifications are not.
    if (isRequest(m) || !m.is_object() || !m.contains("method")) ++collector->expected;
  }
  auto sink = [collector](json response) { collector->add(std::move(response)); };
  for (const auto& m : message) handleMessage(m, sink);
}

void Dispatcher::handleMessage(const json& m, const Reply::Sink& sink) {
  if (!m.is_object()) {
    sink(makeError(nullptr, code::kInvalidRequest, "invalid request: a message must be a JSON object"));
    return;
  }
  json id = m.contains("id") ? m["id"] : json(nullptr);
  bool hasId = m.contains("id");
  if (!m.contains("method")) {
    if (m.contains("result") || m.contains("error")) return;  // a response to us: we send no requests
    sink(makeError(id, code::kInvalidRequest, "invalid request: no method"));
    return;
  }
  if (hasId && !id.is_string() && !id.is_number_integer() && !id.is_null()) {
    sink(makeError(nullptr, code::kInvalidRequest, "invalid request: id must be a string or an integer"));
    return;
  }
  if (m.contains("jsonrpc") && m["jsonrpc"] != "2.0") {
    if (hasId) sink(makeError(id, code::kInvalidRequest, "invalid request: jsonrpc must be \"2.0\""));
    return;
  }
  if (!m["method"].is_string()) {
    if (hasId) sink(makeError(id, code::kInvalidRequest, "invalid request: method must be a string"));
    return;
  }
  const std::string& method = m["method"].get_ref<const std::string&>();
  json params = m.contains("params") ? m["params"] : json(nullptr);
  if (!hasId) {
    if (auto it = notifications_.find(method); it != notifications_.end()) {
      try {
        it->second(params);
      } catch (const std::exception&) {
        // A notification has no response to carry the error; ignore it as LSP does.
      }
    }
    return;  // unknown notifications (including `$/...`) are ignored
  }
  Reply reply(id, sink);
  if (!params.is_null() && !params.is_object() && !params.is_array()) {
    reply.error(code::kInvalidParams, "invalid params: params must be an object");
    return;
  }
  dispatchRequest(method, params, std::move(reply));
}

void Dispatcher::dispatchRequest(const std::string& method, const json& params, Reply reply) {
  if (gate_) {
    if (auto refusal = gate_(method)) {
      reply.error(*refusal);
      return;
    }
  }
  auto it = requests_.find(method);
  if (it == requests_.end()) {
    reply.error(code::kMethodNotFound, "method not found: " + method);
    return;
  }
  auto handle = reply.handle();
  try {
    it->second(params, std::move(reply));
  } catch (const InvalidParams& e) {
    handle.error({code::kInvalidParams, std::string("invalid params: ") + e.what()});
  } catch (const json::exception& e) {
    handle.error({code::kInvalidParams, std::string("invalid params: ") + e.what()});
  } catch (const std::exception& e) {
    handle.error({code::kInternalError, std::string("internal error: ") + e.what()});
  }
}

}  // namespace pycell::protocol
