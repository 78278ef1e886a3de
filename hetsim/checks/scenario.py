"""Cross-layer checks of a resolved scenario: paths, memory fit and portability.

:mod:`hetsim.spec` resolves a scenario on its own (model, profiles, schema); what needs the KV
layer too is checked here, all problems reported in one :class:`~hetsim.errors.InputError`.
:func:`load_scenario` and :func:`scenario_from_dict` are the spec's loaders followed by these
checks: what the public API loads is portable, fits in memory and has a path for every pair.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hetsim.checks.handoff import HandoffPlan, handoff_plans, pool_pairs
from hetsim.errors import InputError
from hetsim.kv.portability import Conversion
from hetsim.spec import resolve
from hetsim.spec.faults import allowed_targets, target_exists
from hetsim.spec.footprint import footprint
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import PathSpec, ScenarioSpec, link_of
from hetsim.units import format_bytes

__all__ = [
    "apply_runtime_kv_budgets",
    "check_scenario",
    "absent_fault_targets",
    "drop_absent_faults",
    "frontend_runtime",
    "load_scenario",
    "routing_summary",
    "scenario_from_dict",
]

#: the pool field holding each conversion kind's value, for messages
_POOL_FIELD = {"dtype": "precision.kv", "layout": "kv_layout", "page_size": "kv_page_tokens",
               "tp": "tp"}  # fmt: skip


def check_scenario(scenario: Scenario) -> None:
    """Every pair has a path and every path joins a prefill to a decode pool, every pool fits
    in memory, and every pair can use the KV it is handed. Raises one
    :class:`~hetsim.errors.InputError` listing all problems found. A pool that names a runtime
    has its KV pool sized by that runtime's rule first (:func:`apply_runtime_kv_budgets`)."""
    apply_runtime_kv_budgets(scenario)
    problems = [
        *_path_problems(scenario.spec),
        *_memory_problems(scenario),
        *_portability_problems(scenario),
        *_frontend_problems(scenario.spec),
        *_mixing_problems(scenario.spec),
        *_fault_problems(scenario.spec),
        *_shared_hop_problems(scenario),
    ]
    if problems:
        raise InputError.all_of(problems, scenario.path)


def apply_runtime_kv_budgets(scenario: Scenario) -> None:
    """Size the KV pool of every pool that names ``runtime:`` as that runtime does (its memory
    rule lives in the perf layer, above the spec that resolved the footprint); pools without a
    runtime keep hetsim's own rule."""
    # imported here: hetsim.perf's package pulls numpy, which `hetsim --help` must not load
    from hetsim.perf.runtimes import runtime_memory

    for pool in scenario.spec.pools:
        if pool.runtime is None:
            continue
        profile = scenario.profiles[pool.name]
        budget = runtime_memory(pool.runtime).budget(profile.memory_bytes, pool)
        scenario.footprints[pool.name] = footprint(scenario.model, profile, pool, budget)


def routing_summary(spec: ScenarioSpec) -> list[dict[str, Any]]:
    """Per role, as the simulator will route it (the spec's :meth:`role_routing` owns which
    router applies): the policy, where it is set, its parameters and the ordered rules, each
    ``{"when": text or None, "to": [pool, ...]}`` (no rules: one catch-all over all pools)."""
    rows = []
    for role in dict.fromkeys(p.role for p in spec.pools):
        routing = spec.role_routing(role)
        given = spec.routing is not None and getattr(spec.routing, role) is not None
        named = any(p.router is not None for p in spec.pools if p.role == role)
        pools = [p.name for p in spec.pools if p.role == role]
        rules = [
            {"when": r.when.input_tokens if r.when is not None else None, "to": list(r.to)}
            for r in routing.rules or []
        ] or [{"when": None, "to": pools}]
        rows.append(
            {
                "role": role,
                "policy": routing.policy,
                "set_by": "routing" if given else "pools" if named else "default",
                "parameters": (
                    {"overlap_weight": routing.weight} if routing.policy == "cache_aware" else {}
                ),
                "rules": rules,
            }
        )
    return rows


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override (``dotted.path=value``), validate, resolve and check a scenario file."""
    scenario = resolve.load_scenario(path, overrides)
    check_scenario(scenario)
    return scenario


def scenario_from_dict(
    data: dict[str, Any], path: str | Path | None = None, overrides: list[str] | None = None
) -> Scenario:
    """:func:`hetsim.spec.resolve.scenario_from_dict`, then :func:`check_scenario`."""
    scenario = resolve.scenario_from_dict(data, path=path, overrides=overrides)
    check_scenario(scenario)
    return scenario


def frontend_runtime(spec: ScenarioSpec) -> str | None:
    """The serving runtime whose frontend admits every request: the one the pools that take
    arrivals (prefill, colocated) name, those without one running behind it; None where none
    names one. Two named is an InputError (one frontend admits every request)."""
    named: dict[str, str] = {}
    for i, pool in enumerate(spec.pools):
        if pool.role in ("prefill", "colocated") and pool.runtime is not None:
            named.setdefault(pool.runtime, f"pools[{i}].runtime")
    if len(named) > 1:
        raise InputError(
            "the pools that take arriving requests name different serving runtimes; one "
            "frontend admits every request",
            field=", ".join(named.values()),
            value=", ".join(named),
            allowed="one runtime on every prefill/colocated pool that names one",
        )
    return next(iter(named), None)


def _frontend_problems(spec: ScenarioSpec) -> list[InputError]:
    try:
        frontend_runtime(spec)
    except InputError as e:
        return [e]
    return []


def _mixing_problems(spec: ScenarioSpec) -> list[InputError]:
    """Batch waiting on a colocated pool whose steps are prompt-only (``mixed_chunk: false``,
    or unset on a runtime whose default that is). Attention-DP balancing cannot meet them: it
    needs dp > 1, where pools mix."""
    # imported here: the perf package loads numpy, which ``hetsim --help`` must not
    from hetsim.perf.runtimes import pool_mixes_prompts

    problems = []
    for i, pool in enumerate(spec.pools):
        b = pool.batching
        if pool.role != "colocated" or not b.batch_waits:
            continue
        if not pool_mixes_prompts(pool):
            said = (
                "false"
                if b.mixed_chunk is False
                else f"unset: {pool.runtime} runs prompt-only steps"
            )
            problems.append(
                InputError(
                    "batch waiting holds prompts back from steps they would share with "
                    "decodes; with mixed_chunk false no step does",
                    field=f"pools[{i}].batching",
                    value=f"mixed_chunk {said}",
                    allowed="mixed_chunk: true, or no batch waiting",
                )
            )
    return problems


def _fault_targets(spec: ScenarioSpec) -> tuple[dict[str, int], list[str]]:
    """What faults can target: instances per pool, and the hops of the paths that join pools
    (the links the simulator builds)."""
    instances = {p.name: p.instances for p in spec.pools}
    hops = [h.name for pair in pool_pairs(spec) if pair.path for h in pair.path.hops]
    return instances, list(dict.fromkeys(hops))


def absent_fault_targets(spec: ScenarioSpec) -> list[int]:
    """Indices into ``faults.events`` of the faults this deployment cannot have: their target
    is not in it, or what they break is (:func:`_cannot_happen`)."""
    instances, hops = _fault_targets(spec)
    return [
        i
        for i, f in enumerate(spec.faults.events)
        if not target_exists(f, instances, hops) or _cannot_happen(f.kind, spec)
    ]


def drop_absent_faults(data: dict[str, Any]) -> tuple[str, ...]:
    """Remove from scenario ``data`` the faults this deployment cannot have
    (:func:`absent_fault_targets`: a planner candidate or another lifecycle protocol than the
    scenario's); returns each as ``kind target``, or ``kind (why)`` without a target."""
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError:
        return ()  # scenario_from_dict reports it with the field path
    absent = absent_fault_targets(spec)
    if not absent:
        return ()
    events = data["faults"]["events"]
    data["faults"]["events"] = [e for i, e in enumerate(events) if i not in absent]
    return tuple(
        f"{events[i]['kind']} {events[i]['target']}"
        if events[i].get("target") is not None
        else f"{events[i]['kind']} ({_cannot_happen(events[i]['kind'], spec)})"
        for i in absent
    )


def _cannot_happen(kind: str, spec: ScenarioSpec) -> str | None:
    """Why a fault of ``kind`` has nothing to break in this deployment, or None."""
    if kind in ("abort_mid_transfer", "lost_notification") and not spec.disaggregated:
        return "a colocated deployment moves no KV between instances"
    if kind == "lost_notification" and spec.lifecycle.protocol != "pull":
        return (
            "only pull's decode side tells prefill it has read the KV; "
            f"{spec.lifecycle.protocol} sends no such notification"
        )
    return None


def _fault_problems(spec: ScenarioSpec) -> list[InputError]:
    instances, hops = _fault_targets(spec)
    out = []
    for i in absent_fault_targets(spec):
        fault = spec.faults.events[i]
        why = _cannot_happen(fault.kind, spec)
        if why is not None:
            out.append(
                InputError(
                    f"{fault.kind} cannot happen here: {why}",
                    field=f"faults.events[{i}].kind",
                    value=fault.kind,
                    allowed="faults this deployment can have (pull and disaggregated for "
                    "lost_notification, disaggregated for abort_mid_transfer)",
                )
            )
            continue
        what = "a hop of a transfer path" if "link" in fault.kind else "a pool or pool[index]"
        out.append(
            InputError(
                f"{fault.kind} targets {what} that this scenario does not have",
                field=f"faults.events[{i}].target",
                value=fault.target,
                allowed=allowed_targets(fault.kind, instances, hops),
            )
        )
    return out


def _shared_hop_problems(scenario: Scenario) -> list[InputError]:
    """A hop shared by a destination instance or the whole cluster is one link for every path
    that names it, so its effective bandwidth must not depend on the path: a hop without its own
    efficiency takes the source pool's ``efficiency.network``, and two source pools that differ
    would each describe the link, the first path the simulator builds setting it for all."""
    if not scenario.spec.disaggregated:
        return []
    seen: dict[tuple, tuple[str, float]] = {}
    out = []
    for (producer, consumer), plan in handoff_plans(scenario).items():
        for hop in plan.hops:
            # a link per source instance or per path has one source pool: never two figures
            key = link_of(hop.name, hop.shared_by, producer, consumer)
            first = seen.setdefault(key, (producer, hop.efficiency))
            if first[1] != hop.efficiency and not any(e.value == hop.name for e in out):
                out.append(
                    InputError(
                        f"hop {hop.name!r} is one link for the paths from {first[0]!r} and "
                        f"{producer!r}, but without an efficiency of its own it takes each "
                        f"source pool's efficiency.network ({first[1]:g} vs {hop.efficiency:g})",
                        field="interconnect.paths",
                        value=hop.name,
                        allowed="an efficiency on the hop (the same on every path naming it)",
                    )
                )
    return out


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
        share = (
            f"{pool.memory_utilization:.0%} of {format_bytes(fp.capacity_per_device)}"
            if pool.runtime is None
            else f"{format_bytes(fp.capacity_per_device)}; KV pool: {fp.kv_rule}"
        )
        out.append(
            InputError(
                f"{scenario.model.name} does not fit: {format_bytes(fp.weights_per_device)} of "
                f"{pool.precision.weights} weights + {format_bytes(fp.activations_per_device)} "
                f"activations (estimate) + {format_bytes(fp.runtime_reserve_per_device)} "
                f"runtime reserve per device, but {name} offers "
                f"{format_bytes(fp.usable_per_device)} ({share}); left for KV: "
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
