"""The analytic screen: its numbers, its per-session cache keyed by value, and the prefill
packing rule it shares with the simulator."""

import math

import numpy as np
import pytest

import hetsim
from hetsim.perf.step import step_model_for_pool
from hetsim.planner.capacity import PoolCosts, _best_mixture, _meeting_token_time
from hetsim.planner.screen import WorkloadSample, screen
from hetsim.planner.space import enumerate_candidates
from hetsim.sim.scheduler import prefill_chunks

PLAN_SMALL = "tests/data/plan-small.yaml"


def _packing(running, waiting, budget=8192, chunk=2048, seqs=4):
    return prefill_chunks(running, waiting, token_budget=budget, chunk=chunk, max_seqs=seqs)


def test_running_prompts_continue_a_chunk_each_before_waiting_ones_join():
    assert _packing([5000, 100], [3000, 9000]) == ([2048, 100, 2048, 2048], 2)


def test_a_spent_budget_serves_a_prefix_of_the_running_and_admits_nobody():
    assert _packing([3000, 3000, 3000], [100], budget=4096, chunk=4096) == ([3000, 1096], 0)


def test_waiting_prompts_join_only_while_seats_are_free_and_are_read_lazily():
    pulled = []

    def waiting():
        for n in (10, 20, 30):
            pulled.append(n)
            yield n

    assert _packing([50], waiting(), seqs=3) == ([50, 10, 20], 2)
    assert pulled == [10, 20]  # the third was never asked for: the caller may stop there


def _bare(prompt: int, *overrides: str):
    """plan-small with fixed prompts of ``prompt`` tokens and 64-token outputs."""
    return hetsim.load_scenario(
        PLAN_SMALL,
        [
            f"workload.synthetic.input_tokens={prompt}",
            "workload.synthetic.output_tokens=64",
            "search.colocated=false",
            *overrides,
        ],
    )


def _first(scenario):
    return next(c.scenario for c in enumerate_candidates(scenario) if c.scenario is not None)


def test_prefill_bound_is_the_packed_steps_by_hand():
    """One H100 prefill instance, 8192-token budget, no chunk size: 4096-token prompts go two
    to a step; a 16384-token prompt takes two steps of 8192, the second over 8192 cached."""
    for prompt in (4096, 16384):
        sc = _first(_bare(prompt))
        pool = next(p for p in sc.spec.pools if p.role == "prefill")
        sm = step_model_for_pool(sc.model, sc.profiles[pool.name], pool)
        if prompt == 4096:
            by_hand = 2 / sm.step_time(np.array([4096, 4096]), np.array([0, 0]))
        else:
            by_hand = 1 / (
                sm.step_time(np.array([8192]), np.array([0]))
                + sm.step_time(np.array([8192]), np.array([8192]))
            )
        result = screen(sc, WorkloadSample.of(sc))
        assert result.bounds["prefill compute"] == pytest.approx(by_hand, rel=1e-12)


def test_a_second_screen_in_the_same_process_gets_its_own_workloads_bounds():
    """The bug: caches keyed by id(sample) gave a 16K-prompt workload the prefill bound of a
    4K-prompt one screened before it, once CPython reused the freed sample's address (as a
    second ``hetsim.plan`` in a notebook does)."""
    short, long = _first(_bare(4096)), _first(_bare(16384))
    alone = screen(long, WorkloadSample.of(long)).bounds["prefill compute"]
    arrays = WorkloadSample.of(long)
    arrays = (arrays.input.copy(), arrays.output.copy(), arrays.cached.copy())
    first = WorkloadSample.of(short)
    short_bound = screen(short, first).bounds["prefill compute"]
    del first
    second = WorkloadSample(*arrays)  # built at once: it takes the freed sample's address
    assert screen(long, second).bounds["prefill compute"] == alone
    assert short_bound > 3 * alone  # a quarter of the tokens per request, each cheaper
    costs = PoolCosts()  # one session screening both workloads keeps their numbers apart
    assert screen(short, WorkloadSample.of(short), costs).bounds["prefill compute"] == short_bound
    assert screen(long, WorkloadSample.of(long), costs).bounds["prefill compute"] == alone


def test_equal_samples_share_the_sessions_numbers():
    sc = _first(_bare(4096))
    one, two = WorkloadSample.of(sc), WorkloadSample.of(sc)
    assert one is not two and one.digest == two.digest
    assert not one.input.flags.writeable  # the digest stays the content's


# screened before the refactor that moved the packing rule to hetsim.sim.scheduler; the decode
# bound changed meaning since (the TPOT-limited batch became the ceiling any batch can reach) and
# is checked by hand below
GOLDEN = {
    0: {"prefill compute": 19.850771171652926, "link rdma": 143.27527742678518,
        "estimate": 17.563122393654815},
    20: {"prefill compute": 59.552313514958776, "estimate": 36.47006777978703},
}  # fmt: skip


def test_screen_numbers_are_those_of_before_the_refactor():
    scenario = hetsim.load_scenario(PLAN_SMALL)
    sample = WorkloadSample.of(scenario)
    costs = PoolCosts()
    by_id = {c.id: c for c in enumerate_candidates(scenario)}
    for cid, golden in GOLDEN.items():
        result = screen(by_id[cid].scenario, sample, costs)
        assert result.estimate == pytest.approx(golden["estimate"], rel=1e-12)
        bounds = {k: v for k, v in golden.items() if k != "estimate"}
        assert {k: v for k, v in result.bounds.items() if k != "decode"} == pytest.approx(
            bounds, rel=1e-12
        )


def test_decode_bound_with_a_loose_tpot_is_the_full_batch_at_the_shortest_prompt_by_hand():
    """Roofline decode steps make tokens per second rise with the batch, so the ceiling is the
    batch limit (or KV capacity at the shortest prompt) over its step, times instances, over the
    mean output. With a TPOT bound no step reaches, the meeting requests' 90% × 63 gaps each
    cost no more than 64 tokens at the ceiling: the ceiling binds."""
    scenario = _first(_bare(4096))
    decode = next(p for p in scenario.spec.pools if p.role == "decode")
    costs = PoolCosts()
    sm = costs.step_model(scenario, decode)
    sample = WorkloadSample.of(scenario)
    kv_tokens = scenario.footprints[decode.name].kv_capacity_tokens
    batch = min(decode.batching.max_num_seqs, kv_tokens // 4096)
    per_instance = batch / sm.decode_time_from_sum(batch, batch * 4096)
    expected = decode.instances * per_instance / 64
    assert screen(scenario, sample, costs).bounds["decode"] == pytest.approx(expected, rel=1e-12)
    assert screen(_first(_bare(4096, "sla.tpot=10 s")), sample, PoolCosts()).bounds[
        "decode"
    ] == pytest.approx(expected)
    # a bound under the full batch's 21 ms step leaves fewer requests/s, a higher attainment
    # target fewer still
    tight = screen(_first(_bare(4096, "sla.tpot=12 ms")), sample, PoolCosts()).bounds["decode"]
    assert tight < expected
    strict = _first(_bare(4096, "sla.tpot=12 ms", "sla.attainment=0.99"))
    assert screen(strict, sample, PoolCosts()).bounds["decode"] < tight


def test_meeting_tokens_mix_two_batch_sizes_around_the_tpot_bound_by_hand():
    """Per-token step times 1, 1.5, 2, 3 s at batches 1-4 and TPOT 1.75 s: batch 2 alone costs
    0.75 s per meeting token; half the meeting tokens at batch 2 and half at batch 3 average
    1.75 s per step and cost (0.75 + 2/3) / 2 = 17/24 s, the least any mixture costs."""
    assert _meeting_token_time(np.array([1.0, 1.5, 2.0, 3.0]), 1.75) == pytest.approx(17 / 24)
    # a larger batch's faster step is a floor for the smaller batch too (a measured table
    # need not rise with the batch): batch 2 counts as 2 s, batch 3 costs 2/3 s per token
    assert _meeting_token_time(np.array([1.0, 3.0, 2.0]), 2.0) == pytest.approx(2 / 3)
    assert _meeting_token_time(np.array([2.0, 3.0]), 1.0) == math.inf  # no batch meets it


def test_a_plan_sessions_step_models_are_its_own():
    scenario = hetsim.load_scenario(PLAN_SMALL)
    pool = scenario.spec.pools[0]
    costs = PoolCosts()
    mine = costs.step_model(scenario, pool)
    assert costs.step_model(scenario, pool) is mine  # memoised within the plan
    assert PoolCosts().step_model(scenario, pool) is not mine  # another plan starts afresh
    default = step_model_for_pool(scenario.model, scenario.profiles[pool.name], pool)
    assert mine is not default
    assert mine.step_time(np.array([4096]), np.array([0])) == default.step_time(
        np.array([4096]), np.array([0])
    )


def test_best_mixture_of_step_shapes_by_hand():
    """Shapes serving (2, 0.5) and (0.5, 2) times the per-request need of sequences and of
    held context: alone each serves 0.5 requests/s; half of each serves 1.25 of both."""
    assert _best_mixture(np.array([[2.0, 0.5], [0.5, 2.0]])) == pytest.approx(1.25)
    assert _best_mixture(np.array([[2.0, 0.5], [0.5, 2.0], [1.5, 1.5]])) == pytest.approx(1.5)
    assert _best_mixture(np.array([[3.0, 1.0]])) == 1.0
