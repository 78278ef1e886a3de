"""End-to-end calibration: fit a pool's few free parameters to users' benchmark runs.

The parameters are the profile's roofline efficiencies ``compute`` and ``memory`` and its
per-step ``step_overhead`` (:data:`~hetsim.perf.calibration.END_TO_END_PARAMETERS`). Each run's
requests are split at random (seeded) into a training half and a held-out half; every
candidate is scored by replaying the WHOLE run (the held-out requests load the engine too) and
reading the error of the training requests only; the held-out error is reported before and after
the fit and written into the calibration. The loss is the median |log(simulated / measured)| of
TTFT plus that of TPOT, averaged over the runs: symmetric in over- and under-prediction, and
robust to the few requests whose TTFT is all queueing.

What one run can and cannot tell apart: at one load level a decode step's memory time and its
fixed overhead trade off, so different (memory, step_overhead) pairs can fit one run equally
well (a run hetsim itself produced with memory 0.55 and 4 ms is fitted as well by 0.92 and
19 ms). The held-out error says the fit predicts this deployment at this load; runs at several
loads (several request rates or concurrencies of one deployment, fitted together) are what pin
the parameters down. The fitted values are a fit, labelled so, never a device measurement.

The search is a coordinate search in log space (each parameter multiplied and divided by a
factor that halves in the exponent when no move helps): the simulator is not differentiable,
and a replay of a few hundred requests takes a fraction of a second, so a few dozen replays fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from hetsim.errors import InputError
from hetsim.perf.calibration import (
    END_TO_END,
    END_TO_END_PARAMETERS,
    EndToEndCalibration,
    efficiency_figures,
)
from hetsim.spec.resolve import Scenario
from hetsim.validation.bench import BenchRun, describe
from hetsim.validation.replay import BenchComparison, compare, error_stats, replay

__all__ = [
    "FitResult",
    "calibrated_profile",
    "fit_end_to_end",
    "split_requests",
    "with_calibration",
]

#: bounds of the search: efficiencies are fractions of the datasheet peak; the step overhead
#: between 0.1 ms and 100 ms covers CUDA-graph decode steps to eager Python-bound ones
BOUNDS = {"compute": (0.02, 1.0), "memory": (0.02, 1.0), "step_overhead": (1e-4, 0.1)}
#: the first multiplicative move, and the smallest before the search stops
FIRST_STEP, LAST_STEP = 2.0, 1.02

#: replays one fit may spend (each simulates every run once)
MAX_REPLAYS = 60


@dataclass(frozen=True)
class FitResult:
    """The calibration, and the comparisons of every run before and after it."""

    calibration: EndToEndCalibration
    before: list[BenchComparison]
    after: list[BenchComparison]
    evaluations: int

    def held_out_table(self) -> pd.DataFrame:
        """Held-out per-request error of TTFT, TPOT and E2E, default vs fitted, per run."""
        rows = []
        for label, comps in (("default", self.before), ("fitted", self.after)):
            for comp in comps:
                held = comp.requests[comp.requests["held_out"]]
                for name, col in (("TTFT", "ttft_s"), ("TPOT", "tpot_s"), ("E2E", "e2e_s")):
                    stats = error_stats(held[f"err_{col}"])
                    rows.append(
                        {
                            "profile": label,
                            "run": comp.run.path.name,
                            "latency": name,
                            "requests": int(held[f"err_{col}"].notna().sum()),
                            **stats,
                        }
                    )
        return pd.DataFrame(rows)


def split_requests(n: int, held_out: float, seed: int) -> np.ndarray:
    """A boolean mask: True for the requests held out (``round(n * held_out)`` of them)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(round(n * held_out))]] = True
    return mask


def with_calibration(
    scenario: Scenario, cal: EndToEndCalibration, pools: Sequence[str]
) -> Scenario:
    """``scenario`` whose ``pools`` run on the calibrated profile; refused for a pool whose ops
    something else prices (the calibration's efficiencies would not take effect there)."""
    _priced_by_efficiencies(scenario, list(pools))
    profiles = dict(scenario.profiles)
    for name in pools:
        profiles[name] = cal.apply(profiles[name])
    return replace(scenario, profiles=profiles)


def _pools(scenario: Scenario, pool: str | None) -> tuple[list[str], str]:
    names = [p.name for p in scenario.spec.pools]
    if pool is not None and pool not in names:
        raise InputError("no such pool", field="--pool", value=pool, allowed=names)
    chosen = scenario.profiles[pool or names[0]].name
    if pool is None and len({scenario.profiles[n].name for n in names}) > 1:
        raise InputError(
            "the scenario's pools run on different accelerators: name the one to calibrate",
            field="--pool",
            allowed=names,
        )
    fitted = [n for n in names if scenario.profiles[n].name == chosen]
    _priced_by_efficiencies(scenario, fitted)
    return fitted, chosen


def _priced_by_efficiencies(scenario: Scenario, pools: list[str]) -> None:
    """The fit moves the profile's efficiencies, which price a pool's ops only where nothing
    else does: a named runtime's measured tables or a calibration table would take precedence,
    so the fit would score one pricing and write another, and an applied calibration would
    change only part of the pricing."""
    for name in pools:
        pool = next(p for p in scenario.spec.pools if p.name == name)
        profile = scenario.profiles[name]
        if pool.runtime is not None:
            raise InputError(
                "this pool's ops are priced by measured kernel tables (runtime), which an "
                "end-to-end fit of efficiencies cannot move",
                file=scenario.path,
                field=f"pools.{name}.runtime",
                value=pool.runtime,
                allowed="a pool without runtime: (priced by the profile's efficiencies)",
            )
        if profile.calibration:
            raise InputError(
                "this accelerator's ops are priced by its calibration table, which an "
                "end-to-end fit of efficiencies cannot move",
                file=scenario.path,
                field=f"accelerator {profile.name}: calibration",
                value=profile.calibration,
                allowed="a profile without calibration:",
            )


def _score(comps: Sequence[BenchComparison], held_out: Sequence[np.ndarray]) -> float:
    total = 0.0
    for comp, held in zip(comps, held_out, strict=True):
        train = comp.requests[~held]
        for col in ("ttft_s", "tpot_s"):
            ratio = (train[f"sim_{col}"] / train[f"meas_{col}"]).dropna()
            ratio = ratio[ratio > 0]
            # a measured request the simulation did not complete counts as 10x off, so a
            # candidate cannot score better by failing the slowest requests
            missed = int((train[f"meas_{col}"].notna() & train[f"sim_{col}"].isna()).sum())
            logs = np.concatenate([np.abs(np.log(ratio.to_numpy())), np.full(missed, np.log(10))])
            total += float(np.median(logs)) if len(logs) else 10.0
    return total / max(len(comps), 1)


def _mark(comps: list[BenchComparison], held_out: Sequence[np.ndarray]) -> list[BenchComparison]:
    out = []
    for comp, held in zip(comps, held_out, strict=True):
        out.append(replace(comp, requests=comp.requests.assign(held_out=held)))
    return out


def fit_end_to_end(
    runs: Sequence[BenchRun],
    scenario: Scenario,
    pool: str | None = None,
    held_out: float = 0.5,
    seed: int = 0,
    max_evaluations: int = MAX_REPLAYS,
    progress: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Fit ``pool``'s profile (the scenario's only accelerator when None) to ``runs``."""
    if not runs:
        raise InputError("no benchmark run to fit", field="--bench", allowed="one or more files")
    if not 0 < held_out < 1:
        raise InputError("not a share", field="--held-out", value=held_out, allowed="in (0, 1)")
    pools, accelerator = _pools(scenario, pool)
    default = _defaults(scenario.profiles[pools[0]])
    masks = [split_requests(len(r.requests), held_out, seed + i) for i, r in enumerate(runs)]

    # the search scores the defaults and its best already: the before/after tables reuse them
    replays: dict[tuple[tuple[str, float], ...], list[BenchComparison]] = {}

    def evaluate(params: dict[str, float]) -> list[BenchComparison]:
        key = tuple(sorted(params.items()))
        comps = replays.get(key)
        if comps is None:
            cal = EndToEndCalibration(accelerator, params, default, [])
            posed = with_calibration(scenario, cal, pools)
            comps = replays[key] = [compare(run, replay(run, posed)) for run in runs]
        return comps

    best, evaluations = _search(
        default, lambda p: _score(evaluate(p), masks), max_evaluations, progress
    )
    before = _mark(evaluate(default), masks)
    after = _mark(evaluate(best), masks)
    data = [
        {
            **_source(run),
            "train": int((~m).sum()),
            "held_out": int(m.sum()),
            "held_out_ids": run.requests["request_id"][m].astype(int).tolist(),
        }
        for run, m in zip(runs, masks, strict=True)
    ]
    cal = EndToEndCalibration(accelerator, best, default, data)
    result = FitResult(cal, before, after, evaluations)
    errors = _errors_json(result.held_out_table())
    meta = {
        "pools": pools,
        "seed": seed,
        "held_out_share": held_out,
        "loss": "median |log ratio| of TTFT + TPOT over training requests",
        "evaluations": evaluations,
    }
    return replace(result, calibration=replace(cal, errors=errors, meta=meta))


def _defaults(profile: object) -> dict[str, float]:
    eff = profile.efficiency  # type: ignore[attr-defined]
    return {name: float(getattr(eff, name).value) for name in END_TO_END_PARAMETERS}


def _source(run: BenchRun) -> dict[str, object]:
    info = describe(run)
    return {k: info[k] for k in ("source", "sha256", "format", "model", "requests")}


def _errors_json(table: pd.DataFrame) -> dict[str, object]:
    out: dict[str, object] = {}
    for (profile, run), rows in table.groupby(["profile", "run"]):
        out.setdefault(str(profile), {})[str(run)] = {
            r["latency"]: {
                k: round(float(r[k]), 2) for k in ("med |e| %", "p90 |e| %", "signed med %")
            }
            for _, r in rows.iterrows()
        }
    return out


def _search(
    start: dict[str, float],
    loss: Callable[[dict[str, float]], float],
    budget: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, float], int]:
    """Coordinate search in log space within :data:`BOUNDS`; (best parameters, evaluations)."""
    best = {k: min(max(v, BOUNDS[k][0]), BOUNDS[k][1]) for k, v in start.items()}
    best_loss, used, step = loss(best), 1, FIRST_STEP
    while step >= LAST_STEP and used < budget:
        improved = False
        for name in END_TO_END_PARAMETERS:
            for factor in (step, 1.0 / step):
                if used >= budget:
                    break
                trial = dict(best)
                lo, hi = BOUNDS[name]
                trial[name] = min(max(best[name] * factor, lo), hi)
                if math.isclose(trial[name], best[name]):
                    continue
                value, used = loss(trial), used + 1
                if progress is not None:
                    progress(used, budget)
                if value < best_loss - 1e-9:
                    best, best_loss, improved = trial, value, True
                    break
        if not improved:
            step = math.sqrt(step)
    return best, used


def calibrated_profile(cal: EndToEndCalibration, path: str | Path) -> Path:
    """Write the accelerator's profile with the fitted efficiencies as ``path`` (a YAML file
    whose stem is the new profile's name), so a pool uses it as ``accelerator: <path>``. Every
    other figure is the bundled profile's, as written there."""
    import yaml

    from hetsim.spec.hardware import available_profiles

    path = Path(path)
    base = available_profiles().get(cal.accelerator)
    if base is None:
        raise InputError(
            "the calibrated accelerator has no profile file to copy",
            field="accelerator",
            value=cal.accelerator,
            allowed=sorted(available_profiles()),
        )
    doc = yaml.safe_load(base.read_text())
    doc["name"] = path.stem
    doc["display_name"] = f"{doc.get('display_name', cal.accelerator)} (end-to-end calibrated)"
    doc["efficiency"].update(efficiency_figures(cal.fitted, cal.data))
    doc["efficiency_source"] = END_TO_END
    doc.pop("calibration", None)
    tables = doc.get("measured_tables")
    if isinstance(tables, str) and tables.endswith(".npz") and not Path(tables).is_absolute():
        # a file next to the copied profile: the new one lives elsewhere
        doc["measured_tables"] = str((base.parent / tables).resolve())
    runs = ", ".join(str(d.get("source")) for d in cal.data)
    doc["notes"] = (
        f"{cal.accelerator} with compute, memory and step_overhead fitted end to end "
        f"(provenance {cal.provenance}) to: {runs}. " + str(doc.get("notes") or "")
    ).strip()
    header = f"# {path.stem}: written by `hetsim calibrate --bench` from {base.name}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=100))
    except OSError as exc:
        raise InputError(f"cannot write the profile ({exc.strerror or exc})", file=path) from None
    return path
