"""MiniMax-M2 normalises q and k over all heads at once (``qk_norm_type: per_layer``): with the
heads split over tensor-parallel ranks every layer all-reduces each token's partial sums of
squares (vLLM ``minimax_qk_norm_fusion``, SGLang ``MiniMaxM2RMSNormTP``). Hand-computed against
the measured excerpt under tests/data/measured."""

import json

import numpy as np
import pandas as pd
import pytest
from test_perf_measured import EXCERPT, LABEL, RAW

from hetsim.errors import InputError
from hetsim.perf.measured import load_tables, save_tables
from hetsim.perf.ops import ring_allreduce_bytes
from hetsim.perf.step import InstanceConfig, StepModel
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import ModelConfig, bundled_models, load_model

MINIMAX = load_model("MiniMax-M2.5")


@pytest.fixture(scope="module")
def h200(tmp_path_factory):
    npz = save_tables(load_tables("h200_sxm", "vllm", root=EXCERPT),
                      tmp_path_factory.mktemp("m") / "t.npz")  # fmt: skip
    return load_profile("nvidia-h200-sxm").model_copy(update={"measured_tables": str(npz)})


def _ops(sm: StepModel, batch: int) -> pd.DataFrame:
    return sm.explain_decode(np.full(batch, 1000)).to_frame().set_index("name")


def test_minimax_norms_q_and_k_across_heads_and_qwen3_per_head():
    assert MINIMAX.qk_norm_across_heads
    assert not load_model("Qwen3-32B").qk_norm_across_heads  # q_norm/k_norm over head_dim


def _config(**changes) -> dict:
    config = json.loads(bundled_models()["MiniMax-M2.5"].read_text())
    return {**config, **changes}


def test_a_per_head_norm_or_none_all_reduces_nothing_and_an_unknown_kind_is_refused():
    per_head = ModelConfig.from_hf_config(_config(qk_norm_type="per_head"), "m")
    assert not per_head.qk_norm_across_heads
    assert not ModelConfig.from_hf_config(_config(use_qk_norm=False), "m").qk_norm_across_heads
    with pytest.raises(InputError) as e:
        ModelConfig.from_hf_config(_config(qk_norm_type="per_group"), "m")
    assert e.value.field == "qk_norm_type" and "per_layer" in str(e.value.allowed)


def test_each_layer_all_reduces_two_fp32_sums_per_token_under_tp():
    sm = StepModel(MINIMAX, load_profile("nvidia-h200-sxm"), InstanceConfig(tp=4))
    op = _ops(sm, 16).loc["qk_norm_allreduce"]
    assert op["count"] == MINIMAX.num_layers
    assert op.bytes == pytest.approx(MINIMAX.num_layers * ring_allreduce_bytes(16 * 8.0, 4))
    alone = StepModel(MINIMAX, load_profile("nvidia-h200-sxm"), InstanceConfig(tp=1))
    assert "qk_norm_allreduce" not in _ops(alone, 16).index


def test_the_measured_all_reduce_prices_it_by_its_message_and_small_ones_at_the_floor(h200):
    df = pd.read_parquet(RAW / "comm/vllm/0.24.0/custom_allreduce_perf.parquet")
    graph = df[(df.num_gpus == 4) & (df.kernel_source == "vLLM_custom_graph")]
    latency = graph.set_index("message_size").latency * 1e-3
    sm = StepModel(MINIMAX, h200, InstanceConfig(tp=4), runtime="vllm")
    # 512 tokens x 2 fp32 = 4,096 bytes: 2,048 bf16 elements' worth
    big = _ops(sm, 512).loc["qk_norm_allreduce"]
    assert big.time == pytest.approx(MINIMAX.num_layers * latency[2048], rel=1e-9)
    assert big.source == LABEL
    # 4 tokens: 16 elements, below the smallest message measured: priced at it, not cheaper
    # or dearer than a larger message (the table is flat there)
    small = _ops(sm, 4).loc["qk_norm_allreduce"]
    assert small.time == pytest.approx(MINIMAX.num_layers * latency[latency.index.min()], rel=1e-9)
    steps = [sm.decode_time(np.full(b, 1000)) for b in range(1, 65)]
    assert all(a <= b for a, b in zip(steps, steps[1:], strict=False))
