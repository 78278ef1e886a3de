"""One op's time on one device: the roofline, with efficiencies.

``time = max(flops / (peak · eff_compute), bytes / (bandwidth · eff_memory))`` for compute
kernels, and ``bytes / (link_bandwidth · eff_network) + latency`` for collectives. An op records
which term won (its *bound*) so a step can be explained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["OpCost", "kernel_time", "link_time", "ring_allreduce_bytes"]

Bound = Literal["compute", "memory", "network", "overhead"]


@dataclass(frozen=True)
class OpCost:
    """One op of a step, summed over the layers it occurs in, on one device."""

    name: str
    flops: float
    bytes: float
    time: float
    bound: Bound
    count: int = 1  # how many times it runs per step (layers)
    source: str = "roofline-default"  # or "calibrated"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def kernel_time(
    flops: float,
    nbytes: float,
    peak: float,
    bandwidth: float,
    eff_compute: float,
    eff_memory: float,
) -> tuple[float, Bound]:
    """Roofline time of a kernel and whether compute or memory bounds it."""
    compute = flops / (peak * eff_compute) if flops else 0.0
    memory = nbytes / (bandwidth * eff_memory) if nbytes else 0.0
    return (compute, "compute") if compute >= memory else (memory, "memory")


def link_time(nbytes: float, bandwidth: float, efficiency: float, latency: float) -> float:
    """Time to push ``nbytes`` over a link: serialisation at achieved bandwidth plus latency."""
    return nbytes / (bandwidth * efficiency) + latency if nbytes else 0.0


def ring_allreduce_bytes(message_bytes: float, ranks: int) -> float:
    """Bytes each rank sends in a ring all-reduce: ``2·(n−1)/n`` of the message."""
    return 2.0 * (ranks - 1) / ranks * message_bytes if ranks > 1 else 0.0
