"""No handoff: the instance that computes the prompt also decodes it (the aggregated baseline)."""

from __future__ import annotations

from hetsim.sim.handoff.base import Handoff

__all__ = ["Colocated"]


class Colocated(Handoff):
    """Arrivals go to prefill routing; nothing crosses a boundary, so nothing else happens."""
