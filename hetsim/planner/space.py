"""The planner's candidates: every deployment the scenario's ``search:`` section allows.

A candidate is the base scenario with its pools, KV formats and lifecycle replaced. KV format
changes bring their conversions with them: a conversion the base scenario declares is kept
where it put it, one that a new format pairing needs is declared where the portability check
would place it by default (a cast before the wire on the producer, after it on the consumer),
so every candidate is a scenario ``hetsim check`` accepts — or is reported invalid with the
check's own message.

Faults follow the deployment: a candidate is simulated under the base scenario's faults whose
targets it has. One that names an instance it lacks (``decode[3]`` in a 2-decode candidate,
``decode[1]`` in a colocated baseline) or a hop it does not use is left out for that
candidate, and the candidate lists it in :attr:`Candidate.skipped_faults` for the plan to
report: a fault is never dropped silently, and never moved to another instance by guesswork.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from hetsim.checks import EXAMPLE_TOKENS, drop_absent_faults, pool_pairs, scenario_from_dict
from hetsim.errors import InputError
from hetsim.kv.portability import portability
from hetsim.kv.state import KVState
from hetsim.spec.precision import PRECISION_SHORTHANDS, named_fp8_scaling
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import AS_WRITTEN, PoolSpec, RoleSearch, ScenarioSpec, SearchSpec

__all__ = ["Candidate", "RoleChoice", "enumerate_candidates"]

Kind = Literal["disaggregated", "colocated"]


@dataclass(frozen=True)
class RoleChoice:
    """One role's deployment: accelerator, instance count, parallelism, formats, batching."""

    accelerator: str
    instances: int
    tp: int
    ep: int
    weights: str
    activations: str
    kv: str
    chunk_size: int | None
    max_num_seqs: int
    #: how fp8 weights are scaled where the policy or the scenario's pool says (else block)
    fp8_scales: str | None = None

    @property
    def devices(self) -> int:
        return self.instances * self.tp

    @property
    def precision(self) -> str:
        """The shorthand of the weights/activations pair where there is one (w8a8, fp8...)."""
        for name, formats in PRECISION_SHORTHANDS.items():
            # fp16/fp32 also name a KV format: the label is about weights and activations
            if (formats["weights"], formats["activations"]) == (self.weights, self.activations):
                return name + self._scaled
        return f"w:{self.weights}{self._scaled}/a:{self.activations}"

    @property
    def _scaled(self) -> str:
        scaling = named_fp8_scaling(self.fp8_scales)
        return f"/{scaling}" if scaling else ""

    def label(self) -> str:
        ep = f" ep{self.ep}" if self.ep > 1 else ""
        return f"{self.instances}x {self.accelerator} tp{self.tp}{ep} {self.precision} kv {self.kv}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "accelerator": self.accelerator,
            "instances": self.instances,
            "tp": self.tp,
            "ep": self.ep,
            "precision": self.precision,
            "weights": self.weights,
            "activations": self.activations,
            "kv": self.kv,
            "fp8_scales": self.fp8_scales,
            "chunk_size": self.chunk_size,
            "max_num_seqs": self.max_num_seqs,
            "devices": self.devices,
        }


@dataclass
class Candidate:
    """One deployment to judge; ``scenario`` is None when it does not validate (see ``error``)."""

    id: int
    kind: Kind
    roles: dict[str, RoleChoice]  # prefill/decode, or serve for a colocated one
    transfer_format: str | None
    protocol: str | None
    data: dict[str, Any] = field(repr=False)
    scenario: Scenario | None = field(default=None, repr=False)
    error: str | None = None
    #: the base scenario's faults this deployment has no target for, e.g. "instance_crash
    #: decode[1]": simulated without them
    skipped_faults: tuple[str, ...] = ()
    #: the scenario's own deployment (its ``pools:`` as written, with its KV formats and
    #: lifecycle): always simulated and always reported, whatever the search space holds
    own: bool = False
    #: the own deployment, added because the search space does not hold it
    added: bool = False

    @property
    def deployment(self) -> tuple:
        """Everything that makes this deployment but its interconnect (see
        :func:`deployment_key`)."""
        return deployment_key(self.kind, self.roles, self.transfer_format, self.protocol)

    @property
    def devices(self) -> int:
        return sum(r.devices for r in self.roles.values())

    @property
    def devices_by_accelerator(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.roles.values():
            out[r.accelerator] = out.get(r.accelerator, 0) + r.devices
        return out

    @property
    def pd_ratio(self) -> str | None:
        if self.kind != "disaggregated":
            return None
        return f"{self.roles['prefill'].instances}:{self.roles['decode'].instances}"

    @property
    def interconnect(self) -> str | None:
        """The name of the interconnect alternative this candidate uses; None when colocated
        or when the search has no ``interconnect`` alternatives (the scenario's own paths)."""
        if self.kind != "disaggregated":
            return None
        return self.data.get("interconnect", {}).get("name")

    @property
    def label(self) -> str:
        if self.kind == "colocated":
            return f"colocated {self.roles['serve'].label()}"
        p, d = self.roles["prefill"], self.roles["decode"]
        wire = f" wire {self.transfer_format}" if self.transfer_format else ""
        net = f" | net {self.interconnect}" if self.interconnect else ""
        return f"P {p.label()} | D {d.label()} |{wire} {self.protocol}{net}"


Policy = tuple[str, str, str, str | None]  # weights, activations, kv, fp8_scales


def _scenario_fp8_scales(spec: ScenarioSpec) -> str | None:
    """How the scenario's pools say fp8 weights are scaled (the checkpoint's fact, which every
    role serving fp8 weights shares), or None where none says."""
    return next((p.precision.fp8_scales for p in spec.pools if p.precision.fp8_scales), None)


def _policies(search: RoleSearch, pool: PoolSpec, fp8_scales: str | None) -> list[Policy]:
    """(weights, activations, kv, fp8 scaling) of the precision policies crossed with KV
    formats. fp8 weights keep the policy's scaling, else the scenario's ``fp8_scales``."""
    policies = search.precision or [pool.precision]
    out: list[Policy] = []
    for policy in policies:
        kv_set = "kv" in policy.model_fields_set and policy is not pool.precision
        kvs = search.kv or [policy.kv if kv_set else pool.precision.kv]
        fp8 = policy.weights == "fp8_e4m3"
        scales = (policy.fp8_scales or fp8_scales) if fp8 else None
        for kv in kvs:
            found = (policy.weights, policy.activations, kv, scales)
            if found not in out:
                out.append(found)
    return out


def _role_choices(
    search: RoleSearch,
    pool: PoolSpec,
    accelerators: list[str] | None = None,
    fp8_scales: str | None = None,
) -> list[RoleChoice]:
    moe_ep = pool.ep > 1
    out = []
    for acc, n, tp, (w, a, kv, scales), chunk, seqs in itertools.product(
        accelerators or search.accelerators or [pool.accelerator],
        search.instances or [pool.instances],
        search.tp or [pool.tp],
        _policies(search, pool, fp8_scales or pool.precision.fp8_scales),
        search.chunk_size or [pool.batching.chunk_size],
        search.max_num_seqs or [pool.batching.max_num_seqs],
    ):
        ep = tp if moe_ep else 1
        out.append(RoleChoice(acc, n, tp, ep, w, a, kv, chunk, seqs, fp8_scales=scales))
    return out


def _pool_dict(base: dict[str, Any], choice: RoleChoice, **extra: Any) -> dict[str, Any]:
    pool = copy.deepcopy(base)
    pool.update(
        accelerator=choice.accelerator,
        instances=choice.instances,
        tp=choice.tp,
        ep=choice.ep,
        precision={"weights": choice.weights, "activations": choice.activations, "kv": choice.kv},
        **extra,
    )
    if choice.fp8_scales is not None:
        pool["precision"]["fp8_scales"] = choice.fp8_scales
    batching = pool.setdefault("batching", {})
    batching["max_num_seqs"] = choice.max_num_seqs
    if choice.chunk_size is None:
        batching.pop("chunk_size", None)
    else:
        batching["chunk_size"] = choice.chunk_size
    return pool


def _declare_conversions(data: dict[str, Any], base: Scenario) -> None:
    """Declare the conversions a candidate's format pairing needs (see the module docstring).

    This runs on the candidate's data before :func:`scenario_from_dict`, whose checks reject an
    undeclared conversion; the pairs come from the pure spec validation of the same data."""
    try:
        candidate = ScenarioSpec.model_validate(data)
    except ValidationError:
        return  # scenario_from_dict reports it with the field path
    kept: list[dict[str, Any]] = []
    for pair in pool_pairs(candidate):
        verdict = portability(
            KVState.for_pool(base.model, pair.producer, EXAMPLE_TOKENS),
            KVState.for_pool(base.model, pair.consumer, EXAMPLE_TOKENS),
            candidate.kv.transfer_format,
            base.spec.kv.conversions,
            staging=pair.staging,
        )
        for i in sorted(verdict.used_specs):
            entry = base.spec.kv.conversions[i].model_dump(by_alias=True, exclude_none=True)
            if entry not in kept:
                kept.append(entry)
        for c in verdict.undeclared:
            entry = {"kind": c.kind, "from": c.from_value, "to": c.to_value, "where": c.where}
            if entry not in kept:
                kept.append(entry)
    data["kv"]["conversions"] = kept


def _build(candidate: Candidate, base: Scenario) -> Candidate:
    try:
        if candidate.kind == "disaggregated":
            _declare_conversions(candidate.data, base)
        candidate.skipped_faults = drop_absent_faults(candidate.data)
        candidate.scenario = scenario_from_dict(candidate.data, path=base.path)
    except InputError as exc:
        candidate.error = exc.render()
    except (KeyError, ValueError) as exc:  # a pairing the portability check cannot even state
        candidate.error = str(exc)
    return candidate


#: a candidate before it is numbered and built: kind, roles, wire format, protocol, its data
_Draft = tuple[Kind, dict[str, RoleChoice], str | None, str | None, dict[str, Any]]


def deployment_key(
    kind: Kind, roles: dict[str, RoleChoice], wire: str | None, protocol: str | None
) -> tuple:
    """Everything that makes a deployment but its interconnect, hashable: candidates that
    differ only in their links share it."""
    return (kind, tuple(sorted(roles.items())), wire, protocol)


def enumerate_candidates(base: Scenario, search: SearchSpec | None = None) -> list[Candidate]:
    """Every candidate of the search space, in a fixed order (ids are stable for a scenario).

    A disaggregated base yields prefill × decode × transfer format × protocol × interconnect
    (the scenario's own, then each of ``search.interconnect``) combinations and,
    with ``search.colocated``, colocated baselines on every accelerator of either role, sized to
    the device totals the disaggregated candidates use. A colocated base varies its one pool
    with the ``decode`` lists.
    """
    search = search or base.spec.search or SearchSpec()
    spec = base.spec
    data = spec.model_dump(by_alias=True, exclude_none=True)
    if spec.disaggregated:
        drafts = _disaggregated(base, data, search)
    else:
        drafts = _colocated_variants(base, data, search)
    space = list(drafts)
    drafts, own = _with_own_deployment(base, data, space, search)
    return [
        _build(Candidate(i, *draft, own=i == own, added=i >= len(space)), base)
        for i, draft in enumerate(drafts)
    ]


def _with_own_deployment(
    base: Scenario, data: dict[str, Any], drafts: list[_Draft], search: SearchSpec
) -> tuple[list[_Draft], int]:
    """The drafts with the scenario's own deployment among them, and its index. The space
    holds it when one of its drafts has the same roles, wire format, protocol and
    interconnect; otherwise it is appended, as written (a search whose lists leave out the
    scenario's own accelerator or format still judges what the user runs today)."""
    spec = base.spec
    if spec.disaggregated:
        (pair,) = pool_pairs(spec)
        roles = {"prefill": _own_choice(pair.producer), "decode": _own_choice(pair.consumer)}
        own: tuple = ("disaggregated", roles, spec.kv.transfer_format, spec.lifecycle.protocol)
    else:
        own = ("colocated", {"serve": _own_choice(spec.pools[0])}, None, None)
    key = deployment_key(*own)
    own_data = copy.deepcopy(data)
    own_data.pop("search", None)
    if spec.disaggregated:  # its links as the space names them ('as written' beside others)
        own_data["interconnect"] = _interconnects(base, data, search)[0]
    for i, draft in enumerate(drafts):
        same_links = draft[4].get("interconnect") == own_data.get("interconnect")
        if deployment_key(*draft[:4]) == key and same_links:
            return drafts, i
    return [*drafts, (*own, own_data)], len(drafts)


def _own_choice(pool: PoolSpec) -> RoleChoice:
    """A pool's deployment as the scenario writes it (a search of no values keeps them all)."""
    (choice,) = _role_choices(RoleSearch(), pool)
    return choice


def _colocated_variants(
    base: Scenario, data: dict[str, Any], search: SearchSpec
) -> Iterator[_Draft]:
    # (interconnect alternatives on a colocated scenario were refused with it: spec.resolve)
    pool = base.spec.pools[0]
    base_pool = data["pools"][0]
    for choice in _role_choices(search.decode, pool, fp8_scales=_scenario_fp8_scales(base.spec)):
        cand = copy.deepcopy(data)
        cand["pools"] = [_pool_dict(base_pool, choice)]
        cand.pop("search", None)
        yield "colocated", {"serve": choice}, None, None, cand


def _disaggregated(base: Scenario, data: dict[str, Any], search: SearchSpec) -> Iterator[_Draft]:
    spec = base.spec
    if len([p for p in spec.pools if p.role != "colocated"]) > 2:
        raise InputError(
            "the planner searches one prefill and one decode pool; this scenario has more",
            field="pools",
            allowed="one pool per role when `search:` is given",
        )
    (pair,) = pool_pairs(spec)
    p_pool, d_pool = pair.producer, pair.consumer
    p_base = next(p for p in data["pools"] if p["name"] == p_pool.name)
    d_base = next(p for p in data["pools"] if p["name"] == d_pool.name)
    scales = _scenario_fp8_scales(spec)
    prefills = _role_choices(search.prefill, p_pool, fp8_scales=scales)
    decodes = _role_choices(search.decode, d_pool, fp8_scales=scales)
    wires = search.transfer_format or [spec.kv.transfer_format]
    protocols = search.lifecycle or [spec.lifecycle.protocol]
    nets = _interconnects(base, data, search)
    for p, d, wire, proto, net in itertools.product(prefills, decodes, wires, protocols, nets):
        cand = copy.deepcopy(data)
        cand["interconnect"] = copy.deepcopy(net)
        cand["pools"] = [_pool_dict(p_base, p), _pool_dict(d_base, d)]
        if wire is None:
            cand["kv"].pop("transfer_format", None)
        else:
            cand["kv"]["transfer_format"] = wire
        cand["lifecycle"]["protocol"] = proto
        cand.pop("search", None)
        yield "disaggregated", {"prefill": p, "decode": d}, wire, proto, cand
    if search.colocated:
        totals = sorted({p.devices + d.devices for p, d in itertools.product(prefills, decodes)})
        yield from _colocated_baselines(base, data, search, d_base, totals)


def _interconnects(
    base: Scenario, data: dict[str, Any], search: SearchSpec
) -> list[dict[str, Any]]:
    """The interconnects to try, as scenario data: the scenario's own first (named
    'as written' unless it has a name), then each of ``search.interconnect``."""
    own = copy.deepcopy(data.get("interconnect", {}))
    if not search.interconnect:
        return [own]
    # (the alternatives were checked with the scenario: hetsim.spec.resolve)
    own["name"] = own.get("name") or AS_WRITTEN
    alternatives = [x.model_dump(by_alias=True, exclude_none=True) for x in search.interconnect]
    return [own, *alternatives]


def _colocated_baselines(
    base: Scenario,
    data: dict[str, Any],
    search: SearchSpec,
    d_base: dict[str, Any],
    totals: list[int],
) -> Iterator[_Draft]:
    """Colocated deployments on every accelerator of either role, one per device total."""
    (pair,) = pool_pairs(base.spec)
    p_pool, d_pool = pair.producer, pair.consumer
    accelerators = list(
        dict.fromkeys(
            (search.prefill.accelerators or [p_pool.accelerator])
            + (search.decode.accelerators or [d_pool.accelerator])
        )
    )
    serve_base = {k: v for k, v in d_base.items() if k not in ("kv_page_tokens",)}
    # a colocated pool takes arrivals as the prefill pool does (its router) and cannot swap
    serve_base.update(name="serve", role="colocated", router=p_pool.router)
    serve_base.pop("preemption", None)
    # the decode pool's batching is for decode steps alone; a colocated instance also
    # runs prompts, so it keeps the prefill pool's token budget
    serve_base["batching"] = dict(
        d_base.get("batching", {}),
        max_batched_tokens=p_pool.batching.max_batched_tokens,
    )
    one_each = search.decode.model_copy(update={"instances": [1]})
    scales = _scenario_fp8_scales(base.spec)
    for choice in _role_choices(one_each, d_pool, accelerators, fp8_scales=scales):
        for total in totals:
            if total % choice.tp:
                continue
            # a colocated instance chunks prompts like the prefill pool does
            sized = replace(
                choice,
                instances=total // choice.tp,
                chunk_size=p_pool.batching.chunk_size,
            )
            pool = _pool_dict(serve_base, sized)
            yield "colocated", {"serve": sized}, None, None, _colocated_data(data, pool)


def _colocated_data(data: dict[str, Any], pool: dict[str, Any]) -> dict[str, Any]:
    cand = copy.deepcopy(data)
    cand["pools"] = [pool]
    cand.pop("search", None)
    # one colocated pool: the prefill router (its policy and weights) takes the arrivals;
    # length rules name the disaggregated pools, which are gone
    prefill_routing = (cand.pop("routing", None) or {}).get("prefill")
    if prefill_routing:
        cand["routing"] = {"colocated": {k: v for k, v in prefill_routing.items() if k != "rules"}}
    # nothing crosses a boundary: no paths between pools, no wire format, no conversions
    cand.setdefault("interconnect", {})["paths"] = []
    cand["kv"].pop("transfer_format", None)
    cand["kv"]["conversions"] = []
    cand["kv"]["layerwise_transfer"] = False
    return cand
