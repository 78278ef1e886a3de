"""Coverage of the silicon sample: which systems and model families pose, on which profile and
link, and the specific reason for those that do not. Expected shapes are read by hand from the
models' config.json files (aiconfigurator-core 0.12.0's model_configs/) and the sample's columns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hetsim.spec.hardware import available_profiles, load_profile
from hetsim.spec.model import bundled_models, load_model
from hetsim.validation import (
    Outcome,
    Parallelism,
    Posed,
    Reason,
    RowResult,
    SiliconValidation,
    Unposed,
    pose,
    read_silicon,
)
from hetsim.validation.pose import (
    MODEL_ARCHITECTURES,
    SYSTEM_PROFILES,
    UNMODELLED_ARCHITECTURES,
    family,
)

EXCERPT = Path(__file__).parent / "data" / "silicon" / "silicon_sample_excerpt.csv"


@pytest.fixture(scope="module")
def rows():
    return read_silicon(EXCERPT)


def by_id(rows, needle):
    (found,) = [r for r in rows if needle in r.id]
    return found


def engine(workers: int, devices: int) -> Parallelism:
    """An attention-dp engine whose experts spread over all its devices (wide EP)."""
    return Parallelism(
        batch_size=None, workers=workers, tp=1, pp=1, dp=devices, moe_tp=1, moe_ep=devices
    )


# --- systems ---------------------------------------------------------------------------------


def test_a_b300_row_is_posed_on_the_b300_profile(rows):
    posed = pose(by_id(rows, "minimaxm2_5_b300_vllm_fp8_agg_8192x1024_c128"))
    assert isinstance(posed, Posed)
    assert posed.profile == "nvidia-b300" and posed.model == "MiniMax-M2.5"
    (pool,) = posed.scenario["pools"]
    assert pool["accelerator"] == "nvidia-b300" and (pool["tp"], pool["ep"]) == (4, 1)


def test_a_gb200_row_is_posed_on_the_gb200_profile(rows):
    row = by_id(rows, "deepseek_r1_deepseek_r1_gb200_trtllm_agg_4000x1000_c_tp8_epnone_1")
    assert pose(row).reason is Reason.NO_CONCURRENCY  # as measured: no concurrency recorded
    posed = pose(dataclasses.replace(row, concurrency=28))
    assert isinstance(posed, Posed) and posed.profile == "nvidia-gb200"
    (pool,) = posed.scenario["pools"]
    assert (pool["accelerator"], pool["tp"], pool["ep"]) == ("nvidia-gb200", 8, 8)


def test_every_system_maps_to_a_bundled_profile_with_its_own_measured_tables():
    for system, profile in SYSTEM_PROFILES.items():
        assert profile in available_profiles()
        assert load_profile(profile).measured_tables == system


def test_nvl72_profiles_have_a_72_gpu_nvlink_domain_and_hgx_ones_8():
    for name in ("nvidia-gb200", "nvidia-gb300"):
        assert load_profile(name).scale_up.domain_size == 72
    assert load_profile("nvidia-b300").scale_up.domain_size == 8


def test_new_blackwell_profiles_carry_the_per_gpu_figures_of_their_source():
    # aiconfigurator-core 0.12.0 systems/*.yaml: mem_capacity in bytes, mem_bw, dense peaks
    b300, gb200, gb300 = (load_profile(f"nvidia-{n}") for n in ("b300", "gb200", "gb300"))
    assert b300.memory_bytes == pytest.approx(288400343040, rel=1e-3)
    assert gb200.memory_bytes == pytest.approx(198674743296, rel=1e-3)
    assert gb300.memory_bytes == pytest.approx(298013687808, rel=1e-3)
    assert (b300.memory_bandwidth, gb200.memory_bandwidth) == (7.75e12, 8e12)
    assert [p.peak_flops("fp4") for p in (b300, gb200, gb300)] == [14e15, 10e15, 15e15]
    assert [p.peak_flops("bf16") for p in (b300, gb200, gb300)] == [2.25e15, 2.5e15, 2.5e15]
    # Blackwell Ultra's INT8 tensor path is vestigial; GB200's is B200-class
    assert b300.peak_flops("int8") < 0.05 * b300.peak_flops("fp8")
    assert gb200.peak_flops("int8") == gb200.peak_flops("fp8")


def test_the_measured_tables_exist_for_every_runtime_of_the_new_systems():
    pytest.importorskip("aiconfigurator_core")
    from hetsim.perf.measured.tables import aiconfigurator_root, available_versions

    root = aiconfigurator_root()
    for system in ("b300_sxm", "gb200", "gb300"):
        for runtime in ("vllm", "sglang", "trtllm"):
            assert available_versions(root, system, runtime), (system, runtime)


# --- the NVL72 domain ------------------------------------------------------------------------


def disagg(rows, system, prefill, decode):
    row = by_id(rows, "2026_03_25_deepseek_r1_b200_sxm_trtllm_fp8_disagg_1024x1024_c1600")
    return dataclasses.replace(row, system=system, prefill=prefill, decode=decode)


def test_an_nvl72_disagg_row_of_48_gpus_hands_kv_over_nvlink(rows):
    # 4 prefill workers of 4 GPUs + 1 decode worker of 32 GPUs = 48 GPUs, one NVL72 rack
    posed = pose(disagg(rows, "gb200", engine(4, 4), engine(1, 32)))
    assert isinstance(posed, Posed) and posed.profile == "nvidia-gb200"
    (path,) = posed.scenario["interconnect"]["paths"]
    assert path["hops"][0] | {} == {
        "name": "nvlink", "kind": "scale_up", "bandwidth": "4 x 900 GB/s", "latency": "10 us",
        "shared_by": "source_instance",
    }  # fmt: skip
    decode = posed.scenario["pools"][1]
    assert (decode["instances"], decode["dp"], decode["ep"]) == (1, 32, 32)


def test_the_same_deployment_on_hgx_b200_spans_its_8_gpu_domain(rows):
    posed = pose(disagg(rows, "b200_sxm", engine(4, 4), engine(1, 32)))
    assert isinstance(posed, Unposed) and posed.reason is Reason.INSTANCE_SPANS_DOMAIN
    assert "32 devices" in posed.detail and "8-device" in posed.detail


def test_an_nvl72_deployment_wider_than_the_rack_hands_kv_over_the_nics(rows):
    # 6 x 8 prefill + 32 decode = 80 GPUs: more than one rack; GB300 has one 800G NIC per GPU
    posed = pose(disagg(rows, "gb300", engine(6, 8), engine(1, 32)))
    (path,) = posed.scenario["interconnect"]["paths"]
    hop = path["hops"][0]
    assert (hop["kind"], hop["bandwidth"]) == ("nic", "8 x 100 GB/s")


# --- model families --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("openai/gpt-oss-120b", "sliding-window attention with sinks"),
        ("Qwen/Qwen3.5-397B-A17B", "Gated DeltaNet"),
        ("nvidia/Qwen3.5-397B-A17B-NVFP4", "hybrid linear attention"),
    ],
)
def test_a_model_needing_an_unmodelled_feature_is_unposed_with_the_architecture_reason(
    rows, model, words
):
    row = by_id(rows, "2026_03_25_deepseek_r1_b200_sxm_sglang_fp4_agg_1024x1024_c8")
    assert isinstance(pose(row), Posed)
    posed = pose(dataclasses.replace(row, model=model))
    assert isinstance(posed, Unposed)
    assert posed.reason is Reason.ARCHITECTURE and words in posed.detail


def test_an_unknown_system_or_model_still_says_which(rows):
    row = by_id(rows, "2026_03_25_deepseek_r1_b200_sxm_sglang_fp4_agg_1024x1024_c8")
    unknown = pose(dataclasses.replace(row, system="rtx_pro_6000_server"))
    assert unknown.reason is Reason.UNKNOWN_SYSTEM and "rtx_pro_6000_server" in unknown.detail
    absent = pose(dataclasses.replace(row, model="stepfun-ai/Step-3.7-Flash"))
    assert absent.reason is Reason.MODEL_NOT_BUNDLED and "Step-3.7-Flash" in absent.detail


def test_kimi_k2_5_rows_are_posed_on_its_bundled_language_model(rows):
    posed = pose(by_id(rows, "kimik2_5_b200_vllm_fp4_agg_1024x1024_c4"))
    assert isinstance(posed, Posed) and posed.model == "Kimi-K2.5"
    assert "DeepSeek-V3" in posed.model_note


def test_every_mapped_architecture_is_bundled_and_no_id_is_both_mapped_and_unmodelled():
    bundled = bundled_models()
    assert all(model in bundled for model, _ in MODEL_ARCHITECTURES.values())
    assert not set(MODEL_ARCHITECTURES) & set(UNMODELLED_ARCHITECTURES)


def test_kimi_k2_5_loads_with_the_layer_and_expert_counts_of_its_config():
    # text_config: 61 layers, first_k_dense_replace 1, 384 routed + 1 shared expert of 2048,
    # top-8, 64 heads, q_lora 1536, kv_lora 512, rope 64, nope 128, v 128, hidden 7168
    m = load_model("Kimi-K2.5")
    assert (m.num_layers, m.num_dense_layers, m.num_moe_layers) == (61, 1, 60)
    assert (m.num_experts, m.experts_per_token, m.num_shared_experts) == (384, 8, 1)
    assert (m.num_attention_heads, m.kv_lora_rank, m.q_lora_rank) == (64, 512, 1536)
    assert m.attention_kind == "MLA" and m.vocab_size == 163840
    h = 7168
    attn = h * 1536 + 1536 * 64 * 192 + h * 576 + 512 * 64 * 256 + 64 * 128 * h
    expert = 3 * h * 2048
    dense_mlp = 3 * h * 18432
    edges = 2 * 163840 * h
    assert m.params_total == 61 * attn + dense_mlp + 60 * (385 * expert + h * 384) + edges
    assert m.params_active == 61 * attn + dense_mlp + 60 * (9 * expert + h * 384) + edges
    assert m.kv_bytes_per_token("bf16") == 61 * 576 * 2  # DeepSeek-V3's latent, per layer


def test_minimax_m2_5_loads_as_a_gqa_moe_in_every_layer():
    # config: 62 layers, 256 local experts of intermediate 1536, top-8, no shared expert,
    # 48 query heads and 8 KV heads of 128, hidden 3072
    m = load_model("MiniMax-M2.5")
    assert (m.num_layers, m.num_moe_layers, m.num_experts, m.experts_per_token) == (62, 62, 256, 8)
    assert (m.num_attention_heads, m.num_kv_heads, m.head_dim) == (48, 8, 128)
    assert m.num_shared_experts == 0 and m.attention_kind == "GQA"
    assert m.kv_bytes_per_token("bf16") == 2 * 62 * 8 * 128 * 2
    assert m.params_total / 1e9 == pytest.approx(230, rel=0.01)  # model card: 230B total


# --- coverage by family ----------------------------------------------------------------------


def test_checkpoints_group_into_the_family_they_are_posed_on():
    assert family("deepseek-ai/DeepSeek-R1") == family("nvidia/DeepSeek-V3.1-NVFP4")
    assert family("deepseek-ai/DeepSeek-R1") == "DeepSeek-V3"
    assert family("nvidia/Kimi-K2.5-NVFP4") == "Kimi-K2.5"
    assert family("openai/gpt-oss-120b") == "gpt-oss"
    assert family("Qwen/Qwen3.5-397B-A17B") == family("nvidia/Qwen3.5-397B-A17B-NVFP4")
    assert family("stepfun-ai/Step-3.7-Flash") == "stepfun-ai/Step-3.7-Flash"  # unknown: its id


def result(model, outcome=Outcome.PREDICTED, reason=""):
    return RowResult(
        id=f"{model}-{outcome.value}", line=2, system="b200_sxm", runtime="sglang", model=model,
        mode="agg", protocol="unrecorded", isl=1024, osl=128, concurrency=4, repeats=1,
        measured_ttft_s=1.0, measured_tpot_s=0.01, predicted_ttft_s=1.2, predicted_tpot_s=0.012,
        outcome=outcome, reason=reason, detail="", provenance="roofline-default",
    )  # fmt: skip


def test_coverage_and_errors_are_tabulated_by_family():
    validation = SiliconValidation(
        (
            result("deepseek-ai/DeepSeek-R1"),
            result("nvidia/DeepSeek-R1-NVFP4"),
            result("openai/gpt-oss-120b", Outcome.UNPOSED, "architecture"),
        )
    )
    cov = validation.coverage(by="family").set_index("family")
    assert (cov.loc["DeepSeek-V3", "rows"], cov.loc["DeepSeek-V3", "predicted"]) == (2, 2)
    assert cov.loc["gpt-oss", "architecture"] == 1 and cov.loc["gpt-oss", "predicted"] == 0
    errors = validation.error_table().set_index(["by", "group"])
    assert errors.loc[("family", "DeepSeek-V3"), "rows"] == 2
    assert errors.loc[("family", "DeepSeek-V3"), "ttft_signed_median_pct"] == pytest.approx(20)


# --- batch sizes --------------------------------------------------------------------------------


def _agg(rows, batch: int, tp: int, concurrency: int):
    row = by_id(rows, "minimaxm2_5_b300_vllm_fp8_agg_8192x1024_c128")
    par = Parallelism(batch_size=batch, workers=1, tp=tp, pp=1, dp=1, moe_tp=tp, moe_ep=1)
    return dataclasses.replace(row, agg=par, concurrency=concurrency)


def test_a_batch_column_holding_clients_per_device_does_not_cap_the_engine(rows):
    # one collection writes concurrency / devices as the batch size: c80 on tp8 -> batch 10
    (pool,) = pose(_agg(rows, batch=10, tp=8, concurrency=80)).scenario["pools"]
    assert pool["batching"]["max_num_seqs"] == 80
    # a batch size below the clients that is not that signature stays a cap
    (pool,) = pose(_agg(rows, batch=10, tp=8, concurrency=100)).scenario["pools"]
    assert pool["batching"]["max_num_seqs"] == 10
    (pool,) = pose(_agg(rows, batch=64, tp=4, concurrency=32)).scenario["pools"]
    assert pool["batching"]["max_num_seqs"] == 64


def test_a_disagg_row_without_worker_counts_is_posed_only_with_one_client(rows):
    row = by_id(rows, "_c4_tp4_0_ep4_0_926")
    assert not row.prefill.workers_recorded and not row.decode.workers_recorded
    unposed = pose(row)
    assert isinstance(unposed, Unposed) and unposed.reason is Reason.WORKERS_NOT_RECORDED
    assert "concurrency 4" in unposed.detail
    # one request in flight: how many workers served it cannot matter
    assert isinstance(pose(dataclasses.replace(row, concurrency=1)), Posed)
