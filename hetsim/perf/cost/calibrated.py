"""The calibrated predictor: efficiency surfaces fitted to hetsim's own microkernel timings.

For an op whose (family, format) the calibration measured, the time is the roofline over the
peaks measured in that calibration divided by the surface's efficiency at the op's shape. An op
the calibration did not measure falls back to the roofline over the same measured peaks at the
profile's default efficiencies, and records ``roofline-default``. The calibration measured an
eager runtime, so when it has elementwise timings the elementwise passes are costed op by op, and
every kernel the model does not cost one by one (views, reshapes...) pays the measured dispatch
overhead in the step overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hetsim.perf.calibration import CalibrationTable, EfficiencySurface
from hetsim.perf.cost.base import Bound, Provenance, ScaleUpLink, Source
from hetsim.perf.cost.roofline import RooflinePredictor
from hetsim.perf.ops import Kernel
from hetsim.spec.hardware import AcceleratorProfile

__all__ = ["DEFAULT_OPS_PER_LAYER", "CalibratedPredictor"]

#: kernels dispatched per layer per step in an eager runtime, when the table does not say
DEFAULT_OPS_PER_LAYER = 12


@dataclass(frozen=True, slots=True)
class CalibratedPredictor:
    """One calibration table on one accelerator profile."""

    table: CalibrationTable
    peaks: dict[str, float]  # measured in the calibration, per compute format
    bandwidth: float  # measured in the calibration
    fallback: RooflinePredictor  # the measured peaks at the profile's default efficiencies
    ops_per_layer: float
    launch_overhead: float
    provenance: Provenance = Provenance.CALIBRATED
    # surfaces are fitted on first use, and shared by the step models of this table
    _surfaces: dict[tuple[str, str], EfficiencySurface | None] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, profile: AcceleratorProfile, table: CalibrationTable) -> CalibratedPredictor:
        peaks = dict(table.peak_flops)
        return cls(
            table=table,
            peaks=peaks,
            bandwidth=table.peak_bandwidth,
            fallback=RooflinePredictor.over(peaks, table.peak_bandwidth, profile),
            ops_per_layer=float(table.meta.get("ops_per_layer", DEFAULT_OPS_PER_LAYER)),
            launch_overhead=table.launch_overhead(),
        )

    @property
    def link(self) -> ScaleUpLink:
        return self.fallback.link

    @property
    def eager_elementwise(self) -> bool:
        return self.surface("elementwise", "fp32") is not None

    def surface(self, family: str, dtype: str) -> EfficiencySurface | None:
        """The fitted surface of (family, dtype), or None where the table has no fit rows."""
        key = (family, dtype)
        if key not in self._surfaces:
            try:
                self._surfaces[key] = self.table.surface(family, dtype)
            except KeyError:
                self._surfaces[key] = None
        return self._surfaces[key]

    def kernel(self, k: Kernel) -> tuple[float, Bound, Provenance]:
        surface = self.surface(k.family, k.dtype)
        if surface is None:
            return self.fallback.kernel(k)
        p = self.peaks
        peak = p.get(k.dtype) or p.get("bf16") or max(p.values())
        compute = k.flops / peak if k.flops else 0.0
        memory = k.bytes / self.bandwidth if k.bytes else 0.0
        efficiency = surface.efficiency(**k.shape)
        if compute >= memory:
            return compute / efficiency, "compute", self.provenance
        return memory / efficiency, "memory", self.provenance

    def roofline_rates(self, dtype: str) -> None:
        return None

    def step_overhead(self, modeled_kernels_per_layer: int, layers: int) -> tuple[float, Source]:
        spare = max(self.ops_per_layer - modeled_kernels_per_layer, 0.0)
        return self.launch_overhead * (spare * layers + 4), self.provenance
