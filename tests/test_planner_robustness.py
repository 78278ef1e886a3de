"""The plan's break-even factors: how far assumed step times and prices may move before the
recommendation changes (issue #16, item 4)."""

from __future__ import annotations

import math

import pytest

import hetsim
from hetsim.planner.objective import Objective
from hetsim.planner.uncertainty import PRICE_RANGE, STEP_TIME_RANGE, BreakEven, Robustness


@pytest.fixture(scope="module")
def planned():
    # H100 prefill / H20 decode and colocated, 22 simulations (~8 s): several deployments with
    # a measured goodput on different accelerators
    return hetsim.plan(hetsim.load_scenario("tests/data/plan-small.yaml"), workers=1)


def _cost_with(r, accelerator: str, factor: float) -> float:
    """The candidate's $/h with ``accelerator``'s (assumed) price scaled by ``factor``, summed
    pool by pool from the candidate's own scenario."""
    scenario = r.candidate.scenario
    total = r.cost_per_hour
    for pool in scenario.spec.pools:
        if pool.accelerator == accelerator and scenario.price_is_assumption(pool.name):
            part = pool.total_devices * scenario.price_per_device_hour(pool.name)
            total += (factor - 1) * part
    return total


def test_at_a_price_break_even_the_two_candidates_score_the_same(planned):
    robust = planned.robustness()
    by_id = {r.id: r for r in planned.results}
    prices = [b for b in robust.break_even if b.assumption.startswith("price of ")]
    assert prices, "plan-small's assumed prices give no break-even"
    best = planned.best
    for b in prices:
        accelerator = b.assumption.removeprefix("price of ")
        other = by_id[b.overtaken_by]
        best_score = best.goodput * 3600 / _cost_with(best, accelerator, b.factor)
        other_score = other.goodput * 3600 / _cost_with(other, accelerator, b.factor)
        assert best_score == pytest.approx(other_score, rel=1e-9)
        # and at the assumed price the recommendation scored at least as well
        assert best.goodput / best.cost_per_hour >= other.goodput / other.cost_per_hour * 0.9


def test_a_step_time_break_even_is_the_ratio_of_the_scores(planned):
    """Only candidates using the accelerator are slowed: the factor is the score ratio of a
    candidate that uses it and one that does not."""
    robust = planned.robustness()
    by_id = {r.id: r for r in planned.results}
    steps = [b for b in robust.break_even if b.assumption.startswith("step times on ")]
    assert steps
    for b in steps:
        other = by_id[b.overtaken_by]
        ratio = planned.best.objective / other.objective
        assert b.factor == pytest.approx(ratio) or b.factor == pytest.approx(1 / ratio)
        accelerator = b.assumption.removeprefix("step times on ").split(" ")[0]
        uses = [accelerator in {p.accelerator for p in r.candidate.scenario.spec.pools}
                for r in (planned.best, other)]  # fmt: skip
        assert uses[0] != uses[1]


def test_plan_json_and_the_printed_plan_carry_the_verdict(planned, capsys):
    from hetsim.cli import render

    data = planned.to_dict()["robustness"]
    robust = planned.robustness()
    assert data["verdict"] == robust.verdict
    assert [b["factor"] for b in data["break_even"]] == [b.factor for b in robust.break_even]
    render.plan(planned, top=3)
    out = capsys.readouterr().out
    assert f"{robust.verdict}:" in out


def test_fragile_means_a_break_even_inside_the_plausible_range():
    lo, hi = STEP_TIME_RANGE
    inside = BreakEven("step times on x (uncalibrated)", hi, 3, STEP_TIME_RANGE)
    outside = BreakEven("price of y", PRICE_RANGE[1] * 1.01, 4, PRICE_RANGE)
    assert inside.fragile and not outside.fragile
    assert BreakEven("a", lo, 1, STEP_TIME_RANGE).fragile
    assert Robustness((outside,), 2).verdict == "robust"
    assert Robustness((outside, inside), 2).verdict == "fragile"
    assert Robustness((), 0).verdict == "robust"


def test_scores_are_linear_in_the_rate_for_every_rate_objective():
    """The step-time model divides a score by k: true only for objectives proportional to the
    goodput, which every rate objective is."""
    for objective in (
        Objective.GOODPUT,
        Objective.GOODPUT_PER_DEVICE,
        Objective.GOODPUT_PER_DOLLAR,
    ):
        one = objective.score(1.0, 8, 24.0)
        assert objective.score(2.5, 8, 24.0) == pytest.approx(2.5 * one)
    energy = Objective.ENERGY
    assert energy.score(2.5, 8, 24.0, 5600.0) == pytest.approx(2.5 * energy.score(1, 8, 24, 5600))
    assert not math.isnan(energy.score(1, 8, 24, 5600))
