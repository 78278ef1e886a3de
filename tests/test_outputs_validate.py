"""``hetsim validate --out`` is written whole (see :mod:`hetsim.outputs`), and a path that cannot
hold outputs fails before any calibration or simulation runs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.outputs import MANIFEST


def never(*args, **kwargs):
    raise AssertionError("ran although --out cannot take the outputs")


@pytest.mark.parametrize("extra", [["--no-model"], ["--silicon", "silicon.csv"]])
def test_out_that_is_a_file_fails_first(tmp_path, monkeypatch, extra):
    for name in ("calibrate", "validate"):
        monkeypatch.setattr(hetsim, name, never)
    a_file = tmp_path / "validation.csv"
    a_file.write_text("keep")
    result = CliRunner().invoke(app, ["validate", "--out", str(a_file), *extra])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == "--out"
    assert a_file.read_text() == "keep"


def test_a_rerun_replaces_its_files_and_keeps_foreign_ones(tmp_path, monkeypatch):
    from hetsim.cli.validate import _write

    frame = pd.DataFrame({"check": ["kernels"], "abs_error_pct": [3.0]})
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / MANIFEST).write_text(json.dumps(["predicted_vs_measured.png", "old.csv"]))
    (tmp_path / "old.csv").write_text("stale")
    monkeypatch.setattr("hetsim.report.predicted_vs_measured", lambda f: SimpleNamespace())
    monkeypatch.setattr(
        "hetsim.report.save_figure",
        lambda fig, out, name, fmts: [_touch(out / f"{name}.png")],
    )
    written = _write(frame, tmp_path)
    assert sorted(p.name for p in written) == ["predicted_vs_measured.png", "validation.csv"]
    assert not (tmp_path / "old.csv").exists()  # the earlier run's, not written this time
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert pd.read_csv(tmp_path / "validation.csv")["abs_error_pct"].tolist() == [3.0]


def _touch(path):
    path.write_bytes(b"png")
    return path
