"""The analytic screen: what a deployment can at best serve, without simulating it.

For each candidate, from the same step-time model the simulator uses and a sample of the
workload's requests:

* **zero-load latencies** — each sampled request alone: its prefill chunks, the prefix load
  from its tier, the KV transfer over the path's narrowest hop, conversions and the first
  decode step (TTFT); a decode step at batch 1 mid-way through its output (TPOT). If too few
  requests meet the SLA even alone, no arrival rate will do: *hopeless* (a request's latency
  alone is the least it can have: load only adds queueing and larger steps; the comparison
  allows ``LATENCY_SLACK`` for the closed forms against the event loop).
* **capacity bounds** on the arrival rate (which of them are proofs: see below):
  prefill compute (the sample packed into full chunked-prefill steps, as the scheduler packs
  them when saturated), decode (what any batch can emit, what the KV can hold while it does,
  and the least time the requests meeting the TPOT bound need), link capacity (every hop's
  aggregate bandwidth over the mean KV bytes a request sends) and prefix-tier load bandwidth.
* a **queueing estimate** of goodput (M/D/1-like waiting with an exponential tail for the TTFT
  percentile), used only to decide where the rate search starts and which candidates go first.

A closed loop's throughput is capped by the same resources, whatever sends the requests: the
capacity bounds hold for it as they stand (every measured request's prefill, decode and
transfer happen within the span its goodput is counted over). The queueing estimate does not:
it models random arrivals, and a closed loop's N clients queue at most N requests. For a closed
loop the estimate is therefore the capacity bound itself (``notes["estimate"]`` says so), so no
candidate is ranked or pruned by a queueing model that does not describe its workload.

**How the planner may rely on the bounds.** The planner passes a candidate's ``rate_bound``
(the least of its bounds) to its goodput search as the highest rate to try, in ``--exhaustive``
runs too, so no search ever reports a goodput above it: discarding a candidate whose bound
cannot tie the best measured is exact with respect to what searching it would report, and
the planner finds what brute force finds. Whether the bound is also true of the deployment is
a separate question, argued bound by bound; a candidate that meets the SLA all the way up to
its bound is reported ``at_limit`` (not converged), so an undershooting bound shows.

* **prefill compute** — a proof, up to the sample. Every request's uncached prompt must be
  computed on one prefill instance; packing the sample into steps filled to the token budget,
  as the scheduler packs them when saturated, is the least busy time the instances can spend
  on it (a step's weight reads and overhead are paid once however many tokens it carries),
  and the sample's hits are those of an unbounded cache (the simulator's can only hit less).
  Colocated, decode steps only take more of the instance.
* **link** (one per hop) — a proof, up to the sample: a hop carries every request's KV at no
  more than its aggregate bandwidth (the fluid model the simulator shares hops by).
* **decode** — a proof, up to the sample (:func:`~hetsim.planner.capacity.decode_bound`):
  no batch emits more tokens per second than the best batch size at the shortest context; each
  request holds at least its prompt in KV for at least (output − 1) steps, and no step holds
  more than KV capacity; and the requests that meet the SLA (at least the attainment share, at
  least those with the fewest tokens) cost the instance a least time per token that follows
  from the TPOT bound. The batch whose step meets the TPOT bound is *not* a bound (a
  request's TPOT is the mean of its gaps and the attainment target lets a share of requests
  miss, so a simulation may sustain larger batches): it enters only the queueing estimate,
  which orders work and never discards a candidate.
* **prefix tier** — a proof only where the simulated cache hits as the sample does: the
  sample's hits are an unbounded cache's, the most tier loads there can be; a cache that
  evicts loads less from the tier (and computes more).

"Up to the sample": the bounds are rates over the screen's sample (the workload's first
:data:`~hetsim.planner.sample.SAMPLE_REQUESTS` requests), while a planning run scores the
requests after its warm-up; the two means differ a little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hetsim.checks import HandoffPlan, handoff_plan, pool_pairs
from hetsim.perf.step import StepModel
from hetsim.planner.capacity import PoolCosts, decode_time, token_time
from hetsim.planner.queueing import queueing_estimate
from hetsim.planner.sample import WorkloadSample
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import PoolSpec

__all__ = ["ScreenResult", "WorkloadSample", "screen"]

#: latencies the screen computes are multiplied by this before they are compared with the SLA,
#: so that small differences between the closed forms and the event loop never condemn a
#: deployment the simulator would pass
LATENCY_SLACK = 0.95


@dataclass(frozen=True)
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


def _path_bounds(
    plan: HandoffPlan, p: PoolSpec, d: PoolSpec, bytes_per_request: float
) -> tuple[float, float, dict[str, float]]:
    """(seconds one byte takes alone over the narrowest hop, latency, rate bound per hop) at the
    effective hop bandwidths the simulator uses: those of the pair's handoff plan."""
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


def _roles(scenario: Scenario) -> tuple[PoolSpec, PoolSpec]:
    """(the pool that prefills, the pool that decodes): the same pool when colocated. A
    candidate has one pool per role (the search space rejects more), hence one pair."""
    spec = scenario.spec
    if spec.disaggregated:
        pair = pool_pairs(spec)[0]
        return pair.producer, pair.consumer
    return spec.pools[0], spec.pools[0]


def _ttft_alone(
    scenario: Scenario,
    p: PoolSpec,
    d: PoolSpec,
    d_sm: StepModel,
    sample: WorkloadSample,
    alone: np.ndarray,
    bounds: dict[str, float],
) -> np.ndarray:
    """Each sampled request's TTFT with nothing else running; adds the tier and link bounds."""
    per_token_load, load_latency, tier_bound = _tier_load(scenario, p, sample)
    if math.isfinite(tier_bound):
        bounds["prefix tier"] = tier_bound
    ttft0 = alone + np.where(sample.cached > 0, sample.cached * per_token_load + load_latency, 0.0)
    if scenario.spec.disaggregated:
        ttft0 = _with_handoff(scenario, p, d, d_sm, sample, ttft0, bounds)
    return ttft0


def _with_handoff(
    scenario: Scenario,
    p: PoolSpec,
    d: PoolSpec,
    d_sm: StepModel,
    sample: WorkloadSample,
    ttft0: np.ndarray,
    bounds: dict[str, float],
) -> np.ndarray:
    """``ttft0`` plus the KV transfer, its conversions and the first decode step."""
    plan = handoff_plan(scenario, p, d)
    per_token = plan.network_bytes_per_token
    mean_bytes = float(np.mean(sample.input)) * per_token
    per_byte, latency, link_bounds = _path_bounds(plan, p, d, mean_bytes)
    bounds.update(link_bounds)
    if not scenario.spec.kv.layerwise_transfer:  # layer-wise streaming hides most of it
        ttft0 = ttft0 + sample.input * per_token * per_byte + latency
    convert = sum(plan.seconds(side, 1.0) for side in plan.profiles)
    ttft0 = ttft0 + sample.input * convert
    first = np.array([decode_time(d_sm, 1, x + 1) for x in sample.input.tolist()])
    return ttft0 + first


def _zero_load(
    scenario: Scenario,
    sample: WorkloadSample,
    ttft0: np.ndarray,
    tpot0: np.ndarray,
    kv_tokens: int,
) -> tuple[float, float, float, str | None]:
    """(share meeting the SLA alone, TTFT and TPOT at the SLA percentile, why that share
    cannot reach the attainment target, if it cannot)."""
    sla = scenario.spec.sla
    n = len(sample.input)
    # a request that cannot fit in one decode instance's KV fails whatever the rate
    fits = sample.input + sample.output <= kv_tokens
    ok = fits & (ttft0 * LATENCY_SLACK <= sla.ttft) & (tpot0 * LATENCY_SLACK <= sla.tpot)
    attainment = float(ok.mean()) if n else 0.0
    ttft_p = float(np.percentile(ttft0, sla.percentile))
    tpot_p = float(np.percentile(tpot0[sample.output > 1], sla.percentile)) if n else 0.0
    if attainment >= sla.attainment:
        return attainment, ttft_p, tpot_p, None
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
        f"even alone only {attainment:.0%} of requests meet the SLA (need "
        f"{sla.attainment:.0%}): " + "; ".join(misses)
    )
    return attainment, ttft_p, tpot_p, hopeless


def _estimate(
    scenario: Scenario,
    sample: WorkloadSample,
    alone: np.ndarray,
    ttft0: np.ndarray,
    strict_tokens_s: float,
    bounds: dict[str, float],
) -> float:
    """A queueing estimate of goodput, capped by the decode capacity and every bound."""
    spec = scenario.spec
    p, d = _roles(scenario)
    mean_output = float(np.mean(sample.output))
    # decode at the batch whose step meets TPOT exactly, batches fluctuating around 90% of it
    decode_estimate = 0.9 * d.instances * strict_tokens_s / mean_output
    # a colocated instance spends part of its time decoding: prompts queue behind it
    decode_share = 0.0
    if not spec.disaggregated and strict_tokens_s > 0:
        decode_share = mean_output / (strict_tokens_s * p.instances)
    queueing = queueing_estimate(
        alone, ttft0 - alone, p.instances, spec.sla.ttft, spec.sla.attainment, decode_share
    )
    others = (0.9 * v for k, v in bounds.items() if k not in ("prefill compute", "decode"))
    return min(queueing, decode_estimate, *others, min(bounds.values()))


def screen(
    scenario: Scenario, sample: WorkloadSample, costs: PoolCosts | None = None
) -> ScreenResult:
    """Bounds, zero-load latencies and an estimate for one candidate deployment.

    ``costs``: the plan session's per-pool numbers, shared by its candidates (None: computed
    afresh for this call).
    """
    costs = PoolCosts() if costs is None else costs
    sla = scenario.spec.sla
    p, d = _roles(scenario)
    p_sm = costs.step_model(scenario, p)
    d_sm = costs.step_model(scenario, d)
    alone, busy = costs.prefill(p_sm, p, sample, costs.key(scenario, p, sample))
    bounds = {"prefill compute": p.instances * len(sample.input) / busy}
    ttft0 = _ttft_alone(scenario, p, d, d_sm, sample, alone, bounds)
    kv_tokens = scenario.footprints[d.name].kv_capacity_tokens
    d_key = costs.key(scenario, d, sample)
    # push also reserves reserved_decode_tokens per request; leaving it out keeps this a bound
    bounds["decode"] = d.instances * costs.decode_bound(d_sm, d, kv_tokens, sample, sla, d_key)
    mids = (sample.input + sample.output / 2).tolist()
    tpot0 = np.array([token_time(d_sm, d, 1, x) for x in mids])
    tpot0 = np.where(sample.output > 1, tpot0, 0.0)
    attainment, ttft_p, tpot_p, hopeless = _zero_load(scenario, sample, ttft0, tpot0, kv_tokens)
    bound_by = min(bounds, key=bounds.__getitem__)
    if hopeless is None and bounds[bound_by] <= 0:
        hopeless = f"no {bound_by} capacity"
    tokens_s, batch, step = costs.decode(d_sm, d, kv_tokens, sample, sla.tpot, d_key)
    notes: dict[str, Any] = {"decode_batch": batch, "decode_step_s": step}
    if scenario.spec.workload.closed_loop is None:
        estimate = _estimate(scenario, sample, alone, ttft0, tokens_s, bounds)
    else:
        estimate = bounds[bound_by]
        notes["estimate"] = (
            f"the {bound_by} bound: a closed loop has no arrival process for the queueing estimate"
        )
    return ScreenResult(
        rate_bound=bounds[bound_by],
        bound_by=bound_by,
        bounds=bounds,
        estimate=estimate,
        zero_load_attainment=attainment,
        zero_load_ttft_s=ttft_p,
        zero_load_tpot_s=tpot_p,
        hopeless=hopeless,
        notes=notes,
    )
