"""Replaying a benchmark run through its deployment's scenario, and fitting a pool end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.perf.calibration import EndToEndCalibration, read_end_to_end, write_end_to_end
from hetsim.validation import (
    Arrivals,
    calibrated_profile,
    compare,
    fit_end_to_end,
    read_bench,
    replay,
    with_calibration,
)

DATA = Path(__file__).resolve().parent / "data" / "bench"
RUN = DATA / "llmservingsim" / "RTX4090-Llama-3.1-8B"
SCENARIO = DATA / "scenarios" / "rtx4090-llama8b.yaml"
N = 40  # the first 40 requests of the run: a small, quick replay


@pytest.fixture(scope="module")
def run():
    full = read_bench(RUN)
    return dataclasses.replace(full, requests=full.requests.iloc[:N].copy())


@pytest.fixture(scope="module")
def scenario():
    return hetsim.load_scenario(SCENARIO)


def _measured_as(run, simulated, scale: float = 1.0):
    """The run with its measured latencies replaced by ``scale`` x the simulated ones."""
    sim = simulated.set_index("request_id").reindex(run.requests["request_id"])
    r = run.requests.copy()
    for col in ("ttft_s", "tpot_s", "e2e_s"):
        r[col] = scale * sim[col].to_numpy()
    r["itl_s"] = r["tpot_s"]
    return dataclasses.replace(run, requests=r)


def test_replay_sends_each_request_at_its_measured_time_with_its_lengths(run, scenario):
    sim = replay(run, scenario).set_index("request_id").loc[run.requests["request_id"]]
    assert sim["arrival_s"].tolist() == pytest.approx(run.requests["arrival_s"].tolist())
    assert sim["input_tokens"].tolist() == run.requests["input_tokens"].tolist()
    assert sim["output_tokens"].tolist() == run.requests["output_tokens"].tolist()
    assert (sim["status"] == "completed").all()


def test_error_is_simulated_over_measured_minus_one(run, scenario):
    sim = replay(run, scenario)
    doubled = _measured_as(run, sim, scale=2.0)  # measured twice what hetsim predicts
    comp = compare(doubled, sim)
    assert comp.requests["err_ttft_s"].to_numpy() == pytest.approx(-0.5)
    table = comp.error_table().set_index("latency")
    assert table.loc["TTFT", "med |e| %"] == pytest.approx(50.0)
    assert table.loc["TTFT", "signed med %"] == pytest.approx(-50.0)
    assert table.loc["E2E", "mean err %"] == pytest.approx(-50.0)
    assert table.loc["TPOT", "requests"] == N
    assert table.loc["TTFT", "unmatched"] == 0
    # a request the simulation did not complete is counted, not silently left out
    lost = compare(doubled, sim.assign(status=["failed"] + ["completed"] * (len(sim) - 1)))
    assert lost.error_table().set_index("latency").loc["TTFT", "unmatched"] == 1


def test_fit_recovers_a_run_that_hetsim_itself_produced(run, scenario):
    truth = {"compute": 0.45, "memory": 0.55, "step_overhead": 0.004}
    accelerator = scenario.profiles["serve"].name
    cal = EndToEndCalibration(accelerator, truth, {}, [])
    made = replay(run, with_calibration(scenario, cal, ["serve"]))
    measured = _measured_as(run, made)
    result = fit_end_to_end([measured], scenario, max_evaluations=60)
    held = result.held_out_table().set_index(["profile", "latency"])
    assert held.loc[("default", "TPOT"), "med |e| %"] > 10.0  # the defaults are far off
    assert held.loc[("fitted", "TPOT"), "med |e| %"] < 1.0
    assert held.loc[("fitted", "TTFT"), "med |e| %"] < 2.0
    # the held-out requests fit, but not necessarily with `truth`: at one load level a decode
    # step's memory time and its fixed overhead trade off (see hetsim.validation.fit)
    data = result.calibration.data[0]
    assert data["train"] + data["held_out"] == N and data["sha256"] == run.sha256


def test_fit_replays_each_parameter_set_once(run, scenario, monkeypatch):
    """The before/after tables reuse the search's replays of the defaults and of its best."""
    import hetsim.validation.fit as fit

    calls = []
    real = fit.replay
    monkeypatch.setattr(fit, "replay", lambda r, s: calls.append(1) or real(r, s))
    measured = _measured_as(run, real(run, scenario), scale=1.5)
    result = fit_end_to_end([measured], scenario, max_evaluations=8)
    assert result.evaluations == 8
    assert len(calls) == result.evaluations  # one run: one replay per scored candidate


def test_closed_loop_runs_send_the_files_requests_in_order_and_compare_each(run, scenario):
    """A --max-concurrency run's clients send the file's requests in order: the replay gives its
    k-th request the k-th lengths, so requests join by id; nothing joins by load."""
    closed = dataclasses.replace(
        run,
        arrivals=Arrivals.CLOSED_LOOP,
        concurrency=4,
        requests=run.requests.iloc[:12].assign(arrival_s=float("nan")),
    )
    simulated = replay(closed, scenario)
    assert simulated.sort_values("request_id")["input_tokens"].tolist() == (
        closed.requests["input_tokens"].tolist()
    )
    comp = compare(closed, simulated)
    assert len(comp.simulated) == 12 and comp.requests["err_ttft_s"].notna().all()
    assert "med |e| %" in comp.error_table().columns
    assert comp.by_load().empty  # no send times: the load is the concurrency throughout


def test_lengths_in_trace_order_refuse_more_requests_than_the_trace_has(run, scenario, tmp_path):
    from hetsim.spec.resolve import scenario_from_dict

    closed = dataclasses.replace(
        run, arrivals=Arrivals.CLOSED_LOOP, concurrency=2, requests=run.requests.iloc[:5]
    )
    trace = tmp_path / "trace.jsonl"
    closed.write_trace(trace)
    data = scenario.spec.model_dump(mode="json", exclude_unset=True)
    data["workload"] = closed.workload(str(trace))
    data["workload"]["closed_loop"]["requests"] = 6
    posed = scenario_from_dict(data, path=scenario.path)
    with pytest.raises(InputError, match="fewer than the requests") as exc:
        hetsim.simulate(posed, sample_interval=None)
    assert exc.value.field.endswith("input_tokens.order")


def test_end_to_end_calibration_round_trips_and_refuses_another_accelerator(tmp_path, scenario):
    cal = EndToEndCalibration(
        "nvidia-rtx-4090",
        {"compute": 0.9, "memory": 0.95, "step_overhead": 0.0042},
        {"compute": 0.7, "memory": 0.8, "step_overhead": 0.002},
        [{"source": "run", "sha256": "ab", "train": 2, "held_out": 2}],
    )
    back = read_end_to_end(write_end_to_end(cal, tmp_path / "cal.json"))
    assert back == cal and back.provenance == "end-to-end"
    applied = back.apply(scenario.profiles["serve"])
    assert applied.efficiency.step_overhead.value == pytest.approx(0.0042)
    assert "end-to-end" in applied.efficiency.memory.note
    assert applied.efficiency.network == scenario.profiles["serve"].efficiency.network
    assert applied.efficiency_source == "end-to-end"
    with pytest.raises(InputError) as exc:
        back.apply(hetsim.load_profile("nvidia-h100-sxm"))
    assert exc.value.field == "accelerator"


def test_a_calibration_with_an_efficiency_over_one_is_refused(tmp_path):
    path = tmp_path / "cal.json"
    doc = {"format": "hetsim end-to-end calibration", "accelerator": "nvidia-rtx-4090",
           "fitted": {"compute": 0.9, "memory": 1.5, "step_overhead": 0.002}}  # fmt: skip
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as exc:
        read_end_to_end(path)
    assert exc.value.field == "fitted.memory"


def test_calibrated_profile_is_a_profile_a_pool_can_name(tmp_path):
    fitted = {"compute": 0.9, "memory": 0.95, "step_overhead": 0.0042}
    cal = EndToEndCalibration("nvidia-rtx-4090", fitted, {}, [{"source": "runs/a.json"}])
    path = calibrated_profile(cal, tmp_path / "nvidia-rtx-4090-e2e.yaml")
    profile = hetsim.load_profile(str(path))
    assert profile.name == "nvidia-rtx-4090-e2e"
    assert profile.efficiency.memory.value == pytest.approx(0.95)
    assert profile.efficiency.step_overhead.value == pytest.approx(0.0042)
    assert profile.memory_bandwidth == hetsim.load_profile("nvidia-rtx-4090").memory_bandwidth
    # step times on it say where their efficiencies come from, and it counts as calibrated
    from hetsim.perf.cost import RooflinePredictor, provenance

    assert provenance(profile) == "end-to-end"
    assert RooflinePredictor.of(profile).provenance == "end-to-end"
    assert provenance(hetsim.load_profile("nvidia-rtx-4090")) == "roofline-default"


def test_validate_bench_needs_the_deployment_scenario():
    result = CliRunner().invoke(app, ["validate", "--bench", str(RUN)])
    assert isinstance(result.exception, InputError)
    assert result.exception.field == "SCENARIO"


def test_validate_bench_writes_errors_and_figures(tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        app, ["validate", "--bench", str(RUN), str(SCENARIO), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"bench_errors.csv", "bench_requests.csv", "bench_cdf.png"} <= names
    assert "TTFT" in result.output and "med |e| %" in result.output


def test_calibrate_bench_writes_json_only():
    result = CliRunner().invoke(
        app, ["calibrate", "--bench", str(RUN), "--scenario", str(SCENARIO), "--out", "x.csv"]
    )
    assert isinstance(result.exception, InputError) and result.exception.field == "--out"


def test_trace_order_needs_an_empirical_length():
    from pydantic import ValidationError

    from hetsim.spec.workload import LengthSpec

    with pytest.raises(ValidationError, match="needs dist empirical"):
        LengthSpec.model_validate({"dist": "fixed", "value": 8, "order": "trace"})


def test_a_pool_priced_by_measured_tables_is_not_fitted(run):
    """A named runtime prices the pool's ops from measured tables, which the fitted
    efficiencies would not move: the fit refuses instead of reporting defaults as fitted."""
    pytest.importorskip("aiconfigurator_core")
    measured = hetsim.load_scenario(
        SCENARIO, ["pools.serve.accelerator=nvidia-h100-sxm", "pools.serve.runtime=vllm"]
    )
    with pytest.raises(InputError) as exc:
        fit_end_to_end([run], measured)
    assert exc.value.field == "pools.serve.runtime"


def test_an_end_to_end_calibration_is_not_applied_to_a_pool_priced_by_measured_tables():
    """``validate --bench --calibration`` applies the calibration through with_calibration:
    on a pool whose runtime's tables price its ops, the calibrated efficiencies would change
    only its step overhead and elementwise ops, so it is refused as the fit refuses it."""
    pytest.importorskip("aiconfigurator_core")
    measured = hetsim.load_scenario(
        SCENARIO, ["pools.serve.accelerator=nvidia-h100-sxm", "pools.serve.runtime=vllm"]
    )
    cal = EndToEndCalibration("nvidia-h100-sxm", {"compute": 0.9}, {"compute": 0.7}, [])
    with pytest.raises(InputError) as exc:
        with_calibration(measured, cal, ["serve"])
    assert exc.value.field == "pools.serve.runtime"


def test_a_burst_has_no_error_by_load(run, scenario):
    burst = dataclasses.replace(run, requests=run.requests.assign(arrival_s=0.0))
    comp = compare(burst, replay(burst, scenario))
    assert comp.by_load().empty and "med |e| %" in comp.error_table().columns
