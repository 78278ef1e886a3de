"""Trace files at the edges of what a reader takes: a byte-order mark, counts beyond int64,
binary files, and rows longer than the model's context (dropped and counted, like zero-token
rows). Small hand-written files; every expected value is counted by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.spec.workload import WorkloadSpec
from hetsim.workload import ReadCounts, detect_format, load_requests, trace_stats

BIG = 2**63  # one more than int64 holds
AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROWS = "2023-11-16 18:00:00.0,100,10\n2023-11-16 18:00:01.5,200,20\n"
MOONCAKE = (
    '{"timestamp": 0, "input_length": 100, "output_length": 10}\n'
    '{"timestamp": 1500, "input_length": 200, "output_length": 20}\n'
)


def load(path: Path, max_context: int | None = None, **fields):
    counts = ReadCounts()
    workload = WorkloadSpec(trace={"path": str(path), **fields})
    chunk = load_requests(workload, path.parent, 0, counts=counts)
    return chunk, counts


@pytest.mark.parametrize(("name", "text", "fmt"), [("t.csv", AZURE + ROWS, "azure"),
                                                   ("t.jsonl", MOONCAKE, "mooncake")])  # fmt: skip
def test_a_byte_order_mark_is_read_past(tmp_path, name, text, fmt):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert detect_format(path) == fmt
    chunk, counts = load(path, format=fmt)
    assert chunk.input_tokens.tolist() == [100, 200]
    assert chunk.arrival_s.tolist() == [0.0, 1.5]
    assert counts.rows == 2 and counts.bad_rows == 0


@pytest.mark.parametrize(
    ("name", "text", "fmt", "column"),
    [
        ("t.csv", AZURE + f"2023-11-16 18:00:00.0,100,{BIG}\n", "azure", "GeneratedTokens"),
        ("t.jsonl", f'{{"timestamp": 0, "input_length": {BIG}, "output_length": 1}}\n',
         "mooncake", "input_length"),
        ("f.jsonl", f'{{"timestamp": 0, "input_length": 5, "output_length": {float(BIG)}}}\n',
         "mooncake", "output_length"),
        ("s.jsonl", f'{{"timestamp": 0, "input_length": "{BIG}", "output_length": 1}}\n',
         "mooncake", "input_length"),
    ],
)  # fmt: skip
def test_counts_beyond_int64_name_file_line_and_column(tmp_path, name, text, fmt, column):
    path = tmp_path / name
    path.write_text(MOONCAKE + text if fmt == "mooncake" else text)
    with pytest.raises(InputError) as info:
        load(path, format=fmt)
    err = info.value
    assert err.file == str(path) and err.field == f"column {column!r}"
    assert err.line == (3 if fmt == "mooncake" else 2)
    assert "9,223,372,036,854,775,807" in err.message


def test_the_largest_int64_count_is_still_read(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(f'{{"timestamp": 0, "input_length": {BIG - 1}, "output_length": 1}}\n')
    chunk, _ = load(path, format="mooncake")
    assert chunk.input_tokens.tolist() == [BIG - 1]


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"\x00" * 64, b"\xff\xfe\x00t"])
def test_a_binary_file_is_an_input_error(tmp_path, content):
    path = tmp_path / "trace.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a text trace") as info:
        trace_stats(path)
    assert info.value.file == str(path)
    with pytest.raises(InputError, match="not a text trace"):
        load(path, format="azure")


def test_bad_bytes_past_the_start_name_the_line_reached(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [f'{{"timestamp": {i}, "input_length": 10, "output_length": 2}}\n' for i in range(400)]
    path.write_bytes("".join(rows).encode() + b"\xff\xfe\n")  # ~24 KiB of text, then not UTF-8
    with pytest.raises(InputError, match="not UTF-8") as info:
        load(path, format="mooncake")
    assert info.value.line is not None and info.value.line > 1


def test_trace_stats_cli_on_a_binary_file(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)))
    result = CliRunner().invoke(app, ["trace", "stats", str(path)])
    assert isinstance(result.exception, InputError)
    assert "not a text trace" in result.exception.message


def test_rows_over_the_context_are_dropped_and_counted(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [(0, 100, 28), (10, 100, 29), (20, 128, 0), (30, BIG - 1, 1), (40, 1, BIG - 2)]
    path.write_text("".join(
        f'{{"timestamp": {t}, "input_length": {i}, "output_length": {o}}}\n' for t, i, o in rows
    ))  # fmt: skip
    counts = ReadCounts()
    workload = WorkloadSpec(trace={"path": str(path), "format": "mooncake"})
    from hetsim.workload import iter_requests

    chunks = list(iter_requests(workload, tmp_path, 0, counts=counts, max_context=128))
    # 100 + 28 = 128 fits; 100 + 29 does not; the zero-output row is a failure, not over
    # the context; the two int64-sized rows are over it (and their sum does not wrap)
    assert [c.input_tokens.tolist() for c in chunks] == [[100]]
    assert counts.over_context == 3 and counts.failed == 1 and counts.kept == 1
    assert counts.examples == [
        "line 2: 129 tokens (prompt + output), over the model's context of 128"
    ]
    # without a model the same rows are replayed
    again = ReadCounts()
    list(iter_requests(workload, tmp_path, 0, counts=again))
    assert again.over_context == 0 and again.kept == 4


def test_a_trace_all_over_the_context_says_why_nothing_is_left(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(AZURE + ROWS)
    workload = WorkloadSpec(trace={"path": str(path), "format": "azure"})
    from hetsim.workload import iter_requests

    with pytest.raises(InputError, match="2 over the model's context"):
        list(iter_requests(workload, tmp_path, 0, max_context=64))
