// `pycell mcp` driven by the official MCP TypeScript SDK client over stdio, as an agent
// harness would: the real binary, real sandboxes. Run by ctest (see tests/CMakeLists.txt).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import Ajv from "ajv";
import Ajv2020 from "ajv/dist/2020.js";

const binary = process.env.PYCELL_BINARY;
let client;

before(async () => {
  assert.ok(binary, "PYCELL_BINARY must name the pycell binary");
  const transport = new StdioClientTransport({ command: binary, args: ["mcp"], stderr: "pipe" });
  client = new Client({ name: "pycell-sdk-test", version: "1.0.0" });
  await client.connect(transport);
});

after(async () => {
  await client?.close();
});

test("the server names itself and offers run_python with an input schema", async () => {
  assert.equal(client.getServerVersion().name, "pycell");
  const { tools } = await client.listTools();
  const run = tools.find((t) => t.name === "run_python");
  assert.ok(run, "run_python is listed");
  assert.equal(run.inputSchema.type, "object");
  assert.deepEqual(run.inputSchema.required, ["code"]);
});

test("run_python returns output and the last expression's value", async () => {
  const r = await client.callTool({ name: "run_python", arguments: { code: "print('hi from the sandbox')\n6 * 7" } });
  assert.equal(r.isError, false);
  const text = r.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
  assert.match(text, /hi from the sandbox/);
  assert.match(text, /value: 42/);
  assert.equal(r.structuredContent.status, "ok");
  assert.equal(r.structuredContent.value, 42);
});

test("a Python exception is a tool error carrying the exception and its line", async () => {
  const r = await client.callTool({ name: "run_python", arguments: { code: "x = 1\nraise ValueError('bad input')" } });
  assert.equal(r.isError, true);
  const text = r.content.map((c) => c.text ?? "").join("\n");
  assert.match(text, /ValueError: bad input \(line 2\)/);
  assert.equal(r.structuredContent.error.line, 2);
});

test("a matplotlib figure comes back as an image content block", async () => {
  const r = await client.callTool({
    name: "run_python",
    arguments: { code: "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('sdk')" },
  });
  assert.equal(r.isError, false);
  const images = r.content.filter((c) => c.type === "image");
  assert.equal(images.length, 1);
  assert.equal(images[0].mimeType, "image/png");
  const png = Buffer.from(images[0].data, "base64");
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
});

test("inputs reach the program and timeoutMs bounds it", async () => {
  const r = await client.callTool({ name: "run_python", arguments: { code: "sum(inputs['xs'])", inputs: { xs: [1, 2, 3] } } });
  assert.equal(r.structuredContent.value, 6);
  const slow = await client.callTool({ name: "run_python", arguments: { code: "import time\ntime.sleep(60)", timeoutMs: 500 } });
  assert.equal(slow.isError, true);
  assert.equal(slow.structuredContent.status, "timeout");
  // Above the server's limit: lowered to it, as the tool's description says, not refused.
  const long = await client.callTool({ name: "run_python", arguments: { code: "6 * 7", timeoutMs: 86400000 } });
  assert.equal(long.isError, false);
  assert.equal(long.structuredContent.value, 42);
});

test("the sandbox holds: the policy stops a socket import, and host files are not there", async () => {
  const r = await client.callTool({ name: "run_python", arguments: { code: "import socket" } });
  assert.equal(r.isError, true);
  assert.equal(r.structuredContent.status, "policy_violation");
  assert.match(r.content.map((c) => c.text ?? "").join("\n"), /import of 'socket' is blocked/);
  const files = await client.callTool({ name: "run_python", arguments: { code: "import os\n[os.path.exists(p) for p in ('/etc/shadow', '/root', '/home')]" } });
  assert.deepEqual(files.structuredContent.value, [false, false, false]);
});

test("a call without code is a tool error the model can read, not a crash", async () => {
  const r = await client.callTool({ name: "run_python", arguments: {} });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /needs a `code` string/);
  await assert.rejects(client.callTool({ name: "no_such_tool", arguments: {} }));
});

test("a session keeps state across run_python calls until close_session", async () => {
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ["close_session", "create_session", "run_javascript", "run_python"]);
  const created = await client.callTool({ name: "create_session", arguments: {} });
  assert.equal(created.isError, false);
  const session = created.structuredContent.session;
  assert.match(created.content[0].text, new RegExp(session));

  const first = await client.callTool({ name: "run_python", arguments: { session, code: "import math\nrows = [1, 2, 3]" } });
  assert.equal(first.isError, false);
  const second = await client.callTool({ name: "run_python", arguments: { session, code: "rows.append(4)\nmath.fsum(rows)" } });
  assert.equal(second.structuredContent.value, 10);
  assert.deepEqual(second.structuredContent.session, { id: session, alive: true });
  // A call without the session starts fresh.
  const fresh = await client.callTool({ name: "run_python", arguments: { code: "'rows' in globals()" } });
  assert.equal(fresh.structuredContent.value, false);

  const closed = await client.callTool({ name: "close_session", arguments: { session } });
  assert.equal(closed.isError, false);
  const after = await client.callTool({ name: "run_python", arguments: { session, code: "rows" } });
  assert.equal(after.isError, true);
  assert.match(after.content[0].text, /unknown session/);
  const again = await client.callTool({ name: "close_session", arguments: { session } });
  assert.equal(again.isError, true);
});

// ---- JavaScript ------------------------------------------------------------------------------

test("run_javascript is listed beside run_python, with the same arguments", async () => {
  assert.match(client.getInstructions(), /run_javascript/);
  const { tools } = await client.listTools();
  const js = tools.find((t) => t.name === "run_javascript");
  const py = tools.find((t) => t.name === "run_python");
  assert.ok(js, "run_javascript is listed");
  assert.deepEqual(Object.keys(js.inputSchema.properties).sort(), Object.keys(py.inputSchema.properties).sort());
  assert.deepEqual(js.inputSchema.required, ["code"]);
  assert.match(js.description, /Node\.js/);
  assert.match(js.description, /top-level await/);
  assert.match(js.description, /last expression/);
  assert.deepEqual(js.outputSchema, py.outputSchema);
  const create = tools.find((t) => t.name === "create_session");
  assert.deepEqual(create.inputSchema.properties.language.enum, ["python", "javascript"]);
});

test("run_javascript runs console.log(1+1); 6*7 through the real server", async () => {
  const r = await client.callTool({ name: "run_javascript", arguments: { code: "console.log(1+1); 6*7" } });
  assert.equal(r.isError, false, JSON.stringify(r));
  assert.deepEqual(r.content, [{ type: "text", text: "2\n" }, { type: "text", text: "value: 42" }]);
  assert.equal(r.structuredContent.status, "ok");
  assert.equal(r.structuredContent.stdout, "2\n");
  assert.equal(r.structuredContent.value, 42);
});

test("run_javascript: inputs, an error with its line, top-level await", async () => {
  const sum = await client.callTool({ name: "run_javascript", arguments: { code: "inputs.xs.reduce((a, b) => a + b, 0)", inputs: { xs: [1, 2, 3] } } });
  assert.equal(sum.structuredContent.value, 6);
  const bad = await client.callTool({ name: "run_javascript", arguments: { code: "const a = 1;\nthrow new RangeError('too far');" } });
  assert.equal(bad.isError, true);
  assert.match(bad.content.map((c) => c.text ?? "").join("\n"), /RangeError: too far \(line 2\)/);
  assert.equal(bad.structuredContent.error.line, 2);
  const waited = await client.callTool({
    name: "run_javascript",
    arguments: { code: "await new Promise((r) => setTimeout(r, 10));\nconsole.log('after await');" },
  });
  assert.equal(waited.isError, false, JSON.stringify(waited));
  assert.equal(waited.structuredContent.stdout, "after await\n");
  const slow = await client.callTool({ name: "run_javascript", arguments: { code: "while (true) {}", timeoutMs: 500 } });
  assert.equal(slow.structuredContent.status, "timeout");
});

test("a JavaScript session keeps let between run_javascript calls, and refuses run_python", async () => {
  const created = await client.callTool({ name: "create_session", arguments: { language: "javascript" } });
  assert.equal(created.isError, false, JSON.stringify(created));
  const session = created.structuredContent.session;
  const first = await client.callTool({ name: "run_javascript", arguments: { session, code: "let rows = [1, 2, 3];" } });
  assert.equal(first.isError, false, JSON.stringify(first));
  const second = await client.callTool({ name: "run_javascript", arguments: { session, code: "rows.push(4); rows.reduce((a, b) => a + b)" } });
  assert.equal(second.structuredContent.value, 10);
  // The other language's tool cannot use it: a tool error the model reads.
  const python = await client.callTool({ name: "run_python", arguments: { session, code: "1" } });
  assert.equal(python.isError, true);
  assert.match(python.content[0].text, /javascript|language/i);
  const closed = await client.callTool({ name: "close_session", arguments: { session } });
  assert.equal(closed.isError, false);
  // And a Python session refuses run_javascript.
  const py = await client.callTool({ name: "create_session", arguments: {} });
  const pySession = py.structuredContent.session;
  const js = await client.callTool({ name: "run_javascript", arguments: { session: pySession, code: "1" } });
  assert.equal(js.isError, true);
  await client.callTool({ name: "close_session", arguments: { session: pySession } });
});

// ---- helpers for the tests below -----------------------------------------------------------

// Every MCP version the server speaks, newest first, and those that define a tool's title and
// outputSchema and a result's structuredContent.
const versions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const structured = new Set(["2025-11-25", "2025-06-18"]);

// `pycell mcp` on a plain pipe, for what the SDK does not let a client choose (the protocol
// version it asks for) or shows only after its own checks.
class RawClient {
  constructor(args = []) {
    this.child = spawn(binary, ["mcp", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    this.exited = once(this.child, "exit");
    this.stderr = "";
    this.child.stderr.on("data", (d) => (this.stderr += d));
    this.waiting = new Map();
    this.nextId = 1;
    readline.createInterface({ input: this.child.stdout }).on("line", (line) => {
      const parsed = JSON.parse(line);
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
        const resolve = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        resolve?.(m);
      }
    });
  }
  send(message) {
    this.child.stdin.write(JSON.stringify(message) + "\n");
  }
  // The response to a request (result or error).
  request(method, params) {
    const id = this.nextId++;
    const answer = new Promise((resolve) => this.waiting.set(id, resolve));
    this.send({ jsonrpc: "2.0", id, method, params });
    return answer;
  }
  async result(method, params) {
    const m = await this.request(method, params);
    assert.ok(m.result, `${method}: ${JSON.stringify(m)} (stderr: ${this.stderr})`);
    return m.result;
  }
  notify(method, params) {
    this.send({ jsonrpc: "2.0", method, ...(params ? { params } : {}) });
  }
  async initialize(protocolVersion) {
    const r = await this.result("initialize", { protocolVersion, capabilities: {}, clientInfo: { name: "raw-test", version: "0" } });
    this.notify("notifications/initialized");
    return r;
  }
  async close() {
    this.child.stdin.end();
    const [code] = await this.exited;
    assert.equal(code, 0, `pycell mcp exited with ${code}; stderr: ${this.stderr}`);
  }
}

// An SDK client of its own `pycell mcp` started with `args`.
async function sdkClient(args) {
  const transport = new StdioClientTransport({ command: binary, args: ["mcp", ...args], stderr: "pipe" });
  const c = new Client({ name: "pycell-sdk-test", version: "1.0.0" });
  await c.connect(transport);
  return { client: c, transport };
}

// A config file in a fresh temporary directory; removed by the caller with rmSync.
function tempConfig(config) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pycell-mcp-test-"));
  const file = path.join(dir, "config.json");
  fs.writeFileSync(file, JSON.stringify(config));
  return { dir, file };
}

// The processes below `root` in /proc: { pid, ppid, comm, state, start } each.
function descendants(root) {
  const children = new Map();
  for (const name of fs.readdirSync("/proc")) {
    const p = /^\d+$/.test(name) ? readProc(Number(name)) : null;
    if (p) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  }
  const below = [];
  for (let i = -1, pid = root; i < below.length; pid = below[++i]?.pid) below.push(...(children.get(pid) ?? []));
  return below;
}

function readProc(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = stat.lastIndexOf(")");
    const fields = stat.slice(close + 2).split(" ");
    return { pid, comm: stat.slice(stat.indexOf("(") + 1, close), state: fields[0], ppid: Number(fields[1]), start: fields[19] };
  } catch {
    return null;  // gone meanwhile
  }
}

// Polls `probe` every 20 ms until it returns something truthy, or fails after `ms`.
async function waitFor(what, probe, ms = 20000) {
  for (const deadline = Date.now() + ms; ; ) {
    const got = probe();
    if (got) return got;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- JavaScript, where no profile serves it ---------------------------------------------------

test("without a profile that serves JavaScript, run_javascript is neither listed nor callable", { timeout: 60000 }, async () => {
  // The built-in javascript profile made a Python one: nothing here runs JavaScript.
  const cfg = tempConfig({ profiles: { javascript: { language: "python" } } });
  const raw = new RawClient(["--config", cfg.file]);
  try {
    const init = await raw.initialize("2025-06-18");
    assert.doesNotMatch(init.instructions, /run_javascript/);
    const { tools } = await raw.result("tools/list", {});
    assert.deepEqual(tools.map((t) => t.name).sort(), ["close_session", "create_session", "run_python"]);
    assert.equal(tools.find((t) => t.name === "create_session").inputSchema.properties.language, undefined);
    const call = await raw.request("tools/call", { name: "run_javascript", arguments: { code: "1" } });
    assert.equal(call.error?.code, -32602, JSON.stringify(call));
    assert.match(call.error.message, /unknown tool: run_javascript/);
    await raw.close();
  } finally {
    fs.rmSync(cfg.dir, { recursive: true, force: true });
  }
});

// ---- cancellation ---------------------------------------------------------------------------

test("a cancelled run_python gets no response, and its run is killed", { timeout: 120000 }, async () => {
  // The run names itself (prctl) so the test finds it among the server's descendants: the
  // policy layer is off for that (ctypes). One run at a time, so the call after the
  // cancellation runs only once the cancelled run has ended, and any response to the
  // cancelled call would have come before its answer.
  const cfg = tempConfig({ profiles: { default: { imports: null, builtins: { remove: [] }, limits: { timeoutMs: 120000 } } } });
  const { client: c, transport } = await sdkClient(["--max-concurrent", "1", "--config", cfg.file]);
  try {
    const sent = [];
    const received = [];
    const errors = [];
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
      sent.push(message);
      return send(message, options);
    };
    const onmessage = transport.onmessage;
    transport.onmessage = (message, extra) => {
      received.push(message);
      onmessage(message, extra);
    };
    c.onerror = (e) => errors.push(e);

    const controller = new AbortController();
    const code = "import ctypes, time\nctypes.CDLL(None).prctl(15, b'pycell-cancel', 0, 0, 0)\ntime.sleep(120)";
    const call = c.callTool({ name: "run_python", arguments: { code, timeoutMs: 120000 } }, undefined, { signal: controller.signal, timeout: 120000 });
    const run = await waitFor("the run to start", () => descendants(transport.pid).find((p) => p.comm === "pycell-cancel"));
    const id = sent.find((m) => m.method === "tools/call").id;
    controller.abort("the user changed their mind");
    await assert.rejects(call, /changed their mind/);
    assert.ok(sent.some((m) => m.method === "notifications/cancelled" && m.params.requestId === id), "the SDK sent notifications/cancelled");

    // The run is killed: its process goes, and the server's tree holds no process of it.
    await waitFor("the cancelled run's process to end", () => {
      const now = readProc(run.pid);
      return !now || now.start !== run.start;
    });
    const after = await c.callTool({ name: "run_python", arguments: { code: "6 * 7" } });
    assert.equal(after.structuredContent.value, 42);
    assert.deepEqual(received.filter((m) => m.id === id), [], "no response to the cancelled request");
    assert.deepEqual(errors.map(String), []);
  } finally {
    await c.close();
    fs.rmSync(cfg.dir, { recursive: true, force: true });
  }
});

test("a cancellation for a request that already finished, or that never was, changes nothing", { timeout: 60000 }, async () => {
  const raw = new RawClient();
  try {
    await raw.initialize(versions[0]);
    const done = await raw.result("tools/call", { name: "run_python", arguments: { code: "1 + 1" } });
    assert.equal(done.structuredContent.value, 2);
    raw.notify("notifications/cancelled", { requestId: 2, reason: "too late" });
    raw.notify("notifications/cancelled", { requestId: "never-sent" });
    const next = await raw.result("tools/call", { name: "run_python", arguments: { code: "2 + 2" } });
    assert.equal(next.structuredContent.value, 4);
  } finally {
    await raw.close();
  }
});

// ---- protocol versions ---------------------------------------------------------------------

for (const version of versions) {
  test(`initialize with ${version} gets ${version}, and messages that version defines`, { timeout: 60000 }, async () => {
    const raw = new RawClient();
    try {
      const init = await raw.initialize(version);
      assert.equal(init.protocolVersion, version);
      assert.equal(init.serverInfo.name, "pycell");
      assert.deepEqual(init.capabilities, { tools: { listChanged: false } });
      assert.match(init.instructions, /run_python/);

      const { tools } = await raw.result("tools/list", {});
      assert.deepEqual(tools.map((t) => t.name), ["run_python", "run_javascript", "create_session", "close_session"]);
      for (const tool of tools) {
        assert.equal(tool.inputSchema.type, "object");
        const allowed = structured.has(version)
          ? ["name", "title", "description", "inputSchema", "outputSchema"]
          : ["name", "description", "inputSchema"];
        assert.deepEqual(Object.keys(tool).sort(), allowed.sort(), `${tool.name} under ${version}`);
      }

      const r = await raw.result("tools/call", { name: "run_python", arguments: { code: "print('hi')\n6 * 7" } });
      assert.equal(r.isError, false);
      assert.deepEqual(r.content, [{ type: "text", text: "hi\n" }, { type: "text", text: "value: 42" }]);
      assert.equal("structuredContent" in r, structured.has(version));
      if (structured.has(version)) assert.equal(r.structuredContent.value, 42);

      if (version === "2025-03-26") {
        // The one version with JSON-RPC batches: a batch is answered, each request in it.
        const answers = [100, 101].map((id) => new Promise((resolve) => raw.waiting.set(id, resolve)));
        raw.send([
          { jsonrpc: "2.0", id: 100, method: "ping" },
          { jsonrpc: "2.0", id: 101, method: "tools/call", params: { name: "run_python", arguments: { code: "1 + 2" } } },
        ]);
        const [ping, call] = await Promise.all(answers);
        assert.deepEqual(ping.result, {});
        assert.deepEqual(call.result.content, [{ type: "text", text: "value: 3" }]);
      }

      const created = await raw.result("tools/call", { name: "create_session", arguments: {} });
      const session = created.content[0].text.replace(/^session: /, "");
      assert.equal("structuredContent" in created, structured.has(version));
      const closed = await raw.result("tools/call", { name: "close_session", arguments: { session } });
      assert.deepEqual(closed.content, [{ type: "text", text: "closed" }]);
      assert.equal(closed.isError, false);
      assert.equal("structuredContent" in closed, structured.has(version));
    } finally {
      await raw.close();
    }
  });
}

test("a version the server does not speak gets the newest one", { timeout: 60000 }, async () => {
  const raw = new RawClient();
  try {
    const init = await raw.initialize("1999-01-01");
    assert.equal(init.protocolVersion, versions[0]);
    const { tools } = await raw.result("tools/list", {});
    assert.ok(tools.every((t) => t.outputSchema));
  } finally {
    await raw.close();
  }
});

test("the SDK client, which asks for the newest version, sees titles and output schemas", async () => {
  const { tools } = await client.listTools();
  assert.ok(tools.every((t) => t.title && t.outputSchema?.type === "object"));
});

// ---- output schemas ------------------------------------------------------------------------

test("each tool's structuredContent validates against its outputSchema", { timeout: 120000 }, async () => {
  const { tools } = await client.listTools();
  // Compiled both as the SDK does (Ajv's default, draft-07) and as JSON Schema 2020-12.
  const validators = {};
  for (const tool of tools) {
    assert.equal(tool.outputSchema.type, "object", tool.name);
    validators[tool.name] = [new Ajv({ strict: false, allErrors: true }), new Ajv2020({ strict: false, allErrors: true })].map((ajv) =>
      ajv.compile(tool.outputSchema),
    );
  }
  const check = (name, result) => {
    assert.ok(result.structuredContent, `${name}: structuredContent`);
    for (const validate of validators[name]) {
      assert.ok(validate(result.structuredContent), `${name}: ${JSON.stringify(validate.errors)} for ${JSON.stringify(result.structuredContent).slice(0, 2000)}`);
    }
  };
  const runs = [
    { code: "print('out')\n6 * 7" },
    { code: "print('x')" },
    { code: "raise ValueError('bad')" },
    { code: "import time\ntime.sleep(60)", timeoutMs: 300 },
    { code: "import socket" },
    { code: "object()" },
    { code: "import sys\nsys.exit(3)" },
    { code: "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])" },
  ];
  for (const args of runs) check("run_python", await client.callTool({ name: "run_python", arguments: args }));
  const jsRuns = [
    { code: "console.log('out'); 6 * 7" },
    { code: "null.x" },
    { code: "({ big: 2n ** 70n, when: new Date(0), nan: NaN })" },
    { code: "require('child_process')" },
    { code: "process.exit(3)" },
  ];
  for (const args of jsRuns) check("run_javascript", await client.callTool({ name: "run_javascript", arguments: args }));
  const created = await client.callTool({ name: "create_session", arguments: {} });
  check("create_session", created);
  const session = created.structuredContent.session;
  check("run_python", await client.callTool({ name: "run_python", arguments: { session, code: "x = 1\nx" } }));
  const jsCreated = await client.callTool({ name: "create_session", arguments: { language: "javascript" } });
  check("create_session", jsCreated);
  await client.callTool({ name: "close_session", arguments: { session: jsCreated.structuredContent.session } });
  check("close_session", await client.callTool({ name: "close_session", arguments: { session } }));
  check("close_session", await client.callTool({ name: "close_session", arguments: { session } }));
  // A schema the validators refuse is one they read: a wrong result fails it.
  assert.equal(validators.close_session[0]({ closed: "yes" }), false);
  assert.equal(validators.run_python[1]({ status: "ok" }), false);
});

// ---- content ---------------------------------------------------------------------------------

test("a bare print() adds no value block; a value of no JSON form still shows its repr", async () => {
  const r = await client.callTool({ name: "run_python", arguments: { code: "print('only output')" } });
  assert.equal(r.isError, false);
  assert.deepEqual(r.content, [{ type: "text", text: "only output\n" }]);
  assert.equal(r.structuredContent.value, null);
  const none = await client.callTool({ name: "run_python", arguments: { code: "x = 1\nNone" } });
  assert.deepEqual(none.content, [{ type: "text", text: "(no output)" }]);
  const obj = await client.callTool({ name: "run_python", arguments: { code: "class Thing:\n    def __repr__(self): return 'Thing()'\nThing()" } });
  assert.deepEqual(obj.content, [{ type: "text", text: "value: Thing()" }]);
});
