"""The analytic screen: what a deployment can at best serve, without simulating it.

For each candidate, from the same step-time model the simulator uses and a sample of the
workload's requests:

* **zero-load latencies** — each sampled request alone: its prefill chunks, the prefix load
  from its tier, the KV transfer over the path's narrowest hop, conversions and the first
  decode step (TTFT); a decode step at batch 1 mid-way through its output (TPOT). If too few
  requests meet the SLA even alone, no arrival rate will do: *hopeless*.
* **capacity bounds** on the arrival rate, each an upper bound:
  prefill compute (the sample packed into full chunked-prefill steps, as the scheduler packs
  them when saturated), decode (the largest batch whose step still fits the TPOT bound, capped
  by the batch limit and KV capacity), link capacity (every hop's aggregate bandwidth over the
  mean KV bytes a request sends) and prefix-tier load bandwidth.
* a **queueing estimate** of goodput (M/D/1-like waiting with an exponential tail for the TTFT
  percentile), used only to decide where the rate search starts and which candidates go first.

The bounds are deliberately optimistic (prefix hits as from an unbounded cache, no
interference between prefill and decode steps, a slack on the TPOT bound), because the
planner discards a candidate when even its bound cannot beat a measured result: a bound that
undershot would throw away the true best. ``tests/test_planner.py`` checks the bounds against
simulated goodput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hetsim.perf.step import StepModel, step_model_for_pool
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import PoolSpec
from hetsim.workload import iter_requests

__all__ = ["ScreenResult", "WorkloadSample", "screen"]

#: latencies the screen computes are multiplied by this before they are compared with the SLA,
#: so that small differences between the closed forms and the event loop never condemn a
#: deployment the simulator would pass
LATENCY_SLACK = 0.95
#: a decode batch may run steps up to this multiple of the TPOT bound: requests average their
#: steps and the attainment target lets a share of them miss
TPOT_SLACK = 1.25
#: how many of the workload's requests the screen looks at
SAMPLE_REQUESTS = 512


@dataclass
class WorkloadSample:
    """The first requests of the workload, with prefix hits as an unbounded cache would give."""

    input: np.ndarray
    output: np.ndarray
    cached: np.ndarray

    @classmethod
    def of(cls, scenario: Scenario, limit: int = SAMPLE_REQUESTS) -> WorkloadSample:
        spec = scenario.spec
        inputs, outputs, cached = [], [], []
        pc = spec.kv.prefix_cache
        seen: set[int] = set()
        taken = 0
        for chunk in iter_requests(spec.workload, scenario.base_dir, spec.seed):
            n = min(len(chunk), limit - taken)
            inputs.append(chunk.input_tokens[:n])
            outputs.append(chunk.output_tokens[:n])
            hits = np.zeros(n, dtype=np.int64)
            if pc.enabled:
                if chunk.hash_ids is not None and pc.hit_rate is None:
                    offsets = chunk.hash_offsets
                    for i in range(n):
                        blocks = chunk.hash_ids[offsets[i] : offsets[i + 1]].tolist()
                        m = 0
                        while m < len(blocks) and blocks[m] in seen:
                            m += 1
                        seen.update(blocks)
                        hits[i] = m * pc.block_tokens
                elif pc.hit_rate is not None:
                    hits = (pc.hit_rate * chunk.input_tokens[:n]).astype(np.int64)
            cached.append(hits)
            taken += n
            if taken >= limit:
                break
        inp = np.concatenate(inputs).astype(np.int64)
        return cls(
            inp,
            np.concatenate(outputs).astype(np.int64),
            np.clip(np.concatenate(cached), 0, np.maximum(inp - 1, 0)),
        )


@dataclass
class ScreenResult:
    """What a candidate can at best do, and why."""

    rate_bound: float  # requests/s no simulation of this deployment can beat
    bound_by: str
    bounds: dict[str, float]  # by resource, requests/s
    estimate: float  # requests/s, a queueing estimate of goodput
    zero_load_attainment: float  # share of sampled requests meeting the SLA when alone
    zero_load_ttft_s: float  # at the SLA percentile
    zero_load_tpot_s: float  # at the SLA percentile
    hopeless: str | None = None  # why no rate can meet the SLA, if none can
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate_bound": self.rate_bound,
            "bound_by": self.bound_by,
            "estimate": self.estimate,
            "zero_load_attainment": self.zero_load_attainment,
            "zero_load_ttft_s": self.zero_load_ttft_s,
            "zero_load_tpot_s": self.zero_load_tpot_s,
            **{f"bound_{k.replace(' ', '_')}": v for k, v in self.bounds.items()},
        }


# ---- per-pool quantities, memoised: candidates share pools ----------------------------------

_PREFILL: dict[tuple, tuple[np.ndarray, float]] = {}
_DECODE: dict[tuple, tuple[float, int, float]] = {}


def _pool_key(scenario: Scenario, pool: PoolSpec, sample: WorkloadSample) -> tuple:
    return (
        id(sample),
        scenario.model.name,
        scenario.profiles[pool.name].name,
        pool.model_dump_json(exclude={"name", "instances", "router"}),
    )


def _chunk_limits(pool: PoolSpec) -> tuple[int, int, int]:
    budget = pool.batching.max_batched_tokens
    chunk = min(pool.batching.chunk_size or budget, budget)
    return budget, chunk, pool.batching.max_num_seqs


def _prefill_costs(
    sm: StepModel, pool: PoolSpec, sample: WorkloadSample, key: tuple
) -> tuple[np.ndarray, float]:
    """(each request's prefill time alone, the sample's busy time when saturated)."""
    found = _PREFILL.get(key)
    if found is not None:
        return found
    budget, chunk, max_seqs = _chunk_limits(pool)
    alone = np.zeros(len(sample.input))
    for i, (n_in, c) in enumerate(zip(sample.input.tolist(), sample.cached.tolist(), strict=True)):
        done, t = c, 0.0
        while done < n_in:
            n = min(n_in - done, chunk)
            t += sm.step_time(np.array([n]), np.array([done]))
            done += n
        alone[i] = t
    # saturated: FCFS, running prompts continue, new ones join while budget and seats allow
    busy = 0.0
    waiting = list(zip(sample.input.tolist(), sample.cached.tolist(), strict=True))
    waiting.reverse()
    running: list[list[int]] = []  # [input, computed]
    while waiting or running:
        left = budget
        new, cached = [], []
        for r in running:
            n = min(r[0] - r[1], chunk, left)
            if n <= 0:
                break
            new.append(n)
            cached.append(r[1])
            left -= n
        while waiting and left > 0 and len(running) < max_seqs:
            r = list(waiting.pop())
            running.append(r)
            n = min(r[0] - r[1], chunk, left)
            new.append(n)
            cached.append(r[1])
            left -= n
        busy += sm.step_time(np.array(new), np.array(cached))
        for r, n in zip(running[: len(new)], new, strict=True):
            r[1] += n
        running = [r for r in running if r[1] < r[0]]
    _PREFILL[key] = (alone, busy)
    return alone, busy


def _decode_time(sm: StepModel, batch: int, context: float) -> float:
    if sm.model.is_sparse_attention:
        return sm.decode_time(np.full(batch, int(context), dtype=np.int64))
    return sm.decode_time_from_sum(batch, int(batch * context))


def _decode_capacity(
    sm: StepModel,
    pool: PoolSpec,
    kv_tokens: int,
    sample: WorkloadSample,
    tpot: float,
    key: tuple,
    slack: float = TPOT_SLACK,
) -> tuple[float, int, float]:
    """(tokens/s of one instance at the largest batch meeting TPOT, that batch, its step)."""
    full_key = (*key, tpot, kv_tokens, slack)
    found = _DECODE.get(full_key)
    if found is not None:
        return found
    context = float(np.mean(sample.input + sample.output / 2))
    cap = max(1, min(pool.batching.max_num_seqs, int(kv_tokens // max(context, 1.0))))
    best = (0.0, 1, _decode_time(sm, 1, context))
    lo, hi = 1, cap
    # step time grows with the batch: the largest batch whose step meets the (slackened) bound
    if _decode_time(sm, 1, context) <= tpot * slack:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _decode_time(sm, mid, context) <= tpot * slack:
                lo = mid
            else:
                hi = mid - 1
        step = _decode_time(sm, lo, context)
        best = (lo / step, lo, step)
    _DECODE[full_key] = best
    return best


def _path_bounds(
    scenario: Scenario, p: PoolSpec, d: PoolSpec, bytes_per_request: float
) -> tuple[float, float, dict[str, float]]:
    """(seconds one byte takes alone over the narrowest hop, latency, rate bound per hop) at the
    effective hop bandwidths the simulator uses: those of the pair's handoff plan."""
    from hetsim.checks import handoff_plan

    plan = handoff_plan(scenario, p, d)
    if not plan.hops or bytes_per_request <= 0:
        return 0.0, 0.0, {}
    bounds = {}
    for hop in plan.hops:
        links = {
            "source_instance": p.instances,
            "destination_instance": d.instances,
            "path": 1,
            "cluster": 1,
        }[hop.shared_by]
        bounds[f"link {hop.name}"] = hop.effective_bandwidth * links / bytes_per_request
    return 1.0 / plan.bottleneck_bandwidth, plan.latency, bounds


def _tier_load(scenario: Scenario, pool: PoolSpec, sample: WorkloadSample):  # noqa: ANN202
    """(seconds per cached token loaded alone, latency, rate bound) of the prefix tier."""
    spec = scenario.spec
    pc = spec.kv.prefix_cache
    tier = next((t for t in spec.kv.tiers if t.name == pc.tier), None) if pc.enabled else None
    mean_cached = float(sample.cached.mean()) if len(sample.cached) else 0.0
    if tier is None or mean_cached <= 0:
        return 0.0, 0.0, math.inf
    kvb = scenario.model.kv_bytes_per_token(pool.precision.kv)
    scopes = {"instance": pool.instances, "pool": 1, "cluster": 1}[tier.scope]
    return kvb / tier.bandwidth, tier.latency, tier.bandwidth * scopes / (mean_cached * kvb)


def _queueing_estimate(
    service: np.ndarray,
    fixed: np.ndarray,
    instances: int,
    ttft: float,
    target: float,
    decode_share_per_rate: float = 0.0,
) -> float:
    """The arrival rate at which the share of requests within the TTFT bound falls to the
    attainment target, if each prefill instance queued prompts like M/G/1 (Pollaczek-Khinchine
    mean wait) with an exponential waiting-time tail. ``service``: each sampled prompt's prefill
    time alone; ``fixed``: what its TTFT adds outside the queue. An estimate, not a bound:
    batching shortens waits, chunking lengthens service. ``decode_share_per_rate``: the share
    of an instance's time decodes take per request/s (colocated instances only), which
    stretches prompts' service by 1 / (1 - that share)."""
    room0 = ttft - fixed

    def attained(rate: float) -> float:
        lam = rate / instances
        free = 1.0 - decode_share_per_rate * rate
        if free <= 0:
            return 0.0
        stretched = service / free
        s1, s2 = float(np.mean(stretched)), float(np.mean(stretched**2))
        room = room0 - stretched
        rho = lam * s1
        if rho >= 1:
            return 0.0
        mean_wait = lam * s2 / (2 * (1 - rho))
        if mean_wait <= 0:
            return float((room >= 0).mean())
        within = 1 - rho * np.exp(-np.maximum(room, 0) * rho / mean_wait)
        return float(np.where(room >= 0, within, 0.0).mean())

    if attained(1e-9) < target:
        return 0.0
    lo, hi = 0.0, instances / float(np.mean(service))
    for _ in range(50):
        mid = (lo + hi) / 2
        if attained(mid) >= target:
            lo = mid
        else:
            hi = mid
    return lo


def screen(scenario: Scenario, sample: WorkloadSample) -> ScreenResult:
    """Bounds, zero-load latencies and an estimate for one candidate deployment."""
    from hetsim.checks import handoff_plan as handoff_conversions

    spec = scenario.spec
    sla = spec.sla
    model = scenario.model
    n = len(sample.input)
    bounds: dict[str, float] = {}
    if spec.disaggregated:
        p = next(x for x in spec.pools if x.role == "prefill")
        d = next(x for x in spec.pools if x.role == "decode")
    else:
        p = d = spec.pools[0]
    p_sm = step_model_for_pool(model, scenario.profiles[p.name], p)
    d_sm = step_model_for_pool(model, scenario.profiles[d.name], d)
    p_key = _pool_key(scenario, p, sample)
    alone, busy = _prefill_costs(p_sm, p, sample, p_key)
    bounds["prefill compute"] = p.instances * n / busy

    per_token_load, load_latency, tier_bound = _tier_load(scenario, p, sample)
    if math.isfinite(tier_bound):
        bounds["prefix tier"] = tier_bound
    ttft0 = alone + np.where(sample.cached > 0, sample.cached * per_token_load + load_latency, 0.0)

    d_fp = scenario.footprints[d.name]
    if spec.disaggregated:
        plan = handoff_conversions(scenario, p, d)
        transfer = plan.verdict.transfer
        per_token = transfer.network_bytes_per_token if transfer else plan.wire_bytes_per_token
        mean_bytes = float(np.mean(sample.input)) * per_token
        per_byte, latency, link_bounds = _path_bounds(scenario, p, d, mean_bytes)
        bounds.update(link_bounds)
        if not spec.kv.layerwise_transfer:  # layer-wise streaming hides most of it
            ttft0 = ttft0 + sample.input * per_token * per_byte + latency
        convert = sum(
            plan.verdict.seconds(side, 1.0, plan.profiles[side])
            for side in plan.profiles
            if plan.verdict.on(side)
        )
        ttft0 = ttft0 + sample.input * convert
        first = np.array([_decode_time(d_sm, 1, x + 1) for x in sample.input.tolist()])
        ttft0 = ttft0 + first
    # push also reserves reserved_decode_tokens per request; leaving it out keeps this a bound
    tokens_s, batch, step = _decode_capacity(
        d_sm, d, d_fp.kv_capacity_tokens, sample, sla.tpot, _pool_key(scenario, d, sample)
    )
    bounds["decode"] = d.instances * tokens_s / float(np.mean(sample.output)) if tokens_s else 0.0
    mids = (sample.input + sample.output / 2).tolist()
    tpot0 = np.array([_decode_time(d_sm, 1, x) for x in mids])
    tpot0 = np.where(sample.output > 1, tpot0, 0.0)

    # a request that cannot fit in one decode instance's KV fails whatever the rate
    context_max = sample.input + sample.output
    fits = context_max <= d_fp.kv_capacity_tokens
    ok = fits & (ttft0 * LATENCY_SLACK <= sla.ttft) & (tpot0 * LATENCY_SLACK <= sla.tpot)
    zero_att = float(ok.mean()) if n else 0.0
    ttft_p = float(np.percentile(ttft0, sla.percentile))
    tpot_p = float(np.percentile(tpot0[sample.output > 1], sla.percentile)) if n else 0.0

    bound_by = min(bounds, key=bounds.__getitem__)
    rate_bound = bounds[bound_by]
    hopeless = None
    if zero_att < sla.attainment:
        misses = []
        if (ttft0 * LATENCY_SLACK > sla.ttft).any():
            misses.append(f"p{sla.percentile:g} TTFT alone {ttft_p:.3g} s vs {sla.ttft:.3g} s")
        if (tpot0 * LATENCY_SLACK > sla.tpot).any():
            misses.append(
                f"p{sla.percentile:g} TPOT alone {tpot_p * 1e3:.3g} ms vs {sla.tpot * 1e3:.3g} ms"
            )
        if not fits.all():
            misses.append(f"{int((~fits).sum())} requests exceed one decode instance's KV")
        hopeless = (
            f"even alone only {zero_att:.0%} of requests meet the SLA (need "
            f"{sla.attainment:.0%}): " + "; ".join(misses)
        )
    elif rate_bound <= 0:
        hopeless = f"no {bound_by} capacity within the TPOT bound"
    # decode at the batch whose step meets TPOT exactly, batches fluctuating around 90% of it
    strict, _, _ = _decode_capacity(
        d_sm, d, d_fp.kv_capacity_tokens, sample, sla.tpot, _pool_key(scenario, d, sample), 1.0
    )
    decode_estimate = 0.9 * d.instances * strict / float(np.mean(sample.output))
    # a colocated instance spends part of its time decoding: prompts queue behind it
    decode_share = 0.0
    if not spec.disaggregated and strict > 0:
        decode_share = float(np.mean(sample.output)) / (strict * p.instances)
    estimate = min(
        _queueing_estimate(
            alone, ttft0 - alone, p.instances, sla.ttft, sla.attainment, decode_share
        ),
        decode_estimate,
        *(0.9 * v for k, v in bounds.items() if k not in ("prefill compute", "decode")),
        rate_bound,
    )
    return ScreenResult(
        rate_bound=rate_bound,
        bound_by=bound_by,
        bounds=bounds,
        estimate=estimate,
        zero_load_attainment=zero_att,
        zero_load_ttft_s=ttft_p,
        zero_load_tpot_s=tpot_p,
        hopeless=hopeless,
        notes={"decode_batch": batch, "decode_step_s": step},
    )
