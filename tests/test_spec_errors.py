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


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("pools.decode.instances=yes", "pools[1].instances"),
        ("pools.decode.batching.max_num_seqs=on", "pools[1].batching.max_num_seqs"),
        ("workload.synthetic.requests=true", "workload.synthetic.requests"),
        ("seed=false", "seed"),
        ("pools.decode.memory_utilization=yes", "pools[1].memory_utilization"),
        ("sla.attainment=true", "sla.attainment"),
    ],
)
def test_a_yaml_boolean_is_not_a_number(override: str, field: str) -> None:
    # pydantic's lax mode reads true as 1 (instances: yes ran one instance)
    assert f"{field}: expected a " in error(override)
    assert "not a YAML boolean" in error(override)


def test_a_numeric_string_still_reads_as_its_number() -> None:
    scenario = load_scenario(BASE, ["pools.decode.instances='4'", "pools.prefill.instances=3"])
    assert [p.instances for p in scenario.spec.pools] == [3, 4]
