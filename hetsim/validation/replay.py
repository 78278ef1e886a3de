"""Replay a user's benchmark run through the scenario that describes its deployment, and say how
far each simulated request is from the measured one.

A run with send times (or a rate-``inf`` burst) is replayed request for request: the same
arrivals, the same prompt and output lengths, so each request is compared with itself. A
``max_concurrency`` run is replayed as a closed loop of that many clients that send the run's
requests in the file's order (``order: trace``), as the benchmark clients do, so each request is
compared with itself there too; when each was sent is the simulation's own.

Errors are relative and signed, ``simulated / measured - 1`` (positive: hetsim predicts slower).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hetsim.checks import scenario_from_dict
from hetsim.errors import InputError
from hetsim.simulation import simulate
from hetsim.spec.resolve import Scenario
from hetsim.validation.bench import Arrivals, BenchRun
from hetsim.workload import RequestChunk

__all__ = [
    "BenchComparison",
    "LATENCIES",
    "compare",
    "error_stats",
    "in_flight",
    "replay",
    "validate_bench",
]

#: the latencies compared, by their column in both frames
LATENCIES = {"TTFT": "ttft_s", "TPOT": "tpot_s", "ITL": "itl_s", "E2E": "e2e_s"}


@dataclass(frozen=True)
class BenchComparison:
    """Measured against simulated: ``requests`` holds both sides per request (``meas_*``,
    ``sim_*``, ``err_*``); ``measured`` and ``simulated`` are the raw frames."""

    run: BenchRun
    measured: pd.DataFrame
    simulated: pd.DataFrame
    requests: pd.DataFrame

    def error_table(self) -> pd.DataFrame:
        """One row per latency: per-request |error| (median, p90), signed median, and the
        error of the distribution's mean, p50 and p90 (percent); ``unmatched``: measured
        requests the simulation did not complete (left out of the errors, so they are
        counted here rather than dropped)."""
        rows = []
        for name, col in LATENCIES.items():
            meas, sim = self.measured[col].dropna(), self._sim(col)
            if meas.empty or sim.empty:
                continue
            row = {"latency": name, "requests": len(meas)}
            joined = self.requests
            row["unmatched"] = int(
                (joined[f"meas_{col}"].notna() & joined[f"sim_{col}"].isna()).sum()
            )
            row.update(error_stats(joined[f"err_{col}"]))
            for stat, f in (("mean", np.mean), ("p50", np.median), ("p90", _p90)):
                row[f"{stat} err %"] = 100.0 * (f(sim) / f(meas) - 1.0)
            rows.append(row)
        return pd.DataFrame(rows)

    def _sim(self, col: str) -> pd.Series:
        # the simulator has TPOT but no per-gap ITL: a request's mean ITL is its TPOT
        source = "tpot_s" if col == "itl_s" else col
        return self.simulated[source].dropna()

    def by_load(self, bins: int = 4) -> pd.DataFrame:
        """Median |error| per latency against the requests in flight when each arrived (empty
        for a run with one load level: a closed loop keeps its concurrency in flight, a burst
        sends every request at once)."""
        arrivals = self.measured["arrival_s"]
        if not arrivals.notna().all() or arrivals.nunique() < 2:
            return pd.DataFrame()
        r = self.requests.assign(load=in_flight(self.measured))
        edges = np.unique(np.quantile(r["load"], np.linspace(0, 1, bins + 1)))
        r["load_bin"] = pd.cut(r["load"], edges, include_lowest=True)
        cols = {f"{n} med |e| %": f"err_{c}" for n, c in LATENCIES.items() if n != "ITL"}
        out = r.groupby("load_bin", observed=True).agg(
            requests=("load", "size"),
            **{k: (v, lambda s: 100.0 * s.abs().median()) for k, v in cols.items()},
        )
        return out.reset_index()


def _p90(values: pd.Series) -> float:
    return float(np.percentile(values, 90))


def error_stats(errors: pd.Series) -> dict[str, float]:
    """Median and p90 of |error| and the signed median, in percent, over defined values."""
    e = errors.dropna()
    if e.empty:
        return {"med |e| %": np.nan, "p90 |e| %": np.nan, "signed med %": np.nan}
    return {
        "med |e| %": 100.0 * float(e.abs().median()),
        "p90 |e| %": 100.0 * float(np.percentile(e.abs(), 90)),
        "signed med %": 100.0 * float(e.median()),
    }


def in_flight(measured: pd.DataFrame) -> np.ndarray:
    """Requests sent but not finished when each request arrived (its own included)."""
    start = measured["arrival_s"].to_numpy()
    end = start + measured["e2e_s"].to_numpy()
    order = np.sort(end)
    started = np.searchsorted(np.sort(start), start, side="right")
    ended = np.searchsorted(order, start, side="right")
    return started - ended


def replay(run: BenchRun, scenario: Scenario, seed: int | None = None) -> pd.DataFrame:
    """Simulate ``run``'s requests through ``scenario`` (its workload replaced); the simulated
    requests, one row each."""
    if run.arrivals is Arrivals.CLOSED_LOOP:
        return _closed_loop(run, scenario, seed)
    r = run.requests
    chunk = RequestChunk(
        request_id=r["request_id"].to_numpy(np.int64),
        arrival_s=r["arrival_s"].to_numpy(float),
        input_tokens=r["input_tokens"].to_numpy(np.int64),
        output_tokens=r["output_tokens"].to_numpy(np.int64),
    )
    scenario = _no_warmup(scenario)
    return simulate(scenario, requests=[chunk], seed=seed, sample_interval=None).requests


def _no_warmup(scenario: Scenario) -> Scenario:
    """Every measured request is compared, so none is a simulated warm-up."""
    if not scenario.spec.workload.warmup_requests:
        return scenario
    data = scenario.spec.model_dump(mode="json", exclude_unset=True)
    data["workload"]["warmup_requests"] = 0
    return _with_profiles(scenario_from_dict(data, path=scenario.path), scenario)


def _with_profiles(new: Scenario, old: Scenario) -> Scenario:
    # profiles the caller replaced (an end-to-end calibration) survive a re-resolve
    new.profiles.update(old.profiles)
    return new


def _closed_loop(run: BenchRun, scenario: Scenario, seed: int | None) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.jsonl"
        run.write_trace(trace)
        data = scenario.spec.model_dump(mode="json", exclude_unset=True)
        data["workload"] = run.workload(str(trace))
        try:
            posed = scenario_from_dict(data, path=scenario.path)
        except InputError as exc:
            raise InputError(
                f"the scenario cannot take the run's closed loop: {exc.message}",
                file=scenario.path,
                field=exc.field,
            ) from None
        posed = _with_profiles(posed, scenario)
        return simulate(posed, seed=seed, sample_interval=None).requests


def compare(run: BenchRun, simulated: pd.DataFrame) -> BenchComparison:
    """Join measured and simulated requests by id and compute relative errors. A closed loop's
    ids are its issue order on both sides (the client sends the file's requests in order, and
    the replay gives its k-th request the file's k-th lengths), so its requests join too;
    which client sent each may differ, so its arrival times are the simulation's own."""
    measured = run.requests
    done = simulated[simulated["status"] == "completed"] if "status" in simulated else simulated
    sim = done.set_index("request_id")
    joined = measured.set_index("request_id")[list(LATENCIES.values())].add_prefix("meas_")
    for col in LATENCIES.values():
        source = "tpot_s" if col == "itl_s" else col
        joined[f"sim_{col}"] = sim[source].reindex(joined.index)
        joined[f"err_{col}"] = joined[f"sim_{col}"] / joined[f"meas_{col}"] - 1.0
    joined["input_tokens"] = measured.set_index("request_id")["input_tokens"]
    joined["output_tokens"] = measured.set_index("request_id")["output_tokens"]
    return BenchComparison(run, measured, done, joined.reset_index())


def validate_bench(run: BenchRun, scenario: Scenario, seed: int | None = None) -> BenchComparison:
    """Replay ``run`` through ``scenario`` and compare: :func:`replay` then :func:`compare`."""
    return compare(run, replay(run, scenario, seed))
