"""Derived model quantities against hand-computed values and published totals."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.errors import InputError
from hetsim.spec.model import bundled_models, load_model


def test_qwen3_32b_kv_bytes_per_token_by_hand():
    m = load_model("Qwen3-32B")
    # 2 (K,V) x 64 layers x 8 KV heads x 128 head_dim x 2 bytes
    assert m.kv_bytes_per_token("bf16") == 2 * 64 * 8 * 128 * 2 == 262_144
    assert m.kv_bytes_per_token("fp8_e4m3") == 131_072  # per-tensor scale: no per-token bytes
    # int8: each of the 16 vectors per layer carries an fp16 scale and an fp16 zero point
    assert m.kv_bytes_per_token("int8") == 64 * 16 * (128 + 2 + 2) == 135_168
    assert m.kv_bytes_per_token("int4") == 64 * 16 * (64 + 2 + 2)


def test_mla_kv_is_one_latent_plus_rope_per_layer():
    ds = load_model("DeepSeek-V3")
    assert ds.kv_bytes_per_token("bf16") == 61 * (512 + 64) * 2 == 70_272
    assert ds.kv_bytes_per_token("int8") == 61 * (576 + 4)
    glm = load_model("GLM-5.1")
    assert glm.kv_bytes_per_token("bf16") == 78 * 576 * 2 == 89_856
    assert glm.kv_bytes_per_token("fp8_e4m3") == 78 * 576 == 44_928


def test_llama_8b_parameters_by_hand():
    m = load_model("Llama-3.1-8B")
    embed = 128256 * 4096
    attn = 4096 * 4096 * 2 + 2 * 4096 * 1024  # q, o + k, v (8 KV heads x 128)
    mlp = 3 * 4096 * 14336
    total = 2 * embed + 32 * (attn + mlp)  # untied LM head
    # the checkpoint holds 8,030,261,248: ours plus 65 RMSNorm vectors of 4096 (266,240)
    assert m.params_total == total == 8_030_261_248 - 65 * 4096
    assert m.params_active == total
    # decode FLOPs: 2 per matmul parameter (no embedding lookup) + QK and PV over c+1 tokens
    c = 1000
    assert m.flops_per_token(c) == 2 * (total - embed) + 4 * 32 * 32 * 128 * (c + 1)


def test_qwen3_moe_active_parameters_by_hand():
    m = load_model("Qwen3-30B-A3B")
    h, layers = 2048, 48
    attn = h * 32 * 128 * 2 + 2 * h * 4 * 128
    expert = 3 * h * 768
    router = h * 128
    embed = 151936 * h
    assert m.params_total == 2 * embed + layers * (attn + 128 * expert + router)
    assert m.params_active == 2 * embed + layers * (attn + 8 * expert + router)


@pytest.mark.parametrize(
    ("name", "total_b", "active_b"),
    [
        # published totals from the model cards (MTP layers excluded where they exist)
        ("Qwen3-32B", 32.8, 32.8),
        ("Qwen3-30B-A3B", 30.5, 3.3),
        ("Qwen3-235B-A22B", 235.0, 22.0),
        ("Llama-3.1-70B", 70.6, 70.6),
        ("Mixtral-8x7B-v0.1", 46.7, 12.9),
        ("DeepSeek-V3", 671.0, 37.0),
        ("GLM-5.1", 744.0, 40.0),
    ],
)
def test_parameter_counts_match_published_totals(name, total_b, active_b):
    m = load_model(name)
    assert m.params_total / 1e9 == pytest.approx(total_b, rel=0.01)
    # published "active" figures vary in whether they count embeddings: allow 5%
    assert m.params_active / 1e9 == pytest.approx(active_b, rel=0.05)


def test_independent_counts_from_reference_research_script():
    """The reference configs carry counts computed by a separate script; we must agree."""
    for name, path in bundled_models().items():
        meta = json.loads(path.read_text()).get("_hetsim_meta", {})
        counted = meta.get("computed_params_excl_mtp")
        if not counted:
            continue
        m = load_model(name)
        assert m.params_total / 1e9 == pytest.approx(counted["total_B"], abs=0.01), name
        assert m.params_active / 1e9 == pytest.approx(counted["active_B"], abs=0.01), name
        assert m.kv_bytes_per_token("bf16") == meta["kv_cache_bytes_per_token_bf16"], name


def test_mla_decode_attention_uses_the_absorbed_latent():
    ds = load_model("DeepSeek-V3")
    c = 4096
    per_layer = 2 * 128 * (2 * 512 + 64) * c  # scores over 576 dims, values over 512
    assert ds.attention_flops_per_token(c, "decode") == 61 * per_layer


def test_sparse_attention_caps_attended_tokens_but_indexer_scans_all():
    glm = load_model("GLM-5.1")
    c = 100_000
    attend = 78 * 2 * 64 * (2 * 512 + 64) * 2048
    indexer = 78 * 2 * 32 * 128 * c
    assert glm.attention_flops_per_token(c, "decode") == attend + indexer
    # beyond top-k, attention cost grows only through the indexer
    growth = glm.attention_flops_per_token(2 * c) - glm.attention_flops_per_token(c)
    assert growth == 78 * 2 * 32 * 128 * c


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["Llama-3.1-8B", "DeepSeek-V3", "GLM-5.1", "tiny-llama"]),
    new=st.integers(1, 3000),
    cached=st.integers(0, 5000),
)
def test_prefill_flops_equal_the_sum_over_tokens(name, new, cached):
    m = load_model(name)
    by_token = sum(m.flops_per_token(cached + i, "prefill") for i in range(new))
    assert m.prefill_flops(new, cached) == pytest.approx(by_token, rel=1e-9)


def test_decode_flops_grow_with_context():
    for name in bundled_models():
        m = load_model(name)
        assert m.flops_per_token(8192) > m.flops_per_token(1024) > m.flops_per_token(0)


def test_quantized_weights_are_smaller_and_carry_scales():
    m = load_model("Qwen3-32B")
    bf16, int8, fp8, awq = (m.weight_bytes(f) for f in ("bf16", "int8", "fp8_e4m3", "w4a16"))
    edge = 2 * 151936 * 5120  # embeddings and LM head stay 16-bit
    body = m.params_total - edge
    assert bf16 == 2 * m.params_total
    assert int8 == body + 2 * edge
    assert fp8 == pytest.approx(body * (1 + 4 / (128 * 128)) + 2 * edge)
    assert awq == pytest.approx(body * (0.5 + 4 / 128) + 2 * edge)


def test_config_json_path_and_errors(tmp_path):
    cfg = json.loads(bundled_models()["tiny-llama"].read_text())
    (tmp_path / "mymodel").mkdir()
    (tmp_path / "mymodel" / "config.json").write_text(json.dumps(cfg))
    assert load_model(tmp_path / "mymodel").num_layers == 4
    cfg["model_type"] = "mamba"
    (tmp_path / "bad.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="model_type"):
        load_model(tmp_path / "bad.json")
    with pytest.raises(InputError, match="Qwen3-32B"):
        load_model("no-such-model")
