"""pycell displays: matplotlib figures and rich reprs, as mime bundles for `displays`.

Part of the bootstrap (bootstrap.py), which loads this file by path from beside itself (no
import finds it, so the program cannot reach it by name). Before the program runs,
pyplot.show() is made to render into displays rather than block; after it, the last
expression's rich repr (IPython-style _repr_*_ methods) and the figures left open are
added. It imports matplotlib never itself: it only uses what the program (or the zygote's
preload) has in sys.modules. Every builtin and function it calls is its own reference,
taken when it was loaded, which the program cannot rebind. Embedded in the C++ binary as a
raw string literal, so it must never contain that literal's closing delimiter.

Given by the bootstrap before this code runs (`_given`, see bootstrap.py _load_module):
the values module, its stderr writer, the run's caps (one dict, updated for each run) and
the cap on a text/plain line.
"""
import builtins, contextlib, io, sys, warnings

# Snapshot the builtins into our own globals (searched before builtins), so user code that
# rebinds builtins.repr, builtins.getattr, ... cannot change what this module calls.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("_")})

_BytesIO = io.BytesIO
_filterwarnings = warnings.filterwarnings
_modules, _meta_path = sys.modules, sys.meta_path  # the interpreter's own objects
_suppress = contextlib.suppress
_values = _given["values"]
_Converter, _TooBig, _PLAIN, _kind = _values._Converter, _values._TooBig, _values._PLAIN, _values._kind
_clean, _cap, _safe_str, _encode, _b64 = _values._clean, _values._cap, _values._safe_str, _values._encode, _values._b64
_stderr, _caps, _TEXT_LIMIT = _given["stderr"], _given["caps"], _given["text_limit"]
del _values
_displays = []  # JSON texts of the bundles, in order
_display_state = {"bytes": 0, "dropped": 0}
_RICH_REPRS = (("_repr_png_", "image/png"), ("_repr_jpeg_", "image/jpeg"),
               ("_repr_svg_", "image/svg+xml"), ("_repr_html_", "text/html"),
               ("_repr_markdown_", "text/markdown"), ("_repr_latex_", "text/latex"),
               ("_repr_json_", "application/json"))
_AGG_WARNINGS = "(Matplotlib is currently using agg|FigureCanvasAgg is non-interactive)"


def _reset():
    """Before a run: no displays yet."""
    _displays.clear()
    _display_state.update(bytes=0, dropped=0)


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
