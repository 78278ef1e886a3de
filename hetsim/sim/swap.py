"""Host swap: a preempted decode sequence's KV goes to host memory over PCIe and comes back.

Swap-out is fire and forget (the blocks are free at once); swap-in delivers the sequence to its
instance when the copy back has arrived. Each instance has its own PCIe link (all its devices'
lanes together).
"""

from __future__ import annotations

from hetsim.sim.instance import DecodeInstance, Instance
from hetsim.sim.network import Link, Network
from hetsim.sim.state import Req
from hetsim.sim.topology import Topology

__all__ = ["HostSwap"]


class HostSwap:
    def __init__(self, topology: Topology, network: Network) -> None:
        self.topology = topology
        self.network = network
        self.num_layers = topology.scenario.model.num_layers

    def swap_out(self, req: Req, inst: DecodeInstance) -> None:
        self.network.transfer(
            req.context * inst.step_model.kv_bytes_per_token_layer * self.num_layers,
            [self._host_link(inst)],
        )

    def swap_in(self, req: Req, inst: DecodeInstance) -> None:
        nbytes = req.context * inst.step_model.kv_bytes_per_token_layer * self.num_layers
        done = self.network.transfer(nbytes, [self._host_link(inst)], tag=req.id)
        done.callbacks.append(lambda _e: inst.deliver(req))

    def _host_link(self, inst: Instance) -> Link:
        host = self.topology.scenario.profiles[inst.pool.name].host
        return self.topology.link(
            ("pcie", inst.gid),
            f"pcie[{inst.gid}]",
            host.pcie_bandwidth.value * inst.pool.devices,
            2e-6,
        )
