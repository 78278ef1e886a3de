"""``--requests N``: N >= 1; generators make N requests; a trace is capped with a note; trace rows
dropped for zero tokens are counted in the summary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hetsim import load_scenario
from hetsim.errors import InputError
from hetsim.simulation import simulate

TRACE_ROWS = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:17:03.0000000,400,10
2023-11-16 18:17:04.0000000,0,8
2023-11-16 18:17:05.0000000,300,12
2023-11-16 18:17:06.0000000,500,0
2023-11-16 18:17:07.0000000,200,6
"""


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "hetsim", *args], capture_output=True, text=True, timeout=300
    )


def small_trace_scenario(tmp_path: Path) -> Path:
    """trace-azure-code with five rows, two of them zero-token (BurstGPT's failed requests)."""
    trace = tmp_path / "five.csv"
    trace.write_text(TRACE_ROWS)
    text = Path("scenarios/trace-azure-code.yaml").read_text()
    text = text.replace("../tests/data/azure_code_2k.csv", str(trace))
    path = tmp_path / "five.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("n", ["-5", "0"])
def test_requests_below_one_is_an_input_error(n):
    proc = run("simulate", "scenarios/qwen3-32b-4p4d.yaml", "--requests", n)
    assert proc.returncode == 2
    assert "--requests" in proc.stderr and "Traceback" not in proc.stderr


def test_api_refuses_zero_requests():
    with pytest.raises(InputError, match="at least one request"):
        simulate("scenarios/qwen3-32b-4p4d.yaml", max_requests=0)


def test_synthetic_workload_generates_n_requests_beyond_its_own_count():
    run_ = simulate(
        "scenarios/qwen3-32b-4p4d.yaml", ["workload.synthetic.requests=20"], max_requests=30
    )
    assert run_.summary.requests == 30 and len(run_.requests) == 30


def test_closed_loop_sends_n_requests_beyond_its_own_count():
    run_ = simulate(
        "scenarios/closed-loop-llama70b-h200.yaml",
        ["workload.closed_loop.requests=20"],
        max_requests=30,
    )
    assert run_.summary.requests == 30


def test_trace_caps_with_a_note_and_counts_zero_token_rows(tmp_path):
    scenario = small_trace_scenario(tmp_path)
    proc = run("simulate", str(scenario), "--requests", "10", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    # five rows: two have zero prompt or zero output tokens, three are replayed
    assert summary["requests"] == 3
    assert summary["dropped_rows"] == {"zero prompt or output tokens": 2}
    assert "--requests 10: the trace holds 3 requests" in proc.stderr


def test_trace_below_its_size_replays_n_without_a_note(tmp_path):
    proc = run("simulate", str(small_trace_scenario(tmp_path)), "--requests", "2")
    assert proc.returncode == 0, proc.stderr
    assert "note:" not in proc.stderr
    # the reader reads whole chunks (here the whole file), and counts every row it read
    assert "trace rows dropped 2: zero prompt or output tokens" in proc.stdout


def test_trace_rows_over_the_model_context_are_counted_not_replayed(tmp_path):
    scenario = small_trace_scenario(tmp_path)
    context = load_scenario(scenario).model.max_context
    rows = TRACE_ROWS + f"2023-11-16 18:17:08.0000000,{context},1\n"
    (tmp_path / "five.csv").write_text(rows)
    run_ = simulate(str(scenario))
    assert run_.summary.requests == 3
    assert run_.summary.dropped_rows == {
        "zero prompt or output tokens": 2,
        "prompt + output over the model's context (max_position_embeddings)": 1,
    }


def test_a_negative_seed_is_an_input_error():
    proc = run("simulate", "scenarios/qwen3-32b-4p4d.yaml", "--requests", "5", "--seed", "-5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--seed" in proc.stderr and "-5" in proc.stderr


def test_a_trace_starting_with_a_byte_order_mark_is_replayed(tmp_path):
    scenario = small_trace_scenario(tmp_path)
    (tmp_path / "five.csv").write_text("\ufeff" + TRACE_ROWS, encoding="utf-8")
    assert simulate(str(scenario)).summary.requests == 3
