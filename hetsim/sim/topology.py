"""The serving system's shape: pools → instances, and the links their transfers cross.

A hop is one shared link resource per its ``shared_by`` scope (per source instance, per
destination instance, per path, or one for the whole cluster), created on first use; tiers and
host PCIe get links of their own through :meth:`Topology.link`. Link creation order is the
order of the time series' rows.
"""

from __future__ import annotations

import simpy

from hetsim.checks import handoff_plan
from hetsim.perf.step import step_model_for_pool
from hetsim.sim.instance import ColocatedInstance, DecodeInstance, Instance, PrefillInstance
from hetsim.sim.network import Link, Network
from hetsim.sim.ports import Ledger, Stats
from hetsim.spec.resolve import Scenario

__all__ = ["Topology"]

_KINDS = {"prefill": PrefillInstance, "decode": DecodeInstance, "colocated": ColocatedInstance}


class Topology:
    """Instances by role, the links of every hop and tier, and each instance pair's path."""

    def __init__(
        self,
        scenario: Scenario,
        env: simpy.Environment,
        network: Network,
        stats: Stats,
        ledger: Ledger,
        seed: int = 0,
    ) -> None:
        self.scenario = scenario
        self.network = network
        self.instances: list[Instance] = []
        self.prefill: list[PrefillInstance] = []
        self.decode: list[DecodeInstance] = []
        self.colocated: list[ColocatedInstance] = []
        for pool in scenario.spec.pools:
            step_model = step_model_for_pool(scenario.model, scenario.profiles[pool.name], pool)
            step_model.forget_chunk_times()  # a run's prompt steps, not every run's since start
            fp = scenario.footprints[pool.name]
            for i in range(pool.instances):
                gid = len(self.instances)
                inst = _KINDS[pool.role](env, pool, i, gid, step_model, fp, stats, ledger, seed)
                self.instances.append(inst)
                getattr(self, pool.role).append(inst)
        # the instances that take arriving requests and compute their prompts
        self.entry: list[Instance] = self.prefill or self.colocated
        self.dead = 0  # instances down now (most of the time none: routing skips the filter)
        self._links: dict[tuple, Link] = {}
        self._paths: dict[tuple[int, int], list[Link]] = {}

    def instance_down(self) -> None:
        self.dead += 1

    def instance_up(self) -> None:
        self.dead -= 1

    def live(self, instances: list[Instance]) -> list[Instance]:
        return instances if not self.dead else [i for i in instances if i.alive]

    def link(self, key: tuple, name: str, bandwidth: float, latency: float) -> Link:
        """The link for ``key``, created on first use (hops are shared per their scope)."""
        found = self._links.get(key)
        if found is None:
            found = self.network.add_link(name, bandwidth, latency)
            self._links[key] = found
        return found

    @property
    def links(self) -> list[Link]:
        return list(self._links.values())

    def link_items(self) -> list[tuple[tuple, Link]]:
        return list(self._links.items())

    def path_links(self, src: Instance, dst: Instance) -> list[Link]:
        """The hops a transfer from ``src`` to ``dst`` crosses, as shared link resources."""
        key = (src.gid, dst.gid)
        links = self._paths.get(key)
        if links is None:
            links = self._build_path(src, dst)
            self._paths[key] = links
        return links

    def _build_path(self, src: Instance, dst: Instance) -> list[Link]:
        """One link per hop of the pair's HandoffPlan, at the hop's effective bandwidth."""
        plan = handoff_plan(self.scenario, src.pool.name, dst.pool.name)
        links = []
        for hop in plan.hops:
            scope = {
                "source_instance": (src.gid,),
                "destination_instance": (dst.gid,),
                "path": (plan.producer_pool, plan.consumer_pool),
                "cluster": (),
            }[hop.shared_by]
            name = f"{hop.name}" + "".join(f"[{s}]" for s in scope)
            key = ("hop", hop.name, *scope)
            links.append(self.link(key, name, hop.effective_bandwidth, hop.latency))
        return links

    def build_all_paths(self) -> None:
        """Create every prefill→decode path's links now (faults need them before first use)."""
        for p in self.prefill:
            for d in self.decode:
                self.path_links(p, d)
