#include "pycell/exec/result_store.h"

#include <algorithm>

namespace pycell::exec {

namespace {
constexpr size_t kValueCost = 16;  // a value's own bookkeeping, beside its text
}

size_t ResultStore::estimateBytes(const json& value) {
  size_t total = kValueCost;
  if (value.is_string()) return total + value.get_ref<const std::string&>().size();
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) total += key.size() + estimateBytes(item);
  } else if (value.is_array()) {
    for (const auto& item : value) total += estimateBytes(item);
  }
  return total;
}

bool ResultStore::keep(const std::string& id, const json& result) {
  forget(id);
  size_t bytes = estimateBytes(result) + id.size();
  if (bytes > maxBytes_ || maxResults_ == 0) return false;
  while (!results_.empty() && (results_.size() >= maxResults_ || bytes_ + bytes > maxBytes_)) evictOldest();
  results_[id] = Kept{result, bytes};
  order_.push_back(id);
  bytes_ += bytes;
  return true;
}

const json* ResultStore::find(const std::string& id) const {
  auto it = results_.find(id);
  return it == results_.end() ? nullptr : &it->second.result;
}

bool ResultStore::forget(const std::string& id) {
  auto it = results_.find(id);
  if (it == results_.end()) return false;
  bytes_ -= it->second.bytes;
  results_.erase(it);
  std::erase(order_, id);  // order_ holds at most maxResults_ ids
  return true;
}

void ResultStore::evictOldest() {
  if (order_.empty()) return;
  auto it = results_.find(order_.front());
  bytes_ -= it->second.bytes;
  results_.erase(it);
  order_.pop_front();
}

}  // namespace pycell::exec
