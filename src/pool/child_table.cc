#include "pycell/pool/child_table.h"

#include <algorithm>

namespace pycell::pool {

bool ChildTable::add(uint64_t zygote, PooledChild child) {
  uint64_t id = child.id;
  if (slots_.contains(id)) return false;
  slots_.emplace(id, ChildSlot{.state = ChildState::Forking, .zygote = zygote, .child = std::move(child), .onExit = {}});
  return true;
}

bool ChildTable::move(uint64_t id, ChildState from, ChildState to) {
  auto it = slots_.find(id);
  if (it == slots_.end() || it->second.state != from) return false;
  it->second.state = to;
  return true;
}

bool ChildTable::forked(uint64_t id, uint64_t zygote) {
  auto it = slots_.find(id);
  if (it == slots_.end() || it->second.zygote != zygote) return false;
  return move(id, ChildState::Forking, ChildState::Warming);
}

bool ChildTable::warm(uint64_t id) {
  if (!move(id, ChildState::Warming, ChildState::Ready)) return false;
  readyQueue_.push_back(id);
  return true;
}

std::optional<PooledChild> ChildTable::claimOldest() {
  if (readyQueue_.empty()) return std::nullopt;
  uint64_t id = readyQueue_.front();
  readyQueue_.pop_front();
  ChildSlot& slot = slots_.at(id);
  slot.state = ChildState::Claimed;
  return std::move(slot.child);
}

bool ChildTable::setExitHandler(uint64_t id, ExitHandler handler) {
  auto it = slots_.find(id);
  if (it == slots_.end() || it->second.state != ChildState::Claimed) return false;
  it->second.onExit = std::move(handler);
  return true;
}

void ChildTable::clearExitHandler(uint64_t id) {
  if (auto it = slots_.find(id); it != slots_.end()) it->second.onExit = nullptr;
}

std::optional<ChildSlot> ChildTable::end(uint64_t id, uint64_t zygote) {
  auto it = slots_.find(id);
  if (it == slots_.end() || it->second.zygote != zygote) return std::nullopt;
  if (it->second.state == ChildState::Ready) std::erase(readyQueue_, id);
  ChildSlot slot = std::move(it->second);
  slots_.erase(it);
  return slot;
}

std::vector<ChildSlot> ChildTable::endZygote(uint64_t zygote) {
  std::vector<uint64_t> ids;
  for (const auto& [id, slot] : slots_)
    if (slot.zygote == zygote) ids.push_back(id);
  std::vector<ChildSlot> ended;
  for (uint64_t id : ids) ended.push_back(std::move(*end(id, zygote)));
  return ended;
}

std::vector<ChildSlot> ChildTable::endAll() {
  std::vector<ChildSlot> ended;
  for (auto& [id, slot] : slots_) ended.push_back(std::move(slot));
  slots_.clear();
  readyQueue_.clear();
  return ended;
}

PooledChild* ChildTable::child(uint64_t id) {
  auto it = slots_.find(id);
  if (it == slots_.end() || it->second.state == ChildState::Claimed) return nullptr;
  return &it->second.child;
}

std::optional<ChildState> ChildTable::stateOf(uint64_t id) const {
  auto it = slots_.find(id);
  if (it == slots_.end()) return std::nullopt;
  return it->second.state;
}

ChildCounts ChildTable::counts() const {
  ChildCounts c;
  for (const auto& [id, slot] : slots_) {
    switch (slot.state) {
      case ChildState::Forking: ++c.forking; break;
      case ChildState::Warming: ++c.warming; break;
      case ChildState::Ready: ++c.ready; break;
      case ChildState::Claimed: ++c.claimed; break;
    }
  }
  return c;
}

size_t ChildTable::countOf(uint64_t zygote) const {
  return static_cast<size_t>(std::ranges::count_if(slots_, [zygote](const auto& kv) { return kv.second.zygote == zygote; }));
}

RefillAction refillAction(const RefillInputs& in) {
  if (in.shuttingDown || !in.zygoteReady || in.backedOff) return {};
  // A fresh zygote brings a fresh address layout and hash secret.
  if (in.zygoteForks >= in.recycleAfter) return {.recycle = true, .forks = 0};
  size_t wanted = in.target + in.waiting;
  size_t have = in.counts.ready + in.counts.starting();
  if (have >= wanted || in.counts.starting() >= in.maxStarting) return {};
  return {.recycle = false, .forks = std::min(wanted - have, in.maxStarting - in.counts.starting())};
}

}  // namespace pycell::pool
