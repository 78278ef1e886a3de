"""Predictions against end-to-end measurements.

:mod:`~hetsim.validation.silicon` reads NVIDIA's silicon sample, :mod:`~hetsim.validation.protocols`
says which benchmark client measured each row, :mod:`~hetsim.validation.pose` turns its rows into
scenarios (or says why not), :mod:`~hetsim.validation.accuracy` simulates
them and tabulates the errors. This layer sits above the simulator and the planner: it is a
client of :func:`hetsim.simulate`, like the CLI, and fits nothing to what it compares against.

Users' own benchmark runs: :mod:`~hetsim.validation.bench` reads them (vLLM, SGLang, genai-perf,
LLMServingSim), :mod:`~hetsim.validation.replay` replays them request for request and tabulates
the errors, :mod:`~hetsim.validation.fit` fits a pool's free parameters to them (a labelled
``end-to-end`` calibration with a held-out split: the one place this layer fits anything, and
only ever to the user's runs, never to the silicon sample).
"""

from __future__ import annotations

from hetsim.validation.accuracy import (
    Outcome,
    RowResult,
    SiliconValidation,
    select_rows,
    validate_silicon,
)
from hetsim.validation.bench import Arrivals, BenchFormat, BenchRun, read_bench, write_import
from hetsim.validation.fit import (
    FitResult,
    calibrated_profile,
    fit_end_to_end,
    split_requests,
    with_calibration,
)
from hetsim.validation.pose import Posed, Reason, Unposed, contradiction, pose
from hetsim.validation.protocols import INFERENCEX, UNRECORDED, BenchmarkProtocol, protocol_of
from hetsim.validation.replay import (
    BenchComparison,
    compare,
    replay,
    validate_bench,
)
from hetsim.validation.silicon import (
    Mode,
    Parallelism,
    Runtime,
    SiliconRow,
    collapse_duplicates,
    read_silicon,
)

__all__ = [
    "Arrivals",
    "BenchComparison",
    "BenchFormat",
    "BenchRun",
    "FitResult",
    "calibrated_profile",
    "compare",
    "fit_end_to_end",
    "read_bench",
    "replay",
    "split_requests",
    "validate_bench",
    "with_calibration",
    "write_import",
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
