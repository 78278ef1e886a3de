"""Multi-turn sessions: conversations and agent loops whose turns grow one context.

A session is a chain of requests (turns). Turn k+1's prompt is turn k's prompt, turn k's output
and some new tokens (the user's next message, or a tool's output in an agent loop), so it starts
with everything turn k saw: what a prefix cache can reuse. Turn k+1 is sent a think time after
turn k ends, which only the simulation knows: a session's chunks carry, for every request, the
request it follows (``parent``, -1 for a first turn) and the seconds after that request's end at
which it is sent (``think_s``); it is also sent no earlier than its ``arrival_s``. The simulator's
session drivers (:mod:`hetsim.sim.engine`) do the sending.

Choices (assumptions are labelled so):

- **A failed turn does not end its session**: the next turn is sent think time after the failure,
  with the context as planned (the client keeps its history and re-sends it; the cache simply
  holds less of it). So every planned turn is sent, and ``requests`` counts them exactly.
- **Synthetic sessions** (``synthetic.sessions`` open loop: sessions start at ``rate`` as a
  poisson or gamma process; ``closed_loop.sessions``: each of ``concurrency`` clients runs
  sessions back to back, its next session ``closed_loop.think_time`` after its last turn ends).
  Per session, in this order: the number of turns T (``turns``); T (input, output) pairs from the
  section's ``input_tokens``/``output_tokens``, of which only the first input is used (the first
  turn's prompt after the system prompt, so the draws stay in step whatever T is); T − 1 new
  token counts (``new_tokens``) and T − 1 think times. Prompt of turn 1: S + F (S =
  ``system_prompt_tokens``); turn k+1: P_k + O_k + N_{k+1}. ``requests`` counts turns: the last
  session is cut short to send exactly that many.
- **Prefix block hashes** (``block_tokens`` per block): a full block lying within the system
  prompt gets an id shared by every session (block j: ``SYSTEM_ID_BASE + j``); any other full
  block gets an id stable within its session (``SESSION_ID_BASE + s·2²⁴ + j``), so turn k+1
  finds turn k's full blocks; a partial last block gets an id never used again (it grows in
  the next turn, so its content differs). Turn k+1's cache hit is therefore at most turn k's
  full prompt blocks: turn k's output is not in the prefill cache (hetsim caches prompt blocks).
- **The context limit**: when every length and the turn count are bounded (fixed, uniform, or a
  ``max``), a session that could outgrow the model's context (S + max F + (max T − 1)·(max O +
  max N) + max O > context) is an input error before the run. Otherwise a session ends at the
  turn whose prompt + output would exceed the context: that turn and the rest are not sent, and
  are counted (``over_context``, with ``sessions_cut``) like a trace's over-long rows.

**Sessions inferred from a trace** (``trace.sessions: true``; Mooncake rows carry no session id,
but block j's id stands for the first (j+1)·512 tokens). Rule: row r's parent is the latest
earlier row p such that

1. p has at least one full block, and p's full-block ids are the first ids of r (r extends
   p's whole prompt, up to p's partial last block, whose id changes as it fills);
2. r's prompt is longer than p's;
3. p's last full block first appeared in p's own session (in p, or an earlier turn of it).

Rule 3 is what keeps a shared system prompt from chaining unrelated conversations: a short row
that is a system prompt and a few tokens has, as its only full blocks, blocks some other session
produced first, so nothing chains to it. Limits: the first row to show a shared system prompt
cannot be told from the first turn of a conversation, so if that row is itself a lone system
prompt, later rows sharing it become its next turns (they then wait for it to end); a row that
extends two earlier rows takes the latest; a parent removed by ``sample`` or ``time_window``
leaves its next turn to chain to an earlier turn, or to start a session. Inferred sessions are
trees, not chains (two rows extending one turn — a regenerated answer — both follow it). The
think time is unknown in a trace: **a turn is sent at its trace time, but never before its
parent ends** (no recorded gap is added: the trace time already holds the user's think time as
measured against the real system's latency). Session ids number the sessions by their first row.
Inference keeps each row's full-block ids while reading: memory grows with the trace's blocks.

Randomness: ``numpy.random.SeedSequence(seed)`` spawns independent generators for session
arrivals, turn counts, first prompts, outputs, new tokens and think times, each consumed in
session order, so the same spec and seed give identical arrays whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from hetsim.errors import InputError
from hetsim.spec.workload import LengthSpec, SessionsSpec, ThinkTimeSpec, check_session_context
from hetsim.workload.chunk import RequestChunk
from hetsim.workload.synthetic import (
    Arrivals,
    empirical_pool,
    length_sampler,
    lognormal_params,
    sampler,
)
from hetsim.workload.traces import DEFAULT_CHUNK, ReadCounts

__all__ = [
    "SESSION_ID_BASE",
    "SYSTEM_ID_BASE",
    "SessionInference",
    "infer_sessions",
    "iter_sessions",
]

#: block ids: a shared system prompt's block j is SYSTEM_ID_BASE + j; session s's block j is
#: SESSION_ID_BASE + s·2²⁴ + j; partial last blocks count up from 0
SYSTEM_ID_BASE = 1 << 62
SESSION_ID_BASE = 1 << 61
_SESSION_STRIDE = 1 << 24
_MAX_EMPTY = 10_000  # sessions in a row cut before their first turn: generation gives up


def _think_sampler(spec: ThinkTimeSpec, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    if spec.dist == "fixed":
        value = float(spec.value or 0.0)
        return lambda n: np.full(n, value)
    assert spec.mean is not None
    if spec.dist == "exponential":
        mean = float(spec.mean)
        return lambda n: rng.exponential(mean, n)
    assert spec.cv is not None
    mu, sigma = lognormal_params(spec.mean, spec.cv)
    return lambda n: rng.lognormal(mu, sigma, n)


def _session_hashes(
    prompts: list[int], session: int, system: int, block: int, own: int
) -> tuple[list[np.ndarray], int]:
    """Each turn's block ids (see the module docstring); ``own``: the next never-used id."""
    out = []
    for p in prompts:
        j = np.arange(-(-p // block), dtype=np.int64)
        full = (j + 1) * block <= p
        ids = np.where((j + 1) * block <= system, SYSTEM_ID_BASE + j, 0)
        ids = np.where(full & (ids == 0), SESSION_ID_BASE + session * _SESSION_STRIDE + j, ids)
        if not full[-1]:
            ids[-1] = own
            own += 1
        out.append(ids)
    return out, own


def iter_sessions(
    shape: SessionsSpec,
    first: LengthSpec,
    output: LengthSpec,
    requests: int,
    base_dir: Path,
    seed: int,
    *,
    arrivals: object | None,
    block_tokens: int = 512,
    chunk_size: int = DEFAULT_CHUNK,
    max_context: int | None = None,
    counts: ReadCounts | None = None,
    field: str = "workload.synthetic",
) -> Iterator[RequestChunk]:
    """``requests`` turns of sessions, session after session, as chunks of at most
    ``chunk_size``. ``arrivals``: the spec of an open loop's session arrival process (its
    ``arrival``, ``rate``, ``cv``), or None for a closed loop (``arrival_s`` NaN)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if max_context is not None:
        check_session_context(shape, first, output, max_context, field)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_arrival, rng_turns, rng_in, rng_out, rng_new, rng_think = streams
    lengths = length_sampler(first, output, base_dir, seed, (rng_in, rng_out), field)
    pool = None
    if shape.new_tokens.dist == "empirical":
        assert shape.new_tokens.trace is not None
        where = f"{field}.sessions.new_tokens.trace"
        pool = empirical_pool(shape.new_tokens.trace, base_dir, seed, where)[0]
    new_tokens = sampler(shape.new_tokens, rng_new, pool)
    turns = sampler(shape.turns, rng_turns, None)
    think = _think_sampler(shape.think_time, rng_think)
    starts = Arrivals(arrivals, rng_arrival) if arrivals is not None else None  # type: ignore[arg-type]
    counts = counts if counts is not None else ReadCounts()
    state = {"own": 0}

    def session(s: int, rid: int, left: int) -> list[tuple]:
        t = max(int(turns(1)[0]), 1)
        ins, outs = lengths(t)
        new, gaps = new_tokens(t - 1), think(t - 1)
        start = float(starts.next(1)[0]) if starts is not None else np.nan
        prompts, context = [], shape.system_prompt_tokens + int(ins[0])
        for k in range(t):
            if k:
                context += int(outs[k - 1]) + int(new[k - 1])
            if max_context is not None and context + int(outs[k]) > max_context:
                counts.over_context += t - k
                counts.sessions_cut += 1
                break
            prompts.append(context)
        prompts = prompts[:left]
        ids, state["own"] = _session_hashes(
            prompts, s, shape.system_prompt_tokens, block_tokens, state["own"]
        )
        return [
            (rid + k, start, p, int(outs[k]), ids[k], s, k + 1,
             rid + k - 1 if k else -1, float(gaps[k - 1]) if k else 0.0)
            for k, p in enumerate(prompts)
        ]  # fmt: skip

    def generate() -> Iterator[RequestChunk]:
        rows: list[tuple] = []
        done = s = empty = 0
        while done < requests:
            got = session(s, done, requests - done)
            s += 1
            empty = 0 if got else empty + 1
            if empty == _MAX_EMPTY:  # every first turn exceeds the context: never ends
                raise InputError(
                    f"{_MAX_EMPTY:,} sessions in a row had a first turn beyond the model's "
                    f"{max_context:,}-token context",
                    field=f"{field}.input_tokens, {field}.output_tokens",
                    allowed="first prompts + outputs that fit the context",
                )
            if got:
                counts.sessions += 1
            done += len(got)
            rows += got
            while len(rows) >= chunk_size:
                yield _chunk(rows[:chunk_size])
                rows = rows[chunk_size:]
        if rows:
            yield _chunk(rows)

    return generate()


def _chunk(rows: list[tuple]) -> RequestChunk:
    rid, start, prompt, out, ids, session, turn, parent, think = zip(*rows, strict=True)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in ids], out=offsets[1:])
    return RequestChunk(
        request_id=np.array(rid, dtype=np.int64),
        arrival_s=np.array(start, dtype=np.float64),
        input_tokens=np.array(prompt, dtype=np.int64),
        output_tokens=np.array(out, dtype=np.int64),
        hash_ids=np.concatenate(ids) if rows else np.zeros(0, dtype=np.int64),
        hash_offsets=offsets,
        session=np.array(session, dtype=np.int64),
        turn=np.array(turn, dtype=np.int64),
        parent=np.array(parent, dtype=np.int64),
        think_s=np.array(think, dtype=np.float64),
    )


class SessionInference:
    """The parent rule of the module docstring, row by row."""

    def __init__(self, block_tokens: int) -> None:
        self.block = block_tokens
        self.ends: dict[int, int] = {}  # last full-block id -> latest row that may be a parent
        self.full: dict[int, tuple[np.ndarray, int]] = {}  # row -> (its full-block ids, prompt)
        self.owner: dict[int, int] = {}  # block id -> the session that first produced it
        self.of: dict[int, tuple[int, int]] = {}  # row -> (session, turn)
        self.sessions = 0
        self.max_turn = 1
        self.reused_tokens = 0  # prompt tokens in the parents' full blocks, over all rows

    def add(self, rid: int, ids: np.ndarray, prompt: int) -> tuple[int, int, int]:
        """(session, turn, parent) of row ``rid``."""
        parent = -1
        ends, full = self.ends, self.full
        for j, h in enumerate(ids.tolist()):
            p = ends.get(h)
            if p is None or p <= parent:
                continue
            p_ids, p_prompt = full[p]
            if len(p_ids) == j + 1 and p_prompt < prompt and np.array_equal(p_ids, ids[: j + 1]):
                parent = p
        if parent >= 0:
            session, turn = self.of[parent]
            turn += 1
            self.reused_tokens += len(full[parent][0]) * self.block
            self.max_turn = max(self.max_turn, turn)
        else:
            session, turn = self.sessions, 1
            self.sessions += 1
        self.of[rid] = (session, turn)
        for h in ids.tolist():
            self.owner.setdefault(h, session)
        n_full = min(prompt // self.block, len(ids))
        if n_full and self.owner[int(ids[n_full - 1])] == session:
            ends[int(ids[n_full - 1])] = rid
            full[rid] = (ids[:n_full].copy(), prompt)
        return session, turn, parent


def infer_sessions(
    chunks: Iterator[RequestChunk],
    block_tokens: int,
    counts: ReadCounts | None = None,
    field: str = "workload.trace.sessions",
) -> Iterator[RequestChunk]:
    """``chunks`` (a trace with hashes) with sessions inferred by the module docstring's rule:
    every row is sent at its ``arrival_s``, but never before its parent ends (``think_s`` 0)."""
    rule = SessionInference(block_tokens)
    for chunk in chunks:
        if len(chunk) and not chunk.has_hashes:
            raise InputError(
                "sessions are inferred from prefix block hashes, and this trace's rows have "
                "none (a Mooncake trace whose first record has no hash_ids is read without)",
                field=field,
                value=True,
                allowed="false for a trace without hash_ids",
            )
        n = len(chunk)
        session = np.empty(n, dtype=np.int64)
        turn = np.empty(n, dtype=np.int64)
        parent = np.empty(n, dtype=np.int64)
        ids, inputs = chunk.request_id.tolist(), chunk.input_tokens.tolist()
        for i in range(n):
            session[i], turn[i], parent[i] = rule.add(ids[i], chunk.hashes(i), inputs[i])
        if counts is not None:
            counts.sessions = rule.sessions
        yield replace(chunk, session=session, turn=turn, parent=parent, think_s=np.zeros(n))
