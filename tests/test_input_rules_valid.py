"""Inputs the stricter checks must still accept: each rule refuses only what it says (found by
reviewing those checks; each case was refused, or raised, when first written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import hetsim
from hetsim.checks import drop_absent_faults
from hetsim.planner.goodput import with_concurrency
from hetsim.workload.stats import LengthSummary

REPO = Path(__file__).resolve().parents[1]


def scenario_data(name: str) -> dict:
    return yaml.safe_load((REPO / "scenarios" / name).read_text(encoding="utf-8"))


def test_hops_of_one_name_that_are_different_links_may_differ() -> None:
    # a source NIC is one link per source instance: the A100s' and the 4090s' are not one
    data = scenario_data("tiered-gpu.yaml")
    paths = data["interconnect"]["paths"]
    paths[0]["hops"][0]["name"] = paths[1]["hops"][1]["name"] = "src-nic"
    hetsim.scenario_from_dict(data, path=REPO / "scenarios" / "tiered-gpu.yaml")
    for path in paths:  # a path-scoped hop is one link per path
        path["hops"][0].update(name="per-path", shared_by="path")
    hetsim.scenario_from_dict(data, path=REPO / "scenarios" / "tiered-gpu.yaml")


def test_a_heavy_tail_clipped_above_its_median_is_a_distribution() -> None:
    # mean 300 above max 256, but the median (~95) is below it: a quarter of lengths clip
    sc = hetsim.load_scenario(
        "scenarios/qwen3-32b-4p4d.yaml",
        ["workload.synthetic.output_tokens={dist: lognormal, mean: 300, cv: 3, min: 1, max: 256}"],
    )
    assert sc.spec.workload.synthetic.output_tokens.max == 256


def test_more_clients_in_a_goodput_search_pose_no_new_context_problem() -> None:
    data = scenario_data("closed-loop-llama70b-h200.yaml")
    data["workload"]["closed_loop"]["input_tokens"] = {"dist": "lognormal", "mean": 12000, "cv": 1}
    sc = hetsim.scenario_from_dict(data, path=REPO / "scenarios" / "closed-loop-llama70b-h200.yaml")
    for clients in (128, 1024):  # sends more requests: the tail check must not change with them
        with_concurrency(sc, clients, 10)


def test_empirical_lengths_ignore_the_trace_arrival_gaps(tmp_path: Path) -> None:
    (tmp_path / "lens.csv").write_text("t,inp,out\n0,100,10\n1,200,20\n2000000,300,30\n")
    data = scenario_data("qwen3-32b-6p2d.yaml")
    columns = {"arrival": "t", "input_tokens": "inp", "output_tokens": "out"}
    trace = {"format": "csv", "path": "lens.csv", "columns": columns}
    data["workload"]["synthetic"]["input_tokens"] = {"dist": "empirical", "trace": trace}
    data["workload"]["synthetic"]["output_tokens"] = {"dist": "empirical", "trace": trace}
    sc = hetsim.scenario_from_dict(data, path=tmp_path / "emp.yaml")
    assert hetsim.simulate(sc, max_requests=10, sample_interval=None).summary.requests == 10


def test_fault_dropping_and_length_summaries_take_what_they_took_before() -> None:
    data = scenario_data("qwen3-32b-6p2d.yaml")  # no faults section at all
    assert drop_absent_faults(data) == ()
    assert LengthSummary.of(np.array([1.5, 2.5])).total == 4


def test_measured_tables_a_pool_does_not_read_need_not_exist(tmp_path: Path) -> None:
    # only a pool with `runtime:` reads them (an end-to-end calibrated copy keeps the field)
    profile = yaml.safe_load((REPO / "hardware_profiles" / "nvidia-h200-sxm.yaml").read_text())
    profile.update(name="myh200", measured_tables="missing.npz")
    (tmp_path / "myh200.yaml").write_text(yaml.safe_dump(profile))
    data = scenario_data("qwen3-32b-colocated.yaml")
    data["pools"][0]["accelerator"] = "myh200.yaml"
    hetsim.scenario_from_dict(data, path=tmp_path / "s.yaml")
    data["pools"][0]["runtime"] = "vllm"
    with pytest.raises(hetsim.InputError, match="measured_tables file that does not exist"):
        hetsim.scenario_from_dict(data, path=tmp_path / "s.yaml")
