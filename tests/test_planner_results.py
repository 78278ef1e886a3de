"""The plan's typed results: objectives own their units, verdicts serialise to the strings
plan.json and candidates.csv always held, and the Pareto front is the planner's."""

import dataclasses
import json
import math

import pytest

import hetsim
from hetsim.planner import Objective, Verdict
from hetsim.planner.search import plan


@pytest.fixture(scope="module")
def planned():
    scenario = hetsim.load_scenario(
        "tests/data/plan-small.yaml", ["workload.synthetic.requests=300"]
    )
    return plan(scenario, workers=1)


def test_each_objective_owns_its_unit_and_its_rate_for_a_score():
    assert Objective("goodput_per_dollar").unit == "requests per $"
    assert Objective.GOODPUT_PER_DEVICE.short_unit == "req/s/dev"
    for objective in (
        Objective.GOODPUT,
        Objective.GOODPUT_PER_DEVICE,
        Objective.GOODPUT_PER_DOLLAR,
    ):
        score = objective.score(3.0, devices=4, cost_per_hour=12.0)
        assert objective.rate_for(score, devices=4, cost_per_hour=12.0) == pytest.approx(3.0)
    assert Objective.GOODPUT_PER_DOLLAR.score(3.0, 4, 12.0) == pytest.approx(900.0)  # 3·3600/12
    assert Objective.CHEAPEST_FOR_RATE.score(3.0, 4, 12.0) == -12.0  # cheaper scores higher


def test_verdicts_and_the_objective_serialise_to_their_strings(planned):
    data = json.loads(json.dumps(planned.to_dict()))
    assert data["objective"] == "goodput_per_dollar"
    assert data["objective_unit"] == "requests per $"
    assert list(data["counts"]) == ["recommended", "ranked", "fails_sla", "beaten", "screened",
                                    "invalid"]  # fmt: skip
    frame = planned.to_frame()
    assert set(frame["verdict"]) <= {v.value for v in Verdict}
    assert all(type(v) is str for v in frame["verdict"])


def test_results_are_frozen_and_best_is_one_of_them(planned):
    assert planned.best is not None
    assert any(r is planned.best for r in planned.results)
    assert planned.best.verdict is Verdict.RECOMMENDED
    with pytest.raises(dataclasses.FrozenInstanceError):
        planned.best.verdict = Verdict.RANKED  # type: ignore[misc]


def test_plan_json_lists_the_cost_goodput_pareto_front(planned):
    front = planned.to_dict()["pareto"]
    measured = {r.id: r for r in planned.results if r.goodput > 0}
    assert front and set(front) <= set(measured)
    assert planned.best.id in front  # the most requests per dollar is never dominated
    for i in front:  # nothing measured is both cheaper (or as cheap) and serves more
        r = measured[i]
        assert not any(
            o.cost_per_hour <= r.cost_per_hour and o.goodput > r.goodput for o in measured.values()
        )
    off = [r for r in measured.values() if r.id not in front]
    for r in off:  # and everything off it is dominated by something on it
        assert any(
            measured[i].cost_per_hour <= r.cost_per_hour and measured[i].goodput >= r.goodput
            for i in front
        )
    costs = [measured[i].cost_per_hour for i in front]
    assert costs == sorted(costs) and not any(math.isnan(c) for c in costs)


def test_scores_in_reasons_read_in_plain_digits_with_their_unit():
    from hetsim.planner.objective import Objective

    assert Objective.GOODPUT_PER_DOLLAR.format(16580.3) == "16,580 requests per $"
    assert Objective.GOODPUT_PER_DOLLAR.format(66.434) == "66.43 requests per $"
    assert Objective.GOODPUT.format(0.82614) == "0.8261 req/s"
    assert Objective.CHEAPEST_FOR_RATE.format(-96.0) == "$96.00/h"  # the price, not its negative
