"""Derived quantities of a checked scenario, as plain data (``hetsim check`` renders them).

Nothing is computed here that has an owner elsewhere: transfer bytes, hop bandwidths and
conversions come from each pair's :class:`~hetsim.checks.HandoffPlan` (what the simulator moves
and charges), memory from the scenario's footprints, the step-time provenance from
:mod:`hetsim.perf`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hetsim.checks import EXAMPLE_TOKENS, HandoffPlan, handoff_plans
from hetsim.checks.scenario import routing_summary
from hetsim.perf import provenance
from hetsim.perf.cost.base import Provenance
from hetsim.perf.runtimes import pool_mixes_prompts
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import PoolSpec
from hetsim.workload import count_requests

__all__ = ["describe", "transfer_paths", "unmeasured_note"]

#: step-time sources that rest on assumed or borrowed figures, not on the device's own kernels
_UNMEASURED = (Provenance.ROOFLINE_DEFAULT, Provenance.TRANSFERRED)


def unmeasured_note(provenance_of_pools: Mapping[str, str]) -> str | None:
    """One line naming the pools whose step times rest on the bare roofline
    (``roofline-default``) or on another architecture's efficiencies (``transferred:…``); None
    when every pool is measured or calibrated."""
    pools = [
        f"{pool} ({label})"
        for pool, label in provenance_of_pools.items()
        if Provenance.kind_of(label) in _UNMEASURED
    ]
    if not pools:
        return None
    return (
        "step times not measured on the device itself: "
        + ", ".join(pools)
        + "; calibrate (`hetsim calibrate`) before trusting a cross-vendor comparison"
    )


def describe(scenario: Scenario) -> dict[str, Any]:
    """Everything ``hetsim check`` reports, in SI units, JSON-serialisable."""
    spec, model = scenario.spec, scenario.model
    plans = handoff_plans(scenario)
    portability = _portability(plans)
    return {
        "scenario": spec.name,
        "file": str(scenario.path) if scenario.path else None,
        "model": {
            "name": model.name,
            "architecture": model.description,
            "params_total": model.params_total,
            "params_active": model.params_active,
        },
        "pools": [_pool(scenario, pool) for pool in spec.pools],
        "paths": transfer_paths(scenario),
        "portability": portability,
        "unused_conversions": _unused_conversions(scenario, portability),
        "routing": routing_summary(spec),
        "lifecycle": spec.lifecycle.protocol,
        "workload": _workload(scenario),
        # the SI numbers (model_dump writes quantities as unit strings, for re-validation)
        "sla": dict(spec.sla),
        "cost_per_hour": scenario.cost_per_hour(),
        "devices": sum(p.total_devices for p in spec.pools),
    }


def _pool(scenario: Scenario, pool: PoolSpec) -> dict[str, Any]:
    profile = scenario.profiles[pool.name]
    price = scenario.price_per_device_hour(pool.name)
    return {
        "name": pool.name,
        "role": pool.role,
        "accelerator": profile.name,
        "instances": pool.instances,
        "tp": pool.tp,
        "dp": pool.dp,
        "ep": pool.ep,
        "devices_per_instance": pool.devices,
        "precision": pool.precision.model_dump(),
        "compute_format": pool.precision.compute_format,
        # how fp8 weights are scaled, block unless said (None for other weights)
        "fp8_scaling": pool.precision.fp8_scaling,
        "peak_flops_per_device": profile.peak_flops(pool.precision.compute_format),
        "kv_bytes_per_token": scenario.model.kv_bytes_per_token(pool.precision.kv),
        "kv_layout": pool.kv_layout,
        "kv_page_tokens": pool.kv_page_tokens,
        "memory": scenario.footprints[pool.name].as_dict(),
        "price_per_device_hour": price,
        "price_is_assumption": scenario.price_is_assumption(pool.name),
        "cost_per_hour": price * pool.total_devices,
        "uncertain_figures": profile.uncertain_figures(),
        # perf owns the label; the step model is the one the simulator will use
        "provenance": provenance(profile, runtime=pool.runtime),
        # whether prompt chunks share steps with decodes (colocated pools; None otherwise)
        "mixed_chunk": (pool_mixes_prompts(pool) if pool.role == "colocated" else None),
    }


def _workload(scenario: Scenario) -> dict[str, Any]:
    wl = scenario.spec.workload
    if wl.trace is not None:
        return {
            "kind": "trace",
            "format": wl.trace.format,
            "path": str(scenario.resolve_path(wl.trace.path)),
            "sessions": wl.trace.sessions,
            # a pass over the file, as simulate reads it: a trace simulate refuses is no valid
            # scenario, so check refuses it with the same message
            "requests": count_requests(
                wl, scenario.base_dir, scenario.spec.seed, max_context=scenario.model.max_context
            ),
        }
    if wl.closed_loop is not None:
        cl = wl.closed_loop
        return {
            "kind": "closed_loop",
            "concurrency": cl.concurrency,
            "requests": cl.requests,
            "think_time": cl.think_time,
            "ramp_up": cl.ramp_up.strategy,
            "sessions": cl.sessions is not None,
        }
    syn = wl.synthetic
    assert syn is not None
    return {
        "kind": "synthetic",
        "arrival": syn.arrival,
        "rate": syn.rate,
        "rate_unit": "sessions/s" if syn.sessions is not None else "requests/s",
        "sessions": syn.sessions is not None,
        "requests": syn.requests,
        "prefix_hit_rate": syn.prefix_hit_rate,
    }


def transfer_paths(scenario: Scenario) -> list[dict[str, Any]]:
    """Every declared transfer path, in declaration order, as :func:`describe` reports it."""
    plans = handoff_plans(scenario)
    return [_path(plans[(x.from_, x.to)]) for x in scenario.spec.interconnect.paths]


def _path(plan: HandoffPlan) -> dict[str, Any]:
    """A pair's path as the simulator uses it: effective hop bandwidths, and the bytes all
    decode ranks together read per token beside one copy's."""
    return {
        "from": plan.producer_pool,
        "to": plan.consumer_pool,
        "hops": [h.name for h in plan.hops],
        "hop_plans": [h.as_dict() for h in plan.hops],
        "bottleneck_bandwidth": plan.bottleneck_bandwidth,
        "latency": plan.latency,
        "transfer_format": plan.wire_format,
        "kv_bytes_per_token": plan.network_bytes_per_token,
        "kv_bytes_per_token_one_copy": plan.copy_bytes_per_token,
        "transfers_per_request": plan.verdict.transfer.transfers_per_request
        if plan.verdict.transfer
        else None,
        # a lone 8K-token transfer, as a feel for scale
        "lone_8k_token_transfer_s": plan.lone_transfer_s(EXAMPLE_TOKENS),
    }


def _portability(plans: Mapping[tuple[str, str], HandoffPlan]) -> list[dict[str, Any]]:
    """The KV portability verdict of every prefill → decode pairing, with its conversions priced
    for an 8K-token prompt."""
    out = []
    for plan in plans.values():
        entry = plan.as_dict(EXAMPLE_TOKENS)
        entry["used_conversions"] = sorted(plan.verdict.used_specs)
        out.append(entry)
    return out


def _unused_conversions(scenario: Scenario, portability: list[dict[str, Any]]) -> list[str]:
    """kv.conversions entries that no pairing needs (harmless, but maybe a typo)."""
    used = {i for entry in portability for i in entry["used_conversions"]}
    return [c.label() for i, c in enumerate(scenario.spec.kv.conversions) if i not in used]
