"""Speculative decoding (MTP): the scenario field, the step's price, and the simulator's
accounting — every requested output token comes out exactly once, TPOT falls but never below
a step per k + 1 tokens, the acceptance length is the analytic one, a seed repeats a run, and
bad settings are input errors."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hetsim.errors import InputError
from hetsim.perf.ops import InstanceConfig
from hetsim.perf.speculative import SpeculativeStep
from hetsim.perf.step import StepModel
from hetsim.sim.engine import Simulation
from hetsim.sim.instance.speculative import SpeculativeBatch
from hetsim.sim.state import Req
from hetsim.simulation import simulate
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import MODEL_CONFIG_DIR, load_model
from hetsim.spec.resolve import scenario_from_dict
from hetsim.spec.scenario import PoolSpec, ScenarioSpec, SpeculativeSpec

REPO = Path(__file__).resolve().parents[1]
FP8 = {"weights": "fp8_e4m3", "activations": "fp8_e4m3", "kv": "fp8_e4m3"}
MTP2 = {"method": "mtp", "tokens": 2, "acceptance": [0.8, 0.6]}


def dsv3_pd(requests: int = 200, rate: float = 2.0, **decode) -> dict:
    """DeepSeek-V3 on H200s: 2 prefill instances, one decode instance, fp8, tp 8 × ep 8."""
    return {
        "name": "dsv3-pd",
        "model": "DeepSeek-V3",
        "pools": [
            {
                "name": "prefill",
                "role": "prefill",
                "accelerator": "nvidia-h200-sxm",
                "instances": 2,
                "tp": 8,
                "ep": 8,
                "precision": FP8,
                "batching": {"max_num_seqs": 16, "max_batched_tokens": 16384},
            },
            {
                "name": "decode",
                "role": "decode",
                "accelerator": "nvidia-h200-sxm",
                "tp": 8,
                "ep": 8,
                "precision": FP8,
                "batching": {"max_num_seqs": 64, "max_batched_tokens": 256},
                "kv_page_tokens": 64,
                **decode,
            },
        ],
        "interconnect": {
            "paths": [
                {
                    "from": "prefill",
                    "to": "decode",
                    "hops": [{"name": "ib", "kind": "nic", "bandwidth": "3200 Gbps"}],
                }
            ]
        },
        "kv": {"transfer_format": "fp8_e4m3"},
        "workload": {
            "synthetic": {
                "arrival": "poisson",
                "rate": f"{rate!r} req/s",
                "requests": requests,
                "input_tokens": {
                    "dist": "lognormal",
                    "mean": 2048,
                    "cv": 0.5,
                    "min": 128,
                    "max": 8192,
                },  # fmt: skip
                "output_tokens": {
                    "dist": "lognormal",
                    "mean": 256,
                    "cv": 0.8,
                    "min": 1,
                    "max": 2048,
                },  # fmt: skip
            }
        },
        "sla": {"ttft": "2 s", "tpot": "50 ms"},
        "seed": 0,
    }


def dsv3_colocated(**pool) -> dict:
    data = dsv3_pd(requests=120, rate=1.0)
    data["pools"] = [
        {
            "name": "serve",
            "role": "colocated",
            "accelerator": "nvidia-h200-sxm",
            "tp": 8,
            "ep": 8,
            "precision": FP8,
            "batching": {"max_num_seqs": 32, "max_batched_tokens": 4096, "chunk_size": 2048},
            "kv_page_tokens": 64,
            **pool,
        }
    ]
    data.pop("interconnect")
    return data


def run_counting(data: dict):
    """Simulate, recording each finished request's produced and requested output tokens."""
    sim = Simulation(scenario_from_dict(data))
    ends: list[tuple[int, int]] = []
    for inst in sim.topology.instances:
        finish = inst._finish

        def counted(req: Req, finish=finish) -> None:
            ends.append((req.generated, req.output))
            finish(req)

        inst._finish = counted
    return sim.run(), ends


def analytic_length(rates: list[float]) -> float:
    return 1.0 + float(np.cumprod(rates).sum())


# ---- the scenario field -----------------------------------------------------------------------


def test_speculative_field_parses_and_defaults_to_off():
    pool = {"name": "d", "role": "decode", "accelerator": "nvidia-h200-sxm"}
    assert PoolSpec.model_validate(pool).speculative is None
    spec = PoolSpec.model_validate({**pool, "speculative": MTP2}).speculative
    assert spec == SpeculativeSpec(method="mtp", tokens=2, acceptance=[0.8, 0.6])
    assert spec.mean_accepted == pytest.approx(1 + 0.8 + 0.8 * 0.6)
    schema = json.dumps(ScenarioSpec.model_json_schema())
    assert "speculative" in schema and "acceptance" in schema


@pytest.mark.parametrize(
    ("speculative", "pool", "expect"),
    [
        ({**MTP2, "acceptance": [0.8, 1.2]}, {}, ("acceptance", "1.2", "(0, 1]")),
        ({**MTP2, "acceptance": [0.0, 0.5]}, {}, ("acceptance", "0.0", "(0, 1]")),
        ({**MTP2, "acceptance": [0.8]}, {}, ("acceptance", "tokens=2", "exactly 2")),
        ({**MTP2, "method": "draft_model"}, {}, ("method", "draft_model", "allowed: mtp")),
        ({**MTP2, "tokens": 0}, {}, ("tokens",)),
        ({"method": "mtp", "tokens": 1}, {}, ("acceptance", "missing")),
        ({**MTP2, "accept": 0.7}, {}, ("accept", "unknown key")),
    ],
    ids=[
        "rate-above-1",
        "rate-zero",
        "one-rate-per-draft",
        "draft-model",
        "no-drafts",
        "no-acceptance",
        "unknown-key",
    ],  # fmt: skip
)
def test_bad_speculative_settings_are_input_errors(speculative, pool, expect):
    data = dsv3_pd(speculative=speculative, **pool)
    with pytest.raises(InputError) as err:
        scenario_from_dict(data)
    text = str(err.value)
    assert "pools[1].speculative" in text
    for part in expect:
        assert part in text


def test_speculation_on_a_prefill_pool_is_an_input_error():
    data = dsv3_pd()
    data["pools"][0]["speculative"] = MTP2
    with pytest.raises(InputError, match=r"pools\[0\]\.speculative.*decode and colocated"):
        scenario_from_dict(data)


def test_mtp_on_a_model_without_mtp_layers_is_an_input_error():
    data = dsv3_pd(speculative=MTP2)
    data["model"] = "Qwen3-32B"
    for pool in data["pools"]:
        pool.update(tp=1, ep=1, precision="bf16")
    with pytest.raises(InputError) as err:
        scenario_from_dict(data)
    text = str(err.value)
    assert "pools[1].speculative.method" in text and "num_nextn_predict_layers" in text


def test_cli_check_exits_2_on_a_bad_acceptance_rate(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(dsv3_pd(speculative={**MTP2, "acceptance": [0.8, 1.5]})))
    run = subprocess.run(
        [sys.executable, "-m", "hetsim", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert run.returncode == 2
    assert "pools[1].speculative.acceptance" in run.stderr and "Traceback" not in run.stderr


# ---- the step's price -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dsv3_step() -> StepModel:
    return StepModel(
        load_model("DeepSeek-V3"),
        load_profile("nvidia-h200-sxm"),
        InstanceConfig(tp=8, ep=8, weights="fp8_e4m3", activations="fp8_e4m3", kv="fp8_e4m3"),
    )


def test_without_drafts_a_speculative_step_is_a_decode_step(dsv3_step):
    ctx = np.random.default_rng(0).integers(100, 8000, 48)
    assert SpeculativeStep(dsv3_step, 0).step_time(ctx) == pytest.approx(
        dsv3_step.decode_time(ctx), rel=1e-12
    )


def test_verify_reads_each_sequences_kv_once_and_drafting_is_k_module_passes(dsv3_step):
    ctx = np.full(32, 4000)
    spec = SpeculativeStep(dsv3_step, 2)
    decode = dsv3_step.decode_time(ctx)
    # more work than a decode step, less than three of them (weights and KV are read once)
    assert decode < spec.verify_time(ctx) < 3 * decode
    # a prefill-style verify would decompress every cached MLA latent: far dearer
    assert spec.verify_time(ctx) < dsv3_step.step_time(np.full(32, 3), ctx)
    one_pass = spec.module.decode_time(ctx) - spec.module.overhead
    assert spec.draft_time(ctx) == pytest.approx(2 * one_pass)
    assert 0 < one_pass < decode / 10  # one layer of 61 plus the LM head
    assert spec.step_time(ctx) == pytest.approx(spec.verify_time(ctx) + spec.draft_time(ctx))


# ---- the batch's accounting -------------------------------------------------------------------


def _req(rid: int, output: int, context: int, generated: int = 1) -> Req:
    req = Req(rid, 0.0, context, output, None)
    req.context, req.generated = context, generated
    return req


def test_acceptance_length_matches_its_expectation_over_many_draws():
    rates = [0.8, 0.6, 0.5]
    spec = SpeculativeSpec(tokens=3, acceptance=rates)
    batch = SpeculativeBatch(64, 16, spec, instance=0)
    for i in range(64):
        batch.add(_req(i, 10**9, 100))
    for _ in range(2000):
        batch.advance()
    reqs = [batch.remove(i) for i in range(batch.n - 1, -1, -1)]
    steps = sum(r.spec_steps for r in reqs)
    mean = sum(r.spec_accepted for r in reqs) / steps
    assert steps == 64 * 2000
    # the accepted length's standard deviation is below 1.2: 4 sigma over 128,000 draws
    assert mean == pytest.approx(analytic_length(rates), abs=4 * 1.2 / np.sqrt(steps))


def test_a_sequence_stops_at_its_output_length_and_gives_back_rejected_blocks():
    spec = SpeculativeSpec(tokens=3, acceptance=[1.0, 1.0, 1.0])  # every draft accepted
    batch = SpeculativeBatch(4, 4, spec, instance=0)
    batch.add(_req(0, output=7, context=8))  # 6 tokens to go after the first
    assert batch.blocks_needed() == 1  # 8 + 4 positions: one more 4-token page
    assert batch.advance() == [] and batch.emitted == 4 and batch.released == 0
    assert batch.blocks_needed() == 1  # context 12: 16 positions
    assert batch.advance() == [0] and batch.emitted == 2  # clipped at 7
    assert batch.released == 0  # 14 tokens in 4 pages: none of the written ones is free
    req = batch.remove(0)
    assert (req.generated, req.context) == (7, 14)
    assert (req.spec_steps, req.spec_accepted) == (2, 8)  # counted before the clip


def test_rejected_drafts_release_their_blocks():
    spec = SpeculativeSpec(tokens=3, acceptance=[0.01, 0.01, 0.01])  # nearly nothing accepted
    batch = SpeculativeBatch(4, 2, spec, instance=0)
    batch.add(_req(0, output=100, context=2))
    assert batch.blocks_needed() == 2  # 2 + 4 positions: two more 2-token pages
    batch.advance()
    kept = batch.emitted
    assert batch.released == 2 - (-(-(2 + kept) // 2) - 1)


def test_first_token_comes_from_the_prompt_alone():
    spec = SpeculativeSpec(tokens=2, acceptance=[1.0, 1.0])
    batch = SpeculativeBatch(4, 16, spec, instance=0)
    batch.add(_req(0, output=10, context=100, generated=0))
    batch.advance()
    assert batch.emitted == 1
    batch.advance()
    assert batch.emitted == 3
    req = batch.remove(0)
    assert (req.generated, req.spec_steps, req.spec_accepted) == (4, 1, 3)


# ---- whole runs -------------------------------------------------------------------------------


def test_every_requested_output_token_comes_out_exactly_once():
    out, ends = run_counting(dsv3_pd(speculative={**MTP2, "tokens": 3,
                                                  "acceptance": [0.9, 0.7, 0.5]}))  # fmt: skip
    rows = out.requests
    assert (rows["status"] == "completed").all() and len(ends) == len(rows)
    assert all(got == want for got, want in ends)
    assert sum(g for g, _ in ends) == rows["output_tokens"].sum()
    assert out.facts.kv_blocks_leaked == 0


@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_tokens_are_conserved_when_kv_runs_out_and_sequences_are_preempted(preemption):
    # KV room for about 13k tokens: the decode batch outgrows it and preempts
    data = dsv3_pd(requests=120, rate=8.0, speculative=MTP2, memory_utilization=0.57,
                   preemption=preemption)  # fmt: skip
    out, ends = run_counting(data)
    assert out.facts.preemptions > 0
    assert len(ends) == 120 and all(got == want for got, want in ends)
    assert out.facts.kv_blocks_leaked == 0


def test_colocated_decodes_speculate_and_conserve_tokens():
    plain, _ = run_counting(dsv3_colocated())
    out, ends = run_counting(dsv3_colocated(speculative=MTP2))
    assert all(got == want for got, want in ends) and len(ends) == 120
    assert out.facts.kv_blocks_leaked == 0
    tpot = {}
    for name, o in (("plain", plain), ("mtp", out)):
        r = o.requests
        tpot[name] = ((r["finish_s"] - r["first_token_s"]) / (r["output_tokens"] - 1))[
            r["output_tokens"] > 1
        ].mean()
    assert tpot["mtp"] < tpot["plain"]


def test_tpot_falls_with_mtp_but_not_below_one_step_per_k_plus_one_tokens(dsv3_step):
    plain = simulate(scenario_from_dict(dsv3_pd()))
    mtp = simulate(scenario_from_dict(dsv3_pd(speculative=MTP2)))
    assert mtp.summary.tpot_s.mean < plain.summary.tpot_s.mean
    assert mtp.summary.tpot_s.p90 < plain.summary.tpot_s.p90
    # a step of one sequence at the shortest context is the cheapest step the run can take
    shortest = np.array([int(mtp.requests["input_tokens"].min())])
    floor = SpeculativeStep(dsv3_step, 2).step_time(shortest) / 3
    assert (mtp.requests["tpot_s"].dropna() >= floor * (1 - 1e-9)).all()
    assert plain.summary.acceptance_length is None


def test_acceptance_length_in_the_summary_is_the_analytic_one():
    rates = [0.8, 0.6]
    res = simulate(scenario_from_dict(dsv3_pd(requests=400, speculative=MTP2)))
    steps = int(res.requests["speculative_steps"].sum())
    assert steps > 20_000
    assert res.summary.acceptance_length == pytest.approx(
        analytic_length(rates), abs=4 * 0.8 / np.sqrt(steps)
    )
    assert res.summary.to_json()["acceptance_length"] == res.summary.acceptance_length


def test_same_seed_same_run_other_seed_other_acceptance():
    a = simulate(scenario_from_dict(dsv3_pd(requests=80, speculative=MTP2)))
    b = simulate(scenario_from_dict(dsv3_pd(requests=80, speculative=MTP2)))
    assert a.requests.equals(b.requests)
    data = dsv3_pd(requests=80, speculative=MTP2)
    data["seed"] = 1
    other = simulate(scenario_from_dict(data))
    assert not a.requests["accepted_tokens"].equals(other.requests["accepted_tokens"])
    # a seed given to the run (hetsim simulate --seed) reaches the acceptance draws too
    overridden = simulate(scenario_from_dict(dsv3_pd(requests=80, speculative=MTP2)), seed=1)
    assert overridden.requests["accepted_tokens"].equals(other.requests["accepted_tokens"])


def test_no_block_leaks_under_faults_with_speculation(tmp_path):
    # Llama-3.1-8B given one MTP layer: the faults scenario's model, speculating
    config = json.loads((MODEL_CONFIG_DIR / "Llama-3.1-8B.json").read_text())
    config["num_nextn_predict_layers"] = 1
    model = tmp_path / "config.json"
    model.write_text(json.dumps(config))
    data = yaml.safe_load((REPO / "scenarios" / "lifecycle-faults.yaml").read_text())
    data["model"] = str(model)
    decode = next(p for p in data["pools"] if p["role"] == "decode")
    decode["speculative"] = copy.deepcopy(MTP2)
    res = simulate(
        scenario_from_dict(data, REPO / "scenarios" / "lifecycle-faults.yaml"), max_requests=600
    )
    rows, s = res.requests, res.summary
    assert len(rows) == 600 == s.completed + s.failed
    assert s.kv_blocks_leaked == 0
    assert s.acceptance_length is not None


def test_simulate_prints_the_acceptance_length(capsys):
    from hetsim.cli import render

    res = simulate(scenario_from_dict(dsv3_pd(requests=40, speculative=MTP2)))
    render.simulation_summary(res.summary)
    out = capsys.readouterr().out
    assert f"{res.summary.acceptance_length:.2f} tokens accepted per step" in out


def test_the_planner_screen_bounds_tpot_by_the_most_tokens_a_speculative_step_emits():
    from hetsim.perf.speculative import speculative_step
    from hetsim.planner.capacity import PoolCosts
    from hetsim.planner.screen import WorkloadSample, screen

    plain = scenario_from_dict(dsv3_pd())
    spec = scenario_from_dict(dsv3_pd(speculative=MTP2))
    costs = PoolCosts()
    p0 = screen(plain, WorkloadSample.of(plain), costs)
    p2 = screen(spec, WorkloadSample.of(spec), costs)
    # a bound on TPOT: never above what one plain step per token gives, never below one
    # verify-and-draft step per k + 1 tokens
    assert p2.zero_load_tpot_s < p0.zero_load_tpot_s
    decode = next(p for p in spec.spec.pools if p.role == "decode")
    sm = costs.step_model(spec, decode)
    sample = WorkloadSample.of(spec)
    mids = (sample.input + sample.output / 2)[sample.output > 1]
    step = speculative_step(sm, 2)
    per_token = [step.step_time(np.array([int(x)])) / 3 for x in mids]
    assert p2.zero_load_tpot_s == pytest.approx(
        float(np.percentile(per_token, spec.spec.sla.percentile)), rel=1e-9
    )
    assert p2.bounds["decode"] > p0.bounds["decode"]


def test_mtp_drafts_run_inside_the_step_without_a_runtimes_host_work_of_their_own():
    pytest.importorskip("aiconfigurator_core")
    from hetsim.perf.speculative import speculative_step
    from hetsim.perf.step import InstanceConfig, StepModel
    from hetsim.spec.hardware import load_profile
    from hetsim.spec.model import load_model

    sm = StepModel(load_model("DeepSeek-V3"), load_profile("nvidia-h200-sxm"),
                   InstanceConfig(tp=8, ep=8, **FP8), runtime="vllm")  # fmt: skip
    spec, ctx = speculative_step(sm, 2), np.full(32, 2000)
    one_pass = spec.module.decode_kernels_time(ctx)
    # a one-layer pass is well under the runtime's 2 ms of host work per step, which the
    # step as a whole pays once (overlapped), not each draft pass again
    assert 0 < one_pass < sm.host.step_host
    assert spec.draft_time(ctx) == pytest.approx(2 * one_pass, rel=1e-12)
