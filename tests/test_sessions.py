"""Multi-turn sessions: prompts that grow turn by turn, their prefix hashes, turns sent after
the turn they follow ends, sessions inferred from a Mooncake trace's hash_ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import hetsim
from hetsim.errors import InputError
from hetsim.simulation import simulate
from hetsim.spec.workload import WorkloadSpec
from hetsim.workload import ReadCounts, RequestChunk, iter_requests, load_requests, trace_stats
from hetsim.workload.sessions import SESSION_ID_BASE, SYSTEM_ID_BASE

COLUMNS = ["request_id", "session", "turn", "arrival_s", "finish_s", "input_tokens"]


def sessions(**over) -> dict:
    spec = {"turns": 3, "new_tokens": 20, "think_time": "2 s", "block_tokens": 16}
    spec.update(over)
    return spec


def synthetic(requests: int = 6, **over) -> dict:
    return {
        "synthetic": {
            "rate": "1 req/s",
            "requests": requests,
            "input_tokens": 100,
            "output_tokens": 10,
            "sessions": sessions(**over),
        }
    }


def closed(concurrency: int = 2, requests: int = 12, **over) -> dict:
    return {
        "closed_loop": {
            "concurrency": concurrency,
            "requests": requests,
            "input_tokens": 100,
            "output_tokens": 10,
            "sessions": sessions(**over),
        }
    }


def scenario(workload: dict, path: Path | None = None, block_tokens: int = 16):
    data = {
        "name": "sessions-test",
        "model": "tiny-llama",
        "pools": [
            {
                "name": "serve",
                "role": "colocated",
                "accelerator": "nvidia-h100-sxm",
                "batching": {"max_num_seqs": 64, "max_batched_tokens": 4096},
            }
        ],
        "kv": {"prefix_cache": {"enabled": True, "block_tokens": block_tokens}},
        "workload": workload,
        "sla": {"ttft": "1 s", "tpot": "50 ms"},
        "seed": 3,
    }
    return hetsim.scenario_from_dict(data, path=path)


def rows(workload: dict, **kw):
    return simulate(scenario(workload), sample_interval=None, **kw).requests


def generated(workload: dict, chunk_size: int = 65536, max_context: int | None = None):
    counts = ReadCounts()
    spec = WorkloadSpec(**workload)
    chunks = iter_requests(spec, Path.cwd(), 3, chunk_size, counts, max_context=max_context)
    return RequestChunk.concat(chunks), counts


# ------------------------------------------------------------------ generated sessions


def test_a_turns_prompt_is_the_previous_prompt_its_output_and_the_new_tokens() -> None:
    chunk, counts = generated(synthetic(requests=3))
    # 100; 100 + 10 output + 20 new = 130; 130 + 10 + 20 = 160
    assert chunk.input_tokens.tolist() == [100, 130, 160]
    assert chunk.session.tolist() == [0, 0, 0]
    assert chunk.turn.tolist() == [1, 2, 3]
    assert chunk.parent.tolist() == [-1, 0, 1]
    assert chunk.think_s.tolist() == [0.0, 2.0, 2.0]
    assert counts.sessions == 1


def test_turns_share_their_full_blocks_and_sessions_share_the_system_prompt() -> None:
    chunk, _ = generated(synthetic(requests=6, system_prompt_tokens=40))
    first, second, other = chunk.hashes(0), chunk.hashes(1), chunk.hashes(3)
    # 140 tokens = 8 full blocks of 16 and a partial one; the next turn has 170 = 10 full + 1
    assert len(first) == 9 and len(second) == 11
    assert second[:8].tolist() == first[:8].tolist()
    assert first[8] not in set(second.tolist())  # the partial block grew: a new id
    # blocks 0 and 1 lie within the 40-token system prompt: shared by every session; block 2
    # mixes system prompt and the session's own tokens
    assert first[:2].tolist() == other[:2].tolist() == [SYSTEM_ID_BASE, SYSTEM_ID_BASE + 1]
    assert first[2] == SESSION_ID_BASE + 2 and other[2] == SESSION_ID_BASE + (1 << 24) + 2


def test_the_next_turn_hits_the_previous_turns_full_blocks_after_its_think_time() -> None:
    q = rows(synthetic(requests=6))
    assert len(q) == 6 and q["request_id"].is_unique
    # turn 2 hits turn 1's 6 full blocks (100 // 16), turn 3 turn 2's 8 (130 // 16)
    assert q["cached_tokens"].tolist() == [0, 96, 128] * 2
    by_id = q.set_index("request_id")
    for rid in (1, 2, 4, 5):
        assert by_id.at[rid, "arrival_s"] == pytest.approx(by_id.at[rid - 1, "finish_s"] + 2.0)


def test_random_think_times_are_counted_from_the_previous_turns_end() -> None:
    wl = synthetic(requests=20, turns={"dist": "uniform", "min": 1, "max": 4},
                   think_time={"dist": "exponential", "mean": "3 s"})  # fmt: skip
    q = rows(wl).set_index("request_id")
    chunk, _ = generated(wl)
    for rid, parent, think in zip(chunk.request_id, chunk.parent, chunk.think_s, strict=True):
        if parent >= 0:
            sent = q.at[rid, "arrival_s"]
            assert sent == pytest.approx(q.at[parent, "finish_s"] + think, abs=1e-9)
            assert sent >= q.at[parent, "finish_s"]


def test_sessions_are_determined_by_the_seed_whatever_the_chunking() -> None:
    wl = synthetic(requests=30, turns={"dist": "lognormal", "mean": 3, "cv": 1, "max": 8},
                   new_tokens={"dist": "uniform", "min": 1, "max": 200},
                   think_time={"dist": "lognormal", "mean": "1 s", "cv": 2})  # fmt: skip
    a, _ = generated(wl, chunk_size=4)
    b, _ = generated(wl)
    for name in ("input_tokens", "arrival_s", "session", "turn", "parent", "think_s", "hash_ids"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert rows(wl).equals(rows(wl))


def test_requests_and_max_requests_count_turns() -> None:
    q = rows(synthetic(requests=6), max_requests=5)
    assert q["session"].tolist() == [0, 0, 0, 1, 1]
    assert q["turn"].tolist() == [1, 2, 3, 1, 2]


def test_closed_loop_clients_run_whole_sessions_and_keep_at_most_n_in_flight() -> None:
    q = rows(closed(concurrency=2, requests=12))
    assert len(q) == 12 and (q["status"] == "completed").all()
    for t in q["arrival_s"]:
        running = ((q["arrival_s"] <= t) & (q["finish_s"] > t)).sum()
        assert running <= 2
    by_session = q.sort_values("request_id").groupby("session")
    starts = by_session["arrival_s"].min().sort_values().tolist()
    ends = by_session["finish_s"].max().sort_values().tolist()
    # 4 sessions on 2 clients: the third and fourth start as the first two end (think 0 s
    # between sessions)
    assert starts[2] == pytest.approx(ends[0]) and starts[3] == pytest.approx(ends[1])


def test_a_bounded_session_that_outgrows_the_context_is_an_input_error() -> None:
    # tiny-llama: 8192-token context; 100 + 499·(10 + 20) + 10 = 15,080 tokens
    with pytest.raises(InputError) as info:
        rows(synthetic(requests=6, turns=500))
    assert "sessions.turns" in str(info.value) and "8,192" in str(info.value)


def test_an_unbounded_session_ends_at_the_context_and_is_counted() -> None:
    # turn 2: 100 + 10 + ~1500 fits 2000; turn 3 adds ~1500 more and cannot
    wl = synthetic(requests=4, turns=5, new_tokens={"dist": "lognormal", "mean": 1500, "cv": 0.05})
    chunk, counts = generated(wl, max_context=2000)
    assert chunk.turn.tolist() == [1, 2, 1, 2]
    assert counts.sessions == 2 and counts.sessions_cut == 2 and counts.over_context == 6


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"think_time": {"dist": "weibull", "mean": "1 s"}}, "think_time.dist"),
        ({"think_time": {"dist": "exponential"}}, "think_time"),
        ({"turns": {"dist": "empirical", "trace": {"path": "x", "format": "mooncake"}}}, "turns"),
    ],
)
def test_bad_session_distributions_are_input_errors(over: dict, field: str) -> None:
    with pytest.raises(InputError) as info:
        scenario(synthetic(**over))
    assert field in str(info.value)


# ------------------------------------------------------------------ sessions from a trace

# r1 is a decoy: the system prompt (block 0) and a short message. Its only full block is one
# conversation A produced first, so conversation B (r2) must not chain to it.
TINY = [
    {"timestamp": 0, "input_length": 1100, "output_length": 5, "hash_ids": [0, 1, 2]},
    {"timestamp": 1, "input_length": 600, "output_length": 5, "hash_ids": [0, 3]},
    {"timestamp": 2, "input_length": 1200, "output_length": 5, "hash_ids": [0, 4, 5]},
    {"timestamp": 3, "input_length": 1700, "output_length": 5, "hash_ids": [0, 1, 6, 7]},
    {"timestamp": 4, "input_length": 1300, "output_length": 5, "hash_ids": [0, 4, 8]},
    {"timestamp": 5, "input_length": 2100, "output_length": 5, "hash_ids": [0, 1, 6, 9, 10]},
]


def tiny_trace(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in TINY))
    return path


def test_sessions_are_inferred_from_whole_prompt_prefixes_not_a_shared_system_prompt(
    tmp_path: Path,
) -> None:
    path = tiny_trace(tmp_path)
    counts = ReadCounts()
    wl = WorkloadSpec(trace={"path": str(path), "format": "mooncake", "sessions": True})
    chunk = load_requests(wl, tmp_path, 0, 65536, counts)
    assert chunk.session.tolist() == [0, 1, 2, 0, 2, 0]
    assert chunk.turn.tolist() == [1, 1, 1, 2, 2, 3]
    # r5 extends both r0 and r3: the latest is its parent
    assert chunk.parent.tolist() == [-1, -1, -1, 0, 2, 3]
    assert counts.sessions == 3


def test_a_trace_turn_is_sent_no_earlier_than_its_trace_time_nor_its_parents_end(
    tmp_path: Path,
) -> None:
    path = tiny_trace(tmp_path)
    # 6 rows over 5 s at 1000 req/s: gaps of 1.2 ms, so every next turn waits for its parent
    wl = {"trace": {"path": path.name, "format": "mooncake", "sessions": True,
                    "target_rate": "1000 req/s"}}  # fmt: skip
    q = simulate(scenario(wl, tmp_path / "s.yaml", 512), sample_interval=None).requests
    q = q.set_index("request_id")
    assert len(q) == 6 and (q["status"] == "completed").all()
    for rid, parent in ((3, 0), (4, 2), (5, 3)):
        assert q.at[rid, "arrival_s"] == pytest.approx(q.at[parent, "finish_s"])
        assert q.at[rid, "arrival_s"] >= rid * 0.0012 - 1e-12
    assert q.loc[[0, 1, 2], "arrival_s"].tolist() == pytest.approx([0, 0.0012, 0.0024])
    # the next turn finds its parent's full blocks: r3 has r0's 2, r5 r3's 3
    assert q.at[3, "cached_tokens"] == 1024 and q.at[5, "cached_tokens"] == 1536


def test_trace_stats_report_the_inferred_sessions(tmp_path: Path) -> None:
    s = trace_stats(tiny_trace(tmp_path)).to_dict()
    assert s["sessions"] == 3 and s["max_turns"] == 3 and s["turns_per_session"] == 2
    # r3 repeats r0's 2 full blocks, r4 r2's 2, r5 r3's 3: 7 blocks of 512 tokens
    assert s["session_reuse_tokens"] == pytest.approx(7 * 512 / 8000)


def test_a_think_time_beyond_the_horizon_is_an_input_error() -> None:
    with pytest.raises(InputError) as info:
        rows(synthetic(think_time={"dist": "exponential", "mean": "100000 h"}))
    assert "sessions.think_time.mean" in str(info.value)


def test_given_session_requests_are_sent_as_sessions() -> None:
    wl = synthetic(requests=6)
    chunk, _ = generated(wl)
    other = {"synthetic": {"rate": "1 req/s", "input_tokens": 1, "output_tokens": 1}}
    given = simulate(scenario(other), requests=[chunk], sample_interval=None).requests
    assert given.equals(rows(wl))


def test_sessions_of_a_trace_without_hash_ids_are_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "nohash.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 10, "output_length": 5}\n')
    wl = WorkloadSpec(trace={"path": str(path), "format": "mooncake", "sessions": True})
    with pytest.raises(InputError) as info:
        load_requests(wl, tmp_path, 0)
    assert "workload.trace.sessions" in str(info.value)


def test_a_failed_turn_does_not_end_its_session() -> None:
    wl = closed(concurrency=2, requests=6, think_time="100 ms")
    wl["closed_loop"].update(output_tokens=256, ramp_up={"strategy": "none"})
    data = scenario(wl).spec.model_dump(by_alias=True, exclude_none=True)
    crash = {"kind": "instance_crash", "target": "serve[0]", "at": "1 s", "duration": "0.5 s"}
    data["faults"] = {"recovery": "fail", "events": [crash]}
    q = simulate(hetsim.scenario_from_dict(data), sample_interval=None).requests
    # both sessions are in turn 2 when the instance crashes at 1 s: turn 3 follows 100 ms later
    assert q["status"].tolist() == ["completed", "failed", "completed"] * 2
    assert q.loc[q["turn"] == 3, "arrival_s"].tolist() == pytest.approx([1.1, 1.1])


# ------------------------------------------------------ what other parts make of sessions


def test_session_hashes_let_a_cache_aware_router_through() -> None:
    """A session workload carries prefix hashes, so routers that rank by prefix accept it."""
    data = scenario(synthetic()).spec.model_dump(by_alias=True, exclude_none=True)
    data["routing"] = {"colocated": {"policy": "cache_aware"}}
    for sec, wl in (("synthetic", synthetic()), ("closed_loop", closed())):
        data["workload"] = wl
        assert hetsim.scenario_from_dict(data).spec.workload.model_dump()[sec]["sessions"]


def test_goodput_refuses_a_session_rate_as_a_request_rate() -> None:
    """`rate` counts sessions there: searching it as requests/s would misreport goodput."""
    with pytest.raises(InputError) as info:
        hetsim.with_rate(scenario(synthetic()), 2.0)
    assert info.value.field == "workload.synthetic.sessions"
    assert "sessions/s" in str(info.value)
