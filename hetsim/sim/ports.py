"""The narrow ports the simulator's parts share instead of a reference to the whole engine.

:class:`Stats` counts what happened (steps, arrivals, transfers, faults); :class:`Ledger` records
each KV side's state transitions at the current simulated time. The protocols name the calls a lower
part makes on a higher one (an instance or recovery on the lifecycle protocol, a decode instance
on host swap): the engine wires concrete objects into them, and no part imports the engine.
"""

from __future__ import annotations

from typing import Any, Protocol

import simpy

from hetsim.kv.lifecycle import LifecycleLog, LifecycleState, Side
from hetsim.sim.state import Req

__all__ = ["Stats", "Ledger", "Handover", "Swap"]


class Stats:
    """Run counters every part may add to; fault counts by kind."""

    __slots__ = ("steps", "preemptions", "arrivals", "transfers", "faults")

    def __init__(self) -> None:
        self.steps = 0
        self.preemptions = 0
        self.arrivals = 0
        self.transfers = 0
        self.faults: dict[str, int] = {}

    def count(self, what: str, n: int = 1) -> None:
        self.faults[what] = self.faults.get(what, 0) + n


class Ledger:
    """Who holds a request's KV on each side (``P``, ``D``, ``S``), stamped with the clock."""

    __slots__ = ("env", "log", "protocol")

    def __init__(self, env: simpy.Environment, protocol: str) -> None:
        self.env = env
        self.log = LifecycleLog(protocol)
        self.protocol = protocol

    def mark(self, req: Req, side: Side, state: LifecycleState) -> None:
        self.log.move(req.id, self.env._now, side, state)  # noqa: SLF001 - the clock, no call

    def state(self, rid: int, side: Side) -> LifecycleState:
        return self.log.state(rid, side)


# Instances are typed ``Any`` below: the instance module imports this one, not the reverse.


class Handover(Protocol):
    """The lifecycle protocol that moves KV across the boundary, as instances and recovery
    call it: a request (re)starts, a decode instance has room, a prompt is computed, a request
    gives up its copy outside the instances."""

    layerwise: bool

    def arrive(self, req: Req) -> None: ...

    def admit(self, d: Any) -> None: ...

    def last_step_started(self, req: Req, p: Any, dt: float) -> None: ...

    def prefill_finished(self, req: Req, p: Any) -> None: ...

    def drop(self, req: Req) -> None: ...


class Swap(Protocol):
    """Preempted decode sequences' KV to host memory and back."""

    def swap_out(self, req: Req, inst: Any) -> None: ...

    def swap_in(self, req: Req, inst: Any) -> None: ...
