"""Hardware profiles: every bundled one loads, is internally consistent and labels its doubts."""

import pytest

from hetsim.spec.hardware import available_profiles, load_profile

REQUIRED = [
    "metax-c600",
    "metax-c500",
    "nvidia-h100-sxm",
    "nvidia-h200-sxm",
    "nvidia-h20",
    "nvidia-h800-sxm",
    "nvidia-a100-80gb-sxm",
    "nvidia-l40s",
    "nvidia-b200",
    "amd-mi300x",
    "huawei-ascend-910b",
    "cpu-host",
]


def test_required_profiles_are_bundled():
    missing = sorted(set(REQUIRED) - set(available_profiles()))
    assert not missing


@pytest.mark.parametrize("name", sorted(available_profiles()))
def test_profile_loads_and_is_consistent(name):
    p = load_profile(name)
    assert p.name == name
    assert p.price_per_hour.confidence == "assumption"
    assert p.memory_bytes > 1e9 and p.memory_bandwidth > 1e10
    # every figure not from a datasheet says why, and cites a listed source or URL
    ids = {s.id for s in p.sources}
    for path, fig in p._figures():
        if fig.confidence != "datasheet":
            assert fig.note or fig.source, f"{name}.{path} has no note or source"
        if fig.source and not fig.source.startswith("http"):
            assert fig.source in ids
    # a format the device computes in has a peak; the KV formats it stores are known
    for act in p.formats.activations:
        key = {"fp8_e4m3": "fp8"}.get(act, act)
        assert key in p.compute, f"{name} lists {act} activations but no {key} peak"
    for eff in (p.efficiency.compute, p.efficiency.memory, p.efficiency.network):
        assert 0 < eff.value <= 1
        assert eff.confidence in ("assumption", "estimate", "measured")


def test_datasheet_figures_of_hopper():
    h100 = load_profile("nvidia-h100-sxm")
    assert h100.peak_flops("bf16") == pytest.approx(989e12)
    assert h100.peak_flops("fp8") == pytest.approx(1979e12)
    assert h100.memory_bandwidth == pytest.approx(3.35e12)
    h200 = load_profile("nvidia-h200-sxm")
    assert h200.peak_flops("bf16") == h100.peak_flops("bf16")  # same GH100 die
    assert h200.memory_bandwidth > h100.memory_bandwidth


def test_formats_the_hardware_lacks_are_not_listed():
    assert not load_profile("nvidia-a100-80gb-sxm").supports("activations", "fp8_e4m3")
    assert not load_profile("metax-c500").supports("kv", "fp8_e4m3")
    c600 = load_profile("metax-c600")
    assert c600.supports("weights", "int8") and c600.supports("activations", "int8")
    assert "int8" in c600.compute


def test_uncertain_vendors_are_marked():
    for name in ("metax-c600", "huawei-ascend-910b"):
        assert load_profile(name).uncertain_figures()
