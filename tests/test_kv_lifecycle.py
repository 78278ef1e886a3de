"""Lifecycle state machines and faults: transitions, leases, reservations, invariants."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hetsim
from hetsim.kv import lifecycle
from hetsim.kv.lifecycle import (
    COMMITTED,
    COMPUTING,
    FAILED,
    FETCHING,
    FREED,
    HELD,
    LOST,
    QUEUED,
    RECEIVING,
    RESERVED,
    STORED,
    WAITING,
    WRITING,
    LifecycleError,
    LifecycleLog,
    LifecycleState,
    Side,
)
from hetsim.simulation import simulate
from hetsim.workload import RequestChunk

P, D, S = Side


@pytest.mark.parametrize(
    ("protocol", "path"),
    [
        ("pull", [(P, QUEUED), (P, COMPUTING), (P, HELD), (D, WAITING), (D, RESERVED),
                  (D, RECEIVING), (D, COMMITTED), (P, FREED), (D, FREED)]),
        ("push", [(D, WAITING), (D, RESERVED), (P, QUEUED), (P, COMPUTING), (D, RECEIVING),
                  (P, FREED), (D, COMMITTED), (D, FREED)]),
        ("store", [(P, QUEUED), (P, COMPUTING), (P, WRITING), (P, FREED), (S, STORED),
                   (D, WAITING), (D, RESERVED), (S, FETCHING), (D, RECEIVING), (S, FREED),
                   (D, COMMITTED), (D, FREED)]),
    ],
)  # fmt: skip
def test_each_protocol_accepts_its_own_path(protocol, path):
    log = LifecycleLog(protocol)
    for t, (side, state) in enumerate(path):
        log.move(7, float(t), side, state)
    frame = log.to_frame()
    assert list(frame["state"]) == [s for _, s in path]
    assert frame["time_s"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("protocol", "bad"),
    [
        ("pull", [(P, HELD)]),  # held before computing
        ("pull", [(D, WAITING), (D, COMMITTED), (D, RESERVED)]),
        ("push", [(P, QUEUED), (P, COMPUTING), (P, HELD)]),  # push never holds
        ("store", [(S, FETCHING)]),  # fetch before store
        ("pull", [(S, STORED)]),  # only the store protocol has a store side
    ],
)
def test_illegal_transitions_raise(protocol, bad):
    log = LifecycleLog(protocol)
    with pytest.raises(LifecycleError):
        for t, (side, state) in enumerate(bad):
            log.move(1, float(t), side, state)


def test_failure_and_retry_are_allowed_from_anywhere():
    log = LifecycleLog("pull")
    log.move(1, 0.0, P, QUEUED)
    log.move(1, 1.0, P, COMPUTING)
    log.move(1, 2.0, P, LOST)
    log.move(1, 3.0, P, QUEUED)  # a retry starts over
    log.move(1, 4.0, P, FAILED)
    assert log.counts[LOST] == 1 and log.counts[FAILED] == 1


def test_module_constants_are_the_enum_members_of_the_same_name():
    for member in (*Side, *LifecycleState):
        assert getattr(lifecycle, member.name) is member


def test_the_log_frame_and_counts_carry_plain_strings_as_before_the_enums():
    log = LifecycleLog("pull")
    log.move(3, 0.0, P, QUEUED)
    log.move(3, 1.0, P, COMPUTING)
    frame = log.to_frame()
    assert list(frame["side"].cat.categories) == ["P", "D", "S"]
    assert list(frame["state"].cat.categories) == [
        "none", "queued", "computing", "held", "writing", "freed", "expired", "lost", "failed",
        "waiting", "reserved", "receiving", "committed", "stored", "fetching", "evicted",
    ]  # fmt: skip
    assert all(type(c) is str for c in frame["state"].cat.categories)
    assert json.dumps(log.counts) == '{"queued": 1, "computing": 1}'


def scenario(protocol="pull", faults=None, **over):
    data = {
        "name": "faults",
        "model": "tiny-llama",
        "pools": [
            {"name": "prefill", "role": "prefill", "accelerator": "nvidia-h100-sxm",
             "instances": 1, "batching": {"max_num_seqs": 8, "max_batched_tokens": 8192}},
            {"name": "decode", "role": "decode", "accelerator": "nvidia-h100-sxm",
             "instances": 2},
        ],
        "interconnect": {"paths": [{"from": "prefill", "to": "decode", "hops": [
            # slow on purpose: transfers take seconds, so faults land mid-transfer
            {"name": "wan", "kind": "nic", "bandwidth": "100 kbps", "latency": "1 ms"}]}]},
        "lifecycle": protocol,
        "workload": {"synthetic": {"rate": "1 req/s", "requests": 10, "input_tokens": 256,
                                   "output_tokens": 8}},
        "sla": {"ttft": "10 s", "tpot": "1 s"},
        "faults": faults or {},
    }  # fmt: skip
    data.update(over)
    return hetsim.scenario_from_dict(data)


def one(arrival=0.0, n_in=256, n_out=8):
    return [RequestChunk(np.array([0]), np.array([arrival]), np.array([n_in]), np.array([n_out]))]


def test_decode_crash_mid_transfer_under_pull_frees_prefill_at_lease_expiry():
    # 256 tokens x 1 KiB = 256 KiB at 100 kbit/s x 0.8 (10 kB/s): ~26 s of transfer
    sc = scenario("pull", {"events": [
        {"kind": "instance_crash", "target": "decode", "at": "5 s", "duration": "100 s"}],
        "recovery": "fail"})  # fmt: skip
    res = simulate(sc, requests=one(), sample_interval=0.5)
    row = res.requests.iloc[0]
    assert row["status"] == "failed" and "crashed" in row["failure_reason"]
    ts = res.timeseries[res.timeseries["pool"] == "prefill"].set_index("time_s")
    lease_end = 5.0 + 30 * 2 / 3  # vLLM: 2/3 of the 30 s lease after the last heartbeat
    assert ts.loc[lease_end - 0.5, "kv_held_blocks"] > 0  # still lent out
    assert ts.loc[lease_end + 0.5, "kv_held_blocks"] == 0  # freed at expiry
    assert res.summary.faults["lease_expiries"] == 1
    assert res.summary.kv_blocks_leaked == 0


def test_prefill_crash_under_push_releases_the_decode_reservation():
    sc = scenario(
        "push",
        {
            "events": [
                {
                    "kind": "instance_crash",
                    "target": "prefill",
                    "at": "0.0001 s",
                    "duration": "60 s",
                }
            ],
            "recovery": "retry",
            "max_retries": 1,
        },  # fmt: skip
        workload={
            "synthetic": {
                "rate": "1 req/s",
                "requests": 1,
                "input_tokens": 8000,
                "output_tokens": 4,
            }
        },
    )
    res = simulate(sc, requests=one(n_in=8000, n_out=4), sample_interval=0.5)
    ts = res.timeseries[res.timeseries["role"] == "decode"]
    reserved = ts.groupby("time_s")["kv_reserved_blocks"].sum()
    # SGLang: decode gives up the reservation after two missed 5 s heartbeats
    assert reserved.loc[9.5] > 0
    assert reserved.loc[10.5] == 0 or reserved.loc[10.5] < reserved.loc[9.5]
    row = res.requests.iloc[0]
    assert row["status"] == "completed" and row["retries"] == 1  # retried once prefill is back
    assert row["prefill_start_s"] >= 60.0
    assert res.summary.kv_blocks_leaked == 0


def test_a_read_after_lease_expiry_is_counted_as_silent_corruption():
    sc = scenario(
        "pull",
        {"events": [{"kind": "link_down", "target": "wan", "at": "1 s", "duration": "40 s"}]},
    )
    res = simulate(sc, requests=one(n_in=64), sample_interval=1.0)
    row = res.requests.iloc[0]
    assert row["corrupted"]  # completed, but decode read blocks prefill had already freed
    assert res.summary.silent_corruptions == 1


def test_lost_notification_holds_prefill_blocks_until_the_lease_runs_out():
    base = simulate(scenario("pull"), requests=one(n_in=64), sample_interval=0.5)
    lost = simulate(
        scenario(
            "pull", {"events": [{"kind": "lost_notification", "probability": 1.0}]}
        ),  # fmt: skip
        requests=one(n_in=64),
        sample_interval=0.5,
    )
    held = lambda r: r.summary.utilisation["prefill"].held_block_s  # noqa: E731
    assert held(lost) > held(base) + 19 * 4  # ~20 s more of 4 held blocks
    assert lost.summary.faults["lost_notifications"] == 1


faults_strategy = st.lists(
    st.one_of(
        st.builds(lambda t, d, i: {"kind": "instance_crash", "target": f"decode[{i}]",
                                   "at": f"{t!r} s", "duration": f"{d!r} s"},
                  st.floats(0, 20), st.floats(0.5, 20), st.integers(0, 1)),
        st.builds(lambda t, d: {"kind": "instance_crash", "target": "prefill", "at": f"{t!r} s",
                                "duration": f"{d!r} s"}, st.floats(0, 20), st.floats(0.5, 20)),
        st.builds(lambda t, d: {"kind": "link_down", "target": "wan", "at": f"{t!r} s",
                                "duration": f"{d!r} s"},
                  st.floats(0, 20), st.floats(0.5, 40)),
        st.builds(lambda t, d, f: {"kind": "link_degraded", "target": "wan", "at": f"{t!r} s",
                                   "duration": f"{d!r} s", "factor": f},
                  st.floats(0, 20), st.floats(0.5, 20), st.floats(0.1, 0.9)),
        st.builds(lambda p: {"kind": "abort_mid_transfer", "probability": p}, st.floats(0, 0.5)),
        st.builds(lambda p: {"kind": "lost_notification", "probability": p}, st.floats(0, 1)),
    ),
    max_size=4,
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    protocol=st.sampled_from(["pull", "push", "store"]),
    events=faults_strategy,
    recovery=st.sampled_from(["retry", "fallback", "fail"]),
    timeout=st.sampled_from([None, "5 s"]),
    requests=st.integers(1, 12),
    seed=st.integers(0, 1000),
)
def test_every_request_ends_and_no_block_leaks_under_random_faults(
    protocol, events, recovery, timeout, requests, seed
):
    extra = {}
    if protocol == "store":
        extra["kv"] = {
            "tiers": [
                {
                    "name": "pool",
                    "kind": "dram",
                    "capacity": "1 GiB",
                    "bandwidth": "1 GB/s",
                    "scope": "cluster",
                }
            ]
        }
        extra["lifecycle"] = {"protocol": "store", "store_tier": "pool"}
    if protocol != "pull":  # only pull has a 'read done' notification to lose (else an input error)
        events = [e for e in events if e["kind"] != "lost_notification"]
    faults = {"events": events, "recovery": recovery}
    if timeout is not None:
        faults["transfer_timeout"] = timeout
    sc = scenario(protocol, faults, seed=seed, **extra,
                  interconnect={"paths": [{"from": "prefill", "to": "decode", "hops": [
                      {"name": "wan", "kind": "nic", "bandwidth": "1 Gbps",
                       "latency": "1 ms"}]}]},
                  workload={"synthetic": {"rate": "2 req/s", "requests": requests,
                                          "input_tokens": {"dist": "uniform", "min": 16,
                                                           "max": 4000},
                                          "output_tokens": {"dist": "uniform", "min": 1,
                                                            "max": 64}}})  # fmt: skip
    res = simulate(sc, sample_interval=0.25)
    s = res.summary
    assert s.requests == requests == s.completed + s.failed
    failed = res.requests[res.requests["status"] == "failed"]
    assert (failed["failure_reason"].str.len() > 0).all()
    assert s.kv_blocks_leaked == 0
    ts = res.timeseries
    allocated = ts["kv_used_blocks"] + ts["kv_reserved_blocks"] + ts["kv_held_blocks"]
    assert (allocated <= ts["kv_capacity_blocks"]).all() and (allocated >= 0).all()


@pytest.mark.parametrize("protocol", ["pull", "push", "store"])
def test_bundled_lifecycle_faults_scenario_under_each_protocol(protocol):
    data = yaml.safe_load(Path("scenarios/lifecycle-faults.yaml").read_text(encoding="utf-8"))
    data["lifecycle"]["protocol"] = protocol
    if protocol != "pull":  # only pull has a 'read done' notification to lose
        data["faults"]["events"] = [
            e for e in data["faults"]["events"] if e["kind"] != "lost_notification"
        ]
    res = simulate(hetsim.scenario_from_dict(data, path=Path("scenarios/lifecycle-faults.yaml")))
    s = res.summary
    assert s.completed + s.failed == s.requests == 2400
    assert s.kv_blocks_leaked == 0
    assert s.faults["instance_crashes"] == 2
    # only pull lends blocks under a lease, so only pull can read after the lease ran out
    assert (s.silent_corruptions > 0) == (protocol == "pull")
    held = s.utilisation["prefill"].held_block_s
    assert (held > 0) == (protocol == "pull")
    states = set(res.lifecycle["state"])
    assert {"queued", "computing", "committed", "freed"} <= states
    assert ("held" in states) == (protocol == "pull")
    assert ("stored" in states) == (protocol == "store")


def test_compare_lifecycles_cli_prints_the_three_protocols():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "hetsim", "simulate", "scenarios/lifecycle-faults.yaml",
         "--compare-lifecycles", "--requests", "300"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for word in ("pull", "push", "store", "silent corruptions", "recomputed tokens"):
        assert word in proc.stdout


def test_store_evicts_past_its_watermark_and_counts_evictions_before_fetch():
    """A store too small for the backlog: objects not yet fetched are evicted (LRU) and their
    requests are prefilled again; nothing leaks and every request ends."""
    sc = scenario(
        "store",
        {"recovery": "retry", "max_retries": 3},
        kv={"tiers": [{"name": "pool", "kind": "dram", "capacity": "8 MiB",
                       "bandwidth": "10 GB/s", "scope": "cluster"}]},
        lifecycle={"protocol": "store", "store_tier": "pool"},
        interconnect={"paths": [{"from": "prefill", "to": "decode", "hops": [
            {"name": "wan", "kind": "nic", "bandwidth": "100 Gbps", "latency": "5 us"}]}]},
        pools=[
            {"name": "prefill", "role": "prefill", "accelerator": "nvidia-h100-sxm",
             "batching": {"max_num_seqs": 64, "max_batched_tokens": 65536}},
            {"name": "decode", "role": "decode", "accelerator": "nvidia-h100-sxm",
             "batching": {"max_num_seqs": 2}},
        ],
        workload={"synthetic": {"rate": "200 req/s", "requests": 60, "input_tokens": 1024,
                                "output_tokens": 64}},
    )  # fmt: skip
    res = simulate(sc, sample_interval=0.05)
    s = res.summary
    assert s.faults["store_evictions"] > 0
    assert s.faults["evicted_before_fetch"] > 0
    assert s.recomputed_tokens > 0
    assert s.completed + s.failed == 60
    assert s.kv_blocks_leaked == 0
    assert "evicted" in set(res.lifecycle["state"])
