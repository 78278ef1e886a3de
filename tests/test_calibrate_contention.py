"""A calibration timed while other processes used the CPUs says so, is not written unless
allowed (then it is marked), and ``validate`` warns about errors measured against it. The
timings and the machine's load are injected: nothing here depends on this machine's speed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.perf.calibration import TABLE_COLUMNS, CalibrationTable, contention, write_table
from hetsim.perf.microbench import sweep
from hetsim.perf.microbench.sweep import Case, _Sweep, contention_meta


class Injected:
    """Stands in for the kernels' timer and the other-load meter: attempt ``i`` of a
    measurement takes ``times[i]`` seconds per call while others use ``shares[i]``."""

    def __init__(self, times: list[float], shares: list[float]) -> None:
        self.times, self.shares, self.attempt = times, shares, -1

    def start(self) -> None:
        self.attempt += 1

    def stop(self) -> float:
        return self.shares[self.attempt]

    def timer(self, fn, inner: int) -> float:
        return self.times[self.attempt] * inner


def measure(times: list[float], shares: list[float]) -> tuple[dict, _Sweep]:
    injected = Injected(times, shares)
    kernels = SimpleNamespace(
        make=lambda op, dtype, dims: lambda: None, timer=injected.timer, device_kind="cpu",
        launch_timer=injected.timer, launch_inner=1,
    )  # fmt: skip
    s = _Sweep(kernels, quick=True, progress=None)
    s.load = injected
    row = s.measure(Case("gemm", "fp32", (("m", 16), ("n", 64), ("k", 64))))
    assert row is not None
    return row, s


def test_a_busy_measurement_is_retried_and_the_fastest_kept_with_its_load() -> None:
    # busy (>= 0.2) on every attempt: 1 + RETRIES attempts, the fastest (the second) kept
    row, s = measure([3e-3, 1e-3, 2e-3], [0.9, 0.5, 0.3])
    assert s.load.attempt == sweep.RETRIES == 2
    assert row["time_s"] == pytest.approx(1e-3)
    assert row[sweep._OTHERS] == 0.5
    assert s.contended == [{"case": "gemm fp32 m=16 n=64 k=64", "others_cpu_share": 0.5}]


def test_a_quiet_retry_ends_the_attempts() -> None:
    row, s = measure([1e-3, 2e-3, 9.0], [0.9, 0.1, 0.0])
    assert s.load.attempt == 1
    # the busy first attempt was faster: it is kept, and counts as busy
    assert row["time_s"] == pytest.approx(1e-3) and row[sweep._OTHERS] == 0.9
    assert len(s.contended) == 1


def test_contention_meta_counts_the_rows_timed_busy() -> None:
    # 2 of 4 rows at or over BUSY_SHARE = 0.2: share 0.5 > CONTENDED_LIMIT = 0.2
    meta = contention_meta([0.0, 0.9, 0.2, 0.1])
    assert meta["contended"] is True and meta["contended_share"] == 0.5
    assert meta["contention"]["rows_timed_busy"] == 2 and meta["contention"]["rows"] == 4
    assert meta["contention"]["others_cpu_share_median"] == pytest.approx(0.15)
    # 2 of 10: 0.2 is not over the limit
    meta = contention_meta([0.0] * 8 + [0.5, 0.94])
    assert meta["contended"] is False and meta["contended_share"] == 0.2
    assert contention_meta([])["contended_share"] == 0.0
    # CUDA events time the GPU: the share is kept, the table is not marked
    cuda = contention_meta([0.9, 0.9], "cuda")
    assert cuda["contended"] is False and cuda["contended_share"] == 1.0


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"contended": True, "contended_share": 0.94}, 0.94),
        ({"contended_share": 0.5}, 0.5),  # no flag (written by the API): the share decides
        ({"contended": False, "contended_share": 0.2}, None),
        ({"contended": False, "contended_share": 0.5}, None),  # a CUDA table: the flag decides
        ({"contended": [{"case": "gemm"}], "contended_share": 0.05}, None),  # older tables
        ({}, None),
    ],
)
def test_contention_of_a_table(meta, expected) -> None:
    assert contention(meta) == expected


def table(share: float) -> CalibrationTable:
    rows = pd.DataFrame(
        [["launch", "fp32", *[None] * 9, 0.0, 0.0, 2e-6, 1e-7, 400, "fit"]], columns=TABLE_COLUMNS
    )
    meta = {
        "peak": {"flops": {"fp32": 1e10}, "memory_bandwidth": 1e10},
        **contention_meta([0.94] * round(100 * share) + [0.0] * round(100 * (1 - share))),
    }
    return CalibrationTable(rows=rows, meta=meta)


def test_calibrate_refuses_a_contended_table(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hetsim, "calibrate", lambda **kwargs: table(0.94))
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(app, ["calibrate", "--quick", "--out", str(out)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "94% of its timings were taken while other processes used the CPUs" in text
    assert "--allow-contended" in text
    assert not out.exists()


def test_allow_contended_writes_it_marked(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hetsim, "calibrate", lambda **kwargs: table(0.94))
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(
        app, ["calibrate", "--quick", "--allow-contended", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(out.read_text())["meta"]
    assert meta["contended"] is True and meta["contended_share"] == 0.94
    assert "marked contended" in " ".join(result.output.split())


def test_a_quiet_table_is_written_without_a_word_about_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hetsim, "calibrate", lambda **kwargs: table(0.1))
    out = tmp_path / "cal.csv"
    result = CliRunner().invoke(app, ["calibrate", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "contended" not in result.output
    assert json.loads((tmp_path / "cal.csv.meta.json").read_text())["contended"] is False


@pytest.mark.parametrize(("share", "warned"), [(0.94, True), (0.1, False)])
def test_validate_warns_when_the_table_is_contended(tmp_path, monkeypatch, share, warned) -> None:
    path = write_table(table(share), tmp_path / "cal.parquet")
    summary = pd.DataFrame(
        [["kernels", "gemm", 4, 665.0, 700.0]],
        columns=["check", "family", "cases", "median_pct", "p90_pct"],
    )
    monkeypatch.setattr(
        hetsim, "validate", lambda t, **kw: SimpleNamespace(summary=lambda: summary)
    )
    result = CliRunner().invoke(app, ["validate", "--table", str(path), "--no-model"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "665.0" in text
    assert ("is contended: 94% of its timings" in text) is warned
