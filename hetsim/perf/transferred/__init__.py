"""Efficiency surfaces of measured architectures, for devices that have no tables of their own.

A measured table says how long a kernel took on one NVIDIA system. Divided into the time the
same kernel takes on that system's datasheet roofline (its hetsim profile's peaks at 100%), it
becomes an *achieved efficiency* as a function of the op's shape: GEMM ``m × n × k`` per compute
format, context attention ``batch × prompt length`` and generation attention ``batch × attended
length`` per (query heads, KV heads, head dim, KV format), the all-reduce ``message`` per rank
count. :class:`EfficiencySurfaces` keeps each as a :class:`~hetsim.perf.measured.grid.LogGrid`
of efficiencies on the table's own points, clamped to (0, 1]: a kernel never beats the roofline
(small GEMMs whose weights sit in L2 measure faster than HBM allows; that does not transfer).
The GEMM grid is coarsened in ``m`` to 1..16 and multiples of 16: the tables' tile-boundary
points (``m + 1`` next to a measured ``m``) record the source GPU's tile quantisation, which is
its own, not the target's. Efficiencies are stored as float16 logarithms (under 0.5% in time).

What transfers and what does not: an efficiency folds the source's fixed launch and
synchronisation costs into a ratio, so on a slower device those costs scale with its roofline
time (a launch-bound decode kernel on a device with half the bandwidth costs twice the source's
launch time). The step overhead, elementwise passes, grouped MoE GEMMs and MLA attention are not
in the tables: they stay on the profile's roofline and say ``roofline-default``. fp8 GEMMs carry
the efficiency of vLLM's per-tensor ``fp8`` rows whatever the checkpoint's scaling (precision
``fp8_scales``; vLLM computes a dynamic scale in about 1 µs, and its block rows are not read,
:mod:`~hetsim.perf.measured.tables`). What does
transfer as an absolute time is the source's kernel floor (its shortest measured GEMM: one
launch inside a CUDA graph), the least any kernel is charged, as the measured predictor does.

The ``<system>-<runtime>.npz`` files next to this module are derived from aiconfigurator-core
0.12.0 (Apache-2.0; see NOTICE) by ``tools/derive_transferred.py``; reading them needs no extra.

Which architecture a device borrows from is stated in its profile (``transferred_from``) and
checked against :func:`nearest_measured`, the rule.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hetsim.errors import InputError
from hetsim.perf.measured.grid import LogGrid
from hetsim.perf.ops import Gemm, ring_allreduce_bytes
from hetsim.spec.hardware import TRANSFER_SYSTEMS, AcceleratorProfile
from hetsim.spec.precision import get_format

__all__ = [
    "DATA_DIR",
    "EfficiencySurfaces",
    "attention_work",
    "derive_surfaces",
    "load_surfaces",
    "nearest_measured",
    "peak_time",
    "save_surfaces",
]

DATA_DIR = Path(__file__).resolve().parent
RUNTIME = "vllm"  # the runtime whose tables every shipped surface comes from
LICENCE = "derived from aiconfigurator-core 0.12.0 (NVIDIA), Apache-2.0"

AttentionKey = tuple[int, int, int, str]
_GEMM_FORMATS = {"bf16": ("bf16", "bf16"), "fp8": ("fp8_e4m3", "fp8_e4m3")}  # weights, activations


@dataclass(frozen=True, eq=False)
class EfficiencySurfaces:
    """Achieved efficiency (roofline time at 100% of the source's peaks / measured time) per op
    family and shape, of one measured system for one runtime version."""

    system: str
    runtime: str
    version: str
    gemm: dict[str, LogGrid]  # compute format -> (m, n, k)
    context: dict[AttentionKey, LogGrid]  # (batch, prompt length)
    generation: dict[AttentionKey, LogGrid]  # (batch, attended length)
    allreduce: dict[int, LogGrid]  # ranks -> (bf16 elements,)
    floor: float = 0.0  # seconds: the shortest kernel the source's tables measured

    @property
    def label(self) -> str:
        """``transferred:<system>/<runtime>-<version>``, the provenance of what they price."""
        return f"transferred:{self.system}/{self.runtime}-{self.version}"


# ---- the roofline an efficiency is relative to ---------------------------------------------


def peak_time(profile: AcceleratorProfile, dtype: str, flops: float, nbytes: float) -> float:
    """Seconds of a kernel at 100% of the profile's datasheet peaks: the larger of its compute
    and memory times (a format without a peak computes at the best one the device has)."""
    peaks = {k: f.value for k, f in profile.compute.items()}
    peak = peaks.get(dtype) or peaks.get("bf16") or max(peaks.values())
    return max(flops / peak, nbytes / profile.memory_bandwidth)


def peak_link_time(profile: AcceleratorProfile, nbytes: float, latencies: int) -> float:
    """Seconds to send ``nbytes`` over the scale-up link at its full rate plus its latencies."""
    if profile.scale_up is None:
        return 0.0
    up = profile.scale_up
    return nbytes / up.bandwidth.value + latencies * up.latency.value


def attention_work(
    phase: str, batch: float, length: float, key: AttentionKey
) -> tuple[float, float]:
    """(flops, bytes) of a GQA attention kernel as :mod:`hetsim.perf.ops` counts them: prefill of
    ``batch`` prompts of ``length`` tokens (no cached prefix), or decode of ``batch`` sequences
    attending ``length`` tokens each."""
    heads, kv_heads, head_dim, kv = key
    kv_bytes = (
        2 * kv_heads * get_format(kv, "kv", vector_length=head_dim).bytes_for_vector(head_dim)
    )
    flops_per_pair = 4 * heads * head_dim
    if phase == "prefill":
        pairs = batch * length * (length + 1) / 2
        nbytes = batch * length * kv_bytes + 4.0 * batch * length * heads * head_dim
        return flops_per_pair * pairs, nbytes
    return (
        flops_per_pair * batch * length,
        batch * length * kv_bytes + 4.0 * batch * heads * head_dim,
    )


def _gemm(dtype: str, n: float, k: float) -> Gemm:
    weights, activations = _GEMM_FORMATS[dtype]
    w, a = get_format(weights, "weights"), get_format(activations, "activations")
    wbpp = w.element_bytes + (
        w.scale_bytes * (2 if w.zero_point else 1) / w.scale_group if w.scale_group else 0.0
    )
    return Gemm("gemm", n, k, 1, wbpp, dtype, a.element_bytes)


# ---- deriving surfaces from measured tables ------------------------------------------------


def derive_surfaces(tables, profile: AcceleratorProfile) -> EfficiencySurfaces:
    """The efficiency surfaces of measured ``tables`` (a
    :class:`~hetsim.perf.measured.tables.MeasuredTables`) against ``profile``, the hetsim profile
    of the system they were measured on."""
    gemm = {}
    for dtype, grid in tables.gemm.items():
        if dtype not in _GEMM_FORMATS:
            continue

        def roof(m: float, n: float, k: float, dtype: str = dtype) -> float:
            kern = _gemm(dtype, n, k).kernel(m)
            return peak_time(profile, kern.dtype, kern.flops, kern.bytes)

        gemm[dtype] = _coarse_m(_efficiency(grid, roof))
    context = {
        key: _efficiency(grid, _attention_roof(profile, "prefill", key))
        for key, grid in tables.context.items()
    }
    generation = {
        key: _efficiency(grid, _attention_roof(profile, "decode", key))
        for key, grid in tables.generation.items()
    }
    allreduce = {}
    for ranks, grid in tables.allreduce.items():

        def link(elements: float, ranks: int = ranks) -> float:
            return peak_link_time(profile, ring_allreduce_bytes(2.0 * elements, ranks), 1)

        allreduce[ranks] = _efficiency(grid, link)
    floor = float(tables.rows["gemm"]["latency"].min())
    return EfficiencySurfaces(
        tables.system, tables.runtime, tables.version, gemm, context, generation, allreduce, floor
    )


def _attention_roof(profile: AcceleratorProfile, phase: str, key: AttentionKey):
    def roof(batch: float, length: float) -> float:
        flops, nbytes = attention_work(phase, batch, length, key)
        return peak_time(profile, "bf16", flops, nbytes)

    return roof


def _efficiency(grid: LogGrid, roof) -> LogGrid:
    """The grid of ``roof(point) / measured(point)`` on ``grid``'s points, at most 1."""
    mesh = np.meshgrid(*[np.asarray(a) for a in grid.axes], indexing="ij")
    roofline = np.vectorize(roof, otypes=[np.float64])(*mesh)
    log_eff = np.minimum(np.log(roofline) - grid.log_values, 0.0)  # NaN stays NaN
    return LogGrid(grid.axes, grid.log_axes, log_eff)


def _coarse_m(grid: LogGrid) -> LogGrid:
    """The grid at ``m`` in 1..16 and multiples of 16 (drops the tile-boundary points)."""
    keep = [i for i, m in enumerate(grid.axes[0]) if m <= 16 or m % 16 == 0]
    axes = (tuple(grid.axes[0][i] for i in keep), *grid.axes[1:])
    log_axes = (tuple(grid.log_axes[0][i] for i in keep), *grid.log_axes[1:])
    return LogGrid(axes, log_axes, grid.log_values[keep])


# ---- the shipped files ---------------------------------------------------------------------


def save_surfaces(s: EfficiencySurfaces, path: Path | str, derived_against: str) -> Path:
    """One ``.npz``: every grid's axes end to end (``axes``), its float16 log efficiencies end to
    end (``log_eff``, C order), and a JSON ``meta`` naming each grid and its axis lengths."""
    axes: list[float] = []
    values: list[np.ndarray] = []
    grids: list[list] = []
    for family, table in (
        ("gemm", s.gemm),
        ("context", s.context),
        ("generation", s.generation),
        ("allreduce", s.allreduce),
    ):
        for key, grid in table.items():
            grids.append(
                [family, list(key) if isinstance(key, tuple) else key, grid.log_values.shape]
            )
            for axis in grid.axes:
                axes.extend(axis)
            values.append(grid.log_values.ravel())
    meta = {
        "system": s.system,
        "runtime": s.runtime,
        "version": s.version,
        "derived_against": derived_against,
        "floor_s": s.floor,
        "licence": LICENCE,
        "quantity": "log(roofline time at 100% of the profile's datasheet peaks / measured time)",
        "grids": grids,
    }
    path = Path(path)
    with path.open("wb") as f:
        np.savez_compressed(
            f,
            axes=np.asarray(axes, dtype=np.float64),
            log_eff=np.concatenate(values).astype(np.float16),
            meta=np.array(json.dumps(meta)),
        )
    return path


@lru_cache(maxsize=8)
def load_surfaces(system: str, runtime: str = RUNTIME) -> EfficiencySurfaces:
    """The shipped surfaces of ``system`` (one of ``TRANSFER_SYSTEMS``); cached."""
    path = DATA_DIR / f"{system}-{runtime}.npz"
    if system not in TRANSFER_SYSTEMS or not path.is_file():
        raise InputError(
            "no transferred efficiency surfaces for this architecture",
            field="transferred_from",
            value=system,
            allowed=", ".join(TRANSFER_SYSTEMS),
        )
    tables: dict[str, dict] = {"gemm": {}, "context": {}, "generation": {}, "allreduce": {}}
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        all_axes, all_values = data["axes"], data["log_eff"].astype(np.float64)
    a = v = 0
    for family, key, shape in meta["grids"]:
        axes = []
        for n in shape:
            axes.append(tuple(float(x) for x in all_axes[a : a + n]))
            a += n
        size = math.prod(shape)
        log_eff = all_values[v : v + size].reshape(shape)
        v += size
        log_axes = tuple(tuple(math.log(x) for x in axis) for axis in axes)
        tables[family][tuple(key) if isinstance(key, list) else key] = LogGrid(
            tuple(axes), log_axes, log_eff
        )
    return EfficiencySurfaces(
        meta["system"], meta["runtime"], meta["version"], **tables, floor=meta.get("floor_s", 0.0)
    )


# ---- the rule: the nearest measured architecture -------------------------------------------


def nearest_measured(profile: AcceleratorProfile, sources: dict[str, AcceleratorProfile]) -> str:
    """The measured system (of ``sources``: system → its hetsim profile) nearest ``profile``.

    Efficiency as a function of shape depends on where a kernel turns from memory- to
    compute-bound (the ridge: dense bf16 peak / HBM bandwidth) and on how long the memory-bound
    small shapes take against fixed launch and synchronisation costs (the HBM bandwidth itself).
    The nearest system is the one at the smallest distance in (log ridge, log bandwidth), among
    those whose tables cover the compute formats the device serves GEMMs in (fp8 needs an fp8
    table: an Ampere source would leave every fp8 GEMM on the bare roofline)."""

    def point(p: AcceleratorProfile) -> tuple[float, float]:
        bf16 = (
            p.compute["bf16"].value
            if "bf16" in p.compute
            else max(f.value for f in p.compute.values())
        )
        return math.log(bf16 / p.memory_bandwidth), math.log(p.memory_bandwidth)

    needs_fp8 = "fp8" in profile.compute
    x = point(profile)
    best, best_d = None, math.inf
    for system, source in sources.items():
        if needs_fp8 and "fp8" not in source.compute:
            continue
        y = point(source)
        d = math.hypot(x[0] - y[0], x[1] - y[1])
        if d < best_d:
            best, best_d = system, d
    if best is None:
        raise InputError(
            "no measured architecture covers this device's formats", value=profile.name
        )
    return best
