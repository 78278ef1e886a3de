"""MLA's attention kernel from the measured MLA attention tables (``context_mla_perf``,
``generation_mla_perf``), where no MLA module table prices the whole block: SGLang's collections
have only these. Runs on the TensorRT-LLM excerpt under tests/data/measured (which carries the
attention tables and no module tables); expected times are read from the raw Parquet rows."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetsim.perf.cost import MeasuredPredictor
from hetsim.perf.measured import load_tables
from hetsim.perf.ops import AttentionWork, InstanceConfig, OpInventory
from hetsim.perf.step import StepModel
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model

ROOT = Path(__file__).parent / "data" / "measured" / "trtllm"
MLA = ROOT / "h200_sxm" / "mla" / "trtllm" / "1.3.0rc20"
H200 = load_profile("nvidia-h200-sxm")
FP8 = dict(weights="fp8_e4m3", activations="fp8_e4m3", kv="fp8_e4m3")
LABEL = "measured:h200_sxm/trtllm-1.3.0rc20"


@pytest.fixture(scope="module")
def predictor():
    return MeasuredPredictor.of(H200, load_tables("h200_sxm", "trtllm", root=ROOT))


#: 24 heads' weight on the 32-head grid when interpolating in log heads between 16 and 32
W = math.log(24 / 16) / math.log(2)


def raw(name: str, batch: int, num_heads: int = 16, **at: int) -> float:
    df = pd.read_parquet(MLA / name)
    df = df[df.num_heads == num_heads]
    hit = df[(df.batch_size == batch) & np.logical_and.reduce([df[c] == v for c, v in at.items()])]
    return float(hit.latency.min()) * 1e-3


def attention(model: str, work: AttentionWork, tp: int = 8) -> list:
    ops = OpInventory.build(load_model(model), InstanceConfig(tp=tp, **FP8), {"fp8", "bf16"})
    return [k for k in ops.attention_kernels(work) if k.family.startswith("attention")]


def test_deepseek_decode_attention_reads_the_generation_table_at_attended_tokens(predictor):
    # 4 sequences that cached 1023 tokens each attend 1024: the table's step 1023
    work = AttentionWork(4, 4 * 1024, 4 * 1024, 0, 0, 0, 0, 0)
    (kern,) = attention("DeepSeek-V3", work)
    t, _, source = predictor.kernel(kern)
    assert source == LABEL
    assert t == pytest.approx(raw("generation_mla_perf.parquet", 4, step=1023), rel=1e-12)


def test_deepseek_prefill_attention_reads_the_context_table_at_the_prompt_length(predictor):
    step = StepModel(load_model("DeepSeek-V3"), H200, InstanceConfig(tp=8, **FP8))
    work = step.ops.work(np.array([2048]), np.array([0]))
    (kern,) = attention("DeepSeek-V3", work)
    t, _, source = predictor.kernel(kern)
    assert source == LABEL
    assert t == pytest.approx(raw("context_mla_perf.parquet", 1, isl=2048), rel=1e-12)


def test_the_tables_price_mla_attention_well_above_its_roofline_at_small_sizes(predictor):
    # one 1k prompt: ~2.5 GFLOP per device, microseconds on the roofline; the kernel measured
    # tens (why reading the table matters where no module table prices the block)
    step = StepModel(load_model("DeepSeek-V3"), H200, InstanceConfig(tp=8, **FP8))
    (kern,) = attention("DeepSeek-V3", step.ops.work(np.array([1024]), np.array([0])))
    assert predictor.kernel(kern)[0] > 3 * predictor.fallback.kernel(kern)[0]


def test_head_counts_between_measured_ones_interpolate_and_beyond_them_say_roofline(predictor):
    # a speculative verify step attends with heads x positions checked: 16 heads checking 1.5
    # positions on average lie between the measured 16 and 32, in log space
    work = AttentionWork(4, 4 * 1024, 4 * 1024, 0, 0, 0, 0, 0)
    (kern,) = attention("DeepSeek-V3", work)
    at = {h: predictor.kernel(kern._replace(shape={**kern.shape, "heads": h}))[0]
          for h in (16.0, 24.0, 32.0)}  # fmt: skip
    assert at[16.0] == pytest.approx(raw("generation_mla_perf.parquet", 4, step=1023, num_heads=16))
    assert at[32.0] == pytest.approx(raw("generation_mla_perf.parquet", 4, step=1023, num_heads=32))
    assert at[24.0] == pytest.approx(at[16.0] ** (1 - W) * at[32.0] ** W, rel=1e-9)
    # 64 heads (tp 2) lie beyond the excerpt's counts: never extrapolated
    (tp2,) = attention("DeepSeek-V3", work, tp=2)
    assert predictor.kernel(tp2)[0] == max(predictor.fallback.kernel(tp2)[0], predictor.floor)


def test_sparse_attention_stays_on_the_roofline(predictor):
    work = AttentionWork(4, 4 * 1024, 4 * 1024, 0, 0, 0, 0, 0)
    # DeepSeek-V3.2's sparse attention attends its top-k tokens: not the dense kernel
    sparse = [k for k in attention("DeepSeek-V3.2", work) if k.name == "attention_decode"]
    assert sparse and "kv_lora_rank" not in sparse[0].shape
    for kern in sparse[:1]:
        # the roofline, or one launch where that is shorter
        roofline = predictor.fallback.kernel(kern)[0]
        assert predictor.kernel(kern)[0] == max(roofline, predictor.floor)
