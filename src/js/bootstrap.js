'use strict';
/*
 * pycell bootstrap for JavaScript: runs one untrusted Node.js program inside the sandbox.
 *
 * Run as `node [flags] /.pycell/bootstrap.js` in the working directory: fd 0/1/2 are the
 * program's, fd 3 holds the request line(s), fd 4 gets the result lines. It speaks exactly
 * the protocol of the Python bootstrap (bootstrap.py, session.py), so the server treats
 * both alike: `R\n` once loaded, then one request (or a session's header and its
 * requests), and per request lines that all start with `\n{"t":"<token>",`: "started",
 * activity "event"s, "stopped" (a session's run interrupted) and the report.
 * Standard library only, Node 18+. Embedded in the C++ binary as a raw string literal, so
 * it must never contain that literal's closing delimiter.
 *
 * The program's code runs with vm.Script.runInThisContext, in this process's own global
 * scope (a session's top-level let/const persist between runs, as in the Node REPL). What
 * the program can reach (globals, prototypes, process, fs) it can change; so everything
 * this file calls after the program started is a private reference taken at load time,
 * the report is encoded by our own code (JSON.stringify would call a program's toJSON),
 * and the records we build have no prototype (a setter on Object.prototype sees nothing).
 *
 * When a run ends: when the event loop has nothing left (timers, promises and I/O the
 * program scheduled have run, as `node file.js` waits for them), with a promise value
 * settled; or at once on an uncaught exception or unhandled rejection (exit code 1), on
 * process.exit(n) (SystemExit, as bootstrap.py reports it; its 'exit' listener reports),
 * or on SIGINT (KeyboardInterrupt, after a "stopped" line). A promise value still
 * pending when nothing is left to run is an error with node's exit code 13.
 *
 * The value (the script's completion value, else a global `result`), as plain JSON within
 * 1 MiB: numbers (NaN and infinities: null, with a valueWarnings entry), strings (lone
 * surrogates as U+FFFD), booleans, null; undefined: null; arrays; typed arrays: arrays of
 * numbers; Buffer and ArrayBuffer: a base64 string (as bytes are in Python); Map: an
 * object when all keys are strings, else an array of [key, value] pairs; Set: an array;
 * Date: ISO 8601 (invalid: null); boxed primitives: their primitive; BigInt: the number
 * within 64 bits, else {"$int": "<decimal digits>"} (the schema's rule for Python's int);
 * other objects: their own enumerable string-keyed properties (as JSON.stringify takes
 * them, without calling toJSON); functions, symbols, promises, cycles, nesting past 100
 * levels and members whose getters throw: null, each with a valueWarnings entry
 * {path, reason}. valueRepr: util.inspect, at most 4096 characters.
 *
 * Known limits (the kernel, not this file, is the boundary):
 *  - import() from the program is checked against the policy only when node runs with
 *    --experimental-vm-modules (without it node never calls a vm.Script's import
 *    callback). Without that flag, a run with a policy has no import() (node rejects it),
 *    and a run without one uses node's default loader when node has one (20.12+). Static
 *    imports inside ES modules the program loads are not checked (node's ESM loader does
 *    not go through Module._load). Loads by packages under node_modules are the
 *    package's own, not checked (as policy.py leaves a library's imports alone).
 *  - A session's run that declares again a top-level let, const or class of an earlier
 *    run fails, as V8 says ("has already been declared"); var and function may be.
 *  - SIGINT stops synchronous code (runInThisContext's breakOnSigint) and ends a run that
 *    waits on callbacks; a callback that never returns is not interrupted (the server's
 *    SIGKILL follows).
 *  - In a session, process.exit() reports the run and ends the process (node cannot undo
 *    an exit); a session's runs read their request's stdin from process.stdin, while
 *    fs.readFileSync(0) still reads the process's own fd 0. Timers a run left behind keep
 *    running in later runs, and the next run starts when the loop is empty.
 *  - fds 3 and 4 stay open in the process (node cannot make them close-on-exec or move
 *    them); child processes inherit them. The token still tells our lines from theirs.
 *  - A program that replaces process.emit keeps node from telling us that the loop is
 *    empty or that the process exits: such a run ends without a report.
 */
// node runs this file with --no-lazy: every function here is compiled when the sandbox
// starts, ahead of demand, not on a run's path (measured: about 1.3 ms of an 8 ms warm run).
// The program's code is compiled lazily again, as node would.
require('v8').setFlagsFromString('--lazy');
const fs = require('fs');
const vm = require('vm');
const util = require('util');
const pathModule = require('path');
const Module = require('module');
const { pathToFileURL, fileURLToPath } = require('url');
const { Readable } = require('stream');

// --- private references -------------------------------------------------------------------
// A method taken off its prototype and called as a plain function: uncurry(f)(obj, ...args)
// is f.call(obj, ...args), whatever the program later does to the prototypes.
const uncurry = Function.prototype.bind.bind(Function.prototype.call);
const _apply = Reflect.apply;
const _ownKeys = Reflect.ownKeys;
const _getPrototypeOf = Reflect.getPrototypeOf;
const _getOwnDesc = Reflect.getOwnPropertyDescriptor;
const _defineProperty = Reflect.defineProperty;
const _keys = Object.keys;
const _isArray = Array.isArray;
const _create = Object.create;
const _String = String;
const _Number = Number;
const _isFinite = Number.isFinite;
const _Math = { __proto__: null, min: Math.min, max: Math.max, round: Math.round, floor: Math.floor };
const _isInteger = Number.isInteger;
const _Error = Error;
const _Set = Set;
const _setAdd = uncurry(Set.prototype.add);
const _setHas = uncurry(Set.prototype.has);
const _setDelete = uncurry(Set.prototype.delete);
const _mapEntries = uncurry(Map.prototype.entries);
const _setValues = uncurry(Set.prototype.values);
const _mapIterNext = uncurry(_getPrototypeOf(new Map().entries()).next);
const _setIterNext = uncurry(_getPrototypeOf(new Set().values()).next);
const _charCode = uncurry(String.prototype.charCodeAt);
const _strSlice = uncurry(String.prototype.slice);
const _strIndexOf = uncurry(String.prototype.indexOf);
const _startsWith = uncurry(String.prototype.startsWith);
const _strIncludes = uncurry(String.prototype.includes);
const _reExec = uncurry(RegExp.prototype.exec);
const _RegExp = RegExp;
const _arraySort = uncurry(Array.prototype.sort);
const _arrayJoin = uncurry(Array.prototype.join);
const _dateISO = uncurry(Date.prototype.toISOString);
const _dateTime = uncurry(Date.prototype.getTime);
const _numberValueOf = uncurry(Number.prototype.valueOf);
const _stringValueOf = uncurry(String.prototype.valueOf);
const _booleanValueOf = uncurry(Boolean.prototype.valueOf);
const _bigintValueOf = uncurry(BigInt.prototype.valueOf);
const _bigintToString = uncurry(BigInt.prototype.toString);
const _typedArrayLength = uncurry(_getOwnDesc(_getPrototypeOf(Uint8Array.prototype), 'length').get);
const _funcToString = uncurry(Function.prototype.toString);
const _symbolToString = uncurry(Symbol.prototype.toString);
const _JSONParse = JSON.parse;
const _Buffer = Buffer;
const _bufferFrom = Buffer.from;
const _bufferAlloc = Buffer.alloc;
const _bufferConcat = Buffer.concat;
const _isBuffer = Buffer.isBuffer;
const _bufIndexOf = uncurry(Buffer.prototype.indexOf);
const _bufSubarray = uncurry(Uint8Array.prototype.subarray);
const _bufUtf8 = uncurry(Buffer.prototype.utf8Slice);
const _bufBase64 = uncurry(Buffer.prototype.base64Slice);
const _types = util.types;
const _isMap = _types.isMap, _isSet = _types.isSet, _isDate = _types.isDate;
const _isTypedArray = _types.isTypedArray, _isAnyArrayBuffer = _types.isAnyArrayBuffer;
const _isPromise = _types.isPromise, _isNativeError = _types.isNativeError;
const _isBigInt64Array = _types.isBigInt64Array, _isBigUint64Array = _types.isBigUint64Array;
const _isNumberObject = _types.isNumberObject, _isStringObject = _types.isStringObject;
const _isBooleanObject = _types.isBooleanObject, _isBigIntObject = _types.isBigIntObject;
const _isDataView = _types.isDataView;
const _inspect = util.inspect;
const _promiseThen = uncurry(Promise.prototype.then);
const _fsReadSync = fs.readSync, _fsWriteSync = fs.writeSync, _fsCloseSync = fs.closeSync;
const _fsOpenSync = fs.openSync, _fsFstatSync = fs.fstatSync, _fsLstatSync = fs.lstatSync;
const _fsMkdirSync = fs.mkdirSync, _fsReaddirSync = fs.readdirSync, _fsReadlinkSync = fs.readlinkSync;
const _fsRealpathSync = fs.realpathSync;
const _statsIsFile = uncurry(fs.Stats.prototype.isFile);
const _statsIsDirectory = uncurry(fs.Stats.prototype.isDirectory);
const _direntIsDirectory = uncurry(fs.Dirent.prototype.isDirectory);
const _direntIsSymlink = uncurry(fs.Dirent.prototype.isSymbolicLink);
const _direntIsFile = uncurry(fs.Dirent.prototype.isFile);
const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = fs.constants;
const _resolve = pathModule.resolve, _dirname = pathModule.dirname;
const _createRequire = Module.createRequire;
const _Script = vm.Script;
const _runInThisContext = uncurry(vm.Script.prototype.runInThisContext);
const _SyntaxErrorPrototype = SyntaxError.prototype;
const _process = process;
const _processOn = uncurry(process.on);
const _removeListener = uncurry(process.removeListener);
const _processExit = process.exit;
const _reallyExit = process.reallyExit;
const _resourceUsage = process.resourceUsage;
const _hrtime = process.hrtime;
const _cwd = process.cwd;
const _env = process.env;
const _setImmediate = setImmediate;
const _readableFrom = Readable.from;
const _stderrWrite = (text) => { try { writeAll(2, _bufferFrom(text, 'utf8')); } catch (e) { /* stderr gone */ } };
const _sleepCell = new Int32Array(new SharedArrayBuffer(4));
const _atomicsWait = Atomics.wait;
const _globalThis = globalThis;
const _dynamicImport = (specifier) => import(specifier);
const _vmModulesFlag = (process.execArgv || []).some((a) => a === '--experimental-vm-modules')
  || _strIncludes(_String(process.env.NODE_OPTIONS || ''), '--experimental-vm-modules');
const _mainContextLoader = vm.constants ? vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER : undefined;

const SELF = __filename;  // frames of this file are dropped from tracebacks
const RESULT_FD = 4, REQUEST_FD = 3;
const TEXT_LIMIT = 8192;  // characters kept of an error message or traceback line
const DEFAULT_CAPS = {
  __proto__: null,
  maxValueBytes: 1 << 20,         // the value's JSON; over it: null and valueTruncated
  maxReprBytes: 4096,             // valueRepr, in characters
  maxFileBytes: 16 << 20,         // one returned file
  maxTotalFileBytes: 32 << 20,    // all returned files together (before base64)
  maxFiles: 1000,                 // returned files
  maxScanEntries: 100000,         // directory entries looked at for returnFiles
  maxSkippedListed: 100,          // entries of skippedFiles; the rest are counted on stderr
};
const MAX_EVENTS = 5000, MAX_BLOCKED_EVENTS = 100, MAX_VIOLATIONS = 100;
const MAX_WARNINGS = 100, MAX_DEPTH = 100;
const INT_MIN = -(2n ** 63n), INT_MAX = 2n ** 64n - 1n;
const FALLBACK = '"status":"error","exitCode":70,"value":null,"valueRepr":null,"error":'
  + '{"type":"BootstrapError","message":"failed to build the result","traceback":[],"line":null}}\n';

// --- small helpers that touch nothing the program can change ------------------------------
function append(array, item) {  // array.push, without Array.prototype or index setters
  _defineProperty(array, array.length, { value: item, writable: true, enumerable: true, configurable: true });
}

function cap(text, limit) {
  return cleanText(text.length <= limit ? text : _strSlice(text, 0, _Math.max(limit - 1, 0)) + '\u2026');
}

function cleanText(text) {  // lone surrogates as U+FFFD: the server's JSON parser rejects them
  let out = '', start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = _charCode(text, i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < text.length) {
      const d = _charCode(text, i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { i++; continue; }
    }
    out += _strSlice(text, start, i) + '\ufffd';
    start = i + 1;
  }
  return start === 0 ? text : out + _strSlice(text, start);
}

function safeString(value) {
  try {
    if (typeof value === 'symbol') return _symbolToString(value);
    return _String(value);
  } catch (e) {
    return '<String() failed>';
  }
}

/** a/b without path.join (whose code uses Array.prototype.push, which a program may
 * have replaced): `name` is one component or a relative path without "..". */
function joinPath(dir, name) {
  if (_startsWith(name, '/')) return name;
  return dir === '' || dir === '.' ? name : (dir[dir.length - 1] === '/' ? dir + name : dir + '/' + name);
}

/** text.split(separator), without String.prototype.split (a program may replace it). */
function splitOn(text, separator) {
  const parts = [];
  let start = 0;
  for (;;) {
    const cut = _strIndexOf(text, separator, start);
    if (cut < 0) { append(parts, _strSlice(text, start)); return parts; }
    append(parts, _strSlice(text, start, cut));
    start = cut + 1;
  }
}

function splitLines(text) { return splitOn(text, '\n'); }

// --- JSON, ASCII only, by our own encoder -------------------------------------------------
const HEX = '0123456789abcdef';
function hex4(c) {
  return '\\u' + HEX[(c >> 12) & 15] + HEX[(c >> 8) & 15] + HEX[(c >> 4) & 15] + HEX[c & 15];
}

function encodeString(s) {
  let out = '"', start = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = _charCode(s, i);
    if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) continue;
    out += _strSlice(s, start, i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && _charCode(s, i + 1) >= 0xdc00 && _charCode(s, i + 1) <= 0xdfff) {
      out += hex4(c) + hex4(_charCode(s, i + 1));
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd';
    else out += hex4(c);
    start = i + 1;
  }
  return out + _strSlice(s, start) + '"';
}

function numberText(n) {
  return _isFinite(n) ? (n === 0 ? '0' : '' + n) : 'null';
}

/** The JSON text of data we built ourselves: null-prototype records, arrays, strings,
 * numbers, booleans, null (undefined members are left out, as JSON.stringify does). */
function encode(v) {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string': return encodeString(v);
    case 'number': return numberText(v);
    case 'boolean': return v ? 'true' : 'false';
    default: break;
  }
  if (_isArray(v)) {
    const parts = [];
    for (let i = 0; i < v.length; i++) append(parts, encode(v[i]));
    return '[' + _arrayJoin(parts, ',') + ']';
  }
  const parts = [], keys = _keys(v);
  for (let i = 0; i < keys.length; i++) {
    if (v[keys[i]] !== undefined) append(parts, encodeString(keys[i]) + ':' + encode(v[keys[i]]));
  }
  return '{' + _arrayJoin(parts, ',') + '}';
}

// --- the result channel -------------------------------------------------------------------
function sleepMs(ms) {
  _atomicsWait(_sleepCell, 0, 0, ms);
}

function writeAll(fd, buffer) {
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += _fsWriteSync(fd, buffer, offset, buffer.length - offset);
    } catch (e) {
      if (e && e.code === 'EAGAIN') { sleepMs(1); continue; }  // a non-blocking pipe is full
      throw e;
    }
  }
}

let lineHead = '\n{"t":"",';  // every line of a request starts with its token (see _set_token)
let resultOpen = true;

function setToken(object) {
  let token = object !== null && typeof object === 'object' ? object.token : undefined;
  if (typeof token !== 'string' || token.length > 64 || _reExec(/^[A-Za-z0-9]*$/, token) === null) token = '';
  lineHead = '\n{"t":"' + token + '",';
}

function sendLine(body) {  // body: ASCII JSON members and the closing brace, with "\n"
  if (!resultOpen) return;
  try {
    writeAll(RESULT_FD, _bufferFrom(lineHead + body, 'latin1'));
  } catch (e) {
    if (e && (e.code === 'EBADF' || e.code === 'EPIPE')) resultOpen = false;
  }
}

/** Newline-ended requests from fd 3, read synchronously (a blocking read: nothing of the
 * program runs while a session waits for its next run). */
class LineReader {
  constructor(fd) {
    this.fd = fd;
    this.pending = _bufferAlloc(0);
    this.eof = false;
  }

  next() {
    for (;;) {
      const cut = _bufIndexOf(this.pending, 10);
      if (cut >= 0) {
        const line = _bufUtf8(this.pending, 0, cut);
        this.pending = _bufSubarray(this.pending, cut + 1);
        return line;
      }
      if (this.eof) {
        const rest = this.pending.length ? _bufUtf8(this.pending, 0, this.pending.length) : null;
        this.pending = _bufferAlloc(0);
        return rest;
      }
      const chunk = _bufferAlloc(1 << 16);
      let n;
      try {
        n = _fsReadSync(this.fd, chunk, 0, chunk.length, null);
      } catch (e) {
        if (e && e.code === 'EAGAIN') { sleepMs(2); continue; }
        if (e && e.code === 'EINTR') continue;
        n = 0;
      }
      if (n === 0) this.eof = true;
      else this.pending = _bufferConcat([this.pending, _bufSubarray(chunk, 0, n)]);
    }
  }
}

// --- the policy layer ---------------------------------------------------------------------
/* Activity events and violations, as policy.py's docstring describes them. One guard per
 * run that has a policy; the hooks (Module._load, process.binding and process.dlopen, the
 * public fs, net, dgram, dns and child_process functions, process.kill) are installed once
 * and consult the current guard. The kernel is the boundary: a program that sets out to
 * get around this layer can (it can reach node's internals), but not around the kernel. */
let guard = null;       // the current run's guard, or null
let hooksInstalled = false;
let loadDepth = 0;      // inside Module._load: reads of module files are not file events

class PolicyViolation extends _Error {
  constructor(message, what, detail) {
    super(message);
    _defineProperty(this, 'name', { value: 'PolicyViolation', writable: true, configurable: true });
    this.what = what;
    this.detail = detail;
  }
}

/** The strings of a policy entry (a string or an array), ignoring anything else. */
function nameList(value) {
  const out = [];
  if (typeof value === 'string') append(out, value);
  else if (_isArray(value)) for (let i = 0; i < value.length; i++) if (typeof value[i] === 'string' && value[i]) append(out, value[i]);
  return out;
}

function nameSet(value) {
  const names = nameList(value), out = new _Set();
  for (let i = 0; i < names.length; i++) _setAdd(out, names[i]);
  return out;
}

function section(policy, key) {
  const value = policy[key];
  return value !== null && typeof value === 'object' && !_isArray(value) ? value : {};
}

function realPath(p) {
  try {
    return _fsRealpathSync(p);
  } catch (e) {
    try {  // a file about to be created: its directory's real path
      return joinPath(_fsRealpathSync(_dirname(p)), pathModule.basename(p));
    } catch (e2) {
      return p;
    }
  }
}

function makeGuard(policy, cell) {
  const imports = section(policy, 'imports');
  const files = section(policy, 'files');
  const workdir = realPath(typeof policy.workdir === 'string' && policy.workdir ? policy.workdir : _apply(_cwd, _process, []));
  const writeRoots = [workdir, realPath('/tmp'), '/dev/null'];
  const extraWrite = nameList(files.allowWrite), extraRead = nameList(files.allowRead);
  for (let i = 0; i < extraWrite.length; i++) append(writeRoots, realPath(extraWrite[i]));
  const readRoots = [];
  for (let i = 0; i < writeRoots.length; i++) append(readRoots, writeRoots[i]);
  const systemRoots = ['/dev/urandom', '/dev/random', '/dev/zero', '/proc/self', '/etc/localtime',
    '/etc/timezone', '/usr/lib/node_modules', '/usr/share/nodejs', '/usr/local/lib/node_modules',
    _dirname(SELF), _dirname(_dirname(realPath(_process.execPath)))];
  for (let i = 0; i < systemRoots.length; i++) append(readRoots, systemRoots[i]);
  for (let i = 0; i < extraRead.length; i++) append(readRoots, realPath(extraRead[i]));
  return {
    __proto__: null,
    cell,
    deny: nameSet(imports.deny),
    allow: imports.allow === undefined || imports.allow === null ? null : nameSet(imports.allow),
    network: policy.network === true,
    enforceFiles: policy.enforceFiles === true,
    maxEvents: _isInteger(policy.maxEvents) && policy.maxEvents >= 0 ? _Math.min(policy.maxEvents, MAX_EVENTS) : MAX_EVENTS,
    removed: nameList(section(policy, 'builtins').remove),  // an array
    writeRoots, readRoots,
    closed: false,
    t0: now(),
    count: 0, blocked: 0, truncated: false,
    seen: new _Set(),
    violations: [], violationCount: 0,
    savedGlobals: [],
  };
}

function now() {
  const t = _hrtime();
  return t[0] * 1000 + t[1] / 1e6;
}

function emit(g, kind, fields, afterClose) {
  if (g.closed && !afterClose) return;
  if (kind === 'blocked') {
    if (g.blocked >= MAX_BLOCKED_EVENTS) return;
    g.blocked++;
  } else if (g.count >= g.maxEvents) {
    if (g.truncated) return;
    g.truncated = true;
    kind = 'truncated';
    fields = {};
  } else {
    g.count++;
  }
  const event = { __proto__: null, t: _Math.round((now() - g.t0) * 10) / 10, kind };
  const keys = _keys(fields);
  for (let i = 0; i < keys.length; i++) event[keys[i]] = fields[keys[i]];
  sendLine('"event":' + encode(event) + '}\n');
}

function emitOnce(g, key, kind, fields) {
  if (_setHas(g.seen, key)) return;
  _setAdd(g.seen, key);
  emit(g, kind, fields);
}

function violate(g, what, detail, message) {
  emit(g, 'blocked', { __proto__: null, what, detail: cap(detail, 500) });
  g.violationCount++;
  if (g.violations.length < MAX_VIOLATIONS) append(g.violations, { __proto__: null, what, detail, message });
  throw new PolicyViolation(message, what, detail);
}

function moduleName(request) {
  return _startsWith(request, 'node:') ? _strSlice(request, 5) : request;
}

/** Whether the policy lets the program load `name` (a normalized module name): a name
 * covers what is below it ("fs" covers "fs/promises"); deny wins over allow; the program's
 * own files (relative and absolute paths) are not modules the lists name. */
function moduleAllowed(g, name) {
  if (_startsWith(name, '.') || _startsWith(name, '/')) return true;
  const prefixes = [];
  let at = 0;
  for (;;) {
    const cut = _strIndexOf(name, '/', at);
    if (cut < 0) { append(prefixes, name); break; }
    if (cut > 0) append(prefixes, _strSlice(name, 0, cut));
    at = cut + 1;
  }
  for (let i = 0; i < prefixes.length; i++) if (_setHas(g.deny, prefixes[i])) return false;
  if (g.allow === null) return true;
  for (let i = 0; i < prefixes.length; i++) if (_setHas(g.allow, prefixes[i])) return true;
  return false;
}

function checkImport(request) {
  const g = guard;
  if (g === null || g.closed || typeof request !== 'string') return;
  const name = moduleName(request);
  if (!moduleAllowed(g, name)) {
    violate(g, 'import', name, "import of '" + name + "' is blocked by this profile");
  }
  emitOnce(g, 'import\0' + name, 'import', { __proto__: null, module: cap(name, 500) });
}

/** A load by the program: from its own code or files, not from a package it loaded. */
function programParent(parent) {
  if (parent === null || parent === undefined) return true;
  const filename = parent.filename;
  return !(typeof filename === 'string' && _strIncludes(filename, '/node_modules/'));
}

function bindingAllowed(g, name) {
  if (_setHas(g.deny, name)) return false;
  return g.allow === null || _setHas(g.allow, name);
}

function modeFromFlags(flags, fallback) {
  if (typeof flags === 'string') {
    let base = fallback;
    for (let i = 0; i < flags.length; i++) {
      if (_strIncludes('rwax', flags[i])) { base = flags[i]; break; }
    }
    return base + (_strIncludes(flags, '+') ? '+' : '');
  }
  if (typeof flags === 'number') {
    const access = flags & 3;
    if (access === O_RDONLY) return 'r';
    if (access === O_WRONLY) return flags & O_APPEND ? 'a' : (flags & O_EXCL) && (flags & O_CREAT) ? 'x' : 'w';
    return flags & O_APPEND ? 'a+' : (flags & O_EXCL) && (flags & O_CREAT) ? 'x+' : flags & O_TRUNC ? 'w+' : 'r+';
  }
  return fallback;
}

function pathText(p) {
  if (typeof p === 'string') return p;
  try {
    if (_isBuffer(p)) return _bufUtf8(p, 0, p.length);
    if (p !== null && typeof p === 'object' && p.protocol === 'file:') return fileURLToPath(p);
  } catch (e) { /* not a path */ }
  return null;  // an fd, or nothing we can name
}

function under(path, roots) {
  for (let i = 0; i < roots.length; i++) {
    const root = roots[i];
    if (path === root || _startsWith(path, root === '/' ? '/' : root + '/')) return true;
  }
  return false;
}

function fileEvent(p, mode) {
  const g = guard;
  if (g === null || g.closed || loadDepth > 0) return;
  const path = pathText(p);
  if (path === null) return;
  if (_setHas(g.seen, 'file\0' + path + '\0' + mode) && !g.enforceFiles) return;  // reported already
  const real = realPath(_resolve(path));
  const write = mode !== 'r';
  const allowed = under(real, write ? g.writeRoots : g.readRoots);
  emitOnce(g, 'file\0' + path + '\0' + mode, 'file', { __proto__: null, path: cap(path, 1024), mode, allowed });
  if (!allowed && g.enforceFiles) {
    violate(g, 'file', path, "opening '" + path + "' for " + (write ? 'writing' : 'reading') + ' is not allowed by this profile');
  }
}

function optionFlag(options, key, fallback) {
  if (options !== null && typeof options === 'object' && options[key] !== undefined) return modeFromFlags(options[key], fallback);
  return fallback;
}

function networkEvent(operation, address) {
  const g = guard;
  if (g === null || g.closed) return;
  address = cap(safeString(address), 300);
  emitOnce(g, 'net\0' + operation + '\0' + address, 'network', { __proto__: null, operation, address, allowed: g.network });
}

function processEvent(operation, detail) {
  const g = guard;
  if (g === null || g.closed) return;
  emit(g, 'process', { __proto__: null, operation, detail: cap(safeString(detail), 200) });
}

function wrapMethod(object, name, before) {
  const original = object[name];
  if (typeof original !== 'function') return;
  const wrapper = {
    [name](...args) {
      before(args);
      return _apply(original, this, args);
    },
  }[name];
  object[name] = wrapper;
}

function socketAddress(args) {
  let first = args[0];
  if (_isArray(first)) first = first[0];  // net's internal normalized form
  if (first !== null && typeof first === 'object') {
    if (typeof first.path === 'string') return first.path;
    const host = first.host || 'localhost';
    return (_strIncludes(_String(host), ':') ? '[' + host + ']' : host) + ':' + first.port;
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return first;  // a socket path
  const host = typeof args[1] === 'string' ? args[1] : 'localhost';
  return host + ':' + first;
}

function installHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Loaded before the hooks: the bootstrap's own loads are not the program's.
  const net = require('net'), dgram = require('dgram'), dns = require('dns');
  const childProcess = require('child_process');
  const fsp = fs.promises;

  const originalLoad = Module._load;
  Module._load = function _load(request, parent, isMain) {
    if (programParent(parent)) checkImport(request);
    loadDepth++;
    try {
      return _apply(originalLoad, this, [request, parent, isMain]);
    } finally {
      loadDepth--;
    }
  };
  for (const [property, name] of [['binding', 'process.binding'], ['_linkedBinding', 'process.binding'], ['dlopen', 'process.dlopen']]) {
    wrapMethod(_process, property, () => {
      const g = guard;
      if (g !== null && !g.closed && !bindingAllowed(g, name)) violate(g, 'import', name, "import of '" + name + "' is blocked by this profile");
      if (g !== null && !g.closed) emitOnce(g, 'import\0' + name, 'import', { __proto__: null, module: name });
    });
  }

  wrapMethod(fs, 'openSync', (a) => fileEvent(a[0], modeFromFlags(a[1], 'r')));
  wrapMethod(fs, 'open', (a) => fileEvent(a[0], typeof a[1] === 'function' ? 'r' : modeFromFlags(a[1], 'r')));
  wrapMethod(fs, 'readFileSync', (a) => fileEvent(a[0], optionFlag(a[1], 'flag', 'r')));
  wrapMethod(fs, 'readFile', (a) => fileEvent(a[0], optionFlag(a[1], 'flag', 'r')));
  wrapMethod(fs, 'writeFileSync', (a) => fileEvent(a[0], optionFlag(a[2], 'flag', 'w')));
  wrapMethod(fs, 'writeFile', (a) => fileEvent(a[0], optionFlag(a[2], 'flag', 'w')));
  wrapMethod(fs, 'appendFileSync', (a) => fileEvent(a[0], optionFlag(a[2], 'flag', 'a')));
  wrapMethod(fs, 'appendFile', (a) => fileEvent(a[0], optionFlag(a[2], 'flag', 'a')));
  wrapMethod(fs, 'createReadStream', (a) => fileEvent(a[0], optionFlag(a[1], 'flags', 'r')));
  wrapMethod(fs, 'createWriteStream', (a) => fileEvent(a[0], optionFlag(a[1], 'flags', 'w')));
  wrapMethod(fsp, 'open', (a) => fileEvent(a[0], modeFromFlags(a[1], 'r')));
  wrapMethod(fsp, 'readFile', (a) => fileEvent(a[0], optionFlag(a[1], 'flag', 'r')));
  wrapMethod(fsp, 'writeFile', (a) => fileEvent(a[0], optionFlag(a[2], 'flag', 'w')));
  wrapMethod(fsp, 'appendFile', (a) => fileEvent(a[0], optionFlag(a[2], 'flag', 'a')));

  wrapMethod(net.Socket.prototype, 'connect', (a) => networkEvent('connect', socketAddress(a)));
  wrapMethod(net.Server.prototype, 'listen', (a) => networkEvent('bind', socketAddress(a)));
  wrapMethod(dgram.Socket.prototype, 'connect', (a) => networkEvent('connect', (a[1] || 'localhost') + ':' + a[0]));
  wrapMethod(dgram.Socket.prototype, 'bind', (a) => networkEvent('bind', a[0] !== null && typeof a[0] === 'object' ? (a[0].address || '0.0.0.0') + ':' + a[0].port : (typeof a[1] === 'string' ? a[1] : '0.0.0.0') + ':' + a[0]));
  wrapMethod(dgram.Socket.prototype, 'send', (a) => {
    for (let i = 1; i < a.length; i++) {
      if (typeof a[i] === 'number' && typeof a[i + 1] === 'string') return networkEvent('sendto', a[i + 1] + ':' + a[i]);
    }
    return undefined;
  });
  wrapMethod(dns, 'lookup', (a) => networkEvent('getaddrinfo', a[0]));
  if (dns.promises) wrapMethod(dns.promises, 'lookup', (a) => networkEvent('getaddrinfo', a[0]));

  for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
    wrapMethod(childProcess, name, (a) => processEvent('child_process.' + name, _isArray(a[1]) ? [a[0], ...a[1]].join(' ') : a[0]));
  }
  wrapMethod(_process, 'kill', (a) => processEvent('process.kill', a[0] + ' ' + (a[1] === undefined ? 'SIGTERM' : a[1])));
}

/** builtins.remove: each named global becomes a function that raises (and records) a
 * violation; the run's end puts the originals back (a session's next run has its own). */
function removeBuiltins(g) {
  for (let i = 0; i < g.removed.length; i++) {
    const name = g.removed[i];
    const descriptor = _getOwnDesc(_globalThis, name);
    if (descriptor === undefined) continue;
    append(g.savedGlobals, [name, descriptor]);
    const disabled = {
      [name]() {
        violate(g, 'builtin', name, "builtin '" + name + "' is disabled by this profile");
      },
    }[name];
    _defineProperty(_globalThis, name, { value: disabled, writable: true, configurable: true, enumerable: false });
  }
}

function restoreBuiltins(g) {
  for (let i = 0; i < g.savedGlobals.length; i++) {
    _defineProperty(_globalThis, g.savedGlobals[i][0], g.savedGlobals[i][1]);
  }
  g.savedGlobals = [];
}

/** After the run: a recorded violation makes it a policy_violation even when the program
 * caught the error; the final uncaught error is an activity event (policy.py settle). */
function settlePolicy(run) {
  const g = run.guard;
  if (g === null) return;
  g.closed = true;
  restoreBuiltins(g);
  if (run.error !== null) {
    emit(g, 'exception', { __proto__: null, type: cap(run.error.type, 200), message: cap(run.error.message, 500) }, true);
  }
  if (g.violationCount === 0) return;
  if (run.error === null || run.error.type !== 'PolicyViolation') {
    run.error = makeError('PolicyViolation', g.violations[0].message, [], null);
  }
  run.status = 'policy_violation';
  run.exitCode = 1;
}

// --- errors -------------------------------------------------------------------------------
function makeError(type, message, traceback, line) {
  const lines = [];
  for (let i = 0; i < traceback.length && i < 200; i++) append(lines, cap(traceback[i], TEXT_LIMIT));
  return { __proto__: null, type: cap(type, 200), message: cap(message, TEXT_LIMIT), traceback: lines, line };
}

function isErrorObject(e) {
  if (e === null || (typeof e !== 'object' && typeof e !== 'function')) return false;
  try {
    return _isNativeError(e) || e instanceof _Error;
  } catch (x) {
    return false;
  }
}

function errorType(e) {
  if (!isErrorObject(e)) return e === null ? 'null' : typeof e;
  try {
    const own = _getOwnDesc(e, 'name');
    if (own !== undefined && typeof own.value === 'string' && own.value) return own.value;
    const ctor = e.constructor;
    if (typeof ctor === 'function' && typeof ctor.name === 'string' && ctor.name) return ctor.name;
    if (typeof e.name === 'string' && e.name) return e.name;
  } catch (x) { /* a hostile getter */ }
  return 'Error';
}

function stackOf(e) {
  try {
    const stack = isErrorObject(e) ? e.stack : undefined;
    return typeof stack === 'string' ? stack : null;
  } catch (x) {
    return null;
  }
}

/** The stack as lines, without the frames of this file; node's vm module's first frame
 * (runInThisContext, or new Script for a syntax error) and all below it are the
 * bootstrap's own callers, and go too. */
function tracebackLines(stack) {
  const out = [];
  const lines = splitLines(stack);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (_strIncludes(line, '(node:vm:') || _strIncludes(line, 'at node:vm:')) break;
    if (_strIncludes(line, SELF)) continue;
    append(out, line);
  }
  while (out.length && out[out.length - 1] === '') out.length--;
  return out;
}

function digitsAt(text, at) {
  let end = at;
  while (end < text.length && _charCode(text, end) >= 48 && _charCode(text, end) <= 57) end++;
  return end > at ? _Number(_strSlice(text, at, end)) : null;
}

/** 1-based line in the program's code: V8's position of a syntax error (the stack's first
 * line, "<cell>:N"), else the first stack frame in the program's file. */
function userLine(lines, cell, compileError) {
  if (compileError) {
    if (lines.length && _startsWith(lines[0], cell + ':')) return digitsAt(lines[0], cell.length + 1);
    return null;
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!_startsWith(line, '    at ')) continue;
    const at = _strIndexOf(line, cell + ':');
    if (at < 0) continue;
    const before = _charCode(line, at - 1);
    if (before === 40 || before === 32) return digitsAt(line, at + cell.length + 1);  // "(" or " "
  }
  return null;
}

function messageOf(e) {
  if (!isErrorObject(e)) {
    try {
      return typeof e === 'object' && e !== null ? _inspect(e) : safeString(e);
    } catch (x) {
      return safeString(e);
    }
  }
  try {
    const message = e.message;
    return typeof message === 'string' ? message : safeString(message);
  } catch (x) {
    return '<message failed>';
  }
}

/** An uncaught error as the report's error, printed on stderr as node prints it. */
function describeError(e, cell, compileError) {
  const stack = stackOf(e);
  const type = errorType(e);
  const message = messageOf(e);
  const lines = stack === null ? [] : tracebackLines(stack);
  if (lines.length) _stderrWrite(_arrayJoin(lines, '\n') + '\n');
  else _stderrWrite('Uncaught ' + type + ': ' + message + '\n');
  return makeError(type, message, lines, userLine(lines, cell, compileError));
}

// --- the value as plain JSON --------------------------------------------------------------
const TOO_BIG = { __proto__: null };

class ValueEncoder {
  constructor(limit) {
    this.left = limit;
    this.open = new _Set();
    this.path = [];
    this.warnings = [];
  }

  spend(n) {
    this.left -= n;
    if (this.left < 0) throw TOO_BIG;
  }

  warn(reason) {
    if (this.warnings.length < MAX_WARNINGS) {
      append(this.warnings, { __proto__: null, path: cap(pathString(this.path), 512), reason: cap(reason, 256) });
    }
  }

  /** Member `step` of a container: its JSON, or null with a warning when reading or
   * converting it failed (a getter that throws). Too big stays too big. */
  item(step, read, depth) {
    append(this.path, step);
    try {
      return this.value(read(), depth);
    } catch (e) {
      if (e === TOO_BIG) throw e;
      this.warn('reading it raised ' + errorType(e) + ', so it is null');
      this.spend(4);
      return 'null';
    } finally {
      this.path.length--;
    }
  }

  none(reason) {
    this.warn(reason);
    this.spend(4);
    return 'null';
  }

  value(x, depth) {
    switch (typeof x) {
      case 'string': this.spend(x.length + 2); return encodeString(x);
      case 'number':
        if (!_isFinite(x)) return this.none(safeString(x) + ' is not a JSON number, so it is null');
        this.spend(24);
        return numberText(x);
      case 'boolean': this.spend(5); return x ? 'true' : 'false';
      case 'undefined': this.spend(4); return 'null';
      case 'bigint': {
        const digits = _bigintToString(x);
        this.spend(digits.length + 12);
        return x >= INT_MIN && x <= INT_MAX ? digits : '{"$int":"' + digits + '"}';
      }
      case 'symbol': return this.none('a symbol has no JSON form, so it is null');
      case 'function': return this.none('a function has no JSON form, so it is null');
      default: break;
    }
    if (x === null) { this.spend(4); return 'null'; }
    if (depth > MAX_DEPTH) return this.none('nested too deeply, so it is null');
    if (_setHas(this.open, x)) return this.none('circular reference, so it is null');
    _setAdd(this.open, x);
    try {
      return this.object(x, depth);
    } finally {
      _setDelete(this.open, x);
    }
  }

  object(x, depth) {
    if (_isArray(x)) {
      this.spend(2);
      const parts = [];
      const n = x.length;
      for (let i = 0; i < n; i++) {
        this.spend(1);
        append(parts, this.item(i, () => x[i], depth + 1));
      }
      return '[' + _arrayJoin(parts, ',') + ']';
    }
    if (_isBuffer(x)) {
      this.spend(((x.length + 2) / 3 | 0) * 4 + 2);
      return '"' + _bufBase64(x, 0, x.length) + '"';
    }
    if (_isAnyArrayBuffer(x)) {
      const bytes = _bufferFrom(x);
      this.spend(((bytes.length + 2) / 3 | 0) * 4 + 2);
      return '"' + _bufBase64(bytes, 0, bytes.length) + '"';
    }
    if (_isTypedArray(x)) {
      const n = _typedArrayLength(x);
      this.spend(2 + n);
      const parts = [];
      for (let i = 0; i < n; i++) append(parts, this.item(i, () => x[i], depth + 1));
      return '[' + _arrayJoin(parts, ',') + ']';
    }
    if (_isDate(x)) {
      if (!_isFinite(_dateTime(x))) return this.none('an invalid Date, so it is null');
      return this.value(_dateISO(x), depth);
    }
    if (_isNumberObject(x)) return this.value(_numberValueOf(x), depth);
    if (_isStringObject(x)) return this.value(_stringValueOf(x), depth);
    if (_isBooleanObject(x)) return this.value(_booleanValueOf(x), depth);
    if (_isBigIntObject(x)) return this.value(_bigintValueOf(x), depth);
    if (_isMap(x)) return this.map(x, depth);
    if (_isSet(x)) {
      this.spend(2);
      const parts = [], it = _setValues(x);
      for (let i = 0; ; i++) {
        const step = _setIterNext(it);
        if (step.done) break;
        this.spend(1);
        append(parts, this.item(i, () => step.value, depth + 1));
      }
      return '[' + _arrayJoin(parts, ',') + ']';
    }
    if (_isPromise(x)) return this.none('a Promise has no JSON form, so it is null');
    if (_isDataView(x)) return this.none('a DataView has no JSON form, so it is null');
    return this.record(x, _keys(x), depth);
  }

  /** A Map: an object when every key is a string, else an array of [key, value] pairs. */
  map(x, depth) {
    const entries = [], it = _mapEntries(x);
    let stringKeys = true;
    for (;;) {
      const step = _mapIterNext(it);
      if (step.done) break;
      append(entries, step.value);
      if (typeof step.value[0] !== 'string') stringKeys = false;
      this.spend(2);
    }
    this.spend(2);
    const parts = [];
    for (let i = 0; i < entries.length; i++) {
      const key = entries[i][0], item = entries[i][1];
      if (stringKeys) {
        this.spend(key.length + 3);
        append(parts, encodeString(key) + ':' + this.item(key, () => item, depth + 1));
      } else {
        append(this.path, i);
        try {
          append(parts, '[' + this.item(0, () => key, depth + 2) + ',' + this.item(1, () => item, depth + 2) + ']');
        } finally {
          this.path.length--;
        }
      }
    }
    return stringKeys ? '{' + _arrayJoin(parts, ',') + '}' : '[' + _arrayJoin(parts, ',') + ']';
  }

  /** Any other object: its own enumerable string-keyed properties, as JSON.stringify
   * takes them (a toJSON method is not called); undefined members are left out. */
  record(x, keys, depth) {
    this.spend(2);
    const parts = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      let item;
      try {
        item = x[key];
      } catch (e) {
        append(this.path, key);
        this.warn('reading it raised ' + errorType(e) + ', so it is null');
        this.path.length--;
        item = null;
      }
      if (item === undefined) continue;
      this.spend(key.length + 3);
      append(parts, encodeString(key) + ':' + this.item(key, () => item, depth + 1));
    }
    return '{' + _arrayJoin(parts, ',') + '}';
  }
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
function pathString(path) {
  let out = '$';
  for (let i = 0; i < path.length; i++) {
    const step = path[i];
    if (typeof step === 'number') out += '[' + step + ']';
    else if (_reExec(IDENTIFIER, step) !== null) out += '.' + step;
    else out += '[' + encodeString(step) + ']';
  }
  return out;
}

/** (JSON text or null, repr, truncated, warnings) of the run's value (values.py). */
function describeValue(value, maxValue, maxRepr) {
  let json = null, truncated = false, warnings = [];
  const encoder = new ValueEncoder(maxValue);
  try {
    json = encoder.value(value, 0);
    warnings = encoder.warnings;
    if (json.length > maxValue) { json = null; truncated = true; warnings = []; }
  } catch (e) {
    if (e === TOO_BIG) truncated = true;
    else warnings = [{ __proto__: null, path: '$', reason: cap('converting it raised ' + errorType(e) + ', so value is null', 256) }];
    json = null;
  }
  let repr;
  try {
    repr = _inspect(value, { depth: 6, maxArrayLength: 200, maxStringLength: maxRepr });
    repr = typeof repr === 'string' ? cap(repr, maxRepr) : '<inspect failed>';
  } catch (e) {  // util.inspect relies on what the program may have replaced
    repr = json !== null ? cap(json, maxRepr) : '<inspect failed: ' + errorType(e) + '>';
  }
  return [json, repr, truncated, warnings];
}

// --- files in and out (files.py) ----------------------------------------------------------
class FileError extends _Error {}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function checkFile(rel, spec) {
  if (typeof rel !== 'string' || _startsWith(rel, '/') || _strIncludes(rel, '\0')) {
    throw new FileError('invalid file path: ' + encodeString(safeString(rel)));
  }
  const parts = pathParts(rel);
  if (!parts.length || hasDotDot(parts)) {
    throw new FileError('file path must stay inside the working directory: ' + encodeString(rel));
  }
  const keys = spec !== null && typeof spec === 'object' ? _keys(spec) : [];
  if (keys.length === 1 && typeof spec.text === 'string') return [parts, _bufferFrom(spec.text, 'utf8')];
  if (keys.length === 1 && typeof spec.base64 === 'string') {
    if (_reExec(BASE64, spec.base64) === null) throw new FileError(rel + ': bad content: invalid base64');
    return [parts, _bufferFrom(spec.base64, 'base64')];
  }
  throw new FileError(rel + ': content must be {"text": str} or {"base64": str}');
}

/** The components of a relative path, without empty ones and ".". */
function pathParts(text) {
  const all = splitPath(text), parts = [];
  for (let i = 0; i < all.length; i++) if (all[i] !== '' && all[i] !== '.') append(parts, all[i]);
  return parts;
}

function hasDotDot(parts) {
  for (let i = 0; i < parts.length; i++) if (parts[i] === '..') return true;
  return false;
}

function splitPath(text) { return splitOn(text, '/'); }

/** The request's files, into the working directory. Each directory on the way is checked
 * to be a directory (not a symlink) and the file is opened with O_NOFOLLOW: a symlink a
 * session's earlier run left is refused, never followed. Node has no openat(), so a path
 * swapped between the check and the open is not caught; nothing of the program runs then. */
function writeFiles(files) {
  if (files === null || files === undefined) return;
  if (typeof files !== 'object' || _isArray(files)) throw new FileError('files must be an object');
  const todo = [], names = _keys(files);
  for (let i = 0; i < names.length; i++) append(todo, [names[i], checkFile(names[i], files[names[i]])]);
  for (let n = 0; n < todo.length; n++) {  // only once all entries proved valid
    const rel = todo[n][0], parts = todo[n][1][0], data = todo[n][1][1];
    let where = '.';
    try {
      for (let i = 0; i < parts.length - 1; i++) {
        where = joinPath(where, parts[i]);
        try {
          _fsMkdirSync(where, 0o755);
        } catch (e) {
          if (!e || e.code !== 'EEXIST') throw e;
        }
        if (!_statsIsDirectory(_fsLstatSync(where))) {
          throw new FileError(rel + ': path goes through a symlink or non-directory');
        }
      }
      const fd = _fsOpenSync(joinPath(where, parts[parts.length - 1]), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o644);
      try {
        writeAll(fd, data);
      } finally {
        _fsCloseSync(fd);
      }
    } catch (e) {
      if (e instanceof FileError) throw e;
      const symlink = e && (e.code === 'ELOOP' || e.code === 'ENOTDIR');
      throw new FileError(rel + ': ' + (symlink ? 'path goes through a symlink or non-directory' : safeString(e && e.message)));
    }
  }
}

const ANY_DEPTH = '**';

/** A glob segment (* ? [...] [!...]) as a RegExp over one name. */
function segmentRegExp(segment) {
  let out = '^';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const close = _strIndexOf(segment, ']', i + 2);
      if (close < 0) { out += '\\['; continue; }
      let body = _strSlice(segment, i + 1, close);
      const negate = body[0] === '!';
      if (negate) body = _strSlice(body, 1);
      let cls = '';
      for (let j = 0; j < body.length; j++) cls += body[j] === '\\' || body[j] === ']' || body[j] === '^' ? '\\' + body[j] : body[j];
      out += '[' + (negate ? '^' : '') + cls + ']';
      i = close;
    } else if (_strIncludes('\\^$.|+(){}', c)) out += '\\' + c;
    else out += c;
  }
  return new _RegExp(out + '$', 's');
}

function compileGlobs(patterns) {
  if (patterns === null || patterns === undefined) return [];
  if (!_isArray(patterns) || patterns.length > 100) throw new FileError('returnFiles must be an array of at most 100 glob strings');
  const compiled = [];
  for (let n = 0; n < patterns.length; n++) {
    const pattern = patterns[n];
    if (typeof pattern !== 'string' || !pattern || _strIncludes(pattern, '\0') || _startsWith(pattern, '/')) {
      throw new FileError('returnFiles: invalid pattern ' + encodeString(safeString(pattern)) + ' (a relative glob)');
    }
    const segments = pathParts(pattern);
    if (hasDotDot(segments)) throw new FileError('returnFiles: pattern must stay inside the working directory: ' + encodeString(pattern));
    if (!segments.length) continue;
    const glob = [];
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i];
      append(glob, s === ANY_DEPTH || _reExec(/[*?[]/, s) === null ? s : { __proto__: null, re: segmentRegExp(s), dotted: _startsWith(s, '.') });
    }
    append(compiled, glob);
  }
  return compiled;
}

// A glob matching state is a pair [glob index, segment index]; a list of states holds no
// pair twice.
function addState(out, seen, g, i) {
  const key = g * 4096 + i;
  if (seen[key] === true) return false;
  seen[key] = true;
  append(out, [g, i]);
  return true;
}

/** Adds the states reached by letting each "**" match no directory at all. */
function closure(globs, states) {
  const out = [], seen = _create(null);
  for (let n = 0; n < states.length; n++) addState(out, seen, states[n][0], states[n][1]);
  for (let n = 0; n < out.length; n++) {  // out grows while it is walked
    const g = out[n][0], i = out[n][1];
    if (i < globs[g].length && globs[g][i] === ANY_DEPTH) addState(out, seen, g, i + 1);
  }
  return out;
}

/** The states after matching one more path component. */
function step(globs, states, name) {
  const out = [];
  const hidden = _startsWith(name, '.');
  for (let n = 0; n < states.length; n++) {
    const g = states[n][0], i = states[n][1];
    if (i >= globs[g].length) continue;
    const segment = globs[g][i];
    if (segment === ANY_DEPTH) {
      if (!hidden) append(out, [g, i]);
    } else if (typeof segment === 'string') {
      if (segment === name) append(out, [g, i + 1]);
    } else if ((segment.dotted || !hidden) && _reExec(segment.re, name) !== null) {
      append(out, [g, i + 1]);
    }
  }
  return closure(globs, out);
}

class FileCollector {
  constructor(globs, root, caps) {
    this.globs = globs;
    this.root = root;
    this.caps = caps;
    this.files = [];
    this.skipped = [];
    this.unlisted = 0;
    this.total = 0;
    this.scanned = 0;
    this.scanStopped = false;
    this.realRoot = realPath(root);
  }

  skip(path, reason) {
    if (this.skipped.length < this.caps.maxSkippedListed) append(this.skipped, { __proto__: null, path: cleanText(path), reason });
    else this.unlisted++;
  }

  run() {
    const start = [];
    for (let g = 0; g < this.globs.length; g++) append(start, [g, 0]);
    this.walk(this.root, '', closure(this.globs, start), 0);
    if (this.scanStopped) _stderrWrite('pycell: returnFiles stopped looking after ' + this.scanned + ' directory entries\n');
    if (this.unlisted) _stderrWrite('pycell: returnFiles skipped ' + this.unlisted + ' more file(s) than skippedFiles lists\n');
  }

  complete(after) {
    for (let n = 0; n < after.length; n++) if (after[n][1] === this.globs[after[n][0]].length) return true;
    return false;
  }

  walk(dir, prefix, states, depth) {
    let entries;
    try {
      entries = _arraySort(_fsReaddirSync(dir, { withFileTypes: true }), (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (e) {
      this.skip(prefix || '.', 'cannot list the directory: ' + safeString(e && e.code));
      return;
    }
    for (let n = 0; n < entries.length; n++) {
      const entry = entries[n];
      if (this.scanned >= this.caps.maxScanEntries) { this.scanStopped = true; return; }
      this.scanned++;
      const name = entry.name;
      const after = step(this.globs, states, name);
      if (!after.length) continue;
      const path = prefix + name;
      if (_direntIsSymlink(entry)) {
        if (this.complete(after)) this.skip(path, 'symbolic link');
        continue;
      }
      if (_direntIsDirectory(entry)) {
        let more = false;
        for (let k = 0; k < after.length; k++) if (after[k][1] < this.globs[after[k][0]].length) more = true;
        if (depth < 64 && more) this.walk(joinPath(dir, name), path + '/', after, depth + 1);
        continue;
      }
      if (this.complete(after)) this.read(joinPath(dir, name), path, _direntIsFile(entry));
    }
  }

  read(full, path, regular) {
    if (this.files.length >= this.caps.maxFiles) { this.skip(path, 'more than ' + this.caps.maxFiles + ' files'); return; }
    if (!regular) { this.skip(path, 'not a regular file'); return; }
    let fd;
    try {
      fd = _fsOpenSync(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    } catch (e) {
      this.skip(path, e && e.code === 'ELOOP' ? 'symbolic link' : 'cannot open: ' + safeString(e && e.code));
      return;
    }
    try {
      const st = _fsFstatSync(fd);
      if (!_statsIsFile(st)) { this.skip(path, 'not a regular file'); return; }
      if (st.nlink > 1) { this.skip(path, 'hard link (' + st.nlink + ' names)'); return; }
      if (st.nlink === 0) { this.skip(path, 'removed while being read'); return; }
      let where = null;
      try { where = _fsReadlinkSync('/proc/self/fd/' + fd); } catch (e) { /* no /proc: not checked */ }
      if (where !== null && !_startsWith(where, (this.realRoot === '/' ? '' : this.realRoot) + '/')) {
        this.skip(path, 'outside the working directory');
        return;
      }
      const limit = _Math.min(this.caps.maxFileBytes, this.caps.maxTotalFileBytes - this.total);
      if (st.size > this.caps.maxFileBytes) { this.skip(path, 'larger than ' + this.caps.maxFileBytes + ' bytes'); return; }
      if (st.size > limit) { this.skip(path, 'returned files would exceed ' + this.caps.maxTotalFileBytes + ' bytes in total'); return; }
      const chunks = [];
      let size = 0;
      while (size <= limit) {
        const chunk = _bufferAlloc(_Math.min(1 << 20, limit + 1 - size));
        const n = _fsReadSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        append(chunks, _bufSubarray(chunk, 0, n));
        size += n;
      }
      if (size > limit) { this.skip(path, 'larger than ' + limit + ' bytes'); return; }
      this.total += size;
      append(this.files, [path, size, _bufferConcat(chunks, size)]);
    } catch (e) {
      this.skip(path, 'cannot read: ' + safeString(e && e.code));
    } finally {
      _fsCloseSync(fd);
    }
  }
}

function collectFiles(globs, root, caps) {
  if (!globs.length) return [[], []];
  const collector = new FileCollector(globs, root, caps);
  try {
    collector.run();
  } catch (e) {
    _stderrWrite('pycell: returnFiles: cannot read the working directory: ' + safeString(e && e.message) + '\n');
  }
  return [collector.files, collector.skipped];
}

// --- one run ------------------------------------------------------------------------------
let session = false;
let reader = null;
let current = null;  // the run in progress
let runs = 0;

function newRun(cell) {
  return {
    __proto__: null,
    cell,
    request: null,
    caps: { __proto__: null, ...DEFAULT_CAPS },
    status: 'ok', exitCode: 0, error: null,
    hasValue: false, value: undefined, pending: false,
    guard: null, root: null, globs: [], savedEnv: [],
    started: false, finished: false, exiting: false,
  };
}

function capSetting(request, name) {
  const value = request[name];
  return _isInteger(value) && value >= 0 ? value : DEFAULT_CAPS[name];
}

function bootstrapError(run, message) {
  _stderrWrite('pycell bootstrap: ' + message + '\n');
  run.status = 'error';
  run.exitCode = 70;
  run.error = makeError('BootstrapError', message, [], null);
}

function applyEnv(run, env) {
  if (env === null || typeof env !== 'object') return;
  const names = _keys(env);
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const value = env[name];
    if (typeof value !== 'string' || !name || _strIncludes(name, '=')) continue;
    append(run.savedEnv, [name, _getOwnDesc(_env, name) === undefined ? undefined : _env[name]]);
    _env[name] = value;
  }
}

function restoreEnv(run) {
  for (let i = run.savedEnv.length - 1; i >= 0; i--) {
    const name = run.savedEnv[i][0], value = run.savedEnv[i][1];
    if (value === undefined) delete _env[name];
    else _env[name] = value;
  }
  run.savedEnv = [];
}

const _requires = new Map();
const _mapGet = uncurry(Map.prototype.get), _mapSet = uncurry(Map.prototype.set);

/** The program's require for a path, made once: node's createRequire uses methods a
 * session's earlier run may have replaced (Array.prototype.push). */
function requireFor(file) {
  let made = _mapGet(_requires, file);
  if (made === undefined) {
    made = _createRequire(file);
    _mapSet(_requires, file, made);
  }
  return made;
}

/** The program's globals: inputs, require (checked by the policy's Module._load hook),
 * and __filename/__dirname when the request names the program's file. */
function setGlobals(run, request) {
  const root = run.root;
  const named = typeof request.filename === 'string' && request.filename !== '';
  const file = named ? _resolve(root, request.filename) : (root === '/' ? '/' : root + '/');
  const define = (name, value) => _defineProperty(_globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  define('inputs', request.inputs === undefined ? null : request.inputs);
  run.require = requireFor(file);
  define('require', run.require);
  if (named) {
    define('__filename', file);
    define('__dirname', _dirname(file));
  }
}

/** import() from the program: checked like require, then node's own loader (paths
 * resolved from the program's directory). */
function importDynamically(run) {
  return (specifier) => {
    const name = moduleName(specifier);
    checkImport(specifier);
    let target = specifier;
    if (_startsWith(name, '.') || _startsWith(name, '/')) {
      target = pathToFileURL(_resolve(run.root, specifier)).href;
    } else if (!_strIncludes(specifier, ':') && !Module.isBuiltin(name)) {
      try { target = pathToFileURL(run.require.resolve(specifier)).href; } catch (e) { /* node reports it */ }
    }
    return _dynamicImport(target);
  };
}

function scriptOptions(run, wrapped) {
  const options = { filename: run.cell };
  if (wrapped) options.columnOffset = -ASYNC_HEAD.length;
  if (_vmModulesFlag) options.importModuleDynamically = importDynamically(run);
  else if (_mainContextLoader !== undefined && run.guard === null) options.importModuleDynamically = _mainContextLoader;
  return options;
}

const ASYNC_HEAD = '(async () => {';

/** The program compiled: as a script (its completion value is the value), or, when only
 * top-level await keeps it from compiling, wrapped in an async function. The wrapper loses
 * what a script keeps: the completion value (its `return` value, else a global `result`,
 * is the value) and, in a session, its top-level let/const/function declarations. */
function compile(run, code) {
  try {
    return [new _Script(code, scriptOptions(run, false)), false];
  } catch (e) {
    if (!isSyntaxError(e) || !awaitAtError(e, run.cell, code)) throw e;
    try {
      return [new _Script(ASYNC_HEAD + code + '\n})()', scriptOptions(run, true)), true];
    } catch (e2) {
      throw e;  // the script's own syntax error
    }
  }
}

/** V8's own SyntaxError (not `instanceof`, which a session's program could redefine). */
function isSyntaxError(e) {
  return _isNativeError(e) && _getPrototypeOf(e) === _SyntaxErrorPrototype;
}

/** Whether the line V8 puts a syntax error on holds `await`: V8's messages for a
 * top-level await vary ("await is only valid...", "Unexpected reserved word",
 * "Unexpected identifier"), its line does not. */
function awaitAtError(e, cell, code) {
  const stack = stackOf(e);
  if (stack === null || !_startsWith(stack, cell + ':')) return false;
  const line = digitsAt(stack, cell.length + 1);
  const lines = splitLines(code);
  return line !== null && line >= 1 && line <= lines.length && _reExec(/(^|[^\w$])await([^\w$]|$)/, lines[line - 1]) !== null;
}

function globalResult() {
  try {
    return _runInThisContext(new _Script('typeof result === "undefined" ? undefined : result', { filename: '<pycell-result>' }));
  } catch (e) {
    return undefined;
  }
}

function isThenable(value) {
  if (_isPromise(value)) return true;
  try {
    return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
  } catch (e) {
    return false;
  }
}

function setValue(run, value) {
  if (value === undefined) value = globalResult();
  if (value !== undefined) {
    run.hasValue = true;
    run.value = value;
  }
}

/** A promise value is awaited: the run reports once it settled (and the loop is empty). */
function awaitValue(run, value) {
  run.pending = true;
  const resolved = (v) => {
    if (current !== run || !run.pending) return;
    run.pending = false;
    setValue(run, v);
  };
  const rejected = (e) => {
    if (current !== run || !run.pending) return;
    run.pending = false;
    failRun(run, e);
  };
  try {
    if (_isPromise(value)) _promiseThen(value, resolved, rejected);
    else value.then(resolved, rejected);
  } catch (e) {
    rejected(e);
  }
}

function failRun(run, e) {
  if (run.error !== null) return;
  run.status = 'error';
  run.exitCode = 1;
  run.error = describeError(e, run.cell, false);
}

/** Starts one request (its JSON text): files written, policy armed, the code run. The
 * run reports when the event loop has nothing left (onBeforeExit), or sooner on an
 * uncaught error, process.exit or an interrupt. */
function startRun(line, cell) {
  const run = newRun(cell);
  current = run;
  _setImmediate(() => {});  // the loop turns at least once more, so onBeforeExit comes
  try {
    prepareRun(run, line);
  } catch (e) {
    // What node does for us failed (a session's earlier run broke what it relies on).
    if (run.guard !== null && guard === run.guard) guard = null;
    bootstrapError(run, 'cannot start the run: ' + messageOf(e));
  }
}

function prepareRun(run, line) {
  let request;
  try {
    if (line === null) throw new _Error('no request arrived');
    request = _JSONParse(line);
    if (request === null || typeof request !== 'object' || typeof request.code !== 'string') {
      throw new _Error("request must be an object with a string 'code'");
    }
  } catch (e) {
    setToken(null);
    bootstrapError(run, 'cannot read the request: ' + messageOf(e));
    return;
  }
  setToken(request);
  run.request = request;
  const capNames = _keys(DEFAULT_CAPS);
  for (let i = 0; i < capNames.length; i++) run.caps[capNames[i]] = capSetting(request, capNames[i]);
  if (typeof request.filename === 'string' && request.filename) run.cell = request.filename;
  run.root = _apply(_cwd, _process, []);
  try {
    run.globs = compileGlobs(request.returnFiles);
    writeFiles(request.files);
  } catch (e) {
    if (!(e instanceof FileError)) throw e;
    _stderrWrite('FileError: ' + e.message + '\n');
    run.status = 'error';
    run.exitCode = 1;
    run.error = makeError('FileError', e.message, [], null);
    return;
  }
  setGlobals(run, request);
  if (request.policy !== null && request.policy !== undefined) {
    try {
      run.guard = makeGuard(typeof request.policy === 'object' ? request.policy : {}, run.cell);
      removeBuiltins(run.guard);
      guard = run.guard;
    } catch (e) {
      bootstrapError(run, "cannot apply the profile's policy: " + messageOf(e));
      return;
    }
  }
  applyEnv(run, request.env);
  if (session && typeof request.stdin === 'string') sessionStdin(request.stdin);
  if (run.status === 'ok') execute(run, request.code);
}

/** A session's run reads its request's stdin from process.stdin. (fs.readFileSync(0) and
 * /dev/stdin still read the process's own fd 0: node cannot put another file there.) */
function sessionStdin(text) {
  try {
    const stream = _readableFrom([_bufferFrom(text, 'utf8')], { objectMode: false });
    _defineProperty(_process, 'stdin', { value: stream, configurable: true, writable: true, enumerable: true });
  } catch (e) {  // node's streams rely on what an earlier run may have replaced
    _stderrWrite('pycell: process.stdin not set for this run: ' + messageOf(e) + '\n');
  }
}

function execute(run, code) {
  let script, wrapped;
  try {
    const compiled = compile(run, code);
    script = compiled[0];
    wrapped = compiled[1];
  } catch (e) {
    run.status = 'error';
    run.exitCode = 1;
    run.error = describeError(e, run.cell, isSyntaxError(e));
    return;
  }
  run.started = true;
  // The program's code starts now; the server interrupts a session's run only after it.
  sendLine('"started":true}\n');
  let value;
  try {
    value = _runInThisContext(script, { breakOnSigint: true, displayErrors: false });
  } catch (e) {
    if (current !== run || run.finished) return;  // process.exit() reported it already
    if (e !== null && typeof e === 'object' && e.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED' && !(e instanceof PolicyViolation)) {
      interrupt(run);
      return;
    }
    failRun(run, e);
    return;
  }
  if (isThenable(value)) awaitValue(run, value);
  else if (!wrapped) setValue(run, value);
}

function interrupt(run) {
  sendLine('"stopped":true}\n');
  run.status = 'error';
  run.exitCode = 1;
  run.pending = false;
  _stderrWrite('KeyboardInterrupt\n');
  run.error = makeError('KeyboardInterrupt', 'the run was interrupted (SIGINT)', [], null);
}

function usage() {
  let u;
  try {
    u = _apply(_resourceUsage, _process, []);
  } catch (e) {
    return { __proto__: null, cpuUserMs: 0, cpuSysMs: 0, maxRssKb: 0 };
  }
  return { __proto__: null, cpuUserMs: _Math.floor(u.userCPUTime / 1000), cpuSysMs: _Math.floor(u.systemCPUTime / 1000), maxRssKb: u.maxRSS };
}

let reporting = false;  // the value is being converted (the program's getters may run)

function exitWhileReporting() {
  throw new _Error('process.exit() while the value was being reported');
}

/** The report's line (after the head): status, exitCode, value, valueRepr, error, usage,
 * displays, files, and when set valueTruncated, valueWarnings, skippedFiles. */
function reportBody(run) {
  let value = null, repr = null, truncated = false, warnings = [];
  if (run.error === null && run.hasValue) {
    // The value's getters and inspect hooks are the program's code: an exit from them
    // becomes an error of that item, not an exit without a report.
    const exit = _getOwnDesc(_process, 'exit');
    _defineProperty(_process, 'exit', { value: exitWhileReporting, writable: true, configurable: true });
    reporting = true;
    try {
      const described = describeValue(run.value, run.caps.maxValueBytes, run.caps.maxReprBytes);
      value = described[0];
      repr = described[1];
      truncated = described[2];
      warnings = described[3];
    } finally {
      reporting = false;
      if (exit !== undefined) _defineProperty(_process, 'exit', exit);
    }
  }
  run.value = undefined;
  let files = [], skipped = [];
  if (run.root !== null && run.globs.length) {
    try {
      const collected = collectFiles(run.globs, run.root, run.caps);
      files = collected[0];
      skipped = collected[1];
    } catch (e) {
      _stderrWrite('pycell: returnFiles not collected: ' + errorType(e) + '\n');
    }
  }
  let body = '"status":' + encodeString(run.status) + ',"exitCode":' + run.exitCode
    + ',"value":' + (value === null ? 'null' : value) + ',"valueRepr":' + (repr === null ? 'null' : encodeString(repr))
    + ',"error":' + encode(run.error) + ',"usage":' + encode(usage());
  if (truncated) body += ',"valueTruncated":true';
  if (warnings.length) body += ',"valueWarnings":' + encode(warnings);
  if (run.request !== null && run.request.returnFiles !== undefined && run.request.returnFiles !== null) {
    body += ',"skippedFiles":' + encode(skipped);
  }
  body += ',"displays":[],"files":[';
  for (let i = 0; i < files.length; i++) {
    const path = files[i][0], size = files[i][1], data = files[i][2];
    body += (i ? ',' : '') + '{"path":' + encodeString(path) + ',"size":' + size + ',"base64":"' + _bufBase64(data, 0, data.length) + '"}';
  }
  return body + ']}\n';
}

/** Ends the current run: the policy settled, its environment restored, its report sent.
 * A single run closes our ends of the program's stdio first (the server then has all the
 * output when the report arrives). */
function finishRun(run) {
  if (run.finished) return;
  run.finished = true;
  if (current === run) current = null;
  let body;
  try {
    restoreEnv(run);
    if (guard === run.guard) guard = null;
    settlePolicy(run);
    body = reportBody(run);
  } catch (e) {
    _stderrWrite('pycell bootstrap: cannot build the report: ' + messageOf(e) + '\n' + (stackOf(e) || '') + '\n');
    run.exitCode = 70;
    body = FALLBACK;
  }
  if (!session && run.exiting) {
    // Only when our 'exit' listener is the last one: after a process.exit() from the
    // program, its own later listeners may still print (the process ends right after).
    for (let fd = 0; fd <= 2; fd++) {
      try { _fsCloseSync(fd); } catch (e) { /* already closed */ }
    }
  }
  sendLine(body);
}

// --- how runs end -------------------------------------------------------------------------
/** The event loop has nothing left to do: the current run is over. */
function onBeforeExit() {
  const run = current;
  if (run === null) return;
  if (run.pending) {
    run.pending = false;
    run.status = 'error';
    run.exitCode = 13;  // node's exit code for a top-level await that never settles
    run.error = makeError('Error', 'the program\'s promise never settled (nothing was left to run)', [], null);
    _stderrWrite('Warning: the program\'s promise never settled\n');
  }
  if (!run.error && run.started) {
    let code = 0;
    try {
      code = _process.exitCode;
    } catch (e) { /* a program's getter */ }
    if (typeof code === 'number' && code !== 0) exitResult(run, code, null);
  }
  endRun(run);
}

/** SystemExit as bootstrap.py reports it: exit code 0 is ok, else an error. */
function exitResult(run, code, stack) {
  const rc = (_isInteger(code) ? code : _Number(code) | 0) & 0xff;
  if (rc === 0) {
    run.status = 'ok';
    run.exitCode = 0;
    return;
  }
  run.status = 'error';
  run.exitCode = rc;
  const lines = stack === null ? [] : tracebackLines(stack);
  run.error = makeError('SystemExit', '' + rc, [], userLine(lines, run.cell, false));
}

/** Ends `run`: a single run's process exits (through process.exit, so the program's
 * 'exit' listeners run first, then ours reports); a session reads its next request. */
function endRun(run) {
  if (!session) {
    run.exiting = true;
    _removeListener(_process, 'exit', onExit);  // ours last: the program's listeners print first
    _processOn(_process, 'exit', onExit);
    _apply(_processExit, _process, [run.exitCode]);
    return;
  }
  finishRun(run);
  nextRequest();
}

function onExit(code) {
  const run = current;
  if (run === null || run.finished) return;
  if (!run.exiting && run.error === null) {
    // process.exit() from the program (or an 'exit' after the loop ran dry).
    let stack = null;
    try {
      stack = new _Error().stack;  // a program's Error.prepareStackTrace runs here
    } catch (e) { /* no line then */ }
    exitResult(run, code, typeof stack === 'string' ? stack : null);
  }
  finishRun(run);
  try {
    _process.exitCode = run.exitCode;  // what process.exit() passes on to reallyExit
  } catch (e) { /* a program's setter */ }
}

function onUncaught(e) {
  const run = current;
  if (run === null || run.finished) {
    _stderrWrite('pycell: an error after the run ended: ' + messageOf(e) + '\n');
    return;
  }
  run.pending = false;
  failRun(run, e);
  endRun(run);
}

function onSigint() {
  const run = current;
  if (run === null || run.finished || !run.started) return;
  interrupt(run);
  endRun(run);
}

/** A session's next request: read now (blocking), run; EOF on fd 3 ends the session. */
function nextRequest() {
  let line;
  try {
    line = reader.next();
  } catch (e) {
    line = null;
  }
  if (line === null) {
    resultOpen = false;
    _apply(_reallyExit, _process, [0]);
    return;
  }
  runs++;
  const cell = '<pycell-' + runs + '>';
  // Started on the loop's next turn: a SIGINT that came while we waited for this request
  // is handled first, with no run current, and ignored (as session.py ignores it).
  _setImmediate(() => startRun(line, cell));
}

// On Linux, node queues what a program writes to a pipe in memory once the pipe is full,
// and the program goes on: one that prints in a loop would grow without bound and never
// reach its output limit. Blocking writes make it wait for the server to read, as a Python
// program does. (A terminal or a file is synchronous already.)
function blockingStdio() {
  for (const name of ['stdout', 'stderr']) {
    try {
      const handle = _process[name]._handle;
      if (handle && typeof handle.setBlocking === 'function') handle.setBlocking(true);
    } catch (e) { /* no such stream: nothing to make blocking */ }
  }
}

function main() {
  blockingStdio();
  installHooks();  // now, while nothing of a program has touched what they use
  _processOn(_process, 'beforeExit', onBeforeExit);
  _processOn(_process, 'exit', onExit);
  _processOn(_process, 'uncaughtException', onUncaught);
  _processOn(_process, 'SIGINT', onSigint);
  // process.reallyExit skips 'exit': the program's run still reports first.
  _process.reallyExit = function reallyExit(code) {
    if (reporting) exitWhileReporting();
    const run = current;
    if (run !== null && !run.finished) onExit(code === undefined ? 0 : code);
    return _apply(_reallyExit, _process, [code === undefined ? _process.exitCode || 0 : code]);
  };
  try {
    writeAll(RESULT_FD, _bufferFrom('R\n', 'latin1'));  // loaded: a pool may hand us a request
  } catch (e) {
    resultOpen = false;  // no result channel: still run the program
  }
  reader = new LineReader(REQUEST_FD);
  let line;
  try {
    line = reader.next();
  } catch (e) {
    line = null;
  }
  if (line !== null && _startsWith(line, '{"session"')) {
    beginSession(line);
    return;
  }
  try { _fsCloseSync(REQUEST_FD); } catch (e) { /* not open */ }
  startRun(line, '<pycell>');
}

function beginSession(line) {
  session = true;
  try {
    const header = _JSONParse(line).session;
    setToken(header);
  } catch (e) {
    _stderrWrite('pycell bootstrap: cannot start the session: ' + messageOf(e) + '\n');
    _apply(_reallyExit, _process, [70]);
    return;
  }
  sendLine('"ready":true}\n');
  nextRequest();
}

main();
