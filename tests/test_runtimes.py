"""A serving runtime's costs besides the kernels: overlapped host work, eager launches, CUDA-graph
decode and the frontend before the engine. Hand-computed against runtimes.yaml's figures."""

import numpy as np
import pytest
import yaml

from hetsim.checks.scenario import scenario_from_dict
from hetsim.errors import InputError
from hetsim.perf.runtimes import RUNTIME_FILE, RuntimeOverheads, runtime_overheads
from hetsim.simulation import simulate

VLLM = RuntimeOverheads("t", step_host=2e-3, overlap=True, launch=10e-6, graph_max_batch=4,
                        request_fixed=1e-3, tokenize_rate=500_000.0, mixed_chunk=True)  # fmt: skip


def test_overlapped_host_work_hides_behind_a_longer_gpu_step_and_bounds_a_shorter_one():
    assert VLLM.step(5e-3, kernels=100, batch=2, prefill=False) == 5e-3
    assert VLLM.step(1e-3, kernels=100, batch=2, prefill=False) == 2e-3
    serial = RuntimeOverheads("s", 2e-3, False, 10e-6, 4, 1e-3, 500_000.0, True)
    assert serial.step(5e-3, kernels=100, batch=2, prefill=False) == pytest.approx(7e-3)


def test_eager_steps_cannot_beat_their_launches_but_graph_decode_can():
    # 1000 kernels x 10 us = 10 ms of launches against 4 ms of kernels
    assert VLLM.step(4e-3, kernels=1000, batch=2, prefill=True) == pytest.approx(10e-3)
    assert VLLM.step(4e-3, kernels=1000, batch=2, prefill=False) == 4e-3  # graph replay
    # a decode batch larger than the captured graphs runs eagerly
    assert VLLM.step(4e-3, kernels=1000, batch=5, prefill=False) == pytest.approx(10e-3)


def test_admission_is_the_fixed_cost_plus_tokenisation():
    assert VLLM.admission(1000) == pytest.approx(1e-3 + 1000 / 500_000)


def test_every_bundled_figure_is_labelled_and_every_runtime_loads():
    raw = yaml.safe_load(RUNTIME_FILE.read_text())
    assert set(raw) == {"vllm", "sglang", "trtllm"}
    for name, figures in raw.items():
        memory = figures.pop("memory")  # KV pool sizing: a group of figures, labelled alike
        for figure in [*figures.values(), *memory.values()]:
            assert figure["confidence"] in ("documented", "assumption")
            assert "source" in figure or "note" in figure
        assert runtime_overheads(name).name == name


def test_an_unknown_runtime_is_an_input_error_naming_the_known_ones():
    with pytest.raises(InputError) as e:
        runtime_overheads("tgi")
    assert "vllm" in str(e.value.allowed)


def _one_request(runtime: str | None) -> dict:
    pool = {
        "name": "engine",
        "role": "colocated",
        "accelerator": "nvidia-h200-sxm",
        "tp": 1,
        "precision": {"weights": "bf16", "activations": "bf16", "kv": "bf16"},
        "batching": {"max_num_seqs": 4, "max_batched_tokens": 8192, "chunk_size": 8192},
    }
    if runtime:
        pool["runtime"] = runtime
    return {
        "name": "one", "model": "Llama-3.1-8B", "pools": [pool], "interconnect": {"paths": []},
        "workload": {"closed_loop": {"concurrency": 1, "requests": 1, "think_time": "0 s",
                                     "input_tokens": {"dist": "fixed", "value": 1000},
                                     "output_tokens": {"dist": "fixed", "value": 4}}},
        "sla": {"ttft": "1 h", "tpot": "1 h"}, "seed": 0,
    }  # fmt: skip


def test_a_request_reaches_the_engine_after_the_runtimes_frontend():
    pytest.importorskip("aiconfigurator_core")
    rows = simulate(scenario_from_dict(_one_request("vllm")), sample_interval=None).requests
    row = rows.iloc[0]
    admission = runtime_overheads("vllm").admission(1000)
    assert row.prefill_start_s - row.arrival_s == pytest.approx(admission, rel=1e-9)
    assert row.ttft_s == pytest.approx(row.first_token_s - row.arrival_s)


def test_without_a_runtime_the_engine_sees_the_request_when_it_is_sent():
    rows = simulate(scenario_from_dict(_one_request(None)), sample_interval=None).requests
    assert np.allclose(rows.prefill_start_s, rows.arrival_s)


def test_entry_pools_naming_two_runtimes_is_an_input_error_naming_both():
    data = _one_request("vllm")
    other = {**data["pools"][0], "name": "engine2", "runtime": "sglang"}
    data["pools"].append(other)
    with pytest.raises(InputError) as e:
        scenario_from_dict(data)
    text = e.value.render()
    assert "vllm" in text and "sglang" in text and "pools[1].runtime" in text
