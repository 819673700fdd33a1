#pragma once
// The messages between the server and a zygote, defined once: one datagram per message on
// a SOCK_SEQPACKET socket (fd_passing.h), a fixed Header, then `textLen` bytes of text, and
// exactly `fdCount` file descriptors (SCM_RIGHTS). Encoded and decoded here only: by the
// server (src/pool/zygote.cc), by the zygote's fork loop (fork_loop.cc) and, for the zygote's Python
// side, by libpycell_child.so's pycell_receive_init / pycell_send_ready (child_abi.h).
//
//   server -> zygote   Init    text: none; fd: a memfd holding the init payload (below)
//                      Fork    id; fds: the child's stdin, stdout, stderr, request, result
//   zygote -> server   Ready   text: JSON {"imported": [...], "failed": {...}}
//                      Forked  id; fd: the child's pidfd
//                      Exit    id, wait status, CPU and peak memory from wait4
//                      Error   id (0 if the request was unreadable); text: why
//
// The init payload: the JSON the zygote's Python reads (preload, childWarmup, policy), and
// the IsolationSpec every child of this zygote applies to itself (isolate.h), encoded here.
// Everything decoded is bounded and checked: a short, long or malformed message is refused.
#include <stddef.h>
#include <stdint.h>

#include <expected>
#include <string>
#include <string_view>

#include "pycell/sandbox/isolate.h"

namespace pycell::sandbox::wire {

inline constexpr uint32_t kMagic = 0x31637970;  // "pyc1"
inline constexpr size_t kMaxText = 1 << 20;
inline constexpr size_t kMaxPayload = 64 << 20;

enum class Op : uint32_t { Init = 1, Fork = 2, Ready = 3, Forked = 4, Exit = 5, Error = 6 };

struct Header {
  uint32_t magic = kMagic;
  uint32_t op = 0;
  uint64_t id = 0;
  int32_t status = 0;  // Exit: the wait(2) status
  uint32_t textLen = 0;
  int64_t utimeMs = 0;  // Exit: from wait4's rusage
  int64_t stimeMs = 0;
  int64_t maxrssKb = 0;
  uint32_t fdCount = 0;
  uint32_t reserved = 0;
};

struct Message {
  Header header;
  std::string_view text;  // into the decoded buffer
  [[nodiscard]] Op op() const { return static_cast<Op>(header.op); }
};

// How many fds each message must carry.
[[nodiscard]] uint32_t fdsOf(Op op);

// Header + text into `out` (at most `cap` bytes); returns the length, or 0 if it does not
// fit. Sets magic, op, textLen and fdCount.
[[nodiscard]] size_t encode(Op op, Header header, std::string_view text, char* out, size_t cap);
[[nodiscard]] std::string encode(Op op, Header header, std::string_view text = {});

// Checks a received datagram (its bytes, and how many fds came with it; `truncated` if the
// datagram or its fds did not fit): magic, known op, lengths, the op's fd count.
[[nodiscard]] std::expected<Message, const char*> decode(const void* data, size_t size, int nfds, bool truncated);

// The init payload (the memfd's contents).
struct Init {
  std::string json;
  IsolationSpec child;
};
[[nodiscard]] std::string encodeInit(std::string_view json, const IsolationSpec& child);
[[nodiscard]] std::expected<Init, const char*> decodeInit(std::string_view payload);

// An IsolationSpec on its own (the init payload's second part).
[[nodiscard]] std::string encodeSpec(const IsolationSpec& spec);
[[nodiscard]] std::expected<IsolationSpec, const char*> decodeSpec(std::string_view data);

}  // namespace pycell::sandbox::wire
