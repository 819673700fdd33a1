'use strict';
/*
 * pycell analyze for JavaScript: static checks of a Node.js program against a profile's
 * policy, as LSP diagnostics in exactly the shape analyze.py returns.
 *
 * Sent as the code of an execution in a JavaScript sandbox, without the policy layer: this
 * file's text followed by the line `_analyzeMain(inputs)`, whose value (the last
 * expression) is the diagnostics array; inputs = {"code": ..., "policy": {...}}. Standard
 * library only (node's vm, through the `require` the bootstrap gives the program), Node
 * 18+. Embedded in the C++ binary as a raw string literal, so it must never contain that
 * literal's closing delimiter.
 *
 * Each diagnostic: {"range": {"start": {"line", "character"}, "end": {...}}, "severity":
 * 1 (error) | 2 (warning), "code", "source": "pycell", "message"}. Lines are 0-based and
 * split at \n, \r\n and \r; characters are UTF-16 code units (a JS string's own units).
 * Sorted by position, duplicates dropped. Its top-level names are `var`s and functions, so
 * that a session may run it more than once.
 *
 * Findings (`code`):
 *   syntax-error      what V8's parser rejects, at its position (node's vm.Script compiles
 *                     the program without running it; code that only compiles with
 *                     top-level await is compiled as the bootstrap runs it, in an async
 *                     function). One error: V8 stops at the first.
 *   forbidden-import  require('x'), import ... from 'x', import 'x', export ... from 'x',
 *                     import('x') (string literals, or templates without substitutions)
 *                     of modules the policy forbids, checked as the bootstrap checks them
 *                     ("node:fs" is "fs"; a name covers what is below it, so deny "fs"
 *                     covers "fs/promises"; deny wins over allow; relative and absolute
 *                     paths are the program's own files); and process.binding,
 *                     process._linkedBinding, process.dlopen calls, which count as the
 *                     modules "process.binding" and "process.dlopen". The range is the
 *                     module name (inside the quotes), or the called name.
 *   blocked-builtin   a call of a global the policy removes (builtins.remove), ranged on
 *                     the name; a use that is not a call is a warning. Names the program
 *                     declares itself (function eval() {}, const fetch = ...) are left
 *                     alone.
 *   dynamic-code      eval(...), new Function(...), Function(...) when not removed: a
 *                     warning (code built at run time, which no static check sees).
 * The tokenizer skips strings, template literals, comments and regular expression
 * literals well enough for these checks (a regex is told from a division by the token
 * before it); it is not a parser.
 */

function _analyzeLineStarts(code) {
  const starts = [0];
  for (let i = 0; i < code.length; i++) {
    const c = code.charCodeAt(i);
    if (c === 13) {
      if (code.charCodeAt(i + 1) === 10) i++;
      starts.push(i + 1);
    } else if (c === 10) {
      starts.push(i + 1);
    }
  }
  return starts;
}

/** The program's text, and LSP positions of its offsets. */
var _AnalyzeSource = class _AnalyzeSource {
  constructor(code) {
    this.code = code;
    this.starts = _analyzeLineStarts(code);
  }

  lineText(line) {
    if (line < 0 || line >= this.starts.length) return '';
    const start = this.starts[line];
    let end = line + 1 < this.starts.length ? this.starts[line + 1] : this.code.length;
    while (end > start && (this.code[end - 1] === '\n' || this.code[end - 1] === '\r')) end--;
    return this.code.slice(start, end);
  }

  position(offset) {
    let lo = 0, hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid; else hi = mid - 1;
    }
    return { line: lo, character: Math.min(offset - this.starts[lo], this.lineText(lo).length) };
  }

  range(start, end) {
    return { start: this.position(start), end: this.position(Math.max(end, start)) };
  }

  /** A range from a 0-based line and character (V8's syntax error position). */
  lineRange(line, character, length) {
    if (line >= this.starts.length) {
      line = this.starts.length - 1;
      character = this.lineText(line).length;
    }
    const text = this.lineText(Math.max(line, 0));
    const start = Math.max(0, Math.min(character, text.length));
    const end = Math.min(start + Math.max(length, 1), text.length);
    return { start: { line: Math.max(line, 0), character: start }, end: { line: Math.max(line, 0), character: Math.max(end, start) } };
  }
};

function _analyzeDiagnostic(range, severity, code, message) {
  return { range, severity, code, source: 'pycell', message };
}

// --- tokens -------------------------------------------------------------------------------
// {type: "name" | "string" | "template" | "punct" | "number" | "regex", value, start, end}
// ("template": a whole template literal without substitutions; one with substitutions
// gives "template-part" tokens around the tokens of its expressions).
var _ANALYZE_REGEX_AFTER = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete',
  'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);
var _ANALYZE_PUNCT3 = new Set(['...', '===', '!==', '**=', '<<=', '>>=', '>>>', '&&=', '||=', '??=']);
var _ANALYZE_PUNCT2 = new Set(['=>', '==', '!=', '<=', '>=', '&&', '||', '??', '?.', '++', '--',
  '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '<<', '>>', '**']);

function _analyzeIsNameChar(c, first) {
  if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 36 || c === 95 || c >= 128) return true;
  return !first && c >= 48 && c <= 57;
}

function _analyzeUnescape(raw) {
  return raw.replace(/\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)/gs, (all, e) => {
    if (e[0] === 'u' && e[1] === '{') return String.fromCodePoint(parseInt(e.slice(2, -1), 16));
    if (e[0] === 'u' || e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    return { n: '\n', t: '\t', r: '\r', 0: '\0' }[e] || e;
  });
}

function _analyzeTokenize(code) {
  const tokens = [];
  const templates = [];  // brace depths at which a template's ${ ... } closes
  let depth = 0;
  let i = 0;
  const n = code.length;
  if (code.startsWith('#!')) while (i < n && code[i] !== '\n' && code[i] !== '\r') i++;
  const last = () => tokens[tokens.length - 1];
  const regexAllowed = () => {
    const t = last();
    if (t === undefined) return true;
    if (t.type === 'punct') return t.value !== ')' && t.value !== ']' && t.value !== '}';
    if (t.type === 'name') return _ANALYZE_REGEX_AFTER.has(t.value);
    return t.type === 'template-part' && t.open;
  };
  // Scans template text from i (after ` or }); returns when the template ends or a ${ opens.
  const templateText = (begin, whole) => {
    let j = i;
    while (j < n && code[j] !== '`') {
      if (code[j] === '\\') { j += 2; continue; }
      if (code[j] === '$' && code[j + 1] === '{') {
        tokens.push({ type: 'template-part', value: null, start: begin, end: j + 2, open: true });
        templates.push(depth);
        depth++;
        i = j + 2;
        return;
      }
      j++;
    }
    const raw = code.slice(i, j);
    if (whole) tokens.push({ type: 'template', value: _analyzeUnescape(raw), start: begin, end: Math.min(j + 1, n) });
    else tokens.push({ type: 'template-part', value: null, start: begin, end: Math.min(j + 1, n), open: false });
    i = j + 1;
  };
  while (i < n) {
    const c = code.charCodeAt(i);
    const ch = code[i];
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12 || c === 0xa0 || c === 0xfeff || c === 0x2028 || c === 0x2029) { i++; continue; }
    if (ch === '/' && code[i + 1] === '/') {
      while (i < n && code[i] !== '\n' && code[i] !== '\r') i++;
      continue;
    }
    if (ch === '/' && code[i + 1] === '*') {
      const end = code.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
      continue;
    }
    const start = i;
    if (ch === '"' || ch === "'") {
      let j = i + 1;
      while (j < n && code[j] !== ch && code[j] !== '\n' && code[j] !== '\r') j += code[j] === '\\' ? 2 : 1;
      tokens.push({ type: 'string', value: _analyzeUnescape(code.slice(i + 1, Math.min(j, n))), start, end: Math.min(j + 1, n) });
      i = j + 1;
      continue;
    }
    if (ch === '`') {
      i++;
      templateText(start, true);
      continue;
    }
    if (ch === '}' && templates.length && templates[templates.length - 1] === depth - 1) {
      templates.pop();
      depth--;
      i++;
      templateText(start, false);
      continue;
    }
    if (_analyzeIsNameChar(c, true) || ch === '#') {
      let j = i + 1;
      while (j < n && _analyzeIsNameChar(code.charCodeAt(j), false)) j++;
      tokens.push({ type: 'name', value: code.slice(i, j), start, end: j });
      i = j;
      continue;
    }
    if ((c >= 48 && c <= 57) || (ch === '.' && code.charCodeAt(i + 1) >= 48 && code.charCodeAt(i + 1) <= 57)) {
      let j = i + 1;
      while (j < n && /[0-9A-Za-z_.]/.test(code[j])) j++;
      tokens.push({ type: 'number', value: code.slice(i, j), start, end: j });
      i = j;
      continue;
    }
    if (ch === '/' && regexAllowed()) {
      let j = i + 1, inClass = false;
      while (j < n && code[j] !== '\n' && code[j] !== '\r') {
        if (code[j] === '\\') { j += 2; continue; }
        if (code[j] === '[') inClass = true;
        else if (code[j] === ']') inClass = false;
        else if (code[j] === '/' && !inClass) break;
        j++;
      }
      if (j < n && code[j] === '/') {
        j++;
        while (j < n && _analyzeIsNameChar(code.charCodeAt(j), false)) j++;
        tokens.push({ type: 'regex', value: code.slice(i, j), start, end: j });
        i = j;
        continue;
      }
    }
    const three = code.slice(i, i + 3), two = code.slice(i, i + 2);
    let value = ch;
    if (_ANALYZE_PUNCT3.has(three)) value = three;
    else if (_ANALYZE_PUNCT2.has(two) && !(two === '?.' && /[0-9]/.test(code[i + 2] || ''))) value = two;
    if (value === '{' || value === '${') depth++;
    else if (value === '}') depth = Math.max(0, depth - 1);
    tokens.push({ type: 'punct', value, start, end: i + value.length });
    i += value.length;
  }
  return tokens;
}

// --- the policy's rules (the bootstrap's, see bootstrap.js moduleAllowed) ------------------
function _analyzeNames(value) {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((v) => typeof v === 'string' && v) : [];
}

function _analyzeSection(policy, key) {
  const value = policy[key];
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
}

var _AnalyzeRules = class _AnalyzeRules {
  constructor(policy) {
    policy = policy !== null && typeof policy === 'object' ? policy : {};
    const imports = _analyzeSection(policy, 'imports');
    this.deny = new Set(_analyzeNames(imports.deny));
    this.allow = imports.allow === undefined || imports.allow === null ? null : new Set(_analyzeNames(imports.allow));
    this.userModules = new Set(_analyzeNames(policy.userModules));
    this.removed = new Set(_analyzeNames(_analyzeSection(policy, 'builtins').remove));
  }

  /** Whether `request` (as written in the program) may be loaded; its normalized name. */
  moduleAllowed(request) {
    const name = request.startsWith('node:') ? request.slice(5) : request;
    if (name.startsWith('.') || name.startsWith('/')) return [true, name];
    const parts = name.split('/');
    const prefixes = [];
    for (let k = 1; k <= parts.length; k++) if (parts[k - 1] !== '') prefixes.push(parts.slice(0, k).join('/'));
    if (prefixes.some((p) => this.deny.has(p))) return [false, name];
    if (this.allow === null || prefixes.some((p) => this.allow.has(p)) || this.userModules.has(prefixes[0])) return [true, name];
    return [false, name];
  }

  bindingAllowed(name) {
    if (this.deny.has(name)) return false;
    return this.allow === null || this.allow.has(name);
  }
};

// --- the checks ---------------------------------------------------------------------------
var _Analyzer = class _Analyzer {
  constructor(code, policy) {
    this.src = new _AnalyzeSource(code);
    this.rules = new _AnalyzeRules(policy);
    this.out = [];
  }

  run() {
    this.checkSyntax();
    let tokens;
    try {
      tokens = _analyzeTokenize(this.src.code);
    } catch (e) {
      tokens = [];
    }
    this.checkTokens(tokens);
    return this.finish();
  }

  /** V8's own parser: the program compiled as the bootstrap compiles it, never run. */
  checkSyntax() {
    const vm = require('vm');
    const code = this.src.code;
    const compile = (text, offset) => {
      try {
        new vm.Script(text, { filename: '<pycell>', columnOffset: offset });
        return null;
      } catch (e) {
        return e;
      }
    };
    let error = compile(code, 0);
    // As the bootstrap does: when V8's error is on a line with `await`, the program runs
    // in an async function (whose own error, if any, is the one past the await).
    if (error !== null && this.awaitAtError(error)) {
      const head = '(async () => {';
      const wrapped = compile(head + code + '\n})()', -head.length);
      if (wrapped === null) return;
      error = wrapped;
    }
    if (error === null) return;
    const where = this.syntaxPosition(error);
    this.out.push(_analyzeDiagnostic(this.src.lineRange(where.line, where.character, where.length), 1,
      'syntax-error', String(error.message || error)));
  }

  awaitAtError(error) {
    const where = this.syntaxPosition(error);
    return /(^|[^\w$])await([^\w$]|$)/.test(this.src.lineText(where.line));
  }

  /** V8 puts a syntax error's place in the stack node decorates: "<pycell>:LINE", the
   * source line, then spaces (tabs kept) up to the column and carets under the error. */
  syntaxPosition(error) {
    const stack = typeof error.stack === 'string' ? error.stack.split('\n') : [];
    const head = /^<pycell>:(\d+)$/.exec(stack[0] || '');
    if (head === null) return { line: 0, character: 0, length: 1 };
    const line = Number(head[1]) - 1;
    const arrow = /^([ \t]*)(\^+)/.exec(stack[2] || '');
    if (arrow === null) return { line, character: 0, length: 1 };
    return { line, character: arrow[1].length, length: arrow[2].length };
  }

  forbidden(token, request) {
    const [allowed, name] = this.rules.moduleAllowed(request);
    if (allowed) return;
    const quoted = token.type === 'string' || token.type === 'template';
    this.out.push(_analyzeDiagnostic(this.src.range(token.start + (quoted ? 1 : 0), token.end - (quoted ? 1 : 0)), 1,
      'forbidden-import', `import of '${name}' is blocked by this profile`));
  }

  checkTokens(tokens) {
    const literal = (t) => t !== undefined && (t.type === 'string' || t.type === 'template');
    const isPunct = (t, v) => t !== undefined && t.type === 'punct' && t.value === v;
    const isName = (t, v) => t !== undefined && t.type === 'name' && t.value === v;
    const member = (k) => isPunct(tokens[k - 1], '.') || isPunct(tokens[k - 1], '?.');
    const declared = new Set();
    for (let k = 0; k + 1 < tokens.length; k++) {
      const t = tokens[k];
      if (t.type === 'name' && ['function', 'class', 'const', 'let', 'var'].includes(t.value) && tokens[k + 1].type === 'name') {
        declared.add(tokens[k + 1].value);
      }
    }
    for (let k = 0; k < tokens.length; k++) {
      const t = tokens[k];
      if (t.type !== 'name' || member(k)) continue;
      const next = tokens[k + 1];
      if (t.value === 'require' && isPunct(next, '(') && literal(tokens[k + 2])) {
        this.forbidden(tokens[k + 2], tokens[k + 2].value);
      } else if (t.value === 'import' && isPunct(next, '(')) {
        if (literal(tokens[k + 2])) this.forbidden(tokens[k + 2], tokens[k + 2].value);
      } else if ((t.value === 'import' || t.value === 'export') && !isPunct(next, '.')) {
        this.staticImport(tokens, k);
      } else if (t.value === 'process' && isPunct(next, '.') && tokens[k + 2] && isPunct(tokens[k + 3], '(')) {
        const property = tokens[k + 2].value;
        const name = { binding: 'process.binding', _linkedBinding: 'process.binding', dlopen: 'process.dlopen' }[property];
        if (name !== undefined && !this.rules.bindingAllowed(name)) {
          this.out.push(_analyzeDiagnostic(this.src.range(t.start, tokens[k + 2].end), 1, 'forbidden-import',
            `import of '${name}' is blocked by this profile`));
        }
      } else {
        this.checkBuiltin(tokens, k, declared);
      }
    }
  }

  /** import ... from 'x', import 'x', export ... from 'x': the string after `from` (or
   * right after import), before the statement ends. */
  staticImport(tokens, k) {
    const next = tokens[k + 1];
    if (tokens[k].value === 'import' && next !== undefined && (next.type === 'string')) {
      this.forbidden(next, next.value);
      return;
    }
    for (let j = k + 1; j < tokens.length && j < k + 400; j++) {
      const t = tokens[j];
      if (t.type === 'punct' && (t.value === ';' || t.value === '=' || t.value === '(')) return;
      if (t.type === 'name' && t.value === 'from' && tokens[j + 1] !== undefined && tokens[j + 1].type === 'string') {
        this.forbidden(tokens[j + 1], tokens[j + 1].value);
        return;
      }
    }
  }

  checkBuiltin(tokens, k, declared) {
    const t = tokens[k];
    const called = tokens[k + 1] !== undefined && tokens[k + 1].type === 'punct' && tokens[k + 1].value === '(';
    const after = tokens[k - 1];
    const isNew = after !== undefined && after.type === 'name' && after.value === 'new';
    const defining = after !== undefined && after.type === 'name' && ['function', 'class', 'const', 'let', 'var'].includes(after.value);
    if (defining || declared.has(t.value)) return;
    const key = tokens[k + 1] !== undefined && tokens[k + 1].type === 'punct' && tokens[k + 1].value === ':';
    if (this.rules.removed.has(t.value) && !key) {
      if (called || isNew) {
        this.out.push(_analyzeDiagnostic(this.src.range(t.start, t.end), 1, 'blocked-builtin',
          `builtin '${t.value}' is disabled by this profile`));
      } else {
        this.out.push(_analyzeDiagnostic(this.src.range(t.start, t.end), 2, 'blocked-builtin',
          `builtin '${t.value}' is disabled by this profile; calling it will fail`));
      }
      return;
    }
    if ((t.value === 'eval' || t.value === 'Function') && called) {
      const start = isNew && t.value === 'Function' ? after.start : t.start;
      const what = t.value === 'eval' ? 'eval' : isNew ? 'new Function' : 'Function';
      this.out.push(_analyzeDiagnostic(this.src.range(start, t.end), 2, 'dynamic-code',
        `${what} runs code made at run time, which this analysis cannot check`));
    }
  }

  finish() {
    const seen = new Set();
    const rows = [];
    for (const d of this.out) {
      const r = d.range;
      const key = [r.start.line, r.start.character, r.end.line, r.end.character, d.code, d.message];
      const text = JSON.stringify(key);
      if (seen.has(text)) continue;
      seen.add(text);
      rows.push([key, d]);
    }
    const compare = (a, b) => {
      for (let i = 0; i < a.length; i++) {
        if (a[i] < b[i]) return -1;
        if (a[i] > b[i]) return 1;
      }
      return 0;
    };
    rows.sort((a, b) => compare(a[0], b[0]));
    return rows.map((row) => row[1]);
  }
};

/** Diagnostics for `code` under `policy` (see the comment at the top). */
function _analyze(code, policy) {
  if (typeof code !== 'string') throw new TypeError('code must be a string');
  return new _Analyzer(code, policy || {}).run();
}

/** The entry point of an analysis execution: inputs = {"code", "policy"}. */
function _analyzeMain(inputs) {
  inputs = inputs !== null && typeof inputs === 'object' ? inputs : {};
  return _analyze(typeof inputs.code === 'string' ? inputs.code : '', inputs.policy || {});
}
