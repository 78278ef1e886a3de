"""Measured board power: the power columns of NVIDIA's kernel tables as grids, a step's energy
as Σ op time × op power (tdp where no table measured the op), and the simulator's busy energy.

Runs on the excerpt under tests/data/measured without the nvidia extra: b200_sxm vLLM 0.24.0
(GEMM, attention and MoE latencies) beside 0.22.0's attention and MoE tables, which alone carry
``power``, so the power is borrowed from 0.22.0 and labelled so."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetsim import scenario_from_dict, simulate
from hetsim.perf.measured import load_tables, read_tables_file, save_tables
from hetsim.perf.speculative import SpeculativeStep
from hetsim.perf.step import TDP_POWER, InstanceConfig, StepModel
from hetsim.sim.engine import Simulation
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model

EXCERPT = Path(__file__).parent / "data" / "measured"
POWER_ROOT = EXCERPT / "b200_power"
RAW = POWER_ROOT / "b200_sxm"
POWER = "measured-power:b200_sxm/vllm-0.22.0"
B200 = load_profile("nvidia-b200")
LLAMA = load_model("Llama-3.1-8B")


@pytest.fixture(scope="module")
def tables():
    return load_tables("b200_sxm", "vllm", root=POWER_ROOT)


@pytest.fixture(scope="module")
def npz(tables, tmp_path_factory):
    return save_tables(tables, tmp_path_factory.mktemp("measured") / "b200_vllm.npz")


@pytest.fixture(scope="module")
def b200(npz):
    """The B200 profile reading the excerpt's tables from a file (no extra needed)."""
    return B200.model_copy(update={"measured_tables": str(npz)})


def _fastest(path: Path, shape: list[str]) -> pd.DataFrame:
    """One row per shape: the fastest kernel's, whose power the grid keeps."""
    df = pd.read_parquet(path)
    return df.sort_values("latency", kind="stable").drop_duplicates(shape)


# ---- the tables ---------------------------------------------------------------------------------


def test_times_come_from_the_newest_complete_version_and_power_from_the_one_that_measured_it(
    tables,
):
    assert tables.version == "0.24.0"  # 0.22.0 has no GEMM table: it cannot price a step
    assert tables.power_versions == {
        "context_attention": "0.22.0",
        "generation_attention": "0.22.0",
        "moe": "0.22.0",
    }
    assert tables.power_label("generation") == POWER


def test_power_grids_are_exact_at_every_table_point(tables):
    gen = _fastest(RAW / "attention/vllm/0.22.0/generation_attention_perf.parquet",
                   ["batch_size", "step"])  # fmt: skip
    grid = tables.power["generation"][(32, 8, 128, "bf16")]
    for r in gen.itertuples():
        assert grid(r.batch_size, r.step + 1) == pytest.approx(r.power, rel=1e-12)
    ctx = _fastest(RAW / "attention/vllm/0.22.0/context_attention_perf.parquet",
                   ["batch_size", "isl"])  # fmt: skip
    grid = tables.power["context"][(32, 8, 128, "bf16")]
    for r in ctx.itertuples():
        assert grid(r.batch_size, r.isl) == pytest.approx(r.power, rel=1e-12)
    moe = _fastest(RAW / "moe/vllm/0.22.0/moe_perf.parquet", ["num_tokens"])
    grid = tables.power["moe"][("bf16", 2048, 768, 8, 128, 1, 1)]
    for r in moe.itertuples():
        assert grid(r.num_tokens) == pytest.approx(r.power, rel=1e-12)


def test_power_is_never_extrapolated(tables):
    grid = tables.power["generation"][(32, 8, 128, "bf16")]
    assert grid(4096, 1024) is None  # past the largest batch measured (2048)
    assert grid(8, 1) is None  # below the shortest attended length measured (2)


def test_the_calibration_file_keeps_the_power_and_where_it_came_from(tables, npz):
    back = read_tables_file(npz)
    assert back.power_versions == tables.power_versions
    assert back.power["generation"][(32, 8, 128, "bf16")](8, 1024) == pytest.approx(
        tables.power["generation"][(32, 8, 128, "bf16")](8, 1024), rel=1e-15
    )


def test_tables_without_power_columns_have_no_power():
    h200 = load_tables("h200_sxm", "vllm", root=EXCERPT)
    assert h200.power_versions == {} and h200.power == {}


# ---- a step's energy ----------------------------------------------------------------------------


def test_without_measured_power_a_step_draws_tdp_times_its_time_exactly(b200):
    # the roofline (no runtime) and a measured table set without power: tdp is all there is
    h200 = load_profile("nvidia-h200-sxm")
    h200 = h200.model_copy(
        update={"measured_tables": str(save_tables(load_tables("h200_sxm", "vllm",
                                                               root=EXCERPT),
                                                   Path(b200.measured_tables).with_name("h.npz")))}
    )  # fmt: skip
    new, cached = np.array([1, 1, 300]), np.array([700, 90, 0])
    for sm in (StepModel(LLAMA, b200, InstanceConfig()),
               StepModel(LLAMA, h200, InstanceConfig(), runtime="vllm")):  # fmt: skip
        assert not sm.has_measured_power and sm.power_source == TDP_POWER
        assert sm.step_energy(new, cached) == sm.tdp * sm.step_time(new, cached)
        assert sm.below_tdp(new, cached) == 0.0


def test_a_b200_decode_step_draws_its_attention_at_the_measured_power(b200):
    """Eight sequences attending 1,024 tokens each: decode attention is a point of both
    tables (0.24.0's latency, 0.22.0's power), so by hand the step draws tdp × (time − layers ×
    attention) + layers × attention × power."""
    sm = StepModel(LLAMA, b200, InstanceConfig(), runtime="vllm")
    assert sm.has_measured_power and sm.power_source.startswith(POWER)
    context = np.full(8, 1023)
    lat = _fastest(RAW / "attention/vllm/0.24.0/generation_attention_perf.parquet",
                   ["batch_size", "step"])  # fmt: skip
    pw = _fastest(RAW / "attention/vllm/0.22.0/generation_attention_perf.parquet",
                  ["batch_size", "step"])  # fmt: skip
    at = {"batch_size": 8, "step": 1023}
    attention = float(lat[(lat.batch_size == 8) & (lat.step == 1023)].latency.iloc[0]) * 1e-3
    watts = float(pw[(pw.batch_size == at["batch_size"]) & (pw.step == at["step"])].power.iloc[0])
    layers, tdp = LLAMA.num_layers, 1000.0
    time = sm.decode_time(context)
    by_hand = tdp * (time - layers * attention) + layers * attention * watts
    energy = sm.tdp * time - sm.decode_below_tdp(context)
    assert energy == pytest.approx(by_hand, rel=1e-9)
    assert energy < tdp * time
    # the same step priced from the context sum (the decode loop's path) and as a mixed step
    assert sm.decode_below_tdp_from_sum(8, 8 * 1023) == pytest.approx(
        sm.decode_below_tdp(context), rel=1e-12
    )
    assert sm.step_energy(np.ones(8, np.int64), context) == pytest.approx(by_hand, rel=1e-9)


def test_a_b200_moe_step_draws_its_fused_experts_at_the_measured_power(b200):
    """Qwen3-30B-A3B's attention family is not in the excerpt (tdp); its routed experts run the
    fused MoE kernel, whose power at 8 tokens is the 0.22.0 table's."""
    qwen = load_model("Qwen3-30B-A3B")
    sm = StepModel(qwen, b200, InstanceConfig(), runtime="vllm")
    context = np.full(8, 500)
    kernel = sm.ops.fused_experts(8, 8.0)
    seconds = sm.cost.fused_experts(kernel)[0] * sm.ops.expert_up.count
    moe = _fastest(RAW / "moe/vllm/0.22.0/moe_perf.parquet", ["num_tokens"])
    watts = float(moe[moe.num_tokens == 8].power.iloc[0])
    assert sm.decode_below_tdp(context) == pytest.approx(seconds * (1000.0 - watts), rel=1e-9)


# ---- the simulator ------------------------------------------------------------------------------


def _scenario(
    tmp_path: Path,
    npz: Path,
    pools: list[dict],
    faults: list | None = None,
    warmup: int = 0,
    **workload,
):
    """A scenario whose pools run on a local copy of the B200 profile reading the excerpt."""
    profiles = tmp_path / "hardware_profiles"
    profiles.mkdir(exist_ok=True)
    text = (Path(__file__).parent.parent / "hardware_profiles" / "nvidia-b200.yaml").read_text()
    text = text.replace("name: nvidia-b200", "name: b200-excerpt").replace(
        "measured_tables: b200_sxm", f"measured_tables: {npz}"
    )
    (profiles / "b200-excerpt.yaml").write_text(text)
    data = {
        "name": "power",
        "model": "Llama-3.1-8B",
        "pools": pools,
        "workload": {"synthetic": {"rate": "20 req/s", "requests": 10, "input_tokens": 512,
                                   "output_tokens": 200, **workload}},
        "sla": {"ttft": "2 s", "tpot": "50 ms"},
        "seed": 5,
    }  # fmt: skip
    if faults:
        data["faults"] = {"events": faults}
    if warmup:
        data["workload"]["warmup_requests"] = warmup
    decode = [p["name"] for p in pools if p["role"] == "decode"]
    if decode:
        data["interconnect"] = {"paths": [
            {"from": "prefill", "to": d, "hops": [
                {"name": f"nic-{d}", "kind": "nic", "bandwidth": "100 Gbps", "latency": "5 us"}]}
            for d in decode
        ]}  # fmt: skip
    return scenario_from_dict(data, path=tmp_path / "power.yaml")


def _pool(name: str, role: str, accelerator: str = "b200-excerpt", runtime="vllm") -> dict:
    pool = {"name": name, "role": role, "accelerator": accelerator, "instances": 1,
            "batching": {"max_num_seqs": 16, "max_batched_tokens": 2048}}  # fmt: skip
    if runtime:
        pool["runtime"] = runtime
    return pool


def _energies(scenario):
    fast = simulate(scenario).summary.energy
    slow = simulate(scenario, fast_forward=False).summary.energy
    return fast, slow


def test_fast_forward_books_the_energy_step_by_step_does(tmp_path, npz):
    scenario = _scenario(tmp_path, npz, [_pool("serve", "colocated")])
    fast, slow = _energies(scenario)
    assert fast.energy_j == pytest.approx(slow.energy_j, rel=1e-9)
    assert fast.power_source["serve"].startswith(POWER)
    # busy steps draw below tdp (attention at its measured power): below the tdp-only figure
    summary = simulate(scenario).summary
    busy = summary.utilisation["serve"].busy
    assert fast.per_pool_w["serve"] < 1000.0 * (0.3 + 0.7 * busy)
    assert POWER in fast.measured_power_note()


def test_disaggregated_pools_and_a_crash_book_the_same_energy_both_ways(tmp_path, npz):
    """Prefill and decode pools with measured power, the decode instance crashing mid-run (its
    step under way is cut, the unserved part of its energy taken back), beside a pool without
    measured power, which keeps the tdp-only definition exactly."""
    pools = [_pool("prefill", "prefill"), _pool("decode", "decode"),
             _pool("decode2", "decode", "nvidia-h100-sxm", runtime=None)]  # fmt: skip
    crash = [{"kind": "instance_crash", "target": "decode[0]", "at": "0.3 s",
              "duration": "0.2 s"}]  # fmt: skip
    scenario = _scenario(tmp_path, npz, pools, crash)
    fast, slow = _energies(scenario)
    for pool in ("prefill", "decode", "decode2"):
        assert fast.per_pool_w[pool] == pytest.approx(slow.per_pool_w[pool], rel=1e-9)
    assert fast.power_source["decode2"] == TDP_POWER
    summary = simulate(scenario).summary
    busy = summary.utilisation["decode2"].busy
    assert fast.per_pool_w["decode2"] == 700.0 * (0.3 + 0.7 * busy)  # H100 SXM: 700 W
    assert summary.faults  # the crash happened


def test_a_crash_takes_back_the_energy_of_the_unserved_part_of_its_step(tmp_path, npz):
    """One 16,000-token prompt in one prefill step (about 0.2 s on B200), which starts at 33 ms
    (vLLM's frontend admits the prompt first): the prefill instance crashes 30 ms into it and
    prefills it again after its restart. The cut step
    counts its first 30 ms only, in busy time and in energy alike, so the busy energy stays
    within tdp × busy time; were the whole cut step's energy kept, it would be ~1.7× that."""
    prefill = {**_pool("prefill", "prefill"),
               "batching": {"max_num_seqs": 16, "max_batched_tokens": 16384}}  # fmt: skip
    crash = [{"kind": "instance_crash", "target": "prefill[0]", "at": "63 ms",
              "duration": "1 s"}]  # fmt: skip
    scenario = _scenario(tmp_path, npz, [prefill, _pool("decode", "decode")], crash,
                         requests=1, input_tokens=16000, output_tokens=4)  # fmt: skip
    sim = Simulation(scenario)
    out = sim.run()
    assert out.facts.faults["instance_crashes"] == 1 and out.facts.faults["retries"] == 1
    inst = next(i for i in sim.topology.instances if i.name == "prefill[0]")
    busy, energy = inst.busy_until(sim.env.now), inst.busy_energy_until(sim.env.now)
    step = inst.step_model.step_time(np.array([16000]))
    assert busy == pytest.approx(step + 0.03, rel=1e-6)  # the cut step's 30 ms, then the whole
    assert 0.9 * 1000.0 * busy < energy <= 1000.0 * busy


def test_a_speculative_step_without_drafts_draws_what_the_decode_step_draws(b200):
    """With no draft tokens the verify pass is the plain decode step (perf.speculative): the
    same energy. With two drafts the verify pass's attention runs 3 × 32 query heads, a family
    the excerpt lacks (tdp), and the drafts' one-layer passes their attention at the measured
    power: two of the plain step's 32 layers' worth (Llama has no other measured-power op)."""
    sm = StepModel(LLAMA, b200, InstanceConfig(), runtime="vllm")
    context = np.full(8, 1023)
    assert SpeculativeStep(sm, 0).below_tdp(context) == sm.decode_below_tdp(context)
    spec = SpeculativeStep(sm, 2)
    below = spec.below_tdp(context)
    assert below == pytest.approx(2 * sm.decode_below_tdp(context) / 32, rel=1e-12)


def test_a_straggler_and_a_warm_up_window_book_the_same_energy_both_ways(tmp_path, npz):
    """A straggler cuts a fast-forward run mid-way (the steps after it draw at the same power
    for three times as long), and the energy is counted from the first measured request on."""
    straggler = [{"kind": "straggler", "target": "serve[0]", "at": "0.5 s",
                  "duration": "0.3 s", "factor": 3.0}]  # fmt: skip
    scenario = _scenario(tmp_path, npz, [_pool("serve", "colocated")], straggler, warmup=3)
    fast, slow = _energies(scenario)
    assert fast.energy_j == pytest.approx(slow.energy_j, rel=1e-9)
    plain = _scenario(tmp_path, npz, [_pool("serve", "colocated")], warmup=3)
    assert simulate(plain).summary.energy.energy_j < fast.energy_j  # the slowed steps drew more


def test_a_kernel_the_roofline_times_draws_tdp_even_where_its_power_was_measured(
    tables, b200, tmp_path
):
    """The latency grid without its largest batch, 2,048 (the roofline then times a decode
    step of 2,048 sequences), beside a power grid that still has it: the measured draw pairs
    with measured times only, so that step draws tdp throughout."""
    rows = dict(tables.rows)
    generation = rows["generation_attention"]
    rows["generation_attention"] = generation[generation["batch"] < 2048]
    holed = type(tables)(tables.system, tables.runtime, tables.version, rows,
                         tables.power_versions)  # fmt: skip
    assert holed.power["generation"][(32, 8, 128, "bf16")](2048, 128) is not None
    assert holed.generation[(32, 8, 128, "bf16")](2048, 128) is None
    profile = b200.model_copy(
        update={"measured_tables": str(save_tables(holed, tmp_path / "holed.npz"))}
    )
    context = np.full(2048, 127)  # attending 128 tokens each
    full = StepModel(LLAMA, b200, InstanceConfig(), runtime="vllm")
    rooflined = StepModel(LLAMA, profile, InstanceConfig(), runtime="vllm")
    assert full.decode_below_tdp(context) > 0
    assert rooflined.decode_below_tdp(context) == 0.0
