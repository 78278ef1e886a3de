"""The planner's edges: faults a candidate has no target for, a deployment that meets the SLA
at every rate, and settings that would never simulate anything."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.planner.goodput import goodput
from hetsim.planner.search import plan
from hetsim.planner.space import enumerate_candidates

MOONCAKE = "scenarios/trace-mooncake-synthetic.yaml"
ALL_FAULTS = (
    "instance_crash decode[1]",
    "instance_crash prefill[2]",
    "link_down fabric",
    "straggler decode[0]",
)
#: what a colocated deployment has no transfers for (the scenario's faults without a target)
TRANSFER_FAULTS = (
    "lost_notification (a colocated deployment moves no KV between instances)",
    "abort_mid_transfer (a colocated deployment moves no KV between instances)",
)


def test_a_candidate_is_simulated_under_the_faults_whose_targets_it_has() -> None:
    sc = hetsim.load_scenario(
        "scenarios/lifecycle-faults.yaml",
        ["search.decode.instances=[1,4]", "workload.synthetic.requests=50"],
    )
    by_decode = {}
    for c in enumerate_candidates(sc):
        assert c.error is None and c.scenario is not None
        kept = [f"{f.kind} {f.target}" for f in c.scenario.spec.faults.events if f.target]
        assert set(kept).isdisjoint(c.skipped_faults)
        by_decode[(c.kind, c.roles.get("decode") and c.roles["decode"].instances)] = c
    one, four = by_decode[("disaggregated", 1)], by_decode[("disaggregated", 4)]
    assert one.skipped_faults == ("instance_crash decode[1]",)  # decode[0] is still there
    assert four.skipped_faults == ()
    colocated = [c for c in enumerate_candidates(sc) if c.kind == "colocated"]
    assert colocated and all(c.skipped_faults == ALL_FAULTS + TRANSFER_FAULTS for c in colocated)
    # nothing left that could not happen there (lost notifications, aborts: no KV moves)
    assert all(len(c.scenario.spec.faults.events) == 0 for c in colocated)


def always(attainment: float, upto: float = math.inf):
    """A stand-in simulation: ``attainment`` at rates up to ``upto``, 0 above."""
    stats = SimpleNamespace(p50=0.1, p90=0.1, p99=0.1)

    def run(sc):
        rate = sc.spec.workload.synthetic.rate
        return SimpleNamespace(
            attainment=attainment if rate <= upto * (1 + 1e-9) else 0.0,
            ttft_s=stats, tpot_s=stats, ttft_at_sla_percentile_s=0.1,
            tpot_at_sla_percentile_s=0.01, completed=1, failed=0,
        )  # fmt: skip

    return run


@pytest.fixture(scope="module")
def tiny():
    return hetsim.load_scenario(
        "scenarios/qwen3-32b-colocated.yaml", ["workload.synthetic.requests=10"]
    )


def test_met_at_every_rate_stops_at_the_upper_limit(tiny) -> None:
    # grid 1.1^k: the highest rate at or below 5 is 1.1^16 (ln 5 / ln 1.1 = 16.9)
    r = goodput(tiny, start=1.0, high=5.0, rel_tol=0.1, run=always(1.0))
    assert r.at_limit and r.rate == pytest.approx(1.1**16)
    # k = 0, 1, 3, 7, 15, then 31 clipped to 16
    assert [p["rate"] for p in r.points] == pytest.approx([1.1**k for k in (0, 1, 3, 7, 15, 16)])


def test_without_a_high_the_limit_is_a_thousand_times_the_start(tiny) -> None:
    # ln 1000 / ln 1.1 = 72.5: the search ends at 1.1^72 instead of overflowing a float
    r = goodput(tiny, start=1.0, rel_tol=0.1, run=always(1.0))
    assert r.at_limit and r.rate == pytest.approx(1.1**72)


def test_a_deployment_that_stops_below_the_limit_is_not_at_it(tiny) -> None:
    r = goodput(tiny, start=1.0, high=5.0, rel_tol=0.1, run=always(1.0, upto=3.0))
    assert not r.at_limit and r.rate == pytest.approx(1.1**11)  # ln 3 / ln 1.1 = 11.5


def test_plan_reports_a_goodput_at_the_capacity_bound() -> None:
    result = plan(hetsim.load_scenario(MOONCAKE), workers=1, max_requests=100)
    at_limit = [r for r in result.results if r.goodput_at_limit]
    assert at_limit
    for r in at_limit:
        assert r.screen is not None and r.goodput <= r.screen.rate_bound
        assert r.goodput * 1.1 > r.screen.rate_bound  # the last grid rate below the bound
        # a ranked candidate says so in its reason; a tie's reason keeps it as a qualifier
        assert "at every rate searched" in r.reason or "up to its capacity bound" in r.reason
    assert result.to_frame()["goodput_at_limit"].any()


@pytest.mark.parametrize(
    ("option", "value"), [("--top", "-1"), ("--workers", "0"), ("--wave", "0")]
)
def test_plan_settings_that_would_never_simulate_are_input_errors(option, value) -> None:
    out = CliRunner().invoke(app, ["plan", MOONCAKE, "--requests", "10", option, value])
    assert out.exit_code == 2
    assert option in out.output and "Traceback" not in out.output


@pytest.mark.parametrize(
    ("name", "kwargs"), [("--wave", {"wave": 0}), ("--workers", {"workers": 0})]
)
def test_the_api_rejects_them_too(name, kwargs) -> None:
    with pytest.raises(InputError, match=name):
        plan(MOONCAKE, **kwargs)


def test_plan_of_the_faults_scenario_names_the_faults_left_out() -> None:
    out = CliRunner().invoke(
        app, ["plan", "scenarios/lifecycle-faults.yaml", "--requests", "100", "--workers", "1"]
    )
    assert out.exit_code in (0, 1), out.output  # 1: no deployment meets the SLA
    text = " ".join(out.output.split())  # however wide the terminal wraps it
    left_out = ", ".join(ALL_FAULTS + TRANSFER_FAULTS)
    assert "faults: " + left_out + ": not applied to candidate #1" in text
