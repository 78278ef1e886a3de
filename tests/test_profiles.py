"""Hardware profiles: every bundled one loads, is internally consistent and labels its doubts."""

import pytest

from hetsim.perf.transferred import nearest_measured
from hetsim.spec.hardware import TRANSFER_SYSTEMS, available_profiles, load_profile

REQUIRED = [
    "metax-c600",
    "metax-c500",
    "nvidia-h100-sxm",
    "nvidia-h200-sxm",
    "nvidia-h20",
    "nvidia-h800-sxm",
    "nvidia-a100-80gb-sxm",
    "nvidia-a100-40gb-sxm",
    "nvidia-l40s",
    "nvidia-t4",
    "nvidia-a40",
    "nvidia-rtx-6000-ada",
    "nvidia-l4",
    "nvidia-rtx-4090",
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


def test_datasheet_figures_of_the_vllm_reference_parts():
    a100_40, a100_80 = load_profile("nvidia-a100-40gb-sxm"), load_profile("nvidia-a100-80gb-sxm")
    assert a100_40.peak_flops("bf16") == a100_80.peak_flops("bf16")  # same GA100 die and clocks
    assert a100_40.memory_bandwidth == pytest.approx(1.555e12)
    assert a100_40.scale_up.bandwidth.value == pytest.approx(300e9)  # 600 GB/s bidirectional
    # dense = half the with-sparsity datasheet figures: L4 242 / 485, A40 299.4, RTX 6000 Ada 1457
    l4 = load_profile("nvidia-l4")
    assert l4.peak_flops("bf16") == pytest.approx(121e12)
    assert l4.peak_flops("fp8") == pytest.approx(485e12 / 2)
    assert load_profile("nvidia-a40").peak_flops("bf16") == pytest.approx(299.4e12 / 2)
    assert load_profile("nvidia-rtx-6000-ada").peak_flops("fp8") == pytest.approx(1457e12 / 2)
    assert load_profile("nvidia-t4").peak_flops("fp16") == pytest.approx(65e12)  # no sparsity


def test_formats_of_the_pre_ada_parts():
    t4 = load_profile("nvidia-t4")
    assert "bf16" not in t4.compute and "fp8" not in t4.compute
    for role in ("weights", "activations", "kv"):
        assert not t4.supports(role, "bf16")
        assert not t4.supports(role, "fp8_e4m3")
    for name in ("nvidia-a40", "nvidia-a100-40gb-sxm"):
        p = load_profile(name)  # Ampere: fp8 only dequantized (weights) or stored (KV)
        assert "fp8" not in p.compute and not p.supports("activations", "fp8_e4m3")
        assert p.supports("weights", "fp8_e4m3") and p.supports("kv", "fp8_e4m3")
    for name in ("nvidia-l4", "nvidia-rtx-6000-ada", "nvidia-rtx-4090"):
        assert load_profile(name).supports("activations", "fp8_e4m3")


def test_the_rtx_4090_has_no_peer_to_peer_path():
    rtx, l40s = load_profile("nvidia-rtx-4090"), load_profile("nvidia-l40s")
    # host-staged collectives: slower than a PCIe P2P link and labelled as our estimate
    assert rtx.scale_up.bandwidth.value < l40s.scale_up.bandwidth.value
    assert rtx.scale_up.bandwidth.confidence == "estimate"
    assert rtx.scale_up.latency.value > l40s.scale_up.latency.value
    assert not rtx.nic.gpudirect


def test_the_a100_40gb_borrows_the_surfaces_the_rule_picks():
    profile = load_profile("nvidia-a100-40gb-sxm")
    sources = {s: load_profile(p) for s, p in TRANSFER_SYSTEMS.items()}
    assert profile.measured_tables is None  # aiconfigurator's a100_sxm was measured on 80 GB
    assert profile.transferred_from.system == nearest_measured(profile, sources) == "a100_sxm"


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
