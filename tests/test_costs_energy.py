"""One price basis per scenario (profiles say theirs, tco converts to rental and back), one
definition per cost metric, and device energy: hand-computed values."""

from pathlib import Path

import pytest
import yaml

import hetsim
from hetsim.errors import InputError
from hetsim.metrics import (
    EnergyFigures,
    PoolUtilisation,
    requests_per_kwh,
    requests_per_usd,
    tokens_per_joule,
    usd_per_million_tokens,
)
from hetsim.planner import Objective
from hetsim.planner.search import plan
from hetsim.spec.hardware import PRICE_BASES, available_profiles, load_profile
from hetsim.spec.scenario import DEFAULT_TCO_MARGIN, CostsSpec

PROFILES = Path(__file__).resolve().parent.parent / "hardware_profiles"


@pytest.mark.parametrize("name", sorted(available_profiles()))
def test_every_profile_states_its_price_basis_and_power(name):
    p = load_profile(name)
    assert p.price_basis is not None and p.basis in PRICE_BASES
    assert p.price_basis.includes
    assert p.tdp.value > 0  # the power energy is computed on
    if p.basis == "tco":  # its inputs re-derive the price its note argues for
        assert p.price_basis.tco.per_hour == pytest.approx(p.price, rel=0.02)


def test_a_tco_price_is_its_inputs_and_converts_to_rental_with_the_margin():
    c600 = load_profile("metax-c600")
    # CNY 100k = $14.1k x 1.5 server share over 4 years at 70%, plus 0.55 kW x 2 at $0.10/kWh
    assert c600.price_basis.tco.per_hour == pytest.approx(21150 / (4 * 8760 * 0.7) + 0.11)
    assert c600.price_on("tco", 0.5) == 0.97
    assert c600.price_on("rental", 0.5) == pytest.approx(1.455)  # 0.97 x 1.5
    assert DEFAULT_TCO_MARGIN == 0.5
    assert CostsSpec().device_price(c600) == pytest.approx(1.455)  # rental is the default
    h200 = load_profile("nvidia-h200-sxm")
    assert CostsSpec(basis="tco").device_price(h200) == pytest.approx(4.0 / 1.5)
    assert CostsSpec(basis="tco", tco_margin=1.0).device_price(h200) == pytest.approx(2.0)
    assert CostsSpec(basis="tco").device_price(c600) == 0.97  # already on the basis


def test_scenario_prices_are_on_its_basis_and_the_line_names_each_conversion():
    c600, h200 = load_profile("metax-c600"), load_profile("nvidia-h200-sxm")
    costs = CostsSpec(prices={"metax-c600": "$1.20/h"})
    assert costs.device_price(c600) == 1.2  # a scenario's own price is not converted
    assert costs.basis_line([c600, h200]) == (
        "prices on a rental basis; from costs.prices: metax-c600"
    )
    assert CostsSpec().basis_line([c600, h200]) == (
        "prices on a rental basis; converted: metax-c600 tco $0.97/h x (1 + 50% margin) = "
        "rental $1.46/h (costs.tco_margin, an assumption)"
    )
    assert "nvidia-h200-sxm rental $4.00/h / (1 + 50% margin) = tco $2.67/h" in CostsSpec(
        basis="tco"
    ).basis_line([c600, h200])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"price_basis": None}, ("price_basis is required", "rental or a tco")),
        ({"price_basis": {"basis": "tco", "includes": "x"}}, ("needs price_basis.tco",)),
        ({"price_basis": {"basis": "lease", "includes": "x"}}, ("price_basis.basis", "'rental'")),
        (
            {"price_per_hour": {"value": "$2.00/h", "confidence": "assumption", "note": "x"}},
            ("price_per_hour 2.000", "0.972"),
        ),
    ],  # fmt: skip
)
def test_a_profile_price_without_a_sound_basis_is_refused(tmp_path, change, expected):
    data = yaml.safe_load((PROFILES / "metax-c600.yaml").read_text())
    data.update(change, name="bad-price")
    if data["price_basis"] is None:
        del data["price_basis"]
    path = tmp_path / "bad-price.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        load_profile(str(path))
    assert "bad-price.yaml" in str(err.value)
    for text in expected:
        assert text in str(err.value)


def test_a_scenario_basis_outside_rental_and_tco_is_refused():
    with pytest.raises(InputError) as err:
        hetsim.load_scenario("tests/data/plan-small.yaml", ["costs.basis=lease"])
    for text in ("plan-small.yaml", "costs.basis", "lease", "'rental' or 'tco'"):
        assert text in str(err.value)


def test_each_cost_and_energy_metric_has_one_hand_checked_definition():
    assert usd_per_million_tokens(3.6, 1000.0) == pytest.approx(1.0)  # $0.001/s over 1000 tok/s
    assert usd_per_million_tokens(3.6, 0.0) is None
    assert requests_per_usd(2.0, 7.2) == pytest.approx(1000.0)  # 7200 req/h for $7.2
    assert requests_per_kwh(2.0, 1000.0) == pytest.approx(7200.0)  # 7200 req/h for 1 kWh
    assert tokens_per_joule(500.0, 250.0) == 2.0 and tokens_per_joule(1.0, 0.0) is None
    assert Objective.GOODPUT_PER_DOLLAR.score(2.0, 4, 7.2) == requests_per_usd(2.0, 7.2)


def test_energy_is_busy_weighted_board_power_over_the_span():
    util = {
        "prefill": PoolUtilisation(busy=0.5, instances=1, peak_kv=0, held_block_s=0,
                                   reserved_block_s=0),
        "decode": PoolUtilisation(busy=1.0, instances=2, peak_kv=0, held_block_s=0,
                                  reserved_block_s=0),
    }  # fmt: skip
    e = EnergyFigures.of(util, {"prefill": 1000.0, "decode": 400.0}, 0.3, 10.0, 13_400.0)
    # prefill 1000 x (0.3 + 0.7 x 0.5) = 650 W; decode 400 x 1.0 = 400 W
    assert e.per_pool_w == pytest.approx({"prefill": 650.0, "decode": 400.0})
    assert e.full_power_w == 1400.0
    assert e.energy_j == pytest.approx(10_500.0)  # 1050 W for 10 s
    assert e.tokens_per_joule == pytest.approx(13_400.0 / 10_500.0)


def test_the_energy_objective_ranks_by_requests_per_kwh_and_needs_the_power():
    e = Objective.ENERGY
    assert e.unit == "requests per kWh" and e.short_unit == "req/kWh"
    frugal = e.score(2.0, devices=2, cost_per_hour=8.0, power_w=1000.0)  # 7200 req/kWh
    fast = e.score(3.0, devices=4, cost_per_hour=4.0, power_w=2000.0)  # 5400 req/kWh
    assert frugal == pytest.approx(7200.0) and fast == pytest.approx(5400.0)
    assert frugal > fast  # the other way round per dollar
    assert Objective.GOODPUT_PER_DOLLAR.score(2.0, 2, 8.0) < Objective.GOODPUT_PER_DOLLAR.score(
        3.0, 4, 4.0
    )
    assert e.rate_for(frugal, 2, 8.0, power_w=1000.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="needs the deployment's power"):
        e.score(2.0, 2, 8.0)


@pytest.fixture(scope="module")
def planned():
    scenario = hetsim.load_scenario(
        "tests/data/plan-small.yaml", ["workload.synthetic.requests=200"]
    )
    return plan(scenario, workers=1)


def test_plan_prices_tokens_and_requests_at_the_goodput(planned):
    best = planned.best
    s = best.summary
    row = best.row()
    per_request = s.throughput_tokens_per_s * s.span_s / s.completed
    assert row["requests_per_dollar"] == pytest.approx(best.goodput * 3600 / best.cost_per_hour)
    assert row["cost_per_million_tokens"] == pytest.approx(
        best.cost_per_hour / 3600 / (best.goodput * per_request) * 1e6
    )
    # the run's own figure is over its finite span, by the same definition
    assert s.cost_per_million_tokens == pytest.approx(
        usd_per_million_tokens(s.cost_per_hour, s.throughput_tokens_per_s)
    )
    roles = best.candidate.roles.values()
    assert row["power_w"] == sum(r.devices * load_profile(r.accelerator).tdp.value for r in roles)
    assert row["requests_per_kwh"] == pytest.approx(best.goodput * 3.6e6 / row["power_w"])
    assert planned.to_dict()["price_basis"] == "prices on a rental basis"


# ---- end to end (needs the wiring in resolve.py, simulation.py, search.py, pruning.py) --------


def _simulated(*overrides):
    from hetsim.simulation import simulate

    scenario = hetsim.load_scenario(
        "tests/data/plan-small.yaml",
        ["workload.synthetic.requests=100", "pools.0.accelerator=metax-c600", *overrides],
    )
    return scenario, simulate(scenario).summary


def test_a_mixed_deployment_is_priced_on_one_basis_and_says_so():
    scenario, s = _simulated()
    assert scenario.cost_per_hour() == pytest.approx(0.97 * 1.5 + 3.00)  # C600 tco → rental
    assert s.cost_per_hour == scenario.cost_per_hour()
    assert "metax-c600 tco $0.97/h x (1 + 50% margin) = rental $1.46/h" in s.price_basis
    assert s.to_json()["price_basis"] == s.price_basis
    scenario, s = _simulated("costs.basis=tco")
    assert s.cost_per_hour == pytest.approx(0.97 + 3.00 / 1.5)  # H100 rental → tco
    assert s.price_basis.startswith("prices on a tco basis; converted: nvidia-h100-sxm rental")


def test_a_run_reports_its_energy_and_tokens_per_joule():
    _, s = _simulated("costs.idle_power=0.2")
    busy = {k: u.busy for k, u in s.utilisation.items()}
    power = 550 * (0.2 + 0.8 * busy["prefill"]) + 700 * (0.2 + 0.8 * busy["decode"])
    assert s.energy.power_w == pytest.approx(power)
    assert s.energy.energy_j == pytest.approx(power * s.span_s)
    assert s.energy.tokens_per_joule == pytest.approx(s.throughput_tokens_per_s / power)
    assert s.to_json()["energy"]["tokens_per_joule"] == s.energy.tokens_per_joule


def test_a_plan_can_maximise_requests_per_kwh():
    scenario = hetsim.load_scenario(
        "tests/data/plan-small.yaml",
        ["workload.synthetic.requests=200", "search.objective=energy"],
    )
    result = plan(scenario, workers=1)
    ranked = [r.row() for r in result.ranked]
    assert result.objective is Objective.ENERGY and ranked
    # the most requests per kWh wins, or one tied with it within the goodput grid's step
    top = max(r["requests_per_kwh"] for r in ranked)
    assert ranked[0]["objective"] == top or ranked[0]["tie"]
    for r in ranked:
        assert r["objective"] == pytest.approx(r["goodput"] * 3.6e6 / r["power_w"])
