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

import csv
import enum
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
_CONCURRENCY = re.compile(r"silicon_concurrency=(\d+)")


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
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the silicon sample: {exc.strerror}", file=path) from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                "not a silicon-sample CSV (aiconfigurator-core systems/silicon_sample.csv): "
                f"missing columns {', '.join(missing)}",
                file=path,
                field="header",
            )
        return [_row(raw, path, n) for n, raw in enumerate(reader, start=2)]


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

    def number(column: str) -> float:
        try:
            value = float(raw[column])
        except ValueError:
            raise fail(column, "not a number", "a positive number") from None
        if not value > 0:
            raise fail(column, "must be positive", "a positive number")
        return value

    mode = enum_of(Mode, "mode")
    found = _CONCURRENCY.search(raw["silicon_data_source"])
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
        isl=int(number("isl")),
        osl=int(number("osl")),
        concurrency=int(found.group(1)) if found else None,
        agg=_parallelism(raw, "", fail) if mode is Mode.AGG else None,
        prefill=_parallelism(raw, "prefill_", fail) if mode is Mode.DISAGG else None,
        decode=_parallelism(raw, "decode_", fail) if mode is Mode.DISAGG else None,
        ttft_s=number("silicon_ttft_ms") * 1e-3,
        tpot_s=number("silicon_tpot_ms") * 1e-3,
        line=line,
    )


def _parallelism(
    raw: dict[str, str], prefix: str, fail: Callable[[str, str, str], InputError]
) -> Parallelism:
    def degree(column: str) -> int | None:
        text = raw[prefix + column].strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise fail(prefix + column, "not a number", "a whole number >= 0") from None
        if value < 0 or value != int(value):
            raise fail(prefix + column, "not a whole number >= 0", "a whole number >= 0")
        return int(value)

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
    )
