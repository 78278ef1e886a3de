"""How far the plan's assumptions may move before its recommendation changes.

Two kinds of figure in a plan are assumptions rather than measurements: the step times of pools
whose kernels were not measured on the device (``roofline-default`` and ``transferred``
provenance), and profile prices that ``costs.prices`` does not set. For each, this module finds
the **break-even factor**: the factor by which the assumed figure would have to be multiplied for
another candidate of the plan to score as well as the recommendation. A factor inside the
plausible range of the assumption makes the recommendation *fragile*; otherwise it is *robust*.

The model is first order, and says so where it is printed:

- **Step times.** Every rate-based objective (goodput, per device, per dollar, energy) is
  proportional to the goodput. Per accelerator whose pools are uncalibrated, a candidate using
  it is taken to lose goodput in proportion to its step times there (``goodput / k`` when they
  are ``k`` times the model's; per-step overheads, queueing and the other role make the real
  effect smaller and non-linear). Candidates not using it keep theirs, so the break-even is the
  ratio of the two scores.
  Plausible ``k``: 0.8–1.8 — an assumption from the issue's checks of roofline-default against
  published A100/H100 steps (30–45% too fast, i.e. real steps up to 1/(1 − 0.45) ≈ 1.8× the
  model's), with transferred surfaces allowed to err either way.
- **Prices.** For goodput per dollar and cheapest-for-rate, one accelerator's assumed price is
  scaled by ``f`` in every candidate at once; a candidate's cost is linear in ``f``, so the
  break-even solves a linear equation. Plausible ``f``: 0.67–1.5, an assumption from the spread
  of rental quotes for one part (the H200 profile's $3.45–6.31 per GPU-hour, for one).

Only candidates whose goodput the search measured (the ranked ones, ties, the scenario's own and
the colocated baseline) are compared: a beaten candidate has only an upper bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hetsim.perf.cost.base import Provenance
from hetsim.planner.objective import Objective

if TYPE_CHECKING:  # results imports this module to report it
    from hetsim.planner.results import CandidateResult

__all__ = ["BreakEven", "Robustness", "robustness", "STEP_TIME_RANGE", "PRICE_RANGE"]

#: plausible factors on the step times of uncalibrated pools, and on assumed prices (assumptions)
STEP_TIME_RANGE = (0.8, 1.8)
PRICE_RANGE = (0.67, 1.5)
_UNCALIBRATED = (Provenance.ROOFLINE_DEFAULT, Provenance.TRANSFERRED)


@dataclass(frozen=True)
class BreakEven:
    """Multiply ``assumption`` by ``factor`` and candidate ``overtaken_by`` scores as well as
    the recommendation."""

    assumption: str
    factor: float
    overtaken_by: int
    plausible: tuple[float, float]

    @property
    def fragile(self) -> bool:
        lo, hi = self.plausible
        return lo <= self.factor <= hi

    def line(self) -> str:
        lo, hi = self.plausible
        return (
            f"{self.assumption} × {self.factor:.2f} → #{self.overtaken_by} ties "
            f"(plausible {lo:g}–{hi:g}×: {'fragile' if self.fragile else 'robust'})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "assumption": self.assumption,
            "factor": self.factor,
            "overtaken_by": self.overtaken_by,
            "plausible": list(self.plausible),
            "fragile": self.fragile,
        }


@dataclass(frozen=True)
class Robustness:
    """The nearest break-even of each assumption the recommendation depends on."""

    break_even: tuple[BreakEven, ...]
    compared: int  # candidates with a measured goodput it was compared with

    @property
    def fragile(self) -> bool:
        return any(b.fragile for b in self.break_even)

    @property
    def verdict(self) -> str:
        return "fragile" if self.fragile else "robust"

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "compared_with": self.compared,
            "break_even": [b.as_dict() for b in self.break_even],
            "model": "first order: goodput ∝ 1 / step-time factor; cost linear in each price",
        }


def robustness(
    best: CandidateResult, others: Sequence[CandidateResult], objective: Objective
) -> Robustness:
    """The break-even factors of ``best`` against every other candidate with a measured
    goodput, keeping per assumption the one nearest 1 (the first to be crossed)."""
    measured = [o for o in others if o is not best and _measured(o)]
    found: list[BreakEven] = []
    steps = _step_time_break_evens(best, measured, objective)
    for what in dict.fromkeys(b.assumption for b in steps):
        nearest = _nearest([b for b in steps if b.assumption == what])
        assert nearest is not None
        found.append(nearest)
    if objective in (Objective.GOODPUT_PER_DOLLAR, Objective.CHEAPEST_FOR_RATE):
        for accelerator in _assumed_accelerators([best, *measured]):
            nearest = _nearest(_price_break_evens(best, measured, objective, accelerator))
            if nearest is not None:
                found.append(nearest)
    return Robustness(tuple(found), len(measured))


def _measured(r: CandidateResult) -> bool:
    return r.summary is not None and r.goodput > 0 and math.isfinite(r.goodput)


def _nearest(candidates: list[BreakEven]) -> BreakEven | None:
    """The break-even nearest 1 on a log scale (the first the assumption would cross)."""
    return min(candidates, key=lambda b: abs(math.log(b.factor)), default=None)


def _uncalibrated_on(r: CandidateResult) -> set[str]:
    """The accelerators whose pools in ``r`` rest on uncalibrated step times."""
    assert r.summary is not None and r.candidate.scenario is not None
    accelerator = {p.name: p.accelerator for p in r.candidate.scenario.spec.pools}
    return {
        accelerator[pool]
        for pool, label in r.summary.provenance.items()
        if pool in accelerator and Provenance.kind_of(label) in _UNCALIBRATED
    }


def _step_time_break_evens(
    best: CandidateResult, others: list[CandidateResult], objective: Objective
) -> list[BreakEven]:
    """Per accelerator whose step times are uncalibrated somewhere: a rate objective scales
    with the goodput, so between a candidate that uses it and one that does not, the ratio of
    their scores is the factor (the rate is a constraint under cheapest_for_rate: skipped)."""
    if not _measured(best) or objective is Objective.CHEAPEST_FOR_RATE:
        return []
    on = {r.id: _uncalibrated_on(r) for r in (best, *others)}
    out = []
    for accelerator in sorted(set().union(*on.values())):
        what = f"step times on {accelerator} (uncalibrated)"
        best_uses = accelerator in on[best.id]
        for o in others:
            if (accelerator in on[o.id]) == best_uses:
                continue  # scaled alike: their order does not change
            s_best, s_other = best.score(objective), o.score(objective)
            if not (s_best > 0 and s_other > 0):
                continue
            factor = s_best / s_other if best_uses else s_other / s_best
            out.append(BreakEven(what, factor, o.id, STEP_TIME_RANGE))
    return out


def _assumed_accelerators(results: Sequence[CandidateResult]) -> list[str]:
    names: dict[str, None] = {}
    for r in results:
        scenario = r.candidate.scenario
        if scenario is None:
            continue
        for pool in scenario.spec.pools:
            if scenario.price_is_assumption(pool.name):
                names[pool.accelerator] = None
    return list(names)


def _split_cost(r: CandidateResult, accelerator: str) -> tuple[float, float]:
    """(cost per hour without ``accelerator``'s devices, their cost at the assumed price)."""
    scenario = r.candidate.scenario
    assert scenario is not None
    part = sum(
        p.total_devices * scenario.price_per_device_hour(p.name)
        for p in scenario.spec.pools
        if p.accelerator == accelerator and scenario.price_is_assumption(p.name)
    )
    return r.cost_per_hour - part, part


def _price_break_evens(
    best: CandidateResult,
    others: list[CandidateResult],
    objective: Objective,
    accelerator: str,
) -> list[BreakEven]:
    """Scale ``accelerator``'s price by f in every candidate: cost = a + f·b. Per dollar the
    scores g/(a + f·b) meet where g_best·(a_o + f·b_o) = g_o·(a_best + f·b_best); cheapest
    for rate, where the costs meet."""
    what = f"price of {accelerator}"
    a_w, b_w = _split_cost(best, accelerator)
    out = []
    for o in others:
        a_o, b_o = _split_cost(o, accelerator)
        if objective is Objective.GOODPUT_PER_DOLLAR:
            g_w, g_o = best.goodput, o.goodput
            denominator = g_w * b_o - g_o * b_w
            numerator = g_o * a_w - g_w * a_o
        else:  # cheapest for rate: a_w + f·b_w = a_o + f·b_o
            denominator = b_o - b_w
            numerator = a_w - a_o
        if denominator == 0:
            continue
        factor = numerator / denominator
        if factor > 0 and math.isfinite(factor):
            out.append(BreakEven(what, factor, o.id, PRICE_RANGE))
    return out
