"""pycell policy, the audit hook: file opens, network and process activity, dynamic code and
the back doors to removed builtins, as the interpreter's audit events (PEP 578) report them.

Part of the policy layer (policy.py, whose docstring lists the events recorded and the
builtins caught here), which loads this file by path from beside itself when it is loaded,
before any of the user's code runs: no import finds it, so the program cannot reach it by
name. policy.py's _setup adds _hook, once per process. Embedded in the C++ binary as a raw
string literal, so it must never contain that literal's closing delimiter.

Given by policy.py before this code runs (`_given`, see policy.py _load_part):
PolicyViolation, the active Guard's holder (`active`, a one-item list), the set of thread
ids inside the hook or inside emit (`busy`), and the helpers `cap` (policy_events.py) and
`under` (policy_attribution.py).
"""
import os
import sys
from _thread import get_ident as _get_ident

_getframe = sys._getframe
PolicyViolation = _given["PolicyViolation"]
_active = _given["active"]  # the current Guard
_busy = _given["busy"]  # thread ids inside the hook or inside emit
_cap, _under = _given["cap"], _given["under"]
_FAMILIES = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}


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


class _AuditChecks:
    """What the audit events mean for the active policy (a part of Guard, see policy.py)."""

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


# --- the hook (installed once per process) ----------------------------------------------------
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
