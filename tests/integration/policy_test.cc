// The policy layer end to end (issue 4): import lists and removed builtins per profile,
// host paths through allowRead/allowWrite, the activity report written through as it
// happens, resource samples, the usage chart, and `analyze`. The kernel is the boundary
// (hostile_test.cc); this is what stops a program politely and what an auditor reads.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

Json run(ServerProcess& server, const std::string& code, const std::string& profile = "default", Json extra = Json::object()) {
  extra["code"] = code;
  extra["profile"] = profile;
  return execute(server, extra);
}

bool hasImport(const Json& activity, const std::string& module) {
  for (const auto& m : activity["imports"])
    if (m == module) return true;
  return false;
}

}  // namespace

TEST_CASE("a denied import is a policy_violation naming the module, however it is imported", "[policy]") {
  auto server = startServer(Framing::kNdjson);
  for (const std::string code : {"import socket", "__import__('socket')", "import importlib\nimportlib.import_module('socket')",
                                 "from socket import socket", "import ctypes.util"}) {
    Json r = run(*server, code);
    INFO(code << "\n" << brief(r));
    CHECK(r["status"] == "policy_violation");
    CHECK(r["error"]["type"] == "PolicyViolation");
    std::string module = code.find("ctypes") != std::string::npos ? "ctypes" : "socket";
    CHECK_THAT(r["error"]["message"].get<std::string>(), Catch::Contains("'" + module));
    REQUIRE(r["activity"]["blocked"].size() >= 1);
    CHECK(r["activity"]["blocked"][0]["what"] == "import");
  }
  // Catching the exception does not make it ok: the violation is recorded when it happens.
  Json caught = run(*server, "try:\n    import subprocess\nexcept BaseException:\n    pass\n'carried on'");
  INFO(brief(caught));
  CHECK(caught["status"] == "policy_violation");
  // Modules the allowed ones import for themselves are not the program's imports.
  Json fine = run(*server, "import json, http.cookies, email.utils\njson.dumps({'a': 1})");
  INFO(brief(fine));
  CHECK(fine["status"] == "ok");
  CHECK(fine["value"] == "{\"a\": 1}");
}

TEST_CASE("pandas under the datascience allow list imports what it needs", "[policy]") {
  auto server = startServer(Framing::kNdjson, {}, Pools::All);
  Json r = run(*server,
               "import pandas as pd, numpy as np, json, math\n"
               "df = pd.DataFrame({'a': [1, 2, 1], 'b': [1.0, 2.0, math.pi]})\n"
               "df.groupby('a').b.sum().round(2).to_dict()",
               "datascience");
  INFO(brief(r));
  REQUIRE(r["status"] == "ok");
  CHECK(r["value"] == Json{{"1", 4.14}, {"2", 2.0}});
  CHECK(hasImport(r["activity"], "pandas"));
  Json os = run(*server, "import os", "datascience");
  CHECK(os["status"] == "policy_violation");
}

TEST_CASE("a removed builtin fails clearly and only for the program", "[policy]") {
  auto server = startServer(Framing::kNdjson, {}, Pools::All);
  Json r = run(*server, "x = 2\neval('x + 1')", "datascience");
  INFO(brief(r));
  CHECK(r["status"] == "policy_violation");
  CHECK_THAT(r["error"]["message"].get<std::string>(), Catch::Contains("builtin 'eval' is disabled"));
  CHECK(r["error"]["line"] == 2);
  CHECK(r["activity"]["blocked"][0] == Json{{"what", "builtin"}, {"detail", "eval"}});
  // Library code keeps its builtins (pandas' own eval machinery, dataclasses' exec).
  Json lib = run(*server, "import dataclasses\n@dataclasses.dataclass\nclass P:\n    x: int\nP(3).x", "datascience");
  INFO(brief(lib));
  CHECK(lib["status"] == "ok");
  CHECK(lib["value"] == 3);
}

TEST_CASE("allowRead shows one host directory read-only, allowWrite one read-write, and nothing else", "[policy]") {
  // On both paths: a pooled child binds these (they are under /tmp, on its own scratch tmpfs)
  // onto its zygote's root template; a one-shot sandbox builds its whole root.
  int poolSize = GENERATE(0, 1);
  DYNAMIC_SECTION("pool size " << poolSize) {
    SharedDir readable, writable, hidden;
    std::ofstream(readable.path / "data.txt") << "host data";
    std::ofstream(hidden.path / "secret.txt") << "not for the sandbox";
    ::chmod((readable.path / "data.txt").c_str(), 0644);
    std::string config = Json{{"profiles",
                               {{"files",
                                 {{"allowRead", {readable.path.string()}},
                                  {"allowWrite", {writable.path.string()}},
                                  {"pool", {{"size", poolSize}}}}}}}}.dump();
    TempFile file("policy-files.json", config);
    auto server = startServer(Framing::kNdjson, {"--config", file.path()});
    // A root server id-maps writable binds in each sandbox it clones: then the profile has no
    // pool and every run is one-shot (idmap.h).
    std::string writableBinds = server->initialize()["isolation"]["writableBinds"];
    bool idmapped = writableBinds == "owner" || writableBinds == "mixed";
    INFO("isolation writableBinds: " << writableBinds);
    if (poolSize > 0 && !idmapped) awaitFullPool(*server, "files");
    if (poolSize > 0 && idmapped) CHECK_THROWS(poolOf(*server, "files"));
    std::string r = readable.path.string(), w = writable.path.string(), h = hidden.path.string();
    Json res = run(*server,
                   "import os\n"
                   "out = {'read': open('" + r + "/data.txt').read()}\n"
                   "try:\n    open('" + r + "/new.txt', 'w')\n    out['writeRead'] = 'written'\n"
                   "except OSError as e:\n    out['writeRead'] = e.__class__.__name__\n"
                   "open('" + w + "/out.txt', 'w').write('from the sandbox')\n"
                   "out['hidden'] = os.path.exists('" + h + "')\n"
                   "out",
                   "files");
    INFO(brief(res));
    REQUIRE(res["status"] == "ok");
    CHECK(res["value"]["read"] == "host data");
    CHECK(res["value"]["writeRead"] == "OSError");
    CHECK(res["value"]["hidden"] == false);
    std::ifstream written(writable.path / "out.txt");
    std::string text((std::istreambuf_iterator<char>(written)), {});
    CHECK(text == "from the sandbox");
    CHECK_FALSE(fs::exists(readable.path / "new.txt"));
    // The activity report says which opens were inside what the profile allows.
    bool sawRead = false;
    for (const auto& f : res["activity"]["files"])
      if (f["path"] == r + "/data.txt") sawRead = f["allowed"] == true && f["mode"] == "r";
    CHECK(sawRead);
  }
}

TEST_CASE("the activity report lists a file opened, an import and a socket tried, with times", "[policy]") {
  auto server = startServer(Framing::kNdjson);
  Json r = run(*server,
               "open('notes.txt', 'w').write('x')\n"
               "import json\n"
               "import socket\n");
  INFO(brief(r));
  const Json& a = r["activity"];
  REQUIRE(a.is_object());
  CHECK(hasImport(a, "json"));
  REQUIRE(a["files"].size() >= 1);
  CHECK(a["files"][0] == Json{{"path", "notes.txt"}, {"mode", "w"}, {"allowed", true}});
  CHECK(a["blocked"] == Json::array({{{"what", "import"}, {"detail", "socket"}}}));
  double last = -1;
  for (const auto& e : a["events"]) {
    REQUIRE(e["t"].is_number());
    CHECK(e["t"].get<double>() >= last);
    last = e["t"].get<double>();
  }
  // With the policy layer off, the socket reaches the kernel, which refuses it: still logged.
  auto kernel = startKernelServer(Framing::kNdjson);
  Json k = run(*kernel, "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\nexcept OSError as e:\n    print(e.errno)");
  INFO(brief(k));
  CHECK(k["status"] == "ok");
  bool sawNetwork = false;
  for (const auto& n : k["activity"]["network"]) sawNetwork = sawNetwork || n["allowed"] == false;
  CHECK(sawNetwork);
}

TEST_CASE("events logged before the program tampers with the audit layer stay in the report", "[policy]") {
  auto server = startServer(Framing::kNdjson);
  // The program imports json and opens a file, then finds the policy's objects through the
  // garbage collector and empties and disables everything it can reach.
  Json r = run(*server,
               "import json\n"
               "open('before.txt', 'w').write('x')\n"
               "import gc\n"
               "L, V, T = list, vars, type  # the guard's builtins dict is about to be emptied too\n"
               "guards = [o for o in gc.get_objects() if T(o).__name__ == 'Guard']\n"
               "for o in guards:\n"
               "    for v in L(V(o).values()):\n"
               "        try:\n"
               "            v.clear()\n"
               "        except AttributeError:\n"
               "            pass\n"
               "    o.closed = True\n"
               "    o.emit = lambda *a: None\n"
               "'tampered'");
  INFO(brief(r));
  CHECK(r["value"] == "tampered");
  CHECK(r["status"] == "ok");
  CHECK(hasImport(r["activity"], "json"));
  bool sawFile = false;
  for (const auto& f : r["activity"]["files"]) sawFile = sawFile || f["path"] == "before.txt";
  CHECK(sawFile);
}

TEST_CASE("samples follow a program whose memory grows, and stream as execute/usage", "[policy]") {
  auto server = startServer(Framing::kNdjson);
  Json r = run(*server,
               "import time\nblocks = []\nfor i in range(8):\n    blocks.append(bytearray(8 << 20))\n    time.sleep(0.06)\n",
               "default", {{"stream", true}, {"executionId", "grow"}});
  INFO(brief(r));
  REQUIRE(r["status"] == "ok");
  const Json& samples = r["samples"];
  REQUIRE(samples.size() >= 5);
  int64_t first = samples.front()["rssBytes"], last = samples.back()["rssBytes"];
  CHECK(last - first >= 40LL << 20);
  for (size_t i = 1; i < samples.size(); ++i) CHECK(samples[i]["tMs"] >= samples[i - 1]["tMs"]);
  CHECK(r["usage"]["avgMemoryBytes"].get<int64_t>() > first);
  CHECK(r["usage"]["peakSampledMemoryBytes"].get<int64_t>() >= last);
  size_t notified = 0;
  for (const auto& n : server->notifications())
    if (n["method"] == "execute/usage" && n["params"]["executionId"] == "grow") ++notified;
  CHECK(notified == samples.size());
  // Without stream (and a profile that does not ask), no samples.
  CHECK_FALSE(run(*server, "1")["usage"].contains("avgMemoryBytes"));
}

TEST_CASE("pycell run --usage-chart draws both series; --report writes the result", "[policy]") {
  TempFile script("grow.py", "import time\nb = []\nfor i in range(5):\n    b.append(bytearray(4 << 20))\n    time.sleep(0.05)\nprint('done')\n");
  std::string dir = fs::temp_directory_path() / ("pycell-chart-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ::chmod(dir.c_str(), 0777);
  std::string svg = dir + "/usage.svg", report = dir + "/report.json";
  auto res = runPycell({"run", "--usage-chart", svg, "--report", report, script.path()});
  INFO(res.err);
  CHECK(res.exitCode == 0);
  CHECK(res.out == "done\n");
  std::ifstream in(svg);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  CHECK(text.rfind("<?xml", 0) == 0);
  CHECK(text.find("id=\"cpu\"") != std::string::npos);
  CHECK(text.find("id=\"memory\"") != std::string::npos);
  CHECK(text.find("</svg>") != std::string::npos);
  // It parses as XML (python3's own parser), with both series drawn as polylines.
  auto parsed = runCommand({findInPath("python3"), "-c",
                            "import sys, xml.etree.ElementTree as E\n"
                            "root = E.parse(sys.argv[1]).getroot()\n"
                            "ns = {'s': 'http://www.w3.org/2000/svg'}\n"
                            "for g in ('cpu', 'memory'):\n"
                            "    lines = root.findall(\".//s:g[@id='%s']//s:polyline\" % g, ns)\n"
                            "    assert lines and len(lines[0].get('points').split()) >= 3, g\n"
                            "print('ok')",
                            svg});
  INFO(parsed.err);
  CHECK(parsed.out == "ok\n");
  std::ifstream rin(report);
  Json doc = Json::parse(rin, nullptr, false);
  CHECK(doc["status"] == "ok");
  CHECK(doc["samples"].size() >= 3);
  CHECK(doc["activity"].is_object());
  std::error_code ignored;
  fs::remove_all(dir, ignored);
}

TEST_CASE("analyze reports a syntax error and a forbidden import at their ranges", "[policy]") {
  auto server = startServer(Framing::kLsp, {}, Pools::All);
  CHECK(server->initialize()["capabilities"]["analyze"] == true);
  Json d = server->callResult("analyze", {{"code", "import os, socket\nx = (1,\n"}}, kExecutionTimeout)["diagnostics"];
  INFO(brief(d));
  REQUIRE(d.size() == 2);
  CHECK(d[0]["code"] == "forbidden-import");
  CHECK(d[0]["range"] == Json{{"start", {{"line", 0}, {"character", 11}}}, {"end", {{"line", 0}, {"character", 17}}}});
  CHECK(d[0]["severity"] == 1);
  CHECK(d[0]["source"] == "pycell");
  CHECK(d[1]["code"] == "syntax-error");
  CHECK(d[1]["range"]["start"]["line"] == 1);
  // Against the datascience profile: eval is blocked there, and os is not on its list.
  Json ds = server->callResult("analyze", {{"code", "import os\nv = eval('1')\n"}, {"profile", "datascience"}}, kExecutionTimeout)["diagnostics"];
  INFO(brief(ds));
  REQUIRE(ds.size() == 2);
  CHECK(ds[1]["code"] == "blocked-builtin");
  CHECK(ds[1]["range"] == Json{{"start", {{"line", 1}, {"character", 4}}}, {"end", {{"line", 1}, {"character", 8}}}});
  CHECK(server->callResult("analyze", {{"code", "print(1)\n"}})["diagnostics"] == Json::array());
  CHECK(server->call("analyze", {{"code", 5}})["error"]["code"] == -32602);
  CHECK(server->call("analyze", {{"code", "1"}, {"profile", "nope"}})["error"]["code"] == -32602);
}
