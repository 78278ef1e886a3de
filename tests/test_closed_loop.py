"""Closed-loop workloads: N clients, each sending its next request when the previous one ends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hetsim
from hetsim.errors import InputError
from hetsim.simulation import simulate
from hetsim.spec.workload import ClosedLoopSpec, RampUpSpec, WorkloadSpec
from hetsim.workload import client_starts, count_requests, iter_requests, load_requests
from hetsim.workload.closed_loop import ramp_offsets

HERE = Path(__file__).parent
SCENARIO = HERE.parent / "scenarios" / "closed-loop-llama70b-h200.yaml"


def closed(**over) -> dict:
    spec = {"concurrency": 4, "requests": 60, "input_tokens": 512, "output_tokens": 64}
    spec.update(over)
    return spec


def scenario(workload: dict | None = None, faults: dict | None = None, **batching):
    data = {
        "name": "closed-loop-test",
        "model": "tiny-llama",
        "pools": [
            {
                "name": "serve",
                "role": "colocated",
                "accelerator": "nvidia-h100-sxm",
                "instances": 1,
                "batching": {"max_num_seqs": 64, "max_batched_tokens": 4096, **batching},
            }
        ],
        "workload": {"closed_loop": closed()} if workload is None else workload,
        "sla": {"ttft": "1 s", "tpot": "50 ms"},
        "seed": 3,
    }
    if faults is not None:
        data["faults"] = faults
    return hetsim.scenario_from_dict(data)


def disaggregated(workload: dict):
    """One prefill and one decode instance over a NIC (the pull protocol)."""
    data = scenario(workload).spec.model_dump(by_alias=True, exclude_none=True)
    data["pools"] = [
        {
            "name": "prefill",
            "role": "prefill",
            "accelerator": "nvidia-h100-sxm",
            "batching": {"max_num_seqs": 8, "max_batched_tokens": 8192},
        },
        {
            "name": "decode",
            "role": "decode",
            "accelerator": "nvidia-h100-sxm",
            "batching": {"max_num_seqs": 64, "max_batched_tokens": 256},
        },
    ]
    hop = {"name": "nic", "kind": "nic", "bandwidth": "400 Gbps", "latency": "5 us"}
    data["interconnect"] = {"paths": [{"from": "prefill", "to": "decode", "hops": [hop]}]}
    return hetsim.scenario_from_dict(data)


def run(**over):
    return simulate(scenario({"closed_loop": closed(**over)}), sample_interval=None)


def in_flight(rows, t: float) -> int:
    """Requests in the system at t: arrived at or before t, not yet finished."""
    return int(((rows["arrival_s"] <= t) & (t < rows["finish_s"])).sum())


# ---- the loop itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("build", [scenario, disaggregated], ids=["colocated", "disaggregated"])
def test_exactly_n_requests_in_flight_between_the_ramp_and_the_tail(build):
    n = 6
    wl = closed(
        concurrency=n,
        requests=120,
        input_tokens={"dist": "uniform", "min": 100, "max": 2000},
        output_tokens={"dist": "uniform", "min": 8, "max": 200},
        ramp_up={"strategy": "uniform", "duration": "200 ms"},
    )
    sc = build({"closed_loop": wl})
    result = simulate(sc, sample_interval=None)
    reqs = result.requests
    assert (reqs["status"] == "completed").all() and result.summary.kv_blocks_leaked == 0
    ramp_end = client_starts(sc.spec.workload.closed_loop, sc.spec.seed)[-1]  # last client in
    tail = reqs["arrival_s"].max()  # the last request sent: clients stop from here on
    times = np.concatenate([reqs["arrival_s"], reqs["finish_s"]])
    window = np.unique(times[(times >= ramp_end) & (times < tail)])
    assert len(window) > 100  # the check looks at every moment the count could change
    assert {in_flight(reqs, t) for t in window} == {n}
    # during the ramp and the tail, never more than n
    rest = np.unique(times[(times < ramp_end) | (times >= tail)])
    assert max(in_flight(reqs, t) for t in rest) <= n


def test_littles_law_holds_with_the_summary_occupancy():
    result = run(
        concurrency=5,
        requests=80,
        think_time="30 ms",
        input_tokens={"dist": "lognormal", "mean": 800, "cv": 0.5},
        output_tokens={"dist": "uniform", "min": 4, "max": 120},
    )
    s = result.summary
    assert s.completed == s.requests == 80
    # mean in system = throughput (requests/s) x mean time in system
    assert s.occupancy_mean == pytest.approx(s.request_rate * s.e2e_s.mean, rel=1e-9)
    # and it is below the concurrency, because clients spend part of the time thinking
    assert 1 < s.occupancy_mean < 5


def test_a_single_client_without_think_time_sends_back_to_back():
    reqs = run(concurrency=1, requests=12, ramp_up={"strategy": "none"}).requests
    reqs = reqs.sort_values("request_id")
    arrival, finish = reqs["arrival_s"].to_numpy(), reqs["finish_s"].to_numpy()
    assert arrival[0] == 0.0
    assert (arrival[1:] == finish[:-1]).all()  # the same simulated instant, not just close


def test_think_time_adds_exactly_between_a_response_and_the_next_request():
    base = run(concurrency=1, requests=10, ramp_up={"strategy": "none"}).requests
    slow = run(concurrency=1, requests=10, think_time="250 ms", ramp_up={"strategy": "none"})
    reqs = slow.requests.sort_values("request_id")
    gaps = reqs["arrival_s"].to_numpy()[1:] - reqs["finish_s"].to_numpy()[:-1]
    assert gaps == pytest.approx(np.full(9, 0.25), abs=1e-12)
    # alone in the system, each request takes what it took without thinking
    assert reqs["e2e_s"].to_numpy() == pytest.approx(base["e2e_s"].to_numpy(), rel=1e-12)
    assert slow.summary.span_s == pytest.approx(
        base["finish_s"].max() - base["arrival_s"].min() + 9 * 0.25, rel=1e-12
    )


def test_requests_sent_total_requests_and_max_requests_stops_earlier():
    assert len(run(concurrency=8, requests=50).requests) == 50
    sc = scenario({"closed_loop": closed(concurrency=8, requests=50)})
    assert len(simulate(sc, max_requests=20, sample_interval=None).requests) == 20
    # more clients than requests: only as many clients start as there are requests
    assert len(run(concurrency=8, requests=3).requests) == 3


def test_failures_free_their_clients_slot_after_the_think_time():
    # the only instance crashes at 1 s with the four requests in flight; recovery fails them.
    # Their clients send again 100 ms later, and the loop still sends all its requests
    faults = {
        "recovery": "fail",
        "events": [
            {"kind": "instance_crash", "target": "serve[0]", "at": "1 s", "duration": "0.5 s"}
        ],
    }
    wl = closed(
        concurrency=4,
        requests=100,
        think_time="100 ms",
        output_tokens=256,
        ramp_up={"strategy": "linear", "duration": "100 ms"},
    )
    reqs = simulate(scenario({"closed_loop": wl}, faults), sample_interval=None).requests
    failed = reqs[reqs["status"] == "failed"]
    assert len(reqs) == 100
    assert len(failed) == 4 and (failed["failure_reason"] == "serve[0] crashed").all()
    assert (failed["arrival_s"] < 1.0).all()
    resent = reqs[np.isclose(reqs["arrival_s"], 1.1, rtol=0, atol=1e-12)]
    assert len(resent) == 4 and (resent["status"] == "completed").all()


def test_same_seed_same_run_and_another_seed_another():
    wl = closed(
        concurrency=3,
        requests=40,
        input_tokens={"dist": "lognormal", "mean": 600, "cv": 1.0},
        output_tokens={"dist": "uniform", "min": 2, "max": 90},
    )
    a = simulate(scenario({"closed_loop": wl}), sample_interval=None).requests
    b = simulate(scenario({"closed_loop": wl}), sample_interval=None).requests
    c = simulate(scenario({"closed_loop": wl}), seed=4, sample_interval=None).requests
    assert a.equals(b)
    assert not a["input_tokens"].equals(c["input_tokens"])
    assert not a["arrival_s"].equals(c["arrival_s"])


def test_warmup_progress_and_counting_follow_the_requests_sent():
    sc = scenario({"closed_loop": closed(requests=40), "warmup_requests": 10})
    assert count_requests(sc.spec.workload, HERE, 0) == 40
    seen: list[tuple[int, int]] = []
    result = simulate(sc, sample_interval=None, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (40, 40)
    assert result.summary.warmup_requests == 10 and result.summary.requests == 30
    # warm-up is by arrival: the ten earliest requests
    warm = result.requests.sort_values("arrival_s")["warmup"].to_numpy()
    assert warm[:10].all() and not warm[10:].any()


def test_hetsim_simulate_runs_the_bundled_closed_loop_scenario():
    args = [sys.executable, "-m", "hetsim", "simulate", str(SCENARIO), "--requests", "100"]
    proc = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["requests"] == summary["completed"] == 100
    # 64 clients, 100 requests: the other 36 are sent as first answers come back, so the
    # system never holds more than 64
    assert 0 < summary["occupancy_mean"] <= 64


# ---- ramp-up and lengths -------------------------------------------------------------------------


def test_ramp_up_strategies_place_the_first_requests():
    rng = np.random.default_rng(0)
    assert ramp_offsets(RampUpSpec(strategy="none"), 4, rng).tolist() == [0, 0, 0, 0]
    linear = ramp_offsets(RampUpSpec(strategy="linear", duration="2 s"), 4, rng)
    assert linear.tolist() == [0.0, 0.5, 1.0, 1.5]
    uniform = ramp_offsets(RampUpSpec(duration="2 s"), 10_000, rng)
    assert (np.diff(uniform) >= 0).all() and uniform[0] >= 0 and uniform[-1] < 2.0
    assert uniform.mean() == pytest.approx(1.0, abs=0.03)  # sd of the mean: 2/sqrt(12e4) = 0.006


def test_the_default_ramp_is_uniform_over_one_second_and_seeded():
    spec = ClosedLoopSpec(concurrency=64, requests=64, input_tokens=10, output_tokens=10)
    assert spec.ramp_up.strategy == "uniform" and spec.ramp_up.duration == 1.0
    a, b = client_starts(spec, 7), client_starts(spec, 7)
    assert (a == b).all() and not (a == client_starts(spec, 8)).all()
    # with more requests than clients the loop starts every client at its offset; here
    # requests are long enough that none ends before the last client is in
    sc = scenario({"closed_loop": closed(concurrency=64, requests=64, output_tokens=2000)})
    first = np.sort(simulate(sc, sample_interval=None).requests["arrival_s"].to_numpy())
    assert (first == client_starts(sc.spec.workload.closed_loop, sc.spec.seed)).all()


def test_lengths_are_drawn_in_issue_order_whatever_the_concurrency():
    lengths = {
        "input_tokens": {"dist": "uniform", "min": 10, "max": 3000},
        "output_tokens": {"dist": "lognormal", "mean": 50, "cv": 1.0},
    }
    one = run(concurrency=1, requests=30, **lengths).requests
    many = run(concurrency=7, requests=30, **lengths).requests
    for col in ("input_tokens", "output_tokens"):
        assert one[col].tolist() == many[col].tolist()  # request k gets the k-th draw
    # and ids follow the order requests are sent
    assert (np.diff(many.sort_values("request_id")["arrival_s"].to_numpy()) >= 0).all()


def test_the_workload_stream_has_lengths_and_no_arrival_times():
    wl = WorkloadSpec(
        closed_loop=closed(requests=1000, input_tokens={"dist": "uniform", "min": 1, "max": 9})
    )
    chunk = load_requests(wl, HERE, 0, chunk_size=128)
    assert chunk.request_id.tolist() == list(range(1000))
    assert np.isnan(chunk.arrival_s).all()
    assert set(chunk.input_tokens.tolist()) == set(range(1, 10))
    assert (chunk.output_tokens == 64).all()
    # chunking does not change the draws
    assert (load_requests(wl, HERE, 0, chunk_size=1000).input_tokens == chunk.input_tokens).all()


def test_empirical_lengths_resample_a_traces_pairs_as_synthetic_does():
    import csv

    trace = {"path": "azure_conv_2k.csv", "format": "azure"}
    lengths = {"dist": "empirical", "trace": trace}
    wl = WorkloadSpec(
        closed_loop=closed(requests=3000, input_tokens=lengths, output_tokens=lengths)
    )
    chunk = load_requests(wl, HERE / "data", 0)
    with (HERE / "data" / "azure_conv_2k.csv").open(newline="") as fh:
        rows = {(int(x["ContextTokens"]), int(x["GeneratedTokens"])) for x in csv.DictReader(fh)}
    got = set(zip(chunk.input_tokens.tolist(), chunk.output_tokens.tolist(), strict=True))
    assert got <= rows and len(got) > 500  # (input, output) pairs kept together


def test_closed_loop_requests_cannot_be_replayed_open_loop():
    wl = WorkloadSpec(closed_loop=closed(requests=5))
    chunks = list(iter_requests(wl, HERE, 0))
    with pytest.raises(ValueError, match="closed loop"):
        simulate(scenario(), requests=chunks, sample_interval=None)


# ---- input errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workload", "field", "words"),
    [
        ({"closed_loop": closed(concurrency=0)}, "workload.closed_loop.concurrency", "greater"),
        ({"closed_loop": closed(requests=0)}, "workload.closed_loop.requests", "greater"),
        ({"closed_loop": closed(think_time="-1 s")}, "workload.closed_loop.think_time", "negative"),
        (
            {"closed_loop": closed(ramp_up={"strategy": "poisson"})},
            "workload.closed_loop.ramp_up.strategy",
            "'uniform'",
        ),
        (
            {"closed_loop": closed(ramp_up={"duration": "-2 s"})},
            "workload.closed_loop.ramp_up.duration",
            "negative",
        ),
        (
            {
                "closed_loop": closed(),
                "synthetic": {"rate": "1 req/s", "input_tokens": 5, "output_tokens": 5},
            },
            "workload",
            "exactly one of `trace`, `synthetic` or `closed_loop`",
        ),
        ({"closed_loop": closed(rate=3)}, "workload.closed_loop.rate", "rate"),
    ],
)
def test_bad_closed_loop_settings_are_input_errors(workload, field, words):
    with pytest.raises(InputError) as err:
        scenario(workload)
    assert err.value.field == field
    assert words in str(err.value)


# ---- invariants over random loops ----------------------------------------------------------------


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 12),
    requests=st.integers(1, 80),
    think_ms=st.sampled_from([0, 5, 40]),
    strategy=st.sampled_from(["none", "uniform", "linear"]),
    seed=st.integers(0, 2**16),
)
def test_any_loop_sends_every_request_never_exceeds_n_and_obeys_littles_law(
    n, requests, think_ms, strategy, seed
):
    wl = closed(
        concurrency=n,
        requests=requests,
        think_time=f"{think_ms} ms",
        # strategy none has no duration (giving it one is an input error)
        ramp_up={"strategy": strategy} | ({} if strategy == "none" else {"duration": "50 ms"}),
        input_tokens={"dist": "uniform", "min": 16, "max": 3000},
        output_tokens={"dist": "uniform", "min": 1, "max": 100},
    )
    result = simulate(scenario({"closed_loop": wl}), seed=seed, sample_interval=None)
    reqs, s = result.requests, result.summary
    assert len(reqs) == s.completed == requests
    times = np.unique(reqs["arrival_s"])
    assert max(in_flight(reqs, t) for t in times) <= n
    if requests > 1:
        assert s.occupancy_mean == pytest.approx(s.request_rate * s.e2e_s.mean, rel=1e-9)
