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
    "google-tpu-v5e",
    "aws-inferentia2",
    "amd-mi350x",
    "amd-mi355x",
    "intel-xeon-amx-host",
    "amd-epyc-host",
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


def test_vendor_documented_figures_of_tpu_v5e_and_inferentia2():
    tpu = load_profile("google-tpu-v5e")
    assert tpu.peak_flops("bf16") == pytest.approx(197e12)
    assert tpu.peak_flops("int8") == pytest.approx(394e12)
    assert tpu.memory_bytes == pytest.approx(16e9) and tpu.memory_bandwidth == pytest.approx(819e9)
    assert tpu.scale_up.bandwidth.value == pytest.approx(200e9)  # 400 GB/s bidirectional, halved
    assert not tpu.supports("weights", "fp8_e4m3") and "fp8" not in tpu.compute
    inf2 = load_profile("aws-inferentia2")
    assert inf2.peak_flops("fp8") == inf2.peak_flops("bf16") == pytest.approx(190e12)  # cFP8
    assert inf2.peak_flops("int8") == pytest.approx(380e12)
    assert inf2.memory_bytes == pytest.approx(32 * 2**30)
    assert not inf2.supports("activations", "fp8_e4m3")


def test_mi350_series_peaks_follow_the_per_cu_rate_and_clock():
    # 8,192 FP8 FLOP per clock per CU x 256 CUs x the peak engine clock; bf16 half, fp4 double
    for name, clock in (("amd-mi350x", 2.2e9), ("amd-mi355x", 2.4e9)):
        p = load_profile(name)
        fp8 = 8192 * 256 * clock
        assert p.peak_flops("fp8") == pytest.approx(fp8, rel=1e-4)
        assert p.peak_flops("bf16") == pytest.approx(fp8 / 2, rel=1e-4)
        assert p.peak_flops("fp4") == pytest.approx(fp8 * 2, rel=1e-4)
        assert p.supports("weights", "fp4") and p.supports("kv", "fp8_e5m2")
        assert p.memory_bandwidth == pytest.approx(8e12) and p.scale_up.domain_size == 8


def test_cpu_hosts_are_one_device_with_channel_arithmetic_bandwidth():
    for name in ("intel-xeon-amx-host", "amd-epyc-host"):
        p = load_profile(name)
        assert p.kind == "cpu" and p.scale_up is None and p.transferred_from is None
        # 2 sockets x 12 channels x 6400 MT/s x 8 B
        assert p.memory_bandwidth == pytest.approx(2 * 12 * 6400e6 * 8)
        assert p.memory.bandwidth.confidence == "estimate"
    xeon, epyc = load_profile("intel-xeon-amx-host"), load_profile("amd-epyc-host")
    assert xeon.peak_flops("bf16") == pytest.approx(1024 * 256 * 2.0e9, rel=1e-3)  # AMX tiles
    assert epyc.peak_flops("bf16") == pytest.approx(128 * 384 * 2.25e9, rel=1e-2)  # AVX-512 BF16
