"""Figures and HTML reports of runs, rate sweeps and plans.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot (they show inline in
a notebook and save headless with :func:`save_figure`); :func:`html_report` assembles
:class:`Section`\\ s into one self-contained page.

The names below load on first use: ``hetsim check`` imports :mod:`hetsim.report.describe`
and must not pay for pandas and matplotlib.
"""

from importlib import import_module

#: each public name and the module that owns it
_HOME = {
    "Section": "html",
    "html_report": "html",
    "write_simulation_report": "html",
    "plan_figures": "planning",
    "write_plan_plots": "planning",
    "write_plan_report": "planning",
    "best_scenario": "best",
    "launch_roles": "launch",
    "write_best": "best",
    "write_launch": "launch",
    "kv_occupancy": "plots",
    "latency_cdfs": "plots",
    "latency_vs_rate": "plots",
    "link_utilisation": "plots",
    "per_dollar_vs_link": "plots",
    "pareto": "plots",
    "pareto_front": "plots",
    "predicted_vs_measured": "plots",
    "save_figure": "plots",
    "simulation_figures": "plots",
    "step_breakdown": "plots",
    "write_simulation_plots": "plots",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):  # noqa: ANN202 - lazy: pandas and matplotlib load only when used
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'hetsim.report' has no attribute {name!r}")
    return getattr(import_module(f"hetsim.report.{home}"), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]
