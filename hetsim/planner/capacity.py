"""Per-pool quantities of the screen, cached by value for one plan session.

Candidates share pools (the same prefill pool meets many decode pools), so what a pool does
with the workload sample is computed once per plan. The cache is keyed by what the numbers
depend on — the sample's content, the model, the accelerator profile's content and the pool's
configuration — never by object identity: a later plan in the same process with another
workload must not get this one's numbers. The step models are the session's too.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from hetsim.perf.speculative import speculative_step
from hetsim.perf.step import StepModel, StepModels
from hetsim.planner.sample import WorkloadSample
from hetsim.sim.scheduler import prefill_chunks
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import PoolSpec, SLASpec

__all__ = ["PoolCosts", "decode_bound", "decode_time", "token_time"]


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
        self._bound: dict[tuple, float] = {}
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
    ) -> tuple[float, int, float]:
        """(tokens/s of one instance at the largest batch whose step meets the TPOT bound, that
        batch, its step) at the sample's mean context: an estimate, not a bound (see
        :func:`decode_bound`)."""
        full_key = (*key, tpot, kv_tokens)
        found = self._decode.get(full_key)
        if found is None:
            found = _decode_capacity(sm, pool, kv_tokens, sample, tpot)
            self._decode[full_key] = found
        return found

    def decode_bound(
        self,
        sm: StepModel,
        pool: PoolSpec,
        kv_tokens: int,
        sample: WorkloadSample,
        sla: SLASpec,
        key: tuple,
    ) -> float:
        """Requests/s one instance can serve at most (see :func:`decode_bound`)."""
        full_key = (*key, kv_tokens, sla.tpot, sla.attainment)
        found = self._bound.get(full_key)
        if found is None:
            found = decode_bound(sm, pool, kv_tokens, sample, sla.tpot, sla.attainment)
            self._bound[full_key] = found
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


def _token_times(
    sm: StepModel, pool: PoolSpec, kv_tokens: int, sample: WorkloadSample
) -> np.ndarray:
    """Seconds per output token at every batch size up to the cap, each sequence at the shortest
    context a sampled request decodes at (its prompt): the least a step of that batch can take.
    The cap is ``max_num_seqs`` and KV capacity at that context."""
    context = _shortest(sample)
    cap = _batch_cap(pool, kv_tokens, context)
    return np.array([token_time(sm, pool, b, context) for b in range(1, cap + 1)])


def _shortest(sample: WorkloadSample) -> int:
    """The shortest context a sampled request decodes at: its prompt (at least one token)."""
    return max(int(sample.input.min()), 1) if len(sample.input) else 1


def _batch_cap(pool: PoolSpec, kv_tokens: int, context: float) -> int:
    """The most sequences a decode step holds: ``max_num_seqs``, and what KV capacity holds
    at ``context`` tokens each (at least one)."""
    return max(1, min(pool.batching.max_num_seqs, int(kv_tokens // max(context, 1))))


def _meeting_token_time(per_token: np.ndarray, tpot: float) -> float:
    """The least instance time per output token of requests that meet the TPOT bound.

    A meeting request's gaps sum to at most ``tpot`` × its gaps, and the steps it sits in run
    one after another, so over all meeting tokens the token-weighted mean step (per token) is
    at most ``tpot``. Each step lasts at least the per-token time of its batch, and the batch
    holds at least the meeting sequences in it. The least time per meeting token is then a
    linear programme over how meeting tokens spread across batch sizes, whose optimum mixes at
    most two sizes: one at or under the bound and one over it. Riders (requests that miss)
    only lengthen steps, so leaving them out keeps this a lower bound.
    """
    # a step of b sequences lasts at least what any larger batch's step lasts at its least
    floor = np.minimum.accumulate(per_token[::-1])[::-1]
    per_meeting = floor / np.arange(1, len(floor) + 1)
    ok = floor <= tpot
    if not ok.any():
        return math.inf
    best = float(per_meeting[ok].min())
    over = ~ok
    for chunk in np.array_split(np.flatnonzero(ok), max(1, int(ok.sum()) // 256)):
        f1, g1 = floor[chunk][:, None], per_meeting[chunk][:, None]
        f2, g2 = floor[over][None, :], per_meeting[over][None, :]
        share = (f2 - tpot) / (f2 - f1)  # of meeting tokens at the size under the bound
        if share.size:
            best = min(best, float((share * g1 + (1 - share) * g2).min()))
    return best


def _least_step(sm: StepModel, batch: int, kv: float, shortest: int) -> float:
    """The least step time of ``batch`` sequences holding ``kv`` context tokens between them,
    each at least ``shortest``: the sum is all a dense model's decode depends on; a sparse one
    attends at most ``index_topk`` tokens per sequence, least when one sequence holds the rest."""
    if not sm.model.is_sparse_attention:
        return sm.decode_time_from_sum(batch, int(kv))
    contexts = np.full(batch, shortest, dtype=np.int64)
    contexts[0] = int(kv) - (batch - 1) * shortest
    return sm.decode_time(contexts)


def _kv_bound(sm: StepModel, pool: PoolSpec, kv_tokens: int, sample: WorkloadSample) -> float:
    """Requests/s one decode instance can serve at most given what its KV holds, up to the
    sample. Each request sits in at least (output − 1) steps holding at least its prompt, so a
    long run's steps must carry, per request served, the mean gaps in sequences and the mean
    prompt × gaps in held context; no step holds more context than KV capacity, and a step
    lasts at least :func:`_least_step` of what it holds. Over every mixture of step shapes
    (batch, context held) the rate is at most the best convex combination of their per-second
    sequences and context (a linear programme with two constraints). Speculative pools emit
    several tokens a step: not bounded here (``inf``)."""
    n = len(sample.input)
    if pool.speculative is not None or n == 0:
        return math.inf
    gaps = np.maximum(sample.output - 1, 0).astype(np.float64)
    per_seq, per_context = float(gaps.mean()), float((gaps * sample.input).mean())
    shortest = _shortest(sample)
    cap = _batch_cap(pool, kv_tokens, shortest)
    if per_seq <= 0 or per_context <= 0:
        return math.inf
    rates = []  # (sequence-steps per second / per_seq, context per second / per_context)
    for batch in range(1, cap + 1):
        kv = np.geomspace(batch * shortest, kv_tokens, 24)
        step = np.array([_least_step(sm, batch, held, shortest) for held in kv])
        seqs, context = batch / step / per_seq, kv / step / per_context
        rates += zip(seqs.tolist(), context.tolist(), strict=True)
        # between two sampled shapes the step grows with the context held, so sequences per
        # second fall and context per second rises (the step grows less than in proportion):
        # the corner of the two dominates every shape between them, keeping this a bound
        rates += zip(seqs[:-1].tolist(), context[1:].tolist(), strict=True)
    return _best_mixture(np.array(rates))


def _best_mixture(points: np.ndarray) -> float:
    """max over convex combinations of the rows (x, y) of min(x, y)."""
    # a point another beats in both coordinates adds nothing to any mixture: keep the front
    order = np.lexsort((-points[:, 1], -points[:, 0]))  # x falling, ties by y falling
    ranked = points[order]
    best_y = np.maximum.accumulate(ranked[:, 1])
    keep = np.concatenate(([True], ranked[1:, 1] > best_y[:-1]))
    points = ranked[keep]
    x, y = points[:, 0], points[:, 1]
    best = float(np.minimum(x, y).max())
    hi, lo = points[x > y], points[x < y]
    if len(hi) and len(lo):
        xi, yi = hi[:, 0][:, None], hi[:, 1][:, None]
        xj, yj = lo[:, 0][None, :], lo[:, 1][None, :]
        share = (yj - xj) / ((xi - yi) + (yj - xj))  # of the first where the two meet
        best = max(best, float((share * xi + (1 - share) * xj).max()))
    return best


def decode_bound(
    sm: StepModel,
    pool: PoolSpec,
    kv_tokens: int,
    sample: WorkloadSample,
    tpot: float,
    attainment: float,
) -> float:
    """Requests/s one decode instance can serve at most with ``attainment`` of them within
    ``tpot``, up to the sample. Three proofs, the least holds:

    * **ceiling** — every output token is emitted by a step, and no batch emits more tokens
      per second than the best batch size at the shortest context;
    * **KV occupancy** — what the steps must hold of every request's prompt, within KV
      capacity (:func:`_kv_bound`);
    * **meeting tokens** — requests that meet the SLA are at least the ``attainment`` share of
      them with the fewest gaps (output tokens − 1), and their gaps cost the instance at least
      :func:`_meeting_token_time` each.

    The batch whose step meets the TPOT bound is *not* a bound: a request's TPOT is the mean of
    its gaps and attainment lets a share of requests miss, so larger batches may be sustained.
    """
    per_token = _token_times(sm, pool, kv_tokens, sample)
    n = len(sample.output)
    mean_output = float(np.mean(sample.output)) if n else 0.0
    ceiling = float(np.max(np.arange(1, len(per_token) + 1) / per_token))
    bounds = [ceiling / mean_output if mean_output > 0 else math.inf]
    gaps = np.sort(np.maximum(sample.output - 1, 0))[: math.ceil(attainment * n)]
    meeting_gaps = float(gaps.sum()) / n if n else 0.0
    if meeting_gaps > 0:
        bounds.append(1.0 / (_meeting_token_time(per_token, tpot) * meeting_gaps))
    bounds.append(_kv_bound(sm, pool, kv_tokens, sample))
    return min(bounds)


def _decode_capacity(
    sm: StepModel, pool: PoolSpec, kv_tokens: int, sample: WorkloadSample, step_bound: float
) -> tuple[float, int, float]:
    context = float(np.mean(sample.input + sample.output / 2))
    cap = _batch_cap(pool, kv_tokens, context)
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
