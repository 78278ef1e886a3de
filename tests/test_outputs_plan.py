"""``hetsim plan --out`` writes its folder whole, like ``simulate --out`` (see
:mod:`hetsim.outputs`), and a path that cannot hold outputs fails before the search starts."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.cli.plan import _write
from hetsim.errors import InputError
from hetsim.outputs import MANIFEST

# one disaggregated candidate, 40 requests: a plan in seconds
ONE = [
    "workload.synthetic.requests=40",
    "search.prefill.instances=[1]",
    "search.decode.instances=[1]",
    "search.decode.accelerators=[nvidia-h100-sxm]",
    "search.decode.kv=[bf16]",
    "search.colocated=false",
]


@pytest.fixture(scope="module")
def result():
    return hetsim.plan(hetsim.load_scenario("tests/data/plan-small.yaml", ONE), workers=1)


def test_a_rerun_removes_what_only_the_earlier_run_wrote_and_keeps_foreign_files(result, tmp_path):
    first = _write(result, tmp_path, plots=True, html=False)
    assert {"plan.json", "candidates.csv", "pareto.png", "pareto.svg"} <= {p.name for p in first}
    (tmp_path / "notes.txt").write_text("mine")
    second = _write(result, tmp_path, plots=False, html=False)
    names = {p.relative_to(tmp_path).as_posix() for p in second}
    assert "pareto.svg" not in names and not (tmp_path / "pareto.svg").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(json.loads((tmp_path / MANIFEST).read_text())) == sorted(names)
    assert all(tmp_path in p.parents and p.exists() for p in second)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hetsim-staging-")]
    assert json.loads((tmp_path / "plan.json").read_text())["scenario"] == "plan-small"


def test_the_api_write_is_staged_too(result, tmp_path):
    (tmp_path / "plan.json").write_text("old")
    written = result.write(tmp_path)
    assert sorted(p.name for p in written) == ["candidates.csv", "plan.json"]
    assert json.loads((tmp_path / MANIFEST).read_text()) == ["candidates.csv", "plan.json"]
    assert (tmp_path / "plan.json").read_text() != "old"


def never_plan(*args, **kwargs):
    raise AssertionError("the search ran although --out cannot take its outputs")


@pytest.mark.parametrize("kind", ["devnull", "file", "under_a_file", "read_only"])
def test_out_that_cannot_take_outputs_fails_before_the_search(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(hetsim, "plan", never_plan)
    a_file = tmp_path / "plan.json"
    a_file.write_text("{}")
    out = {"devnull": "/dev/null", "file": str(a_file), "under_a_file": str(a_file / "run")}.get(
        kind, str(tmp_path / "ro")
    )
    if kind == "read_only":  # root writes into a chmod 555 folder: refuse as os.access would
        access = os.access
        monkeypatch.setattr(
            "hetsim.outputs.os.access", lambda path, mode: str(path) != out and access(path, mode)
        )
    result = CliRunner().invoke(app, ["plan", "tests/data/plan-small.yaml", "--out", out])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == "--out"
    assert a_file.read_text() == "{}"


def test_a_long_recommended_label_leaves_the_pareto_axes_their_room(result):
    import io
    import warnings

    from hetsim.report.plots import pareto

    fig = pareto(result.to_frame())
    # a one-line disaggregated label wider than the axes made constrained layout give up
    # ("axes sizes collapsed to zero") and the saved panels came out as slivers
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(io.BytesIO(), format="png", dpi=50)
    widths = [ax.get_position().width for ax in fig.axes]
    assert min(widths) > 0.25, widths
