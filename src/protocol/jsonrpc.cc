#include "pycell/protocol/jsonrpc.h"

#include <cctype>
#include <exception>
#include <optional>

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

namespace {
// The index of the quote that closes the string opened at `open`, or npos (cut short).
size_t closingQuote(std::string_view text, size_t open) {
  for (size_t i = open + 1; i < text.size(); ++i) {
    if (text[i] == '\\') ++i;
    else if (text[i] == '"') return i;
  }
  return std::string_view::npos;
}

size_t skipSpace(std::string_view text, size_t i) {
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  return i;
}

// The id value starting at `i`: a string, an integer or null; nullopt for anything else.
std::optional<json> idValue(std::string_view text, size_t i) {
  if (i >= text.size()) return std::nullopt;
  if (text[i] == '"') {
    size_t close = closingQuote(text, i);
    if (close == std::string_view::npos) return std::nullopt;
    json s = json::parse(text.substr(i, close - i + 1), nullptr, false);  // a flat string: escapes decoded
    if (s.is_string()) return s;
    return std::nullopt;
  }
  if (text.substr(i, 4) == "null") return json(nullptr);
  size_t j = i;
  if (text[j] == '-') ++j;
  while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
  if (j == i || !std::isdigit(static_cast<unsigned char>(text[j - 1]))) return std::nullopt;
  json n = json::parse(text.substr(i, j - i), nullptr, false);
  if (n.is_number_integer()) return n;
  return std::nullopt;
}
}  // namespace

json recoverId(std::string_view text) {
  // Only a member "id" of the top-level object counts (not one inside params): one linear
  // pass that follows strings and nesting, so it works on any depth and on a cut-off prefix.
  // A heuristic by nature: the message could not be parsed whole.
  size_t i = skipSpace(text, 0);
  if (i >= text.size() || text[i] != '{') return nullptr;
  size_t depth = 0;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      size_t close = closingQuote(text, i);
      if (close == std::string_view::npos) break;
      if (depth == 1 && text.substr(i, close - i + 1) == "\"id\"") {
        size_t colon = skipSpace(text, close + 1);
        if (colon < text.size() && text[colon] == ':') {
          if (auto id = idValue(text, skipSpace(text, colon + 1))) return *id;
        }
      }
      i = close;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) break;
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
  if (!state_ || state_->answered) return;
  // While an exception unwinds through a handler, the dispatcher's Handle answers with the
  // right code (-32602 for bad params); answering here first would mask it. With no Handle
  // left (the exception came through an event-loop callback that held the last Reply), this
  // is the last chance to answer.
  bool unwinding = std::uncaught_exceptions() > 0;
  if (unwinding && state_.use_count() > 1) return;
  try {
    error(code::kInternalError, unwinding ? "internal error: the request failed while it was being handled"
                                          : "internal error: the handler did not answer this request");
  } catch (...) {
    // A destructor must not throw; the sink failing here has nowhere to report to.
  }
}

void Reply::result(json value) { state_->send(makeResult(state_->id, std::move(value))); }
void Reply::error(const RpcError& err) { state_->send(makeError(state_->id, err.code, err.message, err.data)); }
void Reply::withdraw() {
  // The sink hears of it (a discarded value: nothing to send), so the dispatcher frees the id
  // and a batch stops waiting for this answer.
  if (state_) state_->send(json(json::value_t::discarded));
}
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

}  // namespace pycell::protocol
