"""Celery tasks that run untrusted code in the worker process's own pycell.

Celery spreads the tasks over its workers; each worker process that runs a task owns one
`pycell serve` child, started on its first task and closed when the process shuts down, so
pycell needs no listener and no token: the pipe to it is the access control.

    export PYCELL_BINARY=/usr/bin/pycell CELERY_BROKER_URL=redis://broker:6379/0
    celery -A celery_worker worker --concurrency 4      # with clients/python on PYTHONPATH

    # from the harness:
    from celery_worker import run_code
    run_code.delay("sum(inputs)", inputs=[1, 2, 3]).get()["value"]       # 6

With the default prefork pool every child process has a pycell of its own and runs one task
at a time; give it `PYCELL_ARGS="--max-concurrent 1"`. With `--pool threads` the threads
share the process's one pycell (the client is thread-safe); leave --max-concurrent at the
worker's --concurrency. docs/SCALING.md has the sizing.
"""

import os
import shlex
import threading
from typing import Any, Dict, Optional

from celery import Celery
from celery.signals import worker_process_shutdown, worker_shutdown

from pycell_client import Pycell

app = Celery("pycell_worker", broker=os.environ.get("CELERY_BROKER_URL"),
             backend=os.environ.get("CELERY_RESULT_BACKEND"))
# A task whose worker dies mid-run is given to another worker; pycell runs are
# independent sandboxes, so running one again is safe.
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True

# What a task returns: small and JSON (figures, returned files and usage are left out).
RESULT_KEYS = ("status", "stdout", "stderr", "value", "valueRepr", "error", "exitCode")

_lock = threading.Lock()
_cell: Optional[Pycell] = None
_cell_pid = 0  # the process that started _cell: a forked child must not use its parent's


def cell() -> Pycell:
    """This process's pycell, started on first use and again if its server died."""
    global _cell, _cell_pid
    with _lock:
        if _cell is None or _cell_pid != os.getpid() or _cell.returncode is not None:
            if _cell is not None and _cell_pid == os.getpid():
                _cell.close()  # it died: collect it before starting the next one
            _cell = Pycell(os.environ.get("PYCELL_BINARY") or "pycell",
                           args=shlex.split(os.environ.get("PYCELL_ARGS", "")))
            _cell_pid = os.getpid()
        return _cell


def close_cell(**_: Any) -> None:
    """Stops this process's pycell (runs in flight finish first). Connected to the
    shutdown of a prefork child (worker_process_shutdown, sent in the child) and of the
    worker itself (worker_shutdown: the solo and threads pools run tasks there)."""
    global _cell
    with _lock:
        mine = _cell if _cell_pid == os.getpid() else None
        _cell = None
    if mine is not None:
        mine.close()


worker_process_shutdown.connect(close_cell, weak=False)
worker_shutdown.connect(close_cell, weak=False)


@app.task(name="pycell.run_code")
def run_code(code: str, inputs: Any = None, timeout_ms: int = 10000, profile: Optional[str] = None,
             language: Optional[str] = None) -> Dict[str, Any]:
    """Runs `code` in a fresh sandbox; returns the execute result's status, output, value
    and error. A failing program is a result (status "error"), not a failed task."""
    params: Dict[str, Any] = {"limits": {"timeoutMs": timeout_ms}}
    if inputs is not None:
        params["inputs"] = inputs
    if profile is not None:
        params["profile"] = profile
    result = cell().execute(code, language=language, **params)
    return {key: result[key] for key in RESULT_KEYS if key in result}
