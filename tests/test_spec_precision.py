"""Precision shorthands: an unquantized ``--dtype`` carries the KV format with it.

vLLM's ``--dtype half`` leaves ``kv_cache_dtype=auto``, so the KV cache is fp16 too. A T4 (Turing:
no bf16) must therefore accept ``precision: fp16`` as it stands. Llama-3.1-8B's KV per token is
2 x 32 layers x 8 KV heads x 128 x 2 B = 131,072 B in fp16 (and in bf16), 65,536 B in fp8.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import hetsim
from hetsim.errors import InputError
from hetsim.spec.scenario import PrecisionPolicy

BASE: dict[str, Any] = {
    "name": "shorthand",
    "model": "Llama-3.1-8B",
    "pools": [
        {
            "name": "serve",
            "role": "colocated",
            "accelerator": "nvidia-t4",
            "tp": 2,
            "precision": "fp16",
            "batching": {"max_num_seqs": 8, "max_batched_tokens": 2048},
        },
    ],
    "workload": {
        "synthetic": {"requests": 4, "rate": "1.0 req/s", "input_tokens": 64, "output_tokens": 4}
    },
    "sla": {"ttft": "2 s", "tpot": "200 ms"},
}


def _scenario(precision: Any, accelerator: str = "nvidia-t4", overrides: list[str] | None = None):
    data = copy.deepcopy(BASE)
    data["pools"][0].update(precision=precision, accelerator=accelerator)
    return hetsim.scenario_from_dict(data, overrides=overrides)


@pytest.mark.parametrize(
    ("shorthand", "kv"),
    [
        ("fp16", "fp16"),
        ("fp32", "fp32"),
        ("bf16", "bf16"),
        ("w8a8", "bf16"),
        ("fp8", "bf16"),
        ("awq", "bf16"),
    ],
)
def test_a_dtype_shorthand_sets_kv_and_a_quantized_one_leaves_the_default(
    shorthand: str, kv: str
) -> None:
    assert PrecisionPolicy.model_validate(shorthand).kv == kv


def test_a_t4_pool_accepts_precision_fp16_as_written() -> None:
    scenario = _scenario("fp16")
    pool = scenario.spec.pools[0]
    assert (pool.precision.weights, pool.precision.activations, pool.precision.kv) == (
        "fp16",
        "fp16",
        "fp16",
    )
    assert scenario.model.kv_bytes_per_token(pool.precision.kv) == 131_072


def test_an_explicit_kv_still_wins_over_the_shorthand() -> None:
    scenario = _scenario("fp16", overrides=["pools.serve.precision.kv=int8"])
    assert scenario.spec.pools[0].precision.kv == "int8"


def test_a_mapping_without_kv_on_a_t4_is_still_refused_by_name() -> None:
    # the shorthand is what carries KV along; a spelled-out mapping keeps the bf16 default
    with pytest.raises(InputError) as err:
        _scenario({"weights": "fp16", "activations": "fp16"})
    text = str(err.value)
    assert "bf16" in text and "nvidia-t4" in text
