"""Measured kernel tables and the efficiency surfaces fitted to them.

A calibration table has one row per measured kernel:

===================  =================================================================
column               meaning
===================  =================================================================
``op``               ``gemm``, ``attention_prefill``, ``attention_decode``, ``memcpy``,
                     ``elementwise`` (``c = a + b`` over ``m`` elements: norms, activations,
                     residuals), ``launch`` (a trivial op: per-op dispatch overhead)
``dtype``            compute format key (``fp32``, ``bf16``, ``fp16``, ``int8``, ``fp8``);
                     ``bytes`` for memcpy
``m n k``            GEMM shape (``m`` tokens × ``k`` in → ``n`` out)
``batch``            attention: sequences in the call
``seq_len``          prefill attention: causal length of each sequence
``context``          decode attention: cached tokens each query reads
``heads kv_heads``   attention heads (query, key/value)
``head_dim``         attention head size
``bytes``            bytes moved: for memcpy twice the bytes copied (read + write); for
                     other ops the minimal bytes read and written
``flops``            floating-point (or integer) operations by the usual formula
``time_s``           median wall time of the repeats, seconds
``time_std_s``       standard deviation over repeats
``repeats``          timed repeats after warm-up
``split``            ``fit`` (the grid the surfaces are fitted on) or ``holdout``
===================  =================================================================

Shape columns that do not apply to an op are empty (NaN). A table is written in the format its
file's extension names (:data:`TABLE_SUFFIXES`): ``.csv`` (metadata in ``FILE.meta.json`` beside
it), ``.json`` (one object: ``meta`` and ``rows``, an empty cell as ``null``) or ``.parquet``
(metadata in the schema under ``hetsim``). Metadata: device, backend and version, date, the peak
figures used, and how contended the machine was (see :func:`contention`).

**Efficiency surfaces.** For each (op, dtype) the fit rows give an efficiency
``roofline_time / measured_time``, where ``roofline_time = max(flops / peak_flops[dtype],
bytes / peak_bandwidth)`` with the peaks in the metadata. ``log(efficiency)`` is interpolated
multilinearly over the log of the shape axes that vary in the grid, and clamped to the grid's
edges outside it. A prediction for a new shape is then ``roofline_time / efficiency``.

**End-to-end calibrations** (:class:`EndToEndCalibration`) are the other kind: a pool's
``compute`` and ``memory`` efficiencies and ``step_overhead`` fitted to whole serving runs (the
user's benchmark runs, by :func:`hetsim.validation.fit_end_to_end`), written as JSON with the
runs they came from and their held-out error, provenance ``end-to-end``. They replace a profile's
``efficiency`` figures (:meth:`EndToEndCalibration.apply`), never a kernel table.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetsim.errors import InputError

__all__ = [
    "TABLE_COLUMNS",
    "SHAPE_AXES",
    "CalibrationTable",
    "EfficiencySurface",
    "CONTENDED_LIMIT",
    "TABLE_SUFFIXES",
    "check_table_path",
    "contention",
    "read_table",
    "write_table",
    "kernel_flops_bytes",
    "END_TO_END",
    "END_TO_END_FORMAT",
    "END_TO_END_PARAMETERS",
    "EndToEndCalibration",
    "efficiency_figures",
    "read_end_to_end",
    "write_end_to_end",
]

TABLE_COLUMNS = [
    "op",
    "dtype",
    "m",
    "n",
    "k",
    "batch",
    "seq_len",
    "context",
    "heads",
    "kv_heads",
    "head_dim",
    "bytes",
    "flops",
    "time_s",
    "time_std_s",
    "repeats",
    "split",
]

#: the shape axes an efficiency surface may vary over, per op
SHAPE_AXES: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "n", "k"),
    "attention_prefill": ("batch", "seq_len", "heads", "head_dim"),
    "attention_decode": ("batch", "context", "heads", "head_dim"),
    "memcpy": ("bytes",),
    "elementwise": ("m",),
}

_ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5, "fp4": 0.5}


def kernel_flops_bytes(op: str, dtype: str, **shape: float) -> tuple[float, float]:
    """FLOPs and minimal bytes moved by one kernel call, by the usual formulas.

    GEMM: ``2mnk`` and reads of both operands plus the output write (int8 GEMMs write int32,
    fp8 write bf16). Causal prefill attention: ``4·heads·head_dim·s(s+1)/2`` per sequence, reading
    Q, K, V and writing O. Decode attention: ``4·heads·head_dim·context`` per sequence, reading
    the cache (K and V for every KV head) — the term that dominates. Memcpy: one read and one
    write of ``bytes``.
    """
    e = _ELEMENT_BYTES.get(dtype, 2)
    if op == "gemm":
        m, n, k = shape["m"], shape["n"], shape["k"]
        out = 4 if dtype in ("int8", "fp32") else 2
        return 2.0 * m * n * k, (m * k + k * n) * e + m * n * out
    if op == "attention_prefill":
        b, s, h, d = shape["batch"], shape["seq_len"], shape["heads"], shape["head_dim"]
        kv = shape.get("kv_heads") or h
        flops = 4.0 * b * h * d * s * (s + 1) / 2
        return flops, b * s * d * (2 * h + 2 * kv) * e
    if op == "attention_decode":
        b, c, h, d = shape["batch"], shape["context"], shape["heads"], shape["head_dim"]
        kv = shape.get("kv_heads") or h
        return 4.0 * b * h * d * c, b * (2 * kv * c * d + 2 * h * d) * e
    if op == "memcpy":
        return 0.0, 2.0 * shape["bytes"]
    if op == "elementwise":  # c = a + b over m elements
        return float(shape["m"]), 3.0 * shape["m"] * e
    if op == "launch":
        return 0.0, 0.0
    raise ValueError(f"unknown op {op!r}")


@dataclass
class CalibrationTable:
    """Measured rows plus the metadata that says where and how they were measured."""

    rows: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def peak_flops(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.meta.get("peak", {}).get("flops", {}).items()}

    @property
    def peak_bandwidth(self) -> float:
        return float(self.meta.get("peak", {}).get("memory_bandwidth", float("nan")))

    def subset(self, op: str, dtype: str | None = None, split: str | None = "fit") -> pd.DataFrame:
        r = self.rows[self.rows["op"] == op]
        if dtype is not None:
            r = r[r["dtype"] == dtype]
        if split is not None:
            r = r[r["split"] == split]
        return r

    def launch_overhead(self) -> float:
        """Median time of a trivial op: the per-op dispatch cost of this backend."""
        r = self.rows[self.rows["op"] == "launch"]
        return float(r["time_s"].median()) if len(r) else 0.0

    def surface(self, op: str, dtype: str) -> EfficiencySurface:
        return EfficiencySurface.fit(self, op, dtype)

    def roofline_time(self, op: str, dtype: str, flops: float, nbytes: float) -> float:
        peak = self.peak_flops.get(dtype, float("nan")) if flops else float("inf")
        return max(flops / peak if flops else 0.0, nbytes / self.peak_bandwidth)


@dataclass
class EfficiencySurface:
    """log(efficiency) over log shape axes, multilinear on the measured grid, clamped outside."""

    op: str
    dtype: str
    axes: tuple[str, ...]
    grid: tuple[np.ndarray, ...]  # log of the distinct axis values, ascending
    log_eff: np.ndarray  # shape = tuple(len(g) for g in grid)
    constant: float | None = None  # when no axis varies

    @classmethod
    def fit(cls, table: CalibrationTable, op: str, dtype: str) -> EfficiencySurface:
        rows = table.subset(op, dtype, "fit")
        if rows.empty:
            raise KeyError(f"no fit rows for {op}/{dtype}")
        eff = np.array(
            [table.roofline_time(op, dtype, r.flops, r.bytes) / r.time_s for r in rows.itertuples()]
        )
        log_eff = np.log(np.clip(eff, 1e-6, None))
        axes = tuple(a for a in SHAPE_AXES[op] if rows[a].nunique() > 1)
        if not axes:
            return cls(op, dtype, (), (), np.array([]), constant=float(np.median(log_eff)))
        values = [np.sort(rows[a].unique().astype(float)) for a in axes]
        cube = np.full(tuple(len(v) for v in values), np.nan)
        counts = np.zeros_like(cube)
        for (_, r), le in zip(rows.iterrows(), log_eff, strict=True):
            idx = tuple(
                int(np.searchsorted(v, float(r[a]))) for a, v in zip(axes, values, strict=True)
            )
            cube[idx] = le if np.isnan(cube[idx]) else cube[idx] + le
            counts[idx] += 1
        cube = cube / np.where(counts > 0, counts, 1)
        if np.isnan(cube).any():
            cube = _fill_missing(cube)
        return cls(op, dtype, axes, tuple(np.log(v) for v in values), cube)

    def efficiency(self, **shape: float) -> float:
        """Interpolated efficiency at ``shape`` (values for every axis of the surface)."""
        if self.constant is not None:
            return math.exp(self.constant)
        point = [math.log(max(float(shape[a]), 1e-30)) for a in self.axes]
        return math.exp(_multilinear(self.grid, self.log_eff, point))


def _multilinear(grid: tuple[np.ndarray, ...], values: np.ndarray, point: list[float]) -> float:
    lower: list[int] = []
    weights: list[float] = []
    for g, x in zip(grid, point, strict=True):
        if len(g) == 1:
            lower.append(0)
            weights.append(0.0)
            continue
        x = min(max(x, g[0]), g[-1])  # clamp outside the grid
        i = int(np.searchsorted(g, x, side="right") - 1)
        i = min(max(i, 0), len(g) - 2)
        lower.append(i)
        weights.append((x - g[i]) / (g[i + 1] - g[i]))
    total = 0.0
    for corner in range(1 << len(grid)):
        w = 1.0
        idx = []
        for dim, (i, t) in enumerate(zip(lower, weights, strict=True)):
            upper = (corner >> dim) & 1
            if len(grid[dim]) == 1:
                if upper:
                    w = 0.0
                idx.append(0)
                continue
            w *= t if upper else 1.0 - t
            idx.append(i + upper)
        if w:
            total += w * float(values[tuple(idx)])
    return total


def _fill_missing(cube: np.ndarray) -> np.ndarray:
    """Fill grid holes (a shape that failed to run) with the mean of the measured cells."""
    filled = cube.copy()
    filled[np.isnan(filled)] = np.nanmean(cube)
    return filled


# ---- reading and writing -------------------------------------------------------------------


#: the formats a calibration table is written and read in, by file extension
TABLE_SUFFIXES = (".csv", ".json", ".parquet")
#: a table more than this share of whose timings were taken while other processes used the
#: CPUs (meta ``contended_share``) is contended: its efficiencies measure the neighbours
CONTENDED_LIMIT = 0.2
_JSON_FORMAT = "hetsim calibration table"


def check_table_path(path: str | Path, field: str | None = None) -> Path:
    """``path`` when its extension names a calibration format, else an input error."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(
            "a calibration table's extension names its format",
            file=None if field else path,
            field=field,
            value=str(path),
            allowed=", ".join(TABLE_SUFFIXES),
        )
    return path


def contention(meta: dict[str, Any]) -> float | None:
    """The share of the table's timings taken on a contended machine when the table is
    contended, else None. The sweep's ``contended`` flag decides; a table without one (written
    before it, where ``contended`` listed cases) is contended when the share is over
    :data:`CONTENDED_LIMIT`."""
    share = float(meta.get("contended_share") or 0.0)
    flag = meta.get("contended")
    if isinstance(flag, bool):
        return share if flag else None
    return share if share > CONTENDED_LIMIT else None


def write_table(table: CalibrationTable, path: str | Path) -> Path:
    """Write rows and metadata in the format ``path``'s extension names (see the module
    docstring). Each file is written beside its target and renamed into place, so a failed
    write leaves an earlier table whole."""
    path = check_table_path(path)
    rows = table.rows.reindex(columns=TABLE_COLUMNS)
    suffix = path.suffix.lower()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".parquet":
            _replace(path, lambda tmp: _write_parquet(rows, table.meta, tmp))
        elif suffix == ".json":
            _replace(path, lambda tmp: tmp.write_text(_to_json(rows, table.meta)))
        else:
            _replace(path, lambda tmp: rows.to_csv(tmp, index=False))
            meta = json.dumps(table.meta, indent=2) + "\n"
            _replace(Path(f"{path}.meta.json"), lambda tmp: tmp.write_text(meta))
    except OSError as exc:
        raise InputError(
            f"cannot write the calibration table ({exc.strerror or exc})",
            file=path,
            allowed="a path in a folder you can write to",
        ) from None
    return path


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_parquet(rows: pd.DataFrame, meta: dict[str, Any], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(rows, preserve_index=False)
    schema_meta = dict(arrow.schema.metadata or {})
    schema_meta[b"hetsim"] = json.dumps(meta).encode()
    pq.write_table(arrow.replace_schema_metadata(schema_meta), path)


def _to_json(rows: pd.DataFrame, meta: dict[str, Any]) -> str:
    records = [[_plain(v) for v in row] for row in rows.itertuples(index=False)]
    doc = {"format": _JSON_FORMAT, "meta": meta, "columns": list(rows.columns), "rows": records}
    return json.dumps(doc, indent=1) + "\n"


def _plain(value: Any) -> Any:
    """A cell as JSON: NaN (not JSON) as null, numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _from_json(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ValueError(
            f"not a calibration table: a JSON object with `meta` and `rows` ({_JSON_FORMAT!r})"
        )
    rows = pd.DataFrame(doc["rows"], columns=doc.get("columns"))
    for column in rows.columns:
        if column not in ("op", "dtype", "split"):
            rows[column] = pd.to_numeric(rows[column])  # null back to NaN
    meta = doc.get("meta") or {}
    return rows, meta if isinstance(meta, dict) else {}


def read_table(path: str | Path) -> CalibrationTable:
    """A table written by :func:`write_table`, in the format its extension names."""
    path = Path(path)
    if not path.is_file():
        raise InputError("calibration table not found", file=path)
    suffix = check_table_path(path).suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            arrow = pq.read_table(path)
            raw = (arrow.schema.metadata or {}).get(b"hetsim")
            meta = json.loads(raw) if raw else {}
            rows = arrow.to_pandas()
        elif suffix == ".json":
            rows, meta = _from_json(path)
        else:
            rows = pd.read_csv(path)
            meta_path = Path(f"{path}.meta.json")
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputError(f"cannot read calibration table: {exc}", file=path) from None
    missing = [c for c in ("op", "dtype", "flops", "bytes", "time_s", "split") if c not in rows]
    if missing:
        raise InputError(
            f"calibration table lacks column(s) {', '.join(missing)}",
            file=path,
            allowed=", ".join(TABLE_COLUMNS),
        )
    if not meta.get("peak"):
        raise InputError(
            "calibration metadata has no `peak` figures (flops per dtype, memory_bandwidth)",
            file=path,
        )
    return CalibrationTable(rows=rows, meta=meta, path=path)


# ---- end-to-end calibrations ---------------------------------------------------------------

#: the ``format`` of an end-to-end calibration file
END_TO_END_FORMAT = "hetsim end-to-end calibration"
#: the provenance an end-to-end calibration carries, apart from the kernel tables above (the
#: profile's ``efficiency_source`` once applied; the cost layer's Provenance.END_TO_END, which
#: imports this module)
END_TO_END = "end-to-end"
#: the profile efficiencies an end-to-end calibration fits (``efficiency.<name>``)
END_TO_END_PARAMETERS = ("compute", "memory", "step_overhead")


@dataclass(frozen=True)
class EndToEndCalibration:
    """A pool's free parameters fitted to whole serving runs (users' benchmark runs), not to
    kernels: the profile's roofline efficiencies ``compute`` and ``memory`` and its per-step
    ``step_overhead`` (seconds). ``data`` names every run it was fitted on (file, sha256, which
    requests trained and which were held out); ``errors`` holds the held-out error before and
    after the fit. Applying it replaces the profile's ``efficiency`` figures, each labelled
    ``end-to-end`` in its note: it is a fit, never a measurement of the device."""

    accelerator: str
    fitted: dict[str, float]
    default: dict[str, float]
    data: list[dict[str, Any]]
    errors: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    provenance: str = END_TO_END

    def apply(self, profile: Any) -> Any:
        """``profile`` (an :class:`~hetsim.spec.hardware.AcceleratorProfile`) with the fitted
        efficiencies; an input error when the calibration was fitted on another accelerator."""
        if profile.name != self.accelerator:
            raise InputError(
                "this end-to-end calibration was fitted on another accelerator",
                field="accelerator",
                value=profile.name,
                allowed=self.accelerator,
            )
        eff = profile.efficiency.model_dump(mode="python")
        eff.update(efficiency_figures(self.fitted, self.data))
        # the fitted efficiencies price every op (not transferred surfaces), labelled end-to-end
        return profile.model_copy(
            update={
                "efficiency": type(profile.efficiency).model_validate(eff),
                "efficiency_source": END_TO_END,
            }
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": END_TO_END_FORMAT,
            "provenance": self.provenance,
            "accelerator": self.accelerator,
            "fitted": self.fitted,
            "default": self.default,
            "data": self.data,
            "errors": self.errors,
            "meta": self.meta,
        }


def efficiency_figures(fitted: dict[str, float], data: list[dict[str, Any]]) -> dict[str, Any]:
    """Profile ``efficiency`` entries for fitted values, each saying it is an end-to-end fit."""
    runs = ", ".join(sorted({Path(str(d.get("source", "?"))).name for d in data})) or "?"
    note = f"{END_TO_END} fit to benchmark runs ({runs}); not a device measurement"
    out: dict[str, Any] = {}
    for name in END_TO_END_PARAMETERS:
        value = fitted[name]
        shown = f"{value * 1e3:.6g} ms" if name == "step_overhead" else round(value, 6)
        out[name] = {"value": shown, "confidence": "estimate", "note": note}
    return out


def write_end_to_end(cal: EndToEndCalibration, path: str | Path) -> Path:
    """Write ``cal`` as JSON (written beside and renamed into place)."""
    path = Path(path)
    text = json.dumps(cal.to_json(), indent=2, default=_plain) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, lambda tmp: tmp.write_text(text))
    except OSError as exc:
        raise InputError(
            f"cannot write the calibration ({exc.strerror or exc})",
            file=path,
            allowed="a path in a folder you can write to",
        ) from None
    return path


def read_end_to_end(path: str | Path) -> EndToEndCalibration:
    """An end-to-end calibration written by :func:`write_end_to_end`."""
    path = Path(path)
    if not path.is_file():
        raise InputError("end-to-end calibration not found", file=path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the calibration: {exc}", file=path) from None
    if not isinstance(doc, dict) or doc.get("format") != END_TO_END_FORMAT:
        raise InputError(
            "not an end-to-end calibration", file=path, field="format", allowed=END_TO_END_FORMAT
        )
    fitted = doc.get("fitted")
    if not isinstance(fitted, dict) or set(fitted) != set(END_TO_END_PARAMETERS):
        raise InputError(
            "fitted values missing",
            file=path,
            field="fitted",
            allowed=", ".join(END_TO_END_PARAMETERS),
        )
    for name, value in fitted.items():
        bad = not isinstance(value, (int, float)) or not value > 0
        if bad or (name != "step_overhead" and value > 1):
            raise InputError(
                "out of range",
                file=path,
                field=f"fitted.{name}",
                value=value,
                allowed="seconds > 0" if name == "step_overhead" else "a fraction in (0, 1]",
            )
    return EndToEndCalibration(
        accelerator=str(doc.get("accelerator")),
        fitted={k: float(v) for k, v in fitted.items()},
        default={k: float(v) for k, v in (doc.get("default") or {}).items()},
        data=list(doc.get("data") or []),
        errors=dict(doc.get("errors") or {}),
        meta=dict(doc.get("meta") or {}),
        provenance=str(doc.get("provenance", END_TO_END)),
    )
