"""The time-series sampler: every ``interval`` simulated seconds, one row per instance (batch,
queue, KV blocks by state, busy share since the last sample) and one per link.

It stops once every request has ended and nothing else is scheduled, so it never keeps a finished
run alive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator

import pandas as pd
import simpy

from hetsim.sim.topology import Topology

__all__ = ["Sampler"]

INSTANCE_COLUMNS = [
    "time_s",
    "instance",
    "pool",
    "role",
    "batch_size",
    "queue_len",
    "kv_used_blocks",
    "kv_reserved_blocks",
    "kv_held_blocks",
    "kv_capacity_blocks",
    "busy",
]
LINK_COLUMNS = [
    "time_s",
    "link",
    "bytes_in_flight",
    "active_transfers",
    "bandwidth",
    "utilisation_since_start",
]


class Sampler:
    def __init__(
        self,
        env: simpy.Environment,
        topology: Topology,
        interval: float,
        done: Callable[[], bool],
    ) -> None:
        self.env = env
        self.topology = topology
        self.interval = interval
        self.done = done
        self.samples: list[tuple] = []
        self.link_samples: list[tuple] = []

    def run(self) -> Generator[simpy.Event, None, None]:
        env = self.env
        instances = self.topology.instances
        last_busy = [0.0] * len(instances)
        while True:
            yield env.timeout(self.interval)
            now = env.now
            for inst in instances:
                b = inst.blocks
                batch = inst.batch.n if hasattr(inst, "batch") else len(inst.running)
                busy = (inst.busy_s - last_busy[inst.gid]) / self.interval
                last_busy[inst.gid] = inst.busy_s
                self.samples.append(
                    (now, inst.gid, inst.pool.name, inst.role, batch, inst.queue_len, b.used,
                     b.reserved, b.held, b.capacity, min(busy, 1.0))
                )  # fmt: skip
            for link in self.topology.links:
                self.link_samples.append(
                    (now, link.name, link.bytes_in_flight, link.active_transfers, link.bandwidth,
                     link.utilisation)
                )  # fmt: skip
            if self.done() and env.peek() == math.inf:  # nothing else will happen
                return

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(instance rows with each instance's name, link rows)."""
        names = {i.gid: i.name for i in self.topology.instances}
        ts = pd.DataFrame(self.samples, columns=INSTANCE_COLUMNS)
        ts.insert(2, "instance_name", ts["instance"].map(names))
        return ts, pd.DataFrame(self.link_samples, columns=LINK_COLUMNS)
