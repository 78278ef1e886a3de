"""Fault targets are checked when a scenario loads: every target a fault names exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hetsim
from hetsim.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "lifecycle-faults.yaml"


def faults_scenario(*targets: str) -> dict:
    data = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    for event, target in zip(data["faults"]["events"], targets, strict=False):
        event["target"] = target
    return data


def test_the_bundled_targets_exist() -> None:
    hetsim.scenario_from_dict(faults_scenario())


def test_unknown_pool_index_out_of_range_and_unknown_hop_are_reported_at_once(
    tmp_path: Path,
) -> None:
    # events 0-2: a decode crash, a prefill crash, a fabric outage (4 prefill, 4 decode)
    data = faults_scenario("decoder", "prefill[4]", "fabrik")
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(InputError) as info:
        hetsim.load_scenario(path)
    text = str(info.value)
    assert text.startswith(f"{path}: 3 problems:")
    assert "faults.events[0].target" in text and "(got 'decoder')" in text
    assert "faults.events[1].target" in text and "(got 'prefill[4]')" in text
    assert "faults.events[2].target" in text and "(got 'fabrik')" in text
    pools = "allowed: prefill, prefill[0]..prefill[3], decode, decode[0]..decode[3]"
    assert text.count(pools) == 2
    assert "allowed: tx, fabric, rx" in text


def test_check_exits_2_on_a_bad_target(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(faults_scenario("decode[9]")), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "hetsim", "check", str(path)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "faults.events[0].target" in done.stderr and "'decode[9]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_tier_is_no_link_target() -> None:
    # the simulator builds links for tiers too, but a link fault acts on transfer-path hops
    data = faults_scenario("decode[0]", "prefill[0]", "kv_pool")
    with pytest.raises(InputError, match=r"faults.events\[2\].target.*'kv_pool'"):
        hetsim.scenario_from_dict(data)
