"""The planner against brute force on the full default search space.

Runs ``hetsim.plan`` on the bundled default scenario (``scenarios/cphd-glm51.yaml``) twice:
as the planner does (screen, prune on capacity bounds and one simulation at the rate needed
to tie) and with ``exhaustive=True`` (every valid candidate searched in full, nothing
screened or pruned). Prints whether both recommend the same deployment with the same
objective, each run's simulations and wall time, and the exhaustive run's cost as a ratio of
the planner's (the baseline measured in the same run). Also lists the candidates the
exhaustive run finds within the grid step of its best (the tie), and any candidate the planner
discarded that the exhaustive run ranks above the planner's best (there must be none).

The exhaustive run simulates every valid candidate: expect many minutes on two cores.

    python benchmarks/bench_plan_exhaustive.py [--workers N] [--scenario PATH] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import sys
import time

import hetsim
from hetsim.planner.results import PlanResult, tie_floor
from hetsim.planner.verdict import Verdict
from hetsim.spec.resolve import default_scenario_path


def _run(scenario, workers: int | None, exhaustive: bool) -> tuple[PlanResult, float]:
    start = time.perf_counter()
    result = hetsim.plan(scenario, workers=workers, exhaustive=exhaustive)
    return result, time.perf_counter() - start


def _describe(name: str, result: PlanResult, wall: float) -> None:
    best = result.best
    what = "no deployment meets the SLA" if best is None else (
        f"#{best.id} {best.label}: {best.objective:.4g} {result.objective.unit}"
    )  # fmt: skip
    print(f"{name:>10}: {result.simulations:4d} simulations in {wall:7.1f} s; best {what}")


def _missed(planned: PlanResult, brute: PlanResult) -> list[str]:
    """Candidates the planner did not search in full that brute force ranks within the grid
    step of the planner's best (a sound search has none above it and finds every tie)."""
    if planned.best is None:
        return []
    rel_tol = planned.settings["rel_tol"]
    floor = tie_floor(max(r.objective for r in planned.ranked), rel_tol)
    searched = {r.id for r in planned.results if r.verdict.measured}
    return [
        f"#{r.id} {r.label}: {r.objective:.4g} ({planned_verdict(planned, r.id)})"
        for r in brute.ranked
        if r.id not in searched and r.objective > floor
    ]


def planned_verdict(planned: PlanResult, id_: int) -> str:
    r = next(r for r in planned.results if r.id == id_)
    return f"{r.verdict.value}: {r.reason}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scenario", default=str(default_scenario_path()))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    scenario = hetsim.load_scenario(args.scenario, args.overrides)
    planned, planned_s = _run(scenario, args.workers, exhaustive=False)
    _describe("planner", planned, planned_s)
    brute, brute_s = _run(scenario, args.workers, exhaustive=True)
    _describe("exhaustive", brute, brute_s)
    same = (planned.best is None and brute.best is None) or (
        planned.best is not None
        and brute.best is not None
        and planned.best.id == brute.best.id
        and planned.best.objective == brute.best.objective
    )
    print(f"same best: {'yes' if same else 'NO'}")
    print(
        f"exhaustive / planner: {brute.simulations / max(planned.simulations, 1):.2f}x "
        f"simulations, {brute_s / planned_s:.2f}x wall time"
    )
    tie = [r for r in brute.ranked if r.tie]
    if tie:
        print("exhaustive tie: " + ", ".join(f"#{r.id} ({r.objective:.4g})" for r in tie))
    own = brute.own
    if own is not None:
        print(f"own deployment #{own.id}: {own.verdict.value}: {own.reason}")
    missed = _missed(planned, brute)
    for line in missed:
        print(f"MISSED by the planner: {line}")
    # a bound the simulations met the SLA right up to may undershoot (screen.py says which
    # bounds are proofs): the searches that hit it, by the bound that capped them
    limited: dict[str, int] = {}
    for r in brute.results:
        if r.goodput_at_limit and r.screen is not None:
            limited[r.screen.bound_by] = limited.get(r.screen.bound_by, 0) + 1
    print(
        "exhaustive searches that met the SLA up to their bound: "
        + (", ".join(f"{n} at the {k} bound" for k, n in sorted(limited.items())) or "none")
    )
    counts = ", ".join(f"{n} {v}" for v, n in planned.counts().items() if n)
    print(f"planner verdicts: {counts}")
    unsearched = sum(1 for r in brute.results if r.verdict is Verdict.INVALID)
    print(f"invalid candidates (never simulated by either): {unsearched}")
    return 0 if same and not missed else 1


if __name__ == "__main__":
    sys.exit(main())
