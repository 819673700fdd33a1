"""Tests of the sync client (pycell_client.Pycell), example_agent.py and schemas/tools/,
against the real binary (the asyncio client: test_async.py; the package: test_package.py).

    PYCELL_BINARY=path/to/pycell python3 -m unittest -v test_client

Needs only the standard library and jsonschema (Debian's python3-jsonschema, >= 4.0 for
draft 2020-12). ctest runs it as `python_client` (clients/python/tests.cmake).
"""

import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest
import warnings

import jsonschema
from jsonschema import Draft202012Validator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pycell_client  # noqa: E402
from pycell_client import Pycell, PycellError, ServerExited  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
TOOLS_DIR = os.environ.get("PYCELL_TOOL_SCHEMAS") or os.path.join(REPO, "schemas", "tools")
SCHEMAS_DIR = os.path.dirname(TOOLS_DIR)
BINARY = os.environ.get("PYCELL_BINARY", "")


def setUpModule():
    if not BINARY:
        raise RuntimeError("set PYCELL_BINARY to the pycell executable")
    # The binary may be replaced by a rebuild in progress: give it a moment.
    for _ in range(60):
        if os.access(BINARY, os.X_OK):
            return
        time.sleep(1)
    raise RuntimeError("PYCELL_BINARY=%s is not an executable" % BINARY)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def wait_until(predicate, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# --- the client ------------------------------------------------------------------------

class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cell = Pycell(BINARY)

    @classmethod
    def tearDownClass(cls):
        cls.cell.close()

    def test_initialize_info(self):
        info = self.cell.info
        self.assertEqual(info["serverInfo"]["name"], "pycell")
        self.assertIn(info["isolation"]["level"], ("isolated", "degraded"))
        self.assertIn("default", [p["name"] for p in info["profiles"]])

    def test_execute_value(self):
        r = self.cell.execute("x = 6 * 7\nx")
        self.assertEqual(r["status"], "ok")
        self.assertEqual(r["value"], 42)
        self.assertEqual(r["valueRepr"], "42")
        self.assertEqual(r["exitCode"], 0)
        self.assertIsNone(r["error"])
        self.assertTrue(r["executionId"])

    def test_integers_beyond_64_bits_come_back_as_ints(self):
        # The server sends them as {"$int": "digits"} (docs/PROTOCOL.md); the client decodes
        # them at any depth, for execute and for result alike.
        r = self.cell.execute("{'big': [2**100, -(2**70)], 'small': 7, 'nested': {'n': 3**50}}",
                              executionId="big-ints-1")
        self.assertEqual(r["status"], "ok", r)
        expected = {"big": [2**100, -(2**70)], "small": 7, "nested": {"n": 3**50}}
        self.assertEqual(r["value"], expected)
        self.assertIsInstance(r["value"]["big"][0], int)
        self.assertEqual(self.cell.execute("2**100")["value"], 2**100)
        self.assertEqual(self.cell.result("big-ints-1")["value"], expected)
        self.cell.forget("big-ints-1")

    def test_decode_value_leaves_other_dicts_alone(self):
        decode = pycell_client._common.decode_value
        self.assertEqual(decode({"$int": "-12345678901234567890123"}), -12345678901234567890123)
        for kept in ({"$int": "12", "other": 1}, {"$int": 12}, {"$int": "1e5"}, {"$int": ""}, {"$int": "--1"}):
            self.assertEqual(decode(kept), kept)
        self.assertEqual(decode([{"a": {"$int": "5"}}, "$int"]), [{"a": 5}, "$int"])

    def test_execute_params(self):
        r = self.cell.execute("import sys\nprint(open('data.txt').read())\n"
                              "result = {'sum': sum(inputs['xs']), 'line': sys.stdin.read()}",
                              inputs={"xs": [1, 2, 3]}, stdin="from stdin", files={"data.txt": {"text": "a file"}},
                              limits={"timeoutMs": 5000}, executionId="params-1")
        self.assertEqual(r["status"], "ok", r)
        self.assertEqual(r["value"], {"sum": 6, "line": "from stdin"})
        self.assertEqual(r["stdout"], "a file\n")
        self.assertEqual(r["executionId"], "params-1")

    def test_error_with_line(self):
        r = self.cell.execute("a = 1\nb = 2\nraise ValueError('bad value')\n")
        self.assertEqual(r["status"], "error")
        self.assertEqual(r["error"]["type"], "ValueError")
        self.assertEqual(r["error"]["message"], "bad value")
        self.assertEqual(r["error"]["line"], 3)
        self.assertIsInstance(r["error"]["traceback"], list)
        self.assertIn("ValueError: bad value", r["stderr"])

    def test_streaming_callbacks_before_result_in_order(self):
        events = []
        started = time.monotonic()

        def on_output(stream, text):
            events.append((time.monotonic() - started, stream, text))

        code = ("import sys, time\n"
                "for i in range(5):\n"
                "    print('line', i, flush=True)\n"
                "print('to stderr', file=sys.stderr, flush=True)\n"
                "time.sleep(0.4)\n"
                "print('last', flush=True)\n"
                "'done'")
        r = self.cell.execute_stream(code, on_output=on_output)
        returned = time.monotonic() - started
        self.assertEqual(r["status"], "ok", r)
        self.assertEqual(r["value"], "done")
        # Every callback had been made when execute returned, and they add up, in order, to
        # the captured output.
        stdout = "".join(t for _, s, t in events if s == "stdout")
        stderr = "".join(t for _, s, t in events if s == "stderr")
        self.assertEqual(stdout, r["stdout"])
        self.assertEqual(stdout, "".join("line %d\n" % i for i in range(5)) + "last\n")
        self.assertEqual(stderr, "to stderr\n")
        self.assertTrue(all(t <= returned for t, _, _ in events))
        # Streamed while running, not all at the end: the first line came well before the
        # sleep was over.
        self.assertLess(events[0][0], returned - 0.3, events)

    def test_concurrent_executes_from_4_threads(self):
        answers, errors = {}, []
        barrier = threading.Barrier(4)

        def worker(n):
            try:
                barrier.wait()
                for k in range(3):
                    eid = "thread-%d-%d" % (n, k)
                    r = self.cell.execute("import time\ntime.sleep(0.1)\ninputs * 1000", inputs=n * 10 + k,
                                          executionId=eid)
                    answers[eid] = r
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(answers), 12)
        for eid, r in answers.items():
            n, k = map(int, eid.split("-")[1:])
            self.assertEqual(r["executionId"], eid)
            self.assertEqual(r["status"], "ok", r)
            self.assertEqual(r["value"], (n * 10 + k) * 1000)

    def test_concurrent_streams_keep_their_own_output(self):
        seen = {n: [] for n in range(4)}
        results = {}

        def worker(n):
            results[n] = self.cell.execute_stream(
                "import time\nfor i in range(3):\n    print('worker', inputs, i, flush=True)\n    time.sleep(0.05)",
                on_output=lambda stream, text: seen[n].append(text), inputs=n)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for n in range(4):
            self.assertEqual(results[n]["status"], "ok")
            self.assertEqual("".join(seen[n]), "".join("worker %d %d\n" % (n, i) for i in range(3)))

    def test_kill_a_sleeping_run(self):
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "r", self.cell.execute("import time\ntime.sleep(30)", executionId="sleeper")))
        t.start()
        self.assertTrue(wait_until(lambda: self._state("sleeper") == "running"), "the run never started")
        answer = self.cell.kill("sleeper")
        self.assertTrue(answer["killed"])
        t.join(10)
        self.assertFalse(t.is_alive(), "execute did not answer after kill")
        self.assertEqual(box["r"]["status"], "killed")
        self.assertEqual(box["r"]["executionId"], "sleeper")
        self.assertLess(box["r"]["usage"]["wallMs"], 15000)

    def _state(self, execution_id):
        try:
            return self.cell.status(execution_id)["state"]
        except PycellError:
            return None

    def test_session_keeps_state_and_survives_an_interrupt(self):
        session = self.cell.create_session()
        self.assertEqual(self.cell.execute("import math\nr = 2", session=session)["status"], "ok")
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", self.cell.execute(
            "import time\nwhile True: time.sleep(0.01)", session=session, executionId="sess-spin")))
        t.start()
        self.assertTrue(wait_until(lambda: self._state("sess-spin") == "running"), "the run never started")
        self.assertTrue(self.cell.kill_session(session)["killed"])
        t.join(20)
        self.assertEqual(box["r"]["status"], "killed")
        self.assertEqual(box["r"]["session"], {"id": session, "alive": True})
        self.assertAlmostEqual(self.cell.execute("math.pi * r * r", session=session)["value"], 12.566370614359172)
        self.assertTrue(self.cell.close_session(session))
        self.assertFalse(self.cell.close_session(session))

    def test_session_object(self):
        with self.cell.session() as session:
            self.assertEqual(session.execute("n = 20")["status"], "ok")
            pieces = []
            r = session.execute("print(n + 1)\nn * 2", on_output=lambda stream, text: pieces.append(text))
            self.assertEqual((r["value"], "".join(pieces)), (40, "21\n"))
            self.assertEqual(r["session"], {"id": session.id, "alive": True})
        self.assertFalse(self.cell.close_session(session.id))  # closed by the with block

    def test_status(self):
        s = self.cell.status()
        self.assertIn("uptimeMs", s)
        self.assertIsInstance(s["pools"], list)

    def test_result_again_then_forget(self):
        r = self.cell.execute("print('again')\n5", executionId="kept-1")
        self.assertEqual(self.cell.result("kept-1"), r)
        self.assertTrue(self.cell.forget("kept-1"))
        self.assertFalse(self.cell.forget("kept-1"))
        with self.assertRaises(PycellError) as cm:
            self.cell.result("kept-1")
        self.assertEqual(cm.exception.code, pycell_client.INVALID_PARAMS)
        self.assertEqual(self.cell.status()["executions"], [])

    def test_bad_params_raise_pycell_error(self):
        for params in ({"code": 123}, {"code": "1", "limits": {"timeoutMs": 0}},
                       {"code": "1", "profile": "no-such-profile"}, {"code": "1", "session": "s"}):
            with self.subTest(params=params):
                with self.assertRaises(PycellError) as cm:
                    self.cell.request("execute", params)
                self.assertEqual(cm.exception.code, pycell_client.INVALID_PARAMS)
                self.assertTrue(cm.exception.message)
        with self.assertRaises(PycellError) as cm:
            self.cell.execute(123)
        self.assertEqual(cm.exception.code, -32602)
        with self.assertRaises(PycellError) as cm:
            self.cell.kill("no-such-execution")
        self.assertEqual(cm.exception.code, -32602)
        with self.assertRaises(PycellError) as cm:
            self.cell.request("no/such/method")
        self.assertEqual(cm.exception.code, pycell_client.METHOD_NOT_FOUND)
        # The connection is still good.
        self.assertEqual(self.cell.execute("1 + 1")["value"], 2)

    def test_client_side_timeout_cancels(self):
        with self.assertRaises(TimeoutError):
            self.cell.execute("import time\ntime.sleep(30)", timeout=0.5, executionId="given-up")
        # $/cancelRequest killed the sandbox: nothing of it still runs.
        self.assertTrue(wait_until(lambda: self._state("given-up") in (None, "finished")))
        self.assertEqual(self.cell.execute("'still fine'")["value"], "still fine")

    def test_requests_from_a_callback_are_refused(self):
        box = {}

        def on_output(stream, text):
            try:
                self.cell.status()
            except RuntimeError as e:
                box["error"] = e

        r = self.cell.execute_stream("print('x')", on_output=on_output)
        self.assertEqual(r["status"], "ok")
        self.assertIn("callback", str(box.get("error")))


class JavaScriptTest(unittest.TestCase):
    """language="javascript": Node.js in the same sandboxes, results of the same shape."""

    @classmethod
    def setUpClass(cls):
        cls.cell = Pycell(BINARY)

    @classmethod
    def tearDownClass(cls):
        cls.cell.close()

    def test_a_profile_serves_javascript(self):
        languages = {p["name"]: p.get("language") for p in self.cell.info["profiles"]}
        self.assertEqual(languages.get("javascript"), "javascript", languages)
        self.assertEqual(languages.get("default"), "python", languages)

    def test_execute_output_and_value(self):
        r = self.cell.execute("console.log(1+1); 6*7", language="javascript")
        self.assertEqual(r["status"], "ok", r)
        self.assertEqual(r["stdout"], "2\n")
        self.assertEqual(r["value"], 42)
        self.assertEqual(r["valueRepr"], "42")

    def test_streamed_output_and_inputs(self):
        seen = []
        r = self.cell.execute_stream("console.log(inputs.xs.length); inputs.xs.reduce((a, b) => a + b)",
                                     on_output=lambda stream, text: seen.append((stream, text)),
                                     language="javascript", inputs={"xs": [1, 2, 3]})
        self.assertEqual((r["status"], r["value"]), ("ok", 6), r)
        self.assertEqual("".join(t for s, t in seen if s == "stdout"), "3\n")

    def test_error_has_its_type_and_line(self):
        r = self.cell.execute("const a = 1;\nnull.x;\n", language="javascript")
        self.assertEqual(r["status"], "error")
        self.assertEqual(r["error"]["type"], "TypeError")
        self.assertEqual(r["error"]["line"], 2)

    def test_session_keeps_let_between_runs(self):
        with self.cell.session(language="javascript") as s:
            self.assertEqual(s.execute("let x = 41")["status"], "ok")
            self.assertEqual(s.execute("x + 1")["value"], 42)

    def test_analyze_reports_a_syntax_error(self):
        found = self.cell.analyze("let a = 1;\nlet = = 2;\n", language="javascript")["diagnostics"]
        self.assertTrue(any(d["severity"] == 1 for d in found), found)
        self.assertEqual(self.cell.analyze("const a = 1;\na + 1\n", language="javascript")["diagnostics"], [])

    def test_a_profile_that_serves_python_refuses_javascript(self):
        with self.assertRaises(PycellError) as cm:
            self.cell.execute("1", profile="default", language="javascript")
        self.assertEqual(cm.exception.code, -32602)
        self.assertIn("javascript", cm.exception.message.lower())

    def test_the_clients_python_profile_is_not_sent_with_javascript(self):
        # Pycell(profile="default") names a Python profile: a JavaScript request goes without
        # it (the server's "javascript" profile runs it), a Python one still with it.
        with Pycell(BINARY, profile="default") as cell:
            self.assertEqual(cell.execute("6*7", language="javascript")["value"], 42)
            self.assertEqual(cell.execute("6*7")["value"], 42)
            with cell.session(language="javascript") as s:
                self.assertEqual(s.execute("typeof process")["value"], "object")


class LifecycleTest(unittest.TestCase):
    def test_close_exits_with_0(self):
        cell = Pycell(BINARY)
        self.assertEqual(cell.execute("1")["value"], 1)
        self.assertIsNone(cell.returncode)
        self.assertEqual(cell.close(), 0)
        self.assertEqual(cell.returncode, 0)
        self.assertEqual(cell.close(), 0)  # twice is fine
        with self.assertRaises(ServerExited):
            cell.execute("1")

    def test_close_waits_for_executions_in_flight(self):
        cell = Pycell(BINARY)
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "r", cell.execute("import time\ntime.sleep(0.5)\n'finished'", executionId="in-flight")))
        t.start()
        self.assertTrue(wait_until(lambda: cell.status()["running"] + cell.status()["queued"] > 0))
        self.assertEqual(cell.close(), 0)
        t.join(10)
        self.assertEqual(box["r"]["status"], "ok")
        self.assertEqual(box["r"]["value"], "finished")

    def test_context_manager_and_profile(self):
        with Pycell(BINARY, profile="datascience") as cell:
            self.assertEqual(cell.execute("1")["status"], "ok")
            with self.assertRaises(PycellError) as cm:
                cell.execute("1", profile="no-such-profile")
            self.assertEqual(cm.exception.code, -32602)
        self.assertEqual(cell.returncode, 0)

    def test_server_that_cannot_start(self):
        with self.assertRaises(ServerExited) as cm:
            Pycell(BINARY, args=("--no-such-option",))
        self.assertIn("no-such-option", cm.exception.message)  # its stderr says why

    def test_example_agent_runs(self):
        env = dict(os.environ, PYCELL_BINARY=BINARY, PYTHONDONTWRITEBYTECODE="1")
        for flags in ([], ["--async"]):
            with self.subTest(flags=flags):
                started = time.monotonic()
                p = subprocess.run([sys.executable, os.path.join(HERE, "example_agent.py"), *flags], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                   timeout=120)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertLess(time.monotonic() - started, 30)
                out = p.stdout
                self.assertIn("NameError: name 'statistics' is not defined (line 3)", out)
                self.assertIn("value: {'mean': 22.14, 'stdev': 2.67, 'hottest': 'Sat'}", out)
                self.assertIn("status: timeout", out)
                self.assertIn("assistant:\n    Over the week:", out)
                self.assertIn("\n    | out ", out)  # output streamed live, as it came


# --- the run_python tool definitions -----------------------------------------------------

NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"

# What OpenAI's strict mode (Structured Outputs) supports in a function's parameters.
OPENAI_STRICT_KEYWORDS = {
    "type", "description", "title", "properties", "required", "additionalProperties", "items",
    "enum", "const", "anyOf", "$ref", "$defs", "definitions",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "pattern", "format", "minItems", "maxItems",
}
JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}


def openai_strict_problems(schema, path="parameters", depth=0):
    """Why `schema` breaks OpenAI's strict-mode rules (an empty list when it does not)."""
    problems = []
    if not isinstance(schema, dict):
        return ["%s: not a schema object" % path]
    if depth > 10:
        problems.append("%s: nested deeper than 10 levels" % path)
    unknown = sorted(set(schema) - OPENAI_STRICT_KEYWORDS)
    if unknown:
        problems.append("%s: keywords strict mode does not support: %s" % (path, unknown))
    if not any(k in schema for k in ("type", "anyOf", "enum", "const", "$ref")):
        problems.append("%s: no type (strict mode needs one on every schema)" % path)
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if not set(types) <= JSON_TYPES:
        problems.append("%s: unknown types %s" % (path, sorted(set(types) - JSON_TYPES)))
    if "object" in types:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            problems.append("%s: additionalProperties must be false" % path)
        if sorted(schema.get("required", [])) != sorted(properties):
            problems.append("%s: every property must be required (optional ones are nullable)" % path)
        for name, sub in properties.items():
            problems += openai_strict_problems(sub, "%s.%s" % (path, name), depth + 1)
    if "array" in types and "items" in schema:
        problems += openai_strict_problems(schema["items"], path + "[]", depth + 1)
    for i, sub in enumerate(schema.get("anyOf", [])):
        problems += openai_strict_problems(sub, "%s.anyOf[%d]" % (path, i), depth + 1)
    for name, sub in schema.get("$defs", {}).items():
        problems += openai_strict_problems(sub, "%s.$defs.%s" % (path, name), depth + 1)
    return problems


def openai_tool_problems(tool):
    """A `tools` entry of OpenAI's function calling, checked against its rules."""
    problems = []
    if set(tool) != {"type", "function"} or tool.get("type") != "function":
        return ["the entry must be exactly {type: \"function\", function: {...}}"]
    fn = tool["function"]
    unknown = sorted(set(fn) - {"name", "description", "parameters", "strict"})
    if unknown:
        problems.append("function has unknown keys %s" % unknown)
    for key in ("name", "description", "parameters", "strict"):
        if key not in fn:
            problems.append("function.%s is missing" % key)
    if not isinstance(fn.get("name"), str) or not re.match(NAME_PATTERN, fn["name"]):
        problems.append("function.name must match %s" % NAME_PATTERN)
    if not isinstance(fn.get("description"), str) or not fn["description"].strip():
        problems.append("function.description must be a non-empty string")
    if fn.get("strict") is not True:
        problems.append("function.strict must be true")
    problems += json_schema_object_problems(fn.get("parameters"), "function.parameters")
    if isinstance(fn.get("parameters"), dict):
        if "anyOf" in fn["parameters"]:
            problems.append("function.parameters: the root may not be anyOf in strict mode")
        problems += openai_strict_problems(fn["parameters"])
    return problems


def anthropic_tool_problems(tool):
    """A `tools` entry of Anthropic's Messages API (a custom client tool), checked."""
    problems = []
    unknown = sorted(set(tool) - {"name", "description", "input_schema", "cache_control", "type"})
    if unknown:
        problems.append("unknown keys %s" % unknown)
    for key in ("name", "description", "input_schema"):
        if key not in tool:
            problems.append("%s is missing" % key)
    if tool.get("type", "custom") != "custom":
        problems.append("type, when given, is \"custom\" for a client tool")
    if not isinstance(tool.get("name"), str) or not re.match(NAME_PATTERN, tool["name"]):
        problems.append("name must match %s" % NAME_PATTERN)
    if not isinstance(tool.get("description"), str) or not tool["description"].strip():
        problems.append("description must be a non-empty string")
    problems += json_schema_object_problems(tool.get("input_schema"), "input_schema")
    return problems


def json_schema_object_problems(schema, path):
    if not isinstance(schema, dict):
        return ["%s must be a JSON Schema object" % path]
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        return ["%s is not a valid JSON Schema (2020-12): %s" % (path, e.message)]
    if schema.get("type") != "object":
        return ["%s must have type \"object\"" % path]
    return []


def openai_args(**kw):
    """OpenAI strict-mode arguments: every member present, null for the ones not used."""
    args = {"code": None, "inputs_json": None, "timeoutMs": None}
    args.update(kw)
    return args


# Tool calls both schemas accept, as (Anthropic arguments, OpenAI arguments, expected status,
# expected value). Each must run on the real server, which must not refuse it.
ACCEPTED = [
    ({"code": "6 * 7"}, openai_args(code="6 * 7"), "ok", 42),
    ({"code": ""}, openai_args(code=""), "ok", None),
    ({"code": "sum(inputs['xs'])", "inputs": {"xs": [1, 2, 3]}},
     openai_args(code="sum(inputs['xs'])", inputs_json='{"xs": [1, 2, 3]}'), "ok", 6),
    ({"code": "inputs", "inputs": [1, None, "two", {"three": True}]},
     openai_args(code="inputs", inputs_json='[1, null, "two", {"three": true}]'), "ok", [1, None, "two", {"three": True}]),
    ({"code": "inputs.upper()", "inputs": "text"}, openai_args(code="inputs.upper()", inputs_json='"text"'), "ok", "TEXT"),
    ({"code": "inputs is None", "inputs": None}, openai_args(code="inputs is None", inputs_json="null"), "ok", True),
    ({"code": "inputs + 1", "inputs": 2.5}, openai_args(code="inputs + 1", inputs_json="2.5"), "ok", 3.5),
    # The largest timeoutMs the schemas allow: lowered to the profile's limit, not refused.
    ({"code": "'long'", "timeoutMs": 86400000}, openai_args(code="'long'", timeoutMs=86400000), "ok", "long"),
    ({"code": "'float'", "timeoutMs": 2000.0}, openai_args(code="'float'", timeoutMs=2000.0), "ok", "float"),
    ({"code": "while True: pass", "timeoutMs": 1}, openai_args(code="while True: pass", timeoutMs=1), "timeout", None),
    ({"code": "while True: pass", "timeoutMs": 300}, openai_args(code="while True: pass", timeoutMs=300), "timeout", None),
    ({"code": "x = 1\n1 / 0"}, openai_args(code="x = 1\n1 / 0"), "error", None),
]

# Tool calls both schemas refuse; the client refuses them too, without calling the server,
# with a message the model can act on. (Each is the OpenAI form; the Anthropic form drops
# the null members.)
REFUSED = [
    openai_args(),                                   # no code
    openai_args(code=5),
    openai_args(code=["print(1)"]),
    openai_args(code="1", timeoutMs=0),
    openai_args(code="1", timeoutMs=-5),
    openai_args(code="1", timeoutMs=86400001),
    openai_args(code="1", timeoutMs=1.5),
    openai_args(code="1", timeoutMs="100"),
    openai_args(code="1", timeoutMs=True),
    openai_args(code="1", session="s1"),             # no sessions in the tool (yet)
    openai_args(code="1", limits={"timeoutMs": 5}),
    openai_args(code="1", profile="default"),
]


class ToolSchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.openai = load_json(os.path.join(TOOLS_DIR, "run_python.openai.json"))
        cls.anthropic = load_json(os.path.join(TOOLS_DIR, "run_python.anthropic.json"))
        cls.openai_validator = Draft202012Validator(cls.openai["function"]["parameters"])
        cls.anthropic_validator = Draft202012Validator(cls.anthropic["input_schema"])
        # execute's params as the server documents them (schemas/), to check what the client
        # makes of a tool call.
        store = {}
        for name in os.listdir(SCHEMAS_DIR):
            if name.endswith(".json"):
                schema = load_json(os.path.join(SCHEMAS_DIR, name))
                if "$id" in schema:
                    store[schema["$id"]] = schema
        execute_params = load_json(os.path.join(SCHEMAS_DIR, "execute.params.json"))
        with warnings.catch_warnings():  # RefResolver is deprecated in jsonschema >= 4.18
            warnings.simplefilter("ignore", DeprecationWarning)
            resolver = jsonschema.RefResolver(base_uri=execute_params["$id"], referrer=execute_params, store=store)
        cls.execute_validator = Draft202012Validator(execute_params, resolver=resolver)
        cls.cell = Pycell(BINARY)

    @classmethod
    def tearDownClass(cls):
        cls.cell.close()

    def test_openai_format_rules(self):
        self.assertEqual(openai_tool_problems(self.openai), [])

    def test_anthropic_format_rules(self):
        self.assertEqual(anthropic_tool_problems(self.anthropic), [])

    def test_the_rule_checks_catch_violations(self):
        bad = copy.deepcopy(self.openai)
        bad["function"]["parameters"]["required"].remove("timeoutMs")
        self.assertTrue(any("required" in p for p in openai_tool_problems(bad)))
        bad = copy.deepcopy(self.openai)
        bad["function"]["parameters"]["properties"]["extra"] = {
            "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
        bad["function"]["parameters"]["required"].append("extra")
        self.assertTrue(any("parameters.extra: additionalProperties" in p for p in openai_tool_problems(bad)))
        bad = copy.deepcopy(self.openai)
        bad["function"]["parameters"]["properties"]["inputs_json"] = {"description": "any JSON"}
        self.assertTrue(any("no type" in p for p in openai_tool_problems(bad)))
        bad = copy.deepcopy(self.openai)
        bad["function"]["name"] = "run python"
        self.assertTrue(any("name" in p for p in openai_tool_problems(bad)))
        bad = copy.deepcopy(self.anthropic)
        bad["input_schema"]["type"] = "array"
        self.assertTrue(any("type" in p for p in anthropic_tool_problems(bad)))
        bad = copy.deepcopy(self.anthropic)
        bad["input_schema"]["properties"]["code"]["type"] = "text"
        self.assertTrue(any("not a valid JSON Schema" in p for p in anthropic_tool_problems(bad)))
        bad = copy.deepcopy(self.anthropic)
        del bad["input_schema"]
        self.assertTrue(anthropic_tool_problems(bad))

    def test_same_tool_in_both_formats_and_in_the_module(self):
        self.assertEqual(pycell_client.openai_tool(), self.openai)
        self.assertEqual(pycell_client.anthropic_tool(), self.anthropic)
        fn = self.openai["function"]
        self.assertEqual(fn["name"], self.anthropic["name"])
        self.assertEqual(fn["description"], self.anthropic["description"])
        self.assertEqual(fn["parameters"]["properties"]["code"], self.anthropic["input_schema"]["properties"]["code"])
        a_timeout = self.anthropic["input_schema"]["properties"]["timeoutMs"]
        o_timeout = fn["parameters"]["properties"]["timeoutMs"]
        self.assertEqual((a_timeout["minimum"], a_timeout["maximum"]), (o_timeout["minimum"], o_timeout["maximum"]))
        # The MCP server's run_python takes the same arguments (PROTOCOL.md section 5).
        self.assertEqual(set(self.anthropic["input_schema"]["properties"]), {"code", "inputs", "timeoutMs"})

    def test_the_javascript_tool_files(self):
        # run_javascript (schemas/tools/run_javascript.*.json) follows the same rules, with
        # run_python's arguments in both formats.
        openai = load_json(os.path.join(TOOLS_DIR, "run_javascript.openai.json"))
        anthropic = load_json(os.path.join(TOOLS_DIR, "run_javascript.anthropic.json"))
        self.assertEqual(openai_tool_problems(openai), [])
        self.assertEqual(anthropic_tool_problems(anthropic), [])
        self.assertEqual((openai["function"]["name"], anthropic["name"]), ("run_javascript", "run_javascript"))
        self.assertEqual(openai["function"]["description"], anthropic["description"])
        self.assertEqual(set(anthropic["input_schema"]["properties"]), set(self.anthropic["input_schema"]["properties"]))
        self.assertEqual(set(openai["function"]["parameters"]["properties"]),
                         set(self.openai["function"]["parameters"]["properties"]))
        for word in ("Node.js", "top-level await", "last expression"):
            self.assertIn(word, anthropic["description"] + anthropic["input_schema"]["properties"]["code"]["description"])

    def test_mcp_lists_the_same_tool(self):
        # `pycell mcp` compiles run_python.anthropic.json (and run_javascript.anthropic.json)
        # in: the same name, description and arguments, with the session argument only MCP has.
        requests = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        ]
        proc = subprocess.run([BINARY, "mcp"], input="".join(json.dumps(r) + "\n" for r in requests),
                              capture_output=True, text=True, timeout=120)
        answers = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        listed = next(a for a in answers if a.get("id") == 2)["result"]["tools"]
        javascript = load_json(os.path.join(TOOLS_DIR, "run_javascript.anthropic.json"))
        for name, definition in (("run_python", self.anthropic), ("run_javascript", javascript)):
            tool = next(t for t in listed if t["name"] == name)
            self.assertEqual(tool["name"], definition["name"])
            self.assertEqual(tool["description"], definition["description"])
            schema = copy.deepcopy(tool["inputSchema"])
            self.assertEqual(schema["properties"].pop("session")["type"], "string")
            self.assertEqual(schema, definition["input_schema"])

    def test_accepted_calls_run_on_the_server(self):
        for anthropic_arguments, openai_arguments, status, value in ACCEPTED:
            for name, arguments, validator in (("anthropic", anthropic_arguments, self.anthropic_validator),
                                               ("openai", openai_arguments, self.openai_validator)):
                with self.subTest(format=name, arguments=arguments):
                    self.assertEqual([e.message for e in validator.iter_errors(arguments)], [])
                    params = pycell_client.tool_arguments_to_execute(arguments)
                    self.assertEqual([e.message for e in self.execute_validator.iter_errors(params)], [])
                    # OpenAI sends its arguments as JSON text.
                    sent = json.dumps(arguments) if name == "openai" else arguments
                    text, is_error, result = pycell_client.run_tool(sent, self.cell)
                    self.assertIsNotNone(result, "the server refused it: " + text)
                    self.assertEqual(result["status"], status, text)
                    self.assertEqual(is_error, status != "ok")
                    if status == "ok":
                        self.assertEqual(result["value"], value)

    def test_refused_calls_never_reach_the_server(self):
        for openai_arguments in REFUSED:
            anthropic_arguments = {k: v for k, v in openai_arguments.items() if v is not None}
            for name, arguments, validator in (("anthropic", anthropic_arguments, self.anthropic_validator),
                                               ("openai", openai_arguments, self.openai_validator)):
                with self.subTest(format=name, arguments=arguments):
                    self.assertTrue(list(validator.iter_errors(arguments)), "the schema accepts it")
                    with self.assertRaises(ValueError):
                        pycell_client.tool_arguments_to_execute(arguments)
                    text, is_error, result = pycell_client.run_tool(arguments, self.cell)
                    self.assertTrue(is_error)
                    self.assertIsNone(result)
                    self.assertNotIn("refused", text)  # the client's own message, not the server's

    def test_strict_mode_needs_every_member(self):
        # OpenAI's strict mode always sends all three; leaving one out is invalid there (the
        # client itself is lenient and treats it as null).
        self.assertTrue(list(self.openai_validator.iter_errors({"code": "1"})))
        self.assertEqual(pycell_client.tool_call({"code": "1"}, self.cell), ("value: 1", False))

    def test_inputs_json_that_is_not_json(self):
        # The one thing the OpenAI schema cannot say: inputs_json must hold valid JSON.
        arguments = openai_args(code="inputs", inputs_json="{not json")
        self.assertEqual(list(self.openai_validator.iter_errors(arguments)), [])
        text, is_error = pycell_client.tool_call(arguments, self.cell)
        self.assertTrue(is_error)
        self.assertIn("inputs_json is not valid JSON", text)

    def test_tool_result_text(self):
        text, is_error = pycell_client.tool_call({"code": "print('hello')\n6 * 7"}, self.cell)
        self.assertEqual((text, is_error), ("stdout:\nhello\nvalue: 42", False))
        text, is_error = pycell_client.tool_call({"code": "x = 1\nprint('before')\nx.nope"}, self.cell)
        self.assertTrue(is_error)
        self.assertTrue(text.startswith("status: error (exit code 1)\nstdout:\nbefore\nstderr:\nTraceback"), text)
        self.assertTrue(text.endswith("error: AttributeError: 'int' object has no attribute 'nope' (line 3)"), text)
        text, is_error = pycell_client.tool_call({"code": "'ok'", "timeoutMs": 999999}, self.cell)
        limit = [p for p in self.cell.info["profiles"] if p["name"] == "default"][0]["limits"]["timeoutMs"]
        self.assertEqual(text, "note: timeoutMs lowered from 999999 to %d, this server's limit\nvalue: 'ok'" % limit)
        self.assertFalse(is_error)
        text, is_error = pycell_client.tool_call({"code": "print('x' * 50000)"}, self.cell, max_chars=1000)
        self.assertIn("characters cut", text)
        self.assertLess(len(text), 1200)
        self.assertEqual(pycell_client.tool_call({"code": "x = 1"}, self.cell), ("(no output)", False))

    def test_run_javascript_tool_call(self):
        # The module's run_javascript definitions are the files', and a call runs in Node.
        javascript = {fmt: load_json(os.path.join(TOOLS_DIR, "run_javascript.%s.json" % fmt))
                      for fmt in ("openai", "anthropic")}
        self.assertEqual(pycell_client.openai_tool("javascript"), javascript["openai"])
        self.assertEqual(pycell_client.anthropic_tool("javascript"), javascript["anthropic"])
        with self.assertRaises(ValueError):
            pycell_client.openai_tool("ruby")
        text, is_error = pycell_client.tool_call('{"code": "console.log(1+1); 6*7", "inputs_json": null, '
                                                 '"timeoutMs": null}', self.cell, language="javascript")
        self.assertEqual((text, is_error), ("stdout:\n2\nvalue: 42", False))
        text, is_error = pycell_client.tool_call({"code": "const x = 1;\nx.nope.more"}, self.cell, language="javascript")
        self.assertTrue(is_error)
        self.assertTrue(text.endswith("(line 2)"), text)
        self.assertIn("TypeError", text)
        # Lowered to the javascript profile's limit, not the default one's.
        text, _ = pycell_client.tool_call({"code": "'ok'", "timeoutMs": 999999}, self.cell, language="javascript")
        limit = [p for p in self.cell.info["profiles"] if p["name"] == "javascript"][0]["limits"]["timeoutMs"]
        self.assertTrue(text.startswith("note: timeoutMs lowered from 999999 to %d" % limit), text)
        text, is_error = pycell_client.tool_call({"code": 5}, self.cell, language="javascript")
        self.assertEqual((text, is_error), ("run_javascript needs a `code` string argument", True))


if __name__ == "__main__":
    unittest.main()
