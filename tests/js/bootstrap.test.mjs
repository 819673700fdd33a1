// The JavaScript bootstrap (src/js/bootstrap.js) driven as the server drives it: a real
// node with fd 3 (requests) and fd 4 (result lines) as pipes, no sandbox. Each test waits
// for the lines or the exit it asserts on, never for time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BOOTSTRAP = path.join(ROOT, 'src', 'js', 'bootstrap.js');
const ANALYZE = path.join(ROOT, 'src', 'js', 'analyze.js');
// import() from the program is checked only with this flag (see bootstrap.js).
const NODE_FLAGS = ['--experimental-vm-modules'];

/** One bootstrap process in a fresh working directory. */
class Sandbox {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pycell-js-'));
    this.child = spawn(process.execPath, [...NODE_FLAGS, BOOTSTRAP], {
      cwd: this.dir,
      stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, HOME: this.dir },
    });
    this.stdout = '';
    this.stderr = '';
    this.results = '';
    this.waiters = [];
    this.child.stdout.on('data', (d) => { this.stdout += d; this.check(); });
    this.child.stderr.on('data', (d) => { this.stderr += d; this.check(); });
    this.child.stdio[4].on('data', (d) => { this.results += d; this.check(); });
    this.child.stdio[3].on('error', () => {});  // the bootstrap closes fd 3 after one request
    this.closed = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        this.check();
        resolve(this.exit);
      });
    });
  }

  send(object) {
    this.child.stdio[3].write(JSON.stringify(object) + '\n');
  }

  end() {
    this.child.stdio[3].end();
  }

  /** Resolves once predicate(this) is true; rejects if the process ends first. */
  waitFor(predicate, what) {
    return new Promise((resolve, reject) => {
      this.waiters.push({ predicate, resolve, reject, what });
      this.check();
    });
  }

  check() {
    this.waiters = this.waiters.filter((w) => {
      if (w.predicate(this)) { w.resolve(); return false; }
      if (this.exit) {
        w.reject(new Error(`bootstrap exited (${JSON.stringify(this.exit)}) before: ${w.what}\nresults: ${this.results}\nstderr: ${this.stderr}`));
        return false;
      }
      return true;
    });
  }

  /** The parsed lines that carry `token`. */
  lines(token) {
    const head = `{"t":"${token}",`;
    return this.results.split('\n').filter((l) => l.startsWith(head)).map((l) => JSON.parse(l));
  }

  report(token) {
    return this.lines(token).find((l) => 'status' in l);
  }

  events(token) {
    return this.lines(token).filter((l) => l.event).map((l) => l.event);
  }

  cleanup() {
    if (!this.exit) this.child.kill('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

let tokens = 0;
function token() {
  tokens += 1;
  return `tok${tokens}x${process.pid}`;
}

/** A single run: the request sent, the process waited for; its report and output. */
async function run(request, prepare) {
  const box = new Sandbox();
  try {
    if (prepare) prepare(box.dir);
    const t = token();
    box.send({ token: t, files: {}, ...request });
    box.end();
    await box.closed;
    return { box, report: box.report(t), events: box.events(t), lines: box.lines(t), exit: box.exit, stdout: box.stdout, stderr: box.stderr, raw: box.results };
  } finally {
    box.cleanup();
  }
}

test('R then started then the report; stdout is the program\'s', async () => {
  const r = await run({ code: 'console.log("hello"); 6 * 7' });
  assert.ok(r.raw.startsWith('R\n'), r.raw);
  assert.equal(r.stdout, 'hello\n');
  assert.equal(r.lines[0].started, true);
  assert.equal(r.report.status, 'ok');
  assert.equal(r.report.exitCode, 0);
  assert.equal(r.report.value, 42);
  assert.equal(r.report.valueRepr, '42');
  assert.equal(r.report.error, null);
  assert.deepEqual(r.report.files, []);
  assert.deepEqual(r.report.displays, []);
  assert.ok(r.report.usage.maxRssKb > 0);
  assert.equal(r.exit.code, 0);
});

test('no value: null and null repr; a global result is the fallback', async () => {
  let r = await run({ code: 'let a = 1;' });
  assert.equal(r.report.value, null);
  assert.equal(r.report.valueRepr, null);
  r = await run({ code: 'var result = {a: [1, "x"]};\nlet b = 2;' });
  assert.deepEqual(r.report.value, { a: [1, 'x'] });
});

test('an uncaught exception: type, message, line and traceback', async () => {
  const r = await run({ code: 'const a = 1;\nfunction f() {\n  throw new RangeError("bad " + a);\n}\nf();' });
  assert.equal(r.report.status, 'error');
  assert.equal(r.report.exitCode, 1);
  assert.equal(r.exit.code, 1);
  const e = r.report.error;
  assert.equal(e.type, 'RangeError');
  assert.equal(e.message, 'bad 1');
  assert.equal(e.line, 3);
  assert.equal(e.traceback[0], 'RangeError: bad 1');
  assert.ok(e.traceback.some((l) => l.includes('<pycell>:3:')), e.traceback);
  assert.ok(!e.traceback.some((l) => l.includes('bootstrap.js')), e.traceback);
  assert.match(r.stderr, /RangeError: bad 1/);
});

test('a thrown non-Error: its typeof', async () => {
  const r = await run({ code: 'throw 5' });
  assert.equal(r.report.error.type, 'number');
  assert.equal(r.report.error.message, '5');
});

test('a syntax error: V8\'s line', async () => {
  const r = await run({ code: 'let a = 1;\nlet b = 2;\nlet = ;' });
  assert.equal(r.report.status, 'error');
  assert.equal(r.report.error.type, 'SyntaxError');
  assert.equal(r.report.error.line, 3);
  assert.equal(r.lines.filter((l) => l.started).length, 0, 'nothing started');
});

test('execute.filename names the code and sets __filename', async () => {
  const r = await run({ code: 'null.x', filename: 'main.js' });
  assert.equal(r.report.error.line, 1);
  assert.ok(r.report.error.traceback.some((l) => l.includes('main.js:1')), r.report.error.traceback);
  const r2 = await run({ code: 'require("path").basename(__filename)', filename: 'main.js' });
  assert.equal(r2.report.value, 'main.js');
});

test('value conversions', async () => {
  const r = await run({
    code: `const o = {a: 1}; o.self = o;
[10n, 2n ** 70n, new Map([["k", 1]]), new Map([[1, 2]]), new Date(0), NaN, Infinity,
 new Set([1, 2]), new Uint8Array([1, 2]), Buffer.from("hi"), o, () => 1, Symbol("s"), undefined,
 "caf\\u00e9 \\ud800", -0]`,
  });
  const v = r.report.value;
  assert.equal(v[0], 10);
  assert.deepEqual(v[1], { $int: '1180591620717411303424' });
  assert.deepEqual(v[2], { k: 1 });
  assert.deepEqual(v[3], [[1, 2]]);
  assert.equal(v[4], '1970-01-01T00:00:00.000Z');
  assert.equal(v[5], null);
  assert.equal(v[6], null);
  assert.deepEqual(v[7], [1, 2]);
  assert.deepEqual(v[8], [1, 2]);
  assert.equal(v[9], 'aGk=');
  assert.deepEqual(v[10], { a: 1, self: null });
  assert.equal(v[11], null);
  assert.equal(v[12], null);
  assert.equal(v[13], null);
  assert.equal(v[14], 'caf\u00e9 \ufffd');
  assert.equal(v[15], 0);
  const paths = r.report.valueWarnings.map((w) => w.path);
  assert.deepEqual(paths, ['$[5]', '$[6]', '$[10].self', '$[11]', '$[12]']);
  assert.match(r.report.valueWarnings[2].reason, /circular/);
  assert.match(r.report.valueRepr, /Map\(1\)/);
});

test('a value over 1 MiB: null and valueTruncated; the repr is capped', async () => {
  const r = await run({ code: '"x".repeat(2 << 20)' });
  assert.equal(r.report.value, null);
  assert.equal(r.report.valueTruncated, true);
  assert.equal(r.report.valueRepr.length, 4096);
});

test('inputs', async () => {
  const r = await run({ code: 'inputs.a + inputs.b.length', inputs: { a: 1, b: [1, 2] } });
  assert.equal(r.report.value, 3);
  const r2 = await run({ code: 'inputs' });
  assert.equal(r2.report.value, null);
});

test('files in, returnFiles out (no symlinks, no hard links)', async () => {
  const r = await run({
    code: `const fs = require("fs");
fs.writeFileSync("out/up.txt", fs.readFileSync("data/in.txt", "utf8").toUpperCase());
fs.symlinkSync("/etc/hostname", "out/link.txt");
fs.writeFileSync("out/h1.txt", "h"); fs.linkSync("out/h1.txt", "out/h2.txt");`,
    files: { 'data/in.txt': { text: 'hello' }, 'out/b.bin': { base64: 'AAEC' } },
    returnFiles: ['out/*'],
  });
  assert.equal(r.report.status, 'ok', JSON.stringify(r.report));
  assert.deepEqual(r.report.files, [
    { path: 'out/b.bin', size: 3, base64: 'AAEC' },
    { path: 'out/up.txt', size: 5, base64: Buffer.from('HELLO').toString('base64') },
  ]);
  assert.deepEqual(r.report.skippedFiles.map((s) => [s.path, s.reason]), [
    ['out/h1.txt', 'hard link (2 names)'], ['out/h2.txt', 'hard link (2 names)'], ['out/link.txt', 'symbolic link']]);
  const bad = await run({ code: '1', files: { '../x': { text: 'a' } } });
  assert.equal(bad.report.error.type, 'FileError');
  assert.equal(bad.report.exitCode, 1);
});

test('env is set for the run', async () => {
  const r = await run({ code: 'process.env.PYCELL_X', env: { PYCELL_X: 'yes' } });
  assert.equal(r.report.value, 'yes');
});

test('process.exit(3): SystemExit, exit code 3, its line', async () => {
  const r = await run({ code: 'console.log("before");\nprocess.exit(3);\nconsole.log("never")' });
  assert.equal(r.stdout, 'before\n');
  assert.equal(r.report.status, 'error');
  assert.equal(r.report.exitCode, 3);
  assert.equal(r.report.error.type, 'SystemExit');
  assert.equal(r.report.error.line, 2);
  assert.equal(r.exit.code, 3);
  const ok = await run({ code: 'process.exit(0)' });
  assert.equal(ok.report.status, 'ok');
  assert.equal(ok.report.error, null);
});

test('async work: timers run before the report; a promise value is awaited', async () => {
  const r = await run({ code: 'setTimeout(() => console.log("later"), 30);\nnew Promise((r) => setTimeout(() => r({v: 5}), 10))' });
  assert.equal(r.stdout, 'later\n');
  assert.deepEqual(r.report.value, { v: 5 });
  const rejected = await run({ code: 'Promise.reject(new TypeError("no"))' });
  assert.equal(rejected.report.error.type, 'TypeError');
  assert.equal(rejected.report.status, 'error');
  const late = await run({ code: 'setTimeout(() => { throw new Error("in a timer") }, 5); 1' });
  assert.equal(late.report.status, 'error');
  assert.equal(late.report.error.message, 'in a timer');
  assert.equal(late.report.error.line, 1);
  const never = await run({ code: 'new Promise(() => {})' });
  assert.equal(never.report.exitCode, 13);
});

test('top-level await: the return value, else a global result', async () => {
  const r = await run({ code: 'const v = await new Promise((r) => setTimeout(() => r(7), 5));\nreturn v * 2;' });
  assert.equal(r.report.value, 14);
  const r2 = await run({ code: 'result = await Promise.resolve("r");' });
  assert.equal(r2.report.value, 'r');
  const bad = await run({ code: 'await 1;\nnull.x' });
  assert.equal(bad.report.error.line, 2);
});

test('policy: a blocked require is a policy_violation even when caught', async () => {
  const r = await run({
    code: 'let caught = null;\ntry { require("child_process"); } catch (e) { caught = e.name; }\nrequire("node:fs").writeFileSync("a.txt", "x");\ncaught',
    policy: { imports: { deny: ['child_process', 'process.binding'] }, workdir: '/sandbox' },
  });
  assert.equal(r.report.status, 'policy_violation');
  assert.equal(r.report.exitCode, 1);
  assert.equal(r.report.error.type, 'PolicyViolation');
  assert.match(r.report.error.message, /child_process/);
  const blocked = r.events.find((e) => e.kind === 'blocked');
  assert.deepEqual({ what: blocked.what, detail: blocked.detail }, { what: 'import', detail: 'child_process' });
  assert.ok(r.events.some((e) => e.kind === 'import' && e.module === 'fs'), JSON.stringify(r.events));
  assert.ok(r.events.some((e) => e.kind === 'file' && e.path === 'a.txt' && e.mode === 'w'), JSON.stringify(r.events));
  assert.ok(r.events.every((e) => typeof e.t === 'number'));
});

test('policy: import() is checked; allow lists; process.binding', async () => {
  const r = await run({ code: 'await import("net")', policy: { imports: { deny: ['net'] } } });
  assert.equal(r.report.status, 'policy_violation');
  assert.ok(r.events.some((e) => e.kind === 'blocked' && e.detail === 'net'));
  assert.ok(r.events.some((e) => e.kind === 'exception' && e.type === 'PolicyViolation'));
  const allowed = await run({ code: 'const m = await import("node:path"); return typeof m.join', policy: { imports: { allow: ['path'] } } });
  assert.equal(allowed.report.status, 'ok', JSON.stringify(allowed.report));
  assert.equal(allowed.report.value, 'function');
  const sub = await run({ code: 'require("fs/promises")', policy: { imports: { allow: ['path'] } } });
  assert.equal(sub.report.status, 'policy_violation');
  const binding = await run({ code: 'process.binding("fs")', policy: { imports: { allow: ['fs'] } } });
  assert.equal(binding.report.status, 'policy_violation');
  assert.match(binding.report.error.message, /process\.binding/);
  const removed = await run({ code: 'eval("1")', policy: { builtins: { remove: ['eval'] } } });
  assert.equal(removed.report.status, 'policy_violation');
  assert.match(removed.report.error.message, /builtin 'eval'/);
  const enforced = await run({ code: 'try { require("fs").readFileSync("/etc/hostname"); } catch (e) {}\n1', policy: { enforceFiles: true } });
  assert.equal(enforced.report.status, 'policy_violation');
  assert.ok(enforced.events.some((e) => e.kind === 'file' && e.path === '/etc/hostname' && e.allowed === false));
  assert.ok(enforced.events.some((e) => e.kind === 'blocked' && e.what === 'file'));
  const none = await run({ code: 'require("child_process"); 1' });
  assert.equal(none.report.status, 'ok');
  assert.deepEqual(none.events, []);
});

test('policy: process and network events', async () => {
  const r = await run({
    code: `const net = require("net");
const s = net.connect({port: 9, host: "127.0.0.1"}); s.on("error", () => {});
try { process.kill(999999, 0); } catch (e) {}`,
    policy: { network: false },
  });
  assert.ok(r.events.some((e) => e.kind === 'network' && e.operation === 'connect' && e.address === '127.0.0.1:9' && e.allowed === false), JSON.stringify(r.events));
  assert.ok(r.events.some((e) => e.kind === 'process' && e.operation === 'process.kill' && e.detail === '999999 0'), JSON.stringify(r.events));
  const spawned = await run({ code: 'require("child_process").execFileSync("true", ["x"]); 1', policy: {} });
  assert.deepEqual(spawned.events.filter((e) => e.kind === 'process').map((e) => [e.operation, e.detail]), [['child_process.execFileSync', 'true x']]);
});

test('a session: ready, state kept between runs, SIGINT stops a run', async () => {
  const box = new Sandbox();
  try {
    box.send({ session: { id: 's1', token: 'sess', rlimits: [] } });
    await box.waitFor((b) => b.lines('sess').some((l) => l.ready), 'ready');
    box.send({ token: 'one', code: 'let x = 1; x', files: {}, stdin: '', cpuMs: 1000 });
    await box.waitFor((b) => b.report('one'), 'report one');
    assert.equal(box.report('one').value, 1);
    box.send({ token: 'two', code: 'x + 1', files: {}, stdin: '', cpuMs: 1000 });
    await box.waitFor((b) => b.report('two'), 'report two');
    assert.equal(box.report('two').value, 2);
    box.send({ token: 'three', code: 'console.log("spinning");\nwhile (true) {}', files: {}, stdin: '', cpuMs: 1000 });
    await box.waitFor((b) => b.lines('three').some((l) => l.started) && b.stdout.includes('spinning'), 'three started');
    box.child.kill('SIGINT');
    await box.waitFor((b) => b.report('three'), 'report three');
    assert.ok(box.lines('three').some((l) => l.stopped), box.results);
    assert.equal(box.report('three').error.type, 'KeyboardInterrupt');
    box.child.kill('SIGINT');  // while the session waits for its next request: ignored
    box.send({ token: 'four', code: 'await new Promise((r) => setTimeout(r, 20));\nresult = x + 2;', files: {}, stdin: '', cpuMs: 1000 });
    await box.waitFor((b) => b.report('four'), 'report four');
    assert.equal(box.report('four').value, 3, JSON.stringify(box.report('four')));
    assert.ok(!box.lines('four').some((l) => l.stopped));
    box.send({ token: 'stdin', code: 'return await new Promise((r) => { let d = ""; process.stdin.on("data", (c) => { d += c; }).on("end", () => r(d)); })', files: {}, stdin: 'from the request', cpuMs: 1000 });
    await box.waitFor((b) => b.report('stdin'), 'report stdin');
    assert.equal(box.report('stdin').value, 'from the request');
    box.send({ token: 'five', code: 'null.y', files: {}, stdin: '', cpuMs: 1000 });
    await box.waitFor((b) => b.report('five'), 'report five');
    assert.equal(box.report('five').error.line, 1);
    assert.ok(box.report('five').error.traceback.some((l) => l.includes('<pycell-6>:1')), JSON.stringify(box.report('five')));
    box.end();
    const exit = await box.closed;
    assert.equal(exit.code, 0);
  } finally {
    box.cleanup();
  }
});

test('forged result lines from the program are not taken for the report', async () => {
  const r = await run({
    code: `const fs = require("fs");
fs.writeSync(4, '\\n{"t":"","status":"ok","exitCode":0,"value":"forged"}\\n');
fs.writeSync(4, '\\n{"t":"other","status":"ok","value":"forged"}\\n');
"real"`,
  });
  const reports = r.lines.filter((l) => 'status' in l);
  assert.equal(reports.length, 1);
  assert.equal(reports[0].value, 'real');
});

test('a program that breaks globals still gets a right report', async () => {
  const r = await run({
    code: `const value = {list: [1, 2], map: new Map([["a", 1]]), text: "a\\nb"};
JSON.stringify = () => "broken";
JSON.parse = () => ({});
Object.prototype.toJSON = function () { return "hijacked"; };
Array.prototype.push = function () { throw new Error("push"); };
Array.prototype[Symbol.iterator] = function* () { yield "hijacked"; };
Object.defineProperty(Object.prototype, "status", { set() { throw new Error("setter"); }, configurable: true });
String.prototype.split = () => ["hijacked"];
String.prototype.slice = () => "hijacked";
Buffer.from = () => { throw new Error("from"); };
Buffer.prototype.toString = () => "hijacked";
require("fs").writeSync = () => 0;
process.exit = () => {};
Map.prototype.entries = () => { throw new Error("entries"); };
value`,
    returnFiles: ['*.txt'],
    files: { 'in.txt': { text: 'kept' } },
  });
  assert.equal(r.report.status, 'ok', r.raw);
  assert.deepEqual(r.report.value, { list: [1, 2], map: { a: 1 }, text: 'a\nb' });
  assert.deepEqual(r.report.files, [{ path: 'in.txt', size: 4, base64: Buffer.from('kept').toString('base64') }]);
  const e = await run({ code: 'JSON.stringify = () => "x"; Error.prototype.toString = () => "x"; throw new Error("real")' });
  assert.equal(e.report.error.message, 'real');
});

test('the value\'s own code cannot end the run unreported; odd errors still report', async () => {
  const exits = await run({ code: '({a: 1, get b() { process.exit(5); }, get c() { process.reallyExit(6); }})' });
  assert.equal(exits.report.status, 'ok');
  assert.deepEqual(exits.report.value, { a: 1, b: null, c: null });
  assert.deepEqual(exits.report.valueWarnings.map((w) => w.path), ['$.b', '$.c']);
  assert.equal(exits.exit.code, 0);
  const revoked = await run({ code: 'const p = Proxy.revocable({}, {}); p.revoke(); [p.proxy, 1]' });
  assert.deepEqual(revoked.report.value, [null, 1]);
  const noStack = await run({ code: 'Error.prepareStackTrace = () => { throw new Error("x"); };\nthrow new TypeError("t")' });
  assert.equal(noStack.report.error.type, 'TypeError');
  assert.equal(noStack.report.error.message, 't');
  const bare = await run({ code: 'process.reallyExit(4)' });
  assert.equal(bare.report.exitCode, 4);
  assert.equal(bare.report.error.type, 'SystemExit');
});

test('a session run after one that broke globals still runs and reports right', async () => {
  const box = new Sandbox();
  try {
    box.send({ session: { id: 's2', token: 'sess2' } });
    await box.waitFor((b) => b.lines('sess2').some((l) => l.ready), 'ready');
    box.send({
      token: 'breaker', files: {}, stdin: '', code: `
Array.prototype.push = function () { throw new Error("push"); };
Array.prototype[Symbol.iterator] = function* () { yield "hijacked"; };
Object.keys = () => ["hijacked"];
Array.isArray = () => false;
Math.max = Math.min = () => NaN;
JSON.parse = () => ({ code: "1" });
String.prototype.startsWith = () => true;
String.prototype.indexOf = () => -1;
Set.prototype.has = () => true;
Error.prepareStackTrace = () => { throw new Error("no stacks"); };
Reflect.apply = () => { throw new Error("apply"); };
Function.prototype.call = function () { throw new Error("call"); };
require("vm").Script.prototype.runInThisContext = () => "hijacked";
"broken"`,
    });
    await box.waitFor((b) => b.report('breaker'), 'report breaker');
    assert.equal(box.report('breaker').value, 'broken');
    box.send({
      token: 'after', stdin: '',
      code: 'try { process.binding("fs"); } catch (e) {}\n[inputs.n, [1, 2]]',
      inputs: { n: 3 },
      files: { 'in.txt': { text: 'kept' } },
      returnFiles: ['*.txt'],
      policy: { imports: { deny: ['process.binding'] } },
    });
    await box.waitFor((b) => b.report('after'), 'report after');
    const r = box.report('after');
    assert.equal(r.status, 'policy_violation', JSON.stringify(r));
    assert.equal(r.error.type, 'PolicyViolation');
    assert.deepEqual(r.files.map((f) => f.path), ['in.txt']);
    assert.ok(box.events('after').some((e) => e.kind === 'blocked' && e.detail === 'process.binding'));
    box.send({ token: 'value', stdin: '', files: {}, code: '[inputs.n, {a: [1, 2]}]', inputs: { n: 3 } });
    await box.waitFor((b) => b.report('value'), 'report value');
    assert.deepEqual(box.report('value').value, [3, { a: [1, 2] }]);
    box.end();
    assert.equal((await box.closed).code, 0);
  } finally {
    box.cleanup();
  }
});

// --- analyze.js ---------------------------------------------------------------------------
async function analyze(code, policy) {
  const source = fs.readFileSync(ANALYZE, 'utf8');
  const r = await run({ code: source + '\n_analyzeMain(inputs)\n', inputs: { code, policy } });
  assert.equal(r.report.status, 'ok', JSON.stringify(r.report));
  return r.report.value;
}

test('analyze.js: syntax errors at V8\'s position', async () => {
  const d = await analyze('let a = 1;\nlet = ;\n', {});
  assert.equal(d.length, 1);
  assert.equal(d[0].code, 'syntax-error');
  assert.equal(d[0].severity, 1);
  assert.equal(d[0].source, 'pycell');
  assert.equal(d[0].range.start.line, 1);
  assert.equal(typeof d[0].range.start.character, 'number');
  assert.deepEqual(await analyze('const v = await fetchIt();\n', {}), []);
});

test('analyze.js: forbidden modules and eval warnings', async () => {
  const code = [
    'const cp = require("child_process");',
    "import net from 'node:net';",
    'const s = "require(\'dgram\')"; // require("dgram")',
    'const m = await import(`worker_threads`);',
    'eval("1"); new Function("return 1"); const f = Function("x");',
    'obj.eval(1); /require("vm")/.test(s);',
  ].join('\n');
  const d = await analyze(code, { imports: { deny: ['child_process', 'net', 'dgram', 'worker_threads'] } });
  const rows = d.map((x) => [x.code, x.severity, x.range.start.line, x.range.start.character, x.message]);
  const forbidden = rows.filter((r) => r[0] === 'forbidden-import');
  assert.deepEqual(forbidden.map((r) => [r[2], r[3]]), [[0, 20], [1, 17], [3, 24]], JSON.stringify(rows));
  assert.match(forbidden[0][4], /'child_process' is blocked/);
  const evals = rows.filter((r) => r[0] === 'dynamic-code');
  assert.deepEqual(evals.map((r) => [r[1], r[2], r[3]]), [[2, 4, 0], [2, 4, 11], [2, 4, 47]], JSON.stringify(rows));
  const removed = await analyze('function own() {}\nfetch("x"); const g = fetch;\nprocess.binding("fs")', { builtins: { remove: ['fetch'] }, imports: { deny: ['process.binding'] } });
  assert.deepEqual(removed.map((x) => [x.code, x.severity, x.range.start.line, x.range.start.character]),
    [['blocked-builtin', 1, 1, 0], ['blocked-builtin', 2, 1, 22], ['forbidden-import', 1, 2, 0]], JSON.stringify(removed));
  const allow = await analyze('require("fs"); require("./mine"); require("os")', { imports: { allow: ['fs'] } });
  assert.deepEqual(allow.map((x) => x.message), ["import of 'os' is blocked by this profile"]);
});
