"""Bad silicon-sample files end as one InputError naming the file, line, column and value, never
as a traceback or a silently wrong measurement. Each file is the excerpt's SGLang agg DeepSeek
row (file line 7) with one thing broken."""

from __future__ import annotations

import csv
import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.validation import pose, read_silicon

REPO = Path(__file__).resolve().parents[1]
EXCERPT = REPO / "tests" / "data" / "silicon" / "silicon_sample_excerpt.csv"


def excerpt_rows() -> tuple[list[str], list[str]]:
    lines = EXCERPT.read_text(encoding="utf-8").splitlines()
    return lines[0].split(","), next(csv.reader([lines[6]]))


def csv_text(*rows: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def sample_with(tmp_path: Path, **changes: str) -> Path:
    header, row = excerpt_rows()
    for column, value in changes.items():
        row[header.index(column)] = value
    path = tmp_path / "sample.csv"
    path.write_text(csv_text(header, row), encoding="utf-8")
    return path


def read_error(path: Path) -> InputError:
    with pytest.raises(InputError) as err:
        read_silicon(path)
    return err.value


@pytest.mark.parametrize(
    ("column", "value"),
    [("isl", "inf"), ("isl", "nan"), ("isl", "1.5"), ("isl", "0"), ("osl", "-inf"),
     ("tp_size", "inf"), ("tp_size", "nan"), ("tp_size", "-2"), ("batch_size", "inf"),
     ("moe_ep_size", "nan")],
)  # fmt: skip
def test_a_count_that_is_not_a_finite_whole_number_names_line_column_and_value(
    tmp_path, column, value
):
    error = read_error(sample_with(tmp_path, **{column: value}))
    assert (error.line, error.field, error.value) == (2, column, value)
    assert "whole number" in error.allowed


@pytest.mark.parametrize("column", ["silicon_ttft_ms", "silicon_tpot_ms"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-5"])
def test_a_measured_latency_must_be_finite_and_positive(tmp_path, column, value):
    error = read_error(sample_with(tmp_path, **{column: value}))
    assert (error.line, error.field, error.value) == (2, column, value)
    assert error.allowed == "a positive number"


def test_a_whole_count_written_as_a_float_reads_as_that_count(tmp_path):
    (row,) = read_silicon(sample_with(tmp_path, isl="1024.0", tp_size="8.0"))
    assert (row.isl, row.agg.tp) == (1024, 8)


@pytest.mark.parametrize("cut", [1, 20])
def test_a_short_row_names_its_line_and_field_count_without_a_value(tmp_path, cut):
    header, row = excerpt_rows()
    path = tmp_path / "short.csv"
    path.write_text(csv_text(header, row, row[:-cut]), encoding="utf-8")
    error = read_error(path)
    assert error.line == 3 and not error.has_value
    assert f"{len(row) - cut} fields" in error.message and f"{len(header)}" in error.message
    assert "(got" not in str(error)


def test_a_long_row_is_an_input_error_not_silently_dropped_fields(tmp_path):
    header, row = excerpt_rows()
    path = tmp_path / "long.csv"
    path.write_text(csv_text(header, [*row, "extra", "1024"]), encoding="utf-8")
    error = read_error(path)
    assert error.line == 2 and f"{len(row) + 2} fields" in error.message
    assert "(got" not in str(error)


def test_a_non_utf8_byte_names_the_file_and_line(tmp_path):
    header, row = excerpt_rows()
    bad = list(row)
    bad[header.index("model_path")] = "caf\u00e9"
    path = tmp_path / "latin1.csv"
    path.write_bytes(csv_text(header, row, bad).encode("latin-1"))
    error = read_error(path)
    assert error.file == str(path) and error.line == 3
    assert "UTF-8" in error.message


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    header, row = excerpt_rows()
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_text(header, row).encode("utf-8"))
    (read,) = read_silicon(path)
    assert read.id == row[0]


def test_a_header_only_file_says_it_has_no_rows_not_that_a_filter_matched_none(tmp_path):
    header, _ = excerpt_rows()
    path = tmp_path / "header.csv"
    path.write_text(csv_text(header), encoding="utf-8")
    error = read_error(path)
    assert "no rows" in error.message and "--systems" not in str(error)
    assert not error.has_value


def test_a_column_named_twice_is_ambiguous(tmp_path):
    header, row = excerpt_rows()
    path = tmp_path / "twice.csv"
    path.write_text(csv_text([*header, "isl"], [*row, "2048"]), encoding="utf-8")
    error = read_error(path)
    assert error.field == "header" and error.value == "isl"


@pytest.mark.parametrize(
    "written", ["silicon_concurrency=0", "silicon_concurrency=-4", "silicon_concurrency=2.5"]
)
def test_a_concurrency_below_one_is_an_input_error_not_one_client(tmp_path, written):
    path = sample_with(tmp_path, silicon_data_source=f"db-dump/2026-04-27; {written}; x=1")
    error = read_error(path)
    assert (error.line, error.field, error.value) == (2, "silicon_data_source", written)
    assert error.allowed == "a whole number >= 1"


def test_pose_refuses_a_row_built_with_concurrency_zero():
    row = read_silicon(EXCERPT)[5]  # file line 7: the SGLang agg DeepSeek row, concurrency 4
    assert row.concurrency == 4
    with pytest.raises(InputError) as err:
        pose(dataclasses.replace(row, concurrency=0))
    assert err.value.value == 0 and err.value.allowed == "a whole number >= 1"


@pytest.mark.parametrize(
    "broken", ["isl_inf", "tp_nan", "short", "latin1", "header_only", "ttft_inf", "conc_0"]
)
def test_cli_turns_every_broken_file_into_one_message_and_exit_2(tmp_path, broken):
    header, row = excerpt_rows()
    changed = {
        "isl_inf": {"isl": "inf"},
        "tp_nan": {"tp_size": "nan"},
        "ttft_inf": {"silicon_ttft_ms": "inf"},
        "conc_0": {"silicon_data_source": "silicon_concurrency=0"},
    }.get(broken)
    if changed:
        path = sample_with(tmp_path, **changed)
    else:
        path = tmp_path / "broken.csv"
        rows = {"short": [header, row[:-3]], "header_only": [header]}.get(broken, [header, row])
        text = csv_text(*rows)
        if broken == "latin1":
            text = text.replace("DeepSeek", "D\u00e9epSeek")
        path.write_bytes(text.encode("latin-1"))
    args = ["validate", "--silicon", str(path), "--limit", "5"]
    if broken == "short":  # one through the real entry point; the rest in this process
        done = subprocess.run([sys.executable, "-m", "hetsim", *args], capture_output=True,
                              text=True, cwd=REPO, timeout=300)  # fmt: skip
        assert done.returncode == 2, done.stderr
        message = done.stderr
    else:
        result = CliRunner().invoke(app, args)
        assert isinstance(result.exception, InputError), result.output
        message = result.exception.render()
    assert "Traceback" not in message and str(path) in message
    assert "(got None)" not in message
