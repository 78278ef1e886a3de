"""Simulator speed with and without fast-forward of steady decode, per workload shape.

Each shape is simulated twice in the same run: step by step (``fast_forward=False``, one simpy
event per batch step and two per KV transfer, the baseline) and with fast-forward (the
default). The table gives events per request (simpy's own count of events processed),
requests per wall-second, wall and CPU seconds, and the speed-up in CPU seconds (steadier than
wall time on a shared machine);
the two runs' per-request rows are compared too (they must agree to relative 1e-9).

Shapes: ``short-chat``, ``long-prompts`` and ``long-outputs`` (>= 1,000 output tokens) through a
heterogeneous PD cluster of 16 instances (6 H100 prefill, 10 H20 decode), and ``overloaded``:
``scenarios/qwen3-32b-6p2d.yaml`` at its own rate (more than its two decode instances serve).

Issue #18's targets, on the 2-core dev machine: >= 10x fewer events per request on a
decode-heavy shape; ``overloaded`` at 100,000 requests under 5 s; a 1M-request trace under
2 GiB peak RSS (``--million``, fast-forward only).

    python benchmarks/bench_sim.py [--requests 20000] [--overloaded 100000] [--only SHAPE]
    python benchmarks/bench_sim.py --million
"""

from __future__ import annotations

import argparse
import copy
import resource
import time
from pathlib import Path
from typing import Any

import pandas as pd

import hetsim
from hetsim.simulation import SimulationResult, simulate

CLUSTER = {
    "name": "bench-16",
    "model": "Llama-3.1-8B",
    "pools": [
        {
            "name": "prefill",
            "role": "prefill",
            "accelerator": "nvidia-h100-sxm",
            "instances": 6,
            "batching": {"max_num_seqs": 32, "max_batched_tokens": 8192},
            "router": "least_outstanding_tokens",
        },
        {
            "name": "decode",
            "role": "decode",
            "accelerator": "nvidia-h20",
            "instances": 10,
            "precision": {"weights": "bf16", "activations": "bf16", "kv": "fp8_e4m3"},
            "batching": {"max_num_seqs": 256, "max_batched_tokens": 256},
            "router": "least_kv_load",
        },
    ],
    "kv": {
        "transfer_format": "fp8_e4m3",
        "conversions": [{"kind": "dtype", "from": "bf16", "to": "fp8_e4m3", "where": "producer"}],
    },
    "interconnect": {
        "paths": [
            {
                "from": "prefill",
                "to": "decode",
                "hops": [
                    {"name": "tx", "kind": "nic", "bandwidth": "400 Gbps", "latency": "5 us"},
                    {
                        "name": "rx",
                        "kind": "nic",
                        "bandwidth": "400 Gbps",
                        "latency": "5 us",
                        "shared_by": "destination_instance",
                    },
                ],
            }
        ]
    },
    "sla": {"ttft": "2 s", "tpot": "100 ms"},
    "seed": 0,
}


def _lengths(mean: int, cv: float, low: int, high: int) -> dict[str, Any]:
    return {"dist": "lognormal", "mean": mean, "cv": cv, "min": low, "max": high}


#: (rate, input lengths, output lengths) of each shape on the 16-instance cluster (assumed
#: shapes: Azure-conversation-like chat; RAG-like long prompts; reasoning-like long outputs)
SHAPES = {
    "short-chat": ("220 req/s", _lengths(1155, 0.9, 16, 16000), _lengths(211, 0.9, 1, 2000)),
    "long-prompts": ("20 req/s", _lengths(12000, 0.5, 4000, 32000), _lengths(200, 0.9, 1, 1000)),
    "long-outputs": ("15 req/s", _lengths(512, 0.5, 64, 2048), _lengths(1500, 0.3, 1000, 4000)),
}
OVERLOADED = Path(__file__).resolve().parent.parent / "scenarios" / "qwen3-32b-6p2d.yaml"


def _scenario(shape: str, requests: int) -> hetsim.Scenario:
    rate, inputs, outputs = SHAPES[shape]
    data = copy.deepcopy(CLUSTER)
    data["workload"] = {
        "synthetic": {
            "rate": rate,
            "requests": requests,
            "input_tokens": inputs,
            "output_tokens": outputs,
        }
    }
    return hetsim.scenario_from_dict(data)


def _run(scenario, requests: int, fast_forward: bool) -> tuple[SimulationResult, float, float]:
    """The run, its wall seconds and its CPU seconds (steadier on a shared machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = simulate(
        scenario, max_requests=requests, sample_interval=10.0, fast_forward=fast_forward
    )
    return result, time.perf_counter() - start, time.process_time() - cpu


def _row(shape: str, mode: str, result: SimulationResult, wall: float, cpu: float) -> dict:
    s = result.summary
    return {
        "shape": shape,
        "mode": mode,
        "requests": s.requests,
        "events/request": s.events / s.requests,
        "requests/s": s.requests / wall,
        "wall_s": wall,
        "cpu_s": cpu,
    }


def compare(shape: str, requests: int) -> list[dict[str, Any]]:
    scenario = hetsim.load_scenario(OVERLOADED) if shape == "overloaded" else None
    scenario = scenario or _scenario(shape, requests)
    slow, slow_wall, slow_cpu = _run(scenario, requests, False)
    fast, fast_wall, fast_cpu = _run(scenario, requests, True)
    pd.testing.assert_frame_equal(
        fast.requests, slow.requests, check_exact=False, rtol=1e-9, atol=0.0
    )
    rows = [
        _row(shape, "step-by-step", slow, slow_wall, slow_cpu),
        _row(shape, "fast-forward", fast, fast_wall, fast_cpu),
    ]
    rows[1]["cpu speed-up"] = slow_cpu / fast_cpu
    rows[1]["fewer events"] = slow.summary.events / fast.summary.events
    return rows


def million() -> None:
    n = 1_000_000
    start = time.perf_counter()
    result = simulate(_scenario("short-chat", n), max_requests=n, sample_interval=10.0)
    wall = time.perf_counter() - start
    s = result.summary
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"requests      {s.requests:,} ({s.completed:,} completed, {s.failed:,} failed)")
    print(f"wall          {wall:.1f} s ({s.requests / wall:,.0f} requests/s)")
    print(f"events        {s.events:,} ({s.events / s.requests:.1f} per request)")
    print(f"peak RSS      {rss:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000, help="per 16-instance shape")
    parser.add_argument("--overloaded", type=int, default=100_000, help="for qwen3-32b-6p2d")
    parser.add_argument("--only", choices=[*SHAPES, "overloaded"], help="one shape")
    parser.add_argument("--million", action="store_true", help="1M requests, peak RSS")
    args = parser.parse_args()
    if args.million:
        million()
        return
    rows = []
    for shape in [args.only] if args.only else [*SHAPES, "overloaded"]:
        n = args.overloaded if shape == "overloaded" else args.requests
        rows += compare(shape, n)
    table = pd.DataFrame(rows).set_index(["shape", "mode"])
    with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 120):
        print(table.to_string(na_rep=""))


if __name__ == "__main__":
    main()
