"""Schema errors name every problem of a scenario at once, one numbered line each, and a
problem is counted once however pydantic splits it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetsim.errors import InputError
from hetsim.spec.resolve import load_scenario

BASE = Path(__file__).resolve().parents[1] / "scenarios" / "qwen3-32b-6p2d.yaml"


def error(*overrides: str) -> str:
    with pytest.raises(InputError) as info:
        load_scenario(BASE, list(overrides))
    return str(info.value)


def test_independent_problems_are_all_listed_with_path_value_and_allowed() -> None:
    text = error("pools.prefill.instance=3", "pools.decode.kv_layout=NDH", "sla.percentile=150")
    lines = text.splitlines()
    assert lines[0] == f"{BASE}: 3 problems:"
    # the unknown key first, then the others in document order
    assert lines[1].startswith("  1. pools[0].instance: unknown key (did you mean 'instances'?)")
    assert lines[2].startswith("  2. pools[1].kv_layout: not one of the allowed values")
    assert "(got 'NDH'); allowed: 'NHD' or 'HND'" in lines[2]
    assert lines[3].startswith("  3. sla.percentile: ") and "(got 150)" in lines[3]
    assert len(lines) == 4


def test_a_misspelt_key_is_one_problem_not_also_the_missing_field() -> None:
    text = error("sla={ttfts: 2 s, tpot: 50 ms}")
    assert "\n" not in text
    assert "sla.ttfts: unknown key (did you mean 'ttft'?)" in text


def test_a_value_fitting_no_type_of_a_union_is_one_problem() -> None:
    text = error("kv.conversions=[{kind: dtype, from: [1], where: consumer}]")
    assert "\n" not in text
    assert "kv.conversions[0].from: Input should be a valid string, or input should be a " in text
