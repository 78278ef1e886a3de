"""Fast-forward of steady decode gives what step-by-step simulation gives, in fewer events.

The property test draws the scenarios of ``test_property_scenarios`` (pools, formats,
lifecycles, faults, prefix caches, open loop), and a closed-loop variant of them, and runs each
twice: fast-forward on (the default) and ``fast_forward=False``. Every per-request row, every
lifecycle transition, every time-series sample and every summary figure must agree (times to
relative 1e-9, counts exactly); only the wall time and the events simpy processed differ.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_property_scenarios import scenarios

from hetsim import load_scenario, scenario_from_dict, simulate
from hetsim.perf.step import step_model_for_pool

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
# the issue allows a relative 1e-9; fast-forward promises the same floats, so ask for those
#: what is allowed to differ between the two ways of simulating the same run
UNSHARED = {"wall_s", "events"}


def _same_frames(a: pd.DataFrame | None, b: pd.DataFrame | None) -> None:
    assert (a is None) == (b is None)
    if a is not None:
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def _same_values(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            if key not in UNSHARED:
                _same_values(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == b, (where, a, b)
    else:
        assert a == b, (where, a, b)


def _both_ways(data: dict[str, Any], requests: int):
    scenario = scenario_from_dict(data)
    fast = simulate(scenario, max_requests=requests)
    slow = simulate(scenario, max_requests=requests, fast_forward=False)
    return fast, slow


def _agree(fast, slow) -> None:
    _same_frames(fast.requests, slow.requests)
    _same_frames(fast.lifecycle, slow.lifecycle)
    _same_frames(fast.timeseries, slow.timeseries)
    _same_frames(fast.links, slow.links)
    _same_values(fast.summary.to_dict(), slow.summary.to_dict(), "summary")
    assert fast.summary.events <= slow.summary.events


def _closed(data: dict[str, Any], concurrency: int) -> dict[str, Any]:
    """The drawn scenario with its lengths sent by a closed loop of clients instead (whose
    requests carry no prefix hashes to route by)."""
    for pool in data["pools"]:
        if pool["router"] == "prefix_aware":
            pool["router"] = "least_outstanding_tokens"
    synthetic = data["workload"]["synthetic"]
    data["workload"] = {
        "closed_loop": {
            "concurrency": concurrency,
            "requests": 1000,
            "think_time": "50 ms",
            "input_tokens": synthetic["input_tokens"],
            "output_tokens": synthetic["output_tokens"],
        }
    }
    return data


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=scenarios(),
    requests=st.integers(15, 30),
    closed=st.sampled_from([None, 1, 8]),
)
def test_fast_forward_gives_step_by_step_results(
    data: dict[str, Any], requests: int, closed: int | None
) -> None:
    if closed is not None:
        data = _closed(data, closed)
    _agree(*_both_ways(data, requests))


def _one_instance(output: int, rate: str, requests: int) -> dict[str, Any]:
    """One colocated instance and requests of fixed lengths: decode-heavy when ``output``
    is long."""
    return {
        "name": "ff",
        "model": "tiny-llama",
        "pools": [
            {"name": "serve", "role": "colocated", "accelerator": "nvidia-h100-sxm",
             "instances": 1, "batching": {"max_num_seqs": 16, "max_batched_tokens": 2048}}
        ],
        "workload": {"synthetic": {"rate": rate, "requests": requests,
                                   "input_tokens": 128, "output_tokens": output}},
        "sla": {"ttft": "2 s", "tpot": "50 ms"},
        "seed": 3,
    }  # fmt: skip


def test_long_outputs_take_a_tenth_of_the_events() -> None:
    """Eight requests of 1,000 output tokens: step by step, one event per step (about 1,000
    per request once they overlap); fast-forward, a few per request (arrivals, finishes,
    samples). Events are simpy's own count, so this is no timing assertion."""
    fast, slow = _both_ways(_one_instance(1000, "20 req/s", 8), 8)
    _agree(fast, slow)
    assert slow.summary.events > 1000
    assert fast.summary.events * 10 < slow.summary.events


def test_disaggregated_long_outputs_take_a_tenth_of_the_events() -> None:
    """The same through a prefill and a decode instance joined by a link: each request's KV
    lands on the decode side while its batch is fast-forwarded; the run planned to end in the
    step it may land in is not cut, and the movement itself costs a few events (conversion,
    latency, completion), not a process."""
    data = _one_instance(1000, "20 req/s", 8)
    serve = data["pools"][0]
    data["pools"] = [
        {**serve, "name": "prefill", "role": "prefill"},
        {**serve, "name": "decode", "role": "decode", "precision": {"kv": "fp8_e4m3"}},
    ]
    data["kv"] = {
        "transfer_format": "fp8_e4m3",
        "conversions": [{"kind": "dtype", "from": "bf16", "to": "fp8_e4m3", "where": "producer"}],
    }
    data["interconnect"] = {
        "paths": [
            {
                "from": "prefill",
                "to": "decode",
                "hops": [
                    {"name": "nic", "kind": "nic", "bandwidth": "100 Gbps", "latency": "5 us"}
                ],
            }
        ]
    }
    fast, slow = _both_ways(data, 8)
    _agree(fast, slow)
    assert slow.summary.events > 1000
    assert fast.summary.events * 10 < slow.summary.events


def _long_prompts(rate: str, requests: int) -> dict[str, Any]:
    """A prefill and a decode instance of Llama-3.1-8B; 40,000-token prompts in 2,048-token
    chunks (twenty prompt steps each) and short answers."""
    data = _one_instance(16, rate, requests)
    data["model"] = "Llama-3.1-8B"
    serve = data["pools"][0]
    batching = {"max_num_seqs": 16, "max_batched_tokens": 2048}
    data["pools"] = [
        {**serve, "name": "prefill", "role": "prefill", "batching": batching},
        {**serve, "name": "decode", "role": "decode"},
    ]
    data["workload"]["synthetic"]["input_tokens"] = 40_000
    data["interconnect"] = {
        "paths": [
            {
                "from": "prefill",
                "to": "decode",
                "hops": [
                    {
                        "name": "nvlink",
                        "kind": "scale_up",
                        "bandwidth": "450 GB/s",
                        "latency": "10 us",
                    }
                ],
            }
        ]
    }
    return data


def test_a_long_prompts_chunks_take_one_event() -> None:
    """Alone on its instance, a long prompt's chunks are known until it completes: one
    event, where step by step takes one per chunk. Arrivals while one computes join at the
    next step (the run is cut there), as step by step."""
    sparse, dense = (
        _both_ways(_long_prompts("0.5 req/s", 6), 6),
        _both_ways(_long_prompts("200 req/s", 6), 6),
    )
    for fast, slow in (sparse, dense):
        _agree(fast, slow)
    fast, slow = sparse
    assert slow.summary.events - fast.summary.events >= 6 * 15  # ~20 chunks, one event each


def test_a_crash_and_a_straggler_mid_prompt_run_agree_with_step_by_step() -> None:
    data = _long_prompts("1 req/s", 4)
    data["faults"] = {
        "events": [
            {"kind": "straggler", "target": "prefill[0]", "at": "0.05 s", "duration": "1.3 s",
             "factor": 2.5},
            {"kind": "instance_crash", "target": "prefill[0]", "at": "2.02 s", "duration": "0.2 s"},
        ]
    }  # fmt: skip
    fast, slow = _both_ways(data, 4)
    _agree(fast, slow)
    assert fast.summary.events < slow.summary.events


def test_a_straggler_mid_run_slows_the_steps_after_it_only() -> None:
    """A straggler that starts while a long decode is being fast-forwarded cuts the run at
    the step under way: the steps that started before keep their length, as step by step."""
    data = _one_instance(2000, "10 req/s", 2)
    data["faults"] = {
        "events": [{"kind": "straggler", "target": "serve[0]", "at": "0.5 s",
                    "duration": "0.3 s", "factor": 3.0}]
    }  # fmt: skip
    fast, slow = _both_ways(data, 2)
    _agree(fast, slow)
    assert fast.summary.events * 10 < slow.summary.events
    unslowed = _both_ways(_one_instance(2000, "10 req/s", 2), 2)[0]
    assert (fast.requests["finish_s"] > unslowed.requests["finish_s"]).all()


def test_step_times_of_a_steady_batch_match_one_by_one() -> None:
    """The vectorised prices of a batch's next steps are the scalar prices, float for float
    (with and without a serving runtime's host overhead)."""
    for runtime in (None, "vllm"):
        data = _one_instance(100, "1 req/s", 1)
        if runtime is not None:
            data["pools"][0]["runtime"] = runtime
        scenario = scenario_from_dict(data)
        pool = scenario.spec.pools[0]
        sm = step_model_for_pool(scenario.model, scenario.profiles[pool.name], pool)
        sums = 5000 + 37 * np.arange(300)
        vector = sm.decode_times_from_sums(37, sums)
        scalar = [sm.decode_time_from_sum(37, int(s)) for s in sums]
        assert vector.tolist() == scalar
        assert sm.decode_times_stepping(37, 5000, 300) == scalar


def test_sparse_attention_steps_are_fast_forwarded_exactly() -> None:
    """GLM-5.1 (MLA with DeepSeek sparse attention) prices each step over every context, not
    from the context sum: its runs price step by step, with the same results."""
    scenario = load_scenario(SCENARIOS / "cphd-glm51.yaml", ["workload.warmup_requests=0"])
    fast = simulate(scenario, max_requests=12)
    slow = simulate(scenario, max_requests=12, fast_forward=False)
    _agree(fast, slow)
    assert fast.summary.events * 10 < slow.summary.events


def test_growing_contexts_price_as_one_step_at_a_time() -> None:
    """Sparse attention caps each sequence's attended tokens (index_topk), so a run prices
    each step from its contexts: the attended and capped sums of all its steps at once give
    the same floats as one decode_time per step, sequences below, at and above the cap."""
    scenario = load_scenario(SCENARIOS / "cphd-glm51.yaml")
    decode = next(p for p in scenario.spec.pools if p.role == "decode")
    sm = step_model_for_pool(scenario.model, scenario.profiles[decode.name], decode)
    topk = scenario.model.index_topk
    context = np.array([5, topk - 3, topk, 40_000], dtype=np.int64)
    assert sm.decode_times_growing(context, 9) == [sm.decode_time(context + i) for i in range(9)]


def test_mla_steps_from_context_sums_price_as_one_step_at_a_time() -> None:
    """MLA (DeepSeek-V3) has no closed form in the context sum, so a run prices its steps'
    attention kernels over arrays: the same floats as decode_time_from_sum step by step."""
    scenario = load_scenario(SCENARIOS / "cphd-glm51.yaml", ["model=DeepSeek-V3"])
    decode = next(p for p in scenario.spec.pools if p.role == "decode")
    sm = step_model_for_pool(scenario.model, scenario.profiles[decode.name], decode)
    one_by_one = [sm.decode_time_from_sum(48, 900_000 + 48 * i) for i in range(30)]
    assert sm.decode_times_stepping(48, 900_000, 30) == one_by_one
    assert sm.decode_times_from_sums(48, 900_000 + 48 * np.arange(30)).tolist() == one_by_one
