"""Statistics of a request trace (``hetsim trace stats``) and their plot.

Definitions (those of ``trace_stats.json`` in the reference traces):

- duration: last arrival − first arrival, in seconds; mean rate: requests / duration;
- per-minute counts: arrivals in consecutive 60-second bins from the first arrival; the peak is
  the busiest bin;
- length percentiles: numpy's default (linear interpolation);
- prefix reuse: the share of hash blocks whose id already appeared earlier in the trace (an
  unbounded prefix cache's block hit share), and the same weighted by the prompt tokens each
  block covers (a full block is ``block_tokens``, the last block of a prompt may be partial).
  ``None`` for a trace without hashes.
- sessions (traces with hashes): multi-turn sessions inferred by the rule of
  :mod:`hetsim.workload.sessions` (what ``trace.sessions: true`` replays): how many, turns per
  session (mean and most), and the share of prompt tokens lying in full blocks of the turn each
  row follows (what a cache holding each session's last turn would serve). ``None`` without
  hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from hetsim.errors import InputError
from hetsim.spec.workload import TraceSpec
from hetsim.workload.sessions import SessionInference
from hetsim.workload.traces import DEFAULT_CHUNK, ReadCounts, detect_format, iter_trace

__all__ = ["LengthSummary", "TraceStats", "trace_stats", "plot_trace_stats"]

_BITMAP_LIMIT = 1 << 27  # ids below this are tracked in a bytes bitmap, others in a sorted array


@dataclass(frozen=True)
class LengthSummary:
    mean: float
    p50: float
    p90: float
    p99: float
    max: int
    min: int
    total: int

    @classmethod
    def of(cls, values: np.ndarray) -> LengthSummary:
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(
            mean=float(values.mean()),
            p50=float(p50),
            p90=float(p90),
            p99=float(p99),
            max=int(values.max()),
            min=int(values.min()),
            total=_exact_sum(values),
        )


def _exact_sum(values: np.ndarray) -> int:
    """The sum of non-negative int64 counts as a Python int. The reader takes counts up to
    2**63 - 1, so a plain int64 sum of two can wrap to a negative total; summing the high and
    low 32 bits apart cannot (below 2**31 rows). Other arrays sum as they are."""
    if values.dtype.kind not in "iu":
        return int(values.sum())
    high = int((values >> 32).sum())
    low = int((values & 0xFFFFFFFF).sum())
    return (high << 32) + low


@dataclass
class TraceStats:
    """What ``hetsim trace stats`` reports (``to_dict`` for JSON; the arrays are for plots)."""

    file: str
    format: str
    requests: int
    counts: ReadCounts
    start: str | None
    duration_s: float
    mean_rate_rps: float
    mean_per_minute: float
    peak_per_minute: int
    input: LengthSummary
    output: LengthSummary
    hash_blocks: int | None
    prefix_reuse: float | None
    prefix_reuse_tokens: float | None
    block_tokens: int
    sessions: int | None
    max_turns: int | None
    session_reuse_tokens: float | None
    per_minute: np.ndarray = field(repr=False)
    input_lengths: np.ndarray = field(repr=False)
    output_lengths: np.ndarray = field(repr=False)
    #: seconds of its minute the last per-minute bin covers (< 60: a partial minute, whose
    #: count is not comparable with the others)
    last_minute_s: float = 60.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "requests": self.requests,
            "rows_read": self.counts.rows,
            "skipped_bad_rows": self.counts.bad_rows,
            "skipped_out_of_order": self.counts.out_of_order,
            "failed_zero_tokens": self.counts.failed,
            "start": self.start,
            "duration_s": self.duration_s,
            "mean_rate_rps": _finite(self.mean_rate_rps),
            "mean_per_minute": _finite(self.mean_per_minute),
            "peak_per_minute": self.peak_per_minute,
            "last_minute_s": self.last_minute_s,
            "input_tokens": self.input.__dict__.copy(),
            "output_tokens": self.output.__dict__.copy(),
            "hash_blocks": self.hash_blocks,
            "block_tokens": self.block_tokens,
            "prefix_reuse": self.prefix_reuse,
            "prefix_reuse_tokens": self.prefix_reuse_tokens,
            "sessions": self.sessions,
            "turns_per_session": self.requests / self.sessions if self.sessions else None,
            "max_turns": self.max_turns,
            "session_reuse_tokens": self.session_reuse_tokens,
        }


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


class _SeenBlocks:
    """Which block ids appeared before, chunk by chunk, without a Python set."""

    def __init__(self) -> None:
        self.bitmap = np.zeros(0, dtype=np.bool_)
        self.sorted = np.zeros(0, dtype=np.int64)

    def reused(self, ids: np.ndarray) -> np.ndarray:
        """For each position: was this id seen earlier (before this chunk or before it here)?"""
        if not len(ids):
            return np.zeros(0, dtype=np.bool_)
        _, first = np.unique(ids, return_index=True)
        earlier_here = np.ones(len(ids), dtype=np.bool_)
        earlier_here[first] = False
        small = (ids >= 0) & (ids < _BITMAP_LIMIT)
        before = np.zeros(len(ids), dtype=np.bool_)
        if small.any():
            top = int(ids[small].max()) + 1
            if top > len(self.bitmap):
                grown = np.zeros(max(top, 2 * len(self.bitmap)), dtype=np.bool_)
                grown[: len(self.bitmap)] = self.bitmap
                self.bitmap = grown
            before[small] = self.bitmap[ids[small]]
            self.bitmap[ids[small]] = True
        if not small.all():
            big = ids[~small]
            if len(self.sorted):
                at = np.searchsorted(self.sorted, big)
                hit = self.sorted[np.minimum(at, len(self.sorted) - 1)] == big
                before[~small] = hit
            self.sorted = np.union1d(self.sorted, big)
        return before | earlier_here


def trace_stats(
    path: str | Path,
    fmt: str | None = None,
    *,
    columns: dict[str, str] | None = None,
    time_unit: str = "s",
    on_bad_row: str = "error",
    block_tokens: int = 512,
    chunk_size: int = DEFAULT_CHUNK,
) -> TraceStats:
    """Read a whole trace (streaming) and summarise it; ``fmt`` None guesses it from the file."""
    path = Path(path)
    # a column mapping names the user's own columns: only csv or jsonl can take it
    fmt = fmt or detect_format(path, generic=columns is not None)
    try:
        trace = TraceSpec(
            path=str(path),
            format=fmt,
            columns=columns,
            time_unit=time_unit,  # type: ignore[arg-type]
            on_bad_row=on_bad_row,
            block_tokens=block_tokens,  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise InputError(
            first.get("msg", str(exc)).removeprefix("Value error, "),
            file=path,
            field=loc or None,
        ) from None
    counts = ReadCounts()
    arrivals, inputs, outputs = [], [], []
    seen = _SeenBlocks()
    blocks = reused_blocks = 0
    reused_tokens = 0
    has_hashes = False
    turns = SessionInference(block_tokens)
    for chunk in iter_trace(trace, Path.cwd(), seed=0, chunk_size=chunk_size, counts=counts):
        arrivals.append(chunk.arrival_s)
        inputs.append(chunk.input_tokens)
        outputs.append(chunk.output_tokens)
        if chunk.hash_ids is not None and chunk.hash_offsets is not None:
            has_hashes = True
            ids = chunk.hash_ids
            reused = seen.reused(ids)
            per_request = np.diff(chunk.hash_offsets)
            owner = np.repeat(np.arange(len(chunk)), per_request)
            pos = np.arange(len(ids)) - chunk.hash_offsets[owner]
            covered = np.clip(chunk.input_tokens[owner] - pos * block_tokens, 0, block_tokens)
            blocks += len(ids)
            reused_blocks += int(reused.sum())
            reused_tokens += int(covered[reused].sum())
            for i, (rid, n_in) in enumerate(
                zip(chunk.request_id.tolist(), chunk.input_tokens.tolist(), strict=True)
            ):
                turns.add(rid, chunk.hashes(i), n_in)
    t = np.concatenate(arrivals)
    inp = np.concatenate(inputs)
    out = np.concatenate(outputs)
    n = len(t)
    inputs_summary = LengthSummary.of(inp)
    duration = float(t[-1] - t[0])
    per_minute = np.bincount(np.floor((t - t[0]) / 60.0).astype(np.int64))
    rate = n / duration if duration > 0 else float("nan")
    return TraceStats(
        file=str(path),
        format=fmt,
        requests=n,
        counts=counts,
        start=counts.start,
        duration_s=duration,
        mean_rate_rps=rate,
        mean_per_minute=rate * 60.0,
        peak_per_minute=int(per_minute.max()),
        input=inputs_summary,
        output=LengthSummary.of(out),
        hash_blocks=blocks if has_hashes else None,
        prefix_reuse=(reused_blocks / blocks if blocks else 0.0) if has_hashes else None,
        prefix_reuse_tokens=(reused_tokens / inputs_summary.total) if has_hashes else None,
        block_tokens=block_tokens,
        sessions=turns.sessions if has_hashes else None,
        max_turns=turns.max_turn if has_hashes else None,
        session_reuse_tokens=turns.reused_tokens / inputs_summary.total if has_hashes else None,
        per_minute=per_minute,
        last_minute_s=duration - 60.0 * (len(per_minute) - 1),
        input_lengths=inp,
        output_lengths=out,
    )


def _full_minutes(stats: TraceStats) -> tuple[np.ndarray, str]:
    """The per-minute counts to draw, and the legend entry saying what was left out: the last
    bin covers only the trace's last seconds, and drawn beside full minutes it reads as a drop
    in load that never happened. A trace shorter than a minute keeps its one bin, marked."""
    counts = stats.per_minute
    partial = stats.last_minute_s < 60.0
    if not partial:
        return counts, "arrivals per minute"
    if len(counts) == 1:
        return counts, f"arrivals in {stats.last_minute_s:.0f} s (under a minute)"
    return counts[:-1], (
        f"arrivals per minute (the last {stats.last_minute_s:.0f} s, a partial minute of "
        f"{int(counts[-1]):,} requests, not drawn)"
    )


def plot_trace_stats(stats: TraceStats, out: str | Path) -> Path:
    """A PNG: arrivals per minute over time, and prompt and output length histograms."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    fig = Figure(figsize=(10, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_rate, ax_in, ax_out = fig.subplots(3, 1)
    shown, note = _full_minutes(stats)
    ax_rate.stairs(shown, np.arange(len(shown) + 1), color="tab:blue", label=note)
    if np.isfinite(stats.mean_per_minute):
        ax_rate.axhline(
            stats.mean_per_minute,
            color="tab:gray",
            ls="--",
            lw=1,
            label=f"mean {stats.mean_per_minute:.1f}/min",
        )
    ax_rate.legend(loc="upper right")
    ax_rate.set_xlabel("minutes from the first arrival")
    ax_rate.set_ylabel("requests per minute")
    ax_rate.set_title(f"{Path(stats.file).name} ({stats.format}): {stats.requests:,} requests")
    for ax, values, summary, label, colour in (
        (ax_in, stats.input_lengths, stats.input, "prompt tokens", "tab:orange"),
        (ax_out, stats.output_lengths, stats.output, "output tokens", "tab:green"),
    ):
        lo, hi = max(int(values.min()), 1), int(values.max())
        bins = np.unique(np.geomspace(lo, max(hi + 1, lo + 1), 60).astype(np.int64))
        ax.hist(values, bins=bins, color=colour)
        ax.set_xscale("log")
        for q, style in ((summary.p50, "-"), (summary.p99, ":")):
            ax.axvline(q, color="black", ls=style, lw=1)
        ax.set_xlabel(f"{label} (log scale; lines: p50, p99)")
        ax.set_ylabel("requests")
    fig.savefig(out, format="png")
    return out
