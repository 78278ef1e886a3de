"""A search section that leaves nothing to simulate is bad input (exit 2, naming the field),
not a plan whose candidates all missed the SLA (exit 1)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.planner.search import plan

SMALL = "tests/data/plan-small.yaml"


def small(*overrides: str) -> hetsim.Scenario:
    return hetsim.load_scenario(SMALL, ["workload.synthetic.requests=50", *overrides])


def test_an_inventory_of_zero_names_the_inventory_field() -> None:
    sc = small("search.inventory={nvidia-h100-sxm: 0, nvidia-h20: 0}")
    with pytest.raises(InputError) as info:
        plan(sc, workers=1)
    err = info.value
    # every prefill candidate is on H100s, so the H100 limit screens the most candidates
    assert err.field == "search.inventory.nvidia-h100-sxm"
    assert err.value == 0
    assert "at least 1" in err.allowed
    assert err.file == str(sc.path)


def test_a_budget_below_every_candidate_names_the_budget_and_the_cheapest() -> None:
    sc = small("search.budget_per_hour=0.5 $/h")
    with pytest.raises(InputError) as info:
        plan(sc, workers=1)
    assert info.value.field == "search.budget_per_hour"
    assert info.value.value == 0.5
    assert "the cheapest candidate" in info.value.allowed


def test_a_space_without_a_valid_candidate_names_the_search_and_the_reason() -> None:
    # 3 divides none of Llama-3.1-8B's 32 attention heads
    sc = small("search.prefill.tp=[3]", "search.decode.tp=[3]", "search.colocated=false")
    with pytest.raises(InputError) as info:
        plan(sc, workers=1)
    assert info.value.field == "search"
    assert "none of the 16 candidates" in info.value.message
    assert "tp must divide the 32 attention heads" in info.value.message


def test_cli_ends_in_the_input_error_without_the_sla_verdict() -> None:
    # CliRunner calls the app without `main`, which turns an InputError into exit 2
    result = CliRunner().invoke(
        app,
        ["plan", SMALL, "--workers", "1", "--set", "workload.synthetic.requests=50",
         "--set", "search.inventory={nvidia-h100-sxm: 0, nvidia-h20: 0}"],
    )  # fmt: skip
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == "search.inventory.nvidia-h100-sxm"
    assert "No candidate meets the SLA" not in result.output
    assert "Traceback" not in result.output


def test_a_free_device_under_goodput_per_dollar_names_its_price() -> None:
    # requests per dollar of a $0/h device are infinite: the plan crashed ranking them
    sc = small("costs.prices={nvidia-h20: $0/h}")
    with pytest.raises(InputError) as info:
        plan(sc, workers=1)
    assert info.value.field == "costs.prices.nvidia-h20"
    assert "objective: goodput" in info.value.allowed
    # the suggested min_rate is one the scenario accepts
    sc = small("search.objective=cheapest_for_rate")
    with pytest.raises(InputError) as info:
        plan(sc, workers=1)
    example = info.value.allowed.split("e.g. ")[1]
    assert hetsim.load_scenario(
        SMALL, [example.replace(": ", "=", 1).replace("min_rate", "search.min_rate")]
    )
