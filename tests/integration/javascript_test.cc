// JavaScript (Node.js) end to end: the core cases of the suite, run through node in the same
// sandbox as Python (language "javascript", the built-in javascript profile), its pool of
// sandboxes started ahead of demand, sessions, the policy layer, and the kernel's limits
// when the policy is off.
#include <catch2/catch.hpp>

#include <thread>

#include "host_view.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

Json js(ServerProcess& server, const std::string& code, Json extra = Json::object()) {
  extra["code"] = code;
  extra["language"] = "javascript";
  return execute(server, std::move(extra));
}



// Nothing a run started outlives it: no node or sleep process below the server (the kernel
// tears a pid namespace down after its init; waits for that, up to 5 s).
void requireNothingLeft(ServerProcess& server) {
  std::vector<ProcStat> left;
  for (Stopwatch wait; wait.elapsed() < 5000ms; std::this_thread::sleep_for(50ms)) {
    left.clear();
    for (const auto& p : descendants(server.pid()))
      if (p.comm == "node" || p.comm == "sleep") left.push_back(p);
    if (left.empty()) break;
  }
  INFO("left: " << describeProcesses(left));
  CHECK(left.empty());
}

}  // namespace

TEST_CASE("JavaScript: hello, the last expression's value, and the profile that ran it", "[javascript]") {
  Framing framing = GENERATE(Framing::kNdjson, Framing::kLsp);
  auto server = startServer(framing);
  Json result = js(*server, "console.log('hello', 1 + 1);\nconst o = {a: [1, 2.5, null, true], b: 'text'};\no");
  REQUIRE_STATUS(result, "ok");
  CHECK(result["stdout"] == "hello 2\n");
  CHECK(result["stderr"] == "");
  CHECK(result["exitCode"] == 0);
  CHECK(result["value"] == Json::parse(R"({"a": [1, 2.5, null, true], "b": "text"})"));
  CHECK(result["valueRepr"].is_string());
  CHECK(result["usage"]["wallMs"].is_number());
  CHECK(server->malformedOutput().empty());
  // Python still runs beside it, in its own profile.
  CHECK(executeCode(*server, "6 * 7")["value"] == 42);
}

TEST_CASE("JavaScript: an exception is a result with its type, message, stack and line", "[javascript]") {
  auto server = startServer(Framing::kNdjson);
  Json result = js(*server, "const a = 1;\nfunction f() {\n  throw new TypeError('bad thing');\n}\nf();");
  REQUIRE_STATUS(result, "error");
  CHECK(result["exitCode"] == 1);
  CHECK(result["error"]["type"] == "TypeError");
  CHECK(result["error"]["message"] == "bad thing");
  CHECK(result["error"]["line"] == 3);
  CHECK_THAT(result["error"]["traceback"].dump(), Catch::Contains("<pycell>:3"));
  CHECK_THAT(result["stderr"].get<std::string>(), Catch::Contains("TypeError: bad thing"));
  Json syntax = js(*server, "let x = 1;\nlet y = ;\n");
  REQUIRE_STATUS(syntax, "error");
  CHECK(syntax["error"]["type"] == "SyntaxError");
  CHECK(syntax["error"]["line"] == 2);
}

TEST_CASE("JavaScript: inputs, files in and returnFiles out, environment, async work", "[javascript]") {
  auto server = startServer(Framing::kNdjson);
  Json result = js(*server,
                   "const fs = require('fs');\n"
                   "const text = fs.readFileSync('in/data.txt', 'utf8');\n"
                   "fs.writeFileSync('out.txt', text.toUpperCase() + inputs.n);\n"
                   "process.env.GREETING + ' ' + text",
                   {{"inputs", {{"n", 5}}},
                    {"files", {{"in/data.txt", {{"text", "abc"}}}}},
                    {"returnFiles", {"*.txt"}},
                    {"env", {{"GREETING", "hi"}}}});
  REQUIRE_STATUS(result, "ok");
  CHECK(result["value"] == "hi abc");
  REQUIRE(result["files"].size() == 1);
  CHECK(result["files"][0]["path"] == "out.txt");
  CHECK(result["files"][0]["base64"] == "QUJDNQ==");  // "ABC5"
  // What the program scheduled runs before the result, as under `node FILE`; a promise's
  // value is awaited; top-level await works.
  Json later = js(*server, "setTimeout(() => console.log('later'), 20);\nconsole.log('now');");
  REQUIRE_STATUS(later, "ok");
  CHECK(later["stdout"] == "now\nlater\n");
  Json awaited = js(*server, "const v = await new Promise(r => setTimeout(() => r(41), 10));\nresult = v + 1;");
  REQUIRE_STATUS(awaited, "ok");
  CHECK(awaited["value"] == 42);
  Json exited = js(*server, "console.log('bye'); process.exit(3)");
  REQUIRE_STATUS(exited, "error");
  CHECK(exited["exitCode"] == 3);
  CHECK(exited["stdout"] == "bye\n");
}

TEST_CASE("JavaScript: timeout, memory and output limits end the run with their status", "[javascript]") {
  auto server = startServer(Framing::kNdjson);
  Json spin = js(*server, "while (true) {}", {{"limits", {{"timeoutMs", 1500}}}});
  REQUIRE_STATUS(spin, "timeout");
  Json bomb = js(*server, "const a = [];\nfor (;;) a.push(new Array(1e6).fill(1.5));", {{"limits", {{"memoryMb", 256}}}});
  REQUIRE_STATUS(bomb, "memory_limit");
  Json buffers = js(*server, "const a = [];\nfor (;;) a.push(Buffer.alloc(16 << 20, 1));", {{"limits", {{"memoryMb", 256}}}});
  REQUIRE_STATUS(buffers, "memory_limit");
  Json flood = js(*server, "const line = 'x'.repeat(1000);\nfor (;;) console.log(line);",
                  {{"limits", {{"maxOutputBytes", 100000}}}});
  REQUIRE_STATUS(flood, "output_limit");
  CHECK(flood["truncated"]["stdout"] == true);
  // The server goes on.
  CHECK(js(*server, "1 + 1")["value"] == 2);
}

TEST_CASE("JavaScript: the policy refuses child_process, net, process.binding; the run ends policy_violation",
          "[javascript][policy]") {
  auto server = startServer(Framing::kNdjson);
  for (const char* code : {"require('child_process').execSync('id')", "require('node:net')",
                           "try { require('child_process') } catch (e) {}\n'caught'", "process.binding('spawn_sync')",
                           "await import('net')", "process.dlopen({exports: {}}, '/usr/lib/x86_64-linux-gnu/libc.so.6')",
                           "require('module').createRequire('/sandbox/')('child_process')"}) {
    Json result = js(*server, code);
    INFO("code: " << code);
    REQUIRE_STATUS(result, "policy_violation");
    CHECK(result["error"]["type"] == "PolicyViolation");
    CHECK_FALSE(result["activity"]["blocked"].empty());
  }
  Json fine = js(*server, "require('path').join('a', 'b')");
  REQUIRE_STATUS(fine, "ok");
  CHECK(fine["value"] == "a/b");
}

TEST_CASE("JavaScript with the policy off: the kernel holds processes, network, files and pids",
          "[javascript][security]") {
  LoopbackListener listener = listenOnLoopback();
  const int port = listener.port;

  auto server = startKernelServer(Framing::kNdjson);
  SECTION("a process bomb meets the processes limit") {
    Json result = js(*server,
                     "const cp = require('child_process');\n"
                     "let refused = 0, started = 0;\n"
                     "for (let i = 0; i < 60; i++) {\n"
                     "  try {\n"
                     "    const c = cp.spawn('/bin/sleep', ['5'], {stdio: 'ignore'});\n"
                     "    c.on('error', () => refused++);\n"
                     "    c.unref();\n"
                     "    started++;\n"
                     "  } catch (e) { refused++; }\n"
                     "}\n"
                     "await new Promise(r => setTimeout(r, 300));\n"
                     "result = {refused, started};\n",
                     {{"limits", {{"maxProcesses", 24}, {"timeoutMs", 8000}}}});
    REQUIRE_STATUS(result, "ok");
    CHECK(result["value"]["refused"].get<int>() > 0);
  }
  SECTION("no network: a TCP connect to the host's loopback gets nowhere") {
    Json result = js(*server,
                     "const net = require('net');\n"
                     "result = await new Promise(r => {\n"
                     "  const s = net.connect(" + std::to_string(port) + ", '127.0.0.1', () => r('connected'));\n"
                     "  s.on('error', e => r(e.code));\n"
                     "});",
                     {{"limits", {{"timeoutMs", 8000}}}});
    REQUIRE_STATUS(result, "ok");
    CHECK(result["value"] != "connected");
    CHECK(listener.receivedNothing());
  }
  SECTION("/etc/shadow is not there; the host's processes are not visible") {
    Json result = js(*server,
                     "const fs = require('fs');\n"
                     "let shadow;\n"
                     "try { fs.readFileSync('/etc/shadow'); shadow = 'read'; } catch (e) { shadow = e.code; }\n"
                     "const pids = fs.readdirSync('/proc').filter(n => /^\\d+$/.test(n));\n"
                     "({shadow, pids: pids.length, uid: process.getuid()})");
    REQUIRE_STATUS(result, "ok");
    CHECK(result["value"]["shadow"] == "ENOENT");
    CHECK(result["value"]["pids"].get<int>() <= 2);
    CHECK(result["value"]["uid"] == 1000);
  }
  SECTION("process.kill(-1) and /proc/self/mem reach nothing outside") {
    Json mem = js(*server,
                  "const fs = require('fs');\n"
                  "let r;\n"
                  "try { const fd = fs.openSync('/proc/self/mem', 'r+'); r = 'opened'; fs.closeSync(fd); } catch (e) { r = e.code; }\n"
                  "r");
    REQUIRE_STATUS(mem, "ok");
    Json result = js(*server, "process.kill(-1, 'SIGKILL'); 1");
    INFO(brief(result));
    CHECK(result["status"] != "ok");
    CHECK(js(*server, "2")["value"] == 2);  // the server and its other runs are unharmed
  }
  SECTION("Atomics busy-waiting and WebAssembly memory growth meet the time and memory limits") {
    Json atomics = js(*server, "const sab = new SharedArrayBuffer(16);\nconst ia = new Int32Array(sab);\n"
                               "for (;;) Atomics.add(ia, 0, 1);",
                      {{"limits", {{"timeoutMs", 1500}}}});
    REQUIRE_STATUS(atomics, "timeout");
    Json wasm = js(*server, "const m = new WebAssembly.Memory({initial: 1, maximum: 65536});\n"
                            "const keep = [];\nfor (;;) { m.grow(256); keep.push(new Uint8Array(m.buffer).fill(1)); }",
                   {{"limits", {{"memoryMb", 256}}}});
    INFO(brief(wasm));
    CHECK((wasm["status"] == "memory_limit" || (wasm["status"] == "error" && wasm["error"]["type"] == "RangeError")));
  }
  requireNothingLeft(*server);
}

TEST_CASE("JavaScript: kill ends a running execution", "[javascript]") {
  auto server = startServer(Framing::kNdjson);
  int64_t id = server->request("execute", {{"code", "console.log('started'); for (;;) {}"},
                                           {"language", "javascript"},
                                           {"executionId", "spin"}});
  awaitRunning(*server, "spin");
  CHECK(server->callResult("kill", {{"executionId", "spin"}})["killed"] == true);
  Json result = waitResult(*server, id);
  REQUIRE_STATUS(result, "killed");
}

TEST_CASE("JavaScript: streaming output arrives as execute/output before the result", "[javascript]") {
  auto server = startServer(Framing::kNdjson);
  Json result = js(*server, "for (let i = 0; i < 3; i++) console.log('line ' + i);", {{"stream", true}});
  REQUIRE_STATUS(result, "ok");
  std::string streamed;
  for (const Json& n : server->notifications())
    if (n["method"] == "execute/output" && n["params"]["stream"] == "stdout") streamed += n["params"]["text"].get<std::string>();
  CHECK(streamed == "line 0\nline 1\nline 2\n");
}

TEST_CASE("JavaScript sessions keep one global scope across runs, like the Node REPL", "[javascript][session]") {
  auto server = startServer(Framing::kNdjson);
  Json created = server->callResult("session/create", {{"language", "javascript"}});
  CHECK(created["profile"] == "javascript");
  std::string s = created["session"];
  auto run = [&](const std::string& code) { return execute(*server, {{"code", code}, {"session", s}}); };
  REQUIRE_STATUS(run("let x = 1;\nconst double = v => v * 2;\nfunction inc() { return ++x; }"), "ok");
  Json second = run("inc();\ndouble(x)");
  REQUIRE_STATUS(second, "ok");
  CHECK(second["value"] == 4);
  CHECK(second["session"]["alive"] == true);
  Json failed = run("throw new RangeError('nope')");
  REQUIRE_STATUS(failed, "error");
  CHECK(failed["error"]["type"] == "RangeError");
  CHECK(run("x")["value"] == 2);  // an error in one run keeps the state
  // kill interrupts a spinning run; the session and its state survive.
  int64_t id = server->request("execute", {{"code", "for (;;) {}"}, {"session", s}, {"executionId", "spin"}});
  awaitRunning(*server, "spin");
  CHECK(server->callResult("kill", {{"session", s}})["killed"] == true);
  Json killed = waitResult(*server, id);
  REQUIRE_STATUS(killed, "killed");
  CHECK(killed["session"]["alive"] == true);
  CHECK(run("x + 40")["value"] == 42);
  // A Python run cannot name a JavaScript session.
  Json wrong = server->call("execute", {{"code", "1"}, {"session", s}, {"language", "python"}});
  CHECK(wrong["error"]["code"] == -32602);
  CHECK(server->callResult("session/close", {{"session", s}})["closed"] == true);
}

TEST_CASE("JavaScript: language and profile must agree; unknown languages are refused", "[javascript]") {
  auto server = startServer(Framing::kNdjson);
  Json init = server->callResult("initialize", {{"processId", nullptr}, {"capabilities", Json::object()}});
  bool listed = false;
  for (const Json& p : init["profiles"])
    if (p["name"] == "javascript") listed = p["language"] == "javascript";
  CHECK(listed);
  Json mismatch = server->call("execute", {{"code", "1"}, {"profile", "default"}, {"language", "javascript"}});
  CHECK(mismatch["error"]["code"] == -32602);
  CHECK_THAT(mismatch["error"]["message"].get<std::string>(), Catch::Contains("runs python, not javascript"));
  Json unknown = server->call("execute", {{"code", "1"}, {"language", "ruby"}});
  CHECK(unknown["error"]["code"] == -32602);
  CHECK(js(*server, "typeof require")["value"] == "function");
}

TEST_CASE("JavaScript: analyze reports syntax errors, forbidden modules and eval", "[javascript][analyze]") {
  auto server = startServer(Framing::kNdjson);
  Json syntax = server->callResult("analyze", {{"code", "let a = 1;\nlet b = ;\n"}, {"language", "javascript"}});
  INFO(syntax.dump());
  REQUIRE(syntax["diagnostics"].is_array());
  REQUIRE_FALSE(syntax["diagnostics"].empty());
  CHECK(syntax["diagnostics"][0]["range"]["start"]["line"] == 1);  // 0-based, as LSP
  Json modules = server->callResult(
      "analyze", {{"code", "const cp = require('child_process');\nconst n = eval('1');\n"}, {"language", "javascript"}});
  INFO(modules.dump());
  CHECK_THAT(modules["diagnostics"].dump(), Catch::Contains("child_process") && Catch::Contains("eval"));
}

TEST_CASE("JavaScript's pool: sandboxes started ahead of demand, one per run, refilled", "[javascript][pool]") {
  auto server = startServer(Framing::kNdjson, {}, Pools::All);
  Json pool = awaitFullPool(*server, "javascript");
  CHECK(pool["kind"] == "started");
  CHECK(pool["zygotePid"].is_null());
  int64_t startedBefore = pool["forksServed"];
  Json first = js(*server, "process.pid");
  Json second = js(*server, "process.pid");
  REQUIRE_STATUS(first, "ok");
  REQUIRE_STATUS(second, "ok");
  // Each run had a sandbox of its own: the pid namespace is new, so node is pid 1 in both.
  CHECK(first["value"] == 1);
  CHECK(second["value"] == 1);
  pool = awaitFullPool(*server, "javascript");
  CHECK(pool["forksServed"].get<int64_t>() >= startedBefore + 2);
  // A run with limits the started sandboxes cannot take (more memory) starts its own.
  Json bigger = js(*server, "1", {{"limits", {{"diskMb", 32}}}});
  REQUIRE_STATUS(bigger, "ok");
}
