"""A run is bounded: its time series in points whatever the simulated span, its clock by a
10^6 s horizon that absurd values hit with an error naming the cause (issue #14)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import simpy
import yaml

import hetsim
from hetsim import InputError
from hetsim.sim.sampler import MAX_POINTS, Sampler
from hetsim.workload import RequestChunk

POOLED = "scenarios/qwen3-32b-4p4d.yaml"  # 4 prefill + 4 decode over one NVLink hop
FAULTS = "scenarios/lifecycle-faults.yaml"
DAY = 86_400.0


def chunk(arrivals, prompt=1024, output=4):
    n = len(arrivals)
    return [
        RequestChunk(
            np.arange(n), np.asarray(arrivals, float), np.full(n, prompt), np.full(n, output)
        )
    ]


def test_ten_days_of_arrivals_keep_the_series_under_the_cap():
    # one request a day for ten days: the interval doubles each time the series fills
    # (at 4096·2^(k-1) s), the 8th time at 524,288 s, so the run ends sampled every 256 s
    sc = hetsim.load_scenario(POOLED)
    res = hetsim.simulate(sc, requests=chunk([k * DAY for k in range(11)]))
    assert res.summary.completed == 11 and res.summary.simulated_s > 10 * DAY
    ts = res.timeseries
    per_instance = ts.groupby("instance").size()
    # 2,048 samples kept up to 524,288 s, then one each 256 s to the first past the last
    # request (finished within seconds of 864,000 s): 864,256 s
    assert (per_instance == 2048 + (864_256 - 524_288) // 256).all()
    assert len(per_instance) == 8 and (per_instance <= MAX_POINTS).all()
    times = np.sort(ts["time_s"].unique())
    assert times[0] == 256 and (np.diff(times) == 256).all()
    assert (ts["sample_interval_s"] == 256).all() and res.summary.sample_interval_s == 256
    assert (res.links["sample_interval_s"] == 256).all()
    assert ts["busy"].between(0, 1).all()
    for pool in res.summary.utilisation.values():
        assert 0 <= pool.busy <= 1


def fake_instance(busy_s=0.0):
    blocks = SimpleNamespace(used=0, reserved=0, held=0, capacity=1)
    return SimpleNamespace(
        gid=0, name="p[0]", pool=SimpleNamespace(name="p"), role="decode",
        batch=SimpleNamespace(n=0), queue_len=0, blocks=blocks, busy_s=busy_s,
    )  # fmt: skip


def test_halving_keeps_every_other_sample_and_averages_busy():
    env = simpy.Environment()
    inst = fake_instance()
    topology = SimpleNamespace(instances=[inst], links=[])
    sampler = Sampler(env, topology, 1.0, max_points=4)
    busy = [1.0, 0.0, 0.5, 0.5, 0.25]  # busy seconds within second k; then idle

    def work():
        for b in busy:
            yield env.timeout(0.5)  # mid-second: never at a sample's time
            inst.busy_s += b
            yield env.timeout(0.5)

    env.process(work())
    env.process(sampler.run())
    env.run()
    ts, _ = sampler.frames()
    # samples at 1, 2, 3, 4 (busy 1, 0, 0.5, 0.5) fill the series: keep 2 and 4, each the
    # mean of its pair; then one every 2 s: at 6 the busy share of [4, 6), 0.25 s of 2 s
    assert ts["time_s"].tolist() == [2.0, 4.0, 6.0]
    assert ts["busy"].tolist() == [0.5, 0.5, 0.125]
    assert sampler.interval == 2.0 and (ts["sample_interval_s"] == 2.0).all()


def test_sampler_points_must_halve_evenly():
    with pytest.raises(ValueError, match="even"):
        Sampler(simpy.Environment(), SimpleNamespace(instances=[], links=[]), 1.0, max_points=5)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        (
            "interconnect.paths.0.hops.0.bandwidth=1e-300 B/s",
            "interconnect.paths[0].hops[0].bandwidth",
        ),
        ("interconnect.paths.0.hops.0.latency=1e9 s", "interconnect.paths[0].hops[0].latency"),
        ("workload.synthetic.rate=1e-300 req/s", "workload.synthetic.rate"),
    ],
)
def test_absurd_values_fail_before_simulating(override, field):
    sc = hetsim.load_scenario(POOLED, overrides=[override])
    with pytest.raises(InputError) as err:
        hetsim.simulate(sc, max_requests=5)
    assert err.value.field == field
    assert "10^6 s" in err.value.message


def test_hop_bandwidth_error_names_the_hop():
    sc = hetsim.load_scenario(
        POOLED, overrides=["interconnect.paths.0.hops.0.bandwidth=1e-300 B/s"]
    )
    with pytest.raises(InputError, match="hop 'nvlink'"):
        hetsim.simulate(sc, max_requests=5)


def test_a_slow_hop_stops_the_run_naming_the_hop():
    # 10 B/s passes the pre-flight (one token's 256 KiB in 7.3 h) but a 1024-token prompt's
    # KV needs about 10^7 s: the guard stops the run at its request's arrival + 10^6 s
    sc = hetsim.load_scenario(POOLED, overrides=["interconnect.paths.0.hops.0.bandwidth=10 B/s"])
    with pytest.raises(InputError) as err:
        hetsim.simulate(sc, requests=chunk([0.0]), sample_interval=None)
    assert err.value.field == "interconnect.paths[0].hops[0].bandwidth"
    assert "request 0 arrived at 0 s" in err.value.message
    assert "KV transfer(s) on hop 'nvlink'" in err.value.message


def test_a_straggler_of_1e300_is_refused_before_it_can_run_for_ever():
    sets = ["faults.events.3.factor=1e300", "faults.events.3.at=0 s"]
    with pytest.raises(InputError) as err:
        hetsim.simulate(FAULTS, sets, max_requests=20, sample_interval=None)
    assert err.value.field == "faults.events[3].factor"
    assert "0.01 to 100" in err.value.message


def test_every_decode_instance_down_for_2e6_s_is_refused_before_it_runs():
    sets = [
        "faults.events.0.target=decode",
        "faults.events.0.at=1 s",
        "faults.events.0.duration=2e6 s",
    ]
    with pytest.raises(InputError) as err:
        hetsim.simulate(FAULTS, sets, max_requests=20, sample_interval=None)
    assert err.value.field == "faults.events[0].duration"
    assert "at most 86,400 s" in err.value.message


def test_arrivals_further_apart_than_the_horizon_stop_the_run():
    sc = hetsim.load_scenario(POOLED)
    with pytest.raises(InputError, match="no request arrives within"):
        hetsim.simulate(sc, requests=chunk([0.0, 2e6]), sample_interval=None)


def test_push_layerwise_with_every_decode_crashing_ends_every_request():
    # the crash restarts requests whose streamed KV waited for its last layer: that wait must
    # not free the new attempt's prefill copy (it raised LifecycleError: none -> freed)
    sets = [
        "lifecycle.protocol=push",
        "kv.layerwise_transfer=true",
        "faults.events.0.target=decode",
        "faults.events.0.at=2 s",
        "faults.events.0.duration=10 s",
    ]
    # less the lost notification only pull can have (under push, an input error)
    data = yaml.safe_load(Path(FAULTS).read_text(encoding="utf-8"))
    events = data["faults"]["events"]
    data["faults"]["events"] = [e for e in events if e["kind"] != "lost_notification"]
    posed = hetsim.scenario_from_dict(data, path=FAULTS, overrides=sets)
    s = hetsim.simulate(posed, max_requests=60, seed=1, sample_interval=None).summary
    assert s.completed + s.failed == s.requests == 60
    assert s.kv_blocks_leaked == 0
    assert s.retries > 0


def test_a_lease_outliving_the_run_is_named():
    # lost 'read done' notifications leave prefill blocks held until the lease ends: 10^9 s
    # after every request has ended
    sets = ["lifecycle.lease=1e9 s", "faults.events.4.probability=1"]
    with pytest.raises(InputError) as err:
        hetsim.simulate(FAULTS, sets, max_requests=20, sample_interval=None)
    assert err.value.field == "lifecycle.lease"
    assert "every request ended by" in err.value.message


def test_transfers_given_up_on_do_not_hold_the_clock():
    # 50 B/s: every KV transfer times out; the network's superseded completion timeouts (due
    # days later) used to keep the run, and its sampler, going until the horizon stopped it
    sets = ["interconnect.paths.0.hops.0.bandwidth=400e-9 Gbps"]
    run_ = hetsim.simulate(FAULTS, sets, max_requests=5)
    s = run_.summary
    assert s.failed == s.requests == 5
    assert s.simulated_s < 3600
    assert run_.timeseries["time_s"].max() <= s.simulated_s


def test_many_instances_keep_fewer_samples_each():
    from hetsim.sim.sampler import MAX_ROWS, points_for

    assert points_for(1) == MAX_POINTS
    assert points_for(4096) == MAX_ROWS // 4096 == 1024
    assert points_for(10**9) == 64
    assert all(
        points_for(n) % 2 == 0 and points_for(n) * n <= max(MAX_ROWS, 64 * n)
        for n in (3, 999, 4097, 70000)
    )
