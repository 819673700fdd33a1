#pragma once
// The results of finished executions, kept so a client can fetch one again (`result`) until
// it drops it (`forget`) or newer results push it out. Bounded by count and by bytes: the
// oldest go first, and a result larger than the whole byte budget is not kept at all.
#include <cstddef>
#include <deque>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace pycell::exec {

using json = nlohmann::json;

class ResultStore {
 public:
  ResultStore(size_t maxResults, size_t maxBytes) : maxResults_(maxResults), maxBytes_(maxBytes) {}

  // Keeps a copy of `result` under `id` (replacing one kept under the same id). False when
  // it is larger than the byte budget and so was not kept.
  bool keep(const std::string& id, const json& result);
  [[nodiscard]] const json* find(const std::string& id) const;
  // Drops the result; false when none was kept under `id`.
  bool forget(const std::string& id);

  [[nodiscard]] size_t size() const { return results_.size(); }
  [[nodiscard]] size_t bytes() const { return bytes_; }

  // About how much memory a JSON document takes: its strings' bytes plus a fixed cost per
  // value. Walks the document once; never serializes it.
  [[nodiscard]] static size_t estimateBytes(const json& value);

 private:
  struct Kept {
    json result;
    size_t bytes = 0;
  };
  void evictOldest();

  size_t maxResults_;
  size_t maxBytes_;
  size_t bytes_ = 0;
  std::map<std::string, Kept> results_;
  std::deque<std::string> order_;  // the kept ids, oldest first
};

}  // namespace pycell::exec
