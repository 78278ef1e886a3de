"""Goodput: the highest request rate at which SLA attainment stays at or above its target.

DistServe's definition. We bisect on the workload's mean arrival rate (a synthetic workload's
``rate``, a trace's ``target_rate`` — the trace keeps its burstiness), simulating the same
requests at each rate: the seed is fixed, so every rate sees the same lengths and the same
arrival pattern, only compressed or stretched (common random numbers). Attainment is assumed
to fall as the rate rises, which holds for queueing systems short of pathological routing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hetsim.errors import InputError
from hetsim.simulation import simulate
from hetsim.spec.resolve import Scenario, scenario_from_dict

__all__ = ["GoodputResult", "goodput", "with_rate", "workload_rate"]


def workload_rate(scenario: Scenario) -> float | None:
    """The scenario's own mean arrival rate (requests/s), if it states one."""
    wl = scenario.spec.workload
    if wl.synthetic is not None:
        return wl.synthetic.rate
    assert wl.trace is not None
    return wl.trace.target_rate


def with_rate(scenario: Scenario, rate: float) -> Scenario:
    """The same scenario at another mean arrival rate."""
    data = scenario.spec.model_dump(by_alias=True, exclude_none=True)
    workload = data["workload"]
    if "synthetic" in workload:
        workload["synthetic"]["rate"] = rate
    else:
        workload["trace"]["target_rate"] = rate
    return scenario_from_dict(data, path=scenario.path)


@dataclass
class GoodputResult:
    """The goodput and the evidence for it: every rate tried and its attainment."""

    rate: float  # requests/s; 0 when even the lowest rate tried misses the SLA
    attainment: float  # at ``rate``
    target: float
    evaluations: list[tuple[float, float]] = field(default_factory=list)  # (rate, attainment)
    summary: dict[str, Any] = field(default_factory=dict)  # of the run at ``rate``

    @property
    def per_dollar(self) -> float:
        """Requests/s per $/h of the deployment (its cost is in the summary)."""
        cost = self.summary.get("cost_per_hour") or 0.0
        return self.rate / cost if cost else 0.0


def goodput(
    scenario: Scenario,
    *,
    low: float | None = None,
    high: float | None = None,
    rel_tol: float = 0.05,
    max_requests: int | None = None,
    max_evaluations: int = 24,
) -> GoodputResult:
    """Bisect the arrival rate for the highest one meeting ``sla.attainment``.

    ``low``/``high`` bracket the search (defaults: a tenth of and twice the scenario's rate,
    widened as needed); the result is within ``rel_tol`` of the true goodput: attainment is at
    or above target at ``rate`` and below it at ``rate·(1 + rel_tol)``.
    """
    target = scenario.spec.sla.attainment
    base = workload_rate(scenario)
    if base is None and (low is None or high is None):
        raise InputError(
            "goodput needs a rate to start from: the trace has no target_rate",
            field="workload.trace.target_rate",
            allowed="set target_rate, or pass low= and high=",
        )
    lo = low if low is not None else base / 10  # type: ignore[operator]
    hi = high if high is not None else base * 2  # type: ignore[operator]
    evaluations: list[tuple[float, float]] = []
    summaries: dict[float, dict[str, Any]] = {}

    def attain(rate: float) -> float:
        s = simulate(with_rate(scenario, rate), max_requests=max_requests).summary
        summaries[rate] = s
        evaluations.append((rate, s["attainment"]))
        return s["attainment"]

    # bracket: lo meets the SLA, hi does not
    while attain(lo) < target:
        if len(evaluations) >= max_evaluations or lo < 1e-6:
            return GoodputResult(0.0, evaluations[-1][1], target, evaluations, summaries[lo])
        hi, lo = lo, lo / 4
    while attain(hi) >= target:
        if len(evaluations) >= max_evaluations:
            break
        lo, hi = hi, hi * 2
    while hi > lo * (1 + rel_tol) and len(evaluations) < max_evaluations:
        mid = (lo * hi) ** 0.5  # geometric: rates span orders of magnitude
        if attain(mid) >= target:
            lo = mid
        else:
            hi = mid
    at_lo = dict(evaluations)[lo]
    return GoodputResult(lo, at_lo, target, evaluations, summaries[lo])
