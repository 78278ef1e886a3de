"""The planner: the screen never throws away the best, pruning finds what brute force finds,
the goodput it reports brackets the SLA, and the plan is the same however it is run."""

import json
import math
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.planner.goodput import with_rate
from hetsim.planner.screen import WorkloadSample, screen
from hetsim.planner.search import plan
from hetsim.planner.space import enumerate_candidates

# two small spaces: an 8B model split across H100/H20 (disaggregated vs colocated wins depend
# on KV format and price), and Qwen3-32B on one H100 node with P:D and KV format varied
SPACES = {
    "llama8b-h100-h20": (
        "tests/data/plan-small.yaml",
        ["search.decode.kv=[fp8_e4m3]"],
    ),
    "qwen3-32b-node": (
        "scenarios/qwen3-32b-6p2d.yaml",
        [
            "workload.synthetic.requests=600",
            "search.prefill.instances=[2,4]",
            "search.decode.instances=[1,2]",
            "search.decode.kv=[bf16,fp8_e4m3]",
            "search.colocated=false",
        ],
    ),
}


@pytest.fixture(scope="module", params=sorted(SPACES))
def brute_and_planned(request):
    path, overrides = SPACES[request.param]
    scenario = hetsim.load_scenario(path, overrides)
    brute = plan(scenario, workers=2, exhaustive=True)
    planned = plan(scenario, workers=2)
    return scenario, brute, planned


def test_planner_best_equals_brute_force_best(brute_and_planned):
    _, brute, planned = brute_and_planned
    assert brute.best is not None
    assert planned.best is not None
    assert planned.best.id == brute.best.id
    assert planned.best.goodput == pytest.approx(brute.best.goodput)
    # and it got there with fewer simulations
    assert planned.simulations < brute.simulations


def test_screen_bounds_every_measured_goodput(brute_and_planned):
    """The capacity bound is an upper bound and no candidate that serves traffic is called
    hopeless: the two things the screen relies on to discard without simulating."""
    _, brute, planned = brute_and_planned
    measured = [r for r in brute.results if r.goodput > 0]
    assert measured
    for r in measured:
        assert r.screen is not None and r.screen.hopeless is None, r.label
        assert r.screen.rate_bound >= r.goodput, (r.label, r.screen.bound_by)
    by_id = {r.id: r for r in planned.results}
    assert by_id[brute.best.id].verdict == "recommended"


def test_reported_goodput_brackets_the_sla(brute_and_planned):
    scenario, _, planned = brute_and_planned
    best = planned.best
    sc = best.candidate.scenario
    target = scenario.spec.sla.attainment
    rel_tol = scenario.spec.search.rel_tol
    at = hetsim.simulate(with_rate(sc, best.goodput), sample_interval=None).summary
    above = hetsim.simulate(with_rate(sc, best.goodput * (1 + rel_tol)), sample_interval=None)
    assert at.attainment >= target > above.summary.attainment


def test_every_candidate_has_a_verdict_and_reason(brute_and_planned):
    _, _, planned = brute_and_planned
    frame = planned.to_frame()
    assert set(frame["verdict"]) <= {"recommended", "ranked", "fails_sla", "beaten", "screened",
                                     "invalid"}  # fmt: skip
    assert (frame["reason"].str.len() > 10).all()
    assert (frame["verdict"] == "recommended").sum() == 1


def test_plan_is_the_same_inline_and_in_a_process_pool():
    scenario = hetsim.load_scenario(
        "tests/data/plan-small.yaml", ["workload.synthetic.requests=500"]
    )
    one = plan(scenario, workers=1).to_dict()
    two = plan(scenario, workers=2).to_dict()
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)


def test_cli_plan_writes_outputs(tmp_path):
    out = tmp_path / "plan"
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "tests/data/plan-small.yaml",
            "--set",
            "workload.synthetic.requests=500",
            "--out",
            str(out),
            "--report",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "plan.json").read_text())
    assert data["best"]["goodput"] > 0
    assert data["candidates"][0]["id"] == data["best"]["id"]
    assert data["candidates"][0]["verdict"] == "recommended"
    assert (out / "candidates.csv").read_text().count("\n") == data["all_candidates"] + 1
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "plan.html").read_text()
    assert "data:image/png;base64," in html and "Recommendation" in html


def test_cli_plan_exits_1_with_the_reason_when_nothing_meets_the_sla(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "tests/data/plan-small.yaml",
            "--set",
            "workload.synthetic.requests=300",
            "--set",
            "sla.ttft=20 ms",
        ],  # fmt: skip
    )
    assert result.exit_code == 1
    assert "no deployment meets the SLA" in result.output
    assert "even alone" in result.output  # the zero-load TTFT bound is what fails
    assert "Traceback" not in result.output


def test_inventory_and_budget_screen_with_reasons():
    scenario = hetsim.load_scenario(
        "tests/data/plan-small.yaml",
        [
            "workload.synthetic.requests=300",
            "search.inventory={nvidia-h100-sxm: 2}",
            "search.budget_per_hour=6 $/h",
        ],
    )
    result = plan(scenario, workers=1)
    frame = result.to_frame().set_index("id")
    for r in result.results:
        h100 = r.candidate.devices_by_accelerator.get("nvidia-h100-sxm", 0)
        if h100 > 2:
            assert r.verdict == "screened" and "inventory has 2" in r.reason
        elif r.cost_per_hour > 6:
            assert r.verdict == "screened" and "budget" in r.reason
    assert result.best is None or result.best.cost_per_hour <= 6
    assert len(frame) == len(result.results)


def test_cheapest_for_rate_needs_min_rate():
    cmd = [sys.executable, "-m", "hetsim.cli", "plan", "tests/data/plan-small.yaml"]
    cmd += ["--set", "search.objective=cheapest_for_rate"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "search.min_rate" in result.stderr
    assert "Traceback" not in result.stderr


def test_cheapest_for_rate_picks_the_cheapest_that_serves_it():
    scenario = hetsim.load_scenario(
        "tests/data/plan-small.yaml",
        [
            "workload.synthetic.requests=600",
            "search.objective=cheapest_for_rate",
            "search.min_rate=20 req/s",
            "search.colocated=false",
        ],
    )
    result = plan(scenario, workers=2)
    assert result.best is not None and result.best.goodput >= 20
    cheaper = [r for r in result.results if r.cost_per_hour < result.best.cost_per_hour]
    for r in cheaper:  # each cheaper one was shown not to serve 20 req/s
        assert r.verdict in ("beaten", "fails_sla", "screened"), (r.label, r.verdict)
        assert r.verdict != "beaten" or "min_rate" in r.reason


def test_screen_bound_names_the_binding_resource():
    scenario = hetsim.load_scenario("scenarios/cphd-glm51.yaml")
    sample = WorkloadSample.of(scenario)
    valid = [c for c in enumerate_candidates(scenario) if c.scenario is not None]
    invalid = [c for c in enumerate_candidates(scenario) if c.scenario is None]
    assert invalid and all("does not fit" in c.error for c in invalid if "h20" in c.label)
    results = [screen(c.scenario, sample) for c in valid[:6]]
    for r in results:
        assert r.bound_by in r.bounds and r.rate_bound == min(r.bounds.values())
        assert 0 < r.estimate <= r.rate_bound
        assert not math.isnan(r.zero_load_ttft_s)
