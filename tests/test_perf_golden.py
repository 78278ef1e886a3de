"""Step times recorded from the step model before it was split into ops × predictor (commit
580b185): the refactor must reproduce them, fast paths and explanations alike."""

import numpy as np
import pandas as pd
import pytest

from hetsim.perf.calibration import CalibrationTable, kernel_flops_bytes
from hetsim.perf.step import InstanceConfig, StepModel
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model

FP8 = {"weights": "fp8_e4m3", "activations": "fp8_e4m3", "kv": "fp8_e4m3"}


def synthetic_calibration() -> CalibrationTable:
    """A made-up but deterministic calibration: GEMM and decode attention surfaces in bf16,
    elementwise in fp32 (so an eager runtime), dispatch overhead; no prefill attention."""
    peaks, bw = {"bf16": 900e12, "fp32": 60e12}, 3.0e12
    rows = []

    def add(op, dtype, eff, **shape):
        flops, nbytes = kernel_flops_bytes(op, dtype, **shape)
        roof = max(flops / peaks[dtype] if flops else 0.0, nbytes / bw)
        rows.append({"op": op, "dtype": dtype, **shape, "flops": flops, "bytes": nbytes,
                     "time_s": roof / eff, "split": "fit"})  # fmt: skip

    for m in (1, 16, 256, 4096):
        for n in (256, 4096):
            add("gemm", "bf16", 0.2 + 0.15 * np.log10(m) / 1.2 + n / 40960, m=m, n=n, k=4096)
    for batch in (1, 64):
        for context in (128, 8192):
            eff = 0.3 + 0.1 * (batch == 64) + 0.2 * (context == 8192)
            add("attention_decode", "bf16", eff, batch=batch, context=context, heads=8,
                head_dim=128)  # fmt: skip
    for m in (1024, 1 << 20):
        add("elementwise", "fp32", 0.05 if m == 1024 else 0.6, m=m)
    for _ in range(3):
        rows.append({"op": "launch", "dtype": "fp32", "flops": 0.0, "bytes": 0.0,
                     "time_s": 6e-6, "split": "fit"})  # fmt: skip
    meta = {"peak": {"flops": peaks, "memory_bandwidth": bw}, "ops_per_layer": 40}
    return CalibrationTable(rows=pd.DataFrame(rows), meta=meta)


# (model, profile, instance, calibrated), call, arguments, seconds at 580b185
CASES = {
    "tiny-llama decode, H100": (
        ("tiny-llama", "nvidia-h100-sxm", {}, False), "decode", [100, 200, 300, 400],
        0.002002758304477612,
    ),
    "Llama-70B tp4 decode 64x4096 from sums, H100": (
        ("Llama-3.1-70B", "nvidia-h100-sxm", {"tp": 4}, False), "sum", (64, 64 * 4096),
        0.025875424541293532,
    ),
    "Llama-70B tp4 mixed step, H100": (
        ("Llama-3.1-70B", "nvidia-h100-sxm", {"tp": 4}, False), "step",
        ([2048, 1, 1, 512], [0, 3000, 9000, 4096]), 0.17699816627513656,
    ),
    "DeepSeek-V3 tp8 ep8 fp8 decode, H200": (
        ("DeepSeek-V3", "nvidia-h200-sxm", {"tp": 8, "ep": 8, **FP8}, False), "decode",
        [4095] * 32, 0.020483258569954216,
    ),
    "DeepSeek-V3 tp8 ep8 fp8 prefill, H200": (
        ("DeepSeek-V3", "nvidia-h200-sxm", {"tp": 8, "ep": 8, **FP8}, False), "step",
        ([4096, 1000], [0, 20000]), 0.14751342889112565,
    ),
    "GLM-5.1 tp8 int8 mixed step, C600": (
        ("GLM-5.1", "metax-c600", {"tp": 8, "weights": "int8", "activations": "int8"}, False),
        "step", ([4096, 1, 1, 2000], [60000, 500, 80000, 0]), 0.6980135274340553,
    ),
    "Qwen3-30B-A3B decode from sums, H100": (
        ("Qwen3-30B-A3B", "nvidia-h100-sxm", {}, False), "sum", (16, 16 * 2000),
        0.018094041974340228,
    ),
    "Llama-8B calibrated decode": (
        ("Llama-3.1-8B", "nvidia-h100-sxm", {}, True), "decode", [100, 5000, 20000],
        0.01746329009503414,
    ),
    "Llama-8B tp2 calibrated mixed step": (
        ("Llama-3.1-8B", "nvidia-h100-sxm", {"tp": 2}, True), "step",
        ([1024, 1, 1], [512, 3000, 100]), 0.02583447803211382,
    ),
    "DeepSeek-V3 calibrated decode from sums (fp8: roofline fallback)": (
        ("DeepSeek-V3", "nvidia-h200-sxm", {"tp": 8, "ep": 8, **FP8}, True), "sum",
        (8, 8 * 1000), 0.014406294939171253,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def table():
    return synthetic_calibration()


def step_model(setup, table):
    model, profile, instance, calibrated = setup
    calibration = table if calibrated else None
    # the goldens pin the roofline path: a device that borrows transferred surfaces opts out
    accelerator = load_profile(profile).model_copy(update={"efficiency_source": "roofline"})
    return StepModel(load_model(model), accelerator, InstanceConfig(**instance),
                     calibration)  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_step_times_are_those_before_the_split(case, table):
    setup, call, args, recorded = CASES[case]
    sm = step_model(setup, table)
    if call == "decode":
        got, explained = sm.decode_time(np.array(args)), sm.explain_decode(np.array(args)).time
    elif call == "sum":
        got = sm.decode_time_from_sum(*args)
        explained = sm.explain_decode(np.full(args[0], args[1] // args[0])).time
    else:
        new, cached = np.array(args[0]), np.array(args[1])
        got, explained = sm.step_time(new, cached), sm.explain_step(new, cached).time
    recorded -= _all_to_all_no_longer_charged(sm, call, args)
    assert got == pytest.approx(recorded, rel=1e-12)
    assert explained == pytest.approx(recorded, rel=1e-12)


def _all_to_all_no_longer_charged(sm: StepModel, call: str, args) -> float:
    """The recorded model charged whole-expert parallelism an all-to-all even with one
    attention rank, where every device already holds every token and the MLP all-reduce sums
    the experts' outputs; that charge (and nothing else) is gone."""
    c = sm.config
    if not (sm.model.is_moe and c.ep > 1 and c.dp == 1):
        return 0.0
    tokens = {"decode": lambda: len(args), "sum": lambda: args[0]}.get(
        call, lambda: int(np.sum(args[0]))
    )()
    a2a = sm.ops.moe_all_to_all(tokens)
    return sm.cost.link.time(a2a.bytes, a2a.latencies) * a2a.count


def test_llama70b_decode_golden_is_the_roofline_by_hand():
    """The recorded 25.9 ms: Llama-3.1-70B, tp=4 on H100 (989 TFLOPS, 3.35 TB/s at 0.7/0.8;
    NVLink 450 GB/s at 0.8, 10 us), 64 sequences of 4096 cached tokens, bf16."""
    peak, bw, link, latency = 989e12 * 0.7, 3.35e12 * 0.8, 450e9 * 0.8, 10e-6
    b, h = 64, 8192

    def roof(flops, nbytes):
        return max(flops / peak, nbytes / bw)

    def gemm(m, n, k):
        return roof(2 * m * n * k, k * n * 2 + m * k * 2 + m * n * 2)

    # per layer per device: 16 query heads and 2 KV heads of 128, MLP 28672/4 = 7168
    layer = gemm(b, (16 + 2 * 2) * 128, h) + gemm(b, h, 16 * 128)
    layer += gemm(b, 2 * 7168, h) + gemm(b, h, 7168)
    # fused elementwise: add+norm x2 (4h), rotary on q and K, SiLU·mul (3 x ffn), K/V write
    layer += roof(0, b * (2 * 4 * h + 2 * (2048 + 256) + 3 * 7168 + 512) * 2)
    attended = b * 4097
    kv_per_token = 2 * 2 * 128 * 2
    layer += roof(4 * 16 * 128 * attended, attended * kv_per_token + 4 * b * 16 * 128)
    allreduce = 2 * (2 * 3 / 4 * b * h * 2 / link + latency)  # after attention and the MLP
    expected = 80 * (layer + allreduce) + gemm(b, 128256 / 4, h) + 2e-3
    assert expected == pytest.approx(
        CASES["Llama-70B tp4 decode 64x4096 from sums, H100"][3], rel=1e-9
    )
