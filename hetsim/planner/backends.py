"""Where the planner's simulations run: this process, a local process pool, or a Ray cluster.

A task is plain data (a scenario as a dict, its file path and the search arguments) and its
result is plain data, so every backend computes exactly the same thing: the simulator is
deterministic by seed, and the planner decides which tasks to run from whole rounds of
results in candidate order, never from the order in which results arrive.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from hetsim.errors import InputError

__all__ = ["Backend", "make_backend", "run_task"]

Task = dict[str, Any]


def run_task(task: Task) -> dict[str, Any]:
    """Search one candidate's goodput (runs in a worker: everything in and out is plain data)."""
    from hetsim.checks import scenario_from_dict
    from hetsim.planner.goodput import ConcurrencyGrid, goodput

    path = Path(task["path"]) if task.get("path") else None
    scenario = scenario_from_dict(task["scenario"], path=path)
    result = goodput(
        scenario,
        start=task.get("start"),
        high=task.get("high"),
        must_reach=task.get("must_reach"),
        rel_tol=task["rel_tol"],
        max_requests=task.get("max_requests"),
        max_evaluations=task.get("max_evaluations", 24),
    )
    return {
        "id": task["id"],
        "rate": result.rate,
        "attainment": result.attainment,
        "target": result.target,
        "points": result.points,
        "summary": result.summary,
        "beaten_at": result.beaten_at,
        "at_limit": result.at_limit,
        # a closed loop's search is over clients: where its goodput was measured (None when
        # none met the SLA) and the most clients it could try
        "axis": result.axis,
        "concurrency": result.concurrency,
        "max_concurrency": ConcurrencyGrid(task["rel_tol"]).values[-1],
    }


class Backend:
    """Runs tasks and yields (index, result) as each finishes."""

    name = "inline"
    workers = 1

    def map(self, tasks: list[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, task in enumerate(tasks):
            yield i, run_task(task)

    def close(self) -> None:
        pass


class LocalBackend(Backend):
    """A pool of worker processes on this machine. Forked where the platform can fork: a
    forked worker starts at once with hetsim imported, and a script or notebook that calls
    :func:`hetsim.plan` needs no ``if __name__ == "__main__"`` guard (spawn would re-run it)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        import multiprocessing

        self.workers = workers
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def map(self, tasks: list[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        futures = {self._pool.submit(run_task, t): i for i, t in enumerate(tasks)}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class RayBackend(Backend):
    """The same tasks as Ray remote functions, on the cluster at ``address`` (None: start or
    join a local one)."""

    name = "ray"

    def __init__(self, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise InputError(
                "the Ray backend needs Ray installed",
                field="--backend",
                value="ray",
                allowed="pip install -e '.[ray]', or use --backend local",
            ) from None
        self._ray = ray
        self._owned = not ray.is_initialized()
        if self._owned:
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            except Exception as exc:  # sorted by _connection_error; anything else propagates
                raise _connection_error(ray, address, exc) from None
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(run_task)

    def map(self, tasks: list[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        ray = self._ray
        pending = {self._remote.remote(t): i for i, t in enumerate(tasks)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), ray.get(ref)
        finally:  # stopped early (an error, Ctrl-C): do not leave work on a shared cluster
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()


#: how a refused token reads when Ray wraps it in a plain connection error (gRPC status)
_AUTH_WORDS = re.compile(r"unauthenticated|authenticat|auth[_ ]token|permission denied", re.I)


def _connection_error(ray: Any, address: str | None, exc: Exception) -> Exception:
    """Why ``ray.init`` failed, named: a cluster that refused our credentials is not one we
    could not reach, and the fixes differ (a token vs an address). Errors of neither kind are
    returned as they are, to propagate."""
    where = address or "the local Ray"
    auth_error = getattr(getattr(ray, "exceptions", None), "AuthenticationError", None)
    if (auth_error is not None and isinstance(exc, auth_error)) or _AUTH_WORDS.search(str(exc)):
        return InputError(
            f"the Ray cluster at {where} refused the connection: authentication failed ({exc})",
            field="--address",
            value=address,
            allowed="the cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
            "~/.ray/auth_token (RAY_AUTH_MODE=token)",
        )
    if isinstance(exc, (ConnectionError, TimeoutError, RuntimeError, ValueError)):
        return InputError(
            f"cannot reach a Ray cluster at {where}: {exc}",
            field="--address",
            value=address,
            allowed="'auto', a head node's host:port, or leave out for a local Ray",
        )
    return exc


def check_backend(name: str, workers: int | None, address: str | None) -> None:
    """The settings :func:`make_backend` would refuse or ignore, refused before any work."""
    if name not in ("local", "ray", "inline"):
        raise InputError("unknown backend", field="--backend", value=name, allowed="local, ray")
    if address is not None and name != "ray":
        raise InputError("an address is a Ray cluster's", field="--address", value=address,
                         allowed="--backend ray --address HOST:PORT")  # fmt: skip
    if workers == 1 and name == "ray":
        raise InputError(
            "one worker runs every simulation in this process, not on Ray",
            field="--workers",
            value=1,
            allowed="--backend local, or no --workers",
        )


def make_backend(name: str, workers: int | None = None, address: str | None = None) -> Backend:
    """``local`` (default: all cores; one worker runs in this process), ``ray``, or ``inline``."""
    check_backend(name, workers, address)
    if name == "ray":
        return RayBackend(address)
    if name == "inline":
        return Backend()
    if name != "local":
        raise InputError("unknown backend", field="--backend", value=name, allowed="local, ray")
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        return Backend()
    return LocalBackend(workers)
