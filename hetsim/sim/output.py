"""What one run of the simulator leaves behind: request rows, sampled time series, run facts.

The facts are raw simulator counts and integrals (seconds, blocks, block-seconds, bytes); the
run summary (:mod:`hetsim.metrics`) is built from them and from the request rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["InstanceFacts", "LinkFacts", "RunFacts", "SimOutput", "TierFacts"]


@dataclass(frozen=True)
class InstanceFacts:
    """One instance over the run: time (and, with measured power, energy) busy stepping inside
    the measured window, steps taken, its KV block peak and capacity, and the block-seconds
    spent used, reserved for incoming KV and held for readers."""

    name: str
    pool: str
    role: str
    window_busy_s: float
    steps: int
    peak_blocks: int
    capacity_blocks: int
    used_block_s: float
    reserved_block_s: float
    held_block_s: float
    # busy energy (J, all its devices) inside the measured window, where the step model has
    # measured power (its label in ``power_source``); None: the summary charges tdp while busy
    window_busy_energy_j: float | None = None
    power_source: str | None = None


@dataclass(frozen=True)
class LinkFacts:
    """One link over the run: bytes it carried and its mean utilisation since the start."""

    bytes_carried: float
    utilisation: float


@dataclass(frozen=True)
class TierFacts:
    """One store of a KV residency tier (one tier of one owner) over the run: its capacity and
    block size, peak / time-mean / final blocks held, prompt tokens it served and the KV bytes
    they loaded, blocks and bytes written into it, blocks it evicted."""

    tier: str
    owner: str
    capacity_blocks: int
    block_tokens: int
    block_bytes: float
    peak_blocks: int
    mean_blocks: float
    end_blocks: int
    hit_tokens: int
    load_bytes: float
    written_blocks: int
    write_bytes: float
    evictions: int


@dataclass(frozen=True)
class RunFacts:
    """Counts and integrals of one run. ``events`` counts the events simpy processed (every
    timeout, process start and signal, as the bench's bare loop counts its own);
    ``occupancy_area`` is the integral of requests in the system over time."""

    wall_s: float
    events: int
    steps: int
    arrivals: int
    end_time_s: float
    first_arrival_s: float
    last_departure_s: float
    window_s: float  # the measured window: first measured arrival to the last departure
    preemptions: int
    occupancy_area: float
    kv_blocks_leaked: int
    faults: dict[str, int]
    lifecycle_transitions: dict[str, int]
    instances: tuple[InstanceFacts, ...]
    links: dict[str, LinkFacts]
    kv_tiers: tuple[TierFacts, ...] = ()  # the prefix cache's tier stores, in creation order


@dataclass(frozen=True)
class SimOutput:
    """What a run leaves: request rows, sampled time series (instances, links), and run facts."""

    requests: pd.DataFrame
    timeseries: pd.DataFrame
    links: pd.DataFrame
    facts: RunFacts
    lifecycle: pd.DataFrame  # one row per KV state transition
