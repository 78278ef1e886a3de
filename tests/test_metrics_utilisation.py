"""Pool utilisation is busy time inside the measured window over that window: in [0, 1]."""

import numpy as np
import pytest
import simpy

import hetsim
from hetsim.simulation import simulate
from hetsim.workload import RequestChunk


def colocated(warmup: int):
    return hetsim.scenario_from_dict(
        {
            "name": "tiny-colocated",
            "model": "tiny-llama",
            "pools": [
                {
                    "name": "serve",
                    "role": "colocated",
                    "accelerator": "nvidia-h100-sxm",
                    "instances": 1,
                    "batching": {"max_num_seqs": 8, "max_batched_tokens": 8192},
                }
            ],
            "workload": {
                "synthetic": {
                    "rate": "1 req/s",
                    "requests": 2,
                    "input_tokens": 512,
                    "output_tokens": 8,
                },
                "warmup_requests": warmup,
            },
            "sla": {"ttft": "1 s", "tpot": "50 ms"},
        }
    )


def two_apart():
    """Two requests 100 s apart: each runs alone, so the instance is busy exactly its E2E."""
    return [
        RequestChunk(
            np.array([0, 1]), np.array([0.0, 100.0]), np.array([512, 512]), np.array([8, 8])
        )
    ]


def test_one_warmup_request_leaves_a_window_the_instance_is_busy_throughout():
    run = simulate(colocated(warmup=1), requests=two_apart())
    # the window opens as request 1 arrives; the instance serves it alone until it leaves
    assert run.summary.utilisation["serve"].busy == pytest.approx(1.0, rel=1e-9)


def test_without_warmup_busy_is_both_requests_service_over_the_whole_span():
    run = simulate(colocated(warmup=0), requests=two_apart())
    e2e = run.requests["e2e_s"].to_numpy()
    expected = e2e.sum() / run.requests["finish_s"].max()  # window [0, last finish]
    assert run.summary.utilisation["serve"].busy == pytest.approx(expected, rel=1e-9)
    assert 0.0 < expected < 0.1  # two short requests over 100 s


@pytest.mark.parametrize(
    ("path", "requests", "warmup"),
    [
        ("scenarios/cphd-glm51.yaml", 150, 100),
        ("scenarios/qwen3-32b-4p4d.yaml", 120, 60),
        ("scenarios/qwen3-32b-colocated.yaml", 120, 30),
        ("scenarios/lifecycle-faults.yaml", 120, 40),
        ("scenarios/closed-loop-llama70b-h200.yaml", 80, 20),
    ],
)
def test_utilisation_stays_a_share_with_warmup(path, requests, warmup):
    run = simulate(path, [f"workload.warmup_requests={warmup}"], max_requests=requests)
    assert run.summary.warmup_requests == warmup
    for pool, u in run.summary.utilisation.items():
        assert 0.0 <= u.busy <= 1.0 + 1e-9, (pool, u.busy)


def test_events_is_what_simpy_processed(monkeypatch):
    """The reported count equals the events simpy's loop stepped through, counted here apart."""
    processed = 0
    step = simpy.Environment.step

    def counting(env):
        nonlocal processed
        step(env)  # raises EmptySchedule once nothing is left: that call processed nothing
        processed += 1

    monkeypatch.setattr(simpy.Environment, "step", counting)
    run = simulate(colocated(warmup=0), requests=two_apart())
    assert run.summary.events == processed > 0
