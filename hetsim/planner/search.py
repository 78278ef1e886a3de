"""``hetsim.plan``: search a scenario's ``search:`` space for the deployment to recommend.

1. **Enumerate** every candidate (:mod:`hetsim.planner.space`); one that does not validate
   (a format the accelerator lacks, a model that does not fit) is *invalid*, with the check's
   message.
   The scenario's own deployment (its ``pools:`` as written) is always among them, marked
   ``own``: it is never screened out or beaten, always searched in full and reported.
2. **Screen** each analytically (:mod:`hetsim.planner.screen`): over inventory or budget,
   *hopeless* even alone, or unable to reach ``min_rate`` at its capacity bound → *screened*.
3. **Simulate** the survivors, most promising first (the scenario's own deployment, then by
   estimate, see ``_Search._promise``: estimates only order the work, never discard), in
   rounds of ``wave`` candidates run in parallel. Before a round, each candidate is compared
   with the best measured so far: if even its capacity bound cannot tie it (come within the
   rate grid's step of it), it is *beaten* without simulation; otherwise its first simulation
   is at the rate it would need to tie, and it is *beaten* if it misses the SLA there (one
   simulation instead of a search; sound because attainment falls as the rate rises, see
   :func:`~hetsim.planner.pruning.search_task`). The rest get a full goodput search on the
   shared rate grid, with common random numbers (the same seed, hence the same requests, for
   every candidate).
   A **closed loop** (``workload.closed_loop``) has no arrival rate: each candidate's goodput
   search runs over its concurrency instead (see :mod:`hetsim.planner.goodput`), from the
   scenario's own concurrency, without a rate to start from, stop at or reach; the screen's
   capacity bounds still cap its throughput and prune, and a candidate's goodput is the
   SLA-meeting throughput at its best concurrency, which its result carries.
4. **Rank** by the objective. Goodput is known to one grid step (``rel_tol``), so candidates
   whose objective lies within that step of the best are a **tie** (see
   :func:`~hetsim.planner.results.tie_floor`): the tie is reported, and broken by
   :data:`TIE_BREAK` — the cheaper deployment first, then tail latency (the larger of TTFT and
   TPOT at the SLA percentile, each over its bound), then the candidate id.

Every candidate keeps its verdict and the reason for it. Decisions depend only on results of
whole rounds, in candidate order, so any backend and worker count give the same plan.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from hetsim.checks import load_scenario
from hetsim.errors import InputError
from hetsim.planner.backends import Backend, check_backend, make_backend
from hetsim.planner.capacity import PoolCosts
from hetsim.planner.goodput import ConcurrencyGrid, requests_per_client
from hetsim.planner.objective import Objective
from hetsim.planner.pruning import judge_unsimulated, over_limits, search_task, with_search
from hetsim.planner.results import CandidateResult, PlanResult, tie_floor
from hetsim.planner.screen import WorkloadSample
from hetsim.planner.space import enumerate_candidates
from hetsim.planner.verdict import Verdict
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import SearchSpec

__all__ = ["TIE_BREAK", "CandidateResult", "PlanResult", "plan"]

Progress = Callable[[dict[str, int]], None]

#: how a tie for the best is broken, as plan.json and the recommendation state it
TIE_BREAK = "cheaper $/h first, then tail latency, then candidate id"


class _Search:
    """One plan's state: every candidate's latest result (by id, in candidate order) and the
    counts its progress reports."""

    def __init__(
        self, scenario: Scenario, search: SearchSpec, max_requests: int | None, progress: Progress
    ) -> None:
        self.scenario = scenario
        self.search = search
        self.objective = Objective(search.objective)
        self.max_requests = max_requests
        self.progress = progress
        self.results: dict[int, CandidateResult] = {}
        self.counts = {"total": 0, "screened": 0, "simulated": 0, "beaten": 0, "simulations": 0}
        self.remaining = 0
        self.closed = scenario.spec.workload.closed_loop is not None

    def report(self) -> None:
        self.progress({**self.counts, "remaining": self.remaining})

    def best(self) -> CandidateResult | None:
        ranked = [r for r in self.results.values() if r.verdict is Verdict.RANKED]
        return min(ranked, key=CandidateResult.rank_key) if ranked else None

    def screen_all(self, exhaustive: bool) -> list[CandidateResult]:
        """Judge every candidate without simulating; the pending ones, most promising first."""
        candidates = enumerate_candidates(self.scenario, self.search)
        self.counts["total"] = len(candidates)
        sample = WorkloadSample.of(self.scenario)
        costs = PoolCosts()  # this plan's: a later plan in the process starts afresh
        for c in candidates:
            r = judge_unsimulated(c, self.scenario, self.search, sample, costs, exhaustive)
            self.results[r.id] = r
            if r.verdict is not Verdict.PENDING:
                self.counts["screened"] += 1
            self.remaining = len(candidates) - self.counts["screened"]
            self.report()
        _check_space(self.scenario, self.search, list(self.results.values()))
        pending = [r for r in self.results.values() if r.verdict is Verdict.PENDING]
        return sorted(pending, key=self._promise)

    def _promise(self, r: CandidateResult) -> tuple:
        """The order of work, which decides only how much is simulated, never the answer: the
        scenario's own deployment first (it is searched in full whatever it scores, and its
        result may prune others), then by the objective at the geometric mean of the queueing
        estimate and the capacity bound. The estimate alone is pessimistic where prompts
        batch well (it models one prompt at a time), the bound alone optimistic; finding the
        best early is what lets the bounds and ``must_reach`` prune the rest."""
        assert r.screen is not None
        own = not r.candidate.own
        if self.objective is Objective.CHEAPEST_FOR_RATE:
            return (own, r.cost_per_hour, -r.screen.estimate, r.id)
        bound = r.screen.rate_bound if math.isfinite(r.screen.rate_bound) else r.screen.estimate
        guess = math.sqrt(max(r.screen.estimate, 0.0) * max(bound, 0.0))
        score = self.objective.score(guess, r.candidate.devices, r.cost_per_hour, r.power_w)
        return (own, -score, r.id)

    def task_data(self, r: CandidateResult, path: str | None) -> dict[str, Any]:
        """What every task carries: the candidate as plain data, the search settings, and the
        highest rate to search (its capacity bound: no long run of it can serve more)."""
        bound = r.screen.rate_bound if r.screen is not None else None
        if self.closed:  # a rate bound does not limit a search over concurrency
            bound = None
        return {
            "id": r.id,
            "high": bound if bound is not None and 0 < bound < math.inf else None,
            "scenario": r.candidate.data,
            "path": path,
            "rel_tol": self.search.rel_tol,
            "max_requests": self.max_requests,
        }

    def by_rate(self, task: dict[str, Any]) -> dict[str, Any]:
        """The task's rates (where to start, what to reach), which a closed loop's search by
        concurrency cannot take: it starts from the scenario's concurrency and searches in
        full, judged afterwards against min_rate and the best like any other."""
        if not self.closed:
            return task
        return {k: v for k, v in task.items() if k not in ("start", "must_reach")}

    def record(
        self, r: CandidateResult, out: dict[str, Any], best: CandidateResult | None
    ) -> CandidateResult:
        """Judge ``r`` by its search's result; returns the new result."""
        self.counts["simulated"] += 1
        self.counts["simulations"] += len(out["points"])
        judged = with_search(
            r, out, best, self.objective, self.search.min_rate, self.search.rel_tol
        )
        self.results[r.id] = judged
        return judged

    def run_waves(
        self,
        pending: list[CandidateResult],
        backend: Backend,
        wave: int,
        exhaustive: bool,
    ) -> None:
        """Simulate the pending candidates in rounds of ``wave``, each round pruned against
        the best measured before it."""
        path = str(self.scenario.path) if self.scenario.path else None
        self.remaining = len(pending)
        while pending:
            best = self.best()
            tasks: list[dict[str, Any]] = []
            members: list[CandidateResult] = []
            while pending and len(tasks) < wave:
                r = pending.pop(0)
                task = search_task(
                    r, best, self.objective, self.search.min_rate, self.search.rel_tol, exhaustive
                )
                if isinstance(task, CandidateResult):  # beaten without simulation
                    self.results[r.id] = task
                    self.counts["beaten"] += 1
                    self.remaining -= 1
                    self.report()
                    continue
                tasks.append({**self.by_rate(task), **self.task_data(r, path)})
                members.append(r)
            for i, out in backend.map(tasks):
                self.record(members[i], out, best)
                self.remaining -= 1
                self.report()

    def colocated_baseline(self, backend: Backend) -> CandidateResult | None:
        """The best colocated deployment, searched in full if pruning left none measured
        (at most two tries: those that came closest in their one simulation first, then by
        estimate). None when there is none, or when a colocated one is the best anyway."""
        colocated = [r.id for r in self.results.values() if r.candidate.kind == "colocated"]
        best = self.best()
        if not colocated or (best is not None and best.candidate.kind == "colocated"):
            return None
        unsearched = sorted(
            (
                self.results[i]
                for i in colocated
                if self.results[i].screen is not None and self.results[i].verdict is Verdict.BEATEN
            ),
            key=self._closest_first,
        )
        path = str(self.scenario.path) if self.scenario.path else None
        for top in unsearched[:2]:
            if self._measured(colocated):
                break
            assert top.screen is not None
            start = self.by_rate({"start": max(top.screen.estimate, 1e-3)})
            task = {**self.task_data(top, path), **start}
            for _, out in backend.map([task]):
                judged = self.record(top, out, None)
                reason = (
                    f"{judged.reason}; searched as the colocated baseline (had been: {top.reason})"
                )
                self.results[top.id] = replace(judged, reason=reason)
        measured = self._measured(colocated)
        if not measured:
            return None
        chosen = replace(min(measured, key=CandidateResult.rank_key), baseline=True)
        self.results[chosen.id] = chosen
        return chosen

    def _closest_first(self, r: CandidateResult) -> tuple:
        assert r.screen is not None
        estimate = self.objective.score(
            r.screen.estimate, r.candidate.devices, r.cost_per_hour, r.power_w
        )
        return (-max((p["attainment"] for p in r.points), default=0.0), -estimate, r.id)

    def _measured(self, ids: list[int]) -> list[CandidateResult]:
        return [self.results[i] for i in ids if self.results[i].verdict is Verdict.RANKED]

    def recommend(self) -> CandidateResult | None:
        """Mark the recommended candidate: the best ranked, or of those tied for the best the
        one :data:`TIE_BREAK` prefers, with the tie in its reason; returns it."""
        top = self.best()
        if top is None:
            return None
        tied = self._tied(top)
        best = min(tied, key=lambda r: (r.cost_per_hour, r.tail(), r.id))
        others = [r for r in tied if r.id != best.id]
        unit = self.objective.unit
        reason = f"best {unit} of all candidates"
        if others:
            for r in tied:
                self.results[r.id] = replace(self.results[r.id], tie=True)
            best = self.results[best.id]
            reason = (
                f"tie for the best {unit} with "
                + ", ".join(
                    f"#{r.id} ({self.objective.format(r.objective, False)})" for r in others
                )
                + f", within the goodput grid's {self.search.rel_tol:.0%} step "
                f"(broken by {TIE_BREAK})"
            )
        if best.goodput_at_limit:  # its ranked reason said so; the recommendation must too
            limit = "the most clients searched" if self.closed else "its capacity bound"
            reason += f"; its goodput is a lower bound (SLA met up to {limit})"
        best = replace(best, verdict=Verdict.RECOMMENDED, reason=reason)
        self.results[best.id] = best
        return best

    def _tied(self, top: CandidateResult) -> list[CandidateResult]:
        """The ranked candidates tied with ``top`` (itself included): within the grid's step
        of its objective; for cheapest_for_rate, whose objective is a price, at its price."""
        ranked = [r for r in self.results.values() if r.verdict is Verdict.RANKED]
        if self.objective is Objective.CHEAPEST_FOR_RATE:
            return [r for r in ranked if r.objective == top.objective]
        floor = tie_floor(top.objective, self.search.rel_tol)
        return [r for r in ranked if r.objective > floor]


def _check_space(scenario: Scenario, search: SearchSpec, results: list[CandidateResult]) -> None:
    """Nothing to simulate because of the search section itself is an input error, not an SLA
    verdict: no candidate at all, none that validates, or every valid one over the inventory or
    the budget. A candidate screened for a reason of its own (hopeless even alone, a capacity
    bound under min_rate) leaves the verdict to the SLA. The scenario's own deployment, when
    the space does not hold it (``added``), does not make a space of nothing valid valid."""
    results = [r for r in results if not r.candidate.added]
    if any(r.verdict is Verdict.PENDING for r in results):
        return
    if not results:
        raise InputError("the search space has no candidate", field="search", file=scenario.path)
    valid = [r for r in results if r.verdict is not Verdict.INVALID]
    if not valid:
        reasons = Counter(r.reason for r in results).most_common(1)[0][0]
        raise InputError(
            f"none of the {len(results)} candidates of the search space is a valid deployment; "
            f"the most common reason: {reasons}",
            field="search",
            file=scenario.path,
        )
    over: dict[str, list[CandidateResult]] = {}
    for r in valid:
        limit = over_limits(r.candidate, r.cost_per_hour, search)
        if limit is None:
            return
        over.setdefault(limit[0], []).append(r)
    field, limited = max(over.items(), key=lambda kv: len(kv[1]))
    if field == "search.budget_per_hour":
        value: object = search.budget_per_hour
        cheapest = min(r.cost_per_hour for r in valid)
        allowed = f"at least ${cheapest:,.2f}/h (the cheapest candidate) to plan anything"
    else:
        acc = field.removeprefix("search.inventory.")
        value = search.inventory[acc]
        need = min(r.candidate.devices_by_accelerator[acc] for r in limited)
        allowed = f"at least {need} (the smallest candidate using {acc}) to plan anything"
    counts = ", ".join(f"{len(rs)} over {f}" for f, rs in sorted(over.items()))
    raise InputError(
        f"every valid candidate of the search space is over its limits ({counts}): "
        "nothing is left to simulate",
        field=field,
        value=value,
        allowed=allowed,
        file=scenario.path,
    )


def _settings(
    scenario: Scenario,
    search: SearchSpec,
    max_requests: int | None,
    wave: int,
    exhaustive: bool,
) -> dict[str, Any]:
    """The settings plan.json records."""
    return {
        "rel_tol": search.rel_tol,
        "max_requests": max_requests,
        "wave": wave,
        "exhaustive": exhaustive,
        "tie_break": TIE_BREAK,
        "min_rate": search.min_rate,
        "budget_per_hour": search.budget_per_hour,
        "inventory": dict(search.inventory),
        "seed": scenario.spec.seed,
        **_axis(scenario, max_requests, search.rel_tol),
    }


def _axis(scenario: Scenario, max_requests: int | None, rel_tol: float) -> dict[str, Any]:
    """What each goodput search varied; for a closed loop also the requests each client sends
    at every concurrency (the scenario's requests, or max_requests, over its concurrency)."""
    if scenario.spec.workload.closed_loop is None:
        return {"search_axis": "rate"}
    return {
        "search_axis": "concurrency",
        "requests_per_client": requests_per_client(scenario, max_requests),
        "max_concurrency": ConcurrencyGrid(rel_tol).values[-1],
    }


def _search_spec(scenario: Scenario) -> SearchSpec:
    search = scenario.spec.search or SearchSpec()
    if search.objective == Objective.CHEAPEST_FOR_RATE and search.min_rate is None:
        raise InputError(
            "the cheapest_for_rate objective needs the rate to serve",
            file=scenario.path,
            field="search.min_rate",
            allowed="a request rate, e.g. min_rate: 2.5 req/s",
        )
    if search.objective == Objective.GOODPUT_PER_DOLLAR:
        free = sorted(name for name, price in scenario.spec.costs.prices.items() if price <= 0)
        if free:
            # requests per dollar of a free device are infinite: nothing would rank
            raise InputError(
                "goodput_per_dollar divides by the deployment's price",
                file=scenario.path,
                field=f"costs.prices.{free[0]}",
                value=scenario.spec.costs.prices[free[0]],
                allowed="a price above $0/h (what the device costs you per hour, e.g. its "
                "amortised cost), or objective: goodput",
            )
    return search


def _check_settings(workers: int | None, wave: int) -> None:
    """Zero workers or a zero wave would never simulate anything (a wave of 0 loops for ever)."""
    for name, value in (("--workers", workers), ("--wave", wave)):
        if value is not None and value < 1:
            raise InputError(
                "the planner needs at least one", field=name, value=value, allowed="an integer ≥ 1"
            )


def plan(
    scenario: Scenario | str | Path,
    overrides: list[str] | None = None,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    max_requests: int | None = None,
    wave: int = 2,
    exhaustive: bool = False,
    progress: Progress | None = None,
) -> PlanResult:
    """Search the scenario's ``search:`` space; return the ranked candidates and the best.

    ``backend``: ``local`` (a process pool of ``workers``, default all cores) or ``ray``
    (``address`` of the cluster; None starts a local Ray). ``max_requests`` caps each
    simulation's workload. ``wave``: candidates simulated per round (results depend on it, not
    on the backend or worker count). ``exhaustive``: no screening or pruning — every valid
    candidate gets a full goodput search (for checking the planner: it must find the same
    best). ``progress`` receives counts: total, screened, simulated, beaten, remaining,
    simulations.
    """
    started = time.perf_counter()
    _check_settings(workers, wave)
    check_backend(backend, workers, address)  # before the screening prints its progress
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides or [])
    elif overrides:
        raise ValueError("overrides apply to scenario files; pass a path or use load_scenario")
    search = _search_spec(scenario)
    if max_requests is None:
        max_requests = search.max_requests
    state = _Search(scenario, search, max_requests, progress or (lambda counts: None))
    pending = state.screen_all(exhaustive)
    chosen = make_backend(backend, workers, address)
    try:
        state.run_waves(pending, chosen, wave, exhaustive)
        baseline = state.colocated_baseline(chosen)
    finally:
        chosen.close()
    best = state.recommend()  # a baseline searched in full may turn out the best
    if baseline is not None and best is not None and baseline.id == best.id:
        baseline = None
    state.remaining = 0
    state.report()
    return PlanResult(
        scenario=scenario,
        objective=state.objective,
        results=list(state.results.values()),
        best=best,
        baseline=None if baseline is None else state.results[baseline.id],
        settings=_settings(scenario, search, max_requests, wave, exhaustive),
        wall_s=time.perf_counter() - started,
        simulations=state.counts["simulations"],
        backend=chosen.name,
        workers=chosen.workers,
    )
