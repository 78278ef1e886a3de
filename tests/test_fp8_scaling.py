"""fp8 GEMMs priced as their checkpoint scales them (precision ``fp8_scales``): block-scaled on
the measured block rows, per-tensor dynamic on the dynamic rows, per-tensor static on those less
the activation-scale computation they include. Runs on the excerpts under tests/data/measured
(aiconfigurator-core 0.12.0's h200_sxm TensorRT-LLM 1.3.0rc20 and vLLM 0.24.0 tables); expected
times are read from the raw Parquet rows, not from hetsim's grids."""

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from hetsim.perf.cost import MeasuredPredictor
from hetsim.perf.measured import load_tables
from hetsim.perf.measured.tables import MeasuredTables
from hetsim.perf.ops import InstanceConfig, Kernel, OpInventory
from hetsim.perf.transferred import peak_time
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import checkpoint_fp8_scales, load_model
from hetsim.spec.scenario import PrecisionPolicy
from hetsim.validation.pose import Posed, pose
from hetsim.validation.silicon import read_silicon

EXCERPT = Path(__file__).parent / "data" / "measured"
TRT_ROOT = EXCERPT / "trtllm"
SILICON = Path(__file__).parent / "data" / "silicon" / "silicon_sample_excerpt.csv"
H200 = load_profile("nvidia-h200-sxm")
FP8 = dict(weights="fp8_e4m3", activations="fp8_e4m3")


@pytest.fixture(scope="module")
def trt():
    return load_tables("h200_sxm", "trtllm", root=TRT_ROOT)


@pytest.fixture(scope="module")
def vllm():
    return load_tables("h200_sxm", "vllm", root=EXCERPT)


def raw(root: Path, runtime: str, version: str, op: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(root / "h200_sxm" / op / runtime / version / name)


def raw_gemm(root: Path, runtime: str, version: str, dtype: str, m: int, n: int, k: int) -> float:
    """Seconds of the fastest kernel the table measured at that point."""
    df = raw(root, runtime, version, "gemm", "gemm_perf.parquet")
    hit = df[(df.gemm_dtype == dtype) & (df.m == m) & (df.n == n) & (df.k == k)]
    return float(hit.latency.min()) * 1e-3


def raw_compute_scale(root: Path, runtime: str, version: str, m: int, k: int) -> float:
    df = raw(root, runtime, version, "quantize", "computescale_perf.parquet")
    return float(df[(df.m == m) & (df.k == k)].latency.iloc[0]) * 1e-3


def fp8_gemm(m: float, n: float, k: float, scales: str) -> Kernel:
    return Kernel("g", "gemm", "fp8", 2.0 * m * n * k, n * k + m * k + 2.0 * m * n,
                  {"m": m, "n": n, "k": k, "scales": scales})  # fmt: skip


# ---- TensorRT-LLM: each scaling its own rows ---------------------------------------------------


@pytest.mark.parametrize("m", [1, 4, 64, 1024])
def test_trt_fp8_gemms_read_the_rows_of_their_scaling(trt, m):
    p = MeasuredPredictor.of(H200, trt)
    n = k = 8192
    block = raw_gemm(TRT_ROOT, "trtllm", "1.3.0rc20", "fp8_block", m, n, k)
    dynamic = raw_gemm(TRT_ROOT, "trtllm", "1.3.0rc20", "fp8", m, n, k)
    computing = raw_compute_scale(TRT_ROOT, "trtllm", "1.3.0rc20", m, k)
    assert p.kernel(fp8_gemm(m, n, k, "block"))[0] == pytest.approx(block, rel=1e-12)
    assert p.kernel(fp8_gemm(m, n, k, "tensor_dynamic"))[0] == pytest.approx(dynamic, rel=1e-12)
    static = p.kernel(fp8_gemm(m, n, k, "tensor"))
    assert static[0] == pytest.approx(dynamic - computing, rel=1e-9)
    assert static[2] == "measured:h200_sxm/trtllm-1.3.0rc20"
    # TensorRT-LLM computes a per-tensor scale in a kernel of its own: static scales save it
    assert computing > 5e-6 and static[0] < dynamic


def test_a_static_scale_saving_never_prices_a_gemm_below_its_datasheet_roofline(trt):
    # a scale computation longer than the GEMM (as if the two tables crossed): the floor holds
    rows = dict(trt.rows)
    computing = rows["compute_scale"]
    rows["compute_scale"] = computing.assign(latency=computing.latency * 1e3)
    p = MeasuredPredictor.of(H200, MeasuredTables("h200_sxm", "trtllm", "x", rows))
    kern = fp8_gemm(4, 8192, 8192, "tensor")
    floor = peak_time(H200, "fp8", kern.flops, kern.bytes)
    assert p.kernel(kern)[0] == pytest.approx(floor, rel=1e-12)
    assert floor < raw_gemm(TRT_ROOT, "trtllm", "1.3.0rc20", "fp8", 4, 8192, 8192) / 2


def test_without_the_quantize_tables_a_static_fp8_gemm_says_roofline_not_a_silent_dynamic(trt):
    rows = {t: r for t, r in trt.rows.items() if t not in ("compute_scale", "scale_matrix")}
    p = MeasuredPredictor.of(H200, MeasuredTables("h200_sxm", "trtllm", "x", rows))
    assert p.kernel(fp8_gemm(4, 8192, 8192, "tensor"))[2] == "roofline-default"
    assert p.kernel(fp8_gemm(4, 8192, 8192, "tensor_dynamic"))[2] == "measured:h200_sxm/trtllm-x"


def test_the_scale_computation_is_exact_at_table_points_and_zero_where_measured_zero(trt):
    cs = raw(TRT_ROOT, "trtllm", "1.3.0rc20", "quantize", "computescale_perf.parquet")
    for row in cs.itertuples():
        assert trt.scale_computation(row.m, row.k) == pytest.approx(row.latency * 1e-3, rel=1e-9)
    rows = dict(trt.rows)
    rows["compute_scale"] = rows["compute_scale"].assign(latency=0.0)  # SGLang's per-token path
    zero = MeasuredTables("h200_sxm", "sglang", "x", rows)
    assert zero.scale_computation(4, 8192) == 0.0 and zero.scale_computation(3, 8192) == 0.0
    assert trt.scale_computation(4, 100_000) is None  # outside: never extrapolated


# ---- vLLM: its block rows were timed eagerly and are not read ----------------------------------


def test_vllm_block_rows_are_left_out_and_its_dynamic_rows_price_block_scaled_gemms(vllm):
    raw_block = raw_gemm(EXCERPT, "vllm", "0.24.0", "fp8_block", 8, 8192, 8192)
    dynamic = raw_gemm(EXCERPT, "vllm", "0.24.0", "fp8", 8, 8192, 8192)
    assert "fp8_block" not in vllm.gemm
    assert raw_block > 2 * dynamic  # host dispatch of an eager call, not the kernel
    p = MeasuredPredictor.of(H200, vllm)
    assert p.kernel(fp8_gemm(8, 8192, 8192, "block"))[0] == pytest.approx(dynamic, rel=1e-12)
    static = p.kernel(fp8_gemm(8, 8192, 8192, "tensor"))[0]
    computing = raw_compute_scale(EXCERPT, "vllm", "0.24.0", 8, 8192)
    assert static == pytest.approx(dynamic - computing, rel=1e-9)


# ---- from the precision policy to the kernels ---------------------------------------------------


def test_an_instance_tags_its_fp8_gemms_with_their_scaling_and_leaves_others_alone():
    model = load_model("Llama-3.1-70B")
    tensor = OpInventory.build(model, InstanceConfig(tp=8, fp8_scales="tensor", **FP8), {"fp8"})
    bf16 = OpInventory.build(model, InstanceConfig(tp=8), {"fp8"})
    scales = {g.name: g.kernel(4.0).shape.get("scales") for g in tensor.gemms}
    assert scales.pop("lm_head") is None  # quantized checkpoints keep a 16-bit LM head
    assert set(scales.values()) == {"tensor"}
    assert all("scales" not in g.kernel(4.0).shape for g in bf16.gemms)


def test_static_scales_save_each_gemm_of_an_instance_its_scale_computation(trt):
    model = load_model("Llama-3.1-70B")
    p = MeasuredPredictor.of(H200, trt)
    built = {
        s: OpInventory.build(model, InstanceConfig(tp=2, fp8_scales=s, **FP8), {"fp8"})
        for s in ("tensor", "tensor_dynamic")
    }
    # at tp 2 the attention projections are inside the excerpt's n, k in [4096, 8192]
    for name, k in (("qkv_proj", 8192), ("o_proj", 4096)):
        static, dynamic = (
            p.kernel(next(g for g in built[s].gemms if g.name == name).kernel(4.0))
            for s in ("tensor", "tensor_dynamic")
        )
        assert static[2] == dynamic[2] == p.source and dynamic[1] == "memory"
        saved = dynamic[0] - static[0]
        assert saved == pytest.approx(raw_compute_scale(TRT_ROOT, "trtllm", "1.3.0rc20", 4, k))


def test_per_tensor_fp8_experts_find_no_block_scaled_moe_rows(vllm):
    model = load_model("DeepSeek-V3")
    p = MeasuredPredictor.of(H200, vllm)
    kernels = {
        scales: OpInventory.build(
            model, InstanceConfig(tp=8, ep=8, fp8_scales=scales, **FP8), {"fp8"}
        ).fused_experts(2048, 256.0)  # fmt: skip
        for scales in ("block", "tensor")
    }
    assert p.fused_experts(kernels["block"]) is not None
    assert p.fused_experts(kernels["tensor"]) is None  # the table's fp8 rows are block-scaled


def test_the_policy_says_block_unless_told_and_names_other_scalings_in_its_label():
    default = PrecisionPolicy.model_validate("fp8")
    tensor = PrecisionPolicy(fp8_scales="tensor", **FP8)
    assert default.fp8_scaling == "block" and default.label() == "W:fp8_e4m3 A:fp8_e4m3 KV:bf16"
    assert tensor.label() == "W:fp8_e4m3/tensor A:fp8_e4m3 KV:bf16"
    assert PrecisionPolicy().fp8_scaling is None
    with pytest.raises(ValidationError, match="fp8_scales=block says how fp8 weights"):
        PrecisionPolicy(fp8_scales="block")


@pytest.mark.parametrize(
    ("quantization", "expected"),
    [
        ({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
         "block"),
        ({"quant_method": "modelopt", "quant_algo": "FP8"}, "tensor"),
        ({"quant_method": "fp8", "activation_scheme": "static"}, "tensor"),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, "tensor_dynamic"),
        ({"quant_method": "fp8"}, "tensor_dynamic"),  # HF's default scheme is dynamic
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, None),
        (None, None),
    ],
)  # fmt: skip
def test_a_checkpoint_declares_its_fp8_scaling_in_config_json(quantization, expected):
    config = {} if quantization is None else {"quantization_config": quantization}
    assert checkpoint_fp8_scales(config)[0] == expected


def test_the_validation_rows_pose_each_fp8_checkpoint_with_its_scaling():
    seen = {}
    for row in read_silicon(SILICON):
        posed = pose(row)
        if isinstance(posed, Posed) and row.precision == "fp8":
            seen[row.model] = {p["precision"]["fp8_scales"] for p in posed.scenario["pools"]}
    # NVIDIA's ModelOpt checkpoint scales per tensor; DeepSeek's declares 128 x 128 blocks
    assert seen["nvidia/Llama-3.1-8B-Instruct-FP8"] == {"tensor"}
    assert seen["deepseek-ai/DeepSeek-V3"] == seen["deepseek-ai/DeepSeek-R1"] == {"block"}
    # a bf16 base served in fp8 takes what the row records: Qwen3-32B's TensorRT-LLM row "fp8"
    # (aiconfigurator's dynamic per-tensor mode), Llama-3.1-8B's SGLang row "fp8_block"
    assert seen["Qwen/Qwen3-32B"] == {"tensor_dynamic"}
    assert seen["meta-llama/Llama-3.1-8B-Instruct"] == {"block"}


@pytest.mark.parametrize(
    ("scales", "flag"), [(None, None), ("tensor", None), ("tensor_dynamic", "fp8")]
)
def test_a_launch_quantizes_online_only_for_dynamic_per_tensor_scales(scales, flag):
    # vLLM's and SGLang's --quantization fp8 quantize a bf16 checkpoint per tensor, dynamically
    from hetsim.report.launch import RoleLaunch, _formats
    from hetsim.spec.scenario import PoolSpec

    precision = {**FP8, "fp8_scales": scales}
    pool = PoolSpec(name="d", role="decode", accelerator="nvidia-h200-sxm", precision=precision)
    role = RoleLaunch(pool=pool, vendor="nvidia")
    _formats(role)
    assert ("--quantization" in role.vllm) == (flag is not None)
    if flag is None:
        assert any("need a checkpoint quantized that way" in n for n in role.notes)
    else:
        assert role.vllm[role.vllm.index("--quantization") + 1] == flag


def test_check_names_a_pools_fp8_scaling_in_its_table_and_json():
    import json

    from typer.testing import CliRunner

    from hetsim.cli import app

    tensor = "pools.decode.precision.fp8_scales=tensor"
    args = ["check", "scenarios/cphd-glm51.yaml", "--set", tensor]
    runner = CliRunner()
    text = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert text.exit_code == 0 and "fp8_e4m3 (tensor)/fp8_e4m3/fp8_e4m3" in text.output
    described = json.loads(runner.invoke(app, [*args, "--json"]).output)
    pools = {p["name"]: p for p in described["pools"]}
    assert pools["decode"]["fp8_scaling"] == "tensor" and pools["prefill"]["fp8_scaling"] is None


def test_the_planner_keeps_the_pools_fp8_scaling_on_every_fp8_candidate():
    import hetsim
    from hetsim.planner.space import enumerate_candidates

    scenario = hetsim.load_scenario(
        "scenarios/cphd-glm51.yaml", ["pools.decode.precision.fp8_scales=tensor"]
    )
    candidates = [c for c in enumerate_candidates(scenario) if c.scenario is not None]
    fp8 = [
        pool.precision
        for c in candidates
        for pool in c.scenario.spec.pools
        if pool.precision.weights == "fp8_e4m3"
    ]
    assert fp8 and {p.fp8_scaling for p in fp8} == {"tensor"}
    decode = next(
        c.roles["decode"]
        for c in candidates
        if c.kind == "disaggregated" and c.roles["decode"].weights == "fp8_e4m3"
    )
    assert "fp8/tensor" in decode.label()
