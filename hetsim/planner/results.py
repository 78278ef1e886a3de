"""What a plan returns: every candidate's verdict with its evidence, and the recommendation.

Frozen records: the search builds each candidate's result anew as it learns more, and the
report and CLI read them without being able to change them. ``plan.json`` and
``candidates.csv`` are written from here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.metrics import RunSummary, requests_per_kwh, requests_per_usd, usd_per_million_tokens
from hetsim.outputs import staged
from hetsim.planner.network import NetworkNote, network_notes
from hetsim.planner.objective import Objective
from hetsim.planner.pareto import pareto_front
from hetsim.planner.screen import ScreenResult
from hetsim.planner.space import Candidate
from hetsim.planner.uncertainty import Robustness, robustness
from hetsim.planner.verdict import FINAL_VERDICTS, Verdict
from hetsim.spec.resolve import Scenario

__all__ = ["CandidateResult", "PlanResult", "tail_ratio", "tie_floor"]

_ROLE_COLUMNS = ("accelerator", "instances", "tp", "ep", "precision", "kv", "chunk_size",
                 "max_num_seqs")  # fmt: skip


def tail_ratio(summary: RunSummary | None) -> float:
    """TTFT and TPOT at the SLA percentile over their bounds, the larger (lower is better)."""
    if summary is None:
        return math.inf
    sla = summary.sla
    ttft, tpot = summary.ttft_at_sla_percentile_s, summary.tpot_at_sla_percentile_s
    parts = []
    if ttft is not None and sla.ttft_s:
        parts.append(ttft / sla.ttft_s)
    if tpot is not None and sla.tpot_s:
        parts.append(tpot / sla.tpot_s)
    return max(parts) if parts else math.inf


def tie_floor(best_objective: float, rel_tol: float) -> float:
    """The objective a candidate must exceed to tie with ``best_objective``.

    Goodput is known to one step of the rate grid: a goodput ``g`` means the true one lies in
    ``[g, g·(1 + rel_tol))``, and a candidate's objective scales with its goodput. Two
    candidates tie when those ranges overlap, i.e. when the lower objective times
    ``1 + rel_tol`` exceeds the higher one (two candidates of one price a full grid step apart
    do not tie: one met the SLA at the rate where the other missed it). The last factor only
    keeps that exact case from tying by a rounding error."""
    return best_objective / (1.0 + rel_tol) * (1.0 + 1e-9)


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's verdict, the reason for it and what was measured or bounded."""

    candidate: Candidate
    verdict: Verdict = Verdict.PENDING
    reason: str = ""
    cost_per_hour: float = math.nan
    screen: ScreenResult | None = None
    goodput: float = math.nan  # req/s; NaN when not searched to the end
    attainment: float = math.nan
    summary: RunSummary | None = None  # of the run at the goodput
    points: list[dict[str, Any]] = field(default_factory=list)
    objective: float = math.nan
    boundary: str | None = None  # identical / convertible (disaggregated only)
    baseline: bool = False
    # met the SLA at every rate searched up to its capacity bound: ``goodput`` is a lower bound
    goodput_at_limit: bool = False
    # a closed loop's: the largest concurrency meeting the SLA, where ``goodput`` was measured
    concurrency: int | None = None
    # whether its goodput search converged (None: not searched) and why not (see
    # :func:`hetsim.planner.goodput.convergence`)
    converged: bool | None = None
    not_converged: str | None = None
    # ranked within the goodput grid's resolution (rel_tol) of the best objective: a tie
    tie: bool = False

    @property
    def id(self) -> int:
        return self.candidate.id

    @property
    def label(self) -> str:
        """The deployment, and for a closed loop the concurrency its goodput is measured at
        (tables print this label beside the goodput)."""
        if self.concurrency is None:
            return self.candidate.label
        return f"{self.candidate.label} at concurrency {self.concurrency}"

    def tail(self) -> float:
        """TTFT and TPOT at the SLA percentile over their bounds, the larger (lower is better)."""
        return tail_ratio(self.summary)

    @property
    def power_w(self) -> float:
        """The deployment's full board power (every device at its tdp), W: what the energy
        objective charges it, as the per-dollar one charges its full price."""
        return deployment_power_w(self.candidate.scenario)

    def score(self, objective: Objective) -> float:
        """What its measured goodput scores on ``objective``: its ranked objective, or for one
        kept out of the ranking (yours below ``min_rate``) what that goodput would score."""
        if math.isfinite(self.objective):
            return self.objective
        return objective.score(self.goodput, self.candidate.devices, self.cost_per_hour,
                               self.power_w)  # fmt: skip

    @property
    def goodput_tokens_per_s(self) -> float:
        """Output tokens/s at the goodput: its rate times the output tokens per completed
        request of the run measured there (not that finite run's own throughput)."""
        return self.goodput * _tokens_per_request(self.summary)

    def rank_key(self) -> tuple[float, float, int]:
        """Best first: the objective, then tail latency, then the candidate id."""
        return (-self.objective, self.tail(), self.id)

    def row(self) -> dict[str, Any]:
        """The candidate's line of candidates.csv."""
        c = self.candidate
        row: dict[str, Any] = {
            "id": c.id,
            "label": c.label,
            "kind": c.kind,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "baseline": self.baseline,
            "own_deployment": c.own,
            "tie": self.tie,
            "converged": self.converged,
            "not_converged": self.not_converged,
            "pd_ratio": c.pd_ratio,
            "devices": c.devices,
            "transfer_format": c.transfer_format,
            "protocol": c.protocol,
            "boundary": self.boundary,
            "skipped_faults": "; ".join(c.skipped_faults),
            "interconnect": c.interconnect,
        }
        for role in ("prefill", "decode", "serve"):
            choice = c.roles.get(role)
            for k in _ROLE_COLUMNS:
                row[f"{role}_{k}"] = None if choice is None else choice.as_dict()[k]
        row.update(self._measured())
        if self.screen is not None:
            row.update(self.screen.as_dict())
        return row

    def _measured(self) -> dict[str, Any]:
        c, s = self.candidate, self.summary
        return {
            "cost_per_hour": self.cost_per_hour,
            "goodput": self.goodput,
            "goodput_at_limit": self.goodput_at_limit,
            "goodput_concurrency": self.concurrency,
            "goodput_per_device": self.goodput / c.devices if c.devices else math.nan,
            # cost and energy at the goodput (hetsim.metrics defines each once)
            "requests_per_dollar": requests_per_usd(self.goodput, self.cost_per_hour)
            if self.cost_per_hour
            else math.nan,
            "cost_per_million_tokens": usd_per_million_tokens(
                self.cost_per_hour, self.goodput_tokens_per_s
            ),
            "power_w": self.power_w,
            "requests_per_kwh": requests_per_kwh(self.goodput, self.power_w)
            if self.power_w
            else math.nan,
            # the run at the goodput, busy-weighted (the objective charges full power)
            "run_tokens_per_joule": s.energy.tokens_per_joule if s and s.energy else None,
            "objective": self.objective,
            "attainment": self.attainment,
            "ttft_p50_s": s.ttft_s.p50 if s else None,
            "ttft_p90_s": s.ttft_s.p90 if s else None,
            "ttft_p99_s": s.ttft_s.p99 if s else None,
            "tpot_p50_s": s.tpot_s.p50 if s else None,
            "tpot_p90_s": s.tpot_s.p90 if s else None,
            "tpot_p99_s": s.tpot_s.p99 if s else None,
            "ttft_p_s": s.ttft_at_sla_percentile_s if s else None,
            "tpot_p_s": s.tpot_at_sla_percentile_s if s else None,
            "throughput_tokens_per_s": s.throughput_tokens_per_s if s else None,
            "provenance": _provenance(s),
            "simulations": len(self.points),
        }


def _tokens_per_request(summary: RunSummary | None) -> float:
    """Output tokens per completed request of a run (NaN without one)."""
    if summary is None or not summary.completed:
        return math.nan
    return summary.throughput_tokens_per_s * summary.span_s / summary.completed


def deployment_power_w(scenario: Scenario | None) -> float:
    """Every device of the deployment at its board power (tdp), in W (NaN: no scenario)."""
    if scenario is None:
        return math.nan
    return sum(p.total_devices * scenario.profiles[p.name].tdp.value for p in scenario.spec.pools)


def _provenance(summary: RunSummary | None) -> str | None:
    if summary is None or not summary.provenance:
        return None
    return ", ".join(f"{k}: {v}" for k, v in summary.provenance.items())


@dataclass(frozen=True)
class PlanResult:
    """The recommendation, the colocated baseline, and every candidate with its verdict.
    ``best`` and ``baseline`` are members of ``results``."""

    scenario: Scenario
    objective: Objective
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
        """The searched candidates, the recommended first (a tie's break may put it ahead of
        a higher objective), then by :meth:`CandidateResult.rank_key`."""
        return sorted(
            (r for r in self.results if r.verdict.measured),
            key=lambda r: (r.verdict is not Verdict.RECOMMENDED, *r.rank_key()),
        )

    @property
    def own(self) -> CandidateResult | None:
        """The scenario's own deployment (None only for a plan made before it was marked)."""
        return next((r for r in self.results if r.candidate.own), None)

    @property
    def tied(self) -> list[CandidateResult]:
        """The candidates tied for the best (the recommended first); empty without a tie."""
        return [r for r in self.ranked if r.tie]

    def counts(self) -> dict[Verdict, int]:
        out = dict.fromkeys(FINAL_VERDICTS, 0)
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
        frame["_v"] = frame["verdict"].map({v.value: i for i, v in enumerate(FINAL_VERDICTS)})
        frame["_r"] = frame["id"].map(order).fillna(len(order))
        frame = frame.sort_values(["_v", "_r", "id"]).drop(columns=["_v", "_r"])
        return frame.reset_index(drop=True)

    def price_basis(self) -> str:
        """The basis every candidate's price is on, with the conversions applied (one line)."""
        profiles = {
            p.name: p
            for s in [self.scenario, *(r.candidate.scenario for r in self.results)]
            if s is not None
            for p in s.profiles.values()
        }
        return self.scenario.spec.costs.basis_line(profiles.values())

    def pareto(self) -> list[int]:
        """Ids of the candidates on the cost/goodput Pareto front, cheapest first."""
        return [int(i) for i in pareto_front(self.to_frame())["id"]]

    def network(self) -> list[NetworkNote]:
        """For each ranked disaggregated candidate, best first, then the scenario's own
        deployment if it is not ranked: whether a link binds it and the same deployment over
        the other interconnects (none without alternatives)."""
        judged = list(self.ranked)
        if self.own is not None and self.own not in judged:
            judged.append(self.own)
        return network_notes(self.results, judged, self.objective)

    def skipped_faults(self) -> list[str]:
        """One line per set of the scenario's faults some candidates were simulated without
        (they lack the instance or hop the fault names), with those candidates' ids."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for r in sorted(self.results, key=lambda r: r.id):
            if r.candidate.skipped_faults:
                groups.setdefault(r.candidate.skipped_faults, []).append(r.id)
        return [
            f"{', '.join(faults)}: not applied to candidate"
            + ("s " if len(ids) > 1 else " ")
            + ", ".join(f"#{i}" for i in ids)
            + " (no such target there)"
            for faults, ids in groups.items()
        ]

    def explain_failure(self) -> str:
        """Why no candidate meets the SLA: which bound failed, by how much."""
        sla = self.scenario.spec.sla
        min_rate = self.settings.get("min_rate")
        lines = [
            f"No candidate meets the SLA (TTFT ≤ {sla.ttft:g} s and TPOT ≤ {sla.tpot * 1e3:g} ms "
            f"at p{sla.percentile:g}, for {sla.attainment:.0%} of requests)"
            + (f" at {min_rate:g} req/s" if min_rate else "")
            + "."
        ]
        simulated = [r for r in self.results if r.points]
        if simulated:
            lines.append(_closest_simulated(simulated, self.scenario))
        screened = [r for r in self.results if r.screen is not None and r.screen.hopeless]
        if screened:
            best = max(screened, key=lambda r: r.screen.zero_load_attainment)  # type: ignore[union-attr]
            lines.append(
                f"{len(screened)} candidates cannot meet it even with no load; the closest, "
                f"{best.label}: {best.screen.hopeless}."  # type: ignore[union-attr]
            )
        others: dict[str, int] = {}
        for r in self.results:
            if r.verdict in (Verdict.INVALID, Verdict.SCREENED) and not (
                r.screen and r.screen.hopeless
            ):
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
            "objective": self.objective.value,
            "objective_unit": self.objective.unit,
            "price_basis": self.price_basis(),
            "sla": {
                "ttft_s": spec.sla.ttft,
                "tpot_s": spec.sla.tpot,
                "percentile": spec.sla.percentile,
                "attainment": spec.sla.attainment,
            },
            "settings": self.settings,
            "skipped_faults": self.skipped_faults(),
            "counts": {v.value: n for v, n in self.counts().items()},
            "best": _deployment(self.best, by_id) if self.best else None,
            "colocated_baseline": _deployment(self.baseline, by_id) if self.baseline else None,
            "own_deployment": self._own_dict(by_id),
            "tie": [r.id for r in self.tied],
            "tie_break": self.settings.get("tie_break"),
            "explanation": None if self.best else self.explain_failure(),
            "candidates": [by_id[r.id] for r in self.ranked],
            "pareto": [int(i) for i in pareto_front(frame)["id"]],
            "network": [n.as_dict() for n in self.network()],
            "robustness": _as_dict(self.robustness()),
            "all_candidates": len(records),
        }

    def robustness(self) -> Robustness | None:
        """How far assumed step times and prices may move before the recommendation changes
        (:mod:`hetsim.planner.uncertainty`); None without a recommendation."""
        if self.best is None:
            return None
        others = [*self.ranked, *(r for r in (self.own, self.baseline) if r is not None)]
        unique = list({r.id: r for r in others}.values())
        return robustness(self.best, unique, self.objective)

    def _own_dict(self, by_id: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
        """The scenario's own deployment with its verdict and reason (invalid ones too)."""
        own = self.own
        if own is None:
            return None
        return {**_deployment(own, by_id), "verdict": own.verdict.value, "reason": own.reason}

    def write(self, out: str | Path) -> list[Path]:
        """plan.json (best, baseline, ranked candidates, Pareto front) and candidates.csv
        (every candidate), written whole into ``out`` (see :mod:`hetsim.outputs`): files an
        earlier run wrote there and this one does not are removed."""
        with staged(out) as stage:
            plan_json = stage.dir / "plan.json"
            plan_json.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            csv = stage.dir / "candidates.csv"
            self.to_frame().to_csv(csv, index=False)
        return stage.final([plan_json, csv])


def _closest_simulated(simulated: list[CandidateResult], scenario: Scenario) -> str:
    """The simulated candidate that came closest to the attainment target, and by how much
    its latencies missed."""
    sla = scenario.spec.sla
    closest = max(simulated, key=lambda r: max(p["attainment"] for p in r.points))
    p = max(closest.points, key=lambda q: q["attainment"])
    where = f"{p['rate']:.3g} req/s"
    if "concurrency" in p:  # a closed loop: the rate is what its clients reached
        where = f"concurrency {p['concurrency']} ({where})"
    ttft, tpot = p["ttft_at_sla_percentile_s"], p["tpot_at_sla_percentile_s"]
    over = []
    if ttft and ttft > sla.ttft:
        over.append(f"TTFT p{sla.percentile:g} {ttft:.3g} s, {ttft / sla.ttft - 1:.0%} over")
    if tpot and tpot > sla.tpot:
        over.append(f"TPOT p{sla.percentile:g} {tpot * 1e3:.3g} ms, {tpot / sla.tpot - 1:.0%} over")
    return (
        f"Closest simulated: {closest.label}: at {where}, attainment "
        f"{p['attainment']:.0%}" + (f" ({'; '.join(over)})" if over else "") + "."
    )


def _deployment(r: CandidateResult, by_id: dict[int, dict[str, Any]]) -> dict[str, Any]:
    c = r.candidate
    return {
        "id": c.id,
        "label": c.label,
        "kind": c.kind,
        "pools": {role: choice.as_dict() for role, choice in c.roles.items()},
        "pd_ratio": c.pd_ratio,
        "transfer_format": c.transfer_format,
        "protocol": c.protocol,
        "interconnect": c.interconnect,
        "boundary": r.boundary,
        "goodput": r.goodput,
        "concurrency": r.concurrency,
        "objective": r.objective,
        "cost_per_hour": r.cost_per_hour,
        "metrics": by_id[c.id],
        "rates_tried": r.points,
    }


def _as_dict(robust: Robustness | None) -> dict[str, Any] | None:
    return None if robust is None else robust.as_dict()
