"""The transferred default: a measured architecture's efficiency surfaces on the peaks of a device
without tables, labelled ``transferred:<system>/<runtime>-<version>``. Runs without the nvidia
extra: the surfaces ship in hetsim/perf/transferred/, the round trip uses the h200_sxm excerpt
under tests/data/measured."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from hetsim.perf.calibration import CalibrationTable
from hetsim.perf.cost import (
    CalibratedPredictor,
    MeasuredPredictor,
    Provenance,
    RooflinePredictor,
    TransferredPredictor,
    TransferredSource,
    predictor_for,
    provenance,
)
from hetsim.perf.cost.roofline import RooflinePredictor as Roofline
from hetsim.perf.measured import load_tables
from hetsim.perf.ops import Collective, Gemm, Kernel, ring_allreduce_bytes
from hetsim.perf.step import InstanceConfig, StepModel
from hetsim.perf.transferred import (
    derive_surfaces,
    load_surfaces,
    nearest_measured,
    peak_link_time,
    peak_time,
)
from hetsim.spec.hardware import TRANSFER_SYSTEMS, AcceleratorProfile, load_profile
from hetsim.spec.model import load_model

EXCERPT = Path(__file__).parent / "data" / "measured"
H200 = load_profile("nvidia-h200-sxm")
C600 = load_profile("metax-c600")
TRANSFERRING = ["metax-c500", "metax-c600", "huawei-ascend-910b", "cambricon-mlu370-x8",
                "amd-mi300x", "google-tpu-v5e", "aws-inferentia2", "amd-mi350x",
                "amd-mi355x", "nvidia-a100-40gb-sxm"]  # fmt: skip


def lifted(profile: AcceleratorProfile) -> AcceleratorProfile:
    """The profile with its default efficiencies at 1: the cap on borrowed efficiencies lifted."""
    eff = profile.efficiency.model_copy(
        update={
            k: getattr(profile.efficiency, k).model_copy(update={"value": 1.0})
            for k in ("compute", "memory", "network")
        }
    )
    return profile.model_copy(update={"efficiency": eff})


@pytest.fixture(scope="module")
def excerpt():
    return load_tables("h200_sxm", "vllm", root=EXCERPT)


def on_surfaces(profile, surfaces) -> TransferredPredictor:
    return TransferredPredictor(
        profile, surfaces, Roofline.of(profile), TransferredSource(surfaces.label)
    )


# ---- the shipped surfaces -----------------------------------------------------------------


@pytest.mark.parametrize("system", list(TRANSFER_SYSTEMS))
def test_shipped_surfaces_are_efficiencies_in_the_unit_interval(system):
    s = load_surfaces(system)
    assert s.label.startswith(f"transferred:{system}/vllm-")
    grids = [*s.gemm.values(), *s.context.values(), *s.generation.values(), *s.allreduce.values()]
    assert s.gemm["bf16"].measured > 1000 and s.context and s.generation and s.allreduce
    for grid in grids:
        eff = np.exp(grid.log_values[np.isfinite(grid.log_values)])
        assert eff.size and (eff > 0).all() and (eff <= 1.0).all()


def test_an_unknown_source_is_an_input_error_naming_the_transferable():
    from hetsim.errors import InputError

    with pytest.raises(InputError, match="no transferred efficiency surfaces") as e:
        load_surfaces("mi250")
    assert "h100_sxm" in str(e.value.allowed)


# ---- round trip: the source's own profile gets its measured times back --------------------


def test_derived_surfaces_on_the_source_profile_reproduce_every_measured_gemm(excerpt):
    surfaces = derive_surfaces(excerpt, H200)
    transferred = on_surfaces(lifted(H200), surfaces)
    measured = MeasuredPredictor.of(H200, excerpt)
    df = excerpt.rows["gemm"]
    df = df[df.dtype == "bf16"].groupby(["m", "n", "k"], as_index=False).latency.min()
    checked = 0
    for row in df.itertuples():
        k = Gemm("g", row.n, row.k, 1, 2.0, "bf16", 2.0).kernel(row.m)
        t, _, source = transferred.kernel(k)
        roof = peak_time(H200, "bf16", k.flops, k.bytes)
        assert source == surfaces.label
        if row.latency >= roof:  # a measured time no faster than the datasheet allows
            assert t == pytest.approx(row.latency, rel=1e-9)
            assert t == pytest.approx(measured.kernel(k)[0], rel=1e-9)
            checked += 1
        else:  # faster than the roofline (L2-resident weights): clamped to it
            assert t == pytest.approx(roof, rel=1e-9)
    assert checked > 0.9 * len(df)


def test_shipped_h200_surfaces_reproduce_the_measured_decode_and_prefill_attention(excerpt):
    """Llama-3.1-8B on one H200 (32 heads, 8 KV heads, head dim 128: a family the excerpt has):
    the attention op of a real step, at table points, within the float16 storage."""
    model, config = load_model("Llama-3.1-8B"), InstanceConfig()
    profile = lifted(H200)
    shipped = StepModel(
        model, profile, config, predictor=TransferredPredictor.of(profile, "h200_sxm")
    )
    table = StepModel(model, profile, config, predictor=MeasuredPredictor.of(profile, excerpt))
    for batch, attended in [(1, 2), (8, 1024), (64, 4096), (16, 16384)]:
        context = np.full(batch, attended - 1)
        t = {o.name: o for o in shipped.explain_decode(context).ops}["attention_decode"]
        m = {o.name: o for o in table.explain_decode(context).ops}["attention_decode"]
        assert str(m.source).startswith("measured:")
        assert t.time == pytest.approx(m.time, rel=5e-3)
        assert t.source == "transferred:h200_sxm/vllm-0.24.0"
    for batch, isl in [(1, 1024), (4, 4096), (1, 16384)]:
        new = np.full(batch, isl)
        t = {o.name: o for o in shipped.explain_prefill(new).ops}["attention_prefill"]
        m = {o.name: o for o in table.explain_prefill(new).ops}["attention_prefill"]
        assert str(m.source).startswith("measured:")
        assert t.time == pytest.approx(m.time, rel=5e-3)


def test_derived_allreduce_surface_reproduces_the_measured_allreduce(excerpt):
    surfaces = derive_surfaces(excerpt, H200)
    transferred = on_surfaces(lifted(H200), surfaces)
    measured = MeasuredPredictor.of(H200, excerpt)
    for ranks in (2, 4, 8):
        for elements in (1 << 20, 1 << 24):
            c = Collective("tp_allreduce", ring_allreduce_bytes(2.0 * elements, ranks), 1, 1)
            t, source = transferred.collective(c, ranks)
            m, _ = measured.collective(c, ranks)
            assert source == surfaces.label
            full_rate = peak_link_time(H200, c.bytes, c.latencies)
            if m >= full_rate:
                assert t == pytest.approx(m, rel=1e-9)
            else:  # NVLink beat the ring over the datasheet link: clamped to it
                assert t == pytest.approx(full_rate, rel=1e-9)


# ---- the default and its opt-outs ---------------------------------------------------------


def test_a_device_without_tables_is_priced_transferred_by_default():
    cost = predictor_for(C600)
    assert isinstance(cost, TransferredPredictor)
    label = provenance(C600)
    assert label == cost.provenance == "transferred:h100_sxm/vllm-0.24.0"
    assert isinstance(label, TransferredSource) and label.kind is Provenance.TRANSFERRED


def test_efficiency_source_roofline_opts_out():
    bare = C600.model_copy(update={"efficiency_source": "roofline"})
    assert isinstance(predictor_for(bare), RooflinePredictor)
    assert provenance(bare) == Provenance.ROOFLINE_DEFAULT


def test_a_calibration_table_wins_over_the_transferred_default():
    rows = pd.DataFrame([{"op": "gemm", "dtype": "bf16", "m": 1, "n": 1, "k": 1, "time_s": 1e-6,
                          "split": "fit"}])  # fmt: skip
    peak = {"flops": {"bf16": 5e14}, "memory_bandwidth": 1.8e12}
    table = CalibrationTable(rows=rows, meta={"peak": peak})
    assert isinstance(predictor_for(C600, table), CalibratedPredictor)
    assert provenance(C600, table) == Provenance.CALIBRATED


def test_the_cpu_host_stays_on_the_labelled_roofline():
    cpu = load_profile("cpu-host")
    assert cpu.transferred_from is None
    assert provenance(cpu) == Provenance.ROOFLINE_DEFAULT


def test_profile_validation_names_the_transferable_architectures():
    data = C600.model_dump(mode="json")
    data["transferred_from"] = {"system": "mi250", "note": "x"}
    with pytest.raises(ValidationError, match="transferable: a100_sxm, h100_sxm, h200_sxm"):
        AcceleratorProfile.model_validate(data)
    data = H200.model_dump(mode="json")
    data["efficiency_source"] = "transferred"
    with pytest.raises(ValidationError, match="needs `transferred_from`"):
        AcceleratorProfile.model_validate(data)


@pytest.mark.parametrize("name", TRANSFERRING)
def test_each_profile_states_the_architecture_the_rule_picks(name):
    profile = load_profile(name)
    sources = {s: load_profile(p) for s, p in TRANSFER_SYSTEMS.items()}
    assert profile.transferred_from is not None and profile.transferred_from.note
    assert profile.transferred_from.system == nearest_measured(profile, sources)


# ---- what the default does to a step ------------------------------------------------------


@pytest.mark.parametrize("name", ["metax-c600", "huawei-ascend-910b"])
def test_a_step_on_transferred_figures_is_slower_than_the_bare_roofline(name):
    profile = load_profile(name)
    bare = profile.model_copy(update={"efficiency_source": "roofline"})
    model, config = load_model("Qwen3-32B"), InstanceConfig(tp=4)
    xfer, roof = StepModel(model, profile, config), StepModel(model, bare, config)
    for explain in ("explain_decode", "explain_prefill"):
        arg = np.full(64, 2048) if explain == "explain_decode" else np.full(4, 2048)
        t, r = getattr(xfer, explain)(arg), getattr(roof, explain)(arg)
        assert t.time > r.time
        for a, b in zip(t.ops, r.ops, strict=True):
            assert a.time >= b.time * (1 - 1e-12), a.name
    small = np.full(1, 512)  # one sequence: launch-bound kernels the roofline does not see
    assert xfer.explain_decode(small).time > 1.1 * roof.explain_decode(small).time
    assert xfer.decode_time_from_sum(64, 64 * 2048) == pytest.approx(
        xfer.explain_decode(np.full(64, 2048)).time, rel=1e-9
    )


def test_ops_outside_the_surfaces_fall_back_to_roofline_default():
    cost = predictor_for(C600)
    huge = Kernel("g", "gemm", "bf16", 2.0 * 1e6 * 4096 * 4096, 1.0,
                  {"m": 1e6, "n": 4096, "k": 4096})  # fmt: skip
    t, _, source = cost.kernel(huge)
    assert source == Provenance.ROOFLINE_DEFAULT
    assert t == pytest.approx(Roofline.of(C600).kernel(huge)[0])
    copy = Kernel("elementwise", "memcpy", "bytes", 0.0, 1e9, {"bytes": 5e8})
    assert cost.kernel(copy)[2] == Provenance.ROOFLINE_DEFAULT
    assert cost.step_overhead(10, 64) == (C600.efficiency.step_overhead.value,
                                          Provenance.ROOFLINE_DEFAULT)  # fmt: skip


def test_int8_gemms_borrow_the_bf16_surface_at_the_int8_peak():
    cost = predictor_for(C600)
    g = Gemm("g", 4096, 4096, 1, 1.0, "int8", 1.0).kernel(8.0)
    t, _, source = cost.kernel(g)
    assert source == cost.provenance
    eff = load_surfaces("h100_sxm").gemm["bf16"](8.0, 4096, 4096)
    cap = C600.efficiency.memory.value
    assert t == pytest.approx(peak_time(C600, "int8", g.flops, g.bytes) / min(eff, cap))
    assert math.isfinite(t)


# ---- what plans and reports say ------------------------------------------------------------


def test_labels_printed_as_strings_keep_their_kind():
    assert Provenance.kind_of("transferred:h100_sxm/vllm-0.24.0") is Provenance.TRANSFERRED
    assert Provenance.kind_of("measured:h200_sxm/vllm-0.24.0") is Provenance.MEASURED
    assert Provenance.kind_of("roofline-default") is Provenance.ROOFLINE_DEFAULT


def test_the_plan_note_names_pools_on_roofline_or_transferred_figures():
    from hetsim.report.describe import unmeasured_note

    note = unmeasured_note(
        {
            "prefill": "transferred:h100_sxm/vllm-0.24.0",
            "decode": "measured:h200_sxm/vllm-0.24.0",
            "cpu": "roofline-default",
            "cal": "calibrated",
        }
    )
    assert note is not None
    assert "prefill (transferred:h100_sxm/vllm-0.24.0)" in note
    assert "cpu (roofline-default)" in note
    assert "decode (" not in note and "cal (" not in note
    assert unmeasured_note({"decode": "measured:h200_sxm/vllm-0.24.0"}) is None


def test_an_unmeasured_kv_format_borrows_the_surface_of_one_as_wide():
    """The A100 tables measured no fp16 or int8 KV: an Ascend 910B serving them still gets the
    bf16 surface of the same head shape, not the bare roofline."""
    ascend = load_profile("huawei-ascend-910b")
    cost = predictor_for(ascend)
    model = load_model("Llama-3.1-8B")
    for kv in ("bf16", "fp16", "int8"):
        sm = StepModel(model, ascend, InstanceConfig(kv=kv), predictor=cost)
        op = {o.name: o for o in sm.explain_decode(np.full(8, 1023)).ops}["attention_decode"]
        assert op.source == "transferred:a100_sxm/vllm-0.14.0", kv


def test_the_transferred_default_needs_no_nvidia_extra():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['aiconfigurator_core'] = None\n"
        "from hetsim.perf.cost import predictor_for, provenance\n"
        "from hetsim.spec.hardware import load_profile\n"
        "p = load_profile('metax-c600'); predictor_for(p); print(provenance(p))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "transferred:h100_sxm/vllm-0.24.0"


def test_no_kernel_is_charged_less_than_the_sources_shortest_launch():
    """A decode step's fused elementwise passes on a C600 are latency-bound: each is charged the
    H100 tables' shortest kernel, and labelled with the source that set its time."""
    cost = predictor_for(C600)
    floor = load_surfaces("h100_sxm").floor
    assert 2e-6 < floor < 3e-6
    tiny = Kernel("elementwise", "memcpy", "bytes", 0.0, 1e3, {"bytes": 5e2})
    assert cost.kernel(tiny) == (floor, "overhead", cost.provenance)
    sm = StepModel(load_model("Qwen3-32B"), C600, InstanceConfig(tp=4), predictor=cost)
    op = {o.name: o for o in sm.explain_decode(np.full(1, 100)).ops}["elementwise"]
    assert op.source == cost.provenance and op.time == pytest.approx(floor * op.count * 5)
