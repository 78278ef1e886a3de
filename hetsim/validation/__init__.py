"""Predictions against end-to-end measurements.

:mod:`~hetsim.validation.silicon` reads NVIDIA's silicon sample, :mod:`~hetsim.validation.protocols`
says which benchmark client measured each row, :mod:`~hetsim.validation.pose` turns its rows into
scenarios (or says why not), :mod:`~hetsim.validation.accuracy` simulates
them and tabulates the errors. This layer sits above the simulator and the planner: it is a
client of :func:`hetsim.simulate`, like the CLI, and fits nothing to what it compares against.
"""

from __future__ import annotations

from hetsim.validation.accuracy import (
    Outcome,
    RowResult,
    SiliconValidation,
    select_rows,
    validate_silicon,
)
from hetsim.validation.pose import Posed, Reason, Unposed, contradiction, pose
from hetsim.validation.protocols import INFERENCEX, UNRECORDED, BenchmarkProtocol, protocol_of
from hetsim.validation.silicon import (
    Mode,
    Parallelism,
    Runtime,
    SiliconRow,
    collapse_duplicates,
    read_silicon,
)

__all__ = [
    "BenchmarkProtocol",
    "INFERENCEX",
    "Mode",
    "Outcome",
    "Parallelism",
    "Posed",
    "Reason",
    "RowResult",
    "Runtime",
    "SiliconRow",
    "SiliconValidation",
    "UNRECORDED",
    "Unposed",
    "collapse_duplicates",
    "contradiction",
    "pose",
    "protocol_of",
    "read_silicon",
    "select_rows",
    "validate_silicon",
]
