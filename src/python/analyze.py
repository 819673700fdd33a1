"""pycell analyze: static checks of a program against a profile's policy, as LSP diagnostics.

Standard library only, CPython 3.9+, self-contained (it does not import policy.py), so
that its source can be sent as the code of an execution. Its parts, in the order their
text comes before this file's in that code (ANALYZE_PARTS): analyze_source.py (the
program's lines, LSP positions and ranges, diagnostics) and analyze_syntax.py (syntax
errors and warnings, with recovery); this file has the policy's rules, the checks of the
tree against them, and the entry points. Each is embedded in the C++ binary as a raw
string literal, so none may contain that literal's closing delimiter.

    analyze(code: str, policy: dict) -> list of diagnostics

Each diagnostic has LSP's shape: {"range": {"start": {"line", "character"}, "end": {...}},
"severity": 1 (error) | 2 (warning), "code", "source": "pycell", "message"}. Lines are
0-based and split at \\n, \\r\\n and \\r, as both Python and LSP split them; characters
are UTF-16 code units (an emoji counts two), converted from Python's column offsets
(UTF-8 bytes for ast nodes and compiler errors, characters for parser errors).
Diagnostics are sorted by position; all findings are reported.

Findings (`code`):
  syntax-error      what the parser or the compiler rejects ('return' outside function
                    included), at the exact position. The rest of the program is still
                    checked: the lines before the error are parsed on their own, and so
                    is the program again from the next line that starts a statement at
                    column 0 (best effort), so "import socket\\nx = (\\n" reports both
                    the forbidden import and the unclosed bracket.
  syntax-warning    SyntaxWarning/DeprecationWarning from compiling (severity 2).
  forbidden-import  `import x`, `from x import y`, `__import__('x')`,
                    `importlib.import_module('x')` (string literals) of modules the
                    policy's imports section forbids; the range is the module name.
  blocked-builtin   a call of a builtin the policy removes (builtins.remove, plus "open"
                    when policy["files"] is false), ranged on the name; a reference that
                    is not a call (map(eval, ...)) is a warning. Names the program binds
                    itself (def open(...)) are left alone.
  blocked-call      calls that start processes, load native code or use the network:
                    subprocess.*, os.system, os.popen, os.exec*, os.spawn*,
                    os.posix_spawn*, os.fork, os.forkpty, os.kill, os.killpg, pty.spawn,
                    multiprocessing.*, ctypes.*, and socket.* when policy["network"] is
                    not true; through any alias (import subprocess as sp, from os import
                    system). Severity 1 when the module's import is forbidden, else 2.

Policy keys read (the same as policy.py's): imports {deny, allow} (a name covers its
submodules; with both, deny wins; __future__ is always allowed), builtins {remove},
files (false: file access off), network (bool). userModules (a list of top-level names)
marks the program's own modules, which an allow list then does not flag.

Use as an execution: the server sends the parts' text, then this file's, followed by
ANALYZE_ENTRY ("_analyze_main(inputs)") as the code, with inputs = {"code": ..., "policy": {...}}; the
diagnostics list is the execution's value (the last expression). Such an execution must
run without policy.py's guard: analysis compiles code and imports ast, re, warnings.
Equivalently: exec(source + ANALYZE_ENTRY) in a namespace holding `inputs`, where source
is the parts' text and this file's, joined by newlines. Loaded from its file (as a module,
or as a script: `python3 analyze.py < request.json` prints the diagnostics as JSON), this
file runs its parts from beside itself into its own globals first.
"""
import ast
import sys

ANALYZE_ENTRY = "\n_analyze_main(inputs)\n"
ANALYZE_PARTS = ("analyze_source", "analyze_syntax")  # their text comes before this file's

if "_Source" not in globals():  # loaded from its file, not sent after its parts' text
    def _run_parts():
        import os
        here, doc = os.path.dirname(os.path.abspath(__file__)), __doc__
        for part in ANALYZE_PARTS:
            path = os.path.join(here, part + ".py")
            with open(path, encoding="utf-8") as f:
                exec(compile(f.read(), path, "exec", dont_inherit=True), globals())
        globals()["__doc__"] = doc  # each part's docstring was set as the module's
    _run_parts()
    del _run_parts

_PROCESS_CALLS = frozenset(["os.system", "os.popen", "os.fork", "os.forkpty", "os.kill",
                            "os.killpg", "pty.spawn", "posix.system"])
_PROCESS_PREFIXES = ("os.exec", "os.spawn", "os.posix_spawn", "posix.exec", "posix.spawn",
                     "posix.posix_spawn")
_PROCESS_MODULES = frozenset(["subprocess", "_posixsubprocess", "multiprocessing"])
_NATIVE_MODULES = frozenset(["ctypes", "_ctypes"])
_NETWORK_MODULES = frozenset(["socket", "_socket"])
_IMPORTERS = frozenset(["builtins.__import__", "importlib.import_module",
                        "importlib.__import__"])


def _names(value):
    if isinstance(value, str):
        return [value]
    return [v for v in (value or ()) if isinstance(v, str) and v]


def _section(policy, key):
    value = policy.get(key)
    return value if isinstance(value, dict) else {}


def _prefixes(name):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


class _Rules:
    """The parts of a policy that analysis checks."""

    def __init__(self, policy):
        policy = policy if isinstance(policy, dict) else {}
        imports = _section(policy, "imports")
        self.deny = frozenset(_names(imports.get("deny")))
        allow = imports.get("allow")
        self.allow = None if allow is None else frozenset(_names(allow))
        self.user_modules = frozenset(_names(policy.get("userModules")))
        self.removed = set(_names(_section(policy, "builtins").get("remove")))
        if policy.get("files") is False:
            self.removed.add("open")
        self.network = bool(policy.get("network", False))
        self._cache = {}

    def allowed(self, name):
        found = self._cache.get(name)
        if found is None:
            prefixes = _prefixes(name)
            found = not any(p in self.deny for p in prefixes)
            if found and self.allow is not None and prefixes[0] != "__future__":
                found = (any(p in self.allow for p in prefixes)
                         or prefixes[0] in self.user_modules)
            self._cache[name] = found
        return found

    def forbidden(self, module, fromlist=()):
        """The module names (module itself, or module.item) the policy forbids."""
        if self.allowed(module):
            return [module + "." + item for item in fromlist
                    if item != "*" and not self.allowed(module + "." + item)]
        if fromlist and "*" not in fromlist and all(self.allowed(module + "." + i) for i in fromlist):
            return []
        return [module]


class _Analyzer(_SyntaxChecks):
    def __init__(self, code, policy):
        self.code = code
        self.src = _Source(code)
        self.rules = _Rules(policy)
        self.out = []
        self.parses = 0

    # --- policy ------------------------------------------------------------------------
    def forbidden_import(self, rng, name):
        self.out.append(_diagnostic(rng, 1, "forbidden-import",
                                    "import of %r is blocked by this profile" % name))

    def module_name_range(self, node, dotted, start):
        """Range of `dotted` in statement `node`, searched from `start` (line, char)."""
        found = self.src.search(start, (getattr(node, "end_lineno", None) or node.lineno) - 1,
                                _name_pattern(dotted))
        if found is None:
            return self.src.node_range(node), start
        return self.src.range(*found), found[1]

    def check_import(self, node):
        cursor = self.src.node_start(node)
        cursor = (cursor[0], cursor[1] + len("import"))
        for alias in node.names:
            bad = self.rules.forbidden(alias.name)
            if getattr(alias, "lineno", None) is not None:
                start = self.src.node_start(alias)
                rng = self.src.range(start, self.src.node_end(alias))
                found = self.src.search(start, start[0], _name_pattern(alias.name))
                if found is not None and found[0] == start:
                    rng = self.src.range(*found)
            else:  # 3.9: aliases have no position
                rng, cursor = self.module_name_range(node, alias.name, cursor)
            for name in bad:
                self.forbidden_import(rng, name)

    def check_import_from(self, node):
        if node.level or not node.module:
            return  # relative: the program's own package
        names = [a.name for a in node.names]
        bad = self.rules.forbidden(node.module, names)
        if not bad:
            return
        start = self.src.node_start(node)
        module_rng, after = self.module_name_range(node, node.module, (start[0], start[1] + len("from")))
        for name in bad:
            rng = module_rng
            if name != node.module:  # module.item: point at the item
                item = name[len(node.module) + 1:]
                alias = next((a for a in node.names if a.name == item), None)
                if alias is not None and getattr(alias, "lineno", None) is not None:
                    begin = self.src.node_start(alias)
                    rng = self.src.range(begin, (begin[0], begin[1] + len(item)))
                else:  # 3.9: aliases have no position
                    found = self.src.search((after[0], after[1] + 1), (getattr(
                        node, "end_lineno", None) or node.lineno) - 1, _name_pattern(item))
                    if found is not None:
                        rng = self.src.range(*found)
            self.forbidden_import(rng, name)

    def string_range(self, node):
        """Range of a string literal's contents (without the quotes when they are plain)."""
        start, end = self.src.node_start(node), self.src.node_end(node)
        if start[0] == end[0]:
            text = self.src.text(start[0])[start[1]:end[1]]
            body = text.lstrip("rRbBuU")
            prefix = len(text) - len(body)
            for quote in ('"""', "'''", '"', "'"):
                if body.startswith(quote) and body.endswith(quote) and len(body) >= 2 * len(quote) \
                        and body[len(quote):len(body) - len(quote)] == node.value:
                    return self.src.range((start[0], start[1] + prefix + len(quote)),
                                          (end[0], end[1] - len(quote)))
        return self.src.range(start, end)

    def run(self):
        trees = self.check_syntax()
        calls, loads = self.walk(trees)
        self.check_calls(calls, loads)
        return self.finish()

    def bind_import(self, node, aliases, bound):
        """Checks an import against the profile and records the names it binds."""
        if type(node) is ast.Import:
            self.check_import(node)
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.partition(".")[0]
                    aliases[top] = top
            return
        self.check_import_from(node)
        if not node.level and node.module:
            for a in node.names:
                if a.name != "*":
                    aliases[a.asname or a.name] = node.module + "." + a.name
        else:
            bound.update(a.asname or a.name for a in node.names)

    def walk(self, trees):
        """One pass over every node (a stack, not recursion: no depth limit): imports are
        checked here; the names the program binds, its calls and its loads of removed
        builtins are collected for check_calls."""
        aliases, bound, calls, loads = {}, set(), [], []
        removed = self.rules.removed
        AST, Load, Name, Call = ast.AST, ast.Load, ast.Name, ast.Call
        imports, arg = (ast.Import, ast.ImportFrom), ast.arg
        defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)
        children = {}  # node type -> its fields that may hold nodes (never ctx)
        stack = list(trees)
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is Name:
                if type(node.ctx) is Load:
                    if node.id in removed:
                        loads.append(node)
                else:
                    bound.add(node.id)
                continue  # a Name's only child is its ctx
            if kind is Call:
                calls.append(node)
            elif kind in imports:
                self.bind_import(node, aliases, bound)
            elif kind is arg:
                bound.add(node.arg)
            elif kind in defs or kind.__name__.startswith("Match"):
                name = getattr(node, "name", None)  # match patterns bind names too (3.10+)
                if isinstance(name, str):
                    bound.add(name)
            fields = children.get(kind)
            if fields is None:
                fields = children[kind] = tuple(f for f in kind._fields if f != "ctx")
            for field in fields:
                value = getattr(node, field, None)
                if type(value) is list:
                    for item in value:
                        if isinstance(item, AST):
                            stack.append(item)
                elif isinstance(value, AST):
                    stack.append(value)
        self.aliases, self.bound = aliases, bound
        return calls, loads

    def check_calls(self, calls, loads):
        """Blocked calls, and removed builtins used other than by calling them."""
        called = set()
        for call in calls:
            called.add(id(call.func))
            try:
                self.check_call(call)
            except RecursionError:  # an absurdly long attribute chain: skip that call
                pass
        for node in loads:
            if id(node) not in called and node.id not in self.bound and node.id not in self.aliases:
                self.out.append(_diagnostic(
                    self.src.node_range(node), 2, "blocked-builtin",
                    "builtin %r is disabled by this profile; calling it will fail" % node.id))

    def qualified(self, node):
        """The dotted name a call target stands for ("builtins.eval", "os.system"), or None."""
        kind = type(node)
        if kind is ast.Name:
            if node.id in self.aliases:
                return self.aliases[node.id]
            return None if node.id in self.bound else "builtins." + node.id
        if kind is ast.Attribute:
            base = self.qualified(node.value)
            return base + "." + node.attr if base else None
        if kind is ast.Call:
            module = self.literal_module(node)
            return module[0] if module else None
        return None

    def literal_module(self, call):
        """(name, node) for __import__('x') / importlib.import_module('x'), else None."""
        target = self.qualified(call.func)
        if target in _IMPORTERS and call.args:
            arg = call.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value \
                    and not arg.value.startswith("."):
                return arg.value, arg
        return None

    def name_range(self, func):
        """The range of the called name: a Name, or the last attribute of a chain."""
        if type(func) is ast.Attribute:
            end = self.src.node_end(func)
            if end[1] >= len(func.attr):
                return self.src.range((end[0], end[1] - len(func.attr)), end)
        return self.src.node_range(func)

    def check_call(self, call):
        target = self.qualified(call.func)
        if target is None:
            return
        module = self.literal_module(call)
        if module is not None:
            for name in self.rules.forbidden(module[0]):
                self.forbidden_import(self.string_range(module[1]), name)
        if target.startswith("builtins.") and target.count(".") == 1:
            name = target[len("builtins."):]
            if name in self.rules.removed:
                self.out.append(_diagnostic(self.name_range(call.func), 1, "blocked-builtin",
                                            "builtin %r is disabled by this profile" % name))
            return
        reason = self.risk(target)
        if reason is None:
            return
        parts = target.split(".")
        denied = [p for p in (".".join(parts[:i]) for i in range(1, len(parts)))
                  if not self.rules.allowed(p)]
        if denied:
            message = "%s: module %r is blocked by this profile" % (target, denied[0])
        else:
            message = "%s %s" % (target, reason)
        self.out.append(_diagnostic(self.src.node_range(call.func), 1 if denied else 2,
                                    "blocked-call", message))

    def risk(self, target):
        """Why calling `target` is risky, or None."""
        top = target.partition(".")[0]
        if "." not in target:
            return None
        if top in _PROCESS_MODULES or target in _PROCESS_CALLS or target.startswith(_PROCESS_PREFIXES):
            return "starts a process; the sandbox may refuse it"
        if top in _NATIVE_MODULES:
            return "loads native code; the sandbox may refuse it"
        if top in _NETWORK_MODULES and not self.rules.network:
            return "uses the network, which this profile turns off"
        return None

    def finish(self):
        seen, out = set(), []
        for d in self.out:
            r = d["range"]
            key = (r["start"]["line"], r["start"]["character"], r["end"]["line"],
                   r["end"]["character"], d["code"], d["message"])
            if key not in seen:
                seen.add(key)
                out.append((key, d))
        out.sort(key=lambda pair: pair[0])
        return [d for _, d in out]


def analyze(code, policy=None):
    """LSP diagnostics for `code` under `policy` (see the module docstring)."""
    if not isinstance(code, str):
        raise TypeError("code must be a string")
    return _Analyzer(code, policy or {}).run()


def _analyze_main(inputs):
    """The entry point of an analysis execution: inputs = {"code", "policy"}."""
    inputs = inputs if isinstance(inputs, dict) else {}
    return analyze(inputs.get("code") or "", inputs.get("policy") or {})


def main():
    """Command line: a JSON {"code", "policy"} on stdin, the diagnostics on stdout."""
    import json
    sys.stdout.write(json.dumps(_analyze_main(json.load(sys.stdin))) + "\n")


if __name__ == "__main__" and "inputs" not in globals():
    main()
