#include "pycell/sandbox/zygote_wire.h"

#include <cstring>

namespace pycell::sandbox::wire {

namespace {

constexpr uint32_t kInitMagic = 0x49637970;  // "pycI"
constexpr uint32_t kSpecVersion = 2;
constexpr uint32_t kMaxMounts = 4096;
constexpr uint32_t kMaxRlimits = 64;
constexpr uint32_t kMaxFilter = 4096;  // BPF_MAXINSNS

class Writer {
 public:
  template <class T>
  void put(T value) {
    out_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void str(std::string_view s) {
    put(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <class T>
  bool get(T& value) {
    if (in_.size() < sizeof value) return false;
    std::memcpy(&value, in_.data(), sizeof value);
    in_.remove_prefix(sizeof value);
    return true;
  }
  bool str(std::string& s) {
    uint32_t n = 0;
    if (!get(n) || n > in_.size()) return false;
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool view(std::string_view& s) {
    uint32_t n = 0;
    if (!get(n) || n > in_.size()) return false;
    s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool bytes(void* out, size_t n) {
    if (n > in_.size()) return false;
    std::memcpy(out, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  [[nodiscard]] bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

uint32_t namespaceBits(const Namespaces& ns) {
  return (ns.user ? 1u : 0) | (ns.pid ? 2u : 0) | (ns.mount ? 4u : 0) | (ns.net ? 8u : 0) | (ns.ipc ? 16u : 0) |
         (ns.uts ? 32u : 0) | (ns.cgroup ? 64u : 0);
}

Namespaces namespacesOf(uint32_t bits) {
  return Namespaces{.user = (bits & 1) != 0, .pid = (bits & 2) != 0, .mount = (bits & 4) != 0, .net = (bits & 8) != 0,
                    .ipc = (bits & 16) != 0, .uts = (bits & 32) != 0, .cgroup = (bits & 64) != 0};
}

}  // namespace

uint32_t fdsOf(Op op) {
  switch (op) {
    case Op::Init: return 1;
    case Op::Fork: return 5;
    case Op::Forked: return 1;
    default: return 0;
  }
}

size_t encode(Op op, Header header, std::string_view text, char* out, size_t cap) {
  header.magic = kMagic;
  header.op = static_cast<uint32_t>(op);
  header.textLen = static_cast<uint32_t>(text.size());
  header.fdCount = fdsOf(op);
  header.reserved = 0;
  if (text.size() > kMaxText || sizeof header + text.size() > cap) return 0;
  std::memcpy(out, &header, sizeof header);
  if (!text.empty()) std::memcpy(out + sizeof header, text.data(), text.size());
  return sizeof header + text.size();
}

std::string encode(Op op, Header header, std::string_view text) {
  std::string out(sizeof(Header) + text.size(), '\0');
  size_t n = encode(op, header, text, out.data(), out.size());
  out.resize(n);
  return out;
}

std::expected<Message, const char*> decode(const void* data, size_t size, int nfds, bool truncated) {
  if (truncated) return std::unexpected("message or its fds truncated");
  Message m;
  if (size < sizeof m.header) return std::unexpected("message shorter than its header");
  std::memcpy(&m.header, data, sizeof m.header);
  if (m.header.magic != kMagic) return std::unexpected("bad magic");
  if (m.header.op < static_cast<uint32_t>(Op::Init) || m.header.op > static_cast<uint32_t>(Op::Error))
    return std::unexpected("unknown message");
  if (m.header.textLen > kMaxText || m.header.textLen != size - sizeof m.header)
    return std::unexpected("text length does not match the message");
  if (m.header.fdCount != fdsOf(m.op()) || nfds != static_cast<int>(m.header.fdCount))
    return std::unexpected("wrong number of file descriptors");
  bool needsId = m.op() == Op::Fork || m.op() == Op::Forked || m.op() == Op::Exit;
  if (needsId && m.header.id == 0) return std::unexpected("missing id");
  m.text = std::string_view(static_cast<const char*>(data) + sizeof m.header, m.header.textLen);
  return m;
}

std::string encodeSpec(const IsolationSpec& spec) {
  Writer w;
  w.put(kSpecVersion);
  w.put(namespaceBits(spec.namespaces));
  for (unsigned v : {spec.ids.insideUid, spec.ids.insideGid, spec.ids.outerUid, spec.ids.outerGid}) w.put(static_cast<uint32_t>(v));
  w.put(static_cast<uint8_t>(spec.ids.childWritesMaps));
  w.put(static_cast<uint32_t>(spec.mounts.size()));
  for (const auto& op : spec.mounts) {
    w.put(static_cast<uint32_t>(op.kind));
    w.str(op.target);
    w.str(op.source);
    w.str(op.data);
  }
  w.put(static_cast<uint8_t>(spec.mountsFromTemplate));
  w.str(spec.hostWorkDir);
  w.put(static_cast<uint32_t>(spec.rlimits.size()));
  for (const auto& r : spec.rlimits) {
    w.put(static_cast<int32_t>(r.resource));
    w.put(static_cast<uint64_t>(r.soft));
    w.put(static_cast<uint64_t>(r.hard));
  }
  w.put(static_cast<uint32_t>(spec.seccomp.size()));
  for (const auto& insn : spec.seccomp) w.put(insn);
  w.put(static_cast<uint8_t>(spec.execFollows));
  return w.take();
}

std::expected<IsolationSpec, const char*> decodeSpec(std::string_view data) {
  Reader r(data);
  IsolationSpec spec;
  uint32_t version = 0, bits = 0, count = 0;
  uint32_t ids[4];
  uint8_t flag = 0;
  if (!r.get(version) || version != kSpecVersion) return std::unexpected("isolation spec: unknown version");
  if (!r.get(bits) || bits > 127) return std::unexpected("isolation spec: bad namespaces");
  spec.namespaces = namespacesOf(bits);
  for (uint32_t& id : ids)
    if (!r.get(id)) return std::unexpected("isolation spec: truncated ids");
  spec.ids = IdPlan{ids[0], ids[1], ids[2], ids[3], false};
  if (!r.get(flag) || flag > 1) return std::unexpected("isolation spec: bad id flag");
  spec.ids.childWritesMaps = flag == 1;
  if (!r.get(count) || count > kMaxMounts) return std::unexpected("isolation spec: bad mount count");
  spec.mounts.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t kind = 0;
    MountOp op{};
    if (!r.get(kind) || kind > static_cast<uint32_t>(MountOp::Kind::Scratch)) return std::unexpected("isolation spec: bad mount kind");
    op.kind = static_cast<MountOp::Kind>(kind);
    if (!r.str(op.target) || !r.str(op.source) || !r.str(op.data)) return std::unexpected("isolation spec: truncated mount");
    if (op.target.empty() || op.target[0] != '/') return std::unexpected("isolation spec: mount target not absolute");
    spec.mounts.push_back(std::move(op));
  }
  if (!r.get(flag) || flag > 1) return std::unexpected("isolation spec: bad template flag");
  spec.mountsFromTemplate = flag == 1;
  if (!r.str(spec.hostWorkDir)) return std::unexpected("isolation spec: truncated work directory");
  if (!r.get(count) || count > kMaxRlimits) return std::unexpected("isolation spec: bad rlimit count");
  for (uint32_t i = 0; i < count; ++i) {
    int32_t resource = 0;
    uint64_t soft = 0, hard = 0;
    if (!r.get(resource) || !r.get(soft) || !r.get(hard)) return std::unexpected("isolation spec: truncated rlimit");
    if (resource < 0 || resource >= RLIM_NLIMITS) return std::unexpected("isolation spec: bad rlimit resource");
    spec.rlimits.push_back({resource, static_cast<rlim_t>(soft), static_cast<rlim_t>(hard)});
  }
  if (!r.get(count) || count > kMaxFilter) return std::unexpected("isolation spec: bad filter length");
  spec.seccomp.resize(count);
  if (count > 0 && !r.bytes(spec.seccomp.data(), count * sizeof(sock_filter)))
    return std::unexpected("isolation spec: truncated filter");
  if (!r.get(flag) || flag > 1) return std::unexpected("isolation spec: bad exec flag");
  spec.execFollows = flag == 1;
  if (!r.done()) return std::unexpected("isolation spec: trailing bytes");
  return spec;
}

std::string encodeInit(std::string_view json, const IsolationSpec& child) {
  Writer w;
  w.put(kInitMagic);
  w.str(json);
  w.str(encodeSpec(child));
  return w.take();
}

std::expected<Init, const char*> decodeInit(std::string_view payload) {
  if (payload.size() > kMaxPayload) return std::unexpected("init payload too large");
  Reader r(payload);
  uint32_t magic = 0;
  Init init;
  std::string_view spec;
  if (!r.get(magic) || magic != kInitMagic) return std::unexpected("init payload: bad magic");
  if (!r.str(init.json) || !r.view(spec)) return std::unexpected("init payload truncated");
  if (!r.done()) return std::unexpected("init payload: trailing bytes");
  auto decoded = decodeSpec(spec);
  if (!decoded) return std::unexpected(decoded.error());
  init.child = std::move(*decoded);
  return init;
}

}  // namespace pycell::sandbox::wire
