"""A small client for `pycell serve`, standard library only (Python 3.8+).

Copy this one file into your project. It spawns the pycell binary, speaks JSON-RPC 2.0 to it
over newline-delimited JSON on the child's stdin/stdout, and runs one reader thread that
hands each response to the request waiting for it and each notification to its callback, so
several threads may have executions in flight at once.

    from pycell_client import Pycell

    with Pycell("/path/to/pycell") as cell:
        r = cell.execute("x = 6 * 7\\nx")
        r["status"], r["value"]                    # ('ok', 42)
        cell.execute_stream("print('hi')", on_output=lambda stream, text: print(text, end=""))

For an LLM agent, `tool_call(arguments)` runs one call of the `run_python` tool (definitions
in OpenAI and Anthropic formats: `openai_tool()`, `anthropic_tool()`) and returns the text
to give back to the model and whether it is an error.

The wire protocol is docs/PROTOCOL.md in the pycell repository.
"""

import atexit
import collections
import copy
import itertools
import json
import logging
import os
import subprocess
import threading

__all__ = [
    "Pycell", "PycellError", "ServerExited", "tool_call", "run_tool", "tool_arguments_to_execute",
    "format_tool_result", "openai_tool", "anthropic_tool", "default_client",
]

log = logging.getLogger("pycell")

# JSON-RPC error codes the server sends (PROTOCOL.md).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
REQUEST_CANCELLED = -32800
SANDBOX_FAILED = -32000
QUEUE_FULL = -32001


class PycellError(Exception):
    """A JSON-RPC error answered by the server: `code`, `message`, `data` (or None)."""

    def __init__(self, code, message, data=None):
        super().__init__("%s (%s)" % (message, code) if code is not None else message)
        self.code = code
        self.message = message
        self.data = data


class ServerExited(PycellError):
    """The server process is gone (or the client was closed); `data` holds its last stderr."""

    def __init__(self, message, stderr=""):
        super().__init__(None, message + ("\nserver stderr:\n" + stderr if stderr else ""), {"stderr": stderr})


class _Pending:
    __slots__ = ("event", "response")

    def __init__(self):
        self.event = threading.Event()
        self.response = None


class Pycell:
    """One `pycell serve` child process and the JSON-RPC connection to it.

    binary:  path of the pycell executable (or a name found on PATH).
    args:    extra command-line options for `pycell serve`, e.g. ("--config", "pycell.json").
    profile: the profile every execute uses unless it names one (None: the server's "default").
    on_notification(method, params): called for every notification the server sends.
    env, cwd: for the child process.

    Callbacks run on the client's reader thread, in the order the server sent them: keep
    them short, and do not make requests from them (that raises RuntimeError).
    """

    def __init__(self, binary="pycell", args=(), profile=None, *, on_notification=None, env=None, cwd=None):
        self.profile = profile
        self.info = None  # the initialize result: serverInfo, isolation, profiles
        self._on_notification = on_notification
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._execution_ids = itertools.count(1)
        self._pending = {}
        self._streams = {}
        self._closed = None  # why requests are no longer possible, once they are not
        self._stderr = collections.deque(maxlen=200)
        self._stderr_lock = threading.Lock()
        self._proc = subprocess.Popen(
            [binary, "serve", "--framing", "ndjson", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd, close_fds=True)
        self._reader = threading.Thread(target=self._read_loop, name="pycell-reader", daemon=True)
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="pycell-stderr", daemon=True)
        self._reader.start()
        self._stderr_reader.start()
        try:
            # Optional in NDJSON framing, but it tells us what isolation and profiles this
            # machine has, and processId makes the server exit if this process dies.
            self.info = self.request("initialize", {"processId": os.getpid(),
                                                    "clientInfo": {"name": "pycell_client.py"}})
        except BaseException:
            self._terminate()
            raise

    # --- requests -------------------------------------------------------------------

    def request(self, method, params=None, timeout=None):
        """Send a request and wait for its answer: the result, or PycellError.

        timeout (seconds): give up waiting, cancel the request ($/cancelRequest, which kills
        its sandbox) and raise TimeoutError. None waits as long as it takes.
        """
        if threading.current_thread() is self._reader:
            raise RuntimeError("pycell: requests cannot be made from a callback (it runs on the reader thread)")
        pending = _Pending()
        with self._lock:
            closed = self._closed
            if not closed:
                request_id = next(self._ids)
                self._pending[request_id] = pending
        if closed:
            raise ServerExited(closed, self.stderr_tail())
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            self._send(message)
        except BaseException:
            with self._lock:
                self._pending.pop(request_id, None)
            raise
        if not pending.event.wait(timeout):
            with self._lock:
                self._pending.pop(request_id, None)
            try:
                self.notify("$/cancelRequest", {"id": request_id})
            except PycellError:
                pass
            raise TimeoutError("pycell: no answer to %s within %s s (cancelled)" % (method, timeout))
        response = pending.response
        if "exited" in response:
            raise ServerExited(response["exited"], self.stderr_tail())
        if "error" in response:
            error = response["error"] if isinstance(response["error"], dict) else {}
            raise PycellError(error.get("code"), error.get("message", "unknown error"), error.get("data"))
        return response.get("result")

    def notify(self, method, params=None):
        """Send a notification (no answer)."""
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def execute(self, code, *, on_output=None, timeout=None, **params):
        """Run `code` in a fresh sandbox and return the execute result (a dict).

        params are execute's members as on the wire: profile, inputs, stdin, files, limits
        ({timeoutMs, cpuMs, memoryMb, maxOutputBytes, maxProcesses, diskMb}), executionId,
        network, stream. A Python exception is a result with status "error", not an
        exception here; a refused request (bad params, unknown profile) raises PycellError.
        on_output(stream, text): stream the output as it comes ("stdout" or "stderr"); every
        call is made before execute returns. timeout: see request().
        """
        params = {"code": code, **params}
        if self.profile is not None and params.get("profile") is None:
            params["profile"] = self.profile
        execution_id = None
        if on_output is not None:
            params["stream"] = True
            if not params.get("executionId"):
                params["executionId"] = "py-%d-%d" % (os.getpid(), next(self._execution_ids))
            execution_id = params["executionId"]
            with self._lock:
                if execution_id in self._streams:
                    raise ValueError("executionId %r is already streaming" % execution_id)
                self._streams[execution_id] = on_output
        try:
            return self.request("execute", params, timeout)
        finally:
            if execution_id is not None:
                with self._lock:
                    self._streams.pop(execution_id, None)

    def execute_stream(self, code, on_output, **params):
        """execute() with its output streamed to on_output(stream, text) as it comes."""
        return self.execute(code, on_output=on_output, **params)

    def kill(self, execution_id):
        """Kill a running or queued execution: {killed, state}. Its execute still answers,
        with status "killed". An unknown id raises PycellError (-32602)."""
        return self.request("kill", {"executionId": execution_id})

    def create_session(self, session=None, profile=None, limits=None):
        """Start a session (a sandbox that keeps globals, imports and files between runs);
        returns its id. Pass it as execute(..., session=id)."""
        params = {k: v for k, v in (("session", session), ("profile", profile), ("limits", limits)) if v is not None}
        return self.request("session/create", params)["session"]

    def close_session(self, session):
        """End a session; True if it was open."""
        return self.request("session/close", {"session": session})["closed"]

    def kill_session(self, session):
        """Interrupt the session's running execution (KeyboardInterrupt first): {killed, state}."""
        return self.request("kill", {"session": session})

    def status(self, execution_id=None):
        """One execution's state ({executionId, state, elapsedMs, ...}) or the server's."""
        return self.request("status", {"executionId": execution_id} if execution_id else None)

    def tool_call(self, arguments, **kwargs):
        """Run one `run_python` tool call; see the module function tool_call()."""
        return tool_call(arguments, self, **kwargs)

    # --- lifecycle ------------------------------------------------------------------

    def close(self, timeout=30):
        """shutdown (answered once the executions in flight are done), exit, and wait for the
        process. Returns its exit code (0 after a clean shutdown). Safe to call twice."""
        if self._proc.poll() is None and not self._closed:
            try:
                self.request("shutdown", timeout=timeout)
                self.notify("exit")
            except (PycellError, TimeoutError, OSError):
                pass
        with self._lock:
            self._closed = self._closed or "the client was closed"
        return self._terminate(timeout)

    @property
    def returncode(self):
        """The server's exit code, or None while it runs."""
        return self._proc.poll()

    @property
    def pid(self):
        return self._proc.pid

    def stderr_tail(self):
        """The server's last lines of stderr (its log)."""
        with self._stderr_lock:
            return "".join(self._stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- internals ------------------------------------------------------------------

    def _terminate(self, timeout=30):
        try:
            self._proc.stdin.close()  # EOF: the server kills what still runs and exits
        except OSError:
            pass
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout)
        self._stderr_reader.join(timeout)
        for stream in (self._proc.stdout, self._proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        return code

    def _send(self, message):
        data = (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._write_lock:
            try:
                self._proc.stdin.write(data)
                self._proc.stdin.flush()
            except (OSError, ValueError):  # broken pipe, or stdin already closed
                try:
                    self._proc.wait(2)
                    self._stderr_reader.join(2)  # its last words, for the error
                except subprocess.TimeoutExpired:
                    pass
                raise ServerExited("pycell: the server is not running (exit code %s)" % self._proc.poll(),
                                   self.stderr_tail()) from None

    def _read_stderr(self):
        for line in iter(self._proc.stderr.readline, b""):
            text = line.decode("utf-8", "replace")
            with self._stderr_lock:
                self._stderr.append(text)
            log.debug("server: %s", text.rstrip())

    def _read_loop(self):
        try:
            for line in iter(self._proc.stdout.readline, b""):
                line = line.strip()
                if not line:
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    log.warning("pycell: unreadable message from the server: %.200r", line)
                    continue
                for m in message if isinstance(message, list) else [message]:
                    if isinstance(m, dict):
                        self._dispatch(m)
        finally:
            code = self._proc.wait()
            self._stderr_reader.join(2)  # its last words, for the error below
            with self._lock:
                self._closed = self._closed or "the server exited (exit code %s)" % code
                pending, self._pending = self._pending, {}
            for p in pending.values():
                p.response = {"exited": "pycell: the server exited (exit code %s) before answering" % code}
                p.event.set()

    def _dispatch(self, message):
        method = message.get("method")
        if method is None:  # a response
            with self._lock:
                pending = self._pending.pop(message.get("id"), None)
            if pending is not None:
                pending.response = message
                pending.event.set()
            else:  # e.g. the late answer to a request given up on, or -32700 with id null
                log.debug("pycell: answer for no waiting request: %.300s", message)
            return
        if "id" in message:  # a request from the server: none is defined
            try:
                self._send({"jsonrpc": "2.0", "id": message["id"],
                            "error": {"code": METHOD_NOT_FOUND, "message": "client handles no requests"}})
            except PycellError:
                pass
            return
        params = message.get("params")
        try:
            if method == "execute/output" and isinstance(params, dict):
                with self._lock:
                    callback = self._streams.get(params.get("executionId"))
                if callback is not None:
                    callback(params.get("stream"), params.get("text", ""))
            if self._on_notification is not None:
                self._on_notification(method, params)
            elif method == "window/logMessage" and isinstance(params, dict):
                log.warning("pycell: %s", params.get("message"))
        except Exception:
            log.exception("pycell: a notification callback for %s failed", method)


# --- the run_python tool -------------------------------------------------------------
# The same definitions as schemas/tools/run_python.{openai,anthropic}.json in the pycell
# repository (the one source: `pycell mcp` compiles the Anthropic file in), copied here so
# that this file is all you need; test_client.py keeps the copy equal to the files.

_DESCRIPTION = (
    "Run Python 3 code in an isolated sandbox (no network, no host files, time and memory limits) "
    "and get back what it printed, the value of its last expression, and any error with its line "
    "number and traceback. Every call starts from a fresh interpreter: nothing is kept between "
    "calls, so include imports and definitions each time.")
_CODE = {
    "type": "string",
    "description": "Python source to run. End it with an expression (or assign a global named `result`) "
                   "to get that value back; print() anything else you want to see."}
_MAX_TIMEOUT_MS = 86400000

_OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "run_python",
        "description": _DESCRIPTION,
        "parameters": {
            "type": "object",
            "properties": {
                "code": _CODE,
                "inputs_json": {
                    "type": ["string", "null"],
                    "description": "Data for the code, as a string holding JSON text; the code sees the "
                                   "decoded value as the global `inputs`. null when there is none."},
                "timeoutMs": {
                    "type": ["integer", "null"], "minimum": 1, "maximum": _MAX_TIMEOUT_MS,
                    "description": "Wall-clock limit in milliseconds; null for the server's default (10000). "
                                   "A value above the server's limit is lowered to that limit."},
            },
            "required": ["code", "inputs_json", "timeoutMs"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}

_ANTHROPIC_TOOL = {
    "name": "run_python",
    "description": _DESCRIPTION,
    "input_schema": {
        "type": "object",
        "properties": {
            "code": _CODE,
            "inputs": {
                "description": "Data for the code, any JSON value (object, array, string, number, boolean, "
                               "null); the code sees it as the global `inputs`."},
            "timeoutMs": {
                "type": "integer", "minimum": 1, "maximum": _MAX_TIMEOUT_MS,
                "description": "Wall-clock limit in milliseconds; leave out for the server's default (10000). "
                               "A value above the server's limit is lowered to that limit."},
        },
        "required": ["code"],
        "additionalProperties": False,
    },
}


def openai_tool():
    """The run_python tool as an entry of OpenAI's `tools` list (strict function calling)."""
    return copy.deepcopy(_OPENAI_TOOL)


def anthropic_tool():
    """The run_python tool as an entry of Anthropic's `tools` list."""
    return copy.deepcopy(_ANTHROPIC_TOOL)


def tool_arguments_to_execute(arguments):
    """Map run_python tool arguments to execute params, or raise ValueError with a message
    written for the model.

    arguments: a dict, or the JSON text OpenAI sends as `function.arguments`. Accepts both
    formats' members: `code`; `inputs` (any JSON, Anthropic's) or `inputs_json` (JSON text,
    OpenAI's: strict mode cannot express "any JSON"); `timeoutMs`. null means left out.
    """
    if isinstance(arguments, (str, bytes)):
        try:
            arguments = json.loads(arguments)
        except ValueError as e:
            raise ValueError("run_python arguments are not valid JSON: %s" % e) from None
    if not isinstance(arguments, dict):
        raise ValueError("run_python arguments must be a JSON object")
    unknown = sorted(set(arguments) - {"code", "inputs", "inputs_json", "timeoutMs"})
    if unknown:
        raise ValueError("run_python has no argument %s (it takes code, inputs, timeoutMs)" % ", ".join(unknown))
    code = arguments.get("code")
    if not isinstance(code, str):
        raise ValueError("run_python needs a `code` string argument")
    params = {"code": code}
    if arguments.get("inputs_json") is not None:
        if arguments.get("inputs") is not None:
            raise ValueError("give run_python either inputs or inputs_json, not both")
        text = arguments["inputs_json"]
        if not isinstance(text, str):
            raise ValueError("inputs_json must be a string of JSON text")
        try:
            params["inputs"] = json.loads(text)
        except ValueError as e:
            raise ValueError("inputs_json is not valid JSON: %s" % e) from None
    elif "inputs" in arguments and arguments["inputs"] is not None:
        params["inputs"] = arguments["inputs"]
    timeout_ms = arguments.get("timeoutMs")
    if timeout_ms is not None:
        if isinstance(timeout_ms, float) and timeout_ms.is_integer():
            timeout_ms = int(timeout_ms)
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
            raise ValueError("timeoutMs must be an integer number of milliseconds")
        if not 1 <= timeout_ms <= _MAX_TIMEOUT_MS:
            raise ValueError("timeoutMs must be between 1 and %d" % _MAX_TIMEOUT_MS)
        params["limits"] = {"timeoutMs": timeout_ms}
    return params


def _profile_limit(client, profile, name):
    for p in (client.info or {}).get("profiles") or []:
        if isinstance(p, dict) and p.get("name") == (profile or "default"):
            value = (p.get("limits") or {}).get(name)
            return value if isinstance(value, int) else None
    return None


def _cut(text, limit):
    if limit is None or len(text) <= limit:
        return text
    half = max(limit // 2 - 40, 0)
    return "%s\n[... %d characters cut ...]\n%s" % (text[:half], len(text) - 2 * half, text[-half:] if half else "")


def format_tool_result(result, max_chars=20000):
    """The execute result as text for a model: status when not ok, output, value, error."""
    parts = []
    status = result.get("status", "error")
    if status != "ok":
        line = "status: " + status
        if result.get("exitCode") not in (None, 0):
            line += " (exit code %s)" % result["exitCode"]
        parts.append(line)
    truncated = result.get("truncated") or {}
    for stream in ("stdout", "stderr"):
        text = result.get(stream) or ""
        if text:
            note = " (the server dropped part of it)" if truncated.get(stream) else ""
            parts.append("%s%s:\n%s" % (stream, note, _cut(text, max_chars).rstrip("\n")))
    if result.get("valueRepr") is not None:
        parts.append("value: " + _cut(result["valueRepr"], max_chars))
    error = result.get("error")
    if isinstance(error, dict):
        line = "error: %s: %s" % (error.get("type", "Error"), error.get("message", ""))
        if isinstance(error.get("line"), int):
            line += " (line %d)" % error["line"]
        parts.append(line)
    for i, bundle in enumerate(result.get("displays") or [], 1):
        kinds = ", ".join(sorted(k for k in bundle if k != "text/plain")) or "text/plain"
        parts.append("[display %d: %s%s]" % (i, kinds, " " + bundle["text/plain"] if "text/plain" in bundle else ""))
    return "\n".join(parts) if parts else "(no output)"


def tool_call(arguments, client=None, *, max_chars=20000, timeout=None, on_output=None):
    """Run one run_python tool call; return (text for the model, is_error).

    arguments: the call's arguments (OpenAI's JSON text or dict, Anthropic's `input` dict).
    client: a Pycell; None uses default_client(). Nothing here raises for a bad call or a
    failed run: the model reads what went wrong and can correct it (only ServerExited, when
    the server is gone, is raised). A timeoutMs above the
    profile's limit is lowered to the limit (and the text says so). max_chars caps each
    output in the text (keeping head and tail); on_output(stream, text) shows the output live
    (to a user watching the agent); timeout (seconds) as in Pycell.request().
    """
    text, is_error, _ = run_tool(arguments, client, max_chars=max_chars, timeout=timeout, on_output=on_output)
    return text, is_error


def run_tool(arguments, client=None, *, max_chars=20000, timeout=None, on_output=None):
    """tool_call() that also returns the execute result: (text, is_error, result), where
    result is None when the call never ran (bad arguments, refused by the server)."""
    try:
        params = tool_arguments_to_execute(arguments)
    except ValueError as e:
        return str(e), True, None
    client = client or default_client()
    note = None
    asked = params.get("limits", {}).get("timeoutMs")
    limit = _profile_limit(client, client.profile, "timeoutMs")
    if asked is not None and limit is not None and asked > limit:
        params["limits"]["timeoutMs"] = limit
        note = "note: timeoutMs lowered from %d to %d, this server's limit" % (asked, limit)
    try:
        result = client.execute(params.pop("code"), timeout=timeout, on_output=on_output, **params)
    except ServerExited:
        raise  # not the model's to fix
    except PycellError as e:
        return "run_python was refused: %s" % e.message, True, None
    except TimeoutError as e:
        return "run_python: %s" % e, True, None
    text = format_tool_result(result, max_chars)
    if note:
        text = note + "\n" + text
    return text, result.get("status") != "ok", result


_default = None
_default_lock = threading.Lock()


def default_client():
    """A shared Pycell for tool_call() without a client: binary from $PYCELL_BINARY, else
    `pycell` on PATH; closed at interpreter exit."""
    global _default
    with _default_lock:
        if _default is None or _default.returncode is not None:
            _default = Pycell(os.environ.get("PYCELL_BINARY", "pycell"))
            atexit.register(_default.close)
        return _default
