"""``hetsim calibrate``: measure this device (``hetsim validate`` checks the step model), or fit
a pool end to end to your own benchmark runs (``--bench``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hetsim.cli import render
from hetsim.cli.options import refuse_other_modes
from hetsim.errors import InputError

if TYPE_CHECKING:
    from hetsim.perf.calibration import CalibrationTable


def calibrate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="File to write, in the format its extension names: .csv, .json or .parquet "
            "(microkernels), .npz (aiconfigurator), .json (--bench: the end-to-end calibration; "
            "the calibrated profile is written beside it as <accelerator>-e2e.yaml).",
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
    allow_contended: Annotated[
        bool,
        typer.Option(
            "--allow-contended",
            help="Write the table even when other processes used the CPUs during most timings "
            "(it is marked contended, and `hetsim validate` says so).",
        ),
    ] = False,
    bench: Annotated[
        list[Path] | None,
        typer.Option(
            "--bench",
            help="Benchmark run(s) to fit end to end (repeat for several runs of one "
            "deployment); needs --scenario.",
        ),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario", help="With --bench: the scenario of the benchmarked deployment."
        ),
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option(
            "--pool", help="With --bench: the pool to fit (default: the only accelerator)."
        ),
    ] = None,
    held_out: Annotated[
        float,
        typer.Option("--held-out", help="With --bench: share of each run's requests held out."),
    ] = 0.5,
    seed: Annotated[
        int, typer.Option("--seed", help="With --bench: seed of the split.", min=0)
    ] = 0,
) -> None:
    """Time GEMM, attention and memory-copy microkernels on this device and write a calibration
    table that hardware profiles can reference (`calibration:`); or, with `--from aiconfigurator`,
    write NVIDIA's measured per-op tables for one system and runtime as one .npz file that
    profiles reference as `measured_tables:` (readable without the nvidia extra).

    With `--bench`: fit the scenario pool's compute and memory efficiency and per-step overhead to
    your benchmark runs (half of each run's requests held out), and write them as an
    `end-to-end` calibration with the runs it came from and the held-out error.

    Examples: [bold]hetsim calibrate --backend torch --out calib/this-cpu.parquet[/];
    [bold]hetsim calibrate --from aiconfigurator --system h200_sxm --runtime vllm --out
    calib/h200-vllm.npz[/]; [bold]hetsim calibrate --bench run.json --scenario deploy.yaml
    --out calib/deploy-e2e.json[/]
    """
    given = {
        "--scenario": scenario is not None, "--pool": pool is not None,
        "--held-out": held_out != 0.5, "--seed": seed != 0,
        "--system": system is not None, "--runtime": runtime is not None,
        "--version": version is not None, "--tables": tables is not None,
        "--backend": backend != "numpy", "--device": device != "cpu", "--quick": quick,
        "--allow-contended": allow_contended,
    }  # fmt: skip
    if source not in ("microkernels", "aiconfigurator"):
        raise InputError("unknown calibration source", field="--from", value=source,
                         allowed=("microkernels", "aiconfigurator"))  # fmt: skip
    if bench and source != "microkernels":
        raise InputError("an end-to-end fit reads your runs, not another source", field="--from",
                         value=source, allowed="--bench without --from")  # fmt: skip
    refuse_other_modes("--bench" if bench else source, given, _MODES, "--out")
    if bench:
        _from_bench(out, bench, scenario, pool, held_out, seed)
        return
    if source == "aiconfigurator":
        _from_aiconfigurator(out, system, runtime, version, tables)
        return
    from hetsim import calibrate as run_calibration
    from hetsim.perf.calibration import check_table_path, write_table

    check_table_path(out, "--out")  # before the sweep: its minutes are not lost to a typo
    with render.calibration_progress() as report:
        table = run_calibration(backend=backend, device=device, quick=quick, progress=report)
    refuse_contended(table, out, allow_contended)
    write_table(table, out)
    render.calibration(table, out)


#: the flags each way of calibrating reads, and what it is
_MODES = {
    "--bench": (
        ("--scenario", "--pool", "--held-out", "--seed"),
        "an end-to-end fit (--bench FILE --scenario SCENARIO)",
    ),
    "aiconfigurator": (
        ("--system", "--runtime", "--version", "--tables"),
        "NVIDIA's measured tables (--from aiconfigurator)",
    ),
    "microkernels": (
        ("--backend", "--device", "--quick", "--allow-contended"),
        "timing this device's microkernels (the default --from microkernels)",
    ),
}


def refuse_contended(table: CalibrationTable, out: Path, allowed: bool) -> None:
    """A contended table measures the neighbours: not written (exit 1) unless allowed, and
    then it carries its flag and share (in its metadata) and a warning is printed."""
    from hetsim.perf.calibration import contention

    share = contention(table.meta)
    if share is None:
        return
    what = contended_words(table.meta, share)
    if not allowed:
        render.error(
            f"not writing {out}: {what}, so it would measure them, not this device. "
            "Run again on a quiet machine, or pass --allow-contended to keep it marked contended."
        )
        raise typer.Exit(1)
    table.meta["contended"] = True
    render.note(f"{out} is marked contended: {what}")


def contended_words(meta: dict[str, Any], share: float) -> str:
    """How contended, in words: the share of timings, and how busy the others kept the CPUs."""
    median = (meta.get("contention") or {}).get("others_cpu_share_median")
    words = f"{share:.0%} of its timings were taken while other processes used the CPUs"
    return words + (f" (a median {median:.0%} of all CPUs)" if median is not None else "")


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


def _from_bench(
    out: Path, runs: list[Path], scenario: Path | None, pool: str | None, held: float, seed: int
) -> None:
    from hetsim import fit_end_to_end, load_scenario, read_bench
    from hetsim.perf.calibration import write_end_to_end
    from hetsim.validation import calibrated_profile

    if scenario is None:
        raise InputError("--bench fits a deployment: name its scenario", field="--scenario",
                         allowed="the scenario file of the benchmarked deployment")  # fmt: skip
    if out.suffix != ".json":
        raise InputError("an end-to-end calibration is written as .json", field="--out",
                         value=str(out), allowed="a path ending in .json")  # fmt: skip
    read = [read_bench(p) for p in runs]
    posed = load_scenario(scenario)
    with render.count_progress("fit", scenario.name, "replays") as report:
        result = fit_end_to_end(read, posed, pool, held, seed, progress=report)
    cal = result.calibration
    written = [write_end_to_end(cal, out)]
    written.append(calibrated_profile(cal, out.parent / f"{cal.accelerator}-e2e.yaml"))
    _fit_tables(result)
    render.console.print(f"[dim]wrote {', '.join(str(p) for p in written)}[/]")
    render.note(
        # absolute: a pool resolves a relative profile path from its scenario's folder
        f"use it: `accelerator: {written[1].resolve()}` in a pool, or "
        f"`hetsim validate --bench RUN {scenario} --calibration {out}`"
    )


def _fit_tables(result: Any) -> None:
    cal = result.calibration
    t = render.table(f"End-to-end fit of {cal.accelerator} ({result.evaluations} replays)",
                     ("parameter", "default", "fitted"), ("default", "fitted"))  # fmt: skip
    for name, value in cal.fitted.items():
        shown = render.duration if name == "step_overhead" else (lambda v: f"{v:.3f}")
        t.add_row(name, shown(cal.default[name]), shown(value))
    render.console.print(t)
    table = result.held_out_table()
    cols = ("profile", "run", "latency", "requests", "med |e| %", "p90 |e| %", "signed med %")
    t = render.table("Held-out requests: error (simulated / measured - 1)", cols, cols[3:])
    for r in table.itertuples(index=False):
        t.add_row(*(str(v) for v in r[:4]), f"{r[4]:.1f}", f"{r[5]:.1f}", f"{r[6]:+.1f}")
    render.console.print(t)
