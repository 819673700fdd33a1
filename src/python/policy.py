"""pycell policy: import, builtin and file rules for the user's code, plus an activity log.

Standard library only, CPython 3.9+. The kernel (namespaces, seccomp, cgroups) is the
security boundary; this module is the layer above it that turns a profile's rules into
clear errors ("import of 'socket' is blocked by this profile") and records what a program
did (imports, files, network, processes) for the `activity` part of an execute result.
Code that sets out to get around it can (see "Limitations"); it cannot get around the
kernel, which refuses what this layer only records.

Use
---
    guard = policy.install(policy_dict, emit)       # before the user's code runs
    main.__dict__["__builtins__"] = guard.builtins_module
    ... run the user's code ...
    guard.close()                                   # stop checking and recording
    guard.exception(type_name, message)             # the uncaught exception, if any
    if guard.violated: status = "policy_violation"  # even if the program caught it

`install(policy, emit, user_files=None) -> Guard`. `policy` keys, all optional:
  imports       {"deny": [names]} and/or {"allow": [names]}. A name covers its submodules:
                deny "subprocess" blocks "subprocess" and "subprocess.x"; allow "numpy"
                allows "numpy.linalg". With both, the allow list is applied, then the deny
                list (deny wins). `from p import m` where p is not allowed but every p.m is
                passes (allow ["xml.etree"] permits `from xml import etree`). __future__ is
                always allowed (a compiler directive).
  builtins      {"remove": [names]}: the names in `guard.builtins` become callables that
                raise ("builtin 'eval' is disabled by this profile").
  files         {"allowRead": [paths], "allowWrite": [paths]}: roots added to the
                defaults for `allowed`: the working directory and /tmp (read and write),
                /dev/null, the interpreter's trees (sys.prefix, base_prefix, stdlib and
                site directories), /dev/urandom, /proc/self, /etc/localtime (read).
                Paths are resolved (symlinks, "..") before the check.
  enforceFiles  bool, default False: opens outside the allowed roots raise, instead of
                being recorded with allowed=false.
  network       bool, default False: only sets `allowed` on network events (the kernel
                decides whether a socket works).
  workdir       the working directory, default os.getcwd() at install.
  maxEvents     cap on emitted activity events, default 2000.

Whose imports are checked
-------------------------
Only imports made by the user's code: a frame compiled from "<pycell>" (a session's
cells: "<pycell-N>"), or from a file for which `user_files(filename)` is true (by
default: files under the working directory that are not inside the interpreter's own
trees), or code the user compiled or exec'd (`exec("import socket")` is attributed to
the frame that called exec; a file name the user passes to compile() becomes the user's). Checked are
`import x`, `from x import y`, `__import__('x')`, `importlib.import_module('x')` and
`importlib.__import__('x')`, including modules already in sys.modules (the sandbox
preloads numpy and pandas; the audit "import" event fires only for modules not loaded
yet, so builtins.__import__ and the importlib functions are wrapped). What a module
imports for itself is never checked: pandas under an allow list naming pandas imports
numpy, dateutil, ... as it needs. Relative imports are resolved from the importing
module's __package__/__spec__/__name__. Under an allow list, modules that are the user's
own files (found in the working directory) are allowed.

C functions that import lazily on the user's behalf (time.strptime imports _strptime,
pickle.loads imports the pickled class's module) call __import__ with the user's frame
on top. Such calls are told apart by their shape: not an IMPORT_NAME instruction, an
empty list as fromlist, globals passed as locals. A deny list checks them like any
import (so a pickle cannot smuggle in subprocess); an allow list lets them through when
the module is allowed, in IMPLICIT_IMPORTS, or part of a package that is already loaded.

Builtins
--------
`guard.builtins` is the user's builtins dict and `guard.builtins_module` a module
wrapping it (the runner sets the program's `__builtins__` to the latter: `__builtins__`
in __main__ is a module, as in CPython). With nothing removed they are the real builtins
module and its dict. Otherwise they are a copy with each removed name replaced; the real
builtins module is left alone (library code keeps eval, open, ...) except that
`__import__` is wrapped for everyone. `import builtins` from user code returns the
copy; modules loaded from user files get the copy as their builtins too. Removing
`__import__` blocks direct calls `__import__('x')` from user frames, while `import`
statements keep working: the wrapper looks at the calling instruction, and an
IMPORT_NAME is a statement. The audit hook also catches the removed builtins reached
through a back door (`print.__self__.eval`): "open" events, builtins.input and
builtins.breakpoint from a user frame when those are removed; "exec" events when eval and
exec are removed; "compile" events when compile is removed too.

Activity events
---------------
Passed to `emit(event)` as they happen, each {"t": ms since install (0.1 ms), "kind": ...};
the server sums them up into the execute result's `activity` (src/exec/activity.cc):
  import     {module}                  first time user code imports that module
  file       {path, mode, allowed}     an open by user code, or by library code the user
                                       called (not while a module is being imported);
                                       once per path and mode
  network    {operation, address, allowed}  socket (address: the family, "AF_INET"),
                                       connect, bind, sendto, sendmsg ("host:port" or a
                                       path), getaddrinfo, gethostbyname, gethostbyaddr,
                                       getnameinfo, from any code; once per operation
                                       and address
  process    {operation, detail}       subprocess.Popen, os.system, os.exec, os.posix_spawn,
                                       os.spawn, os.fork, os.forkpty, os.kill, os.killpg,
                                       pty.spawn, from any code
  exception  {type, message}           only through guard.exception(): the runner reports
                                       the final uncaught exception (tracing every raise
                                       would be too slow)
  blocked    {what, detail}            a violation; emitted before it is raised
  truncated  {}                        once, when maxEvents is reached; later events other
                                       than "blocked" are dropped (blocked ones stop at 100)
An event from a fork()ed child carries "pid". Imports by library code are not events;
guard.stats()["modulesLoaded"] counts the modules loaded (by anyone) while it was active.

Violations raise PolicyViolation, a BaseException so that `except Exception` in user code
does not swallow it; `.what` is "import", "builtin" or "file", `.detail` the module,
builtin or path. Every violation is recorded on the guard first (`guard.violations`,
`guard.violated`, `guard.first_violation`), so the runner reports policy_violation even
when the program caught the exception. The traceback of a violation ends in this
module's frames (`disabled`, `_violate`); a runner may drop frames of this file.
A removed builtin kept by a session's earlier function reports to the active guard.

Defaults
--------
The lists themselves live with the profiles (src/sandbox/config.cc), which send them in
each request's policy. The default profile's deny list: what starts processes (subprocess,
_posixsubprocess, multiprocessing, concurrent.futures.process, pty, webbrowser), talks
to the network (socket, _socket, ssl, _ssl, socketserver, http.client, http.server,
urllib.request, ftplib, smtplib, poplib, imaplib, telnetlib, nntplib, xmlrpc; urllib.parse
and http.HTTPStatus stay available), loads native code (ctypes, _ctypes, cffi), and
starts subinterpreters (which would run without this module's hooks). os, sys, fcntl,
signal, mmap stay allowed: ordinary programs need os and sys, and what they could do
beyond that the kernel refuses; os.system and friends are recorded as process activity.
The datascience profile's allow list, for notebooks-style work: numpy, pandas, matplotlib,
scipy, seaborn, sklearn, statsmodels and the computational part of the standard library
(math, statistics, json, re, datetime, collections, ...). Left out on purpose: os, sys,
subprocess, socket, ctypes, pickle and marshal (loading a pickle imports whatever it
names), inspect and gc (reach any object), importlib.

Limitations
-----------
Python-level policy can be bypassed by determined code, which is why it only backs up
the kernel: sys.modules['socket'] returns a loaded module without an import;
`import a.b` binds `a`, so its attributes are reachable whatever the allow list says
about `a`; importlib._bootstrap's private functions import without the wrappers; real
builtins are reachable through introspection (print.__self__, gc, frames) and only the
back doors listed above are caught; a direct call shaped like a C-level lazy import
(`__import__(name, globals(), globals(), [], 0)`) is treated as one. The audit hook cannot
be removed (PEP 578): install() replaces the active Guard, and close() makes the hook a
no-op, so a process that runs several programs (a session) installs once per program.
"""
import builtins as _builtins
import importlib
import importlib.machinery
import opcode as _opcode
import os
import sys
import time
import types
from _thread import get_ident as _get_ident

__all__ = ["install", "Guard", "PolicyViolation", "IMPLICIT_IMPORTS"]

# Modules the interpreter's C code imports lazily on behalf of a builtin the user called.
IMPLICIT_IMPORTS = ("_strptime", "copyreg", "time", "codecs", "encodings", "warnings",
                    "locale", "unicodedata", "_pydecimal", "numbers")

_IMPORT_NAME = _opcode.opmap["IMPORT_NAME"]
_getframe = sys._getframe
_perf = time.perf_counter
_SELF = _getframe(0).f_code.co_filename  # this module's frames are never the user's
_PSEUDO = object()  # "<string>"-like code: decided by the frame that ran it
_MAX_BLOCKED_EVENTS = 100
_MAX_VIOLATIONS = 100
_TEXT_CAP = 500
_FAMILIES = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}


class PolicyViolation(BaseException):
    """Raised when user code does what the profile forbids. A BaseException, so that
    `except Exception` in the program does not swallow it."""

    def __init__(self, what, detail, message=None):
        BaseException.__init__(self, message or "%s %r is blocked by this profile" % (what, detail))
        self.what, self.detail = what, detail


def _cap(text, limit=_TEXT_CAP):
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _section(policy, key):
    value = policy.get(key)
    return value if isinstance(value, dict) else {}


def _names(value):
    """A list of strings from a policy entry, ignoring anything else."""
    if isinstance(value, str):
        return [value]
    return [v for v in (value or ()) if isinstance(v, str) and v]


def _prefixes(name):
    """'a.b.c' -> 'a', 'a.b', 'a.b.c'."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _under(path, roots):
    for root in roots:
        if path == root or path.startswith(root if root.endswith("/") else root + "/"):
            return True
    return False


def _fspath(path):
    if isinstance(path, int):
        return None
    try:
        path = os.fspath(path)
    except TypeError:
        return None
    return os.fsdecode(path) if isinstance(path, bytes) else path


def _mode_from_string(mode):
    base = next((c for c in mode if c in "rwax"), "r")
    return base + ("+" if "+" in mode else "")


def _mode_from_flags(flags):
    acc = flags & os.O_ACCMODE
    append, excl = flags & os.O_APPEND, (flags & os.O_EXCL) and (flags & os.O_CREAT)
    if acc == os.O_RDONLY:
        return "r"
    if acc == os.O_WRONLY:
        return "a" if append else "x" if excl else "w"
    return "a+" if append else "x+" if excl else "w+" if flags & os.O_TRUNC else "r+"


def _address(addr):
    """A socket address as text: 'host:port', '[v6]:port', a path, or repr."""
    if isinstance(addr, tuple) and len(addr) >= 2 and isinstance(addr[1], int):
        host = addr[0].decode("ascii", "replace") if isinstance(addr[0], bytes) else str(addr[0])
        return ("[%s]:%d" if ":" in host else "%s:%d") % (host, addr[1])
    if isinstance(addr, bytes):
        return addr.decode("utf-8", "replace") or "<abstract>"
    return str(addr) if isinstance(addr, str) else _cap(repr(addr), 200)


def _package_of(globals_):
    """The package a relative import in a module with these globals is relative to."""
    if not isinstance(globals_, dict):
        return None
    package = globals_.get("__package__")
    if package is not None:
        return package
    spec = globals_.get("__spec__")
    if spec is not None:
        return getattr(spec, "parent", None)
    name = globals_.get("__name__")
    if not isinstance(name, str):
        return None
    return name if "__path__" in globals_ else name.rpartition(".")[0]


def _absolute(name, package, level):
    """The absolute module name, or None when it cannot be resolved (the real import
    then raises the usual error)."""
    if not isinstance(name, str):
        return None
    if not level:
        return name or None
    if not isinstance(package, str) or not package:
        return None
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        return None
    return "%s.%s" % (bits[0], name) if name else bits[0]


def _is_import_statement(frame):
    """True when the frame is executing an IMPORT_NAME (an `import` statement)."""
    try:
        code, i = frame.f_code.co_code, frame.f_lasti
        return 0 <= i < len(code) and code[i] == _IMPORT_NAME
    except Exception:  # noqa: BLE001 - an interpreter without these: assume a statement
        return True


class Guard:
    """The active policy of one program run; install() makes it."""

    def __init__(self, policy, emit, user_files):
        self.policy = policy
        self._start(emit)
        imports = _section(policy, "imports")

        deny, allow = _names(imports.get("deny")), imports.get("allow")
        self._deny = frozenset(deny)
        self._allow = None if allow is None else frozenset(_names(allow))
        self._decisions = {}
        self.network = bool(policy.get("network", False))
        self.enforce_files = bool(policy.get("enforceFiles", False))
        self.max_events = int(policy.get("maxEvents", 2000))
        workdir = os.path.realpath(policy.get("workdir") or os.getcwd())
        self.workdir = workdir
        self._system_roots = _system_roots()
        files = _section(policy, "files")
        self._write_roots = [workdir, os.path.realpath("/tmp"), "/dev/null"] + [
            os.path.realpath(p) for p in _names(files.get("allowWrite"))]
        self._read_roots = self._write_roots + self._system_roots + [
            "/dev/urandom", "/dev/random", "/dev/zero", "/proc/self", "/etc/localtime",
            "/etc/timezone"] + [os.path.realpath(p) for p in _names(files.get("allowRead"))]
        self._user_files = user_files or _default_user_files(workdir, self._system_roots)
        self._frame_kind = {"<pycell>": True}
        # builtins
        self.removed = frozenset(_names(_section(policy, "builtins").get("remove")))
        self._block_dunder_import = "__import__" in self.removed
        self._block_exec = {"eval", "exec"} <= self.removed
        self._block_compile = self._block_exec and "compile" in self.removed
        if self.removed:
            module = types.ModuleType("builtins", _builtins.__doc__)
            module.__dict__.update(_builtins.__dict__)
            for name in self.removed:
                if name != "__import__":
                    module.__dict__[name] = self._stub(name)
            self.builtins_module, self.builtins = module, module.__dict__
        else:
            self.builtins_module, self.builtins = _builtins, _builtins.__dict__

    # --- state -------------------------------------------------------------------------
    @property
    def violated(self):
        return self.violation_count > 0

    @property
    def first_violation(self):
        return dict(self.violations[0]) if self.violations else None

    def _start(self, emit):
        """The per-run state: a fresh clock, no events, no violations."""
        self._t0 = _perf()
        self._pid = os.getpid()
        self._emit_fn = emit if emit is not None else (lambda event: None)
        self.closed = False
        self.violations = []
        self.violation_count = 0
        self._user_modules = {}
        self._count = self._blocked = self._dropped = 0
        self._truncated = False
        self._modules_loaded = self._emit_errors = self._hook_errors = 0
        self._seen = set()  # dedup keys of emitted import/file/network events

    def close(self):
        """Stops checking and recording; the hooks stay but do nothing for this guard."""
        self.closed = True

    def stats(self):
        return {"events": self._count, "dropped": self._dropped, "truncated": self._truncated,
                "blockedEvents": self._blocked, "violations": self.violation_count,
                "modulesLoaded": self._modules_loaded, "emitErrors": self._emit_errors,
                "hookErrors": self._hook_errors}

    def exception(self, type_name, message):
        """Emits an "exception" event (the runner calls it for the uncaught exception);
        works after close() too."""
        self._emit("exception", {"type": _cap(str(type_name), 200), "message": _cap(str(message))},
                   after_close=True)

    # --- emitting ----------------------------------------------------------------------
    def _emit(self, kind, fields, after_close=False):
        if self.closed and not after_close:
            return
        if kind == "blocked":
            if self._blocked >= _MAX_BLOCKED_EVENTS:
                return
            self._blocked += 1
        elif self._count >= self.max_events:
            self._dropped += 1
            if self._truncated:
                return
            self._truncated = True
            kind, fields = "truncated", {}
        else:
            self._count += 1
        event = {"t": round((_perf() - self._t0) * 1000.0, 1), "kind": kind}
        event.update(fields)
        pid = os.getpid()
        if pid != self._pid:
            event["pid"] = pid
        tid = _get_ident()
        nested = tid in _busy
        _busy.add(tid)  # what emit itself does (I/O) is not activity
        try:
            self._emit_fn(event)
        except Exception:  # noqa: BLE001 - a broken channel must not break the program
            self._emit_errors += 1
        finally:
            if not nested:
                _busy.discard(tid)

    def _emit_once(self, key, kind, fields):
        if key not in self._seen:
            self._seen.add(key)
            self._emit(kind, fields)

    def _violate(self, what, detail, message):
        """Emits "blocked", records the violation, then raises it."""
        self._emit("blocked", {"what": what, "detail": _cap(detail)})
        self.violation_count += 1
        if len(self.violations) < _MAX_VIOLATIONS:
            self.violations.append({"what": what, "detail": _cap(detail), "message": message,
                                    "t": round((_perf() - self._t0) * 1000.0, 1)})
        raise PolicyViolation(what, detail, message)

    def _stub(self, name):
        guard = self

        def disabled(*args, **kwargs):
            # A session's functions keep an earlier run's builtins: report to the active guard.
            active = _active[0]
            target = active if active is not None and not active.closed else guard
            target._violate("builtin", name, "builtin %r is disabled by this profile" % name)
        disabled.__name__ = disabled.__qualname__ = name
        disabled.__doc__ = "Disabled by this profile."
        return disabled

    # --- whose code --------------------------------------------------------------------
    def _classify(self, filename):
        if not isinstance(filename, str):
            return False
        if filename.startswith("<"):
            if filename.startswith("<pycell-"):  # a session's cells: "<pycell-N>"
                return True
            return False if filename.startswith("<frozen") else _PSEUDO
        if filename == _SELF:
            return False
        try:
            return bool(self._user_files(filename))
        except Exception:  # noqa: BLE001
            return False

    def _is_user(self, frame):
        """True when the frame runs the user's code."""
        for _ in range(64):
            if frame is None:
                return False
            filename = frame.f_code.co_filename
            kind = self._frame_kind.get(filename)
            if kind is None:
                kind = self._frame_kind[filename] = self._classify(filename)
            if kind is not _PSEUDO:
                return kind
            frame = frame.f_back  # exec'd or generated code: whoever ran it
        return False

    def _user_initiated(self, frame):
        """Whether a user frame is found up the stack before the import system: what a
        module does while it is being imported is not the user's activity."""
        while frame is not None:
            if frame.f_code.co_filename.startswith("<frozen importlib"):
                return False
            if self._is_user(frame):
                return True
            frame = frame.f_back
        return False

    def _user_file(self, path):
        try:
            return bool(path) and bool(self._user_files(path))
        except Exception:  # noqa: BLE001
            return False

    # --- imports -----------------------------------------------------------------------
    def _allowed(self, name):
        decision = self._decisions.get(name)
        if decision is None:
            prefixes = _prefixes(name)
            decision = not any(p in self._deny for p in prefixes)
            if decision and self._allow is not None and prefixes[0] != "__future__":
                decision = any(p in self._allow for p in prefixes)
            self._decisions[name] = decision
        return decision

    def _is_user_module(self, name):
        """Whether the top-level package of `name` is the user's own file or directory."""
        top = name.partition(".")[0]
        found = self._user_modules.get(top)
        if found is None:
            found = False
            module = sys.modules.get(top)
            try:
                if module is not None:
                    found = self._user_file(getattr(module, "__file__", None))
                elif top not in sys.builtin_module_names:
                    spec = importlib.machinery.PathFinder.find_spec(top)
                    if spec is not None:
                        where = spec.origin if spec.has_location else None
                        if where is None and spec.submodule_search_locations:
                            where = list(spec.submodule_search_locations)[0]
                        found = self._user_file(where)
            except Exception:  # noqa: BLE001
                found = False
            self._user_modules[top] = found
        return found

    def _check_import(self, name, fromlist):
        if self._allowed(name):
            if self._deny and fromlist:
                for item in fromlist:
                    if isinstance(item, str) and item != "*" and not self._allowed(name + "." + item):
                        sub = name + "." + item
                        self._violate("import", sub, "import of %r is blocked by this profile" % sub)
            return
        items = [i for i in (fromlist or ()) if isinstance(i, str)]
        if items and "*" not in items and all(self._allowed(name + "." + i) for i in items):
            return
        if self._allow is not None and not any(p in self._deny for p in _prefixes(name)) \
                and self._is_user_module(name):
            return
        self._violate("import", name, "import of %r is blocked by this profile" % name)

    def _check_implicit(self, name):
        if self._allowed(name):
            return
        if any(p in self._deny for p in _prefixes(name)):
            self._violate("import", name, "import of %r is blocked by this profile" % name)
        top = name.partition(".")[0]
        if top in IMPLICIT_IMPORTS or top in sys.modules or self._is_user_module(name):
            return
        self._violate("import", name, "import of %r is blocked by this profile" % name)

    def _user_import(self, frame, name, globals_, locals_, fromlist, level, builtin):
        """Checks an import requested by a user frame; returns a module to hand back
        instead of the real import's result, or None. `builtin`: through
        builtins.__import__ (a statement, a direct call, or a C-level lazy import)."""
        if builtin and not _is_import_statement(frame):
            if (type(fromlist) is list and not fromlist and not level
                    and type(globals_) is dict and locals_ is globals_):
                if isinstance(name, str) and name:
                    self._check_implicit(name)  # PyImport_Import from a C function
                return None
            if self._block_dunder_import:
                self._violate("builtin", "__import__",
                              "builtin '__import__' is disabled by this profile")
        absolute = _absolute(name, _package_of(globals_) if level else None, level)
        if absolute is None:
            return None
        self._check_import(absolute, fromlist)
        self._emit_once(("import", absolute), "import", {"module": absolute})
        if absolute == "builtins" and self.builtins_module is not _builtins:
            return self.builtins_module
        return None

    # --- audit events ------------------------------------------------------------------
    def _on_open(self, frame, args):
        if len(args) < 3:
            return
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib"):
            return  # the import system reading modules
        immediate = self._is_user(frame)
        if not immediate and not self._user_initiated(frame.f_back):
            return
        if immediate and "open" in self.removed:
            self._violate("builtin", "open", "builtin 'open' is disabled by this profile")
        path = _fspath(args[0])
        if path is None:
            return  # an fd: no new path is reached
        mode, flags = args[1], args[2]
        mode = _mode_from_string(mode) if isinstance(mode, str) else \
            _mode_from_flags(flags) if isinstance(flags, int) else "r"
        write = mode != "r"
        try:
            real = os.path.realpath(os.path.join(os.getcwd(), path))
        except (OSError, ValueError):
            real = path
        allowed = _under(real, self._write_roots if write else self._read_roots)
        self._emit_once(("file", path, mode), "file",
                        {"path": _cap(path, 1024), "mode": mode, "allowed": allowed})
        if not allowed and self.enforce_files:
            self._violate("file", path, "opening %r for %s is not allowed by this profile"
                          % (path, "writing" if write else "reading"))

    def _on_network(self, operation, address):
        address = _cap(address, 300)
        self._emit_once(("network", operation, address), "network",
                        {"operation": operation, "address": address, "allowed": self.network})

    def _on_process(self, operation, detail):
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        self._emit("process", {"operation": operation, "detail": _cap(str(detail), 200)})

    def _on_dynamic(self, frame, event, args):
        if not self._is_user(frame):
            return
        if event == "compile":
            filename = args[1] if len(args) > 1 else None
            if isinstance(filename, str) and not filename.startswith("<"):
                self._frame_kind[filename] = True  # code the user compiled is the user's
            if self._block_compile:
                self._violate("builtin", "compile",
                              "builtin 'compile' is disabled by this profile")
        elif event == "code.__new__":
            filename = args[1] if len(args) > 1 else None
            if isinstance(filename, str) and not filename.startswith("<"):
                self._frame_kind[filename] = True
        elif self._block_exec:  # "exec"
            self._violate("builtin", "exec",
                          "dynamic code (eval/exec) is disabled by this profile")


_system_roots_cache = {}


def _system_roots():
    """The interpreter's own read-only trees (computed once per sys.path: a zygote computes
    them for all its children)."""
    key = tuple(p for p in sys.path if _is_package_dir(p))
    cached = _system_roots_cache.get(key)
    if cached is None:
        cached = _system_roots_cache[key] = _find_system_roots()
    return list(cached)


def _is_package_dir(path):
    return bool(path) and os.path.isabs(path) and (
        "site-packages" in path or "dist-packages" in path or path.endswith(".zip"))


def _find_system_roots():
    roots = set()
    for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        if path:
            roots.add(os.path.realpath(path))
    try:
        import sysconfig
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            path = sysconfig.get_paths().get(key)
            if path:
                roots.add(os.path.realpath(path))
    except Exception:  # noqa: BLE001
        pass
    for path in sys.path:
        if _is_package_dir(path):
            roots.add(os.path.realpath(path))
    return sorted(r for r in roots if r != "/")


def _default_user_files(workdir, system_roots):
    """Files under the working directory that are not part of the interpreter."""
    if workdir == "/":
        return lambda filename: False

    def user_files(filename):
        if not os.path.isabs(filename):
            filename = os.path.join(workdir, filename)
        filename = os.path.normpath(filename)
        return _under(filename, [workdir]) and filename != workdir and not _under(filename, system_roots)
    return user_files


# --- the process-wide machinery (installed once) -------------------------------------------
_busy = set()  # thread ids inside the hook or inside emit
_active = [None]  # the current Guard
_originals = {}


def _hook(event, args):
    handler = _HANDLERS.get(event)
    if handler is None:
        return
    guard = _active[0]
    if guard is None or guard.closed:
        return
    tid = _get_ident()
    if tid in _busy:
        return
    _busy.add(tid)
    try:
        handler(guard, _getframe(1), event, args)
    except PolicyViolation:
        raise
    except Exception:  # noqa: BLE001 - the hook never fails the program otherwise
        guard._hook_errors += 1
    finally:
        _busy.discard(tid)


def _h_import(guard, frame, event, args):
    guard._modules_loaded += 1  # the wrappers did the checking


def _h_open(guard, frame, event, args):
    guard._on_open(frame, args)


def _h_dynamic(guard, frame, event, args):
    guard._on_dynamic(frame, event, args)


def _h_backdoor(name):
    def handler(guard, frame, event, args):
        if name in guard.removed and guard._is_user(frame):
            guard._violate("builtin", name, "builtin %r is disabled by this profile" % name)
    return handler


def _h_socket_new(guard, frame, event, args):
    family = args[1] if len(args) > 1 else None
    guard._on_network("socket", _FAMILIES.get(family, "family %s" % (family,)))


def _h_socket_addr(operation):
    def handler(guard, frame, event, args):
        guard._on_network(operation, _address(args[1]) if len(args) > 1 else "")
    return handler


def _h_getaddrinfo(guard, frame, event, args):
    host = args[0] if args else None
    host = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    port = args[1] if len(args) > 1 else None
    guard._on_network("getaddrinfo", host if port in (None, 0, "") else "%s:%s" % (host, port))


def _h_host(operation):
    def handler(guard, frame, event, args):
        guard._on_network(operation, _address(args[0]) if args else "")
    return handler


def _h_process(operation, index):
    def handler(guard, frame, event, args):
        detail = ""
        if index is not None and len(args) > index:
            detail = args[index]
            if operation == "subprocess.Popen" and detail is None and len(args) > 1:
                argv = args[1]
                detail = argv if isinstance(argv, (str, bytes)) else (list(argv)[:1] or [""])[0]
            detail = os.fsdecode(detail) if isinstance(detail, (bytes, os.PathLike)) else detail
        elif operation in ("os.kill", "os.killpg") and len(args) >= 2:
            detail = "pid=%s signal=%s" % (args[0], args[1])
        guard._on_process(operation, "" if detail is None else detail)
    return handler


_HANDLERS = {
    "import": _h_import,
    "open": _h_open,
    "compile": _h_dynamic, "exec": _h_dynamic, "code.__new__": _h_dynamic,
    "builtins.input": _h_backdoor("input"), "builtins.breakpoint": _h_backdoor("breakpoint"),
    "socket.__new__": _h_socket_new,
    "socket.connect": _h_socket_addr("connect"), "socket.bind": _h_socket_addr("bind"),
    "socket.sendto": _h_socket_addr("sendto"), "socket.sendmsg": _h_socket_addr("sendmsg"),
    "socket.getaddrinfo": _h_getaddrinfo,
    "socket.gethostbyname": _h_host("gethostbyname"),
    "socket.gethostbyaddr": _h_host("gethostbyaddr"),
    "socket.getnameinfo": _h_host("getnameinfo"),
    "subprocess.Popen": _h_process("subprocess.Popen", 0),
    "os.system": _h_process("os.system", 0),
    "os.exec": _h_process("os.exec", 0),
    "os.posix_spawn": _h_process("os.posix_spawn", 0),
    "os.spawn": _h_process("os.spawn", 1),
    "os.fork": _h_process("os.fork", None),
    "os.forkpty": _h_process("os.forkpty", None),
    "os.kill": _h_process("os.kill", None),
    "os.killpg": _h_process("os.killpg", None),
    "pty.spawn": _h_process("pty.spawn", 0),
}


def _guarding(original, builtin):
    """A wrapper of an __import__ (builtins' or importlib's) that checks user imports."""
    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        guard = _active[0]
        if guard is not None and not guard.closed:
            frame = _getframe(1)
            if guard._is_user(frame):
                replacement = guard._user_import(frame, name, globals, locals, fromlist, level, builtin)
                if replacement is not None:
                    return replacement
        return _originals[original](name, globals, locals, fromlist, level)
    return guarded


_guarded_import = _guarding("__import__", True)
_guarded_importlib_import = _guarding("importlib.__import__", False)


def _guarded_import_module(name, package=None):
    guard = _active[0]
    if guard is not None and not guard.closed and isinstance(name, str):
        frame = _getframe(1)
        if guard._is_user(frame):
            level = len(name) - len(name.lstrip("."))
            absolute = _absolute(name[level:], package, level)
            if absolute is not None:
                guard._check_import(absolute, ())
                guard._emit_once(("import", absolute), "import", {"module": absolute})
                if absolute == "builtins" and guard.builtins_module is not _builtins:
                    return guard.builtins_module
    return _originals["import_module"](name, package)


class _UserLoader:
    """Wraps the loader of a module from a user file: it runs with the user's builtins."""

    def __init__(self, loader, builtins_dict):
        self._loader, self._builtins = loader, builtins_dict

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        module.__dict__["__builtins__"] = self._builtins
        self._loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _UserModuleFinder:
    """First on sys.meta_path while builtins are removed: finds a module with the other
    finders and, when it is a user file, wraps its loader in _UserLoader."""

    searching = False  # another finder that asks the rest of sys.meta_path asks us back

    def find_spec(self, name, path=None, target=None):
        guard = _active[0]
        if guard is None or guard.closed or guard.builtins_module is _builtins or self.searching:
            return None
        spec = None
        self.searching = True
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    break
        finally:
            self.searching = False
        if spec is None:
            return None
        if (spec.loader is not None and spec.has_location and guard._user_file(spec.origin)
                and hasattr(spec.loader, "exec_module")):
            spec.loader = _UserLoader(spec.loader, guard.builtins)
        return spec

    def invalidate_caches(self):
        pass


def _setup():
    """Once per process: the audit hook, the import wrappers and the finder."""
    if _originals:
        return
    _originals["__import__"] = _builtins.__import__
    _originals["import_module"] = importlib.import_module
    _originals["importlib.__import__"] = importlib.__import__
    for wrapper, original in ((_guarded_import, _builtins.__import__),
                              (_guarded_import_module, importlib.import_module),
                              (_guarded_importlib_import, importlib.__import__)):
        wrapper.__doc__ = original.__doc__
    for wrapper in (_guarded_import, _guarded_importlib_import):
        wrapper.__name__ = wrapper.__qualname__ = "__import__"
    _guarded_import_module.__name__ = _guarded_import_module.__qualname__ = "import_module"
    _builtins.__import__ = _guarded_import
    importlib.import_module = _guarded_import_module
    importlib.__import__ = _guarded_importlib_import
    sys.meta_path.insert(0, _UserModuleFinder())
    sys.addaudithook(_hook)


def install(policy=None, emit=None, user_files=None):
    """Makes `policy` the active policy and returns its Guard (see the module docstring).
    The first call also installs the process-wide hooks; a later call replaces the
    active Guard (the previous one is closed)."""
    _setup()  # first: the user's builtins copy must hold the __import__ wrapper
    guard = Guard(dict(policy or {}), emit if emit is not None else (lambda event: None),
                  user_files)
    previous, _active[0] = _active[0], guard
    if previous is not None:
        previous.close()
    return guard


def rearm(guard, emit=None):
    """Makes a guard made earlier (by a zygote, for the children it forks) the active one
    for a new run, with fresh per-run state: cheaper than install(), and the guard's
    objects stay shared with the zygote's pages."""
    _setup()
    guard._start(emit)
    previous, _active[0] = _active[0], guard
    if previous is not None and previous is not guard:
        previous.close()
    return guard
