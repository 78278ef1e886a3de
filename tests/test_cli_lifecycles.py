"""``hetsim.compare_lifecycles`` and ``hetsim simulate --compare-lifecycles`` on top of it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import hetsim

REPO = Path(__file__).resolve().parents[1]
FAULTS = "scenarios/lifecycle-faults.yaml"  # names a store tier: all three protocols run
REQUESTS = 40


@pytest.fixture(scope="module")
def comparison() -> hetsim.LifecycleComparison:
    return hetsim.compare_lifecycles(hetsim.load_scenario(FAULTS), max_requests=REQUESTS)


def test_store_runs_only_when_the_scenario_names_a_store_tier(comparison) -> None:
    assert [o.protocol for o in comparison.outcomes] == ["pull", "push", "store"]
    seen = []
    without = hetsim.compare_lifecycles(
        hetsim.load_scenario(FAULTS, ["lifecycle.store_tier=null"]),
        max_requests=5,
        progress=seen.append,
    )
    assert [o.protocol for o in without.outcomes] == seen == ["pull", "push"]


@pytest.mark.parametrize("protocol", ["pull", "push", "store"])
def test_each_outcome_is_the_run_that_setting_the_protocol_gives(comparison, protocol) -> None:
    # a lost 'read done' notification exists under pull only: the others run without it
    data = yaml.safe_load((REPO / FAULTS).read_text(encoding="utf-8"))
    data["lifecycle"]["protocol"] = protocol
    events = data["faults"]["events"]
    if protocol != "pull":
        data["faults"]["events"] = [e for e in events if e["kind"] != "lost_notification"]
    posed = hetsim.scenario_from_dict(data, path=REPO / FAULTS)
    alone = hetsim.simulate(posed, max_requests=REQUESTS).summary
    outcome = next(o for o in comparison.outcomes if o.protocol == protocol)
    skipped = [f.split(" ")[0] for f in outcome.skipped_faults]
    assert skipped == ([] if protocol == "pull" else ["lost_notification"])
    assert replace(outcome.summary, wall_s=0.0) == replace(alone, wall_s=0.0)
    assert outcome.completed + outcome.failed == REQUESTS
    assert outcome.ttft_p90_s == alone.ttft_s.p90
    assert outcome.lease_expiries == alone.faults.get("lease_expiries", 0)
    assert outcome.pool("decode").reserved_block_s == alone.utilisation["decode"].reserved_block_s


def test_pull_holds_prefill_blocks_and_push_reserves_decode_blocks(comparison) -> None:
    pull, push, _ = comparison.outcomes
    assert pull.pool("prefill").held_block_s > 0
    assert push.pool("prefill").held_block_s == 0
    assert push.pool("decode").reserved_block_s > pull.pool("decode").reserved_block_s


def test_to_frame_has_a_row_per_protocol_and_columns_per_pool(comparison) -> None:
    frame = comparison.to_frame()
    assert list(frame.index) == ["pull", "push", "store"]
    assert comparison.pools == ("prefill", "decode")
    assert {"peak_kv.prefill", "held_block_s.decode", "reserved_block_s.decode"} <= set(frame)
    assert frame.loc["push", "attainment"] == comparison.outcomes[1].attainment
    assert "summary" not in frame


def test_a_protocol_the_scenario_cannot_use_is_an_input_error() -> None:
    scenario = hetsim.load_scenario(
        "scenarios/qwen3-32b-6p2d.yaml", ["lifecycle=push", "kv.layerwise_transfer=true"]
    )
    with pytest.raises(hetsim.InputError, match="kv.layerwise_transfer"):
        hetsim.compare_lifecycles(scenario, max_requests=5)


def test_cli_prints_the_api_result_as_json_and_as_a_table(comparison) -> None:
    args = [sys.executable, "-m", "hetsim", "simulate", FAULTS, "--compare-lifecycles"]
    args += ["--requests", str(REQUESTS)]
    as_json = subprocess.run([*args, "--json"], capture_output=True, text=True, cwd=REPO)
    assert as_json.returncode == 0, as_json.stderr
    printed = json.loads(as_json.stdout)
    expected = comparison.to_dict()
    for summary in (*printed.values(), *expected.values()):
        summary.pop("wall_s")
    assert printed == expected
    table = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "KV lifecycle protocols on lifecycle-faults" in lines[0]
    lease = next(line for line in lines if "lease expiries" in line)
    cells = [cell.strip() for cell in lease.split("│")[2:5]]
    assert cells == [f"{o.lease_expiries:,}" for o in comparison.outcomes]


def test_step_by_step_comparison_gives_the_same_outcomes_in_more_events(comparison) -> None:
    slow = hetsim.compare_lifecycles(
        hetsim.load_scenario(FAULTS), max_requests=REQUESTS, fast_forward=False
    )
    for fast, one in zip(comparison.outcomes, slow.outcomes, strict=True):
        assert fast.protocol == one.protocol
        assert replace(fast.summary, wall_s=0.0, events=0) == replace(
            one.summary, wall_s=0.0, events=0
        )
        assert fast.summary.events <= one.summary.events
