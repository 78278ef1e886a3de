"""`hetsim trace stats`: figures against plain csv/json, the reference statistics, the plot."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hetsim.cli.trace import trace_app
from hetsim.errors import InputError
from hetsim.workload import plot_trace_stats, trace_stats

DATA = Path(__file__).parent / "data"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "traces"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def plain_mooncake(path: Path) -> dict:
    with path.open() as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    seen: set[int] = set()
    blocks = reused = 0
    for r in rows:
        blocks += len(r["hash_ids"])
        reused += sum(h in seen for h in r["hash_ids"])
        seen.update(r["hash_ids"])
    t = [r["timestamp"] / 1000 for r in rows]
    return {
        "n": len(rows),
        "duration": t[-1] - t[0],
        "inp": [r["input_length"] for r in rows],
        "out": [r["output_length"] for r in rows],
        "reuse": reused / blocks,
        "blocks": blocks,
        "per_minute_peak": max(np.bincount([int((x - t[0]) // 60) for x in t])),
    }


def plain_azure(path: Path) -> dict:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    stamps = [datetime.strptime(r["TIMESTAMP"][:26], "%Y-%m-%d %H:%M:%S.%f") for r in rows]
    return {
        "n": len(rows),
        "duration": (stamps[-1] - stamps[0]).total_seconds(),
        "inp": [int(r["ContextTokens"]) for r in rows],
        "out": [int(r["GeneratedTokens"]) for r in rows],
        "start": str(stamps[0]),
    }


def check_lengths(summary, values):
    values = sorted(values)
    assert summary.mean == pytest.approx(sum(values) / len(values))
    assert summary.max == values[-1] and summary.min == values[0]
    for q in (50, 90, 99):
        # numpy's default percentile, by hand: linear between closest ranks
        pos = (len(values) - 1) * q / 100
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        expected = values[lo] + (values[hi] - values[lo]) * (pos - lo)
        assert getattr(summary, f"p{q}") == pytest.approx(expected)


@pytest.mark.parametrize("name", ["mooncake_conversation_2k.jsonl", "mooncake_synthetic_2k.jsonl"])
def test_mooncake_sample_stats(name):
    s = trace_stats(DATA / name)
    plain = plain_mooncake(DATA / name)
    assert s.format == "mooncake" and s.requests == plain["n"] == 2000
    assert s.duration_s == pytest.approx(plain["duration"])
    assert s.mean_rate_rps == pytest.approx(plain["n"] / plain["duration"])
    assert s.peak_per_minute == plain["per_minute_peak"]
    check_lengths(s.input, plain["inp"])
    check_lengths(s.output, plain["out"])
    assert s.hash_blocks == plain["blocks"]
    assert s.prefix_reuse == pytest.approx(plain["reuse"])
    assert 0 < s.prefix_reuse_tokens < 1


@pytest.mark.parametrize("name", ["azure_code_2k.csv", "azure_conv_2k.csv"])
def test_azure_sample_stats(name):
    s = trace_stats(DATA / name)
    plain = plain_azure(DATA / name)
    assert s.format == "azure" and s.requests == 2000
    assert s.start == plain["start"]
    assert s.duration_s == pytest.approx(plain["duration"], abs=1e-6)
    check_lengths(s.input, plain["inp"])
    check_lengths(s.output, plain["out"])
    assert s.prefix_reuse is None and s.hash_blocks is None
    assert s.to_dict()["prefix_reuse"] is None


def test_reuse_with_ids_beyond_the_bitmap(tmp_path):
    f = tmp_path / "big_ids.jsonl"
    rows = [[2**40, 5], [2**40, 6], [-3, 5], [-3, 2**40]]
    f.write_text(
        "".join(
            json.dumps({"timestamp": i, "input_length": 1024, "output_length": 1, "hash_ids": h})
            + "\n"
            for i, h in enumerate(rows)
        )
    )
    s = trace_stats(f, chunk_size=2)
    assert s.hash_blocks == 8
    assert s.prefix_reuse == pytest.approx(4 / 8)  # 2**40 twice, 5 once, -3 once


def test_generic_stats_and_bad_options(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("t,i,o\n0,10,1\n30,20,2\n90,30,3\n")
    s = trace_stats(f, "csv", columns={"arrival": "t", "input_tokens": "i", "output_tokens": "o"})
    assert s.requests == 3 and s.duration_s == 90 and s.per_minute.tolist() == [2, 1]
    with pytest.raises(InputError, match="needs `columns`"):
        trace_stats(f, "csv")
    with pytest.raises(InputError, match="cannot tell the trace format"):
        trace_stats(f)
    with pytest.raises(InputError, match="format"):
        trace_stats(f, "parquet")


@pytest.mark.skipif(
    not REFERENCE.is_dir(),
    reason="../shared/reference/traces is not beside the "
    "repository (the full public traces are only there)",
)
def test_full_reference_traces_match_trace_stats_json():
    reference = json.loads((REFERENCE / "trace_stats.json").read_text())
    for name, ref in reference.items():
        s = trace_stats(REFERENCE / name)
        assert s.requests == ref["rows"], name
        assert s.duration_s == pytest.approx(ref["duration_s"], abs=0.05), name
        assert s.mean_rate_rps == pytest.approx(ref["rate_rps"], abs=0.0006), name
        for key, summary in (("in", s.input), ("out", s.output)):
            assert round(summary.mean) == ref[f"{key}_mean"], name
            assert summary.p50 == pytest.approx(ref[f"{key}_p50"]), name
            assert summary.p99 == pytest.approx(ref[f"{key}_p99"]), name
            assert summary.max == ref[f"{key}_max"], name
        if "block_reuse_frac" in ref:
            assert round(s.prefix_reuse, 3) == ref["block_reuse_frac"], name
        if "start" in ref:
            assert s.start == ref["start"], name


def test_cli_stats_json_and_table():
    result = runner.invoke(
        trace_app, ["stats", str(DATA / "mooncake_conversation_2k.jsonl"), "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["requests"] == 2000 and info["format"] == "mooncake"
    assert info["prefix_reuse"] == pytest.approx(
        plain_mooncake(DATA / "mooncake_conversation_2k.jsonl")["reuse"]
    )
    table = runner.invoke(trace_app, ["stats", str(DATA / "azure_code_2k.csv")])
    assert table.exit_code == 0, table.output
    assert "2,000" in table.output and "n/a" in table.output and "p99" in table.output


def test_cli_stats_generic_columns(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text('{"ts": 0, "p": 5, "c": 1}\n{"ts": 2000, "p": 7, "c": 3}\n')
    result = runner.invoke(
        trace_app,
        [
            "stats",
            str(f),
            "--format",
            "jsonl",
            "--columns",
            "arrival=ts,input_tokens=p,output_tokens=c",
            "--time-unit",
            "ms",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["duration_s"] == 2.0 and info["input_tokens"]["max"] == 7


def test_cli_input_errors_propagate(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,x,1\n")
    result = runner.invoke(trace_app, ["stats", str(f)])
    assert isinstance(result.exception, InputError)  # the main entry point makes it exit 2
    assert result.exception.line == 2 and "ContextTokens" in str(result.exception)
    skipped = runner.invoke(trace_app, ["stats", str(f), "--skip-bad-rows"])
    assert isinstance(skipped.exception, InputError)  # nothing left
    bad_columns = runner.invoke(trace_app, ["stats", str(f), "--columns", "when"])
    assert isinstance(bad_columns.exception, InputError)
    assert bad_columns.exception.field == "--columns"


def test_cli_plot_writes_a_png(tmp_path):
    out = tmp_path / "trace.png"
    result = runner.invoke(
        trace_app, ["stats", str(DATA / "azure_conv_2k.csv"), "--plot", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 200


def test_plot_of_a_tiny_trace(tmp_path):
    f = tmp_path / "tiny.jsonl"
    f.write_text('{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1]}\n')
    s = trace_stats(f)
    assert s.requests == 1 and s.duration_s == 0 and s.to_dict()["mean_rate_rps"] is None
    out = plot_trace_stats(s, tmp_path / "tiny.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
