"""Dispatch: which instance serves a request's next phase, and what it may skip.

The role's router (all its pools, :mod:`~hetsim.sim.router`) picks a live instance; a request
that could never fit its KV capacity fails at once with the numbers; one whose candidate pools
are all down is parked until an instance comes back. A prefill instance's prefix cache cascade
decides how many prompt tokens are already computed (loaded first from the lower tiers holding
them, over their links).
"""

from __future__ import annotations

from hetsim.sim.book import RequestBook
from hetsim.sim.instance import DecodeInstance, Instance
from hetsim.sim.network import Network
from hetsim.sim.prefix import PrefixCaches
from hetsim.sim.router import RoleRouter
from hetsim.sim.state import Req
from hetsim.sim.topology import Topology

__all__ = ["Dispatcher"]


def _router(topology: Topology, instances: list[Instance]) -> RoleRouter:
    spec = topology.scenario.spec
    routing = spec.role_routing(instances[0].pool.role)
    return RoleRouter(routing, instances, spec.kv.prefix_cache.block_tokens)


class Dispatcher:
    def __init__(
        self,
        topology: Topology,
        prefix: PrefixCaches,
        network: Network,
        requests: RequestBook,
    ) -> None:
        self.topology = topology
        self.prefix = prefix
        self.network = network
        self.requests = requests
        self.prefill_router = _router(topology, topology.entry)
        self.decode_router = _router(topology, topology.decode) if topology.decode else None
        self.parked: list[tuple[Req, int, str]] = []  # waiting for a crashed role to return

    def route_prefill(self, req: Req) -> None:
        """Pick the instance that computes the prompt, apply its prefix cache, queue it there
        (after loading the cached prefix from the tiers below HBM that hold it)."""
        inst = self.prefill_router.pick(req, self.topology.live)
        if inst is None:  # all of its rule's pools down: wait for one to come back
            self.parked.append((req, req.retries, "prefill"))
            return
        req.prefill = inst
        max_blocks = inst.blocks.blocks_for(
            req.input + (req.output if inst.role == "colocated" else 0)
        )
        if max_blocks > inst.blocks.capacity:
            self.requests.fail(
                req,
                f"needs {max_blocks} KV blocks; {inst.pool.name} instances hold "
                f"{inst.blocks.capacity}",
            )
            return
        cached, loads = self.prefix.lookup(inst, req)
        req.cached = cached
        req.computed = cached
        if loads:
            self._load_then_enqueue(inst, req, loads)
            return
        inst.enqueue(req)

    def _load_then_enqueue(self, inst: Instance, req: Req, loads: list) -> None:
        """Load the hit's blocks from each lower tier over its link, all at once (each tier's
        link shared fairly with its other loads and writes); queue the prompt when all are in."""
        left = [len(loads)]

        def arrived(_event: object) -> None:
            left[0] -= 1
            if not left[0]:
                inst.enqueue(req)

        for link, nbytes in loads:
            self.network.transfer(nbytes, [link], tag=req.id).callbacks.append(arrived)

    def route_decode(self, req: Req) -> DecodeInstance | None:
        """The decode instance for ``req`` (None: parked, or failed as too large)."""
        assert self.decode_router is not None
        inst = self.decode_router.pick(req, self.topology.live)
        if inst is None:  # all down: wait for one to come back
            self.parked.append((req, req.retries, "decode"))
            return None
        need = inst.blocks.blocks_for(req.input + req.output)
        if need > inst.blocks.capacity:
            self.requests.fail(
                req,
                f"prompt + output needs {need} KV blocks; {inst.pool.name} instances "
                f"hold {inst.blocks.capacity}",
            )
            return None
        req.decode = inst
        return inst

    def to_decode(self, req: Req) -> None:
        """Route ``req`` to a decode instance and queue it there."""
        d = self.route_decode(req)
        if d is not None:
            d.enqueue(req)

    def unpark(self) -> None:
        """An instance came back: route every parked request that is still on that attempt."""
        parked, self.parked = self.parked, []
        for req, attempt, role in parked:
            if not self.requests.current(req, attempt):
                continue
            if role == "prefill":
                self.route_prefill(req)
            else:
                self.to_decode(req)
