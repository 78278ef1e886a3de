"""``hetsim validate``: predicted vs measured.

Without ``--silicon``: the step model against held-out kernels of a calibration and a small
transformer timed on this CPU. With ``--silicon FILE``: whole serving runs against NVIDIA's
end-to-end silicon sample (aiconfigurator-core's ``systems/silicon_sample.csv``), one closed-loop
simulation per measurement hetsim can pose.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hetsim.cli import render
from hetsim.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from hetsim.perf.calibration import CalibrationTable
    from hetsim.validation import SiliconValidation


def validate(
    table_path: Annotated[
        Path | None,
        typer.Option("--table", help="Calibration table (default: run a calibration first)."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="numpy or torch (default: torch when installed, since "
            "the reference model runs in torch).",
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sweeps, for tests.")] = False,
    model_check: Annotated[
        bool,
        typer.Option("--model/--no-model", help="Also time a real small transformer (torch)."),
    ] = True,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for validation.csv and the plot (with --silicon: silicon.csv, "
            "silicon_errors.csv and silicon_coverage.csv).",
        ),
    ] = None,
    silicon: Annotated[
        Path | None,
        typer.Option(
            "--silicon",
            help="A silicon-sample CSV (aiconfigurator-core systems/silicon_sample.csv): "
            "simulate each row under a closed loop at its concurrency and compare TTFT/TPOT.",
        ),
    ] = None,
    systems: Annotated[
        str | None,
        typer.Option(
            "--systems", help="With --silicon: only these systems, e.g. h200_sxm,b200_sxm."
        ),
    ] = None,
    runtimes: Annotated[
        str | None,
        typer.Option(
            "--runtimes", help="With --silicon: only these runtimes (vllm,sglang,trtllm)."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="With --silicon: a seeded random subset of N rows."),
    ] = None,
) -> None:
    """Predicted vs measured: held-out kernels of the calibration and prefill/decode steps of a
    small Llama-like transformer timed in PyTorch on this CPU; or, with --silicon, TTFT and TPOT
    of whole serving runs measured by NVIDIA.

    Example: [bold]hetsim validate --silicon silicon_sample.csv --systems h200_sxm --limit 50[/]
    """
    if out is not None:
        from hetsim.outputs import prepare

        prepare(out)  # before the runs: a folder that cannot take the outputs fails at once
    if silicon is not None:
        _silicon(silicon, systems, runtimes, limit, out)
        return
    for name, given in (("--systems", systems), ("--runtimes", runtimes), ("--limit", limit)):
        if given is not None:
            raise InputError(
                f"{name} selects silicon-sample rows", field=name, allowed="--silicon FILE"
            )
    _kernels(table_path, backend, quick, model_check, out)


def _kernels(
    table_path: Path | None, backend: str | None, quick: bool, model_check: bool, out: Path | None
) -> None:
    from hetsim import validate as run_validation
    from hetsim.perf.calibration import read_table

    if table_path is not None:
        table = read_table(table_path)
    else:
        from hetsim import calibrate as run_calibration
        from hetsim.perf.microbench import available_backends

        chosen = backend or ("torch" if "torch" in available_backends() else "numpy")
        with render.err_console.status(f"calibrating this device with {chosen}..."):
            table = run_calibration(backend=chosen, quick=quick)
    with render.err_console.status("validating against held-out kernels and a real transformer..."):
        result = run_validation(table, model_check=model_check, quick=quick)
    render.validation(result.summary())
    _caveat_contended(table, table_path)
    if out is not None:
        render.wrote(_write(result.to_frame(), out), out, names=True)


def _caveat_contended(table: CalibrationTable, path: Path | None) -> None:
    """Errors measured against a contended table are partly the neighbours': say so."""
    from rich.markup import escape

    from hetsim.cli.calibrate import contended_words
    from hetsim.perf.calibration import contention

    share = contention(table.meta)
    if share is None:
        return
    which = f"the calibration table {path}" if path is not None else "this run's calibration"
    words = contended_words(table.meta, share)
    render.console.print(
        f"[yellow]warning:[/] {escape(which)} is contended: {escape(words)}; the errors "
        "above measure that contention as well as the step model. Calibrate on a quiet "
        "machine before trusting them."
    )


def _write(frame: pd.DataFrame, out: Path) -> list[Path]:
    """validation.csv and the plot, committed together (see :mod:`hetsim.outputs`)."""
    from hetsim.outputs import staged

    with staged(out) as stage:
        written = [stage.dir / "validation.csv"]
        frame.to_csv(written[0], index=False)
        if not frame.empty:
            from hetsim.report import predicted_vs_measured, save_figure

            written += save_figure(
                predicted_vs_measured(frame), stage.dir, "predicted_vs_measured", ("png",)
            )
    return stage.final(written)


def _silicon(
    path: Path, systems: str | None, runtimes: str | None, limit: int | None, out: Path | None
) -> None:
    from hetsim.validation import (
        Runtime,
        collapse_duplicates,
        read_silicon,
        select_rows,
        validate_silicon,
    )

    wanted = [_runtime(name, Runtime) for name in _names(runtimes)]
    rows = collapse_duplicates(read_silicon(path))
    chosen = select_rows(rows, _names(systems) or None, wanted or None, limit)
    if not chosen:
        raise InputError(
            "no silicon-sample row matches --systems/--runtimes",
            file=path,
            field="--systems",
            value=systems,
            allowed=sorted({r.system for r in rows}),
        )
    with render.count_progress("validate", path.name, "rows") as report:
        result = validate_silicon(chosen, progress=report)
    _silicon_tables(result, len(rows))
    if out is not None:
        render.wrote(_silicon_files(result, out), out, names=True)


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def _runtime(name: str, kind: type) -> object:
    try:
        return kind(name)
    except ValueError:
        raise InputError(
            "unknown runtime", field="--runtimes", value=name, allowed=[r.value for r in kind]
        ) from None


def _silicon_tables(result: SiliconValidation, unique: int) -> None:
    errors = result.error_table()
    if errors.empty:
        render.console.print("[bold]No row was predicted[/]: see the reasons under coverage.")
    columns = ("by", "group", "rows", "TTFT med |e| %", "TTFT p90 |e| %", "TTFT signed med %")
    columns += ("TPOT med |e| %", "TPOT p90 |e| %", "TPOT signed med %")
    t = render.table("Silicon sample: prediction error (mean TTFT/TPOT)", columns, columns[2:])
    for r in errors.itertuples(index=False):
        t.add_row(str(r[0]), str(r[1]), str(r[2]), *(f"{v:.1f}" for v in r[3:]))
    if not errors.empty:
        render.console.print(t)
    coverage = result.coverage()
    t = render.table(
        f"Coverage: {len(result.results)} of {unique} unique measurements checked",
        tuple(coverage.columns),
        tuple(coverage.columns[1:]),
    )
    for r in coverage.itertuples(index=False):
        t.add_row(*(str(v) for v in r))
    render.console.print(t)


def _silicon_files(result: SiliconValidation, out: Path) -> list[Path]:
    from hetsim.outputs import staged

    frames = {
        "silicon.csv": result.to_frame(),
        "silicon_errors.csv": result.error_table(),
        "silicon_coverage.csv": result.coverage(),
    }
    with staged(out) as stage:
        for name, frame in frames.items():
            frame.to_csv(stage.dir / name, index=False)
    return stage.final([stage.dir / name for name in frames])
