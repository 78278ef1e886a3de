"""Figures and the HTML report of a plan (``hetsim plan --plots / --report``).

The report answers, in this order, what a reviewer asks of a recommendation: what was asked,
what is recommended and why, what bounds it, how robust it is, and what was assumed; then the
ranking, the figures and every candidate's verdict. Every number comes from the
:class:`~hetsim.planner.results.PlanResult`; only its text is made here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hetsim.planner.objective import Objective
from hetsim.planner.verdict import Verdict
from hetsim.report.describe import unmeasured_note
from hetsim.report.display import (
    dollars_per_hour,
    milliseconds,
    objective_heading,
    objective_text,
    plain,
    plain_numbers,
    plan_aliases,
    result_label,
)
from hetsim.report.html import Section, html_report
from hetsim.report.plots import latency_vs_rate, pareto, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hetsim.planner.results import CandidateResult, PlanResult

__all__ = ["candidate_table", "plan_figures", "write_plan_plots", "write_plan_report"]


def _rate_sweep(r: CandidateResult) -> Figure | None:
    if not r.points or r.summary is None:
        return None
    frame = pd.DataFrame(r.points).sort_values("rate", ignore_index=True)
    return latency_vs_rate(frame, r.summary.sla, r.goodput, lower_bound=r.goodput_at_limit)


def _pareto(result: PlanResult) -> Figure:
    """Cost vs goodput and TTFT vs TPOT of every simulated candidate, named by id."""
    aliases = plan_aliases(result)
    return pareto(result.to_frame(), {r.id: result_label(r, aliases) for r in result.results})


def plan_figures(result: PlanResult) -> dict[str, Figure]:
    """pareto (cost vs goodput; TTFT vs TPOT) and the recommended deployment's rate sweep
    (every rate its goodput search simulated)."""
    figures: dict[str, Figure] = {"pareto": _pareto(result)}
    if result.best is not None:
        sweep = _rate_sweep(result.best)
        if sweep is not None:
            figures["best_latency_vs_rate"] = sweep
    return figures


def write_plan_plots(result: PlanResult, out: str | Path, svg: bool = True) -> list[Path]:
    """pareto.png (and .svg), best_latency_vs_rate.png (and .svg) in ``out``."""
    formats = ("png", "svg") if svg else ("png",)
    written: list[Path] = []
    for name, fig in plan_figures(result).items():
        written += save_figure(fig, out, name, formats)
    return written


# ---- tables ---------------------------------------------------------------------------------


def _role_tag(result: PlanResult, r: CandidateResult) -> str:
    tags = []
    if r is result.best:
        tags.append("recommended")
    elif r.tie:
        tags.append("tie")
    if r.baseline:
        tags.append("colocated baseline")
    if r.candidate.own:
        tags.append("yours")
    return ", ".join(tags)


def candidate_table(result: PlanResult, rows: list[CandidateResult]) -> pd.DataFrame:
    """``rows`` with display names and human units: goodput in req/s, the objective in its
    unit, $/h, TTFT and TPOT at the SLA percentile in ms, $ per million output tokens."""
    aliases = plan_aliases(result)
    pct = f"p{result.scenario.spec.sla.percentile:g}"
    objective = result.objective
    records = []
    for r in rows:
        s = r.summary
        # yours below min_rate: what its goodput scores
        score = r.score(objective) if r.goodput > 0 else r.objective
        goodput = plain(r.goodput) if r.goodput > 0 else "–"
        record: dict[str, Any] = {
            "#": r.id,
            "": _role_tag(result, r),
            "deployment": result_label(r, aliases),
            "goodput (req/s)": ("≥ " if r.goodput_at_limit else "") + goodput,
        }
        if objective not in (Objective.GOODPUT, Objective.CHEAPEST_FOR_RATE):
            record[objective_heading(objective)] = objective_text(objective, score)
        record |= {
            "cost ($/h)": dollars_per_hour(r.cost_per_hour),
            f"TTFT {pct} (ms)": milliseconds(s.ttft_at_sla_percentile_s if s else None),
            f"TPOT {pct} (ms)": milliseconds(s.tpot_at_sla_percentile_s if s else None),
            "$ per M output tokens": plain(r.row()["cost_per_million_tokens"]),
            "KV boundary": r.boundary or "–",
        }
        records.append(record)
    if not records:
        return pd.DataFrame(columns=["deployment"]).rename_axis("#")
    return pd.DataFrame(records).set_index("#")


def _shown(result: PlanResult, top: int = 10) -> list[CandidateResult]:
    """The ranked candidates (at most ``top``), then the baseline and yours if not among them."""
    shown = result.ranked[:top]
    for extra in (result.baseline, result.own):
        if extra is not None and extra not in shown and extra.goodput == extra.goodput:
            shown.append(extra)
    return shown


def _verdicts_table(result: PlanResult) -> pd.DataFrame:
    aliases = plan_aliases(result)
    frame = pd.DataFrame(
        [
            {
                "#": r.id,
                "deployment": result_label(r, aliases),
                "verdict": r.verdict.value,
                "reason": plain_numbers(r.reason),
            }
            for r in sorted(result.results, key=lambda r: r.id)
        ]
    )
    return frame.set_index("#")


# ---- the sections a reviewer reads ------------------------------------------------------------


def _workload_line(result: PlanResult) -> str:
    from hetsim.report.html import _length

    wl = result.scenario.spec.workload
    if wl.synthetic is not None:
        s = wl.synthetic
        return (
            f"synthetic {s.arrival} arrivals, {s.requests:,} requests; input "
            f"{_length(s.input_tokens)}, output {_length(s.output_tokens)}"
        )
    if wl.trace is not None:
        return f"{wl.trace.format} trace {wl.trace.path}"
    if wl.closed_loop is not None:
        c = wl.closed_loop
        return f"closed loop of {c.concurrency} clients, {c.requests:,} requests"
    return "–"


def _asked(result: PlanResult) -> Section:
    spec = result.scenario.spec
    sla = spec.sla
    objective = result.objective
    if objective is Objective.CHEAPEST_FOR_RATE:
        goal = f"the lowest cost ($/h) that serves {plain(result.settings.get('min_rate'))} req/s"
    else:
        goal = f"the most {objective.unit} (objective {objective.value})"
    counts = result.counts()
    settings = result.settings
    bullets = [
        f"Model: {spec.model}. Workload: {_workload_line(result)}.",
        f"SLA: TTFT ≤ {sla.ttft * 1e3:,.0f} ms and TPOT ≤ {sla.tpot * 1e3:g} ms at the "
        f"p{sla.percentile:g}, for at least {sla.attainment:.0%} of requests.",
        f"Goal: {goal} within that SLA; goodput is the highest request rate that meets it.",
        f"Searched {sum(counts.values())} candidate deployments: "
        + ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
        + f"; {result.simulations:,} simulations ({result.backend}, {result.workers} "
        f"worker{'s' if result.workers != 1 else ''}).",
        f"Goodput resolution: the rate grid's {settings['rel_tol']:.0%} step"
        + (
            f"; {settings['max_requests']:,} requests per simulation"
            if settings.get("max_requests")
            else ""
        )
        + ".",
    ]
    bullets += [f"Faults: {line}." for line in result.skipped_faults()]
    return Section("What was asked", bullets=bullets)


def _versus(result: PlanResult, b: CandidateResult, other: CandidateResult, what: str) -> str:
    """How the recommendation compares with ``other`` on the objective."""
    aliases = plan_aliases(result)
    objective = result.objective
    mine = b.score(objective)
    if other.verdict not in (Verdict.RECOMMENDED, Verdict.RANKED) or not other.goodput > 0:
        # not ranked (below min_rate, beaten early): its verdict, not a score beside ours
        return (
            f"{what} (#{other.id}, {result_label(other, aliases)}): {other.verdict.value}: "
            f"{plain_numbers(other.reason)}."
        )
    theirs = other.score(objective)
    if objective is Objective.CHEAPEST_FOR_RATE:
        change = f"{(-mine) / (-theirs) - 1:+.0%} cost vs it"  # scores are minus the price
    else:
        change = f"{mine / theirs - 1:+.0%} {objective.unit} vs it" if theirs > 0 else ""
    tie = " (a tie: within the goodput grid's step)" if other.tie else ""
    return (
        f"{what} (#{other.id}, {result_label(other, aliases)}): "
        f"{objective_text(objective, theirs, unit=True)}; the recommendation: {change}{tie}."
    )


def _recommended(result: PlanResult) -> Section:
    b = result.best
    if b is None:
        return Section("No deployment meets the SLA", text=result.explain_failure())
    sla = result.scenario.spec.sla
    s = b.summary
    pct = f"p{sla.percentile:g}"
    aliases = plan_aliases(result)
    at = "at least " if b.goodput_at_limit else ""
    bullets = [
        f"Deployment #{b.id}: {result_label(b, aliases)}"
        + (f" (P:D {b.candidate.pd_ratio})" if b.candidate.pd_ratio else "")
        + f". Full label: {b.label}.",
        f"Goodput {at}{plain(b.goodput)} req/s at ${dollars_per_hour(b.cost_per_hour)}/h"
        + (
            "."  # the price is the objective
            if result.objective is Objective.CHEAPEST_FOR_RATE
            else f": {objective_text(result.objective, b.objective, unit=True)}."
        ),
    ]
    if s is not None:
        bullets.append(
            f"At its goodput: TTFT {pct} {milliseconds(s.ttft_at_sla_percentile_s)} ms "
            f"(bound {sla.ttft * 1e3:,.0f} ms), TPOT {pct} "
            f"{milliseconds(s.tpot_at_sla_percentile_s)} ms (bound {sla.tpot * 1e3:g} ms), "
            f"attainment {b.attainment:.1%} (target {sla.attainment:.0%})."
        )
    why = f"Why: {plain_numbers(b.reason)}." if b.reason else ""
    bullets.append(
        why or f"Why: the best {result.objective.unit} of the candidates with a measured goodput."
    )
    runner_up = next((r for r in result.ranked if r is not b), None)
    for other, what in ((runner_up, "Runner-up"), (result.baseline, "Colocated baseline"),
                        (result.own, "Yours, the scenario's own deployment")):  # fmt: skip
        if other is not None and other is not b:
            bullets.append(_versus(result, b, other, what))
    return Section("Recommendation: what and why", bullets=bullets)


def _binding(point: dict[str, Any], sla: Any) -> str:
    """Which SLA bound a simulated rate broke, by how much."""
    over = []
    for key, bound, name in (("ttft_at_sla_percentile_s", sla.ttft, "TTFT"),
                             ("tpot_at_sla_percentile_s", sla.tpot, "TPOT")):  # fmt: skip
        value = point.get(key)
        if value is not None and value > bound:
            over.append(
                f"{name} p{sla.percentile:g} {milliseconds(value)} ms, {value / bound - 1:.0%} "
                f"over its {bound * 1e3:,.4g} ms bound"
            )
    return "; ".join(over) or "both percentiles within bounds, yet too few requests met both"


def _bounds(result: PlanResult) -> Section | None:
    b = result.best
    if b is None or not b.points:
        return None
    sla = result.scenario.spec.sla
    points = sorted(b.points, key=lambda p: p["rate"])
    missed = [p for p in points if not p["meets"] and p["rate"] > b.goodput]
    if b.goodput_at_limit and b.screen is not None:
        text = (
            f"It met the SLA at every rate searched, up to its {b.screen.bound_by} bound of "
            f"{plain(b.screen.rate_bound)} req/s (a rate no simulation of it can beat): its "
            f"goodput, {plain(b.goodput)} req/s, is a lower bound and capacity is what stops it."
        )
    elif missed:
        p = missed[0]
        text = (
            f"At {plain(p['rate'])} req/s, one grid step above its goodput, attainment fell to "
            f"{p['attainment']:.1%} (target {sla.attainment:.0%}): {_binding(p, sla)}."
        )
    else:
        text = f"Its goodput search ended at {plain(b.goodput)} req/s: {plain_numbers(b.reason)}."
    pct = f"p{sla.percentile:g}"
    table = pd.DataFrame(
        [
            {
                "rate (req/s)": plain(p["rate"]),
                "attainment": f"{p['attainment']:.1%}",
                f"TTFT {pct} (ms)": milliseconds(p.get("ttft_at_sla_percentile_s")),
                f"TPOT {pct} (ms)": milliseconds(p.get("tpot_at_sla_percentile_s")),
                "meets the SLA": "yes" if p["meets"] else "no",
            }
            for p in points
        ]
    )
    return Section(
        "What bounds it",
        text=text + f"\n\nEvery rate its goodput search simulated ({len(points)}):",
        table=table,
        figure=_rate_sweep(b),
        caption="Each point is one simulation at that rate; points are not joined because "
        "nothing was simulated between them. Dashed red lines: the SLA bounds; dash-dotted "
        "line: the goodput.",
    )


def _robust(result: PlanResult) -> Section | None:
    robust = result.robustness()
    if robust is None:
        return None
    aliases = plan_aliases(result)
    by_id = {r.id: r for r in result.results}
    text = (
        f"{robust.verdict.capitalize()}: compared with the {robust.compared} other candidates "
        "with a measured goodput, the table lists for each assumption the factor that would "
        "make another candidate tie with the recommendation, and the range the assumption "
        "plausibly spans. Inside that range the recommendation is fragile. First-order model: "
        "goodput scales as 1 / step-time factor; cost is linear in each price."
    )
    rows = [
        {
            "assumption": be.assumption,
            "break-even factor": f"× {be.factor:.2f}",
            "then ties": f"#{be.overtaken_by} " + result_label(by_id[be.overtaken_by], aliases),
            "plausible range": f"{be.plausible[0]:g}–{be.plausible[1]:g}×",
            "verdict": "fragile" if be.fragile else "robust",
        }
        for be in robust.break_even
    ]
    bullets = []
    tied = [r for r in result.tied if r is not result.best]
    if tied:
        bullets.append(
            f"Tie within the goodput grid's {result.settings['rel_tol']:.0%} step with "
            + ", ".join(f"#{r.id} ({result_label(r, aliases)})" for r in tied)
            + f"; broken by {result.settings.get('tie_break')}."
        )
    own = result.own
    if own is not None:
        bullets.append(
            f"Yours (#{own.id}, the scenario's own pools): {own.verdict.value}: "
            f"{plain_numbers(own.reason)}."
        )
    if not rows:
        bullets.append("No assumed step time or price changes the order of the candidates.")
    return Section(
        "How robust it is",
        text=text,
        bullets=bullets,
        table=pd.DataFrame(rows) if rows else None,
    )


def _prices(result: PlanResult) -> list[str]:
    """Each accelerator's price per device-hour and where it comes from."""
    seen: dict[str, str] = {}
    for s in [result.scenario, *(r.candidate.scenario for r in result.results)]:
        if s is None:
            continue
        for pool in s.spec.pools:
            profile = s.profiles[pool.name]
            if profile.name in seen:
                continue
            source = "an assumption (profile)" if s.price_is_assumption(pool.name) else (
                "from costs.prices")  # fmt: skip
            seen[profile.name] = (
                f"{profile.name}: ${s.price_per_device_hour(pool.name):,.2f} per device-hour, "
                f"{source}"
            )
    return [seen[k] for k in sorted(seen)]


def _assumed(result: PlanResult) -> Section:
    bullets = [
        f"Price basis: {result.price_basis()}.",
        *(f"Price of {p}." for p in _prices(result)),
    ]
    provenance: dict[str, set[str]] = {}
    aliases = plan_aliases(result)
    for r in result.ranked:
        if r.summary is None:
            continue
        for pool, label in r.summary.provenance.items():
            role = r.candidate.roles.get(pool) or r.candidate.roles.get("serve")
            name = aliases.get(role.accelerator, role.accelerator) if role else pool
            provenance.setdefault(label, set()).add(name)
    for label, names in sorted(provenance.items()):
        bullets.append(f"Step times {label}: {', '.join(sorted(names))}.")
    best = result.best
    note = unmeasured_note(best.summary.provenance) if best and best.summary else None
    if note:
        bullets.append(f"The recommendation's {note}.")
    bullets.append(
        "Goodput is measured by simulation at each rate the search tried; between two rates "
        "nothing is known beyond the grid step."
    )
    return Section("What was assumed", bullets=bullets)


def write_plan_report(result: PlanResult, path: str | Path) -> Path:
    """One self-contained HTML page: what was asked, what is recommended and why, what bounds
    it, how robust it is, what was assumed; then the ranking, the Pareto figure and every
    candidate's verdict."""
    path = Path(path)
    if path.suffix != ".html":
        path = path / "plan.html"
    spec = result.scenario.spec
    sections = [
        s
        for s in (
            _asked(result),
            _recommended(result),
            _bounds(result),
            _robust(result),
            _assumed(result),
        )  # fmt: skip
        if s is not None
    ]
    shown = _shown(result)
    if shown:
        sections.append(
            Section(
                "Ranked candidates",
                text="The recommendation, its runners-up, the colocated baseline and yours, at "
                "each one's goodput. ≥: the SLA held at every rate searched (a lower bound).",
                table=candidate_table(result, shown),
            )
        )
    own = result.own
    sweep = _rate_sweep(own) if own is not None and own is not result.best else None
    if sweep is not None:
        sections.append(
            Section(
                "Yours at each simulated rate",
                text=f"The scenario's own deployment, #{own.id}: "  # type: ignore[union-attr]
                f"{result_label(own, plan_aliases(result))}.",  # type: ignore[arg-type]
                figure=sweep,
                caption="Every rate its goodput search simulated, drawn as the recommendation's.",
            )
        )
    sections.append(
        Section(
            "Pareto front",
            figure=_pareto(result),
            caption="Each point is a simulated candidate, named by its id (see the tables). "
            "(a): the staircase is the most goodput any budget buys. (b): the shaded box is "
            "the SLA.",
        )
    )
    sections.append(Section("Every candidate", table=_verdicts_table(result)))
    path.parent.mkdir(parents=True, exist_ok=True)
    page = html_report(f"hetsim plan: {spec.name}", sections, subtitle=spec.description)
    path.write_text(page, encoding="utf-8")
    return path
