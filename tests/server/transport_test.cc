// The transport over real pipes: a test client writes the server's stdin and reads its stdout,
// the transport runs on a real event loop, and a test handler stands for the server.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pycell/protocol/dispatcher.h"
#include "pycell/protocol/untrusted_json.h"
#include "pycell/server/transport.h"

using namespace pycell;
using namespace pycell::server;
using protocol::Frame;
using protocol::Framing;
using protocol::json;

namespace {

using namespace std::chrono_literals;

// Stands for the server: records what the transport hands it; `onEach` answers a frame.
struct Recorder : MessageHandler {
  std::vector<Frame> frames;
  std::function<void(const Frame&)> onEach;
  std::function<void()> onEnd;
  int inputClosed = 0;
  int outputClosed = 0;
  std::optional<Error> outputError;
  std::optional<Error> failure;

  void onFrame(const Frame& frame) override {
    frames.push_back(frame);
    if (onEach) onEach(frame);
  }
  void onInputClosed() override {
    ++inputClosed;
    if (onEnd) onEnd();
  }
  void onOutputClosed(const Error& error) override {
    ++outputClosed;
    outputError = error;
  }
  void onTransportFailed(const Error& error) override { failure = error; }
};

// The client's ends of the two pipes. What it writes goes in as the pipe takes it; what it
// reads is taken at most `readChunk` bytes per turn (a slow reader), or not at all.
struct Client {
  UniqueFd toServer;
  UniqueFd fromServer;
  std::string unsent;
  std::string received;
  bool reading = true;
  size_t readChunk = size_t(-1);
  bool closeWhenSent = false;

  void write(std::string_view bytes) {
    unsent += bytes;
    pump();
  }
  void pump() {
    while (!unsent.empty() && toServer) {
      ssize_t n = ::write(toServer.get(), unsent.data(), unsent.size());
      if (n <= 0) break;
      unsent.erase(0, static_cast<size_t>(n));
    }
    if (unsent.empty() && closeWhenSent) toServer.reset();
    if (!reading || !fromServer) return;
    char buf[65536];
    size_t budget = readChunk;
    while (budget > 0) {
      ssize_t n = ::read(fromServer.get(), buf, std::min(sizeof buf, budget));
      if (n <= 0) break;
      received.append(buf, static_cast<size_t>(n));
      budget -= static_cast<size_t>(n);
    }
  }
};

struct Harness {
  EventLoop loop;
  Recorder handler;
  Client client;
  UniqueFd serverIn;   // the transport's stdin
  UniqueFd serverOut;  // the transport's stdout
  std::unique_ptr<Transport> transport;

  explicit Harness(Framing framing, Transport::Limits limits = {.maxMessageBytes = 1u << 20}) {
    auto in = makePipe(O_NONBLOCK);
    auto out = makePipe(O_NONBLOCK);
    REQUIRE(in);
    REQUIRE(out);
    client.toServer = std::move(in->write);
    serverIn = std::move(in->read);
    serverOut = std::move(out->write);
    client.fromServer = std::move(out->read);
    transport = std::make_unique<Transport>(loop, handler, framing, serverIn.get(), serverOut.get(), limits);
    REQUIRE(transport->start());
  }

  // Bytes in the server's stdin not read by the transport yet.
  int unread() const {
    int n = 0;
    REQUIRE(::ioctl(serverIn.get(), FIONREAD, &n) == 0);
    return n;
  }
  // Everything the client wrote has been read by the transport.
  bool allRead() const { return client.unsent.empty() && unread() == 0; }

  // Runs the loop until `done` holds (checked after each turn of the client, every
  // millisecond); false if it has not after `limit`.
  bool runUntil(const std::function<bool()>& done, std::chrono::seconds limit = 20s) {
    auto deadline = EventLoop::Clock::now() + limit;
    bool met = false;
    EventLoop::TimerId timer = 0;
    std::function<void()> check = [&] {
      client.pump();
      if (done()) {
        met = true;
        loop.stop();
        return;
      }
      if (EventLoop::Clock::now() > deadline) {
        loop.stop();
        return;
      }
      timer = loop.addTimer(1ms, check);
    };
    timer = loop.addTimer(0ms, check);
    loop.run();
    loop.cancelTimer(timer);
    return met;
  }
};

// The complete message bodies in what the client has read so far, in the given framing.
std::vector<std::string> bodies(Framing framing, std::string_view text) {
  std::vector<std::string> out;
  if (framing == Framing::Ndjson) {
    for (size_t nl; (nl = text.find('\n')) != std::string_view::npos; text.remove_prefix(nl + 1))
      out.emplace_back(text.substr(0, nl));
    return out;
  }
  constexpr std::string_view kHeader = "Content-Length: ";
  while (true) {
    size_t end = text.find("\r\n\r\n");
    if (end == std::string_view::npos) break;
    REQUIRE(text.substr(0, kHeader.size()) == kHeader);
    size_t length = std::stoul(std::string(text.substr(kHeader.size(), end - kHeader.size())));
    if (text.size() < end + 4 + length) break;
    out.emplace_back(text.substr(end + 4, length));
    text.remove_prefix(end + 4 + length);
  }
  return out;
}

std::string frame(Framing framing, std::string_view body) { return protocol::encodeFrame(framing, body); }

// A JSON-RPC dispatcher behind the transport, as the server has one: what the frames hold
// is answered through the transport.
struct Answering {
  protocol::Dispatcher dispatcher;
  explicit Answering(Harness& h, size_t maxBytes)
      : dispatcher([&h](json m) { h.transport->send(protocol::dumpSafe(m)); }) {
    dispatcher.onRequest("echo", [](const json& params, protocol::Reply reply) { reply.result(params); });
    dispatcher.setLimits({.maxBytes = maxBytes});
    h.handler.onEach = [this](const Frame& f) { dispatcher.handleFrame(f); };
  }
};

std::string request(int id, const std::string& text) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "echo"}, {"params", {{"text", text}}}}.dump();
}

// Ignores SIGPIPE while alive (the server does, in main): a write to a closed pipe fails.
struct IgnoreSigpipe {
  struct sigaction old{};
  IgnoreSigpipe() {
    struct sigaction ign{};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, &old);
  }
  ~IgnoreSigpipe() { ::sigaction(SIGPIPE, &old, nullptr); }
};

}  // namespace

TEST_CASE("the transport detects each framing and answers in it; what was sent before is held until then", "[transport]") {
  for (Framing framing : {Framing::Ndjson, Framing::Lsp}) {
    CAPTURE(protocol::framingName(framing));
    Harness h(Framing::Auto);
    h.handler.onEach = [&](const Frame& f) { h.transport->send("{\"echo\":" + f.body + "}"); };
    // Sent before the client said anything: its framing is not known yet.
    h.transport->send("{\"notice\":1}");
    CHECK(h.transport->pendingBytes() == 0);
    CHECK(h.transport->framing() == Framing::Auto);

    h.client.write("\n\n" + frame(framing, R"({"id":1})") + frame(framing, R"({"id":2})"));
    REQUIRE(h.runUntil([&] { return bodies(framing, h.client.received).size() == 3; }));
    CHECK(h.transport->framing() == framing);
    REQUIRE(h.handler.frames.size() == 2);
    CHECK(h.handler.frames[0].kind == Frame::Kind::Message);
    CHECK(h.handler.frames[0].body == R"({"id":1})");
    CHECK(h.handler.frames[1].body == R"({"id":2})");
    CHECK(bodies(framing, h.client.received) ==
          std::vector<std::string>{R"({"notice":1})", R"({"echo":{"id":1}})", R"({"echo":{"id":2}})"});
    CHECK(h.handler.inputClosed == 0);
  }
}

TEST_CASE("a framing given up front is used from the first byte", "[transport]") {
  Harness h(Framing::Lsp);
  h.transport->send("{\"notice\":1}");  // the framing is known: it goes out now
  REQUIRE(h.runUntil([&] { return !h.client.received.empty() && h.transport->pendingBytes() == 0; }));
  CHECK(h.client.received == "Content-Length: 12\r\n\r\n{\"notice\":1}");
}

TEST_CASE("a message split across many reads is handed over once, whole", "[transport]") {
  for (Framing framing : {Framing::Ndjson, Framing::Lsp}) {
    CAPTURE(protocol::framingName(framing));
    Harness h(framing);
    std::string bytes = frame(framing, R"({"id":1,"text":"split"})");
    // One byte at a time, each read by the transport before the next is written.
    for (size_t i = 0; i < bytes.size(); ++i) {
      h.client.write(bytes.substr(i, 1));
      REQUIRE(h.runUntil([&] { return h.allRead(); }));
      CHECK(h.handler.frames.size() == (i + 1 == bytes.size() ? 1u : 0u));
    }
    REQUIRE(h.handler.frames.size() == 1);
    CHECK(h.handler.frames[0].kind == Frame::Kind::Message);
    CHECK(h.handler.frames[0].body == R"({"id":1,"text":"split"})");
  }
}

TEST_CASE("two messages in one read are both handed over, in order", "[transport]") {
  for (Framing framing : {Framing::Ndjson, Framing::Lsp}) {
    CAPTURE(protocol::framingName(framing));
    Harness h(framing);
    Answering answering(h, 1u << 20);
    // One write of fewer than PIPE_BUF bytes: the transport reads it at once.
    std::string both = frame(framing, request(1, "one")) + frame(framing, request(2, "two"));
    REQUIRE(both.size() < PIPE_BUF);
    REQUIRE(::write(h.client.toServer.get(), both.data(), both.size()) == static_cast<ssize_t>(both.size()));
    REQUIRE(h.runUntil([&] { return bodies(framing, h.client.received).size() == 2; }));
    REQUIRE(h.handler.frames.size() == 2);
    auto answers = bodies(framing, h.client.received);
    CHECK(json::parse(answers[0]) == json{{"jsonrpc", "2.0"}, {"id", 1}, {"result", {{"text", "one"}}}});
    CHECK(json::parse(answers[1]) == json{{"jsonrpc", "2.0"}, {"id", 2}, {"result", {{"text", "two"}}}});
  }
}

TEST_CASE("an oversized message is refused with its id and the next one is answered", "[transport]") {
  constexpr size_t kMax = 1024;
  for (Framing framing : {Framing::Ndjson, Framing::Lsp}) {
    CAPTURE(protocol::framingName(framing));
    Harness h(framing, {.maxMessageBytes = kMax});
    Answering answering(h, kMax);
    // Far larger than the limit and than the pipe: it arrives over many reads.
    std::string huge = request(7, std::string(300 * 1024, 'x'));
    h.client.write(frame(framing, huge) + frame(framing, request(8, "after")));
    REQUIRE(h.runUntil([&] { return bodies(framing, h.client.received).size() == 2; }));
    REQUIRE(h.handler.frames.size() == 2);
    CHECK(h.handler.frames[0].kind == Frame::Kind::Oversize);
    CHECK(h.handler.frames[0].size == huge.size());
    CHECK(h.handler.frames[0].body.size() <= protocol::FrameReader::kOversizePrefix);
    CHECK(h.handler.frames[1].kind == Frame::Kind::Message);
    auto answers = bodies(framing, h.client.received);
    json refused = json::parse(answers[0]);
    CHECK(refused["id"] == 7);
    CHECK(refused["error"]["code"] == protocol::code::kInvalidRequest);
    CHECK(refused["error"]["data"]["size"] == huge.size());
    CHECK(json::parse(answers[1])["result"] == json{{"text", "after"}});
  }
}

TEST_CASE("malformed LSP headers are answered and the transport goes on", "[transport]") {
  Harness h(Framing::Lsp);
  Answering answering(h, 1u << 20);
  h.client.write("Content-Length: many\r\n\r\n");      // not a number
  h.client.write("X-No-Colon\r\n\r\n");                // no ':' and no length
  h.client.write("Content-Type: text/plain\n\n");      // no length
  h.client.write(frame(Framing::Lsp, request(1, "ok")));
  REQUIRE(h.runUntil([&] { return bodies(Framing::Lsp, h.client.received).size() == 4; }));
  REQUIRE(h.handler.frames.size() == 4);
  CHECK(h.handler.frames[0].kind == Frame::Kind::BadHeader);
  CHECK(h.handler.frames[0].error == "Content-Length is not a number");
  CHECK(h.handler.frames[1].kind == Frame::Kind::BadHeader);
  CHECK(h.handler.frames[1].error == "header line without ':'");
  CHECK(h.handler.frames[2].kind == Frame::Kind::BadHeader);
  CHECK(h.handler.frames[2].error == "missing Content-Length header");
  auto answers = bodies(Framing::Lsp, h.client.received);
  for (int i = 0; i < 3; ++i) {
    json a = json::parse(answers[i]);
    CHECK(a["id"].is_null());
    CHECK(a["error"]["code"] == protocol::code::kParseError);
  }
  CHECK(json::parse(answers[3])["result"] == json{{"text", "ok"}});

  // A header block that never ends is cut off at its limit; the next message is read.
  h.client.write(std::string(protocol::FrameReader::kMaxHeaderBytes + 100, 'A'));
  REQUIRE(h.runUntil([&] { return h.handler.frames.size() == 5; }));
  CHECK(h.handler.frames[4].kind == Frame::Kind::BadHeader);
  h.client.write(frame(Framing::Lsp, request(2, "again")));
  REQUIRE(h.runUntil([&] { return bodies(Framing::Lsp, h.client.received).size() == 6; }));
  CHECK(json::parse(bodies(Framing::Lsp, h.client.received)[5])["result"] == json{{"text", "again"}});
  CHECK(h.handler.inputClosed == 0);
}

TEST_CASE("at EOF every frame is handed over first, and the final flush delivers what is queued", "[transport]") {
  Harness h(Framing::Ndjson);
  const std::string big(100 * 1024, 'r');  // three answers: more than the pipe holds
  h.handler.onEach = [&](const Frame& f) { h.transport->send(f.body + big); };
  size_t framesAtEnd = 0;
  h.handler.onEnd = [&] {
    framesAtEnd = h.handler.frames.size();
    h.transport->send("last");  // sending still works after the input ended
  };
  h.client.reading = false;  // not yet
  h.client.closeWhenSent = true;
  h.client.write("1\n2\n3\n");
  REQUIRE(h.runUntil([&] { return h.handler.inputClosed == 1; }));
  CHECK(framesAtEnd == 3);
  CHECK(h.transport->inputEnded());
  CHECK(h.transport->pendingBytes() > 0);

  // The client reads to its end while the server flushes and closes its stdout.
  REQUIRE(setNonBlocking(h.client.fromServer.get(), false));
  std::string received;
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(h.client.fromServer.get(), buf, sizeof buf)) > 0) received.append(buf, static_cast<size_t>(n));
  });
  h.transport->finalFlush();
  CHECK(h.transport->pendingBytes() == 0);
  h.transport.reset();
  h.serverOut.reset();
  reader.join();
  CHECK(bodies(Framing::Ndjson, received) == std::vector<std::string>{"1" + big, "2" + big, "3" + big, "last"});
  CHECK(h.handler.outputClosed == 0);
}

TEST_CASE("the final flush gives up on a client that does not read, after its time", "[transport]") {
  Harness h(Framing::Ndjson, {.maxMessageBytes = 1u << 20, .finalFlush = 200ms});
  h.client.reading = false;
  h.transport->send(std::string(256 * 1024, 'z'));  // more than the pipe holds
  REQUIRE(h.transport->pendingBytes() > 0);
  auto start = std::chrono::steady_clock::now();
  h.transport->finalFlush();
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 190ms);  // the wait is counted in whole milliseconds
  CHECK(took < 10s);
  CHECK(h.transport->pendingBytes() > 0);  // dropped, not delivered: the server exits anyway
  CHECK(h.handler.outputClosed == 0);
}

TEST_CASE("a client that closes its stdout is reported once, and what is sent after is dropped", "[transport]") {
  IgnoreSigpipe ignore;
  Harness h(Framing::Ndjson);
  h.client.fromServer.reset();
  h.transport->send("{\"id\":1}");
  CHECK(h.handler.outputClosed == 1);
  REQUIRE(h.handler.outputError);
  CHECK(h.handler.outputError->err == EPIPE);
  CHECK(h.handler.outputError->message().starts_with("stdout: "));
  CHECK(h.transport->pendingBytes() == 0);
  h.transport->send("{\"id\":2}");
  h.transport->finalFlush();
  CHECK(h.handler.outputClosed == 1);
}

TEST_CASE("a slow reader: the outbox grows, reading pauses, and nothing is lost", "[transport]") {
  constexpr size_t kHigh = 64 * 1024, kLow = 16 * 1024;
  constexpr int kRequests = 100;
  Harness h(Framing::Ndjson, {.maxMessageBytes = 1u << 20, .outboxHighWater = kHigh, .outboxLowWater = kLow});
  auto answer = [](const std::string& body) { return body + ":" + std::string(16 * 1024, static_cast<char>('a' + body.size() % 26)); };
  int handedWhilePaused = 0;
  h.handler.onEach = [&](const Frame& f) {
    if (h.transport->readingPaused()) ++handedWhilePaused;
    h.transport->send(answer(f.body));
  };
  std::string requests;
  for (int i = 0; i < kRequests; ++i) requests += std::to_string(i) + "\n";
  h.client.reading = false;
  h.client.write(requests);

  // The client reads nothing: past the high-water mark the transport stops taking requests.
  REQUIRE(h.runUntil([&] { return h.transport->readingPaused(); }));
  size_t handled = h.handler.frames.size();
  CHECK(handled < static_cast<size_t>(kRequests));
  CHECK(h.transport->pendingBytes() > kHigh);

  // Reading a little at a time, the client gets every answer, whole and in order.
  h.client.reading = true;
  h.client.readChunk = 8 * 1024;
  REQUIRE(h.runUntil([&] { return bodies(Framing::Ndjson, h.client.received).size() == kRequests; }));
  auto answers = bodies(Framing::Ndjson, h.client.received);
  for (int i = 0; i < kRequests; ++i) CHECK(answers[i] == answer(std::to_string(i)));
  CHECK(h.handler.frames.size() == static_cast<size_t>(kRequests));
  CHECK(handedWhilePaused == 0);
  CHECK_FALSE(h.transport->readingPaused());
  CHECK(h.transport->pendingBytes() == 0);
}
