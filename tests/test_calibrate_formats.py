"""A calibration table is written in the format its extension names and read back from each:
``.csv`` (+ ``.meta.json``), ``.json`` and ``.parquet``; any other extension is an input error.
Hand-made tables, no timing."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.perf.calibration import (
    TABLE_COLUMNS,
    CalibrationTable,
    read_table,
    write_table,
)

NAN = math.nan


def table(**meta) -> CalibrationTable:
    rows = pd.DataFrame(
        [
            ["gemm", "fp32", 64, 128, 256, NAN, NAN, NAN, NAN, NAN, NAN, 1.5e5, 4.194304e6,
             1.25e-4, 1e-6, 3, "fit"],
            ["memcpy", "bytes", NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 2.097152e6, 0.0,
             3.0000000000000004e-5, 0.0, 5, "holdout"],
            ["launch", "fp32", NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0.0, 0.0, 2e-6,
             1e-7, 400, "fit"],
        ],
        columns=TABLE_COLUMNS,
    )  # fmt: skip
    peak = {"flops": {"fp32": 3.3e10}, "memory_bandwidth": 7.0e10, "source": "hand-made"}
    return CalibrationTable(rows=rows, meta={"device": "test cpu", "peak": peak, **meta})


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_each_format_round_trips_rows_empty_cells_and_metadata(tmp_path, suffix):
    t = table(contended=False, contended_share=0.0)
    path = write_table(t, tmp_path / f"cal{suffix}")
    back = read_table(path)
    pd.testing.assert_frame_equal(back.rows, t.rows, check_dtype=False)
    assert back.rows["m"].isna().tolist() == [False, True, True]
    assert back.rows.loc[1, "time_s"] == 3.0000000000000004e-5  # every digit kept
    assert back.meta == t.meta


def test_the_file_is_in_the_format_its_extension_names(tmp_path):
    t = table()
    doc = json.loads(write_table(t, tmp_path / "cal.json").read_text())
    assert doc["columns"] == TABLE_COLUMNS and len(doc["rows"]) == 3
    assert doc["rows"][1][2] is None  # an empty cell is null: NaN is not JSON
    assert doc["meta"]["device"] == "test cpu"
    assert not (tmp_path / "cal.json.meta.json").exists()
    assert write_table(t, tmp_path / "cal.parquet").read_bytes()[:4] == b"PAR1"
    assert write_table(t, tmp_path / "cal.csv").read_text().startswith("op,dtype,m,")
    assert json.loads((tmp_path / "cal.csv.meta.json").read_text())["device"] == "test cpu"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cal.csv",
        "cal.csv.meta.json",
        "cal.json",
        "cal.parquet",
    ]  # fmt: skip  (and no temporary file left behind)


@pytest.mark.parametrize("name", ["cal.txt", "cal", "cal.npz"])
def test_other_extensions_are_input_errors_listing_the_formats(tmp_path, name):
    with pytest.raises(InputError) as info:
        write_table(table(), tmp_path / name)
    assert info.value.allowed == ".csv, .json, .parquet"
    assert not (tmp_path / name).exists()
    (tmp_path / name).write_text("op,dtype\n")
    with pytest.raises(InputError, match=r"allowed: \.csv, \.json, \.parquet"):
        read_table(tmp_path / name)


def test_a_damaged_json_table_is_an_input_error(tmp_path):
    for text in ("[1, 2]", "{not json", '{"rows": [["gemm"]], "columns": ["op", "flops"]}'):
        (tmp_path / "cal.json").write_text(text)
        with pytest.raises(InputError, match="cal.json"):
            read_table(tmp_path / "cal.json")


def test_an_unwritable_path_is_an_input_error(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InputError, match="cannot write the calibration table"):
        write_table(table(), tmp_path / "a_file" / "cal.json")


def test_cli_writes_json_for_a_json_out_and_validate_reads_it_back(tmp_path, monkeypatch):
    monkeypatch.setattr(hetsim, "calibrate", lambda **kwargs: table())
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(app, ["calibrate", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["meta"]["device"] == "test cpu"
    seen = []

    def fake_validation(t, **kwargs):
        seen.append(t)
        raise SystemExit(0)  # reading the table back is what is tested here

    monkeypatch.setattr(hetsim, "validate", fake_validation)
    CliRunner().invoke(app, ["validate", "--table", str(out), "--no-model"])
    assert len(seen) == 1 and seen[0].rows.shape == (3, len(TABLE_COLUMNS))


def test_cli_rejects_an_unknown_extension_before_the_sweep(tmp_path, monkeypatch):
    def never(**kwargs):
        raise AssertionError("swept although the table could not be written")

    monkeypatch.setattr(hetsim, "calibrate", never)
    result = CliRunner().invoke(app, ["calibrate", "--quick", "--out", str(tmp_path / "c.txt")])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == "--out"
