"""``hetsim calibrate``: measure this device (``hetsim validate`` checks the step model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.cli import render
from hetsim.errors import InputError


def calibrate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="File to write: .csv or .parquet (microkernels), .npz (aiconfigurator).",
        ),
    ],
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="microkernels (time this device) or aiconfigurator (NVIDIA's measured tables).",
        ),
    ] = "microkernels",
    system: Annotated[
        str | None, typer.Option("--system", help="aiconfigurator system, e.g. h200_sxm.")
    ] = None,
    runtime: Annotated[
        str | None, typer.Option("--runtime", help="vllm, sglang or trtllm (aiconfigurator).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Runtime version (default: the newest).")
    ] = None,
    tables: Annotated[
        Path | None,
        typer.Option(
            "--tables",
            help="A directory in aiconfigurator's systems/data layout (default: the installed "
            "aiconfigurator-core, the nvidia extra).",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="Kernel backend: numpy or torch.")
    ] = "numpy",
    device: Annotated[str, typer.Option("--device", help="cpu, or cuda with torch.")] = "cpu",
    quick: Annotated[
        bool, typer.Option("--quick", help="A tiny sweep (seconds), for tests.")
    ] = False,
) -> None:
    """Time GEMM, attention and memory-copy microkernels on this device and write a calibration
    table that hardware profiles can reference (`calibration:`); or, with `--from aiconfigurator`,
    write NVIDIA's measured per-op tables for one system and runtime as one .npz file that
    profiles reference as `measured_tables:` (readable without the nvidia extra).

    Examples: [bold]hetsim calibrate --backend torch --out calib/this-cpu.parquet[/];
    [bold]hetsim calibrate --from aiconfigurator --system h200_sxm --runtime vllm --out
    calib/h200-vllm.npz[/]
    """
    if source == "aiconfigurator":
        _from_aiconfigurator(out, system, runtime, version, tables)
        return
    if source != "microkernels":
        raise InputError("unknown calibration source", field="--from", value=source,
                         allowed=("microkernels", "aiconfigurator"))  # fmt: skip
    from hetsim import calibrate as run_calibration
    from hetsim.perf.calibration import write_table

    with render.calibration_progress() as report:
        table = run_calibration(backend=backend, device=device, quick=quick, progress=report)
    write_table(table, out)
    render.calibration(table, out)


def _from_aiconfigurator(
    out: Path, system: str | None, runtime: str | None, version: str | None, root: Path | None
) -> None:
    from hetsim.perf.measured import RUNTIMES, load_tables, save_tables

    if system is None:
        raise InputError("--from aiconfigurator needs the system", field="--system",
                         allowed="an aiconfigurator system, e.g. h200_sxm")  # fmt: skip
    if runtime is None:
        raise InputError("--from aiconfigurator needs the runtime", field="--runtime",
                         allowed=RUNTIMES)  # fmt: skip
    if out.suffix != ".npz":
        raise InputError("measured tables are written as .npz", field="--out", value=str(out),
                         allowed="a path ending in .npz")  # fmt: skip
    measured = load_tables(system, runtime, version, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_tables(measured, out)
    counts = ", ".join(f"{t} {len(df):,} rows" for t, df in measured.rows.items())
    render.console.print(f"wrote {out}: {measured.label} ({counts})")
