"""What the sync and the asyncio client share: error codes, exceptions, the types of the
messages, and the steps of a request that do not depend on how the bytes travel."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union, cast

# A JSON value as the json module returns it, and a JSON object.
JSON = Any
JSONObject = Dict[str, Any]

# on_output(stream, text): "stdout" or "stderr", and a piece of the output.
OutputCallback = Callable[[str, str], None]
# on_notification(method, params): every notification the server sends.
NotificationCallback = Callable[[str, Any], None]

# JSON-RPC error codes the server sends (docs/PROTOCOL.md).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
REQUEST_CANCELLED = -32800
SANDBOX_FAILED = -32000
QUEUE_FULL = -32001

CLIENT_NAME = "pycell_client"


class PycellError(Exception):
    """A JSON-RPC error answered by the server: `code`, `message`, `data` (or None)."""

    def __init__(self, code: Optional[int], message: str, data: JSON = None) -> None:
        super().__init__("%s (%s)" % (message, code) if code is not None else message)
        self.code = code
        self.message = message
        self.data = data


class ServerExited(PycellError):
    """The server process is gone, the connection to a shared server (connect()) is closed,
    or the client was closed; `data` holds the server's last stderr (a child's only)."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(None, message + ("\nserver stderr:\n" + stderr if stderr else ""), {"stderr": stderr})


class Output(NamedTuple):
    """One piece of a streamed execution's output (an `execute/output` notification)."""

    stream: str  # "stdout" or "stderr"
    text: str


def server_command(binary: str, args: Sequence[str]) -> List[str]:
    """The command line of `pycell serve` speaking newline-delimited JSON."""
    return [binary, "serve", "--framing", "ndjson", *args]


def default_binary() -> str:
    """$PYCELL_BINARY, else `pycell` on PATH, else "pycell" (which then fails to start)."""
    return os.environ.get("PYCELL_BINARY") or shutil.which("pycell") or "pycell"


def initialize_params() -> JSONObject:
    # Optional in NDJSON framing, but the answer tells what isolation and profiles this
    # machine has, and processId makes the server exit if this process dies.
    return {"processId": os.getpid(), "clientInfo": {"name": CLIENT_NAME}}


def connect_params(token: Optional[str]) -> JSONObject:
    # A shared server needs the token (when it has one) in the first message; processId is
    # left out: the server does not follow it there, and it is a pid of another machine.
    params: JSONObject = {"clientInfo": {"name": CLIENT_NAME}}
    if token is not None:
        params["token"] = token
    return params


class Address(NamedTuple):
    """Where a shared server listens (`pycell serve --listen`): "unix" and a path, or "tcp",
    a host and a port."""

    kind: str
    host: str  # the socket's path for "unix"
    port: int


def parse_address(address: str) -> Address:
    """"unix:PATH", "tcp:HOST:PORT" or "tcp:[IPv6]:PORT", as `--listen` takes them."""
    kind, _, rest = address.partition(":")
    if kind == "unix" and rest:
        return Address("unix", rest, 0)
    if kind == "tcp":
        match = re.fullmatch(r"\[([^\]]+)\]:([0-9]+)|([^:\[\]]+):([0-9]+)", rest)
        if match:
            host = match.group(1) or match.group(3)
            return Address("tcp", host, int(match.group(2) or match.group(4)))
    raise ValueError("pycell: %r is not an address of a shared server (unix:PATH, tcp:HOST:PORT or "
                     "tcp:[IPv6]:PORT)" % address)


def refusal(message: Mapping[str, Any]) -> bool:
    """True for an error answered to no request (id null): how a shared server refuses a
    connection (-32001, too many connections) just before it closes it."""
    return "method" not in message and message.get("id") is None and "error" in message


def encode(message: Mapping[str, Any]) -> bytes:
    return (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def request_message(request_id: int, method: str, params: JSON) -> JSONObject:
    message: JSONObject = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification_message(method: str, params: JSON) -> JSONObject:
    message: JSONObject = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def method_not_found(request_id: JSON) -> JSONObject:
    """The answer to a request from the server (none is defined)."""
    return {"jsonrpc": "2.0", "id": request_id,
            "error": {"code": METHOD_NOT_FOUND, "message": "client handles no requests"}}


def decode_lines(data: bytes) -> List[JSONObject]:
    """The messages in one line the server wrote (a batch is a list); unreadable ones are
    returned as {"unreadable": text}."""
    line = data.strip()
    if not line:
        return []
    try:
        message = json.loads(line)
    except ValueError:
        return [{"unreadable": line[:200].decode("utf-8", "replace")}]
    return [m for m in (message if isinstance(message, list) else [message]) if isinstance(m, dict)]


def result_of(response: Mapping[str, Any], stderr_tail: Callable[[], str]) -> JSON:
    """The result of a response, or the PycellError it carries."""
    if "exited" in response:
        raise ServerExited(response["exited"], stderr_tail())
    if "error" in response:
        error = response["error"] if isinstance(response["error"], dict) else {}
        raise PycellError(error.get("code"), error.get("message", "unknown error"), error.get("data"))
    return response.get("result")


def decode_value(value: JSON) -> JSON:
    """A result's `value` with each {"$int": "<decimal digits>"} (an integer beyond 64 bits,
    docs/PROTOCOL.md) as a Python int, at any depth of lists and dicts. One that Python will
    not convert (past sys.get_int_max_str_digits()) stays as it came."""
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if not isinstance(value, dict):
        return value
    digits = value.get("$int")
    if len(value) == 1 and isinstance(digits, str) and re.fullmatch(r"-?[0-9]+", digits):
        try:
            return int(digits)
        except ValueError:
            return value
    return {key: decode_value(item) for key, item in value.items()}


def decode_result(result: JSON) -> JSON:
    """An execute (or `result`) answer with its value decoded by decode_value."""
    if isinstance(result, dict) and "value" in result:
        result["value"] = decode_value(result["value"])
    return result


LANGUAGES = ("python", "javascript")


def profile_for(default_profile: Optional[str], language: Optional[str], info: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The client's profile for a request in `language` (None: the server's choice).

    A client made with profile="x" would send "x" with every request; when the initialize
    result says "x" serves another language, sending it would only be refused (-32602), so
    the request goes without a profile and the server runs it in its built-in profile for
    the language ("javascript" for JavaScript, "default" for Python). A profile the server
    did not list (or a server that lists no languages, all Python then) is sent as it is.
    """
    if default_profile is None or language is None:
        return default_profile
    for p in (info or {}).get("profiles") or []:
        if isinstance(p, dict) and p.get("name") == default_profile:
            return default_profile if p.get("language", "python") == language else None
    return default_profile


def execute_params(code: Any, default_profile: Optional[str], params: Mapping[str, Any],
                   info: Optional[Mapping[str, Any]] = None) -> JSONObject:
    """execute's params: code, the caller's members (None ones left out, so language=None
    means the server's default), and the client's profile unless one is named, the run is
    in a session (which runs its own) or the profile serves another language."""
    message: JSONObject = {"code": code, **{k: v for k, v in params.items() if k != "language" or v is not None}}
    profile = profile_for(default_profile, message.get("language"), info)
    if profile is not None and message.get("profile") is None and not message.get("session"):
        message["profile"] = profile
    return message


def session_params(session: Optional[str], profile: Optional[str], limits: Optional[Mapping[str, Any]],
                   network: Optional[bool], language: Optional[str] = None) -> JSONObject:
    return {k: v for k, v in (("session", session), ("profile", profile), ("limits", limits),
                              ("network", network), ("language", language)) if v is not None}


def analyze_params(code: str, profile: Optional[str], language: Optional[str]) -> JSONObject:
    params: JSONObject = {"code": code}
    if profile:
        params["profile"] = profile
    if language is not None:
        params["language"] = language
    return params


def output_of(params: Mapping[str, Any]) -> Output:
    """The stream and text of an execute/output notification's params."""
    stream, text = params.get("stream"), params.get("text", "")
    return Output(stream if isinstance(stream, str) else "stdout", text if isinstance(text, str) else "")


ExecuteResult = JSONObject
Params = Union[Mapping[str, Any], None]


def deliver_notification(method: str, params: Any, stream_for: Callable[[Any], Optional[OutputCallback]],
                         on_notification: Optional[NotificationCallback]) -> None:
    """One notification from the server: execute/output to its run's callback (stream_for
    finds it by executionId), then everything to on_notification, or window/logMessage to
    the log when there is none. A callback that raises is logged, never propagated."""
    try:
        if method == "execute/output" and isinstance(params, dict):
            callback = stream_for(params.get("executionId"))
            if callback is not None:
                callback(*output_of(params))
        if on_notification is not None:
            on_notification(method, params)
        elif method == "window/logMessage" and isinstance(params, dict):
            logging.getLogger("pycell").warning("pycell: %s", params.get("message"))
    except Exception:
        logging.getLogger("pycell").exception("pycell: a notification callback for %s failed", method)


def streamed_id(message: JSONObject, prefix: str, serial: int) -> str:
    """Marks an execute message as streamed and returns its executionId (one is made up from
    `prefix`, the pid and `serial` when the caller gave none)."""
    message["stream"] = True
    if not message.get("executionId"):
        message["executionId"] = "%s-%d-%d" % (prefix, os.getpid(), serial)
    return cast(str, message["executionId"])


def unreadable(message: JSONObject) -> bool:
    """True (and logged) for what decode_lines could not read as a message: the reader skips it."""
    if "unreadable" not in message:
        return False
    logging.getLogger("pycell").warning("pycell: unreadable message from the server: %r", message["unreadable"])
    return True
