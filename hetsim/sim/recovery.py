"""Recovery: what happens to requests when an instance crashes or their KV is lost.

A crash loses the crashed instance's KV: requests it had only queued are routed elsewhere;
requests whose KV (or reservation) it held are recovered by the scenario's policy — ``retry``
(prefill again, up to ``max_retries``), ``fallback`` (a decode instance recomputes the prompt
itself) or ``fail``. Before a retry the request is stripped from every live instance, which gives
its blocks back at once or when the owner would notice: a pull lease runs out (heartbeats extend
it to 2/3 of its length past the last one), a push reservation after two missed heartbeats.
"""

from __future__ import annotations

from hetsim.kv.blocks import BlockState
from hetsim.kv.lifecycle import (
    COMMITTED,
    DECODE,
    EXPIRED,
    FAILED,
    FREED,
    LOST,
    NONE,
    PREFILL,
    WAITING,
    Side,
)
from hetsim.sim.instance import Instance
from hetsim.sim.ports import Handover
from hetsim.sim.state import Req
from hetsim.sim.wiring import Wired, Wiring

__all__ = ["Recovery"]

_ENDED = frozenset({NONE, FREED, EXPIRED, FAILED})


class Recovery(Wired):
    def __init__(self, wiring: Wiring, handoff: Handover) -> None:
        super().__init__(wiring)
        self.handoff = handoff
        spec = self.topology.scenario.spec
        self.policy = spec.faults.recovery
        self.max_retries = spec.faults.max_retries
        # pull: decode's heartbeats extend a lease to 2/3 of its length past the last one, so
        # prefill learns of a lost consumer about that long after it went quiet (vLLM: 20 s)
        self.lease_remaining = spec.lifecycle.lease * 2 / 3
        self.heartbeat = spec.lifecycle.heartbeat
        # only pull lends blocks under a lease that an unreachable consumer lets run out
        self.leases = self.ledger.protocol == "pull"
        # only push reserves decode blocks before the producer has computed anything
        self.reservations = self.ledger.protocol == "push"

    def crash(self, inst: Instance) -> None:
        """An instance dies: requests it only queued go elsewhere; those whose KV it held are
        recovered by the scenario's policy."""
        self.stats.count("instance_crashes")
        was_alive = inst.alive
        affected = inst.crash()
        if was_alive:
            self.topology.instance_down()
            if inst.prefix_cache is not None:  # the prefix blocks its HBM cached are gone too
                inst.prefix_cache.lose_device_memory()
        for req, lost in affected:
            if req.id not in self.requests.in_flight:
                continue
            if lost:
                self.recover(req, f"{inst.name} crashed", crashed=inst)
            elif inst.role == "decode":
                req.decode = None
                self.dispatch.to_decode(req)
            else:
                req.prefill = None
                self.dispatch.route_prefill(req)

    def restart(self, inst: Instance) -> None:
        if not inst.restart():
            return
        self.topology.instance_up()
        self.dispatch.unpark()

    def recover(self, req: Req, reason: str, crashed: Instance | None = None) -> None:
        """A request lost its KV (or its transfer): retry it, let decode recompute it, or fail."""
        if req.id not in self.requests.in_flight:
            return
        self.stats.count("requests_disrupted")
        self._strip(req, crashed)
        if self.policy == "retry" and req.retries < self.max_retries:
            self.stats.count("retries")
            self._restart_attempt(req)
            self.handoff.arrive(req)
        elif self.policy == "fallback" and self.topology.decode:
            live = self.topology.live(self.topology.decode)
            d = min(live, key=lambda i: (i.load(), i.gid), default=None)
            if d is None:
                self.requests.fail(req, reason + "; no live decode instance to fall back to")
                return
            self.stats.count("fallbacks")
            self._restart_attempt(req)
            self.ledger.mark(req, DECODE, WAITING)
            # decode recomputes the prompt itself
            self.ledger.mark(req, DECODE, COMMITTED)
            d.adopt(req)
        else:
            self.requests.fail(req, reason)

    def _restart_attempt(self, req: Req) -> None:
        ledger = self.ledger
        for side in Side:
            if ledger.state(req.id, side) not in _ENDED:
                ledger.mark(req, side, LOST)
        ledger.log.forget(req.id)  # the next attempt starts from scratch (history is kept)
        req.retries += 1
        req.recomputed_tokens += req.input
        req.reset_attempt()

    def _strip(self, req: Req, crashed: Instance | None) -> None:
        """Take a request out of every live instance and give its blocks back — at once, or
        when the protocol's owner would notice (a lease, missed heartbeats)."""
        transfer, req.transfer = req.transfer, None
        if transfer is not None:
            self.network.abort(transfer)
        p = req.prefill
        if p is not None and p is not crashed and p.alive:
            p.forget(req)
            if req.p_blocks and self.leases and req.p_state is BlockState.HELD:
                # prefill keeps lending its blocks until the lease runs out
                self.release_later(p, p.disown(req), BlockState.HELD, self.lease_remaining)
            elif req.p_blocks:
                p.free(req)
        req.p_blocks = 0
        d = req.decode
        if d is not None and d is not crashed and d.alive:
            d.forget(req)
            abandoned = req.d_state is BlockState.RESERVED and crashed is p
            if req.d_blocks and self.reservations and abandoned:
                # SGLang: decode gives up after two missed heartbeats from prefill
                self.release_later(d, d.disown(req), BlockState.RESERVED, 2 * self.heartbeat)
            elif req.d_blocks:
                d.free(req)
        req.d_blocks = 0
        self.handoff.drop(req)

    def release_later(self, inst: Instance, blocks: int, state: BlockState, delay: float) -> None:
        """Blocks an owner frees only after ``delay`` (unless it crashes first, losing them)."""
        if not blocks:
            return
        epoch = inst.epoch
        if state is BlockState.HELD:
            self.stats.count("lease_expiries")

        def free(_event: object) -> None:
            if inst.epoch == epoch:
                inst.release_late(blocks, state)

        self.env.timeout(delay).callbacks.append(free)

    def expire(self, req: Req) -> None:
        """Pull: the lease on a held request ran out while its consumer was unreachable."""
        p = req.prefill
        if p is None or req.id not in p.held or not req.p_blocks:
            return
        p.release(req)
        self.stats.count("lease_expiries")
        if req.transfer is not None:  # a read under way now reads freed blocks
            req.corrupted = True
            self.stats.count("silent_corruptions")
        self.ledger.mark(req, PREFILL, EXPIRED)
