"""Reader of NVIDIA's end-to-end silicon sample (``systems/silicon_sample.csv`` in the
``aiconfigurator-core`` 0.12.0 wheel, Apache-2.0).

Each row is one benchmark run: a model served by one runtime on one system at a fixed prompt
length (ISL), output length (OSL) and client concurrency, aggregated (``agg``: prefill and decode
on the same engines) or disaggregated (``disagg``: prefill and decode workers apart), with the
measured TTFT and TPOT in milliseconds. The sample is a VALIDATION set: hetsim fits nothing to it.

Times are converted to seconds on reading (SI inside). Rows that repeat one measurement key (the
same configuration measured again, or copied into two dumps) collapse to one measurement whose
TTFT and TPOT are the median of the repeats; ``repeats`` says how many rows it stands for.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import math
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from hetsim.errors import InputError

__all__ = [
    "Mode",
    "Runtime",
    "Parallelism",
    "SiliconRow",
    "REQUIRED_COLUMNS",
    "read_silicon",
    "collapse_duplicates",
]


class Mode(enum.Enum):
    AGG = "agg"
    DISAGG = "disagg"


class Runtime(enum.Enum):
    VLLM = "vllm"
    SGLANG = "sglang"
    TRTLLM = "trtllm"


_PARALLEL = ("batch_size", "tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")
_WORKER = ("batch_size", "num_workers", "tp_size", "pp_size", "attention_dp_size")
_WORKER += ("moe_tp_size", "moe_ep_size")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "id",
    "silicon_data_source",
    "backend",
    "backend_version",
    "model_path",
    "system",
    "precision",
    "mode",
    "isl",
    "osl",
    "gemm_quant_mode",
    "moe_quant_mode",
    *_PARALLEL,
    *(f"prefill_{c}" for c in _WORKER),
    *(f"decode_{c}" for c in _WORKER),
    "silicon_ttft_ms",
    "silicon_tpot_ms",
)
_CONCURRENCY = re.compile(r"silicon_concurrency=([^;]*)")
_WHOLE = "a whole number >= 0"
_COUNT = "a whole number >= 1"
_LATENCY = "a positive number"


@dataclass(frozen=True, slots=True)
class Parallelism:
    """How one engine (an agg instance, or a prefill/decode worker) is split.

    The sample leaves degrees empty or 0 where they do not apply; both read as 1. ``batch_size``
    is the engine's maximum running batch (None where the row has none). A disaggregated row
    may leave its worker counts empty (1,328 of 1,602 do): ``workers`` then reads 1 and
    ``workers_recorded`` says the count is not known."""

    batch_size: int | None
    workers: int
    tp: int
    pp: int
    dp: int
    moe_tp: int
    moe_ep: int
    workers_recorded: bool = True

    @property
    def devices(self) -> int:
        """Accelerators of one engine: attention tp x attention dp (x pp)."""
        return self.tp * self.dp * self.pp


@dataclass(frozen=True, slots=True)
class SiliconRow:
    """One measurement of the silicon sample (times in seconds)."""

    id: str
    source: str
    runtime: Runtime
    runtime_version: str
    model: str
    system: str
    precision: str
    gemm_quant: str
    moe_quant: str
    mode: Mode
    isl: int
    osl: int
    concurrency: int | None
    agg: Parallelism | None
    prefill: Parallelism | None
    decode: Parallelism | None
    ttft_s: float
    tpot_s: float
    line: int
    repeats: int = 1
    #: the ids of every repeat of the measurement, this row's first (empty: only this one)
    repeat_ids: tuple[str, ...] = ()

    def key(self) -> tuple[object, ...]:
        """What makes two rows the same measurement: everything but the id, the provenance
        text and the measured values."""
        return (
            self.runtime,
            self.runtime_version,
            self.model,
            self.system,
            self.precision,
            self.gemm_quant,
            self.moe_quant,
            self.mode,
            self.isl,
            self.osl,
            self.concurrency,
            self.agg,
            self.prefill,
            self.decode,
        )


def read_silicon(path: str | Path) -> list[SiliconRow]:
    """Every row of a silicon-sample CSV, typed; an InputError names the file, line and column
    of anything not in the format."""
    path = Path(path)
    reader = csv.reader(io.StringIO(_text(path), newline=""))
    rows: list[SiliconRow] = []
    try:
        header = next(reader, [])
        _check_header(header, path)
        for fields in reader:
            if not fields:  # a blank line, e.g. a trailing one, holds no measurement
                continue
            if len(fields) != len(header):
                raise InputError(
                    f"the row has {len(fields)} fields where the header has {len(header)}",
                    file=path,
                    line=reader.line_num,
                )
            rows.append(_row(dict(zip(header, fields, strict=True)), path, reader.line_num))
    except csv.Error as exc:
        raise InputError(f"not readable as CSV: {exc}", file=path, line=reader.line_num) from None
    if not rows:
        raise InputError("the silicon sample has no rows, only a header", file=path)
    return rows


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the silicon sample: {exc.strerror}", file=path) from None
    # spreadsheet exports often open with a byte-order mark, which would rename the first column
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded",
            file=path,
            line=line,
            allowed="UTF-8 text (re-save the CSV as UTF-8)",
        ) from None


def _check_header(header: list[str], path: Path) -> None:
    if not header:
        raise InputError("the silicon sample is empty: no header, no rows", file=path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(
            "not a silicon-sample CSV (aiconfigurator-core systems/silicon_sample.csv): "
            f"missing columns {', '.join(missing)}",
            file=path,
            field="header",
        )
    # a column written twice would be read from whichever copy comes last: ambiguous
    twice = [c for c in REQUIRED_COLUMNS if header.count(c) > 1]
    if twice:
        raise InputError(
            "a column appears more than once", file=path, field="header", value=twice[0]
        )


def _whole(text: str) -> int | None:
    """The whole number ``text`` writes (``8``, or ``8.0`` as a dataframe dump writes it), or
    None when it is not a finite whole number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value)


def _row(raw: dict[str, str], path: Path, line: int) -> SiliconRow:
    def fail(column: str, why: str, allowed: str | Iterable[object] | None = None) -> InputError:
        return InputError(
            why, file=path, line=line, field=column, value=raw[column], allowed=allowed
        )

    def enum_of(kind: type[enum.Enum], column: str) -> enum.Enum:
        try:
            return kind(raw[column].strip())
        except ValueError:
            raise fail(column, f"unknown {column}", [m.value for m in kind]) from None

    def count(column: str) -> int:
        value = _whole(raw[column])
        if value is None or value < 1:
            raise fail(column, "not a whole number >= 1", _COUNT)
        return value

    def latency(column: str) -> float:
        try:
            value = float(raw[column])
        except ValueError:
            raise fail(column, "not a number", _LATENCY) from None
        # an infinite, zero or NaN measurement would score as a -100% or NaN error
        if not (value > 0 and math.isfinite(value)):
            raise fail(column, "a measured latency must be finite and positive", _LATENCY)
        return value

    mode = enum_of(Mode, "mode")
    return SiliconRow(
        id=raw["id"],
        source=raw["silicon_data_source"],
        runtime=enum_of(Runtime, "backend"),  # type: ignore[arg-type]
        runtime_version=raw["backend_version"],
        model=raw["model_path"],
        system=raw["system"],
        precision=raw["precision"],
        gemm_quant=raw["gemm_quant_mode"],
        moe_quant=raw["moe_quant_mode"],
        mode=mode,  # type: ignore[arg-type]
        isl=count("isl"),
        osl=count("osl"),
        concurrency=_concurrency(raw["silicon_data_source"], path, line),
        agg=_parallelism(raw, "", fail) if mode is Mode.AGG else None,
        prefill=_parallelism(raw, "prefill_", fail) if mode is Mode.DISAGG else None,
        decode=_parallelism(raw, "decode_", fail) if mode is Mode.DISAGG else None,
        ttft_s=latency("silicon_ttft_ms") * 1e-3,
        tpot_s=latency("silicon_tpot_ms") * 1e-3,
        line=line,
    )


def _concurrency(source: str, path: Path, line: int) -> int | None:
    """The clients of ``silicon_concurrency=N`` in the data-source text; None where it has none.
    Anything but one whole N >= 1 is an error: 0 clients would be simulated as some other count."""
    found = _CONCURRENCY.findall(source)
    if not found:
        return None
    value = _whole(found[0].strip()) if len(found) == 1 else None
    if value is None or value < 1:
        written = "; ".join(f"silicon_concurrency={f}" for f in found)
        why = (
            "silicon_concurrency given more than once"
            if len(found) > 1
            else "silicon_concurrency is not a client count"
        )
        raise InputError(
            why, file=path, line=line, field="silicon_data_source", value=written, allowed=_COUNT
        )
    return value


def _parallelism(
    raw: dict[str, str], prefix: str, fail: Callable[[str, str, str], InputError]
) -> Parallelism:
    def degree(column: str) -> int | None:
        text = raw[prefix + column].strip()
        if not text:
            return None
        value = _whole(text)
        if value is None or value < 0:
            raise fail(prefix + column, "not a whole number >= 0", _WHOLE)
        return value

    def one(column: str) -> int:  # empty and 0 both mean "does not apply": 1
        return degree(column) or 1

    workers = one("num_workers") if prefix else 1
    recorded = not prefix or degree("num_workers") is not None
    return Parallelism(
        batch_size=degree("batch_size") or None,
        workers=workers,
        tp=one("tp_size"),
        pp=one("pp_size"),
        dp=one("attention_dp_size"),
        moe_tp=one("moe_tp_size"),
        moe_ep=one("moe_ep_size"),
        workers_recorded=recorded,
    )


def collapse_duplicates(rows: Iterable[SiliconRow]) -> list[SiliconRow]:
    """One row per measurement key, first-seen order; TTFT and TPOT are the median of the
    repeats (a median, so one outlying repeat does not move the reference)."""
    groups: dict[tuple[object, ...], list[SiliconRow]] = {}
    for row in rows:
        groups.setdefault(row.key(), []).append(row)
    return [_merge(group) for group in groups.values()]


def _merge(group: list[SiliconRow]) -> SiliconRow:
    if len(group) == 1:
        return group[0]
    return replace(
        group[0],
        ttft_s=statistics.median(r.ttft_s for r in group),
        tpot_s=statistics.median(r.tpot_s for r in group),
        repeats=len(group),
        repeat_ids=tuple(r.id for r in group),
    )
