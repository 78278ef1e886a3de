"""Trace rows that used to crash ``hetsim trace stats`` or pass for a wrong answer: arrivals
further apart than a run simulates, timestamps too far apart for a float, token totals beyond
int64, more hash ids than the prompt has blocks, a column named twice. ``trace stats`` and
``simulate`` read through one reader, so each refusal is checked on both where it matters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.spec.workload import WorkloadSpec
from hetsim.workload import ReadCounts, load_requests, trace_stats

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "trace-mooncake-synthetic.yaml"
BURSTGPT = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def mooncake(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(t: float, inp: int = 10, out: int = 5, **extra: object) -> dict:
    return {"timestamp": t, "input_length": inp, "output_length": out, **extra}


def load(path: Path, **fields: object):
    counts = ReadCounts()
    workload = WorkloadSpec(trace={"path": str(path), **fields})
    return load_requests(workload, path.parent, 0, counts=counts), counts


def test_arrivals_further_apart_than_a_run_simulates_are_refused_by_stats_and_simulate(tmp_path):
    # 2e6 s apart: few enough per-minute bins that stats used to answer, but no run simulates it
    path = mooncake(tmp_path / "span.jsonl", [row(0), row(1000), row(1000 + 2e9)])
    with pytest.raises(InputError) as by_stats:
        trace_stats(path)
    err = by_stats.value
    assert (err.file, err.line, err.field) == (str(path), 3, "column 'timestamp'")
    assert "2e+06 s after the one before it" in err.message
    with pytest.raises(InputError) as by_simulate:
        hetsim.simulate(SCENARIO, [f"workload.trace.path={path}"], sample_interval=None)
    assert by_simulate.value.render() == err.render()


def test_a_huge_span_is_an_input_error_not_a_memory_error(tmp_path):
    path = mooncake(tmp_path / "span.jsonl", [row(0), row(1e16)])
    result = CliRunner().invoke(app, ["trace", "stats", str(path)])
    assert isinstance(result.exception, InputError)
    assert result.exception.line == 2


def test_target_rate_may_bring_far_arrivals_within_a_run(tmp_path):
    path = mooncake(tmp_path / "slow.jsonl", [row(0), row(2e9), row(4e9)])
    chunk, _ = load(path, format="mooncake", target_rate="1 req/s")
    assert chunk.arrival_s.tolist() == [0.0, 1.5, 3.0]


@pytest.mark.parametrize(
    ("stamps", "says"),
    [
        (("-1e308", "1e308"), "too far from the first row's"),  # the offset overflows a float
        (("1e308", "1.7e308"), "7e+307 s after the one before it"),  # finite, but no run
    ],
)
def test_burstgpt_timestamps_at_the_ends_of_a_float_are_input_errors(tmp_path, stamps, says):
    path = tmp_path / "bg.csv"
    path.write_text(BURSTGPT + "".join(f"{t},ChatGPT,100,20,120,x\n" for t in stamps))
    with pytest.raises(InputError, match=re.escape(says)) as info:
        trace_stats(path)
    assert info.value.line == 3 and info.value.field == "column 'Timestamp'"


def test_token_totals_beyond_int64_are_exact(tmp_path):
    big = 9 * 10**18  # two of them overflow an int64 sum
    path = mooncake(tmp_path / "big.jsonl", [row(0, big, hash_ids=[1]), row(1, big, hash_ids=[1])])
    stats = trace_stats(path)
    assert stats.input.total == 2 * big
    assert stats.to_dict()["input_tokens"]["total"] == 2 * big
    assert stats.prefix_reuse_tokens == pytest.approx(512 / (2 * big))


def test_more_hash_ids_than_prompt_blocks_are_refused(tmp_path):
    path = mooncake(
        tmp_path / "hash.jsonl",
        [row(0, 1024, hash_ids=[0, 1]), row(100, 10, hash_ids=list(range(40)))],
    )
    with pytest.raises(InputError) as info:
        trace_stats(path)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 2, "column 'hash_ids'")
    assert "40 block ids for a prompt of 10 tokens" in err.message
    assert err.allowed is not None and err.allowed.startswith("at most 1 ")
    with pytest.raises(InputError, match="40 block ids"):
        load(path, format="mooncake")


def test_inconsistent_hash_rows_can_be_skipped_and_counted(tmp_path):
    rows = [row(0, 1024, hash_ids=[0, 1]), row(1, 513, hash_ids=[0, 1, 2]), row(2, 513)]
    rows[2]["hash_ids"] = [0, 1]  # 513 tokens: a full block and a partial one
    path = mooncake(tmp_path / "hash.jsonl", rows)
    chunk, counts = load(path, format="mooncake", on_bad_row="skip")
    assert chunk.input_tokens.tolist() == [1024, 513]
    assert counts.bad_rows == 1 and counts.examples[0].startswith("line 2, column 'hash_ids'")


def test_fewer_hash_ids_than_blocks_are_a_hashed_prefix(tmp_path):
    path = mooncake(
        tmp_path / "prefix.jsonl", [row(0, 5000, hash_ids=[7]), row(1, 5000, hash_ids=[])]
    )
    chunk, _ = load(path, format="mooncake")
    assert chunk.hash_counts().tolist() == [1, 0]


def test_a_column_named_twice_is_refused(tmp_path):
    path = tmp_path / "az.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens,ContextTokens\n"
        "2023-11-16 18:17:03.9799600,100,10,999\n"
    )
    with pytest.raises(InputError) as info:
        trace_stats(path)
    err = info.value
    assert (err.line, err.field, err.value) == (1, "column 'ContextTokens'", "ContextTokens")
    assert "2 times" in err.message


def test_a_column_the_reader_ignores_may_repeat(tmp_path):
    path = tmp_path / "az.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens,Note,Note\n2023-11-16 18:17:03.9,100,10,a,b\n"
    )
    chunk, _ = load(path, format="azure")
    assert chunk.input_tokens.tolist() == [100]
