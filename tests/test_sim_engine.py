"""The simulator against queueing theory, hand computation and its own invariants."""

import math
from dataclasses import replace

import numpy as np
import pytest

import hetsim
from hetsim.perf.step import step_model_for_pool
from hetsim.sim.scheduler import prefill_chunks
from hetsim.simulation import simulate
from hetsim.workload import RequestChunk


def tiny_pd(**over):
    data = {
        "name": "tiny-pd",
        "model": "tiny-llama",
        "pools": [
            {
                "name": "prefill",
                "role": "prefill",
                "accelerator": "nvidia-h100-sxm",
                "instances": 1,
                "batching": {"max_num_seqs": 1, "max_batched_tokens": 8192},
            },
            {
                "name": "decode",
                "role": "decode",
                "accelerator": "nvidia-h100-sxm",
                "instances": 1,
                "batching": {"max_num_seqs": 256, "max_batched_tokens": 256},
            },
        ],
        "interconnect": {
            "paths": [
                {
                    "from": "prefill",
                    "to": "decode",
                    "hops": [
                        {"name": "nic", "kind": "nic", "bandwidth": "400 Gbps", "latency": "5 us"}
                    ],
                }
            ]
        },
        "workload": {
            "synthetic": {
                "rate": "10 req/s",
                "requests": 100,
                "input_tokens": 1024,
                "output_tokens": 16,
            }
        },
        "sla": {"ttft": "1 s", "tpot": "50 ms"},
        "seed": 1,
    }
    for key, value in over.items():
        data[key] = value
    return hetsim.scenario_from_dict(data)


def one_request(arrival=0.0, n_in=1024, n_out=16, rid=0):
    return [RequestChunk(np.array([rid]), np.array([arrival]), np.array([n_in]), np.array([n_out]))]


def test_zero_load_ttft_is_prefill_plus_transfer_plus_first_decode_step():
    sc = tiny_pd()
    res = simulate(sc, requests=one_request())
    row = res.requests.iloc[0]
    p, d = sc.spec.pools
    prefill = step_model_for_pool(sc.model, sc.profiles["prefill"], p).prefill_time(
        np.array([1024])
    )
    kv_bytes = 1024 * sc.model.kv_bytes_per_token("bf16")
    transfer = kv_bytes / (50e9 * 0.8) + 5e-6  # 400 Gbps at the profile's network efficiency
    first = step_model_for_pool(sc.model, sc.profiles["decode"], d).decode_time(np.array([1024]))
    assert row["prefill_end_s"] == pytest.approx(prefill, rel=1e-9)
    assert row["transfer_end_s"] - row["transfer_start_s"] == pytest.approx(transfer, rel=1e-9)
    assert row["ttft_s"] == pytest.approx(prefill + transfer + first, rel=1e-9)
    assert row["status"] == "completed"


def test_a_prefill_burst_is_packed_by_the_rule_the_planner_screens_with():
    """Prompts arriving together run in the steps that ``prefill_chunks`` packs (FCFS, one
    chunk each, token budget, sequence limit), so each prompt's KV is done when the rule says."""
    prompts = [3000, 700, 5000, 100, 2500, 1200]
    batching = {"max_num_seqs": 3, "max_batched_tokens": 4096, "chunk_size": 1500}
    sc = tiny_pd(pools=[
        {"name": "prefill", "role": "prefill", "accelerator": "nvidia-h100-sxm",
         "batching": batching},
        {"name": "decode", "role": "decode", "accelerator": "nvidia-h100-sxm"},
    ])  # fmt: skip
    burst = [RequestChunk(np.arange(6), np.zeros(6), np.array(prompts), np.full(6, 4))]
    rows = simulate(sc, requests=burst).requests.set_index("request_id")
    pool = sc.spec.pools[0]
    sm = step_model_for_pool(sc.model, sc.profiles["prefill"], pool)
    waiting, running, done = list(enumerate(prompts)), [], {}  # running: [id, left, computed]
    t = 0.0
    while waiting or running:
        chunks, joined = prefill_chunks([r[1] for r in running], [n for _, n in waiting],
                                        token_budget=4096, chunk=1500, max_seqs=3)  # fmt: skip
        running += [[rid, n, 0] for rid, n in waiting[:joined]]
        waiting = waiting[joined:]
        served = running[: len(chunks)]
        t += sm.step_time(np.array(chunks), np.array([r[2] for r in served]))
        for r, n in zip(served, chunks, strict=True):
            r[1] -= n
            r[2] += n
            if r[1] == 0:
                done[r[0]] = t
        running = [r for r in running if r[1] > 0]
    for rid, end in done.items():
        assert rows.loc[rid, "prefill_end_s"] == pytest.approx(end, rel=1e-12)


def test_lone_transfer_takes_bytes_over_bandwidth_plus_latency():
    sc = tiny_pd()
    row = simulate(sc, requests=one_request(n_in=4000)).requests.iloc[0]
    nbytes = 4000 * sc.model.kv_bytes_per_token("bf16")
    assert row["transfer_end_s"] - row["transfer_start_s"] == pytest.approx(
        nbytes / 40e9 + 5e-6, rel=1e-9
    )


def test_two_simultaneous_transfers_share_the_nic():
    sc = tiny_pd(
        pools=[
            {
                "name": "prefill",
                "role": "prefill",
                "accelerator": "nvidia-h100-sxm",
                "instances": 1,
                "batching": {"max_num_seqs": 2, "max_batched_tokens": 8192},
            },
            {"name": "decode", "role": "decode", "accelerator": "nvidia-h100-sxm", "instances": 1},
        ]
    )
    reqs = [
        RequestChunk(
            np.array([0, 1]), np.array([0.0, 0.0]), np.array([3000, 3000]), np.array([4, 4])
        )
    ]
    rows = simulate(sc, requests=reqs).requests
    nbytes = 3000 * sc.model.kv_bytes_per_token("bf16")
    durations = rows["transfer_end_s"] - rows["transfer_start_s"]
    assert np.allclose(durations, 2 * nbytes / 40e9 + 5e-6, rtol=1e-9)


def test_mdl_prefill_queue_matches_pollaczek_khinchine():
    """One prefill instance, batch of one, fixed prompt: an M/D/1 queue."""
    sc = tiny_pd()
    service = step_model_for_pool(sc.model, sc.profiles["prefill"], sc.spec.pools[0]).prefill_time(
        np.array([1024])
    )
    rho = 0.6
    rate = rho / service
    n = 40_000
    rng = np.random.default_rng(7)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    reqs = [RequestChunk(np.arange(n), arrivals, np.full(n, 1024), np.full(n, 1))]
    rows = simulate(sc, requests=reqs, sample_interval=1e9).requests
    wait = (rows["prefill_start_s"] - rows["arrival_s"]).mean()
    expected = rho * service / (2 * (1 - rho))
    assert wait == pytest.approx(expected, rel=0.05)


def test_littles_law_holds_on_occupancy():
    sc = tiny_pd()
    res = simulate(sc)
    s = res.summary
    rows = res.requests
    horizon = rows["finish_s"].max() - rows["arrival_s"].min()
    arrival_rate = len(rows) / horizon
    assert s.occupancy_mean == pytest.approx(arrival_rate * rows["e2e_s"].mean(), rel=1e-9)


def test_every_request_ends_and_no_block_leaks():
    for f in (
        "qwen3-32b-6p2d",
        "qwen3-32b-colocated",
        "cphd-glm51",
        "llama70b-h100-vs-h20",
        "gpu-prefill-cpu-decode",
        "trace-mooncake-conversation",
    ):
        res = simulate(f"scenarios/{f}.yaml", max_requests=300)
        s = res.summary
        status = res.requests["status"].value_counts()
        assert status.get("completed", 0) + status.get("failed", 0) == len(res.requests) == 300, f
        # the summary counts what it measures: all but the warm-up
        assert s.completed + s.failed == s.requests == 300 - s.warmup_requests, f
        assert s.kv_blocks_leaked == 0, f
        failed = res.requests[res.requests["status"] == "failed"]
        assert (failed["failure_reason"] != "").all()
        done = res.requests[res.requests["status"] == "completed"]
        assert (done["first_token_s"] >= done["arrival_s"]).all()
        assert (done["finish_s"] >= done["first_token_s"]).all()


@pytest.mark.parametrize("protocol", ["pull", "push"])
def test_kv_never_exceeds_capacity_under_pressure(protocol):
    """A decode side too small for the load: admission and preemption keep blocks in bounds."""
    sc = tiny_pd(
        lifecycle=protocol,
        workload={
            "synthetic": {
                "rate": "200 req/s",
                "requests": 400,
                "input_tokens": 3000,
                "output_tokens": 200,
            }
        },
    )
    sc.footprints["decode"] = type(sc.footprints["decode"])(
        **{
            **sc.footprints["decode"].as_dict(),
            "kv_capacity_blocks": 1200,
            "kv_capacity_tokens": 1200 * 16,
        }
    )
    res = simulate(sc, sample_interval=0.01)
    ts = res.timeseries
    used = ts["kv_used_blocks"] + ts["kv_reserved_blocks"] + ts["kv_held_blocks"]
    assert (used <= ts["kv_capacity_blocks"]).all() and (used >= 0).all()
    assert res.summary.completed == 400
    assert res.summary.kv_blocks_leaked == 0


def test_same_seed_same_summary():
    a = simulate("scenarios/trace-mooncake-conversation.yaml", max_requests=300).summary
    b = simulate("scenarios/trace-mooncake-conversation.yaml", max_requests=300).summary
    assert replace(a, wall_s=0.0) == replace(b, wall_s=0.0)
    c = simulate("scenarios/qwen3-32b-colocated.yaml", max_requests=200, seed=1).summary
    d = simulate("scenarios/qwen3-32b-colocated.yaml", max_requests=200, seed=2).summary
    assert c.ttft_s != d.ttft_s


def test_prefix_cache_hits_skip_compute():
    # every request counted, the cache warm-up included
    base = simulate("scenarios/cphd-glm51.yaml", ["workload.warmup_requests=0"], max_requests=100)
    cold = simulate(
        "scenarios/cphd-glm51.yaml",
        ["kv.prefix_cache.enabled=false", "workload.warmup_requests=0"],
        max_requests=100,
    )
    assert base.summary.prefix_cached_share > 0.5
    assert cold.summary.prefix_cached_share == 0
    assert base.summary.ttft_s.mean < cold.summary.ttft_s.mean


def test_tpot_is_the_mean_gap_after_the_first_token():
    res = simulate(tiny_pd(), requests=one_request(n_out=11))
    row = res.requests.iloc[0]
    assert row["tpot_s"] == pytest.approx((row["finish_s"] - row["first_token_s"]) / 10)
    assert not math.isnan(row["tpot_s"])


def test_layerwise_streaming_overlaps_the_transfer_with_the_last_prefill_step():
    slow = {
        "paths": [
            {
                "from": "prefill",
                "to": "decode",
                "hops": [{"name": "nic", "kind": "nic", "bandwidth": "4 Gbps", "latency": "5 us"}],
            }
        ]
    }
    plain = tiny_pd(interconnect=slow, lifecycle="push")
    streamed = tiny_pd(interconnect=slow, lifecycle="push", kv={"layerwise_transfer": True})
    a = simulate(plain, requests=one_request(n_in=4096)).requests.iloc[0]
    b = simulate(streamed, requests=one_request(n_in=4096)).requests.iloc[0]
    prefill = a["prefill_end_s"] - a["prefill_start_s"]
    transfer = a["transfer_end_s"] - a["transfer_start_s"]
    assert transfer > 2 * prefill  # the link, not the GPU, is the bottleneck here
    # the transfer starts with the (only) prefill step instead of after it
    assert b["transfer_start_s"] == pytest.approx(b["prefill_start_s"])
    assert b["ttft_s"] == pytest.approx(a["ttft_s"] - prefill, rel=1e-9)


def test_layerwise_streaming_needs_push():
    with pytest.raises(hetsim.InputError, match="kv.layerwise_transfer"):
        tiny_pd(kv={"layerwise_transfer": True})


def test_declared_conversion_is_charged_where_it_runs():
    from hetsim.checks import handoff_plan as handoff_conversions

    sc = tiny_pd(
        pools=[
            {"name": "prefill", "role": "prefill", "accelerator": "nvidia-h100-sxm"},
            {"name": "decode", "role": "decode", "accelerator": "nvidia-h100-sxm",
             "precision": {"kv": "fp8_e4m3"}},
        ],
        kv={"conversions": [{"kind": "dtype", "from": "bf16", "to": "fp8_e4m3",
                             "where": "consumer"}]},
    )  # fmt: skip
    plan = handoff_conversions(sc, "prefill", "decode")
    assert plan.consumer_s(2048) > 0 and plan.producer_s(2048) == 0
    row = simulate(sc, requests=one_request(n_in=2048)).requests.iloc[0]
    wire = 2048 * sc.model.kv_bytes_per_token("bf16") / 40e9 + 5e-6  # bf16 on the wire
    assert row["transfer_end_s"] - row["transfer_start_s"] == pytest.approx(
        wire + plan.consumer_s(2048), rel=1e-9
    )


def test_warmup_requests_are_simulated_but_left_out_of_the_summary():
    from hetsim.metrics import attainment

    sc = "scenarios/qwen3-32b-6p2d.yaml"
    cold = hetsim.simulate(sc, ["workload.synthetic.requests=300"], sample_interval=None)
    warm = hetsim.simulate(
        sc,
        ["workload.synthetic.requests=300", "workload.warmup_requests=50"],
        sample_interval=None,
    )
    # the same run: every request is still there, the first 50 arrivals flagged
    assert len(warm.requests) == len(cold.requests) == 300
    first = warm.requests.sort_values("arrival_s").head(50)
    assert first["warmup"].all() and warm.requests["warmup"].sum() == 50
    assert warm.summary.requests == 250 and warm.summary.warmup_requests == 50
    rest = warm.requests[~warm.requests["warmup"]]
    assert warm.summary.attainment == attainment(rest, warm.scenario.spec.sla)


def test_colocated_instances_fill_their_prefix_cache():
    """A colocated instance caches the prompts it computes, like a prefill instance does."""
    shared = [
        "kv.prefix_cache.enabled=true",
        "workload.synthetic.prefix_hit_rate=0.8",
        "workload.synthetic.requests=200",
    ]
    colocated = hetsim.simulate("scenarios/qwen3-32b-colocated.yaml", shared, sample_interval=None)
    split = hetsim.simulate("scenarios/qwen3-32b-6p2d.yaml", shared, sample_interval=None)
    # per-instance HBM caches behind a load-balancing router: a share of the 80% reuse hits on
    # either side (colocated hit exactly 0 before its instances inserted their prompts)
    assert split.summary.prefix_cached_share > 0.2
    assert colocated.summary.prefix_cached_share > 0.2


def _queued_prefill(sim, *inputs):
    """``sim``'s prefill instance, its HBM filled but for one 1,024-token prompt's blocks,
    with prompts of ``inputs`` tokens queued there in order."""
    from hetsim.sim.state import Req

    p = sim.topology.prefill[0]
    blocks = p.blocks
    blocks.allocate(0.0, blocks.free - blocks.blocks_for(1024))
    reqs = [Req(i, 0.0, n, 4, None) for i, n in enumerate(inputs)]
    for req in reqs:
        req.prefill = p
        p.enqueue(req)
    return p, reqs


def test_a_prefill_whose_queue_head_does_not_fit_is_not_woken():
    """A head-of-line prompt whose blocks are not free stays queued: waking the loop for it
    would only put it back to sleep (an event for nothing, about one in ten of an overloaded
    pull run). Once that head leaves the queue, the prompt behind it, which fits, starts at
    once."""
    sim = hetsim.sim.engine.Simulation(tiny_pd(), [], sample_interval=None)
    sim.env.run(until=0.001)  # the loops start and sleep
    p, (big, small) = _queued_prefill(sim, 4096, 1024)
    assert not p._wake.triggered
    sim.env.run(until=0.002)
    assert p.waiting[0] is big and math.isnan(small.t_prefill_start)
    p.forget(big)
    assert p._wake.triggered
    sim.env.run(until=0.003)
    assert small.t_prefill_start == 0.002 and list(p.running) == [small]


def test_a_prefill_woken_late_at_one_time_wakes_in_the_first_kicks_place():
    """Three events at 2 ms: a free too small for the head (a kick that does not wake), one
    that queues another arrival for later at 2 ms, and a free that makes the head fit. The
    loop wakes where the first kick's wake-up would have been, before the queued arrival: it
    starts the head alone, as it did when every kick woke it."""
    from hetsim.kv.blocks import BlockState

    sim = hetsim.sim.engine.Simulation(tiny_pd(), [], sample_interval=None)
    env = sim.env
    env.run(until=0.001)
    p, (big,) = _queued_prefill(sim, 2048)
    p.max_seqs = 4
    from hetsim.sim.state import Req

    late = Req(1, 0.0, 128, 4, None)
    late.prefill = p
    short = p.blocks.blocks_for(2048) - p.blocks.blocks_for(1024)
    for action in (
        lambda: p.release_late(1, BlockState.USED),
        lambda: env.timeout(0).callbacks.append(lambda _: p.enqueue(late)),
        lambda: p.release_late(short + 10, BlockState.USED),
    ):
        env.timeout(0.001).callbacks.append(lambda _, action=action: action())
    env.run(until=0.0021)
    assert p.running == [big] and list(p.waiting) == [late]
