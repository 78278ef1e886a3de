"""Figures of a benchmark comparison: measured vs simulated latency CDFs, and error vs load.

Built on :class:`matplotlib.figure.Figure` (no pyplot state), so they draw headless; save them
with :func:`hetsim.report.save_figure`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from hetsim.validation.replay import LATENCIES, BenchComparison

__all__ = ["cdf_figure", "error_vs_load_figure"]

_SHOWN = ("TTFT", "TPOT", "E2E")


def cdf_figure(comp: BenchComparison, label: str = "hetsim") -> Figure:
    """One panel per latency: the measured and the simulated CDF over requests."""
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, len(_SHOWN))
    for ax, name in zip(axes, _SHOWN, strict=True):
        col = LATENCIES[name]
        for values, what, style in (
            (comp.measured[col], "measured", "-"),
            (comp.simulated[col], label, "--"),
        ):
            v = np.sort(values.dropna().to_numpy())
            if v.size:
                ax.step(v, np.arange(1, v.size + 1) / v.size, style, where="post", label=what)
        ax.set_xlabel(f"{name} (s)")
        ax.set_ylabel("share of requests")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(f"{comp.run.path.name}: measured vs simulated")
    return fig


def error_vs_load_figure(comp: BenchComparison) -> Figure:
    """Per-request relative error against the requests in flight when each arrived."""
    from hetsim.validation.replay import in_flight

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    if comp.measured["arrival_s"].notna().all():  # a closed loop's load is its concurrency
        load = in_flight(comp.measured)
        for name in _SHOWN:
            err = comp.requests[f"err_{LATENCIES[name]}"].to_numpy()
            ax.scatter(load, 100.0 * err, s=8, alpha=0.5, label=name)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("requests in flight at arrival (measured)")
    ax.set_ylabel("simulated / measured - 1 (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{comp.run.path.name}: error vs load")
    return fig
