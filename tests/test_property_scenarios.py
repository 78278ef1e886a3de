"""Random valid scenarios keep the simulator's invariants.

Hypothesis draws a deployment (disaggregated prefill/decode or colocated; accelerators; the
weight and KV formats each supports; the KV lifecycle protocol; arrival rate; prefix caching; a
fault or two) as a scenario mapping, and a short run of it must: end every request exactly once,
give back every KV block, keep each request's timestamps in causal order, repeat itself row for
row under the same seed, and report utilisations in [0, 1]. The invariants are those
``test_sim_invariants.py`` checks on the bundled faults scenario, here over the whole space.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hetsim import scenario_from_dict, simulate

#: dense models that fit one device of every accelerator drawn, at tp 1; the longest request
#: drawn (4,096 prompt + 512 output tokens) fits the context of each (tiny-llama: 8,192)
MODELS = ("tiny-llama", "Llama-3.1-8B")
ACCELERATORS = ("nvidia-h100-sxm", "nvidia-h200-sxm", "nvidia-h20")
#: precision policies these accelerators all support (weights, activations, kv)
FORMATS = ("bf16", "fp8_e4m3")
#: timestamps in the order a completed request passes them (NaN where a stage does not exist)
STAGES = (
    "arrival_s", "prefill_start_s", "prefill_end_s", "transfer_start_s", "transfer_end_s",
    "decode_start_s", "first_token_s", "finish_s",
)  # fmt: skip
EPS = 1e-9  # seconds: float sums of step times


def _pool(draw: st.DrawFn, name: str, role: str, hashed: bool) -> dict[str, Any]:
    """One pool; ``hashed``: the requests carry prefix hashes, which prefix_aware routes by."""
    routers = ["round_robin", "least_outstanding_tokens"] + (["prefix_aware"] if hashed else [])
    weights = draw(st.sampled_from(FORMATS))
    pool = {
        "name": name,
        "role": role,
        "accelerator": draw(st.sampled_from(ACCELERATORS)),
        "instances": draw(st.integers(1, 3)),
        "precision": {
            "weights": weights,
            "activations": weights,
            "kv": draw(st.sampled_from(FORMATS)),
        },
        "batching": {
            "max_num_seqs": draw(st.sampled_from([1, 4, 64])),
            "max_batched_tokens": draw(st.sampled_from([2048, 8192])),
        },
        "router": draw(st.sampled_from(routers)),
        # a quarter of an H100 leaves an 8B model a few GB of KV: the blocks fill up
        "memory_utilization": draw(st.sampled_from([0.9, 0.25])),
        "kv_page_tokens": draw(st.sampled_from([16, 64])),
    }
    if role == "colocated":
        pool["batching"]["chunk_size"] = pool["batching"]["max_batched_tokens"]
    if role == "decode":
        pool["router"] = draw(st.sampled_from(["round_robin", "least_kv_load"]))
        pool["preemption"] = draw(st.sampled_from(["recompute", "swap"]))  # decode only swaps
        pool["batching"]["max_batched_tokens"] = 512
    return pool


def _disaggregated(draw: st.DrawFn, data: dict[str, Any], hashed: bool) -> None:
    """Prefill and decode pools over one path, in any lifecycle and KV formats."""
    prefill = _pool(draw, "prefill", "prefill", hashed)
    decode = _pool(draw, "decode", "decode", hashed)
    data["pools"] = [prefill, decode]
    hops = [{"name": "fabric", "kind": "nic", "bandwidth": draw(st.sampled_from(
        ["100 Gbps", "400 Gbps", "450 GB/s"])), "latency": "5 us"}]  # fmt: skip
    data["interconnect"] = {"paths": [{"from": "prefill", "to": "decode", "hops": hops}]}
    sent, stored = prefill["precision"]["kv"], decode["precision"]["kv"]
    kv: dict[str, Any] = {"transfer_format": stored}
    if sent != stored:  # converted once, where the scenarios with mixed formats convert it
        kv["conversions"] = [{"kind": "dtype", "from": sent, "to": stored, "where": "producer"}]
    kv["tiers"] = [{"name": "kv_pool", "kind": "remote", "capacity": "2 TiB",
                    "bandwidth": "50 GB/s", "latency": "20 us", "scope": "cluster"}]  # fmt: skip
    data["kv"] = kv
    data["lifecycle"] = {"protocol": draw(st.sampled_from(["pull", "push", "store"])),
                         "store_tier": "kv_pool"}  # fmt: skip


def _faults(
    draw: st.DrawFn, pools: list[dict[str, Any]], hop: str | None, protocol: str | None
) -> dict[str, Any]:
    """None, one or two faults, starting while a run of a few dozen requests is still going
    (at 40 req/s it lasts about a second, at 0.5 req/s about a minute)."""
    target = f"{draw(st.sampled_from([p['name'] for p in pools]))}[0]"
    at = draw(st.sampled_from(["0.05 s", "0.3 s", "5 s"]))
    lasts = draw(st.sampled_from(["0.2 s", "2 s", "20 s"]))
    crash = {"kind": "instance_crash", "target": target, "at": at, "duration": lasts}
    others: list[dict[str, Any] | None] = [
        None,
        {"kind": "straggler", "target": target, "at": at, "duration": lasts, "factor": 3.0},
    ]
    # faults a deployment cannot have are input errors: KV moves only between pools, and only
    # pull's decode side sends prefill the notification that can be lost
    if hop is not None:
        others.append({"kind": "link_down", "target": hop, "at": at, "duration": lasts})
        others.append({"kind": "abort_mid_transfer", "probability": 0.3})
    if protocol == "pull":
        others.append({"kind": "lost_notification", "probability": 0.3})
    # a crash drawn on its own: it is the fault that makes requests retry
    events = [crash] if draw(st.booleans()) else []
    other = draw(st.sampled_from(others))
    events += [other] if other is not None else []
    return {"recovery": "retry", "max_retries": 2, "transfer_timeout": "5 s", "events": events}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "drawn", "model": draw(st.sampled_from(MODELS))}
    cache = draw(st.booleans())
    hit_rate = draw(st.sampled_from([0.0, 0.5, 0.9])) if cache else 0.0
    disaggregated = draw(st.booleans())
    if disaggregated:
        _disaggregated(draw, data, hit_rate > 0)
    else:
        data["pools"] = [_pool(draw, "serve", "colocated", hit_rate > 0)]
    data.setdefault("kv", {})["prefix_cache"] = {"enabled": cache, "block_tokens": 256}
    arrival = draw(st.sampled_from(["poisson", "gamma", "bursty"]))
    # each process gets only its own parameters (another's is an input error)
    shape = {
        "poisson": {},
        "gamma": {"cv": 2.0},  # burstier than poisson
        "bursty": {"on": "2 s", "off": "1 s"},  # short periods, so a short run sees both
    }[arrival]
    data["workload"] = {
        "synthetic": {
            "arrival": arrival,
            **shape,
            "rate": f"{draw(st.sampled_from([0.5, 4, 40]))} req/s",
            "requests": 1000,
            "input_tokens": {"dist": "lognormal", "mean": draw(st.sampled_from([256, 2048])),
                             "cv": 0.6, "min": 16, "max": 4096},
            "output_tokens": {"dist": "lognormal", "mean": draw(st.sampled_from([32, 160])),
                              "cv": 0.6, "min": 2, "max": 512},
            "prefix_hit_rate": hit_rate,
            "block_tokens": 256,  # the prefix cache's (a mismatch is an input error)
        }
    }  # fmt: skip
    data["sla"] = {"ttft": "2 s", "tpot": "50 ms", "percentile": 90, "attainment": 0.9}
    hop = "fabric" if disaggregated else None
    protocol = data.get("lifecycle", {}).get("protocol") if disaggregated else None
    data["faults"] = _faults(draw, data["pools"], hop, protocol)
    data["seed"] = draw(st.integers(0, 2**16))
    return data


def _accounted_once(res, requests: int) -> None:
    rows, s = res.requests, res.summary
    assert len(rows) == requests == s.requests == s.completed + s.failed
    assert sum(s.failure_reasons.values()) == s.failed
    assert rows["request_id"].is_unique
    assert set(rows["status"]) <= {"completed", "failed"}
    failed = rows[rows["status"] == "failed"]
    assert (failed["failure_reason"].str.len() > 0).all()


def _no_leaks(res) -> None:
    assert res.summary.kv_blocks_leaked == 0
    # a completed request frees the blocks it decoded from exactly once: the decode side's, or
    # on a colocated instance the one side it has
    life = res.lifecycle
    side = "D" if (life["side"] == "D").any() else "P"
    done = res.requests[res.requests["status"] == "completed"]
    freed = life[(life["side"] == side) & (life["state"] == "freed")]
    assert sorted(freed["request_id"]) == sorted(done["request_id"])
    ts = res.timeseries
    assert (ts["kv_used_blocks"] <= ts["kv_capacity_blocks"]).all()


def _causal(res) -> None:
    """Every pair of stages in order, not only neighbours: a colocated request has no transfer,
    and its prefill end must still come before its decode start."""
    done = res.requests[res.requests["status"] == "completed"]
    for i, earlier in enumerate(STAGES):
        for later in STAGES[i + 1 :]:
            both = done[[earlier, later]].dropna()
            bad = both[both[earlier] > both[later] + EPS]
            assert bad.empty, f"{earlier} after {later}:\n{done.loc[bad.index, list(STAGES)]}"
    assert done["first_token_s"].notna().all() and done["finish_s"].notna().all()


def _utilisation_in_unit_interval(res) -> None:
    for pool, use in res.summary.to_dict()["utilisation"].items():
        for key in ("busy", "peak_kv"):
            assert 0.0 <= use[key] <= 1.0, (pool, key, use[key])
    busy = res.timeseries["busy"]
    assert ((busy >= 0.0) & (busy <= 1.0 + EPS)).all(), busy.describe()


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows the drawn scenario
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=scenarios(), requests=st.integers(20, 40))
def test_random_valid_scenarios_keep_the_invariants(data: dict[str, Any], requests: int) -> None:
    scenario = scenario_from_dict(data)
    res = simulate(scenario, max_requests=requests)
    _accounted_once(res, requests)
    _no_leaks(res)
    _causal(res)
    _utilisation_in_unit_interval(res)
    again = simulate(scenario, max_requests=requests)
    pd.testing.assert_frame_equal(res.requests, again.requests)
    pd.testing.assert_frame_equal(res.lifecycle, again.lifecycle)
    pd.testing.assert_frame_equal(res.timeseries, again.timeseries)
    other = simulate(scenario, max_requests=requests, seed=scenario.spec.seed + 1)
    assert not other.requests["arrival_s"].equals(res.requests["arrival_s"])  # the seed is used
