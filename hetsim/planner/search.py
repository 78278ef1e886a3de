"""``hetsim.plan``: search a scenario's ``search:`` space for the deployment to recommend.

1. **Enumerate** every candidate (:mod:`hetsim.planner.space`); one that does not validate
   (a format the accelerator lacks, a model that does not fit) is *invalid*, with the check's
   message.
2. **Screen** each analytically (:mod:`hetsim.planner.screen`): over inventory or budget,
   *hopeless* even alone, or unable to reach ``min_rate`` at its capacity bound → *screened*.
3. **Simulate** the survivors, most promising first, in rounds of ``wave`` candidates run in
   parallel. Before a round, each candidate is compared with the best measured so far: if even
   its capacity bound cannot beat it, or its estimate cannot come within ``estimate_margin``
   of it, it is *beaten* without simulation; otherwise its first simulation is at the rate it
   would need to beat the best, and it is *beaten* if it misses the SLA there (one simulation
   instead of a search). The rest get a full goodput search on the shared rate grid, with
   common random numbers (the same seed, hence the same requests, for every candidate).
4. **Rank** by the objective, ties broken by tail latency (the larger of TTFT and TPOT at the
   SLA percentile, each over its bound).

Every candidate keeps its verdict and the reason for it. Decisions depend only on results of
whole rounds, in candidate order, so any backend and worker count give the same plan.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.errors import InputError
from hetsim.planner.backends import make_backend
from hetsim.planner.capacity import PoolCosts
from hetsim.planner.goodput import RateGrid
from hetsim.planner.screen import ScreenResult, WorkloadSample, screen
from hetsim.planner.space import Candidate, enumerate_candidates
from hetsim.spec.resolve import Scenario, load_scenario
from hetsim.spec.scenario import SearchSpec

__all__ = ["CandidateResult", "PlanResult", "plan"]

#: verdicts, best first (the order of candidates.csv)
VERDICTS = ("recommended", "ranked", "fails_sla", "beaten", "screened", "invalid")

OBJECTIVE_UNITS = {
    "goodput": "req/s",
    "goodput_per_device": "req/s per device",
    "goodput_per_dollar": "requests per $",
    "cheapest_for_rate": "$/h",
}


@dataclass
class CandidateResult:
    """One candidate's verdict, the reason for it and what was measured or bounded."""

    candidate: Candidate
    verdict: str = "pending"
    reason: str = ""
    cost_per_hour: float = math.nan
    screen: ScreenResult | None = None
    goodput: float = math.nan  # req/s; NaN when not searched to the end
    attainment: float = math.nan
    summary: dict[str, Any] = field(default_factory=dict)  # of the run at the goodput
    points: list[dict[str, Any]] = field(default_factory=list)
    objective: float = math.nan
    boundary: str | None = None  # identical / convertible (disaggregated only)
    baseline: bool = False

    @property
    def id(self) -> int:
        return self.candidate.id

    @property
    def label(self) -> str:
        return self.candidate.label

    def tail(self) -> float:
        """TTFT and TPOT at the SLA percentile over their bounds, the larger (lower is better)."""
        s = self.summary
        sla = s.get("sla") or {}
        ttft, tpot = s.get("ttft_at_sla_percentile_s"), s.get("tpot_at_sla_percentile_s")
        parts = []
        if ttft is not None and sla.get("ttft_s"):
            parts.append(ttft / sla["ttft_s"])
        if tpot is not None and sla.get("tpot_s"):
            parts.append(tpot / sla["tpot_s"])
        return max(parts) if parts else math.inf

    def row(self) -> dict[str, Any]:
        c = self.candidate
        s = self.summary
        row: dict[str, Any] = {
            "id": c.id,
            "label": c.label,
            "kind": c.kind,
            "verdict": self.verdict,
            "reason": self.reason,
            "baseline": self.baseline,
            "pd_ratio": c.pd_ratio,
            "devices": c.devices,
            "transfer_format": c.transfer_format,
            "protocol": c.protocol,
            "boundary": self.boundary,
        }
        for role in ("prefill", "decode", "serve"):
            choice = c.roles.get(role)
            for k in ("accelerator", "instances", "tp", "ep", "precision", "kv", "chunk_size",
                      "max_num_seqs"):  # fmt: skip
                row[f"{role}_{k}"] = None if choice is None else choice.as_dict()[k]
        ttft, tpot = s.get("ttft_s") or {}, s.get("tpot_s") or {}
        row.update(
            cost_per_hour=self.cost_per_hour,
            goodput=self.goodput,
            goodput_per_device=self.goodput / c.devices if c.devices else math.nan,
            requests_per_dollar=self.goodput * 3600 / self.cost_per_hour
            if self.cost_per_hour
            else math.nan,
            objective=self.objective,
            attainment=self.attainment,
            ttft_p50_s=ttft.get("p50"),
            ttft_p90_s=ttft.get("p90"),
            ttft_p99_s=ttft.get("p99"),
            tpot_p50_s=tpot.get("p50"),
            tpot_p90_s=tpot.get("p90"),
            tpot_p99_s=tpot.get("p99"),
            ttft_p_s=s.get("ttft_at_sla_percentile_s"),
            tpot_p_s=s.get("tpot_at_sla_percentile_s"),
            cost_per_million_tokens=s.get("cost_per_million_tokens"),
            throughput_tokens_per_s=s.get("throughput_tokens_per_s"),
            provenance=_provenance(s),
            simulations=len(self.points),
        )
        if self.screen is not None:
            row.update(self.screen.as_dict())
        return row


def _provenance(summary: dict[str, Any]) -> str | None:
    prov = summary.get("provenance")
    if not prov:
        return None
    return ", ".join(f"{k}: {v}" for k, v in prov.items())


@dataclass
class PlanResult:
    """The recommendation, the colocated baseline, and every candidate with its verdict."""

    scenario: Scenario
    objective: str
    results: list[CandidateResult]
    best: CandidateResult | None
    baseline: CandidateResult | None
    settings: dict[str, Any]
    wall_s: float = 0.0
    simulations: int = 0
    backend: str = "inline"
    workers: int = 1

    @property
    def ranked(self) -> list[CandidateResult]:
        return sorted(
            (r for r in self.results if r.verdict in ("recommended", "ranked")),
            key=lambda r: _rank_key(self.objective, r),
        )

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for r in self.results:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate, best first: verdict, reason, deployment, metrics, bounds."""
        sla = self.scenario.spec.sla
        frame = pd.DataFrame([r.row() for r in self.results])
        frame["sla_ttft_s"] = sla.ttft
        frame["sla_tpot_s"] = sla.tpot
        order = {r.id: i for i, r in enumerate(self.ranked)}
        frame["_v"] = frame["verdict"].map({v: i for i, v in enumerate(VERDICTS)})
        frame["_r"] = frame["id"].map(order).fillna(len(order))
        frame = frame.sort_values(["_v", "_r", "id"]).drop(columns=["_v", "_r"])
        return frame.reset_index(drop=True)

    def explain_failure(self) -> str:
        """Why no candidate meets the SLA: which bound failed, by how much."""
        sla = self.scenario.spec.sla
        lines = [
            f"No candidate meets the SLA (TTFT ≤ {sla.ttft:g} s and TPOT ≤ {sla.tpot * 1e3:g} ms "
            f"at p{sla.percentile:g}, for {sla.attainment:.0%} of requests)"
            + (f" at {self.settings['min_rate']:g} req/s" if self.settings.get("min_rate") else "")
            + "."
        ]
        simulated = [r for r in self.results if r.points]
        if simulated:
            closest = max(simulated, key=lambda r: max(p["attainment"] for p in r.points))
            p = max(closest.points, key=lambda q: q["attainment"])
            over = []
            if p["ttft_at_sla_percentile_s"] and p["ttft_at_sla_percentile_s"] > sla.ttft:
                over.append(
                    f"TTFT p{sla.percentile:g} {p['ttft_at_sla_percentile_s']:.3g} s, "
                    f"{p['ttft_at_sla_percentile_s'] / sla.ttft - 1:.0%} over"
                )
            if p["tpot_at_sla_percentile_s"] and p["tpot_at_sla_percentile_s"] > sla.tpot:
                over.append(
                    f"TPOT p{sla.percentile:g} {p['tpot_at_sla_percentile_s'] * 1e3:.3g} ms, "
                    f"{p['tpot_at_sla_percentile_s'] / sla.tpot - 1:.0%} over"
                )
            lines.append(
                f"Closest simulated: {closest.label}: at {p['rate']:.3g} req/s, attainment "
                f"{p['attainment']:.0%}" + (f" ({'; '.join(over)})" if over else "") + "."
            )
        screened = [r for r in self.results if r.screen is not None and r.screen.hopeless]
        if screened:
            best = max(screened, key=lambda r: r.screen.zero_load_attainment)  # type: ignore[union-attr]
            lines.append(
                f"{len(screened)} candidates cannot meet it even with no load; the closest, "
                f"{best.label}: {best.screen.hopeless}."  # type: ignore[union-attr]
            )
        others: dict[str, int] = {}
        for r in self.results:
            if r.verdict in ("invalid", "screened") and not (r.screen and r.screen.hopeless):
                key = r.reason.split(":")[0][:80]
                others[key] = others.get(key, 0) + 1
        for key, n in sorted(others.items(), key=lambda kv: -kv[1])[:4]:
            lines.append(f"{n} candidates: {key}.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The content of plan.json: the same for any backend and worker count."""
        frame = self.to_frame()
        records = json.loads(frame.to_json(orient="records"))
        by_id = {rec["id"]: rec for rec in records}
        spec = self.scenario.spec
        return {
            "scenario": spec.name,
            "model": spec.model,
            "objective": self.objective,
            "objective_unit": OBJECTIVE_UNITS[self.objective],
            "sla": {
                "ttft_s": spec.sla.ttft,
                "tpot_s": spec.sla.tpot,
                "percentile": spec.sla.percentile,
                "attainment": spec.sla.attainment,
            },
            "settings": self.settings,
            "counts": self.counts(),
            "best": _deployment(self.best, by_id) if self.best else None,
            "colocated_baseline": _deployment(self.baseline, by_id) if self.baseline else None,
            "explanation": None if self.best else self.explain_failure(),
            "candidates": [by_id[r.id] for r in self.ranked],
            "all_candidates": len(records),
        }

    def write(self, out: str | Path) -> list[Path]:
        """plan.json (best, baseline, ranked candidates) and candidates.csv (every candidate)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        plan_json = out / "plan.json"
        plan_json.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        csv = out / "candidates.csv"
        self.to_frame().to_csv(csv, index=False)
        return [plan_json, csv]


def _deployment(r: CandidateResult, by_id: dict[int, dict[str, Any]]) -> dict[str, Any]:
    c = r.candidate
    pools = {role: choice.as_dict() for role, choice in c.roles.items()}
    return {
        "id": c.id,
        "label": c.label,
        "kind": c.kind,
        "pools": pools,
        "pd_ratio": c.pd_ratio,
        "transfer_format": c.transfer_format,
        "protocol": c.protocol,
        "boundary": r.boundary,
        "goodput": r.goodput,
        "objective": r.objective,
        "cost_per_hour": r.cost_per_hour,
        "metrics": by_id[c.id],
        "rates_tried": r.points,
    }


def _objective(objective: str, c: CandidateResult, rate: float) -> float:
    if objective == "goodput":
        return rate
    if objective == "goodput_per_device":
        return rate / c.candidate.devices
    if objective == "goodput_per_dollar":
        return rate * 3600 / c.cost_per_hour if c.cost_per_hour else math.inf
    return -c.cost_per_hour  # cheapest_for_rate: higher is better


def _rank_key(objective: str, r: CandidateResult) -> tuple[float, float, int]:
    return (-r.objective, r.tail(), r.id)


def _needed_rate(objective: str, c: CandidateResult, best: float) -> float:
    """The arrival rate at which ``c``'s objective would equal ``best``."""
    if objective == "goodput":
        return best
    if objective == "goodput_per_device":
        return best * c.candidate.devices
    return best * c.cost_per_hour / 3600


def plan(
    scenario: Scenario | str | Path,
    overrides: list[str] | None = None,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    max_requests: int | None = None,
    wave: int = 2,
    estimate_margin: float = 1.5,
    exhaustive: bool = False,
    progress: Callable[[dict[str, int]], None] | None = None,
) -> PlanResult:
    """Search the scenario's ``search:`` space; return the ranked candidates and the best.

    ``backend``: ``local`` (a process pool of ``workers``, default all cores) or ``ray``
    (``address`` of the cluster; None starts a local Ray). ``max_requests`` caps each
    simulation's workload. ``wave``: candidates simulated per round (results depend on it, not
    on the backend or worker count). ``estimate_margin``: skip a candidate whose queueing
    estimate, times this margin, still falls short of the best measured. ``exhaustive``: no
    screening or pruning — every valid candidate gets a full goodput search (for checking the
    planner). ``progress`` receives counts: total, screened, simulated, beaten, remaining,
    simulations.
    """
    started = time.perf_counter()
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides or [])
    elif overrides:
        raise ValueError("overrides apply to scenario files; pass a path or use load_scenario")
    search = scenario.spec.search or SearchSpec()
    objective = search.objective
    min_rate = search.min_rate
    if objective == "cheapest_for_rate" and min_rate is None:
        raise InputError(
            "the cheapest_for_rate objective needs the rate to serve",
            file=scenario.path,
            field="search.min_rate",
            allowed="a request rate in requests/s, e.g. min_rate: 2.5",
        )
    grid = RateGrid(search.rel_tol)
    if max_requests is None:
        max_requests = search.max_requests
    settings = {
        "rel_tol": search.rel_tol,
        "max_requests": max_requests,
        "wave": wave,
        "estimate_margin": None if exhaustive else estimate_margin,
        "exhaustive": exhaustive,
        "min_rate": min_rate,
        "budget_per_hour": search.budget_per_hour,
        "inventory": dict(search.inventory),
        "seed": scenario.spec.seed,
    }
    counts = {"total": 0, "screened": 0, "simulated": 0, "beaten": 0, "simulations": 0}

    def report(remaining: int) -> None:
        if progress is not None:
            progress({**counts, "remaining": remaining})

    candidates = enumerate_candidates(scenario, search)
    counts["total"] = len(candidates)
    results = [CandidateResult(c) for c in candidates]
    sample = WorkloadSample.of(scenario)
    costs = PoolCosts()  # this plan's: a later plan in the process starts afresh
    pending: list[CandidateResult] = []
    for r in results:
        _screen_one(r, scenario, search, sample, costs, exhaustive)
        if r.verdict == "pending":
            pending.append(r)
        else:
            counts["screened"] += 1
        report(len(results) - counts["screened"])

    def promise(r: CandidateResult) -> tuple:
        assert r.screen is not None
        if objective == "cheapest_for_rate":
            return (r.cost_per_hour, -r.screen.estimate, r.id)
        return (-_objective(objective, r, r.screen.estimate), r.id)

    pending.sort(key=promise)
    remaining = len(pending)
    chosen = make_backend("inline" if workers == 1 else backend, workers, address)
    path = str(scenario.path) if scenario.path else None
    try:
        while pending:
            best = _best(results, objective)
            tasks: list[dict[str, Any]] = []
            members: list[CandidateResult] = []
            while pending and len(tasks) < wave:
                r = pending.pop(0)
                task = _task(r, best, objective, min_rate, estimate_margin, exhaustive, grid)
                if task is None:  # beaten without simulation
                    counts["beaten"] += 1
                    remaining -= 1
                    report(remaining)
                    continue
                task.update(_task_data(r, path, search, max_requests))
                tasks.append(task)
                members.append(r)
            for i, out in chosen.map(tasks):
                _record(members[i], out, best, objective, min_rate, counts)
                remaining -= 1
                report(remaining)
        best = _best(results, objective)
        baseline = _baseline(results, objective, best, chosen, path, search, max_requests, counts)
        best = _best(results, objective)  # a baseline searched in full may turn out better
        if baseline is best:
            baseline = None
    finally:
        chosen.close()
    for r in results:
        if r.verdict == "ranked" and best is not None and r.id == best.id:
            r.verdict = "recommended"
            r.reason = (
                "best "
                + OBJECTIVE_UNITS[objective]
                + " of all candidates"
                + (" (ties broken by tail latency)" if _tied(results, r) else "")
            )
    report(0)
    return PlanResult(
        scenario=scenario,
        objective=objective,
        results=results,
        best=best,
        baseline=baseline,
        settings=settings,
        wall_s=time.perf_counter() - started,
        simulations=counts["simulations"],
        backend=chosen.name,
        workers=chosen.workers,
    )


def _tied(results: list[CandidateResult], best: CandidateResult) -> bool:
    return any(
        r is not best and r.verdict == "ranked" and r.objective == best.objective for r in results
    )


def _screen_one(
    r: CandidateResult,
    scenario: Scenario,
    search: SearchSpec,
    sample: WorkloadSample,
    costs: PoolCosts,
    exhaustive: bool,
) -> None:
    c = r.candidate
    if c.scenario is None:
        r.verdict, r.reason = "invalid", (c.error or "does not validate").splitlines()[0]
        # the scenario file's name prefixes every message; the candidate is not that file
        if scenario.path is not None:
            r.reason = r.reason.removeprefix(f"{scenario.path}: ")
        return
    r.cost_per_hour = c.scenario.cost_per_hour()
    if c.kind == "disaggregated":
        from hetsim.kv.portability import handoff_conversions

        spec = c.scenario.spec
        p = next(x for x in spec.pools if x.role == "prefill")
        d = next(x for x in spec.pools if x.role == "decode")
        r.boundary = handoff_conversions(c.scenario, p, d).verdict.kind
    for acc, n in c.devices_by_accelerator.items():
        have = search.inventory.get(acc)
        if have is not None and n > have:
            r.verdict = "screened"
            r.reason = f"needs {n} {acc}, the inventory has {have}"
            return
    budget = search.budget_per_hour
    if budget is not None and r.cost_per_hour > budget:
        r.verdict = "screened"
        r.reason = f"costs ${r.cost_per_hour:,.2f}/h, over the ${budget:,.2f}/h budget"
        return
    r.screen = screen(c.scenario, sample, costs)
    if exhaustive:
        return
    if r.screen.hopeless:
        r.verdict, r.reason = "screened", f"hopeless: {r.screen.hopeless}"
        return
    if search.min_rate is not None and r.screen.rate_bound < search.min_rate:
        r.verdict = "screened"
        r.reason = (
            f"at most {r.screen.rate_bound:.3g} req/s ({r.screen.bound_by} bound), below "
            f"min_rate {search.min_rate:g}"
        )


def _best(results: list[CandidateResult], objective: str) -> CandidateResult | None:
    ranked = [r for r in results if r.verdict == "ranked"]
    return min(ranked, key=lambda r: _rank_key(objective, r)) if ranked else None


def _task(
    r: CandidateResult,
    best: CandidateResult | None,
    objective: str,
    min_rate: float | None,
    margin: float,
    exhaustive: bool,
    grid: RateGrid,
) -> dict[str, Any] | None:
    """The search to run for ``r`` given the best so far, or None when it is beaten as is."""
    assert r.screen is not None
    sr = r.screen
    start = max(sr.estimate, 1e-3)
    if exhaustive:
        return {"start": start}
    if objective == "cheapest_for_rate":
        assert min_rate is not None
        if best is not None and r.cost_per_hour > best.cost_per_hour:
            r.verdict = "beaten"
            r.reason = (
                f"costs ${r.cost_per_hour:,.2f}/h, more than #{best.id} "
                f"(${best.cost_per_hour:,.2f}/h) which serves {min_rate:g} req/s"
            )
            return None
        return {"start": start, "must_reach": min_rate}
    need = min_rate
    if best is not None:
        bound = _objective(objective, r, sr.rate_bound)
        if bound < best.objective:
            r.verdict = "beaten"
            r.reason = (
                f"its {sr.bound_by} bound ({sr.rate_bound:.3g} req/s) gives at most "
                f"{bound:.4g} {OBJECTIVE_UNITS[objective]}, below #{best.id}'s measured "
                f"{best.objective:.4g}"
            )
            return None
        estimate = _objective(objective, r, sr.estimate)
        if estimate * margin < best.objective:
            r.verdict = "beaten"
            r.reason = (
                f"its queueing estimate ({sr.estimate:.3g} req/s) gives {estimate:.4g} "
                f"{OBJECTIVE_UNITS[objective]}, under #{best.id}'s measured {best.objective:.4g} "
                f"even with a {margin:g}x margin"
            )
            return None
        needed = _needed_rate(objective, r, best.objective)
        need = needed if need is None else max(need, needed)
    task: dict[str, Any] = {"start": start}
    if need is not None:
        task["must_reach"] = need
    return task


def _task_data(
    r: CandidateResult, path: str | None, search: SearchSpec, max_requests: int | None
) -> dict[str, Any]:
    """What every task carries: the candidate as plain data and the search settings."""
    return {
        "id": r.id,
        "scenario": r.candidate.data,
        "path": path,
        "rel_tol": search.rel_tol,
        "max_requests": max_requests,
    }


def _record(
    r: CandidateResult,
    out: dict[str, Any],
    best: CandidateResult | None,
    objective: str,
    min_rate: float | None,
    counts: dict[str, int],
) -> None:
    counts["simulated"] += 1
    counts["simulations"] += len(out["points"])
    r.points = out["points"]
    target = out["target"]
    if out["beaten_at"] is not None:
        p = r.points[0]
        r.verdict = "beaten"
        # cheapest_for_rate always tests min_rate; the others the rate that beats the best
        if best is None or objective == "cheapest_for_rate":
            why = f"min_rate {min_rate:g}"
        else:
            why = f"the rate it needs to beat #{best.id}"
        r.reason = (
            f"at {out['beaten_at']:.3g} req/s ({why}) attainment is {p['attainment']:.1%} "
            f"< {target:.0%}"
        )
        return
    r.goodput = out["rate"]
    r.attainment = out["attainment"]
    r.summary = out["summary"]
    if r.goodput <= 0:
        low = min(r.points, key=lambda q: q["rate"])
        r.verdict = "fails_sla"
        r.reason = (
            f"misses the SLA even at {low['rate']:.3g} req/s (attainment {low['attainment']:.1%})"
        )
        return
    if min_rate is not None and r.goodput < min_rate:
        r.verdict = "fails_sla"
        r.reason = f"goodput {r.goodput:.3g} req/s is below min_rate {min_rate:g}"
        return
    r.verdict = "ranked"
    r.objective = _objective(objective, r, r.goodput)
    r.reason = f"goodput {r.goodput:.3g} req/s, {r.objective:.4g} {OBJECTIVE_UNITS[objective]}"


def _baseline(
    results: list[CandidateResult],
    objective: str,
    best: CandidateResult | None,
    backend: Any,
    path: str | None,
    search: SearchSpec,
    max_requests: int | None,
    counts: dict[str, int],
) -> CandidateResult | None:
    """The best colocated deployment, searched in full if pruning left none measured."""
    colocated = [r for r in results if r.candidate.kind == "colocated"]
    if not colocated or (best is not None and best.candidate.kind == "colocated"):
        return None
    measured = [r for r in colocated if r.verdict == "ranked"]
    tried: list[CandidateResult] = []
    # those that came closest in their one simulation first, then by estimate: two tries
    unsearched = sorted(
        (r for r in colocated if r.screen is not None and r.verdict == "beaten"),
        key=lambda r: (
            -max((p["attainment"] for p in r.points), default=0.0),
            -_objective(objective, r, r.screen.estimate),  # type: ignore[union-attr]
            r.id,
        ),
    )
    while not measured and unsearched and len(tried) < 2:
        top = unsearched.pop(0)
        task = _task_data(top, path, search, max_requests)
        task["start"] = max(top.screen.estimate, 1e-3)  # type: ignore[union-attr]
        for _, out in backend.map([task]):
            reason = top.reason
            _record(top, out, None, objective, search.min_rate, counts)
            top.reason = f"{top.reason}; searched as the colocated baseline (had been: {reason})"
        tried.append(top)
        measured = [r for r in colocated if r.verdict == "ranked"]
    if not measured:
        return None
    chosen = min(measured, key=lambda r: _rank_key(objective, r))
    chosen.baseline = True
    return chosen
