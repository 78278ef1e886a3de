"""Measured routed experts: the fused MoE table (aiconfigurator-core's ``moe_perf``) prices the
routed experts as one kernel per layer, exact at its points, roofline outside its grid. Runs on
the excerpt under tests/data/measured without the nvidia extra; the checks against the whole
wheel skip without it."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetsim.perf.cost import MeasuredPredictor
from hetsim.perf.measured import load_tables, read_tables_file, save_tables
from hetsim.perf.measured.tables import available_versions
from hetsim.perf.step import InstanceConfig, StepModel
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model

EXCERPT = Path(__file__).parent / "data" / "measured"
MOE_RAW = EXCERPT / "h200_sxm" / "moe" / "vllm" / "0.24.0" / "moe_perf.parquet"
LABEL = "measured:h200_sxm/vllm-0.24.0"
H200 = load_profile("nvidia-h200-sxm")
FP8 = dict(weights="fp8_e4m3", activations="fp8_e4m3")


@pytest.fixture(scope="module")
def tables():
    return load_tables("h200_sxm", "vllm", root=EXCERPT)


@pytest.fixture(scope="module")
def h200(tables, tmp_path_factory):
    """The H200 profile reading the excerpt through a calibration file (no extra needed)."""
    npz = save_tables(tables, tmp_path_factory.mktemp("moe") / "h200_vllm.npz")
    return H200.model_copy(update={"measured_tables": str(npz)})


def balanced_rows(dtype: str, hidden: int, tp: int, ep: int) -> pd.DataFrame:
    df = pd.read_parquet(MOE_RAW)
    df = df[(df.distribution == "balanced") & (df.moe_dtype == dtype) & (df.hidden_size == hidden)]
    df = df[(df.moe_tp_size == tp) & (df.moe_ep_size == ep)]
    return df.groupby("num_tokens", as_index=False).latency.min()


def routed_experts(sm: StepModel, new: np.ndarray, cached: np.ndarray) -> pd.Series:
    return sm.explain_step(new, cached).to_frame().set_index("name").loc["routed_experts"]


# ---- the table ---------------------------------------------------------------------------------


def test_moe_grid_is_exact_at_every_balanced_table_point_in_seconds(tables):
    for dtype, fmt, hidden, inter, topk, experts in [
        ("fp8_block", "fp8", 7168, 2048, 8, 256),
        ("bfloat16", "bf16", 4096, 1536, 8, 128),
    ]:
        for tp, ep in [(1, 1), (8, 1), (1, 8)] if hidden == 7168 else [(4, 1), (1, 4)]:
            grid = tables.moe[(fmt, hidden, inter, topk, experts, tp, ep)]
            for r in balanced_rows(dtype, hidden, tp, ep).itertuples():
                assert grid(r.num_tokens) == pytest.approx(r.latency * 1e-3, rel=1e-12)


def test_only_balanced_routing_is_read_and_per_tensor_fp8_is_left_out(tables):
    moe = tables.rows["moe"]
    raw = pd.read_parquet(MOE_RAW)
    assert (raw.distribution != "balanced").any()  # the excerpt holds a power-law split
    assert len(moe) == int((raw.distribution == "balanced").sum())
    assert set(moe.dtype) == {"bf16", "fp8", "w4a16"}  # int4_wo: int4 weights, bf16 compute


def test_moe_latency_rises_with_tokens_between_table_points(tables):
    grid = tables.moe[("fp8", 7168, 2048, 8, 256, 1, 8)]
    tokens = np.geomspace(1, 16384, 200)
    times = [grid(t) for t in tokens]
    assert balanced_rows("fp8_block", 7168, 1, 8).latency.is_monotonic_increasing
    # log-space interpolation between monotone points stays monotone
    assert all(a <= b * (1 + 1e-12) for a, b in zip(times, times[1:], strict=False))
    assert grid(16384) > grid(1024) > grid(1)


def test_the_calibration_file_round_trips_the_moe_table(tables, tmp_path):
    back = read_tables_file(save_tables(tables, tmp_path / "t.npz"))
    key = ("fp8", 7168, 2048, 8, 256, 1, 8)
    assert set(back.moe) == set(tables.moe)
    assert back.moe[key](777.0) == tables.moe[key](777.0)


def test_a_version_without_the_moe_table_still_loads_and_prices_experts_on_the_roofline(
    tmp_path,
):
    root = tmp_path / "systems"
    shutil.copytree(EXCERPT / "h200_sxm", root / "h200_sxm")
    shutil.rmtree(root / "h200_sxm" / "moe")
    assert available_versions(root, "h200_sxm", "vllm") == ["0.24.0"]
    bare = load_tables("h200_sxm", "vllm", root=root)
    assert bare.moe == {} and "moe" not in bare.rows
    profile = H200.model_copy(
        update={"measured_tables": str(save_tables(bare, tmp_path / "b.npz"))}
    )
    sm = StepModel(load_model("DeepSeek-V3"), profile, InstanceConfig(tp=8, ep=8, **FP8),
                   runtime="vllm")  # fmt: skip
    roof = StepModel(load_model("DeepSeek-V3"), H200, InstanceConfig(tp=8, ep=8, **FP8))
    new, cached = np.array([2048]), np.array([0])
    got, want = routed_experts(sm, new, cached), routed_experts(roof, new, cached)
    assert got.source == "roofline-default" and got.time == pytest.approx(want.time, rel=1e-12)


# ---- the step model ----------------------------------------------------------------------------


def test_deepseek_v3_prefill_prices_routed_experts_from_the_moe_table_per_layer(h200, tables):
    model = load_model("DeepSeek-V3")
    config = InstanceConfig(tp=8, ep=8, **FP8)
    sm = StepModel(model, h200, config, runtime="vllm")
    # ep 8: every device sees the step's 2048 tokens, the busiest one 1.2x a balanced share
    got = routed_experts(sm, np.array([2048]), np.array([0]))
    grid = tables.moe[("fp8", 7168, 2048, 8, 256, 1, 8)]
    assert got.source == LABEL
    assert got.time == pytest.approx(grid(2048 * config.expert_imbalance) * 58, rel=1e-12)
    assert model.num_moe_layers == 58


def test_tensor_parallel_experts_read_the_moe_tp_split_at_tokens_per_rank(h200, tables):
    config = InstanceConfig(tp=4, **FP8)
    sm = StepModel(load_model("Qwen3-235B-A22B"), h200, config, runtime="vllm")
    got = routed_experts(sm, np.array([1024]), np.array([0]))
    grid = tables.moe[("fp8", 4096, 1536, 8, 128, 4, 1)]
    assert got.source == LABEL and got.time == pytest.approx(grid(1024) * 94, rel=1e-12)


def test_bf16_and_fp8_weights_read_their_own_formats(h200, tables):
    model, new = load_model("Qwen3-235B-A22B"), np.array([512])
    bf16 = routed_experts(
        StepModel(model, h200, InstanceConfig(tp=4), runtime="vllm"), new, new * 0
    )
    fp8 = routed_experts(StepModel(model, h200, InstanceConfig(tp=4, **FP8), runtime="vllm"),
                         new, new * 0)  # fmt: skip
    assert bf16.time == pytest.approx(tables.moe[("bf16", 4096, 1536, 8, 128, 4, 1)](512) * 94)
    assert fp8.time == pytest.approx(tables.moe[("fp8", 4096, 1536, 8, 128, 4, 1)](512) * 94)


def test_outside_the_moe_grid_routed_experts_fall_back_to_the_roofline(h200):
    model, config = load_model("DeepSeek-V3"), InstanceConfig(tp=8, ep=8, **FP8)
    sm = StepModel(model, h200, config, runtime="vllm")
    roof = StepModel(model, H200, config)
    new = np.array([16384])  # 16384 x 1.2 tokens on the busiest device: past the grid's 16384
    got, want = routed_experts(sm, new, new * 0), routed_experts(roof, new, new * 0)
    assert got.source == "roofline-default" and got.time == pytest.approx(want.time, rel=1e-12)
    # a split the excerpt did not measure: tensor-parallel experts over 16 devices
    wide = StepModel(model, h200, InstanceConfig(tp=16, **FP8), runtime="vllm")
    assert routed_experts(wide, np.array([512]), np.array([0])).source == "roofline-default"


def test_int4_weight_only_experts_read_the_int4_wo_table_as_w4a16(h200, tables):
    """Kimi-K2.5's int4 experts (vLLM's Marlin ``int4_wo`` kernel): exact at a table point at
    1024 tokens (every expert touched at tp 8 by 8,192 assignments, so balanced and random
    routing read the same weights), where the roofline had them 2-3x faster."""
    model = load_model("Kimi-K2.5")
    config = InstanceConfig(tp=8, weights="w4a16", activations="bf16")
    sm = StepModel(model, h200, config, runtime="vllm")
    got = routed_experts(sm, np.array([1024]), np.array([0]))
    row = balanced_rows("int4_wo", 7168, 8, 1).set_index("num_tokens").latency
    assert got.source == LABEL
    assert got.time == pytest.approx(row[1024] * 1e-3 * model.num_moe_layers, rel=1e-9)
    roof = routed_experts(StepModel(model, H200, config), np.array([1024]), np.array([0]))
    assert got.time > roof.time


def test_weight_only_fp8_has_no_moe_table_and_stays_on_the_roofline(h200):
    config = InstanceConfig(tp=4, weights="fp8_e4m3", activations="bf16")
    sm = StepModel(load_model("Qwen3-235B-A22B"), h200, config, runtime="vllm")
    assert routed_experts(sm, np.array([512]), np.array([0])).source == "roofline-default"


def test_fast_paths_equal_the_explanation_with_the_moe_table(h200):
    sm = StepModel(load_model("Qwen3-235B-A22B"), h200, InstanceConfig(tp=4, **FP8),
                   runtime="vllm")  # fmt: skip
    ctx = np.array([10, 500, 3000, 7000])
    explained = sm.explain_decode(ctx).time
    assert sm.decode_time(ctx) == pytest.approx(explained, rel=1e-12)
    assert sm.decode_time_from_sum(4, int(ctx.sum())) == pytest.approx(explained, rel=1e-12)
    new, cached = np.array([900, 1, 1]), np.array([0, 40, 4000])
    assert sm.step_time(new, cached) == pytest.approx(sm.explain_step(new, cached).time, rel=1e-12)


def test_the_roofline_predictor_is_not_asked_for_a_fused_kernel():
    # no measured predictor: the routed experts are the grouped GEMMs, as before the MoE table
    sm = StepModel(load_model("DeepSeek-V3"), H200, InstanceConfig(tp=8, ep=8, **FP8))
    assert not isinstance(sm.cost, MeasuredPredictor)
    assert routed_experts(sm, np.array([2048]), np.array([0])).source == "roofline-default"


# ---- the whole wheel ---------------------------------------------------------------------------


def test_real_wheel_deepseek_v3_on_h200_vllm_names_the_measured_moe_source():
    pytest.importorskip("aiconfigurator_core")
    assert H200.measured_tables == "h200_sxm"  # the bundled profile reads the installed wheel
    sm = StepModel(load_model("DeepSeek-V3"), H200, InstanceConfig(tp=8, ep=8, **FP8),
                   runtime="vllm")  # fmt: skip
    roof = StepModel(load_model("DeepSeek-V3"), H200, InstanceConfig(tp=8, ep=8, **FP8))
    new = np.array([4096])
    got, want = routed_experts(sm, new, new * 0), routed_experts(roof, new, new * 0)
    assert got.source == sm.provenance and str(got.source).startswith("measured:h200_sxm/vllm-")
    assert got.time > want.time  # the fused kernel at 4k tokens runs well below the roofline


# ---- MLA blocks --------------------------------------------------------------------------------

MLA_RAW = EXCERPT / "h200_sxm" / "mla" / "vllm" / "0.24.0"
MLA_PARTS = {"q_a_proj", "q_b_proj", "kv_a_proj", "o_proj", "attention_prefill",
             "attention_decode", "mla_kv_b_proj"}  # fmt: skip


def mla_rows(phase: str, kv: str, gemm: str) -> pd.DataFrame:
    df = pd.read_parquet(MLA_RAW / f"mla_{phase}_module_perf.parquet")
    df = df[(df.kv_cache_dtype == kv) & (df.gemm_type == gemm) & (df.num_heads == 16)]
    return df.groupby(["batch_size", "isl", "step"], as_index=False).latency.min()


def test_mla_module_grids_are_exact_at_every_table_point(tables):
    for kv, hkv in [("bfloat16", "bf16"), ("fp8", "fp8_e4m3")]:
        for gemm, fmt in [("bfloat16", "bf16"), ("fp8_block", "fp8")]:
            context = tables.mla_context[(16, hkv, fmt)]
            for r in mla_rows("context", kv, gemm).itertuples():
                assert context(r.batch_size, r.isl) == pytest.approx(r.latency * 1e-3, rel=1e-12)
            generation = tables.mla_generation[(16, hkv, fmt)]
            for r in mla_rows("generation", kv, gemm).itertuples():
                # step tokens cached, step + 1 attended (the GQA table's convention)
                got = generation(r.batch_size, r.step + 1)
                assert got == pytest.approx(r.latency * 1e-3, rel=1e-12)


def test_the_calibration_file_round_trips_the_mla_tables(tables, tmp_path):
    back = read_tables_file(save_tables(tables, tmp_path / "t.npz"))
    key = (16, "bf16", "fp8")
    assert back.mla_context[key](3, 1000) == tables.mla_context[key](3, 1000)
    assert back.mla_generation[key](50, 3000) == tables.mla_generation[key](50, 3000)


def test_deepseek_v3_decode_prices_the_mla_block_from_the_generation_module_table(h200, tables):
    config = InstanceConfig(tp=8, ep=8, **FP8)
    sm = StepModel(load_model("DeepSeek-V3"), h200, config, runtime="vllm")
    ctx = np.full(64, 2047)  # 2048 attended: a table point
    frame = sm.explain_decode(ctx).to_frame().set_index("name")
    assert frame.loc["mla_block", "source"] == LABEL
    assert not MLA_PARTS & set(frame.index)  # the block replaces its GEMMs and attention
    want = tables.mla_generation[(16, "bf16", "fp8")](64, 2048) * 61
    assert frame.loc["mla_block", "time"] == pytest.approx(want, rel=1e-12)
    assert sm.decode_time(ctx) == pytest.approx(frame["time"].sum(), rel=1e-12)
    assert sm.decode_time_from_sum(64, int(ctx.sum())) == pytest.approx(frame["time"].sum())


def test_mla_block_prefill_is_exact_at_a_table_point_and_rises_with_prompt_length(h200, tables):
    config = InstanceConfig(tp=8, ep=8, kv="fp8_e4m3", **FP8)
    sm = StepModel(load_model("DeepSeek-V3"), h200, config, runtime="vllm")
    grid = tables.mla_context[(16, "fp8_e4m3", "fp8")]
    block = sm.explain_prefill(np.array([4096])).to_frame().set_index("name").loc["mla_block"]
    assert block.time == pytest.approx(grid(1, 4096) * 61, rel=1e-12)
    times = [sm.explain_prefill(np.array([n])).to_frame().set_index("name").loc["mla_block"].time
             for n in (256, 700, 1024, 3000, 8192)]  # fmt: skip
    assert times == sorted(times)


def test_a_mixed_step_is_one_block_per_phase_and_the_fast_path_agrees(h200, tables):
    sm = StepModel(load_model("DeepSeek-V3"), h200, InstanceConfig(tp=8, ep=8, **FP8),
                   runtime="vllm")  # fmt: skip
    new, cached = np.array([1024, 1, 1]), np.array([0, 511, 511])
    frame = sm.explain_step(new, cached).to_frame().set_index("name")
    key = (16, "bf16", "fp8")
    want = (tables.mla_context[key](1, 1024) + tables.mla_generation[key](2, 512)) * 61
    assert frame.loc["mla_block", "time"] == pytest.approx(want, rel=1e-12)
    assert sm.step_time(new, cached) == pytest.approx(frame["time"].sum(), rel=1e-12)


def test_outside_the_mla_tables_the_block_keeps_its_gemms_and_roofline_attention(h200):
    sm = StepModel(load_model("DeepSeek-V3"), h200, InstanceConfig(tp=8, ep=8, **FP8),
                   runtime="vllm")  # fmt: skip
    roof = StepModel(load_model("DeepSeek-V3"), H200, InstanceConfig(tp=8, ep=8, **FP8))
    ctx = np.full(2048, 100)  # a decode batch of 2048: past the generation table's 1024
    frame = sm.explain_decode(ctx).to_frame().set_index("name")
    assert "mla_block" not in frame.index
    assert frame.loc["attention_decode", "source"] == "roofline-default"
    want = roof.explain_decode(ctx).to_frame().set_index("name").loc["attention_decode", "time"]
    assert frame.loc["attention_decode", "time"] == pytest.approx(want, rel=1e-12)
    assert sm.decode_time(ctx) == pytest.approx(frame["time"].sum(), rel=1e-12)
    # a mixed step whose prefill is measured but whose decode is not: no block for either phase
    new, cached = np.concatenate([[512], np.ones(2048, int)]), np.concatenate([[0], ctx])
    assert "mla_block" not in sm.explain_step(new, cached).to_frame().set_index("name").index


def test_mla_with_another_geometry_or_sparse_attention_is_not_priced_from_deepseeks_module(h200):
    deepseek = load_model("DeepSeek-V3")
    # the same MLA with a wider latent was not measured; GLM-5's DSA indexer is no part of it
    wider = dataclasses.replace(deepseek, kv_lora_rank=1024)
    for model in (wider, load_model("GLM-5"), load_model("DeepSeek-V3.2")):
        sm = StepModel(model, h200, InstanceConfig(tp=8, ep=8, **FP8), runtime="vllm")
        frame = sm.explain_decode(np.full(16, 1000)).to_frame().set_index("name")
        assert "mla_block" not in frame.index and "attention_decode" in frame.index


def test_real_wheel_nvfp4_gemms_and_experts_price_hetsims_fp4_on_b200():
    pytest.importorskip("aiconfigurator_core")
    import pandas as pd

    from hetsim.perf.measured.tables import aiconfigurator_root, load_tables
    from hetsim.spec.hardware import load_profile

    b200 = load_profile("nvidia-b200")
    fp4 = dict(weights="fp4", activations="fp4", kv="fp8_e4m3")
    sm = StepModel(load_model("DeepSeek-V3"), b200, InstanceConfig(tp=8, **fp4), runtime="trtllm")
    ops = sm.explain_prefill(np.array([1024])).to_frame().set_index("name")
    assert str(ops.loc["routed_experts", "source"]).startswith("measured:b200_sxm/trtllm-")
    assert str(ops.loc["shared_expert_gate_up", "source"]).startswith("measured:b200_sxm/trtllm-")
    # the fp4 GEMM grid is exact at a measured nvfp4 point
    tables = load_tables("b200_sxm", "trtllm")
    raw = pd.read_parquet(
        aiconfigurator_root() / "b200_sxm/gemm/trtllm" / tables.version / "gemm_perf.parquet"
    )
    row = raw[raw.gemm_dtype == "nvfp4"].groupby(["m", "n", "k"]).latency.min().iloc[[100]]
    (m, n, k), latency = row.index[0], row.iloc[0]
    assert tables.gemm["fp4"](m, n, k) == pytest.approx(latency * 1e-3, rel=1e-9)


def test_decode_experts_convert_the_tables_balanced_routing_to_random_routing(h200, tables):
    # 32 decode tokens on ep 8: the busiest device gets 32 x 8 / 8 x 1.2 = 38.4 assignments.
    # The table routed them evenly over 38.4 >= 32 local experts: all 32 touched. Uniformly
    # random routing touches 32 (1 - (1 - 8/256)^32) = 20.4 of them. Memory-bound, the time
    # scales with the bytes: weights of the touched experts plus each assignment's rows.
    config = InstanceConfig(tp=8, ep=8, **FP8)
    sm = StepModel(load_model("DeepSeek-V3"), h200, config, runtime="vllm")
    got = sm.explain_decode(np.full(32, 2000)).to_frame().set_index("name").loc["routed_experts"]
    weights = 3 * 7168 * 2048 * 1.0  # gate+up and down, fp8
    row = (7168 * 1 + 4096 * 2) + (2048 * 1 + 7168 * 2)  # each GEMM's input and 16-bit output
    assignments = 38.4
    random = 32 * (1 - (1 - 8 / 256) ** 32)
    ratio = (random * weights + assignments * row) / (32 * weights + assignments * row)
    grid = tables.moe[("fp8", 7168, 2048, 8, 256, 1, 8)]
    assert 0.6 < ratio < 0.7
    # (the fp8 weights' block scales, ignored here, move the ratio by 1e-7)
    assert got.time == pytest.approx(grid(assignments) * ratio * 58, rel=1e-5)
    assert got.source == LABEL


def test_a_dense_gemm_of_a_routed_experts_shape_keeps_its_table_price(h200):
    """DeepSeek's shared expert is one routed expert's shape: the routed experts' grouped GEMM
    (roofline by design) priced first must not become the shared expert's price."""
    config = InstanceConfig(tp=4, **FP8)
    model = load_model("DeepSeek-V3")
    sm = StepModel(model, h200, config, runtime="vllm")
    shared = next(g for g in sm.ops.gemms if g.name == "shared_expert_gate_up")
    routed = sm.ops.routed_experts(64, 64.0).up
    assert routed.kernel(64.0).shape == shared.kernel(64.0).shape  # one expert's GEMM
    alone = StepModel(model, h200, config, runtime="vllm").cost.kernel(shared.kernel(64.0))
    sm.cost.kernel(routed.kernel(64.0))
    assert sm.cost.kernel(shared.kernel(64.0)) == alone
    assert alone[2] == LABEL
