"""The handoff plan is what both ``hetsim check`` and the simulator use; cross-layer checks report
every problem at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hetsim
from hetsim.checks import (
    EfficiencySource,
    check_scenario,
    handoff_plan,
    handoff_plans,
    pool_pairs,
)
from hetsim.errors import InputError
from hetsim.report.describe import describe
from hetsim.sim.engine import Simulation
from hetsim.spec import resolve
from hetsim.workload import RequestChunk

REPO = Path(__file__).resolve().parents[1]
GLM = REPO / "scenarios" / "cphd-glm51.yaml"
QWEN = REPO / "scenarios" / "qwen3-32b-6p2d.yaml"


def one_request(n_in: int) -> list[RequestChunk]:
    return [RequestChunk(np.array([0]), np.array([0.0]), np.array([n_in]), np.array([4]))]


def run_one(scenario: hetsim.Scenario, n_in: int) -> Simulation:
    sim = Simulation(scenario, one_request(n_in))
    sim.run()
    return sim


def carried_by_hop(sim: Simulation, hop: str) -> list[tuple[float, float]]:
    """(bytes carried, bandwidth) of every link the simulator made for ``hop``."""
    return [
        (link.bytes_carried, link.bandwidth)
        for name, link in sim.network.links.items()
        if name == hop or name.startswith(f"{hop}[")
    ]


def test_check_shows_the_bytes_and_hop_bandwidths_the_simulator_moves_over():
    # cphd-glm51: MLA latents read by each of 8 decode TP ranks over a staging hop and two NICs;
    # check used to print one latent copy (44,928 B/token) and the nominal hop bandwidths
    sc = hetsim.load_scenario(GLM, ["workload.warmup_requests=0"])
    plan = handoff_plan(sc, "prefill", "decode")
    tokens = 4096
    sim = run_one(sc, tokens)
    for hop in plan.hops:
        ((carried, bandwidth),) = (x for x in carried_by_hop(sim, hop.name) if x[0] > 0)
        assert carried == pytest.approx(plan.network_bytes(tokens), rel=1e-12)
        assert bandwidth == pytest.approx(hop.effective_bandwidth, rel=1e-12)
    (path,) = describe(sc)["paths"]
    assert path["kv_bytes_per_token"] == plan.network_bytes_per_token == 8 * 44_928
    assert path["kv_bytes_per_token_one_copy"] == 44_928
    assert path["bottleneck_bandwidth"] == min(h.effective_bandwidth for h in plan.hops)
    assert [h["effective_bandwidth"] for h in path["hop_plans"]] == [
        h.effective_bandwidth for h in plan.hops
    ]


def test_lone_transfer_lasts_what_the_plan_says():
    sc = hetsim.load_scenario(GLM, ["workload.warmup_requests=0"])
    plan = handoff_plan(sc, "prefill", "decode")
    row = hetsim.simulate(sc, requests=one_request(4096)).requests.iloc[0]
    assert row["transfer_end_s"] - row["transfer_start_s"] == pytest.approx(
        plan.lone_transfer_s(4096) + plan.consumer_s(4096), rel=1e-9
    )


def test_every_hop_says_where_its_efficiency_comes_from():
    sc = hetsim.load_scenario(QWEN, ["interconnect.paths.0.hops.0.efficiency=0.9"])
    plan = handoff_plan(sc, "prefill", "decode")
    assumed = sc.profiles["prefill"].efficiency.network.value
    first, *rest = plan.hops
    assert (first.efficiency, first.efficiency_source) == (0.9, EfficiencySource.HOP)
    assert first.effective_bandwidth == pytest.approx(0.9 * first.bandwidth)
    for hop in rest:
        assert (hop.efficiency, hop.efficiency_source) == (assumed, EfficiencySource.SOURCE_PROFILE)
    unset = handoff_plan(hetsim.load_scenario(QWEN), "prefill", "decode").hops[0]
    assert unset.efficiency_source is EfficiencySource.SOURCE_PROFILE
    assert unset.effective_bandwidth == pytest.approx(assumed * unset.bandwidth)


def test_simulator_uses_an_efficiency_declared_on_a_hop():
    sc = hetsim.load_scenario(
        GLM, ["workload.warmup_requests=0", "interconnect.paths.0.hops.1.efficiency=0.9"]
    )
    hop = handoff_plan(sc, "prefill", "decode").hops[1]
    sim = run_one(sc, 1024)
    ((_, bandwidth),) = (x for x in carried_by_hop(sim, hop.name) if x[0] > 0)
    assert bandwidth == pytest.approx(hop.effective_bandwidth)


def test_store_moves_one_copy_and_the_network_one_per_decode_rank_that_reads():
    sc = hetsim.load_scenario(GLM)
    plan = handoff_plan(sc, "prefill", "decode")
    assert plan.store_bytes(1000) == 1000 * plan.copy_bytes_per_token == 1000 * 44_928
    assert plan.network_bytes(1000) == 8 * plan.store_bytes(1000)


def test_pairs_are_every_prefill_pool_with_every_decode_pool_and_their_path():
    gpu = "accelerator: nvidia-h100-sxm"
    hop = "kind: nic, bandwidth: 1 GB/s"
    sc = hetsim.load_scenario(
        QWEN,
        [
            f"pools=[{{name: p1, role: prefill, {gpu}}}, {{name: d1, role: decode, {gpu}}},"
            f" {{name: p2, role: prefill, {gpu}}}]",
            f"interconnect.paths=[{{from: p2, to: d1, hops: [{{name: a, {hop}}}]}},"
            f" {{from: p1, to: d1, hops: [{{name: b, {hop}}}]}}]",
        ],
    )
    pairs = pool_pairs(sc.spec)
    assert [(x.producer.name, x.consumer.name, x.path.hops[0].name) for x in pairs] == [
        ("p1", "d1", "b"),
        ("p2", "d1", "a"),
    ]
    assert [(x.producer_index, x.consumer_index) for x in pairs] == [(0, 1), (2, 1)]
    assert list(handoff_plans(sc)) == [("p1", "d1"), ("p2", "d1")]


def test_plans_are_cached_by_value_not_by_object_or_name():
    a, b = hetsim.load_scenario(QWEN), hetsim.load_scenario(QWEN)
    assert a is not b and handoff_plans(a) is handoff_plans(b)
    # same name, different hop: a different plan
    slower = hetsim.load_scenario(QWEN, ["interconnect.paths.0.hops.0.bandwidth=100 GB/s"])
    assert slower.name == a.name
    assert handoff_plan(slower, "prefill", "decode").hops[0].bandwidth == 100e9
    assert handoff_plan(a, "prefill", "decode").hops[0].bandwidth != 100e9


def test_every_problem_is_reported_at_once():
    overrides = [
        "pools.prefill.memory_utilization=0.3",  # Qwen3-32B bf16 weights no longer fit
        "pools.decode.precision.kv=fp8_e4m3",  # a dtype difference with no conversion declared
    ]
    sc = resolve.load_scenario(QWEN, overrides)  # spec alone resolves it
    with pytest.raises(InputError) as caught:
        check_scenario(sc)
    text = str(caught.value)
    assert text.startswith(f"{QWEN}: 2 problems:")
    assert "1. pools[0]: Qwen3-32B does not fit" in text
    assert "2. kv.conversions: KV from pool 'prefill' reaches pool 'decode'" in text
    with pytest.raises(InputError, match="2 problems"):
        hetsim.load_scenario(QWEN, overrides)


def test_one_problem_keeps_its_own_message():
    with pytest.raises(InputError) as caught:
        hetsim.load_scenario(QWEN, ["pools.prefill.memory_utilization=0.3"])
    err = caught.value
    assert (err.file, err.field) == (str(QWEN), "pools[0]")
    assert "problems" not in str(err)


def test_a_misspelt_path_is_one_problem_not_also_a_missing_pair():
    with pytest.raises(InputError) as caught:
        hetsim.load_scenario(QWEN, ["interconnect.paths.0.to=decoder"])
    assert caught.value.field == "interconnect.paths[0].to"
