"""Kernel-cost predictors: one per source of kernel costs, behind :class:`KernelCostPredictor`.

* :mod:`~hetsim.perf.cost.roofline` — datasheet peaks × the profile's default efficiencies;
* :mod:`~hetsim.perf.cost.calibrated` — hetsim's own microkernel calibration tables;
* ``measured`` (vendor per-op tables) is the next source: one more module and one more
  :class:`Provenance`, chosen in :func:`predictor_for`.

This package owns the provenance label: :func:`provenance` is what a step model on a profile
says, and every op records the source that priced it.
"""

from __future__ import annotations

from hetsim.perf.calibration import CalibrationTable
from hetsim.perf.cost.base import Bound, KernelCostPredictor, OpCost, Provenance, ScaleUpLink
from hetsim.perf.cost.calibrated import CalibratedPredictor
from hetsim.perf.cost.roofline import RooflinePredictor
from hetsim.spec.hardware import AcceleratorProfile

__all__ = [
    "Bound",
    "CalibratedPredictor",
    "KernelCostPredictor",
    "OpCost",
    "Provenance",
    "RooflinePredictor",
    "ScaleUpLink",
    "predictor_for",
    "provenance",
]


def predictor_for(
    profile: AcceleratorProfile, calibration: CalibrationTable | None = None
) -> KernelCostPredictor:
    """The predictor of a profile: calibrated where a calibration table is given, else the
    roofline at the profile's default efficiencies."""
    if calibration is None:
        return RooflinePredictor.of(profile)
    return CalibratedPredictor.of(profile, calibration)


def provenance(
    profile: AcceleratorProfile, calibration: CalibrationTable | None = None
) -> Provenance:
    """The provenance of step times on ``profile``: ``calibrated`` when a calibration table is
    given or the profile names one (step models load it), else ``roofline-default``. Cheap: it
    reads no table."""
    if calibration is None and not profile.calibration:
        return Provenance.ROOFLINE_DEFAULT
    return Provenance.CALIBRATED
