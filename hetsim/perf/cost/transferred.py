"""The transferred predictor: a measured architecture's efficiencies on this device's peaks.

For a device without measured tables (MetaX, Ascend, Cambricon, MI300X), the profile names the
nearest measured architecture (``transferred_from``, by compute/bandwidth class; see
:func:`hetsim.perf.transferred.nearest_measured`). Each op it covers costs

    time = roofline time at 100% of this profile's datasheet peaks / efficiency(shape)

where ``efficiency(shape)`` is the source's own roofline time over its measured time at that
shape (:mod:`hetsim.perf.transferred`), interpolated in log space inside the measured grid, and
capped at the profile's documented default efficiency for the op's bound (``efficiency.compute``
for a compute-bound op, ``memory`` for a memory-bound one, ``network`` for the all-reduce).

The cap keeps what the profile's author assumed about the device's software stack: cuBLAS
reaches 0.78 (H100) to 0.92 (A100) of the datasheet peak on large GEMMs, while the MetaX and
Ascend profiles assume their libraries reach ~0.60; the surface contributes the losses a
roofline ignores (small shapes, launch-bound attention, short all-reduces), not another vendor's
library maturity. So every op costs at least its ``roofline-default`` time, and a step on
transferred figures is never faster than the bare roofline. On a profile whose default
efficiencies are 1 (the cap lifted), the source's own profile reproduces the measured time at
the table's points.

It covers what the measured predictor covers, looked up the same way: dense GEMMs (``m, n, k``
per compute format; a format the source did not measure, such as int8, takes the bf16 surface
at the device's own int8 peak), GQA attention per (heads, KV heads, head dim, KV format) family,
and the TP all-reduce per rank count (the link's full rate plus its latency over measured time).
A KV format the source did not measure (fp16, int8 on an Ampere source) borrows the surface of
the same head shape in a format as wide, else in bf16.
Outside a surface — a shape beyond the grid, an attention family the source did not measure,
grouped MoE GEMMs, MLA attention, elementwise passes, the step overhead — the op is priced on
the roofline at the profile's default efficiencies and records ``roofline-default``; the rest
record ``transferred:<system>/<runtime>-<version>``.

Kernel floor: as in the measured predictor, no kernel is charged less than the shortest kernel
the source's tables measured (one launch inside a CUDA graph, ~2.4 us on H100/H200); an op the
floor set (a decode step's latency-bound fused elementwise passes) records the transferred
label. A target's own launch cost is unknown: the source's is the optimistic end of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hetsim.perf.cost.base import (
    Bound,
    Provenance,
    Source,
    TransferredSource,
)
from hetsim.perf.cost.roofline import RooflinePredictor
from hetsim.perf.cost.tabled import GROUPED_GEMMS, TableBacked
from hetsim.perf.measured.grid import LogGrid
from hetsim.perf.ops import Collective, Kernel
from hetsim.perf.transferred import (
    EfficiencySurfaces,
    load_surfaces,
    peak_link_time,
    peak_time,
)
from hetsim.spec.hardware import AcceleratorProfile

__all__ = ["TransferredPredictor"]

#: a KV format the source did not measure borrows the surface of one as wide, else bf16's (the
#: efficiency is relative to the roofline on the op's own bytes, so the width is accounted)
_SAME_WIDTH = {"fp16": "bf16", "int8": "fp8_e4m3", "fp8_e5m2": "fp8_e4m3"}


@dataclass(frozen=True, eq=False)
class TransferredPredictor(TableBacked):
    """One source's efficiency surfaces on one profile (whose roofline prices what they do not
    cover)."""

    profile: AcceleratorProfile
    surfaces: EfficiencySurfaces
    fallback: RooflinePredictor
    source: TransferredSource
    eager_elementwise: bool = False
    _memo: dict[tuple, tuple[float, Bound, Source]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, profile: AcceleratorProfile, system: str | None = None) -> TransferredPredictor:
        """``profile`` with the surfaces of ``system`` (the profile's ``transferred_from`` when
        None)."""
        if system is None:
            if profile.transferred_from is None:
                raise ValueError(f"profile {profile.name!r} names no transferred_from")
            system = profile.transferred_from.system
        surfaces = load_surfaces(system)
        return cls(
            profile, surfaces, RooflinePredictor.of(profile), TransferredSource(surfaces.label)
        )

    def _price(self, k: Kernel) -> tuple[float, Bound, Source]:
        eff = self._efficiency(k)
        time, bound, source = self.fallback.kernel(k)
        if eff is not None:
            e = self.profile.efficiency
            cap = e.compute.value if bound == "compute" else e.memory.value
            time = peak_time(self.profile, k.dtype, k.flops, k.bytes) / min(eff, cap, 1.0)
            source = self.source
        return self._floored(k, (time, bound, source), self.surfaces.floor)

    def _efficiency(self, k: Kernel) -> float | None:
        s, surfaces = k.shape, self.surfaces
        if k.family == "gemm":
            if k.name in GROUPED_GEMMS:
                return None
            grid = surfaces.gemm.get(k.dtype) or surfaces.gemm.get("bf16")
            return _at(grid, s["m"], s["n"], s["k"])
        if k.family not in ("attention_prefill", "attention_decode") or "kv_heads" not in s:
            return None
        heads, kv_heads = s["heads"], s["kv_heads"]
        if heads != int(heads) or kv_heads != int(kv_heads):
            return None
        grids = surfaces.context if k.family == "attention_prefill" else surfaces.generation
        shape = (int(heads), int(kv_heads), int(s["head_dim"]))
        kv = str(s["kv"])
        grid = next(
            (grids[g] for f in (kv, _SAME_WIDTH.get(kv), "bf16") if (g := (*shape, f)) in grids),
            None,
        )
        if k.family == "attention_prefill":
            return _at(grid, s["batch"], s["seq_len"])
        return _at(grid, s["batch"], s["context"])

    def collective(self, c: Collective, ranks: int) -> tuple[float, Source]:
        if c.is_allreduce and c.bytes and self.profile.scale_up is not None:
            grid = self.surfaces.allreduce.get(ranks)
            eff = None if grid is None else grid(c.table_message(ranks, grid.axes[0][0]))
            if eff is not None:
                full_rate = peak_link_time(self.profile, c.bytes, c.latencies)
                cap = self.profile.efficiency.network.value
                return full_rate / min(eff, cap, 1.0), self.source
        return self.link.time(c.bytes, c.latencies), Provenance.ROOFLINE_DEFAULT

    def roofline_rates(self, dtype: str) -> None:
        return None  # efficiencies depend on the shape: no closed form

    def step_overhead(self, modeled_kernels_per_layer: int, layers: int) -> tuple[float, Source]:
        # the tables hold no per-step runtime overhead: the profile's assumed one stands
        return self.fallback.step_overhead(modeled_kernels_per_layer, layers)


def _at(grid: LogGrid | None, *point: float) -> float | None:
    return None if grid is None else grid(*point)
