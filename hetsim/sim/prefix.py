"""Prefix caches of the instances that compute prompts: the residency cascade each one looks
prompts up in, what a hit spares and loads, and what caching a prompt writes down the tiers.

Each instance that computes prompts gets a :class:`~hetsim.kv.tiers.Cascade` over
``kv.prefix_cache.tiers`` (or the one-tier ``tier``): ``hbm`` is the instance's own KV capacity
(the capacity doubles as cache, as in vLLM and SGLang); every other tier is one store per
instance, pool or cluster (its scope), with a capacity of ``tier.capacity`` over the KV bytes of
one block in the pool's KV format, and one link (the tier's bandwidth and latency) that its
loads and writes share. A hit served from a lower tier loads over that tier's link before the
prompt is queued; writes into a lower tier (write-back evictions, write-through copies) cross
its link too and compete with loads, without delaying any request (a tier's write_bandwidth,
where lower than its read bandwidth, makes a write hold the link longer: assumption, the link
is modelled as one shared channel). Without block hashes
(synthetic load with no prefix model) a hit-rate parameter stands in for the cache.

Assumption: the one-tier shorthand ``tier: X`` keeps its pre-cascade meaning — the cache lives
in X alone, every hit loads over X's link and caching a prompt there costs no write traffic.

The reuse decomposition (per request, of its leading prompt blocks): *reusable* blocks were
computed somewhere in the cluster before (``trace stats``' prefix reuse, within the simulated
requests); of those, the ones not hit were *lost to routing* when another instance's cascade
held them at that moment (a router choosing that instance would have hit them), else *lost to
eviction* (no tier anywhere held them any more: capacity evicted them). The split is a
counterfactual at the moment of routing, so a perfect cache-aware router loses nothing to
routing but what it trades for load balance. It costs one lookup per other cascade, only for
requests that miss reusable blocks.
"""

from __future__ import annotations

from hetsim.kv.tiers import Cascade, TierStore
from hetsim.sim.instance import Instance
from hetsim.sim.network import Link
from hetsim.sim.output import TierFacts
from hetsim.sim.state import Req
from hetsim.sim.topology import Topology
from hetsim.spec.resolve import Scenario

__all__ = ["PrefixCaches"]


def _owner(scope: str, inst: Instance) -> tuple:
    """Who a tier of this scope belongs to, seen from ``inst``: tiers of one owner are one
    store, shared by every instance of that owner."""
    if scope == "instance":
        return ("instance", inst.gid)
    if scope == "pool":
        return ("pool", inst.pool.name)
    return ("cluster",)


class PrefixCaches:
    def __init__(self, scenario: Scenario, topology: Topology) -> None:
        pc = scenario.spec.kv.prefix_cache
        self.block_tokens = pc.block_tokens
        self.hit_rate = pc.hit_rate
        self.enabled = pc.enabled
        self.network = topology.network
        self.stores: list[TierStore] = []  # every store, in creation order
        self.computed: set[int] = set()  # blocks computed anywhere so far
        self.cascades: list[Cascade] = []  # distinct cascades, for the reuse split
        if pc.enabled:
            self._build(scenario, topology)

    def _build(self, scenario: Scenario, topology: Topology) -> None:
        spec = scenario.spec
        pc = spec.kv.prefix_cache
        tiers = {t.name: t for t in spec.kv.tiers}
        clock = lambda: topology.network.env.now  # noqa: E731
        shared: dict[tuple, TierStore] = {}
        for inst in topology.entry:
            block_bytes = (
                scenario.model.kv_bytes_per_token(inst.pool.precision.kv) * pc.block_tokens
            )
            stores = []
            for name in pc.cascade():
                if name == "hbm":  # the instance's own KV capacity doubles as cache
                    capacity = inst.blocks.capacity * inst.page // pc.block_tokens
                    store = TierStore("hbm", ("instance", inst.gid), capacity, block_bytes, clock)
                    self.stores.append(store)
                    stores.append(store)
                    continue
                tier = tiers[name]
                owner = _owner(tier.scope, inst)
                store = shared.get((name, owner))
                if store is None:
                    capacity = int(tier.capacity // block_bytes)
                    store = TierStore(name, owner, capacity, block_bytes, clock)
                    key, label = ("tier", name, *owner[1:]), f"{name}{owner[1:]}"
                    store.link = topology.link(key, label, tier.bandwidth, tier.latency)
                    # a slow write holds the shared link as long as the bytes would take at
                    # the write rate: it counts as that many bytes of link time
                    store.write_cost = tier.bandwidth / (tier.write_bandwidth or tier.bandwidth)
                    shared[(name, owner)] = store
                    self.stores.append(store)
                stores.append(store)
            cascade = Cascade(stores, pc.write_policy == "write_back", pc.promote)
            inst.attach_prefix_cache(cascade)
            self.cascades.append(cascade)

    def lookup(self, inst: Instance, req: Req) -> tuple[int, list[tuple[Link, float]]]:
        """(prompt tokens of ``req`` that ``inst`` finds cached, the (link, bytes) loads they
        need from lower tiers); records the request's loaded / reusable / evicted tokens."""
        req.loaded = req.reusable = req.evicted = 0
        if not self.enabled:
            return 0, []
        cascade = inst.prefix_cache
        if req.hashes is None or cascade is None:
            cached = int(self.hit_rate * req.input) if self.hit_rate is not None else 0
            # the last prompt token is always computed: its logits give the first output token
            return max(0, min(cached, req.input - 1)), []
        blocks = req.hashes.tolist()
        found = cascade.locate(blocks)
        cap = max(0, req.input - 1)  # the last prompt token is always computed
        bt = self.block_tokens
        cached = min(len(found) * bt, cap)
        self._reuse(cascade, req, blocks, len(found), cap)
        tokens: dict[int, int] = {}
        for j, k in enumerate(found):  # tokens of block j that the cap leaves cached
            tokens[k] = tokens.get(k, 0) + max(0, min(bt, cached - j * bt))
        loads = []
        for k, n in tokens.items():
            store = cascade.stores[k]
            if store.link is not None and n:
                nbytes = n * store.block_bytes / bt
                loads.append((store.link, nbytes))
                store.load_bytes += nbytes
                req.loaded += n
            store.hit_tokens += n
        return cached, loads

    def _reuse(self, cascade: Cascade, req: Req, blocks: list[int], hit: int, cap: int) -> None:
        """Split the reusable leading blocks the lookup missed into lost to eviction and lost
        to routing (see the module docstring)."""
        computed, bt = self.computed, self.block_tokens
        reusable = 0
        for b in blocks:
            if b not in computed:
                break
            reusable += 1
        req.reusable = min(reusable * bt, cap)
        if reusable <= hit:
            return
        wanted = blocks[:reusable]
        elsewhere = max(
            (c.match(wanted, touch=False) for c in self.cascades if c is not cascade),
            default=0,
        )
        for j in range(max(hit, elsewhere), reusable):  # held nowhere any more
            req.evicted += max(0, min(bt, req.reusable - j * bt))

    def prompt_cached(self, req: Req, inst: Instance) -> None:
        """A prompt's KV now exists on ``inst``: cache it in its cascade (later prompts sharing
        its prefix can hit) and move what that writes into lower tiers over their links."""
        cascade = inst.prefix_cache
        if cascade is None or req.hashes is None:
            return
        blocks = req.hashes.tolist()
        self.computed.update(blocks)
        for store, n in cascade.store(blocks).items():
            nbytes = n * store.block_bytes
            store.write_bytes += nbytes
            if store.link is not None:
                self.network.transfer(nbytes * store.write_cost, [store.link])

    def facts(self, end_time: float) -> tuple[TierFacts, ...]:
        """Each tier store over the run (time-mean occupancy from 0 until ``end_time``)."""
        return tuple(
            TierFacts(
                tier=s.tier,
                owner=":".join(str(o) for o in s.owner),
                capacity_blocks=s.capacity,
                block_tokens=self.block_tokens,
                block_bytes=s.block_bytes,
                peak_blocks=s.peak,
                mean_blocks=s.mean(end_time),
                end_blocks=len(s),
                hit_tokens=s.hit_tokens,
                load_bytes=s.load_bytes,
                written_blocks=s.written_blocks,
                write_bytes=s.write_bytes,
                evictions=s.evictions,
            )
            for s in self.stores
        )
