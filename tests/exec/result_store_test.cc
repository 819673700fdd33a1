// The store of finished results behind `result` and `forget`: bounded by count and bytes,
// oldest out first, and a forgotten or replaced result gives its room back.
#include <string>

#include <catch2/catch.hpp>

#include "pycell/exec/result_store.h"

using nlohmann::json;
using pycell::exec::ResultStore;

namespace {

json resultWith(const std::string& stdoutText) { return {{"status", "ok"}, {"stdout", stdoutText}}; }

}  // namespace

TEST_CASE("a kept result is found until it is forgotten", "[results]") {
  ResultStore store(4, 1 << 20);
  REQUIRE(store.keep("a", resultWith("1\n")));
  REQUIRE(store.find("a") != nullptr);
  CHECK((*store.find("a"))["stdout"] == "1\n");
  CHECK(store.find("b") == nullptr);
  CHECK(store.forget("a"));
  CHECK_FALSE(store.forget("a"));
  CHECK(store.find("a") == nullptr);
  CHECK(store.size() == 0);
  CHECK(store.bytes() == 0);
}

TEST_CASE("the oldest results go first when the count is reached", "[results]") {
  ResultStore store(3, 1 << 20);
  for (std::string id : {"a", "b", "c", "d"}) REQUIRE(store.keep(id, resultWith(id)));
  CHECK(store.size() == 3);
  CHECK(store.find("a") == nullptr);
  CHECK(store.find("b") != nullptr);
  CHECK(store.find("d") != nullptr);
  // Forgetting one in the middle frees its place: the next keep evicts nothing.
  REQUIRE(store.forget("c"));
  REQUIRE(store.keep("e", resultWith("e")));
  CHECK(store.find("b") != nullptr);
  CHECK(store.size() == 3);
}

TEST_CASE("results are bounded by bytes, and one larger than the budget is not kept", "[results]") {
  const std::string kib(1024, 'x');
  size_t one = ResultStore::estimateBytes(resultWith(kib)) + 1;  // + the id's byte
  ResultStore store(100, 3 * one);
  for (std::string id : {"a", "b", "c"}) REQUIRE(store.keep(id, resultWith(kib)));
  CHECK(store.bytes() == 3 * one);
  REQUIRE(store.keep("d", resultWith(kib)));
  CHECK(store.find("a") == nullptr);
  CHECK(store.bytes() <= 3 * one);

  CHECK_FALSE(store.keep("huge", resultWith(std::string(4 * one, 'y'))));
  CHECK(store.find("huge") == nullptr);
  CHECK(store.find("d") != nullptr);  // nothing was evicted for a result that cannot fit
}

TEST_CASE("keeping a result again under the same id replaces it and its bytes", "[results]") {
  ResultStore store(2, 1 << 20);
  REQUIRE(store.keep("a", resultWith(std::string(500, 'x'))));
  size_t before = store.bytes();
  REQUIRE(store.keep("a", resultWith("short")));
  CHECK(store.size() == 1);
  CHECK(store.bytes() < before);
  CHECK((*store.find("a"))["stdout"] == "short");
  REQUIRE(store.keep("b", resultWith("b")));
  REQUIRE(store.keep("c", resultWith("c")));  // evicts "a", the oldest
  CHECK(store.find("a") == nullptr);
  CHECK(store.size() == 2);
}

TEST_CASE("the byte estimate counts the text a result holds", "[results]") {
  size_t small = ResultStore::estimateBytes(resultWith(""));
  size_t big = ResultStore::estimateBytes(resultWith(std::string(10000, 'z')));
  CHECK(big - small == 10000);
  CHECK(ResultStore::estimateBytes(json{{"a", json::array({1, 2, {{"b", "cc"}}})}}) > 0);
}
