"""How KV crosses from prefill to decode: one module per lifecycle protocol, each owning its
block-state transitions through the instances' narrow methods (``reserve``, ``commit``,
``lend``, ``hand_over``, ``release``); :mod:`~hetsim.sim.handoff.base` holds the shared transfer
mechanics."""

from __future__ import annotations

from hetsim.sim.handoff.base import Handoff
from hetsim.sim.handoff.colocated import Colocated
from hetsim.sim.handoff.pull import Pull
from hetsim.sim.handoff.push import Push
from hetsim.sim.handoff.store import Store

__all__ = ["Handoff", "Pull", "Push", "Store", "Colocated", "PROTOCOLS"]

PROTOCOLS: dict[str, type[Handoff]] = {"pull": Pull, "push": Push, "store": Store}
