#include "pycell/exec/output_buffer.h"

#include <algorithm>

#include "pycell/protocol/untrusted_json.h"

namespace pycell::exec {

size_t completeUtf8Prefix(std::string_view s) { return protocol::utf8PrefixLength(s, s.size()); }

void OutputBuffer::append(std::string_view data) {
  total_ += data.size();
  size_t toHead = std::min(data.size(), headCap_ - head_.size());
  head_.append(data.substr(0, toHead));
  data.remove_prefix(toHead);
  if (data.empty() || tailCap_ == 0) return;
  if (data.size() >= tailCap_) {
    tail_.assign(data.substr(data.size() - tailCap_));
    return;
  }
  tail_.append(data);
  if (tail_.size() > tailCap_) tail_.erase(0, tail_.size() - tailCap_);
}

std::string OutputBuffer::text() const {
  if (!truncated()) return head_ + tail_;
  return head_ + "\n[... pycell: " + std::to_string(droppedBytes()) + " bytes of output dropped ...]\n" + tail_;
}

}  // namespace pycell::exec
