"""pycell zygote: a warm interpreter that forks sandboxed children on request.

Started by the server inside a profile's outer sandbox (its own user, mount, pid, net, ipc
and uts namespaces, a read-only root) as `python3 -I -B -u -X utf8 /.pycell/zygote.py`,
with fd 3 a SOCK_SEQPACKET socket to the server. It imports the profile's modules once;
each child it forks is isolated by libpycell_child.so's fork loop (the same isolation
sequence as any sandbox, from the plan the server sent), then runs the bootstrap's _main(),
which waits for the request on fd 3. Standard library only; the messages to and from the
server are encoded by the library (zygote_wire.h), never here.
"""
import ctypes, gc, importlib, importlib.util, json, os, signal, sys

LIBRARY = "/.pycell/libpycell_child.so"
BOOTSTRAP = "/.pycell/bootstrap.py"
CONTROL_FD = 3


class ForkHooks(ctypes.Structure):
    _fields_ = [("before", ctypes.c_void_p), ("after_parent", ctypes.c_void_p), ("after_child", ctypes.c_void_p)]


def load_library():
    lib = ctypes.PyDLL(LIBRARY)  # PyDLL: calls keep the GIL (there is one thread anyway)
    lib.pycell_last_error.restype = ctypes.c_char_p
    lib.pycell_receive_init.restype = ctypes.c_long
    lib.pycell_init_json.restype = ctypes.c_void_p
    lib.pycell_send_ready.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    lib.pycell_serve_forks.restype = ctypes.c_long
    lib.pycell_report_failure.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    return lib


def receive_init(lib):
    """The server's init message, decoded by the library (which keeps the isolation spec
    every child applies); here only its JSON part."""
    length = lib.pycell_receive_init(CONTROL_FD)
    if length < 0:
        raise OSError(lib.pycell_last_error().decode())
    return json.loads(ctypes.string_at(lib.pycell_init_json(), length))


def preload(modules):
    """Imports the profile's modules; a missing one is reported, not fatal."""
    imported, failed = [], {}
    for name in modules:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as e:  # noqa: BLE001 - any import failure is reported to the server
            failed[name] = "%s: %s" % (type(e).__name__, e)
    return imported, failed


def warm_up():
    """Touches the lazy paths once, so children do not each pay for them (and so the
    one-time caches land in memory shared by every child)."""
    if "matplotlib.pyplot" in sys.modules:
        plt = sys.modules["matplotlib.pyplot"]
        fig = plt.figure()
        fig.gca().plot([0, 1], [0, 1])
        fig.canvas.draw()
        plt.close(fig)
    if "pandas" in sys.modules:
        pd = sys.modules["pandas"]
        pd.DataFrame({"a": [1, 2, 1], "b": [1.0, 2.0, 3.0]}).groupby("a").sum()


def load_bootstrap():
    spec = importlib.util.spec_from_file_location("pycell_bootstrap", BOOTSTRAP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child(lib, bootstrap, child_warmup, policy):
    """In the new child, isolated by the fork loop: warm up, say ready, run the bootstrap
    (never returns)."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()  # siblings must not draw the zygote's numbers
        # One stand-in run (the profile's own warm-up code, under its policy) pays now, not
        # on the request path, for the pages a run writes: more memory per ready child,
        # less latency per execution.
        error = bootstrap._warm_up(policy, child_warmup)
        if error is not None:
            raise RuntimeError("the profile's childWarmup failed: %s: %s" % (error["type"], error["message"]))
        os.write(4, b"R")  # ready: isolated, warm, waiting for the request on fd 3
    except BaseException as e:  # noqa: BLE001 - reported on the result pipe, then exit
        lib.pycell_report_failure(b"child warm-up", getattr(e, "errno", None) or 0, str(e).encode()[:150])
        os._exit(127)
    bootstrap._main()
    os._exit(70)


def main():
    lib = load_library()
    init = receive_init(lib)
    imported, failed = preload(init.get("preload", []))
    warm_up()
    bootstrap = load_bootstrap()
    try:
        if init.get("policy") is not None:
            # The policy layer's process-wide hooks go in here, once, and are inherited:
            # children only make their guard (no active guard: the hooks do nothing).
            bootstrap._prepare_policy(init["policy"])
    except Exception as e:  # noqa: BLE001 - a child that needs it reports the failure
        sys.stderr.write("pycell zygote: policy module not loaded: %s\n" % e)
    child_warmup = init.get("childWarmup") or None
    if child_warmup:
        compile(child_warmup, "<pycell>", "exec")  # a syntax error stops the zygote, not each child
    hooks = ForkHooks(*(ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p)
                        for name in ("PyOS_BeforeFork", "PyOS_AfterFork_Parent", "PyOS_AfterFork_Child")))

    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    gc.freeze()  # children then do not copy the zygote's objects on their first collection
    ready = json.dumps({"imported": imported, "failed": failed}).encode()
    if lib.pycell_send_ready(CONTROL_FD, ready, len(ready)) != 0:
        raise OSError(lib.pycell_last_error().decode())
    # From here on the zygote runs no Python until a fork returns in a child: the loop is
    # C (see child_abi.h), so the zygote writes almost none of the pages its children share.
    ident = lib.pycell_serve_forks(CONTROL_FD, ctypes.byref(hooks))
    if ident < 0:
        raise OSError(lib.pycell_last_error().decode())
    if ident == 0:
        return  # the server is gone
    # In a new child, isolated, its fds at 0..4 (fd 3 is now the request pipe).
    child(lib, bootstrap, child_warmup, init.get("policy"))


if __name__ == "__main__":
    main()
