"""``store`` (Mooncake Store, LMCache): prefill writes the KV into a shared tier and frees at once;
a decode instance admits the request later and fetches the KV from the tier.

The store is a block pool of its own. Past its high watermark it evicts the least recently
stored objects that no reader holds a lease on; a request whose KV was evicted before decode
fetched it is recovered (its prompt must be computed again).
"""

from __future__ import annotations

from collections import OrderedDict

from hetsim.kv.blocks import BlockPool
from hetsim.kv.lifecycle import EVICTED, FETCHING, FREED, PREFILL, STORE, STORED, WRITING
from hetsim.sim.handoff.base import Handoff
from hetsim.sim.instance import DecodeInstance, PrefillInstance
from hetsim.sim.network import Link
from hetsim.sim.state import Req

__all__ = ["Store"]


class Store(Handoff):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        spec = self.scenario.spec
        tier = next(t for t in spec.kv.tiers if t.name == self.lifecycle.store_tier)
        fmt = self.transfer_format or self.topology.entry[0].pool.precision.kv
        decode = self.topology.decode
        page = decode[0].page if decode else 16
        self.store = BlockPool(int(tier.capacity // (self._kvb(fmt) * page)), page)
        self.link = self.topology.link(
            ("store", tier.name), tier.name, tier.bandwidth, tier.latency
        )
        self.stored: dict[int, int] = {}  # blocks per request in the store (or being written)
        # written and not being fetched: evictable, least recently stored first
        self.evictable: OrderedDict[int, Req] = OrderedDict()
        self.evicted: set[int] = set()
        self.watermark = int(self.lifecycle.store_high_watermark * self.store.capacity)

    def _make_room(self, blocks: int) -> None:
        """Mooncake Store: past the high watermark, evict the least recently stored objects
        that no reader holds a lease on."""
        while self.store.allocated + blocks > self.watermark and self.evictable:
            rid, victim = self.evictable.popitem(last=False)
            self.store.release(self.env.now, self.stored.pop(rid))
            self.evicted.add(rid)
            self.stats.count("store_evictions")
            self.ledger.mark(victim, STORE, EVICTED)

    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:
        blocks = self.store.blocks_for(req.input)
        self._make_room(blocks)
        if not self.store.can_allocate(blocks):
            p.release(req)
            self.requests.fail(req, "KV store tier full (every object is being written or read)")
            return
        self.store.allocate(self.env.now, blocks)
        self.stored[req.id] = blocks
        p.hand_over(req)
        self.ledger.mark(req, PREFILL, WRITING)
        self._send(req, p, None, self._write_links(p), lambda req=req, p=p: self._stored(req, p))

    def _write_links(self, p: PrefillInstance) -> list[Link]:
        """Prefill's side of its path (its NICs, the shared fabric), then into the store."""
        plan = self._plan(p, None)
        d = next(i for i in self.topology.decode if i.pool.name == plan.consumer_pool)
        links = self.topology.path_links(p, d)
        mine = [
            link
            for hop, link in zip(plan.hops, links, strict=True)
            if hop.shared_by != "destination_instance"
        ]
        return [*mine, self.link]

    def _fetch_links(self, p: PrefillInstance, d: DecodeInstance) -> list[Link]:
        """Out of the store, then decode's side of the path (the fabric, its NICs)."""
        links = self.topology.path_links(p, d)
        theirs = [
            link
            for hop, link in zip(self._plan(p, d).hops, links, strict=True)
            if hop.shared_by != "source_instance"
        ]
        return [self.link, *theirs]

    def _stored(self, req: Req, p: PrefillInstance) -> None:
        p.release(req)
        self.ledger.mark(req, PREFILL, FREED)
        self.ledger.mark(req, STORE, STORED)
        self.evictable[req.id] = req
        d = self.dispatch.route_decode(req)
        if d is None:
            if req.id not in self.requests.in_flight:  # failed, not parked: its copy can go
                self.drop(req)
            return
        d.enqueue(req)

    def admit(self, d: DecodeInstance) -> None:
        for req, need in self._fifo(d):
            if req.id in self.evicted:
                # evicted before anyone fetched it: the KV must be computed again
                d.dequeue()
                self.stats.count("evicted_before_fetch")
                self.recovery.recover(
                    req, "its KV was evicted from the store before decode fetched it"
                )
                continue
            self._reserve(req, d, need)
            self.evictable.pop(req.id, None)  # leased while it is read
            self.ledger.mark(req, STORE, FETCHING)
            self._receiving(req)
            self._fetch(req, d)

    def _fetch(self, req: Req, d: DecodeInstance) -> None:
        plan = self._plan(req.prefill, d)
        after = self._conversion_s(plan, req.input)[1]
        nbytes = plan.network_bytes(req.input)
        links = self._fetch_links(req.prefill, d)
        self._move(req, nbytes, links, 0.0, after, lambda req=req, d=d: self._fetched(req, d))

    def _fetched(self, req: Req, d: DecodeInstance) -> None:
        self.drop(req)
        self.ledger.mark(req, STORE, FREED)
        self._commit(req, d)

    def drop(self, req: Req) -> None:
        """Release the request's copy in the store (fetched, or the request gave up)."""
        self.evictable.pop(req.id, None)
        self.evicted.discard(req.id)
        blocks = self.stored.pop(req.id, 0)
        if blocks:
            self.store.release(self.env.now, blocks)

    @property
    def allocated(self) -> int:
        """Blocks the store still holds (zero at the end of a run: none leaked)."""
        return self.store.allocated
