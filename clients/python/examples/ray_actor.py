"""A Ray actor that owns one pycell: Ray places the actors and routes calls to them.

Each actor starts one `pycell serve` child over a pipe (no listener, no token) and closes it
in close(); if the actor's process dies, the pipe closes and pycell exits with it. An actor
reserves CPUS cores from Ray and lets its pycell run that many executions at once
(--max-concurrent); its calls come in on as many threads (the client is thread-safe), and
pycell queues any beyond. A session lives in the actor that made it: keep the handle and
send its runs there.

    PYCELL_BINARY=/usr/bin/pycell python3 ray_actor.py     # with clients/python on PYTHONPATH
"""

import os
from typing import Any, Dict, List, Optional, Sequence

import ray

from pycell_client import Pycell

CPUS = 2  # cores per actor: executions its pycell runs at once, calls it takes at once
RESULT_KEYS = ("status", "stdout", "stderr", "value", "valueRepr", "error", "exitCode")


class PycellWorker:
    """One pycell and the calls a harness makes on it; PycellActor is this class as a Ray
    actor (a plain class too, so that it can be used and tested without Ray)."""

    def __init__(self, binary: Optional[str] = None, args: Sequence[str] = ("--max-concurrent", str(CPUS))) -> None:
        self.cell = Pycell(binary or os.environ.get("PYCELL_BINARY") or "pycell", args)

    def run(self, code: str, inputs: Any = None, timeout_ms: int = 10000, session: Optional[str] = None,
            language: Optional[str] = None) -> Dict[str, Any]:
        """Runs `code` in a fresh sandbox (or in a session of this actor): status, output,
        value and error of the execute result."""
        params: Dict[str, Any] = {"limits": {"timeoutMs": timeout_ms}}
        if inputs is not None:
            params["inputs"] = inputs
        if session is not None:
            params["session"] = session
        result = self.cell.execute(code, language=language, **params)
        return {key: result[key] for key in RESULT_KEYS if key in result}

    def create_session(self, profile: Optional[str] = None) -> str:
        return self.cell.create_session(profile=profile)

    def close_session(self, session: str) -> bool:
        return self.cell.close_session(session)

    def status(self) -> Dict[str, Any]:
        """The server's status: what runs and waits, the pools."""
        return self.cell.status()

    def close(self) -> int:
        """Stops pycell once its runs are done; its exit code (0)."""
        return self.cell.close()


PycellActor = ray.remote(num_cpus=CPUS, max_concurrency=CPUS)(PycellWorker)


def main() -> List[Dict[str, Any]]:
    ray.init()  # a local Ray; address="auto" joins a running cluster
    try:
        # As many actors as the cluster has room for (one on a small machine): Ray would
        # keep an actor it has no cores for waiting, and its calls with it.
        actors = max(1, int(ray.available_resources().get("CPU", 0)) // CPUS)
        workers = [PycellActor.remote() for _ in range(actors)]
        codes = ["sum(inputs)", "import math\nmath.factorial(inputs[0])", "1 / 0", "max(inputs)"]
        # Round robin: the harness chooses the actor, Ray runs the call in its process.
        refs = [workers[i % actors].run.remote(code, inputs=[5, 3, 1]) for i, code in enumerate(codes)]
        results: List[Dict[str, Any]] = ray.get(refs)
        # State that carries over: a session, and every run of it on the actor that made it.
        session = ray.get(workers[0].create_session.remote())
        ray.get(workers[0].run.remote("total = 40", session=session))
        results.append(ray.get(workers[0].run.remote("total + 2", session=session)))
        ray.get([w.close.remote() for w in workers])
        return results
    finally:
        ray.shutdown()


if __name__ == "__main__":
    for r in main():
        print(r["status"], r.get("value"), (r.get("error") or {}).get("type", ""))
