"""The planner's verdicts on one candidate: screened out before simulation, beaten by the best
measured so far, or judged by what its goodput search found. Each function returns the
candidate's new result; which candidates to consider in which order is :mod:`search`'s."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hetsim.checks import handoff_plans
from hetsim.planner.capacity import PoolCosts
from hetsim.planner.goodput import convergence
from hetsim.planner.objective import Objective
from hetsim.planner.results import CandidateResult, tie_floor
from hetsim.planner.screen import ScreenResult, WorkloadSample, screen
from hetsim.planner.space import Candidate
from hetsim.planner.verdict import Verdict
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import SearchSpec

__all__ = ["judge_unsimulated", "over_limits", "search_task", "with_search"]


def _invalid(c: Candidate, scenario: Scenario) -> CandidateResult:
    lines = (c.error or "does not validate").splitlines()
    reason = lines[0]
    if len(lines) > 1 and reason.endswith("problems:"):  # every problem, on the one line
        reason = "; ".join(line.strip().split(". ", 1)[-1] for line in lines[1:])
    # the scenario file's name prefixes every message; the candidate is not that file
    if scenario.path is not None:
        reason = reason.removeprefix(f"{scenario.path}: ")
    return CandidateResult(c, Verdict.INVALID, reason)


#: a candidate's boundary is its worst pair's verdict: one incompatible or convertible pair
#: makes the whole boundary so
_BOUNDARY_ORDER = ("identical", "convertible", "incompatible")


def _boundary(c: Candidate) -> str | None:
    if c.kind != "disaggregated":
        return None
    assert c.scenario is not None
    kinds = [plan.verdict.kind for plan in handoff_plans(c.scenario).values()]
    return max(kinds, key=_BOUNDARY_ORDER.index)


def over_limits(c: Candidate, cost: float, search: SearchSpec) -> tuple[str, str] | None:
    """The limit the candidate is over (the field that sets it) and why, if it is."""
    for acc, n in c.devices_by_accelerator.items():
        have = search.inventory.get(acc)
        if have is not None and n > have:
            return f"search.inventory.{acc}", f"needs {n} {acc}, the inventory has {have}"
    budget = search.budget_per_hour
    if budget is not None and cost > budget:
        return "search.budget_per_hour", f"costs ${cost:,.2f}/h, over the ${budget:,.2f}/h budget"
    return None


def judge_unsimulated(
    c: Candidate,
    scenario: Scenario,
    search: SearchSpec,
    sample: WorkloadSample,
    costs: PoolCosts,
    exhaustive: bool,
) -> CandidateResult:
    """The candidate invalid, screened out (with the reason), or pending with its screen.
    ``exhaustive``: screen, but discard nothing the screen alone rules out."""
    if c.scenario is None:
        return _invalid(c, scenario)
    r = CandidateResult(c, cost_per_hour=c.scenario.cost_per_hour(), boundary=_boundary(c))
    over = over_limits(c, r.cost_per_hour, search)
    if over is not None:
        return replace(r, verdict=Verdict.SCREENED, reason=over[1])
    sr = screen(c.scenario, sample, costs)
    r = replace(r, screen=sr)
    if exhaustive or c.own:  # the scenario's own deployment is always simulated
        return r
    if sr.hopeless:
        return replace(r, verdict=Verdict.SCREENED, reason=f"hopeless: {sr.hopeless}")
    if search.min_rate is not None and sr.rate_bound < search.min_rate:
        return replace(
            r,
            verdict=Verdict.SCREENED,
            reason=f"at most {sr.rate_bound:.3g} req/s ({sr.bound_by} bound), below "
            f"min_rate {search.min_rate:g}",
        )
    return r


def _score(objective: Objective, r: CandidateResult, rate: float) -> float:
    return objective.score(rate, r.candidate.devices, r.cost_per_hour, r.power_w)


def search_task(
    r: CandidateResult,
    best: CandidateResult | None,
    objective: Objective,
    min_rate: float | None,
    rel_tol: float,
    exhaustive: bool,
) -> dict[str, Any] | CandidateResult:
    """The goodput search to run for pending ``r`` given the best so far (its start and the
    rate it must reach), or ``r`` beaten as it is.

    Only proofs discard a candidate; the queueing estimate only says where its search starts.
    A candidate is beaten when it cannot even *tie* the best, i.e. come within one grid step
    (``rel_tol``) of its objective (a tie may still win on the tie-break, see
    :mod:`~hetsim.planner.search`):

    * by its capacity bound: every goodput search, exhaustive or not, stops at the
      candidate's bound (it is the search's ``high``), so no result of it can exceed the bound;
      how well each bound holds for the simulator is :mod:`~hetsim.planner.screen`'s to argue;
    * by one simulation at the rate it would need (``must_reach``): missing the SLA there rules
      out every higher rate only because attainment falls as the rate rises — the assumption
      :mod:`~hetsim.planner.goodput` states and its rate search rests on as well.

    The scenario's own deployment (``candidate.own``) is never beaten: it gets a full search.
    """
    assert r.screen is not None
    sr = r.screen
    start = _start(sr)
    if exhaustive or r.candidate.own:
        return {"start": start}
    if objective is Objective.CHEAPEST_FOR_RATE:
        assert min_rate is not None
        if best is not None and r.cost_per_hour > best.cost_per_hour:
            return _beaten(
                r,
                f"costs ${r.cost_per_hour:,.2f}/h, more than #{best.id} "
                f"(${best.cost_per_hour:,.2f}/h) which serves {min_rate:g} req/s",
            )
        return {"start": start, "must_reach": min_rate}
    need = min_rate
    if best is not None:
        to_tie = tie_floor(best.objective, rel_tol)
        bound = _score(objective, r, sr.rate_bound)
        if bound <= to_tie:
            return _beaten(
                r,
                f"its {sr.bound_by} bound ({sr.rate_bound:.3g} req/s) gives at most "
                f"{objective.format(bound)}, not within {rel_tol:.0%} of #{best.id}'s "
                f"measured {objective.format(best.objective)}",
            )
        needed = objective.rate_for(to_tie, r.candidate.devices, r.cost_per_hour, r.power_w)
        need = needed if need is None else max(need, needed)
    task: dict[str, Any] = {"start": start}
    if need is not None:
        task["must_reach"] = need
    return task


def _start(sr: ScreenResult) -> float:
    """Where a goodput search starts: the queueing estimate; where it is 0 (a deployment
    searched although the screen finds it hopeless: the scenario's own, or any under
    ``exhaustive``) the capacity bound, so the search walks down from a rate the deployment
    could serve rather than from a near-zero one whose run would span too long."""
    if sr.estimate > 0:
        return max(sr.estimate, 1e-3)
    if 0 < sr.rate_bound < math.inf:
        return sr.rate_bound
    return 1e-3


def _beaten(r: CandidateResult, reason: str) -> CandidateResult:
    return replace(r, verdict=Verdict.BEATEN, reason=reason)


def _at_limit(r: CandidateResult, out: dict[str, Any], measured: str) -> str:
    """The reason of a candidate that met the SLA at every rate (concurrency) searched."""
    if out.get("axis") == "concurrency":
        return (
            f"meets the SLA at every concurrency searched, up to {out['concurrency']} clients "
            f"(of at most {out['max_concurrency']:,}): goodput at least {measured}"
        )
    sr = r.screen
    # search_task passes the bound as the limit only where it is a finite rate
    limit = (
        f"its {sr.bound_by} bound ({sr.rate_bound:.3g} req/s)"
        if sr is not None and 0 < sr.rate_bound < math.inf
        else "the search's limit"
    )
    return f"meets the SLA at every rate searched, up to {limit}: goodput at least {measured}"


def with_search(
    r: CandidateResult,
    out: dict[str, Any],
    best: CandidateResult | None,
    objective: Objective,
    min_rate: float | None,
    rel_tol: float,
) -> CandidateResult:
    """``r`` judged by its goodput search's result ``out`` (see
    :func:`~hetsim.planner.backends.run_task`); ``best``: the best when the search began."""
    converged, why = convergence(
        out["points"], rel_tol, bool(out.get("at_limit")), out["beaten_at"]
    )
    r = replace(r, points=out["points"], converged=converged, not_converged=why)
    if out["beaten_at"] is not None:
        p = r.points[0]
        # cheapest_for_rate always tests min_rate; the others the rate that beats the best
        if best is None or objective is Objective.CHEAPEST_FOR_RATE:
            why = f"min_rate {min_rate:g}"
        else:
            why = f"the rate it needs to tie #{best.id}"
        return _beaten(
            r,
            f"at {out['beaten_at']:.3g} req/s ({why}) attainment is {p['attainment']:.1%} "
            f"< {out['target']:.0%}",
        )
    r = replace(r, goodput=out["rate"], attainment=out["attainment"], summary=out["summary"])
    closed = out.get("axis") == "concurrency"
    n = out.get("concurrency")
    r = replace(r, concurrency=n)
    if r.goodput <= 0:
        if closed:
            low = min(r.points, key=lambda q: q["concurrency"])
            reason = (
                f"misses the SLA even at concurrency {low['concurrency']} ({low['rate']:.3g}"
                f" req/s, attainment {low['attainment']:.1%})"
            )
        else:
            low = min(r.points, key=lambda q: q["rate"])
            reason = (
                f"misses the SLA even at {low['rate']:.3g} req/s "
                f"(attainment {low['attainment']:.1%})"
            )
        return replace(r, verdict=Verdict.FAILS_SLA, reason=reason)
    if min_rate is not None and r.goodput < min_rate:
        reason = f"goodput {r.goodput:.3g} req/s is below min_rate {min_rate:g}"
        if closed:
            reason += f" (at concurrency {n})"
        return replace(r, verdict=Verdict.FAILS_SLA, reason=reason)
    score = _score(objective, r, r.goodput)
    measured = f"{r.goodput:.3g} req/s, {objective.format(score)}"
    reason = f"goodput {measured}" + (f" at concurrency {n}" if closed else "")
    if out.get("at_limit"):
        reason = _at_limit(r, out, measured)
    return replace(
        r,
        verdict=Verdict.RANKED,
        objective=score,
        reason=reason,
        goodput_at_limit=bool(out.get("at_limit")),
    )
