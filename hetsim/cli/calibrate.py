"""``hetsim calibrate``: measure this device (``hetsim validate`` checks the step model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.cli import render


def calibrate(
    out: Annotated[
        Path, typer.Option("--out", help="Calibration table to write (.csv or .parquet).")
    ],
    backend: Annotated[
        str, typer.Option("--backend", help="Kernel backend: numpy or torch.")
    ] = "numpy",
    device: Annotated[str, typer.Option("--device", help="cpu, or cuda with torch.")] = "cpu",
    quick: Annotated[
        bool, typer.Option("--quick", help="A tiny sweep (seconds), for tests.")
    ] = False,
) -> None:
    """Time GEMM, attention and memory-copy microkernels on this device and write a calibration
    table that hardware profiles can reference (`calibration:`).

    Example: [bold]hetsim calibrate --backend torch --out calib/this-cpu.parquet[/]
    """
    from hetsim import calibrate as run_calibration
    from hetsim.perf.calibration import write_table

    with render.calibration_progress() as report:
        table = run_calibration(backend=backend, device=device, quick=quick, progress=report)
    write_table(table, out)
    render.calibration(table, out)
