"""The pairing of prefill and decode pools and the :class:`HandoffPlan` of each pair.

* **the pairing** — every prefill pool hands KV to every decode pool over the path declared for
  that pair (:func:`pool_pairs`);
* **the handoff plan** of a pair — the portability verdict, the bytes one request puts on the
  network and into a store tier, its conversions and their seconds, and every hop's effective
  bandwidth with the origin of its efficiency factor. ``hetsim check`` prints it and the simulator
  moves and charges exactly it: one owner, so the two cannot disagree.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from hetsim.kv.portability import SIDES, Conversion, Verdict, portability
from hetsim.kv.state import KVState, model_config_hash
from hetsim.spec.hardware import AcceleratorProfile, load_profile
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import PathSpec, PoolSpec, ScenarioSpec

__all__ = [
    "EfficiencySource",
    "HopPlan",
    "HandoffPlan",
    "PoolPair",
    "pool_pairs",
    "handoff_plans",
    "handoff_plan",
    "STAGING_PROFILE",
    "EXAMPLE_TOKENS",
]

#: the host a ``staging`` conversion runs on (a hardware profile) — an assumption
STAGING_PROFILE = "cpu-host"
#: the prompt length ``hetsim check`` prices conversions for
EXAMPLE_TOKENS = 8192


# ---- the pairing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolPair:
    """A prefill pool that hands KV to a decode pool, with the path declared for them (None
    when the scenario lacks one: :func:`check_scenario` rejects that)."""

    producer_index: int
    producer: PoolSpec
    consumer_index: int
    consumer: PoolSpec
    path: PathSpec | None

    @property
    def staging(self) -> bool:
        """Whether the path copies through host memory, where staging conversions can run."""
        return self.path is not None and any(h.kind == "host_staging" for h in self.path.hops)


def pool_pairs(spec: ScenarioSpec) -> tuple[PoolPair, ...]:
    """Every prefill → decode pool pair, in pool order: each prefill pool may hand KV to each
    decode pool (the decode router picks among all of them)."""
    paths = {(x.from_, x.to): x for x in spec.interconnect.paths}
    return tuple(
        PoolPair(i, p, j, d, paths.get((p.name, d.name)))
        for i, p in enumerate(spec.pools)
        if p.role == "prefill"
        for j, d in enumerate(spec.pools)
        if d.role == "decode"
    )


# ---- the plan -------------------------------------------------------------------------------


class EfficiencySource(StrEnum):
    """Where a hop's efficiency factor comes from."""

    #: declared on the hop in the scenario (``interconnect.paths[i].hops[j].efficiency``)
    HOP = "hop"
    #: the source pool profile's ``efficiency.network``: an assumption, applied to every hop
    SOURCE_PROFILE = "source profile efficiency.network"


@dataclass(frozen=True)
class HopPlan:
    """One hop of a pair's path as the simulator uses it."""

    name: str
    kind: str
    #: nominal bandwidth from the scenario, bytes/s per direction
    bandwidth: float
    efficiency: float
    efficiency_source: EfficiencySource
    #: seconds added once per transfer
    latency: float
    shared_by: str

    @property
    def effective_bandwidth(self) -> float:
        return self.bandwidth * self.efficiency

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "bandwidth": self.bandwidth,
            "efficiency": self.efficiency,
            "efficiency_source": self.efficiency_source.value,
            "effective_bandwidth": self.effective_bandwidth,
            "latency": self.latency,
            "shared_by": self.shared_by,
        }


def _hops(path: PathSpec | None, source: AcceleratorProfile) -> tuple[HopPlan, ...]:
    if path is None:
        return ()
    assumed = source.efficiency.network.value
    return tuple(
        HopPlan(
            name=h.name,
            kind=h.kind,
            bandwidth=h.bandwidth,
            efficiency=assumed if h.efficiency is None else h.efficiency,
            efficiency_source=(
                EfficiencySource.SOURCE_PROFILE if h.efficiency is None else EfficiencySource.HOP
            ),
            latency=h.latency,
            shared_by=h.shared_by,
        )
        for h in path.hops
    )


@dataclass(frozen=True)
class HandoffPlan:
    """How one request's KV goes from a prefill pool to a decode pool: the verdict, the bytes,
    the hops and the conversions, with the devices each side's conversions run on. The simulator
    charges ``producer_s`` before sending, ``staging_s`` in the host stage, ``consumer_s`` after
    receiving, and moves ``network_bytes(tokens)`` over :attr:`hops` (or ``store_bytes(tokens)``
    into a store tier)."""

    producer_pool: str
    consumer_pool: str
    producer: KVState
    consumer: KVState
    #: the producer's KV in the transfer format
    wire: KVState
    verdict: Verdict
    #: hardware profile by side ("producer", "consumer", and "staging" when used)
    profiles: Mapping[str, AcceleratorProfile] = field(compare=False, repr=False)
    pool_index: tuple[int, int] = (0, 1)
    #: whether the path has a host_staging hop that staging conversions can run on
    staging: bool = False
    hops: tuple[HopPlan, ...] = ()

    @property
    def wire_format(self) -> str:
        return self.wire.kv_format

    @property
    def copy_bytes_per_token(self) -> float:
        """One copy of the KV in the transfer format."""
        return self.wire.bytes_per_token

    @property
    def network_bytes_per_token(self) -> float:
        """What crosses the network to the decode pool: every decode rank that needs its own
        copy reads one (each MLA decode rank a whole latent; GQA heads replicated past tp =
        kv_heads), so this can exceed :attr:`copy_bytes_per_token`."""
        transfer = self.verdict.transfer
        return transfer.network_bytes_per_token if transfer else self.copy_bytes_per_token

    def network_bytes(self, tokens: float) -> float:
        return tokens * self.network_bytes_per_token

    def store_bytes(self, tokens: float) -> float:
        """Into a store tier: one copy, in the transfer format."""
        return tokens * self.copy_bytes_per_token

    # hetsim.sim.handoff's names for one copy, until it reads store_bytes
    @property
    def wire_bytes_per_token(self) -> float:
        return self.copy_bytes_per_token

    def wire_bytes(self, tokens: float) -> float:
        return self.store_bytes(tokens)

    @property
    def bottleneck_bandwidth(self) -> float:
        return min(h.effective_bandwidth for h in self.hops)

    @property
    def latency(self) -> float:
        return sum(h.latency for h in self.hops)

    def lone_transfer_s(self, tokens: float) -> float:
        """Seconds one transfer takes with the path to itself."""
        return self.network_bytes(tokens) / self.bottleneck_bandwidth + self.latency

    def seconds(self, where: str, tokens: float) -> float:
        if not any(c.bytes_per_token for c in self.verdict.on(where)):
            return 0.0
        return self.verdict.seconds(where, tokens, self.profiles[where])

    def producer_s(self, tokens: float) -> float:
        return self.seconds("producer", tokens)

    def staging_s(self, tokens: float) -> float:
        return self.seconds("staging", tokens)

    def consumer_s(self, tokens: float) -> float:
        return self.seconds("consumer", tokens)

    def seconds_of(self, conversion: Conversion, tokens: float) -> float:
        if not conversion.bytes_per_token:
            return 0.0
        return conversion.cost_s(tokens, self.profiles[conversion.where])

    def as_dict(self, tokens: int = EXAMPLE_TOKENS) -> dict[str, Any]:
        """Plain data for ``hetsim check --json``; seconds for a ``tokens``-token prompt."""
        v, t = self.verdict, self.verdict.transfer
        return {
            "from": self.producer_pool,
            "to": self.consumer_pool,
            "verdict": v.kind,
            "example_tokens": tokens,
            "wire_format": self.wire_format,
            "wire_bytes_per_token": self.copy_bytes_per_token,
            "transfers_per_request": t.transfers_per_request if t else None,
            "bytes_per_transfer_per_token": t.bytes_per_transfer_per_token if t else None,
            "network_bytes_per_token": self.network_bytes_per_token,
            "head_split": t.head_split if t else None,
            "transfer_note": t.note if t else None,
            "hops": [h.as_dict() for h in self.hops],
            "conversions": [self._conversion_dict(c, tokens) for c in v.conversions],
            "seconds": {w: self.seconds(w, tokens) for w in SIDES},
            "mismatches": [
                {"field": m.field, "producer": str(m.producer), "consumer": str(m.consumer)}
                for m in v.mismatches
            ],
            "warnings": list(v.warnings),
            "notes": list(v.notes),
            "producer_state": self.producer.describe(),
            "consumer_state": self.consumer.describe(),
        }

    def _conversion_dict(self, c: Conversion, tokens: int) -> dict[str, Any]:
        return {
            "kind": c.kind,
            "from": c.from_value,
            "to": c.to_value,
            "where": c.where,
            "origin": c.origin,
            "device": self.profiles[c.where].name if c.where in self.profiles else None,
            "bytes_read_per_token": c.bytes_read_per_token,
            "bytes_written_per_token": c.bytes_written_per_token,
            "seconds": self.seconds_of(c, tokens),
            "note": c.note,
        }


def _plan(scenario: Scenario, pair: PoolPair) -> HandoffPlan:
    """The plan of one pair under the scenario's ``kv.transfer_format`` and ``kv.conversions``.
    Staging conversions need a ``host_staging`` hop and run on the :data:`STAGING_PROFILE`
    host. The verdict does not depend on the prompt length; the states it compares describe an
    example request of :data:`EXAMPLE_TOKENS` tokens."""
    p, d, spec = pair.producer, pair.consumer, scenario.spec
    staging = pair.staging
    producer = KVState.for_pool(scenario.model, p, EXAMPLE_TOKENS)
    consumer = KVState.for_pool(scenario.model, d, EXAMPLE_TOKENS)
    verdict = portability(
        producer, consumer, spec.kv.transfer_format, spec.kv.conversions, staging=staging
    )
    profiles: dict[str, AcceleratorProfile] = {
        "producer": scenario.profiles[p.name],
        "consumer": scenario.profiles[d.name],
    }
    if verdict.on("staging"):
        profiles["staging"] = load_profile(
            STAGING_PROFILE, [scenario.base_dir / "hardware_profiles"]
        )
    return HandoffPlan(
        producer_pool=p.name,
        consumer_pool=d.name,
        producer=producer,
        consumer=consumer,
        wire=producer.in_transfer_format(spec.kv.transfer_format),
        verdict=verdict,
        profiles=profiles,
        pool_index=(pair.producer_index, pair.consumer_index),
        staging=staging,
        hops=_hops(pair.path, scenario.profiles[p.name]),
    )


_PLANS: OrderedDict[tuple, Mapping[tuple[str, str], HandoffPlan]] = OrderedDict()
_PLANS_KEPT = 64


def _plans_key(scenario: Scenario) -> tuple:
    """Everything a plan depends on, by value: two scenarios equal in these get the same plans
    whatever their names or object identities."""
    spec = scenario.spec
    return (
        json.dumps([p.model_dump(mode="json") for p in spec.pools], sort_keys=True),
        spec.kv.model_dump_json(),
        spec.interconnect.model_dump_json(),
        scenario.model.name,
        model_config_hash(scenario.model),
        tuple(scenario.profiles[p.name].model_dump_json() for p in spec.pools),
        str(scenario.base_dir),
    )


def handoff_plans(scenario: Scenario) -> Mapping[tuple[str, str], HandoffPlan]:
    """The plan of every pool pair, by (prefill pool, decode pool) name, in pool order; cached
    by value and shared, hence read-only."""
    key = _plans_key(scenario)
    plans = _PLANS.get(key)
    if plans is None:
        plans = MappingProxyType(
            {
                (pair.producer.name, pair.consumer.name): _plan(scenario, pair)
                for pair in pool_pairs(scenario.spec)
            }
        )
        _PLANS[key] = plans
        if len(_PLANS) > _PLANS_KEPT:
            _PLANS.popitem(last=False)
    else:
        _PLANS.move_to_end(key)
    return plans


def handoff_plan(
    scenario: Scenario, producer_pool: str | PoolSpec, consumer_pool: str | PoolSpec
) -> HandoffPlan:
    """The plan of the pair ``producer_pool`` → ``consumer_pool`` (names or specs)."""
    names = tuple(x if isinstance(x, str) else x.name for x in (producer_pool, consumer_pool))
    return handoff_plans(scenario)[names]
