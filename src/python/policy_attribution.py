"""pycell policy, attribution: which frames run the user's code, which files are the user's,
and the interpreter's own trees.

Part of the policy layer (policy.py, whose docstring says whose imports and opens are
checked), which loads this file by path from beside itself when it is loaded, before any of
the user's code runs: no import finds it, so the program cannot reach it by name. Embedded
in the C++ binary as a raw string literal, so it must never contain that literal's closing
delimiter.

Given by policy.py before this code runs (`_given`, see policy.py _load_part): the files of
the policy layer itself (`own_files`), whose frames are never the user's.
"""
import os
import sys

_OWN_FILES = frozenset(_given["own_files"])  # the policy layer's frames are never the user's
_PSEUDO = object()  # "<string>"-like code: decided by the frame that ran it


def _under(path, roots):
    for root in roots:
        if path == root or path.startswith(root if root.endswith("/") else root + "/"):
            return True
    return False


class _Attribution:
    """Whose code a frame runs (a part of Guard, see policy.py)."""

    def _classify(self, filename):
        if not isinstance(filename, str):
            return False
        if filename.startswith("<"):
            if filename.startswith("<pycell-"):  # a session's cells: "<pycell-N>"
                return True
            return False if filename.startswith("<frozen") else _PSEUDO
        if filename in _OWN_FILES:
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

    def set_program(self, program):
        """The program's code is compiled under `program` (execute.filename): its frames are
        the user's, and when it is an absolute path, the files of its directory are user files
        as the working directory's are (its sibling modules are checked as the program is).
        This only ever adds user files: what was the user's stays so."""
        if not isinstance(program, str) or program.startswith("<"):
            return
        self._frame_kind[program] = True
        directory = os.path.dirname(os.path.normpath(program)) if os.path.isabs(program) else None
        if not directory or directory in self._program_dirs:
            return
        self._program_dirs.add(directory)
        extra, before = _default_user_files(os.path.realpath(directory), self._system_roots), self._user_files
        self._user_files = lambda filename: bool(before(filename)) or (os.path.isabs(filename) and extra(filename))
        # What was classified as not the user's before may be now.
        self._frame_kind = {name: kind for name, kind in self._frame_kind.items() if kind is not False}
        self._user_modules = {}

    def _user_file(self, path):
        try:
            return bool(path) and bool(self._user_files(path))
        except Exception:  # noqa: BLE001
            return False


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
