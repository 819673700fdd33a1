"""pycell policy, the import guard: the imports section's rules, and the wrappers of
builtins.__import__, importlib.import_module and importlib.__import__ that check the
imports the user's code asks for.

Part of the policy layer (policy.py, whose docstring describes the rules and whose imports
are checked), which loads this file by path from beside itself when it is loaded, before
any of the user's code runs: no import finds it, so the program cannot reach it by name.
The originals the wrappers call are kept in `_originals`, taken once per process by
policy.py's _setup (_wrap_imports). Embedded in the C++ binary as a raw string literal, so
it must never contain that literal's closing delimiter.

Given by policy.py before this code runs (`_given`, see policy.py _load_part): the active
Guard's holder (`active`, a one-item list) and the dict of originals (`originals`).
"""
import builtins as _builtins
import importlib
import importlib.machinery
import opcode as _opcode
import sys

# Modules the interpreter's C code imports lazily on behalf of a builtin the user called.
IMPLICIT_IMPORTS = ("_strptime", "copyreg", "time", "codecs", "encodings", "warnings",
                    "locale", "unicodedata", "_pydecimal", "numbers")

_IMPORT_NAME = _opcode.opmap["IMPORT_NAME"]
_getframe = sys._getframe
_active = _given["active"]  # the current Guard
_originals = _given["originals"]


def _prefixes(name):
    """'a.b.c' -> 'a', 'a.b', 'a.b.c'."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


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


class _ImportChecks:
    """The checks of a user import (a part of Guard, see policy.py)."""

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


# --- the wrappers (installed once per process) ----------------------------------------------
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


def _wrap_imports():
    """Once per process (policy.py _setup): keeps the originals, puts the wrappers in
    their place."""
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
