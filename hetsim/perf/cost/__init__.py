"""Kernel-cost predictors: one per source of kernel costs, behind :class:`KernelCostPredictor`.

* :mod:`~hetsim.perf.cost.roofline` — datasheet peaks × the profile's default efficiencies;
* :mod:`~hetsim.perf.cost.calibrated` — hetsim's own microkernel calibration tables;
* :mod:`~hetsim.perf.cost.measured` — NVIDIA's measured per-op tables for a serving runtime,
  chosen when a pool names its ``runtime`` on a profile with ``measured_tables``.

This package owns the provenance label: :func:`provenance` is what a step model on a profile
says, and every op records the source that priced it.
"""

from __future__ import annotations

from pathlib import Path

from hetsim.errors import InputError
from hetsim.perf.calibration import CalibrationTable
from hetsim.perf.cost.base import (
    Bound,
    KernelCostPredictor,
    MeasuredSource,
    OpCost,
    Provenance,
    ScaleUpLink,
    Source,
    price_collective,
)
from hetsim.perf.cost.calibrated import CalibratedPredictor
from hetsim.perf.cost.measured import MeasuredPredictor
from hetsim.perf.cost.roofline import RooflinePredictor
from hetsim.perf.measured.tables import EXTRA_FIX, MeasuredTables, load_tables, read_tables_file
from hetsim.spec.hardware import AcceleratorProfile

__all__ = [
    "Bound",
    "CalibratedPredictor",
    "KernelCostPredictor",
    "MeasuredPredictor",
    "MeasuredSource",
    "OpCost",
    "Provenance",
    "RooflinePredictor",
    "ScaleUpLink",
    "Source",
    "measured_tables_for",
    "predictor_for",
    "price_collective",
    "provenance",
]


def predictor_for(
    profile: AcceleratorProfile,
    calibration: CalibrationTable | None = None,
    runtime: str | None = None,
) -> KernelCostPredictor:
    """The predictor of a profile: measured when a ``runtime`` is named (its tables must exist),
    else calibrated where a calibration table is given, else the roofline at the profile's
    default efficiencies."""
    if runtime is not None:
        return MeasuredPredictor.of(profile, measured_tables_for(profile, runtime))
    if calibration is None:
        return RooflinePredictor.of(profile)
    return CalibratedPredictor.of(profile, calibration)


def measured_tables_for(profile: AcceleratorProfile, runtime: str) -> MeasuredTables:
    """The measured tables a pool on ``profile`` serving with ``runtime`` uses: the profile's
    ``measured_tables`` names an aiconfigurator system (read from the ``nvidia`` extra) or a file
    written by ``hetsim calibrate --from aiconfigurator``. Never a silent fallback: a profile
    without tables, a runtime the tables do not cover or a missing extra is an InputError."""
    named = profile.measured_tables
    if named is None:
        raise InputError(
            f"runtime {runtime!r} selects measured kernel tables, but profile {profile.name!r} "
            "names none (measured_tables)",
            field="runtime",
            value=runtime,
            allowed="drop `runtime:`, or use a profile with measured_tables",
        )
    if named.endswith(".npz"):
        tables = read_tables_file(Path(named))
        if tables.runtime != runtime:
            raise InputError(
                f"{named} holds {tables.runtime} tables, not {runtime}",
                field="runtime",
                value=runtime,
                allowed=tables.runtime,
            )
        return tables
    try:
        return load_tables(named, runtime)
    except InputError as e:
        e.message += f" ({EXTRA_FIX})"
        raise InputError(e.message, field="runtime", value=runtime, allowed=e.allowed) from None


def provenance(
    profile: AcceleratorProfile,
    calibration: CalibrationTable | None = None,
    runtime: str | None = None,
) -> Source:
    """The provenance of step times on ``profile``: the measured label when a ``runtime`` is
    named, ``calibrated`` when a calibration table is given or the profile names one (step
    models load it), else ``roofline-default``. Only the measured label reads tables (once,
    cached), since it names their version."""
    if runtime is not None:
        return MeasuredSource(measured_tables_for(profile, runtime).label)
    if calibration is None and not profile.calibration:
        return Provenance.ROOFLINE_DEFAULT
    return Provenance.CALIBRATED
