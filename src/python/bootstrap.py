"""pycell bootstrap: runs one untrusted Python program inside the sandbox.

Run as `python3 -I -B -u -X utf8 /.pycell/bootstrap.py` in the working directory, or
imported by a zygote that calls `_main()` in each child it forks; either way fd 0/1/2 are
the program's, fd 3 holds the request JSON, fd 4 gets the result JSON.
Standard library only, Python 3.9+. Embedded in the C++ binary as a raw string
literal, so it must never contain that literal's closing delimiter.

Besides running the program, it reports what the program left behind (issue 5): the value
as plain JSON (numpy and pandas values included, NaN as null), matplotlib figures and rich
reprs as mime bundles in `displays`, and the working-directory files the request's
`returnFiles` globs name. It imports numpy, pandas or matplotlib never itself: it only
uses what the program (or the zygote's preload) already has in sys.modules, and recognises
their types by class name so that no import is needed to tell a value apart.
"""
import ast, base64, binascii, builtins, contextlib, errno, fcntl, fnmatch, importlib.util, io, json, linecache, os, re
import resource, stat, sys, types, warnings
import traceback  # imported now: nothing may need importing after a MemoryError

# Snapshot the builtins into our own globals (searched before builtins), so
# user code that rebinds builtins.repr, builtins.BaseException, ... cannot
# change what the bootstrap calls after the program has run.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("_")})

# Likewise keep private references to the module functions used later: user
# code may monkeypatch os.write, json.dumps and friends.
_os_read, _os_write, _os_close, _os_exit = os.read, os.write, os.close, os._exit
_os_open, _os_mkdir, _os_getpid = os.open, os.mkdir, os.getpid
_os_fstat, _os_scandir, _os_readlink, _os_getcwd = os.fstat, os.scandir, os.readlink, os.getcwd
_S_ISREG, _ELOOP = stat.S_ISREG, errno.ELOOP
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_NOFOLLOW_DIR = _O_DIR | os.O_NOFOLLOW
_O_NOFOLLOW_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_b2a_base64 = binascii.b2a_base64
_BytesIO = io.BytesIO
_glob_translate, _re_compile = fnmatch.translate, re.compile
_filterwarnings = warnings.filterwarnings
_modules, _meta_path = sys.modules, sys.meta_path  # the interpreter's own objects
_suppress = contextlib.suppress
_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_format_exception, _walk_tb = traceback.format_exception, traceback.walk_tb
_stdio = (sys.stdout, sys.stderr)
_SELF = sys._getframe().f_code.co_filename  # frames of this file are hidden
# The policy module sits next to this file ("/.pycell/policy.py", or ".pycell-policy.py"
# beside ".pycell-bootstrap.py"); loaded when a request carries a policy (a zygote loads
# it once, for all its children). Its frames are hidden too.
_POLICY_PATH = os.path.join(os.path.dirname(_SELF), os.path.basename(_SELF).replace("bootstrap", "policy"))
_HIDDEN = (_SELF, _POLICY_PATH)
_policy_module = None
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
_reserve = bytearray(1 << 20)  # freed on MemoryError to leave room for reporting
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


class _FileError(Exception):
    pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[_os_write(fd, view):]


def _stderr(text):
    with _suppress(OSError):
        _write_all(2, text.encode("utf-8", "backslashreplace"))


_SURROGATES = dict.fromkeys(range(0xD800, 0xE000), 0xFFFD)


def _clean(text):
    """`text` (a str) without lone surrogates (from undecodable file names, str subclasses,
    reprs), as U+FFFD: JSON can spell them, but the server's parser rejects them."""
    try:
        str.encode(text, "utf-8")
        return text
    except UnicodeEncodeError:
        return str.translate(text, _SURROGATES)


def _cap(text, limit):
    text = text if len(text) <= limit else text[:max(limit - 1, 0)] + "\u2026"
    return _clean(text)


def _safe_str(obj):
    try:
        return str(obj)
    except BaseException as e:
        return "<str failed: %s>" % type(e).__name__


def _error(kind, message, traceback_lines=(), line=None):
    return {"type": kind, "message": _cap(message, _TEXT_LIMIT),
            "traceback": [_cap(t, _TEXT_LIMIT) for t in traceback_lines], "line": line}


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


def _parse_request(data):
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
    tree = compile(code, _cell, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), _cell, "eval",
                       dont_inherit=True)
    return compile(tree, _cell, "exec", dont_inherit=True), last


def _pycell_line(exc, tb):
    """1-based line in the user's code: the deepest frame of this run's code."""
    if isinstance(exc, SyntaxError) and exc.filename == _cell:
        return exc.lineno if isinstance(exc.lineno, int) else None
    line = None
    for frame, lineno in _walk_tb(tb):
        if frame.f_code.co_filename == _cell and lineno is not None:
            line = lineno
    return line


def _tb_entries(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _exception_result(exc, main):
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
    syntax = isinstance(exc, SyntaxError) and exc.filename == _cell
    if syntax and exc.text is None and exc.lineno:  # compiler errors lack the text
        exc.text = linecache.getline(_cell, exc.lineno) or None
    try:
        text = "".join(_format_exception(type(exc), exc, tb))
    except BaseException:
        text = "%s: %s\n" % (type(exc).__name__, _safe_str(exc))
    _stderr(text)
    # str(SyntaxError) appends "(<pycell>, line N)"; the bare msg reads better.
    message = exc.msg if syntax and isinstance(exc.msg, str) else _safe_str(exc)
    error = _error(type(exc).__name__, message, text.splitlines(), _pycell_line(exc, tb))
    status = "memory_limit" if isinstance(exc, MemoryError) else "error"
    if isinstance(exc, CPUTimeLimitExceeded):
        status = "timeout"
    return status, 1, error


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


# --- values -------------------------------------------------------------------------------
# Types are recognised by the (module, name) of a class in their MRO, so numpy, pandas,
# decimal, ... never need importing (a value of such a type implies the module is loaded),
# and a module attribute the program rebound (np.ndarray = ...) fools nothing.
_KINDS = {
    ("builtins", "int"): "int", ("builtins", "float"): "float", ("builtins", "str"): "str", ("builtins", "list"): "list", ("builtins", "tuple"): "list",
    ("builtins", "dict"): "dict", ("builtins", "set"): "set", ("builtins", "frozenset"): "set",
    ("builtins", "bytes"): "bytes", ("builtins", "bytearray"): "bytes",
    ("builtins", "memoryview"): "bytes",
    ("datetime", "datetime"): "iso", ("datetime", "date"): "iso", ("datetime", "time"): "iso",
    ("datetime", "timedelta"): "timedelta",
    ("decimal", "Decimal"): "decimal", ("fractions", "Fraction"): "fraction",
    ("numpy", "ndarray"): "numpy", ("numpy", "generic"): "numpy",
    ("pandas.core.frame", "DataFrame"): "dataframe", ("pandas.core.series", "Series"): "series",
    ("pandas.core.indexes.base", "Index"): "index",
    ("pandas._libs.tslibs.nattype", "NaTType"): "null", ("pandas._libs.missing", "NAType"): "null",
    ("matplotlib.figure", "Figure"): "figure",
}
_kind_cache = {}
_NoneType = type(None)
_PLAIN = (str, int, float, bool, _NoneType, list, tuple, dict)
_MAX_DEPTH = 200


class _TooBig(Exception):
    pass


class _Unsupported(Exception):
    pass


def _kind(t):
    """(kind, the class in t's MRO that decided it) for type t; kind "other" if none."""
    found = _kind_cache.get(t)
    if found is None:
        found = ("other", None)
        for cls in t.__mro__:
            kind = _KINDS.get((getattr(cls, "__module__", None), getattr(cls, "__qualname__", None)))
            if kind is not None:
                found = (kind, cls)
                break
        _kind_cache[t] = found
    return found


def _b64(data):
    return _b2a_base64(data, newline=False).decode("ascii")


class _Converter:
    """Turns a value into plain JSON data (dict with str keys, list, str, int, float, bool,
    None). Raises _TooBig once a lower bound of its JSON size passes `limit`, _Unsupported
    for what has no JSON form, or whatever the value's own methods raise.

    The mapping (documented in schemas/execute.result.json): tuples and lists -> arrays;
    sets -> arrays (sorted when possible); dicts -> objects, keys that are not strings
    written as JSON would (1 -> "1", None -> "null") or as str(key); NaN and infinities
    -> null; bytes -> base64 string; datetime, date, time -> ISO 8601 string; timedelta ->
    seconds; Decimal, Fraction -> float (a Decimal too large for a float -> string);
    numpy scalars and arrays -> tolist() (datetime64 as ISO strings); pandas DataFrame ->
    {"columns", "index", "data"} (orient "split"), Series -> {"name", "index", "data"},
    Index -> array, NaT and NA -> null. Anything else is unsupported."""

    def __init__(self, limit):
        self.left = limit
        self.open = set()  # ids of the containers being converted, against cycles

    def spend(self, n):
        self.left -= n
        if self.left < 0:
            raise _TooBig()

    def check(self, n):  # before materialising n elements of at least 2 characters each
        if 2 * n > self.left:
            raise _TooBig()

    def value(self, x, depth=0):
        t = type(x)
        if t is str:
            self.spend(len(x) + 2)
            return _clean(x)
        if t is int:
            self.spend(1 + int.bit_length(x) * 3 // 10)
            return x
        if t is float:
            self.spend(3)
            return x if x - x == 0.0 else None  # inf - inf and nan - nan are nan
        if x is None or t is bool:
            self.spend(4)
            return x
        if t is list or t is tuple:
            return self.sequence(x, iter(x), depth)
        if t is dict:
            return self.mapping(x, dict.items(x), depth)
        if depth > _MAX_DEPTH:
            raise _Unsupported("nested too deeply")
        kind, cls = _kind(t)
        if kind == "int":  # bool is caught above; IntEnum and other subclasses
            return self.value(int.__int__(x), depth)
        if kind == "float":
            return self.value(float.__float__(x), depth)
        if kind == "str":
            return self.value(str.__str__(x), depth)
        if kind == "list":
            return self.sequence(x, cls.__iter__(x), depth)
        if kind == "dict":
            return self.mapping(x, dict.items(x), depth)
        if kind == "set":
            items = list(cls.__iter__(x))
            with _suppress(Exception):
                items = sorted(items)
            return self.sequence(x, iter(items), depth)
        if kind == "bytes":
            data = memoryview(x).tobytes()
            self.spend(len(data) * 4 // 3 + 2)
            return _b64(data)
        if kind == "iso":
            return self.value(str.__str__(cls.isoformat(x)), depth)
        if kind == "timedelta":
            return self.value(float.__float__(cls.total_seconds(x)), depth)
        if kind == "decimal":
            f = float.__float__(cls.__float__(x))
            if f - f == 0.0 or not cls.is_finite(x):
                return self.value(f, depth)  # NaN and infinities become null
            return self.value(str.__str__(cls.__str__(x)), depth)  # beyond a float's range
        if kind == "fraction":
            try:
                return self.value(float.__float__(cls.__float__(x)), depth)
            except OverflowError:
                return self.value(str.__str__(cls.__str__(x)), depth)
        if kind == "null":
            self.spend(4)
            return None
        if kind == "numpy":
            return self.numpy(x, depth)
        if kind == "dataframe":
            rows, columns = x.shape
            self.check(int(rows) * int(columns))
            split = x.to_dict(orient="split")
            self.spend(30)
            return {"columns": self.value(split["columns"], depth + 1),
                    "index": self.value(split["index"], depth + 1),
                    "data": self.value(split["data"], depth + 1)}
        if kind == "series":
            self.check(int(len(x)))
            self.spend(27)
            return {"name": self.value(x.name, depth + 1),
                    "index": self.value(x.index.tolist(), depth + 1),
                    "data": self.value(x.tolist(), depth + 1)}
        if kind == "index":
            self.check(int(len(x)))
            return self.value(x.tolist(), depth + 1)
        raise _Unsupported(t.__name__)

    def numpy(self, x, depth):
        """An ndarray or a numpy scalar: tolist(), datetime64 and timedelta64 first brought
        to microseconds (finer units would come out as integers of nanoseconds)."""
        self.check(int(x.size))
        dtype = x.dtype
        if dtype.kind in "mM" and str.__str__(dtype.str).endswith(("[ns]", "[ps]", "[fs]", "[as]")):
            x = x.astype(dtype.kind + "8[us]")
        return self.value(x.tolist(), depth + 1)

    def sequence(self, x, items, depth):
        if depth > _MAX_DEPTH:
            raise _Unsupported("nested too deeply")
        key = id(x)
        if key in self.open:
            raise _Unsupported("circular reference")
        self.open.add(key)
        self.spend(2)
        out = []
        for item in items:
            self.spend(1)
            out.append(self.value(item, depth + 1))
        self.open.discard(key)
        return out

    def mapping(self, x, items, depth):
        if depth > _MAX_DEPTH:
            raise _Unsupported("nested too deeply")
        ident = id(x)
        if ident in self.open:
            raise _Unsupported("circular reference")
        self.open.add(ident)
        self.spend(2)
        out = {}
        for key, item in items:
            key = self.key(key, depth)
            self.spend(len(key) + 4)
            out[key] = self.value(item, depth + 1)
        self.open.discard(ident)
        return out

    def key(self, key, depth):
        if type(key) is str:
            return _clean(key)
        try:
            plain = _Converter(1 << 20).value(key, depth + 1)
        except (_TooBig, _Unsupported):
            plain = key
        if type(plain) is str:
            return plain
        if plain is None or type(plain) in (bool, int, float):
            return _encode(plain)
        return _clean(str.__str__(str(key)))


def _cap_setting(request, name):
    value = request.get(name)
    return value if type(value) is int and value >= 0 else _DEFAULT_CAPS[name]


def _describe_value(value, request):
    """Returns (JSON text or None, capped repr, truncated) within the request's limits;
    truncated says the value was convertible but over maxValueBytes."""
    max_value, max_repr = _cap_setting(request, "maxValueBytes"), _cap_setting(request, "maxReprBytes")
    value_json, truncated = None, False
    try:
        value_json = _encode(_Converter(max_value).value(value))  # ASCII: characters == bytes
        if len(value_json) > max_value:
            value_json, truncated = None, True
    except _TooBig:
        truncated = True
    except BaseException:  # unsupported, or the value's own methods failed
        pass
    try:
        value_repr = _cap(repr(value), max_repr)
    except BaseException as e:
        value_repr = "<repr failed: %s>" % type(e).__name__
    return value_json, value_repr, truncated


# --- displays ------------------------------------------------------------------------------
_caps = dict(_DEFAULT_CAPS)  # this run's caps, set by _run()
_displays = []               # JSON texts of the bundles, in order
_display_state = {"bytes": 0, "dropped": 0}
_RICH_REPRS = (("_repr_png_", "image/png"), ("_repr_jpeg_", "image/jpeg"),
               ("_repr_svg_", "image/svg+xml"), ("_repr_html_", "text/html"),
               ("_repr_markdown_", "text/markdown"), ("_repr_latex_", "text/latex"),
               ("_repr_json_", "application/json"))
_AGG_WARNINGS = "(Matplotlib is currently using agg|FigureCanvasAgg is non-interactive)"


def _add_display(bundle, what):
    """Appends a mime bundle unless it would take the displays over maxDisplayBytes."""
    try:
        text = _encode(bundle)
    except BaseException as e:
        _stderr("pycell: %s not returned: %s\n" % (what, type(e).__name__))
        return
    limit = _caps["maxDisplayBytes"]
    if _display_state["bytes"] + len(text) > limit:
        _display_state["dropped"] += 1
        _stderr("pycell: %s dropped from displays: %d bytes would take them over %d bytes\n"
                % (what, len(text), limit))
        return
    _display_state["bytes"] += len(text)
    _displays.append(text)


def _mime_data(mime, data):
    """A display's payload as JSON data: text for text types, base64 for binary images,
    plain JSON for JSON types; None when `data` does not fit the mime type."""
    if data is None:
        return None
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return _Converter(_caps["maxDisplayBytes"]).value(data)
        except BaseException:
            return None
    if mime.startswith("image/") and not mime.startswith("image/svg"):
        if isinstance(data, (bytes, bytearray, memoryview)):
            return _b64(memoryview(data).tobytes())
    if isinstance(data, str):
        return _clean(str.__str__(data))
    return None


def _rich_bundle(value, value_repr):
    """The mime bundle of a last expression with IPython-style _repr_*_ methods, or None.
    Each method is the program's own code: one that fails only loses its own mime type."""
    if type(value) in _PLAIN or isinstance(value, type):
        return None
    bundle = {}
    try:
        method = getattr(value, "_repr_mimebundle_", None)
        data = method(include=None, exclude=None) if callable(method) else None
        if type(data) is tuple and len(data) == 2:
            data = data[0]
        if isinstance(data, dict):
            for mime, payload in dict.items(data):
                if type(mime) is str and mime != "text/plain":
                    payload = _mime_data(mime, payload)
                    if payload is not None:
                        bundle[_clean(mime)] = payload
    except BaseException:
        pass
    for name, mime in _RICH_REPRS:
        if mime in bundle:
            continue
        try:
            method = getattr(value, name, None)
            if not callable(method):
                continue
            data = method()
            if type(data) is tuple and len(data) == 2:  # (data, metadata)
                data = data[0]
            data = _mime_data(mime, data)
        except BaseException:
            continue
        if data is not None:
            bundle[mime] = data
    if not bundle:
        return None
    bundle["text/plain"] = value_repr
    return bundle


def _figure_bundle(figure):
    """{"image/png", "text/plain"} of a matplotlib figure, at the figure's own dpi."""
    dpi = float(figure.dpi)
    width, height = (float(v) * dpi for v in figure.get_size_inches())
    if width * height > _caps["maxFigurePixels"]:
        raise _TooBig("%dx%d pixels, more than %d" % (width, height, _caps["maxFigurePixels"]))
    buffer = _BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return {"image/png": _b64(buffer.getvalue()), "text/plain": _cap(repr(figure), _TEXT_LIMIT)}


def _add_figure(figure, what):
    try:
        bundle = _figure_bundle(figure)
    except _TooBig as e:
        _stderr("pycell: %s not rendered: too large (%s)\n" % (what, e))
        return
    except BaseException as e:
        _stderr("pycell: %s not rendered: %s: %s\n" % (what, type(e).__name__, _safe_str(e)))
        return
    _add_display(bundle, what)


def _open_figures():
    """The figures pyplot holds open, in the order of their numbers."""
    helpers = _modules.get("matplotlib._pylab_helpers")
    if helpers is None or "matplotlib.pyplot" not in _modules:
        return []
    managers = sorted(helpers.Gcf.get_all_fig_managers(), key=lambda m: m.num)
    return [manager.canvas.figure for manager in managers]


def _flush_figures(what):
    """Renders every open figure into displays, then closes it, as a blocking show() in a
    script or the inline backend of a notebook would."""
    try:
        figures = _open_figures()
    except BaseException as e:
        _stderr("pycell: open figures not found: %s\n" % type(e).__name__)
        return
    pyplot = _modules.get("matplotlib.pyplot")
    for figure in figures:
        _add_figure(figure, "%s figure %s" % (what, _safe_str(getattr(figure, "number", "?"))))
        with _suppress(BaseException):
            pyplot.close(figure)


def _show(*args, **kwargs):
    """pyplot.show() inside the sandbox: the open figures go to displays now (so that a
    figure closed or changed afterwards still comes back as shown); never blocks."""
    _flush_figures("shown")


def _wrap_pyplot(pyplot):
    pyplot.show = _show
    _filterwarnings("ignore", message=_AGG_WARNINGS)  # Figure.show() warns under Agg


class _PyplotLoader:
    """Loads matplotlib.pyplot with the real loader, then wraps its show()."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        with _suppress(Exception):
            _wrap_pyplot(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _PyplotFinder:
    """Meta path finder that sees to the program's first `import matplotlib.pyplot`.
    Other finders that ask the rest of sys.meta_path (policy.py's) ask it back: the second
    time round it says no."""
    searching = False

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "matplotlib.pyplot" or _PyplotFinder.searching:
            return None
        _PyplotFinder.searching = True
        try:
            for finder in list(_meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is _PyplotFinder or find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    if hasattr(spec.loader, "exec_module"):
                        spec.loader = _PyplotLoader(spec.loader)
                    return spec
            return None
        finally:
            _PyplotFinder.searching = False


def _hook_pyplot():
    """Before the program runs: pyplot.show() must render, not block or warn."""
    pyplot = _modules.get("matplotlib.pyplot")
    if pyplot is not None:  # preloaded by the zygote
        _wrap_pyplot(pyplot)
    else:
        _meta_path.insert(0, _PyplotFinder)


def _collect_displays(value, value_repr, is_last_expression):
    """After the program: the last expression's rich display, then the figures left open."""
    if is_last_expression:
        try:
            if _kind(type(value))[0] == "figure":
                if not any(value is figure for figure in _open_figures()):
                    _add_figure(value, "figure value")
            else:
                bundle = _rich_bundle(value, value_repr)
                if bundle is not None:
                    _add_display(bundle, "display of the value")
        except BaseException as e:
            _stderr("pycell: display of the value not made: %s\n" % type(e).__name__)
    _flush_figures("open")
    if _display_state["dropped"]:
        _stderr("pycell: %d display(s) dropped: displays are capped at %d bytes\n"
                % (_display_state["dropped"], _caps["maxDisplayBytes"]))


# --- returned files ------------------------------------------------------------------------
_ANY_DEPTH = "**"


def _compile_globs(patterns):
    """returnFiles globs -> lists of segments: "**", a literal name, or (match, dotted).
    Relative paths only, without "..": glob syntax per segment (* ? [...]), "**" for any
    number of directories; wildcards do not match names starting with "." (as glob)."""
    if patterns is None:
        return []
    if not isinstance(patterns, list) or len(patterns) > 100:
        raise _FileError("returnFiles must be an array of at most 100 glob strings")
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern or "\0" in pattern or pattern.startswith("/"):
            raise _FileError("returnFiles: invalid pattern %r (a relative glob)" % (pattern,))
        segments = [s for s in pattern.split("/") if s not in ("", ".")]
        if ".." in segments:
            raise _FileError("returnFiles: pattern must stay inside the working directory: %r" % pattern)
        if not segments:
            continue
        compiled.append([s if s == _ANY_DEPTH or not any(c in s for c in "*?[")
                         else (_re_compile(_glob_translate(s)).match, s.startswith("."))
                         for s in segments])
    return compiled


def _closure(globs, states):
    """Adds the states reached by letting each "**" match no directory at all."""
    todo, out = list(states), set(states)
    while todo:
        g, i = todo.pop()
        if i < len(globs[g]) and globs[g][i] == _ANY_DEPTH and (g, i + 1) not in out:
            out.add((g, i + 1))
            todo.append((g, i + 1))
    return out


def _step(globs, states, name):
    """The states after matching one more path component."""
    out = set()
    hidden = name.startswith(".")
    for g, i in states:
        if i >= len(globs[g]):
            continue
        segment = globs[g][i]
        if segment == _ANY_DEPTH:
            if not hidden:
                out.add((g, i))
        elif isinstance(segment, str):
            if segment == name:
                out.add((g, i + 1))
        elif (segment[1] or not hidden) and segment[0](name):
            out.add((g, i + 1))
    return _closure(globs, out)


class _FileCollector:
    """Walks the working directory from a directory fd, never following a symlink, and
    reads the regular, singly linked files that the globs match, within the caps."""

    def __init__(self, globs, root):
        self.globs, self.root = globs, root
        self.files, self.skipped, self.unlisted = [], [], 0
        self.total, self.scanned, self.scan_stopped = 0, 0, False
        self.real_root = None

    def skip(self, path, reason):
        if len(self.skipped) < _caps["maxSkippedListed"]:
            self.skipped.append({"path": _clean(path), "reason": reason})
        else:
            self.unlisted += 1

    def run(self):
        dirfd = _os_open(self.root, _O_DIR)
        try:
            with _suppress(OSError):
                self.real_root = _os_readlink("/proc/self/fd/%d" % dirfd)
            self.walk(dirfd, "", _closure(self.globs, {(g, 0) for g in range(len(self.globs))}), 0)
        finally:
            _os_close(dirfd)
        if self.scan_stopped:
            _stderr("pycell: returnFiles stopped looking after %d directory entries\n" % self.scanned)
        if self.unlisted:
            _stderr("pycell: returnFiles skipped %d more file(s) than skippedFiles lists\n" % self.unlisted)

    def walk(self, dirfd, prefix, states, depth):
        try:
            with _os_scandir(dirfd) as it:
                entries = sorted(((e.name, e) for e in it), key=lambda pair: pair[0])
        except OSError as e:
            return self.skip(prefix or ".", "cannot list the directory: %s" % (e.strerror or e))
        for name, entry in entries:
            if self.scanned >= _caps["maxScanEntries"]:
                self.scan_stopped = True
                return
            self.scanned += 1
            after = _step(self.globs, states, name)
            if not after:
                continue
            path = prefix + name
            try:
                symlink, directory = entry.is_symlink(), entry.is_dir(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if symlink:
                if any(i == len(self.globs[g]) for g, i in after):
                    self.skip(path, "symbolic link")
                continue
            if directory:
                if depth < 64 and any(i < len(self.globs[g]) for g, i in after):
                    try:
                        sub = _os_open(name, _O_NOFOLLOW_DIR, dir_fd=dirfd)
                    except OSError:
                        continue  # replaced meanwhile (by a symlink, say): not followed
                    try:
                        self.walk(sub, path + "/", after, depth + 1)
                    finally:
                        _os_close(sub)
                continue
            if any(i == len(self.globs[g]) for g, i in after):
                self.read(dirfd, name, path)

    def read(self, dirfd, name, path):
        try:
            str.encode(path, "utf-8")
        except UnicodeEncodeError:
            return self.skip(path, "name is not valid UTF-8")
        if len(self.files) >= _caps["maxFiles"]:
            return self.skip(path, "more than %d files" % _caps["maxFiles"])
        try:
            fd = _os_open(name, _O_NOFOLLOW_FILE, dir_fd=dirfd)
        except OSError as e:
            return self.skip(path, "symbolic link" if e.errno == _ELOOP else
                             "cannot open: %s" % (e.strerror or e))
        try:
            st = _os_fstat(fd)
            if not _S_ISREG(st.st_mode):
                return self.skip(path, "not a regular file")
            if st.st_nlink > 1:
                return self.skip(path, "hard link (%d names)" % st.st_nlink)
            if st.st_nlink == 0:
                return self.skip(path, "removed while being read")
            if self.real_root is not None:
                with _suppress(OSError):
                    where = _os_readlink("/proc/self/fd/%d" % fd)
                    if not where.startswith(self.real_root.rstrip("/") + "/"):
                        return self.skip(path, "outside the working directory")
            limit = min(_caps["maxFileBytes"], _caps["maxTotalFileBytes"] - self.total)
            if st.st_size > _caps["maxFileBytes"]:
                return self.skip(path, "larger than %d bytes" % _caps["maxFileBytes"])
            if st.st_size > limit:
                return self.skip(path, "returned files would exceed %d bytes in total"
                                 % _caps["maxTotalFileBytes"])
            chunks, size = [], 0
            while size <= limit:
                chunk = _os_read(fd, min(1 << 20, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > limit:  # it grew while being read
                return self.skip(path, "larger than %d bytes" % limit)
        except OSError as e:
            return self.skip(path, "cannot read: %s" % (e.strerror or e))
        finally:
            _os_close(fd)
        self.total += size
        self.files.append((path, size, b"".join(chunks)))


def _collect_files(globs, root):
    """Returns (files as (path, size, bytes), skippedFiles entries)."""
    if not globs:
        return [], []
    collector = _FileCollector(globs, root)
    try:
        collector.run()
    except OSError as e:
        _stderr("pycell: returnFiles: cannot read the working directory: %s\n" % (e.strerror or e))
    return collector.files, collector.skipped


def _tighten_limits(rows):
    """Per-request rlimits ([resource, soft, hard] rows) that may only lower the child's."""
    for res, soft, hard in rows or ():
        old_soft, old_hard = resource.getrlimit(res)
        cap = lambda v, old: v if old == resource.RLIM_INFINITY else min(v, old)  # noqa: E731
        resource.setrlimit(res, (cap(soft, old_soft), cap(hard, old_hard)))


def _load_policy():
    global _policy_module
    if _policy_module is None:
        spec = importlib.util.spec_from_file_location("pycell_policy", _POLICY_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _policy_module = module
    return _policy_module


_prepared_guard = None  # made by a zygote for its profile's policy, shared by its children


def _prepare_policy(policy):
    """In a zygote: the guard for the profile's policy, made once (children rearm it)."""
    global _prepared_guard
    _prepared_guard = _load_policy().install(policy, None)
    _prepared_guard.close()


def _activate_policy(policy, emit):
    if _prepared_guard is not None and _prepared_guard.policy == policy:
        return _load_policy().rearm(_prepared_guard, emit)
    return _load_policy().install(policy, emit)


def _emit_event(event):
    """An activity event goes to the server at once, one line per event: what the program
    does afterwards (unhooking, rewriting our lists) cannot take it back."""
    with _suppress(OSError, ValueError, TypeError):
        _write_all(_RESULT_FD, _line_head + b'"event":' + _encode(event).encode("ascii") + b"}\n")


def _apply_guard(guard, status, rc, error):
    """After the run: a recorded violation makes it a policy_violation, even when the
    program caught the exception; an uncaught error is logged as activity."""
    guard.close()
    if error is not None:
        guard.exception(error["type"], error["message"])
    if not guard.violated:
        return status, rc, error
    first = guard.first_violation
    if error is None or error["type"] != "PolicyViolation":
        error = _error("PolicyViolation", first.get("message") or "%s %s is not allowed" % (first["what"], first["detail"]))
    return "policy_violation", 1, error


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


def _run(line, main=None, session=False):
    """Runs one request (its JSON text) and returns the report for _main() (see _document).
    A single run gets a fresh __main__; a session passes its own, kept between runs."""
    global _interruptible
    report = {"status": "ok", "exitCode": 0, "value": None, "valueRepr": None, "error": None,
              "valueTruncated": False, "files": [], "skippedFiles": None}
    try:
        if line is None:
            raise ValueError("no request arrived")
        request = _parse_request(line)
        _set_token(request)
        _tighten_limits(request.get("rlimits"))
        _caps.update({name: _cap_setting(request, name) for name in _DEFAULT_CAPS})
    except Exception as e:
        message = "cannot read the request: %s" % _safe_str(e)
        _stderr("pycell bootstrap: %s\n" % message)
        report.update(status="error", exitCode=70, error=_error("BootstrapError", message))
        return report
    _displays.clear()
    _display_state.update(bytes=0, dropped=0)
    try:
        globs = _compile_globs(request.get("returnFiles"))
        _write_files(request.get("files"))
    except _FileError as e:
        _stderr("FileError: %s\n" % e)
        report.update(status="error", exitCode=1, error=_error("FileError", str(e)))
        return report
    root = _os_getcwd()  # the program may chdir; returnFiles are read from here

    code = request["code"]
    linecache.cache[_cell] = (len(code), None, code.splitlines(True), _cell)
    if main is None:
        main = _fresh_main()
    main.__dict__["inputs"] = request.get("inputs")
    sys.modules["__main__"] = main
    if "stdin" in request:  # a session's stdin comes with each request
        sys.stdin = io.TextIOWrapper(_BytesIO(request["stdin"].encode("utf-8", "replace")), encoding="utf-8")
    cpu_ms = request.get("cpuMs")
    if type(cpu_ms) is int and cpu_ms > 0:  # a session's per-run CPU limit
        _arm_cpu_limit(cpu_ms)
    guard = None
    if request.get("policy") is not None:
        try:
            guard = _activate_policy(request["policy"], _emit_event)
        except BaseException as e:
            message = "cannot apply the profile's policy: %s" % _safe_str(e)
            _stderr("pycell bootstrap: %s\n" % message)
            report.update(status="error", exitCode=70, error=_error("BootstrapError", message))
            return report
        main.__dict__["__builtins__"] = guard.builtins_module
    elif main.__dict__.get("__builtins__") is not builtins:
        main.__dict__["__builtins__"] = builtins

    has_value, is_last, value, status, rc, error = False, False, None, "ok", 0, None
    try:
        body, last = _compile(code)
        _interruptible = True
        # The program's code starts now. The server interrupts a session's run only after
        # this line (a SIGINT before it would find nothing to interrupt), and retries a run
        # whose pooled child died without it (killed from outside before it began).
        with _suppress(OSError, TypeError):
            _write_all(_RESULT_FD, _line_head + b'"started":true}\n')
        exec(body, main.__dict__)
        if last is not None:
            value, has_value, is_last = eval(last, main.__dict__), True, True
        elif "result" in main.__dict__:
            value, has_value = main.__dict__["result"], True
    except SystemExit as e:
        _interruptible = False
        status, rc, error = _exit_result(e)
    except BaseException as e:
        _interruptible = False
        status, rc, error = _exception_result(e, main)
    _interruptible = False

    sys.settrace(None)  # the program's tracer must not see the reporting
    sys.setprofile(None)
    threading = _modules.get("threading")
    with _suppress(BaseException):  # Python waits for non-daemon threads at exit
        for thread in threading.enumerate() if threading else ():
            if not thread.daemon and thread is not threading.main_thread():
                thread.join()

    if guard is not None:
        status, rc, error = _apply_guard(guard, status, rc, error)
    report.update(status=status, exitCode=rc, error=error)
    if _os_getpid() != _PID or status == "memory_limit":
        return report  # a fork()ed copy reports nothing; after a MemoryError, only that
    value_repr = None
    if error is None and has_value:
        value_json, value_repr, truncated = _describe_value(value, request)
        report.update(value=value_json, valueRepr=value_repr, valueTruncated=truncated)
    # Each part runs the program's objects' code (reprs, matplotlib): a failure there
    # loses that part, never the report.
    try:
        _collect_displays(value, value_repr, has_value and is_last and error is None)
    except BaseException as e:
        _stderr("pycell: displays not collected: %s\n" % type(e).__name__)
    value = None
    try:
        report["files"], skipped = _collect_files(globs, root)
        if request.get("returnFiles") is not None:
            report["skippedFiles"] = skipped
    except BaseException as e:
        report["files"] = []
        _stderr("pycell: returnFiles not collected: %s\n" % type(e).__name__)
    return report


def _usage():
    """CPU time and peak memory of the program and the children it waited for: the server
    may answer from this before the kernel has finished tearing the sandbox down."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpuUserMs": int((own.ru_utime + kids.ru_utime) * 1000),
            "cpuSysMs": int((own.ru_stime + kids.ru_stime) * 1000),
            "maxRssKb": max(own.ru_maxrss, kids.ru_maxrss)}


def _document(report):
    """The result JSON as a list of ASCII byte strings (the files' base64 is not copied
    into one big string): {status, exitCode, value, valueRepr, error, usage, displays,
    files} and, when set, valueTruncated and skippedFiles."""
    head = '"status":%s,"exitCode":%d,"value":%s,"valueRepr":%s,"error":%s,"usage":%s' % (
        _encode(report["status"]), report["exitCode"], report["value"] or "null",
        _encode(report["valueRepr"]), _encode(report["error"]), _encode(_usage()))
    if report["valueTruncated"]:
        head += ',"valueTruncated":true'
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
    try:
        report = _run(line)
        rc = report["exitCode"]
        document = _document(report)
        report = None  # the files' bytes
    except BaseException:
        document, rc = [_line_head, _FALLBACK], 70
    _flush_stdio()
    if _RESULT_FD is not None and _os_getpid() == _PID:
        # Our ends of the program's stdio close before the result goes: the server then
        # has all output when the result arrives, without waiting for the exit itself.
        for fd in (0, 1, 2):
            with _suppress(OSError):
                _os_close(fd)
        with _suppress(OSError):
            for part in document:
                _write_all(_RESULT_FD, part)
            _os_close(_RESULT_FD)
    _os_exit(rc)


# --- sessions -----------------------------------------------------------------------------
# A session is one sandboxed interpreter that runs request after request in the same
# __main__ (a notebook kernel). Requests arrive as lines on fd 3, results leave as lines on
# fd 4, and the program's stdout/stderr stay open between runs: the server reads a run's
# output up to its result line. The server interrupts a run with SIGINT (KeyboardInterrupt
# in the program) before it resorts to SIGKILL; a run's CPU limit is the soft RLIMIT_CPU,
# whose SIGXCPU raises CPUTimeLimitExceeded (the hard limit is the session's whole budget).
_interruptible = False  # True only while the program's own code runs


class CPUTimeLimitExceeded(BaseException):
    """The run used more CPU time than its limit allows."""


def _on_interrupt(signum, frame):
    if _interruptible:
        raise KeyboardInterrupt


def _on_cpu_limit(signum, frame):
    if _interruptible:
        raise CPUTimeLimitExceeded("the run used more than its CPU time limit")


def _cpu_seconds_used():
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _arm_cpu_limit(cpu_ms):
    """Soft RLIMIT_CPU at this run's share; the hard limit (the session's budget) stays."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    want = int(_cpu_seconds_used() + (cpu_ms + 999) // 1000) + 1
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    with _suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (want, hard))


def _disarm_cpu_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    with _suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def _session(reader, header):
    """Serves requests until fd 3 reaches EOF; returns the exit code."""
    global _cell
    import signal
    try:
        settings = json.loads(header)["session"]
        _set_token(settings)
        _tighten_limits(settings.get("rlimits"))
        signal.signal(signal.SIGINT, _on_interrupt)
        signal.signal(signal.SIGXCPU, _on_cpu_limit)
        sys.stdin = io.TextIOWrapper(_BytesIO(b""), encoding="utf-8")
        main = _fresh_main()
    except BaseException as e:
        _stderr("pycell bootstrap: cannot start the session: %s\n" % _safe_str(e))
        return 70
    _write_all(_RESULT_FD, _line_head + b'"ready":true}\n')
    runs = 0
    while True:
        try:
            line = reader.next()
        except KeyboardInterrupt:
            continue
        if line is None:
            return 0
        runs += 1
        _cell = "<pycell-%d>" % runs
        try:
            report = _run(line, main, session=True)
            document = _document(report)
            report = None
        except BaseException:
            document = [_line_head, _FALLBACK]
        _disarm_cpu_limit()
        if _os_getpid() != _PID:
            _os_exit(0)  # a fork()ed copy of the program ends here, silently
        _flush_stdio()
        try:
            for part in document:
                _write_all(_RESULT_FD, part)
        except OSError:
            return 0  # the server is gone
        document = None


def _warm_up(policy=None, code=None):
    """In a pooled child, before it waits for its request: one whole run of a stand-in
    request (the profile's policy and warm-up code, or a small program) through the same
    path a real one takes, its result encoded and dropped. The pages that path writes
    (reference counts, allocator state) are copied from the zygote now, not on the request
    path. Nothing reaches the server: there is no result fd yet. Returns the stand-in run's
    error, or None."""
    path, error = list(sys.path), None
    with _suppress(BaseException):
        request = {"code": code or "x = [1, 2.5]\nx", "files": {}, "inputs": None}
        if policy is not None:
            request["policy"] = policy
        report = _run(json.dumps(request).encode())
        _document(report)
        error = report["error"]
    sys.path[:] = path
    linecache.cache.pop(_cell, None)
    _displays.clear()
    return error  # the warm-up code's own failure (a real run reports it the same way)


if __name__ == "__main__":
    _main()
