"""From a scenario file to a resolved :class:`Scenario`.

Schema validation (types, units, unknown keys) is pydantic's job in :mod:`.scenario`; this module
adds what needs the outside world: the model's config, the accelerators' profiles and the trace
file. Each check raises an :class:`~hetsim.errors.InputError` that names the field.

What needs the layers above spec (KV portability, memory fit, paths) is checked by
:mod:`hetsim.checks`, whose ``load_scenario`` / ``scenario_from_dict`` are these plus those
checks: use them to load a scenario for use.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, TypeVar

from hetsim.errors import InputError
from hetsim.spec.footprint import MemoryFootprint, footprint
from hetsim.spec.hardware import AcceleratorProfile, load_profile, no_measured_tables
from hetsim.spec.loader import apply_overrides, read_yaml, validate_model
from hetsim.spec.model import ModelConfig, checkpoint_fp8_scales, checkpoint_weights, load_model
from hetsim.spec.scenario import AS_WRITTEN, ROLE_POLICIES, PoolSpec, RoleRouting, ScenarioSpec
from hetsim.spec.workload import (
    TRACE_COLUMNS,
    LengthSpec,
    TraceSpec,
    check_session_context,
    lognormal_params,
)

__all__ = [
    "Scenario",
    "load_scenario",
    "scenario_from_dict",
    "check_trace_header",
    "default_scenario_path",
]


@dataclass
class Scenario:
    """A validated scenario with its model and accelerator profiles resolved."""

    spec: ScenarioSpec
    model: ModelConfig
    profiles: dict[str, AcceleratorProfile]  # by pool name
    path: Path | None = None
    footprints: dict[str, MemoryFootprint] = field(default_factory=dict)  # by pool name

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def name(self) -> str:
        return self.spec.name

    def pool(self, name: str) -> PoolSpec:
        return self.spec.pool(name)

    def price_per_device_hour(self, pool_name: str) -> float:
        profile = self.profiles[pool_name]
        return self.spec.costs.device_price(profile)

    def price_is_assumption(self, pool_name: str) -> bool:
        return self.profiles[pool_name].name not in self.spec.costs.prices

    def cost_per_hour(self) -> float:
        devices = sum(p.total_devices * self.price_per_device_hour(p.name) for p in self.spec.pools)
        return devices + self.spec.interconnect.cost_per_hour(self.spec.pools)

    def resolve_path(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override (``dotted.path=value``), validate and resolve a scenario file (without
    the cross-layer checks of :func:`hetsim.checks.load_scenario`)."""
    path = Path(path)
    data = read_yaml(path, "scenario file")
    return scenario_from_dict(data, path=path, overrides=overrides)


_T = TypeVar("_T")


def scenario_from_dict(
    data: dict[str, Any], path: str | Path | None = None, overrides: list[str] | None = None
) -> Scenario:
    path = Path(path) if path is not None else None  # a notebook passes the file as a str
    data = _expand_shorthands(copy.deepcopy(data))
    try:
        # one at a time: `--set lifecycle=store --set lifecycle.store_tier=x` must reach inside
        for override in overrides or []:
            _expand_shorthands(apply_overrides(data, [override]))
    except InputError as exc:
        raise exc.with_context(file=path) from None
    spec = validate_model(ScenarioSpec, data, path)
    try:
        return _resolve(spec, path)
    except InputError as exc:
        raise exc.with_context(file=path) from None


def _expand_shorthands(data: dict[str, Any]) -> dict[str, Any]:
    """Spell out ``precision: w8a8`` and ``lifecycle: pull`` so ``--set`` can reach inside."""
    from hetsim.spec.precision import PRECISION_SHORTHANDS

    pools = data.get("pools")
    if isinstance(pools, list):
        for pool in pools:
            if isinstance(pool, dict):
                shorthand = pool.get("precision")
                if isinstance(shorthand, str) and shorthand in PRECISION_SHORTHANDS:
                    pool["precision"] = dict(PRECISION_SHORTHANDS[shorthand])
    if isinstance(data.get("lifecycle"), str):
        data["lifecycle"] = {"protocol": data["lifecycle"]}
    return data


def _resolve(spec: ScenarioSpec, path: Path | None) -> Scenario:
    """The spec with its model and profiles, every check run: all problems in one error (those
    of the model and profiles first, which the other checks need)."""
    base = path.parent if path else Path.cwd()
    extra_dirs = [base / "hardware_profiles"]
    problems: list[InputError] = []
    model = _collected(problems, lambda: _load_model(spec, base))
    profiles: dict[str, AcceleratorProfile] = {}
    for i, pool in enumerate(spec.pools):
        profile = _collected(
            problems, lambda i=i, pool=pool: _load_pool_profile(i, pool, base, extra_dirs)
        )
        if profile is not None:
            profiles[pool.name] = profile
    if problems:
        raise InputError.all_of(problems, path)
    assert model is not None
    scenario = Scenario(spec=spec, model=model, profiles=profiles, path=path)
    checks = [
        *(
            lambda i=i, pool=pool: _check_pool(scenario, i, pool)
            for i, pool in enumerate(spec.pools)
        ),
        lambda: _check_checkpoint_format(scenario),
        lambda: _check_routing(spec),
        lambda: _check_kv(spec, profiles),
        lambda: _check_prefix_tiers(scenario),
        lambda: _check_context(spec, model),
        lambda: _check_costs_and_search(spec, extra_dirs),
        lambda: _check_search_interconnect(spec),
    ]
    for check in checks:
        _collected(problems, check)
    have: list[str] | None = []
    if spec.workload.trace is not None:
        trace = spec.workload.trace
        have = _collected(problems, lambda: check_trace_header(trace, base, "workload.trace"))
    if have is not None:  # an unreadable trace has one problem, not one per check of its columns
        columns = have
        if spec.workload.trace is not None:
            _collected(problems, lambda: _check_trace_hashes(spec, columns))
        _collected(problems, lambda: _check_hash_blocks(spec, columns))
    if problems:
        raise InputError.all_of(problems, path)
    return scenario


def _collected(problems: list[InputError], check: Callable[[], _T]) -> _T | None:
    """``check()``, or None with its InputError added to ``problems``."""
    try:
        return check()
    except InputError as exc:
        problems.append(exc)
        return None


def _load_model(spec: ScenarioSpec, base: Path) -> ModelConfig:
    try:
        return load_model(spec.model, base_dir=base)
    except InputError as exc:
        if exc.file:  # the config.json itself is broken: keep its location
            raise
        raise InputError(
            exc.message, field="model", value=spec.model, allowed=exc.allowed
        ) from None


def _load_pool_profile(
    i: int, pool: PoolSpec, base: Path, extra_dirs: list[Path]
) -> AcceleratorProfile:
    try:
        return load_profile(pool.accelerator, extra_dirs, base=base)
    except InputError as exc:
        if exc.file:  # the profile file itself is broken: keep its location
            raise
        raise InputError(
            exc.message,
            field=f"pools[{i}].accelerator",
            value=pool.accelerator,
            allowed=exc.allowed,
        ) from None


def _check_hash_blocks(spec: ScenarioSpec, have: list[str]) -> None:
    """The prefix cache and the hash-aware routers count a hit of k block hashes as k ×
    ``kv.prefix_cache.block_tokens`` tokens: the requests' hashes must be of blocks that size,
    or every hit is silently scaled (16-token blocks over a Mooncake trace's 512 found none)."""
    if not (spec.kv.prefix_cache.enabled or _hash_router(spec) is not None):
        return
    trace = spec.workload.trace
    column = trace.column_map().get("hash_ids") if trace is not None else None
    blocks = spec.workload.hash_blocks(column is not None and column in have)
    cache = spec.kv.prefix_cache.block_tokens
    if blocks is not None and blocks[0] != cache:
        raise InputError(
            f"the requests' prefix hashes are of {blocks[0]}-token blocks ({blocks[1]}), but the "
            f"prefix cache counts {cache} tokens per hash",
            field="kv.prefix_cache.block_tokens",
            value=cache,
            allowed=f"{blocks[0]}, the workload's block size",
        )


def _check_trace_hashes(spec: ScenarioSpec, have: list[str]) -> None:
    """A prefix- or cache-aware router needs the hash column in the trace itself, not only in
    its format's column map: a mooncake trace may be written without ``hash_ids``."""
    column = spec.workload.trace.column_map().get("hash_ids") if spec.workload.trace else None
    if column is None or column in have:
        return
    found = _hash_router(spec)
    if found is not None:
        where, policy = found
        raise InputError(
            f"{policy} routes by the prompts' prefix block hashes, and the trace's first "
            f"record has no {column!r} column",
            field=where,
            value=policy,
            allowed="round_robin, least_outstanding_tokens (or a trace with hash_ids)",
        )


def _check_pool(scenario: Scenario, i: int, pool: PoolSpec) -> None:
    model, profile = scenario.model, scenario.profiles[pool.name]
    where = f"pools[{i}]"
    for role in ("weights", "activations", "kv"):
        fmt = getattr(pool.precision, role)
        if not profile.supports(role, fmt):
            raise InputError(
                f"{profile.display_name} ({profile.name}) does not support {fmt} {role}",
                field=f"{where}.precision.{role}",
                value=fmt,
                allowed=", ".join(getattr(profile.formats, role)),
            )
    compute = pool.precision.compute_format
    if compute not in profile.compute:
        raise InputError(
            f"{profile.name} has no {compute} compute peak for weights={pool.precision.weights}, "
            f"activations={pool.precision.activations}",
            field=f"{where}.precision",
            allowed=", ".join(profile.compute),
        )
    heads = model.num_attention_heads
    if heads % pool.tp:
        divisors = [d for d in range(1, heads + 1) if heads % d == 0]
        raise InputError(
            f"tp must divide the {heads} attention heads of {model.name}",
            field=f"{where}.tp",
            value=pool.tp,
            allowed=", ".join(map(str, divisors)),
        )
    if not model.is_mla and model.num_kv_heads % pool.tp and pool.tp % model.num_kv_heads:
        raise InputError(
            f"tp must divide the {model.num_kv_heads} KV heads of {model.name}, or be a multiple "
            "of them (heads are then replicated)",
            field=f"{where}.tp",
            value=pool.tp,
        )
    if pool.ep > 1 and not model.is_moe:
        raise InputError(
            f"ep > 1 needs a mixture-of-experts model; {model.name} is dense",
            field=f"{where}.ep",
            value=pool.ep,
            allowed="1",
        )
    if model.is_moe and pool.ep > 1 and model.num_experts % pool.ep:
        raise InputError(
            f"ep must divide the {model.num_experts} experts of {model.name}",
            field=f"{where}.ep",
            value=pool.ep,
            allowed=", ".join(
                str(d)
                for d in range(1, pool.devices + 1)
                if pool.devices % d == 0 and model.num_experts % d == 0
            ),
        )
    if profile.scale_up is None and pool.devices > 1:
        raise InputError(
            f"{profile.name} has no scale-up link, so an instance cannot span {pool.devices} "
            "devices",
            field=f"{where}.tp",
            value=pool.tp,
            allowed="1",
        )
    if profile.scale_up is not None and pool.devices > profile.scale_up.domain_size:
        raise InputError(
            f"an instance of {pool.devices} devices does not fit in one "
            f"{profile.scale_up.technology} domain of {profile.scale_up.domain_size}",
            field=f"{where}.tp",
            value=pool.tp,
        )
    _check_checkpoint(scenario, where, pool)
    _check_profile_tables(profile, where, pool)
    if pool.speculative is not None:
        _check_speculative(scenario, where, pool)
    # whether it fits is judged in hetsim.checks, with the other cross-layer checks
    scenario.footprints[pool.name] = footprint(model, profile, pool)


def _check_profile_tables(profile: AcceleratorProfile, where: str, pool: PoolSpec) -> None:
    """The tables that price the pool's ops exist: its profile's calibration table, and with
    a runtime (the one pool that reads them) its measured tables."""
    for name in ("calibration", "measured_tables") if pool.runtime else ("calibration",):
        table = getattr(profile, name)
        # an absolute path once loaded (a system name for measured tables is not a path)
        if table is not None and Path(table).is_absolute() and not Path(table).is_file():
            raise InputError(
                f"profile {profile.name!r} names a {name} file that does not exist",
                field=f"{where}.accelerator",
                value=table,
                allowed=f"a {name} path relative to the profile file",
            )
    if pool.runtime is not None and profile.measured_tables is None:
        raise no_measured_tables(profile, pool.runtime, f"{where}.runtime")


def workload_hash_source(spec: ScenarioSpec) -> str | None:
    """The field that sets the block size of the requests' prefix hashes, or None where they
    carry none (a trace by its format's column map: its file is read later)."""
    trace = spec.workload.trace
    named = trace is not None and trace.column_map().get("hash_ids") is not None
    blocks = spec.workload.hash_blocks(trace_has_hashes=named)
    return blocks[1] if blocks is not None else None


#: routers that rank instances by the prompt blocks their prefix caches hold
_HASH_POLICIES = ("prefix_aware", "cache_aware")


def _role_router_field(spec: ScenarioSpec, role: str) -> str:
    """Where the role's router is set: ``routing.<role>.policy``, else the first pool's of the
    role that names one (a router that needs hashes is never the unnamed default)."""
    if spec.routing is not None and getattr(spec.routing, role) is not None:
        return f"routing.{role}.policy"
    i = next(i for i, p in enumerate(spec.pools) if p.role == role and p.router is not None)
    return f"pools[{i}].router"


def _hash_router(spec: ScenarioSpec) -> tuple[str, str] | None:
    """(field, policy) of the first role whose router needs prompt block hashes, or None."""
    for role in ("prefill", "colocated"):
        if any(p.role == role for p in spec.pools):
            policy = spec.role_routing(role).policy
            if policy in _HASH_POLICIES:
                return _role_router_field(spec, role), policy
    return None


def _check_routing(spec: ScenarioSpec) -> None:
    """One router per role spans all its pools (:mod:`hetsim.sim.router`): pools that name
    different routers, a `routing:` entry that contradicts them or cannot apply, and a
    prefix- or cache-aware router without prompt hashes are input errors, never a silent
    pick of one of them."""
    roles = list(dict.fromkeys(p.role for p in spec.pools))
    for role in roles:
        given = getattr(spec.routing, role) if spec.routing is not None else None
        if given is None:
            _check_pools_agree(spec, role)
        else:
            _check_role_routing(spec, role, given)
    if spec.routing is not None:
        for role in ("prefill", "colocated", "decode"):
            if role not in roles and getattr(spec.routing, role) is not None:
                raise InputError(
                    f"routing.{role} routes over {role} pools, and this scenario has none",
                    field=f"routing.{role}",
                    value=getattr(spec.routing, role).model_dump(exclude_none=True),
                    allowed=", ".join(roles),
                )
    found = _hash_router(spec)
    if found is not None and workload_hash_source(spec) is None:
        # without hashes every instance scores zero and the router would silently be
        # least_outstanding_tokens. With the cache disabled it is that too, as a cache-aware
        # router is with empty caches: a cache on/off comparison, not an error.
        where, policy = found
        raise InputError(
            f"{policy} routes by the prompts' prefix block hashes, and this workload's "
            "requests carry none (they come from a synthetic prefix_hit_rate above 0, a "
            "mooncake trace's hash_ids or a csv/jsonl trace's hash_ids column)",
            field=where,
            value=policy,
            allowed="round_robin, least_outstanding_tokens",
        )


def _check_pools_agree(spec: ScenarioSpec, role: str) -> None:
    pools = [(i, p) for i, p in enumerate(spec.pools) if p.role == role and p.router is not None]
    if not pools:
        return
    first = pools[0][1]
    for i, pool in pools[1:]:
        if pool.router != first.router:
            raise InputError(
                f"one router spans all {role} pools, and pool {first.name!r} names "
                f"{first.router} while pool {pool.name!r} names {pool.router}; give them the "
                f"same router, or set the role's router once in a top-level `routing: "
                f"{{{role}: {{policy: ...}}}}`",
                field=f"pools[{i}].router",
                value=pool.router,
                allowed=first.router,
            )


def _check_role_routing(spec: ScenarioSpec, role: str, given: RoleRouting) -> None:
    where = f"routing.{role}"
    if given.policy not in ROLE_POLICIES[role]:
        raise InputError(
            f"{given.policy} cannot rank {role} instances",
            field=f"{where}.policy",
            value=given.policy,
            allowed=ROLE_POLICIES[role],
        )
    for i, pool in enumerate(spec.pools):
        if pool.role == role and pool.router is not None and pool.router != given.policy:
            raise InputError(
                f"routing.{role}.policy is {given.policy} and pool {pool.name!r} names "
                f"{pool.router}: one router spans the role; drop the pool's router or make "
                "them agree",
                field=f"pools[{i}].router",
                value=pool.router,
                allowed=given.policy,
            )
    if given.rules is not None:
        _check_rules(spec, role, given)


def _shadowing(rules: list, k: int) -> int | None:
    """The earlier rule whose prompt-length range holds all of rule ``k``'s, or None (a
    catch-all is left to the catch-all check)."""
    if rules[k].when is None:
        return None
    low, high = rules[k].when.bounds
    for j in range(k):
        when = rules[j].when
        if when is None:
            continue
        lo, hi = when.bounds
        if lo <= low and (hi is None or (high is not None and hi >= high)):
            return j
    return None


def _check_rules(spec: ScenarioSpec, role: str, given: RoleRouting) -> None:
    """Rules name pools of the role, end in exactly one catch-all (a request matching nothing
    must never be dropped) and leave no pool of the role unreachable (an idle, costed pool)."""
    where = f"routing.{role}.rules"
    names = [p.name for p in spec.pools if p.role == role]
    rules = given.rules or []
    if role == "decode":
        raise InputError(
            "rules pick a pool by prompt length for the requests' entry; decode takes every "
            "request from prefill and ranks all decode instances",
            field=where,
            value=[r.model_dump(exclude_none=True) for r in rules],
            allowed="no rules under routing.decode",
        )
    for k, rule in enumerate(rules):
        for name in rule.to:
            if name not in names:
                raise InputError(
                    f"a {role} rule routes to {role} pools, and {name!r} is not one",
                    field=f"{where}[{k}].to",
                    value=name,
                    allowed=names,
                )
        shadow = _shadowing(rules, k)
        if shadow is not None:
            raise InputError(
                f"rule {k} can never match: every prompt length it takes, rule {shadow} "
                "before it takes first (the first matching rule routes)",
                field=f"{where}[{k}].when",
                value=rule.when.model_dump(exclude_none=True) if rule.when is not None else None,
                allowed=f"a range rule {shadow} does not cover, or the rule before rule {shadow}",
            )
        if rule.when is None and k != len(rules) - 1:
            raise InputError(
                f"rule {k} has no `when` and takes every request: the rules after it "
                "could never match",
                field=f"{where}[{k}]",
                value=rule.model_dump(exclude_none=True),
                allowed="the catch-all (no `when`) as the last rule only",
            )
    if not rules or rules[-1].when is not None:
        raise InputError(
            "the last rule must be a catch-all without `when` (e.g. {to: "
            f"{names[0]}}}): a request that matches no rule must never be dropped",
            field=where,
            value=[r.model_dump(exclude_none=True) for r in rules],
            allowed="rules ending in {to: <pool>}",
        )
    unused = [n for n in names if not any(n in r.to for r in rules)]
    if unused:
        raise InputError(
            f"no rule routes to {role} pool(s) {', '.join(unused)}: they would stay idle "
            "and still be paid for",
            field=where,
            value=unused,
            allowed="name every pool of the role in some rule, or remove the unused pools",
        )


#: an unbounded lognormal length stands in the context check as its longest of this many
#: draws: fixed, not the workload's count, so a goodput search that sends more requests or
#: clients poses no new problem mid-search
TAIL_DRAWS = 1000


def _longest(length: LengthSpec, sessions: bool) -> int | None:
    """The longest length ``length`` can draw, or None where nothing bounds it (an empirical
    trace without ``max``, or any unbounded length of a session, which the generator ends at
    the context). A lognormal without ``max`` has no longest: its longest of
    :data:`TAIL_DRAWS` draws (its 1 - 1/1000 quantile) stands for it, so a tail that runs past
    the context is caught here, not met request by request at run time."""
    if length.dist == "lognormal" and length.max is None and not sessions:
        assert length.mean is not None and length.cv is not None
        mu, sigma = lognormal_params(length.mean, length.cv)
        z = NormalDist().inv_cdf(1 - 1 / TAIL_DRAWS)
        return math.ceil(math.exp(mu + sigma * z))
    return length.bound


def _check_context(spec: ScenarioSpec, model: ModelConfig) -> None:
    """A request's prompt and output must fit in the model's context window
    (max_position_embeddings): no engine serves a longer one, and hetsim would cost it. A
    session's first turn must too, and the turns it can grow to (:func:`check_session_context`)."""
    w = spec.workload
    for section, lengths in (("synthetic", w.synthetic), ("closed_loop", w.closed_loop)):
        if lengths is None:
            continue
        sessions = lengths.sessions is not None
        if sessions:
            where = f"workload.{section}"
            lengths_ = (lengths.input_tokens, lengths.output_tokens)
            check_session_context(lengths.sessions, *lengths_, model.max_context, where)
        inp = _longest(lengths.input_tokens, sessions)
        out = _longest(lengths.output_tokens, sessions)
        if inp is None or out is None or inp + out <= model.max_context:
            continue
        unbounded = [
            name for name in ("input_tokens", "output_tokens")
            if getattr(lengths, name).dist == "lognormal" and getattr(lengths, name).max is None
        ]  # fmt: skip
        tail = (
            f" (lognormal {', '.join(unbounded)} without max: its longest of {TAIL_DRAWS:,} draws)"
        )
        raise InputError(
            f"a request can reach {inp:,} prompt + {out:,} output = {inp + out:,} tokens, beyond "
            f"the {model.max_context:,}-token context of {model.name} (max_position_embeddings)"
            + (tail if unbounded else ""),
            field=f"workload.{section}.input_tokens, workload.{section}.output_tokens",
            value=f"max {inp} + max {out}",
            allowed=f"input max + output max ≤ {model.max_context}",
        )


def _check_checkpoint_format(scenario: Scenario) -> None:
    """A quantized checkpoint in a format hetsim has none for is the model's problem, once."""
    declared, said = checkpoint_weights(scenario.model.raw)
    if said is not None and declared is None:
        raise InputError(
            f"{scenario.model.name}'s checkpoint is quantized ({said}), a format hetsim cannot "
            "size its weights by",
            field="model",
            value=scenario.spec.model,
            allowed="its config.json without quantization_config, each pool's "
            "precision.weights then saying how the weights are served",
        )


def _check_checkpoint(scenario: Scenario, where: str, pool: PoolSpec) -> None:
    """A quantized checkpoint's weights are in its format: a pool serving them in another
    would be sized and timed for weights the checkpoint does not have."""
    declared, said = checkpoint_weights(scenario.model.raw)
    if declared is not None and pool.precision.weights != declared:
        raise InputError(
            f"{scenario.model.name}'s checkpoint stores its weights in {declared} ({said})",
            field=f"{where}.precision.weights",
            value=pool.precision.weights,
            allowed=declared,
        )
    scaling, said = checkpoint_fp8_scales(scenario.model.raw)
    if scaling is not None and pool.precision.fp8_scaling != scaling:
        raise InputError(
            f"{scenario.model.name}'s checkpoint scales its fp8 weights {scaling} ({said}): "
            "the runtime runs that kernel",
            field=f"{where}.precision.fp8_scales",
            value=pool.precision.fp8_scales or "unset (block)",
            allowed=scaling,
        )


def _check_speculative(scenario: Scenario, where: str, pool: PoolSpec) -> None:
    """MTP drafts need the model's own next-token-prediction layers; acceptance is sampled from
    the simulation's seed by the instances."""
    spec = pool.speculative
    assert spec is not None
    layers = scenario.model.raw.get("num_nextn_predict_layers") or 0
    if spec.method == "mtp" and not layers:
        raise InputError(
            "method mtp drafts with the model's multi-token-prediction layers; "
            f"{scenario.model.name} has none (config.json num_nextn_predict_layers is 0 or absent)",
            field=f"{where}.speculative.method",
            value=spec.method,
            allowed="a model with MTP layers (DeepSeek-V3/R1, GLM-4.5+), or no speculative",
        )


def _check_kv(spec: ScenarioSpec, profiles: dict[str, AcceleratorProfile]) -> None:
    tiers = {t.name: t for t in spec.kv.tiers}
    if len(tiers) != len(spec.kv.tiers):
        raise InputError("tier names must be unique", field="kv.tiers")
    pc = spec.kv.prefix_cache
    if pc.tier is not None and pc.tier != "hbm" and pc.tier not in tiers:
        raise InputError(
            "prefix cache tier is not defined",
            field="kv.prefix_cache.tier",
            value=pc.tier,
            allowed=", ".join(["hbm", *tiers]),
        )
    lc = spec.lifecycle
    if spec.kv.layerwise_transfer and lc.protocol != "push":
        raise InputError(
            "layer-wise KV streaming needs a destination reserved before prefill starts, which "
            f"only the push protocol provides (lifecycle is {lc.protocol!r})",
            field="kv.layerwise_transfer",
            value=True,
            allowed="false, or lifecycle: push",
        )
    if lc.protocol == "store":
        candidates = [n for n, t in tiers.items() if t.kind in ("dram", "ssd", "remote")]
        if lc.store_tier is None:
            raise InputError(
                "the store protocol needs lifecycle.store_tier naming a shared KV tier",
                field="lifecycle.store_tier",
                allowed=", ".join(candidates) or "(define kv.tiers)",
            )
        if lc.store_tier not in tiers:
            raise InputError(
                "store tier is not defined in kv.tiers",
                field="lifecycle.store_tier",
                value=lc.store_tier,
                allowed=", ".join(candidates) or "(define kv.tiers)",
            )
    fmt = spec.kv.transfer_format
    if fmt is not None:
        for pool in spec.pools:
            if pool.role == "colocated":
                continue
            if not profiles[pool.name].supports("kv", fmt):
                raise InputError(
                    f"KV travels as {fmt}, which {profiles[pool.name].name} (pool "
                    f"{pool.name!r}) cannot read or write",
                    field="kv.transfer_format",
                    value=fmt,
                    allowed=", ".join(profiles[pool.name].formats.kv),
                )


def _check_prefix_tiers(scenario: Scenario) -> None:
    """The prefix cache's cascade: hbm first, then distinct kv.tiers entries; a tier shared by
    instances of several pools holds blocks of one size, so their KV formats must agree."""
    spec = scenario.spec
    pc = spec.kv.prefix_cache
    tiers = {t.name: t for t in spec.kv.tiers}
    field = "kv.prefix_cache.tiers"
    if pc.tiers is not None and pc.tier is not None:
        raise InputError(
            "give the prefix cache either `tier` (one tier) or `tiers` (a cascade), not both",
            field=field,
            value=str(pc.tiers),
            allowed=f"remove kv.prefix_cache.tier (it is {pc.tier!r})",
        )
    if pc.tiers is not None:
        allowed = ", ".join(["hbm", *tiers])
        if not pc.tiers or pc.tiers[0] != "hbm":
            raise InputError(
                "a cascade starts at the instance's own memory, hbm",
                field=f"{field}[0]",
                value=str(pc.tiers[0] if pc.tiers else pc.tiers),
                allowed="hbm",
            )
        for j, name in enumerate(pc.tiers[1:], start=1):
            if name not in tiers:
                why = "hbm is the first tier only" if name == "hbm" else "tier is not defined"
                raise InputError(why, field=f"{field}[{j}]", value=name, allowed=allowed)
            if name in pc.tiers[:j]:
                raise InputError(
                    "a tier appears twice in the cascade",
                    field=f"{field}[{j}]",
                    value=name,
                    allowed=f"each of {allowed} at most once",
                )
    if pc.enabled:
        for i, tier in enumerate(spec.kv.tiers):
            if tier.name in pc.cascade() and tier.scope == "cluster":
                _check_shared_tier(scenario, i)


def _check_shared_tier(scenario: Scenario, where: int) -> None:
    """A cluster-scoped tier is one store of blocks every pool that computes prompts reads:
    they must all keep KV in one format (blocks of one size and representation; a
    pool-scoped tier serves one pool, of one format)."""
    tier = scenario.spec.kv.tiers[where]
    entry = [p for p in scenario.spec.pools if p.role in ("prefill", "colocated")]
    if len({p.precision.kv for p in entry}) > 1:
        formats = ", ".join(f"{p.name}: {p.precision.kv}" for p in entry)
        raise InputError(
            f"tier {tier.name!r} is shared by the whole cluster, but the pools that compute "
            f"prompts store KV in different formats ({formats}): one's blocks are not the other's "
            "KV, and their sizes may differ",
            field=f"kv.tiers[{where}].scope",
            value=tier.scope,
            allowed="instance, pool (or one KV format for every prefill/colocated pool)",
        )


def _check_costs_and_search(spec: ScenarioSpec, extra_dirs: list[Path]) -> None:
    from hetsim.spec.hardware import available_profiles

    known = available_profiles(extra_dirs)
    for name in spec.costs.prices:
        if name not in known:
            raise InputError(
                "price for an unknown accelerator",
                field=f"costs.prices.{name}",
                value=name,
                allowed=", ".join(sorted(known)),
            )
    if spec.search is None:
        return
    for role in ("prefill", "decode"):
        for k, name in enumerate(getattr(spec.search, role).accelerators):
            if name not in known:
                raise InputError(
                    "unknown accelerator",
                    field=f"search.{role}.accelerators[{k}]",
                    value=name,
                    allowed=", ".join(sorted(known)),
                )
    for name in spec.search.inventory:
        if name not in known:
            raise InputError(
                "unknown accelerator",
                field=f"search.inventory.{name}",
                value=name,
                allowed=", ".join(sorted(known)),
            )


def _check_search_interconnect(spec: ScenarioSpec) -> None:
    """Each alternative's paths lead from a prefill pool of the scenario to a decode pool, as
    ``interconnect.paths`` must, and no alternative takes the scenario's own name; else an
    error naming the alternative's field."""
    if spec.search is None or not spec.search.interconnect:
        return
    search = spec.search
    roles = {p.name: p.role for p in spec.pools}
    if "decode" not in roles.values():  # no boundary to cross: the alternatives cannot apply
        raise InputError(
            "a colocated scenario has no prefill→decode path to choose",
            field="search.interconnect",
            value=", ".join(x.name for x in search.interconnect),
            allowed="no search.interconnect, or a disaggregated scenario",
        )
    own = spec.interconnect.name or AS_WRITTEN
    for k, alt in enumerate(search.interconnect):
        if alt.name == own:
            raise InputError(
                "the scenario's own interconnect has this name",
                field=f"search.interconnect[{k}].name",
                value=alt.name,
                allowed=f"a name other than {own}",
            )
        for j, path in enumerate(alt.paths):
            for end, name, role in (("from", path.from_, "prefill"), ("to", path.to, "decode")):
                if roles.get(name) != role:
                    raise InputError(
                        f"no {role} pool of that name",
                        field=f"search.interconnect[{k}].paths[{j}].{end}",
                        value=name,
                        allowed=", ".join(n for n, r in roles.items() if r == role),
                    )


def check_trace_header(trace: TraceSpec, base_dir: Path, field: str) -> list[str]:
    """The trace file exists and its first record has the columns its format needs; returns
    the columns the first record has."""
    path = Path(trace.path).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise InputError("trace file not found", field=f"{field}.path", value=str(path))
    columns = trace.column_map()
    needed = [c for k, c in columns.items() if c is not None and k != "hash_ids"]
    is_jsonl = trace.format in ("mooncake", "jsonl")
    try:
        # utf-8-sig: spreadsheet exports start CSVs with a byte-order mark, which the reader skips
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if is_jsonl:
                first = ""
                for line in fh:
                    if line.strip():
                        first = line
                        break
                if not first:
                    raise InputError("trace file is empty", file=path)
                try:
                    record = json.loads(first)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"first line is not JSON ({exc.msg})", file=path, line=1
                    ) from None
                if not isinstance(record, dict):
                    raise InputError("each line must be a JSON object", file=path, line=1)
                have = list(record)
            else:
                header = next(csv.reader(fh), None)
                if not header:
                    raise InputError("trace file is empty", file=path)
                have = [h.strip() for h in header]
    except UnicodeDecodeError:
        raise InputError("trace file is not UTF-8 text", file=path) from None
    except csv.Error as exc:
        raise InputError(f"trace file is not readable CSV ({exc})", file=path) from None
    missing = [c for c in needed if c not in have]
    if missing:
        expected = TRACE_COLUMNS.get(trace.format)
        hint = f"a {trace.format} trace has columns " + ", ".join(
            c for c in (expected or columns).values() if c
        )
        raise InputError(
            f"missing column(s) {', '.join(map(repr, missing))}; {hint}",
            file=path,
            field=f"{field}.format",
            value=trace.format,
            allowed="found: " + ", ".join(have),
        )
    return have


DEFAULT_SCENARIO = "cphd-glm51.yaml"


def scenario_dirs() -> list[Path]:
    """The repository's ``scenarios/`` (editable installs) and the copy bundled in the wheel."""
    package = Path(__file__).resolve().parent.parent
    dirs = [package.parent / "scenarios", package / "_bundled" / "scenarios"]
    return [d for d in dirs if d.is_dir()]


def default_scenario_path() -> Path:
    """The bundled default scenario that ``hetsim plan`` runs with no argument."""
    for d in scenario_dirs():
        if (d / DEFAULT_SCENARIO).exists():
            return d / DEFAULT_SCENARIO
    raise InputError(
        f"the bundled default scenario {DEFAULT_SCENARIO} is missing from this installation",
        allowed="pass a scenario file: hetsim plan SCENARIO",
    )
