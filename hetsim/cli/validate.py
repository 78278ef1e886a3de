"""``hetsim validate``: predicted vs measured.

Without ``--silicon``: the step model against held-out kernels of a calibration and a small
transformer timed on this CPU. With ``--silicon FILE``: whole serving runs against NVIDIA's
end-to-end silicon sample (aiconfigurator-core's ``systems/silicon_sample.csv``), one closed-loop
simulation per measurement hetsim can pose. With ``--bench FILE SCENARIO``: the user's own
benchmark run replayed request for request through the scenario of its deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hetsim.cli import render
from hetsim.cli.options import refuse_other_modes
from hetsim.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from hetsim import BenchComparison
    from hetsim.perf.calibration import CalibrationTable
    from hetsim.validation import SiliconValidation


def validate(
    scenario: Annotated[
        Path | None,
        typer.Argument(
            help="With --bench: the scenario that describes the benchmarked deployment "
            "(its workload is replaced by the run's requests).",
            show_default=False,
        ),
    ] = None,
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
    bench: Annotated[
        Path | None,
        typer.Option(
            "--bench",
            help="A benchmark run (vllm bench serve --save-detailed JSON, SGLang bench_serving "
            "--output-details JSONL, genai-perf profile_export.json, LLMServingSim folder): "
            "replay its requests through SCENARIO and compare TTFT, TPOT/ITL and E2E.",
        ),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="With --bench: an end-to-end calibration (hetsim calibrate --bench) applied "
            "to the pools on its accelerator.",
        ),
    ] = None,
) -> None:
    """Predicted vs measured: held-out kernels of the calibration and prefill/decode steps of a
    small Llama-like transformer timed in PyTorch on this CPU; or, with --silicon, TTFT and TPOT
    of whole serving runs measured by NVIDIA.

    Examples: [bold]hetsim validate --silicon silicon_sample.csv --systems h200_sxm --limit 50[/];
    [bold]hetsim validate --bench vllm-result.json my-deployment.yaml --out cmp/[/]
    """
    _bench_options(bench, scenario, calibration, silicon)
    mode = "--bench" if bench is not None else "--silicon" if silicon is not None else "kernels"
    given = {
        "--systems": systems is not None, "--runtimes": runtimes is not None,
        "--limit": limit is not None, "--table": table_path is not None,
        "--backend": backend is not None, "--quick": quick, "--no-model": not model_check,
    }  # fmt: skip
    refuse_other_modes(mode, given, _MODES, "--out (and --calibration)")
    if out is not None:
        from hetsim.outputs import prepare

        prepare(out)  # before the runs: a folder that cannot take the outputs fails at once
    if bench is not None:
        assert scenario is not None
        _bench(bench, scenario, calibration, out)
        return
    if silicon is not None:
        _silicon(silicon, systems, runtimes, limit, out)
        return
    _kernels(table_path, backend, quick, model_check, out)


#: the flags each comparison reads, and what it is
_MODES = {
    "--silicon": (
        ("--systems", "--runtimes", "--limit"),
        "the silicon-sample comparison (--silicon FILE)",
    ),
    "kernels": (
        ("--table", "--backend", "--quick", "--no-model"),
        "the step model against kernels (hetsim validate without --silicon or --bench)",
    ),
    "--bench": ((), "a benchmark comparison (--bench FILE SCENARIO)"),
}


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


def _bench_options(
    bench: Path | None, scenario: Path | None, calibration: Path | None, silicon: Path | None
) -> None:
    """--bench needs a scenario and excludes --silicon; SCENARIO and --calibration need it."""
    if bench is not None and silicon is not None:
        raise InputError("--bench and --silicon are two comparisons: run them one at a time",
                         field="--bench", allowed="one of --bench, --silicon")  # fmt: skip
    if bench is not None and scenario is None:
        raise InputError("--bench replays the run through a scenario: name it", field="SCENARIO",
                         allowed="the scenario file of the benchmarked deployment")  # fmt: skip
    for name, given in (("SCENARIO", scenario), ("--calibration", calibration)):
        if bench is None and given is not None:
            raise InputError(f"{name} is for a benchmark comparison", field=name,
                             allowed="--bench FILE SCENARIO")  # fmt: skip


def _bench(path: Path, scenario_path: Path, calibration: Path | None, out: Path | None) -> None:
    from hetsim import load_scenario, read_bench, read_end_to_end, validate_bench

    run = read_bench(path)
    scenario = load_scenario(scenario_path)
    label = "default profiles"
    if calibration is not None:
        from hetsim.validation import with_calibration

        cal = read_end_to_end(calibration)
        pools = [n for n, p in scenario.profiles.items() if p.name == cal.accelerator]
        if not pools:
            raise InputError(
                "no pool of the scenario runs on the calibrated accelerator",
                file=calibration,
                field="accelerator",
                value=cal.accelerator,
                allowed=sorted({p.name for p in scenario.profiles.values()}),
            )
        scenario = with_calibration(scenario, cal, pools)
        label = f"end-to-end calibration {calibration.name}"
    with render.err_console.status(f"replaying {len(run.requests)} requests..."):
        comp = validate_bench(run, scenario)
    _bench_tables(comp, label)
    if out is not None:
        render.wrote(_bench_files(comp, out), out, names=True)


def _bench_tables(comp: BenchComparison, label: str) -> None:
    from rich.markup import escape

    errors = comp.error_table()
    title = f"{comp.run.path.name} vs {escape(label)}: error per request (simulated / measured - 1)"
    cols = [c for c in errors.columns if c != "latency"]
    t = render.table(title, ("latency", *cols), cols)
    for r in errors.itertuples(index=False):
        t.add_row(str(r[0]), str(r[1]), *(_pct(c, v) for c, v in zip(cols[1:], r[2:], strict=True)))
    render.console.print(t)
    load = comp.by_load()
    if load.empty:
        render.note(
            "no error-by-load table: the run has one load level (a closed loop keeps its "
            "concurrency in flight; a burst sends every request at once)"
        )
    else:
        t = render.table("Median |error| by load (requests in flight at arrival)",
                         tuple(str(c) for c in load.columns), tuple(load.columns[1:]))  # fmt: skip
        for r in load.itertuples(index=False):
            t.add_row(str(r[0]), str(r[1]), *(f"{v:.1f}" for v in r[2:]))
        render.console.print(t)


def _pct(column: str, value: float) -> str:
    """Signed errors with their sign, magnitudes without."""
    if column == "unmatched":
        return f"{value:,.0f}"
    return f"{value:+.1f}" if "signed" in column or "err %" in column else f"{value:.1f}"


def _bench_files(comp: BenchComparison, out: Path) -> list[Path]:
    """bench_requests.csv, bench_errors.csv, bench_by_load.csv and the two figures."""
    from hetsim.outputs import staged
    from hetsim.report import save_figure
    from hetsim.validation.bench_plots import cdf_figure, error_vs_load_figure

    frames = {
        "bench_requests.csv": comp.requests,
        "bench_errors.csv": comp.error_table(),
        "bench_by_load.csv": comp.by_load(),
    }
    with staged(out) as stage:
        written = []
        for name, frame in frames.items():
            frame.to_csv(stage.dir / name, index=False)
            written.append(stage.dir / name)
        written += save_figure(cdf_figure(comp), stage.dir, "bench_cdf", ("png",))
        load = error_vs_load_figure(comp)
        written += save_figure(load, stage.dir, "bench_error_vs_load", ("png",))
    return stage.final(written)
