"""Mixed MoE parallelism: the routed experts split ``ep`` ways by expert and ``moe_tp = tp·dp /
ep`` ways within each expert (TRT-LLM's moe_tp × moe_ep = tp × attention dp), with attention and
dense layers replicated over the ``dp`` attention ranks."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import hetsim
from hetsim.errors import InputError
from hetsim.perf.ops import InstanceConfig, OpInventory
from hetsim.perf.step import StepModel
from hetsim.spec.footprint import weights_per_device
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model
from hetsim.spec.scenario import PoolSpec
from hetsim.validation.pose import Posed, Reason, Unposed, pose
from hetsim.validation.silicon import read_silicon

H200 = load_profile("nvidia-h200-sxm")
V3 = load_model("DeepSeek-V3")
FP8 = dict(weights="fp8_e4m3", activations="fp8_e4m3", kv="fp8_e4m3")
EXCERPT = Path(__file__).parent / "data" / "silicon" / "silicon_sample_excerpt.csv"
# DeepSeek-V3's routed experts: 58 MoE layers x 256 experts x (gate, up, down) of 7168 x 2048
V3_ROUTED_PARAMS = 58 * 256 * 3 * 7168 * 2048


def inventory(**parallel) -> OpInventory:
    return OpInventory.build(V3, InstanceConfig(**parallel, **FP8), H200.compute)


def test_deepseek_v3_routed_experts_are_the_hand_counted_parameters():
    assert V3.routed_expert_params == V3_ROUTED_PARAMS == 653_908_770_816


@pytest.mark.parametrize("ep", [1, 2, 4, 8])
def test_every_device_holds_an_eighth_of_the_routed_experts_at_tp8_whatever_the_split(ep):
    # ep experts' groups of moe_tp = 8 / ep slices: 256/ep experts x 1/moe_tp of each = 1/8
    pool = PoolSpec(name="d", role="decode", accelerator="nvidia-h200-sxm", tp=8, ep=ep)
    experts, other = V3.weight_bytes_split("bf16")
    assert experts == V3_ROUTED_PARAMS * 2
    assert weights_per_device(V3, pool) == pytest.approx(other / 8 + 163_477_192_704, rel=1e-12)


def test_attention_dp_spreads_the_experts_over_every_device_and_replicates_the_rest():
    # tp 2 per rank, 4 ranks, moe_tp 2 x ep 4: experts / 8, attention and dense layers / 2
    pool = PoolSpec(name="d", role="decode", accelerator="nvidia-h200-sxm", tp=2, dp=4, ep=4)
    experts, other = V3.weight_bytes_split("bf16")
    assert weights_per_device(V3, pool) == pytest.approx(other / 2 + experts / 8, rel=1e-12)


def test_moe_tp2_by_ep4_expert_gemms_are_half_experts_and_a_quarter_of_them_per_device():
    ops = inventory(tp=8, ep=4)
    assert ops.config.moe_tp == 2
    up, down = ops.expert_up, ops.expert_down
    assert (up.n, up.k, up.count) == (2 * 1024, 7168, 58)  # gate and up of half the width
    assert (down.n, down.k, down.count) == (7168, 1024, 58)
    r = ops.routed_experts(64, 64)
    # 64 tokens x top-8 over 4 expert groups, the busiest at 1.2 x the mean; 64 experts each
    assert r.touched == pytest.approx(64 * (1 - (1 - 8 / 256) ** 64))
    assert r.rows * r.touched == pytest.approx(64 * 8 / 4 * 1.2)
    fused = ops.fused_experts(64, 64).shape
    assert (fused["tp"], fused["ep"], fused["tokens"]) == (2, 4, pytest.approx(64 * 1.2))


def test_one_attention_rank_needs_no_moe_collective_beyond_its_all_reduce():
    # the attention all-reduce leaves every token on every device; the MLP all-reduce sums the
    # experts' partial outputs over all eight
    assert inventory(tp=8, ep=4).moe_collectives(64) == []


def test_split_experts_over_attention_ranks_gather_and_scatter_the_ranks_tokens():
    (c,) = inventory(tp=2, dp=4, ep=4).moe_collectives(64)
    # ring all-gather + reduce-scatter over 4 ranks of 64 tokens x 7168 x 2 bytes
    assert (c.name, c.count) == ("moe_gather_scatter", 58)
    assert c.bytes == pytest.approx(2 * 3 / 4 * 64 * 7168 * 2)


@pytest.mark.parametrize(
    ("parallel", "decode", "mixed"),
    [
        # ep = 1 and ep = all devices: the numbers hetsim gave before mixed splits existed,
        (dict(tp=8, ep=1), 0.024699110309509432, 0.10513665708741682),
        # less the all-to-all hetsim charged with one attention rank (1.315 ms, 11.10 ms):
        # every device holds every token there, the MLP all-reduce combines
        (dict(tp=8, ep=8), 0.024559737082842762, 0.09621241516741683),
        (dict(tp=1, dp=8, ep=8), 0.02678952069639388, 0.05820253950555884),
        (dict(tp=2, dp=4, ep=8), 0.026016644140838333, 0.06599926163557165),
    ],
)
def test_whole_expert_and_tensor_parallel_splits_price_as_before(parallel, decode, mixed):
    sm = StepModel(V3, H200, InstanceConfig(**parallel, **FP8))
    assert sm.decode_time(np.full(64, 2000)) == pytest.approx(decode, rel=1e-12)
    step = sm.step_time(np.array([4096, 1, 1]), np.array([0, 100, 200]))
    assert step == pytest.approx(mixed, rel=1e-12)


def test_a_mixed_split_over_attention_ranks_names_its_collectives():
    sm = StepModel(V3, H200, InstanceConfig(tp=2, dp=4, ep=4, **FP8))
    names = [op.name for op in sm.explain_step(np.full(8, 1), np.full(8, 100)).ops]
    assert "moe_gather_scatter" in names and "moe_all_to_all" not in names


@pytest.mark.parametrize("ep", [3, 16])
def test_an_ep_that_does_not_divide_the_devices_is_refused_with_the_allowed_values(ep):
    with pytest.raises(ValidationError, match=r"allowed: 1, 2, 4, 8"):
        PoolSpec(name="d", role="decode", accelerator="nvidia-h200-sxm", tp=8, ep=ep)


def test_an_ep_that_does_not_divide_the_experts_is_an_input_error_naming_field_and_value():
    with pytest.raises(InputError) as err:
        hetsim.load_scenario(
            Path("scenarios/qwen3-32b-colocated.yaml"),
            [
                "model=Mixtral-8x7B-v0.1",
                "pools.serve.accelerator=nvidia-gb200",
                "pools.serve.tp=8",
                "pools.serve.dp=2",
                "pools.serve.ep=16",
            ],
        )
    text = str(err.value)
    assert "pools[0].ep" in text and "16" in text and "8 experts" in text
    assert "1, 2, 4, 8" in text


def test_a_mixed_moe_row_of_the_silicon_excerpt_is_posed_with_its_split():
    (row,) = [r for r in read_silicon(EXCERPT) if r.id.endswith("_c4_tp4_0_ep4_0_926")]
    assert (row.decode.tp, row.decode.moe_tp, row.decode.moe_ep) == (8, 2, 4)
    # the row records no worker counts, so as it stands it is not posed; with one worker
    # per role recorded, its split is
    assert pose(row).reason is Reason.WORKERS_NOT_RECORDED
    one = {"workers": 1, "workers_recorded": True}
    row = dataclasses.replace(
        row,
        prefill=dataclasses.replace(row.prefill, **one),
        decode=dataclasses.replace(row.decode, **one),
    )
    posed = pose(row)
    assert isinstance(posed, Posed)
    decode = posed.scenario["pools"][1]
    assert (decode["tp"], decode["dp"], decode["ep"]) == (8, 1, 4)


def test_a_gb200_row_whose_tp_no_attention_split_allows_is_contradictory_and_says_why():
    (row,) = [r for r in read_silicon(EXCERPT) if r.id.endswith("_tp72_ep1_43")]
    posed = pose(row)
    assert isinstance(posed, Unposed) and posed.reason is Reason.CONTRADICTORY_PARALLELISM
    assert "tp=72 does not divide the 128 attention heads" in posed.detail


def test_a_moe_split_that_does_not_cover_the_devices_is_still_refused():
    (row,) = [r for r in read_silicon(EXCERPT) if r.id.endswith("_c4_tp4_0_ep4_0_926")]
    short = dataclasses.replace(row.decode, moe_tp=1)  # 1 x 4 on 8 devices
    posed = pose(dataclasses.replace(row, decode=short))
    assert isinstance(posed, Unposed) and posed.reason is Reason.MOE_SPLIT
    assert "moe_tp=1 x moe_ep=4 is not the engine's 8 devices" in posed.detail


def test_a_scenario_ep_that_does_not_divide_the_devices_names_the_field():
    with pytest.raises(InputError) as err:
        hetsim.load_scenario(
            Path("scenarios/qwen3-32b-colocated.yaml"),
            ["model=Qwen3-235B-A22B", "pools.serve.tp=8", "pools.serve.ep=3"],
        )
    text = str(err.value)
    assert "pools[0].ep: ep=3 must divide" in text and "allowed: 1, 2, 4, 8" in text
