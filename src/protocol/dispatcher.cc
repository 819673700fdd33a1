#include "pycell/protocol/dispatcher.h"

#include <memory>
#include <vector>

#include "pycell/process/log.h"

namespace pycell::protocol {

namespace {
// Logging from a catch block of a noexcept function: building the line may itself fail.
void logFailure(std::string_view what, std::string_view detail) noexcept {
  try {
    log::error(std::string(what) + ": " + std::string(detail));
  } catch (...) {
  }
}
}  // namespace

void Dispatcher::handleFrame(const Frame& frame) noexcept {
  if (frame.kind == Frame::Kind::Message) return handleBody(frame.body);
  try {
    switch (frame.kind) {
      case Frame::Kind::Message:
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
  } catch (const std::exception& e) {
    logFailure("could not answer a bad frame", e.what());
  } catch (...) {
    logFailure("could not answer a bad frame", "unknown exception");
  }
}

// Collects the responses of one batch and sends them as one array when the last arrives;
// the ids of its requests are in flight until then.
struct Dispatcher::Batch {
  Dispatcher::Send send;
  std::shared_ptr<Dispatcher::IdSet> inFlight;
  size_t expected = 0;
  std::vector<json> responses;
  std::vector<std::string> ids;
  void add(json response) {
    if (response.is_discarded()) {
      --expected;  // withdrawn: no answer in the array
    } else {
      responses.push_back(std::move(response));
    }
    if (responses.size() != expected) return;
    for (const auto& id : ids) inFlight->erase(id);  // as the array goes: reusable once it is read
    if (!responses.empty()) send(json(std::move(responses)));
  }
};

namespace {
bool isRequest(const json& m) { return m.is_object() && m.contains("method") && m.contains("id"); }
}  // namespace

void Dispatcher::handleBody(std::string_view body) noexcept {
  // Every request is answered through its Reply, which answers once whatever happens; an
  // exception that still gets here (out of memory, a failing sink) is logged and the next
  // message is read as usual.
  try {
    parseAndHandle(body);
  } catch (const std::exception& e) {
    logFailure("dispatch failed", e.what());
  } catch (...) {
    logFailure("dispatch failed", "unknown exception");
  }
}

void Dispatcher::parseAndHandle(std::string_view body) {
  json message;
  if (auto rejected = parseUntrustedInto(body, limits_, message)) {
    const auto& why = *rejected;
    switch (why.kind) {
      case JsonRejection::Kind::Invalid:
        send_(makeError(nullptr, code::kParseError, "parse error: the message is " + why.message));
        return;
      case JsonRejection::Kind::TooDeep:
        // The id is found by a linear scan of the top-level object (null in a batch).
        send_(makeError(recoverId(body), code::kInvalidRequest, "invalid request: " + why.message,
                        json{{"maxDepth", limits_.maxDepth}}));
        return;
      case JsonRejection::Kind::TooLarge:
        send_(makeError(recoverId(body.substr(0, FrameReader::kOversizePrefix)), code::kInvalidRequest,
                        "invalid request: " + why.message, json{{"size", body.size()}}));
        return;
    }
    return;
  }
  if (!message.is_array()) {
    handleMessage(message, send_, nullptr);
    return;
  }
  if (message.empty()) {
    send_(makeError(nullptr, code::kInvalidRequest, "invalid request: empty batch"));
    return;
  }
  if (message.size() > kMaxBatch) {
    // Its answers would all be held at once, in one array: refused whole.
    send_(makeError(nullptr, code::kInvalidRequest,
                    "invalid request: a batch of " + std::to_string(message.size()) + " messages exceeds " +
                        std::to_string(kMaxBatch),
                    json{{"maxBatch", kMaxBatch}}));
    return;
  }
  auto batch = std::make_shared<Batch>();
  batch->send = send_;
  batch->inFlight = inFlight_;
  for (const auto& m : message) {
    // Invalid entries are answered too (JSON-RPC 2.0 section 6); notifications are not.
    if (isRequest(m) || !m.is_object() || !m.contains("method")) ++batch->expected;
  }
  auto sink = [batch](json response) { batch->add(std::move(response)); };
  for (const auto& m : message) handleMessage(m, sink, batch);
}

void Dispatcher::handleMessage(const json& m, const Reply::Sink& sink, const std::shared_ptr<Batch>& batch) {
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
      } catch (const std::exception& e) {
        // A notification has no response to carry the error; ignore it as LSP does.
        log::debug("notification " + method + " failed: " + e.what());
      } catch (...) {
        log::debug("notification " + method + " failed");
      }
    }
    return;  // unknown notifications (including `$/...`) are ignored
  }
  // Two requests in flight with one id could not be told apart (their answers, a cancel):
  // the second is refused, and the first goes on untouched.
  std::string key = id.dump(-1, ' ', false, json::error_handler_t::replace);
  if (inFlight_->contains(key)) {
    sink(makeError(id, code::kInvalidRequest,
                   "invalid request: id " + key + " is already in use by a request not yet answered", json{{"id", id}}));
    return;
  }
  inFlight_->insert(key);
  Reply::Sink tracked;
  if (batch) {
    batch->ids.push_back(key);
    tracked = sink;
  } else {
    tracked = [inFlight = inFlight_, key, sink](json response) {
      inFlight->erase(key);  // first: the client may reuse the id as soon as it reads the answer
      if (!response.is_discarded()) sink(std::move(response));  // discarded: withdrawn
    };
  }
  Reply reply(id, std::move(tracked));
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
    log::error("request " + method + " failed: " + e.what());
    handle.error({code::kInternalError, std::string("internal error: ") + e.what()});
  } catch (...) {
    log::error("request " + method + " failed: unknown exception");
    handle.error({code::kInternalError, "internal error: unknown exception"});
  }
}

}  // namespace pycell::protocol
