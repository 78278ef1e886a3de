"""Silicon rows posed with the scheduler settings their launch scripts document
(hetsim.validation.launches), never with settings read from the measured values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hetsim.spec.scenario import Batching
from hetsim.validation import read_silicon
from hetsim.validation.launches import (
    AMBIGUOUS,
    DEFAULTS,
    launch_of,
    launch_rules,
)
from hetsim.validation.pose import MODEL_ARCHITECTURES, Posed, pose

EXCERPT = Path(__file__).parent / "data" / "silicon" / "silicon_sample_excerpt.csv"
# an InferenceX run: DeepSeek-R1 FP8 on 8 H200 with SGLang, 64 clients, 1k/1k, 2026-03-25
ROW_ID = "2026_03_25_deepseek_r1_h200_sxm_sglang_fp8_agg_1024x1024_c64_tp8_0_ep1_0_256"

RULES = """
- runtime: sglang
  models: [deepseek-ai/DeepSeek-R1]
  systems: [h200_sxm]
  precision: fp8
  isl: 1024
  tp: 8
  ep: 1
  dp_attention: false
  min_concurrency: 16
  measured: [2026-03-01, 2026-03-31]
  settings: {batching: {scheduler_recv_interval: 30}, memory_utilization: 0.82}
  source: "benchmarks/x.sh@abc: --scheduler-recv-interval 30"
- runtime: sglang
  models: [deepseek-ai/DeepSeek-R1]
  measured: [2026-03-20, null]
  settings: {batching: {max_batched_tokens: 16384, chunk_size: 16384}, precision: {kv: bf16}}
  source: "benchmarks/x.sh@def: --chunked-prefill-size 16384"
"""


@pytest.fixture(scope="module")
def row():
    (found,) = [r for r in read_silicon(EXCERPT) if r.id == ROW_ID]
    return found


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "launches.yaml"
    path.write_text(RULES, encoding="utf-8")
    return launch_rules(path)


def test_every_rule_in_force_on_the_measured_day_applies(row, rules):
    launch = launch_of(row, rules)
    assert launch.settings == {
        "batching": {
            "scheduler_recv_interval": 30,
            "max_batched_tokens": 16384,
            "chunk_size": 16384,
        },
        "memory_utilization": 0.82,
        "precision": {"kv": "bf16"},
    }
    assert launch.label == (
        "benchmarks/x.sh@abc: --scheduler-recv-interval 30; "
        "benchmarks/x.sh@def: --chunked-prefill-size 16384"
    )


def test_a_rule_applies_only_to_the_servers_its_script_launches(row, rules):
    for other in (
        dataclasses.replace(row, concurrency=8),  # below the script's concurrency
        dataclasses.replace(row, system="b200_sxm"),
        dataclasses.replace(row, isl=8192),
        dataclasses.replace(row, precision="fp4"),
        dataclasses.replace(row, agg=dataclasses.replace(row.agg, tp=4, moe_tp=4)),
        dataclasses.replace(row, agg=dataclasses.replace(row.agg, moe_ep=8, moe_tp=1)),
        dataclasses.replace(row, agg=dataclasses.replace(row.agg, tp=1, dp=8)),
    ):
        assert "scheduler_recv_interval" not in launch_of(other, rules).settings["batching"]
    assert launch_of(dataclasses.replace(row, measured_on=("2026-02-10",)), rules).label == (
        DEFAULTS
    )


def test_a_row_measured_under_different_settings_keeps_the_defaults_and_says_so(row, rules):
    straddling = dataclasses.replace(row, measured_on=("2026-03-25", "2026-04-02"))
    launch = launch_of(straddling, rules)
    assert launch.settings == {} and launch.label == AMBIGUOUS


def test_rows_of_other_clients_and_disaggregated_rows_are_not_read(row, rules):
    unrecorded = dataclasses.replace(row, source="source_file=/data/h200_sxm/x.csv")
    assert launch_of(unrecorded, rules).label == DEFAULTS
    disagg = dataclasses.replace(row, agg=None)
    assert launch_of(disagg, rules).label == DEFAULTS


def test_the_posed_engine_runs_with_the_launch_settings(row, rules):
    posed = pose(row, rules)
    assert isinstance(posed, Posed)
    (engine,) = posed.scenario["pools"]
    assert engine["batching"]["scheduler_recv_interval"] == 30
    assert engine["batching"]["max_batched_tokens"] == 16384
    assert engine["batching"]["max_num_seqs"] == 64  # the row's own, kept
    assert engine["memory_utilization"] == 0.82
    assert engine["precision"] == {"weights": "fp8_e4m3", "activations": "fp8_e4m3", "kv": "bf16"}
    assert posed.launch.label.startswith("benchmarks/x.sh@abc")


def test_the_bundled_rules_are_settings_hetsim_models_for_models_it_poses():
    for rule in launch_rules():
        settings = dict(rule.settings)
        assert set(settings) <= {"batching", "precision", "memory_utilization"}, rule.source
        Batching(**settings.get("batching", {}))  # each a valid batching setting
        assert set(rule.models) <= set(MODEL_ARCHITECTURES), rule.source
        assert rule.runtime in ("vllm", "sglang", "trtllm")
        assert rule.since is None or rule.until is None or rule.since <= rule.until
        assert "@" in rule.source  # a script at a commit
