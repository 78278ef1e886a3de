"""Fast-path cost of the step-time model (issue target: <= 20 us per 64-request decode step).

Prints microseconds per call for decode and prefill steps of several bundled instances, with two
baselines timed in the same run: `np.sum` over the same context array (the least any
implementation must do) and the uncached explanation path (`explain_decode`).

Then the same pools on NVIDIA profiles with measured kernel tables (the pool given
`runtime: vllm`), timed beside the roofline step model of the same pool in the same run:
per-call decode (64 sequences, contexts changing every call), decode from the context sum (the
simulator's path) and prefill, and the measured/roofline ratio. Needs the nvidia extra, or
`--tables FILE.npz` from `hetsim calibrate --from aiconfigurator`.

    python benchmarks/bench_step.py [--tables FILE.npz]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import hetsim
from hetsim.errors import InputError
from hetsim.perf.step import StepModels, step_model_for_pool

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


def time_measured(sm, contexts: list[np.ndarray]) -> tuple[float, float, float]:
    counter = iter(range(10**9))
    sums = [(int(c.size), int(c.sum())) for c in contexts]
    new, cached = np.array([2048, 512, 4096]), np.array([0, 8000, 30000])
    decode = per_call(lambda: sm.decode_time(contexts[next(counter) % 256]), 20_000)
    from_sum = float("nan")  # sparse attention needs each context
    if not sm.model.is_sparse_attention:
        from_sum = per_call(lambda: sm.decode_time_from_sum(*sums[next(counter) % 256]), 20_000)
    prefill = per_call(lambda: sm.prefill_time(new, cached), 20_000)
    return decode, from_sum, prefill


def measured_section(tables: str | None) -> None:
    rng = np.random.default_rng(1)
    print(
        f"\n{'measured (runtime: vllm)':44s} {'source':>30s} {'decode64 us':>12s} "
        f"{'from_sum us':>12s} {'prefill us':>11s} {'decode/roofline':>16s}"
    )
    for name in ("qwen3-32b-6p2d", "llama70b-h100-vs-h20", "cphd-glm51"):
        sc = hetsim.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        for pool in sc.spec.pools:
            profile = sc.profiles[pool.name]
            if tables is not None:
                profile = profile.model_copy(update={"measured_tables": tables})
            if profile.measured_tables is None:
                continue
            contexts = [rng.integers(100, 32_000, size=64) for _ in range(256)]
            models = StepModels()  # a fresh session: no memo shared with the run above
            try:
                sm = models.for_pool(sc.model, profile, pool.model_copy(update={"runtime": "vllm"}))
            except InputError as e:
                print(f"{name + '/' + pool.name:44s} skipped: {e.message}")
                continue
            roof = models.for_pool(sc.model, profile, pool)
            row = time_measured(sm, contexts)
            base = time_measured(roof, contexts)
            for label, t, m in (("measured", row, sm), ("roofline", base, roof)):
                print(
                    f"{name + '/' + pool.name + ' ' + label:44s} {str(m.provenance):>30s} "
                    f"{t[0]:12.2f} {t[1]:12.2f} {t[2]:11.2f} {t[0] / base[0]:16.2f}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", help="a .npz from hetsim calibrate --from aiconfigurator")
    args = parser.parse_args()
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
    measured_section(args.tables)


if __name__ == "__main__":
    main()
