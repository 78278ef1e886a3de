"""The parts the lifecycle protocol and recovery both act through, wired once by the engine."""

from __future__ import annotations

from dataclasses import dataclass

import simpy

from hetsim.sim.book import RequestBook
from hetsim.sim.dispatch import Dispatcher
from hetsim.sim.network import Network
from hetsim.sim.ports import Ledger, Stats
from hetsim.sim.topology import Topology

__all__ = ["Wired", "Wiring"]


@dataclass(frozen=True, slots=True)
class Wiring:
    env: simpy.Environment
    stats: Stats
    ledger: Ledger
    network: Network
    topology: Topology
    book: RequestBook
    dispatch: Dispatcher


class Wired:
    """A part that acts through the wiring (the lifecycle protocol, recovery): its pieces as
    attributes, the request book as ``requests``."""

    def __init__(self, wiring: Wiring) -> None:
        self.env = wiring.env
        self.stats = wiring.stats
        self.ledger = wiring.ledger
        self.network = wiring.network
        self.topology = wiring.topology
        self.dispatch = wiring.dispatch
        self.requests = wiring.book
