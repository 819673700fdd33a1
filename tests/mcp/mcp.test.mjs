// `pycell mcp` driven by the official MCP TypeScript SDK client over stdio, as an agent
// harness would: the real binary, real sandboxes. Run by ctest (see tests/CMakeLists.txt).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

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
  assert.deepEqual(tools.map((t) => t.name).sort(), ["close_session", "create_session", "run_python"]);
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
