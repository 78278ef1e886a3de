"""Bundled scenarios validate, and what `check` derives matches hand arithmetic."""

from pathlib import Path

import pytest

import hetsim
from hetsim.errors import InputError
from hetsim.report.describe import describe

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml"))


def test_the_required_scenarios_exist():
    names = {p.name for p in SCENARIOS}
    for required in (
        "cphd-glm51.yaml",
        "qwen3-32b-6p2d.yaml",
        "qwen3-32b-4p4d.yaml",
        "llama70b-h100-vs-h20.yaml",
        "gpu-prefill-cpu-decode.yaml",
    ):
        assert required in names
    assert any("colocated" in n for n in names)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_bundled_scenario_passes_check(path):
    sc = hetsim.load_scenario(path)
    info = describe(sc)
    for pool in info["pools"]:
        assert pool["memory"]["kv_capacity_tokens"] > 0
        assert pool["cost_per_hour"] > 0
    assert info["cost_per_hour"] == pytest.approx(sum(p["cost_per_hour"] for p in info["pools"]))


def test_default_scenario_is_the_seed_case():
    sc = hetsim.load_scenario(Path(__file__).parent.parent / "scenarios" / "cphd-glm51.yaml")
    roles = {p.role: p for p in sc.spec.pools}
    assert sc.model.name == "GLM-5.1"
    assert sc.profiles[roles["prefill"].name].name == "metax-c600"
    assert roles["prefill"].precision.weights == "int8"
    assert roles["prefill"].precision.activations == "int8"
    assert roles["decode"].precision.weights == "fp8_e4m3"
    assert sc.spec.workload.synthetic.prefix_hit_rate == pytest.approx(0.9)


def test_kv_capacity_of_qwen3_32b_on_one_h100_by_hand():
    sc = hetsim.load_scenario(Path("scenarios/qwen3-32b-6p2d.yaml"))
    fp = sc.footprints["prefill"]
    capacity = 80 * 2**30
    usable = 0.9 * capacity
    weights = 2 * 32_761_446_400  # bf16
    # step workspace: 8192 tokens x 2 bytes x (4 hidden + (64+2*8)*128 qkv + 2*25600 gate/up)
    activations = 8192 * 2 * (4 * 5120 + 80 * 128 + 2 * 25600) + 16 * 151936 * 4
    room = usable - weights - activations - 2**30
    blocks = int(room // (262_144 * 16))
    assert fp.weights_per_device == weights
    assert fp.activations_per_device == activations
    assert fp.kv_capacity_tokens == blocks * 16 == 35_696


def test_tensor_parallelism_shards_weights_and_gqa_kv_but_not_mla():
    qwen = hetsim.load_scenario(Path("scenarios/qwen3-32b-6p2d.yaml"), ["pools.decode.tp=2"])
    one = qwen.footprints["prefill"]
    two = qwen.footprints["decode"]
    assert two.weights_per_device == pytest.approx(one.weights_per_device / 2)
    assert two.kv_bytes_per_token_per_device == one.kv_bytes_per_token_per_device / 2
    glm = hetsim.load_scenario(Path("scenarios/cphd-glm51.yaml"))
    decode = glm.footprints["decode"]
    assert decode.kv_bytes_per_token_per_device == glm.model.kv_bytes_per_token("fp8_e4m3")


def test_overrides_reach_named_pools_and_shorthands():
    sc = hetsim.load_scenario(
        Path("scenarios/qwen3-32b-colocated.yaml"),
        ["pools.serve.precision.kv=fp8_e4m3", "lifecycle=push", "sla.ttft=3 s"],
    )
    assert sc.spec.pools[0].precision.kv == "fp8_e4m3"
    assert sc.spec.pools[0].precision.weights == "bf16"
    assert sc.spec.lifecycle.protocol == "push"
    assert sc.spec.sla.ttft == 3.0


def test_fp8_kv_doubles_kv_capacity_on_the_same_memory():
    base = hetsim.load_scenario(Path("scenarios/qwen3-32b-6p2d.yaml"))
    fp8 = hetsim.load_scenario(
        Path("scenarios/qwen3-32b-6p2d.yaml"),
        [
            "pools.decode.precision.kv=fp8_e4m3",
            # a dtype difference must say where it is converted (issue #5)
            "kv.conversions=[{kind: dtype, from: bf16, to: fp8_e4m3, where: consumer}]",
        ],
    )
    a, b = base.footprints["decode"], fp8.footprints["decode"]
    assert b.kv_capacity_blocks == int(a.kv_room_per_device // (131_072 * 16))
    assert b.kv_capacity_tokens >= 2 * a.kv_capacity_tokens - 16


def test_fp8_on_hardware_without_it_names_both():
    with pytest.raises(InputError) as err:
        hetsim.load_scenario(
            Path("scenarios/qwen3-32b-6p2d.yaml"),
            ["pools.prefill.accelerator=nvidia-a100-80gb-sxm", "pools.prefill.precision=fp8"],
        )
    text = str(err.value)
    # A100 runs fp8 checkpoints weight-only (Marlin), but has no fp8 tensor cores
    assert "pools[0].precision.activations" in text and "fp8_e4m3" in text and "A100" in text


def test_override_can_set_a_shorthand_then_reach_inside_it():
    sc = hetsim.load_scenario(
        Path("scenarios/cphd-glm51.yaml"), ["lifecycle=store", "lifecycle.store_tier=host_dram"]
    )
    assert sc.spec.lifecycle.protocol == "store"
    assert sc.spec.lifecycle.store_tier == "host_dram"
