"""The plan's winner as a scenario of its own: ``best.yaml``.

The file is the recommended candidate's resolved scenario at its goodput operating point — the
rate (or, for a closed loop, the concurrency) the plan reports, with the requests per run the
planner simulated and the scenario's seed — so ``hetsim simulate best.yaml`` replays the very
run behind the plan's goodput row and prints the same attainment and latencies. The ``search:``
section is dropped (it is a deployment now, not a space). Paths that the original scenario gave
relative to its own folder (the model's config.json, trace files, accelerator profiles kept
beside it) are written absolute, so the file works from the output folder. Values keep their
units as strings, so the file re-validates as any hand-written scenario does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hetsim.planner.goodput import with_concurrency, with_rate
from hetsim.spec.hardware import available_profiles
from hetsim.spec.model import bundled_models

if TYPE_CHECKING:
    from hetsim.planner.results import CandidateResult, PlanResult
    from hetsim.spec.resolve import Scenario

__all__ = ["best_scenario", "replay_command", "write_best"]


def _operating_point(plan: PlanResult, best: CandidateResult) -> Scenario:
    """The winner's scenario at the operating point its goodput was measured at."""
    scenario = best.candidate.scenario
    assert scenario is not None  # a measured candidate validated
    if best.concurrency is not None:  # a closed loop: searched by clients, sized per client
        return with_concurrency(scenario, best.concurrency, plan.settings["requests_per_client"])
    return with_rate(scenario, best.goodput)


def best_scenario(plan: PlanResult) -> dict[str, Any]:
    """The winner's scenario as plain data (what ``best.yaml`` holds, without its header).

    The planner simulated ``settings["max_requests"]`` requests per run: a synthetic workload
    says so in its own ``requests``; a trace cannot (its replay stops after that many rows),
    so :func:`replay_command` carries ``--requests`` for it."""
    best = plan.best
    if best is None:
        raise ValueError("the plan recommends no deployment: there is no best scenario")
    scenario = _operating_point(plan, best)
    data = scenario.spec.model_dump(by_alias=True, exclude_none=True)
    data.pop("search", None)
    # the base scenario's description tells of its own deployment, not of this one
    data["description"] = f"hetsim plan's recommendation for {plan.scenario.name}: {best.label}"
    cap = plan.settings.get("max_requests")
    synthetic = data["workload"].get("synthetic")
    if cap is not None and synthetic is not None:
        synthetic["requests"] = int(cap)  # as hetsim.workload.sized does for each planning run
    _absolute_paths(data, scenario)
    return data


def replay_command(plan: PlanResult, name: str = "best.yaml") -> list[str]:
    """The command that replays the plan's goodput run from ``name``."""
    command = ["hetsim", "simulate", name]
    cap = plan.settings.get("max_requests")
    assert plan.best is not None and plan.best.candidate.scenario is not None
    if cap is not None and plan.best.candidate.scenario.spec.workload.trace is not None:
        command += ["--requests", str(int(cap))]
    return command


def _absolute_paths(data: dict[str, Any], scenario: Scenario) -> None:
    """Rewrite what the scenario resolved against its own folder as absolute paths: the file
    is read from the output folder, where those relative paths would name nothing."""
    bundled = {name.lower() for name in bundled_models()}  # load_model matches any case
    if data["model"].lower() not in bundled:
        data["model"] = str(scenario.resolve_path(data["model"]).resolve())
    local = available_profiles([scenario.base_dir / "hardware_profiles"])
    shipped = available_profiles()
    for pool in data["pools"]:
        name = pool["accelerator"]
        if name.endswith((".yaml", ".yml")):
            pool["accelerator"] = str(scenario.resolve_path(name).resolve())
        elif name not in shipped and name in local:  # a profile kept beside the scenario
            pool["accelerator"] = str(local[name].resolve())
    _absolute_traces(data["workload"], scenario)


def _absolute_traces(node: Any, scenario: Scenario) -> None:
    """Every ``trace: {path: ...}`` under the workload (the replayed trace, an empirical
    length distribution's source) made absolute."""
    if isinstance(node, dict):
        trace = node.get("trace")
        if isinstance(trace, dict) and isinstance(trace.get("path"), str):
            trace["path"] = str(scenario.resolve_path(trace["path"]).resolve())
        for value in node.values():
            _absolute_traces(value, scenario)
    elif isinstance(node, list):
        for value in node:
            _absolute_traces(value, scenario)


def _header(plan: PlanResult) -> list[str]:
    """Where the file came from, how to replay it, and what in it is assumed."""
    best = plan.best
    assert best is not None and best.candidate.scenario is not None
    scenario = best.candidate.scenario
    s, sla = best.summary, plan.scenario.spec.sla
    rel_tol = plan.settings.get("rel_tol", 0.1)
    where = (
        f"concurrency {best.concurrency} (goodput {best.goodput:.4g} req/s)"
        if best.concurrency is not None
        else f"{best.goodput:.6g} req/s, its goodput ({best.goodput * (1 + rel_tol):.6g} req/s, "
        f"one {rel_tol:.0%} grid step up, misses the SLA)"
    )
    source = plan.scenario.path.name if plan.scenario.path else plan.scenario.name
    lines = [
        "The deployment `hetsim plan` recommended, as a scenario of its own.",
        f"From: the plan of scenario '{plan.scenario.name}' ({source}), "
        f"candidate #{best.id}: {best.label}",
        f"Operating point: {where}; seed {scenario.spec.seed}; "
        f"requests per run: {plan.settings.get('max_requests') or 'the whole workload'}",
        "Replay: " + " ".join(replay_command(plan)),
    ]
    if s is not None:
        lines.append(
            f"Expect what the plan measured: attainment {best.attainment:.4g} (target "
            f"{sla.attainment:g}), TTFT p90 {s.ttft_s.p90:.4g} s, TPOT p90 {s.tpot_s.p90:.4g} s"
        )
    lines += _assumptions(scenario, s.provenance if s is not None else {})
    return lines


def _assumptions(scenario: Scenario, provenance: dict[str, str]) -> list[str]:
    """Prices taken from profiles (not set in costs.prices) and uncalibrated step times."""
    from hetsim.report.describe import unmeasured_note

    lines = []
    assumed = sorted(
        {
            f"{scenario.profiles[p.name].name} ${scenario.price_per_device_hour(p.name):g}/h"
            for p in scenario.spec.pools
            if scenario.price_is_assumption(p.name)
        }
    )
    if assumed:
        lines.append(
            "Assumed prices (profile defaults, not set in costs.prices): " + ", ".join(assumed)
        )
    note = unmeasured_note(provenance)
    if note is not None:
        lines.append("Efficiencies are assumptions: " + note)
    return lines


def write_best(plan: PlanResult, path: str | Path) -> Path:
    """``best.yaml`` at ``path``: the header as comments, then the scenario."""
    path = Path(path)
    body = yaml.safe_dump(best_scenario(plan), sort_keys=False, allow_unicode=True)
    header = "".join(f"# {line}\n" for line in _header(plan))
    path.write_text(header + body)
    return path
