"""`hetsim simulate` end to end: outputs on disk, summary fields, exit codes."""

import json
import subprocess
import sys

import pandas as pd

REQUEST_COLUMNS = [
    "request_id", "arrival_s", "prefill_start_s", "prefill_end_s", "transfer_start_s",
    "transfer_end_s", "decode_start_s", "first_token_s", "finish_s", "input_tokens",
    "cached_tokens", "output_tokens", "prefill_instance", "decode_instance", "status",
    "failure_reason",
]  # fmt: skip
SUMMARY_KEYS = [
    "requests", "completed", "failed", "ttft_s", "tpot_s", "e2e_s", "throughput_tokens_per_s",
    "attainment", "sla_met", "kv_blocks_leaked", "cost_per_hour", "cost_per_million_tokens",
    "provenance", "wall_s", "events",
]  # fmt: skip


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "hetsim", *args], capture_output=True, text=True, timeout=300
    )


def test_simulate_writes_requests_timeseries_and_summary(tmp_path):
    out = tmp_path / "run"
    proc = run(
        "simulate",
        "scenarios/qwen3-32b-4p4d.yaml",
        "--requests",
        "150",
        "--out",
        str(out),
        "--csv",
        "--set",
        "lifecycle=push",
    )
    assert proc.returncode == 0, proc.stderr
    assert "TTFT" in proc.stdout and "attainment" in proc.stdout
    requests = pd.read_parquet(out / "requests.parquet")
    assert list(requests.columns[: len(REQUEST_COLUMNS)]) == REQUEST_COLUMNS
    assert len(requests) == 150
    assert len(pd.read_csv(out / "requests.csv")) == 150
    series = pd.read_parquet(out / "timeseries.parquet")
    assert {"instance", "link"} <= set(series["kind"])
    assert {
        "batch_size",
        "kv_used_blocks",
        "kv_reserved_blocks",
        "busy",
        "bytes_in_flight",
        "utilisation_since_start",
    } <= set(series.columns)
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        assert set(summary[key]) == {"mean", "p50", "p90", "p99"}
    assert summary["requests"] == summary["completed"] + summary["failed"] == 150
    assert summary["kv_blocks_leaked"] == 0
    assert summary["provenance"] == {"prefill": "roofline-default", "decode": "roofline-default"}


def test_simulate_json_and_seed_are_deterministic():
    a = run(
        "simulate", "scenarios/trace-azure-conv.yaml", "--requests", "100", "--json", "--seed", "3"
    )
    b = run(
        "simulate", "scenarios/trace-azure-conv.yaml", "--requests", "100", "--json", "--seed", "3"
    )
    assert a.returncode == b.returncode == 0, a.stderr
    sa, sb = json.loads(a.stdout), json.loads(b.stdout)
    sa.pop("wall_s")
    sb.pop("wall_s")
    assert sa == sb


def test_simulate_bad_input_exits_2():
    proc = run("simulate", "scenarios/qwen3-32b-4p4d.yaml", "--set", "lifecycle=teleport")
    assert proc.returncode == 2
    assert "lifecycle" in proc.stderr and "Traceback" not in proc.stderr
