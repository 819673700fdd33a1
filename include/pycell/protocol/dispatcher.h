#pragma once
// Dispatch: one table binds every method; a body is parsed, validated and routed here.
// Knows nothing of the transport: responses leave through the `send` callback.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "pycell/protocol/framing.h"
#include "pycell/protocol/jsonrpc.h"
#include "pycell/protocol/untrusted_json.h"

namespace pycell::protocol {

class Dispatcher {
 public:
  using Send = std::function<void(json message)>;
  using RequestHandler = std::function<void(const json& params, Reply reply)>;
  using NotificationHandler = std::function<void(const json& params)>;
  // Consulted before each request; an error refuses it (e.g. -32002 before initialize).
  using Gate = std::function<std::optional<RpcError>(std::string_view method)>;
  // A batch's answers go out together, in one array: more messages than this in one batch are
  // refused whole (-32600), so a small message cannot ask for a huge answer.
  static constexpr size_t kMaxBatch = 1000;

  explicit Dispatcher(Send send) : send_(std::move(send)) {}

  void onRequest(std::string method, RequestHandler handler) { requests_[std::move(method)] = std::move(handler); }
  void onNotification(std::string method, NotificationHandler handler) {
    notifications_[std::move(method)] = std::move(handler);
  }
  void setGate(Gate gate) { gate_ = std::move(gate); }
  // Bodies larger or deeper than this are refused with -32600 before they become a value.
  void setLimits(JsonLimits limits) { limits_ = limits; }

  // A frame from the reader: a message body, or an oversize/bad-header report to answer.
  // Neither throws: whatever a client sends is answered (or, for a notification, dropped).
  void handleFrame(const Frame& frame) noexcept;
  void handleBody(std::string_view body) noexcept;

  // How many requests are in flight: received, their answer not yet sent.
  [[nodiscard]] size_t requestsInFlight() const { return inFlight_->size(); }

 private:
  struct Batch;
  void parseAndHandle(std::string_view body);
  // `batch`: the batch the message came in, whose answer goes out as one array (null: alone).
  void handleMessage(const json& message, const Reply::Sink& sink, const std::shared_ptr<Batch>& batch);
  void dispatchRequest(const std::string& method, const json& params, Reply reply);

  Send send_;
  // A request whose id is here is still to be answered: another with the same id is refused
  // (-32600) and nothing of it runs. An id leaves once its answer has been sent (for a batch:
  // once the batch's array has), so it may then be used again. Shared with the replies, which
  // may outlive the dispatcher.
  using IdSet = std::set<std::string, std::less<>>;  // ids as their JSON text ("7" is not 7)
  std::shared_ptr<IdSet> inFlight_ = std::make_shared<IdSet>();
  Gate gate_;
  JsonLimits limits_;
  std::map<std::string, RequestHandler, std::less<>> requests_;
  std::map<std::string, NotificationHandler, std::less<>> notifications_;
};

}  // namespace pycell::protocol
