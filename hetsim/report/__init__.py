"""Figures and HTML reports of runs, rate sweeps and plans.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot (they show inline in
a notebook and save headless with :func:`save_figure`); :func:`html_report` assembles
:class:`Section`\\ s into one self-contained page.
"""

from hetsim.report.html import Section, html_report, write_simulation_report
from hetsim.report.planning import plan_figures, write_plan_plots, write_plan_report
from hetsim.report.plots import (
    kv_occupancy,
    latency_cdfs,
    latency_vs_rate,
    link_utilisation,
    pareto,
    pareto_front,
    predicted_vs_measured,
    save_figure,
    simulation_figures,
    step_breakdown,
    write_simulation_plots,
)

__all__ = [
    "Section",
    "html_report",
    "kv_occupancy",
    "latency_cdfs",
    "latency_vs_rate",
    "link_utilisation",
    "pareto",
    "pareto_front",
    "predicted_vs_measured",
    "save_figure",
    "simulation_figures",
    "step_breakdown",
    "write_simulation_plots",
    "write_simulation_report",
    "plan_figures",
    "write_plan_plots",
    "write_plan_report",
]
