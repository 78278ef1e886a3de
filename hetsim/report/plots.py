"""Figures of a run, a rate sweep, a plan and the step-time model, as matplotlib figures.

Every function builds a :class:`matplotlib.figure.Figure` directly, without pyplot: no backend
is selected or forced, so the same call renders headless (``save_figure``) and shows inline in a
notebook when the figure is the cell's value. Data stay in SI units; axes use the units people
read (TTFT in s, TPOT in ms, GB/s, GiB).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

from hetsim.metrics import SLABounds
from hetsim.perf.step import step_model_for_pool
from hetsim.planner.pareto import pareto_front
from hetsim.planner.verdict import Verdict

if TYPE_CHECKING:
    from hetsim.simulation import SimulationResult
    from hetsim.spec.resolve import Scenario
    from hetsim.spec.workload import LengthSpec

__all__ = [
    "latency_cdfs",
    "latency_vs_rate",
    "pareto",
    "pareto_front",
    "per_dollar_vs_link",
    "kv_occupancy",
    "link_utilisation",
    "step_breakdown",
    "predicted_vs_measured",
    "save_figure",
    "simulation_figures",
    "write_simulation_plots",
]

GIB = 2.0**30
SLA_COLOR = "tab:red"
GOODPUT_COLOR = "black"
TARGET_COLOR = "tab:green"

#: how each planner verdict is drawn; unknown verdicts fall back to grey
#: in legend order; a Verdict is a str, so candidates.csv's verdict strings look up the same
VERDICT_STYLE: dict[Verdict, dict[str, Any]] = {
    Verdict.RECOMMENDED: {"color": "#e3a008", "label": "recommended"},
    Verdict.RANKED: {"color": "tab:blue", "label": "ranked (meets SLA)"},
    Verdict.BEATEN: {"color": "tab:gray", "label": "beaten (stopped early)"},
    Verdict.FAILS_SLA: {"color": "tab:red", "label": "fails SLA (every rate, or min_rate)"},
    Verdict.SCREENED: {"color": "tab:purple", "label": "screened out"},
    Verdict.INVALID: {"color": "black", "label": "invalid"},
}
KIND_MARKER = {"disaggregated": "o", "colocated": "s"}
BOUND_LABEL = {
    "compute": "compute bound",
    "memory": "memory bound",
    "network": "network bound (collectives)",
    "overhead": "fixed per-step overhead",
}
BOUND_COLOR = {
    "compute": "tab:orange",
    "memory": "tab:blue",
    "network": "tab:green",
    "overhead": "tab:gray",
}


# ---- helpers ----------------------------------------------------------------------------------


class _ReportFigure(Figure):
    """A figure that shows itself as a notebook cell's value even when pyplot, and with it the
    inline backend that teaches IPython to draw figures, was never imported."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def _figure(nrows: int, ncols: int, size: tuple[float, float], **subplots: Any) -> tuple:
    fig = _ReportFigure(figsize=size, dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, axes


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as floats with None/missing as NaN (summaries use None for 'no value')."""
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _log_if_wide(ax: Axes, values: np.ndarray, axis: str, ratio: float = 30.0) -> None:
    """Log scale when the positive values span more than ``ratio``: queueing delays past
    saturation grow by orders of magnitude and would flatten everything else."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size >= 2 and v.max() / v.min() > ratio:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _fmt(value: float) -> str:
    # three significant digits, but never scientific notation for the bandwidths of big links
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1%}"


def _shades(color: str, n: int) -> list[tuple[float, float, float]]:
    """``n`` shades of one colour, dark to light: instances of one pool stay one hue."""
    base = np.array(to_rgb(color))
    if n == 1:
        return [tuple(base)]
    mix = np.linspace(0.0, 0.55, n)
    return [tuple(base * (1 - m) + m) for m in mix]


def _pool_colors(pools: Iterable[str]) -> dict[str, str]:
    cycle = [f"C{i}" for i in range(10)]
    return {pool: cycle[i % len(cycle)] for i, pool in enumerate(pools)}


# ---- one run ----------------------------------------------------------------------------------


def latency_cdfs(result: SimulationResult) -> Figure:
    """Empirical CDFs of TTFT (s) and TPOT (ms) over completed requests, with the SLA bounds
    (vertical), the SLA percentile (horizontal) and the share of requests within each bound.

    Failed requests have no latency and are left out of the curves; they still count against
    the attainment in the title (see :mod:`hetsim.metrics`).
    """
    req = result.requests
    summary = result.summary
    sla = summary.sla
    pct = float(sla.percentile)
    done = req[req["status"] == "completed"]
    fig, axes = _figure(1, 2, (11, 4.4))
    panels = (
        ("ttft_s", "TTFT", sla.ttft_s, 1.0, "s", "time to first token (s)"),
        ("tpot_s", "TPOT", sla.tpot_s, 1e3, "ms", "time per output token (ms)"),
    )
    for ax, (column, name, bound, scale, unit, xlabel) in zip(axes[0], panels, strict=True):
        values = np.sort(done[column].dropna().to_numpy(dtype=float) * scale)
        ax.set_title(f"{name} CDF")
        if values.size == 0:
            what = "completed requests" if name == "TTFT" else "requests with 2+ output tokens"
            _empty(ax, f"no {what}")
            continue
        share = np.arange(1, values.size + 1) / values.size
        ax.step(values, share, where="post", color="C0", label=f"{name} ({values.size} requests)")
        limit = bound * scale
        ax.axvline(
            limit, color=SLA_COLOR, linestyle="--", label=f"SLA: {name} ≤ {_fmt(limit)} {unit}"
        )
        ax.axhline(pct / 100, color="gray", linestyle=":", label=f"p{pct:g} (SLA percentile)")
        at = float(np.percentile(values, pct))
        ax.plot([at], [pct / 100], "o", color="C0")
        ax.annotate(
            f"p{pct:g} = {_fmt(at)} {unit}",
            (at, pct / 100),
            xytext=(6, -14),
            textcoords="offset points",
            fontsize=8,
        )
        within = float(np.mean(values <= limit))
        ax.text(
            0.98,
            0.04,
            f"{within:.1%} of these within the {name} bound",
            ha="right",
            va="bottom",
            transform=ax.transAxes,
            fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"},
        )
        ax.set_xlim(left=0, right=max(values[-1], limit) * 1.05)
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of requests at or below")
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8, loc="center right")
    target = float(sla.attainment_target)
    verdict = "met" if summary.sla_met else "missed"
    title = (
        f"{summary.scenario}: attainment {_pct(summary.attainment)} of requests within both "
        f"bounds (target {target:.0%}, {verdict})"
    )
    failed = summary.failed
    if failed:
        title += f"; {failed} failed requests not in the curves"
    fig.suptitle(title, fontsize=11)
    return fig


def kv_occupancy(result: SimulationResult, *, band_above: int = 8) -> Figure:
    """KV blocks per instance over time, as a share of the instance's capacity: allocated in
    all, and split by state (``used`` by running requests, ``reserved`` for KV on its way in,
    ``held`` for another instance to read). Colours group instances by pool; a pool of more than
    ``band_above`` instances is drawn as its mean with a min–max band to stay readable."""
    ts = result.timeseries
    fig, axes = _figure(2, 2, (12, 7.2), sharex=True, sharey=True)
    panels = (
        ("allocated", "allocated (used + reserved + held)"),
        ("kv_used_blocks", "used: KV of requests running here"),
        ("kv_reserved_blocks", "reserved: room for KV on its way in"),
        ("kv_held_blocks", "held: KV kept for another instance to read"),
    )
    name = result.scenario.name
    if ts.empty:
        for ax in axes.flat:
            _empty(ax, "no samples (the run ended before the first sample)")
        fig.suptitle(f"{name}: KV cache occupancy", fontsize=11)
        return fig
    frame = ts.assign(
        allocated=ts["kv_used_blocks"] + ts["kv_reserved_blocks"] + ts["kv_held_blocks"]
    )
    capacity = frame["kv_capacity_blocks"].clip(lower=1)
    pools = list(dict.fromkeys(frame["pool"]))
    colors = _pool_colors(pools)
    for ax, (column, title) in zip(axes.flat, panels, strict=True):
        share = frame[column] / capacity
        if not (share > 0).any():
            title += " — none in this run"
        for pool in pools:
            rows = frame["pool"] == pool
            by_instance = (
                pd.DataFrame({"t": frame.loc[rows, "time_s"], "i": frame.loc[rows, "instance"]})
                .assign(v=share[rows])
                .pivot_table(index="t", columns="i", values="v", sort=True)
            )
            t = by_instance.index.to_numpy(dtype=float)
            if by_instance.shape[1] > band_above:
                ax.fill_between(
                    t,
                    by_instance.min(axis=1),
                    by_instance.max(axis=1),
                    color=colors[pool],
                    alpha=0.2,
                    step="pre",
                    linewidth=0,
                )
                ax.step(t, by_instance.mean(axis=1), where="pre", color=colors[pool], lw=1.4)
                continue
            for shade, instance in zip(
                _shades(colors[pool], by_instance.shape[1]), by_instance.columns, strict=True
            ):
                ax.step(t, by_instance[instance], where="pre", color=shade, lw=1.0)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.25)
    for ax in axes[1]:
        ax.set_xlabel("simulated time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("share of KV capacity")
    handles = []
    for pool in pools:
        n = int(frame.loc[frame["pool"] == pool, "instance"].nunique())
        how = "mean, min–max band" if n > band_above else "one line each"
        handles.append(
            Line2D([], [], color=colors[pool], lw=2, label=f"{pool} ({n} instances, {how})")
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=9)
    interval = np.diff(np.unique(frame["time_s"].to_numpy()))
    every = f", sampled every {_fmt(float(np.median(interval)))} s" if interval.size else ""
    fig.suptitle(f"{name}: KV cache occupancy per instance{every}", fontsize=11)
    return fig


def _interval_utilisation(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per sample interval, the link's mean utilisation, from the since-start mean the
    simulator records: links are created at time 0, so ``u(t)·t`` is the busy time so far."""
    t = group["time_s"].to_numpy(dtype=float)
    busy = group["utilisation_since_start"].to_numpy(dtype=float) * t
    dt = np.diff(t, prepend=0.0)
    util = np.divide(np.diff(busy, prepend=0.0), dt, out=np.zeros_like(t), where=dt > 0)
    return t, np.clip(util, 0.0, 1.0)


def link_utilisation(result: SimulationResult) -> Figure:
    """Per link over time: utilisation (share of its current bandwidth) and achieved GB/s,
    both averaged over each sample interval, and the KV bytes still to deliver (GiB)."""
    links = result.links
    fig, axes = _figure(3, 1, (11, 8.4), sharex=True)
    u_ax, rate_ax, flight_ax = axes[:, 0]
    name = result.scenario.name
    if links.empty:
        for ax in axes.flat:
            _empty(ax, "no links in this scenario")
        fig.suptitle(f"{name}: KV transfer links", fontsize=11)
        return fig
    groups = list(links.groupby("link", sort=False))
    many = len(groups) > 10
    peak_util = peak_rate = peak_flight = 0.0
    varying = False
    for i, (link, group) in enumerate(groups):
        color = f"C{i % 10}"
        t, util = _interval_utilisation(group)
        bandwidth = group["bandwidth"].to_numpy(dtype=float)
        flight = group["bytes_in_flight"].to_numpy(dtype=float) / GIB
        label = f"{link} ({_fmt(float(np.median(bandwidth)) / 1e9)} GB/s)"
        u_ax.step(t, util, where="pre", color=color, lw=1.0, label=label)
        rate_ax.step(t, util * bandwidth / 1e9, where="pre", color=color, lw=1.0)
        flight_ax.step(t, flight, where="pre", color=color, lw=1.0)
        peak_util = max(peak_util, float(util.max(initial=0.0)))
        peak_rate = max(peak_rate, float((util * bandwidth).max(initial=0.0)) / 1e9)
        peak_flight = max(peak_flight, float(flight.max(initial=0.0)))
        if np.ptp(bandwidth) > 0:
            # a degraded link: its bandwidth over time explains its rate
            rate_ax.step(t, bandwidth / 1e9, where="pre", color=color, lw=0.8, ls=":")
            varying = True
    # scaled to what was used: KV handoffs are short bursts that a 0–100% axis flattens
    u_ax.set_ylim(0, min(1.05, peak_util * 1.2) if peak_util > 0 else 1.0)
    u_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    u_ax.set_ylabel("utilisation")
    u_ax.set_title(
        f"utilisation (allocated rate / bandwidth), mean per interval; peak {peak_util:.1%}",
        fontsize=10,
    )
    rate_ax.set_ylim(bottom=0)
    rate_ax.set_ylabel("GB/s")
    rate_ax.set_title(
        f"achieved rate, mean per interval; peak {_fmt(peak_rate)} GB/s"
        + ("; dotted: bandwidth (degraded by faults)" if varying else ""),
        fontsize=10,
    )
    flight_ax.set_ylim(bottom=0)
    flight_ax.set_ylabel("GiB")
    flight_ax.set_title(
        "KV bytes in flight (not yet delivered) at each sample"
        + ("" if peak_flight > 0 else " — none caught by any sample"),
        fontsize=10,
    )
    flight_ax.set_xlabel("simulated time (s)")
    for ax in axes.flat:
        ax.grid(alpha=0.25)
    fig.legend(
        loc="outside right upper",
        fontsize=7 if many else 9,
        title="link",
        ncols=2 if len(groups) > 20 else 1,
    )
    fig.suptitle(f"{name}: KV transfer links ({len(groups)})", fontsize=11)
    return fig


# ---- the step-time model ----------------------------------------------------------------------


def _typical_length(spec: LengthSpec | None, fallback: int) -> int:
    """A representative length of a distribution: its value, mean or midpoint."""
    if spec is None:
        return fallback
    if spec.dist == "fixed" and spec.value:
        return int(spec.value)
    if spec.dist == "lognormal" and spec.mean:
        return int(round(spec.mean))
    if spec.dist == "uniform" and spec.min and spec.max:
        return int(round((spec.min + spec.max) / 2))
    return fallback


def step_breakdown(
    scenario: Scenario,
    pool: str | None = None,
    *,
    batch: int = 32,
    context: int | None = None,
    prefill_tokens: int | None = None,
) -> Figure:
    """Per-op time of one prefill step and one decode step on one instance of ``pool`` (the
    first pool by default), coloured by what bounds each op (compute, memory, network).

    ``prefill_tokens`` is one prompt's chunk, prefilled from an empty cache (default: the
    workload's typical prompt, capped at the pool's ``max_batched_tokens`` since no step takes
    more); the decode step runs ``batch`` sequences each with ``context`` cached tokens
    (default: typical prompt plus half the typical answer).
    """
    spec = scenario.spec
    pool_spec = scenario.pool(pool) if pool is not None else spec.pools[0]
    profile = scenario.profiles[pool_spec.name]
    model = step_model_for_pool(scenario.model, profile, pool_spec)
    synthetic = spec.workload.synthetic
    prompt = _typical_length(synthetic.input_tokens if synthetic else None, 2048)
    answer = _typical_length(synthetic.output_tokens if synthetic else None, 256)
    if prefill_tokens is None:
        prefill_tokens = min(prompt, pool_spec.batching.max_batched_tokens)
    if context is None:
        context = prompt + answer // 2
    prefill = model.explain_prefill(np.array([prefill_tokens])).to_frame()
    decode = model.explain_decode(np.full(batch, context)).to_frame()
    fig, axes = _figure(1, 2, (12, 4.8))
    panels = (
        (prefill, f"prefill: one {prefill_tokens}-token chunk, empty cache"),
        (decode, f"decode: batch {batch}, {context} tokens of context each"),
    )
    for ax, (frame, what) in zip(axes[0], panels, strict=True):
        total = float(frame["time"].sum())
        ms = frame["time"].to_numpy(dtype=float) * 1e3
        y = np.arange(len(frame))
        colors = [BOUND_COLOR.get(b, "tab:gray") for b in frame["bound"]]
        ax.barh(y, ms, color=colors)
        ax.set_yticks(y, frame["name"])
        ax.invert_yaxis()  # ops top to bottom in the order a layer runs them
        for yi, (value, share) in enumerate(zip(ms, frame["share"], strict=True)):
            ax.annotate(
                f"{value:.3g} ms ({share:.0%})",
                (value, yi),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
        ax.set_xlim(0, ms.max() * 1.3 if ms.size and ms.max() > 0 else 1)
        ax.set_xlabel("time per step (ms, all layers, per device)")
        ax.set_title(f"{what}\nstep time {total * 1e3:.3g} ms", fontsize=10)
        ax.grid(axis="x", alpha=0.25)
    bounds = list(dict.fromkeys(pd.concat([prefill["bound"], decode["bound"]])))
    fig.legend(
        handles=[
            Patch(color=BOUND_COLOR.get(b, "tab:gray"), label=BOUND_LABEL.get(b, b)) for b in bounds
        ],
        loc="outside lower center",
        ncols=len(bounds),
        fontsize=9,
    )
    p = pool_spec.precision
    parallel = f"tp={pool_spec.tp}" + (f", ep={pool_spec.ep}" if pool_spec.ep > 1 else "")
    fig.suptitle(
        f"{scenario.model.name} on {profile.display_name} ({parallel}; weights {p.weights}, "
        f"activations {p.activations}, KV {p.kv}) — pool {pool_spec.name!r}, {model.provenance}",
        fontsize=11,
    )
    return fig


def predicted_vs_measured(frame: pd.DataFrame) -> Figure:
    """Log-log scatter of predicted vs measured step/kernel time with y = x and a ±20% band;
    ``frame`` is ``hetsim.validate(...).to_frame()``."""
    fig, axes = _figure(1, 1, (6.4, 5.6))
    ax = axes[0, 0]
    if frame.empty:
        _empty(ax, "nothing validated")
        ax.set_title("Step-time model: predicted vs measured")
        return fig
    for (check, family), group in frame.groupby(["check", "family"]):
        ax.scatter(group["measured_s"], group["predicted_s"], s=18, label=f"{check}: {family}")
    lo = float(min(frame["measured_s"].min(), frame["predicted_s"].min())) * 0.7
    hi = float(max(frame["measured_s"].max(), frame["predicted_s"].max())) * 1.4
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="y = x")
    ax.fill_between(
        [lo, hi], [lo / 1.2, hi / 1.2], [lo * 1.2, hi * 1.2], color="grey", alpha=0.15, label="±20%"
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("hetsim predicted time (s)")
    median = float(frame["abs_error_pct"].median()) if "abs_error_pct" in frame else math.nan
    extra = f" (median |error| {median:.1f}%)" if math.isfinite(median) else ""
    ax.set_title(f"Step-time model: predicted vs measured{extra}")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="both", alpha=0.2)
    return fig


# ---- rate sweeps and plans --------------------------------------------------------------------


def latency_vs_rate(
    points: pd.DataFrame, sla: SLABounds, goodput: float | None, *, lower_bound: bool = False
) -> Figure:
    """TTFT and TPOT percentiles and SLA attainment at each rate the goodput search simulated
    (``GoodputResult.to_frame()`` or a plan candidate's ``points``); ``sla`` is a run
    summary's ``sla``. The goodput (highest rate meeting the attainment target; ``lower_bound``:
    the SLA held at every rate searched, so the true one is higher) is a vertical line on every
    panel.

    Points are not joined: nothing was simulated between two rates, and a line would draw a
    trend nobody measured. Each attainment point is labelled with its value."""
    frame = points.sort_values("rate", ignore_index=True)
    rate = _floats(frame, "rate")
    fig, axes = _figure(1, 3, (15, 4.6), sharex=True)
    ttft_ax, tpot_ax, att_ax = axes[0]
    has_goodput = goodput is not None and math.isfinite(goodput) and goodput > 0
    _percentile_panel(ttft_ax, frame, rate, sla, "ttft")
    _percentile_panel(tpot_ax, frame, rate, sla, "tpot")
    _attainment_panel(att_ax, frame, rate, sla.attainment_target)
    if rate.size and np.nanmax(rate) / max(np.nanmin(rate), 1e-12) > 8:
        ttft_ax.set_xscale("log")  # shared: rates lie on a geometric grid
    ttft_ax.margins(x=0.1)  # shared: the first and last rates' markers clear the frame
    mark = "≥ " if lower_bound else ""
    for ax in axes[0]:
        if has_goodput:
            ax.axvline(
                goodput, color=GOODPUT_COLOR, ls="-.", lw=1, label=f"goodput {mark}{_fmt(goodput)}"
            )
        ax.set_xlabel("request rate (requests/s)")
        ax.grid(alpha=0.25, which="both")
        ax.legend(fontsize=8)
    if has_goodput:
        headline = f"goodput {mark}{_fmt(goodput)} requests/s"
    elif goodput is not None:
        headline = "no rate tried meets the SLA"
    else:
        headline = "no goodput given"
    n = len(frame)
    fig.suptitle(
        f"Latency and SLA attainment at the {n} rate{'s' if n != 1 else ''} the goodput search "
        f"simulated: {headline}",
        fontsize=11,
    )
    return fig


def _percentile_panel(
    ax: Axes, frame: pd.DataFrame, rate: np.ndarray, sla: SLABounds, prefix: str
) -> None:
    """p50/p90/p99 (and the SLA percentile) of TTFT in s or TPOT in ms, as unjoined points."""
    bound, scale, unit, name = (
        (sla.ttft_s, 1.0, "s", "TTFT") if prefix == "ttft" else (sla.tpot_s, 1e3, "ms", "TPOT")
    )
    pct = float(sla.percentile)
    shown = []
    for p, marker in ((50, "v"), (90, "o"), (99, "^")):
        values = _floats(frame, f"{prefix}_p{p}_s") * scale
        is_sla = math.isclose(p, pct)
        ax.plot(rate, values, ls="none", marker=marker, ms=7 if is_sla else 5,
                label=f"p{p}" + (" (SLA percentile)" if is_sla else ""))  # fmt: skip
        shown.append(values)
    if not any(math.isclose(p, pct) for p in (50, 90, 99)):
        values = _floats(frame, f"{prefix}_at_sla_percentile_s") * scale
        ax.plot(rate, values, ls="none", marker="D", ms=7, label=f"p{pct:g} (SLA)")
        shown.append(values)
    ax.axhline(bound * scale, color=SLA_COLOR, ls="--", label=f"SLA {_fmt(bound * scale)} {unit}")
    shown.append(np.array([bound * scale]))
    _log_if_wide(ax, np.concatenate(shown), "y")
    ax.set_ylabel(f"{name} ({unit})")
    ax.set_title(f"{name} percentiles at each simulated rate", fontsize=10)


def _attainment_panel(ax: Axes, frame: pd.DataFrame, rate: np.ndarray, target: float) -> None:
    attainment = _floats(frame, "attainment")
    meets = frame["meets"].to_numpy(dtype=bool) if "meets" in frame else attainment >= target
    ax.scatter(rate[meets], attainment[meets], color=TARGET_COLOR, zorder=3, label="meets target")
    ax.scatter(rate[~meets], attainment[~meets], color=SLA_COLOR, zorder=3, label="misses target")
    for x, y in zip(rate, attainment, strict=True):
        if math.isfinite(y):
            ax.annotate(f"{y:.1%}", (x, y), xytext=(0, -13), textcoords="offset points",
                        ha="center", fontsize=7, color="0.3")  # fmt: skip
    ax.axhline(target, color=TARGET_COLOR, ls="--", label=f"target {target:.0%}")
    ax.set_ylim(0, 1.03)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("attainment (requests within every bound)")
    ax.set_title("SLA attainment at each simulated rate", fontsize=10)


def per_dollar_vs_link(links: pd.DataFrame, references: dict[str, float]) -> Figure:
    """Goodput per dollar of one deployment over each interconnect, against the nominal
    bandwidth of the narrowest hop per sending instance (log scale), with each reference
    deployment's goodput per dollar as a horizontal line (an all-H200 baseline, say).

    ``links``: one row per interconnect with columns ``label``, ``bandwidth_Bps`` and
    ``per_dollar`` (requests per $); a link with no goodput (NaN or 0) is drawn at the axis
    floor as a cross: no rate met the SLA over it."""
    fig, axes = _figure(1, 1, (9, 4.6))
    ax = axes[0][0]
    frame = links.sort_values("bandwidth_Bps", kind="stable")
    bandwidth = _floats(frame, "bandwidth_Bps") / 1e9
    value = _floats(frame, "per_dollar")
    served = np.isfinite(value) & (value > 0)
    ax.plot(bandwidth[served], value[served], marker="o", color="tab:blue", label="over the link")
    ax.scatter(bandwidth[~served], np.zeros((~served).sum()), marker="x", color=SLA_COLOR,
               zorder=3, label="no rate meets the SLA")  # fmt: skip
    for x, y, label in zip(bandwidth, np.where(served, value, 0.0), frame["label"], strict=True):
        ax.annotate(str(label), (x, y), textcoords="offset points", xytext=(4, 6), fontsize=7)
    for (name, level), color in zip(references.items(), ("black", "0.45", "0.7"), strict=False):
        ax.axhline(level, color=color, ls="--", lw=1.2, label=f"{name}: {_fmt(level)}")
    if bandwidth.size:
        ax.set_xscale("log")
        # room on the right for the fastest link's label; GB/s read as plain numbers
        ax.set_xlim(np.nanmin(bandwidth) / 1.5, np.nanmax(bandwidth) * 3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("narrowest hop per sending instance, nominal (GB/s)")
    ax.set_ylabel("goodput per dollar (requests per $)")
    ax.grid(alpha=0.25, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Goodput per dollar vs the prefill→decode link", fontsize=11)
    return fig


def _verdict_style(verdict: str) -> dict[str, Any]:
    return VERDICT_STYLE.get(verdict, {"color": "tab:gray", "label": verdict})


def _scatter_candidates(ax: Axes, rows: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> None:
    verdicts = rows["verdict"].astype(str).to_numpy() if "verdict" in rows else None
    kinds = rows["kind"].astype(str).to_numpy() if "kind" in rows else None
    for i in range(len(rows)):
        verdict = verdicts[i] if verdicts is not None else Verdict.RANKED
        marker = KIND_MARKER.get(kinds[i], "^") if kinds is not None else "o"
        style = _verdict_style(verdict)
        top = verdict == Verdict.RECOMMENDED
        ax.scatter(
            x[i],
            y[i],
            marker=marker,
            s=170 if top else 40,
            color=style["color"],
            edgecolors="black" if top else "none",
            linewidths=1.2,
            zorder=5 if top else 3,
            alpha=1.0 if top else 0.85,
        )


def _id_labels(ax: Axes, rows: pd.DataFrame, x: np.ndarray, y: np.ndarray, most: int = 40) -> None:
    """``#id`` beside each point, moved apart by adjustText; candidates drawn at one spot share
    one label (``#14 #15``) instead of printing over each other. Past ``most`` points only the
    recommended one and the Pareto front's are named."""
    if "id" not in rows or not len(rows):
        return
    verdicts = rows["verdict"].astype(str).to_numpy() if "verdict" in rows else None
    keep = np.ones(len(rows), dtype=bool)
    if len(rows) > most:
        on_front = set(pareto_front(rows)["id"]) if "cost_per_hour" in rows else set()
        keep = rows["id"].isin(on_front).to_numpy() | (verdicts == Verdict.RECOMMENDED)
    groups: dict[tuple[float, float], list[int]] = {}
    top: set[tuple[float, float]] = set()
    for i in np.flatnonzero(keep & np.isfinite(x) & np.isfinite(y)):
        spot = (float(x[i]), float(y[i]))
        groups.setdefault(spot, []).append(int(rows["id"].iloc[i]))
        if verdicts is not None and verdicts[i] == Verdict.RECOMMENDED:
            top.add(spot)
    texts = []
    for spot, ids in groups.items():
        best = spot in top
        texts.append(
            ax.text(
                *spot,
                " ".join(f"#{i}" for i in sorted(ids)),
                fontsize=8 if best else 7,
                fontweight="bold" if best else "normal",
                color="black" if best else "0.25",
                bbox={"boxstyle": "round", "facecolor": "#fff7d6", "edgecolor": "#e3a008"}
                if best
                else None,
                zorder=6,
            )
        )
    if texts:
        from adjustText import adjust_text  # only plans draw labels; keeps import time down

        adjust_text(texts, x=x[keep], y=y[keep], ax=ax,
                    arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6})  # fmt: skip


def _key_lines(rows: pd.DataFrame, labels: Mapping[int, str], most: int = 8) -> list[str]:
    """``#id: deployment`` for the recommended candidate and the Pareto front (the points a
    reader looks up first); the HTML report's tables name every other id."""
    if "id" not in rows or not labels:
        return []
    best: list[int] = []
    if "verdict" in rows:
        best = [int(i) for i in rows.loc[rows["verdict"].astype(str) == Verdict.RECOMMENDED, "id"]]
    front = [int(i) for i in pareto_front(rows)["id"]] if "cost_per_hour" in rows else []
    chosen = [i for i in dict.fromkeys(best + front) if i in labels][:most]
    return [f"#{i}: {labels[i]}" + (" (recommended)" if i in best else "") for i in chosen]


def _candidate_legend(rows: pd.DataFrame, extra: Sequence[Any]) -> list[Any]:
    handles: list[Any] = []
    verdicts = list(dict.fromkeys(rows["verdict"].astype(str))) if "verdict" in rows else []
    rank = {v: i for i, v in enumerate(VERDICT_STYLE)}
    for verdict in sorted(verdicts, key=lambda v: rank.get(v, len(rank))):
        style = _verdict_style(verdict)
        handles.append(
            Line2D([], [], ls="", marker="o", color=style["color"], label=style["label"])
        )
    for kind in dict.fromkeys(rows["kind"].astype(str)) if "kind" in rows else []:
        marker = KIND_MARKER.get(kind, "^")
        handles.append(Line2D([], [], ls="", marker=marker, color="0.4", mfc="none", label=kind))
    return handles + list(extra)


def pareto(candidates: pd.DataFrame, labels: Mapping[int, str] | None = None) -> Figure:
    """The plan at a glance: (a) cost per hour against goodput for every simulated candidate,
    coloured by verdict, with the Pareto front (the most goodput any budget buys) as a
    staircase; (b) TTFT against TPOT at each candidate's goodput, at the SLA percentile, inside
    or outside the SLA box. Every point is named by its candidate id; ``labels`` (id →
    deployment) adds a key under the panels for the recommended candidate and the front.

    Rows with NaN goodput were not simulated (screened out or invalid) and are only counted.
    """
    good = _floats(candidates, "goodput")
    simulated = candidates[np.isfinite(good)]
    skipped = candidates[~np.isfinite(good)]
    key = _key_lines(simulated, labels or {})
    fig = _ReportFigure(figsize=(13, 5.4 + 0.22 * len(key)), dpi=100, layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[5.4, 0.3 + 0.22 * len(key)])
    cost_ax, lat_ax = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    key_ax = fig.add_subplot(grid[1, :])
    key_ax.axis("off")
    extra: list[Any] = []
    if simulated.empty:
        _empty(cost_ax, "no simulated candidates")
        _empty(lat_ax, "no simulated candidates")
    else:
        _cost_plane(cost_ax, simulated, extra)
        _latency_plane(lat_ax, simulated, extra)
    cost_ax.set_xlabel("cost ($/h)")
    cost_ax.set_ylabel("goodput (requests/s within SLA)")
    cost_ax.set_title("(a) goodput vs cost", fontsize=10)
    cost_ax.grid(alpha=0.25)
    key_ax.legend(handles=_candidate_legend(simulated, extra), loc="upper right", fontsize=8,
                  ncols=2, frameon=False)  # fmt: skip
    if key:
        key_ax.text(0, 1, "\n".join(key), va="top", ha="left", fontsize=8,
                    transform=key_ax.transAxes, family="monospace")  # fmt: skip
    title = f"Deployment candidates: {len(simulated)} simulated"
    if len(skipped):
        by = skipped["verdict"].astype(str).value_counts() if "verdict" in skipped else None
        detail = " (" + ", ".join(f"{n} {v}" for v, n in by.items()) + ")" if by is not None else ""
        title += f", {len(skipped)} not simulated{detail}"
    fig.suptitle(title, fontsize=11)
    return fig


def _cost_plane(ax: Axes, simulated: pd.DataFrame, extra: list[Any]) -> None:
    cost = _floats(simulated, "cost_per_hour")
    goodput = _floats(simulated, "goodput")
    front = pareto_front(simulated)
    if not front.empty:
        fx = np.append(front["cost_per_hour"].to_numpy(float), np.nanmax(cost) * 1.05)
        fy = np.append(front["goodput"].to_numpy(float), front["goodput"].iloc[-1])
        ax.step(fx, fy, where="post", color="0.25", lw=1.2, ls="--", zorder=2)
        extra.append(Line2D([], [], color="0.25", ls="--", label="Pareto front"))
    _scatter_candidates(ax, simulated, cost, goodput)
    # the axes start at the cheapest and least candidates, not at 0: the points then spread
    # over the panel instead of crowding one corner
    ax.set_xlim(*_padded(cost))
    ax.set_ylim(*_padded(goodput))
    _id_labels(ax, simulated, cost, goodput)


def _padded(values: np.ndarray, pad: float = 0.12) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else max(abs(hi), 1e-9) * 0.5
    return max(lo - pad * span, 0.0), hi + pad * span


def _latency_plane(ax: Axes, simulated: pd.DataFrame, extra: list[Any]) -> None:
    ttft = _floats(simulated, "ttft_p_s")
    tpot = _floats(simulated, "tpot_p_s") * 1e3
    both = np.isfinite(ttft) & np.isfinite(tpot)
    sla_ttft = _floats(simulated, "sla_ttft_s")
    sla_tpot = _floats(simulated, "sla_tpot_s") * 1e3
    box = (
        (float(sla_tpot[0]), float(sla_ttft[0]))
        if len(simulated) and np.isfinite(sla_ttft[0]) and np.isfinite(sla_tpot[0])
        else None
    )
    if box is not None:
        ax.add_patch(
            Rectangle(
                (0, 0), *box, facecolor=TARGET_COLOR, alpha=0.1, edgecolor=TARGET_COLOR, ls="--"
            )
        )
        extra.append(Patch(facecolor=TARGET_COLOR, alpha=0.25, label="SLA box"))
    ax.set_title("(b) latency at each candidate's goodput", fontsize=10)
    if not both.any():
        _empty(ax, "no latencies at goodput (no candidate meets the SLA)")
        return
    rows = simulated[both]
    _scatter_candidates(ax, rows, tpot[both], ttft[both])
    xmax = max(np.nanmax(tpot[both]), box[0] if box else 0)
    ymax = max(np.nanmax(ttft[both]), box[1] if box else 0)
    ax.set_xlim(0, xmax * 1.08)
    ax.set_ylim(0, ymax * 1.08)
    _id_labels(ax, rows, tpot[both], ttft[both])
    ax.set_xlabel("TPOT at the SLA percentile (ms)")
    ax.set_ylabel("TTFT at the SLA percentile (s)")
    ax.grid(alpha=0.25)


# ---- saving -----------------------------------------------------------------------------------


def save_figure(
    fig: Figure, out_dir: str | Path, name: str, formats: Sequence[str] = ("png", "svg")
) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.<format>`` for each format; returns the paths.

    SVGs carry no date and fixed element ids, so the same figure writes the same bytes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context({"svg.hashsalt": "hetsim"}):
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            metadata = {"Date": None} if fmt in ("svg", "pdf") else None
            fig.savefig(path, format=fmt, dpi=150, metadata=metadata)
            written.append(path)
    return written


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "pool"


def simulation_figures(result: SimulationResult) -> dict[str, Figure]:
    """The figures of one run, by file name: ``latency_cdf``, ``kv_occupancy``,
    ``link_utilisation`` (only when the scenario has links) and ``step_breakdown_<pool>``."""
    figures = {
        "latency_cdf": latency_cdfs(result),
        "kv_occupancy": kv_occupancy(result),
    }
    if not result.links.empty:
        figures["link_utilisation"] = link_utilisation(result)
    for pool in result.scenario.spec.pools:
        figures[f"step_breakdown_{_safe_name(pool.name)}"] = step_breakdown(
            result.scenario, pool.name
        )
    return figures


def write_simulation_plots(result: SimulationResult, out_dir: str | Path) -> list[Path]:
    """Every figure of :func:`simulation_figures` as PNG and SVG in ``out_dir``."""
    written = []
    for name, fig in simulation_figures(result).items():
        written += save_figure(fig, out_dir, name)
    return written
