"""Per-pool quantities of the screen, cached by value for one plan session.

Candidates share pools (the same prefill pool meets many decode pools), so what a pool does
with the workload sample is computed once per plan. The cache is keyed by what the numbers
depend on — the sample's content, the model, the accelerator profile's content and the pool's
configuration — never by object identity: a later plan in the same process with another
workload must not get this one's numbers. The step models are the session's too.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from hetsim.perf.speculative import speculative_step
from hetsim.perf.step import StepModel, StepModels
from hetsim.planner.sample import WorkloadSample
from hetsim.sim.scheduler import prefill_chunks
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import PoolSpec

__all__ = ["PoolCosts", "decode_time", "token_time"]

#: a decode batch may run steps up to this multiple of the TPOT bound: requests average their
#: steps and the attainment target lets a share of them miss
TPOT_SLACK = 1.25


def decode_time(sm: StepModel, batch: int, context: float) -> float:
    """One decode step of ``batch`` sequences, each with ``context`` tokens cached."""
    if sm.model.is_sparse_attention:
        return sm.decode_time(np.full(batch, int(context), dtype=np.int64))
    return sm.decode_time_from_sum(batch, int(batch * context))


def token_time(sm: StepModel, pool: PoolSpec, batch: int, context: float) -> float:
    """Seconds per output token of each of ``batch`` sequences with ``context`` tokens cached:
    one decode step, or under speculative decoding one verify-and-draft step over the most
    tokens it can emit (k + 1). A lower bound either way, as the screen needs: rejected drafts
    only lengthen it."""
    spec = pool.speculative
    if spec is None:
        return decode_time(sm, batch, context)
    contexts = np.full(batch, int(context), dtype=np.int64)
    return speculative_step(sm, spec.tokens).step_time(contexts) / (spec.tokens + 1)


class PoolCosts:
    """The screen's per-pool numbers, memoised for one plan session, and the session's step
    models (not the module-wide default: a plan's caches all go when the plan does)."""

    def __init__(self) -> None:
        self._prefill: dict[tuple, tuple[np.ndarray, float]] = {}
        self._decode: dict[tuple, tuple[float, int, float]] = {}
        self._step_models = StepModels()

    def step_model(self, scenario: Scenario, pool: PoolSpec) -> StepModel:
        """The step model of a pool's instances, with the profile's own calibration if any."""
        return self._step_models.for_pool(scenario.model, scenario.profiles[pool.name], pool)

    @staticmethod
    def key(scenario: Scenario, pool: PoolSpec, sample: WorkloadSample) -> tuple:
        """What a pool's numbers depend on, by value."""
        return (
            sample.digest,
            scenario.model,
            scenario.profiles[pool.name].model_dump_json(),
            pool.model_dump_json(exclude={"name", "instances", "router"}),
        )

    def prefill(
        self, sm: StepModel, pool: PoolSpec, sample: WorkloadSample, key: tuple
    ) -> tuple[np.ndarray, float]:
        """(each request's prefill time alone, the sample's busy time when saturated)."""
        found = self._prefill.get(key)
        if found is None:
            found = _prefill_alone(sm, pool, sample), _prefill_saturated(sm, pool, sample)
            self._prefill[key] = found
        return found

    def decode(
        self,
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
        found = self._decode.get(full_key)
        if found is None:
            found = _decode_capacity(sm, pool, kv_tokens, sample, tpot * slack)
            self._decode[full_key] = found
        return found


def _prefill_alone(sm: StepModel, pool: PoolSpec, sample: WorkloadSample) -> np.ndarray:
    batching = pool.batching
    budget = batching.max_batched_tokens
    chunk = batching.chunk_size or budget
    alone = np.zeros(len(sample.input))
    for i, (n_in, c) in enumerate(zip(sample.input.tolist(), sample.cached.tolist(), strict=True)):
        done, t = c, 0.0
        while done < n_in:
            (n,), _ = prefill_chunks(
                [n_in - done], (), token_budget=budget, chunk=chunk, max_seqs=batching.max_num_seqs
            )
            t += sm.step_time(np.array([n]), np.array([done]))
            done += n
        alone[i] = t
    return alone


def _prefill_saturated(sm: StepModel, pool: PoolSpec, sample: WorkloadSample) -> float:
    """The sample's busy time with every request queued at once, packed as the simulator's
    prefill scheduler packs steps (see :func:`hetsim.sim.scheduler.prefill_chunks`)."""
    batching = pool.batching
    budget = batching.max_batched_tokens
    chunk = batching.chunk_size or budget
    waiting = deque(zip(sample.input.tolist(), sample.cached.tolist(), strict=True))
    running: list[list[int]] = []  # [input, computed]
    busy = 0.0
    while waiting or running:
        chunks, joined = prefill_chunks(
            [n_in - done for n_in, done in running],
            (n_in - done for n_in, done in waiting),
            token_budget=budget,
            chunk=chunk,
            max_seqs=batching.max_num_seqs,
        )
        running.extend([list(waiting.popleft()) for _ in range(joined)])
        served = running[: len(chunks)]
        busy += sm.step_time(np.array(chunks), np.array([done for _, done in served]))
        for r, n in zip(served, chunks, strict=True):
            r[1] += n
        running = [r for r in running if r[1] < r[0]]
    return busy


def _decode_capacity(
    sm: StepModel, pool: PoolSpec, kv_tokens: int, sample: WorkloadSample, step_bound: float
) -> tuple[float, int, float]:
    context = float(np.mean(sample.input + sample.output / 2))
    cap = max(1, min(pool.batching.max_num_seqs, int(kv_tokens // max(context, 1.0))))
    if token_time(sm, pool, 1, context) > step_bound:
        return 0.0, 1, token_time(sm, pool, 1, context)
    # step time grows with the batch: the largest batch whose step meets the bound
    lo, hi = 1, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if token_time(sm, pool, mid, context) <= step_bound:
            lo = mid
        else:
            hi = mid - 1
    step = token_time(sm, pool, lo, context)
    return lo / step, lo, step
