"""pycell bootstrap: runs one untrusted Python program inside the sandbox.

Run as `python3 -I -B -u -X utf8 /.pycell/bootstrap.py` in the working directory, or
imported by a zygote that calls `_main()` in each child it forks; either way fd 0/1/2 are
the program's, fd 3 holds the request JSON, fd 4 gets the result JSON.
Standard library only, Python 3.9+. Embedded in the C++ binary as a raw string
literal, so it must never contain that literal's closing delimiter.

This file reads the request, runs the program and reports its result, and wires in the
policy layer (policy.py). The rest of the bootstrap is in modules beside it, loaded by
path when this file is (_load_module): values.py (the value as plain JSON, numpy and
pandas values included, and its repr), displays.py (matplotlib figures and rich reprs as
mime bundles in `displays`), files.py (the request's `files` written, the `returnFiles`
read back) and session.py (the loop of a session's runs). None of them imports numpy,
pandas or matplotlib itself: they use what the program (or the zygote's preload) already
has in sys.modules, and recognise types by class name.
"""
import ast, builtins, contextlib, errno, fcntl, importlib.util, io, json, linecache, os
import resource, sys, types
import traceback  # imported now: nothing may need importing after a MemoryError

# Snapshot the builtins into our own globals (searched before builtins), so
# user code that rebinds builtins.repr, builtins.BaseException, ... cannot
# change what the bootstrap calls after the program has run. Each module beside this file
# does the same.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("_")})

# Likewise keep private references to the module functions used later: user
# code may monkeypatch os.write, json.dumps and friends.
_os_read, _os_write, _os_close, _os_exit = os.read, os.write, os.close, os._exit
_os_open, _os_getpid, _os_getcwd = os.open, os.getpid, os.getcwd
_b2a_base64 = __import__("binascii").b2a_base64
_BytesIO = io.BytesIO
_modules = sys.modules  # the interpreter's own object
_suppress = contextlib.suppress
_json_loads, _json_dumps = json.loads, json.dumps
_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_format_exception, _walk_tb = traceback.format_exception, traceback.walk_tb
_spec_from_file_location, _module_from_spec = importlib.util.spec_from_file_location, importlib.util.module_from_spec
_getrlimit, _setrlimit, _RLIM_INFINITY = resource.getrlimit, resource.setrlimit, resource.RLIM_INFINITY
_getrusage = resource.getrusage
_stdio = (sys.stdout, sys.stderr)
_SELF = sys._getframe().f_code.co_filename  # frames of this file are hidden
_PID = None  # set by _main(): a fork()ed child of the user program must not report
_TEXT_LIMIT = 8192  # characters kept of an error message or traceback line
_cell = "<pycell>"  # the filename the program's code is compiled under ("<pycell-N>" in a session)
# Caps on what is reported; a request may set each (the server sends none of them today).
_DEFAULT_CAPS = {
    "maxValueBytes": 1 << 20,         # the value's JSON; over it: null and valueTruncated
    "maxReprBytes": 4096,             # valueRepr, in characters
    "maxDisplayBytes": 8 << 20,       # all displays together, as JSON text
    "maxFigurePixels": 25000000,      # a larger figure is not rendered
    "maxFileBytes": 16 << 20,         # one returned file
    "maxTotalFileBytes": 32 << 20,    # all returned files together (before base64)
    "maxFiles": 1000,                 # returned files
    "maxScanEntries": 100000,         # directory entries looked at for returnFiles
    "maxSkippedListed": 100,          # entries of skippedFiles; the rest are counted on stderr
}
_caps = dict(_DEFAULT_CAPS)  # this run's caps, set by _run() (displays and files read them)
_FALLBACK = (b'"status":"error","exitCode":70,"value":null,"valueRepr":null,"error":'
             b'{"type":"BootstrapError","message":"failed to build the result",'
             b'"traceback":[],"line":null}}\n')
# Every line written for a request starts with the request's token: the server takes only
# lines that carry the token it gave the current request (src/exec/result_channel.cc).
# The leading newline ends whatever a program's thread may have left half-written.
_line_head = b'\n{"t":"",'


def _set_token(request):
    global _line_head
    token = request.get("token") if isinstance(request, dict) else None
    if not isinstance(token, str) or not token.isalnum() or len(token) > 64:
        token = ""
    _line_head = b'\n{"t":"' + token.encode("ascii") + b'",'


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
_interruptible = False  # True only while the program's own code runs (a session's SIGINT)


class CPUTimeLimitExceeded(BaseException):
    """The run used more than its CPU time limit (a session's per-run limit)."""


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[_os_write(fd, view):]


def _stderr(text):
    with _suppress(OSError):
        _write_all(2, text.encode("utf-8", "backslashreplace"))


# --- the modules beside this file ------------------------------------------------------------
# Each sits next to this file ("/.pycell/values.py", or ".pycell-values.py" beside
# ".pycell-bootstrap.py" without a mount namespace), as policy.py does. Their frames are
# hidden like this file's.
def _beside(name):
    return os.path.join(os.path.dirname(_SELF), os.path.basename(_SELF).replace("bootstrap", name))


def _load_module(name, **given):
    """Loads the module `name` from beside this file, by path, as a zygote loads this file:
    it is in no sys.modules entry and no sys.path directory, so the program cannot import
    it by name. `given` (what it uses of the bootstrap and of the modules loaded before
    it) is its `_given` while its code runs, which takes each into its own globals."""
    spec = _spec_from_file_location("pycell_" + name, _beside(name))
    module = _module_from_spec(spec)
    module._given = given
    spec.loader.exec_module(module)
    del module._given
    return module


def _pycell_files():
    """pycell's other Python files beside this one, whose frames are hidden like this
    file's: every one in /.pycell/, or the ".pycell-*.py" of the work directory without a
    mount namespace (listed now, before the program can write any)."""
    folder, prefix = os.path.dirname(_SELF), os.path.basename(_SELF).replace("bootstrap.py", "")
    with _suppress(OSError):
        return tuple(os.path.join(folder, n) for n in sorted(os.listdir(folder or "."))
                     if n.startswith(prefix) and n.endswith(".py") and os.path.join(folder, n) != _SELF)
    return ()


_HIDDEN = (_SELF,) + _pycell_files()
_policy_module = None
_values = _load_module("values")
_clean, _cap, _safe_str, _describe_value = _values._clean, _values._cap, _values._safe_str, _values._describe_value
_errors = _load_module("errors", values=_values, stderr=_stderr, hidden=_HIDDEN, text_limit=_TEXT_LIMIT,
                       CPUTimeLimitExceeded=CPUTimeLimitExceeded)
_error, _exception_result, _exit_result = _errors._error, _errors._exception_result, _errors._exit_result
_files = _load_module("files", values=_values, write_all=_write_all, stderr=_stderr, caps=_caps)
_FileError, _write_files = _files._FileError, _files._write_files
_compile_globs, _collect_files = _files._compile_globs, _files._collect_files
_display = _load_module("displays", values=_values, stderr=_stderr, caps=_caps, text_limit=_TEXT_LIMIT)
_displays, _reset_displays = _display._displays, _display._reset  # the run's displays, as JSON texts
_hook_pyplot, _collect_displays = _display._hook_pyplot, _display._collect_displays


def _parse_request(data):
    request = _json_loads(data)
    if not isinstance(request, dict) or not isinstance(request.get("code"), str):
        raise ValueError("request must be an object with a string 'code'")
    return request



def _compile(code):
    """Returns (code of all but a trailing expression, that expression's code or None)."""
    tree = compile(code, _cell, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), _cell, "eval",
                       dont_inherit=True)
    return compile(tree, _cell, "exec", dont_inherit=True), last


def _tighten_limits(rows):
    """Per-request rlimits ([resource, soft, hard] rows) that may only lower the child's."""
    for res, soft, hard in rows or ():
        old_soft, old_hard = _getrlimit(res)
        cap = lambda v, old: v if old == _RLIM_INFINITY else min(v, old)  # noqa: E731
        _setrlimit(res, (cap(soft, old_soft), cap(hard, old_hard)))


def _cap_setting(request, name):
    value = request.get(name)
    return value if type(value) is int and value >= 0 else _DEFAULT_CAPS[name]


def _load_policy():
    global _policy_module
    if _policy_module is None:
        _policy_module = _load_module("policy")
    return _policy_module


def _prepare_policy(policy):
    """In a zygote: the guard for the profile's policy, made once (children rearm it)."""
    _load_policy().prepare(policy)


def _emit_event(event):
    """An activity event goes to the server at once, one line per event: what the program
    does afterwards (unhooking, rewriting our lists) cannot take it back."""
    with _suppress(OSError, ValueError, TypeError):
        _write_all(_RESULT_FD, _line_head + b'"event":' + _encode(event).encode("ascii") + b"}\n")


def _fresh_main():
    """A real module as __main__, so that pickle, dataclasses and typing find user
    classes, and `import __main__` does not expose the bootstrap."""
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.argv = ["<pycell>"]
    sys.path.insert(0, _os_getcwd())  # -I leaves it out; `files` may be modules
    with _suppress(Exception):
        _hook_pyplot()
    return main


def _start_request(line):
    """The request from its JSON text, with its token, rlimits and caps in force; raises
    when there is none or it cannot be read."""
    if line is None:
        raise ValueError("no request arrived")
    request = _parse_request(line)
    _set_token(request)
    _tighten_limits(request.get("rlimits"))
    _caps.update({name: _cap_setting(request, name) for name in _DEFAULT_CAPS})
    return request


def _bootstrap_error(report, message):
    """The report of a run that could not start: the bootstrap's own error (exit code 70)."""
    _stderr("pycell bootstrap: %s\n" % message)
    report.update(status="error", exitCode=70, error=_error("BootstrapError", message))
    return report


def _prepare_main(request, main):
    """The program's __main__ (a fresh one unless a session passes its own), holding the
    request's inputs, with the request's code in linecache and its stdin and CPU limit set."""
    code = request["code"]
    linecache.cache[_cell] = (len(code), None, code.splitlines(True), _cell)
    if main is None:
        main = _fresh_main()
    main.__dict__["inputs"] = request.get("inputs")
    if _cell[:1] != "<":  # execute.filename: what python3 FILE would set
        main.__dict__["__file__"], sys.argv[:1] = _cell, [_cell]
        if os.path.isabs(_cell) and os.path.dirname(_cell) not in sys.path:
            sys.path.insert(0, os.path.dirname(_cell))
    sys.modules["__main__"] = main
    if "stdin" in request:  # a session's stdin comes with each request
        sys.stdin = io.TextIOWrapper(_BytesIO(request["stdin"].encode("utf-8", "replace")), encoding="utf-8")
    cpu_ms = request.get("cpuMs")
    if type(cpu_ms) is int and cpu_ms > 0:  # a session's per-run CPU limit
        _arm_cpu_limit(cpu_ms)
    return main


def _execute(code, main):
    """Runs the program's code in `main`; returns (has_value, is_last, value, status, rc,
    error). The value is a trailing expression's (is_last), else a global `result`'s."""
    global _interruptible
    has_value, is_last, value, status, rc, error = False, False, None, "ok", 0, None
    try:
        body, last = _compile(code)
        _interruptible = True
        # The program's code starts now. The server interrupts a session's run only after
        # this line (a SIGINT before it would find nothing to interrupt).
        with _suppress(OSError, TypeError):
            _write_all(_RESULT_FD, _line_head + b'"started":true}\n')
        exec(body, main.__dict__)
        if last is not None:
            value, has_value, is_last = eval(last, main.__dict__), True, True
        elif "result" in main.__dict__:
            value, has_value = main.__dict__["result"], True
    except SystemExit as e:
        _interruptible = False
        status, rc, error = _exit_result(e, _cell)
    except BaseException as e:
        _interruptible = False
        if isinstance(e, KeyboardInterrupt):
            # The server's interrupt took: it now waits longer for this run's report.
            with _suppress(OSError, TypeError):
                _write_all(_RESULT_FD, _line_head + b'"stopped":true}\n')
        status, rc, error = _exception_result(e, main, _cell)
    _interruptible = False
    return has_value, is_last, value, status, rc, error


def _settle_program():
    """After the program's code: its tracer and profiler off (they must not see the
    reporting), and its non-daemon threads joined, as Python waits for them at exit."""
    sys.settrace(None)
    sys.setprofile(None)
    threading = _modules.get("threading")
    with _suppress(BaseException):
        for thread in threading.enumerate() if threading else ():
            if not thread.daemon and thread is not threading.main_thread():
                thread.join()


def _report_value(report, value, has_value, shown):
    """The value and its repr in the report, and the run's displays (`shown`: the value is a
    trailing expression's, displayed as a notebook would). Each part runs the program's
    objects' code (reprs, matplotlib): a failure there loses that part, never the report."""
    value_repr = None
    if report["error"] is None and has_value:
        value_json, value_repr, truncated, warnings = _describe_value(
            value, _caps["maxValueBytes"], _caps["maxReprBytes"])
        report.update(value=value_json, valueRepr=value_repr, valueTruncated=truncated, valueWarnings=warnings)
    try:
        _collect_displays(value, value_repr, shown)
    except BaseException as e:
        _stderr("pycell: displays not collected: %s\n" % type(e).__name__)


def _report_files(report, request, globs, root):
    """The returnFiles found under `root`, and those skipped when the request asked."""
    try:
        report["files"], skipped = _collect_files(globs, root)
        if request.get("returnFiles") is not None:
            report["skippedFiles"] = skipped
    except BaseException as e:
        report["files"] = []
        _stderr("pycell: returnFiles not collected: %s\n" % type(e).__name__)


def _apply_env(env):
    """The run's environment variables (the profile's env, execute.env over it; the server
    checked the names); returns the values they replaced, for _restore_env."""
    saved = {}
    if isinstance(env, dict):
        for name, value in env.items():
            if isinstance(name, str) and isinstance(value, str) and name and "=" not in name:
                saved[name] = os.environ.get(name)
                os.environ[name] = value
    return saved


def _restore_env(saved):
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _run(line, main=None, cell="<pycell>"):
    """Runs one request (its JSON text) and returns the report for _main() (see _document).
    A single run gets a fresh __main__; a session passes its own, kept between runs, and
    each run's cell name ("<pycell-N>")."""
    global _cell
    _cell = cell
    report = {"status": "ok", "exitCode": 0, "value": None, "valueRepr": None, "error": None,
              "valueTruncated": False, "valueWarnings": [], "files": [], "skippedFiles": None}
    try:
        request = _start_request(line)
    except Exception as e:
        return _bootstrap_error(report, "cannot read the request: %s" % _safe_str(e))
    if type(request.get("filename")) is str and request["filename"]:
        _cell = request["filename"]  # execute.filename: the program's own file, as python3 FILE
    _reset_displays()
    try:
        globs = _compile_globs(request.get("returnFiles"))
        _write_files(request.get("files"))
    except _FileError as e:
        _stderr("FileError: %s\n" % e)
        report.update(status="error", exitCode=1, error=_error("FileError", str(e)))
        return report
    root = _os_getcwd()  # the program may chdir; returnFiles are read from here

    main = _prepare_main(request, main)
    guard = None
    if request.get("policy") is not None:
        try:
            guard = _load_policy().activate(request["policy"], _emit_event, _cell)
        except BaseException as e:
            return _bootstrap_error(report, "cannot apply the profile's policy: %s" % _safe_str(e))
        main.__dict__["__builtins__"] = guard.builtins_module
    elif main.__dict__.get("__builtins__") is not builtins:
        main.__dict__["__builtins__"] = builtins

    saved_env = _apply_env(request.get("env"))
    has_value, is_last, value, status, rc, error = _execute(request["code"], main)
    _settle_program()
    _restore_env(saved_env)  # a session's next run starts from the session's own environment
    if guard is not None:
        status, rc, error = _load_policy().settle(guard, status, rc, error, _error)
    report.update(status=status, exitCode=rc, error=error)
    if _os_getpid() != _PID or status == "memory_limit":
        return report  # a fork()ed copy reports nothing; after a MemoryError, only that
    _report_value(report, value, has_value, has_value and is_last and error is None)
    value = None
    _report_files(report, request, globs, root)
    return report


def _usage():
    """CPU time and peak memory of the program and the children it waited for: the server
    may answer from this before the kernel has finished tearing the sandbox down."""
    own, kids = _getrusage(resource.RUSAGE_SELF), _getrusage(resource.RUSAGE_CHILDREN)
    return {"cpuUserMs": int((own.ru_utime + kids.ru_utime) * 1000),
            "cpuSysMs": int((own.ru_stime + kids.ru_stime) * 1000),
            "maxRssKb": max(own.ru_maxrss, kids.ru_maxrss)}


def _document(report):
    """The result JSON as a list of ASCII byte strings (the files' base64 is not copied
    into one big string): {status, exitCode, value, valueRepr, error, usage, displays,
    files} and, when set, valueTruncated, valueWarnings and skippedFiles."""
    head = '"status":%s,"exitCode":%d,"value":%s,"valueRepr":%s,"error":%s,"usage":%s' % (
        _encode(report["status"]), report["exitCode"], report["value"] or "null",
        _encode(report["valueRepr"]), _encode(report["error"]), _encode(_usage()))
    if report["valueTruncated"]:
        head += ',"valueTruncated":true'
    if report["valueWarnings"]:
        head += ',"valueWarnings":' + _encode(report["valueWarnings"])
    if report["skippedFiles"] is not None:
        head += ',"skippedFiles":' + _encode(report["skippedFiles"])
    parts = [head + ',"displays":[' + ",".join(_displays) + '],"files":[']
    for n, (path, size, data) in enumerate(report["files"]):
        parts.append('%s{"path":%s,"size":%d,"base64":"' % ("," if n else "", _encode(path), size))
        parts.append(_b2a_base64(data, newline=False))
        parts.append('"}')
    parts.append("]}\n")
    return [_line_head] + [p if type(p) is bytes else p.encode("ascii") for p in parts]


def _flush_stdio():
    for stream in (sys.stdout, sys.stderr) + _stdio:
        with _suppress(BaseException):
            stream.flush()


def _result_of(line, main=None, cell="<pycell>"):
    """Runs one request: (exitCode, the result document), the fallback if building it failed."""
    try:
        report = _run(line, main, cell)
        return report["exitCode"], _document(report)
    except BaseException:
        return 70, [_line_head, _FALLBACK]


def _send(parts):
    for part in parts:
        _write_all(_RESULT_FD, part)


def _send_line(body):
    _write_all(_RESULT_FD, _line_head + body)


def _forked():
    """Whether this is a fork()ed copy of the program (it reports nothing)."""
    return _os_getpid() != _PID


def _main():
    global _RESULT_FD, _PID
    _RESULT_FD = _hide_fd(4)
    _PID = _os_getpid()
    reader = _Lines(3)
    try:
        line = reader.next()
    except BaseException:
        line = None
    if line is not None and line.startswith(b'{"session"'):
        _os_exit(_session(reader, line))
    with _suppress(OSError):
        _os_close(3)
    rc, document = _result_of(line)
    _flush_stdio()
    if _RESULT_FD is not None and not _forked():
        # Our ends of the program's stdio close before the result goes: the server then
        # has all output when the result arrives, without waiting for the exit itself.
        for fd in (0, 1, 2):
            with _suppress(OSError):
                _os_close(fd)
        with _suppress(OSError):
            _send(document)
            _os_close(_RESULT_FD)
    _os_exit(rc)


def _warm_up(policy=None, code=None):
    """In a pooled child, before it waits for its request: one whole run of a stand-in
    request (the profile's policy and warm-up code, or a small program) through the same
    path a real one takes, its result encoded and dropped. The pages that path writes
    (reference counts, allocator state) are copied from the zygote now, not on the request
    path. Nothing reaches the server: there is no result fd yet, and what the warm-up code
    prints goes to stand-in streams. Returns the stand-in run's error, or None."""
    path, error = list(sys.path), None
    streams = sys.stdout, sys.stderr
    # A profile's own warm-up code may print: onto stand-ins, never onto the pipes the server
    # reads as the coming run's output. (The default stand-in program prints nothing; making
    # stand-ins for it was measured to cost each child pages and CPU for no faster run.)
    stand_ins = _stand_in_streams() if code else ()
    sys.stdout, sys.stderr = stand_ins or streams
    try:
        with _suppress(BaseException):
            request = {"code": code or "x = [1, 2.5]\nx", "files": {}, "inputs": None}
            if policy is not None:
                request["policy"] = policy
            report = _run(_json_dumps(request).encode())
            _document(report)
            error = report["error"]
    finally:
        sys.stdout, sys.stderr = streams
        for stream in stand_ins:
            with _suppress(BaseException):
                stream.close()
    sys.path[:] = path
    linecache.cache.pop(_cell, None)
    _reset_displays()
    return error  # the warm-up code's own failure (a real run reports it the same way)


def _stand_in_streams():
    """sys.stdout and sys.stderr for a profile's warm-up code: built as the real ones are (an
    unbuffered FileIO under a write-through text layer, with -u), on /dev/null, so what it
    prints goes through the same code as a program's output and reaches no pipe the server
    reads. () when one cannot be made."""
    made = []
    try:
        for real in (sys.stdout, sys.stderr):
            raw = io.FileIO(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC), "w", closefd=True)
            binary = raw if isinstance(getattr(real, "buffer", None), io.FileIO) else io.BufferedWriter(raw)
            made.append(io.TextIOWrapper(binary, encoding=real.encoding, errors=real.errors,
                                         line_buffering=real.line_buffering, write_through=real.write_through))
        return tuple(made)
    except Exception:  # noqa: BLE001 - the warm-up then prints nothing
        for stream in made:
            with _suppress(Exception):
                stream.close()
        return ()


def _begin_session(settings):
    _set_token(settings)
    _tighten_limits(settings.get("rlimits"))


# The session loop (session.py) and what it arms for each run: loaded last, as it uses the
# functions above.
_sessions = _load_module(
    "session", begin=_begin_session, fresh_main=_fresh_main, result_of=_result_of, send_line=_send_line,
    send=_send, forked=_forked, flush_stdio=_flush_stdio, stderr=_stderr, safe_str=_safe_str,
    interruptible=lambda: _interruptible, CPUTimeLimitExceeded=CPUTimeLimitExceeded)
_Lines, _session, _arm_cpu_limit = _sessions._Lines, _sessions._session, _sessions._arm_cpu_limit


if __name__ == "__main__":
    _main()
