"""Workloads: request traces to replay, synthetic generators and closed loops, as chunks of flat
arrays.

The simulator consumes :func:`iter_requests`: an iterator of :class:`RequestChunk` (request ids
consecutive across chunks, arrivals in seconds from the first request, token counts, and prefix
block hashes as CSR arrays or None). :func:`load_requests` concatenates them for small workloads.
Readers and generators: :mod:`hetsim.workload.traces`, :mod:`hetsim.workload.synthetic`,
:mod:`hetsim.workload.closed_loop` (arrivals NaN: the simulation decides them),
:mod:`hetsim.workload.sessions` (multi-turn sessions, generated or inferred from a trace);
statistics and their plot: :mod:`hetsim.workload.stats`.

This package depends on ``hetsim.units``, ``hetsim.errors`` and ``hetsim.spec`` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hetsim.spec.workload import WorkloadSpec
from hetsim.workload.chunk import RequestChunk
from hetsim.workload.closed_loop import client_starts, iter_closed_loop
from hetsim.workload.sessions import infer_sessions, iter_sessions
from hetsim.workload.stats import LengthSummary, TraceStats, plot_trace_stats, trace_stats
from hetsim.workload.synthetic import iter_synthetic
from hetsim.workload.traces import (
    DEFAULT_CHUNK,
    ReadCounts,
    detect_format,
    iter_trace,
    resolve_trace_path,
)

__all__ = [
    "DEFAULT_CHUNK",
    "LengthSummary",
    "ReadCounts",
    "RequestChunk",
    "TraceStats",
    "client_starts",
    "count_requests",
    "detect_format",
    "has_sessions",
    "infer_sessions",
    "iter_closed_loop",
    "iter_requests",
    "iter_sessions",
    "iter_synthetic",
    "iter_trace",
    "load_requests",
    "plot_trace_stats",
    "resolve_trace_path",
    "sized",
    "trace_stats",
]


def iter_requests(
    workload: WorkloadSpec,
    base_dir: Path,
    seed: int,
    chunk_size: int = DEFAULT_CHUNK,
    counts: ReadCounts | None = None,
    *,
    max_context: int | None = None,
) -> Iterator[RequestChunk]:
    """The workload's requests as chunks of at most ``chunk_size``.

    ``base_dir`` is the folder that relative trace paths are relative to (the scenario file's);
    ``seed`` drives trace sampling and every synthetic draw: same spec and seed, same arrays.
    ``counts`` (traces and sessions) is filled in with what the reader kept, skipped and
    dropped; ``max_context`` (the model's context, ``max_position_embeddings``) drops and
    counts the trace rows whose prompt + output exceed it, and ends generated sessions there
    (or rejects sessions bound to outgrow it).
    A missing trace file raises :class:`~hetsim.errors.InputError` at once; row errors are
    raised while iterating.
    """
    if workload.trace is not None:
        rows = iter_trace(
            workload.trace, Path(base_dir), seed, chunk_size, counts, max_context=max_context
        )
        if workload.trace.sessions:
            return infer_sessions(rows, workload.trace.block_tokens, counts)
        return rows
    spec = workload.closed_loop if workload.closed_loop is not None else workload.synthetic
    assert spec is not None
    if spec.sessions is not None:
        closed = workload.closed_loop is not None
        blocks = workload.hash_blocks(trace_has_hashes=False)
        assert blocks is not None  # sessions always hash their prompts
        return iter_sessions(
            spec.sessions,
            spec.input_tokens,
            spec.output_tokens,
            spec.requests,
            Path(base_dir),
            seed,
            arrivals=None if closed else spec,
            block_tokens=blocks[0],
            chunk_size=chunk_size,
            max_context=max_context,
            counts=counts,
            field="workload.closed_loop" if closed else "workload.synthetic",
        )
    if workload.closed_loop is not None:
        return iter_closed_loop(workload.closed_loop, Path(base_dir), seed, chunk_size)
    assert workload.synthetic is not None
    return iter_synthetic(workload.synthetic, Path(base_dir), seed, chunk_size)


def has_sessions(workload: WorkloadSpec) -> bool:
    """Do the workload's requests come as multi-turn sessions?"""
    if workload.trace is not None:
        return workload.trace.sessions
    spec = workload.closed_loop if workload.closed_loop is not None else workload.synthetic
    return spec is not None and spec.sessions is not None


def load_requests(
    workload: WorkloadSpec,
    base_dir: Path,
    seed: int,
    chunk_size: int = DEFAULT_CHUNK,
    counts: ReadCounts | None = None,
) -> RequestChunk:
    """All of the workload's requests in one chunk (for small workloads and tests)."""
    return RequestChunk.concat(iter_requests(workload, base_dir, seed, chunk_size, counts))


def sized(workload: WorkloadSpec, requests: int | None) -> WorkloadSpec:
    """The workload sending ``requests`` requests: generators (synthetic, closed loop) make that
    many, a trace is left as it is (a replay stops after ``requests`` rows). None: unchanged."""
    if requests is None or workload.trace is not None:
        return workload
    name = "synthetic" if workload.synthetic is not None else "closed_loop"
    generator = getattr(workload, name).model_copy(update={"requests": requests})
    return workload.model_copy(update={name: generator})


def count_requests(
    workload: WorkloadSpec, base_dir: Path, seed: int, *, max_context: int | None = None
) -> int:
    """How many requests the workload sends (a pass over a trace; free for the generators)."""
    if workload.synthetic is not None:
        return workload.synthetic.requests
    if workload.closed_loop is not None:
        return workload.closed_loop.requests
    return sum(len(c) for c in iter_requests(workload, base_dir, seed, max_context=max_context))
