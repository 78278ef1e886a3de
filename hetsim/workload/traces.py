"""Request trace readers: Mooncake JSONL, Azure LLM inference CSV, BurstGPT CSV, generic CSV/JSONL.

Every reader streams: rows go one at a time into preallocated numpy arrays, which leave as a chunk
of at most ``chunk_size`` rows; nothing holds one Python object per request of the whole trace.

Formats (column names as the publishers spell them):

- ``mooncake``: JSON lines with ``timestamp`` (milliseconds), ``input_length``,
  ``output_length`` and ``hash_ids`` (one id per 512-token prefix block; the last block may be
  partial). A trace whose first record has no ``hash_ids`` is read without hashes.
- ``azure``: Azure LLM inference traces (2023 and 2024), CSV with ``TIMESTAMP`` (an ISO
  date-time such as ``2023-11-16 18:17:03.9799600``, 7 fractional digits; a UTC offset is
  honoured), ``ContextTokens`` and ``GeneratedTokens``.
- ``burstgpt``: BurstGPT CSV with ``Timestamp`` (seconds), ``Model``, ``Request tokens``,
  ``Response tokens``, ``Total tokens``, ``Log Type``; BurstGPT_3's extra ``Session ID`` and
  ``Elapsed time`` columns are accepted, since columns are found by name.
- ``csv`` / ``jsonl``: any file, with ``columns`` naming the arrival, input and output columns
  (and optionally a ``hash_ids`` column: a JSON list, or integers separated by spaces, ``;`` or
  ``|`` in a CSV cell) and ``time_unit`` (``s``, ``ms``, ``us`` or ``datetime``).

Row policy, in this order:

1. A row that cannot be read (wrong number of fields, not JSON, a missing field, a number that is
   not a non-negative whole number of tokens, a bad timestamp, one too far from the first row's
   to count in seconds, in Mooncake more ``hash_ids`` than ``block_tokens`` blocks cover) is an
   :class:`InputError` naming the file, the line and the column; with ``on_bad_row: skip`` it is
   skipped and counted. A CSV header naming a column it reads twice is an error.
2. Timestamps must not decrease (the published Azure, Mooncake and BurstGPT traces are sorted;
   equal timestamps are fine). A row earlier than a previous row is an error naming the file, line
   and column; with ``on_bad_row: skip`` it is skipped and counted as out of order (it is never
   re-sorted).
3. Rows with zero prompt or zero output tokens are dropped and counted as ``failed``: BurstGPT
   marks failed requests this way, and such a request has nothing to simulate in any format.
4. ``time_window`` keeps rows whose offset from the first request lies in ``[start, end]``
   (trace time, before rescaling); reading stops at the first row past ``end``.
5. ``sample`` keeps each row with that probability (``numpy.random.default_rng(seed)``, one draw
   per row in file order, so the result does not depend on the chunk size).
6. ``max_input_tokens`` / ``max_output_tokens`` cap lengths (counted); a capped prompt keeps only
   the hash blocks that still cover it.
7. With the model's context given (``max_context``, its ``max_position_embeddings``), rows whose
   prompt + output (after the caps) exceed it are dropped and counted as ``over_context``: no
   engine serves such a request, so replaying it would simulate what cannot run.
8. ``target_rate`` multiplies every gap by one factor so that the kept requests' mean rate
   (requests / (last arrival - first arrival)) is the target; burstiness (the gaps' CV) is kept.
   It needs the kept set's count and span first: a first pass over the file, which is reused
   instead of re-reading when it was small.
9. Two replayed arrivals more than :data:`MAX_ARRIVAL_GAP_S` apart are an error naming the
   later row: no run simulates that wait.

Arrival times come out in seconds from the first replayed request. A file that is not UTF-8
text (a leading byte-order mark is fine), or a token count beyond a 64-bit integer, is an
:class:`InputError` like any unreadable row.
"""

from __future__ import annotations

import csv
import json
import math
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hetsim.errors import InputError
from hetsim.spec.workload import TRACE_COLUMNS, TRACE_FORMATS, TRACE_TIME_UNITS, TraceSpec
from hetsim.workload.chunk import RequestChunk

__all__ = [
    "MAX_ARRIVAL_GAP_S",
    "ReadCounts",
    "detect_format",
    "iter_trace",
    "resolve_trace_path",
]

DEFAULT_CHUNK = 65536
_CACHE_BYTES = 64 * 2**20  # a first pass keeps its chunks for the second one below this size
#: the most tokens a count may hold: the arrays are int64
_MAX_TOKENS = int(np.iinfo(np.int64).max)
#: the longest wait between two replayed arrivals: the simulator's horizon (hetsim.sim.horizon
#: stops a run whose next arrival lies further ahead), checked here so that every command reading
#: the trace (trace stats, check, simulate) refuses the same file with the same message
MAX_ARRIVAL_GAP_S = 1e6
#: bytes of a trace's start looked at to tell text from a binary file
_SNIFF_BYTES = 8192
_SKIP_HINT = (
    "to skip and count such rows, set `on_bad_row: skip` in the trace spec (hetsim trace stats: "
    "--skip-bad-rows)"
)


@dataclass
class ReadCounts:
    """What a trace read kept, dropped and changed (filled in while iterating)."""

    rows: int = 0  #: data rows read (not counting a header or blank lines)
    bad_rows: int = 0  #: unreadable rows skipped (``on_bad_row: skip``)
    out_of_order: int = 0  #: rows earlier than a previous row, skipped (``on_bad_row: skip``)
    failed: int = 0  #: rows with zero prompt or zero output tokens, dropped
    outside_window: int = 0  #: rows outside ``time_window``
    sampled_out: int = 0  #: rows dropped by ``sample``
    input_capped: int = 0  #: prompts shortened to ``max_input_tokens``
    output_capped: int = 0  #: outputs shortened to ``max_output_tokens``
    over_context: int = 0  #: rows whose prompt + output exceed the model's context, dropped
    kept: int = 0  #: requests replayed
    sessions: int = 0  #: sessions generated or inferred (session workloads only)
    sessions_cut: int = 0  #: sessions ended at the model's context (their turns: over_context)
    turns_unsent: int = 0  #: session turns never sent: their previous turn had not ended
    start: str | None = None  #: the first request's timestamp as written (date-time traces)
    examples: list[str] = field(default_factory=list)  #: the first few skip reasons

    def note(self, message: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(message)

    def copy_from(self, other: ReadCounts) -> None:
        for f in fields(self):
            value = getattr(other, f.name)
            setattr(self, f.name, list(value) if isinstance(value, list) else value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def resolve_trace_path(trace: TraceSpec, base_dir: Path, field: str = "workload.trace") -> Path:
    """The trace file (relative paths are relative to ``base_dir``, the scenario's folder)."""
    path = Path(trace.path).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        raise InputError("trace file not found", field=f"{field}.path", value=str(path))
    return path


def detect_format(path: Path, *, generic: bool = False) -> str:
    """Guess a trace's format from its first record: mooncake, azure or burstgpt; with
    ``generic`` (a column mapping was given, so the columns are the user's own) only the
    container: jsonl when the record is a JSON object, csv otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError("trace file not found", value=str(path))
    first = ""
    with _open(path) as fh, _text_errors(path, lambda: 1):
        for line in fh:
            if line.strip():
                first = line.strip()
                break
    if not first:
        raise InputError("trace file is empty", file=path)
    if generic:
        return "jsonl" if first.startswith("{") else "csv"
    if first.startswith("{"):
        try:
            keys = set(json.loads(first))
        except (ValueError, TypeError):
            keys = set()
        if {"timestamp", "input_length", "output_length"} <= keys:
            return "mooncake"
    else:
        header = {h.strip() for h in next(csv.reader([first]))}
        for fmt in ("azure", "burstgpt"):
            needed = {c for k, c in TRACE_COLUMNS[fmt].items() if c and k != "hash_ids"}
            if needed <= header:
                return fmt
    raise InputError(
        "cannot tell the trace format from the first record; name it (and for csv/jsonl the "
        "columns)",
        file=path,
        line=1,
        field="format",
        allowed=TRACE_FORMATS,
    )


# --------------------------------------------------------------------------------------------
# raw chunks: parsed rows, times in seconds from the first parsed row


@dataclass
class _Raw:
    t: np.ndarray  # float64 seconds from the trace's origin
    inp: np.ndarray
    out: np.ndarray
    line: np.ndarray
    hash_ids: np.ndarray | None
    hash_offsets: np.ndarray | None

    def __len__(self) -> int:
        return len(self.t)

    def select(self, mask: np.ndarray) -> _Raw:
        hash_ids = hash_offsets = None
        if self.hash_ids is not None and self.hash_offsets is not None:
            counts = np.diff(self.hash_offsets)
            hash_ids = self.hash_ids[np.repeat(mask, counts)]
            hash_offsets = _offsets(counts[mask])
        return _Raw(
            self.t[mask], self.inp[mask], self.out[mask], self.line[mask], hash_ids, hash_offsets
        )

    def nbytes(self) -> int:
        total = self.t.nbytes + self.inp.nbytes + self.out.nbytes + self.line.nbytes
        if self.hash_ids is not None and self.hash_offsets is not None:
            total += self.hash_ids.nbytes + self.hash_offsets.nbytes
        return total


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


class _Builder:
    """Preallocated arrays for one chunk of rows."""

    def __init__(self, size: int, with_hashes: bool) -> None:
        self.size = size
        self.with_hashes = with_hashes
        self._fresh()

    def _fresh(self) -> None:
        size = self.size
        self.t = np.empty(size, dtype=np.float64)
        self.inp = np.empty(size, dtype=np.int64)
        self.out = np.empty(size, dtype=np.int64)
        self.line = np.empty(size, dtype=np.int64)
        self.n = 0
        if self.with_hashes:
            self.h = array("q")
            self.hoff = np.zeros(size + 1, dtype=np.int64)

    def push(self, t: float, inp: int, out: int, line: int) -> bool:
        """Append one row; True when the chunk is full and should be taken."""
        n = self.n
        self.t[n] = t
        self.inp[n] = inp
        self.out[n] = out
        self.line[n] = line
        self.n = n + 1
        return self.n == self.size

    def push_hashes(self, hashes: list[int]) -> None:
        """The current row's block ids (validated here: integers only)."""
        h = self.h
        before = len(h)
        if type(hashes) is not list:
            raise TypeError("not a list")
        try:
            h.extend(hashes)
        except (TypeError, OverflowError):
            del h[before:]
            raise ValueError("block ids must be integers") from None
        self.hoff[self.n + 1] = len(h)

    def take(self) -> _Raw:
        n = self.n
        raw = _Raw(
            self.t[:n],
            self.inp[:n],
            self.out[:n],
            self.line[:n],
            np.array(self.h, dtype=np.int64) if self.with_hashes else None,
            self.hoff[: n + 1] if self.with_hashes else None,
        )
        self._fresh()
        return raw


class _BadRow(Exception):
    def __init__(
        self, column: str | None, message: str, value: object = None, allowed: str | None = None
    ) -> None:
        super().__init__(message)
        self.column = column
        self.message = message
        self.value = value
        self.allowed = allowed


def _tokens_from_text(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        number = float(text)  # raises ValueError for text that is no number
        if not number.is_integer():
            raise ValueError("not a whole number") from None
        value = int(number)
    if value < 0:
        raise ValueError("negative")
    if value > _MAX_TOKENS:
        raise ValueError("more than a 64-bit count holds")
    return value


def _tokens_from_json(value: object) -> int:
    if type(value) is int:
        if value < 0:
            raise ValueError("negative")
        if value > _MAX_TOKENS:
            raise ValueError("more than a 64-bit count holds")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        if value > _MAX_TOKENS:
            raise ValueError("more than a 64-bit count holds")
        return int(value)
    if isinstance(value, str):
        return _tokens_from_text(value)
    raise ValueError("not a number")


_HASH_SEPARATORS = str.maketrans({";": " ", "|": " ", ",": " "})


def _hashes_from(value: object) -> list[int]:
    """A hash-id cell: a JSON list, or integers separated by spaces, commas, ``;`` or ``|``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            return [int(x) for x in text.translate(_HASH_SEPARATORS).split()]
    if type(value) is not list:
        raise ValueError("not a list of block ids")
    return value


class _FarTime(ValueError):
    """A finite timestamp whose distance from the trace's first one overflows a float."""


class _Clock:
    """Arrival values → seconds from the first row parsed (keeps float precision)."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.factor = TRACE_TIME_UNITS.get(unit, 1.0)
        self.origin: Any = None
        self.first_text: str | None = None

    def seconds(self, value: object) -> float:
        if self.unit == "datetime":
            return self._datetime(value)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("not a number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("not a finite number")
        if self.origin is None:
            self.origin = number
        offset = (number - self.origin) * self.factor
        if not math.isfinite(offset):
            # two finite stamps can still be further apart than a float holds (-1e308, 1e308)
            raise _FarTime(f"too far from the first row's {self.origin:g} to count in seconds")
        return offset

    def _datetime(self, value: object) -> float:
        if not isinstance(value, str):
            raise ValueError("not a date-time string")
        stamp = datetime.fromisoformat(value.strip())
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
        if self.origin is None:
            self.origin = stamp
            self.first_text = stamp.isoformat(sep=" ")
        return (stamp - self.origin).total_seconds()


def _open(path: Path) -> TextIO:
    """The trace as text; a leading UTF-8 byte-order mark (spreadsheets write one) is dropped.
    A file whose start is not UTF-8 text is an input error here, before any parsing."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read the trace ({exc.strerror})", file=path) from None
    why = None
    if b"\0" in head:
        why = "it holds NUL bytes"
    else:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if len(head) < _SNIFF_BYTES or exc.start < len(head) - 3:  # not a cut character
                why = f"byte {exc.start} is not UTF-8"
    if why is not None:
        raise _not_text(path, why)
    return path.open(encoding="utf-8-sig", newline="")


@contextmanager
def _text_errors(path: Path, line: Callable[[], int]) -> Iterator[None]:
    """Text that stops being UTF-8 past the first bytes, or a line the csv module cannot take
    (a NUL, a field over its size limit), as an input error at the line reached (``line()``;
    decoding runs ahead in blocks, so for bad bytes it is where reading stopped)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise _not_text(path, f"a byte that is not UTF-8 ({exc.reason})", line()) from None
    except csv.Error as exc:
        raise InputError(f"cannot read this row as CSV: {exc}", file=path, line=line()) from None


def _not_text(path: Path, why: str, line: int | None = None) -> InputError:
    return InputError(
        f"not a text trace ({why}): a binary or non-UTF-8 file",
        file=path,
        line=line,
        allowed="UTF-8 CSV or JSON lines",
    )


def _bad_row_error(
    path: Path, line: int, bad: _BadRow, what: str = "cannot read this row"
) -> InputError:
    return InputError(
        f"{what}: {bad.message}; {_SKIP_HINT}",
        file=path,
        line=line,
        field=f"column {bad.column!r}" if bad.column else None,
        value=bad.value,
        allowed=bad.allowed,
    )


class _RowSink:
    """Error-or-skip handling shared by the readers."""

    def __init__(self, path: Path, on_bad: str, counts: ReadCounts) -> None:
        self.path = path
        self.skip = on_bad == "skip"
        self.counts = counts

    def bad(self, line: int, bad: _BadRow) -> None:
        if not self.skip:
            raise _bad_row_error(self.path, line, bad)
        self.counts.bad_rows += 1
        where = f"line {line}" + (f", column {bad.column!r}" if bad.column else "")
        self.counts.note(f"{where}: {bad.message}")


def _column_names(trace: TraceSpec) -> dict[str, str]:
    return {k: v for k, v in trace.column_map().items() if v is not None}


def _time_unit(trace: TraceSpec) -> str:
    return {"mooncake": "ms", "azure": "datetime", "burstgpt": "s"}.get(
        trace.format, trace.time_unit
    )


def _what(col: str, arrival: str, hashes: str | None, clock: _Clock, exc: Exception) -> str:
    """What is wrong with a cell, for the error message (its value is shown beside)."""
    if col == arrival:
        if clock.unit == "datetime":
            return f"not an ISO date-time ({exc})"
        if isinstance(exc, _FarTime):
            return f"a timestamp {exc}"
        return f"not a number of {clock.unit}"
    if col == hashes:
        return f"not a list of integer block ids ({exc})"
    if "64-bit" in str(exc):
        return f"not a non-negative whole number of tokens up to {_MAX_TOKENS:,} ({exc})"
    return "not a non-negative whole number of tokens"


def _missing_columns(
    path: Path, trace: TraceSpec, missing: list[str], found: list[str], line: int
) -> None:
    expected = TRACE_COLUMNS.get(trace.format)
    names = [c for c in (expected or trace.column_map()).values() if c]
    raise InputError(
        f"missing column(s) {', '.join(map(repr, missing))}; a {trace.format} trace has columns "
        + ", ".join(names),
        file=path,
        line=line,
        field=f"column {missing[0]!r}",
        allowed="found: " + (", ".join(found) if found else "nothing"),
    )


def _no_duplicate_columns(path: Path, names: dict[str, str], found: list[str], line: int) -> None:
    # a column named twice leaves no way to tell which of the two holds the values
    twice = [c for c in dict.fromkeys(names.values()) if found.count(c) > 1]
    if twice:
        raise InputError(
            f"the header names column {twice[0]!r} {found.count(twice[0])} times (columns "
            + ", ".join(str(i + 1) for i, c in enumerate(found) if c == twice[0])
            + "); rename or drop all but one",
            file=path,
            line=line,
            field=f"column {twice[0]!r}",
            value=twice[0],
            allowed="each column the reader uses named once",
        )


def _read_csv(
    path: Path, trace: TraceSpec, chunk_size: int, counts: ReadCounts, clock: _Clock
) -> Iterator[_Raw]:
    names = _column_names(trace)
    sink = _RowSink(path, trace.on_bad_row, counts)
    reader: Any = None
    with _open(path) as fh, _text_errors(path, lambda: reader.line_num + 1 if reader else 1):
        reader = csv.reader(fh)
        header: list[str] | None = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
        if header is None:
            raise InputError("trace file is empty", file=path)
        found = [h.strip() for h in header]
        missing = [c for c in names.values() if c not in found]
        if missing:
            _missing_columns(path, trace, missing, found, reader.line_num)
        _no_duplicate_columns(path, names, found, reader.line_num)
        ia = found.index(names["arrival"])
        ii = found.index(names["input_tokens"])
        io = found.index(names["output_tokens"])
        ih = found.index(names["hash_ids"]) if "hash_ids" in names else -1
        ca, ci, co = names["arrival"], names["input_tokens"], names["output_tokens"]
        ch = names.get("hash_ids")
        width = len(found)
        builder = _Builder(chunk_size, ih >= 0)
        seconds = clock.seconds
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            counts.rows += 1
            line = reader.line_num
            if len(row) != width:
                sink.bad(line, _BadRow(None, f"{len(row)} fields, the header has {width}"))
                continue
            col = ca
            try:
                t = seconds(row[ia])
                col = ci
                inp = _tokens_from_text(row[ii])
                col = co
                out = _tokens_from_text(row[io])
                if ih >= 0:
                    col = ch  # type: ignore[assignment]
                    builder.push_hashes(_hashes_from(row[ih]))
            except (ValueError, TypeError, OverflowError) as exc:
                what = _what(col, ca, ch, clock, exc)
                sink.bad(line, _BadRow(col, what, row[found.index(col)]))
                continue
            if builder.push(t, inp, out, line):
                yield builder.take()
        if builder.n:
            yield builder.take()


def _read_jsonl(
    path: Path, trace: TraceSpec, chunk_size: int, counts: ReadCounts, clock: _Clock
) -> Iterator[_Raw]:
    names = _column_names(trace)
    sink = _RowSink(path, trace.on_bad_row, counts)
    ka, ki, ko = names["arrival"], names["input_tokens"], names["output_tokens"]
    kh = names.get("hash_ids")
    hashes_required = trace.format == "jsonl" and kh is not None
    builder: _Builder | None = None
    # scan_once parses one JSON value without json.loads' two whitespace regex matches; a line
    # it rejects (leading blanks, trailing garbage, bad JSON) goes through json.loads for the
    # verdict and the message
    scan = json.JSONDecoder().scan_once
    loads = json.loads
    # integer timestamps skip the clock's checks once it has its origin
    fast_clock = clock.unit != "datetime"
    factor = clock.factor
    origin = clock.origin
    lineno = 0
    with _open(path) as fh, _text_errors(path, lambda: lineno + 1):
        for lineno, text in enumerate(fh, 1):
            if not text.strip():
                continue
            counts.rows += 1
            try:
                record, end = scan(text, 0)
                if end < len(text) and text[end:].strip():
                    raise ValueError
            except (StopIteration, ValueError):
                try:
                    record = loads(text)
                except ValueError as exc:
                    sink.bad(lineno, _BadRow(None, f"not JSON ({getattr(exc, 'msg', exc)})"))
                    continue
            if not isinstance(record, dict):
                sink.bad(lineno, _BadRow(None, "not a JSON object"))
                continue
            if builder is None:  # the first record decides the columns
                found = list(record)
                missing = [c for k, c in names.items() if c not in record and k != "hash_ids"]
                if hashes_required and kh not in record:
                    missing.append(kh)  # type: ignore[arg-type]
                if missing:
                    _missing_columns(path, trace, missing, found, lineno)
                if kh is not None and kh not in record:
                    kh = None
                builder = _Builder(chunk_size, kh is not None)
            col = ka
            try:
                v = record[ka]
                if type(v) is int and origin is not None:
                    t = (v - origin) * factor
                else:
                    t = clock.seconds(v)
                    if fast_clock and origin is None:
                        origin = clock.origin
                col = ki
                inp = record[ki]
                if type(inp) is not int or not 0 <= inp <= _MAX_TOKENS:
                    inp = _tokens_from_json(inp)
                col = ko
                out = record[ko]
                if type(out) is not int or not 0 <= out <= _MAX_TOKENS:
                    out = _tokens_from_json(out)
                if kh is not None:
                    col = kh
                    hv = record[kh]
                    if type(hv) is not list:
                        hv = _hashes_from(hv)
                    hbuf = builder.h
                    before = len(hbuf)
                    try:
                        hbuf.extend(hv)
                    except (TypeError, OverflowError):
                        del hbuf[before:]
                        raise ValueError("block ids must be integers") from None
                    builder.hoff[builder.n + 1] = len(hbuf)
            except KeyError:
                sink.bad(lineno, _BadRow(col, "the field is missing"))
                continue
            except (ValueError, TypeError, OverflowError) as exc:
                sink.bad(lineno, _BadRow(col, _what(col, ka, kh, clock, exc), record.get(col)))
                continue
            if builder.push(t, inp, out, lineno):
                yield builder.take()
    if builder is None:
        if counts.rows == 0:
            raise InputError("trace file is empty", file=path)
        return
    if builder.n:
        yield builder.take()


# --------------------------------------------------------------------------------------------
# the filters of the row policy


def _filtered(
    trace: TraceSpec,
    path: Path,
    seed: int,
    chunk_size: int,
    counts: ReadCounts,
    max_context: int | None = None,
    lengths_only: bool = False,
) -> Iterator[_Raw]:
    """Parsed rows after the ordering, failure, window, sampling, cap and context rules (times
    unshifted)."""
    clock = _Clock(_time_unit(trace))
    reader: Callable[..., Iterator[_Raw]] = (
        _read_jsonl if trace.format in ("mooncake", "jsonl") else _read_csv
    )
    arrival_col = trace.column_map()["arrival"]
    rng = np.random.default_rng(seed) if trace.sample < 1 else None
    skip = trace.on_bad_row == "skip"
    prev_max = -math.inf
    t_first: float | None = None
    window = trace.time_window
    block = trace.block_tokens
    raw_chunks = reader(path, trace, chunk_size, counts, clock)
    # only Mooncake defines what one id covers; a generic file's ids may hash any block size
    hashed = trace.format == "mooncake" and not lengths_only
    sink = _RowSink(path, trace.on_bad_row, counts) if hashed else None
    try:
        for raw in raw_chunks:
            if sink is not None:
                raw = _hashes_fit_prompts(raw, block, sink, "hash_ids")
                if not len(raw):
                    continue
            # 2. non-decreasing timestamps (a skipped row never raises the running maximum)
            before = np.empty(len(raw))
            before[0] = prev_max
            if len(raw) > 1:
                np.maximum.accumulate(raw.t[:-1], out=before[1:])
                np.maximum(before[1:], prev_max, out=before[1:])
            back = raw.t < before
            prev_max = max(prev_max, float(raw.t.max()))
            if back.any():
                j = int(np.argmax(back))
                message = (
                    f"timestamp goes backwards: {raw.t[j]:.6g} s after the trace's first row, "
                    f"earlier than a previous row's {before[j]:.6g} s; traces must be sorted by "
                    "arrival time"
                )
                if not skip:
                    raise InputError(
                        f"{message}; sort the file or {_SKIP_HINT}",
                        file=path,
                        line=int(raw.line[j]),
                        field=f"column {arrival_col!r}",
                    )
                counts.out_of_order += int(back.sum())
                counts.note(f"line {int(raw.line[j])}: {message}")
                raw = raw.select(~back)
            # 3. failed requests
            zero = (raw.inp == 0) | (raw.out == 0)
            if zero.any():
                counts.failed += int(zero.sum())
                raw = raw.select(~zero)
            if not len(raw):
                continue
            if t_first is None:
                t_first = float(raw.t[0])
                if clock.unit == "datetime" and clock.origin is not None:
                    counts.start = (clock.origin + timedelta(seconds=t_first)).isoformat(sep=" ")
            # 4. time window
            past_end = False
            if window is not None:
                rel = raw.t - t_first
                inside = (rel >= window[0]) & (rel <= window[1])
                past_end = bool(rel[-1] > window[1])
                if not inside.all():
                    counts.outside_window += int(len(raw) - inside.sum())
                    raw = raw.select(inside)
            # 5. sampling: one draw per row in file order
            if rng is not None and len(raw):
                keep = rng.random(len(raw)) < trace.sample
                counts.sampled_out += int(len(raw) - keep.sum())
                raw = raw.select(keep)
            # 6. caps, 7. the model's context
            if len(raw):
                raw = _cap(raw, trace, block, counts)
                raw = _within_context(raw, max_context, counts)
            if len(raw):
                counts.kept += len(raw)
                yield raw
            if past_end:
                break
    finally:
        close = getattr(raw_chunks, "close", None)
        if close is not None:
            close()


def _hashes_fit_prompts(raw: _Raw, block: int, sink: _RowSink, column: str) -> _Raw:
    """Rows with more block ids than their prompt has blocks go the way of unreadable rows:
    each id stands for ``block`` tokens, so the ids or the length are wrong, and either would
    skew prefix reuse. Fewer ids than blocks stay: a trace may hash only a prefix."""
    if raw.hash_offsets is None:
        return raw
    have = np.diff(raw.hash_offsets)
    blocks = -(-raw.inp // block)
    over = have > blocks
    if not over.any():
        return raw
    for j in np.flatnonzero(over).tolist():
        message = (
            f"{int(have[j])} block ids for a prompt of {int(raw.inp[j]):,} tokens, which "
            f"{int(blocks[j])} block(s) of {block} tokens cover (is the trace's block_tokens "
            f"{block}?)"
        )
        allowed = f"at most {int(blocks[j])} (one id per {block}-token block of the prompt)"
        sink.bad(int(raw.line[j]), _BadRow(column, message, f"{int(have[j])} ids", allowed))
    return raw.select(~over)


def _within_context(raw: _Raw, max_context: int | None, counts: ReadCounts) -> _Raw:
    if max_context is None:
        return raw
    # prompt + output > context, written so that no sum of two int64 counts can wrap around
    over = (raw.inp > max_context) | (raw.out > max_context - raw.inp)
    if not over.any():
        return raw
    counts.over_context += int(over.sum())
    j = int(np.argmax(over))
    counts.note(
        f"line {int(raw.line[j])}: {int(raw.inp[j]) + int(raw.out[j]):,} tokens (prompt + "
        f"output), over the model's context of {max_context:,}"
    )
    return raw.select(~over)


def _cap(raw: _Raw, trace: TraceSpec, block: int, counts: ReadCounts) -> _Raw:
    if trace.max_output_tokens is not None:
        over = raw.out > trace.max_output_tokens
        if over.any():
            counts.output_capped += int(over.sum())
            raw.out[over] = trace.max_output_tokens
    if trace.max_input_tokens is not None:
        cap = trace.max_input_tokens
        over = raw.inp > cap
        if over.any():
            counts.input_capped += int(over.sum())
            raw.inp[over] = cap
            if raw.hash_ids is not None and raw.hash_offsets is not None:
                have = np.diff(raw.hash_offsets)
                allowed = np.where(over, np.minimum(have, -(-cap // block)), have)
                if (allowed < have).any():
                    owner = np.repeat(np.arange(len(raw)), have)
                    pos = np.arange(len(raw.hash_ids)) - raw.hash_offsets[owner]
                    raw.hash_ids = raw.hash_ids[pos < allowed[owner]]
                    raw.hash_offsets = _offsets(allowed)
    return raw


# --------------------------------------------------------------------------------------------
# the public reader


def iter_trace(
    trace: TraceSpec,
    base_dir: Path,
    seed: int,
    chunk_size: int = DEFAULT_CHUNK,
    counts: ReadCounts | None = None,
    *,
    field: str = "workload.trace",
    max_context: int | None = None,
    lengths_only: bool = False,
) -> Iterator[RequestChunk]:
    """Replay a trace as chunks of at most ``chunk_size`` requests (see the module docstring).

    ``counts``, when given, is filled in with what was kept, skipped, dropped and capped.
    ``max_context``: the model's context in tokens; longer rows are dropped (None: no limit).
    ``lengths_only``: the caller reads the rows' lengths alone (an empirical length
    distribution), so arrival gaps and block hashes, which it never uses, are not checked.
    Raises :class:`InputError` for a missing file, missing columns, an unreadable row (unless
    skipped), or a trace with no request left to replay.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    path = resolve_trace_path(trace, base_dir, field)
    counts = counts if counts is not None else ReadCounts()
    return _replay(trace, path, seed, chunk_size, counts, field, max_context, lengths_only)


def _replay(
    trace: TraceSpec,
    path: Path,
    seed: int,
    chunk_size: int,
    counts: ReadCounts,
    field: str,
    max_context: int | None,
    lengths_only: bool = False,
) -> Iterator[RequestChunk]:
    scale = 1.0
    cached: list[_Raw] | None = None
    if trace.target_rate is not None:
        first = ReadCounts()
        cached = []
        size = n = 0
        t_lo = t_hi = 0.0
        for raw in _filtered(trace, path, seed, chunk_size, first, max_context, lengths_only):
            if n == 0:
                t_lo = float(raw.t[0])
            n += len(raw)
            t_hi = float(raw.t[-1])
            if cached is not None:
                size += raw.nbytes()
                if size <= _CACHE_BYTES:
                    cached.append(raw)
                else:
                    cached = None
        _check_some(path, n, first)
        if n < 2 or t_hi <= t_lo:
            raise InputError(
                "cannot rescale to target_rate: the replayed requests all arrive at one instant",
                file=path,
                field=f"{field}.target_rate",
                value=trace.target_rate,
            )
        scale = (n / (t_hi - t_lo)) / trace.target_rate
        if cached is not None:
            counts.copy_from(first)
    chunks: Iterator[_Raw] = (
        iter(cached)
        if cached is not None
        else _filtered(trace, path, seed, chunk_size, counts, max_context, lengths_only)
    )
    next_id = 0
    t0 = last = 0.0
    for raw in chunks:
        n = len(raw)
        if next_id == 0:
            t0 = float(raw.t[0])
        arrival = raw.t - t0
        if scale != 1.0:
            arrival *= scale
        if not lengths_only:
            _check_gaps(arrival, arrival[0] if next_id == 0 else last, raw, trace, path, field)
        last = float(arrival[-1])
        yield RequestChunk(
            request_id=np.arange(next_id, next_id + n, dtype=np.int64),
            arrival_s=arrival,
            input_tokens=raw.inp,
            output_tokens=raw.out,
            hash_ids=raw.hash_ids,
            hash_offsets=raw.hash_offsets,
        )
        next_id += n
    _check_some(path, next_id, counts)


def _check_gaps(
    arrival: np.ndarray, last: float, raw: _Raw, trace: TraceSpec, path: Path, field: str
) -> None:
    """Refuse replayed arrivals further apart than a run may simulate (``last``: the arrival
    before this chunk)."""
    gaps = np.diff(arrival, prepend=last)
    far = ~(gaps <= MAX_ARRIVAL_GAP_S)  # NaN too: an arrival that is no time at all
    if not far.any():
        return
    j = int(np.argmax(far))
    rescaled = trace.target_rate is not None
    raise InputError(
        f"this request arrives {gaps[j]:.3g} s after the one before it"
        + (" (after rescaling to target_rate)" if rescaled else "")
        + "; a run simulates arrivals at most 10^6 s (11.6 days) apart, and a gap that long is "
        "more likely a wrong timestamp or time unit",
        file=path,
        line=int(raw.line[j]),
        field=f"{field}.target_rate" if rescaled else f"column {trace.column_map()['arrival']!r}",
        value=f"{gaps[j]:.3g} s",
        allowed=f"arrivals at most {MAX_ARRIVAL_GAP_S:.0e} s apart",
    )


def _check_some(path: Path, n: int, counts: ReadCounts) -> None:
    if n:
        return
    if counts.rows == 0:
        raise InputError("the trace has no request rows", file=path)
    dropped = {
        "unreadable (skipped)": counts.bad_rows,
        "out of order (skipped)": counts.out_of_order,
        "zero tokens (failed requests)": counts.failed,
        "outside time_window": counts.outside_window,
        "sampled out": counts.sampled_out,
        "over the model's context": counts.over_context,
    }
    why = ", ".join(f"{v} {k}" for k, v in dropped.items() if v)
    raise InputError(f"no request left to replay of {counts.rows} rows: {why}", file=path)
