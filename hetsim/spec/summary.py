"""Derived quantities of a checked scenario, as plain data (``hetsim check`` renders them)."""

from __future__ import annotations

from typing import Any

from hetsim.spec.resolve import Scenario

__all__ = ["describe"]


def describe(scenario: Scenario) -> dict[str, Any]:
    """Everything ``hetsim check`` reports, in SI units, JSON-serialisable."""
    spec, model = scenario.spec, scenario.model
    pools = []
    for pool in spec.pools:
        profile = scenario.profiles[pool.name]
        fp = scenario.footprints[pool.name]
        price = scenario.price_per_device_hour(pool.name)
        pools.append(
            {
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
                "peak_flops_per_device": profile.peak_flops(pool.precision.compute_format),
                "kv_bytes_per_token": model.kv_bytes_per_token(pool.precision.kv),
                "kv_layout": pool.kv_layout,
                "kv_page_tokens": pool.kv_page_tokens,
                "memory": fp.as_dict(),
                "price_per_device_hour": price,
                "price_is_assumption": scenario.price_is_assumption(pool.name),
                "cost_per_hour": price * pool.total_devices,
                "uncertain_figures": profile.uncertain_figures(),
                "provenance": "calibrated" if profile.calibration else "roofline-default",
            }
        )
    paths = []
    for path in spec.interconnect.paths:
        producer = spec.pool(path.from_)
        fmt = spec.kv.transfer_format or producer.precision.kv
        per_token = model.kv_bytes_per_token(fmt)
        paths.append(
            {
                "from": path.from_,
                "to": path.to,
                "hops": [h.name for h in path.hops],
                "bottleneck_bandwidth": path.bottleneck_bandwidth(),
                "latency": path.latency(),
                "transfer_format": fmt,
                "kv_bytes_per_token": per_token,
                # a lone 8K-token transfer, as a feel for scale
                "lone_8k_token_transfer_s": 8192 * per_token / path.bottleneck_bandwidth()
                + path.latency(),
            }
        )
    portability = _portability(scenario)
    wl = spec.workload
    workload: dict[str, Any]
    if wl.trace is not None:
        workload = {
            "kind": "trace",
            "format": wl.trace.format,
            "path": str(scenario.resolve_path(wl.trace.path)),
        }
    else:
        syn = wl.synthetic
        assert syn is not None
        workload = {
            "kind": "synthetic",
            "arrival": syn.arrival,
            "rate": syn.rate,
            "requests": syn.requests,
            "prefix_hit_rate": syn.prefix_hit_rate,
        }
    return {
        "scenario": spec.name,
        "file": str(scenario.path) if scenario.path else None,
        "model": {
            "name": model.name,
            "architecture": model.description,
            "params_total": model.params_total,
            "params_active": model.params_active,
        },
        "pools": pools,
        "paths": paths,
        "portability": portability,
        "unused_conversions": _unused_conversions(scenario, portability),
        "lifecycle": spec.lifecycle.protocol,
        "workload": workload,
        "sla": spec.sla.model_dump(),
        "cost_per_hour": scenario.cost_per_hour(),
        "devices": sum(p.total_devices for p in spec.pools),
    }


def _portability(scenario: Scenario) -> list[dict[str, Any]]:
    """The KV portability verdict of every prefill → decode pairing, with its conversions priced
    for an 8K-token prompt."""
    # kv sits above spec; describe() reports what resolve already checked with it
    from hetsim.kv.portability import EXAMPLE_TOKENS, handoff_conversions

    spec = scenario.spec
    out = []
    for p in spec.pools:
        if p.role != "prefill":
            continue
        for d in spec.pools:
            if d.role == "decode":
                plan = handoff_conversions(scenario, p, d)
                entry = plan.as_dict(EXAMPLE_TOKENS)
                entry["used_conversions"] = sorted(plan.verdict.used_specs)
                out.append(entry)
    return out


def _unused_conversions(scenario: Scenario, portability: list[dict[str, Any]]) -> list[str]:
    """kv.conversions entries that no pairing needs (harmless, but maybe a typo)."""
    used = {i for entry in portability for i in entry["used_conversions"]}
    return [c.label() for i, c in enumerate(scenario.spec.kv.conversions) if i not in used]
