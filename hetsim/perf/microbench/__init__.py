"""Microkernels behind ``hetsim calibrate``: GEMM, prefill and decode attention, memory copy
and a trivial op (per-op dispatch), timed on this machine with NumPy or PyTorch (CPU or CUDA),
swept over cartesian shape grids plus held-out shapes, and returned as a
:class:`~hetsim.perf.calibration.CalibrationTable`.

``reference_model`` (a small Llama-like transformer, for the model-level validation) needs
PyTorch and is imported on its own: ``from hetsim.perf.microbench import reference_model``.
"""

from hetsim.perf.microbench.sweep import (
    available_backends,
    available_devices,
    holdout_shapes,
    run_calibration,
)
from hetsim.perf.microbench.timing import Timing, TimingPolicy, time_kernel

__all__ = [
    "run_calibration",
    "available_backends",
    "available_devices",
    "holdout_shapes",
    "time_kernel",
    "Timing",
    "TimingPolicy",
]
