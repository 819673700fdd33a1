"""pycell errors: how the program ended, as the result's status, exit code and error.

An uncaught exception is reported as Python reports it (the traceback on stderr, without
the bootstrap's frames), a SystemExit as Python treats it; the error names the line of
the user's code it came from. Part of the bootstrap (bootstrap.py), which loads this file
by path from beside itself (no import finds it, so the program cannot reach it by name).
Every builtin and function it calls is its own reference, taken when it was loaded, which
the program cannot rebind; nothing here imports anything after a MemoryError. Embedded in
the C++ binary as a raw string literal, so it must never contain that literal's closing
delimiter.

Given by the bootstrap before this code runs (`_given`, see bootstrap.py _load_module):
the values module, its stderr writer, the files whose frames are hidden (the bootstrap's
first), the cap on a message or traceback line, and CPUTimeLimitExceeded.
"""
import builtins, contextlib, linecache
import traceback  # imported now: nothing may need importing after a MemoryError

# Snapshot the builtins into our own globals (searched before builtins), so user code that
# rebinds builtins.isinstance, builtins.BaseException, ... cannot change what this calls.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("_")})

_format_exception, _walk_tb = traceback.format_exception, traceback.walk_tb
_getline = linecache.getline
_suppress = contextlib.suppress
_cap, _safe_str = _given["values"]._cap, _given["values"]._safe_str
_stderr, _TEXT_LIMIT = _given["stderr"], _given["text_limit"]
_HIDDEN = _given["hidden"]
_SELF = _HIDDEN[0]
CPUTimeLimitExceeded = _given["CPUTimeLimitExceeded"]
_reserve = bytearray(1 << 20)  # freed on MemoryError to leave room for reporting


def _error(kind, message, traceback_lines=(), line=None):
    return {"type": kind, "message": _cap(message, _TEXT_LIMIT),
            "traceback": [_cap(t, _TEXT_LIMIT) for t in traceback_lines], "line": line}


def _pycell_line(exc, tb, cell):
    """1-based line in the user's code: the deepest frame of this run's code (`cell`)."""
    if isinstance(exc, SyntaxError) and exc.filename == cell:
        return exc.lineno if isinstance(exc.lineno, int) else None
    line = None
    for frame, lineno in _walk_tb(tb):
        if frame.f_code.co_filename == cell and lineno is not None:
            line = lineno
    return line


def _tb_entries(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _exception_result(exc, main, cell):
    """Report an uncaught exception like Python does; returns (status, exitCode, error)."""
    global _reserve
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _SELF:
        tb = tb.tb_next  # drop the bootstrap's own frames (the exec call)...
    last_user = None
    for entry in _tb_entries(tb):
        if entry.tb_frame.f_code.co_filename not in _HIDDEN:
            last_user = entry
    if last_user is not None and last_user.tb_next is not None:
        with _suppress(Exception):
            last_user.tb_next = None  # ...and the interrupt handler's, or the policy's
    if isinstance(exc, MemoryError) and main is not None:
        # Release what the program holds so that reporting has memory to use.
        _reserve = None
        main.__dict__.clear()
        for frame, _ in _walk_tb(tb):
            with _suppress(RuntimeError):
                frame.clear()  # drops locals; code and line numbers survive
    syntax = isinstance(exc, SyntaxError) and exc.filename == cell
    if syntax and exc.text is None and exc.lineno:  # compiler errors lack the text
        exc.text = _getline(cell, exc.lineno) or None
    try:
        text = "".join(_format_exception(type(exc), exc, tb))
    except BaseException:
        text = "%s: %s\n" % (type(exc).__name__, _safe_str(exc))
    _stderr(text)
    # str(SyntaxError) appends "(<pycell>, line N)"; the bare msg reads better.
    message = exc.msg if syntax and isinstance(exc.msg, str) else _safe_str(exc)
    error = _error(type(exc).__name__, message, text.splitlines(), _pycell_line(exc, tb, cell))
    status = "memory_limit" if isinstance(exc, MemoryError) else "error"
    if isinstance(exc, CPUTimeLimitExceeded):
        status = "timeout"
    return status, 1, error


def _exit_result(exc, cell):
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
                               _pycell_line(exc, exc.__traceback__, cell))
