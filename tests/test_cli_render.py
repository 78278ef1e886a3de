"""A CLI that fits a terminal: tables within 80 and 100 columns with whole accelerator names,
flags without a value placeholder, errors that name the real cause, traces read as given."""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app, render
from hetsim.errors import InputError
from hetsim.planner.backends import RayBackend
from hetsim.report.display import plain
from hetsim.workload import trace_stats
from hetsim.workload.stats import _full_minutes

# two disaggregated candidates, the colocated baselines and yours, 60 requests: a second
SMALL = [
    "workload.synthetic.requests=60",
    "search.prefill.instances=[1]",
    "search.decode.instances=[1]",
    "search.decode.kv=[bf16]",
]


@pytest.fixture(scope="module")
def small_plan():
    return hetsim.plan(hetsim.load_scenario("tests/data/plan-small.yaml", SMALL), workers=1)


def printed(monkeypatch, width: int, draw) -> list[str]:
    """The lines ``draw()`` prints on a terminal ``width`` columns wide."""
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(width=width, file=out, color_system=None))
    draw()
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 100])
def test_the_plan_table_fits_the_terminal_with_whole_accelerator_names(
    monkeypatch, small_plan, width
):
    lines = printed(monkeypatch, width, lambda: render.plan(small_plan, top=5))
    table = [line for line in lines if line[:1] in "┃│┏┡└"]
    assert table and max(len(line) for line in lines) <= width
    text = "\n".join(table)
    assert "…" not in text
    assert "nvidia-" not in text  # the vendor prefix goes; the model number stays whole
    rows = [line for line in table if "h100-sxm" in line or "h20" in line]
    assert rows
    # the recommended row: its id and goodput in plain digits
    best = small_plan.best
    assert f"#{best.id}" in text and plain(best.goodput) in text
    assert any("boundary" in line for line in table) is (width >= 100)


@pytest.mark.parametrize("width", [80, 100])
def test_profiles_fit_the_terminal(monkeypatch, width):
    profiles = [hetsim.load_profile(n) for n in hetsim.available_profiles()]
    lines = printed(monkeypatch, width, lambda: render.profiles(profiles))
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    assert "…" not in text
    assert "nvidia-h100-sxm" in text and "TFLOPS" in text
    assert "at 140 columns or more, or with --json" in " ".join(text.split())


def test_flags_show_no_value_placeholder_in_help():
    for command in ("plan", "simulate", "trace"):
        args = [command, "stats", "--help"] if command == "trace" else [command, "--help"]
        result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output
    plan_help = CliRunner().invoke(app, ["plan", "--help"], env={"COLUMNS": "100"}).output
    assert "PATH=VALUE" in plan_help  # --set says what it takes


class _Refused(Exception):
    pass


def _fake_ray(monkeypatch, error: Exception) -> None:
    def init(**kwargs):
        raise error

    fake = types.SimpleNamespace(
        is_initialized=lambda: False,
        init=init,
        exceptions=types.SimpleNamespace(AuthenticationError=_Refused),
    )
    monkeypatch.setitem(sys.modules, "ray", fake)


def test_a_ray_cluster_refusing_the_token_is_not_reported_unreachable(monkeypatch):
    _fake_ray(monkeypatch, _Refused("token mismatch"))
    with pytest.raises(InputError) as info:
        RayBackend("head:6379")
    message = info.value.render()
    assert "authentication failed" in message and "token mismatch" in message
    assert "cannot reach" not in message and "RAY_AUTH_TOKEN" in message


def test_an_unauthenticated_grpc_status_is_an_authentication_error_too(monkeypatch):
    _fake_ray(monkeypatch, ConnectionError("StatusCode.UNAUTHENTICATED: invalid token"))
    with pytest.raises(InputError, match="authentication failed"):
        RayBackend("head:6379")


def test_an_unreachable_ray_cluster_says_so(monkeypatch):
    _fake_ray(monkeypatch, ConnectionError("Could not find any running Ray instance"))
    with pytest.raises(InputError, match="cannot reach a Ray cluster at head:6379"):
        RayBackend("head:6379")


def _write_csv(path, arrivals) -> None:
    rows = ["ts,prompt,completion"] + [f"{t},100,10" for t in arrivals]
    path.write_text("\n".join(rows) + "\n")


def test_a_column_mapping_without_format_reads_the_file_as_csv(tmp_path):
    trace = tmp_path / "mine.csv"
    _write_csv(trace, [0.0, 1.0, 2.0])
    columns = {"arrival": "ts", "input_tokens": "prompt", "output_tokens": "completion"}
    stats = trace_stats(trace, None, columns=columns)
    assert (stats.format, stats.requests, stats.duration_s) == ("csv", 3, 2.0)
    result = CliRunner().invoke(
        app,
        ["trace", "stats", str(trace), "--json",
         "--columns", "arrival=ts,input_tokens=prompt,output_tokens=completion"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"format": "csv"' in result.output


def test_the_partial_last_minute_is_not_drawn_as_a_drop(tmp_path):
    # 130 s of arrivals, one per second: minutes of 60, 60 and the last 10 s (11 arrivals,
    # 130 s included)
    trace = tmp_path / "steady.csv"
    _write_csv(trace, np.arange(0, 131, 1.0))
    columns = {"arrival": "ts", "input_tokens": "prompt", "output_tokens": "completion"}
    stats = trace_stats(trace, "csv", columns=columns)
    assert stats.per_minute.tolist() == [60, 60, 11]
    assert stats.last_minute_s == pytest.approx(10.0)
    shown, note = _full_minutes(stats)
    assert shown.tolist() == [60, 60]
    assert "last 10 s" in note and "11 requests" in note
    assert stats.to_dict()["last_minute_s"] == pytest.approx(10.0)


@pytest.mark.parametrize("width", [80, 100])
def test_check_and_models_fit_the_terminal_without_cutting_names(monkeypatch, width):
    from hetsim.report.describe import describe

    info = describe(hetsim.load_scenario("scenarios/qwen3-32b-6p2d.yaml"))
    models = [hetsim.load_model(n) for n in hetsim.bundled_models()]
    for draw in (lambda: render.check(info), lambda: render.models(models)):
        lines = printed(monkeypatch, width, draw)
        assert max(len(line) for line in lines) <= width
        assert "…" not in "\n".join(lines)
    lines = printed(monkeypatch, width, lambda: render.check(info))
    # narrow: one column per pool, each measure on its own row, the accelerator whole
    row = next(line for line in lines if line.strip().startswith("accelerator"))
    assert row.split()[1:] == ["nvidia-h100-sxm", "nvidia-h100-sxm"]
