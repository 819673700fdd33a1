"""pycell policy, activity events: what a Guard records and emits, and its violations.

Part of the policy layer (policy.py, whose docstring describes the events and violations),
which loads this file by path from beside itself when it is loaded, before any of the
user's code runs: no import finds it, so the program cannot reach it by name. Embedded in
the C++ binary as a raw string literal, so it must never contain that literal's closing
delimiter.

Given by policy.py before this code runs (`_given`, see policy.py _load_part):
PolicyViolation, and the set of thread ids inside the audit hook or inside emit (`busy`).
"""
import os
import time
from _thread import get_ident as _get_ident

_perf = time.perf_counter
PolicyViolation = _given["PolicyViolation"]
_busy = _given["busy"]  # thread ids inside the hook or inside emit
_MAX_BLOCKED_EVENTS = 100
_MAX_VIOLATIONS = 100
_TEXT_CAP = 500


def _cap(text, limit=_TEXT_CAP):
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


class _Recorder:
    """The Guard's events, violations and counters (a part of Guard, see policy.py)."""

    # --- state -------------------------------------------------------------------------
    @property
    def violated(self):
        return self.violation_count > 0

    @property
    def first_violation(self):
        return dict(self.violations[0]) if self.violations else None

    def _start(self, emit):
        """The per-run state: a fresh clock, no events, no violations."""
        self._t0 = _perf()
        self._pid = os.getpid()
        self._emit_fn = emit if emit is not None else (lambda event: None)
        self.closed = False
        self.violations = []
        self.violation_count = 0
        self._user_modules = {}
        self._count = self._blocked = self._dropped = 0
        self._truncated = False
        self._modules_loaded = self._emit_errors = self._hook_errors = 0
        self._seen = set()  # dedup keys of emitted import/file/network events

    def close(self):
        """Stops checking and recording; the hooks stay but do nothing for this guard."""
        self.closed = True

    def stats(self):
        return {"events": self._count, "dropped": self._dropped, "truncated": self._truncated,
                "blockedEvents": self._blocked, "violations": self.violation_count,
                "modulesLoaded": self._modules_loaded, "emitErrors": self._emit_errors,
                "hookErrors": self._hook_errors}

    def exception(self, type_name, message):
        """Emits an "exception" event (the runner calls it for the uncaught exception);
        works after close() too."""
        self._emit("exception", {"type": _cap(str(type_name), 200), "message": _cap(str(message))},
                   after_close=True)

    # --- emitting ----------------------------------------------------------------------
    def _emit(self, kind, fields, after_close=False):
        if self.closed and not after_close:
            return
        if kind == "blocked":
            if self._blocked >= _MAX_BLOCKED_EVENTS:
                return
            self._blocked += 1
        elif self._count >= self.max_events:
            self._dropped += 1
            if self._truncated:
                return
            self._truncated = True
            kind, fields = "truncated", {}
        else:
            self._count += 1
        event = {"t": round((_perf() - self._t0) * 1000.0, 1), "kind": kind}
        event.update(fields)
        pid = os.getpid()
        if pid != self._pid:
            event["pid"] = pid
        tid = _get_ident()
        nested = tid in _busy
        _busy.add(tid)  # what emit itself does (I/O) is not activity
        try:
            self._emit_fn(event)
        except Exception:  # noqa: BLE001 - a broken channel must not break the program
            self._emit_errors += 1
        finally:
            if not nested:
                _busy.discard(tid)

    def _emit_once(self, key, kind, fields):
        if key not in self._seen:
            self._seen.add(key)
            self._emit(kind, fields)

    def _violate(self, what, detail, message):
        """Emits "blocked", records the violation, then raises it."""
        self._emit("blocked", {"what": what, "detail": _cap(detail)})
        self.violation_count += 1
        if len(self.violations) < _MAX_VIOLATIONS:
            self.violations.append({"what": what, "detail": _cap(detail), "message": message,
                                    "t": round((_perf() - self._t0) * 1000.0, 1)})
        raise PolicyViolation(what, detail, message)
