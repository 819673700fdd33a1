// The server<->zygote codec (zygote_wire.h): every message and the isolation spec round-trip,
// and whatever is short, long, or malformed is refused.
#include <catch2/catch.hpp>

#include <cstring>

#include "pycell/sandbox/zygote_wire.h"

using namespace pycell::sandbox;
namespace wire = pycell::sandbox::wire;

namespace {

IsolationSpec sampleSpec() {
  IsolationSpec spec;
  spec.namespaces = {.user = true, .pid = true, .mount = true, .net = true, .ipc = true, .uts = true, .cgroup = true};
  spec.ids = {.insideUid = 1000, .insideGid = 1001, .outerUid = 65534, .outerGid = 65533, .childWritesMaps = true};
  spec.mounts = {{MountOp::Kind::BindReadOnly, "/usr", "/usr", ""},
                 {MountOp::Kind::Scratch, "/.pycell/scratch", "", "64:1000:1000"},
                 {MountOp::Kind::File, "/.pycell/bootstrap.py", std::string("print(1)\0binary\xff", 16), ""}};
  spec.mountsFromTemplate = true;
  spec.hostWorkDir = "/tmp/work";
  spec.rlimits = {{RLIMIT_NOFILE, 256, 256}, {RLIMIT_CPU, 10, RLIM_INFINITY}};
  spec.seccomp = {{0x20, 0, 0, 4}, {0x06, 0, 0, 0x7fff0000}};
  spec.execFollows = false;
  return spec;
}

void requireSame(const IsolationSpec& a, const IsolationSpec& b) {
  REQUIRE(namespaceFlags(a.namespaces).atClone == namespaceFlags(b.namespaces).atClone);
  REQUIRE(a.namespaces.cgroup == b.namespaces.cgroup);
  REQUIRE(a.ids.insideUid == b.ids.insideUid);
  REQUIRE(a.ids.insideGid == b.ids.insideGid);
  REQUIRE(a.ids.outerUid == b.ids.outerUid);
  REQUIRE(a.ids.outerGid == b.ids.outerGid);
  REQUIRE(a.ids.childWritesMaps == b.ids.childWritesMaps);
  REQUIRE(a.mounts.size() == b.mounts.size());
  for (size_t i = 0; i < a.mounts.size(); ++i) {
    REQUIRE(a.mounts[i].kind == b.mounts[i].kind);
    REQUIRE(a.mounts[i].target == b.mounts[i].target);
    REQUIRE(a.mounts[i].source == b.mounts[i].source);
    REQUIRE(a.mounts[i].data == b.mounts[i].data);
  }
  REQUIRE(a.mountsFromTemplate == b.mountsFromTemplate);
  REQUIRE(a.hostWorkDir == b.hostWorkDir);
  REQUIRE(a.rlimits.size() == b.rlimits.size());
  for (size_t i = 0; i < a.rlimits.size(); ++i) {
    REQUIRE(a.rlimits[i].resource == b.rlimits[i].resource);
    REQUIRE(a.rlimits[i].soft == b.rlimits[i].soft);
    REQUIRE(a.rlimits[i].hard == b.rlimits[i].hard);
  }
  REQUIRE(a.seccomp.size() == b.seccomp.size());
  REQUIRE(std::memcmp(a.seccomp.data(), b.seccomp.data(), a.seccomp.size() * sizeof(sock_filter)) == 0);
  REQUIRE(a.execFollows == b.execFollows);
}

}  // namespace

TEST_CASE("zygote_wire: every message round-trips with its fds", "[zygote_wire]") {
  for (auto op : {wire::Op::Init, wire::Op::Fork, wire::Op::Ready, wire::Op::Forked, wire::Op::Exit, wire::Op::Error}) {
    wire::Header h;
    h.id = 42;
    h.status = 7 << 8;
    h.utimeMs = 12;
    h.stimeMs = 3;
    h.maxrssKb = 9000;
    std::string text = op == wire::Op::Ready ? R"({"imported":["numpy"],"failed":{}})" : op == wire::Op::Error ? "why" : "";
    std::string data = wire::encode(op, h, text);
    auto m = wire::decode(data.data(), data.size(), static_cast<int>(wire::fdsOf(op)), false);
    REQUIRE(m);
    CHECK(m->op() == op);
    CHECK(m->header.id == 42);
    CHECK(m->header.status == 7 << 8);
    CHECK(m->header.utimeMs == 12);
    CHECK(m->header.maxrssKb == 9000);
    CHECK(m->text == text);
  }
  CHECK(wire::fdsOf(wire::Op::Fork) == 5);
  CHECK(wire::fdsOf(wire::Op::Forked) == 1);
  CHECK(wire::fdsOf(wire::Op::Init) == 1);
  CHECK(wire::fdsOf(wire::Op::Exit) == 0);
}

TEST_CASE("zygote_wire: short, long and malformed messages are refused", "[zygote_wire]") {
  wire::Header h;
  h.id = 5;
  std::string fork = wire::encode(wire::Op::Fork, h);
  SECTION("every truncation of a message") {
    for (size_t n = 0; n < fork.size(); ++n) CHECK_FALSE(wire::decode(fork.data(), n, 5, false));
  }
  SECTION("a truncated datagram or fds") { CHECK_FALSE(wire::decode(fork.data(), fork.size(), 5, true)); }
  SECTION("the wrong number of fds") {
    CHECK_FALSE(wire::decode(fork.data(), fork.size(), 3, false));
    CHECK_FALSE(wire::decode(fork.data(), fork.size(), 6, false));
  }
  SECTION("bad magic, unknown op, no id") {
    std::string bad = fork;
    bad[0] ^= 1;
    CHECK_FALSE(wire::decode(bad.data(), bad.size(), 5, false));
    wire::Header raw;
    raw.op = 99;
    raw.id = 1;
    std::string unknown(reinterpret_cast<const char*>(&raw), sizeof raw);
    CHECK_FALSE(wire::decode(unknown.data(), unknown.size(), 0, false));
    std::string noId = wire::encode(wire::Op::Fork, {});
    CHECK_FALSE(wire::decode(noId.data(), noId.size(), 5, false));
  }
  SECTION("text longer or shorter than announced") {
    std::string ready = wire::encode(wire::Op::Ready, {}, "{}");
    std::string longer = ready + "x";
    CHECK_FALSE(wire::decode(longer.data(), longer.size(), 0, false));
    CHECK_FALSE(wire::decode(ready.data(), ready.size() - 1, 0, false));
  }
  SECTION("a text over the limit is not encoded") {
    char buf[64];
    CHECK(wire::encode(wire::Op::Error, {}, std::string(100, 'x'), buf, sizeof buf) == 0);
    CHECK(wire::encode(wire::Op::Error, {}, std::string(wire::kMaxText + 1, 'x')).empty());
  }
}

TEST_CASE("zygote_wire: the isolation spec and the init payload round-trip", "[zygote_wire]") {
  IsolationSpec spec = sampleSpec();
  auto decoded = wire::decodeSpec(wire::encodeSpec(spec));
  REQUIRE(decoded);
  requireSame(spec, *decoded);
  auto init = wire::decodeInit(wire::encodeInit(R"({"preload":["numpy"]})", spec));
  REQUIRE(init);
  CHECK(init->json == R"({"preload":["numpy"]})");
  requireSame(spec, init->child);
}

TEST_CASE("zygote_wire: a truncated or malformed spec is refused", "[zygote_wire]") {
  std::string data = wire::encodeSpec(sampleSpec());
  SECTION("every truncation") {
    for (size_t n = 0; n < data.size(); ++n) CHECK_FALSE(wire::decodeSpec(std::string_view(data).substr(0, n)));
  }
  SECTION("trailing bytes") { CHECK_FALSE(wire::decodeSpec(data + "x")); }
  SECTION("an unknown version") {
    std::string bad = data;
    bad[0] = 9;
    CHECK_FALSE(wire::decodeSpec(bad));
  }
  SECTION("a mount count beyond what the bytes hold") {
    std::string bad = data;
    uint32_t huge = 0x7fffffff;
    std::memcpy(bad.data() + 4 + 4 + 16 + 1, &huge, sizeof huge);  // version, bits, ids, flag
    CHECK_FALSE(wire::decodeSpec(bad));
  }
  SECTION("a relative mount target") {
    IsolationSpec spec = sampleSpec();
    spec.mounts[0].target = "usr";
    CHECK_FALSE(wire::decodeSpec(wire::encodeSpec(spec)));
  }
  SECTION("an unknown rlimit resource") {
    IsolationSpec spec = sampleSpec();
    spec.rlimits[0].resource = 99;
    CHECK_FALSE(wire::decodeSpec(wire::encodeSpec(spec)));
  }
  SECTION("an init payload with bad magic or trailing bytes") {
    std::string init = wire::encodeInit("{}", sampleSpec());
    CHECK_FALSE(wire::decodeInit(init + "x"));
    init[0] ^= 1;
    CHECK_FALSE(wire::decodeInit(init));
  }
}
