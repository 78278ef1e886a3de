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

Shape columns that do not apply to an op are empty (NaN). Metadata (device, backend and
version, date, the peak figures used) travels in ``FILE.meta.json`` next to a CSV, or in the
Parquet schema metadata under ``hetsim``.

**Efficiency surfaces.** For each (op, dtype) the fit rows give an efficiency
``roofline_time / measured_time``, where ``roofline_time = max(flops / peak_flops[dtype],
bytes / peak_bandwidth)`` with the peaks in the metadata. ``log(efficiency)`` is interpolated
multilinearly over the log of the shape axes that vary in the grid, and clamped to the grid's
edges outside it. A prediction for a new shape is then ``roofline_time / efficiency``.
"""

from __future__ import annotations

import json
import math
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
    "read_table",
    "write_table",
    "kernel_flops_bytes",
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


def write_table(table: CalibrationTable, path: str | Path) -> Path:
    """Write rows and metadata: ``.parquet`` keeps metadata inside, ``.csv`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = table.rows.reindex(columns=TABLE_COLUMNS)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = pa.Table.from_pandas(rows, preserve_index=False)
        schema_meta = dict(arrow.schema.metadata or {})
        schema_meta[b"hetsim"] = json.dumps(table.meta).encode()
        pq.write_table(arrow.replace_schema_metadata(schema_meta), path)
    else:
        rows.to_csv(path, index=False)
        Path(f"{path}.meta.json").write_text(json.dumps(table.meta, indent=2) + "\n")
    return path


def read_table(path: str | Path) -> CalibrationTable:
    path = Path(path)
    if not path.is_file():
        raise InputError("calibration table not found", file=path)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            arrow = pq.read_table(path)
            raw = (arrow.schema.metadata or {}).get(b"hetsim")
            meta = json.loads(raw) if raw else {}
            rows = arrow.to_pandas()
        else:
            rows = pd.read_csv(path)
            meta_path = Path(f"{path}.meta.json")
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (OSError, ValueError) as exc:
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
