"""pycell values: the last expression's value as plain JSON and as a capped repr.

Part of the bootstrap (bootstrap.py), which loads this file by path from beside itself, as
it loads policy.py: no import finds it, so the program cannot reach it by name. It runs in
the program's interpreter, after the program: every builtin and module function it calls
is its own reference, taken when it was loaded, which the program cannot rebind. Also the
text helpers the other parts share (_clean, _cap, _safe_str, _encode, _b64). Embedded in
the C++ binary as a raw string literal, so it must never contain that literal's closing
delimiter.
"""
import binascii, builtins, contextlib, json

# Snapshot the builtins into our own globals (searched before builtins), so user code that
# rebinds builtins.repr, builtins.str, ... cannot change what this module calls.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("_")})

_b2a_base64 = binascii.b2a_base64
_suppress = contextlib.suppress
_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
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
_MAX_DEPTH = 100  # below the server's nesting limit for a report member (128)
# Integers a 64-bit JSON parser keeps exactly; beyond them, {"$int": "<decimal digits>"}.
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1
_MAX_WARNINGS = 100  # valueWarnings listed; items past them are still replaced, unlisted
_MAX_PATH = 512      # characters of a warning's path
# The kinds _Converter.scalar turns into a string, a number or null.
_SCALAR_KINDS = frozenset(("bytes", "iso", "timedelta", "decimal", "fraction", "null"))


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
    an int beyond 64 bits -> {"$int": "<its decimal digits>"};
    numpy scalars and arrays -> tolist() (datetime64 as ISO strings); pandas DataFrame ->
    {"columns", "index", "data"} (orient "split"), Series -> {"name", "index", "data"},
    Index -> array, NaT and NA -> null. Anything else is unsupported: inside a container,
    such an item becomes its repr (capped at `max_repr` characters) in place, with a warning
    {"path": "$.a[2]", "reason": ...} in self.warnings; at the top, it raises."""

    def __init__(self, limit, max_repr=4096):
        self.left = limit
        self.max_repr = max_repr
        self.open = set()  # ids of the containers being converted, against cycles
        self.path = []     # keys (str) and indexes (int) from the top to the current item
        self.warnings = []

    def item(self, step, x, depth):
        """x, the member `step` of a container, converted; if it has no JSON form (or its
        own methods fail), its repr in its place and a warning. Too big stays too big."""
        self.path.append(step)
        try:
            return self.value(x, depth)
        except _TooBig:
            raise
        except Exception as e:
            return self.replace(x, e)
        finally:
            self.path.pop()

    def replace(self, x, e):
        if type(e) is _Unsupported:
            self.warn("%s: no JSON form, replaced by its repr" % _safe_str(e))
        else:
            self.warn("converting it raised %s, replaced by its repr" % type(e).__name__)
        try:
            text = _cap(str.__str__(repr(x)), self.max_repr)
        except Exception as failure:
            text = "<repr failed: %s>" % type(failure).__name__
        self.spend(len(text) + 2)
        return text

    def warn(self, reason):
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append({"path": _cap(_path_text(self.path), _MAX_PATH), "reason": _cap(reason, 256)})

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
            if _INT_MIN <= x <= _INT_MAX:
                return x
            self.spend(12)
            return {"$int": int.__repr__(x)}  # ValueError past the interpreter's digit limit
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
        if kind in _SCALAR_KINDS:
            return self.scalar(x, kind, cls, depth)
        if kind == "numpy":
            return self.numpy(x, depth)
        if kind == "dataframe":
            rows, columns = x.shape
            self.check(int(rows) * int(columns))
            split = x.to_dict(orient="split")
            self.spend(30)
            return {"columns": self.item("columns", split["columns"], depth + 1),
                    "index": self.item("index", split["index"], depth + 1),
                    "data": self.item("data", split["data"], depth + 1)}
        if kind == "series":
            self.check(int(len(x)))
            self.spend(27)
            return {"name": self.item("name", x.name, depth + 1),
                    "index": self.item("index", x.index.tolist(), depth + 1),
                    "data": self.item("data", x.tolist(), depth + 1)}
        if kind == "index":
            self.check(int(len(x)))
            return self.value(x.tolist(), depth + 1)
        raise _Unsupported(t.__name__)

    def scalar(self, x, kind, cls, depth):
        """A value of one of the _SCALAR_KINDS, whose JSON form holds nothing to convert
        further: a string, a number or null."""
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
        self.spend(4)  # "null": pandas' NaT and NA
        return None

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
        try:
            for n, item in enumerate(items):
                self.spend(1)
                out.append(self.item(n, item, depth + 1))
        finally:
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
        try:
            for key, item in items:
                key = self.key(key, depth)
                self.spend(len(key) + 4)
                out[key] = self.item(key, item, depth + 1)
        finally:
            self.open.discard(ident)
        return out

    def key(self, key, depth):
        if type(key) is str:
            return _clean(key)
        try:
            plain = _Converter(1 << 20).value(key, depth + 1)
        except Exception:
            plain = key
        if type(plain) is str:
            return plain
        if plain is None or type(plain) in (bool, int, float):
            return _encode(plain)
        try:
            return _clean(str.__str__(str(key)))
        except Exception as e:
            text = "<str failed: %s>" % type(e).__name__
            self.path.append(text)
            self.warn("str() of this key raised %s, so the key is this text" % type(e).__name__)
            self.path.pop()
            return text


def _path_text(path):
    """A warning's path: $ then .name for a key that is an identifier, ["key"] for any
    other key (as JSON writes it), [n] for an index."""
    parts = ["$"]
    for step in path:
        if type(step) is int:
            parts.append("[%d]" % step)
        elif str.isidentifier(step) and str.isascii(step):
            parts.append("." + step)
        else:
            parts.append("[" + _encode(step) + "]")
    return "".join(parts)


def _describe_value(value, max_value, max_repr):
    """Returns (JSON text or None, repr capped at max_repr characters, truncated, warnings)
    with the JSON at most max_value bytes; truncated says the value was convertible but
    larger; warnings lists the items replaced by their repr (or, for a value with no JSON
    form at all, why it is null)."""
    value_json, truncated, warnings = None, False, []
    converter = _Converter(max_value, max_repr)
    try:
        value_json = _encode(converter.value(value))  # ASCII: characters == bytes
        warnings = converter.warnings
        if len(value_json) > max_value:
            value_json, truncated, warnings = None, True, []
    except _TooBig:
        truncated = True
    except Exception as e:  # unsupported, or the value's own methods failed
        if type(e) is _Unsupported:
            reason = "%s: no JSON form, so value is null" % _safe_str(e)
        else:
            reason = "converting it raised %s, so value is null" % type(e).__name__
        warnings = [{"path": "$", "reason": _cap(reason, 256)}]
    except BaseException:
        pass
    try:
        value_repr = _cap(repr(value), max_repr)
    except BaseException as e:
        value_repr = "<repr failed: %s>" % type(e).__name__
    return value_json, value_repr, truncated, warnings
