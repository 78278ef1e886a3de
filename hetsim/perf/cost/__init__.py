"""Kernel-cost predictors: one per source of kernel costs, behind :class:`KernelCostPredictor`.

* :mod:`~hetsim.perf.cost.roofline` — datasheet peaks × the profile's default efficiencies;
* :mod:`~hetsim.perf.cost.calibrated` — hetsim's own microkernel calibration tables;
* :mod:`~hetsim.perf.cost.measured` — NVIDIA's measured per-op tables for a serving runtime,
  chosen when a pool names its ``runtime`` on a profile with ``measured_tables``;
* :mod:`~hetsim.perf.cost.transferred` — a measured architecture's efficiency surfaces on the
  peaks of a device without tables (its profile's ``transferred_from``), the default for such a
  device unless it is calibrated or opts out (``efficiency_source: roofline``).

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
    TransferredSource,
    price_collective,
)
from hetsim.perf.cost.calibrated import CalibratedPredictor
from hetsim.perf.cost.measured import MeasuredPredictor
from hetsim.perf.cost.roofline import RooflinePredictor
from hetsim.perf.cost.transferred import TransferredPredictor
from hetsim.perf.measured.tables import MeasuredTables, load_tables, read_tables_file
from hetsim.perf.transferred import load_surfaces
from hetsim.spec.hardware import AcceleratorProfile, no_measured_tables

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
    "TransferredPredictor",
    "TransferredSource",
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
    else calibrated where a calibration table is given, else the transferred surfaces of the
    architecture the profile names in ``transferred_from`` (unless it opts out with
    ``efficiency_source: roofline``), else the roofline at the profile's default efficiencies."""
    if runtime is not None:
        return MeasuredPredictor.of(profile, measured_tables_for(profile, runtime))
    if calibration is not None:
        return CalibratedPredictor.of(profile, calibration)
    if profile.transfers:
        return TransferredPredictor.of(profile)
    return RooflinePredictor.of(profile)


def measured_tables_for(profile: AcceleratorProfile, runtime: str) -> MeasuredTables:
    """The measured tables a pool on ``profile`` serving with ``runtime`` uses: the profile's
    ``measured_tables`` names an aiconfigurator system (read from the ``nvidia`` extra) or a file
    written by ``hetsim calibrate --from aiconfigurator``. Never a silent fallback: a profile
    without tables, a runtime the tables do not cover or a missing extra is an InputError."""
    named = profile.measured_tables
    if named is None:  # the scenario's checks name the pool; an API caller gets this
        raise no_measured_tables(profile, runtime, "runtime")
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
        # the tables are missing (the extra: its fix is in `allowed`) or name no such system
        # or version: either way the profile's field says which tables
        raise InputError(
            f"profile {profile.name!r} (runtime {runtime!r}): {e.message}",
            field="measured_tables",
            value=named,
            allowed=e.allowed,
        ) from None


def provenance(
    profile: AcceleratorProfile,
    calibration: CalibrationTable | None = None,
    runtime: str | None = None,
) -> Source:
    """The provenance of step times on ``profile``: the measured label when a ``runtime`` is
    named, ``calibrated`` when a calibration table is given or the profile names one (step
    models load it), ``end-to-end`` when the profile's efficiencies were fitted to benchmark
    runs, the transferred label where the profile borrows a measured architecture's
    efficiencies, else ``roofline-default``. The measured and transferred labels read their
    tables (once, cached), since they name their version."""
    if runtime is not None:
        return MeasuredSource(measured_tables_for(profile, runtime).label)
    if calibration is not None or profile.calibration:
        return Provenance.CALIBRATED
    if profile.efficiency_source == Provenance.END_TO_END:
        return Provenance.END_TO_END
    if profile.transfers:
        return TransferredSource(load_surfaces(profile.transferred_from.system).label)
    return Provenance.ROOFLINE_DEFAULT
