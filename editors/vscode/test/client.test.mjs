// The extension's protocol client (out/client.js, compiled from src/client.ts) against the
// REAL pycell server: LSP framing through vscode-jsonrpc, real sandboxes. Run by ctest
// (editors/vscode/tests.cmake) or by hand: PYCELL_BINARY=/path/to/pycell npm test
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const clientPath = fileURLToPath(new URL("../out/client.js", import.meta.url));
const { PycellClient, RpcErrorCodes, isRpcError, summarize } = require(clientPath);

const binary = process.env.PYCELL_BINARY;
const T = { timeout: 60_000 };
let client;

before(async () => {
  assert.ok(binary, "PYCELL_BINARY must name the pycell binary");
  client = await PycellClient.start({ binaryPath: binary });
});

after(async () => {
  await client?.dispose();
});

test("the client module does not load `vscode`", () => {
  const source = readFileSync(clientPath, "utf8");
  assert.doesNotMatch(source, /require\(["']vscode["']\)/);
});

test("initialize names the server and reports isolation and profiles", T, () => {
  const init = client.initializeResult;
  assert.equal(init.serverInfo.name, "pycell");
  assert.ok(["isolated", "degraded"].includes(client.isolation.level), `level: ${client.isolation.level}`);
  assert.equal(typeof client.isolation.userNamespace, "boolean");
  const names = client.profiles.map((p) => p.name);
  assert.ok(names.includes("default"), `profiles: ${names}`);
  const def = client.profiles.find((p) => p.name === "default");
  assert.equal(typeof def.limits.timeoutMs, "number");
});

test("a run returns stdout and the last expression's value", T, async () => {
  const r = await client.execute({ code: "print('hello from the sandbox')\n6 * 7" });
  assert.equal(r.status, "ok");
  assert.equal(r.stdout, "hello from the sandbox\n");
  assert.equal(r.value, 42);
  assert.equal(r.valueRepr, "42");
  assert.equal(r.error, null);
  assert.deepEqual(r.displays, []);
  assert.equal(typeof r.usage.wallMs, "number");
  assert.equal(summarize(r).startsWith("ok"), true);
});

test("JavaScript runs with language javascript, in a result of the same shape", T, async () => {
  const js = client.profiles.filter((p) => p.language === "javascript").map((p) => p.name);
  assert.ok(js.includes("javascript"), `profiles serving javascript: ${js}`);
  const r = await client.execute({ code: "console.log(1+1); 6*7", language: "javascript" });
  assert.equal(r.status, "ok");
  assert.equal(r.stdout, "2\n");
  assert.equal(r.value, 42);
  assert.equal(r.valueRepr, "42");
  assert.equal(r.error, null);
  assert.equal(typeof r.usage.wallMs, "number");
  const bad = await client.execute({ code: "let a = 1;\nundefinedName + a;\n", language: "javascript" });
  assert.equal(bad.status, "error");
  assert.equal(bad.error.type, "ReferenceError");
  assert.equal(bad.error.line, 2);
  await assert.rejects(client.execute({ code: "1", profile: "default", language: "javascript" }), (err) =>
    isRpcError(err, RpcErrorCodes.InvalidParams),
  );
  const { diagnostics } = await client.analyze("let = = 1;", undefined, "javascript");
  assert.ok(diagnostics.some((d) => d.severity === 1), JSON.stringify(diagnostics));
});

test("inputs and limits reach the run", T, async () => {
  const r = await client.execute({ code: "sum(inputs['xs'])", inputs: { xs: [1, 2, 3] }, limits: { timeoutMs: 5000 } });
  assert.equal(r.value, 6);
  const slow = await client.execute({ code: "import time\ntime.sleep(30)", limits: { timeoutMs: 300 } });
  assert.equal(slow.status, "timeout");
});

test("streaming delivers output notifications before the result", T, async () => {
  const events = [];
  let firstAt = 0;
  const r = await client.execute(
    { code: "import sys, time\nprint('first', flush=True)\nprint('to stderr', file=sys.stderr, flush=True)\ntime.sleep(1)\nprint('second')" },
    {
      onOutput: (n) => {
        if (!firstAt) firstAt = Date.now();
        events.push(n);
      },
    },
  );
  const resultAt = Date.now();
  assert.equal(r.status, "ok");
  assert.ok(events.length >= 2, `notifications: ${JSON.stringify(events)}`);
  for (const n of events) assert.equal(n.executionId, r.executionId);
  const out = events.filter((n) => n.stream === "stdout").map((n) => n.text).join("");
  const err = events.filter((n) => n.stream === "stderr").map((n) => n.text).join("");
  assert.equal(out, "first\nsecond\n");
  assert.equal(err, "to stderr\n");
  // 'first' came while the program still slept, not in a burst with the result.
  assert.ok(resultAt - firstAt >= 500, `first output ${resultAt - firstAt} ms before the result`);
});

test("an exception is a result carrying its type, message and line", T, async () => {
  const r = await client.execute({ code: "x = 1\ny = 2\nraise ValueError('bad input')\n" });
  assert.equal(r.status, "error");
  assert.equal(r.error.type, "ValueError");
  assert.equal(r.error.message, "bad input");
  assert.equal(r.error.line, 3);
  assert.ok(r.error.traceback.some((l) => l.includes("ValueError")));
  assert.match(summarize(r, 10), /ValueError: bad input \(line 13\)/);
});

test("kill ends a sleeping run with status killed", T, async () => {
  let started;
  const startedP = new Promise((resolve) => (started = resolve));
  const t0 = Date.now();
  // The line and its newline may come as two writes (and two notifications): kill once both
  // are out, so that the captured stdout asserted below is complete.
  let seen = "";
  const run = client.execute(
    { code: "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", executionId: "test-kill-1" },
    { onOutput: (n) => (seen += n.text).includes("sleeping\n") && started() },
  );
  await startedP;
  const listed = (await client.status()).executions;
  assert.deepEqual(listed.map((e) => [e.executionId, e.state]), [["test-kill-1", "running"]]);
  const k = await client.kill("test-kill-1");
  assert.equal(k.killed, true);
  const r = await run;
  assert.equal(r.status, "killed");
  assert.equal(r.executionId, "test-kill-1");
  assert.equal(r.stdout, "sleeping\n");
  assert.ok(Date.now() - t0 < 20_000);
  const st = await client.executionStatus("test-kill-1");
  assert.equal(st.state, "finished");
  // The finished result again, until it is forgotten.
  assert.deepEqual(await client.result("test-kill-1"), r);
  assert.equal(await client.forget("test-kill-1"), true);
  await assert.rejects(client.result("test-kill-1"), /unknown executionId/);
});

test("cancelling the request ($/cancelRequest) ends it with -32800", T, async () => {
  const ac = new AbortController();
  let started;
  const startedP = new Promise((resolve) => (started = resolve));
  const run = client.execute({ code: "import time\nprint('go', flush=True)\ntime.sleep(60)" }, { onOutput: () => started(), signal: ac.signal });
  await startedP;
  ac.abort();
  await assert.rejects(run, (err) => isRpcError(err, RpcErrorCodes.RequestCancelled));
});

test("status shows the pools", T, async () => {
  const s = await client.status();
  assert.equal(typeof s.running, "number");
  assert.equal(typeof s.queued, "number");
  assert.ok(s.executionsTotal >= 1);
  const pool = s.pools.find((p) => p.profile === "default");
  assert.ok(pool, `pools: ${JSON.stringify(s.pools)}`);
  assert.equal(typeof pool.ready, "number");
  assert.equal(typeof pool.target, "number");
});

test("bad params are a protocol error", T, async () => {
  await assert.rejects(client.execute({ code: "1", profile: "no-such-profile" }), (err) =>
    isRpcError(err, RpcErrorCodes.InvalidParams),
  );
});

test("analyze reports a syntax error at its line, and nothing for good code", T, async () => {
  const bad = await client.analyze("x = 1\n\ndef f(:\n    return x\n");
  assert.equal(bad.diagnostics.length >= 1, true, JSON.stringify(bad));
  const d = bad.diagnostics[0];
  assert.equal(d.range.start.line, 2); // 0-based: the third line
  assert.equal(d.severity, 1);
  assert.equal(d.source, "pycell");
  assert.ok(d.message.length > 0);
  const good = await client.analyze("import math\nprint(math.pi)\n");
  assert.deepEqual(good.diagnostics, []);
  const indent = await client.analyze("if True:\nprint(1)\n");
  assert.equal(indent.diagnostics[0].range.start.line, 1);
});

test("analyze counts columns in UTF-16 code units, by the server's method and by the fallback", T, async () => {
  // "é" is one code unit, the emoji two: `socket` starts at unit 18 (character 17).
  const line = 's = "é😀"; import socket';
  const want = line.indexOf("socket"); // JavaScript strings index UTF-16 code units too
  assert.equal(want, 18);
  const viaMethod = await client.analyze(`${line}\n`);
  assert.equal(viaMethod.via, "analyze");
  const imp = viaMethod.diagnostics.find((d) => d.code === "forbidden-import");
  assert.ok(imp, JSON.stringify(viaMethod));
  assert.deepEqual([imp.range.start.character, imp.range.end.character], [want, want + "socket".length]);
  // A server without `analyze`: the syntax check through `execute`.
  const unmatched = 's = "é😀"; x = )';
  const other = await PycellClient.start({ binaryPath: binary });
  try {
    other.analyzeMethod = "no"; // as after a "method not found" answer
    const viaExecute = await other.analyze(`${unmatched}\n`);
    assert.equal(viaExecute.via, "execute");
    assert.equal(viaExecute.diagnostics.length, 1, JSON.stringify(viaExecute));
    assert.equal(viaExecute.diagnostics[0].range.start.character, unmatched.indexOf(")"));
  } finally {
    await other.dispose(3000);
  }
});

test("sessions keep state between executions and end on close", T, async () => {
  assert.equal(client.initializeResult.capabilities.sessions, true);
  const { session } = await client.createSession({});
  assert.equal(typeof session, "string");
  await client.execute({ code: "counter = 41", session });
  const r = await client.execute({ code: "counter + 1", session });
  assert.equal(r.value, 42);
  assert.deepEqual(r.session, { id: session, alive: true });
  assert.deepEqual(await client.closeSession(session), { closed: true });
  await assert.rejects(client.execute({ code: "counter", session }), (err) => isRpcError(err, RpcErrorCodes.InvalidParams));
});

test("dispose shuts the server down: shutdown, exit, process exits 0", T, async () => {
  const other = await PycellClient.start({ binaryPath: binary });
  const pid = other.pid;
  const r = await other.execute({ code: "'still works'" });
  assert.equal(r.value, "still works");
  const info = await other.dispose();
  assert.deepEqual(info, { code: 0, signal: null });
  assert.throws(() => process.kill(pid, 0), { code: "ESRCH" });
  await assert.rejects(other.status());
  // Disposing again is harmless.
  assert.deepEqual(await other.dispose(), { code: 0, signal: null });
});

test("a missing binary is a clear error", T, async () => {
  await assert.rejects(PycellClient.start({ binaryPath: "/nonexistent/pycell" }), /binary not found/);
});
