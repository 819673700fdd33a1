'use strict';
// Placeholder: one request, no policy. Replaced by the full bootstrap.
const fs = require('fs');
const vm = require('vm');
fs.writeSync(4, 'R\n');
const chunks = [];
const buf = Buffer.alloc(65536);
for (;;) {
  let n = 0;
  try { n = fs.readSync(3, buf, 0, buf.length, null); } catch (e) { if (e.code === 'EAGAIN') continue; break; }
  if (n <= 0) break;
  chunks.push(Buffer.from(buf.subarray(0, n)));
  if (buf.subarray(0, n).includes(10)) break;
}
const request = JSON.parse(Buffer.concat(chunks).toString('utf8').split('\n')[0]);
const head = '\n{"t":"' + request.token + '",';
let status = 'ok', error = null, value = null, valueRepr = null, exitCode = 0;
globalThis.inputs = request.inputs === undefined ? null : request.inputs;
try {
  fs.writeSync(4, head + '"started":true}\n');
  const v = new vm.Script(request.code, { filename: request.filename || '<pycell>' }).runInThisContext();
  if (v !== undefined) { value = v; valueRepr = require('util').inspect(v); }
} catch (e) {
  status = 'error'; exitCode = 1;
  error = { type: (e && e.name) || typeof e, message: String(e && e.message), traceback: String(e && e.stack).split('\n'), line: null };
  process.stderr.write(String(e && e.stack) + '\n');
}
process.on('beforeExit', () => {
  const u = process.resourceUsage();
  fs.writeSync(4, head + '"status":' + JSON.stringify(status) + ',"exitCode":' + exitCode + ',"value":' + JSON.stringify(value) +
    ',"valueRepr":' + JSON.stringify(valueRepr) + ',"error":' + JSON.stringify(error) + ',"usage":' +
    JSON.stringify({ cpuUserMs: Math.round(u.userCPUTime / 1000), cpuSysMs: Math.round(u.systemCPUTime / 1000), maxRssKb: u.maxRSS }) +
    ',"displays":[],"files":[]}\n');
  process.exit(exitCode);
});
