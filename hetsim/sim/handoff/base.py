"""What every lifecycle protocol shares: the pairing's conversions and bytes, moving KV over a
path with timeouts and failures, and FIFO admission on the decode side.

A transfer moves ``input_tokens × bytes per token`` over the path's hops. Where the producer's or
consumer's KV format differs from the transfer format, a conversion kernel reads and writes the
KV at that side's memory bandwidth, before (producer, staging) or after (consumer) the move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import simpy

from hetsim.checks import HandoffPlan, handoff_plan
from hetsim.kv.lifecycle import COMMITTED, DECODE, RECEIVING, RESERVED
from hetsim.sim.faults import FaultInjector
from hetsim.sim.instance import DecodeInstance, Instance, PrefillInstance
from hetsim.sim.network import Link, Transfer, TransferFailed
from hetsim.sim.recovery import Recovery
from hetsim.sim.state import Req
from hetsim.sim.wiring import Wired, Wiring

__all__ = ["Handoff"]


class Handoff(Wired):
    """A lifecycle protocol as the simulator drives it; subclasses own the block transitions."""

    def __init__(self, wiring: Wiring) -> None:
        super().__init__(wiring)
        self.scenario = scenario = self.topology.scenario
        spec = scenario.spec
        self.lifecycle = spec.lifecycle
        self.transfer_format = spec.kv.transfer_format
        self.transfer_timeout = spec.faults.transfer_timeout
        self._kvb = scenario.model.kv_bytes_per_token
        self.layerwise = spec.kv.layerwise_transfer
        self.num_layers = scenario.model.num_layers
        self._plans: dict[tuple[str, str], HandoffPlan] = {}
        # per-token conversion seconds (before, after the move) by pool pair
        self._per_token: dict[tuple[str, str], tuple[float, float]] = {}

    def connect(self, recovery: Recovery, faults: FaultInjector) -> None:
        """Recovery and faults are built after the handoff (they call into it)."""
        self.recovery = recovery
        self.faults = faults

    # -- what instances and recovery call --

    def arrive(self, req: Req) -> None:
        self.dispatch.route_prefill(req)

    def admit(self, d: DecodeInstance) -> None:
        """Admit waiting requests on ``d`` as the protocol allows."""

    def last_step_started(self, req: Req, p: PrefillInstance, dt: float) -> None:
        """The step that completes ``req``'s prompt starts now and lasts ``dt`` (layer-wise
        streaming hooks in here)."""

    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:
        """``req``'s prompt is computed on ``p``: hand its KV over."""

    def drop(self, req: Req) -> None:
        """Forget a request's copy outside the instances (only the store keeps one)."""

    @property
    def allocated(self) -> int:
        """KV blocks the protocol holds outside the instances (only the store holds any)."""
        return 0

    # -- the pairing: conversions and bytes on the wire --

    def _plan(self, p: Instance, d: Instance | None) -> HandoffPlan:
        """The portability plan of a pool pair: its conversions, their sides and costs, and
        the bytes on the wire (store: any consumer pool; the producer side is the same)."""
        d_pool = d.pool.name if d is not None else self.topology.decode[0].pool.name
        key = (p.pool.name, d_pool)
        plan = self._plans.get(key)
        if plan is None:
            plan = handoff_plan(self.scenario, p.pool.name, d_pool)
            self._plans[key] = plan
        return plan

    def _conversion_s(self, plan: HandoffPlan, tokens: int) -> tuple[float, float]:
        """(before, after) the transfer: producer + staging conversions, consumer conversions.
        They are linear in tokens, so their per-token cost is worked out once per plan."""
        pair = (plan.producer_pool, plan.consumer_pool)
        per_token = self._per_token.get(pair)
        if per_token is None:
            per_token = (plan.producer_s(1) + plan.staging_s(1), plan.consumer_s(1))
            self._per_token[pair] = per_token
        return per_token[0] * tokens, per_token[1] * tokens

    # -- moving KV --

    def _send(
        self,
        req: Req,
        p: Instance,
        d: Instance | None,
        links: list[Link],
        on_done: Callable[[], None],
    ) -> None:
        """Convert where the scenario declares (producer, staging), move over ``links``, convert
        on the consumer, then call ``on_done``. ``d`` None: into a store tier, in the transfer
        format (the consumer's conversion is charged at fetch)."""
        plan = self._plan(p, d)
        before, after = self._conversion_s(plan, req.input)
        if d is None:
            after = 0.0
        # into a store: one copy; to a decode instance: one per rank that needs its own
        nbytes = plan.store_bytes(req.input) if d is None else plan.network_bytes(req.input)
        self._move(req, nbytes, links, before, after, on_done)

    def _move(
        self,
        req: Req,
        nbytes: float,
        links: list[Link],
        before: float,
        after: float,
        on_done: Callable[[], None],
    ) -> None:
        self.stats.transfers += 1
        _Move(self, req, nbytes, links, after, on_done).convert(before)

    def _timed_out(self, req: Req, transfer: Transfer, attempt: int) -> None:
        req.transfer = None
        self.network.abort(transfer)
        if self.requests.current(req, attempt):
            self.stats.count("transfer_timeouts")
            self.recovery.recover(req, "KV transfer timed out")

    def _failed(self, req: Req, transfer: Transfer, attempt: int, reason: str) -> None:
        if req.transfer is transfer:
            req.transfer = None
        if self.requests.current(req, attempt):
            if reason == "client abort":
                self.requests.fail(req, "aborted by the client while its KV was moving")
            else:
                self.recovery.recover(req, f"KV transfer failed ({reason})")

    # -- the decode side --

    @staticmethod
    def _fifo(d: DecodeInstance, headroom: int = 0) -> Iterator[tuple[Req, int]]:
        """Waiting requests in order, each with the blocks it needs, while a slot and those
        blocks (plus ``headroom``) are free; stops at the first that does not fit, as the
        engines' FIFO admission does. The caller takes each one off the queue."""
        waiting, blocks = d.waiting, d.blocks  # one read books any run: the clock stands still
        while waiting and d.slots_taken < d.max_seqs:
            req = waiting[0]
            need = blocks.blocks_for(req.input)
            if need + headroom > blocks.free:
                return
            yield req, need

    def _reserve(self, req: Req, d: DecodeInstance, need: int) -> None:
        d.reserve(req, need)
        self.ledger.mark(req, DECODE, RESERVED)

    def _receiving(self, req: Req) -> None:
        self.ledger.mark(req, DECODE, RECEIVING)

    def _commit(self, req: Req, d: DecodeInstance) -> None:
        """The KV has landed in the decode-side reservation."""
        self.ledger.mark(req, DECODE, COMMITTED)
        d.commit(req)


class _Move:
    """One KV movement: the producer's conversions (``before``), the transfer over the path, the
    consumer's (``after``), then ``on_done``. A movement that fails (a crash, a timeout, a client
    abort) hands the request to recovery; one whose request has moved on meanwhile (retried or
    ended) is dropped quietly.

    Each phase is a callback on the event that ends the one before: a simpy process would cost
    two events more per movement (its start and its end), a fifth of a request's events."""

    __slots__ = ("handoff", "req", "attempt", "nbytes", "links", "after", "on_done", "transfer")

    def __init__(
        self,
        handoff: Handoff,
        req: Req,
        nbytes: float,
        links: list[Link],
        after: float,
        on_done: Callable[[], None],
    ) -> None:
        self.handoff = handoff
        self.req = req
        self.attempt = req.retries
        self.nbytes = nbytes
        self.links = links
        self.after = after
        self.on_done = on_done
        self.transfer: Transfer | None = None

    def convert(self, before: float) -> None:
        h = self.handoff
        # a hint for the consumer's fast-forward: a run that ends at the step the KV lands in
        # is not cut short by its landing
        flight = h.network.fastest(self.nbytes, self.links)
        self.req.kv_eta = h.env.now + before + flight + self.after
        if before:
            h.env.timeout(before).callbacks.append(self._send)
        else:
            self._send(None)

    def _send(self, _: simpy.Event | None) -> None:
        h, req = self.handoff, self.req
        if not h.requests.current(req, self.attempt):
            return
        if req.t_transfer_start != req.t_transfer_start:  # NaN: first leg
            req.t_transfer_start = h.env.now
        self.transfer = transfer = h.network.transfer(self.nbytes, self.links, tag=req.id)
        req.transfer = transfer
        h.faults.transfer_started(req, transfer, self.nbytes, self.links)
        transfer.callbacks.append(self._arrived)
        if h.transfer_timeout is not None:
            h.env.timeout(h.transfer_timeout).callbacks.append(self._timeout)

    def _timeout(self, _: simpy.Event) -> None:
        transfer = self.transfer
        if transfer is not None and not transfer.triggered:
            # decided one event later: a last byte landing at this very time still counts
            self.handoff.env.timeout(0).callbacks.append(self._expired)

    def _expired(self, _: simpy.Event) -> None:
        transfer = self.transfer
        if transfer is not None and not transfer.triggered:
            self.transfer = None
            self.handoff._timed_out(self.req, transfer, self.attempt)

    def _arrived(self, transfer: simpy.Event) -> None:
        if transfer is not self.transfer:  # timed out already: its abort lands here
            transfer.defused = True
            return
        self.transfer = None
        if not transfer.ok:
            transfer.defused = True
            failure = transfer.value
            if not isinstance(failure, TransferFailed):
                raise failure
            self.handoff._failed(self.req, transfer, self.attempt, failure.reason)
            return
        if self.req.transfer is transfer:
            self.req.transfer = None
        if self.after:
            self.handoff.env.timeout(self.after).callbacks.append(self._converted)
        else:
            self._converted(None)

    def _converted(self, _: simpy.Event | None) -> None:
        h, req = self.handoff, self.req
        if not h.requests.current(req, self.attempt):
            return
        req.t_transfer_end = h.env.now
        self.on_done()
