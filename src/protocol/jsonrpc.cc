#include "pycell/protocol/jsonrpc.h"

#include <cctype>
#include <exception>

namespace pycell::protocol {

struct ReplyState {
  json id;
  Reply::Sink sink;
  bool answered = false;

  void send(json response) {
    if (answered) return;
    answered = true;
    if (sink) sink(std::move(response));
  }
};

json makeError(const json& id, int code, const std::string& message, const json& data) {
  json err = {{"code", code}, {"message", message}};
  if (!data.is_null()) err["data"] = data;
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
}

json makeResult(const json& id, json result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json recoverId(std::string_view text) {
  // Look for `"id"` followed by `:` and a number or a simple string. A heuristic by nature:
  // the message could not be parsed, so this is the best that can be done.
  for (size_t pos = text.find("\"id\""); pos != std::string_view::npos; pos = text.find("\"id\"", pos + 4)) {
    size_t i = pos + 4;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size() || text[i] != ':') continue;
    ++i;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size()) break;
    if (text[i] == '"') {
      size_t close = text.find('"', i + 1);
      if (close == std::string_view::npos) break;
      std::string_view s = text.substr(i + 1, close - i - 1);
      if (s.find('\\') != std::string_view::npos) continue;
      return std::string(s);
    }
    size_t j = i;
    if (j < text.size() && text[j] == '-') ++j;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i && std::isdigit(static_cast<unsigned char>(text[j - 1]))) {
      return json::parse(text.substr(i, j - i), nullptr, false);
    }
  }
  return nullptr;
}

Reply::Reply(json id, Sink sink) : state_(std::make_shared<ReplyState>(ReplyState{std::move(id), std::move(sink)})) {}

Reply& Reply::operator=(Reply&& other) noexcept {
  if (this != &other) {
    if (state_ && !state_->answered) error(code::kInternalError, "internal error: request was dropped unanswered");
    state_ = std::move(other.state_);
  }
  return *this;
}

Reply::~Reply() {
  // While an exception unwinds through a handler, the dispatcher's Handle answers with the
  // right code (-32602 for bad params); answering here first would mask it.
  if (std::uncaught_exceptions() > 0) return;
  if (state_ && !state_->answered) {
    try {
      error(code::kInternalError, "internal error: the handler did not answer this request");
    } catch (...) {
      // A destructor must not throw; the sink failing here has nowhere to report to.
    }
  }
}

void Reply::result(json value) { state_->send(makeResult(state_->id, std::move(value))); }
void Reply::error(const RpcError& err) { state_->send(makeError(state_->id, err.code, err.message, err.data)); }
bool Reply::answered() const { return !state_ || state_->answered; }
const json& Reply::id() const { return state_->id; }

Reply::Handle Reply::handle() const {
  Handle h;
  h.state_ = state_;
  return h;
}

void Reply::Handle::error(const RpcError& err) const {
  if (state_) state_->send(makeError(state_->id, err.code, err.message, err.data));
}
bool Reply::Handle::answered() const { return !state_ || state_->answered; }

}  // namespace pycell::protocol
