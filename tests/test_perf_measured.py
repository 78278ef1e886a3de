"""The measured-table predictor: log-space interpolation inside NVIDIA's per-op kernel tables,
roofline outside them, and per-op provenance. Runs on the excerpt under tests/data/measured
(cut from aiconfigurator-core 0.12.0's h200_sxm vLLM 0.24.0 tables) without the nvidia extra."""

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetsim.errors import InputError
from hetsim.perf.cost import MeasuredPredictor, Provenance, RooflinePredictor, predictor_for
from hetsim.perf.cost import provenance as provenance_of
from hetsim.perf.measured import LogGrid, load_tables, read_tables_file, save_tables
from hetsim.perf.measured.tables import available_versions
from hetsim.perf.ops import Kernel
from hetsim.perf.step import InstanceConfig, StepModel, StepModels
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model
from hetsim.spec.scenario import PoolSpec

EXCERPT = Path(__file__).parent / "data" / "measured"
RAW = EXCERPT / "h200_sxm"
LABEL = "measured:h200_sxm/vllm-0.24.0"
H200 = load_profile("nvidia-h200-sxm")


@pytest.fixture(scope="module")
def tables():
    return load_tables("h200_sxm", "vllm", root=EXCERPT)


@pytest.fixture(scope="module")
def npz(tables, tmp_path_factory):
    return save_tables(tables, tmp_path_factory.mktemp("measured") / "h200_vllm.npz")


@pytest.fixture(scope="module")
def h200(npz):
    """The H200 profile pointing at the calibration file (readable without the extra)."""
    return H200.model_copy(update={"measured_tables": str(npz)})


def gemm_rows(dtype: str) -> pd.DataFrame:
    df = pd.read_parquet(RAW / "gemm/vllm/0.24.0/gemm_perf.parquet")
    return df[df.gemm_dtype == dtype].groupby(["m", "n", "k"], as_index=False).latency.min()


def gemm_kernel(m, n, k, dtype="bf16"):
    return Kernel("g", "gemm", dtype, 2.0 * m * n * k, 2.0 * (n * k + m * k + m * n),
                  {"m": m, "n": n, "k": k})  # fmt: skip


# ---- the grid ----------------------------------------------------------------------------------


def test_log_grid_interpolates_log_latency_over_log_axes_by_hand():
    grid = LogGrid.from_points([np.array([1, 4])], np.array([1e-3, 4e-3]))
    # halfway in log(x) between 1 and 4 is x = 2; halfway in log(t) is sqrt(1e-3 * 4e-3) = 2e-3
    assert grid(2.0) == pytest.approx(2e-3, rel=1e-12)
    grid2 = LogGrid.from_points([np.array([1, 1, 4, 4]), np.array([1, 9, 1, 9])],
                                np.array([1.0, 9.0, 4.0, 36.0]))  # fmt: skip
    # t = x·y is a plane in log space, so bilinear interpolation in logs is exact
    assert grid2(2.0, 3.0) == pytest.approx(6.0, rel=1e-12)


def test_log_grid_answers_none_outside_and_next_to_an_unmeasured_corner():
    grid = LogGrid.from_points([np.array([1, 1, 2]), np.array([1, 2, 1])], np.array([1, 2, 3.0]))
    assert grid(0.5, 1) is None and grid(1, 3) is None  # outside the axes
    assert grid(1.5, 1.5) is None  # the cell's corner (2, 2) was never measured
    # a measured point next to the hole is still exact
    assert grid(2, 1) == pytest.approx(3.0, rel=1e-12)


def test_a_shape_measured_by_two_kernels_keeps_the_fastest():
    grid = LogGrid.from_points([np.array([8, 8])], np.array([5e-3, 3e-3]))
    assert grid(8) == pytest.approx(3e-3, rel=1e-12)


def test_gemm_grid_is_exact_at_every_table_point(tables):
    for dtype, fmt in (("bfloat16", "bf16"), ("fp8", "fp8")):
        rows = gemm_rows(dtype)
        grid = tables.gemm[fmt]
        got = np.array([grid(m, n, k) for m, n, k in rows[["m", "n", "k"]].to_numpy()])
        np.testing.assert_allclose(got, rows.latency.to_numpy() * 1e-3, rtol=1e-12)


def test_attention_grids_are_exact_at_table_points(tables):
    df = pd.read_parquet(RAW / "attention/vllm/0.24.0/generation_attention_perf.parquet")
    df = df[df.kv_cache_dtype == "bfloat16"]
    for r in df.itertuples():
        grid = tables.generation[(r.num_heads, r.num_key_value_heads, r.head_dim, "bf16")]
        # the table's step is the cached length: step + 1 tokens are attended
        assert grid(r.batch_size, r.step + 1) == pytest.approx(r.latency * 1e-3, rel=1e-12)


def _monotone_columns(rows: pd.DataFrame, along: str, by: list[str]):
    for key, col in rows.sort_values(along).groupby(by):
        lat = col.latency.to_numpy()
        if len(lat) > 2 and np.all(np.diff(lat) >= 0):
            yield key, col[along].to_numpy()


def test_gemm_interpolation_is_monotone_in_m_n_and_k_where_the_table_is(tables):
    rows, grid = gemm_rows("bfloat16"), tables.gemm["bf16"]
    axes = ["m", "n", "k"]
    checked = 0
    for along in axes:
        others = [a for a in axes if a != along]
        for key, points in _monotone_columns(rows, along, others):
            xs = np.geomspace(points[0], points[-1], 60)
            fixed = dict(zip(others, key, strict=True))
            ts = [_at(grid, fixed, along, x) for x in xs]
            assert all(b >= a for a, b in zip(ts, ts[1:], strict=False))
            checked += 1
    assert checked > 50


def _at(grid, fixed, along, x):
    point = {**fixed, along: x}
    return grid(point["m"], point["n"], point["k"])


def test_context_attention_is_monotone_in_prompt_length_where_the_table_is(tables):
    df = pd.read_parquet(RAW / "attention/vllm/0.24.0/context_attention_perf.parquet")
    df = df[df.kv_cache_dtype == "bfloat16"]
    checked = 0
    for (b, h, kvh), isl in _monotone_columns(df, "isl", ["batch_size", "num_heads",
                                                          "num_key_value_heads"]):  # fmt: skip
        grid = tables.context[(h, kvh, 128, "bf16")]
        ts = [grid(b, x) for x in np.geomspace(isl[0], isl[-1], 40)]
        assert all(t is not None for t in ts)
        assert all(y >= x for x, y in zip(ts, ts[1:], strict=False))
        checked += 1
    assert checked >= 10


# ---- the predictor -----------------------------------------------------------------------------


def test_a_gemm_on_a_table_point_costs_the_measured_latency_and_says_measured(tables):
    p = MeasuredPredictor.of(H200, tables)
    row = gemm_rows("bfloat16").query("m == 64 and n == 4096 and k == 4096").iloc[0]
    t, _, source = p.kernel(gemm_kernel(64, 4096, 4096))
    assert t == pytest.approx(row.latency * 1e-3, rel=1e-12)
    assert source == LABEL and source.kind is Provenance.MEASURED


def test_ops_outside_the_grid_fall_back_to_the_roofline_and_say_so(tables):
    p, roof = MeasuredPredictor.of(H200, tables), RooflinePredictor.of(H200)
    for k in (gemm_kernel(64, 128256, 4096),  # n beyond the excerpt's 51200
              gemm_kernel(16384, 4096, 4096),  # m beyond its 8192
              gemm_kernel(64, 4096, 4096, "int8"),  # a format without a table
              Kernel("elementwise", "memcpy", "bytes", 0.0, 1e9, {"bytes": 5e8})):  # fmt: skip
        assert p.kernel(k) == roof.kernel(k)
        assert p.kernel(k)[2] == Provenance.ROOFLINE_DEFAULT


def test_no_kernel_is_faster_than_the_shortest_the_tables_measured(tables):
    p, roof = MeasuredPredictor.of(H200, tables), RooflinePredictor.of(H200)
    shortest = pd.read_parquet(RAW / "gemm/vllm/0.24.0/gemm_perf.parquet").latency.min() * 1e-3
    assert p.floor == pytest.approx(shortest, rel=1e-12)
    tiny = Kernel("elementwise", "memcpy", "bytes", 0.0, 1e6, {"bytes": 5e5})
    assert roof.kernel(tiny)[0] < shortest  # 0.26 us of bandwidth
    assert p.kernel(tiny) == (pytest.approx(shortest, rel=1e-12), "overhead", LABEL)
    # a fused-MoE expert shares its kernel's launch: no floor per expert
    expert = Kernel("routed_experts", "gemm", "bf16", 1e3, 1e3, {"m": 1, "n": 4096, "k": 4096})
    assert p.kernel(expert) == roof.kernel(expert) and roof.kernel(expert)[0] < shortest


def test_decode_attention_with_its_kv_family_is_read_from_the_generation_table(tables):
    p = MeasuredPredictor.of(H200, tables)
    shape = {"batch": 32, "context": 4096, "heads": 32, "head_dim": 128, "kv_heads": 8,
             "kv": "bf16"}  # fmt: skip
    t, _, source = p.kernel(Kernel("attention_decode", "attention_decode", "bf16", 1.0, 1.0, shape))
    assert t == tables.generation[(32, 8, 128, "bf16")](32, 4096) and source == LABEL
    # heads that do not split evenly over ranks have no table family
    uneven = {**shape, "heads": 10.5}
    big = Kernel("a", "attention_decode", "bf16", 1e12, 1e9, uneven)  # above the kernel floor
    assert p.kernel(big)[2] == "roofline-default"


def test_tp_allreduce_reads_the_message_in_bf16_elements_from_the_custom_allreduce_table(h200):
    df = pd.read_parquet(RAW / "comm/vllm/0.24.0/custom_allreduce_perf.parquet")
    row = df[(df.num_gpus == 4) & (df.message_size == 65536)
             & (df.kernel_source == "vLLM_custom_graph")].iloc[0]  # fmt: skip
    sm = StepModel(load_model("Llama-3.1-8B"), h200, InstanceConfig(tp=4), runtime="vllm")
    # 16 tokens × hidden 4096 = 65,536 elements per all-reduce, two per layer
    op = sm.explain_decode(np.full(16, 1000)).to_frame().set_index("name").loc["tp_allreduce"]
    assert op.time == pytest.approx(2 * 32 * row.latency * 1e-3, rel=1e-9)
    assert op.source == LABEL


# ---- the step model and selection --------------------------------------------------------------


def test_step_with_measured_tables_differs_from_roofline_and_each_op_names_its_source(h200):
    model = load_model("Llama-3.1-8B")
    measured = StepModel(model, h200, InstanceConfig(tp=2), runtime="vllm")
    roofline = StepModel(model, h200, InstanceConfig(tp=2))
    new, cached = np.array([1024, 1, 1]), np.array([0, 3000, 100])
    frame = measured.explain_step(new, cached).to_frame().set_index("name")
    source = frame["source"]
    assert (
        source[["qkv_proj", "o_proj", "mlp_gate_up", "mlp_down", "tp_allreduce"]] == LABEL
    ).all()
    # lm_head's n = 128256 / 2 lies beyond the excerpt's GEMM grid; elementwise has no table
    assert (source[["lm_head", "elementwise"]] == "roofline-default").all()
    assert measured.provenance == LABEL and roofline.provenance == "roofline-default"
    assert measured.step_time(new, cached) != pytest.approx(roofline.step_time(new, cached))
    assert measured.step_time(new, cached) == pytest.approx(frame["time"].sum(), rel=1e-9)


def test_fast_decode_path_equals_the_explanation_with_tables(h200):
    sm = StepModel(load_model("Llama-3.1-8B"), h200, InstanceConfig(tp=2), runtime="vllm")
    ctx = np.array([10, 500, 3000, 7000])
    explained = sm.explain_decode(ctx).time
    assert sm.decode_time(ctx) == pytest.approx(explained, rel=1e-12)
    assert sm.decode_time_from_sum(4, int(ctx.sum())) == pytest.approx(explained, rel=1e-12)


def test_a_pool_naming_its_runtime_selects_the_measured_predictor(h200):
    pool = dict(name="d", role="decode", accelerator="nvidia-h200-sxm", tp=2)
    models, model = StepModels(), load_model("Llama-3.1-8B")
    with_runtime = models.for_pool(model, h200, PoolSpec(**pool, runtime="vllm"))
    without = models.for_pool(model, h200, PoolSpec(**pool))
    assert isinstance(with_runtime.cost, MeasuredPredictor) and with_runtime.provenance == LABEL
    assert isinstance(without.cost, RooflinePredictor) and without.provenance == "roofline-default"
    assert provenance_of(h200, runtime="vllm") == LABEL
    assert provenance_of(h200) == "roofline-default"


# ---- the calibration file and errors -----------------------------------------------------------


def test_the_calibration_file_round_trips_tables_and_names_source_and_licence(tables, npz):
    back = read_tables_file(npz)
    assert back.label == LABEL
    k = gemm_kernel(100, 5000, 3000)
    assert MeasuredPredictor.of(H200, back).kernel(k) == MeasuredPredictor.of(H200, tables).kernel(
        k
    )
    meta = np.load(npz)["meta"]
    assert "Apache-2.0" in str(meta) and "aiconfigurator" in str(meta)


def test_an_unknown_version_is_an_error_listing_the_available_ones():
    with pytest.raises(InputError, match=r"0\.99.*allowed: 0\.24\.0|0\.24\.0") as e:
        load_tables("h200_sxm", "vllm", "0.99", root=EXCERPT)
    assert e.value.allowed == "0.24.0" and e.value.field == "version"


def test_a_system_or_runtime_without_tables_is_an_error_naming_what_exists():
    with pytest.raises(InputError, match="h100_sxm") as e:
        load_tables("h100_sxm", "vllm", root=EXCERPT)
    assert e.value.allowed == "h200_sxm"
    with pytest.raises(InputError, match="sglang"):
        load_tables("h200_sxm", "sglang", root=EXCERPT)


def test_a_runtime_without_the_extra_is_an_error_naming_the_fix(monkeypatch):
    import importlib.resources

    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(InputError, match=r"pip install -e '\.\[nvidia\]'.*drop `runtime:`"):
        predictor_for(H200.model_copy(update={"measured_tables": "no_such_system"}), None, "vllm")


def test_a_runtime_on_a_profile_without_tables_is_an_error_not_a_silent_fallback():
    h20 = load_profile("nvidia-h20")
    with pytest.raises(InputError, match="measured_tables") as e:
        StepModel(load_model("Llama-3.1-8B"), h20, InstanceConfig(), runtime="vllm")
    assert e.value.field == "runtime"


def test_real_wheel_tables_load_newest_version_and_are_exact_at_a_table_point():
    pytest.importorskip("aiconfigurator_core")
    tables = load_tables("h200_sxm", "vllm")
    assert tables.label == LABEL
    row = gemm_rows("bfloat16").iloc[100]  # the excerpt's rows are copied from the wheel
    assert tables.gemm["bf16"](row.m, row.n, row.k) == pytest.approx(row.latency * 1e-3, rel=1e-12)
    assert math.isfinite(tables.allreduce[8](1e6))


def test_routed_experts_stay_on_the_roofline_not_one_dense_gemm_per_expert(h200):
    """A runtime runs the routed experts as one fused kernel; pricing each expert's few rows as
    a dense GEMM from the table would charge a launch per expert."""
    model = load_model("Qwen3-30B-A3B")
    # tp 1: the experts' gate-up GEMM (n 1536, k 2048) lies inside the excerpt's GEMM grid
    sm = StepModel(model, h200, InstanceConfig(), runtime="vllm")
    roof = StepModel(model, h200, InstanceConfig())
    ctx = np.full(64, 2000)
    got = sm.explain_decode(ctx).to_frame().set_index("name").loc["routed_experts"]
    want = roof.explain_decode(ctx).to_frame().set_index("name").loc["routed_experts"]
    assert got.source == "roofline-default" and got.time == pytest.approx(want.time, rel=1e-12)


def test_the_newest_version_with_every_required_table_is_chosen(tmp_path):
    # a newer collection that measured GEMMs only cannot price a step: the newest complete one
    # is used (aiconfigurator's b200_sxm/trtllm has GEMMs at 1.3.0rc23, attention at rc20)
    root = tmp_path / "systems"
    shutil.copytree(EXCERPT / "h200_sxm", root / "h200_sxm")
    gemm_only = root / "h200_sxm" / "gemm" / "vllm" / "0.25.0"
    shutil.copytree(root / "h200_sxm" / "gemm" / "vllm" / "0.24.0", gemm_only)
    assert available_versions(root, "h200_sxm", "vllm") == ["0.24.0"]
    assert load_tables("h200_sxm", "vllm", root=root).label == "measured:h200_sxm/vllm-0.24.0"
