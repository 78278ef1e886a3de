"""KV residency tiers in a cascade: eviction order, residency per write policy, hand-computed
load times, and the invariants (capacity, one tier per owner, nothing leaked) under random
workloads with crashes."""

import numpy as np
import pytest

import hetsim
from hetsim.errors import InputError
from hetsim.kv.tiers import Cascade, TierStore
from hetsim.metrics import tier_figures
from hetsim.sim.engine import Simulation
from hetsim.simulation import simulate
from hetsim.workload import RequestChunk

OWN = ("instance", 0)


def cascade(caps, write_back=True, promote=True, owners=None):
    names = ["hbm", "host_dram", "local_ssd"][: len(caps)]
    owners = owners or [OWN] * len(caps)
    stores = [
        TierStore(n, o, c, block_bytes=10.0) for n, o, c in zip(names, owners, caps, strict=True)
    ]
    return Cascade(stores, write_back=write_back, promote=promote)


def held(c):
    return [list(s._blocks) for s in c.stores]


def test_write_back_evictions_cascade_down_least_recent_first():
    c = cascade([2, 2, 2])
    hbm, dram, ssd = c.stores
    assert c.store([1, 2, 3]) == {dram: 1}
    assert held(c) == [[2, 3], [1], []]
    assert c.store([4, 5]) == {dram: 2, ssd: 1}
    assert held(c) == [[4, 5], [2, 3], [1]]
    c.store([6, 7, 8])  # 4,5,6 leave HBM; 2,3,4 leave DRAM; 1,2 fall off the SSD
    assert held(c) == [[7, 8], [5, 6], [3, 4]]
    assert (hbm.evictions, dram.evictions, ssd.evictions) == (6, 4, 2)
    assert (dram.written_blocks, ssd.written_blocks) == (6, 4)
    # each leading block is served by the tier that holds it; the match stops at block 9
    assert c.locate([3, 4, 5, 6, 7, 8, 9, 1]) == [2, 2, 1, 1, 0, 0]
    assert c.match([2, 3]) == 0


def test_write_back_promotion_moves_a_hit_up_out_of_the_lower_tier_of_its_owner():
    c = cascade([4, 4])
    c.store([1, 2, 3, 4, 5, 6])
    assert held(c) == [[3, 4, 5, 6], [1, 2]]
    assert c.locate([1, 2, 7]) == [1, 1]
    c.store([1, 2, 7])
    assert held(c) == [[6, 1, 2, 7], [3, 4, 5]]


def test_a_lower_tier_of_another_owner_keeps_its_copy_on_promotion():
    c = cascade([4, 4], owners=[OWN, ("pool", "serve")])
    c.store([1, 2, 3, 4, 5, 6])
    c.store([1, 2, 7])
    hbm, dram = held(c)
    assert hbm == [6, 1, 2, 7]
    assert dram == [2, 3, 4, 5]  # 1 and 2 stayed; 3,4,5 came down and pushed 1 out


def test_without_promotion_a_hit_stays_in_the_tier_it_was_found_in():
    c = cascade([4, 4], promote=False)
    c.store([1, 2, 3, 4, 5, 6])
    c.store([1, 2, 7])
    assert held(c) == [[4, 5, 6, 7], [1, 2, 3]]


def test_write_through_writes_each_computed_block_to_every_tier_once():
    c = cascade([2, 3, 4], write_back=False)
    hbm, dram, ssd = c.stores
    assert c.store([1, 2, 3]) == {dram: 3, ssd: 3}
    assert held(c) == [[2, 3], [1, 2, 3], [1, 2, 3]]
    assert c.store([1, 4]) == {dram: 1, ssd: 1}  # 1 is below already: only 4 is written
    assert held(c) == [[1, 4], [3, 1, 4], [2, 3, 1, 4]]
    assert dram.evictions == 1 and ssd.evictions == 0


def test_a_tier_of_zero_capacity_passes_evictions_straight_down():
    c = cascade([1, 0, 3])
    assert c.store([1, 2]) == {c.stores[2]: 1}
    assert held(c) == [[2], [], [1]]


def test_a_crash_loses_the_hbm_tier_only():
    c = cascade([2, 2])
    c.store([1, 2, 3])
    c.lose_device_memory()
    assert held(c) == [[], [1]]


# ---- in the simulator ---------------------------------------------------------------------


def tiered(cascade=("hbm", "host_dram", "local_ssd"), policy="write_back", instances=1,
           ssd_scope="instance", faults=None, requests=60, seed=1):  # fmt: skip
    data = {
        "name": "tiers",
        "model": "tiny-llama",
        "pools": [
            {
                "name": "serve",
                "role": "colocated",
                "accelerator": "nvidia-h100-sxm",
                "instances": instances,
                "batching": {"max_num_seqs": 8, "max_batched_tokens": 8192},
                "router": "prefix_aware",
            }
        ],
        "workload": {
            "synthetic": {
                "rate": "40 req/s",
                "requests": requests,
                "input_tokens": {
                    "dist": "lognormal",
                    "mean": 3000,
                    "cv": 0.5,
                    "min": 600,
                    "max": 6000,
                },  # fmt: skip
                "output_tokens": 4,
                "prefix_hit_rate": 0.8,
                "prefix_groups": 6,
            }
        },
        "kv": {
            "tiers": [
                {
                    "name": "host_dram",
                    "kind": "dram",
                    "capacity": "1 GiB",
                    "bandwidth": "50 GB/s",
                    "latency": "10 us",
                },
                {
                    "name": "local_ssd",
                    "kind": "ssd",
                    "capacity": "4 GiB",
                    "bandwidth": "7 GB/s",
                    "latency": "100 us",
                    "scope": ssd_scope,
                },
            ],  # fmt: skip
            "prefix_cache": {
                "enabled": True,
                "block_tokens": 512,
                "tiers": list(cascade),
                "write_policy": policy,
            },
        },
        "sla": {"ttft": "1 s", "tpot": "50 ms"},
        "seed": seed,
    }
    if faults:
        data["faults"] = faults
    return hetsim.scenario_from_dict(data)


def one(n_in, hashes):
    return [
        RequestChunk(
            np.array([0]), np.array([0.0]), np.array([n_in]), np.array([4]),
            np.array(hashes, dtype=np.int64), np.array([0, len(hashes)]),
        )
    ]  # fmt: skip


def test_a_hit_loads_from_dram_and_ssd_at_once_each_over_its_own_link():
    sc = tiered()
    sim = Simulation(sc, one(2049, [11, 12, 13, 14, 15]), sample_interval=None)
    hbm, dram, ssd = sim.topology.entry[0].prefix_cache.stores
    dram.put([11, 12])
    ssd.put([13, 14])
    out = sim.run()
    row = out.requests.iloc[0]
    kvb = sc.model.kv_bytes_per_token("bf16")
    from_dram = 1024 * kvb / 50e9 + 10e-6
    from_ssd = 1024 * kvb / 7e9 + 100e-6
    # both loads run concurrently; the prompt is queued (and starts: the instance is idle)
    # when the slower has arrived
    assert row["prefill_start_s"] == pytest.approx(max(from_dram, from_ssd), rel=1e-9)
    assert row["cached_tokens"] == 2048 and row["loaded_tokens"] == 2048
    assert dram.load_bytes == pytest.approx(1024 * kvb) and ssd.hit_tokens == 1024
    assert row["reusable_tokens"] == 0  # nothing was computed before in this run


def test_a_hit_of_the_whole_prompt_still_computes_its_last_token():
    sc = tiered()
    sim = Simulation(sc, one(2048, [11, 12, 13, 14]), sample_interval=None)
    dram = sim.topology.entry[0].prefix_cache.stores[1]
    dram.put([11, 12, 13, 14])
    row = sim.run().requests.iloc[0]
    kvb = sc.model.kv_bytes_per_token("bf16")
    assert row["cached_tokens"] == 2047 and row["loaded_tokens"] == 2047
    assert row["prefill_start_s"] == pytest.approx(2047 * kvb / 50e9 + 10e-6, rel=1e-9)


def test_store_capacity_is_the_tier_bytes_over_one_block_of_kv():
    sc = tiered()
    stores = Simulation(sc, one(600, [1, 2]), sample_interval=None).prefix.stores
    block = sc.model.kv_bytes_per_token("bf16") * 512
    assert [s.capacity for s in stores[1:]] == [int(2**30 // block), int(4 * 2**30 // block)]


def _shrink(sim, caps):
    """Small tiers, so a short run evicts at every level."""
    for s in sim.prefix.stores:
        s.capacity = caps[s.tier]


def _check_invariants(sim, write_back):
    """Wrap every cascade's mutations with the invariants: capacity never exceeded; only
    computed blocks are held; under write_back no block in two tiers of one owner; under
    write_through a just-computed prompt's most recent blocks are in every tier; a crash
    empties the HBM tier."""
    computed = sim.prefix.computed

    def check(c):
        for s in c.stores:
            assert len(s) <= s.capacity
            assert set(s._blocks) <= computed
        if write_back:
            for i, a in enumerate(c.stores):
                for b in c.stores[i + 1 :]:
                    if a.owner == b.owner:
                        assert not set(a._blocks) & set(b._blocks)

    for inst in sim.topology.entry:
        c = inst.prefix_cache
        store, lose = c.store, c.lose_device_memory

        def stored(blocks, c=c, store=store):
            writes = store(blocks)
            check(c)
            if not write_back:  # inclusive: each tier keeps the newest blocks it can hold
                for s in c.stores:
                    assert all(b in s for b in blocks[len(blocks) - min(len(blocks), s.capacity) :])
            return writes

        def lost(c=c, lose=lose):
            lose()
            check(c)
            assert len(c.stores[0]) == 0

        c.store, c.lose_device_memory = stored, lost


@pytest.mark.parametrize("policy", ["write_back", "write_through"])
@pytest.mark.parametrize("seed", [0, 1])
def test_invariants_hold_under_random_prefix_load_and_crashes(policy, seed):
    faults = {
        "recovery": "retry",
        "events": [{"kind": "instance_crash", "target": "serve", "mtbf": "0.6 s", "mttr": "0.1 s"}],
    }
    sc = tiered(policy=policy, instances=2, ssd_scope="pool", faults=faults, requests=150,
                seed=seed)  # fmt: skip
    sim = Simulation(sc, sample_interval=0.05)
    _shrink(sim, {"hbm": 6, "host_dram": 8, "local_ssd": 20})
    _check_invariants(sim, policy == "write_back")
    out = sim.run()
    reqs = out.requests
    assert out.facts.kv_blocks_leaked == 0
    failed = reqs["status"] == "failed"
    assert (failed | (reqs["status"] == "completed")).all()
    assert (reqs.loc[failed, "failure_reason"] != "").all()
    assert all(link.active_transfers == 0 for link in sim.topology.links)
    assert out.facts.faults["instance_crashes"] > 0
    # the series' tier columns never exceed a store's capacity either
    assert (out.timeseries["cache_hbm_blocks"].dropna() <= 6).all()
    assert (out.timeseries["cache_local_ssd_blocks"].dropna() <= 20).all()
    # the last sample holds each store's cumulative hits and loads
    ts = out.timeseries
    last = ts[ts["time_s"] == ts["time_s"].max()].set_index("instance")
    for inst in sim.topology.entry:
        hbm, dram, _ssd = inst.prefix_cache.stores
        assert last.loc[inst.gid, "cache_hbm_hit_tokens"] == hbm.hit_tokens
        assert last.loc[inst.gid, "cache_host_dram_load_bytes"] == dram.load_bytes
    lost = reqs["reusable_tokens"] - np.minimum(reqs["cached_tokens"], reqs["reusable_tokens"])
    assert (reqs["evicted_tokens"] >= 0).all() and (reqs["evicted_tokens"] <= lost).all()
    evictions = [s.evictions for s in sim.prefix.stores]
    assert min(evictions) > 0  # every tier was exercised


def test_every_hit_is_counted_once_by_the_tier_that_served_it():
    sc = tiered(instances=2, ssd_scope="pool")
    sim = Simulation(sc, sample_interval=None)
    _shrink(sim, {"hbm": 6, "host_dram": 8, "local_ssd": 20})
    out = sim.run()
    reqs, stores = out.requests, sim.prefix.stores
    assert sum(s.hit_tokens for s in stores) == reqs["cached_tokens"].sum() > 0
    lower = [s for s in stores if s.tier != "hbm"]
    assert sum(s.hit_tokens for s in lower) == reqs["loaded_tokens"].sum() > 0
    kvb = sc.model.kv_bytes_per_token("bf16")
    assert sum(s.load_bytes for s in lower) == pytest.approx(reqs["loaded_tokens"].sum() * kvb)
    figures = tier_figures(out.facts, int(reqs["input_tokens"].sum()))
    assert [f.tier for f in figures] == ["hbm", "host_dram", "local_ssd"]
    assert [f.stores for f in figures] == [2, 2, 1]
    assert figures[2].write_bytes == pytest.approx(
        sum(s.written_blocks for s in stores if s.tier == "local_ssd") * kvb * 512
    )


def test_a_slow_ssd_write_holds_its_link_for_the_bytes_over_the_write_bandwidth():
    data = tiered(instances=2, ssd_scope="pool").spec.model_dump(by_alias=True, exclude_unset=True)
    data["kv"]["tiers"][1]["write_bandwidth"] = "3.5 GB/s"  # half the 7 GB/s read
    sim = Simulation(hetsim.scenario_from_dict(data), sample_interval=None)
    _shrink(sim, {"hbm": 6, "host_dram": 8, "local_ssd": 20})
    sim.run()
    ssd = sim.prefix.stores[2]
    assert ssd.tier == "local_ssd" and ssd.write_bytes > 0 and ssd.load_bytes > 0
    assert ssd.link.bytes_carried == pytest.approx(ssd.load_bytes + 2 * ssd.write_bytes)


def test_the_one_tier_shorthand_keeps_its_meaning():
    """``tier: host_dram``: the cache lives in DRAM alone, each hit loads from it."""
    sc = tiered(cascade=("hbm",))
    data = sc.spec.model_dump(by_alias=True, exclude_unset=True)
    data["kv"]["prefix_cache"].pop("tiers")
    data["kv"]["prefix_cache"]["tier"] = "host_dram"
    sim = Simulation(hetsim.scenario_from_dict(data), sample_interval=None)
    [store] = sim.topology.entry[0].prefix_cache.stores
    assert store.tier == "host_dram" and store.link is not None
    reqs = sim.run().requests
    assert reqs["cached_tokens"].sum() == reqs["loaded_tokens"].sum() > 0


# ---- input errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tiers", "where", "message"),
    [
        (["host_dram", "hbm"], "tiers[0]", "starts at"),
        (["hbm", "nvme"], "tiers[1]", "not defined"),
        (["hbm", "host_dram", "host_dram"], "tiers[2]", "twice"),
        (["hbm", "hbm"], "tiers[1]", "first tier only"),
        ([], "tiers[0]", "starts at"),
    ],
)
def test_a_bad_cascade_is_an_input_error(tiers, where, message):
    with pytest.raises(InputError) as err:
        tiered(cascade=tiers)
    assert err.value.field == f"kv.prefix_cache.{where}" and message in str(err.value)
    assert "hbm" in str(err.value.allowed)


def test_tier_and_tiers_together_is_an_input_error():
    sc = tiered()
    data = sc.spec.model_dump(by_alias=True, exclude_unset=True)
    data["kv"]["prefix_cache"]["tier"] = "host_dram"
    with pytest.raises(InputError, match="not both") as err:
        hetsim.scenario_from_dict(data)
    assert err.value.field == "kv.prefix_cache.tiers"


def test_a_cluster_tier_shared_by_pools_of_different_kv_formats_is_an_input_error():
    sc = tiered(ssd_scope="cluster")
    data = sc.spec.model_dump(by_alias=True, exclude_unset=True)
    other = dict(data["pools"][0], name="fp8")
    other["precision"] = {"weights": "bf16", "activations": "bf16", "kv": "fp8_e4m3"}
    data["pools"].append(other)
    with pytest.raises(InputError, match="different formats") as err:
        hetsim.scenario_from_dict(data)
    assert err.value.field == "kv.tiers[1].scope" and err.value.value == "cluster"


# ---- the 90%-prefix demonstration, small ---------------------------------------------------


def test_shrinking_dram_and_ssd_lowers_the_hit_share_and_raises_ttft():
    runs = {
        name: simulate(
            "scenarios/kv-tiers-prefix90.yaml",
            ["workload.warmup_requests=100", *sets],
            max_requests=300,
            sample_interval=None,
        ).summary
        for name, sets in {
            "full": [],
            "small": ["kv.tiers.0.capacity=32 GiB", "kv.tiers.1.capacity=128 GiB"],
            "hbm only": ["kv.prefix_cache.tiers=[hbm]"],
        }.items()
    }
    hit = {k: s.prefix_reuse.hit_share for k, s in runs.items()}
    ttft = {k: s.ttft_s.mean for k, s in runs.items()}
    assert hit["full"] > hit["small"] > hit["hbm only"]
    assert ttft["full"] < ttft["small"] and ttft["full"] < ttft["hbm only"]
    full = runs["full"].prefix_reuse
    # with 4 TiB of SSD nothing reusable is lost: every miss is a first visit
    assert full.hit_tokens == full.reusable_tokens and full.loaded_tokens > 0
    small = runs["small"].prefix_reuse
    assert small.lost_to_eviction_tokens > 0


def test_simulate_prints_the_reuse_decomposition_and_the_tier_table(capsys):
    from dataclasses import replace

    from hetsim.cli import render
    from hetsim.simulation import SimulationResult

    sim = Simulation(tiered(instances=2), sample_interval=None)
    _shrink(sim, {"hbm": 6, "host_dram": 8, "local_ssd": 20})
    res = simulate(sim.scenario, sample_interval=None)
    # the summary of one run with the tier figures of the same workload with small tiers
    # (RunSummary.kv_tiers is filled by hetsim.simulation from the run's facts)
    figures = tier_figures(sim.run().facts, int(res.requests["input_tokens"].sum()))
    assert isinstance(res, SimulationResult)
    render.simulation_summary(replace(res.summary, kv_tiers=figures))
    out = capsys.readouterr().out
    r = res.summary.prefix_reuse
    assert f"prefix reuse: {r.reusable_share:.1%} of prompt tokens reusable" in out
    assert "KV tiers" in out and "warm-up included" in out and "local_ssd" in out
    assert res.summary.to_json()["prefix_reuse"]["reusable_tokens"] == r.reusable_tokens


def test_cache_aware_replay_of_the_mooncake_sample_hits_what_trace_stats_calls_reusable():
    """The bundled conversation sample replayed as sessions with the prefix-aware router: the
    reusable share is ``trace stats``' prefix reuse, and all of it is hit but what capacity
    evicted — with HBM alone (much evicted) and with a host DRAM tier per prefill instance
    (nothing evicted): nothing is lost to routing."""
    from hetsim.workload.stats import trace_stats

    stats = trace_stats("tests/data/mooncake_conversation_2k.jsonl", "mooncake")
    dram = "{name: host_dram, kind: dram, capacity: 512 GiB, bandwidth: 50 GB/s, latency: 10 us}"
    hbm_only: list[str] = []
    with_dram = [f"kv.tiers=[{dram}]", "kv.prefix_cache.tiers=[hbm, host_dram]"]
    evicted = {}
    for name, overrides in (("hbm", hbm_only), ("dram", with_dram)):
        res = simulate(
            "scenarios/sessions-mooncake-conversation.yaml", overrides, sample_interval=None
        )
        r = res.summary.prefix_reuse
        assert r.reusable_share == pytest.approx(stats.prefix_reuse_tokens, abs=0.002)
        assert r.lost_to_routing_tokens == 0
        assert r.hit_tokens == r.reusable_tokens - r.lost_to_eviction_tokens
        evicted[name] = r.lost_to_eviction_tokens / r.reusable_tokens
    assert evicted["hbm"] > 0.3 and evicted["dram"] == 0


def test_a_run_summary_carries_the_tier_figures_in_cascade_order() -> None:
    res = simulate(tiered(instances=2), sample_interval=None)
    tiers = res.summary.kv_tiers
    assert [t.tier for t in tiers] == ["hbm", "host_dram", "local_ssd"]
    # every hit is counted in exactly one tier; the shares are of every simulated prompt token
    prompt = int(res.requests["input_tokens"].sum())
    assert sum(t.hit_tokens for t in tiers) == int(res.requests["cached_tokens"].sum())
    assert all(t.hit_share == pytest.approx(t.hit_tokens / prompt) for t in tiers)
    assert [t["tier"] for t in res.summary.to_json()["kv_tiers"]] == [t.tier for t in tiers]


def test_a_miss_is_lost_to_routing_when_another_instance_held_the_blocks() -> None:
    """With room for every prefix (nothing evicted), a cache-blind router's misses were all
    held by the other instance at that moment; a prefix-aware router misses nothing."""
    reuse = {}
    for router in ("round_robin", "prefix_aware"):
        data = tiered(cascade=("hbm",), instances=2).spec.model_dump(
            by_alias=True, exclude_none=True
        )
        data["pools"][0]["router"] = router
        res = simulate(hetsim.scenario_from_dict(data), sample_interval=None)
        reuse[router] = r = res.summary.prefix_reuse
        assert sum(t.evictions for t in res.summary.kv_tiers) == 0
        assert r.lost_to_eviction_tokens == 0 and r.reusable_tokens > 0
    blind, aware = reuse["round_robin"], reuse["prefix_aware"]
    assert blind.lost_to_routing_tokens > 0
    assert blind.hit_tokens + blind.lost_to_routing_tokens == blind.reusable_tokens
    assert aware.lost_to_routing_tokens == 0 and aware.hit_tokens == aware.reusable_tokens


def test_a_cascade_survives_the_planners_dump_and_reload() -> None:
    """goodput and the planner re-validate a dumped scenario: the unset one-tier shorthand
    must not come back as a `tier` that contradicts `tiers`."""
    faster = hetsim.with_rate(tiered(), 5.0)
    assert faster.spec.kv.prefix_cache.cascade() == ["hbm", "host_dram", "local_ssd"]
