"""What every kernel-cost predictor answers, and the record of one costed op.

A predictor turns the ops of :mod:`hetsim.perf.ops` into seconds on one device. Each source of
kernel costs is one predictor: the profile's roofline with its documented default efficiencies
(``roofline-default``), hetsim's own microkernel calibration (``calibrated``), vendor per-op
tables (``measured:<system>/<runtime>-<version>``, a :class:`MeasuredSource`), and a measured
architecture's efficiency surfaces borrowed by a device without tables
(``transferred:<system>/<runtime>-<version>``, a :class:`TransferredSource`). A predictor says,
per op, which source it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from hetsim.perf.ops import Collective, Kernel
from hetsim.spec.hardware import AcceleratorProfile

__all__ = [
    "Bound",
    "CollectivePricer",
    "KernelCostPredictor",
    "MeasuredSource",
    "OpCost",
    "Provenance",
    "ScaleUpLink",
    "Source",
    "TransferredSource",
    "link_time",
    "price_collective",
]

Bound = Literal["compute", "memory", "network", "overhead"]


class Provenance(StrEnum):
    """Where a predicted time comes from."""

    ROOFLINE_DEFAULT = "roofline-default"  # datasheet peaks × the profile's default efficiencies
    CALIBRATED = "calibrated"  # efficiency surfaces fitted to hetsim's microkernel timings
    MEASURED = "measured"  # vendor per-op tables; labelled per table set by MeasuredSource
    # another architecture's measured efficiencies on this device's peaks; see TransferredSource
    TRANSFERRED = "transferred"
    # the profile's efficiencies fitted to the user's benchmark runs (hetsim calibrate --bench)
    END_TO_END = "end-to-end"

    @classmethod
    def kind_of(cls, label: str) -> Provenance:
        """The kind of a printed label: ``measured:<…>`` is MEASURED, ``transferred:<…>``
        TRANSFERRED (reports hold labels as plain strings)."""
        return cls(str(label).split(":", 1)[0])


class MeasuredSource(str):
    """``measured:<system>/<runtime>-<version>``: the kind :attr:`Provenance.MEASURED` with the
    table set that priced the op. A plain string to everything that prints or serialises it."""

    __slots__ = ()
    kind = Provenance.MEASURED


class TransferredSource(str):
    """``transferred:<system>/<runtime>-<version>``: the kind :attr:`Provenance.TRANSFERRED`
    with the measured table set whose efficiencies (measured time over that device's roofline)
    were applied to this device's peaks. A plain string to everything that prints it."""

    __slots__ = ()
    kind = Provenance.TRANSFERRED


#: the source of one op or one step: a provenance kind, or the (measured or borrowed) table set
Source = Provenance | MeasuredSource | TransferredSource


@dataclass(frozen=True)
class OpCost:
    """One op of a step, summed over the layers it occurs in, on one device."""

    name: str
    flops: float
    bytes: float
    time: float
    bound: Bound
    count: int = 1  # how many times it runs per step (layers)
    source: Source = Provenance.ROOFLINE_DEFAULT

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def link_time(nbytes: float, bandwidth: float, efficiency: float, latency: float) -> float:
    """Time to push ``nbytes`` over a link: serialisation at achieved bandwidth plus latency."""
    return nbytes / (bandwidth * efficiency) + latency if nbytes else 0.0


@dataclass(frozen=True, slots=True)
class ScaleUpLink:
    """The accelerator's scale-up link at the profile's default network efficiency: what
    collectives cost (``roofline-default``) unless a predictor measured them."""

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
    def provenance(self) -> Source:
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

    def kernel(self, k: Kernel) -> tuple[float, Bound, Source]:
        """(seconds, bound, source) of one call of ``k``."""
        ...

    def roofline_rates(self, dtype: str) -> tuple[float, float] | None:
        """(flops/s, bytes/s) every kernel computing in ``dtype`` is charged, when the cost is
        that plain roofline whatever the shape (a closed form may then be used); else None."""
        ...

    def step_overhead(self, modeled_kernels_per_layer: int, layers: int) -> tuple[float, Source]:
        """(seconds, source) of the fixed cost per step besides the costed ops."""
        ...


@runtime_checkable
class CollectivePricer(Protocol):
    """A predictor that measured collectives itself (the others charge the scale-up link)."""

    def collective(self, c: Collective, ranks: int) -> tuple[float, Source]:
        """(seconds, source) of one call of ``c`` among ``ranks`` devices."""
        ...


def price_collective(cost: KernelCostPredictor, c: Collective, ranks: int) -> tuple[float, Source]:
    """(seconds, source) of one call of ``c``: measured where the predictor measured it, else the
    scale-up link at the profile's default efficiency (``roofline-default``)."""
    if isinstance(cost, CollectivePricer):
        return cost.collective(c, ranks)
    return cost.link.time(c.bytes, c.latencies), Provenance.ROOFLINE_DEFAULT
