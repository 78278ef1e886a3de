"""``--out`` folders are written whole: staged files renamed into place, an earlier run's extra
files removed, other files kept, and a path that cannot hold outputs is an input error."""

import json
import os
import subprocess
import sys

import pytest

from hetsim.errors import InputError
from hetsim.outputs import MANIFEST, staged
from hetsim.simulation import simulate


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "hetsim", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def result():
    return simulate("scenarios/qwen3-32b-4p4d.yaml", max_requests=20)


def test_rerun_without_csv_removes_the_stale_csv_and_keeps_foreign_files(result, tmp_path):
    result.write(tmp_path, csv=True)
    assert (tmp_path / "requests.csv").exists()
    (tmp_path / "notes.txt").write_text("mine")
    written = result.write(tmp_path)
    assert not (tmp_path / "requests.csv").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in written) == sorted(json.loads((tmp_path / MANIFEST).read_text()))
    assert all(p.parent == tmp_path and p.exists() for p in written)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hetsim-staging-")]


def test_a_failed_write_leaves_the_earlier_outputs_as_they_were(tmp_path):
    (tmp_path / "summary.json").write_text("old")
    with pytest.raises(RuntimeError), staged(tmp_path) as stage:
        (stage.dir / "summary.json").write_text("new")
        raise RuntimeError("killed mid-write")
    assert (tmp_path / "summary.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_manifest_naming_files_outside_the_folder_deletes_nothing_there(tmp_path):
    outside = tmp_path / "keep.txt"
    outside.write_text("x")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps(["../keep.txt", str(outside)]))
    with staged(out) as stage:
        (stage.dir / "summary.json").write_text("{}")
    assert outside.exists()


@pytest.mark.parametrize("kind", ["devnull", "file", "under_a_file"])
def test_out_that_cannot_be_a_folder_is_an_input_error(tmp_path, kind):
    a_file = tmp_path / "summary.json"
    a_file.write_text("{}")
    out = {"devnull": "/dev/null", "file": str(a_file), "under_a_file": str(a_file / "run")}[kind]
    proc = run("simulate", "scenarios/qwen3-32b-4p4d.yaml", "--requests", "5", "--out", out)
    assert proc.returncode == 2
    assert "--out" in proc.stderr and "Traceback" not in proc.stderr
    assert a_file.read_text() == "{}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_an_input_error(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(InputError, match="cannot write"):
            staged(tmp_path).__enter__()
    finally:
        tmp_path.chmod(0o755)


def test_compare_lifecycles_writes_into_out(tmp_path):
    out = tmp_path / "cmp"
    proc = run(
        "simulate",
        "scenarios/qwen3-32b-4p4d.yaml",
        "--requests",
        "20",
        "--compare-lifecycles",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    summaries = json.loads((out / "comparison.json").read_text())
    assert set(summaries) == {"pull", "push"}
    assert all(s["requests"] == 20 for s in summaries.values())
    assert (out / "comparison.csv").read_text().startswith("protocol,")


def test_unwritable_out_is_an_input_error_whoever_runs_it(tmp_path, monkeypatch):
    monkeypatch.setattr("hetsim.outputs.os.access", lambda path, mode: False)
    with pytest.raises(InputError, match="cannot write in the folder"):
        staged(tmp_path).__enter__()
