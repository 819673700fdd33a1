#pragma once
// JSON-RPC 2.0 messages: error codes, parsing a body into messages, and the Reply type
// that guarantees every request is answered exactly once.
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace pycell::protocol {

using json = nlohmann::json;

namespace code {
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kServerNotInitialized = -32002;
inline constexpr int kRequestCancelled = -32800;
inline constexpr int kSandboxFailed = -32000;
inline constexpr int kQueueFull = -32001;
// A token was needed and missing or wrong, or the request is for the server's owner only.
inline constexpr int kNotPermitted = -32003;
}  // namespace code

// Thrown by handlers for bad params; turned into -32602 at the dispatch boundary.
struct InvalidParams : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A JSON-RPC error with optional data, as handlers report it.
struct RpcError {
  int code;
  std::string message;
  json data = nullptr;
};

[[nodiscard]] json makeError(const json& id, int code, const std::string& message, const json& data = nullptr);
[[nodiscard]] json makeResult(const json& id, json result);

// Best effort: the "id" of a message that could not be parsed whole (oversize, truncated).
[[nodiscard]] json recoverId(std::string_view prefix);

// The obligation to answer one request. Move-only; answering twice is ignored; a Reply
// destroyed unanswered answers -32603 itself, so no request can be forgotten.
class Reply {
 public:
  using Sink = std::function<void(json response)>;
  Reply(json id, Sink sink);
  Reply(Reply&&) noexcept = default;
  Reply& operator=(Reply&&) noexcept;
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply();

  void result(json value);
  void error(const RpcError& err);
  void error(int code, const std::string& message, const json& data = nullptr) { error(RpcError{code, message, data}); }
  // Ends the request without a response (MCP: a cancelled request gets none), so that
  // neither a later answer nor the destructor sends one. The sink gets a discarded json
  // value: it sends nothing, and may free what it held for the request.
  void withdraw();
  [[nodiscard]] bool answered() const;
  [[nodiscard]] const json& id() const;

  // A non-owning view that can answer if nobody has yet (used by the dispatcher when a
  // handler throws after taking the Reply).
  class Handle {
   public:
    void error(const RpcError& err) const;

   private:
    friend class Reply;
    std::shared_ptr<struct ReplyState> state_;
  };
  [[nodiscard]] Handle handle() const;

 private:
  std::shared_ptr<struct ReplyState> state_;
};

}  // namespace pycell::protocol
