"""The request book: requests in the system, and how each one leaves it.

A request arrives, runs one attempt at a time (a retry starts a new attempt), and ends once:
completed, or failed with a reason. Ending gives back whatever KV blocks it still holds on either
side, writes its row to the :class:`~hetsim.sim.state.RequestLog` and tells whoever listens
for ends (a closed loop's clients). The book also integrates requests-in-system over time
(Little's law).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

from hetsim.kv.lifecycle import EXPIRED, FAILED, FREED, NONE, Side
from hetsim.sim.network import Network
from hetsim.sim.ports import Ledger, Stats
from hetsim.sim.state import Req, RequestLog

__all__ = ["RequestBook"]

# a side in one of these holds none of a failing request's KV: nothing to mark failed
_RELEASED = frozenset({NONE, FREED, EXPIRED})


class RequestBook:
    def __init__(
        self,
        env: simpy.Environment,
        stats: Stats,
        ledger: Ledger,
        network: Network,
        final_side: Side,
        progress: Callable[[int], None] | None = None,
        warmup: int = 0,
    ) -> None:
        self.env = env
        self.stats = stats
        self.ledger = ledger
        self.network = network
        self.final_side = final_side  # the side whose blocks a completed request frees last
        self.progress = progress
        self.log = RequestLog()
        self.in_flight: dict[int, Req] = {}
        self.arrivals_done = False
        self.first_arrival = math.nan
        self.last_arrival = 0.0  # the latest arrival so far (0 before the first)
        # the measured window opens at the first arrival after the warm-up requests
        self.warmup = warmup
        self.window_start = math.nan
        self._open_window: Callable[[], None] = lambda: None
        self.last_departure = math.nan
        self.occupancy_area = 0.0  # ∫ requests-in-system dt, for Little's law
        self._occupancy_t = 0.0
        self._drop: Callable[[Req], None] = lambda req: None
        self._ended: Callable[[Req], None] | None = None

    def on_window(self, open_window: Callable[[], None]) -> None:
        """``open_window``: called once, as the first measured request arrives."""
        self._open_window = open_window

    def connect(
        self, drop: Callable[[Req], None], ended: Callable[[Req], None] | None = None
    ) -> None:
        """``drop``: forget a failed request's copy outside the instances (the handoff's);
        ``ended``: called once per request after it has left the system, completed or failed
        (a closed loop frees the request's client); None: nobody listens."""
        self._drop = drop
        self._ended = ended

    @property
    def done(self) -> bool:
        """Every request has arrived and ended (random faults stop then)."""
        return self.arrivals_done and not self.in_flight

    def current(self, req: Req, attempt: int) -> bool:
        """Is this still the same attempt of a request in flight?"""
        return req.id in self.in_flight and req.retries == attempt

    def integrate_occupancy(self) -> None:
        """Add requests-in-system × elapsed time; call before the count changes."""
        now = self.env.now
        self.occupancy_area += len(self.in_flight) * (now - self._occupancy_t)
        self._occupancy_t = now

    def arrive(self, req: Req) -> None:
        self.integrate_occupancy()
        if self.stats.arrivals == 0:
            self.first_arrival = req.arrival
        if self.stats.arrivals == self.warmup:
            self.window_start = req.arrival
            self._open_window()
        self.stats.arrivals += 1
        self.last_arrival = req.arrival
        self.in_flight[req.id] = req

    def finish(self, req: Req) -> None:
        req.t_finish = self.env.now
        self.ledger.mark(req, self.final_side, FREED)
        self._end(req, None)

    def fail(self, req: Req, reason: str) -> None:
        if req.id in self.in_flight:
            ledger = self.ledger
            for side in Side:
                if ledger.state(req.id, side) not in _RELEASED:
                    ledger.mark(req, side, FAILED)
            transfer, req.transfer = req.transfer, None
            if transfer is not None:
                self.network.abort(transfer)
            for inst in (req.prefill, req.decode):
                if inst is not None and inst.alive:
                    inst.forget(req)
            self._drop(req)
        self._end(req, reason)

    def _end(self, req: Req, reason: str | None) -> None:
        if req.id not in self.in_flight:
            return
        self.integrate_occupancy()
        del self.in_flight[req.id]
        self.ledger.log.forget(req.id)
        self.last_departure = self.env.now
        # a failed request gives back whatever it held, on both sides
        if req.p_blocks and req.prefill is not None:
            req.prefill.free(req)
        if req.d_blocks and req.decode is not None:
            req.decode.free(req)
        self.log.add(req, reason)
        if self.progress is not None and self.log.n % 256 == 0:
            self.progress(self.log.n)
        if self._ended is not None:
            self._ended(req)
