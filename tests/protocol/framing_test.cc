#include <catch2/catch.hpp>

#include "pycell/protocol/framing.h"

using namespace pycell::protocol;

namespace {
std::vector<Frame> drain(FrameReader& r) {
  std::vector<Frame> out;
  while (auto f = r.next()) out.push_back(*f);
  return out;
}
std::string lsp(const std::string& body) { return encodeFrame(Framing::Lsp, body); }
}  // namespace

TEST_CASE("auto framing picks NDJSON when the first non-space byte is a brace", "[framing]") {
  FrameReader r(Framing::Auto, 1024);
  r.feed("  \n{\"a\":1}\n");
  auto frames = drain(r);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].body == "{\"a\":1}");
  CHECK(r.framing() == Framing::Ndjson);
}

TEST_CASE("auto framing picks LSP for a Content-Length header", "[framing]") {
  FrameReader r(Framing::Auto, 1024);
  r.feed(lsp("{\"a\":1}"));
  auto frames = drain(r);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].body == "{\"a\":1}");
  CHECK(r.framing() == Framing::Lsp);
}

TEST_CASE("an LSP message split across many reads is reassembled", "[framing]") {
  FrameReader r(Framing::Lsp, 1024);
  std::string bytes = lsp("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}");
  for (char c : bytes) {
    CHECK(drain(r).empty());
    r.feed(std::string(1, c));
  }
  auto frames = drain(r);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].body == "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}");
}

TEST_CASE("two messages in one read come out as two frames", "[framing]") {
  FrameReader r(Framing::Lsp, 1024);
  r.feed(lsp("{\"a\":1}") + lsp("{\"b\":2}"));
  auto frames = drain(r);
  REQUIRE(frames.size() == 2);
  CHECK(frames[1].body == "{\"b\":2}");

  FrameReader n(Framing::Ndjson, 1024);
  n.feed("{\"a\":1}\r\n{\"b\":2}\n{\"c\"");
  frames = drain(n);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].body == "{\"a\":1}");
  n.feed(":3}\n");
  frames = drain(n);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].body == "{\"c\":3}");
}

TEST_CASE("Content-Length counts bytes, not characters, in a multi-byte UTF-8 body", "[framing]") {
  std::string body = "{\"code\":\"print('h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x90\x8d')\"}";
  std::string framed = lsp(body);
  CHECK(framed.find("Content-Length: " + std::to_string(body.size()) + "\r\n") == 0);
  FrameReader r(Framing::Lsp, 1024);
  r.feed(framed + lsp("{}"));
  auto frames = drain(r);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].body == body);
  CHECK(frames[1].body == "{}");
}

TEST_CASE("other LSP headers are accepted and ignored, names case-insensitively", "[framing]") {
  FrameReader r(Framing::Lsp, 1024);
  r.feed("content-type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: 2\r\n\r\n{}");
  auto frames = drain(r);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].body == "{}");
}

TEST_CASE("an oversize LSP message is reported once and skipped without buffering it", "[framing]") {
  FrameReader r(Framing::Lsp, 100);
  std::string big = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"execute\",\"params\":{\"code\":\"" + std::string(500, 'x') + "\"}}";
  std::string framed = lsp(big);
  r.feed(framed.substr(0, 150));
  CHECK(drain(r).empty());
  r.feed(framed.substr(150) + lsp("{\"ok\":1}"));
  auto frames = drain(r);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].kind == Frame::Kind::Oversize);
  CHECK(frames[0].size == big.size());
  CHECK(frames[0].body.find("\"id\":7") != std::string::npos);
  CHECK(frames[1].kind == Frame::Kind::Message);
  CHECK(frames[1].body == "{\"ok\":1}");
}

TEST_CASE("an oversize NDJSON line is skipped up to its newline", "[framing]") {
  FrameReader r(Framing::Ndjson, 50);
  r.feed("{\"id\":\"big\",\"x\":\"" + std::string(200, 'y'));
  CHECK(drain(r).empty());
  r.feed(std::string(200, 'y') + "\"}\n{\"id\":2}\n");
  auto frames = drain(r);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].kind == Frame::Kind::Oversize);
  CHECK(frames[0].body.find("\"big\"") != std::string::npos);
  CHECK(frames[1].body == "{\"id\":2}");
}

TEST_CASE("a header block without Content-Length is a bad header, and the stream goes on", "[framing]") {
  FrameReader r(Framing::Lsp, 1024);
  r.feed("X-Foo: bar\r\n\r\n" + lsp("{}"));
  auto frames = drain(r);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].kind == Frame::Kind::BadHeader);
  CHECK(frames[0].error == "missing Content-Length header");
  CHECK(frames[1].body == "{}");

  FrameReader bad(Framing::Lsp, 1024);
  bad.feed("Content-Length: twelve\r\n\r\n");
  frames = drain(bad);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].error == "Content-Length is not a number");
}

TEST_CASE("framing names parse and print", "[framing]") {
  CHECK(parseFraming("lsp") == Framing::Lsp);
  CHECK(parseFraming("ndjson") == Framing::Ndjson);
  CHECK(parseFraming("auto") == Framing::Auto);
  CHECK_FALSE(parseFraming("xml").has_value());
  CHECK(framingName(Framing::Ndjson) == "ndjson");
  CHECK(encodeFrame(Framing::Ndjson, "{}") == "{}\n");
}
