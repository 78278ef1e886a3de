"""Who owns a request's KV blocks while it crosses the boundary, per lifecycle protocol: the
block-seconds each side accrues for one request on an idle cluster, worked out by hand from the
request's own timestamps."""

import math

import numpy as np
import pytest

import hetsim
from hetsim.simulation import simulate
from hetsim.workload import RequestChunk

PROMPT = 256


def scenario(protocol: str):
    data = {
        "name": "handoff",
        "model": "tiny-llama",
        "pools": [
            {"name": "prefill", "role": "prefill", "accelerator": "nvidia-h100-sxm"},
            {"name": "decode", "role": "decode", "accelerator": "nvidia-h100-sxm"},
        ],
        "interconnect": {"paths": [{"from": "prefill", "to": "decode", "hops": [
            # slow, so that each phase lasts long enough to tell apart
            {"name": "wan", "kind": "nic", "bandwidth": "100 kbps", "latency": "1 ms"}]}]},
        "kv": {"tiers": [{"name": "pool", "kind": "dram", "capacity": "1 GiB",
                          "bandwidth": "1 GB/s", "scope": "cluster"}]},
        "lifecycle": {"protocol": protocol, "store_tier": "pool"},
        "workload": {"synthetic": {"rate": "1 req/s", "requests": 1, "input_tokens": PROMPT,
                                   "output_tokens": 8}},
        "sla": {"ttft": "10 s", "tpot": "1 s"},
    }  # fmt: skip
    return hetsim.scenario_from_dict(data)


def run(protocol: str):
    sc = scenario(protocol)
    one = RequestChunk(np.array([0]), np.array([0.5]), np.array([PROMPT]), np.array([8]))
    res = simulate(sc, requests=[one], sample_interval=None)
    row = res.requests.iloc[0]
    assert row["status"] == "completed"
    blocks = {p: math.ceil(PROMPT / sc.footprints[p].kv_page_tokens) for p in sc.footprints}
    return row, res.summary.utilisation, blocks


def test_pull_lends_the_prompt_blocks_from_prompt_end_until_decode_has_read_them():
    row, util, blocks = run("pull")
    lent = row["transfer_end_s"] - row["prefill_end_s"]
    assert util["prefill"].held_block_s == pytest.approx(blocks["prefill"] * lent)
    # decode reserves only when it starts reading
    reading = row["transfer_end_s"] - row["transfer_start_s"]
    assert util["decode"].reserved_block_s == pytest.approx(blocks["decode"] * reading)


def test_push_reserves_decode_blocks_from_arrival_until_the_kv_is_written():
    row, util, blocks = run("push")
    waiting = row["transfer_end_s"] - row["arrival_s"]
    assert util["decode"].reserved_block_s == pytest.approx(blocks["decode"] * waiting)
    assert util["prefill"].held_block_s == 0.0  # nothing is lent: prefill writes, then frees


def test_store_lends_nothing_and_reserves_decode_blocks_only_for_the_fetch():
    row, util, blocks = run("store")
    assert util["prefill"].held_block_s == 0.0
    # the reservation starts after the write into the store, so it is shorter than both legs
    both_legs = row["transfer_end_s"] - row["transfer_start_s"]
    assert 0.0 < util["decode"].reserved_block_s < blocks["decode"] * both_legs


def _movement(nbytes: float, timeout: float) -> list[tuple[str, float]]:
    """One KV movement over a 1 GB/s link with 1 ms of latency and a transfer timeout; what
    happened to it, and when."""
    import types

    import simpy

    from hetsim.sim.handoff.base import _Move
    from hetsim.sim.network import Network

    env = simpy.Environment()
    net = Network(env)
    link = net.add_link("nic", 1e9, 0.001)
    seen: list[tuple[str, float]] = []
    req = types.SimpleNamespace(
        id=1, retries=0, t_transfer_start=math.nan, t_transfer_end=math.nan, transfer=None
    )
    handoff = types.SimpleNamespace(
        env=env,
        network=net,
        transfer_timeout=timeout,
        requests=types.SimpleNamespace(current=lambda r, attempt: True),
        faults=types.SimpleNamespace(transfer_started=lambda *a: None),
        _timed_out=lambda r, t, attempt: (net.abort(t), seen.append(("timed out", env.now))),
        _failed=lambda *a: seen.append(("failed", env.now)),
    )
    _Move(handoff, req, nbytes, [link], 0.0, lambda: seen.append(("landed", env.now))).convert(0.0)
    env.run()
    return seen


def test_a_kv_landing_exactly_at_its_transfer_timeout_lands():
    """1 ms of latency plus 0.999 GB at 1 GB/s ends at 1 s, the timeout: the last byte is in
    (as when the movement was a process waiting on either); a byte later, it times out."""
    assert _movement(0.999e9, timeout=1.0) == [("landed", 1.0)]
    assert _movement(0.999e9 + 1, timeout=1.0) == [("timed out", 1.0)]
