"""Planner speed: how fast candidates are screened and simulated, and what a plan costs.

* **screen**: enumerate every candidate of a search space (each is built and validated) and
  run the analytic screen on every valid one — for the default scenario and for
  ``tests/data/plan-small.yaml``. Inventory and budget checks are not applied here: every
  valid candidate is screened.
* **plan-small**: ``hetsim.plan`` of ``tests/data/plan-small.yaml``: candidates simulated and
  simulations per wall-second.
* **default plan**: the wall time of ``hetsim.plan`` on the bundled default scenario (minutes;
  ``--skip-default`` leaves it out).

Baseline, timed in the same run: one plain ``hetsim.simulate`` of a plan-small candidate (the
scenario's own deployment, at its screened goodput estimate, as the planner first simulates
it; best of ``--repeat``), so every figure also reads as a cost in simulation-equivalents.

    python benchmarks/bench_plan.py [--workers N] [--backend local|ray] [--skip-default]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import hetsim
from hetsim.planner.capacity import PoolCosts
from hetsim.planner.goodput import with_rate
from hetsim.planner.screen import WorkloadSample, screen
from hetsim.planner.space import enumerate_candidates
from hetsim.simulation import simulate
from hetsim.spec.resolve import default_scenario_path

PLAN_SMALL = Path(__file__).resolve().parent.parent / "tests" / "data" / "plan-small.yaml"


def time_screen(path: Path) -> dict:
    """Enumerate and screen every valid candidate of ``path``'s search space."""
    scenario = hetsim.load_scenario(path)
    start = time.perf_counter()
    candidates = enumerate_candidates(scenario)
    enumerated = time.perf_counter()
    sample = WorkloadSample.of(scenario)
    valid = [c for c in candidates if c.scenario is not None]
    costs = PoolCosts()  # one per plan, shared by its candidates, as hetsim.plan does
    for c in valid:
        screen(c.scenario, sample, costs)
    end = time.perf_counter()
    return {
        "candidates": len(candidates),
        "valid": len(valid),
        "enumerate_s": enumerated - start,
        "screen_s": end - enumerated,
        "wall_s": end - start,
    }


def time_baseline(repeat: int) -> tuple[float, int]:
    """Best wall time of one plain simulation of plan-small's own deployment, and its requests."""
    scenario = hetsim.load_scenario(PLAN_SMALL)
    first = enumerate_candidates(scenario)[0]
    assert first.scenario is not None
    estimate = screen(first.scenario, WorkloadSample.of(scenario)).estimate
    candidate = with_rate(first.scenario, estimate)
    best = float("inf")
    requests = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = simulate(candidate, sample_interval=None)
        best = min(best, time.perf_counter() - start)
        requests = result.summary.requests
    return best, requests


def progress_printer(label: str, final: dict[str, int], every_s: float = 15.0):
    """A progress callback: a line on stderr every ``every_s``; the last counts into ``final``."""
    last = [time.perf_counter()]

    def show(counts: dict[str, int]) -> None:
        done = final.get("remaining") == 0  # the plan reports its end twice
        final.update(counts)
        now = time.perf_counter()
        if now - last[0] >= every_s or (counts["remaining"] == 0 and not done):
            last[0] = now
            print(
                f"  {label}: {counts['remaining']} of {counts['total']} left, "
                f"{counts['simulated']} simulated, {counts['simulations']} simulations",
                file=sys.stderr,
                flush=True,
            )

    return show


def time_plan(path: Path, args: argparse.Namespace) -> tuple[hetsim.PlanResult, dict[str, int]]:
    """The plan and its final progress counts (total, screened, simulated, beaten, ...)."""
    final: dict[str, int] = {}
    result = hetsim.plan(
        path,
        backend=args.backend,
        workers=args.workers,
        progress=progress_printer(path.name, final),
    )
    return result, final


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--repeat", type=int, default=3, help="baseline simulations (best of)")
    parser.add_argument(
        "--skip-default", action="store_true", help="leave out the plan of the default scenario"
    )
    args = parser.parse_args()

    sim_s, sim_requests = time_baseline(args.repeat)
    default_path = default_scenario_path()
    screens = {
        default_path.name: time_screen(default_path),
        PLAN_SMALL.name: time_screen(PLAN_SMALL),
    }
    plans = {PLAN_SMALL.name: time_plan(PLAN_SMALL, args)}
    if not args.skip_default:
        plans[default_path.name] = time_plan(default_path, args)

    print(f"baseline: one simulate() of plan-small ({sim_requests:,} requests) {sim_s:.3f} s")
    print()
    print(f"{'screen':<22}{'cands':>7}{'valid':>7}{'enum s':>9}{'screen s':>10}"
          f"{'valid/s':>9}{'sim-eq':>8}")  # fmt: skip
    for name, s in screens.items():
        print(
            f"{name:<22}{s['candidates']:>7}{s['valid']:>7}{s['enumerate_s']:>9.2f}"
            f"{s['screen_s']:>10.2f}{s['valid'] / s['wall_s']:>9.1f}{s['wall_s'] / sim_s:>8.2f}"
        )
    print()
    print(f"{'plan':<22}{'cands':>7}{'simd':>6}{'sims':>6}{'wall s':>9}{'simd/s':>8}"
          f"{'sims/s':>8}{'sim-eq':>8}  backend")  # fmt: skip
    for name, (p, final) in plans.items():
        simulated = final["simulated"]
        print(
            f"{name:<22}{len(p.results):>7}{simulated:>6}{p.simulations:>6}{p.wall_s:>9.2f}"
            f"{simulated / p.wall_s:>8.2f}{p.simulations / p.wall_s:>8.2f}"
            f"{p.wall_s / sim_s:>8.1f}  {p.backend} x{p.workers}"
        )
        verdicts = ", ".join(f"{k} {v}" for k, v in p.counts().items() if v)
        print(f"{'':<22}verdicts: {verdicts}")
        print(f"{'':<22}best: {p.best.label if p.best else None}")
    print()
    print("ratios (against the baseline simulation, same run)")
    for name, s in screens.items():
        per = s["wall_s"] / max(s["valid"], 1)
        print(f"  {name}: enumerate + screen one candidate = {per / sim_s:.4f} simulations")
    for name, (p, _) in plans.items():
        per = p.wall_s / max(p.simulations, 1)
        line = (
            f"  {name}: plan = {p.wall_s / sim_s:.1f} simulations of wall for {p.simulations} "
            f"run; {per / sim_s:.2f} of wall per simulation run"
        )
        if name == PLAN_SMALL.name:
            # the plan's simulations are of the baseline's scenario, so this reads as the
            # parallel speed-up over simulating one after another (ideal: the worker count)
            line += f" (effective parallelism {sim_s / per:.2f} on {p.workers} workers)"
        print(line)


if __name__ == "__main__":
    main()
