"""Step times against hand-computed rooflines, and the physics they must obey."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.perf.step import InstanceConfig, StepModel
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model

H100 = load_profile("nvidia-h100-sxm")
PEAK_BF16, BW = 989e12, 3.35e12
EFF_C, EFF_M, OVERHEAD = 0.70, 0.80, 2e-3  # the H100 profile's documented defaults


def roof(flops, nbytes, peak=PEAK_BF16):
    return max(flops / (peak * EFF_C), nbytes / (BW * EFF_M))


def gemm(m, n, k, w_bytes=2.0, a_bytes=2.0, peak=PEAK_BF16):
    return roof(2 * m * n * k, k * n * w_bytes + m * k * a_bytes + m * n * 2, peak)


def test_defaults_are_the_profile_figures():
    assert H100.efficiency.compute.value == EFF_C
    assert H100.efficiency.memory.value == EFF_M
    assert H100.efficiency.step_overhead.value == OVERHEAD


def tiny_gqa_layer_gemms(m):
    # tiny-llama: hidden 256, 8 heads x 32, 2 KV heads, MLP 688
    gemms = gemm(m, 384, 256) + gemm(m, 256, 256) + gemm(m, 1376, 256) + gemm(m, 256, 688)
    # fused elementwise passes, bf16: add+norm x2 (4 x 256), rotary on q (256) and K (64)
    # read and written, SiLU·mul (3 x 688), K and V written to the cache (128)
    elementwise = roof(0, m * 2 * (2 * 4 * 256 + 2 * (256 + 64) + 3 * 688 + 128))
    return gemms + elementwise


def test_gqa_decode_step_by_hand():
    sm = StepModel(load_model("tiny-llama"), H100, InstanceConfig())
    context = np.array([100, 200, 300, 400])
    b, attended = 4, 1004  # each query attends its context plus itself
    kv_per_token_layer = 2 * 2 * 32 * 2  # K and V, 2 heads, 32 dims, bf16
    attention = roof(4 * 8 * 32 * attended, attended * kv_per_token_layer + 2 * b * 8 * 32 * 2)
    expected = 4 * (tiny_gqa_layer_gemms(b) + attention) + gemm(b, 1024, 256) + OVERHEAD
    assert sm.decode_time(context) == pytest.approx(expected, rel=1e-12)
    assert sm.explain_decode(context).time == pytest.approx(expected, rel=1e-12)


def test_gqa_prefill_step_by_hand():
    sm = StepModel(load_model("tiny-llama"), H100, InstanceConfig())
    n, c = 512, 256
    pairs = n * c + n * (n + 1) / 2
    kv_per_token_layer = 256
    attention = roof(4 * 8 * 32 * pairs, (c + n) * kv_per_token_layer + 2 * n * 8 * 32 * 2)
    expected = 4 * (tiny_gqa_layer_gemms(n) + attention) + gemm(1, 1024, 256) + OVERHEAD
    got = sm.prefill_time(np.array([n]), np.array([c]))
    assert got == pytest.approx(expected, rel=1e-12)


def test_mla_decode_attention_reads_the_latent_by_hand():
    h200 = load_profile("nvidia-h200-sxm")
    ds = load_model("DeepSeek-V3")
    sm = StepModel(
        ds,
        h200,
        InstanceConfig(tp=8, ep=8, weights="fp8_e4m3", activations="fp8_e4m3", kv="fp8_e4m3"),
    )
    context = np.full(32, 4095)
    row = sm.explain_decode(context).to_frame().set_index("name").loc["attention_decode"]
    attended = 32 * 4096
    heads = 128 / 8
    flops = 2 * heads * (2 * 512 + 64) * attended  # absorbed: scores over 576, values over 512
    nbytes = attended * 576 + 2 * 32 * heads * 576 * 2  # fp8 latent, not split by TP
    per_layer = max(flops / (989e12 * 0.7), nbytes / (4.8e12 * 0.8))
    assert row["flops"] == pytest.approx(61 * flops)
    assert row["bytes"] == pytest.approx(61 * nbytes)
    assert row["time"] == pytest.approx(61 * per_layer)
    assert row["bound"] == "memory"


def test_mla_prefill_attention_is_expanded_by_hand():
    h200 = load_profile("nvidia-h200-sxm")
    ds = load_model("DeepSeek-V3")
    sm = StepModel(
        ds,
        h200,
        InstanceConfig(tp=8, ep=8, weights="fp8_e4m3", activations="fp8_e4m3", kv="fp8_e4m3"),
    )
    n = 4096
    row = sm.explain_prefill(np.array([n])).to_frame().set_index("name").loc["attention_prefill"]
    pairs = n * (n + 1) / 2
    flops = 2 * 16 * (128 + 64 + 128) * pairs
    assert row["flops"] == pytest.approx(61 * flops)
    assert row["bound"] == "compute"
    assert row["time"] == pytest.approx(61 * flops / (989e12 * 0.7), rel=1e-9)


def test_moe_routed_experts_by_hand():
    """Qwen3-30B-A3B decode on one H100: 4 tokens touch 128·(1−(1−8/128)^4) experts."""
    sm = StepModel(load_model("Qwen3-30B-A3B"), H100, InstanceConfig())
    b = 4
    touched = 128 * (1 - (1 - 8 / 128) ** b)
    rows = b * 8 / touched
    per_expert = gemm(rows, 2 * 768, 2048) + gemm(rows, 2048, 768)
    row = sm.explain_decode(np.full(b, 1000)).to_frame().set_index("name").loc["routed_experts"]
    assert row["time"] == pytest.approx(48 * touched * per_expert, rel=1e-12)
    assert row["bound"] == "memory"
    # a big prefill batch touches every expert once, and is compute bound
    big = sm.explain_prefill(np.array([8192])).to_frame().set_index("name").loc["routed_experts"]
    assert big["flops"] == pytest.approx(48 * 2 * 8192 * 8 * 3 * 2048 * 768, rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["Qwen3-32B", "DeepSeek-V3", "GLM-5.1", "Qwen3-30B-A3B"]),
    batch=st.integers(1, 128),
    context=st.integers(1, 100_000),
)
def test_decode_time_grows_with_context_and_batch(name, batch, context):
    model = load_model(name)
    tp = 8 if model.params_total > 100e9 else 1
    profile = load_profile("nvidia-h200-sxm")
    sm = StepModel(
        model,
        profile,
        InstanceConfig(tp=tp, weights="fp8_e4m3", activations="fp8_e4m3", kv="fp8_e4m3"),
    )
    base = sm.decode_time(np.full(batch, context))
    assert sm.decode_time(np.full(batch, context + 1000)) > base
    assert sm.decode_time(np.full(batch + 1, context)) > base


def test_prefill_time_grows_with_tokens_and_cached_prefix():
    sm = StepModel(load_model("Llama-3.1-8B"), H100, InstanceConfig())
    times = [sm.prefill_time(np.array([n])) for n in (128, 1024, 8192)]
    assert times == sorted(times)
    assert sm.prefill_time(np.array([1024]), np.array([30000])) > times[1]


@pytest.mark.parametrize("weights", ["int8", "fp8_e4m3", "w4a16"])
def test_low_bit_weights_cut_memory_bound_decode(weights):
    model = load_model("Llama-3.1-70B")
    acts = {"int8": "int8", "fp8_e4m3": "fp8_e4m3", "w4a16": "bf16"}[weights]
    bf16 = StepModel(model, H100, InstanceConfig(tp=4))
    low = StepModel(model, H100, InstanceConfig(tp=4, weights=weights, activations=acts))
    context = np.full(8, 2000)
    assert low.decode_time(context) < 0.8 * bf16.decode_time(context)


def test_more_tp_cuts_per_device_work_but_adds_allreduce():
    model = load_model("Llama-3.1-70B")
    context = np.full(16, 4000)
    two = StepModel(model, H100, InstanceConfig(tp=2)).explain_decode(context).to_frame()
    eight = StepModel(model, H100, InstanceConfig(tp=8)).explain_decode(context).to_frame()
    compute_ops = ~two["name"].isin(["tp_allreduce", "step_overhead"])
    assert eight[compute_ops]["flops"].sum() < 0.3 * two[compute_ops]["flops"].sum()
    ar2 = two.set_index("name").loc["tp_allreduce", "time"]
    ar8 = eight.set_index("name").loc["tp_allreduce", "time"]
    assert ar8 > ar2 > 0


def test_fast_path_equals_explanation():
    sm = StepModel(
        load_model("GLM-5.1"),
        load_profile("metax-c600"),
        InstanceConfig(tp=8, weights="int8", activations="int8"),
    )
    new, cached = np.array([4096, 1, 1, 2000]), np.array([60000, 500, 80000, 0])
    assert sm.step_time(new, cached) == pytest.approx(sm.explain_step(new, cached).time)
    assert sm.explain_step(new, cached).phase == "mixed"
    assert sm.provenance == "transferred:h100_sxm/vllm-0.24.0"


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["Qwen3-32B", "Llama-3.1-70B", "DeepSeek-V3", "Qwen3-30B-A3B"]),
    contexts=st.lists(st.integers(0, 50_000), min_size=1, max_size=64),
    tp=st.sampled_from([1, 2, 8]),
)
def test_decode_from_sums_equals_the_explained_step(name, contexts, tp):
    """The simulator's O(1) decode path (batch size and context sum) is the same number."""
    model = load_model(name)
    sm = StepModel(model, load_profile("nvidia-h200-sxm"), InstanceConfig(tp=tp))
    ctx = np.array(contexts)
    assert sm.decode_time_from_sum(len(ctx), int(ctx.sum())) == pytest.approx(
        sm.explain_decode(ctx).time, rel=1e-12
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    batch=st.lists(
        st.tuples(st.sampled_from([1, 1, 2, 17, 512, 8192]), st.integers(0, 200_000)),
        min_size=1,
        max_size=8,
    )
)
def test_a_few_sequences_attention_work_in_python_is_numpys_exactly(batch, monkeypatch_work):
    """``work_of`` (plain Python, for a few sequences) and the numpy path give the same
    AttentionWork, float for float, on mixes of decodes and prompt chunks."""
    ops = monkeypatch_work
    new = [n for n, _ in batch]
    cached = [c for _, c in batch]
    assert ops.work_of(new, cached) == ops.work(np.array(new), np.array(cached))


@pytest.fixture(scope="module")
def monkeypatch_work():
    """Llama-3.1-8B's op inventory with the Python path switched off in ``work``."""
    import hetsim.perf.ops as ops_module

    sm = StepModel(load_model("Llama-3.1-8B"), load_profile("nvidia-h100-sxm"), InstanceConfig())
    saved, ops_module.SMALL_BATCH = ops_module.SMALL_BATCH, -1
    yield sm.ops
    ops_module.SMALL_BATCH = saved
