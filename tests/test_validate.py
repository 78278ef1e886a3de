"""Validation plumbing: held-out kernels, the calibrated profile of this machine, the CLI."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from hetsim.perf import validate as v
from hetsim.perf.microbench import run_calibration
from hetsim.perf.step import InstanceConfig, StepModel
from hetsim.spec.model import ModelConfig

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def quick_table():
    return run_calibration(backend="numpy", quick=True)


def test_holdout_errors_predict_unseen_kernels(quick_table):
    frame = v.holdout_errors(quick_table)
    assert len(frame) > 0
    assert set(frame["family"]) >= {"gemm"}
    assert np.isfinite(frame["abs_error_pct"]).all()
    assert (frame["predicted_s"] > 0).all()
    summary = v.summarise_errors(frame)
    assert {"median_pct", "p90_pct"} <= set(summary.columns)


def test_calibrated_profile_of_this_machine_gives_calibrated_predictions(quick_table):
    profile = v.profile_from_calibration(quick_table)
    assert profile.kind == "cpu"
    assert profile.peak_flops("fp32") == pytest.approx(quick_table.peak_flops["fp32"])
    model = ModelConfig.from_hf_config(
        {
            "model_type": "llama",
            "hidden_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 512,
            "vocab_size": 1000,
        },
        "probe",
    )
    sm = StepModel(
        model, profile, InstanceConfig(weights="fp32", activations="fp32", kv="fp32"), quick_table
    )
    assert sm.provenance == "calibrated"
    breakdown = sm.explain_decode(np.full(4, 100))
    sources = set(breakdown.to_frame()["source"])
    assert "calibrated" in sources
    assert sm.decode_time(np.full(8, 100)) > sm.decode_time(np.full(1, 100))


def test_validate_cli_writes_table_and_plot(tmp_path, quick_table):
    from hetsim.perf.calibration import write_table

    table = write_table(quick_table, tmp_path / "calib.csv")
    out = tmp_path / "val"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hetsim",
            "validate",
            "--table",
            str(table),
            "--no-model",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "median" in proc.stdout
    assert (out / "validation.csv").exists()
    png = (out / "predicted_vs_measured.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


@pytest.mark.skipif(not HAS_TORCH, reason="the model-level check needs the torch extra")
def test_model_level_check_compares_a_real_forward_pass():
    from hetsim.perf.microbench import reference_model as ref

    table = run_calibration(backend="torch", quick=True)
    model = ModelConfig.from_hf_config(ref.reference_config(), "reference-llama")
    measured = ref.time_reference_model(quick=True)
    frame = v.model_level_errors(table, model, measured)
    assert set(frame["family"]) == {"prefill", "decode"}
    assert (frame["predicted_s"] > 0).all() and (frame["measured_s"] > 0).all()
