"""Step-time model: per-op roofline × calibrated efficiency, per instance."""

from hetsim.perf.calibration import CalibrationTable, read_table, write_table
from hetsim.perf.roofline import OpCost
from hetsim.perf.step import InstanceConfig, StepBreakdown, StepModel, step_model_for_pool

__all__ = [
    "CalibrationTable",
    "InstanceConfig",
    "OpCost",
    "StepBreakdown",
    "StepModel",
    "read_table",
    "step_model_for_pool",
    "write_table",
]
