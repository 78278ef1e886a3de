"""The roofline predictor: datasheet peaks × the profile's documented default efficiencies.

Each kernel costs ``max(flops / (peak[dtype] · eff_compute), bytes / (bandwidth · eff_memory))``
and a step pays the profile's fixed ``step_overhead``. Elementwise passes are costed fused, as a
serving engine runs them. Every op it prices is ``roofline-default``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hetsim.perf.cost.base import Bound, Provenance, ScaleUpLink, Source
from hetsim.perf.ops import Kernel
from hetsim.spec.hardware import AcceleratorProfile, Efficiency

__all__ = ["RooflinePredictor"]


@dataclass(frozen=True, slots=True)
class RooflinePredictor:
    """Achieved peaks (peak × efficiency) per compute format and achieved memory bandwidth."""

    achieved_flops: Mapping[str, float]  # per compute format; bf16 always present
    achieved_bandwidth: float
    overhead: float
    link: ScaleUpLink
    provenance: Provenance = Provenance.ROOFLINE_DEFAULT
    eager_elementwise: bool = False

    @classmethod
    def of(cls, profile: AcceleratorProfile) -> RooflinePredictor:
        """The profile's datasheet peaks at its default efficiencies."""
        peaks = {k: f.value for k, f in profile.compute.items()}
        return cls.over(peaks, profile.memory_bandwidth, profile)

    @classmethod
    def over(
        cls, peaks: Mapping[str, float], bandwidth: float, profile: AcceleratorProfile
    ) -> RooflinePredictor:
        """Other peaks (e.g. measured ones) at the profile's default efficiencies."""
        eff: Efficiency = profile.efficiency
        achieved = {k: v * eff.compute.value for k, v in peaks.items()}
        # a format without a peak of its own computes at the best one the device has
        achieved.setdefault("bf16", max(achieved.values()))
        return cls(
            achieved_flops=achieved,
            achieved_bandwidth=bandwidth * eff.memory.value,
            overhead=eff.step_overhead.value,
            link=ScaleUpLink.of(profile),
            provenance=(
                Provenance.END_TO_END
                if profile.efficiency_source == Provenance.END_TO_END
                else Provenance.ROOFLINE_DEFAULT
            ),
        )

    def kernel(self, k: Kernel) -> tuple[float, Bound, Provenance]:
        peak = self.achieved_flops.get(k.dtype) or self.achieved_flops["bf16"]
        compute = k.flops / peak
        memory = k.bytes / self.achieved_bandwidth
        if compute >= memory:
            return compute, "compute", self.provenance
        return memory, "memory", self.provenance

    def roofline_rates(self, dtype: str) -> tuple[float, float]:
        peak = self.achieved_flops.get(dtype) or self.achieved_flops["bf16"]
        return peak, self.achieved_bandwidth

    def step_overhead(self, modeled_kernels_per_layer: int, layers: int) -> tuple[float, Source]:
        return self.overhead, self.provenance
