// Rich results end to end (issue 5): values as plain JSON, matplotlib figures as PNG mime
// bundles in `displays`, working-directory files out through `returnFiles`, read safely.
// numpy, pandas and matplotlib come from the `datascience` profile.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "server_process.h"

using namespace pycell::testing;

namespace {

// Standard base64 (RFC 4648, with padding); throws on anything else.
std::string decodeBase64(const std::string& text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (text.size() % 4 != 0) throw std::runtime_error("base64 length is not a multiple of 4");
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=' && i + 2 >= text.size()) {
      ++padding;
      continue;
    }
    auto at = alphabet.find(c);
    if (at == std::string::npos || padding) throw std::runtime_error("bad base64 character");
    bits = (bits << 6) | static_cast<uint32_t>(at);
    if (++count == 4) {
      out.push_back(static_cast<char>(bits >> 16));
      out.push_back(static_cast<char>(bits >> 8));
      out.push_back(static_cast<char>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 3) {  // one '='
    out.push_back(static_cast<char>(bits >> 10));
    out.push_back(static_cast<char>(bits >> 2));
  } else if (count == 2) {  // two '='
    out.push_back(static_cast<char>(bits >> 4));
  }
  return out;
}

uint32_t bigEndian32(const std::string& data, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(data.at(at + i));
  return v;
}

// The width and height of a PNG: its 8-byte signature, then the IHDR chunk first.
std::pair<uint32_t, uint32_t> pngSize(const std::string& png) {
  static const std::string signature("\x89PNG\r\n\x1a\n", 8);
  REQUIRE(png.size() > 24);
  REQUIRE(png.compare(0, 8, signature) == 0);
  REQUIRE(png.compare(12, 4, "IHDR") == 0);
  return {bigEndian32(png, 16), bigEndian32(png, 20)};
}

Json runOk(ServerProcess& server, Json params) {
  Json result = execute(server, std::move(params));
  INFO("result: " << brief(result));
  REQUIRE(result["status"] == "ok");
  return result;
}

// path -> decoded content of the result's files, checking each entry's size.
std::map<std::string, std::string> returnedFiles(const Json& result) {
  std::map<std::string, std::string> files;
  for (const auto& file : result["files"]) {
    std::string data = decodeBase64(file["base64"].get<std::string>());
    CHECK(file["size"] == data.size());
    files[file["path"].get<std::string>()] = data;
  }
  return files;
}

std::map<std::string, std::string> skippedFiles(const Json& result) {
  std::map<std::string, std::string> skipped;
  if (result.contains("skippedFiles"))
    for (const auto& entry : result["skippedFiles"])
      skipped[entry["path"].get<std::string>()] = entry["reason"].get<std::string>();
  return skipped;
}

}  // namespace

TEST_CASE("a DataFrame, an ndarray, a NaN and a datetime come back as plain JSON", "[results]") {
  auto server = startServer(Framing::kNdjson, {}, Pools::All);
  Json result = runOk(*server, {{"profile", "datascience"},
                                {"code",
                                 "import datetime, numpy as np, pandas as pd\n"
                                 "df = pd.DataFrame({'x': [1.5, float('nan')], 'when': pd.to_datetime(['2024-05-06 07:08:09', None])},\n"
                                 "                  index=['a', 'b'])\n"
                                 "{'df': df, 'arr': np.array([[1, 2], [3, 4]]), 'floats': np.array([0.5, np.nan, np.inf]),\n"
                                 " 'nan': float('nan'), 'scalar': np.float64(2.5),\n"
                                 " 'when': datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)}"}});
  // The harness parsed the response with a strict parser (no NaN literal could pass).
  const Json& value = result["value"];
  CHECK(value["df"] == Json::parse(R"({"columns": ["x", "when"], "index": ["a", "b"],
                                       "data": [[1.5, "2024-05-06T07:08:09"], [null, null]]})"));
  CHECK(value["arr"] == Json::parse("[[1, 2], [3, 4]]"));
  CHECK(value["floats"] == Json::parse("[0.5, null, null]"));
  CHECK(value["nan"].is_null());
  CHECK(value["scalar"] == 2.5);
  CHECK(value["when"] == "2024-05-06T07:08:09+00:00");
  CHECK(result["valueRepr"].get<std::string>().starts_with("{'df':"));
  CHECK_FALSE(result.contains("valueTruncated"));
  // The DataFrame as the last expression also has its HTML display.
  Json frame = runOk(*server, {{"profile", "datascience"}, {"code", "import pandas as pd\npd.DataFrame({'a': [1]})"}});
  CHECK(frame["value"] == Json::parse(R"({"columns": ["a"], "index": [0], "data": [[1]]})"));
  REQUIRE(frame["displays"].size() == 1);
  CHECK(frame["displays"][0]["text/html"].get<std::string>().find("<table") != std::string::npos);
}

TEST_CASE("a value over the size cap is null and marked valueTruncated", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json result = runOk(*server, {{"code", "list(range(10 ** 6))"}});
  CHECK(result["value"].is_null());
  CHECK(result["valueTruncated"] == true);
  CHECK(result["valueRepr"].get<std::string>().starts_with("[0, 1, 2"));
  // A value with no JSON form is null too, but not truncated.
  result = runOk(*server, {{"code", "object()"}});
  CHECK(result["value"].is_null());
  CHECK_FALSE(result.contains("valueTruncated"));
}

TEST_CASE("integers beyond 64 bits come back exactly", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json result = runOk(*server, {{"code", "[2 ** 100, -2 ** 100, 2 ** 64 - 1, -2 ** 63, {'n': 10 ** 40}]"}});
  CHECK(result["value"] == Json::parse(R"([{"$int": "1267650600228229401496703205376"},
                                           {"$int": "-1267650600228229401496703205376"},
                                           18446744073709551615, -9223372036854775808,
                                           {"n": {"$int": "10000000000000000000000000000000000000000"}}])"));
  CHECK(result["value"][2].is_number_unsigned());
  CHECK(result["value"][3].is_number_integer());
  CHECK_FALSE(result.contains("valueWarnings"));
  result = runOk(*server, {{"code", "2 ** 100"}});
  CHECK(result["value"] == Json{{"$int", "1267650600228229401496703205376"}});
  CHECK(result["valueRepr"] == "1267650600228229401496703205376");
}

TEST_CASE("an item with no JSON form becomes its repr in place and is listed in valueWarnings", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json result = runOk(*server, {{"code", "class A:\n    def __repr__(self):\n        return 'an A'\n"
                                         "{'a': [1, 2, A()], 'b': 3, 'c': {'d e': [A(), {'f': 1j}]}}"}});
  CHECK(result["value"] == Json::parse(R"({"a": [1, 2, "an A"], "b": 3, "c": {"d e": ["an A", {"f": "1j"}]}})"));
  REQUIRE(result["valueWarnings"].size() == 3);
  CHECK(result["valueWarnings"][0] == Json{{"path", "$.a[2]"}, {"reason", "A: no JSON form, replaced by its repr"}});
  CHECK(result["valueWarnings"][1]["path"] == "$.c[\"d e\"][0]");
  CHECK(result["valueWarnings"][2]["path"] == "$.c[\"d e\"][1].f");
  CHECK(result["valueWarnings"][2]["reason"] == "complex: no JSON form, replaced by its repr");
  // No JSON form at all: null, and the warning says why.
  result = runOk(*server, {{"code", "object()"}});
  CHECK(result["value"].is_null());
  CHECK(result["valueWarnings"] == Json::parse(R"([{"path": "$", "reason": "object: no JSON form, so value is null"}])"));
}

TEST_CASE("matplotlib figures come back as decodable PNG images", "[results]") {
  // datascience preloads pyplot in the zygote; default has the program import it.
  std::string profile = GENERATE(std::string("datascience"), std::string("default"));
  INFO("profile: " << profile);
  auto server = startServer(Framing::kNdjson, {}, Pools::All);
  Json result = runOk(*server, {{"profile", profile},
                                {"code",
                                 "import matplotlib.pyplot as plt\n"
                                 "plt.plot([1, 2, 3], [2, 4, 1])\n"
                                 "plt.show()\n"  // does not block; the figure comes back as shown
                                 "gone = plt.figure()\n"
                                 "plt.close(gone)\n"  // closed by the program: not returned
                                 "fig, ax = plt.subplots(figsize=(3, 2), dpi=50)\n"
                                 "ax.bar([1, 2], [3, 4])\n"  // left open
                                 "'done'"}});
  INFO("stderr: " << result["stderr"]);
  CHECK(result["value"] == "done");
  CHECK(result["stderr"] == "");
  REQUIRE(result["displays"].size() == 2);
  const Json& shown = result["displays"][0];
  CHECK(shown["text/plain"] == "<Figure size 640x480 with 1 Axes>");
  CHECK(pngSize(decodeBase64(shown["image/png"].get<std::string>())) == std::pair<uint32_t, uint32_t>{640, 480});
  const Json& open = result["displays"][1];
  CHECK(open["text/plain"] == "<Figure size 150x100 with 1 Axes>");
  CHECK(pngSize(decodeBase64(open["image/png"].get<std::string>())) == std::pair<uint32_t, uint32_t>{150, 100});
}

TEST_CASE("returnFiles brings back what the program wrote", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json result = runOk(*server, {{"code",
                                 "import os\n"
                                 "open('table.csv', 'w').write('a,b\\n1,2\\n')\n"
                                 "os.makedirs('out/deep')\n"
                                 "open('out/deep/blob.bin', 'wb').write(bytes(range(256)) * 3)\n"
                                 "open('notes.txt', 'w').write('not asked for')\n"},
                                {"files", {{"given.csv", {{"text", "x,y\n"}}}}},
                                {"returnFiles", Json::array({"*.csv", "out/**"})}});
  std::string blob;
  for (int i = 0; i < 3; ++i)
    for (int c = 0; c < 256; ++c) blob.push_back(static_cast<char>(c));
  auto files = returnedFiles(result);
  CHECK(files == std::map<std::string, std::string>{
                     {"given.csv", "x,y\n"}, {"table.csv", "a,b\n1,2\n"}, {"out/deep/blob.bin", blob}});
  CHECK(result["skippedFiles"] == Json::array());
  // Without returnFiles: nothing, and no skippedFiles member.
  result = runOk(*server, {{"code", "open('table.csv', 'w').write('x')"}});
  CHECK(result["files"] == Json::array());
  CHECK_FALSE(result.contains("skippedFiles"));
}

TEST_CASE("a symlink to /etc/passwd in the working directory is not returned", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json result = runOk(*server, {{"code",
                                 "import os\n"
                                 "os.symlink('/etc/passwd', 'passwd')\n"
                                 "os.symlink('/etc', 'etc')\n"  // a symlinked directory is not walked
                                 "open('real.txt', 'w').write('real')\n"
                                 "os.symlink('real.txt', 'alias.txt')\n"},  // not even to a file inside
                                {"returnFiles", Json::array({"passwd", "*.txt", "etc/*", "**/passwd"})}});
  CHECK(returnedFiles(result) == std::map<std::string, std::string>{{"real.txt", "real"}});
  CHECK(skippedFiles(result) ==
        std::map<std::string, std::string>{{"passwd", "symbolic link"}, {"alias.txt", "symbolic link"}});
}

TEST_CASE("a hard-linked file is not returned", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json result = runOk(*server, {{"code",
                                 "import os\n"
                                 "open('data.txt', 'w').write('data')\n"
                                 "os.link('data.txt', 'alias.txt')\n"
                                 "open('single.txt', 'w').write('single')\n"},
                                {"returnFiles", Json::array({"*.txt"})}});
  CHECK(returnedFiles(result) == std::map<std::string, std::string>{{"single.txt", "single"}});
  CHECK(skippedFiles(result) == std::map<std::string, std::string>{{"alias.txt", "hard link (2 names)"},
                                                                   {"data.txt", "hard link (2 names)"}});
}

TEST_CASE("files come back when the program fails too", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json result = execute(*server, {{"code", "open('partial.log', 'w').write('step 1')\nraise RuntimeError('step 2')"},
                                  {"returnFiles", Json::array({"*.log"})}});
  INFO("result: " << brief(result));
  CHECK(result["status"] == "error");
  CHECK(returnedFiles(result) == std::map<std::string, std::string>{{"partial.log", "step 1"}});
}

TEST_CASE("returnFiles patterns are checked before anything runs", "[results]") {
  auto server = startServer(Framing::kNdjson);
  Json manyPatterns = Json::array();
  for (int i = 0; i < 101; ++i) manyPatterns.push_back("*.txt");
  for (const Json& bad : {Json("*.txt"), Json::array({1}), Json::array({"/etc/passwd"}), Json::array({"../x"}),
                          Json::array({"a/../../b"}), Json::array({".."}), Json::array({""}), manyPatterns}) {
    INFO("returnFiles: " << brief(bad, 200));
    Json response = server->call("execute", {{"code", "print('ran')"}, {"returnFiles", bad}});
    INFO("response: " << brief(response));
    REQUIRE(response.contains("error"));
    CHECK(response["error"]["code"] == -32602);
  }
  // null is the same as leaving it out; "..." inside a name is no parent reference.
  Json result = runOk(*server, {{"code", "open('a...b', 'w').write('dots')"}, {"returnFiles", Json::array({"a...b"})}});
  CHECK(returnedFiles(result) == std::map<std::string, std::string>{{"a...b", "dots"}});
  result = runOk(*server, {{"code", "1"}, {"returnFiles", nullptr}});
  CHECK_FALSE(result.contains("skippedFiles"));
}
