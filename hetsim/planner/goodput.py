"""Goodput: the highest request rate at which SLA attainment stays at or above its target.

DistServe's definition. We search the workload's mean arrival rate (a synthetic workload's
``rate``, a trace's ``target_rate`` — the trace keeps its burstiness), simulating the same
requests at each rate: the seed is fixed, so every rate sees the same lengths and the same
arrival pattern, only compressed or stretched (common random numbers). Attainment is assumed
to fall as the rate rises, which holds for queueing systems short of pathological routing.

Rates are searched on a fixed geometric grid, ``(1 + rel_tol)^k`` requests/s for integer k, so
the answer does not depend on where the search starts: the planner may start each candidate
from its own analytic estimate, or first test only the rate it would need to beat the best so
far, and still get exactly the goodput a plain search would. The reported goodput meets the
SLA; one grid step above it (``rate·(1 + rel_tol)``) does not — or, when the deployment meets
the SLA at every rate up to the search's upper limit, the result says so (``at_limit``) and the
goodput is that limit's grid rate, a lower bound. The limit is the caller's ``high`` (the planner
passes the candidate's capacity bound: above it no long run can keep up, and a short workload
that still meets the SLA there only shows it ends before its queues do), else
:data:`MAX_RATE_OVER_START` times the starting rate.

**Closed loops** (``workload.closed_loop``: N clients, each with one request in flight, as
``vllm bench serve --max-concurrency N`` measures) have no arrival rate: the clients send as
fast as answers come back. Their capacity question is the one benchmarkers sweep by hand — the
largest concurrency at which the SLA is still met — so for a closed loop the same search (same
start, bound, widening and bisection, same attainment rule) runs over the *concurrency*, on a
fixed grid of integers (:class:`ConcurrencyGrid`, 1 to :data:`~hetsim.spec._types.MAX_CLIENTS`).
The goodput reported is the throughput the deployment delivers at the best concurrency,
counted as the verdict counts: requests meeting the SLA (attainment × measured requests) over
the measured span (first measured arrival to last completion), in requests/s. Each concurrency
N sends N × *requests per client* requests, the per-client count held at the scenario's own
(``requests / concurrency``, rounded, at least 1; vllm's convention is ``--num-prompts`` = 10 ×
concurrency), so every client sees the same number of turns at every concurrency; warm-up
requests scale with it.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from hetsim.checks import scenario_from_dict
from hetsim.errors import InputError
from hetsim.metrics import RunSummary
from hetsim.simulation import simulate
from hetsim.spec._types import MAX_CLIENTS
from hetsim.spec.resolve import Scenario
from hetsim.spec.workload import WorkloadSpec

__all__ = [
    "MAX_EVALUATIONS",
    "MAX_RATE_OVER_START",
    "ConcurrencyGrid",
    "GoodputResult",
    "RateGrid",
    "convergence",
    "goodput",
    "requests_per_client",
    "with_concurrency",
    "with_rate",
    "workload_rate",
]

#: without a ``high``, the search stops this far above its starting rate (an estimate or the
#: scenario's own rate): a deployment that still meets the SLA there is reported ``at_limit``
#: rather than searched until the rate overflows a float
MAX_RATE_OVER_START = 1000.0

#: simulations one goodput search may run before it stops, converged or not
MAX_EVALUATIONS = 24


def workload_rate(scenario: Scenario) -> float | None:
    """The scenario's own mean arrival rate (requests/s), if it states one."""
    wl = _open_loop(scenario)
    if wl.synthetic is not None:
        return wl.synthetic.rate
    assert wl.trace is not None
    return wl.trace.target_rate


def with_rate(scenario: Scenario, rate: float) -> Scenario:
    """The same scenario at another mean arrival rate."""
    _open_loop(scenario)
    data = scenario.spec.model_dump(by_alias=True, exclude_none=True)
    workload = data["workload"]
    # re-validated as input is, so the rate carries its unit (every digit kept; float() so a
    # numpy scalar does not repr as "np.float64(...)")
    if "synthetic" in workload:
        workload["synthetic"]["rate"] = f"{float(rate)!r} req/s"
    else:
        workload["trace"]["target_rate"] = f"{float(rate)!r} req/s"
    return scenario_from_dict(data, path=scenario.path)


def _open_loop(scenario: Scenario) -> WorkloadSpec:
    """The workload, if arrivals follow a rate (a closed loop's clients send as fast as
    responses come back: goodput searches its concurrency instead, see :func:`with_concurrency`)."""
    wl = scenario.spec.workload
    if wl.closed_loop is not None:
        raise InputError(
            "a closed loop has no arrival rate to set (goodput searches its concurrency)",
            file=scenario.path,
            field="workload.closed_loop",
            value=f"concurrency {wl.closed_loop.concurrency}",
            allowed="workload.synthetic (a rate process) or workload.trace to set a rate; "
            "with_concurrency for a closed loop",
        )
    if wl.synthetic is not None and wl.synthetic.sessions is not None:
        # its rate counts sessions, whose turns wait on each other: a request rate set or
        # reported in its place would be silently wrong
        raise InputError(
            "a synthetic session workload's `rate` is sessions per second, not requests: "
            "goodput cannot search it as a request rate",
            file=scenario.path,
            field="workload.synthetic.sessions",
            value=f"{wl.synthetic.rate:g} sessions/s",
            allowed="workload.synthetic without sessions, workload.trace (with or without "
            "sessions; its target_rate is requests/s), or workload.closed_loop.sessions "
            "(goodput searches its concurrency)",
        )
    return wl


def requests_per_client(scenario: Scenario, max_requests: int | None = None) -> int:
    """Requests each client of a closed loop sends: the scenario's ``requests`` (or
    ``max_requests``, a cap stated at the scenario's concurrency) over its ``concurrency``,
    rounded, at least 1."""
    cl = scenario.spec.workload.closed_loop
    assert cl is not None
    total = cl.requests if max_requests is None else max_requests
    return max(1, round(total / cl.concurrency))


def with_concurrency(scenario: Scenario, concurrency: int, per_client: int) -> Scenario:
    """The same closed loop with ``concurrency`` clients sending ``per_client`` requests each;
    warm-up requests keep their share of the workload (a fixed count would swallow a small
    concurrency's whole run)."""
    wl = scenario.spec.workload
    if wl.closed_loop is None:
        raise ValueError("with_concurrency needs a closed-loop workload")
    data = scenario.spec.model_dump(by_alias=True, exclude_none=True)
    loop = data["workload"]["closed_loop"]
    requests = int(concurrency) * per_client
    loop["concurrency"] = int(concurrency)
    loop["requests"] = requests
    if wl.warmup_requests:
        data["workload"]["warmup_requests"] = (
            wl.warmup_requests * requests // wl.closed_loop.requests
        )
    return scenario_from_dict(data, path=scenario.path)


@dataclass(frozen=True)
class RateGrid:
    """Rates ``(1 + rel_tol)^k`` requests/s; k is an integer index."""

    rel_tol: float = 0.1

    def rate(self, k: int) -> float:
        return (1.0 + self.rel_tol) ** k

    def floor(self, rate: float) -> int:
        """The index of the highest grid rate at or below ``rate``."""
        k = math.floor(math.log(rate) / math.log1p(self.rel_tol))
        # guard the float edge: rate exactly on the grid must map to itself
        while self.rate(k + 1) <= rate * (1 + 1e-12):
            k += 1
        while self.rate(k) > rate * (1 + 1e-12):
            k -= 1
        return k

    def ceil(self, rate: float) -> int:
        """The index of the lowest grid rate at or above ``rate``."""
        k = self.floor(rate)
        return k if self.rate(k) >= rate * (1 - 1e-12) else k + 1


@dataclass(frozen=True)
class ConcurrencyGrid:
    """Client counts: every integer up to ``1/rel_tol`` (where powers of ``1 + rel_tol`` lie
    less than one apart, so rounding them leaves no integer out), then ``(1 + rel_tol)^j``
    rounded, each integer once, up to :data:`MAX_CLIENTS`; ``k`` indexes that list."""

    rel_tol: float = 0.1

    @property
    def values(self) -> tuple[int, ...]:
        return _concurrencies(self.rel_tol)

    @property
    def top(self) -> int:
        """The index of the largest concurrency on the grid."""
        return len(self.values) - 1

    def concurrency(self, k: int) -> int:
        return self.values[k]

    def floor(self, n: float) -> int:
        """The index of the highest grid concurrency at or below ``n`` (0 below 1)."""
        return max(0, bisect.bisect_right(self.values, n) - 1)

    def ceil(self, n: float) -> int:
        """The index of the lowest grid concurrency at or above ``n`` (the top above it)."""
        return min(self.top, bisect.bisect_left(self.values, n))


@functools.cache
def _concurrencies(rel_tol: float) -> tuple[int, ...]:
    dense = min(MAX_CLIENTS, int(1 / rel_tol))
    values = list(range(1, dense + 1))
    j = math.ceil(math.log(max(dense, 1)) / math.log1p(rel_tol))
    while True:
        n = math.floor((1 + rel_tol) ** j + 0.5)
        if n > MAX_CLIENTS:
            return tuple(values)
        if n > values[-1]:
            values.append(n)
        j += 1


@dataclass(frozen=True)
class GoodputResult:
    """The goodput and the evidence for it: every rate (or, for a closed loop, concurrency)
    tried, its attainment and latencies."""

    rate: float  # requests/s; 0 when even the lowest rate (concurrency) tried misses the SLA
    attainment: float  # at ``rate``
    target: float
    # (rate, attainment); for a closed loop (concurrency, attainment)
    evaluations: list[tuple[float, float]] = field(default_factory=list)
    summary: RunSummary | None = None  # of the run at ``rate`` (or the last run when none met)
    points: list[dict[str, Any]] = field(default_factory=list)  # one row per rate tried
    # set when the search stopped early: the rate it had to reach and did not
    beaten_at: float | None = None
    # the SLA was met at every grid rate (concurrency) up to the search's upper limit: the
    # goodput is that limit's, a lower bound
    at_limit: bool = False
    # closed loop only: the largest concurrency meeting the SLA (``rate`` is the throughput
    # measured there) and the requests each client sent
    concurrency: int | None = None
    requests_per_client: int | None = None
    # whether the answer is pinned to one grid step (see :func:`convergence`), and why not
    converged: bool = False
    not_converged: str | None = None

    @property
    def axis(self) -> str:
        """What was searched: ``rate`` or (a closed loop) ``concurrency``."""
        return "rate" if self.requests_per_client is None else "concurrency"

    @property
    def per_dollar(self) -> float:
        """Requests/s per $/h of the deployment (its cost is in the summary)."""
        cost = self.summary.cost_per_hour if self.summary is not None else 0.0
        return self.rate / cost if cost else 0.0

    def to_frame(self) -> pd.DataFrame:
        """One row per rate (concurrency) simulated: rate, attainment, meets, TTFT/TPOT
        percentiles; a closed loop's rows also carry concurrency and goodput."""
        return pd.DataFrame(self.points).sort_values(self.axis, ignore_index=True)


def _point(rate: float, s: RunSummary, target: float) -> dict[str, Any]:
    return {
        "rate": rate,
        "attainment": s.attainment,
        "meets": s.attainment >= target,
        "ttft_p50_s": s.ttft_s.p50,
        "ttft_p90_s": s.ttft_s.p90,
        "ttft_p99_s": s.ttft_s.p99,
        "ttft_at_sla_percentile_s": s.ttft_at_sla_percentile_s,
        "tpot_p50_s": s.tpot_s.p50,
        "tpot_p90_s": s.tpot_s.p90,
        "tpot_p99_s": s.tpot_s.p99,
        "tpot_at_sla_percentile_s": s.tpot_at_sla_percentile_s,
        "completed": s.completed,
        "failed": s.failed,
    }


def convergence(
    points: list[dict[str, Any]],
    rel_tol: float,
    at_limit: bool = False,
    beaten_at: float | None = None,
    max_evaluations: int = MAX_EVALUATIONS,
) -> tuple[bool, str | None]:
    """Whether a goodput search converged, and if not why not.

    It converged when a passing grid point's next grid point up fails (the goodput is pinned
    to one grid step), or for a closed loop when even one client fails (its goodput is 0
    exactly). Otherwise why not: ``stopped early`` (it tested only the rate needed to beat
    the best, and missed it), ``at_limit`` (it met the SLA up to the search's upper limit: its
    goodput is a lower bound), ``below floor`` (it missed the SLA down to the lowest rate it
    may try: the goodput is below that), or ``max simulations`` (it ran out of simulations
    before the bracket closed). ``points``: the search's rows (:attr:`GoodputResult.points`).
    """
    if beaten_at is not None:
        return False, "stopped early"
    if at_limit:
        return False, "at_limit"
    closed = bool(points) and "concurrency" in points[0]
    axis = "concurrency" if closed else "rate"
    ordered = sorted(points, key=lambda p: p[axis])
    for lower, upper in itertools.pairwise(ordered):
        if lower["meets"] and not upper["meets"]:
            if _next_on_grid(lower[axis], upper[axis], rel_tol, closed):
                return True, None
            break
    if ordered and not any(p["meets"] for p in ordered):
        if closed and ordered[0]["concurrency"] == 1:
            return True, None
        if len(points) < max_evaluations:
            return False, "below floor"
    return False, "max simulations"


def _next_on_grid(lower: float, upper: float, rel_tol: float, closed: bool) -> bool:
    """Whether ``upper`` is the grid point right above ``lower``."""
    if closed:
        grid = ConcurrencyGrid(rel_tol)
        return grid.floor(upper) == grid.floor(lower) + 1
    grid = RateGrid(rel_tol)
    return grid.floor(upper) == grid.floor(lower) + 1


def sla_throughput(s: RunSummary) -> float:
    """Requests meeting the SLA per second of the measured span: the requests the verdict
    counts as met (attainment × measured requests) over first arrival to last completion."""
    if s.requests == 0 or math.isnan(s.attainment):
        return 0.0
    return s.attainment * s.requests / s.span_s


class _RateSearch:
    """The simulations of one goodput search, by grid index, in the order they ran."""

    def __init__(
        self,
        scenario: Scenario,
        grid: RateGrid,
        run: Callable[[Scenario], RunSummary],
        max_evaluations: int,
    ) -> None:
        self.scenario = scenario
        self.grid = grid
        self.run = run
        self.max_evaluations = max_evaluations
        self.target = scenario.spec.sla.attainment
        self.summaries: dict[int, RunSummary] = {}
        self.order: list[int] = []

    def at(self, k: int) -> Scenario:
        """The scenario at grid index ``k``."""
        return with_rate(self.scenario, self.grid.rate(k))

    def point(self, k: int) -> dict[str, Any]:
        return _point(self.grid.rate(k), self.summaries[k], self.target)

    def meets(self, k: int) -> bool:
        if k not in self.summaries:
            self.summaries[k] = self.run(self.at(k))
            self.order.append(k)
        return self.summaries[k].attainment >= self.target

    def spent(self) -> bool:
        return len(self.order) >= self.max_evaluations

    def result(
        self, k: int | None, beaten_at: float | None = None, at_limit: bool = False
    ) -> GoodputResult:
        """Goodput at index ``k`` (None: none met the SLA) with every rate tried, and whether
        the search converged."""
        found = self._build(k, beaten_at, at_limit)
        converged, why = convergence(
            found.points, self.grid.rel_tol, at_limit, beaten_at, self.max_evaluations
        )
        return replace(found, converged=converged, not_converged=why)

    def _build(self, k: int | None, beaten_at: float | None, at_limit: bool) -> GoodputResult:
        target = self.target
        points = [self.point(j) for j in self.order]
        evaluations = [(p["rate"], p["attainment"]) for p in points]
        if k is None:
            last = self.summaries[self.order[-1]]
            return GoodputResult(0.0, last.attainment, target, evaluations, last, points, beaten_at)
        s = self.summaries[k]
        rate = self.grid.rate(k)
        return GoodputResult(rate, s.attainment, target, evaluations, s, points, None, at_limit)

    def up(self, ok: int, k_high: int) -> tuple[int, int | None]:
        """Widen upwards from a passing index, doubling the step, to a failing one; (the
        highest passing, the failing or None when the bound or the evaluations ran out)."""
        step = 1
        while True:
            if ok >= k_high:
                return ok, None
            k = ok + step
            if k > k_high:
                k = k_high
                if k == ok:
                    return ok, None
            if self.spent():
                return ok, None
            if not self.meets(k):
                return ok, k
            ok = k
            step *= 2

    def down(self, bad: int, k_floor: int) -> tuple[int | None, int]:
        """Widen downwards from a failing index, doubling the step, to a passing one no lower
        than ``k_floor``; (the passing or None, the lowest failing)."""
        step = 1
        while True:
            k = max(bad - step, k_floor)
            if k >= bad or self.spent():
                return None, bad
            if self.meets(k):
                return k, bad
            bad = k
            step *= 2

    def bisect(self, ok: int, bad: int) -> int:
        """The highest passing index between a passing and a failing one."""
        while bad - ok > 1 and not self.spent():
            mid = (ok + bad) // 2
            if self.meets(mid):
                ok = mid
            else:
                bad = mid
        return ok


class _ConcurrencySearch(_RateSearch):
    """The same search over a closed loop's concurrency: grid indices are client counts."""

    def __init__(
        self,
        scenario: Scenario,
        grid: ConcurrencyGrid,
        run: Callable[[Scenario], RunSummary],
        max_evaluations: int,
        per_client: int,
    ) -> None:
        super().__init__(scenario, RateGrid(grid.rel_tol), run, max_evaluations)
        self.clients = grid
        self.per_client = per_client

    def at(self, k: int) -> Scenario:
        return with_concurrency(self.scenario, self.clients.concurrency(k), self.per_client)

    def point(self, k: int) -> dict[str, Any]:
        s = self.summaries[k]
        # "rate": the arrival rate the clients reached (what a rate sweep's axis shows);
        # "goodput": the part of it that met the SLA, the figure the search reports
        rate = s.requests / s.span_s if s.requests else 0.0
        return {
            "concurrency": self.clients.concurrency(k),
            "requests": s.requests,
            **_point(rate, s, self.target),
            "goodput": sla_throughput(s),
        }

    def _build(self, k: int | None, beaten_at: float | None, at_limit: bool) -> GoodputResult:
        points = [self.point(j) for j in self.order]
        for j, p in zip(self.order, points, strict=True):
            p["chosen"] = j == k
        evaluations = [(float(p["concurrency"]), p["attainment"]) for p in points]
        if k is None:
            last = self.summaries[self.order[-1]]
            return GoodputResult(
                0.0, last.attainment, self.target, evaluations, last, points,
                requests_per_client=self.per_client,
            )  # fmt: skip
        s = self.summaries[k]
        return GoodputResult(
            sla_throughput(s), s.attainment, self.target, evaluations, s, points, None, at_limit,
            concurrency=self.clients.concurrency(k), requests_per_client=self.per_client,
        )  # fmt: skip


def _start(scenario: Scenario, start: float | None, low: float | None, high: float | None) -> float:
    guess = start if start is not None else workload_rate(scenario)
    if guess is not None:
        return guess
    if low is None or high is None:
        raise InputError(
            "goodput needs a rate to start from: the trace has no target_rate",
            field="workload.trace.target_rate",
            allowed="set target_rate, or pass start=, or low= and high=",
        )
    return (low * high) ** 0.5


def goodput(
    scenario: Scenario,
    *,
    low: float | None = None,
    high: float | None = None,
    rel_tol: float = 0.1,
    max_requests: int | None = None,
    max_evaluations: int = MAX_EVALUATIONS,
    start: float | None = None,
    must_reach: float | None = None,
    run: Callable[[Scenario], RunSummary] | None = None,
) -> GoodputResult:
    """Search the arrival rate for the highest one meeting ``sla.attainment``.

    The answer lies on the grid ``(1 + rel_tol)^k``: attainment is at or above target at
    ``rate`` and below it at ``rate·(1 + rel_tol)``. ``start`` is where the search begins (an
    estimate; default the scenario's own rate); ``low``/``high`` optionally bound it (``high``
    default: :data:`MAX_RATE_OVER_START` times the start; a deployment meeting the SLA there
    is reported ``at_limit``).
    ``must_reach``: test that rate (rounded up to the grid) first and stop if it misses — the
    result then carries ``beaten_at`` and no goodput, which is how the planner drops a
    candidate that cannot beat the best so far with one simulation instead of a search.
    ``run`` simulates a scenario and returns its summary (default: :func:`hetsim.simulate`).

    A closed loop is searched by concurrency instead (see the module docstring): ``low``,
    ``high`` and ``start`` are then client counts, ``must_reach`` does not apply, and the
    result carries ``concurrency`` with ``rate`` the SLA-meeting throughput measured there.
    """
    if scenario.spec.workload.closed_loop is not None:
        if must_reach is not None:
            raise ValueError("must_reach is a rate; a closed loop is searched by concurrency")
        return _closed_loop(
            scenario, low, high, rel_tol, max_requests, max_evaluations, start, run
        )  # fmt: skip
    grid = RateGrid(rel_tol)
    guess = _start(scenario, start, low, high)
    if run is None:

        def run(sc: Scenario) -> RunSummary:
            # no time series: a run at a low rate spans days of simulated time
            return simulate(sc, max_requests=max_requests, sample_interval=None).summary

    search = _RateSearch(scenario, grid, run, max_evaluations)
    k_low = grid.ceil(low) if low is not None else None
    k_high = grid.floor(high if high is not None else guess * MAX_RATE_OVER_START)
    if must_reach is not None:
        k_need = grid.ceil(must_reach)
        if not search.meets(k_need):
            return search.result(None, beaten_at=grid.rate(k_need))
        # passed: go on from the start if it lies higher (the grid makes the answer the same)
        k_start = min(grid.floor(guess), k_high)
        if k_start > k_need and not search.spent():
            if not search.meets(k_start):
                return search.result(search.bisect(k_need, k_start))
            k_need = k_start
        return _widen(search, k_need, None, 0, k_high)
    k0 = grid.floor(guess)
    if k_low is not None:
        k0 = max(k0, k_low)
    k0 = min(k0, k_high)
    # below a fiftieth of the start the deployment is hopeless, not slow (and each slower
    # run costs more: the same requests spread over a longer time)
    k_floor = grid.ceil(guess / 50) if k_low is None else k_low
    return _widen(search, *((k0, None) if search.meets(k0) else (None, k0)), k_floor, k_high)


def _widen(
    search: _RateSearch, ok: int | None, bad: int | None, k_floor: int, k_high: int
) -> GoodputResult:
    """From a first verdict (a passing or a failing index), widen up or down to a pair that
    brackets the answer, then bisect it."""
    if ok is not None:
        ok, bad = search.up(ok, k_high)
        if bad is None:
            return search.result(ok, at_limit=ok >= k_high)
    else:
        assert bad is not None
        ok, bad = search.down(bad, k_floor)
        if ok is None:
            return search.result(None)
    return search.result(search.bisect(ok, bad))


def _closed_loop(
    scenario: Scenario,
    low: float | None,
    high: float | None,
    rel_tol: float,
    max_requests: int | None,
    max_evaluations: int,
    start: float | None,
    run: Callable[[Scenario], RunSummary] | None,
) -> GoodputResult:
    """:func:`goodput` of a closed loop: the same search over its concurrency (``low``,
    ``high`` and ``start`` in clients; default start the scenario's own concurrency, default
    range 1 to :data:`MAX_CLIENTS`, the lowest being a single client alone)."""
    loop = scenario.spec.workload.closed_loop
    assert loop is not None
    grid = ConcurrencyGrid(rel_tol)
    per_client = requests_per_client(scenario, max_requests)
    if run is None:

        def run(sc: Scenario) -> RunSummary:
            # the scenario is sized already: N clients x per_client requests
            return simulate(sc, sample_interval=None).summary

    search = _ConcurrencySearch(scenario, grid, run, max_evaluations, per_client)
    k_low = grid.ceil(low) if low is not None else 0
    k_high = grid.floor(high) if high is not None else grid.top
    k0 = min(max(grid.floor(start if start is not None else loop.concurrency), k_low), k_high)
    return _widen(search, *((k0, None) if search.meets(k0) else (None, k0)), k_low, k_high)
