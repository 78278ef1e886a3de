"""Trace readers: the bundled samples against plain csv/json, malformed files, and trace options."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import hetsim
from hetsim.errors import InputError
from hetsim.spec.workload import WorkloadSpec
from hetsim.workload import (
    ReadCounts,
    RequestChunk,
    count_requests,
    detect_format,
    iter_requests,
    load_requests,
)
from hetsim.workload import traces as traces_module

DATA = Path(__file__).parent / "data"
SCENARIOS = Path(__file__).parent.parent / "scenarios"
MOONCAKE = DATA / "mooncake_conversation_2k.jsonl"
MOONCAKE_SYN = DATA / "mooncake_synthetic_2k.jsonl"
AZURE_CODE = DATA / "azure_code_2k.csv"
AZURE_CONV = DATA / "azure_conv_2k.csv"


def trace(**fields) -> WorkloadSpec:
    return WorkloadSpec(trace=fields)


def load(base: Path = DATA, seed: int = 0, chunk_size: int = 65536, **fields):
    counts = ReadCounts()
    return load_requests(trace(**fields), base, seed, chunk_size, counts), counts


# ------------------------------------------------------------------ independent readings


def mooncake_rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def azure_rows(path: Path) -> tuple[list[float], list[int], list[int]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    # 7 fractional digits: strptime's %f takes at most 6
    stamps = [datetime.strptime(r["TIMESTAMP"][:26], "%Y-%m-%d %H:%M:%S.%f") for r in rows]
    t = [(s - stamps[0]).total_seconds() for s in stamps]
    return t, [int(r["ContextTokens"]) for r in rows], [int(r["GeneratedTokens"]) for r in rows]


def cv(x: np.ndarray) -> float:
    return float(np.std(x) / np.mean(x))


# ------------------------------------------------------------------ the samples


@pytest.mark.parametrize("path", [MOONCAKE, MOONCAKE_SYN], ids=["conversation", "synthetic"])
def test_mooncake_sample_matches_plain_json(path):
    rows = mooncake_rows(path)
    got, counts = load(path=str(path), format="mooncake")
    assert len(got) == len(rows) == 2000 == counts.kept == counts.rows
    assert got.request_id.tolist() == list(range(2000))
    expected_t = [(r["timestamp"] - rows[0]["timestamp"]) / 1000 for r in rows]
    np.testing.assert_allclose(got.arrival_s, expected_t, atol=1e-9)
    assert got.input_tokens.tolist() == [r["input_length"] for r in rows]
    assert got.output_tokens.tolist() == [r["output_length"] for r in rows]
    assert int(got.input_tokens.sum()) == sum(r["input_length"] for r in rows)
    flat = [h for r in rows for h in r["hash_ids"]]
    assert got.hash_ids.tolist() == flat
    assert got.hash_counts().tolist() == [len(r["hash_ids"]) for r in rows]
    assert got.hashes(7).tolist() == rows[7]["hash_ids"]
    inputs = sorted(r["input_length"] for r in rows)
    assert np.percentile(got.input_tokens, 50) == (inputs[999] + inputs[1000]) / 2
    assert got.input_tokens.max() == inputs[-1]


@pytest.mark.parametrize("path", [AZURE_CODE, AZURE_CONV], ids=["code", "conv"])
def test_azure_sample_matches_plain_csv(path):
    t, inp, out = azure_rows(path)
    got, counts = load(path=str(path), format="azure")
    assert len(got) == len(t) == 2000
    first_stamp = path.read_text().splitlines()[1].split(",")[0]
    assert counts.start == first_stamp[:26]  # 7 fractional digits shown as 6
    np.testing.assert_allclose(got.arrival_s, t, atol=2e-7)
    assert got.input_tokens.tolist() == inp
    assert got.output_tokens.tolist() == out
    assert got.hash_ids is None and got.hash_offsets is None
    assert np.percentile(got.output_tokens, 99) == pytest.approx(np.percentile(out, 99))
    assert np.all(np.diff(got.arrival_s) >= 0)


def test_relative_path_and_chunking_do_not_change_the_result():
    whole, _ = load(base=DATA, path=MOONCAKE.name, format="mooncake")
    chunks = list(iter_requests(trace(path=MOONCAKE.name, format="mooncake"), DATA, 0, 333))
    assert max(len(c) for c in chunks) == 333
    assert sum(len(c) for c in chunks) == 2000
    joined = RequestChunk.concat(chunks)
    for name in (
        "request_id",
        "arrival_s",
        "input_tokens",
        "output_tokens",
        "hash_ids",
        "hash_offsets",
    ):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name))
    assert count_requests(trace(path=MOONCAKE.name, format="mooncake"), DATA, 0) == 2000


def test_bundled_trace_scenarios_replay_their_samples():
    paths = sorted(SCENARIOS.glob("trace-*.yaml"))
    assert {p.name for p in paths} >= {
        "trace-mooncake-conversation.yaml",
        "trace-mooncake-synthetic.yaml",
        "trace-azure-code.yaml",
        "trace-azure-conv.yaml",
    }
    for path in paths:
        sc = hetsim.load_scenario(path)
        got = load_requests(sc.spec.workload, sc.base_dir, sc.spec.seed)
        assert len(got) == 2000, path.name


def test_capped_prompts_keep_only_their_hash_blocks():
    rows = mooncake_rows(MOONCAKE_SYN)
    got, counts = load(
        path=str(MOONCAKE_SYN), format="mooncake", max_input_tokens=4096, max_output_tokens=100
    )
    assert counts.input_capped == sum(r["input_length"] > 4096 for r in rows)
    assert counts.output_capped == sum(r["output_length"] > 100 for r in rows)
    assert got.input_tokens.tolist() == [min(r["input_length"], 4096) for r in rows]
    assert got.output_tokens.max() == 100
    assert got.hash_counts().tolist() == [min(len(r["hash_ids"]), 8) for r in rows]
    assert got.hashes(0).tolist() == rows[0]["hash_ids"][:8]


def test_detect_format():
    assert detect_format(MOONCAKE) == "mooncake"
    assert detect_format(AZURE_CODE) == "azure"


# ------------------------------------------------------------------ rate scaling, window, sample


@pytest.mark.parametrize("cached", [True, False], ids=["cached-first-pass", "two-passes"])
def test_rate_scaling_hits_the_target_and_keeps_burstiness(monkeypatch, cached):
    if not cached:
        monkeypatch.setattr(traces_module, "_CACHE_BYTES", 0)
    t, _, _ = azure_rows(AZURE_CONV)
    original_gaps = np.diff(t)
    got, counts = load(path=str(AZURE_CONV), format="azure", target_rate="12.5 req/s")
    assert counts.kept == 2000
    span = got.arrival_s[-1] - got.arrival_s[0]
    assert len(got) / span == pytest.approx(12.5, rel=0.01)
    gaps = np.diff(got.arrival_s)
    assert 1 / gaps.mean() == pytest.approx(12.5, rel=0.01)
    assert cv(gaps) == pytest.approx(cv(original_gaps), rel=0.05)
    factor = (2000 / t[-1]) / 12.5
    np.testing.assert_allclose(gaps, original_gaps * factor, rtol=1e-6, atol=1e-9)


def test_rate_scaling_of_a_trace_at_one_instant_is_an_error(tmp_path):
    f = tmp_path / "instant.jsonl"
    f.write_text(
        "".join(
            json.dumps({"timestamp": 5, "input_length": 10, "output_length": 2}) + "\n"
            for _ in range(3)
        )
    )
    with pytest.raises(InputError, match="one instant"):
        load(path=str(f), format="mooncake", target_rate="2 req/s")


def test_time_window_keeps_offsets_in_range_and_restarts_the_clock():
    t, inp, _ = azure_rows(AZURE_CODE)
    got, counts = load(
        path=str(AZURE_CODE), format="azure", time_window=["200 s", "6 min"], chunk_size=100
    )
    expected = [i for i, x in enumerate(t) if 200 <= x <= 360]
    assert len(got) == len(expected) > 0
    assert got.input_tokens.tolist() == [inp[i] for i in expected]
    assert got.arrival_s[0] == 0.0
    np.testing.assert_allclose(
        got.arrival_s, np.array([t[i] for i in expected]) - t[expected[0]], atol=1e-6
    )
    # reading stops with the first chunk that reaches past the end of the window
    assert counts.rows < 2000 and counts.rows % 100 == 0
    assert counts.outside_window == sum(1 for x in t[: counts.rows] if not 200 <= x <= 360)


def test_window_order_is_validated():
    with pytest.raises(ValueError, match="after its end"):
        trace(path="x", format="azure", time_window=["10 s", "5 s"])


def test_sampling_is_seeded_and_keeps_order():
    rows = mooncake_rows(MOONCAKE)
    a, counts = load(path=str(MOONCAKE), format="mooncake", sample=0.5, seed=1)
    b, _ = load(path=str(MOONCAKE), format="mooncake", sample=0.5, seed=1, chunk_size=97)
    c, _ = load(path=str(MOONCAKE), format="mooncake", sample=0.5, seed=2)
    assert abs(len(a) - 1000) < 5 * math.sqrt(2000 * 0.25)
    assert counts.sampled_out == 2000 - len(a)
    np.testing.assert_array_equal(a.input_tokens, b.input_tokens)
    np.testing.assert_array_equal(a.hash_ids, b.hash_ids)
    assert len(a) != len(c) or not np.array_equal(a.input_tokens, c.input_tokens)
    # the kept requests are a subsequence of the trace, in order
    it = iter((r["input_length"], r["output_length"]) for r in rows)
    assert all(
        pair in it for pair in zip(a.input_tokens.tolist(), a.output_tokens.tolist(), strict=True)
    )
    assert a.request_id.tolist() == list(range(len(a)))
    assert a.arrival_s[0] == 0.0


# ------------------------------------------------------------------ malformed files


AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def azure_file(tmp_path: Path, rows: list[str], header: str = AZURE_HEADER) -> Path:
    f = tmp_path / "azure_bad.csv"
    f.write_text(header + "".join(r + "\n" for r in rows))
    return f


def good_azure_rows(n: int) -> list[str]:
    return [f"2023-11-16 18:17:{i:02d}.1000000,{100 + i},{10 + i}" for i in range(n)]


def test_missing_column_names_file_and_column(tmp_path):
    f = azure_file(tmp_path, good_azure_rows(3), header="TIMESTAMP,Context,GeneratedTokens\n")
    with pytest.raises(InputError) as exc:
        load(path=str(f), format="azure")
    text = str(exc.value)
    assert "azure_bad.csv" in text and "'ContextTokens'" in text and "Context" in text
    assert exc.value.line == 1


def test_unparsable_number_names_file_line_and_column(tmp_path):
    rows = good_azure_rows(6)
    rows[3] = "2023-11-16 18:17:03.1000000,12x,4"
    f = azure_file(tmp_path, rows)
    with pytest.raises(InputError) as exc:
        load(path=str(f), format="azure")
    text = str(exc.value)
    assert "azure_bad.csv:5" in text  # header is line 1, rows[3] is line 5
    assert exc.value.line == 5
    assert "ContextTokens" in text and "12x" in text and "on_bad_row" in text


def test_unparsable_json_field_names_line_and_column(tmp_path):
    f = tmp_path / "moon.jsonl"
    lines = [
        {"timestamp": i, "input_length": 600, "output_length": 5, "hash_ids": [0, i + 1]}
        for i in range(5)
    ]
    lines[2]["output_length"] = "lots"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.raises(InputError) as exc:
        load(path=str(f), format="mooncake")
    assert exc.value.line == 3
    assert "moon.jsonl:3" in str(exc.value) and "output_length" in str(exc.value)


def test_bad_hash_ids_and_bad_json(tmp_path):
    f = tmp_path / "moon.jsonl"
    good = {"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]}
    f.write_text(json.dumps(good) + "\n" + json.dumps({**good, "hash_ids": [0, "a"]}) + "\n")
    with pytest.raises(InputError, match=r"moon.jsonl:2.*hash_ids.*block ids"):
        load(path=str(f), format="mooncake")
    f.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(InputError, match=r"moon.jsonl:2.*not JSON"):
        load(path=str(f), format="mooncake")
    # skipping a bad hash row leaves no partial hashes behind
    f.write_text(
        json.dumps(good)
        + "\n"
        + json.dumps({**good, "hash_ids": [7, 8.5]})
        + "\n"
        + json.dumps({**good, "timestamp": 1, "hash_ids": [0, 2]})
        + "\n"
    )
    got, counts = load(path=str(f), format="mooncake", on_bad_row="skip")
    assert counts.bad_rows == 1
    assert got.hash_ids.tolist() == [0, 1, 0, 2]
    assert got.hash_offsets.tolist() == [0, 2, 4]


def test_wrong_field_count_is_a_bad_row(tmp_path):
    rows = good_azure_rows(4)
    rows[1] = rows[1] + ",extra"
    f = azure_file(tmp_path, rows)
    with pytest.raises(InputError, match=r"azure_bad.csv:3.*4 fields, the header has 3"):
        load(path=str(f), format="azure")


def test_timestamp_going_backwards_is_an_error_or_skipped(tmp_path):
    rows = good_azure_rows(8)
    rows[5] = "2023-11-16 18:17:01.0000000,5,5"  # earlier than rows 2..4
    f = azure_file(tmp_path, rows)
    with pytest.raises(InputError) as exc:
        load(path=str(f), format="azure")
    assert exc.value.line == 7
    assert "TIMESTAMP" in str(exc.value) and "backwards" in str(exc.value)
    got, counts = load(path=str(f), format="azure", on_bad_row="skip")
    assert counts.out_of_order == 1 and len(got) == 7
    assert 5 not in got.input_tokens.tolist()
    assert counts.examples and "line 7" in counts.examples[0]


def test_out_of_order_across_chunks(tmp_path):
    rows = good_azure_rows(10)
    rows[6] = "2023-11-16 18:17:00.5000000,5,5"
    f = azure_file(tmp_path, rows)
    with pytest.raises(InputError) as exc:
        load(path=str(f), format="azure", chunk_size=3)  # rows[6] starts the third chunk
    assert exc.value.line == 8


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.csv: trace file is empty"):
        load(path=str(empty), format="azure")
    empty_jsonl = tmp_path / "empty.jsonl"
    empty_jsonl.write_text("\n\n")
    with pytest.raises(InputError, match="empty"):
        load(path=str(empty_jsonl), format="mooncake")
    header_only = azure_file(tmp_path, [])
    with pytest.raises(InputError, match="no request rows"):
        load(path=str(header_only), format="azure")


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found") as exc:
        iter_requests(trace(path="nope.jsonl", format="mooncake"), tmp_path, 0)
    assert exc.value.field == "workload.trace.path"


def test_skip_counts_bad_rows_and_keeps_the_rest(tmp_path):
    rows = good_azure_rows(10)
    rows[2] = "2023-11-16 18:17:02.1000000,abc,3"
    rows[4] = "not a date,100,3"
    rows[7] = "2023-11-16 18:17:07.1000000,-5,3"
    f = azure_file(tmp_path, rows)
    got, counts = load(path=str(f), format="azure", on_bad_row="skip")
    assert counts.bad_rows == 3 and counts.rows == 10 and len(got) == 7
    assert got.input_tokens.tolist() == [100 + i for i in range(10) if i not in (2, 4, 7)]
    assert len(counts.examples) == 3 and "line 4" in counts.examples[0]


def test_nothing_left_is_an_error(tmp_path):
    f = azure_file(tmp_path, ["2023-11-16 18:17:02.1000000,abc,3"])
    with pytest.raises(InputError, match="no request left.*1 unreadable"):
        load(path=str(f), format="azure", on_bad_row="skip")


def test_utc_offset_is_honoured(tmp_path):
    f = azure_file(
        tmp_path,
        ["2024-05-10 00:00:00.5000000+00:00,10,2", "2024-05-10 02:00:01.5000000+02:00,10,2"],
    )
    got, counts = load(path=str(f), format="azure")
    assert got.arrival_s.tolist() == [0.0, 1.0]
    assert counts.start == "2024-05-10 00:00:00.500000"


# ------------------------------------------------------------------ BurstGPT and generic formats


BURST_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
BURST3_HEADER = (
    "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
)


def test_burstgpt_filters_and_counts_zero_token_failures(tmp_path):
    rows = [
        (5, "ChatGPT", 472, 18),
        (6, "GPT-4", 1090, 0),
        (6, "ChatGPT", 0, 0),
        (9, "ChatGPT", 80, 230),
        (12, "GPT-4", 310, 0),
        (15, "ChatGPT", 35, 12),
    ]
    f = tmp_path / "BurstGPT_1.csv"
    f.write_text(
        BURST_HEADER + "".join(f"{t},{m},{i},{o},{i + o},Conversation log\n" for t, m, i, o in rows)
    )
    got, counts = load(path=str(f), format="burstgpt")
    kept = [r for r in rows if r[2] and r[3]]
    assert counts.failed == 3 and counts.rows == 6 and len(got) == 3
    assert got.input_tokens.tolist() == [r[2] for r in kept]
    assert got.output_tokens.tolist() == [r[3] for r in kept]
    assert got.arrival_s.tolist() == [t - kept[0][0] for t, *_ in kept]
    assert detect_format(f) == "burstgpt"


def test_burstgpt_3_with_session_columns(tmp_path):
    f = tmp_path / "BurstGPT_3.csv"
    f.write_text(
        BURST3_HEADER + "0,s1,0.0,ChatGPT,100,20,120,API log\n"
        "2.5,s1,2.5,ChatGPT,150,0,150,API log\n"
        "4,s2,0.0,GPT-4,300,40,340,Conversation log\n"
    )
    got, counts = load(path=str(f), format="burstgpt")
    assert got.input_tokens.tolist() == [100, 300]
    assert got.arrival_s.tolist() == [0.0, 4.0]
    assert counts.failed == 1


def test_generic_csv_with_column_mapping(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text(
        "req,t_ms,prompt,completion,blocks\n"
        'a,1000,700,5,"[1, 2]"\n'
        "b,1500,300,7,1 3\n"
        "c,4000,1030,9,1;2;4\n"
    )
    got, _ = load(
        path=str(f),
        format="csv",
        time_unit="ms",
        columns={
            "arrival": "t_ms",
            "input_tokens": "prompt",
            "output_tokens": "completion",
            "hash_ids": "blocks",
        },
    )
    assert got.arrival_s.tolist() == [0.0, 0.5, 3.0]
    assert got.input_tokens.tolist() == [700, 300, 1030]
    assert got.output_tokens.tolist() == [5, 7, 9]
    assert got.hash_ids.tolist() == [1, 2, 1, 3, 1, 2, 4]
    assert got.hash_offsets.tolist() == [0, 2, 4, 7]


def test_generic_csv_missing_mapped_column(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("t,prompt,completion\n0,1,1\n")
    with pytest.raises(InputError, match=r"mine.csv:1.*'answer'"):
        load(
            path=str(f),
            format="csv",
            columns={"arrival": "t", "input_tokens": "prompt", "output_tokens": "answer"},
        )


def test_generic_mapping_is_required():
    with pytest.raises(ValueError, match="needs `columns`"):
        trace(path="x.csv", format="csv")


def test_generic_jsonl_with_datetimes(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(
        '{"when": "2024-01-01T00:00:00", "in": 10, "out": 3}\n'
        "\n"
        '{"when": "2024-01-01T00:00:02.25", "in": 20.0, "out": "4"}\n'
    )
    got, counts = load(
        path=str(f),
        format="jsonl",
        time_unit="datetime",
        columns={"arrival": "when", "input_tokens": "in", "output_tokens": "out"},
    )
    assert got.arrival_s.tolist() == [0.0, 2.25]
    assert got.input_tokens.tolist() == [10, 20]
    assert got.output_tokens.tolist() == [3, 4]
    assert got.hash_ids is None
    assert counts.rows == 2


def test_generic_jsonl_microseconds_and_fractional_tokens(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(
        '{"t": 1700000000000000, "i": 10, "o": 3}\n{"t": 1700000000250000, "i": 10.5, "o": 3}\n'
    )
    cols = {"arrival": "t", "input_tokens": "i", "output_tokens": "o"}
    with pytest.raises(InputError, match=r"mine.jsonl:2.*'i'.*whole number"):
        load(path=str(f), format="jsonl", time_unit="us", columns=cols)
    got, _ = load(path=str(f), format="jsonl", time_unit="us", columns=cols, on_bad_row="skip")
    assert got.arrival_s.tolist() == [0.0]


# ------------------------------------------------------------------ streaming


def test_streaming_a_large_mooncake_file_is_bounded_and_consecutive(tmp_path):
    n, chunk = 200_000, 16_384
    f = tmp_path / "big.jsonl"
    rng = np.random.default_rng(0)
    ts = np.cumsum(rng.integers(0, 40, n))
    lens = rng.integers(1, 3000, n)
    with f.open("w") as fh:
        next_block = 0
        for t, length in zip(ts.tolist(), lens.tolist(), strict=True):
            k = -(-length // 512)
            ids = [0, *range(next_block, next_block + k - 1)]
            next_block += k - 1
            fh.write(
                f'{{"timestamp": {t}, "input_length": {length}, "output_length": 7, '
                f'"hash_ids": {ids}}}\n'
            )
    expected_id = 0
    last = -1.0
    total_blocks = 0
    for c in iter_requests(trace(path=str(f), format="mooncake"), tmp_path, 0, chunk):
        assert 0 < len(c) <= chunk
        assert c.request_id[0] == expected_id
        assert np.all(np.diff(c.request_id) == 1)
        assert c.arrival_s[0] >= last and np.all(np.diff(c.arrival_s) >= 0)
        assert c.hash_offsets[0] == 0 and c.hash_offsets[-1] == len(c.hash_ids)
        expected_id += len(c)
        last = c.arrival_s[-1]
        total_blocks += len(c.hash_ids)
    assert expected_id == n
    assert last == pytest.approx((ts[-1] - ts[0]) / 1000)
    assert total_blocks == int((-(-lens // 512)).sum())


def test_streaming_a_large_azure_file(tmp_path):
    n, chunk = 200_000, 50_000
    f = tmp_path / "big.csv"
    with f.open("w") as fh:
        fh.write(AZURE_HEADER)
        for i in range(n):
            s = i * 0.01
            fh.write(
                f"2023-11-16 {int(s // 3600):02d}:{int(s % 3600 // 60):02d}:"
                f"{s % 60:010.7f},{i % 5000 + 1},{i % 300 + 1}\n"
            )
    sizes = []
    expected_id = 0
    for c in iter_requests(trace(path=str(f), format="azure"), tmp_path, 0, chunk):
        sizes.append(len(c))
        assert c.request_id[0] == expected_id
        expected_id += len(c)
    assert sizes == [chunk] * 4
    assert c.arrival_s[-1] == pytest.approx((n - 1) * 0.01, abs=1e-6)


def test_streaming_memory_does_not_grow_with_the_trace(tmp_path):
    import tracemalloc

    f = tmp_path / "mid.jsonl"
    n = 40_000
    with f.open("w") as fh:
        for i in range(n):
            fh.write(
                f'{{"timestamp": {i}, "input_length": 5000, "output_length": 7, '
                f'"hash_ids": {list(range(i * 10, i * 10 + 10))}}}\n'
            )
    spec = trace(path=str(f), format="mooncake")
    tracemalloc.start()
    try:
        seen = sum(len(c) for c in iter_requests(spec, tmp_path, 0, 2048))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == n
    # all of it as numpy alone is 40k x (4 x 8 + 10 x 8) bytes = 4.5 MB; one chunk ~0.25 MB
    assert peak < 3 * 2**20
