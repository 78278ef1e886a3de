"""Figures and HTML reports: every figure saves as a valid PNG and SVG, shows the SLA and the
goodput where it should, and the HTML report stands alone."""

from __future__ import annotations

import base64
import math
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import hetsim
from hetsim.metrics import SLABounds
from hetsim.planner.goodput import goodput
from hetsim.report import (
    Section,
    html_report,
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
    write_simulation_report,
)
from hetsim.simulation import SimulationResult

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def disaggregated() -> SimulationResult:
    return hetsim.simulate(SCENARIOS / "qwen3-32b-6p2d.yaml", max_requests=150)


@pytest.fixture(scope="module")
def sweep():
    scenario = hetsim.load_scenario(
        SCENARIOS / "qwen3-32b-colocated.yaml", ["workload.synthetic.requests=100"]
    )
    return goodput(scenario, rel_tol=0.25)


def assert_png(path: Path, min_size: tuple[int, int] = (400, 300)) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    # the IHDR chunk comes first: length, type, then width and height big-endian
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_size[0] and height >= min_size[1], (path, width, height)


def assert_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg"), (path, root.tag)


def assert_saved(fig: Figure, out: Path, name: str) -> None:
    paths = save_figure(fig, out, name)
    assert [p.name for p in paths] == [f"{name}.png", f"{name}.svg"]
    assert_png(paths[0])
    assert_svg(paths[1])


def vertical_lines_at(fig: Figure, ax_index: int) -> list[float]:
    ax = fig.axes[ax_index]
    return [
        float(line.get_xdata()[0])
        for line in ax.get_lines()
        if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]
    ]


def texts(fig: Figure) -> list[str]:
    found = [t.get_text() for ax in fig.axes for t in ax.texts]
    if fig._suptitle is not None:
        found.append(fig._suptitle.get_text())
    return found


# ---- one run ----------------------------------------------------------------------------------


def test_simulation_plots_are_written_as_png_and_svg(tmp_path, disaggregated):
    paths = write_simulation_plots(disaggregated, tmp_path)
    names = {p.name for p in paths}
    for stem in (
        "latency_cdf",
        "kv_occupancy",
        "link_utilisation",
        "step_breakdown_prefill",
        "step_breakdown_decode",
    ):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    for path in paths:
        assert path.exists()
        (assert_png if path.suffix == ".png" else assert_svg)(path)


def test_latency_cdfs_draw_the_sla_bounds_in_axis_units(disaggregated):
    fig = latency_cdfs(disaggregated)
    sla = disaggregated.summary.sla
    assert sla.ttft_s in vertical_lines_at(fig, 0)  # TTFT axis in seconds
    assert pytest.approx(sla.tpot_s * 1e3) in vertical_lines_at(fig, 1)  # TPOT in ms
    assert fig.axes[0].get_xlabel().endswith("(s)")
    assert fig.axes[1].get_xlabel().endswith("(ms)")
    assert any("attainment" in t for t in texts(fig))


def test_a_colocated_run_has_no_link_figure():
    result = hetsim.simulate(SCENARIOS / "qwen3-32b-colocated.yaml", max_requests=40)
    assert set(simulation_figures(result)) == {
        "latency_cdf",
        "kv_occupancy",
        "step_breakdown_serve",
    }


def test_link_utilisation_recovers_each_interval_from_the_since_start_mean():
    scenario = hetsim.load_scenario(SCENARIOS / "qwen3-32b-6p2d.yaml")
    # busy 1 s out of the second 1-s interval only: since-start means 0, 1/2, 1/3
    links = pd.DataFrame(
        {
            "time_s": [1.0, 2.0, 3.0],
            "link": ["l0"] * 3,
            "bytes_in_flight": [0.0, 2**30, 0.0],
            "active_transfers": [0, 1, 0],
            "bandwidth": [100e9] * 3,
            "utilisation_since_start": [0.0, 0.5, 1 / 3],
        }
    )
    result = SimulationResult(scenario, pd.DataFrame(), pd.DataFrame(), links, {})
    fig = link_utilisation(result)
    util_ax, rate_ax, flight_ax = fig.axes[:3]
    np.testing.assert_allclose(util_ax.get_lines()[0].get_ydata(), [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(rate_ax.get_lines()[0].get_ydata(), [0.0, 100.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(flight_ax.get_lines()[0].get_ydata(), [0.0, 1.0, 0.0])
    assert rate_ax.get_ylabel() == "GB/s" and flight_ax.get_ylabel() == "GiB"


def test_kv_occupancy_plots_each_state_as_a_share_of_capacity():
    scenario = hetsim.load_scenario(SCENARIOS / "qwen3-32b-6p2d.yaml")
    ts = pd.DataFrame(
        {
            "time_s": [1.0, 2.0],
            "instance": [0, 0],
            "instance_name": ["prefill[0]"] * 2,
            "pool": ["prefill"] * 2,
            "role": ["prefill"] * 2,
            "kv_used_blocks": [50, 10],
            "kv_reserved_blocks": [0, 0],
            "kv_held_blocks": [25, 40],
            "kv_capacity_blocks": [100, 100],
        }
    )
    result = SimulationResult(scenario, pd.DataFrame(), ts, pd.DataFrame(), {})
    allocated, used, reserved, held = kv_occupancy(result).axes[:4]
    np.testing.assert_allclose(allocated.get_lines()[0].get_ydata(), [0.75, 0.5])
    np.testing.assert_allclose(used.get_lines()[0].get_ydata(), [0.5, 0.1])
    np.testing.assert_allclose(held.get_lines()[0].get_ydata(), [0.25, 0.4])
    assert "none in this run" in reserved.get_title()


def test_step_breakdown_names_the_accelerator_tp_and_precision(tmp_path):
    scenario = hetsim.load_scenario(SCENARIOS / "qwen3-32b-6p2d.yaml")
    fig = step_breakdown(scenario, "decode", batch=16, context=2048, prefill_tokens=1024)
    title = fig._suptitle.get_text()
    assert scenario.profiles["decode"].display_name in title
    assert "tp=1" in title and "bf16" in title
    prefill_ax, decode_ax = fig.axes[:2]
    assert "1024-token" in prefill_ax.get_title()
    assert "batch 16" in decode_ax.get_title() and "2048" in decode_ax.get_title()
    assert len(decode_ax.patches) >= 5  # one bar per op
    assert_saved(fig, tmp_path, "step")


def test_predicted_vs_measured_from_a_validation_frame(tmp_path):
    frame = pd.DataFrame(
        {
            "check": ["kernel", "kernel", "model"],
            "family": ["gemm", "gemm", "decode"],
            "dtype": ["fp32"] * 3,
            "case": ["a", "b", "c"],
            "measured_s": [1e-4, 2e-3, 5e-2],
            "predicted_s": [1.1e-4, 1.8e-3, 5.5e-2],
            "abs_error_pct": [10.0, 10.0, 10.0],
        }
    )
    fig = predicted_vs_measured(frame)
    assert fig.axes[0].get_xscale() == "log"
    assert_saved(fig, tmp_path, "validate")


# ---- rate sweeps and plans --------------------------------------------------------------------


def test_latency_vs_rate_marks_the_goodput_on_every_panel(tmp_path, sweep):
    fig = latency_vs_rate(sweep.to_frame(), sweep.summary.sla, sweep.rate)
    assert sweep.rate > 0
    for i in range(3):
        assert sweep.rate in vertical_lines_at(fig, i)
    assert fig.axes[1].get_ylabel() == "TPOT (ms)"
    assert f"{sweep.rate:.3g}" in fig._suptitle.get_text()
    # only the simulated rates are drawn, and nothing joins them: no trend between two rates
    n = len(sweep.points)
    assert f"at the {n} rates the goodput search simulated" in fig._suptitle.get_text()
    for ax in fig.axes[:2]:
        percentiles = [line for line in ax.get_lines() if line.get_label().startswith("p")]
        assert len(percentiles) == 3
        assert all(line.get_linestyle() == "None" for line in percentiles)
        assert all(len(line.get_xdata()) == n for line in percentiles)
    assert not [line for line in fig.axes[2].get_lines() if len(line.get_xdata()) > 2]
    assert_saved(fig, tmp_path, "latency_vs_rate")


def test_latency_vs_rate_without_goodput_tolerates_missing_latencies():
    points = pd.DataFrame(
        {
            "rate": [2.0, 1.0],
            "attainment": [0.2, 0.5],
            "meets": [False, False],
            "ttft_p50_s": [1.0, None],
            "ttft_p90_s": [3.0, None],
            "ttft_p99_s": [9.0, None],
            "ttft_at_sla_percentile_s": [4.0, None],
            "tpot_p50_s": [0.02, None],
            "tpot_p90_s": [0.03, None],
            "tpot_p99_s": [0.05, None],
            "tpot_at_sla_percentile_s": [0.04, None],
        }
    )
    sla = SLABounds(ttft_s=2.0, tpot_s=0.06, percentile=95.0, attainment_target=0.9)
    fig = latency_vs_rate(points, sla, 0.0)
    assert "no rate tried meets the SLA" in fig._suptitle.get_text()
    assert not vertical_lines_at(fig, 0)
    # a percentile not in p50/p90/p99 gets its own line
    assert any("p95" in line.get_label() for line in fig.axes[0].get_lines())


def _candidates() -> pd.DataFrame:
    rows = [
        # label, kind, verdict, cost, goodput
        ("cheap", "disaggregated", "ranked", 8.0, 2.0),
        ("dominated: dearer, less", "disaggregated", "beaten", 16.0, 1.5),
        ("equal cost, less", "disaggregated", "ranked", 24.0, 5.0),
        ("best at 24", "colocated", "recommended", 24.0, 9.0),
        ("tie at 24", "disaggregated", "ranked", 24.0, 9.0),
        ("dearer, same goodput", "disaggregated", "ranked", 30.0, 9.0),
        ("most", "disaggregated", "ranked", 40.0, 12.0),
        ("serves nothing", "disaggregated", "fails_sla", 4.0, 0.0),
        ("screened", "disaggregated", "screened", 2.0, math.nan),
        ("invalid", "colocated", "invalid", 1.0, math.nan),
    ]
    frame = pd.DataFrame(rows, columns=["label", "kind", "verdict", "cost_per_hour", "goodput"])
    frame["ttft_p_s"] = [1.9, math.nan, 1.5, 1.2, 1.0, 0.9, 1.8, math.nan, math.nan, math.nan]
    frame["tpot_p_s"] = [0.05, math.nan, 0.045, 0.05, 0.04, 0.04, 0.058] + [math.nan] * 3
    frame["sla_ttft_s"] = 2.0
    frame["sla_tpot_s"] = 0.06
    return frame


def test_pareto_front_keeps_the_rows_no_other_beats_on_cost_and_goodput():
    front = pareto_front(_candidates())
    assert list(front["label"]) == ["cheap", "best at 24", "tie at 24", "most"]
    assert list(front["cost_per_hour"]) == sorted(front["cost_per_hour"])
    assert list(front.index) == [0, 3, 4, 6]  # original rows, for the caller to look up
    assert pareto_front(_candidates().iloc[8:]).empty  # nothing simulated, no front


def test_pareto_figure_names_each_point_once_and_keys_the_recommended_and_front(tmp_path):
    frame = _candidates()
    frame["id"] = range(len(frame))
    labels = {i: f"deployment {i}" for i in frame["id"]}
    fig = pareto(frame, labels)
    title = fig._suptitle.get_text()
    assert "8 simulated" in title and "2 not simulated (1 screened, 1 invalid)" in title
    cost_ax, latency_ax, key_ax = fig.axes[:3]
    cost_labels = sorted(t.get_text() for t in cost_ax.texts)
    # "best at 24" (#3) and "tie at 24" (#4) lie on one spot: one label names both
    assert cost_labels == ["#0", "#1", "#2", "#3 #4", "#5", "#6", "#7"]
    # on the latency plane they differ; rows without latencies are not drawn there
    assert sorted(t.get_text() for t in latency_ax.texts) == ["#0", "#2", "#3", "#4", "#5", "#6"]
    key = key_ax.texts[0].get_text().splitlines()
    assert key[0] == "#3: deployment 3 (recommended)"
    assert key[1:] == ["#0: deployment 0", "#4: deployment 4", "#6: deployment 6"]  # the front
    assert latency_ax.patches  # the SLA box
    assert_saved(fig, tmp_path, "pareto")


def test_pareto_with_nothing_simulated_still_draws():
    fig = pareto(_candidates().iloc[8:])
    assert "0 simulated" in fig._suptitle.get_text()


# ---- HTML -------------------------------------------------------------------------------------


def _no_external_references(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page.lower()
    assert "<script" not in page.lower()


def test_html_report_is_one_self_contained_page():
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    sections = [
        Section("Overview", text="First paragraph.\n\n<script>alert(1)</script> & more"),
        Section("Numbers", table=pd.DataFrame({"rate": [1.23456, 12345.6], "name": ["a", "b"]})),
        Section("A figure", figure=fig),
        Section("Raw", code="key: <value>"),
    ]
    page = html_report("Title & co", sections, subtitle="sub")
    for heading in ("Overview", "Numbers", "A figure", "Raw"):
        assert f">{heading}</h2>" in page
    assert "&lt;script&gt;" in page and "Title &amp; co" in page
    assert "key: &lt;value&gt;" in page
    assert "1.235" in page and "12,346" in page
    match = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match and base64.b64decode(match.group(1))[:8] == PNG_SIGNATURE
    assert f"hetsim {hetsim.__version__}" in page
    _no_external_references(page)


def test_simulation_report_has_scenario_results_figures_and_yaml(tmp_path, disaggregated):
    path = write_simulation_report(disaggregated, tmp_path / "out" / "report.html")
    page = path.read_text()
    for heading in ("What was simulated", "Workload and SLA", "Results", "What was assumed",
                    "Latency distributions"):  # fmt: skip
        assert f">{heading}</h2>" in page
    assert page.count('<img src="data:image/png;base64,') == 5
    assert "NVIDIA H100" in page and "stopped after 150" in page
    assert "name: qwen3-32b-6p2d" in page  # the scenario as YAML
    assert "vs target 90%" in page
    # what the numbers rest on: each pool's price and its source, each pool's step times
    assert "Price of nvidia-h100-sxm (pool prefill): $" in page
    assert "Step times of pool decode: " in page
    _no_external_references(page)


def test_figures_render_themselves_as_notebook_cell_values():
    # without pyplot, IPython only knows how to show a figure through _repr_png_
    scenario = hetsim.load_scenario(SCENARIOS / "qwen3-32b-6p2d.yaml")
    assert step_breakdown(scenario)._repr_png_()[:8] == PNG_SIGNATURE


def test_simulation_report_paths_show_the_bandwidth_the_simulator_uses(tmp_path, disaggregated):
    # the scenario declares a 450 GB/s NVLink hop; the simulator (and check) apply the source
    # profile's network efficiency of 0.8 to it
    page = write_simulation_report(disaggregated, tmp_path / "report.html").read_text()
    assert "450 GB/s × 0.8 [source profile efficiency.network] = 360 GB/s" in page
    assert "network KV B/token" in page


def test_describe_loads_without_matplotlib():
    # hetsim check imports describe; the figures and HTML of the package load on first use
    code = "import sys, hetsim.report.describe; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_every_final_verdict_has_a_plot_style_keyed_by_the_enum():
    from hetsim.planner.verdict import FINAL_VERDICTS, Verdict
    from hetsim.report.plots import VERDICT_STYLE

    assert all(isinstance(v, Verdict) for v in VERDICT_STYLE)
    assert set(VERDICT_STYLE) == set(FINAL_VERDICTS)


def test_a_closed_loop_runs_workload_table_names_its_clients_and_lengths():
    from hetsim.report.html import _workload_table

    result = hetsim.simulate(SCENARIOS / "closed-loop-llama70b-h200.yaml", max_requests=80)
    rows = dict(_workload_table(result.scenario, result.summary).to_numpy().tolist())
    assert rows["source"] == "closed loop, 64 clients"
    assert rows["requests"] == "640 (this run: 80)"
    assert rows["input tokens"] == "2048 tokens" and rows["think time"] == "0 s"
