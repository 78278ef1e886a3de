"""From request rows to the figures people compare: percentiles, attainment, throughput, cost.

Definitions (those of DistServe, vLLM and SGLang benchmarks):

* TTFT = first output token − arrival; TPOT = (finish − first token) / (output tokens − 1), for
  requests with more than one output token; E2E = finish − arrival.
* attainment = share of *all* requests (failed ones count as misses) that completed with TTFT and
  TPOT within the SLA bounds (a one-token answer has no TPOT and meets that bound trivially).
* throughput = output tokens of completed requests per second, from the first arrival to the
  last finish; cost per million tokens = cost per hour × that span / (output tokens / 10⁶).
* the cost and energy metrics are defined once, below (:func:`usd_per_million_tokens`,
  :func:`requests_per_usd`, :func:`requests_per_kwh`, :func:`tokens_per_joule`); a summary's
  are over its finite run, the planner's at the goodput (its rate and its tokens per request).
* energy = Σ pools devices × board power (tdp) × (idle share + (1 − idle share) × busy share)
  × span: device power only (no host, no PUE), busy-weighted, with idle devices drawing
  ``costs.idle_power`` of their tdp (an assumption); tokens per joule = output tokens / energy.
  A pool whose kernels' board power was measured (:attr:`EnergyFigures.power_source` names the
  table set) has its busy part, ``tdp × busy share``, replaced by the energy its steps drew over
  the measured window per second of it (each step: its measured ops at their measured power,
  the rest of the step at tdp); its idle part is the same.
* acceptance length (speculative decoding) = tokens accepted per sequence per decode step, 1 +
  accepted drafts, over the completed requests' speculative steps (vLLM's and SGLang's "mean
  acceptance length"; counted before a sequence's last step is clipped at its output length).
* prefix reuse (requests with block hashes): *reusable* prompt tokens lead the prompt with
  blocks computed anywhere in the cluster before (``trace stats``' prefix reuse, within the
  simulated requests); each is *hit* (served by a tier of the serving instance's cascade), *lost
  to routing* (another instance's cascade held it when the request was routed) or *lost to
  eviction* (no cascade held it any more).
* per KV tier: occupancy as a share of the tier's capacity, hit tokens as a share of all prompt
  tokens looked up, KV bytes loaded from it and written into it, blocks it evicted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hetsim.perf.step import TDP_POWER
from hetsim.sim.output import RunFacts
from hetsim.spec.scenario import SLASpec

__all__ = [
    "add_latency_columns",
    "percentiles",
    "attainment",
    "meets_sla",
    "summarise",
    "LatencyStats",
    "SLABounds",
    "PoolUtilisation",
    "LifecycleCounts",
    "PrefixReuse",
    "RunSummary",
    "TierFigures",
    "EnergyFigures",
    "usd_per_million_tokens",
    "requests_per_usd",
    "requests_per_kwh",
    "tokens_per_joule",
    "tier_figures",
]

PERCENTILES = (50, 90, 99)


def add_latency_columns(requests: pd.DataFrame) -> pd.DataFrame:
    """ttft_s, tpot_s and e2e_s from the timestamps (NaN where undefined)."""
    r = requests
    r["ttft_s"] = r["first_token_s"] - r["arrival_s"]
    gaps = (r["output_tokens"] - 1).where(r["output_tokens"] > 1)
    r["tpot_s"] = (r["finish_s"] - r["first_token_s"]) / gaps
    r["e2e_s"] = r["finish_s"] - r["arrival_s"]
    return r


@dataclass(frozen=True)
class LatencyStats:
    """Mean and percentiles of one latency over the completed requests, in seconds (None when
    no request defines it, e.g. TPOT of one-token answers)."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


def percentiles(values: pd.Series) -> LatencyStats:
    v = values.dropna().to_numpy()
    if v.size == 0:
        return LatencyStats(None, None, None, None)
    p50, p90, p99 = (float(q) for q in np.percentile(v, PERCENTILES))
    return LatencyStats(float(v.mean()), p50, p90, p99)


def meets_sla(requests: pd.DataFrame, sla: SLASpec) -> pd.Series:
    ok_ttft = requests["ttft_s"] <= sla.ttft
    ok_tpot = requests["tpot_s"].isna() | (requests["tpot_s"] <= sla.tpot)
    return (requests["status"] == "completed") & ok_ttft & ok_tpot


def attainment(requests: pd.DataFrame, sla: SLASpec) -> float:
    if len(requests) == 0:
        return math.nan
    return float(meets_sla(requests, sla).mean())


@dataclass(frozen=True)
class SLABounds:
    """The SLA a run was scored against (SI units)."""

    ttft_s: float
    tpot_s: float
    percentile: float
    attainment_target: float

    @classmethod
    def of(cls, sla: SLASpec) -> SLABounds:
        return cls(sla.ttft, sla.tpot, sla.percentile, sla.attainment)


@dataclass(frozen=True)
class PoolUtilisation:
    """One pool over the run: mean busy share of its instances over the measured window (from
    the first request after warm-up arrives until the last request leaves, so in [0, 1]), the
    highest KV occupancy any of them reached, and the block-seconds held for or reserved by
    transfers (summed)."""

    busy: float
    instances: int
    peak_kv: float
    held_block_s: float
    reserved_block_s: float


@dataclass(frozen=True)
class LifecycleCounts:
    """The KV lifecycle protocol of the run and how often each transition happened."""

    protocol: str
    transitions: dict[str, int]


@dataclass(frozen=True)
class PrefixReuse:
    """Where the reusable prompt tokens of the measured requests went (module docstring), in
    tokens; ``loaded_tokens`` of the hits came from a tier below HBM."""

    prompt_tokens: int
    reusable_tokens: int
    hit_tokens: int
    lost_to_eviction_tokens: int
    lost_to_routing_tokens: int
    loaded_tokens: int
    reusable_share: float  # of prompt tokens
    hit_share: float  # of prompt tokens

    @classmethod
    def of(cls, requests: pd.DataFrame) -> PrefixReuse | None:
        """None: the rows carry no reuse columns."""
        if "reusable_tokens" not in requests:
            return None
        prompt = int(requests["input_tokens"].sum())
        reusable = requests["reusable_tokens"]
        hit = int(np.minimum(requests["cached_tokens"], reusable).sum())
        evicted = int(requests["evicted_tokens"].sum())
        total = int(reusable.sum())
        return cls(
            prompt_tokens=prompt,
            reusable_tokens=total,
            hit_tokens=hit,
            lost_to_eviction_tokens=evicted,
            lost_to_routing_tokens=total - hit - evicted,
            loaded_tokens=int(requests["loaded_tokens"].sum()),
            reusable_share=total / max(prompt, 1),
            hit_share=hit / max(prompt, 1),
        )


@dataclass(frozen=True)
class TierFigures:
    """One KV residency tier over the run, summed over its stores (one per owner: instance,
    pool or cluster). Occupancies are shares of capacity: ``peak_occupancy`` the highest any
    one store reached, ``mean_occupancy`` time-mean blocks held over all stores' capacity."""

    tier: str
    stores: int
    capacity_bytes: float
    peak_occupancy: float
    mean_occupancy: float
    hit_tokens: int
    hit_share: float  # of the prompt tokens of every request looked up
    load_bytes: float
    write_bytes: float
    evictions: int


def tier_figures(facts: RunFacts, prompt_tokens: int) -> tuple[TierFigures, ...]:
    """Per tier, in cascade order, from the run's per-store facts and the prompt tokens of
    every simulated request (warm-up included, as the stores' counters are)."""
    by_tier: dict[str, list] = {}
    for f in facts.kv_tiers:
        by_tier.setdefault(f.tier, []).append(f)
    out = []
    for tier, stores in by_tier.items():
        capacity = sum(f.capacity_blocks for f in stores)
        hits = sum(f.hit_tokens for f in stores)
        out.append(
            TierFigures(
                tier=tier,
                stores=len(stores),
                capacity_bytes=sum(f.capacity_blocks * f.block_bytes for f in stores),
                peak_occupancy=max(f.peak_blocks / max(f.capacity_blocks, 1) for f in stores),
                mean_occupancy=sum(f.mean_blocks for f in stores) / max(capacity, 1),
                hit_tokens=hits,
                hit_share=hits / max(prompt_tokens, 1),
                load_bytes=sum(f.load_bytes for f in stores),
                write_bytes=sum(f.write_bytes for f in stores),
                evictions=sum(f.evictions for f in stores),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class RequestFigures:
    """What the request rows alone say: the request-derived part of a :class:`RunSummary`."""

    requests: int
    completed: int
    failed: int
    failure_reasons: dict[str, int]
    ttft_s: LatencyStats
    tpot_s: LatencyStats
    e2e_s: LatencyStats
    sla: SLABounds
    ttft_at_sla_percentile_s: float | None
    tpot_at_sla_percentile_s: float | None
    attainment: float
    sla_met: bool
    span_s: float
    request_rate: float
    throughput_tokens_per_s: float
    input_tokens_per_s: float
    prefix_cached_share: float
    preemptions: int
    cost_per_hour: float
    cost_per_million_tokens: float | None  # over this run's span (usd_per_million_tokens)
    acceptance_length: float | None  # None: no speculative decoding in the run
    prefix_reuse: PrefixReuse | None  # None: rows without the reuse columns


@dataclass(frozen=True)
class RunSummary(RequestFigures):
    """The figures of one simulation run (what ``summary.json`` holds), SI units throughout.

    Request figures are over the measured requests (after ``workload.warmup_requests``);
    ``span_s`` runs from their first arrival to their last completion.
    """

    kv_blocks_leaked: int
    # trace rows read but not replayed, by reason; the reader reads whole chunks, so under a
    # --requests cap this counts rows of the chunks read, possibly beyond the cap
    dropped_rows: dict[str, int]
    warmup_requests: int
    provenance: dict[str, str]
    utilisation: dict[str, PoolUtilisation]
    faults: dict[str, int]
    silent_corruptions: int
    retries: int
    recomputed_tokens: int
    double_residency_block_s: float
    lifecycle: LifecycleCounts
    scenario: str
    seed: int
    wall_s: float
    events: int
    simulated_s: float
    occupancy_mean: float
    # seconds between the time series' samples as the run ended (it doubles on long runs to
    # keep the series bounded in points); None: the run recorded no series
    sample_interval_s: float | None = None
    # the prefix cache's residency tiers, highest first (empty: no prefix cache)
    kv_tiers: tuple[TierFigures, ...] = ()
    # the basis every price is on and the conversions applied (CostsSpec.basis_line)
    price_basis: str = ""
    # device energy over the measured window (module docstring) and output tokens per joule;
    # None where the run has no power figures
    energy: EnergyFigures | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data in summary.json's layout (nested records become objects)."""
        return asdict(self)

    def to_json(self) -> dict[str, Any]:
        """:meth:`to_dict` with JSON's values: NaN (undefined) becomes null."""
        return _jsonable(self.to_dict())


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


@dataclass(frozen=True)
class EnergyFigures:
    """Device energy of a run (the module docstring's definition), SI units."""

    power_w: float  # mean draw over the span, all pools
    full_power_w: float  # every device at its tdp
    idle_power: float  # share of tdp an idle device draws (costs.idle_power)
    energy_j: float
    tokens_per_joule: float | None  # output tokens; None: no energy
    per_pool_w: dict[str, float]
    # per pool: what its busy power rests on, the tdp assumption or measured-power tables
    power_source: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def of(
        utilisation: dict[str, PoolUtilisation],
        pool_tdp_w: dict[str, float],
        idle_power: float,
        span_s: float,
        output_tokens: float,
        measured_busy_w: dict[str, float] | None = None,
        power_source: dict[str, str] | None = None,
    ) -> EnergyFigures:
        """``pool_tdp_w``: each pool's devices × tdp; busy shares from ``utilisation``;
        ``measured_busy_w``: for pools with measured power, their steps' energy over the
        measured window per second of it (W, all devices), in place of tdp × busy share;
        ``power_source``: what each of those rests on (the others: the tdp assumption)."""
        measured = measured_busy_w or {}
        per_pool = {}
        for name, tdp in pool_tdp_w.items():
            busy = utilisation[name].busy
            if name in measured:
                per_pool[name] = tdp * idle_power * (1 - busy) + measured[name]
            else:
                per_pool[name] = tdp * (idle_power + (1 - idle_power) * busy)
        sources = {name: (power_source or {}).get(name, TDP_POWER) for name in pool_tdp_w}
        power = sum(per_pool.values())
        energy = power * span_s
        return EnergyFigures(
            power_w=power,
            full_power_w=sum(pool_tdp_w.values()),
            idle_power=idle_power,
            energy_j=energy,
            tokens_per_joule=tokens_per_joule(output_tokens, energy),
            per_pool_w=per_pool,
            power_source=sources,
        )

    def measured_power_note(self) -> str:
        """``; <pool> busy power: <source>`` for each pool whose busy power rests on measured
        kernel power (empty where every pool's is the tdp assumption), for the summaries."""
        return "".join(
            f"; {pool} busy power: {src}"
            for pool, src in self.power_source.items()
            if src != TDP_POWER
        )


# ---- the cost and energy metrics, defined once ----------------------------------------------


def usd_per_million_tokens(cost_per_hour: float, tokens_per_s: float) -> float | None:
    """US$ per million output tokens of a deployment costing ``cost_per_hour`` that produces
    ``tokens_per_s``; None when it produces none."""
    if not tokens_per_s > 0:
        return None
    return cost_per_hour / 3600 / tokens_per_s * 1e6


def requests_per_usd(rate: float, cost_per_hour: float) -> float:
    """Requests served per US$ at ``rate`` requests/s (``req/$``; the planner's is at the
    goodput); infinite for a free deployment."""
    return rate * 3600 / cost_per_hour if cost_per_hour else math.inf


def requests_per_kwh(rate: float, power_w: float) -> float:
    """Requests served per kWh at ``rate`` requests/s drawing ``power_w``."""
    return rate * 3.6e6 / power_w if power_w else math.inf


def tokens_per_joule(tokens: float, energy_j: float) -> float | None:
    """Output tokens per joule; None without energy."""
    return tokens / energy_j if energy_j > 0 else None


def summarise(requests: pd.DataFrame, sla: SLASpec, cost_per_hour: float) -> RequestFigures:
    """Latency percentiles, attainment, throughput and cost of a set of request rows."""
    done = requests[requests["status"] == "completed"]
    failed = requests[requests["status"] == "failed"]
    first = float(requests["arrival_s"].min()) if len(requests) else 0.0
    last = float(done["finish_s"].max()) if len(done) else first
    span = max(last - first, 1e-12)
    out_tokens = float(done["output_tokens"].sum())
    att = attainment(requests, sla)
    reasons = failed["failure_reason"].value_counts().to_dict() if len(failed) else {}
    return RequestFigures(
        requests=int(len(requests)),
        completed=int(len(done)),
        failed=int(len(failed)),
        failure_reasons={str(k): int(v) for k, v in reasons.items()},
        ttft_s=percentiles(done["ttft_s"]),
        tpot_s=percentiles(done["tpot_s"]),
        e2e_s=percentiles(done["e2e_s"]),
        sla=SLABounds.of(sla),
        ttft_at_sla_percentile_s=_pct(done["ttft_s"], sla.percentile),
        tpot_at_sla_percentile_s=_pct(done["tpot_s"], sla.percentile),
        attainment=att,
        sla_met=bool(att >= sla.attainment) if not math.isnan(att) else False,
        span_s=span,
        request_rate=len(requests) / span if len(requests) > 1 else math.nan,
        throughput_tokens_per_s=out_tokens / span,
        input_tokens_per_s=float(done["input_tokens"].sum()) / span,
        prefix_cached_share=float(
            requests["cached_tokens"].sum() / max(requests["input_tokens"].sum(), 1)
        ),
        preemptions=int(requests["preemptions"].sum()),
        cost_per_hour=cost_per_hour,
        cost_per_million_tokens=usd_per_million_tokens(cost_per_hour, out_tokens / span),
        acceptance_length=_acceptance_length(done),
        prefix_reuse=PrefixReuse.of(requests),
    )


def _acceptance_length(done: pd.DataFrame) -> float | None:
    if "speculative_steps" not in done:
        return None
    steps = int(done["speculative_steps"].sum())
    return float(done["accepted_tokens"].sum()) / steps if steps else None


def _pct(values: pd.Series, p: float) -> float | None:
    v = values.dropna().to_numpy()
    return float(np.percentile(v, p)) if v.size else None
