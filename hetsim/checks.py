"""Cross-layer checks of a resolved scenario, and the :class:`HandoffPlan` of each pool pair.

:mod:`hetsim.spec` resolves a scenario on its own (model, profiles, schema); what needs the KV
layer too lives here, above :mod:`hetsim.kv` and below :mod:`hetsim.sim`:

* **the pairing** — every prefill pool hands KV to every decode pool over the path declared for
  that pair (:func:`pool_pairs`);
* **the handoff plan** of a pair — the portability verdict, the bytes one request puts on the
  network and into a store tier, its conversions and their seconds, and every hop's effective
  bandwidth with the origin of its efficiency factor. ``hetsim check`` prints it and the simulator
  moves and charges exactly it: one owner, so the two cannot disagree;
* **the checks** — paths, memory fit and portability, all problems reported in one
  :class:`~hetsim.errors.InputError`.

:func:`load_scenario` and :func:`scenario_from_dict` are the spec's loaders followed by these
checks: what the public API loads is portable, fits in memory and has a path for every pair.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hetsim.errors import InputError
from hetsim.kv.portability import SIDES, Conversion, Verdict, portability
from hetsim.kv.state import KVState, model_config_hash
from hetsim.spec import resolve
from hetsim.spec.hardware import AcceleratorProfile, load_profile
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import PathSpec, PoolSpec, ScenarioSpec
from hetsim.units import format_bytes

__all__ = [
    "EfficiencySource",
    "HopPlan",
    "HandoffPlan",
    "PoolPair",
    "pool_pairs",
    "handoff_plans",
    "handoff_plan",
    "check_scenario",
    "load_scenario",
    "scenario_from_dict",
    "STAGING_PROFILE",
    "EXAMPLE_TOKENS",
]

#: the host a ``staging`` conversion runs on (a hardware profile) — an assumption
STAGING_PROFILE = "cpu-host"
#: the prompt length ``hetsim check`` prices conversions for
EXAMPLE_TOKENS = 8192

#: the pool field holding each conversion kind's value, for messages
_POOL_FIELD = {"dtype": "precision.kv", "layout": "kv_layout", "page_size": "kv_page_tokens",
               "tp": "tp"}  # fmt: skip


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
    staging = pair.path is not None and any(h.kind == "host_staging" for h in pair.path.hops)
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


# ---- the checks -----------------------------------------------------------------------------


def check_scenario(scenario: Scenario) -> None:
    """Every pair has a path and every path joins a prefill to a decode pool, every pool fits
    in memory, and every pair can use the KV it is handed. Raises one
    :class:`~hetsim.errors.InputError` listing all problems found."""
    problems = [
        *_path_problems(scenario.spec),
        *_memory_problems(scenario),
        *_portability_problems(scenario),
    ]
    if len(problems) == 1:
        raise problems[0].with_context(file=scenario.path)
    if problems:
        listed = "\n".join(f"  {k}. {p.render()}" for k, p in enumerate(problems, 1))
        raise InputError(f"{len(problems)} problems:\n{listed}", file=scenario.path)


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override (``dotted.path=value``), validate, resolve and check a scenario file."""
    scenario = resolve.load_scenario(path, overrides)
    check_scenario(scenario)
    return scenario


def scenario_from_dict(
    data: dict[str, Any], path: Path | None = None, overrides: list[str] | None = None
) -> Scenario:
    """:func:`hetsim.spec.resolve.scenario_from_dict`, then :func:`check_scenario`."""
    scenario = resolve.scenario_from_dict(data, path=path, overrides=overrides)
    check_scenario(scenario)
    return scenario


def _path_problems(spec: ScenarioSpec) -> list[InputError]:
    """At most one problem per declared path (a reversed path is one mistake, not two), and a
    missing pair only once every declared path is sound: a misspelt path is the pair's path."""
    out: list[InputError] = []
    seen: set[tuple[str, str]] = set()
    for j, path in enumerate(spec.interconnect.paths):
        problem = _endpoint_problem(spec, j, path)
        if problem is None and (path.from_, path.to) in seen:
            problem = InputError("two paths for the same pool pair",
                                 field=f"interconnect.paths[{j}]",
                                 value=f"{path.from_}->{path.to}")  # fmt: skip
        if problem is not None:
            out.append(problem)
        seen.add((path.from_, path.to))
    if out:
        return out
    for pair in pool_pairs(spec):
        p, d = pair.producer.name, pair.consumer.name
        if pair.path is None:
            out.append(
                InputError(
                    f"prefill pool {p!r} hands KV to decode pool {d!r} but no path connects "
                    f"them; add one under interconnect.paths (from: {p}, to: {d}, hops: [...])",
                    field="interconnect.paths",
                )
            )
    return out


def _endpoint_problem(spec: ScenarioSpec, j: int, path: PathSpec) -> InputError | None:
    roles = {p.name: p.role for p in spec.pools}
    for end, name, role in (("from", path.from_, "prefill"), ("to", path.to, "decode")):
        where = f"interconnect.paths[{j}].{end}"
        if name not in roles:
            return InputError(
                "no pool of that name", field=where, value=name, allowed=", ".join(roles)
            )
        if roles[name] != role:
            return InputError(
                f"KV flows from prefill to decode pools; pool {name!r} is {roles[name]}",
                field=where,
                value=name,
                allowed=", ".join(n for n, r in roles.items() if r == role),
            )
    return None


def _memory_problems(scenario: Scenario) -> list[InputError]:
    out = []
    for i, pool in enumerate(scenario.spec.pools):
        fp = scenario.footprints[pool.name]
        if fp.fits:
            continue
        name = scenario.profiles[pool.name].name
        out.append(
            InputError(
                f"{scenario.model.name} does not fit: {format_bytes(fp.weights_per_device)} of "
                f"{pool.precision.weights} weights + {format_bytes(fp.activations_per_device)} "
                f"activations (estimate) + {format_bytes(fp.runtime_reserve_per_device)} "
                f"runtime reserve per device, but {name} offers "
                f"{format_bytes(fp.usable_per_device)} ({pool.memory_utilization:.0%} of "
                f"{format_bytes(fp.capacity_per_device)}); left for KV: "
                f"{format_bytes(fp.kv_room_per_device)}. Raise tp/ep, use a smaller weight "
                "format or max_batched_tokens, or a larger accelerator",
                field=f"pools[{i}]",
            )
        )
    return out


def _portability_problems(scenario: Scenario) -> list[InputError]:
    """Every pair can use the KV it is handed: the same model and geometry, and every
    dtype/layout difference between producer, transfer and consumer declared in
    ``kv.conversions`` on a side where it can run. Never a silent raw byte copy."""
    try:
        plans = handoff_plans(scenario)
    except InputError as exc:  # a declared conversion on a side where it cannot run
        return [exc]
    out = []
    for plan in plans.values():
        verdict = plan.verdict
        if verdict.kind == "incompatible":
            out.append(
                InputError(
                    f"pool {plan.consumer_pool!r} cannot use the KV of pool "
                    f"{plan.producer_pool!r}: " + "; ".join(m.text() for m in verdict.mismatches),
                    field="model",
                )
            )
        elif verdict.undeclared:
            out.append(_undeclared_error(plan, declared=len(scenario.spec.kv.conversions)))
    return out


def _undeclared_error(plan: HandoffPlan, declared: int) -> InputError:
    """The error for a pairing whose dtype/layout differences have no declared conversion: it
    names the fields and both values, and prints the kv.conversions entries that fix it."""
    undeclared = plan.verdict.undeclared
    i, j = plan.pool_index
    field_of = {"producer": f"pools[{i}]", "consumer": f"pools[{j}]"}
    lines = []
    for c in undeclared:
        ends = []
        for end, value in zip(c.between, (c.from_value, c.to_value), strict=True):
            if end == "transfer":
                ends.append(f"kv.transfer_format is {value}")
            else:
                ends.append(f"{field_of[end]}.{_POOL_FIELD[c.kind]} is {value}")
        lines.append(f"  {c.label()}: {' but '.join(ends)}")
    fix = [f"    - {c.as_yaml()}" for c in undeclared]
    head = "kv:\n  conversions:\n" if declared == 0 else "add to kv.conversions:\n"
    message = (
        f"KV from pool {plan.producer_pool!r} reaches pool {plan.consumer_pool!r} in a different "
        "representation and no conversion is declared; hetsim never copies KV bytes raw between "
        "representations (a silent corruption):\n"
        + "\n".join(lines)
        + "\nDeclare where each conversion runs, e.g.\n"
        + head
        + "\n".join(fix)
        + "\n("
        + "; ".join(_fix_hints(undeclared, plan.staging))
        + ")"
    )
    return InputError(message, field="kv.conversions")


def _fix_hints(undeclared: tuple[Conversion, ...], staging: bool) -> list[str]:
    hints = []
    or_staging = " or in staging" if staging else ""
    for c in undeclared:
        if c.kind == "dtype" and c.between == ("producer", "transfer"):
            hints.append(f"{c.label()} may run on the producer{or_staging}")
        elif c.kind == "dtype":
            hints.append(f"{c.label()} may run on the consumer{or_staging}")
            if c.between == ("producer", "consumer"):
                hints.append(
                    f"or cast before sending, so the link carries {c.to_value}: set "
                    f"kv.transfer_format: {c.to_value} and declare {c.as_yaml('producer')}"
                )
        else:
            sides = "the producer, the consumer or in staging" if staging else "either side"
            hints.append(f"{c.label()} may run on {sides}")
    return hints
