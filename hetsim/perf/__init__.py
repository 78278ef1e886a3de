"""Step-time model: the ops of a step (``ops``), priced per op by one kernel-cost predictor per
source (``cost``: roofline, calibrated), summed per step (``step``)."""

from hetsim.perf.calibration import CalibrationTable, read_table, write_table
from hetsim.perf.cost import OpCost, Provenance, provenance
from hetsim.perf.ops import InstanceConfig
from hetsim.perf.step import StepBreakdown, StepModel, StepModels, step_model_for_pool

__all__ = [
    "CalibrationTable",
    "InstanceConfig",
    "OpCost",
    "Provenance",
    "StepBreakdown",
    "StepModel",
    "StepModels",
    "provenance",
    "read_table",
    "step_model_for_pool",
    "write_table",
]
