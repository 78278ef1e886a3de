"""Runtime KV State and portability at the prefill/decode boundary (issue #5, parts 1-2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import hetsim
from hetsim.checks import STAGING_PROFILE, handoff_plan
from hetsim.errors import InputError
from hetsim.kv.portability import portability
from hetsim.kv.state import KVState
from hetsim.report.describe import describe
from hetsim.spec.footprint import kv_bytes_per_token_per_device
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import bundled_models, load_model
from hetsim.spec.precision import KV_FORMATS
from hetsim.spec.scenario import ConversionSpec, PoolSpec

REPO = Path(__file__).resolve().parents[1]
QWEN = REPO / "scenarios" / "qwen3-32b-6p2d.yaml"
LLAMA70 = REPO / "scenarios" / "llama70b-h100-vs-h20.yaml"
GLM = REPO / "scenarios" / "cphd-glm51.yaml"

H100_BW = 3.35e12 * 0.8  # nvidia-h100-sxm: memory bandwidth × efficiency.memory


def pool(name: str = "p", role: str = "prefill", **kw) -> PoolSpec:
    return PoolSpec(name=name, role=role, accelerator="nvidia-h100-sxm", **kw)


def conv(kind: str, where: str, **ends) -> ConversionSpec:
    return ConversionSpec.model_validate({"kind": kind, "where": where, **ends})


# ---- the state ----------------------------------------------------------------------------------


def test_state_bytes_follow_the_model_and_the_footprint():
    for name in bundled_models():
        model = load_model(name)
        for fmt in KV_FORMATS:
            for tp in (1, 2, 8):
                state = KVState.for_pool(model, pool(precision={"kv": fmt}, tp=tp), 100)
                assert state.bytes_per_token == model.kv_bytes_per_token(fmt)
                assert state.bytes == 100 * model.kv_bytes_per_token(fmt)
                assert state.bytes_per_token_per_rank() == pytest.approx(
                    kv_bytes_per_token_per_device(model, tp, fmt)
                )
                wire = state.in_transfer_format("fp8_e4m3")
                assert wire.bytes_per_token == model.kv_bytes_per_token("fp8_e4m3")
                assert wire.residency.tier == "transfer" and wire.kv_format == "fp8_e4m3"


def test_state_records_identity_format_partition_and_residency():
    glm = load_model("GLM-5.1")
    s = KVState.for_pool(glm, pool("decode", "decode", tp=8, precision="fp8"), 4096, start=128)
    assert (s.token_start, s.token_end, s.tokens) == (128, 4224, 4096)
    assert s.model.name == "GLM-5.1" and s.model.weight_format == "fp8_e4m3"
    assert len(s.model.config_hash) == 16
    assert s.tokenizer.vocab_size == glm.vocab_size and s.adapter is None
    assert s.geometry.is_mla and (s.geometry.kv_lora_rank, s.geometry.rope_dim) == (512, 64)
    assert not s.tp.split_by_head and s.tp.replicas == 8  # the latent is on every rank
    assert s.residency.tier == "hbm" and s.residency.instance == "decode" and s.owner == "decode"
    assert s.layout == "NHD" and s.page_tokens == 16
    assert s.scale_granularity == "none"  # bf16 KV by default


# ---- verdicts -----------------------------------------------------------------------------------


def test_identical_pair_has_no_conversions_and_costs_nothing():
    sc = hetsim.load_scenario(QWEN)
    plan = handoff_plan(sc, "prefill", "decode")
    v = plan.verdict
    assert v.kind == "identical" and v.ok
    assert v.conversions == () and v.undeclared == () and v.mismatches == ()
    assert plan.producer_s(8192) == plan.staging_s(8192) == plan.consumer_s(8192) == 0.0
    assert plan.store_bytes(1000) == plan.network_bytes(1000) == 1000 * 262_144
    assert v.transfer.transfers_per_request == 1 and v.transfer.head_split


def test_bf16_to_fp8_declared_on_producer_costs_read_plus_write_at_memory_bandwidth():
    sc = hetsim.load_scenario(
        QWEN,
        [
            "pools.decode.precision.kv=fp8_e4m3",
            "kv.transfer_format=fp8_e4m3",
            "kv.conversions=[{kind: dtype, from: bf16, to: fp8_e4m3, where: producer}]",
        ],
    )
    plan = handoff_plan(sc, "prefill", "decode")
    v = plan.verdict
    assert v.kind == "convertible"
    (c,) = v.conversions
    assert (c.kind, c.from_value, c.to_value, c.where, c.origin) == (
        "dtype", "bf16", "fp8_e4m3", "producer", "declared",
    )  # fmt: skip
    # Qwen3-32B, tp=1: 64 layers · 8 KV heads · 128 · 2 (K, V) = 131,072 values per token
    assert (c.bytes_read_per_token, c.bytes_written_per_token) == (262_144, 131_072)
    tokens = 8192
    by_hand = tokens * (262_144 + 131_072) / H100_BW
    assert plan.producer_s(tokens) == pytest.approx(by_hand)
    assert c.cost_s(tokens, sc.profiles["prefill"]) == pytest.approx(by_hand)
    assert plan.consumer_s(tokens) == 0.0
    assert plan.store_bytes(tokens) == tokens * 131_072  # the link carries fp8
    info = describe(sc)["portability"][0]
    assert info["verdict"] == "convertible"
    assert info["conversions"][0]["seconds"] == pytest.approx(by_hand)


def test_gqa_conversion_bytes_are_per_rank():
    """tp=4 on both sides: each rank casts its 2 of the 8 KV heads, in parallel."""
    model = load_model("Llama-3.1-70B")
    p = KVState.for_pool(model, pool(tp=4), 1)
    d = KVState.for_pool(model, pool("d", "decode", tp=4, precision={"kv": "fp8_e4m3"}), 1)
    v = portability(p, d, None, [conv("dtype", "consumer")])
    (c,) = v.conversions
    assert c.bytes_read_per_token == model.kv_bytes_per_token("bf16") / 4
    assert c.bytes_written_per_token == model.kv_bytes_per_token("fp8_e4m3") / 4


def test_int8_to_fp8_is_one_fused_conversion():
    model = load_model("Qwen3-32B")
    p = KVState.for_pool(model, pool(precision={"kv": "int8"}), 1)
    d = KVState.for_pool(model, pool("d", "decode", precision={"kv": "fp8_e4m3"}), 1)
    v = portability(p, d, None, [conv("dtype", "consumer", **{"from": "int8"})])
    (c,) = v.conversions
    assert "one fused kernel" in c.note
    # int8 KV carries an fp16 scale and zero point per token-head vector
    assert c.bytes_read_per_token == model.kv_bytes_per_token("int8") > 131_072
    assert c.bytes_written_per_token == model.kv_bytes_per_token("fp8_e4m3") == 131_072


def test_mla_vs_gqa_is_incompatible_listing_both_values():
    glm, llama = load_model("GLM-5.1"), load_model("Llama-3.1-70B")
    p = KVState.for_pool(glm, pool(), 100)
    d = KVState.for_pool(llama, pool("d", "decode", precision={"kv": "fp8_e4m3"}), 100)
    v = portability(p, d, "fp8_e4m3", [conv("dtype", "producer")])
    assert v.kind == "incompatible" and not v.ok
    assert v.conversions == () and v.undeclared == ()
    found = {m.field: (m.producer, m.consumer) for m in v.mismatches}
    assert found["model"] == ("GLM-5.1", "Llama-3.1-70B")
    assert found["geometry.attention"] == ("MLA", "GQA")
    assert found["geometry.layers"] == (78, 80)
    assert found["geometry.kv_vector"] == ("latent 512 + rope 64", "8 KV heads × 128")
    assert "tokenizer" in found and "model.config_hash" in found
    for m in v.mismatches:
        assert str(m.producer) in m.text() and str(m.consumer) in m.text()


def test_different_model_or_token_range_or_adapter_is_incompatible():
    a, b = load_model("Llama-3.1-8B"), load_model("tiny-llama")
    v = portability(KVState.for_pool(a, pool(), 10), KVState.for_pool(b, pool(), 10))
    assert v.kind == "incompatible"
    assert {"model", "geometry.layers", "geometry.kv_heads"} <= {m.field for m in v.mismatches}
    p = KVState.for_pool(a, pool(), 10)
    v = portability(p, KVState.for_pool(a, pool(), 10, start=5, adapter="lora-1"))
    assert {m.field: (m.producer, m.consumer) for m in v.mismatches} == {
        "token_range": ((0, 10), (5, 15)),
        "adapter": (None, "lora-1"),
    }


def test_undeclared_dtype_mismatch_fails_check_naming_field_values_and_fix(tmp_path):
    data = yaml.safe_load(QWEN.read_text())
    data["pools"][1]["precision"]["kv"] = "fp8_e4m3"
    path = tmp_path / "mismatch.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = subprocess.run(
        [sys.executable, "-m", "hetsim", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout
    err = result.stderr
    assert "Traceback" not in err
    assert "kv.conversions" in err and str(path) in err
    assert "pools[0].precision.kv is bf16" in err and "pools[1].precision.kv is fp8_e4m3" in err
    assert (
        "kv:\n  conversions:\n    - {kind: dtype, from: bf16, to: fp8_e4m3, where: consumer}" in err
    )
    # the printed fix works
    data["kv"]["conversions"] = [
        {"kind": "dtype", "from": "bf16", "to": "fp8_e4m3", "where": "consumer"}
    ]
    assert hetsim.scenario_from_dict(data).name == data["name"]


def test_transfer_format_mismatches_need_a_declaration_on_a_possible_side():
    with pytest.raises(InputError) as err:
        hetsim.load_scenario(LLAMA70, ["kv.transfer_format=fp8_e5m2"])
    text = str(err.value)
    assert "fp8_e4m3 → fp8_e5m2" in text and "fp8_e5m2 → fp8_e4m3" in text
    assert "kv.transfer_format is fp8_e5m2" in text
    # a cast *to* the transfer format cannot run after the link
    with pytest.raises(InputError) as err:
        hetsim.load_scenario(
            LLAMA70,
            [
                "kv.transfer_format=fp8_e5m2",
                "kv.conversions=[{kind: dtype, to: fp8_e5m2, where: consumer}]",
            ],
        )
    assert err.value.field == "kv.conversions[0].where" and err.value.value == "consumer"
    assert "producer" in err.value.allowed and "staging" not in err.value.allowed  # no host hop
    # one entry per leg, first possible side wins
    sc = hetsim.load_scenario(
        LLAMA70,
        [
            "kv.transfer_format=fp8_e5m2",
            "kv.conversions=[{kind: dtype, where: producer}, {kind: dtype, where: consumer}]",
        ],
    )
    v = handoff_plan(sc, "prefill_h100", "decode_h20").verdict
    assert [(c.where, c.from_value, c.to_value) for c in v.conversions] == [
        ("producer", "fp8_e4m3", "fp8_e5m2"),
        ("consumer", "fp8_e5m2", "fp8_e4m3"),
    ]


def test_staging_needs_a_host_hop_and_runs_at_host_bandwidth():
    with pytest.raises(InputError) as err:
        hetsim.load_scenario(
            QWEN,
            [
                "pools.decode.precision.kv=fp8_e4m3",
                "kv.conversions=[{kind: dtype, where: staging}]",
            ],
        )
    assert err.value.field == "kv.conversions[0].where" and "host_staging" in str(err.value)
    sc = hetsim.load_scenario(GLM, ["kv.conversions=[{kind: dtype, where: staging}]"])
    plan = handoff_plan(sc, "prefill", "decode")
    (c,) = plan.verdict.on("staging")
    host = load_profile(STAGING_PROFILE)
    latent = sc.model.kv_bytes_per_token  # the host converts one whole copy
    assert c.bytes_per_token == latent("bf16") + latent("fp8_e4m3")
    by_hand = 8192 * (latent("bf16") + latent("fp8_e4m3")) / (614.4e9 * 0.7)
    assert host.memory_bandwidth == 614.4e9
    assert plan.staging_s(8192) == pytest.approx(by_hand)


def test_on_as_a_key_is_explained():
    with pytest.raises(InputError, match="YAML boolean"):
        hetsim.load_scenario(QWEN, ["kv.conversions=[{kind: dtype, on: consumer}]"])


def test_layout_mismatch_must_be_declared_and_fuses_with_a_cast():
    with pytest.raises(InputError) as err:
        hetsim.load_scenario(QWEN, ["pools.decode.kv_layout=HND"])
    assert "layout NHD → HND" in str(err.value) and "pools[1].kv_layout is HND" in str(err.value)
    sc = hetsim.load_scenario(
        QWEN,
        [
            "pools.decode.kv_layout=HND",
            "pools.decode.precision.kv=fp8_e4m3",
            "kv.conversions=[{kind: layout, where: consumer}, {kind: dtype, where: consumer}]",
        ],
    )
    v = handoff_plan(sc, "prefill", "decode").verdict
    dtype, layout = v.conversions
    assert (dtype.kind, layout.kind) == ("dtype", "layout")
    assert layout.bytes_per_token == 0 and "fused" in layout.note
    # MLA: no head axis, nothing to permute
    glm = hetsim.load_scenario(GLM, ["pools.decode.kv_layout=HND"])
    v = handoff_plan(glm, "prefill", "decode").verdict
    assert not any(c.kind == "layout" for c in v.conversions)
    assert any("no head axis" in n for n in v.notes)


def test_gqa_tp4_to_tp8_reports_repartition_with_more_smaller_transfers():
    equal = handoff_plan(hetsim.load_scenario(LLAMA70), "prefill_h100", "decode_h20")
    sc = hetsim.load_scenario(LLAMA70, ["pools.decode_h20.tp=8"])
    plan = handoff_plan(sc, "prefill_h100", "decode_h20")
    v = plan.verdict
    assert v.kind == "convertible"
    (tp,) = v.conversions
    assert (tp.kind, tp.from_value, tp.to_value, tp.origin) == ("tp", "4", "8", "implicit")
    assert tp.bytes_per_token == 0 and plan.consumer_s(8192) == 0.0
    before, after = equal.verdict.transfer, v.transfer
    assert (before.transfers_per_request, after.transfers_per_request) == (4, 8)
    assert after.bytes_per_transfer_per_token == before.bytes_per_transfer_per_token / 2
    per_head = sc.model.kv_bytes_per_token("fp8_e4m3") / 8
    assert after.bytes_per_transfer_per_token == per_head  # one KV head per decode rank
    assert after.network_bytes_per_token == before.network_bytes_per_token  # no replication
    assert "8 decode ranks" in tp.note and after.head_split
    # and back: tp 8 → 4, each decode rank reads from 2 prefill ranks
    model = sc.model
    fp8 = {"kv": "fp8_e4m3"}
    p = KVState.for_pool(model, pool(tp=8, precision=fp8), 1)
    d = KVState.for_pool(model, pool("d", "decode", tp=4, precision=fp8), 1)
    t = portability(p, d).transfer
    assert (t.transfers_per_request, t.bytes_per_transfer_per_token) == (8, per_head)


def test_mla_tp_mismatch_has_no_head_split():
    glm = load_model("GLM-5.1")
    p = KVState.for_pool(glm, pool(tp=8, precision={"kv": "fp8_e4m3"}), 1)
    d = KVState.for_pool(glm, pool("d", "decode", tp=4, precision={"kv": "fp8_e4m3"}), 1)
    v = portability(p, d)
    (tp,) = v.conversions
    assert tp.kind == "tp" and tp.bytes_per_token == 0 and "no head split" in tp.note
    t = v.transfer
    assert not t.head_split
    # each of the 4 decode ranks reads one whole latent from one prefill rank
    assert (t.transfers_per_request, t.bytes_per_transfer_per_token) == (
        4,
        glm.kv_bytes_per_token("fp8_e4m3"),
    )


def test_check_prints_the_verdict_of_every_pair():
    result = subprocess.run(
        [sys.executable, "-m", "hetsim", "check", str(GLM)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "KV portability" in out and "convertible" in out
    assert "dtype bf16 → fp8_e4m3" in out and "metax-c600" in out
    assert "page_size 16 → 64" in out and "no head split" in out


def test_bundled_scenarios_report_portability():
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        info = describe(hetsim.load_scenario(path))
        pairs = [(p["from"], p["to"]) for p in info["portability"]]
        prefill = [p["name"] for p in info["pools"] if p["role"] == "prefill"]
        decode = [p["name"] for p in info["pools"] if p["role"] == "decode"]
        assert pairs == [(a, b) for a in prefill for b in decode]
        assert all(p["verdict"] != "incompatible" for p in info["portability"])
        assert info["unused_conversions"] == []


# ---- properties ---------------------------------------------------------------------------------

MODELS = [load_model(n) for n in ("Llama-3.1-8B", "Qwen3-32B", "GLM-5.1", "tiny-llama")]
SIDE = st.sampled_from(["producer", "consumer", "staging"])


@st.composite
def states(draw, model=None, tokens=None, start=None):
    model = model or draw(st.sampled_from(MODELS))
    spec = PoolSpec(
        name="x",
        role="prefill",
        accelerator="nvidia-h100-sxm",
        tp=draw(st.sampled_from([1, 2, 4, 8])),
        precision={"kv": draw(st.sampled_from(KV_FORMATS))},
        kv_layout=draw(st.sampled_from(["NHD", "HND"])),
        kv_page_tokens=draw(st.sampled_from([16, 32, 64])),
    )
    tokens = tokens or draw(st.integers(1, 4096))
    start = draw(st.sampled_from([0, 0, 7])) if start is None else start
    return KVState.for_pool(model, spec, tokens, start=start)


specs = st.lists(
    st.builds(
        lambda kind, where: conv(kind, where),
        st.sampled_from(["dtype", "layout", "page_size", "tp"]),
        SIDE,
    ),
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(states(), specs)
def test_property_a_state_is_identical_to_itself(x, placement):
    v = portability(x, x, None, placement)
    assert v.kind == "identical" and v.ok
    assert v.conversions == () and v.undeclared == () and v.mismatches == ()
    h100 = load_profile("nvidia-h100-sxm")
    assert v.cost_s(8192, {"producer": h100, "consumer": h100, "staging": h100}) == 0.0
    assert portability(x, x, x.kv_format).kind == "identical"


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_property_incompatible_never_comes_with_conversions(data):
    x = data.draw(states())
    if data.draw(st.booleans()):  # the same model and tokens: never incompatible
        model = next(m for m in MODELS if m.name == x.model.name)
        y = data.draw(states(model, x.tokens, x.token_start))
    else:
        y = data.draw(states())
    fmt = data.draw(st.none() | st.sampled_from(KV_FORMATS))
    try:
        v = portability(x, y, fmt, data.draw(specs), staging=data.draw(st.booleans()))
    except InputError as exc:  # a declared side that cannot run that conversion
        assert exc.field.startswith("kv.conversions[") and exc.field.endswith("].where")
        return
    if v.kind == "incompatible":
        assert v.mismatches and not v.conversions and not v.undeclared
    else:
        assert not v.mismatches
        assert (v.kind == "identical") == (not v.conversions and not v.undeclared)
        assert all(c.origin != "undeclared" for c in v.conversions)
        assert all(c.kind in ("dtype", "layout") for c in v.undeclared)
