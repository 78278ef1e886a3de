"""Figures and the HTML report of a plan (``hetsim plan --plots / --report``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from hetsim.planner.verdict import Verdict
from hetsim.report.describe import unmeasured_note
from hetsim.report.html import Section, html_report
from hetsim.report.plots import latency_vs_rate, pareto, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hetsim.planner.results import CandidateResult, PlanResult

__all__ = ["plan_figures", "write_plan_plots", "write_plan_report"]


def _rate_sweep(r: CandidateResult) -> Figure | None:
    if not r.points or r.summary is None:
        return None
    frame = pd.DataFrame(r.points).sort_values("rate", ignore_index=True)
    return latency_vs_rate(frame, r.summary.sla, r.goodput)


def plan_figures(result: PlanResult) -> dict[str, Figure]:
    """pareto (cost vs goodput; TTFT vs TPOT) and the recommended deployment's rate sweep."""
    figures: dict[str, Figure] = {"pareto": pareto(result.to_frame())}
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


def write_plan_report(result: PlanResult, path: str | Path) -> Path:
    """One self-contained HTML page: the question, the recommendation, the ranking, the
    figures and every candidate's verdict."""
    path = Path(path)
    if path.suffix != ".html":
        path = path / "plan.html"
    spec = result.scenario.spec
    sla = spec.sla
    frame = result.to_frame()
    counts = result.counts()
    question = (
        f"Model {spec.model}; SLA: TTFT ≤ {sla.ttft:g} s and TPOT ≤ {sla.tpot * 1e3:g} ms at "
        f"p{sla.percentile:g} for {sla.attainment:.0%} of requests; objective: "
        f"{result.objective}. {len(frame)} candidates: "
        + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        + ". Prices and roofline efficiencies not calibrated are assumptions (see provenance)."
    )
    # faults some candidates lack a target for: they were simulated without them
    question += "".join(f"\nFaults: {line}." for line in result.skipped_faults())
    sections = [Section("Question", text=question)]
    if result.best is not None:
        b = result.best
        lines = [
            b.label,
            f"goodput {b.goodput:.3g} req/s at {b.cost_per_hour:,.2f} $/h "
            f"(objective {b.objective:.4g}); boundary: {b.boundary or 'none (colocated)'}",
        ]
        if result.baseline is not None:
            c = result.baseline
            lines.append(
                f"colocated baseline: {c.label}: goodput {c.goodput:.3g} req/s at "
                f"{c.cost_per_hour:,.2f} $/h (objective {c.objective:.4g})"
            )
        note = unmeasured_note(b.summary.provenance if b.summary is not None else {})
        if note is not None:
            lines.append(note)
        sections.append(Section("Recommendation", text="\n".join(lines)))
    else:
        sections.append(Section("No deployment meets the SLA", text=result.explain_failure()))
    columns = [
        "id", "label", "verdict", "goodput", "objective", "cost_per_hour", "ttft_p_s",
        "tpot_p_s", "cost_per_million_tokens", "boundary", "provenance",
    ]  # fmt: skip
    ranked = frame[frame["verdict"].isin([Verdict.RECOMMENDED, Verdict.RANKED])]
    sections.append(Section("Ranked candidates", table=ranked[columns]))
    for name, fig in plan_figures(result).items():
        sections.append(Section(name.replace("_", " "), figure=fig))
    sections.append(Section("Every candidate", table=frame[["id", "label", "verdict", "reason"]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(f"hetsim plan: {spec.name}", sections))
    return path
