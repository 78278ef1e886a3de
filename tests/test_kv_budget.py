"""The KV pool follows the serving runtime's own sizing rule (issue #13's capacity cliff).

Golden values are hand-computed for Llama-3.1-70B, fp8 weights/activations/KV, tp 2 on one
H200 (140 GiB as nvidia-smi reports it), max_batched_tokens 8192, max_num_seqs 256, pages of 16:

* weights per device: 80 layers x 855,638,016 linear parameters at 1 byte, plus embeddings,
  LM head and norms at 2 bytes, over tp 2: 36,335,222,784 B (hetsim's weight count, dense);
* activation estimate: 8192 tokens x 2 B x (4 x 8192 + (64 + 2 x 8) x 128 / 2 + 2 x 28672 / 2)
  + 256 sequences x 128,256 / 2 x 4 B of fp32 logits = 1,156,186,112 B;
* KV per token per device: 2 x 80 layers x 8 heads x 128 x 1 B / 2 = 81,920 B.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import hetsim
from hetsim.errors import InputError
from hetsim.perf.runtimes import RUNTIME_FILE, runtime_memory

GIB = 2**30
MIB = 2**20
CAPACITY = 140 * GIB
WEIGHTS = 36_335_222_784
ACTIVATIONS = 1_156_186_112
PER_TOKEN = 81_920
PAGE = 16

BASE: dict[str, Any] = {
    "name": "kv-budget",
    "model": "Llama-3.1-70B",
    "pools": [
        {
            "name": "serve",
            "role": "colocated",
            "accelerator": "nvidia-h200-sxm",
            "tp": 2,
            "precision": {"weights": "fp8_e4m3", "activations": "fp8_e4m3", "kv": "fp8_e4m3"},
            "batching": {"max_num_seqs": 256, "max_batched_tokens": 8192},
        }
    ],
    "workload": {
        "synthetic": {"requests": 10, "rate": "1.0 req/s", "input_tokens": 128, "output_tokens": 16}
    },
    "sla": {"ttft": "2 s", "tpot": "50 ms"},
}


def _footprint(**pool: Any) -> Any:
    data = copy.deepcopy(BASE)
    data["pools"][0].update(pool)
    return hetsim.scenario_from_dict(data).footprints["serve"]


def _tokens(room: float) -> int:
    return int(room // (PER_TOKEN * PAGE)) * PAGE


def test_the_golden_inputs_are_what_hetsim_computes() -> None:
    fp = _footprint()
    assert fp.capacity_per_device == CAPACITY
    assert fp.weights_per_device == WEIGHTS
    assert fp.activations_per_device == ACTIVATIONS
    assert fp.kv_bytes_per_token_per_device == PER_TOKEN


def test_without_a_runtime_the_kv_pool_is_unchanged() -> None:
    fp = _footprint()
    room = 0.9 * CAPACITY - WEIGHTS - ACTIVATIONS - 1 * GIB
    assert fp.kv_room_per_device == pytest.approx(room)
    assert fp.kv_capacity_tokens == _tokens(room) == 1_180_736  # as before runtime rules
    assert fp.kv_rule.startswith("hetsim memory_utilization 0.9 of 140 GiB")


def test_vllm_caps_total_memory_at_gpu_memory_utilization() -> None:
    fp = _footprint(runtime="vllm")
    # 0.92 x capacity - weights - activation peak - 0.5 GiB CUDA graphs - 1 GiB non-torch
    room = 0.92 * CAPACITY - WEIGHTS - ACTIVATIONS - 1.5 * GIB
    assert fp.kv_room_per_device == pytest.approx(room)
    assert fp.kv_capacity_tokens == _tokens(room) == 1_210_880
    assert fp.kv_rule.startswith("vLLM gpu_memory_utilization 0.92 of 140 GiB − weights")


def test_sglang_caps_weights_and_kv_at_its_derived_mem_fraction_static() -> None:
    # reserved = 512 + 1.5 x 8192 chunk tokens + 2 x 256 graph batch + 1024 x tp 2 / 8 MiB
    reserved = (512 + 1.5 * 8192 + 2 * 256 + 1024 * 2 / 8) * MIB
    assert reserved == 13_568 * MIB  # above the 10 GiB floor of > 60 GiB devices
    fraction = round((143_360 - 13_568) / 143_360, 3)
    assert fraction == 0.905
    assert runtime_memory("sglang").sglang_fraction(CAPACITY, _pool(runtime="sglang")) == 0.905
    fp = _footprint(runtime="sglang")
    room = 0.905 * CAPACITY - WEIGHTS  # activations and graphs are inside the 9.5% left out
    assert fp.kv_room_per_device == pytest.approx(room)
    assert fp.kv_capacity_tokens == _tokens(room) == 1_217_136
    assert fp.kv_rule == "SGLang mem_fraction_static 0.905 of 140 GiB − weights"


def test_sglang_reserve_has_a_10_gib_floor_on_large_devices() -> None:
    pool = _pool(runtime="sglang", batching={"max_num_seqs": 64, "max_batched_tokens": 64})
    # 512 + 1.5 x 2048 + 2 x 256 + 256 = 4352 MiB, lifted to the floor
    assert runtime_memory("sglang").sglang_reserved(CAPACITY, pool) == 10 * GIB


def test_trtllm_takes_free_gpu_memory_fraction_of_what_is_free_after_loading() -> None:
    fp = _footprint(runtime="trtllm")
    room = 0.9 * (CAPACITY - WEIGHTS - ACTIVATIONS - 1 * GIB)
    assert fp.kv_room_per_device == pytest.approx(room)
    assert fp.kv_capacity_tokens == _tokens(room) == 1_227_808
    assert fp.kv_rule.startswith("TRT-LLM free_gpu_memory_fraction 0.9 of (140 GiB − weights")


@pytest.mark.parametrize("runtime", [None, "vllm", "sglang", "trtllm"])
def test_kv_capacity_grows_with_the_memory_fraction(runtime: str | None) -> None:
    extra = {"runtime": runtime} if runtime else {}
    tokens = [
        _footprint(memory_utilization=f, **extra).kv_capacity_tokens
        for f in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    ]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_an_explicit_memory_utilization_is_the_runtimes_fraction() -> None:
    fp = _footprint(runtime="vllm", memory_utilization=0.9)
    room = 0.9 * CAPACITY - WEIGHTS - ACTIVATIONS - 1.5 * GIB
    assert fp.kv_room_per_device == pytest.approx(room)
    assert fp.kv_rule.startswith("vLLM gpu_memory_utilization 0.9 of")


def test_a_pool_that_does_not_fit_under_its_runtime_rule_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        _footprint(runtime="vllm", memory_utilization=0.25)
    message = err.value.render()
    assert "does not fit" in message
    assert "of fp8_e4m3 weights" in message and "left for KV: -" in message
    assert "vLLM gpu_memory_utilization 0.25 of 140 GiB" in message


def test_every_memory_figure_is_labelled() -> None:
    raw = yaml.safe_load(RUNTIME_FILE.read_text())
    for runtime, figures in raw.items():
        for name, figure in figures["memory"].items():
            assert figure["confidence"] in ("documented", "assumption"), (runtime, name)
            if figure["confidence"] == "documented":
                assert figure.get("source"), (runtime, name)
            else:
                assert figure.get("note") or figure.get("source"), (runtime, name)


def _pool(**fields: Any) -> Any:
    data = copy.deepcopy(BASE)
    data["pools"][0].update(fields)
    return hetsim.scenario_from_dict(data).spec.pools[0]


@pytest.mark.parametrize(
    ("runtime", "printed"),
    [
        (None, "KV pool: hetsim memory_utilization 0.9 of 140 GiB − weights − activations"),
        ("vllm", "KV pool: vLLM gpu_memory_utilization 0.92 of 140 GiB − weights − activations"),
        ("sglang", "KV pool: SGLang mem_fraction_static 0.905 of 140 GiB − weights"),
        ("trtllm", "KV pool: TRT-LLM free_gpu_memory_fraction 0.9 of (140 GiB − weights"),
    ],
)
def test_check_prints_the_rule_that_sized_the_kv_pool(
    runtime: str | None, printed: str, tmp_path: Path
) -> None:
    data = copy.deepcopy(BASE)
    if runtime:
        data["pools"][0]["runtime"] = runtime
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = subprocess.run(
        [sys.executable, "-m", "hetsim", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert result.returncode == 0, result.stderr
    assert printed in " ".join(result.stdout.split())
