"""pycell bootstrap: runs one untrusted Python program inside the sandbox.

Run as `python3 -I -B -u -X utf8 /.pycell/bootstrap.py` in the working directory, or
imported by a zygote that calls `_main()` in each child it forks; either way fd 0/1/2 are
the program's, fd 3 holds the request JSON, fd 4 gets the result JSON.
Standard library only, Python 3.9+. Embedded in the C++ binary as a raw string
literal, so it must never contain that literal's closing delimiter.
"""
import ast, base64, builtins, contextlib, errno, fcntl, json, linecache, os, resource, sys, types
import traceback  # imported now: nothing may need importing after a MemoryError

# Snapshot the builtins into our own globals (searched before builtins), so
# user code that rebinds builtins.repr, builtins.BaseException, ... cannot
# change what the bootstrap calls after the program has run.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("_")})

# Likewise keep private references to the module functions used later: user
# code may monkeypatch os.write, json.dumps and friends.
_os_read, _os_write, _os_close, _os_exit = os.read, os.write, os.close, os._exit
_os_open, _os_mkdir, _os_getpid = os.open, os.mkdir, os.getpid
_suppress = contextlib.suppress
_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_format_exception, _walk_tb = traceback.format_exception, traceback.walk_tb
_stdio = (sys.stdout, sys.stderr)
_SELF = sys._getframe().f_code.co_filename  # frames of this file are hidden
_PID = None  # set by _main(): a fork()ed child of the user program must not report
_TEXT_LIMIT = 8192  # characters kept of an error message or traceback line
_reserve = bytearray(1 << 20)  # freed on MemoryError to leave room for reporting
_FALLBACK = (b'{"status":"error","exitCode":70,"value":null,"valueRepr":null,"error":'
             b'{"type":"BootstrapError","message":"failed to build the result",'
             b'"traceback":[],"line":null}}')


def _hide_fd(fd):
    """Move the result channel to a high close-on-exec fd, out of plain sight."""
    for low in (min(os.sysconf("SC_OPEN_MAX"), 1024) - 1, 10):
        try:
            new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
        except OSError as e:
            if e.errno == errno.EBADF:
                return None  # no result channel: still run the program
            continue  # low is at or above RLIMIT_NOFILE, or no fd is free
        _os_close(fd)
        return new
    os.set_inheritable(fd, False)
    return fd


_RESULT_FD = None  # set by _main()


class _FileError(Exception):
    pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[_os_write(fd, view):]


def _stderr(text):
    with _suppress(OSError):
        _write_all(2, text.encode("utf-8", "backslashreplace"))


def _cap(text, limit):
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "\u2026"


def _safe_str(obj):
    try:
        return str(obj)
    except BaseException as e:
        return "<str failed: %s>" % type(e).__name__


def _error(kind, message, traceback_lines=(), line=None):
    return {"type": kind, "message": _cap(message, _TEXT_LIMIT),
            "traceback": [_cap(t, _TEXT_LIMIT) for t in traceback_lines], "line": line}


def _read_request():
    data = b"".join(iter(lambda: _os_read(3, 1 << 16), b""))  # to EOF
    _os_close(3)
    request = json.loads(data)
    if not isinstance(request, dict) or not isinstance(request.get("code"), str):
        raise ValueError("request must be an object with a string 'code'")
    return request


def _check_file(rel, spec):
    """Validate one `files` entry; returns (path components, bytes)."""
    if not isinstance(rel, str) or rel.startswith("/") or "\0" in rel:
        raise _FileError("invalid file path: %r" % (rel,))
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise _FileError("file path must stay inside the working directory: %r" % rel)
    try:
        if isinstance(spec, dict) and len(spec) == 1 and isinstance(spec.get("text"), str):
            return parts, spec["text"].encode("utf-8")
        if isinstance(spec, dict) and len(spec) == 1 and isinstance(spec.get("base64"), str):
            return parts, base64.b64decode(spec["base64"], validate=True)
    except ValueError as e:  # binascii.Error, or lone surrogates in the text
        raise _FileError("%s: bad content: %s" % (rel, e))
    raise _FileError('%s: content must be {"text": str} or {"base64": str}' % rel)


def _write_files(files):
    if not isinstance(files, (dict, type(None))):
        raise _FileError("files must be an object")
    todo = [(rel, *_check_file(rel, spec)) for rel, spec in (files or {}).items()]
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    for rel, parts, data in todo:  # only once all entries proved valid
        # Walk with O_NOFOLLOW from directory fds: a symlink (a session may
        # keep one from an earlier run) is refused, never followed.
        dirfd = _os_open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in parts[:-1]:
                with _suppress(FileExistsError):
                    _os_mkdir(name, 0o755, dir_fd=dirfd)
                sub = _os_open(name, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=dirfd)
                _os_close(dirfd)
                dirfd = sub
            fd = _os_open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | nofollow,
                          0o644, dir_fd=dirfd)
            try:
                _write_all(fd, data)
            finally:
                _os_close(fd)
        except OSError as e:
            symlink = e.errno in (errno.ELOOP, errno.ENOTDIR)
            raise _FileError("%s: %s" % (rel, "path goes through a symlink or non-directory"
                                         if symlink else e.strerror or e))
        finally:
            _os_close(dirfd)


def _compile(code):
    """Returns (code of all but a trailing expression, that expression's code or None)."""
    tree = compile(code, "<pycell>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), "<pycell>", "eval",
                       dont_inherit=True)
    return compile(tree, "<pycell>", "exec", dont_inherit=True), last


def _pycell_line(exc, tb):
    """1-based line in the user's code: the deepest <pycell> frame."""
    if isinstance(exc, SyntaxError) and exc.filename == "<pycell>":
        return exc.lineno if isinstance(exc.lineno, int) else None
    line = None
    for frame, lineno in _walk_tb(tb):
        if frame.f_code.co_filename == "<pycell>" and lineno is not None:
            line = lineno
    return line


def _exception_result(exc, main):
    """Report an uncaught exception like Python does; returns (status, exitCode, error)."""
    global _reserve
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _SELF:
        tb = tb.tb_next  # drop the bootstrap's own frames
    if isinstance(exc, MemoryError):
        # Release what the program holds so that reporting has memory to use.
        _reserve = None
        main.__dict__.clear()
        for frame, _ in _walk_tb(tb):
            with _suppress(RuntimeError):
                frame.clear()  # drops locals; code and line numbers survive
    syntax = isinstance(exc, SyntaxError) and exc.filename == "<pycell>"
    if syntax and exc.text is None and exc.lineno:  # compiler errors lack the text
        exc.text = linecache.getline("<pycell>", exc.lineno) or None
    try:
        text = "".join(_format_exception(type(exc), exc, tb))
    except BaseException:
        text = "%s: %s\n" % (type(exc).__name__, _safe_str(exc))
    _stderr(text)
    # str(SyntaxError) appends "(<pycell>, line N)"; the bare msg reads better.
    message = exc.msg if syntax and isinstance(exc.msg, str) else _safe_str(exc)
    error = _error(type(exc).__name__, message, text.splitlines(), _pycell_line(exc, tb))
    return ("memory_limit" if isinstance(exc, MemoryError) else "error"), 1, error


def _exit_result(exc):
    """SystemExit as Python treats it; returns (status, exitCode, error)."""
    code = exc.code
    if code is None or isinstance(code, int):
        rc = (code or 0) & 0xFF  # what the parent sees as the exit status
    else:
        _stderr(_safe_str(code) + "\n")
        rc = 1
    if rc == 0:
        return "ok", 0, None
    return "error", rc, _error("SystemExit", _safe_str(code), (),
                               _pycell_line(exc, exc.__traceback__))


def _describe_value(value, request):
    """Returns (JSON text or None, capped repr) within the request's limits."""
    max_value, max_repr = request.get("maxValueBytes"), request.get("maxReprBytes")
    max_value = max_value if type(max_value) is int and max_value >= 0 else 1048576
    max_repr = max_repr if type(max_repr) is int and max_repr >= 0 else 4096
    try:
        value_json = _encode(value)  # ASCII only, so characters == bytes
        value_json = value_json if len(value_json) <= max_value else None
    except Exception:
        value_json = None
    try:
        value_repr = _cap(repr(value), max_repr)
    except BaseException as e:
        value_repr = "<repr failed: %s>" % type(e).__name__
    return value_json, value_repr


def _tighten_limits(rows):
    """Per-request rlimits ([resource, soft, hard] rows) that may only lower the child's."""
    for res, soft, hard in rows or ():
        old_soft, old_hard = resource.getrlimit(res)
        cap = lambda v, old: v if old == resource.RLIM_INFINITY else min(v, old)  # noqa: E731
        resource.setrlimit(res, (cap(soft, old_soft), cap(hard, old_hard)))


def _run():
    """Does the whole job; returns (status, exitCode, value JSON, valueRepr, error)."""
    try:
        request = _read_request()
        _tighten_limits(request.get("rlimits"))
    except Exception as e:
        message = "cannot read the request: %s" % _safe_str(e)
        _stderr("pycell bootstrap: %s\n" % message)
        return "error", 70, None, None, _error("BootstrapError", message)
    try:
        _write_files(request.get("files"))
    except _FileError as e:
        _stderr("FileError: %s\n" % e)
        return "error", 1, None, None, _error("FileError", str(e))

    code = request["code"]
    linecache.cache["<pycell>"] = (len(code), None, code.splitlines(True), "<pycell>")
    # A real module as __main__ so that pickle, dataclasses and typing find
    # user classes, and `import __main__` does not expose the bootstrap.
    main = types.ModuleType("__main__")
    main.__dict__.update({"__builtins__": builtins, "inputs": request.get("inputs")})
    sys.modules["__main__"] = main
    sys.argv = ["<pycell>"]
    sys.path.insert(0, os.getcwd())  # -I leaves it out; `files` may be modules

    has_value, value, status, rc, error = False, None, "ok", 0, None
    try:
        body, last = _compile(code)
        exec(body, main.__dict__)
        if last is not None:
            value, has_value = eval(last, main.__dict__), True
        elif "result" in main.__dict__:
            value, has_value = main.__dict__["result"], True
    except SystemExit as e:
        status, rc, error = _exit_result(e)
    except BaseException as e:
        status, rc, error = _exception_result(e, main)

    sys.settrace(None)  # the program's tracer must not see the reporting
    sys.setprofile(None)
    threading = sys.modules.get("threading")
    with _suppress(BaseException):  # Python waits for non-daemon threads at exit
        for thread in threading.enumerate() if threading else ():
            if not thread.daemon and thread is not threading.main_thread():
                thread.join()

    if error is not None or not has_value:
        return status, rc, None, None, error
    value_json, value_repr = _describe_value(value, request)
    return status, rc, value_json, value_repr, None


def _usage():
    """CPU time and peak memory of the program and the children it waited for: the server
    may answer from this before the kernel has finished tearing the sandbox down."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpuUserMs": int((own.ru_utime + kids.ru_utime) * 1000),
            "cpuSysMs": int((own.ru_stime + kids.ru_stime) * 1000),
            "maxRssKb": max(own.ru_maxrss, kids.ru_maxrss)}


def _main():
    global _RESULT_FD, _PID
    _RESULT_FD = _hide_fd(4)
    _PID = _os_getpid()
    try:
        status, rc, value_json, value_repr, error = _run()
        document = ('{"status":%s,"exitCode":%d,"value":%s,"valueRepr":%s,"error":%s,"usage":%s}' % (
            _encode(status), rc, value_json or "null", _encode(value_repr),
            _encode(error), _encode(_usage()))).encode("ascii")
    except BaseException:
        document, rc = _FALLBACK, 70
    for stream in (sys.stdout, sys.stderr) + _stdio:
        with _suppress(BaseException):
            stream.flush()
    if _RESULT_FD is not None and _os_getpid() == _PID:
        # Our ends of the program's stdio close before the result goes: the server then
        # has all output when the result arrives, without waiting for the exit itself.
        for fd in (0, 1, 2):
            with _suppress(OSError):
                _os_close(fd)
        with _suppress(OSError):
            _write_all(_RESULT_FD, document)
            _os_close(_RESULT_FD)
    _os_exit(rc)


def _warm_up():
    """In a pooled child, before it waits for its request: the first pass through the
    bootstrap's own code copies the pages it writes (reference counts) from the zygote.
    Done now, that cost is not paid on the request path."""
    with _suppress(BaseException):
        request = json.loads('{"code": "x = 1\\nx", "files": {}, "inputs": null}')
        body, last = _compile(request["code"])
        scratch = {"__builtins__": builtins}
        exec(body, scratch)
        _describe_value(eval(last, scratch), request)
        _encode(_error("Warm", "up"))
        _encode(_usage())


if __name__ == "__main__":
    _main()
