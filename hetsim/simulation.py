"""``hetsim.simulate``: run a scenario and get what every request experienced."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from hetsim.checks import load_scenario
from hetsim.errors import InputError
from hetsim.metrics import (
    EnergyFigures,
    LifecycleCounts,
    PoolUtilisation,
    RunSummary,
    add_latency_columns,
    summarise,
    tier_figures,
)
from hetsim.outputs import staged
from hetsim.perf import provenance
from hetsim.sim.engine import Simulation
from hetsim.sim.output import InstanceFacts, RunFacts
from hetsim.spec.resolve import Scenario
from hetsim.workload import ReadCounts, RequestChunk, count_requests, sized

__all__ = ["SimulationResult", "simulate"]


@dataclass
class SimulationResult:
    """One run: ``requests`` (one row per request), ``timeseries`` (per instance, sampled),
    ``links`` (per link, sampled) and ``summary`` (the figures of summary.json)."""

    scenario: Scenario
    requests: pd.DataFrame
    timeseries: pd.DataFrame
    links: pd.DataFrame
    summary: RunSummary
    lifecycle: pd.DataFrame | None = None  # one row per KV state transition

    def to_frame(self) -> pd.DataFrame:
        return self.requests

    def write(self, out: str | Path, csv: bool = False) -> list[Path]:
        """requests.parquet (and .csv), timeseries.parquet (instances and links), summary.json,
        written whole into ``out`` (see :mod:`hetsim.outputs`): files an earlier run wrote there
        and this one does not are removed."""
        with staged(out) as stage:
            written = self._write_files(stage.dir, csv)
        return stage.final(written)

    def _write_files(self, out: Path, csv: bool) -> list[Path]:
        written = []
        # one time-series file: instance rows (kind "instance") and link rows (kind "link")
        series = pd.concat(
            [
                self.timeseries.assign(kind="instance"),
                self.links.rename(columns={"link": "instance_name"}).assign(kind="link"),
            ],
            ignore_index=True,
        )
        for name, frame in (("requests", self.requests), ("timeseries", series)):
            path = out / f"{name}.parquet"
            frame.to_parquet(path, index=False)
            written.append(path)
        if self.lifecycle is not None:
            path = out / "lifecycle.parquet"
            self.lifecycle.to_parquet(path, index=False)
            written.append(path)
        if csv:
            path = out / "requests.csv"
            self.requests.to_csv(path, index=False)
            written.append(path)
        path = out / "summary.json"
        path.write_text(json.dumps(self.summary.to_json(), indent=2) + "\n")
        written.append(path)
        return written


def simulate(
    scenario: Scenario | str | Path,
    overrides: list[str] | None = None,
    *,
    requests: list[RequestChunk] | None = None,
    max_requests: int | None = None,
    seed: int | None = None,
    sample_interval: float | None = 1.0,
    progress: Callable[[int, int], None] | None = None,
    heartbeat: Callable[[int, int, float], None] | None = None,
    heartbeat_s: float = 10.0,
    fast_forward: bool = True,
) -> SimulationResult:
    """Simulate a scenario (an object or a file, with ``--set``-style overrides).

    ``requests`` replaces the scenario's workload; ``max_requests`` (at least 1) makes a
    synthetic or closed-loop workload send that many and stops a trace's replay after that many
    rows; ``seed`` overrides the scenario's seed. Same scenario and seed: identical results.
    ``progress(done, total)`` is called as requests end (``total`` counts the workload).
    ``heartbeat(done, total, simulated_s)`` is called every ``heartbeat_s`` of wall time, so
    a long run shows progress even while no request ends (the CLI prints it when stderr is not
    a terminal). ``sample_interval``: seconds between time-series samples; None records none.
    The series is bounded in points: on a long run the interval doubles as it fills
    (``summary.sample_interval_s`` is the one used). Absurd horizons stop with an
    :class:`InputError` naming the cause (:mod:`hetsim.sim.horizon`).
    ``fast_forward`` (the default) takes a steady decode batch's steps several to an event,
    as it does a long prompt's chunks while nothing else waits, and a KV transfer alone on
    the network to one event, with the same results; False simulates one event per step and
    two per transfer (to check that).
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides or [])
    elif overrides:
        raise ValueError("overrides apply to scenario files; pass a path or use load_scenario")
    if max_requests is not None and max_requests < 1:
        raise InputError(
            "a run needs at least one request",
            field="--requests",
            value=str(max_requests),
            allowed="an integer >= 1",
        )
    if seed is not None and seed < 0:
        # numpy's generators take no negative seed; the scenario's `seed` field has the same rule
        raise InputError(
            "a seed is never negative", field="--seed", value=seed, allowed="an integer >= 0"
        )
    report = beat = None
    if progress is not None or heartbeat is not None:
        total = _total(scenario, requests, max_requests, seed)
    if progress is not None:

        def report(done: int) -> None:
            progress(done, total)

    if heartbeat is not None:

        def beat(done: int, now: float) -> None:
            heartbeat(done, total, now)

    sim = Simulation(
        scenario,
        requests,
        seed=seed,
        max_requests=max_requests,
        sample_interval=sample_interval,
        progress=report,
        heartbeat=beat,
        heartbeat_s=heartbeat_s,
        fast_forward=fast_forward,
    )
    out = sim.run()
    reqs = add_latency_columns(out.requests)
    warmup = scenario.spec.workload.warmup_requests
    if warmup and warmup >= len(out.requests):
        raise InputError(
            f"the first {warmup} requests are warm-up, which leaves none to measure out of the "
            f"{len(out.requests)} simulated",
            file=scenario.path,
            field="workload.warmup_requests",
            value=str(warmup),
            allowed="fewer than the requests simulated, e.g. --set workload.warmup_requests=0",
        )
    # by arrival rank, not id: a trace's ids need not follow arrival order
    reqs["warmup"] = reqs["arrival_s"].rank(method="first") <= warmup
    measured = reqs[~reqs["warmup"]] if warmup else reqs
    summary = _run_summary(scenario, reqs, measured, out.facts, sim)
    return SimulationResult(scenario, reqs, out.timeseries, out.links, summary, out.lifecycle)


def _total(
    scenario: Scenario,
    requests: list[RequestChunk] | None,
    max_requests: int | None,
    seed: int | None,
) -> int:
    """How many requests the run sends (what a progress bar counts up to)."""
    if requests is not None:
        total = sum(len(c) for c in requests)
    else:
        run_seed = scenario.spec.seed if seed is None else seed
        workload = sized(scenario.spec.workload, max_requests)
        total = count_requests(
            workload, scenario.base_dir, run_seed, max_context=scenario.model.max_context
        )
    return total if max_requests is None else min(total, max_requests)


def _run_summary(
    scenario: Scenario,
    reqs: pd.DataFrame,
    measured: pd.DataFrame,
    facts: RunFacts,
    sim: Simulation,
) -> RunSummary:
    """The one place a run's summary is assembled: request figures over the measured rows,
    run facts from the simulator."""
    figures = summarise(measured, scenario.spec.sla, scenario.cost_per_hour())
    pools = scenario.spec.pools
    utilisation = _utilisation(facts)
    tdp_w = {p.name: p.total_devices * scenario.profiles[p.name].tdp.value for p in pools}
    return RunSummary(
        **{f.name: getattr(figures, f.name) for f in fields(figures)},
        kv_blocks_leaked=facts.kv_blocks_leaked,
        dropped_rows=_dropped_rows(sim.read_counts),
        warmup_requests=int(reqs["warmup"].sum()),
        provenance={
            p.name: str(provenance(scenario.profiles[p.name], runtime=p.runtime)) for p in pools
        },
        utilisation=utilisation,
        faults=facts.faults,
        silent_corruptions=int(reqs["corrupted"].sum()),
        retries=int(reqs["retries"].sum()),
        recomputed_tokens=int(reqs["recomputed_tokens"].sum()),
        double_residency_block_s=_double_residency(scenario, reqs),
        lifecycle=LifecycleCounts(sim.protocol, facts.lifecycle_transitions),
        scenario=scenario.name,
        seed=sim.seed,
        wall_s=facts.wall_s,
        events=facts.events,
        simulated_s=facts.end_time_s,
        # time-average requests in the system, from first arrival to last departure
        occupancy_mean=facts.occupancy_area
        / max(facts.last_departure_s - facts.first_arrival_s, 1e-12),
        sample_interval_s=sim.sampler.interval if sim.sample_interval else None,
        kv_tiers=tier_figures(facts, int(reqs["input_tokens"].sum())),
        price_basis=scenario.spec.costs.basis_line(scenario.profiles.values()),
        energy=EnergyFigures.of(
            utilisation,
            {k: w for k, w in tdp_w.items() if k in utilisation},
            scenario.spec.costs.idle_power,
            figures.span_s,
            figures.throughput_tokens_per_s * figures.span_s,
            *_measured_power(facts),
        ),
    )


def _measured_power(facts: RunFacts) -> tuple[dict[str, float], dict[str, str]]:
    """For pools whose steps booked measured energy: their busy energy inside the measured
    window over that window (W, all the pool's devices; :func:`_utilisation` counts busy time
    the same way), and the power source their step model names."""
    span = facts.window_s
    busy_w: dict[str, float] = {}
    sources: dict[str, str] = {}
    for inst in facts.instances:
        if inst.window_busy_energy_j is None or inst.power_source is None:
            continue
        watts = inst.window_busy_energy_j / span if span > 0 else 0.0
        busy_w[inst.pool] = busy_w.get(inst.pool, 0.0) + watts
        sources[inst.pool] = inst.power_source
    return busy_w, sources


def _dropped_rows(counts: ReadCounts) -> dict[str, int]:
    """Trace rows read but not replayed, by reason (only reasons that dropped any): a row
    never silently leaves the summary."""
    reasons = {
        "zero prompt or output tokens": counts.failed,
        "unreadable (on_bad_row: skip)": counts.bad_rows,
        "earlier than the row before (on_bad_row: skip)": counts.out_of_order,
        "outside time_window": counts.outside_window,
        "sampled out (sample)": counts.sampled_out,
        "prompt + output over the model's context (max_position_embeddings)": counts.over_context,
        "session turns never sent (the turn before had not ended when the run stopped)": (
            counts.turns_unsent
        ),
    }
    return {reason: n for reason, n in reasons.items() if n}


def _double_residency(scenario: Scenario, requests: pd.DataFrame) -> float:
    """Block-seconds during which a request's KV is allocated on both sides of the boundary:
    the producer's copy while the consumer's reservation fills (every transfer)."""
    prefill = [p for p in scenario.spec.pools if p.role == "prefill"]
    if not prefill or requests.empty:
        return 0.0
    page = prefill[0].kv_page_tokens
    moving = (requests["transfer_end_s"] - requests["transfer_start_s"]).fillna(0.0)
    blocks = -(-requests["input_tokens"] // page)
    return float((moving * blocks).sum())


def _utilisation(facts: RunFacts) -> dict[str, PoolUtilisation]:
    """Busy time inside the measured window over that window, so warm-up steps never count
    against a shorter span (each instance's share lies in [0, 1])."""
    span = facts.window_s
    by_pool: dict[str, list[InstanceFacts]] = {}
    for inst in facts.instances:
        by_pool.setdefault(inst.pool, []).append(inst)
    out = {}
    for pool, insts in by_pool.items():
        busy = sum(i.window_busy_s / span if span > 0 else 0.0 for i in insts)
        out[pool] = PoolUtilisation(
            busy=busy / len(insts),
            instances=len(insts),
            peak_kv=max(0.0, *(i.peak_blocks / max(i.capacity_blocks, 1) for i in insts)),
            held_block_s=float(sum(i.held_block_s for i in insts)),
            reserved_block_s=float(sum(i.reserved_block_s for i in insts)),
        )
    return out
