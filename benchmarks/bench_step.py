"""Fast-path cost of the step-time model (issue target: <= 20 us per 64-request decode step).

Prints microseconds per call for decode and prefill steps of several bundled instances, with two
baselines timed in the same run: `np.sum` over the same context array (the least any
implementation must do) and the uncached explanation path (`explain_decode`).

    python benchmarks/bench_step.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import hetsim
from hetsim.perf.step import step_model_for_pool

ROOT = Path(__file__).resolve().parent.parent


def per_call(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def time_pool(sm, contexts: list[np.ndarray]) -> tuple[float, float, float, float]:
    counter = iter(range(10**9))
    new, cached = np.array([2048, 512, 4096]), np.array([0, 8000, 30000])
    decode = per_call(lambda: sm.decode_time(contexts[next(counter) % 256]), 20_000)
    prefill = per_call(lambda: sm.prefill_time(new, cached), 20_000)
    baseline = per_call(lambda: contexts[next(counter) % 256].sum(), 20_000)
    explain = per_call(lambda: sm.explain_decode(contexts[0]), 500)
    return decode, prefill, baseline, explain


def main() -> None:
    rng = np.random.default_rng(0)
    print(
        f"{'scenario/pool':44s} {'decode64 us':>12s} {'prefill us':>11s} "
        f"{'np.sum us':>10s} {'explain us':>11s} {'decode/np.sum':>14s}"
    )
    for name in ("qwen3-32b-6p2d", "llama70b-h100-vs-h20", "cphd-glm51"):
        sc = hetsim.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        for pool in sc.spec.pools:
            sm = step_model_for_pool(sc.model, sc.profiles[pool.name], pool)
            # a realistic mix of contexts, changing every call as in a simulation
            contexts = [rng.integers(100, 32_000, size=64) for _ in range(256)]
            decode, prefill, baseline, explain = time_pool(sm, contexts)
            print(
                f"{name + '/' + pool.name:44s} {decode:12.2f} {prefill:11.2f} "
                f"{baseline:10.2f} {explain:11.1f} {decode / baseline:14.1f}"
            )


if __name__ == "__main__":
    main()
