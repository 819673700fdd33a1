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
when the program caught the exception. The traceback of a violation ends in the
policy layer's frames (`disabled`, `_violate`); a runner may drop frames of its files.
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

Files
-----
Standard library only, like the bootstrap, and loaded the same way: by path, in no
sys.modules entry and no sys.path directory. This file (the API: install, rearm, Guard,
PolicyViolation) loads its parts from beside itself when it is loaded, before any of the
user's code runs, each under this module's name and each taking what it uses from the
others as private references:
  policy_events.py       the events a Guard emits, its violations and counters
  policy_attribution.py  which frames and files are the user's; the interpreter's trees
  policy_imports.py      the import rules, and the wrappers of __import__ and import_module
  policy_audit.py        the audit hook: opens, network, processes, dynamic code, back doors
  policy_builtins.py     the user's copy of the builtins, and the finder that hands it to
                         modules loaded from user files
A Guard is one object made of each part's piece of it (_Recorder, _Attribution, ...).
Embedded in the C++ binary as raw string literals (the sandbox holds these files beside
the bootstrap), so none may contain that literal's closing delimiter.
"""
import importlib.util
import os
import sys

__all__ = ["install", "Guard", "PolicyViolation", "IMPLICIT_IMPORTS"]

_SELF = sys._getframe(0).f_code.co_filename
_PARTS = ("policy_events", "policy_attribution", "policy_imports", "policy_audit", "policy_builtins")


def _beside(name):
    """The path of the part `name` next to this file ("/.pycell/policy_events.py", or
    ".pycell-policy_events.py" beside ".pycell-policy.py" without a mount namespace)."""
    return os.path.join(os.path.dirname(_SELF), os.path.basename(_SELF).replace("policy", name))


def _load_part(name, **given):
    """Loads the part `name` from beside this file, by path and under this module's own
    name (so that its classes and functions are named as this module's). `given` is its
    `_given` while its code runs, which takes each into its own globals."""
    spec = importlib.util.spec_from_file_location(__name__, _beside(name))
    module = importlib.util.module_from_spec(spec)
    module._given = given
    spec.loader.exec_module(module)
    del module._given
    return module


class PolicyViolation(BaseException):
    """Raised when user code does what the profile forbids. A BaseException, so that
    `except Exception` in the program does not swallow it."""

    def __init__(self, what, detail, message=None):
        BaseException.__init__(self, message or "%s %r is blocked by this profile" % (what, detail))
        self.what, self.detail = what, detail


# --- the process-wide state, shared by the parts -------------------------------------------
_busy = set()  # thread ids inside the hook or inside emit
_active = [None]  # the current Guard
_originals = {}  # the import functions the wrappers replaced (policy_imports.py)

_events = _load_part("policy_events", PolicyViolation=PolicyViolation, busy=_busy)
_attribution = _load_part("policy_attribution", own_files=(_SELF,) + tuple(_beside(n) for n in _PARTS))
_imports = _load_part("policy_imports", active=_active, originals=_originals)
_audit = _load_part("policy_audit", PolicyViolation=PolicyViolation, active=_active, busy=_busy,
                    cap=_events._cap, under=_attribution._under)
_builtins_part = _load_part("policy_builtins", active=_active)
_system_roots, _default_user_files = _attribution._system_roots, _attribution._default_user_files
IMPLICIT_IMPORTS = _imports.IMPLICIT_IMPORTS


def _section(policy, key):
    value = policy.get(key)
    return value if isinstance(value, dict) else {}


def _names(value):
    """A list of strings from a policy entry, ignoring anything else."""
    if isinstance(value, str):
        return [value]
    return [v for v in (value or ()) if isinstance(v, str) and v]


class Guard(_events._Recorder, _attribution._Attribution, _imports._ImportChecks,
            _audit._AuditChecks, _builtins_part._BuiltinsCopy):
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
        self._program_dirs = set()  # set_program's directories, whose files are user files
        # builtins
        self.removed = frozenset(_names(_section(policy, "builtins").get("remove")))
        self._block_dunder_import = "__import__" in self.removed
        self._block_exec = {"eval", "exec"} <= self.removed
        self._block_compile = self._block_exec and "compile" in self.removed
        self._copy_builtins()


def _setup():
    """Once per process: the audit hook, the import wrappers and the finder."""
    if _originals:
        return
    _imports._wrap_imports()
    sys.meta_path.insert(0, _builtins_part._UserModuleFinder())
    sys.addaudithook(_audit._hook)


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


_prepared = [None]  # a zygote's guard for its profile's policy, shared by its children


def prepare(policy):
    """In a zygote: the guard for the profile's policy, made once (children rearm it)."""
    _prepared[0] = install(policy, None)
    _prepared[0].close()


def activate(policy, emit, program=None):
    """A run's guard: the zygote's, rearmed, when the run's policy is the one it was made
    for; a new one otherwise. `program`: the file name the program's code is compiled under
    (execute.filename, else "<pycell>"); see Guard.set_program."""
    if _prepared[0] is not None and _prepared[0].policy == policy:
        guard = rearm(_prepared[0], emit)
    else:
        guard = install(policy, emit)
    guard.set_program(program)
    return guard


def settle(guard, status, rc, error, make_error):
    """After the run: a recorded violation makes it a policy_violation, even when the
    program caught the exception; an uncaught error is logged as activity. Returns the
    run's (status, exit code, error); `make_error(type, message)` builds an error."""
    guard.close()
    if error is not None:
        guard.exception(error["type"], error["message"])
    if not guard.violated:
        return status, rc, error
    first = guard.first_violation
    if error is None or error["type"] != "PolicyViolation":
        error = make_error("PolicyViolation",
                           first.get("message") or "%s %s is not allowed" % (first["what"], first["detail"]))
    return "policy_violation", 1, error
