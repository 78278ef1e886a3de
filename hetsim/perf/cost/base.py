"""What every kernel-cost predictor answers, and the record of one costed op.

A predictor turns the ops of :mod:`hetsim.perf.ops` into seconds on one device. Each source of
kernel costs is one predictor: the profile's roofline with its documented default efficiencies
(``roofline-default``), hetsim's own microkernel calibration (``calibrated``), and — next — vendor
per-op tables (``measured``, to be added here as one more predictor and one more
:class:`Provenance`). A predictor says, per op, which source it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Literal, Protocol

from hetsim.perf.ops import Kernel
from hetsim.spec.hardware import AcceleratorProfile

__all__ = ["Bound", "KernelCostPredictor", "OpCost", "Provenance", "ScaleUpLink", "link_time"]

Bound = Literal["compute", "memory", "network", "overhead"]


class Provenance(StrEnum):
    """Where a predicted time comes from."""

    ROOFLINE_DEFAULT = "roofline-default"  # datasheet peaks × the profile's default efficiencies
    CALIBRATED = "calibrated"  # efficiency surfaces fitted to hetsim's microkernel timings


@dataclass(frozen=True)
class OpCost:
    """One op of a step, summed over the layers it occurs in, on one device."""

    name: str
    flops: float
    bytes: float
    time: float
    bound: Bound
    count: int = 1  # how many times it runs per step (layers)
    source: Provenance = Provenance.ROOFLINE_DEFAULT

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def link_time(nbytes: float, bandwidth: float, efficiency: float, latency: float) -> float:
    """Time to push ``nbytes`` over a link: serialisation at achieved bandwidth plus latency."""
    return nbytes / (bandwidth * efficiency) + latency if nbytes else 0.0


@dataclass(frozen=True, slots=True)
class ScaleUpLink:
    """The accelerator's scale-up link at the profile's default network efficiency (no
    predictor measures collectives yet, so they are always ``roofline-default``)."""

    bandwidth: float
    efficiency: float
    latency: float

    @classmethod
    def of(cls, profile: AcceleratorProfile) -> ScaleUpLink:
        eff = profile.efficiency.network.value
        if profile.scale_up is None:
            return cls(float("inf"), eff, 0.0)
        return cls(profile.scale_up.bandwidth.value, eff, profile.scale_up.latency.value)

    def time(self, nbytes: float, latencies: int) -> float:
        return link_time(nbytes, self.bandwidth, self.efficiency, latencies * self.latency)


class KernelCostPredictor(Protocol):
    """Seconds for the ops of a step on one device, from one source of kernel costs."""

    @property
    def provenance(self) -> Provenance:
        """The source of the predictor as a whole (a step's label)."""
        ...

    @property
    def eager_elementwise(self) -> bool:
        """Whether elementwise passes run as separate small ops (an eager runtime was measured)
        rather than fused into a few passes (a serving engine)."""
        ...

    @property
    def link(self) -> ScaleUpLink:
        """The scale-up link collectives run over."""
        ...

    def kernel(self, k: Kernel) -> tuple[float, Bound, Provenance]:
        """(seconds, bound, source) of one call of ``k``."""
        ...

    def roofline_rates(self, dtype: str) -> tuple[float, float] | None:
        """(flops/s, bytes/s) every kernel computing in ``dtype`` is charged, when the cost is
        that plain roofline whatever the shape (a closed form may then be used); else None."""
        ...

    def step_overhead(self, modeled_kernels_per_layer: int, layers: int) -> float:
        """Fixed seconds per step besides the costed ops."""
        ...
