"""Prefix caches of the instances that compute prompts, and how many prompt tokens a hit spares.

One cache per instance, pool or cluster (the cache tier's scope); with no tier named, the
instance's own HBM KV capacity doubles as its cache. A tier other than HBM gets a load link:
a hit's KV is loaded over it before the prompt is queued. Without block hashes (synthetic load)
a hit-rate parameter stands in for the cache.
"""

from __future__ import annotations

from hetsim.kv.prefix_cache import PrefixCache
from hetsim.sim.instance import Instance
from hetsim.sim.state import Req
from hetsim.sim.topology import Topology
from hetsim.spec.resolve import Scenario

__all__ = ["PrefixCaches"]


class PrefixCaches:
    def __init__(self, scenario: Scenario, topology: Topology) -> None:
        pc = scenario.spec.kv.prefix_cache
        self.block_tokens = pc.block_tokens
        self.hit_rate = pc.hit_rate
        self.enabled = pc.enabled
        if pc.enabled:
            self._build(scenario, topology)

    @staticmethod
    def _build(scenario: Scenario, topology: Topology) -> None:
        spec = scenario.spec
        pc = spec.kv.prefix_cache
        tier = next((t for t in spec.kv.tiers if t.name == pc.tier), None)
        shared: dict[tuple, PrefixCache] = {}
        for inst in topology.entry:
            kv_per_block = (
                scenario.model.kv_bytes_per_token(inst.pool.precision.kv) * pc.block_tokens
            )
            if tier is None:  # HBM: the instance's own KV capacity doubles as cache
                capacity = inst.blocks.capacity * inst.page // pc.block_tokens
                inst.attach_prefix_cache(PrefixCache(capacity))
                continue
            scope = {"instance": (inst.gid,), "pool": (inst.pool.name,), "cluster": ()}[tier.scope]
            if scope not in shared:
                shared[scope] = PrefixCache(int(tier.capacity // kv_per_block))
            link = topology.link(
                ("tier", tier.name, *scope), f"{tier.name}{scope}", tier.bandwidth, tier.latency
            )
            inst.attach_prefix_cache(shared[scope], link)

    def hit(self, inst: Instance, req: Req) -> int:
        """Prompt tokens of ``req`` whose KV ``inst`` finds cached."""
        if not self.enabled:
            return 0
        if req.hashes is not None and inst.prefix_cache is not None:
            blocks = inst.prefix_cache.match(req.hashes.tolist())
            cached = blocks * self.block_tokens
        elif self.hit_rate is not None:
            cached = int(self.hit_rate * req.input)
        else:
            cached = 0
        # the last prompt token is always computed: its logits give the first output token
        return max(0, min(cached, req.input - 1))

    @staticmethod
    def prompt_cached(req: Req, inst: Instance) -> None:
        """A prompt's KV now exists on ``inst``: later prompts sharing its prefix can hit."""
        if inst.prefix_cache is not None and req.hashes is not None:
            inst.prefix_cache.insert(req.hashes.tolist())
