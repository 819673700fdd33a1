#pragma once
// Captured output of one stream, bounded: the first half of the budget is kept as the
// head, the last half as a rolling tail, and what fell between is counted and marked.
#include <cstddef>
#include <string>
#include <string_view>

namespace pycell::exec {

// The length of the longest prefix of `s` that does not end inside a UTF-8 sequence (where
// streamed output may be cut).
[[nodiscard]] size_t completeUtf8Prefix(std::string_view s);

class OutputBuffer {
 public:
  explicit OutputBuffer(size_t keepBytes) : headCap_(keepBytes - keepBytes / 2), tailCap_(keepBytes / 2) {}

  void append(std::string_view data);
  [[nodiscard]] size_t totalBytes() const { return total_; }
  [[nodiscard]] size_t droppedBytes() const { return total_ - head_.size() - tailSize(); }
  [[nodiscard]] bool truncated() const { return droppedBytes() > 0; }
  // Head, a marker saying how much was dropped (when anything was), tail.
  [[nodiscard]] std::string text() const;

 private:
  [[nodiscard]] size_t tailSize() const { return tail_.size(); }

  size_t headCap_;
  size_t tailCap_;
  std::string head_;
  std::string tail_;
  size_t total_ = 0;
};

}  // namespace pycell::exec
