"""Measured per-op kernel tables (NVIDIA aiconfigurator-core): loading and log-space grids."""

from hetsim.perf.measured.grid import LogGrid
from hetsim.perf.measured.tables import (
    RUNTIMES,
    MeasuredTables,
    load_tables,
    read_tables_file,
    save_tables,
)

__all__ = [
    "RUNTIMES",
    "LogGrid",
    "MeasuredTables",
    "load_tables",
    "read_tables_file",
    "save_tables",
]
