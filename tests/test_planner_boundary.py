"""A candidate's KV boundary verdict covers every prefill → decode pair, not the first one."""

from __future__ import annotations

import copy
from pathlib import Path

import hetsim
from hetsim.checks import scenario_from_dict
from hetsim.planner.pruning import _boundary
from hetsim.planner.space import Candidate, _declare_conversions

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def test_a_candidate_with_an_identical_and_a_convertible_pair_is_convertible():
    base = hetsim.load_scenario(SCENARIOS / "qwen3-32b-6p2d.yaml")
    data = base.spec.model_dump(by_alias=True, exclude_none=True)
    fp8 = copy.deepcopy(next(p for p in data["pools"] if p["name"] == "decode"))
    fp8.update(name="decode_fp8", precision={**fp8["precision"], "kv": "fp8_e4m3"})
    data["pools"].append(fp8)
    path = copy.deepcopy(data["interconnect"]["paths"][0])
    data["interconnect"]["paths"].append({**path, "to": "decode_fp8"})

    # the first pair (prefill → decode) is identical; the second needs a declared cast
    _declare_conversions(data, base)
    assert [c["to"] for c in data["kv"]["conversions"]] == ["fp8_e4m3"]
    scenario = scenario_from_dict(data, path=base.path)
    candidate = Candidate(0, "disaggregated", {}, None, None, data, scenario)
    assert _boundary(candidate) == "convertible"
