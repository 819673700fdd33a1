#include <catch2/catch.hpp>

#include "pycell/exec/output_buffer.h"

using pycell::exec::OutputBuffer;

TEST_CASE("output under the cap is kept whole", "[exec]") {
  OutputBuffer b(100);
  b.append("hello ");
  b.append("world");
  CHECK(b.text() == "hello world");
  CHECK_FALSE(b.truncated());
}

TEST_CASE("output over the cap keeps head and tail and says how much was dropped", "[exec]") {
  OutputBuffer b(10);
  for (int i = 0; i < 10; ++i) b.append(std::to_string(i) + "abcdefghi");  // 100 bytes
  CHECK(b.totalBytes() == 100);
  CHECK(b.truncated());
  CHECK(b.droppedBytes() == 90);
  std::string t = b.text();
  CHECK(t.rfind("0abcd", 0) == 0);                 // head: the first five bytes
  CHECK(t.substr(t.size() - 5) == "efghi");         // tail: the last five bytes
  CHECK(t.find("90 bytes of output dropped") != std::string::npos);
}

TEST_CASE("one huge write keeps its own head and tail", "[exec]") {
  OutputBuffer b(8);
  b.append("HEAD" + std::string(1000, '.') + "TAIL");
  std::string t = b.text();
  CHECK(t.rfind("HEAD", 0) == 0);
  CHECK(t.substr(t.size() - 4) == "TAIL");
}

TEST_CASE("streamed output is cut only between whole UTF-8 characters", "[exec]") {
  using pycell::exec::completeUtf8Prefix;
  std::string euro = "\xe2\x82\xac";  // three bytes
  CHECK(completeUtf8Prefix("abc") == 3);
  CHECK(completeUtf8Prefix("a" + euro) == 4);
  CHECK(completeUtf8Prefix("a" + euro.substr(0, 1)) == 1);
  CHECK(completeUtf8Prefix("a" + euro.substr(0, 2)) == 1);
  CHECK(completeUtf8Prefix("\xf0\x9f\x90") == 0);       // 4-byte snake, one byte short
  CHECK(completeUtf8Prefix("\xf0\x9f\x90\x8d") == 4);
  CHECK(completeUtf8Prefix("\x80\x80\x80\x80") == 4);  // garbage is passed on, not held forever
}
