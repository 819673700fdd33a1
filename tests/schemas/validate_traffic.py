#!/usr/bin/env python3
"""Validates real pycell traffic against the JSON Schemas in schemas/.

Usage: validate_traffic.py PYCELL_BINARY [SCHEMA_DIR]

Spawns `PYCELL_BINARY serve` and drives every implemented method and notification, first
in NDJSON framing, then a short session in LSP framing (Content-Length headers). Every
message sent is validated against the envelope (jsonrpc.json) and its method's params
schema; every message received against the envelope and the result or notification schema
of the request it answers (responses are matched to requests by id). Messages that are
meant to be bad are checked to be rejected by the schema where a schema can tell. Finally a
sample config file is validated against config.schema.json and given to `pycell check`,
and a few bad ones are checked to be refused by both.

Standard library plus jsonschema (Debian's python3-jsonschema, 4.10 or later): schemas
are resolved by a RefResolver whose store holds every schema file keyed by its $id.
Exits 0 when everything validated, 1 on any failure (each named with its message and the
schema error), 2 on bad usage.
"""
import base64
import glob
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import jsonschema

BASE = "https://pycell.dev/schemas/"
READ_TIMEOUT = 20.0  # seconds for any single expected message
EXIT_TIMEOUT = 10.0  # seconds for the server to exit after `exit` or EOF
HERE = os.path.dirname(os.path.abspath(__file__))
STRICT = os.environ.get("PYCELL_SCHEMAS_STRICT", "1") == "1"  # known mismatches fail (0: only warn)

ABSENT = object()  # "leave params out" (distinct from params: null)


class Fatal(Exception):
    """The scenario cannot go on (timeout, EOF, garbled stream)."""


class Report:
    def __init__(self):
        self.failures = []
        self.warnings = []
        self.sent = 0
        self.received = 0
        self.rejected_as_intended = 0
        self.configs = 0

    def fail(self, what):
        self.failures.append(what)
        print("FAIL  " + what, flush=True)

    def warn(self, what):
        self.warnings.append(what)
        print("WARN  " + what, flush=True)

    def check(self, condition, what):
        if not condition:
            self.fail(what)
        return bool(condition)


def short(obj, limit=300):
    text = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."


class Schemas:
    """Every schema file, keyed by $id, and validation of an instance against one of them."""

    def __init__(self, directory):
        self.store = {}
        for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
            with open(path, encoding="utf-8") as f:
                schema = json.load(f)
            jsonschema.Draft202012Validator.check_schema(schema)
            expected = BASE + os.path.basename(path)
            if schema.get("$id") != expected:
                raise SystemExit("%s: $id must be %s" % (path, expected))
            self.store[schema["$id"]] = schema
        if not self.store:
            raise SystemExit("no schema files in " + directory)
        with warnings.catch_warnings():  # RefResolver is deprecated in jsonschema >= 4.18
            warnings.simplefilter("ignore", DeprecationWarning)
            self.resolver = jsonschema.RefResolver(base_uri=BASE, referrer={}, store=self.store)
        self.validators = {}

    def has(self, name):
        return BASE + name in self.store

    def errors(self, ref, instance):
        """Error texts of `instance` against `ref` (a file name, optionally with a #fragment)."""
        validator = self.validators.get(ref)
        if validator is None:
            validator = jsonschema.Draft202012Validator({"$ref": BASE + ref}, resolver=self.resolver)
            self.validators[ref] = validator
        found = list(validator.iter_errors(instance))
        if not found:
            return []
        best = jsonschema.exceptions.best_match(found)
        # For oneOf/anyOf failures the useful text is in the best sub-error, except for a
        # choice among constants, where the parent's "not valid under any" says more.
        while best.context and not all(e.validator == "const" for e in best.context):
            best = jsonschema.exceptions.best_match(best.context)
        where = "/".join(str(p) for p in best.absolute_path) or "(root)"
        return ["at %s: %s (schema path %s)" % (where, best.message,
                                                 "/".join(str(p) for p in best.absolute_schema_path))]


# --- transport -----------------------------------------------------------------------------

class Connection:
    """One spawned server: writes frames to its stdin, reads frames from its stdout."""

    def __init__(self, argv, framing, label):
        self.framing = framing
        self.label = label
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, cwd=tempfile.gettempdir())
        self.frames = queue.Queue()
        self.started = False  # has a frame been read yet
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError as e:
                self.frames.put(("eof", str(e)))
                return
            if not chunk:
                if buf.strip():
                    self.frames.put(("bad", "stream ended inside a frame: %r" % buf[:200]))
                self.frames.put(("eof", "end of stdout"))
                return
            buf += chunk
            while True:
                frame, buf = self._split(buf)
                if frame is None:
                    break
                self.frames.put(frame)

    def _split(self, buf):
        """(frame, rest) or (None, buf) when incomplete."""
        if self.framing == "ndjson":
            nl = buf.find(b"\n")
            if nl < 0:
                return None, buf
            line, rest = buf[:nl], buf[nl + 1:]
            if not line.strip():
                return ("bad", "empty line in NDJSON output"), rest
            return self._parse(line), rest
        if not self.started and buf.lstrip()[:1] == b"{":
            # Known mismatch: a degraded server in auto framing writes its startup
            # window/logMessage as an NDJSON line before the client has chosen LSP.
            nl = buf.find(b"\n")
            if nl < 0:
                return None, buf
            self.started = True
            kind, value = self._parse(buf[:nl])
            return ("ndjson-in-lsp" if kind == "msg" else kind, value), buf[nl + 1:]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if buf.lstrip()[:1] in (b"{", b"[") or len(buf) > 8192:
                # Not a header block: the rest of the stream cannot be framed any more.
                return ("bad", "not an LSP header: %r" % buf[:200]), b""
            return None, buf
        length = None
        for line in buf[:end].split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                return ("bad", "malformed LSP header line %r" % line), b""
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None:
            return ("bad", "LSP header without Content-Length: %r" % buf[:end]), b""
        body_start = end + 4
        if len(buf) < body_start + length:
            return None, buf
        self.started = True
        return self._parse(buf[body_start:body_start + length]), buf[body_start + length:]

    @staticmethod
    def _parse(body):
        try:
            return ("msg", json.loads(body.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as e:
            return ("bad", "not JSON (%s): %r" % (e, body[:200]))

    def write(self, body_bytes, headers=None):
        if self.framing == "ndjson":
            data = body_bytes + b"\n"
        else:
            head = "Content-Length: %d\r\n" % len(body_bytes)
            for name, value in (headers or {}).items():
                head += "%s: %s\r\n" % (name, value)
            data = head.encode("ascii") + b"\r\n" + body_bytes
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise Fatal("%s: the server closed its stdin (exited with %s)" % (self.label, self.proc.poll()))

    def next_frame(self, timeout):
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return ("timeout", "no message within %.0f s" % timeout)

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stderr_tail(self, limit=2000):
        self.stderr.seek(0)
        text = self.stderr.read().decode("utf-8", "replace")
        return text[-limit:]

    def close(self):
        """Ends the process this object started, if it is still running."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            if self.wait_exit(5) is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.reader.join(timeout=5)
        self.stderr.close()


# --- a validated session -------------------------------------------------------------------

NOTIFICATION_SCHEMAS = {
    "execute/output": "execute-output.notification.json",
    "execute/usage": "execute-usage.notification.json",
    "window/logMessage": "window-logMessage.notification.json",
    "$/cancelRequest": "cancelRequest.notification.json",
    "exit": "exit.notification.json",
}


def schema_name(method):
    """session/create -> session-create (a schema file per method)."""
    return method.replace("/", "-")


class Session:
    def __init__(self, schemas, report, conn):
        self.schemas = schemas
        self.report = report
        self.conn = conn
        self.label = conn.label
        self.pending = {}  # json id text -> method
        self.responses = {}  # json id text -> response
        self.notifications = []
        self.next_id = 1
        self.duplicates = {}  # json id text -> requests sent with the id of one pending
        self.refusals = []  # the answers to those (-32600), in arrival order
        self._refusal_ids = set()

    # validation ---------------------------------------------------------------------------
    def _validate(self, what, ref, instance):
        errors = self.schemas.errors(ref, instance)
        for e in errors:
            self.report.fail("%s: %s does not match %s %s" % (self.label, what, ref, e))
        return not errors

    def _validate_outgoing(self, message, schema_valid):
        """Envelope + params schema. schema_valid False: the params must be rejected."""
        method = message.get("method")
        what = "sent %s %s" % ("request" if "id" in message else "notification", short(message, 200))
        ok = self._validate(what, "jsonrpc.json", message)
        if method in NOTIFICATION_SCHEMAS and "id" not in message:
            ref, instance = NOTIFICATION_SCHEMAS[method], message
        elif self.schemas.has("%s.params.json" % schema_name(method)):
            ref = "%s.params.json" % schema_name(method)
            instance = message.get("params")  # absent params reach the server as null
        else:
            ref = None
        if ref is None:
            self.report.check(schema_valid, "%s: %s has no params schema to reject it" % (self.label, what))
        elif schema_valid:
            self._validate(what, ref, instance)
        elif not self.schemas.errors(ref, instance):
            self.report.fail("%s: %s should be rejected by %s but is accepted" % (self.label, what, ref))
        else:
            self.report.rejected_as_intended += 1
        self.report.sent += 1
        return ok

    def _validate_incoming(self, message):
        self.report.received += 1
        what = "received " + short(message, 200)
        self._validate(what, "jsonrpc.json", message)
        for m in message if isinstance(message, list) else [message]:
            if not isinstance(m, dict):
                continue
            if "method" in m:
                ref = NOTIFICATION_SCHEMAS.get(m["method"])
                if ref is None or "id" in m:
                    self.report.fail("%s: unexpected message from the server: %s" % (self.label, short(m)))
                else:
                    self._validate("received " + short(m, 200), ref, m)
                continue
            key = json.dumps(m.get("id"))
            if self.duplicates.get(key) and m.get("error", {}).get("code") == -32600:
                # The refusal of a second request with a pending id: the first stays pending.
                self.duplicates[key] -= 1
                self.refusals.append(m)
                self._refusal_ids.add(id(m))
                continue
            method = self.pending.pop(key, None)
            if method is None and m.get("id") is not None:
                self.report.fail("%s: response to an id that was never sent or was answered already: %s"
                                 % (self.label, short(m)))
            if "result" in m and method is not None:
                ref = "%s.result.json" % schema_name(method)
                if self.schemas.has(ref):
                    self._validate("result of %s (id %s) %s" % (method, key, short(m["result"], 200)), ref, m["result"])
                else:
                    self.report.fail("%s: no result schema for method %s" % (self.label, method))

    # sending ------------------------------------------------------------------------------
    def _new_id(self, id_):
        if id_ is None:
            id_ = self.next_id
            self.next_id += 1
        return id_

    def request(self, method, params=ABSENT, id_=None, schema_valid=True, headers=None):
        id_ = self._new_id(id_)
        message = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not ABSENT:
            message["params"] = params
        self._validate_outgoing(message, schema_valid)
        key = json.dumps(id_)
        if key in self.pending:
            raise Fatal("%s: id %s reused while pending" % (self.label, key))
        self.pending[key] = method
        self.conn.write(json.dumps(message).encode("utf-8"), headers)
        return id_

    def request_duplicate(self, method, params, id_):
        """Sends a request with the id of one still pending: the server must refuse it with
        -32600 and leave the first alone (see refusal())."""
        key = json.dumps(id_)
        if key not in self.pending:
            raise Fatal("%s: id %s is not pending" % (self.label, key))
        message = {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}
        self._validate_outgoing(message, True)
        self.duplicates[key] = self.duplicates.get(key, 0) + 1
        self.conn.write(json.dumps(message).encode("utf-8"))

    def refusal(self, id_, timeout=READ_TIMEOUT):
        """The -32600 answer to a request sent by request_duplicate()."""
        key = json.dumps(id_)
        deadline = time.monotonic() + timeout
        while True:
            for r in self.refusals:
                if json.dumps(r.get("id")) == key:
                    self.refusals.remove(r)
                    return r
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fatal("%s: no refusal of the duplicate id %s within %.0f s" % (self.label, key, timeout))
            self.receive(left)

    def notify(self, method, params=ABSENT):
        message = {"jsonrpc": "2.0", "method": method}
        if params is not ABSENT:
            message["params"] = params
        self._validate_outgoing(message, True)
        self.conn.write(json.dumps(message).encode("utf-8"))

    def batch(self, entries):
        """Sends a batch of (method, params, id or None for a notification)."""
        messages = []
        for method, params, id_ in entries:
            m = {"jsonrpc": "2.0", "method": method}
            if id_ is not None:
                m["id"] = id_
            if params is not ABSENT:
                m["params"] = params
            self._validate_outgoing(m, True)
            self.report.sent -= 1  # counted once, as the batch below
            messages.append(m)
            if id_ is not None:
                self.pending[json.dumps(id_)] = method
        self._validate("sent batch " + short(messages, 200), "jsonrpc.json", messages)
        self.report.sent += 1
        self.conn.write(json.dumps(messages).encode("utf-8"))

    def send_raw(self, body_bytes):
        self.conn.write(body_bytes)

    # receiving ----------------------------------------------------------------------------
    def receive(self, timeout=READ_TIMEOUT):
        kind, value = self.conn.next_frame(timeout)
        if kind == "ndjson-in-lsp":
            (self.report.fail if STRICT else self.report.warn)(
                "%s: KNOWN MISMATCH with PROTOCOL.md section 1 (replies use the client's framing): in auto "
                "framing this was sent as an NDJSON line before the client's first LSP message, which breaks "
                "LSP clients: %s" % (self.label, short(value, 120)))
            kind = "msg"
        if kind == "msg":
            self._validate_incoming(value)
            if isinstance(value, dict) and "method" in value:
                self.notifications.append(value)
            else:
                for m in value if isinstance(value, list) else [value]:
                    if isinstance(m, dict) and id(m) not in self._refusal_ids:
                        self.responses[json.dumps(m.get("id"))] = m
            return value
        if kind == "eof":
            raise Fatal("%s: the server's output ended (%s; exit status %s); stderr:\n%s"
                        % (self.label, value, self.conn.proc.poll(), self.conn.stderr_tail()))
        raise Fatal("%s: %s" % (self.label, value))

    def response(self, id_, timeout=READ_TIMEOUT):
        key = json.dumps(id_)
        deadline = time.monotonic() + timeout
        while key not in self.responses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fatal("%s: no response to id %s within %.0f s" % (self.label, key, timeout))
            self.receive(left)
        return self.responses.pop(key)

    def raw_response(self, timeout=READ_TIMEOUT):
        """The next message, which must be a response (used for answers with id null)."""
        message = self.receive(timeout)
        if isinstance(message, dict) and "method" in message:
            raise Fatal("%s: expected a response, got %s" % (self.label, short(message)))
        if isinstance(message, dict):
            self.responses.pop(json.dumps(message.get("id")), None)
        return message

    def notification(self, predicate, timeout=READ_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            for n in self.notifications:
                if predicate(n):
                    return n
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fatal("%s: an expected notification did not arrive within %.0f s" % (self.label, timeout))
            self.receive(left)

    # helpers ------------------------------------------------------------------------------
    def call(self, method, params=ABSENT, **kw):
        return self.response(self.request(method, params, **kw))

    def result(self, method, params=ABSENT, **kw):
        r = self.call(method, params, **kw)
        if "result" not in r:
            raise Fatal("%s: %s %s failed: %s" % (self.label, method, short(params), short(r)))
        return r["result"]

    def expect_error(self, code, method, params=ABSENT, what="", **kw):
        r = self.call(method, params, **kw)
        got = r.get("error", {}).get("code") if isinstance(r.get("error"), dict) else None
        self.report.check(got == code, "%s: %s %s: expected error %d, got %s"
                          % (self.label, what or method, short(params, 120), code, short(r)))
        return r

    def finish(self, expect_status=0):
        """Sends exit and checks the exit status."""
        self.notify("exit")
        rc = self.conn.wait_exit()
        self.report.check(rc == expect_status, "%s: exit status after exit: %s, expected %d"
                          % (self.label, rc, expect_status))
        while True:  # anything still buffered is validated too
            kind, value = self.conn.next_frame(1.0)
            if kind == "bad":
                self.report.fail("%s: after exit: %s" % (self.label, value))
            if kind != "msg":
                break
            self._validate_incoming(value)
        self.report.check(not self.pending, "%s: requests never answered: %s" % (self.label, self.pending))
        self.report.check(not any(self.duplicates.values()), "%s: duplicate ids never refused: %s"
                          % (self.label, self.duplicates))


def duplicate_id_checks(s, label):
    """A request with the id of one in flight: -32600 naming the id, nothing of it runs; the
    first goes on and a cancel still reaches it; once answered, the id may be used again."""
    check = s.report.check
    first = s.request("execute", {"code": SLEEPER, "stream": True, "executionId": "dup-first"}, id_="dup")
    s.notification(started_by("dup-first"))
    s.request_duplicate("execute", {"code": "print('never')", "executionId": "dup-second"}, "dup")
    r = s.refusal("dup")
    check(r["error"]["code"] == -32600 and '"dup"' in r["error"]["message"],
          "%s: a duplicate id: %s" % (label, short(r)))
    s.expect_error(-32602, "status", {"executionId": "dup-second"}, what="the refused duplicate never ran")
    st = s.result("status", {"executionId": "dup-first"})
    check(st["state"] == "running", "%s: the first request with the id goes on: %s" % (label, short(st)))
    s.notify("$/cancelRequest", {"id": "dup"})
    r = s.response(first)
    check(r.get("error", {}).get("code") == -32800, "%s: cancel of the first with a duplicated id: %s" % (label, short(r)))
    r = s.result("execute", {"code": "6 * 7"}, id_="dup")
    check(r["status"] == "ok" and r["value"] == 42, "%s: the id used again once answered: %s" % (label, short(r)))


def bad_files_key_checks(s, label):
    """files keys are checked as returnFiles globs are: -32602 naming the path, nothing runs."""
    for path, why in (("../a.txt", "contains '..'"), ("/etc/evil", "is absolute"), ("a/../../b", "contains '..'")):
        r = s.expect_error(-32602, "execute", {"code": "print('ran')", "files": {path: {"text": "x"}}},
                           schema_valid=False, what="files key %s" % path)
        message = r.get("error", {}).get("message", "")
        s.report.check("files: '%s' %s" % (path, why) in message, "%s: files key %s: %s" % (label, path, message))


# --- scenarios -----------------------------------------------------------------------------

def started_by(execution_id):
    return lambda n: (n.get("method") == "execute/output" and n["params"].get("executionId") == execution_id
                      and "started" in n["params"].get("text", ""))


SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(30)\n"


def ndjson_session(binary, schemas, report, config):
    conn = Connection([binary, "serve", "--allow-degraded", "--config", config, "--max-message-bytes", "1000000"],
                      "ndjson", "ndjson")
    s = Session(schemas, report, conn)
    try:
        check = report.check
        init = s.result("initialize", {"processId": os.getpid(), "clientInfo": {"name": "validate_traffic"},
                                        "capabilities": {}})
        check(init["capabilities"]["framing"] == "ndjson", "ndjson: initialize says framing %s" % init["capabilities"])
        s.notify("initialized", {})
        names = sorted(p["name"] for p in init["profiles"])
        check(names == ["data", "datascience", "default", "javascript", "open", "small", "teaching"], "ndjson: profiles from the config: %s" % names)

        # ok, with a value, inputs, stdin and files
        r = s.result("execute", {
            "code": "import sys\nx = inputs['a'] + 1\nprint(x)\n"
                    "data = open('hello.txt').read() + sys.stdin.read() + open('d/bin.dat', 'rb').read().hex()\n"
                    "{'x': x * 2, 'data': data}",
            "inputs": {"a": 20}, "stdin": "there",
            "files": {"hello.txt": {"text": "hi "}, "d/bin.dat": {"base64": base64.b64encode(b"\x00\x01").decode()}},
            "executionId": "ok-1", "limits": {"timeoutMs": 10000}, "network": None, "returnFiles": []})
        check(r["status"] == "ok" and r["value"] == {"x": 42, "data": "hi there0001"} and r["stdout"] == "21\n",
              "ndjson: execute ok: %s" % short(r))
        check(r["executionId"] == "ok-1", "ndjson: client executionId not kept: %s" % r["executionId"])

        # result from a global, server-assigned id
        r = s.result("execute", {"code": "result = [1, 2.5, None, 'x']"})
        check(r["status"] == "ok" and r["value"] == [1, 2.5, None, "x"] and r["executionId"],
              "ndjson: execute result global: %s" % short(r))

        # uncaught exception: a result with a traceback, not a JSON-RPC error
        r = s.result("execute", {"code": "def f():\n    raise ValueError('boom')\nf()\n"})
        err = r.get("error") or {}
        check(r["status"] == "error" and err.get("type") == "ValueError" and err.get("message") == "boom"
              and err.get("line") == 2 and err.get("traceback"), "ndjson: execute error: %s" % short(r))

        # non-zero exit
        r = s.result("execute", {"code": "import sys\nsys.exit(3)"})
        check(r["status"] == "error" and r["exitCode"] == 3, "ndjson: execute sys.exit(3): %s" % short(r))

        # timeout
        r = s.result("execute", {"code": "import time\ntime.sleep(30)", "limits": {"timeoutMs": 300}})
        check(r["status"] == "timeout", "ndjson: execute timeout: %s" % short(r))

        # output limit, with a profile from the config
        r = s.result("execute", {"code": "print('x' * 100000)", "profile": "small", "limits": {"maxOutputBytes": 1000}})
        check(r["status"] == "output_limit", "ndjson: execute output_limit: %s" % short(r))

        # streaming: execute/output notifications before the response, adding up to stdout
        rid = s.request("execute", {"code": "import sys, time\nfor i in range(3):\n    print(i, flush=True)\n"
                                            "    time.sleep(0.05)\nprint('err', file=sys.stderr)\n",
                                    "stream": True, "executionId": "streamed"})
        r = s.response(rid)["result"]
        chunks = [n["params"] for n in s.notifications if n["method"] == "execute/output"
                  and n["params"]["executionId"] == "streamed"]
        out = "".join(c["text"] for c in chunks if c["stream"] == "stdout")
        errtext = "".join(c["text"] for c in chunks if c["stream"] == "stderr")
        check(r["status"] == "ok" and chunks and out == r["stdout"] == "0\n1\n2\n" and errtext == r["stderr"],
              "ndjson: streamed output %s does not add up to the result %s" % (short(chunks), short(r)))

        # Known mismatch: chunks are cut at read boundaries, not at UTF-8 character
        # boundaries, and each half of a cut character arrives as U+FFFD.
        rid = s.request("execute", {"code": "import sys\nsys.stdout.write('\u20ac' * 50000)", "stream": True,
                                    "executionId": "multibyte"})
        r = s.response(rid)["result"]
        out = "".join(n["params"]["text"] for n in s.notifications if n["method"] == "execute/output"
                      and n["params"]["executionId"] == "multibyte")
        check(r["status"] == "ok" and r["stdout"] == "\u20ac" * 50000, "ndjson: multibyte stdout: %s" % short(r))
        if out != r["stdout"]:
            (report.fail if STRICT else report.warn)(
                "ndjson: KNOWN MISMATCH: execute/output cuts UTF-8 characters at read boundaries: the streamed "
                "text has %d U+FFFD and %d characters where stdout has %d" % (out.count("\ufffd"), len(out),
                                                                             len(r["stdout"])))

        # status: one finished execution, then the server summary (params left out, or {})
        st = s.result("status", {"executionId": "streamed"})
        check(st.get("state") == "finished" and st.get("status") == "ok", "ndjson: status finished: %s" % short(st))
        for params in (ABSENT, {}):
            st = s.result("status", params)
            check("uptimeMs" in st and st["executionsTotal"] >= 8, "ndjson: status summary: %s" % short(st))

        # kill a running execution; its execute still answers, with status killed
        kid = s.request("execute", {"code": SLEEPER, "stream": True, "executionId": "to-kill"})
        s.notification(started_by("to-kill"))
        st = s.result("status", {"executionId": "to-kill"})
        check(st["state"] == "running" and "status" not in st, "ndjson: status running: %s" % short(st))
        st = s.result("status", None)  # params: null means the summary too
        check(st.get("running", 0) >= 1, "ndjson: summary while running: %s" % short(st))
        check([e["executionId"] for e in st.get("executions", [])] == ["to-kill"],
              "ndjson: the summary lists the running execution: %s" % short(st))
        k = s.result("kill", {"executionId": "to-kill"})
        check(k["killed"] is True, "ndjson: kill: %s" % short(k))
        r = s.response(kid)
        check(r.get("result", {}).get("status") == "killed", "ndjson: killed execute: %s" % short(r))
        k = s.result("kill", {"executionId": "to-kill"})
        check(k == {"killed": False, "state": "finished"}, "ndjson: kill of a finished one: %s" % short(k))

        # result: a finished execution's result again; forget drops it
        again = s.result("result", {"executionId": "to-kill"})
        check(again == r.get("result"), "ndjson: result of a finished execution: %s" % short(again))
        check(s.result("forget", {"executionId": "to-kill"}) == {"forgotten": True}, "ndjson: forget")
        check(s.result("forget", {"executionId": "to-kill"}) == {"forgotten": False}, "ndjson: forget again")
        s.expect_error(-32602, "result", {"executionId": "to-kill"}, what="result of a forgotten execution")
        s.expect_error(-32602, "result", {}, schema_valid=False)
        s.expect_error(-32602, "forget", {"executionId": "x", "more": 1}, schema_valid=False)

        # analyze: diagnostics in LSP's shape; a denied import and its activity
        d = s.result("analyze", {"code": "import socket\nx = (\n"})
        check([x["code"] for x in d["diagnostics"]] == ["forbidden-import", "syntax-error"], "ndjson: analyze: %s" % short(d))
        s.expect_error(-32602, "analyze", {"code": 5}, schema_valid=False)
        r = s.result("execute", {"code": "import json\nimport socket"})
        check(r["status"] == "policy_violation" and r["activity"]["imports"] == ["json"],
              "ndjson: policy_violation: %s" % short(r))
        r = s.result("execute", {"code": "import time\nx = bytearray(1 << 22)\ntime.sleep(0.2)", "stream": True,
                                 "executionId": "sampled"})
        check(len(r.get("samples", [])) >= 2 and "avgMemoryBytes" in r["usage"], "ndjson: samples: %s" % short(r))
        s.notification(lambda n: n.get("method") == "execute/usage" and n["params"]["executionId"] == "sampled")

        # a session: state kept, listed in status, a run interrupted by kill, then closed
        sc = s.result("session/create", {"session": "nb", "limits": {"timeoutMs": 5000}})
        check(sc["session"] == "nb", "ndjson: session/create: %s" % short(sc))
        r = s.result("execute", {"code": "x = 41", "session": "nb"})
        r = s.result("execute", {"code": "x + 1", "session": "nb", "stream": True})
        check(r["value"] == 42 and r["session"] == {"id": "nb", "alive": True}, "ndjson: session run: %s" % short(r))
        st = s.result("status")
        check([e["session"] for e in st["sessions"]] == ["nb"], "ndjson: status lists the session: %s" % short(st))
        kid = s.request("execute", {"code": SLEEPER, "session": "nb", "stream": True, "executionId": "nb-run"})
        s.notification(started_by("nb-run"))
        k = s.result("kill", {"session": "nb"})
        check(k["killed"] is True, "ndjson: kill of a session: %s" % short(k))
        r = s.response(kid).get("result", {})
        check(r.get("status") == "killed" and r.get("session", {}).get("alive") is True,
              "ndjson: interrupted session run: %s" % short(r))
        check(s.result("execute", {"code": "x", "session": "nb"})["value"] == 41, "ndjson: state after the kill")
        check(s.result("session/close", {"session": "nb"}) == {"closed": True}, "ndjson: session/close")
        check(s.result("session/close", {"session": "nb"}) == {"closed": False}, "ndjson: session/close again")

        # $/cancelRequest of a running execute: error -32800
        cid = s.request("execute", {"code": SLEEPER, "stream": True, "executionId": "to-cancel"}, id_="cancel-me")
        s.notification(started_by("to-cancel"))
        s.notify("$/cancelRequest", {"id": cid})
        r = s.response(cid)
        check(r.get("error", {}).get("code") == -32800, "ndjson: cancelled execute: %s" % short(r))
        s.notify("$/cancelRequest", {"id": 999999})  # unknown id: ignored
        s.notify("$/unknownNotification", {"x": 1})  # unknown $/ notification: ignored

        # errors
        s.expect_error(-32601, "no/such/method", {})
        s.expect_error(-32602, "execute", {"code": 42}, schema_valid=False, what="code not a string")
        s.expect_error(-32602, "execute", {}, schema_valid=False, what="no code")
        s.expect_error(-32602, "execute", {"code": "1", "limits": {"timeoutMs": 0}}, schema_valid=False)
        s.expect_error(-32602, "execute", {"code": "1", "limits": {"wallMs": 5}}, schema_valid=False)
        s.expect_error(-32602, "execute", {"code": "1", "stream": "yes"}, schema_valid=False)
        s.expect_error(-32602, "execute", {"code": "1", "files": {"a": {"text": "x", "base64": "eA=="}}},
                       schema_valid=False)
        bad_files_key_checks(s, "ndjson")
        duplicate_id_checks(s, "ndjson")
        s.expect_error(-32602, "execute", {"code": "1", "profile": "nope"}, what="unknown profile")
        s.expect_error(-32602, "execute", {"code": "1", "profile": "small", "limits": {"timeoutMs": 5000}},
                       what="limit above the profile's")
        s.expect_error(-32602, "execute", {"code": "1", "network": True}, what="network not allowed")
        s.expect_error(-32602, "execute", {"code": "1", "session": "s1"}, what="unknown session")
        s.expect_error(-32602, "kill", {"session": "s1"}, what="kill of an unknown session")
        s.expect_error(-32602, "session/create", {"profile": "nope"}, what="session of an unknown profile")
        s.expect_error(-32602, "session/create", {"colour": "blue"}, schema_valid=False)
        s.expect_error(-32602, "session/close", {}, schema_valid=False)
        s.expect_error(-32602, "status", {"executionId": 5}, schema_valid=False)
        s.expect_error(-32602, "status", {"executionId": "never-ran"}, what="unknown executionId")
        s.expect_error(-32602, "kill", {}, schema_valid=False)
        s.expect_error(-32602, "kill", {"executionId": "never-ran"}, what="kill of an unknown executionId")

        # bad JSON: -32700 with id null, and the server goes on
        s.send_raw(b'{"jsonrpc": "2.0", "id": 77, "method": ')
        r = s.raw_response()
        check(isinstance(r, dict) and r.get("id") is None and r.get("error", {}).get("code") == -32700,
              "ndjson: bad JSON: %s" % short(r))

        # a message over --max-message-bytes: -32600 with the id recovered
        big = s.request("execute", {"code": "#" + "x" * 1100000}, id_="big")
        r = s.response(big)
        check(r.get("error", {}).get("code") == -32600, "ndjson: oversize message: %s" % short(r))

        # a batch: one answer array, nothing for its notification
        s.batch([("status", ABSENT, "batch-1"), ("$/unknownNotification", {}, None),
                 ("initialize", {"processId": None}, "batch-2")])
        got = s.receive()
        check(isinstance(got, list) and sorted(json.dumps(m.get("id")) for m in got) == ['"batch-1"', '"batch-2"'],
              "ndjson: batch answer: %s" % short(got))

        # shutdown, then requests are refused, then exit 0
        check(s.result("shutdown") is None, "ndjson: shutdown result not null")
        s.expect_error(-32600, "status", {}, what="request after shutdown")
        s.finish(0)
    finally:
        conn.close()


def lsp_session(binary, schemas, report):
    conn = Connection([binary, "serve", "--allow-degraded"], "lsp", "lsp")
    s = Session(schemas, report, conn)
    try:
        s.expect_error(-32002, "status", {}, what="request before initialize")
        init = s.result("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {}},
                        headers={"Content-Type": "application/vscode-jsonrpc; charset=utf-8"})
        report.check(init["capabilities"]["framing"] == "lsp", "lsp: initialize says framing %s" % init["capabilities"])
        s.notify("initialized", {})
        r = s.result("execute", {"code": "print('h\u00e9llo')\n'\u00e9' * 2", "stream": True})
        report.check(r["status"] == "ok" and r["value"] == "\u00e9\u00e9" and r["stdout"] == "h\u00e9llo\n",
                     "lsp: execute: %s" % short(r))
        report.check(any(n["method"] == "execute/output" for n in s.notifications), "lsp: no execute/output")
        bad_files_key_checks(s, "lsp")
        duplicate_id_checks(s, "lsp")
        report.check(s.result("shutdown", {}) is None, "lsp: shutdown ({}) result not null")
        s.finish(0)
    finally:
        conn.close()


def degraded_argv(binary):
    """argv that runs the server where user namespaces cannot be created, or None."""
    unshare = shutil.which("unshare")
    if not unshare:
        return None
    # Inside a user namespace of its own, root may lower the namespace limit to 0: the
    # server's probe then finds unshare(CLONE_NEWUSER) failing, as on a locked-down host.
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" serve --allow-degraded'
    return [unshare, "--user", "--map-root-user", "sh", "-c", script, binary]


def degraded_sessions(binary, schemas, report):
    """Covers window/logMessage, which is sent only where isolation is degraded."""
    argv = degraded_argv(binary)
    if argv is None:
        report.warn("degraded: no unshare(1): window/logMessage not exercised here")
        return
    conn = Connection(argv, "ndjson", "degraded-ndjson")
    s = Session(schemas, report, conn)
    try:
        try:
            init = s.result("initialize", {})
        except Exception as e:  # noqa: BLE001 - any failure to start means the set-up is unavailable here
            report.warn("degraded: could not start a degraded server (%s): window/logMessage not exercised;"
                        " stderr: %s" % (e, conn.stderr_tail(300)))
            return
        if init["isolation"]["level"] != "degraded":
            report.warn("degraded: the server did not start degraded: window/logMessage not exercised")
            return
        report.check(any(n["method"] == "window/logMessage" for n in s.notifications),
                     "degraded: no window/logMessage")
        report.check(init["isolation"]["level"] == "degraded", "degraded: isolation %s" % init["isolation"])
        report.check(s.result("shutdown") is None, "degraded: shutdown result not null")
        s.finish(0)
    finally:
        conn.close()

    # The same in LSP framing (auto-detected, as editors use it).
    conn = Connection(argv, "lsp", "degraded-lsp")
    s = Session(schemas, report, conn)
    try:
        init = s.result("initialize", {"processId": None})
        report.check(init["isolation"]["level"] == "degraded", "degraded-lsp: isolation %s" % init["isolation"])
        report.check(any(n["method"] == "window/logMessage" for n in s.notifications),
                     "degraded-lsp: no window/logMessage")
        report.check(s.result("shutdown") is None, "degraded-lsp: shutdown result not null")
        s.finish(0)
    finally:
        conn.close()


def config_checks(binary, schemas, report):
    sample = os.path.join(HERE, "sample-config.json")
    with open(sample, encoding="utf-8") as f:
        doc = json.load(f)
    for e in schemas.errors("config.schema.json", doc):
        report.fail("config: sample-config.json does not match config.schema.json %s" % e)
    report.configs += 1
    rc = run_check(binary, sample)
    report.check(rc in (0, 1), "config: pycell check --config sample-config.json exited %s (2 = config refused)" % rc)

    bad = {
        "limit out of range": {"profiles": {"x": {"limits": {"timeoutMs": 0}}}},
        "unknown limit": {"profiles": {"x": {"limits": {"wallMs": 5}}}},
        "memory below 16 MiB": {"profiles": {"x": {"limits": {"memoryMb": 8}}}},
        "relative allowRead": {"profiles": {"x": {"allowRead": ["relative/path"]}}},
        "allowWrite climbing with ..": {"profiles": {"x": {"allowWrite": ["/tmp/../etc"]}}},
        "mistyped networkAllowed": {"profiles": {"x": {"networkAllowed": "yes"}}},
        "limit outside limits": {"profiles": {"x": {"memoryMb": 100}}},
        "unknown top-level field": {"profile": {}},
        "profile not an object": {"profiles": {"x": []}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for what, doc in bad.items():
            if not schemas.errors("config.schema.json", doc):
                report.fail("config: %s %s is accepted by config.schema.json" % (what, short(doc)))
            else:
                report.rejected_as_intended += 1
            report.configs += 1
            path = os.path.join(tmp, "bad.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            rc = run_check(binary, path)
            report.check(rc == 2, "config: %s %s: pycell check exited %s, expected 2" % (what, short(doc), rc))


def run_check(binary, config):
    try:
        p = subprocess.run([binary, "check", "--config", config], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                           cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return "timeout"
    return p.returncode


def main(argv):
    if len(argv) < 2 or len(argv) > 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    binary = os.path.abspath(argv[1])
    schema_dir = argv[2] if len(argv) == 3 else os.path.join(HERE, "..", "..", "schemas")
    schemas = Schemas(schema_dir)
    report = Report()
    print("schemas: %d files; jsonschema %s" % (len(schemas.store), _jsonschema_version()), flush=True)
    for name, scenario in (("config", lambda: config_checks(binary, schemas, report)),
                           ("ndjson", lambda: ndjson_session(binary, schemas, report,
                                                             os.path.join(HERE, "sample-config.json"))),
                           ("lsp", lambda: lsp_session(binary, schemas, report)),
                           ("degraded", lambda: degraded_sessions(binary, schemas, report))):
        started = time.monotonic()
        try:
            scenario()
        except Fatal as e:
            report.fail(str(e))
        print("      %s: done in %.1f s" % (name, time.monotonic() - started), flush=True)
    print("validated %d messages (%d sent, %d received) and %d config files; %d bad ones rejected by the"
          " schemas as intended" % (report.sent + report.received, report.sent, report.received, report.configs,
                                    report.rejected_as_intended))
    if report.warnings:
        print("%d warning(s)" % len(report.warnings))
    if report.failures:
        print("%d FAILURE(S)" % len(report.failures))
        return 1
    print("all traffic matches the schemas")
    return 0


def _jsonschema_version():
    try:
        from importlib import metadata
        return metadata.version("jsonschema")
    except Exception:  # noqa: BLE001 - only for the banner
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
