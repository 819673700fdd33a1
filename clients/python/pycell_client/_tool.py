"""The run_python and run_javascript tools: their definitions for function-calling APIs, the
mapping of a model's call to an execute request, and the text given back to the model."""

from __future__ import annotations

import atexit
import copy
import json
import os
import threading
from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple

from ._common import ExecuteResult, JSONObject, OutputCallback, PycellError, ServerExited, profile_for

if TYPE_CHECKING:
    from ._sync import Pycell

# The same definitions as schemas/tools/run_{python,javascript}.{openai,anthropic}.json in
# the pycell repository (the one source: `pycell mcp` compiles the Anthropic files in), copied
# here so that this package is all you need; test_client.py keeps the copies equal to the files.

_DESCRIPTION = (
    "Run Python 3 code in an isolated sandbox (no network, no host files, time and memory limits) "
    "and get back what it printed, the value of its last expression, and any error with its line "
    "number and traceback. Every call starts from a fresh interpreter: nothing is kept between "
    "calls, so include imports and definitions each time.")
_CODE = {
    "type": "string",
    "description": "Python source to run. End it with an expression (or assign a global named `result`) "
                   "to get that value back; print() anything else you want to see."}
_JS_DESCRIPTION = (
    "Run JavaScript (Node.js) code in an isolated sandbox (no network, no host files, time and memory limits) "
    "and get back what it printed, the value of its last expression, and any error with its line number and "
    "stack. The code runs as a script: Node's built-in modules through require() or import() (not import "
    "statements), no npm packages; top-level await works. Every call starts from a fresh Node process: nothing "
    "is kept between calls, so include definitions each time.")
_JS_CODE = {
    "type": "string",
    "description": "JavaScript source to run. End it with an expression to get that value back (in code that uses "
                   "top-level await, `return` the value instead; a global named `result` works in both); "
                   "console.log() anything else you want to see."}
_MAX_TIMEOUT_MS = 86400000
LANGUAGES = ("python", "javascript")


def _openai(name: str, description: str, code: JSONObject) -> JSONObject:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {
                    "code": code,
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


def _anthropic(name: str, description: str, code: JSONObject) -> JSONObject:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {
                "code": code,
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


# One tool per language, each with the same arguments: a model picks a tool by its name and
# description, and a run_python client stays as it was.
_TOOL_NAMES = {"python": "run_python", "javascript": "run_javascript"}
_OPENAI_TOOLS = {"python": _openai("run_python", _DESCRIPTION, _CODE),
                 "javascript": _openai("run_javascript", _JS_DESCRIPTION, _JS_CODE)}
_ANTHROPIC_TOOLS = {"python": _anthropic("run_python", _DESCRIPTION, _CODE),
                    "javascript": _anthropic("run_javascript", _JS_DESCRIPTION, _JS_CODE)}


def tool_name(language: str = "python") -> str:
    """The tool's name for a language: run_python or run_javascript (ValueError for others)."""
    if language not in _TOOL_NAMES:
        raise ValueError("pycell runs %s, not %r" % (" and ".join(LANGUAGES), language))
    return _TOOL_NAMES[language]


def openai_tool(language: str = "python") -> JSONObject:
    """The run_python tool (language="javascript": run_javascript) as an entry of OpenAI's
    `tools` list (strict function calling)."""
    tool_name(language)
    return copy.deepcopy(_OPENAI_TOOLS[language])


def anthropic_tool(language: str = "python") -> JSONObject:
    """The run_python tool (language="javascript": run_javascript) as an entry of
    Anthropic's `tools` list."""
    tool_name(language)
    return copy.deepcopy(_ANTHROPIC_TOOLS[language])


def tool_arguments_to_execute(arguments: Any, language: str = "python") -> JSONObject:
    """Map run_python (or run_javascript, with language="javascript") tool arguments to
    execute params, or raise ValueError with a message written for the model.

    arguments: a dict, or the JSON text OpenAI sends as `function.arguments`. Accepts both
    formats' members: `code`; `inputs` (any JSON, Anthropic's) or `inputs_json` (JSON text,
    OpenAI's: strict mode cannot express "any JSON"); `timeoutMs`. null means left out.
    For JavaScript the params carry language="javascript".
    """
    name = tool_name(language)
    if isinstance(arguments, (str, bytes)):
        try:
            arguments = json.loads(arguments)
        except ValueError as e:
            raise ValueError("%s arguments are not valid JSON: %s" % (name, e)) from None
    if not isinstance(arguments, dict):
        raise ValueError("%s arguments must be a JSON object" % name)
    unknown = sorted(set(arguments) - {"code", "inputs", "inputs_json", "timeoutMs"})
    if unknown:
        raise ValueError("%s has no argument %s (it takes code, inputs, timeoutMs)" % (name, ", ".join(unknown)))
    code = arguments.get("code")
    if not isinstance(code, str):
        raise ValueError("%s needs a `code` string argument" % name)
    params: JSONObject = {"code": code}
    if language != "python":
        params["language"] = language
    if arguments.get("inputs_json") is not None:
        if arguments.get("inputs") is not None:
            raise ValueError("give %s either inputs or inputs_json, not both" % name)
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


def _profile_limit(info: Optional[Mapping[str, Any]], profile: Optional[str], name: str) -> Optional[int]:
    for p in (info or {}).get("profiles") or []:
        if isinstance(p, dict) and p.get("name") == (profile or "default"):
            value = (p.get("limits") or {}).get(name)
            return value if isinstance(value, int) else None
    return None


def lower_timeout(params: JSONObject, info: Optional[Mapping[str, Any]], profile: Optional[str]) -> str:
    """Lower a timeoutMs above the limit of the profile the run will use to that limit;
    returns the note that says so, or ""."""
    asked = params.get("limits", {}).get("timeoutMs")
    language = params.get("language")
    # The profile as the server will pick it: the client's (unless it serves another
    # language), else the language's built-in one.
    profile = profile_for(profile, language, info) or ("javascript" if language == "javascript" else "default")
    limit = _profile_limit(info, profile, "timeoutMs")
    if asked is not None and limit is not None and asked > limit:
        params["limits"]["timeoutMs"] = limit
        return "note: timeoutMs lowered from %d to %d, this server's limit" % (asked, limit)
    return ""


def refused_text(error: BaseException, language: str = "python") -> str:
    """The text for the model when the server refused the call or the client gave up."""
    if isinstance(error, ServerExited):
        raise error  # not the model's to fix
    if isinstance(error, PycellError):
        return "%s was refused: %s" % (tool_name(language), error.message)
    return "%s: %s" % (tool_name(language), error)


def _cut(text: str, limit: Optional[int]) -> str:
    if limit is None or len(text) <= limit:
        return text
    half = max(limit // 2 - 40, 0)
    return "%s\n[... %d characters cut ...]\n%s" % (text[:half], len(text) - 2 * half, text[-half:] if half else "")


def format_tool_result(result: Mapping[str, Any], max_chars: Optional[int] = 20000) -> str:
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


def tool_text(result: ExecuteResult, note: str, max_chars: Optional[int]) -> Tuple[str, bool]:
    text = format_tool_result(result, max_chars)
    return (note + "\n" + text if note else text), result.get("status") != "ok"


def tool_call(arguments: Any, client: Optional["Pycell"] = None, *, max_chars: Optional[int] = 20000,
              timeout: Optional[float] = None, on_output: Optional[OutputCallback] = None,
              language: str = "python") -> Tuple[str, bool]:
    """Run one run_python tool call (language="javascript": run_javascript); return (text
    for the model, is_error).

    arguments: the call's arguments (OpenAI's JSON text or dict, Anthropic's `input` dict).
    client: a Pycell; None uses default_client(). Nothing here raises for a bad call or a
    failed run: the model reads what went wrong and can correct it (only ServerExited, when
    the server is gone, is raised). A timeoutMs above the
    profile's limit is lowered to the limit (and the text says so). max_chars caps each
    output in the text (keeping head and tail); on_output(stream, text) shows the output live
    (to a user watching the agent); timeout (seconds) as in Pycell.request().
    """
    text, is_error, _ = run_tool(arguments, client, max_chars=max_chars, timeout=timeout, on_output=on_output,
                                 language=language)
    return text, is_error


def run_tool(arguments: Any, client: Optional["Pycell"] = None, *, max_chars: Optional[int] = 20000,
             timeout: Optional[float] = None, on_output: Optional[OutputCallback] = None,
             language: str = "python") -> Tuple[str, bool, Optional[ExecuteResult]]:
    """tool_call() that also returns the execute result: (text, is_error, result), where
    result is None when the call never ran (bad arguments, refused by the server)."""
    try:
        params = tool_arguments_to_execute(arguments, language)
    except ValueError as e:
        return str(e), True, None
    client = client or default_client()
    note = lower_timeout(params, client.info, client.profile)
    try:
        result = client.execute(params.pop("code"), timeout=timeout, on_output=on_output, **params)
    except (PycellError, TimeoutError) as e:
        return refused_text(e, language), True, None
    text, is_error = tool_text(result, note, max_chars)
    return text, is_error, result


_default: Optional["Pycell"] = None
_default_lock = threading.Lock()


def default_client() -> "Pycell":
    """A shared Pycell for tool_call() without a client: binary from $PYCELL_BINARY, else
    `pycell` on PATH; closed at interpreter exit."""
    from ._sync import Pycell
    global _default
    with _default_lock:
        if _default is None or _default.returncode is not None:
            _default = Pycell(os.environ.get("PYCELL_BINARY", "pycell"))
            atexit.register(_default.close)
        return _default
