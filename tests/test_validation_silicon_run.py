"""``hetsim validate --silicon`` end to end: the CLI on the bundled excerpt, the full sample when
the ``nvidia`` extra (aiconfigurator-core) is installed, and closed-loop simulations of posed
rows once the scenario schema has the closed loop and the pool runtime."""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest

from hetsim import scenario_from_dict, simulate
from hetsim.validation import (
    Mode,
    Outcome,
    Posed,
    Reason,
    Unposed,
    collapse_duplicates,
    pose,
    read_silicon,
    validate_silicon,
)

REPO = Path(__file__).resolve().parents[1]
EXCERPT = REPO / "tests" / "data" / "silicon" / "silicon_sample_excerpt.csv"


def hetsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hetsim", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_cli_writes_one_csv_row_per_unique_measurement_and_the_tables(tmp_path):
    done = hetsim(
        "validate", "--silicon", str(EXCERPT), "--systems", "gb200", "--out", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    with (tmp_path / "silicon.csv").open() as f:
        written = list(csv.DictReader(f))
    # the excerpt's GB200 rows are not simulated: one records no concurrency, one a tp of 72
    # that no attention split allows
    reasons = {r["reason"]: r for r in written}
    assert sorted(reasons) == ["contradictory_parallelism", "no_concurrency"]
    measured = float(reasons["no_concurrency"]["measured_ttft_ms"])
    assert measured == pytest.approx(39682.8381495343)
    assert (tmp_path / "silicon_errors.csv").exists() and (
        tmp_path / "silicon_coverage.csv"
    ).exists()
    assert "Coverage" in done.stdout and "no_concurrency" in done.stdout


@pytest.mark.parametrize(
    "args",
    [("--runtimes", "tgi"), ("--systems", "tpu_v5")],
)
def test_cli_bad_selection_is_an_input_error(args):
    done = hetsim("validate", "--silicon", str(EXCERPT), *args)
    assert done.returncode == 2
    assert "error:" in done.stderr and "Traceback" not in done.stderr


def test_cli_silicon_options_without_silicon_are_an_input_error():
    done = hetsim("validate", "--limit", "3")
    assert done.returncode == 2 and "--silicon" in done.stderr


def test_cli_a_file_in_another_format_exits_2():
    done = hetsim("validate", "--silicon", str(REPO / "tests" / "data" / "azure_code_2k.csv"))
    assert done.returncode == 2 and "not a silicon-sample CSV" in done.stderr


def test_full_sample_from_the_wheel_reads_collapses_and_flags_contradictions():
    aic = pytest.importorskip("aiconfigurator_core")
    path = Path(aic.__file__).parent / "systems" / "silicon_sample.csv"
    with path.open(newline="") as f:
        lines = sum(1 for _ in csv.DictReader(f))
    rows = read_silicon(path)
    assert len(rows) == lines == 5221  # the count
    unique = collapse_duplicates(rows)
    assert sum(r.repeats for r in unique) == len(rows)
    assert sum(r.concurrency is None for r in rows) == 19  # ids with an empty "_c_"
    contradicted = [p for p in map(pose, rows) if isinstance(p, Unposed)]
    contradicted = [p for p in contradicted if p.reason is Reason.CONTRADICTORY_PARALLELISM]
    # a tp no attention split allows (GB200/GB300's tp 72, 48, 36, ...), agg or disagg
    heads = [p for p in contradicted if "attention heads" in p.detail]
    assert {p.row.system for p in heads} == {"gb200", "gb300"} and len(heads) == 148
    # the id and the columns disagree, or the world size is counted twice: agg rows
    doubled = [p for p in contradicted if "attention heads" not in p.detail]
    assert all(p.row.mode is Mode.AGG for p in doubled)
    assert 300 <= len(doubled) <= 450  # "about 400 agg rows", the issue says


def _qwen_row():
    (row,) = [
        r for r in read_silicon(EXCERPT) if "qwen3_32b_h100_sxm_trtllm_agg_1024x128_c8" in r.id
    ]
    return row


def test_a_posed_row_simulates_on_the_roofline_and_more_clients_wait_longer():
    # without the measured tables (CI has no nvidia extra) the same scenario, minus its
    # runtime, runs on the roofline: the mapping and the closed loop work end to end
    def mean_ttft(concurrency: int) -> float:
        posed = pose(dataclasses.replace(_qwen_row(), concurrency=concurrency))
        assert isinstance(posed, Posed)
        data = copy.deepcopy(posed.scenario)
        for pool in data["pools"]:
            assert pool.pop("runtime") == "trtllm"
        result = simulate(scenario_from_dict(data))
        assert result.summary.failed == 0 and result.summary.provenance["engine"] == (
            "roofline-default"
        )
        return result.summary.ttft_s.mean

    assert mean_ttft(8) > mean_ttft(1) > 0


def test_a_row_naming_a_runtime_without_its_tables_is_reported_not_simulated(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)  # as if not installed
    (result,) = validate_silicon([_qwen_row()]).results
    assert result.outcome is Outcome.FAILED and result.reason == "scenario_rejected"
    assert "pip install -e '.[nvidia]'" in result.detail


def test_a_posed_row_simulates_and_more_clients_wait_longer():
    pytest.importorskip("aiconfigurator_core")
    row = _qwen_row()
    alone = dataclasses.replace(row, concurrency=1)
    crowded, single = validate_silicon([row, alone]).results
    for r in (crowded, single):
        assert r.outcome is Outcome.PREDICTED, r.detail
        assert math.isfinite(r.predicted_ttft_s) and r.predicted_ttft_s > 0
        assert math.isfinite(r.predicted_tpot_s) and r.predicted_tpot_s > 0
        assert r.provenance
    # eight clients share one tp1 engine: a prompt may wait behind others, decode steps batch 8
    assert crowded.predicted_ttft_s >= single.predicted_ttft_s
    assert crowded.predicted_tpot_s >= single.predicted_tpot_s
