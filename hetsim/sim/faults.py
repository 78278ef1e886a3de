"""Fault injection: scheduled and random faults as simpy processes, and per-transfer draws.

Link faults act on every link built from the named hop; instance faults on ``pool`` (all its
instances) or ``pool[i]``. Random crashes draw exponential times between failures and repairs
from the simulation's seeded generator, so a run with faults is as reproducible as one without.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import simpy

from hetsim.sim.instance import Instance
from hetsim.sim.network import Link, Network, Transfer
from hetsim.sim.ports import Stats
from hetsim.sim.recovery import Recovery
from hetsim.sim.state import Req
from hetsim.sim.topology import Topology
from hetsim.spec.faults import FaultSpec, FaultsSpec, instance_target

__all__ = ["FaultInjector"]


class FaultInjector:
    def __init__(
        self,
        env: simpy.Environment,
        spec: FaultsSpec,
        seed: int,
        *,
        stats: Stats,
        network: Network,
        topology: Topology,
        recovery: Recovery,
        done: Callable[[], bool],
    ) -> None:
        self.env = env
        self.stats = stats
        self.network = network
        self.topology = topology
        self.recovery = recovery
        self.done = done  # every request has ended: random faults stop
        self.rng = np.random.default_rng([seed, 0xFA017])
        self.abort_p = 0.0
        self.lost_p = 0.0
        for fault in spec.events:
            if fault.kind == "abort_mid_transfer":
                self.abort_p = fault.probability or 0.0
            elif fault.kind == "lost_notification":
                self.lost_p = fault.probability or 0.0
            elif fault.mtbf is not None:
                for inst in self.instances(fault.target):
                    self.env.process(self._random_crashes(inst, fault))
            else:
                self.env.process(self._scheduled(fault))

    # -- targets --

    def instances(self, target: str | None) -> list[Instance]:
        pool, index = instance_target(target or "")
        found = [
            i
            for i in self.topology.instances
            if i.pool.name == pool and (index is None or i.index == index)
        ]
        if not found:
            raise ValueError(f"fault target {target!r} names no instance")
        return found

    def links(self, hop: str | None) -> list[Link]:
        self.topology.build_all_paths()
        # the hops of transfer paths only: a tier's or host's link is no fault target
        found = [link for key, link in self.topology.link_items() if key[:2] == ("hop", hop)]
        if not found:
            raise ValueError(f"fault target {hop!r} names no hop")
        return found

    # -- processes --

    def _scheduled(self, fault: FaultSpec):
        env, recovery = self.env, self.recovery
        assert fault.at is not None and fault.duration is not None
        yield env.timeout(fault.at)
        kind = fault.kind
        if kind in ("link_down", "link_degraded"):
            links = self.links(fault.target)
            for link in links:
                if kind == "link_down":
                    link.down()
                else:
                    link.set_bandwidth_factor(fault.factor or 1.0)
            self.stats.count(f"{kind}_events")
            if kind == "link_down" and recovery.leases:
                env.process(self._lease_watch(links, fault.duration))
            yield env.timeout(fault.duration)
            for link in links:
                if kind == "link_down":
                    link.up()
                else:
                    link.set_bandwidth_factor(1.0)
        elif kind == "instance_crash":
            targets = self.instances(fault.target)
            for inst in targets:
                recovery.crash(inst)
            yield env.timeout(fault.duration)
            for inst in targets:
                recovery.restart(inst)
        elif kind == "straggler":
            targets = self.instances(fault.target)
            for inst in targets:
                inst.straggle(fault.factor or 1.0)
            self.stats.count("straggler_events")
            yield env.timeout(fault.duration)
            for inst in targets:
                inst.straggle(1.0)

    def _lease_watch(self, links: list[Link], duration: float):
        """Decode's heartbeats ride the same network: if the path stays down past the lease,
        prefill frees what it holds for consumers behind it."""
        recovery, topology = self.recovery, self.topology
        if duration <= recovery.lease_remaining:
            return
        yield self.env.timeout(recovery.lease_remaining)
        down = set(map(id, links))
        for p in list(topology.prefill):
            for req in list(p.held.values()):
                if req.decode is not None and any(
                    id(link) in down for link in topology.path_links(p, req.decode)
                ):
                    recovery.expire(req)

    def _random_crashes(self, inst: Instance, fault: FaultSpec):
        env, recovery = self.env, self.recovery
        assert fault.mtbf is not None and fault.mttr is not None
        while True:
            yield env.timeout(self.rng.exponential(fault.mtbf))
            if self.done():
                return
            recovery.crash(inst)
            yield env.timeout(self.rng.exponential(fault.mttr))
            recovery.restart(inst)
            if self.done():
                return

    # -- per-transfer draws --

    def transfer_started(self, req: Req, transfer: Transfer, nbytes: float, links) -> None:
        if self.abort_p and self.rng.random() < self.abort_p:
            expected = self.network.flow_time(nbytes, links)
            at = self.rng.random() * expected
            self.stats.count("client_aborts")

            def abort(_event: object) -> None:
                if not transfer.triggered:
                    self.network.abort(transfer, reason="client abort")

            self.env.timeout(at).callbacks.append(abort)

    def notification_lost(self, req: Req) -> bool:
        if self.lost_p and self.rng.random() < self.lost_p:
            self.stats.count("lost_notifications")
            return True
        return False
