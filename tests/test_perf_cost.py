"""Kernel-cost predictors: each op says which source priced it; the provenance label's owner."""

import numpy as np
import pytest
from test_perf_golden import synthetic_calibration

from hetsim.perf import Provenance, provenance
from hetsim.perf.cost import CalibratedPredictor, RooflinePredictor, predictor_for
from hetsim.perf.ops import Kernel
from hetsim.perf.step import InstanceConfig, StepModel
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model

H100 = load_profile("nvidia-h100-sxm")


def test_calibrated_ops_say_calibrated_and_ops_without_a_surface_say_roofline_default():
    """The synthetic table has GEMM (bf16), decode attention and elementwise surfaces, but no
    prefill attention; collectives are never calibrated."""
    sm = StepModel(load_model("Llama-3.1-8B"), H100, InstanceConfig(tp=2), synthetic_calibration())
    frame = sm.explain_step(np.array([1024, 1, 1]), np.array([512, 3000, 100])).to_frame()
    source = frame.set_index("name")["source"]
    calibrated = ["qkv_proj", "o_proj", "mlp_gate_up", "mlp_down", "lm_head", "elementwise",
                  "attention_decode", "step_overhead"]  # fmt: skip
    assert (source[calibrated] == Provenance.CALIBRATED).all()
    assert source["attention_prefill"] == Provenance.ROOFLINE_DEFAULT
    assert source["tp_allreduce"] == Provenance.ROOFLINE_DEFAULT
    assert sm.provenance == "calibrated"


def test_uncalibrated_op_falls_back_to_the_roofline_over_the_measured_peaks():
    table = synthetic_calibration()
    predictor = CalibratedPredictor.of(H100, table)
    k = Kernel("attention_prefill", "attention_prefill", "bf16", 1e12, 1e9, {})
    t, bound, source = predictor.kernel(k)
    # measured bf16 peak 900 TFLOPS at the profile's default compute efficiency 0.7
    assert t == pytest.approx(1e12 / (900e12 * 0.7))
    assert (bound, source) == ("compute", Provenance.ROOFLINE_DEFAULT)


def test_calibrated_kernel_is_the_measured_roofline_over_the_surface_efficiency():
    table = synthetic_calibration()
    predictor = CalibratedPredictor.of(H100, table)
    shape = {"m": 16.0, "n": 4096.0, "k": 4096.0}
    flops, nbytes = 2 * 16 * 4096 * 4096, 4096 * 4096 * 2 + 16 * 4096 * 2 + 16 * 4096 * 2
    t, bound, source = predictor.kernel(Kernel("o_proj", "gemm", "bf16", flops, nbytes, shape))
    efficiency = table.surface("gemm", "bf16").efficiency(**shape)
    assert t == pytest.approx(nbytes / 3.0e12 / efficiency)
    assert (bound, source) == ("memory", Provenance.CALIBRATED)


def test_roofline_prices_every_op_with_the_profile_defaults():
    predictor = predictor_for(H100)
    assert isinstance(predictor, RooflinePredictor)
    t, bound, source = predictor.kernel(Kernel("x", "gemm", "bf16", 989e12, 0.0, {}))
    assert t == pytest.approx(1 / 0.7)
    assert (bound, source) == ("compute", Provenance.ROOFLINE_DEFAULT)
    assert predictor.step_overhead(30, 80) == (
        H100.efficiency.step_overhead.value,
        Provenance.ROOFLINE_DEFAULT,
    )


def test_provenance_of_a_profile_is_what_its_step_models_say(tmp_path):
    assert provenance(H100) == Provenance.ROOFLINE_DEFAULT == "roofline-default"
    assert provenance(H100, synthetic_calibration()) == Provenance.CALIBRATED
    named = H100.model_copy(update={"calibration": "tables/h100.parquet"})
    assert provenance(named) == "calibrated"
    sm = StepModel(load_model("tiny-llama"), H100, InstanceConfig())
    assert sm.provenance == provenance(H100)
