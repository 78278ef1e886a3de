"""The time-series sampler: every ``interval`` simulated seconds, one row per instance (batch,
queue, KV blocks by state, busy share since the last sample) and one per link.

With a prefix cache, each instance row also says, for each tier of its cascade, how many
prefix blocks the tier holds (``cache_<tier>_blocks``) and, cumulative since the start, the
prompt tokens it served (``cache_<tier>_hit_tokens``) and the KV bytes those hits loaded
(``cache_<tier>_load_bytes``); NaN for instances without a cache. A tier shared by a pool or
the cluster shows the same store's figures on every row that shares it.

The series is bounded in points whatever the simulated span: once it holds ``max_points``
samples, the interval doubles and every other sample is dropped, so the series stays uniform
(one sample every ``interval`` seconds, from ``interval`` on) and never holds more than
``max_points`` samples of each instance and link. A dropped sample's busy share is folded into
the one kept after it, so ``busy`` is always the share of the interval the row stands for.
``interval`` (and the ``sample_interval_s`` column) says the interval actually used.

It stops once nothing else is scheduled (every request has ended, or those left can never move),
so it never keeps a run alive. :attr:`Sampler.pending` is its next tick: the run loop lets a lone
last tick through, however far away (``sample_interval=1e9`` records one sample).
"""

from __future__ import annotations

import math
from collections.abc import Generator

import pandas as pd
import simpy

from hetsim.sim.topology import Topology

__all__ = ["MAX_POINTS", "MAX_ROWS", "Sampler", "points_for"]

#: samples kept per instance and per link: 1 s samples cover a bit over an hour before the
#: interval first doubles; ten simulated days end at a 256 s interval
MAX_POINTS = 4096
#: rows kept over all instances and links together: a run with thousands of instances keeps
#: fewer samples of each rather than gigabytes of series
MAX_ROWS = 1 << 22


def points_for(series: int) -> int:
    """Samples to keep per series so that ``series`` series stay within :data:`MAX_ROWS`
    (even, at least 64, at most :data:`MAX_POINTS`)."""
    return max(64, min(MAX_POINTS, MAX_ROWS // max(series, 1)) // 2 * 2)


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
        max_points: int = MAX_POINTS,
    ) -> None:
        if max_points < 2 or max_points % 2:
            # a halving keeps every other sample: an even count keeps the series uniform
            raise ValueError(f"max_points must be even and at least 2, not {max_points}")
        self.env = env
        self.topology = topology
        self.interval = interval  # the interval in use now; doubles as the series fills
        self.pending: simpy.Event | None = None  # the next tick's timeout
        self.max_points = max_points
        self.samples: list[tuple] = []
        self.link_samples: list[tuple] = []
        self.points = 0  # samples taken and kept (each one row per instance and per link)

    def run(self) -> Generator[simpy.Event, None, None]:
        env = self.env
        instances = self.topology.instances
        stores = self._tier_stores()
        nan = math.nan
        last_busy = [0.0] * len(instances)
        while True:
            self.pending = env.timeout(self.interval)
            yield self.pending
            now = env.now
            # links are created on first use: the link rows of a sample are those of its time
            links = self.topology.links
            for inst in instances:
                b = inst.blocks
                batch = inst.batch.n if hasattr(inst, "batch") else len(inst.running)
                busy = (inst.busy_s - last_busy[inst.gid]) / self.interval
                last_busy[inst.gid] = inst.busy_s
                tiers = [
                    x
                    for t in stores[inst.gid]
                    for x in (
                        (nan, nan, nan) if t is None else (len(t), t.hit_tokens, t.load_bytes)
                    )
                ]
                self.samples.append(
                    (now, inst.gid, inst.pool.name, inst.role, batch, inst.queue_len, b.used,
                     b.reserved, b.held, b.capacity, *tiers, min(busy, 1.0))
                )  # fmt: skip
            for link in links:
                self.link_samples.append(
                    (now, link.name, link.bytes_in_flight, link.active_transfers, link.bandwidth,
                     link.utilisation)
                )  # fmt: skip
            self.points += 1
            if self.points >= self.max_points:
                self._halve()
            if env.peek() == math.inf:  # nothing else will happen
                self.pending = None
                return

    def tier_names(self) -> list[str]:
        """The prefix cache's tiers, in cascade order (one time-series column each)."""
        names: list[str] = []
        for inst in self.topology.instances:
            for store in getattr(getattr(inst, "prefix_cache", None), "stores", ()):
                if store.tier not in names:
                    names.append(store.tier)
        return names

    def _tier_stores(self) -> list[list]:
        """Per instance (by gid), the store of each of :meth:`tier_names` it sees, or None."""
        names = self.tier_names()
        out = []
        for inst in self.topology.instances:
            mine = {s.tier: s for s in getattr(getattr(inst, "prefix_cache", None), "stores", ())}
            out.append([mine.get(n) for n in names])
        return out

    def _halve(self) -> None:
        """Double the interval and keep the samples on its multiples (the 2nd, 4th, ... of
        those held): the series stays uniform. Each kept instance row's busy share becomes the
        mean of its own and the dropped row's before it, both of the old interval."""
        old = self.interval
        self.interval = 2 * old
        kept = []
        by_time: dict[float, list[tuple]] = {}
        for row in self.samples:
            by_time.setdefault(row[0], []).append(row)
        times = sorted(by_time)
        for i in range(1, len(times), 2):
            dropped = {row[1]: row[-1] for row in by_time[times[i - 1]]}
            for row in by_time[times[i]]:
                merged = (row[-1] + dropped.get(row[1], 0.0)) / 2
                kept.append((*row[:-1], merged))
        keep_times = set(times[1::2])
        self.samples = kept
        self.link_samples = [row for row in self.link_samples if row[0] in keep_times]
        self.points = len(keep_times)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(instance rows with each instance's name, link rows), each with the interval the
        series was sampled at (the same for every row: a uniform series)."""
        names = {i.gid: i.name for i in self.topology.instances}
        tiers = [
            f"cache_{n}_{what}"
            for n in self.tier_names()
            for what in ("blocks", "hit_tokens", "load_bytes")
        ]
        ts = pd.DataFrame(self.samples, columns=[*INSTANCE_COLUMNS[:-1], *tiers, "busy"])
        ts.insert(2, "instance_name", ts["instance"].map(names))
        ts["sample_interval_s"] = float(self.interval)
        links = pd.DataFrame(self.link_samples, columns=LINK_COLUMNS)
        links["sample_interval_s"] = float(self.interval)
        return ts, links
