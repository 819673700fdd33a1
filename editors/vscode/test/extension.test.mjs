// The extension (out/extension.js) driven through its commands with a stand-in `vscode`
// module (test/fake-vscode.cjs) and the REAL pycell server: what a user would see in the
// Output channel, the Problems panel, the status bar and the figures webview.
// VS Code itself is not downloaded or run here.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { chmodSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const require = createRequire(import.meta.url);
const Module = require("node:module");
const { createVscode, makeDocument, makeEditor, Position, Selection } = require("./fake-vscode.cjs");
const { figuresOf, figuresHtml } = require("../out/figures.js");

const binary = process.env.PYCELL_BINARY;
const T = { timeout: 60_000 };
const settings = { binaryPath: binary, profile: "default", "runLimits.timeoutMs": 9000, analyzeOnSave: true };
const { vscode, record, events } = createVscode(settings);

// `require("vscode")` from the extension gets the stand-in.
const realLoad = Module._load;
Module._load = function (request, ...rest) {
  return request === "vscode" ? vscode : realLoad.call(this, request, ...rest);
};
const extensionModule = require("../out/extension.js");
// The status bar's refresh, fast enough to be seen within a test.
extensionModule.PycellExtension.pollIntervalMs = 100;

// A 1x1 PNG.
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

let ext;
const output = () => record.channels.get("pycell").text;
const serverLog = () => record.channels.get("pycell server").text;
const problems = (doc) => record.collections.get("pycell").get(doc.uri) ?? [];
const run = (id) => vscode.commands.executeCommand(id);

async function until(what, fn, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

function open(name, text, selection, languageId = name.endsWith(".js") ? "javascript" : "python") {
  const doc = makeDocument(`/tmp/pycell-vscode-test/${name}`, text, languageId);
  vscode.window.activeTextEditor = makeEditor(doc, selection);
  return doc;
}

before(() => {
  assert.ok(binary, "PYCELL_BINARY must name the pycell binary");
  ext = extensionModule.activate({ subscriptions: [] });
});

after(async () => {
  if (process.env.PYCELL_SHOW_OUTPUT) console.log(output());
  await extensionModule.deactivate();
  Module._load = realLoad;
});

test("every command in package.json is registered", () => {
  const pkg = require("../package.json");
  for (const c of pkg.contributes.commands) assert.ok(record.commands.has(c.command), c.command);
});

test("the server starts on the first pycell command, not when a Python file is opened or saved", T, async () => {
  assert.equal(ext.serverStarted, false);
  assert.equal(record.statusItem.visible, false, "no Python file in front: no status item");
  const doc = open("lazy.py", "print('lazy')\n");
  assert.equal(record.statusItem.visible, true, "a Python file in front shows the item");
  assert.match(record.statusItem.text, /^\$\(shield\) pycell$/);
  assert.match(record.statusItem.tooltip, /starts with the first pycell command/);
  // Both handlers decide synchronously: a start would show in serverStarted at once.
  events.saved.fire(doc); // analyzeOnSave is on, but saving alone does not start the server
  events.configChanged.fire({ affectsConfiguration: (s) => s === "pycell" || s === "pycell.binaryPath" });
  assert.equal(ext.serverStarted, false);
  assert.equal(ext.polling, false, "nothing to poll without a server");
  assert.doesNotMatch(serverLog(), /starting/);
  const r = await run("pycell.runFile");
  assert.equal(r.status, "ok");
  assert.equal(ext.serverStarted, true);
  assert.match(serverLog(), /starting .* serve/);
  assert.match(output(), /lazy\n■ ok/);
});

test("status is polled only while the status item is visible in a focused window", T, async () => {
  const client = await ext.getClient();
  let calls = 0;
  const realStatus = client.status;
  client.status = function (...args) {
    calls++;
    return realStatus.apply(this, args);
  };
  try {
    open("poll.py", "1\n");
    assert.equal(ext.polling, true);
    const from = calls;
    await until("two periodic status calls", () => calls >= from + 2);
    // Another kind of file in front: the item hides and the polling stops.
    vscode.window.activeTextEditor = makeEditor(makeDocument("/tmp/pycell-vscode-test/notes.txt", "hi\n", "plaintext"));
    assert.equal(record.statusItem.visible, false);
    assert.equal(ext.polling, false);
    vscode.window.activeTextEditor = undefined;
    assert.equal(record.statusItem.visible, false);
    assert.equal(ext.polling, false);
    open("poll.py", "1\n");
    assert.equal(record.statusItem.visible, true);
    assert.equal(ext.polling, true);
    events.setFocused(false); // another application in front
    assert.equal(ext.polling, false);
    events.setFocused(true);
    assert.equal(ext.polling, true);
  } finally {
    client.status = realStatus;
  }
});

test("the status bar shows the isolation level and the profile's pool", T, async () => {
  await until("a pool in the status bar", () => /default \d+\/\d+/.test(record.statusItem.text));
  assert.match(record.statusItem.text, /pycell: (isolated|DEGRADED) · default \d+\/\d+/);
  assert.equal(record.statusItem.visible, true);
  assert.match(record.statusItem.tooltip, /pool default: \d+ ready of \d+/);
});

test("Run File streams output into the Output channel and reports the value", T, async () => {
  open("hello.py", "print('hello from the sandbox')\n6 * 7\n");
  const r = await run("pycell.runFile");
  assert.equal(r.status, "ok");
  assert.match(output(), /▶ hello\.py · profile default/);
  assert.match(output(), /hello from the sandbox\n= 42\n■ ok/);
});

test("Run Selection runs the selected lines, dedented, and reports the error at the file's line", T, async () => {
  const doc = open(
    "sel.py",
    "def f():\n    x = 1\n    raise KeyError('k')\n",
    new Selection(new Position(1, 0), new Position(2, 23)),
  );
  const r = await run("pycell.runSelection");
  assert.equal(r.status, "error");
  assert.equal(r.error.line, 2); // in the selection
  assert.match(output(), /▶ sel\.py lines 2-3/);
  assert.match(output(), /■ error: KeyError: 'k' \(line 3\)/); // in the file
  assert.ok(output().includes(`at ${doc.uri.fsPath}:3`));
});

test("Run Selection with nothing selected runs the current line", T, async () => {
  open("line.py", "a = 1\nprint('line two')\n", new Selection(new Position(1, 3), new Position(1, 3)));
  const r = await run("pycell.runSelection");
  assert.equal(r.stdout, "line two\n");
  assert.match(output(), /▶ line\.py line 2/);
  assert.match(output(), /line two\n■ ok/); // no "= None" for a print() at the end
});

test("Analyze puts a syntax error in the Problems panel, and saving re-runs it", T, async () => {
  const doc = open("bad.py", "import os\n\nif True\n    pass\n");
  await run("pycell.analyze");
  const diags = problems(doc);
  assert.equal(diags.length, 1);
  assert.equal(diags[0].range.start.line, 2);
  assert.equal(diags[0].severity, vscode.DiagnosticSeverity.Error);
  assert.equal(diags[0].source, "pycell");
  doc.setText("import os\n\nif True:\n    pass\n");
  events.saved.fire(doc);
  await until("the problem to clear on save", () => problems(doc).length === 0);
  doc.setText("x = (\n");
  events.saved.fire(doc);
  await until("a problem after the second save", () => problems(doc).length === 1);
  events.closed.fire(doc);
  assert.equal(problems(doc).length, 0);
});

test("Kill ends a running run, which reports status killed", T, async () => {
  await run("pycell.kill");
  assert.match(record.messages.at(-1).text, /nothing is running/);
  open("sleep.py", "import time\nprint('zz', flush=True)\ntime.sleep(60)\n");
  const pending = run("pycell.runFile");
  await until("the run's first output", () => output().endsWith("zz\n"));
  assert.match(record.statusItem.text, /running 1/);
  await run("pycell.kill");
  const r = await pending;
  assert.equal(r.status, "killed");
  assert.match(output(), /zz\n■ killed/);
  assert.doesNotMatch(record.statusItem.text, /running/);
});

test("Run in Session keeps the document's state between runs", T, async () => {
  const doc = open("sess.py", "n = 41\nn + 1\n");
  const r = await run("pycell.runInSession");
  assert.equal(r.value, 42);
  assert.match(output(), /· session session-\d+/);
  // The same document, changed: the session still holds n.
  doc.setText("n += 1\nn\n");
  const again = await run("pycell.runInSession");
  assert.equal(again.value, 42);
  assert.deepEqual(again.session?.alive, true);
});

test("Run File runs a JavaScript file with Node in the javascript profile", T, async () => {
  open("hello.js", "console.log('hello from node');\n6 * 7\n");
  const r = await run("pycell.runFile");
  assert.equal(r.status, "ok");
  assert.equal(r.value, 42);
  assert.match(output(), /▶ hello\.js · profile javascript/);
  assert.match(output(), /hello from node\n= 42\n■ ok/);
});

test("Run Selection in JavaScript reports an error at the file's line", T, async () => {
  const doc = open("sel.js", "function f() {\n  const o = null;\n  o.x;\n}\n", new Selection(new Position(1, 0), new Position(2, 6)));
  const r = await run("pycell.runSelection");
  assert.equal(r.status, "error");
  assert.equal(r.error.type, "TypeError");
  assert.equal(r.error.line, 2); // in the selection
  assert.match(output(), /■ error: TypeError: .*\(line 3\)/); // in the file
  assert.ok(output().includes(`at ${doc.uri.fsPath}:3`));
});

test("Run in Session keeps a JavaScript document's let between runs, apart from its Python session", T, async () => {
  const doc = open("sess.js", "let n = 41;\nn + 1\n");
  const r = await run("pycell.runInSession");
  assert.equal(r.value, 42);
  doc.setText("n += 1;\nn\n");
  const again = await run("pycell.runInSession");
  assert.equal(again.value, 42);
  assert.equal(again.session?.alive, true);
});

test("Analyze puts a JavaScript syntax error in the Problems panel", T, async () => {
  const doc = open("bad.js", "const a = 1;\nlet = = 2;\n");
  await run("pycell.analyze");
  const diags = problems(doc);
  assert.ok(diags.length >= 1, "a problem");
  assert.equal(diags[0].severity, vscode.DiagnosticSeverity.Error);
  doc.setText("const a = 1;\na + 1;\n");
  events.saved.fire(doc);
  await until("the problem to clear on save", () => problems(doc).length === 0);
});

test("other languages (JSX, TypeScript) are refused with a message that says why", T, async () => {
  for (const languageId of ["javascriptreact", "typescript"]) {
    open(`x.${languageId}`, "console.log(1)\n", undefined, languageId);
    const before = record.messages.length;
    const r = await run("pycell.runFile");
    assert.equal(r, undefined);
    const msg = record.messages.slice(before).find((m) => m.kind === "error");
    assert.ok(msg, `an error message for ${languageId}`);
    assert.match(msg.text, new RegExp(`runs Python and JavaScript files; x\\.${languageId} is ${languageId}`));
  }
});

test("a profile of the other language is refused before anything runs", T, async () => {
  settings.javascriptProfile = "default";
  try {
    open("wrong.js", "1\n");
    const before = record.messages.length;
    assert.equal(await run("pycell.runFile"), undefined);
    const msg = record.messages.slice(before).find((m) => m.kind === "error");
    assert.match(msg?.text ?? "", /profile "default" \(setting pycell\.javascriptProfile\) runs python, not javascript/);
  } finally {
    delete settings.javascriptProfile;
  }
});

test("figures (image/png displays) are shown in a webview", T, async () => {
  ext.showFigures("test: 1 figure(s)", [{ "image/png": PNG, "text/plain": "<Figure size 1x1 with 0 Axes>" }, { "text/plain": "no image" }]);
  const panel = record.panels.at(-1);
  assert.ok(panel, "a webview panel was created");
  assert.equal(panel.options.enableScripts, false);
  assert.ok(panel.webview.html.includes(`data:image/png;base64,${PNG}`));
  assert.match(panel.webview.html, /Content-Security-Policy" content="default-src 'none'; img-src data:/);
  assert.ok(panel.webview.html.includes("&lt;Figure size 1x1 with 0 Axes&gt;"));
  // A real matplotlib figure, where the server returns displays for it.
  open("plot.py", "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\n");
  settings.profile = "datascience";
  try {
    const r = await run("pycell.runFile");
    assert.ok(r, "the run returned a result");
    if (r.status === "ok" && figuresOf(r.displays).length > 0) {
      assert.match(record.panels.at(-1).webview.html, /data:image\/png;base64,/);
      assert.match(output(), /1 figure\(s\) shown/);
    }
  } finally {
    settings.profile = "default";
  }
});

test("figure HTML escapes captions and refuses a malformed payload", () => {
  assert.equal(figuresOf([{ "image/png": "not base64 <script>" }]).length, 0);
  const html = figuresHtml("<t>", figuresOf([{ "image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg'/>", "text/plain": "<b>" }]));
  assert.ok(html.includes("data:image/svg+xml;base64,"));
  assert.ok(!html.includes("<b>"));
  assert.ok(html.includes("&lt;t&gt;"));
});

test("a protocol error (limits looser than the profile allows) is shown to the user", T, async () => {
  // Through the new setting, then through the deprecated object alone.
  assert.doesNotMatch(output(), /pycell\.limits is deprecated/);
  for (const [key, value] of [["runLimits.timeoutMs", 100_000_000], ["limits", { timeoutMs: 100_000_000 }]]) {
    const saved = { timeout: settings["runLimits.timeoutMs"], limits: settings.limits };
    delete settings["runLimits.timeoutMs"];
    settings[key] = value;
    try {
      open("limits.py", "1\n");
      const before = record.messages.length;
      const r = await run("pycell.runFile");
      assert.equal(r, undefined, key);
      const msg = record.messages.slice(before).find((m) => m.kind === "error");
      assert.ok(msg, `an error message is shown (${key})`);
      assert.match(msg.text, /\(error -32602\)/);
    } finally {
      settings["runLimits.timeoutMs"] = saved.timeout;
      settings.limits = saved.limits;
    }
  }
});

test("limits are read from the pycell.runLimits.* settings, with pycell.limits as a deprecated fallback", () => {
  const saved = { ...settings };
  try {
    for (const k of Object.keys(settings)) if (k.startsWith("runLimits.") || k === "limits") delete settings[k];
    assert.equal(ext.limits(), undefined, "nothing set: the profile's limits");
    settings["runLimits.timeoutMs"] = 3000;
    settings["runLimits.memoryMb"] = 256;
    settings["runLimits.diskMb"] = 0; // 0: the profile's own
    assert.deepEqual(ext.limits(), { timeoutMs: 3000, memoryMb: 256 });
    settings.limits = { timeoutMs: 9000, cpuMs: 5000, maxProcesses: 0 };
    assert.deepEqual(ext.limits(), { timeoutMs: 3000, cpuMs: 5000, memoryMb: 256 }, "a new setting wins over the old field");
    // Said once, in the Output channel, at the first run that used the old object.
    assert.match(output(), /pycell\.limits is deprecated.*pycell\.runLimits\.timeoutMs/);
    for (const k of extensionModule.LIMIT_KEYS) settings[`runLimits.${k}`] = 7;
    assert.deepEqual(ext.limits(), Object.fromEntries(extensionModule.LIMIT_KEYS.map((k) => [k, 7])));
  } finally {
    for (const k of Object.keys(settings)) delete settings[k];
    Object.assign(settings, saved);
  }
});

test("package.json: Run and Analyze are offered for Python and JavaScript editors only; each limit is its own setting", () => {
  const pkg = require("../package.json");
  const { menus, configuration } = pkg.contributes;
  const languages = "editorLangId == python || editorLangId == javascript";
  for (const id of ["pycell.runFile", "pycell.runSelection", "pycell.runInSession", "pycell.analyze"]) {
    const palette = menus.commandPalette.find((m) => m.command === id);
    assert.equal(palette?.when, languages, `${id} in the Command Palette`);
  }
  for (const [menu, entries] of Object.entries(menus)) {
    for (const e of entries) {
      if (/^pycell\.(run|analyze)/.test(e.command)) assert.equal(e.when, languages, `${menu}: ${e.command}`);
    }
  }
  assert.deepEqual(pkg.activationEvents, ["onLanguage:python", "onLanguage:javascript"]);
  assert.equal(configuration.properties["pycell.javascriptProfile"].default, "javascript");
  const props = configuration.properties;
  const legacy = props["pycell.limits"];
  assert.ok(legacy.markdownDeprecationMessage, "pycell.limits is marked deprecated");
  assert.deepEqual(Object.keys(legacy.properties), [...extensionModule.LIMIT_KEYS]);
  for (const k of extensionModule.LIMIT_KEYS) {
    const p = props[`pycell.runLimits.${k}`];
    assert.ok(p, `pycell.runLimits.${k}`);
    assert.equal(p.type, "integer"); // a plain number box in the Settings editor
    assert.equal(p.default, 0);
    assert.equal(p.minimum, 0);
  }
});

test("Show Status writes the isolation, profiles and pools", T, async () => {
  await run("pycell.showStatus");
  assert.match(output(), /isolation: (isolated|degraded)/);
  assert.match(output(), /default \(selected for python\)/);
  assert.match(output(), /javascript \(selected for javascript\)/);
  assert.match(output(), /pool default: \d+\/\d+ ready/);
});

test("a missing binary shows an error and a stopped status bar", T, async () => {
  settings.binaryPath = "/nonexistent/pycell";
  try {
    await ext.restart().catch(() => undefined);
    open("x.py", "1\n");
    const before = record.messages.length;
    await run("pycell.runFile");
    assert.match(record.messages.slice(before).map((m) => m.text).join("\n"), /binary not found: \/nonexistent\/pycell/);
    assert.match(record.statusItem.text, /pycell: stopped/);
  } finally {
    settings.binaryPath = binary;
    await ext.restart();
  }
  const r = await run("pycell.runFile");
  assert.equal(r.value, 1);
});

test("degraded isolation is a visible warning and a warning-coloured status bar", T, async () => {
  settings.binaryPath = fileURLToPath(new URL("./fake-degraded-server.cjs", import.meta.url));
  // A copy may have lost the executable bit (and one that kept it may belong to another user).
  if ((statSync(settings.binaryPath).mode & 0o111) !== 0o111) chmodSync(settings.binaryPath, 0o755);
  try {
    const before = record.messages.length;
    await ext.restart();
    const warn = record.messages.slice(before).find((m) => m.kind === "warning");
    assert.ok(warn, "a warning is shown");
    assert.match(warn.text, /isolation is DEGRADED/);
    assert.match(warn.text, /no userNamespace/);
    await until("the status bar", () => /DEGRADED · default 1\/2/.test(record.statusItem.text));
    assert.equal(record.statusItem.backgroundColor.id, "statusBarItem.warningBackground");
  } finally {
    settings.binaryPath = binary;
    await ext.restart();
  }
  assert.equal(record.statusItem.backgroundColor, undefined);
});

test("deactivate shuts the server down", T, async () => {
  const client = await ext.getClient();
  await extensionModule.deactivate();
  const info = await client.exited;
  assert.deepEqual(info, { code: 0, signal: null });
});
