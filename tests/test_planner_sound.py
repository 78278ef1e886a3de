"""A sound search: the planner prunes only on proofs (capacity bounds, one simulation at the
rate needed to tie), so it finds what brute force finds; the scenario's own deployment is always
judged and reported; a goodput search says whether it converged; ties within the rate grid's
step are reported and broken as stated."""

import math

import pytest

import hetsim
from hetsim.planner.capacity import PoolCosts
from hetsim.planner.goodput import RateGrid, convergence
from hetsim.planner.objective import Objective
from hetsim.planner.pruning import judge_unsimulated, search_task
from hetsim.planner.results import CandidateResult, tie_floor
from hetsim.planner.sample import WorkloadSample
from hetsim.planner.search import TIE_BREAK, _Search, plan
from hetsim.planner.space import enumerate_candidates
from hetsim.planner.verdict import Verdict

DEFAULT = "scenarios/cphd-glm51.yaml"

# the default scenario's space cut to its own deployment (C600 prefill + H200 decode) and the
# colocated baselines on either accelerator, with a short workload (short outputs: few decode
# steps) so that brute force and the planner together take a few seconds
REDUCED = [
    "search.prefill.accelerators=[metax-c600]",
    "search.prefill.instances=[2]",
    "search.prefill.precision=[w8a8]",
    "search.decode.accelerators=[nvidia-h200-sxm]",
    "search.decode.instances=[2]",
    "search.decode.kv=[fp8_e4m3]",
    "search.lifecycle=[pull]",
    "search.max_requests=60",
    "search.rel_tol=0.25",
    "workload.warmup_requests=20",
    "workload.synthetic.output_tokens.mean=64",
    "workload.synthetic.output_tokens.max=256",
]


@pytest.fixture(scope="module")
def reduced():
    scenario = hetsim.load_scenario(DEFAULT, REDUCED)
    return plan(scenario, workers=1), plan(scenario, workers=1, exhaustive=True)


def test_planner_finds_the_exhaustive_best_on_the_default_space(reduced):
    planned, brute = reduced
    assert brute.best is not None and planned.best is not None
    assert planned.best.id == brute.best.id
    assert planned.best.objective == brute.best.objective


def test_the_scenarios_own_deployment_is_searched_and_reported(reduced):
    planned, _ = reduced
    own = planned.own
    assert own is not None and own.candidate.own
    # the scenario's pools as written: 2x C600 w8a8 prefill, 2x H200 fp8 decode, pull
    assert own.candidate.roles["prefill"].accelerator == "metax-c600"
    assert own.candidate.roles["decode"].instances == 2
    assert own.candidate.protocol == "pull"
    assert own.points and own.goodput > 0  # simulated in full, not pruned
    assert own.verdict in (Verdict.RECOMMENDED, Verdict.RANKED, Verdict.FAILS_SLA)
    assert own.reason
    d = planned.to_dict()["own_deployment"]
    assert d["id"] == own.id and d["verdict"] == own.verdict.value and d["goodput"] == own.goodput
    frame = planned.to_frame()
    assert frame.loc[frame["own_deployment"], "id"].tolist() == [own.id]


def test_every_search_says_whether_it_converged(reduced):
    planned, brute = reduced
    for r in brute.results:
        assert r.converged is not None, r.label
        assert r.converged == (r.not_converged is None), r.label
    for r in planned.results:
        if r.verdict is Verdict.BEATEN and r.points:  # one simulation, then stopped
            assert (r.converged, r.not_converged) == (False, "stopped early")
    assert planned.best.converged is True
    assert "converged" in planned.to_frame().columns


def test_own_deployment_in_the_space_is_marked_not_duplicated():
    scenario = hetsim.load_scenario(DEFAULT)
    candidates = enumerate_candidates(scenario)
    own = [c for c in candidates if c.own]
    assert len(own) == 1 and not own[0].added
    assert own[0].label == (
        "P 2x metax-c600 tp8 w8a8 kv bf16 | D 2x nvidia-h200-sxm tp8 ep8 fp8 kv fp8_e4m3 | "
        "wire fp8_e4m3 pull | net as written"  # the scenario's own links among the alternatives
    )


def test_own_deployment_outside_the_space_is_added():
    scenario = hetsim.load_scenario(
        DEFAULT, ["search.prefill.accelerators=[nvidia-h200-sxm]", "search.colocated=false"]
    )
    candidates = enumerate_candidates(scenario)
    own = [c for c in candidates if c.own]
    assert len(own) == 1 and own[0].added and own[0].id == len(candidates) - 1
    assert own[0].roles["prefill"].accelerator == "metax-c600"
    assert own[0].scenario is not None  # the scenario's own pools validate


def test_an_estimate_below_the_best_no_longer_prunes_what_its_bound_allows():
    """The issue's case: the queueing estimate of C600 2P:3D (0.51 req/s) is far under the
    colocated H200 best even with the old 1.5x margin, but its capacity bound is not, so it
    gets one simulation at the rate needed to tie rather than being discarded."""
    scenario = hetsim.load_scenario(DEFAULT)
    c = next(
        c
        for c in enumerate_candidates(scenario)
        if c.label.startswith("P 2x metax-c600 tp8 w8a8 kv bf16 | D 3x nvidia-h200-sxm")
        and c.protocol == "pull"
        and c.roles["decode"].kv == "fp8_e4m3"
    )
    search = scenario.spec.search
    r = judge_unsimulated(c, scenario, search, WorkloadSample.of(scenario), PoolCosts(), False)
    assert r.verdict is Verdict.PENDING
    best = CandidateResult(c, Verdict.RANKED, objective=66.43, cost_per_hour=96.0)
    objective = Objective.GOODPUT_PER_DOLLAR
    estimate = objective.score(r.screen.estimate, c.devices, r.cost_per_hour)
    bound = objective.score(r.screen.rate_bound, c.devices, r.cost_per_hour)
    assert estimate * 1.5 < 66.43 < bound  # the old rule pruned it; the bound cannot
    task = search_task(r, best, objective, search.min_rate, search.rel_tol, exhaustive=False)
    assert isinstance(task, dict)
    # the rate to tie 66.43 req/$ within the 10% grid step at its price
    assert task["must_reach"] == pytest.approx(66.43 / 1.1 * r.cost_per_hour / 3600, rel=1e-6)


def _ranked(c, goodput: float, cost: float) -> CandidateResult:
    return CandidateResult(
        c,
        Verdict.RANKED,
        "",
        cost_per_hour=cost,
        goodput=goodput,
        objective=Objective.GOODPUT_PER_DOLLAR.score(goodput, c.devices, cost),
    )


def test_a_tie_within_the_grid_step_is_reported_and_broken_by_price():
    """66.43 req/$ (1.772 req/s, a grid rate, at $96/h) and 64.20 req/$ at $80/h are 3.5%
    apart on a 10% grid: a tie, which the cheaper wins. A third at $96/h one full grid step
    lower (1.611 req/s: 60.39 req/$) met the SLA where the best did not: no tie."""
    scenario = hetsim.load_scenario(DEFAULT)
    a, b, c = enumerate_candidates(scenario)[4:7]
    state = _Search(scenario, scenario.spec.search, None, lambda counts: None)
    grid = RateGrid(0.1)
    state.results = {
        a.id: _ranked(a, grid.rate(6), 96.0),
        b.id: _ranked(b, 64.20 * 80 / 3600, 80.0),
        c.id: _ranked(c, grid.rate(5), 96.0),
    }
    assert state.results[a.id].objective == pytest.approx(66.4335, abs=1e-4)
    best = state.recommend()
    assert best is not None and best.id == b.id  # the cheaper of the tie
    assert best.verdict is Verdict.RECOMMENDED
    assert best.reason.startswith(f"tie for the best requests per $ with #{a.id} (66.43)")
    assert TIE_BREAK in best.reason
    assert state.results[a.id].tie and state.results[b.id].tie
    assert not state.results[c.id].tie


def test_convergence_of_hand_made_searches():
    grid = RateGrid(0.1)

    def pt(k: int, meets: bool) -> dict:
        return {"rate": grid.rate(k), "meets": meets}

    assert convergence([pt(3, True), pt(4, False)], 0.1) == (True, None)
    # a pass and a fail two steps apart: the bisection ran out of simulations
    assert convergence([pt(3, True), pt(5, False)], 0.1, max_evaluations=2) == (
        False,
        "max simulations",
    )
    assert convergence([pt(3, True)], 0.1, at_limit=True) == (False, "at_limit")
    assert convergence([pt(3, False)], 0.1, beaten_at=grid.rate(3)) == (False, "stopped early")
    assert convergence([pt(3, False), pt(1, False)], 0.1) == (False, "below floor")
    # a closed loop failing at one client has goodput 0 exactly
    assert convergence([{"concurrency": 1, "meets": False}], 0.1) == (True, None)
    assert not math.isnan(tie_floor(1.0, 0.1))
