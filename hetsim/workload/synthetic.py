"""Synthetic workloads: arrival processes, length distributions and a prefix-sharing model.

Arrivals (the first request arrives at t = 0):

- ``poisson``: exponential gaps with mean 1/``rate`` (inter-arrival CV 1).
- ``gamma``: gamma gaps with shape 1/cv² and mean 1/``rate``, so the gaps' coefficient of
  variation is ``cv``: above 1 burstier than Poisson, below 1 more regular.
- ``bursty``: on/off. Poisson arrivals at ``rate`` during ``on`` seconds, then ``off`` seconds of
  silence, repeating from an on period at t = 0. It is generated as a Poisson process on the "on"
  clock mapped onto the wall clock, so the long-run mean rate is ``rate·on/(on+off)``.

Lengths (token counts, at least 1):

- ``fixed``: ``value``; ``uniform``: integers in [``min``, ``max``];
- ``lognormal``: mean ``mean`` and coefficient of variation ``cv`` (σ² = ln(1 + cv²),
  μ = ln(mean) − σ²/2), rounded, then clipped to ``min``/``max`` when given (clipping moves the
  moments; without it the sample mean and CV approach ``mean`` and ``cv``);
- ``empirical``: resampled with replacement from a trace's prompt (for ``input_tokens``) or output
  (for ``output_tokens``) lengths, after that trace's own window, sampling and caps; clipped to
  ``min``/``max`` when given. When both lengths name the same trace, (input, output) pairs are
  resampled together, so their correlation survives.

Prefix-sharing model (``prefix_hit_rate`` = h > 0). Requests carry prefix block hashes in the
representation of a Mooncake trace's ``hash_ids``: one id per ``block_tokens`` block of the prompt,
the last block possibly partial; two requests share a block exactly when their prompts agree up
to the end of that block. Each request picks one of ``prefix_groups`` shared prefixes (system
prompts / conversations) uniformly at random; its prompt is the first k full blocks of that
prefix followed by blocks of its own (ids never used again). Block j of group g's prefix has the
same id in every request that uses it. The hit share of a request is the share of its prompt
tokens in blocks that an earlier request already produced (an unbounded cache). k is chosen
request by request so that the cumulative hit share tracks h: with ``T`` = h·(prompt tokens so
far) and ``A`` = tokens so far in previously seen blocks, k = round((T − A)/block), limited to
0…⌊prompt/block⌋. Blocks that are new to a group (the group's prefix growing to a depth no
request reached before) are misses, and the deficit they leave is made up by later requests, so
over many requests the hit share converges to h — as far as full blocks allow: a prompt shorter
than one block can never hit, and a partial last block is always the request's own.

Randomness: one ``numpy.random.SeedSequence(seed)`` spawns independent generators for arrivals,
input lengths, output lengths and prefix choices, each consumed in request order, so the same
spec and seed give identical arrays whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from hetsim.errors import InputError
from hetsim.spec.workload import LengthSpec, SyntheticSpec, TraceSpec, lognormal_params
from hetsim.workload.chunk import RequestChunk
from hetsim.workload.traces import DEFAULT_CHUNK, iter_trace

__all__ = [
    "Arrivals",
    "SHARED_ID_BASE",
    "empirical_pool",
    "iter_synthetic",
    "length_sampler",
    "lognormal_params",
    "sampler",
]

#: prefix block ids of shared prefixes start here: group g's block j is BASE + g·2³² + j;
#: a request's own blocks count up from 0
SHARED_ID_BASE = 1 << 62
_GROUP_STRIDE = 1 << 32


class Arrivals:
    """Arrival times of an open loop (of requests, or of sessions: the spec's ``arrival``,
    ``rate``, ``cv``, ``on`` and ``off``), ``next(n)`` at a time."""

    def __init__(self, spec: SyntheticSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.clock = 0.0  # the last arrival (on the "on" clock for bursty)
        self.started = False

    def next(self, n: int) -> np.ndarray:
        spec, rng = self.spec, self.rng
        if spec.arrival == "gamma":
            shape = 1.0 / (spec.cv * spec.cv)
            gaps = rng.gamma(shape, 1.0 / (spec.rate * shape), n)
        else:  # poisson, and bursty on its "on" clock
            gaps = rng.exponential(1.0 / spec.rate, n)
        if not self.started:
            gaps[0] = 0.0
            self.started = True
        # cumsum runs left to right: starting from the carried clock gives bit-identical times
        # whatever the chunking
        t = np.cumsum(np.concatenate(([self.clock], gaps)))[1:]
        self.clock = float(t[-1])
        if spec.arrival == "bursty":
            periods = np.floor(t / spec.on)
            t = periods * (spec.on + spec.off) + (t - periods * spec.on)
        return t


def _uniform_index(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    # floor(u·size) rather than rng.integers: integers() buffers half-words within one call,
    # which would make the stream depend on how requests are split into chunks
    idx = (rng.random(n) * size).astype(np.int64)
    np.minimum(idx, size - 1, out=idx)
    return idx


def empirical_pool(
    trace: TraceSpec, base_dir: Path, seed: int, field: str
) -> tuple[np.ndarray, np.ndarray]:
    inputs, outputs = [], []
    for chunk in iter_trace(trace, base_dir, seed, field=field, lengths_only=True):
        inputs.append(chunk.input_tokens)
        outputs.append(chunk.output_tokens)
    return np.concatenate(inputs), np.concatenate(outputs)


def _clip(values: np.ndarray, spec: LengthSpec) -> np.ndarray:
    lo = spec.min if spec.min is not None else 1
    np.maximum(values, lo, out=values)
    if spec.max is not None:
        np.minimum(values, spec.max, out=values)
    return values


Sampler = Callable[[int], np.ndarray]


def sampler(spec: LengthSpec, rng: np.random.Generator, pool: np.ndarray | None) -> Sampler:
    if spec.dist == "fixed":
        value = spec.value or 1
        return lambda n: np.full(n, value, dtype=np.int64)
    if spec.dist == "uniform":
        lo, hi = spec.min or 1, spec.max or 1
        return lambda n: lo + _uniform_index(rng, n, hi - lo + 1)
    if spec.dist == "lognormal":
        assert spec.mean is not None and spec.cv is not None
        mu, sigma = lognormal_params(spec.mean, spec.cv)

        def lognormal(n: int) -> np.ndarray:
            return _clip(np.rint(rng.lognormal(mu, sigma, n)).astype(np.int64), spec)

        return lognormal
    assert pool is not None
    return lambda n: _clip(pool[_uniform_index(rng, n, len(pool))], spec)


LengthPairs = Callable[[int], tuple[np.ndarray, np.ndarray]]


def length_sampler(
    ins: LengthSpec,
    outs: LengthSpec,
    base_dir: Path,
    seed: int,
    rngs: tuple[np.random.Generator, np.random.Generator],
    field: str,
) -> LengthPairs:
    """``draw(n)``: the next n (input, output) length pairs, drawing inputs from ``rngs[0]`` and
    outputs from ``rngs[1]``; when both lengths resample the same trace, pairs are drawn
    together (by one index from ``rngs[0]``) so their correlation survives."""
    rng_in, rng_out = rngs
    pools: dict[str, np.ndarray] = {}
    joint = ins.dist == "empirical" and outs.dist == "empirical" and ins.trace == outs.trace
    for name, ls in (("input_tokens", ins), ("output_tokens", outs)):
        if ls.dist == "empirical":
            assert ls.trace is not None
            pool_in, pool_out = empirical_pool(ls.trace, base_dir, seed, f"{field}.{name}.trace")
            pools[name] = pool_in if name == "input_tokens" else pool_out
            if joint:
                pools["output_tokens"] = pool_out
                break
    in_order = {ls.order for ls in (ins, outs) if ls.dist == "empirical"}
    if "trace" in in_order:
        if not joint or in_order != {"trace"}:
            raise InputError(
                "lengths in trace order need input_tokens and output_tokens to name the same "
                "trace, both with order: trace",
                field=f"{field}.input_tokens.order",
                value="trace",
                allowed="the same `trace` and `order: trace` on both lengths, or order: resample",
            )
        return _in_order(pools["input_tokens"], pools["output_tokens"], ins, outs, field)
    if joint:

        def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
            idx = _uniform_index(rng_in, n, len(pools["input_tokens"]))
            return _clip(pools["input_tokens"][idx], ins), _clip(pools["output_tokens"][idx], outs)

        return pairs
    sample_in = sampler(ins, rng_in, pools.get("input_tokens"))
    sample_out = sampler(outs, rng_out, pools.get("output_tokens"))
    return lambda n: (sample_in(n), sample_out(n))


def _in_order(
    inputs: np.ndarray, outputs: np.ndarray, ins: LengthSpec, outs: LengthSpec, field: str
) -> LengthPairs:
    """``draw(n)`` giving the trace's rows in order; asking past its last row is an input error
    (a replay that repeated rows would no longer be the run it replays)."""
    taken = 0

    def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
        nonlocal taken
        if taken + n > len(inputs):
            raise InputError(
                f"the lengths' trace has {len(inputs):,} rows, fewer than the requests asked for "
                "in trace order",
                field=f"{field}.input_tokens.order",
                value="trace",
                allowed=f"at most {len(inputs):,} requests, or order: resample",
            )
        rows = slice(taken, taken + n)
        taken += n
        return _clip(inputs[rows].copy(), ins), _clip(outputs[rows].copy(), outs)

    return pairs


class _PrefixModel:
    """Chooses how many shared blocks each request reuses (see the module docstring)."""

    def __init__(self, spec: SyntheticSpec, rng: np.random.Generator) -> None:
        self.h = spec.prefix_hit_rate
        self.groups = spec.prefix_groups
        self.block = spec.block_tokens
        self.rng = rng
        self.depth = [0] * spec.prefix_groups  # deepest block of each prefix produced so far
        self.target = 0.0
        self.achieved = 0.0
        self.next_own = 0

    def hashes(self, inp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(inp)
        block, h, depth = self.block, self.h, self.depth
        group = _uniform_index(self.rng, n, self.groups)
        shared = np.empty(n, dtype=np.int64)
        target, achieved = self.target, self.achieved
        for i, (length, g) in enumerate(zip(inp.tolist(), group.tolist(), strict=True)):
            target += h * length
            k = int((target - achieved) / block + 0.5)
            full = length // block
            if k > full:
                k = full
            elif k < 0:
                k = 0
            d = depth[g]
            if k > d:
                achieved += d * block
                depth[g] = k
            else:
                achieved += k * block
            shared[i] = k
        self.target, self.achieved = target, achieved

        blocks = -(-inp // block)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(blocks, out=offsets[1:])
        owner = np.repeat(np.arange(n), blocks)
        pos = np.arange(offsets[-1], dtype=np.int64) - offsets[owner]
        is_shared = pos < shared[owner]
        ids = np.empty(len(pos), dtype=np.int64)
        ids[is_shared] = SHARED_ID_BASE + group[owner[is_shared]] * _GROUP_STRIDE + pos[is_shared]
        own = int(len(pos) - is_shared.sum())
        ids[~is_shared] = np.arange(self.next_own, self.next_own + own, dtype=np.int64)
        self.next_own += own
        return ids, offsets


def iter_synthetic(
    spec: SyntheticSpec,
    base_dir: Path,
    seed: int,
    chunk_size: int = DEFAULT_CHUNK,
    *,
    field: str = "workload.synthetic",
) -> Iterator[RequestChunk]:
    """Generate ``spec.requests`` requests as chunks of at most ``chunk_size``."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    rng_arrival, rng_in, rng_out, rng_prefix = streams
    if spec.prefix_groups > 2**30:
        raise InputError(
            "too many prefix groups",
            field=f"{field}.prefix_groups",
            value=spec.prefix_groups,
            allowed="at most 2^30",
        )

    lengths = length_sampler(
        spec.input_tokens, spec.output_tokens, base_dir, seed, (rng_in, rng_out), field
    )
    arrivals = Arrivals(spec, rng_arrival)
    prefix = _PrefixModel(spec, rng_prefix) if spec.prefix_hit_rate > 0 else None

    def generate() -> Iterator[RequestChunk]:
        done = 0
        while done < spec.requests:
            n = min(chunk_size, spec.requests - done)
            t = arrivals.next(n)
            inp, out = lengths(n)
            hash_ids = hash_offsets = None
            if prefix is not None:
                hash_ids, hash_offsets = prefix.hashes(inp)
            yield RequestChunk(
                request_id=np.arange(done, done + n, dtype=np.int64),
                arrival_s=t,
                input_tokens=inp,
                output_tokens=out,
                hash_ids=hash_ids,
                hash_offsets=hash_offsets,
            )
            done += n

    return generate()
