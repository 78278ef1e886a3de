"""How KV crosses from prefill to decode: the lifecycle protocols, as the simulator drives them.

* ``pull`` (vLLM NIXL): prefill computes into its own blocks and then *holds* them; the decode
  side admits the request when it has room (FIFO), reserves blocks, reads the KV, and prefill
  frees its copy when the read completes. Prefill pays decode's queueing as held HBM.
* ``push`` (SGLang): the decode side *reserves* blocks first (FIFO, head-of-line, keeping
  ``reserved_decode_tokens`` of headroom); only then does prefill start; it writes into the
  reservation and frees its copy at commit. Decode pays the prefill time as reserved HBM.
* ``store`` (Mooncake Store / LMCache): prefill writes the KV into a shared tier and frees at
  once; a decode instance admits the request later and fetches the KV from the tier.

A transfer moves ``input_tokens × kv_bytes_per_token(transfer format)`` over the path's hops.
Where the producer's or consumer's KV format differs from the transfer format, a conversion
kernel reads and writes the KV at that side's memory bandwidth (issue #5 refines this into
explicit portability verdicts).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from hetsim.checks import HandoffPlan
from hetsim.checks import handoff_plan as handoff_conversions
from hetsim.kv.blocks import BlockPool
from hetsim.sim.network import TransferFailed

if TYPE_CHECKING:
    from hetsim.sim.engine import Simulation
    from hetsim.sim.instance import DecodeInstance, Instance, PrefillInstance
    from hetsim.sim.state import Req

__all__ = ["make_handoff", "Pull", "Push", "Store", "Colocated"]


class _Handoff:
    def drop(self, req: Req) -> None:
        """Forget a request's copy outside the instances (only the store keeps one)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.env = sim.env
        spec = sim.scenario.spec
        model = sim.scenario.model
        self.lifecycle = spec.lifecycle
        self.transfer_format = spec.kv.transfer_format
        self._kvb = model.kv_bytes_per_token
        self.layerwise = spec.kv.layerwise_transfer
        self.num_layers = model.num_layers
        self._plans: dict[tuple[str, str], HandoffPlan] = {}
        self._per_token: dict[int, tuple[float, float]] = {}

    def arrive(self, req: Req) -> None:
        self.sim.route_prefill(req)

    def admit(self, d: DecodeInstance) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def last_step_started(self, req: Req, p: PrefillInstance, dt: float) -> None:
        """The step that completes ``req``'s prompt starts now and lasts ``dt`` (layer-wise
        streaming hooks in here)."""

    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- shared mechanics --

    def _plan(self, p: Instance, d: Instance | None) -> HandoffPlan:
        """The portability plan of a pool pair: its conversions, their sides and costs, and
        the bytes on the wire (store: any consumer pool; the producer side is the same)."""
        d_pool = d.pool.name if d is not None else self.sim.decode[0].pool.name
        key = (p.pool.name, d_pool)
        plan = self._plans.get(key)
        if plan is None:
            plan = handoff_conversions(self.sim.scenario, p.pool.name, d_pool)
            self._plans[key] = plan
        return plan

    def _conversion_s(self, plan: HandoffPlan, tokens: int) -> tuple[float, float]:
        """(before, after) the transfer: producer + staging conversions, consumer conversions.
        They are linear in tokens, so their per-token cost is worked out once per plan."""
        per_token = self._per_token.get(id(plan))
        if per_token is None:
            per_token = (plan.producer_s(1) + plan.staging_s(1), plan.consumer_s(1))
            self._per_token[id(plan)] = per_token
        return per_token[0] * tokens, per_token[1] * tokens

    def _wire_bytes(self, plan: HandoffPlan, tokens: int) -> float:
        """Bytes crossing the network: every decode rank that needs its own copy gets one
        (an MLA latent is replicated on each TP rank, GQA heads are split among them)."""
        transfer = plan.verdict.transfer
        per_token = transfer.network_bytes_per_token if transfer else plan.wire_bytes_per_token
        return tokens * per_token

    def _send(self, req: Req, p: Instance, d: Instance | None, links, on_done) -> None:
        """Convert where the scenario declares (producer, staging), move over ``links``, convert
        on the consumer, then call ``on_done``. ``d`` None: into a store tier, in the transfer
        format (the consumer's conversion is charged at fetch)."""
        plan = self._plan(p, d)
        before, after = self._conversion_s(plan, req.input)
        if d is None:
            after = 0.0
        self.sim.transfers += 1
        # into a store: one copy; to a decode instance: one per rank that needs its own
        nbytes = plan.wire_bytes(req.input) if d is None else self._wire_bytes(plan, req.input)
        self.env.process(self._transfer(req, nbytes, links, before, after, on_done))

    def _transfer(self, req, nbytes, links, before, after, on_done):
        """One KV movement. A transfer that fails (a crash, a timeout, a client abort) hands the
        request to the simulator's recovery; one whose request has moved on meanwhile (retried
        or ended) is dropped quietly."""
        env, sim = self.env, self.sim
        attempt = req.retries
        if before:
            yield env.timeout(before)
        if not sim.current(req, attempt):
            return
        if req.t_transfer_start != req.t_transfer_start:  # NaN: first leg
            req.t_transfer_start = env.now
        transfer = sim.network.transfer(nbytes, links, tag=req.id)
        req.transfer = transfer
        sim.faults.transfer_started(req, transfer, nbytes, links)
        try:
            if sim.transfer_timeout is None:
                yield transfer
            else:
                timer = env.timeout(sim.transfer_timeout)
                yield transfer | timer
                if not transfer.triggered:
                    req.transfer = None
                    sim.network.abort(transfer)
                    if sim.current(req, attempt):
                        sim.count("transfer_timeouts")
                        sim.recover(req, "KV transfer timed out")
                    return
        except TransferFailed as exc:
            if req.transfer is transfer:
                req.transfer = None
            if sim.current(req, attempt):
                if exc.reason == "client abort":
                    sim.fail(req, "aborted by the client while its KV was moving")
                else:
                    sim.recover(req, f"KV transfer failed ({exc.reason})")
            return
        req.transfer = None
        if after:
            yield env.timeout(after)
        if not sim.current(req, attempt):
            return
        req.t_transfer_end = env.now
        on_done()

    def _commit(self, req: Req, d: DecodeInstance) -> None:
        """The KV has landed in the decode-side reservation."""
        d.blocks.move(self.env.now, req.d_blocks, "reserved", "used")
        req.d_state = "used"
        req.context = req.input
        self.sim.mark(req, "D", "committed")
        d.deliver(req)

    @staticmethod
    def _fifo(d: DecodeInstance, headroom: int = 0):  # noqa: ANN205 - yields (Req, blocks)
        """Waiting requests in order, each with the blocks it needs, while a slot and those
        blocks (plus ``headroom``) are free; stops at the first that does not fit, as the
        engines' FIFO admission does. The caller takes each one off the queue."""
        while d.waiting and d.slots_taken < d.max_seqs:
            req = d.waiting[0]
            need = d.blocks.blocks_for(req.input)
            if need + headroom > d.blocks.free:
                return
            yield req, need

    def _reserve(self, req: Req, d: DecodeInstance, need: int) -> None:
        d.dequeue()
        d.blocks.allocate(self.env.now, need, "reserved")
        req.d_blocks = need
        req.d_state = "reserved"
        d.incoming += 1
        d.receiving[req.id] = req
        self.sim.mark(req, "D", "reserved")

    def _receiving(self, req: Req) -> None:
        self.sim.mark(req, "D", "receiving")


class Pull(_Handoff):
    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:
        p.blocks.move(self.env.now, req.p_blocks, "used", "held")
        req.p_state = "held"
        p.held[req.id] = req
        self.sim.mark(req, "P", "held")
        d = self.sim.route_decode(req)
        if d is not None:
            d.enqueue(req)

    def admit(self, d: DecodeInstance) -> None:
        for req, need in self._fifo(d):
            self._reserve(req, d, need)
            p = req.prefill
            if self.sim.life.state(req.id, "P") == "expired":
                # the producer's lease ran out and it freed the blocks: this read returns
                # whatever now lives there — the silent corruption the engines warn about
                req.corrupted = True
                self.sim.count("silent_corruptions")
            self._receiving(req)
            self._send(
                req,
                p,
                d,
                self.sim.path_links(p, d),
                lambda r=req, p=p, d=d: self._read_done(r, p, d),
            )

    def _read_done(self, req: Req, p: PrefillInstance, d: DecodeInstance) -> None:
        if self.sim.faults.notification_lost(req):
            # decode read the KV but prefill never hears: it frees at lease expiry
            p.held.pop(req.id, None)
            self.sim.release_later(p, req.p_blocks, "held", self.sim.lease_remaining)
            req.p_blocks = 0
        else:
            p.release(req, "held")
            if self.sim.life.state(req.id, "P") == "held":
                self.sim.mark(req, "P", "freed")
        self._commit(req, d)


class Push(_Handoff):
    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim)
        self._streaming: set[int] = set()

    def arrive(self, req: Req) -> None:
        d = self.sim.route_decode(req)
        if d is not None:
            d.enqueue(req)

    def admit(self, d: DecodeInstance) -> None:
        """SGLang's pre-allocation queue: FIFO, stopping at the first request that does not fit
        with ``reserved_decode_tokens`` of headroom left."""
        headroom = d.blocks.blocks_for(self.lifecycle.reserved_decode_tokens)
        for req, need in self._fifo(d, headroom):
            self._reserve(req, d, need)
            self.sim.route_prefill(req)

    def last_step_started(self, req: Req, p: PrefillInstance, dt: float) -> None:
        """Layer-wise streaming: each layer's KV leaves as soon as the layer is computed, so the
        transfer starts with the last step; it cannot complete before the step's last layer
        (one layer's share of the bytes after the step ends)."""
        d = req.decode
        links = self.sim.path_links(p, d)
        last_layer = self._wire_bytes(self._plan(p, d), req.input) / self.num_layers
        ready_at = self.env.now + dt + last_layer / min(link.bandwidth for link in links)
        self._streaming.add(req.id)
        p.held[req.id] = req  # its KV lives on prefill until written
        self._receiving(req)
        self._send(req, p, d, links, lambda: self._written(req, p, d, ready_at))

    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:
        if req.id in self._streaming:
            return  # already streaming since its last step began
        d = req.decode
        if not d.alive:
            self.sim.recover(req, "its decode instance crashed before the KV was written")
            return
        p.held[req.id] = req  # its KV lives on prefill until written
        self._receiving(req)
        self._send(req, p, d, self.sim.path_links(p, d), lambda: self._written(req, p, d))

    def _written(self, req: Req, p: PrefillInstance, d: DecodeInstance, ready_at=0.0) -> None:
        wait = ready_at - self.env.now
        if wait > 1e-15:
            self.env.timeout(wait).callbacks.append(lambda _e: self._written(req, p, d))
            return
        self._streaming.discard(req.id)
        p.release(req, "used")
        self.sim.mark(req, "P", "freed")
        self._commit(req, d)


class Store(_Handoff):
    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim)
        spec = sim.scenario.spec
        tier = next(t for t in spec.kv.tiers if t.name == self.lifecycle.store_tier)
        fmt = self.transfer_format or sim.entry[0].pool.precision.kv
        page = sim.decode[0].page if sim.decode else 16
        self.store = BlockPool(int(tier.capacity // (self._kvb(fmt) * page)), page)
        self.link = sim.link(("store", tier.name), tier.name, tier.bandwidth, tier.latency)
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
            self.sim.count("store_evictions")
            self.sim.mark(victim, "S", "evicted")

    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:
        blocks = self.store.blocks_for(req.input)
        self._make_room(blocks)
        if not self.store.can_allocate(blocks):
            p.release(req, "used")
            self.sim.fail(req, "KV store tier full (every object is being written or read)")
            return
        self.store.allocate(self.env.now, blocks)
        self.stored[req.id] = blocks
        p.held[req.id] = req  # its KV lives on prefill until written
        self.sim.mark(req, "P", "writing")
        self._send(req, p, None, self._write_links(p), lambda req=req, p=p: self._stored(req, p))

    def _write_links(self, p: PrefillInstance) -> list:
        """Prefill's side of its path (its NICs, the shared fabric), then into the store."""
        hops = self.sim.scenario.spec.interconnect.paths
        path = next(h for h in hops if h.from_ == p.pool.name)
        d = next(i for i in self.sim.decode if i.pool.name == path.to)
        links = self.sim.path_links(p, d)
        mine = [
            link
            for hop, link in zip(path.hops, links, strict=True)
            if hop.shared_by != "destination_instance"
        ]
        return [*mine, self.link]

    def _fetch_links(self, p: PrefillInstance, d: DecodeInstance) -> list:
        """Out of the store, then decode's side of the path (the fabric, its NICs)."""
        path = next(
            h
            for h in self.sim.scenario.spec.interconnect.paths
            if h.from_ == p.pool.name and h.to == d.pool.name
        )
        links = self.sim.path_links(p, d)
        theirs = [
            link
            for hop, link in zip(path.hops, links, strict=True)
            if hop.shared_by != "source_instance"
        ]
        return [self.link, *theirs]

    def _stored(self, req: Req, p: PrefillInstance) -> None:
        p.release(req, "used")
        self.sim.mark(req, "P", "freed")
        self.sim.mark(req, "S", "stored")
        self.evictable[req.id] = req
        d = self.sim.route_decode(req)
        if d is None:
            if req.id not in self.sim.in_flight:  # failed, not parked: its copy can go
                self.drop(req)
            return
        d.enqueue(req)

    def admit(self, d: DecodeInstance) -> None:
        for req, need in self._fifo(d):
            if req.id in self.evicted:
                # evicted before anyone fetched it: the KV must be computed again
                d.dequeue()
                self.sim.count("evicted_before_fetch")
                self.sim.recover(req, "its KV was evicted from the store before decode fetched it")
                continue
            self._reserve(req, d, need)
            self.evictable.pop(req.id, None)  # leased while it is read
            self.sim.mark(req, "S", "fetching")
            self._receiving(req)
            plan = self._plan(req.prefill, d)
            after = self._conversion_s(plan, req.input)[1]
            nbytes = self._wire_bytes(plan, req.input)
            self.sim.transfers += 1
            self.env.process(
                self._transfer(
                    req,
                    nbytes,
                    self._fetch_links(req.prefill, d),
                    0.0,
                    after,
                    lambda req=req, d=d: self._fetched(req, d),
                )
            )

    def _fetched(self, req: Req, d: DecodeInstance) -> None:
        self.drop(req)
        self.sim.mark(req, "S", "freed")
        self._commit(req, d)

    def drop(self, req: Req) -> None:
        """Release the request's copy in the store (fetched, or the request gave up)."""
        self.evictable.pop(req.id, None)
        self.evicted.discard(req.id)
        blocks = self.stored.pop(req.id, 0)
        if blocks:
            self.store.release(self.env.now, blocks)


class Colocated(_Handoff):
    """No handoff: the instance that prefilled the prompt decodes it."""

    def admit(self, d: DecodeInstance) -> None:  # pragma: no cover - no decode pools
        return

    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:  # pragma: no cover
        return


def make_handoff(sim: Simulation) -> _Handoff:
    if not sim.decode:
        return Colocated(sim)
    return {"pull": Pull, "push": Push, "store": Store}[sim.scenario.spec.lifecycle.protocol](sim)
