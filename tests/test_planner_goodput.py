"""Goodput by rate bisection (the planner's inner loop)."""

import pytest

import hetsim
from hetsim.planner import goodput, with_rate
from hetsim.simulation import simulate


def small():
    return hetsim.load_scenario(
        "scenarios/qwen3-32b-colocated.yaml",
        ["workload.synthetic.requests=200", "pools.serve.instances=2"],
    )


def test_goodput_brackets_the_sla():
    sc = small()
    result = goodput(sc, rel_tol=0.1)
    assert result.rate > 0
    target = sc.spec.sla.attainment
    at = simulate(with_rate(sc, result.rate)).summary.attainment
    above = simulate(with_rate(sc, result.rate * 1.1)).summary.attainment
    assert at >= target > above
    assert result.attainment == pytest.approx(at)
    assert result.per_dollar == pytest.approx(result.rate / sc.cost_per_hour())


def test_more_instances_serve_more():
    one = goodput(
        hetsim.load_scenario(
            "scenarios/qwen3-32b-colocated.yaml",
            ["workload.synthetic.requests=200", "pools.serve.instances=1"],
        ),
        rel_tol=0.1,
    )
    two = goodput(small(), rel_tol=0.1)
    assert two.rate > one.rate


def test_a_hopeless_sla_has_zero_goodput():
    sc = hetsim.load_scenario(
        "scenarios/qwen3-32b-colocated.yaml",
        ["workload.synthetic.requests=50", "sla.ttft=1 ms"],
    )
    result = goodput(sc, max_evaluations=6)
    assert result.rate == 0.0
    assert all(a < sc.spec.sla.attainment for _, a in result.evaluations)


def test_goodput_does_not_depend_on_where_the_search_starts():
    """Rates lie on a fixed grid, so an estimate that is off only costs simulations."""
    sc = small()
    low = goodput(sc, rel_tol=0.1, start=0.5)
    high = goodput(sc, rel_tol=0.1, start=40.0)
    assert low.rate == pytest.approx(high.rate)
    assert low.rate > 0


def test_must_reach_stops_after_one_simulation_when_missed():
    sc = small()
    full = goodput(sc, rel_tol=0.1)
    beaten = goodput(sc, rel_tol=0.1, must_reach=full.rate * 1.5)
    assert beaten.rate == 0.0 and beaten.beaten_at is not None
    assert len(beaten.evaluations) == 1
    reached = goodput(sc, rel_tol=0.1, must_reach=full.rate / 1.5)
    assert reached.rate == pytest.approx(full.rate)
