"""pycell session: one sandboxed interpreter that runs request after request in the same
__main__ (a notebook kernel); and the reader of the request lines (_Lines), which a single
run uses for its one request.

Requests arrive as lines on fd 3, results leave as lines on fd 4, and the program's
stdout/stderr stay open between runs: the server reads a run's output up to its result
line. The server interrupts a run with SIGINT (KeyboardInterrupt in the program) before it
resorts to SIGKILL; a run's CPU limit is the soft RLIMIT_CPU, whose SIGXCPU raises
CPUTimeLimitExceeded (the hard limit is the session's whole budget).

Part of the bootstrap (bootstrap.py), which loads this file by path from beside itself (no
import finds it, so the program cannot reach it by name). Every builtin and function it
calls is its own reference, taken when it was loaded, which the program cannot rebind.
Embedded in the C++ binary as a raw string literal, so it must never contain that
literal's closing delimiter.

Given by the bootstrap before this code runs (`_given`, see bootstrap.py _load_module):
what a run needs of it, as functions (the request's path, the result channel) and
CPUTimeLimitExceeded.
"""
import builtins, contextlib, io, json, os, resource, signal, sys

# Snapshot the builtins into our own globals (searched before builtins), so user code that
# rebinds builtins.BaseException, ... cannot change what this module calls.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("_")})

_os_read, _os_exit = os.read, os._exit
_json_loads = json.loads
_TextIOWrapper, _BytesIO = io.TextIOWrapper, io.BytesIO
_sys = sys  # the interpreter's own module: sys.stdin is set on it
_getrusage, _getrlimit, _setrlimit = resource.getrusage, resource.getrlimit, resource.setrlimit
_RUSAGE_SELF, _RLIMIT_CPU, _RLIM_INFINITY = resource.RUSAGE_SELF, resource.RLIMIT_CPU, resource.RLIM_INFINITY
_signal, _SIGINT, _SIGXCPU = signal.signal, signal.SIGINT, signal.SIGXCPU
_suppress = contextlib.suppress
_begin = _given["begin"]                  # the session's token and rlimits
_fresh_main = _given["fresh_main"]
_result_of = _given["result_of"]          # runs one request: (exitCode, result document)
_send_line, _send = _given["send_line"], _given["send"]  # to the result channel
_forked = _given["forked"]                # in a fork()ed copy of the program
_flush_stdio, _stderr, _safe_str = _given["flush_stdio"], _given["stderr"], _given["safe_str"]
_interruptible = _given["interruptible"]  # True only while the program's own code runs
CPUTimeLimitExceeded = _given["CPUTimeLimitExceeded"]


class _Lines:
    """Newline-ended JSON documents from an fd (the server's JSON has no raw newlines):
    one request for a single run, one after another in a session."""

    def __init__(self, fd):
        self.fd, self.chunks = fd, []

    def next(self):
        """The next line without its newline; the rest at EOF; None when nothing is left."""
        line = self._buffered()
        if line is not None:
            return line
        while True:
            chunk = _os_read(self.fd, 1 << 16)
            if not chunk:
                data, self.chunks = b"".join(self.chunks), []
                return data or None
            cut = chunk.find(b"\n")
            if cut >= 0:
                data = b"".join(self.chunks) + chunk[:cut]
                self.chunks = [chunk[cut + 1:]] if cut + 1 < len(chunk) else []
                return data
            self.chunks.append(chunk)

    def _buffered(self):
        """A whole line already read, if any (in a session, requests may arrive together)."""
        data = b"".join(self.chunks)
        cut = data.find(b"\n")
        if cut < 0:
            self.chunks = [data] if data else []
            return None
        self.chunks = [data[cut + 1:]] if cut + 1 < len(data) else []
        return data[:cut]


def _on_interrupt(signum, frame):
    if _interruptible():
        raise KeyboardInterrupt


def _on_cpu_limit(signum, frame):
    if _interruptible():
        raise CPUTimeLimitExceeded("the run used more than its CPU time limit")


def _cpu_seconds_used():
    own = _getrusage(_RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _arm_cpu_limit(cpu_ms):
    """Soft RLIMIT_CPU at this run's share; the hard limit (the session's budget) stays."""
    soft, hard = _getrlimit(_RLIMIT_CPU)
    want = int(_cpu_seconds_used() + (cpu_ms + 999) // 1000) + 1
    if hard != _RLIM_INFINITY:
        want = min(want, hard)
    with _suppress(ValueError, OSError):
        _setrlimit(_RLIMIT_CPU, (want, hard))


def _disarm_cpu_limit():
    soft, hard = _getrlimit(_RLIMIT_CPU)
    with _suppress(ValueError, OSError):
        _setrlimit(_RLIMIT_CPU, (hard, hard))


def _session(reader, header):
    """Serves requests until fd 3 reaches EOF; returns the exit code."""
    try:
        _begin(_json_loads(header)["session"])
        _signal(_SIGINT, _on_interrupt)
        _signal(_SIGXCPU, _on_cpu_limit)
        _sys.stdin = _TextIOWrapper(_BytesIO(b""), encoding="utf-8")
        main = _fresh_main()
    except BaseException as e:
        _stderr("pycell bootstrap: cannot start the session: %s\n" % _safe_str(e))
        return 70
    _send_line(b'"ready":true}\n')
    runs = 0
    while True:
        try:
            line = reader.next()
        except KeyboardInterrupt:
            continue
        if line is None:
            return 0
        runs += 1
        document = _result_of(line, main, "<pycell-%d>" % runs)[1]
        _disarm_cpu_limit()
        if _forked():
            _os_exit(0)  # a fork()ed copy of the program ends here, silently
        _flush_stdio()
        try:
            _send(document)
        except OSError:
            return 0  # the server is gone
        document = None
