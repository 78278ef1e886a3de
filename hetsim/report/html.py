"""One self-contained HTML page per report: inline CSS, figures embedded as base64 PNG, no
request to the network when it is opened (reports get mailed and archived)."""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml
from jinja2 import Environment, PackageLoader
from matplotlib.figure import Figure

from hetsim.metrics import EnergyFigures, LatencyStats, RunSummary
from hetsim.perf.runtimes import pool_mixes_prompts
from hetsim.report.describe import transfer_paths, unmeasured_note
from hetsim.report.plots import simulation_figures

if TYPE_CHECKING:
    from hetsim.simulation import SimulationResult
    from hetsim.spec.resolve import Scenario
    from hetsim.spec.scenario import PoolSpec
    from hetsim.spec.workload import LengthSpec

__all__ = ["Section", "html_report", "write_simulation_report"]


@dataclass
class Section:
    """One part of a report, rendered in this order: ``text`` (plain text, blank lines between
    paragraphs; HTML is escaped), ``bullets`` (one fact per item), ``table``, ``figure`` with
    its ``caption``, ``code`` (preformatted, escaped)."""

    heading: str
    text: str | None = None
    table: pd.DataFrame | None = None
    figure: Figure | None = None
    code: str | None = None
    bullets: list[str] | None = None
    caption: str | None = None


def _format_float(value: float) -> str:
    # plain digits with separators: a reviewer reads 18,070, not 1.807e+04
    if not math.isfinite(value):
        return "–"
    if abs(value) >= 1e3:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _figure_png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _paragraphs(text: str) -> list[list[str]]:
    """Paragraphs (split at blank lines), each a list of its lines."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    return [b.splitlines() for b in blocks]


#: a cell that reads as a number (with a unit sign, a bound mark or a percent) aligns right
_NUMERIC = re.compile(r"^[≥≤<>~±+\-−–$×(]*\s*[\d,.]+\s*[%×)]?(\s*[kMG]?[a-zA-Z/$]{0,6})?$|^[–-]$")


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _table(frame: pd.DataFrame) -> dict[str, Any]:
    """Headings and cell texts, and per column whether it holds figures: a column whose every
    cell reads as a number aligns right, any other left (a deployment label reads from its
    start, and a column of mixed answers would zigzag)."""
    # a default 0..n-1 index says nothing; a named or labelled one is data
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    frame = frame.astype(object).where(frame.notna(), None)
    rows = [[_text(v) for v in row] for row in frame.itertuples(index=False)]
    numeric = [
        all(_NUMERIC.match(row[i]) for row in rows) if rows else False
        for i in range(len(frame.columns))
    ]
    return {
        "columns": [str(c) for c in frame.columns],
        "rows": [
            [{"text": t, "number": n} for t, n in zip(row, numeric, strict=True)] for row in rows
        ],  # fmt: skip
    }


def _anchor(heading: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"
    anchor, n = base, 2
    while anchor in taken:
        anchor, n = f"{base}-{n}", n + 1
    taken.add(anchor)
    return anchor


@cache
def _templates() -> Environment:
    # autoescape everything: headings, reasons and labels quote user text (scenario names)
    return Environment(
        loader=PackageLoader("hetsim.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def html_report(title: str, sections: list[Section], *, subtitle: str | None = None) -> str:
    """A complete HTML page (``templates/report.html.j2``): the title, a table of contents,
    then each section; every figure is embedded (base64 PNG), so the file stands alone."""
    from hetsim._version import __version__

    taken: set[str] = set()
    rendered = [
        {
            "anchor": _anchor(s.heading, taken),
            "heading": s.heading,
            "paragraphs": _paragraphs(s.text) if s.text else [],
            "bullets": s.bullets or [],
            "table": _table(s.table) if s.table is not None else None,
            "image": _figure_png(s.figure) if s.figure is not None else None,
            "caption": s.caption,
            "code": s.code,
        }
        for s in sections
    ]
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            title=title,
            subtitle=subtitle,
            version=__version__,
            stamp=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            sections=rendered,
        )
    )


# ---- the report of one simulation run ---------------------------------------------------------


def _length(spec: LengthSpec) -> str:
    if spec.dist == "fixed":
        return f"{spec.value} tokens"
    if spec.dist == "uniform":
        return f"uniform {spec.min}–{spec.max} tokens"
    clip = ""
    if spec.min is not None or spec.max is not None:
        clip = f", clipped to [{spec.min or 1}, {spec.max or '∞'}]"
    if spec.dist == "lognormal":
        return f"lognormal, mean {spec.mean:g}, cv {spec.cv:g}{clip}"
    trace = spec.trace.path if spec.trace is not None else "?"
    return f"resampled from {trace}{clip}"


def _pools_table(scenario: Scenario) -> pd.DataFrame:
    rows = []
    for pool in scenario.spec.pools:
        profile = scenario.profiles[pool.name]
        footprint = scenario.footprints.get(pool.name)
        rows.append(
            {
                "pool": pool.name,
                "role": pool.role,
                "accelerator": profile.display_name,
                "instances": pool.instances,
                "tp": pool.tp,
                "ep": pool.ep,
                "dp": pool.dp,
                "weights": pool.precision.weights
                + (f" ({pool.precision.named_scaling})" if pool.precision.named_scaling else ""),
                "activations": pool.precision.activations,
                "KV dtype": pool.precision.kv,
                "KV tokens / instance": footprint.kv_capacity_tokens if footprint else None,
                "max seqs": pool.batching.max_num_seqs,
                "max batched tokens": pool.batching.max_batched_tokens,
                "prompt steps": _prompt_steps(pool),
                "$/h": scenario.price_per_device_hour(pool.name) * pool.total_devices,
                "price": ("assumed" if scenario.price_is_assumption(pool.name) else "scenario")
                + f", {scenario.spec.costs.basis}",
            }
        )
    return pd.DataFrame(rows)


def _prompt_steps(pool: PoolSpec) -> str | None:
    """How a colocated pool's steps hold prompts (None for prefill and decode pools)."""
    if pool.role != "colocated":
        return None
    mixed = pool_mixes_prompts(pool)
    return "beside decodes" if mixed else "prompt-only"


def _paths_table(scenario: Scenario) -> pd.DataFrame | None:
    """The figures ``hetsim check`` prints: each hop's nominal bandwidth, the efficiency the
    simulator applies (and where it comes from), the effective bandwidth, and the bytes moved."""
    rows = [
        {
            "from": p["from"],
            "to": p["to"],
            "hops": " → ".join(_hop(h) for h in p["hop_plans"]),
            "bottleneck GB/s": p["bottleneck_bandwidth"] / 1e9,
            "latency (µs)": p["latency"] * 1e6,
            "network KV B/token": p["kv_bytes_per_token"],
            "KV B/token (one copy)": p["kv_bytes_per_token_one_copy"],
        }
        for p in transfer_paths(scenario)
    ]
    return pd.DataFrame(rows) if rows else None


def _hop(h: dict[str, Any]) -> str:
    return (
        f"{h['name']} ({h['kind']}, {h['bandwidth'] / 1e9:g} GB/s × {h['efficiency']:g} "
        f"[{h['efficiency_source']}] = {h['effective_bandwidth'] / 1e9:.4g} GB/s, "
        f"{h['latency'] * 1e6:g} µs)"
    )


def _workload_table(scenario: Scenario, summary: RunSummary) -> pd.DataFrame:
    """Workload, SLA and protocol, with what the run changed (fewer requests, another seed)."""
    ran = summary.requests
    spec = scenario.spec
    wl = spec.workload
    rows: list[tuple[str, str]] = []
    if wl.synthetic is not None:
        syn = wl.synthetic
        rows += [
            ("source", f"synthetic, {syn.arrival} arrivals"),
            (
                "rate",
                f"{syn.rate:g} sessions/s" if syn.sessions else f"{syn.rate:g} requests/s",
            ),
            (
                "requests",
                f"{syn.requests}"
                + (f" (this run stopped after {ran})" if ran < syn.requests else ""),
            ),
            ("input tokens", _length(syn.input_tokens)),
            ("output tokens", _length(syn.output_tokens)),
            ("prefix hit rate", f"{syn.prefix_hit_rate:.0%}"),
        ]
    elif wl.trace is not None:
        tr = wl.trace
        rows += [
            ("source", f"{tr.format} trace {tr.path}"),
            ("target rate", f"{tr.target_rate:g} requests/s" if tr.target_rate else "as recorded"),
        ]
    elif wl.closed_loop is not None:
        cl = wl.closed_loop
        rows += [
            ("source", f"closed loop, {cl.concurrency} clients"),
            ("requests", f"{cl.requests}" + (f" (this run: {ran})" if ran < cl.requests else "")),
            ("think time", f"{cl.think_time:g} s"),
            ("ramp-up", f"{cl.ramp_up.strategy} over {cl.ramp_up.duration:g} s"),
            ("input tokens", _length(cl.input_tokens)),
            ("output tokens", _length(cl.output_tokens)),
        ]
    sla = spec.sla
    rows += [
        ("SLA: TTFT", f"≤ {sla.ttft:g} s"),
        ("SLA: TPOT", f"≤ {sla.tpot * 1e3:g} ms"),
        ("SLA: attainment target", f"{sla.attainment:.0%} of requests within both bounds"),
        ("SLA: reported percentile", f"p{sla.percentile:g}"),
    ]
    if any(p.role == "decode" for p in spec.pools):  # colocated pools hand nothing over
        rows.append(("KV lifecycle protocol", spec.lifecycle.protocol))
    rows.append(("seed", str(summary.seed)))
    return pd.DataFrame(rows, columns=["item", "value"])


def _energy(e: EnergyFigures | None) -> str:
    if e is None or e.tokens_per_joule is None:
        return "–"
    return (
        f"{e.energy_j / 3.6e6:.3g} kWh at a mean {e.power_w / 1e3:.3g} kW (idle devices at "
        f"{e.idle_power:.0%} of tdp): {e.tokens_per_joule:.3g} output tokens/J"
        f"{e.measured_power_note()}"
    )


def _latency(values: LatencyStats, scale: float, unit: str) -> str:
    parts = [
        f"{name} {value * scale:.3g}"
        for name, value in (("p50", values.p50), ("p90", values.p90), ("p99", values.p99))
        if value is not None
    ]
    return (", ".join(parts) + f" {unit}") if parts else "–"


def _summary_table(summary: RunSummary) -> pd.DataFrame:
    sla = summary.sla
    pct = sla.percentile

    def at_sla(value: float | None, bound: float, scale: float, unit: str) -> str:
        if value is None:
            return "–"
        ok = "within" if value <= bound else "over"
        return f"{value * scale:.3g} {unit} ({ok} the {bound * scale:g} {unit} bound)"

    reasons = summary.failure_reasons
    failed = str(summary.failed)
    if reasons:
        failed += " (" + "; ".join(f"{n}× {r}" for r, n in reasons.items()) + ")"
    attainment = summary.attainment
    verdict = "met" if summary.sla_met else "missed"
    cost_m = summary.cost_per_million_tokens
    rows = [
        ("requests", str(summary.requests)),
        ("completed", str(summary.completed)),
        ("failed", failed),
        ("TTFT", _latency(summary.ttft_s, 1.0, "s")),
        ("TPOT", _latency(summary.tpot_s, 1e3, "ms")),
        (f"TTFT at p{pct:g}", at_sla(summary.ttft_at_sla_percentile_s, sla.ttft_s, 1.0, "s")),
        (f"TPOT at p{pct:g}", at_sla(summary.tpot_at_sla_percentile_s, sla.tpot_s, 1e3, "ms")),
        (
            "attainment",
            f"{attainment:.1%} vs target {sla.attainment_target:.0%}: {verdict}"
            if math.isfinite(attainment)
            else "–",
        ),
        ("request rate (over the run)", f"{summary.request_rate:.3g} requests/s"),
        ("throughput", f"{summary.throughput_tokens_per_s:,.0f} output tokens/s"),
        ("input throughput", f"{summary.input_tokens_per_s:,.0f} tokens/s"),
        ("cost", f"${summary.cost_per_hour:.2f}/h"),
        ("price basis", summary.price_basis or "–"),
        (
            "cost per million output tokens (over the run)",
            f"${cost_m:.3g}" if cost_m is not None else "–",
        ),
        ("energy (board power, busy-weighted)", _energy(summary.energy)),
        ("preemptions", str(summary.preemptions)),
        ("KV blocks leaked", str(summary.kv_blocks_leaked)),
        (
            "step-time provenance",
            ", ".join(f"{p}: {v}" for p, v in summary.provenance.items()) or "–",
        ),
        (
            "simulated",
            f"{summary.simulated_s:.4g} s in {summary.wall_s:.3g} s of wall time "
            f"({summary.events:,} events)",
        ),
    ]
    return pd.DataFrame(rows, columns=["metric", "value"])


_FIGURE_NOTES = {
    "latency_cdf": "Empirical CDFs of completed requests' TTFT and TPOT. Dashed red lines are "
    "the SLA bounds; the dotted line is the SLA percentile.",
    "kv_occupancy": "KV blocks allocated on each instance, as a share of its capacity, by "
    "state. Capacity pressure shows as a flat top; reserved and held blocks are the price of "
    "the handoff protocol.",
    "link_utilisation": "Each KV transfer link: mean utilisation and achieved rate per sample "
    "interval, and the bytes not yet delivered.",
}


def _assumed(result: SimulationResult) -> Section:
    """Prices and step-time sources: what the run's numbers rest on besides the simulation."""
    scenario, summary = result.scenario, result.summary
    bullets = [f"Price basis: {summary.price_basis or scenario.spec.costs.basis}."]
    for pool in scenario.spec.pools:
        profile = scenario.profiles[pool.name]
        source = (
            "an assumption (the profile's)"
            if scenario.price_is_assumption(pool.name)
            else "from costs.prices"
        )
        bullets.append(
            f"Price of {profile.name} (pool {pool.name}): "
            f"${scenario.price_per_device_hour(pool.name):,.2f} per device-hour, {source}."
        )
    for pool, label in summary.provenance.items():
        bullets.append(f"Step times of pool {pool}: {label}.")
    note = unmeasured_note(summary.provenance)
    if note:
        bullets.append(f"The {note}.")
    return Section("What was assumed", bullets=bullets)


def _verdict(summary: RunSummary) -> str:
    sla = summary.sla
    attainment = summary.attainment
    if not math.isfinite(attainment):
        return "No request completed: the SLA cannot be judged."
    verdict = "met" if summary.sla_met else "missed"
    return (
        f"SLA {verdict}: {attainment:.1%} of requests within TTFT ≤ {sla.ttft_s * 1e3:,.0f} ms "
        f"and TPOT ≤ {sla.tpot_s * 1e3:g} ms (target {sla.attainment_target:.0%})."
    )


def write_simulation_report(result: SimulationResult, path: str | Path) -> Path:
    """The HTML report of one run: what was simulated, the workload and SLA, the results, what
    was assumed, every figure of :func:`~hetsim.report.plots.simulation_figures` and the
    validated scenario. ``path`` is the file to write (a directory gets ``report.html``);
    returns it."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.html"
    scenario = result.scenario
    spec = scenario.spec
    model = scenario.model
    intro = spec.description or ""
    intro += (
        f"\n\nModel: {model.name} ({model.description}). "
        f"{sum(p.total_devices for p in spec.pools)} devices, ${scenario.cost_per_hour():.2f}/h."
    )
    sections = [Section("What was simulated", text=intro.strip(), table=_pools_table(scenario))]
    paths = _paths_table(scenario)
    if paths is not None:
        sections.append(Section("KV transfer paths", table=paths))
    sections += [
        Section("Workload and SLA", table=_workload_table(scenario, result.summary)),
        Section("Results", text=_verdict(result.summary), table=_summary_table(result.summary)),
        _assumed(result),
    ]
    for name, fig in simulation_figures(result).items():
        if name.startswith("step_breakdown_"):
            heading = f"Step time breakdown: {name.removeprefix('step_breakdown_')}"
            note = (
                "Per-op time of one prefill step and one decode step on one instance of this "
                "pool, as the step-time model predicts it."
            )
        else:
            heading = {
                "latency_cdf": "Latency distributions",
                "kv_occupancy": "KV cache occupancy",
                "link_utilisation": "KV transfer links",
            }.get(name, name)
            note = _FIGURE_NOTES.get(name)
        sections.append(Section(heading, figure=fig, caption=note))
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    sections.append(
        Section(
            "Scenario as simulated",
            text="The validated scenario with every default filled in; quantities in SI units "
            "(seconds, bytes, bytes/s, $/h).",
            code=yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True),
        )
    )
    subtitle = f"Simulation of {scenario.name}"
    if scenario.path is not None:
        subtitle += f" ({scenario.path.name})"
    page = html_report(f"hetsim report: {scenario.name}", sections, subtitle=subtitle)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
