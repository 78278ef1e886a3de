"""`hetsim simulate` without a terminal: plain progress lines, and why store is not compared."""

import pytest
from typer.testing import CliRunner

from hetsim.cli import app, main
from hetsim.cli import simulate as simulate_cli


def test_progress_lines_without_a_tty(monkeypatch):
    # CliRunner's stderr is no terminal: a line every HEARTBEAT_S of wall time (0 here: one per
    # batch of events), where a bar would show nothing
    monkeypatch.setattr(simulate_cli, "HEARTBEAT_S", 0.0)
    result = CliRunner().invoke(
        app, ["simulate", "scenarios/qwen3-32b-4p4d.yaml", "--requests", "40", "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "requests ended" in line]
    assert lines, result.stderr
    assert lines[0].startswith("simulate qwen3-32b-4p4d: ")
    assert " / 40 requests ended, simulated clock " in lines[0]


def test_compare_lifecycles_says_why_store_is_missing_and_which_run_progresses(monkeypatch):
    monkeypatch.setattr(simulate_cli, "HEARTBEAT_S", 0.0)
    result = CliRunner().invoke(
        app,
        ["simulate", "scenarios/qwen3-32b-4p4d.yaml", "--requests", "40", "--compare-lifecycles"],
    )
    assert result.exit_code == 0, result.output
    assert "store is not compared" in result.stderr
    assert "lifecycle.store_tier" in result.stderr
    assert "simulate qwen3-32b-4p4d (pull): " in result.stderr
    assert "simulate qwen3-32b-4p4d (push): " in result.stderr


def test_absurd_hop_is_an_input_error(monkeypatch, capsys):
    # through the console entry point, as `hetsim simulate` runs: one message, exit code 2
    monkeypatch.setattr(
        "sys.argv",
        [
            "hetsim",
            "simulate",
            "scenarios/qwen3-32b-4p4d.yaml",
            "--requests",
            "5",
            "--set",
            "interconnect.paths.0.hops.0.latency=1e9 s",
        ],
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "interconnect.paths[0].hops[0].latency" in err
    assert "Traceback" not in err
