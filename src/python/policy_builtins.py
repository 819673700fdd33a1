"""pycell policy, the builtins wrapping: the user's copy of the builtins with the removed
names disabled, and the finder that gives modules loaded from user files that copy.

Part of the policy layer (policy.py, whose docstring describes `guard.builtins` and what a
removed builtin does), which loads this file by path from beside itself when it is loaded,
before any of the user's code runs: no import finds it, so the program cannot reach it by
name. policy.py's _setup puts _UserModuleFinder first on sys.meta_path, once per process.
Embedded in the C++ binary as a raw string literal, so it must never contain that
literal's closing delimiter.

Given by policy.py before this code runs (`_given`, see policy.py _load_part): the active
Guard's holder (`active`, a one-item list).
"""
import builtins as _builtins
import sys
import types

_active = _given["active"]  # the current Guard


class _BuiltinsCopy:
    """The user's builtins (a part of Guard, see policy.py)."""

    def _copy_builtins(self):
        """`builtins_module` and `builtins`: the real ones with nothing removed, else a copy
        with each removed name (but __import__, which the wrapper checks) a stub."""
        if self.removed:
            module = types.ModuleType("builtins", _builtins.__doc__)
            module.__dict__.update(_builtins.__dict__)
            for name in self.removed:
                if name != "__import__":
                    module.__dict__[name] = self._stub(name)
            self.builtins_module, self.builtins = module, module.__dict__
        else:
            self.builtins_module, self.builtins = _builtins, _builtins.__dict__

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
