"""``hetsim simulate``: run a scenario, or compare its KV lifecycle protocols."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hetsim.cli import render
from hetsim.cli.options import JsonOption, ScenarioArgument, SetOption, load, need_out

if TYPE_CHECKING:
    from hetsim import Scenario, SimulationResult
    from hetsim.lifecycles import LifecycleComparison

#: wall seconds between plain progress lines when stderr is not a terminal (CI logs, files)
HEARTBEAT_S = 10.0


def simulate(
    scenario: ScenarioArgument,
    set_: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write requests.parquet, timeseries.parquet, summary.json (with "
            "--compare-lifecycles: comparison.json, comparison.csv); files an earlier run "
            "wrote there and this one does not are removed.",
        ),
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Also write requests.csv.")] = False,
    requests: Annotated[
        int | None,
        typer.Option(
            "--requests",
            min=1,
            help="Generate this many requests (synthetic, closed loop) or replay at most this "
            "many trace rows.",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the scenario seed.")] = None,
    compare_lifecycles: Annotated[
        bool,
        typer.Option(
            "--compare-lifecycles",
            help="Run the workload under pull, push and store "
            "(store needs lifecycle.store_tier) and compare them.",
        ),
    ] = False,
    plots: Annotated[
        bool,
        typer.Option("--plots", help="Write PNG and SVG figures to --out (latency CDFs, KV, ...)."),
    ] = False,
    html: Annotated[
        bool, typer.Option("--report", help="Write a self-contained report.html to --out.")
    ] = False,
    step_by_step: Annotated[
        bool,
        typer.Option(
            "--step-by-step",
            help="One simulated event per batch step: no fast-forward of steady decode "
            "(same results, slower; to check them).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Replay the scenario's workload through its cluster and report what requests experienced.

    Example: [bold]hetsim simulate scenarios/qwen3-32b-6p2d.yaml --set lifecycle=push --out run/[/]
    """
    from hetsim import simulate as run_simulation
    from hetsim.outputs import prepare

    if out is not None:
        prepare(out)  # before a long run: a folder that cannot take the outputs fails at once
    if compare_lifecycles:
        _compare(load(scenario, set_), requests, seed, as_json, out, not step_by_step)
        return
    need_out(out, plots, html, csv)
    loaded = load(scenario, set_)
    with _progress(loaded.name) as (report, beat, every):
        result = run_simulation(
            loaded,
            max_requests=requests,
            seed=seed,
            progress=report,
            heartbeat=beat,
            heartbeat_s=every,
            fast_forward=not step_by_step,
        )
    _note_short_trace(result, requests)
    written = _write(result, out, csv, plots, html) if out is not None else []
    if as_json:
        render.print_json(result.summary.to_json())
        return
    render.simulation_summary(result.summary)
    render.wrote(written, out)


Report = Callable[[int, int], None]
Beat = Callable[[int, int, float], None]


@contextmanager
def _progress(name: str) -> Iterator[tuple[Report | None, Beat, float]]:
    """(report, heartbeat, its interval in wall seconds). On a terminal, a live bar whose count
    the heartbeat also refreshes each second (requests end in batches of 256 otherwise);
    elsewhere (a pipe, a CI log) a bar never shows, so a plain line every :data:`HEARTBEAT_S`
    says the run is alive: requests ended out of the total and the simulated clock. A short
    run prints none."""
    if render.err_console.is_terminal:
        with render.simulation_progress(name) as report:
            yield report, lambda done, total, _clock: report(done, total), 1.0
        return
    yield None, _beat(lambda: name), HEARTBEAT_S


def _beat(name: Callable[[], str]) -> Beat:
    """A plain progress line on stderr, flushed (a CI log shows it as it comes)."""
    start = time.perf_counter()

    def beat(done: int, total: int, clock: float) -> None:
        print(
            f"simulate {name()}: {done:,} / {total:,} requests ended, simulated clock "
            f"{render.duration(clock)}, {render.duration(time.perf_counter() - start, 2)} "
            "elapsed",
            file=sys.stderr,
            flush=True,
        )

    return beat


def _note_short_trace(result: SimulationResult, requests: int | None) -> None:
    """A trace shorter than ``--requests`` is replayed whole: say so rather than cap silently."""
    s = result.summary
    replayed = s.requests + s.warmup_requests
    if requests is not None and replayed < requests:
        render.note(f"--requests {requests:,}: the trace holds {replayed:,} requests, all replayed")


def _write(result: SimulationResult, out: Path, csv: bool, plots: bool, html: bool) -> list[Path]:
    """Every output of the run, committed together (see :mod:`hetsim.outputs`)."""
    from hetsim.outputs import staged

    with staged(out) as stage:
        written = result.write(stage.dir, csv=csv)
        if plots or html:
            from hetsim import report

            if plots:
                written += report.write_simulation_plots(result, stage.dir)
            if html:
                written.append(report.write_simulation_report(result, stage.dir / "report.html"))
    return stage.final(written)


def _compare(
    scenario: Scenario,
    requests: int | None,
    seed: int | None,
    as_json: bool,
    out: Path | None,
    fast_forward: bool,
) -> None:
    from hetsim import compare_lifecycles

    run = [scenario.name]  # what a progress line names: the protocol being simulated

    def started(protocol: str) -> None:
        status.update(f"simulating {protocol}...")
        run[0] = f"{scenario.name} ({protocol})"

    beat = None if render.err_console.is_terminal else _beat(lambda: run[0])
    with render.err_console.status("simulating...") as status:
        comparison = compare_lifecycles(
            scenario,
            max_requests=requests,
            seed=seed,
            progress=started,
            heartbeat=beat,
            heartbeat_s=HEARTBEAT_S,
            fast_forward=fast_forward,
        )
    if "store" not in {o.protocol for o in comparison.outcomes}:
        # the table would otherwise lack its store column without saying why
        render.note(
            "store is not compared: it needs the shared pool it writes KV to, and the "
            "scenario sets no lifecycle.store_tier (name a kv.tiers entry, e.g. "
            "--set lifecycle.store_tier=<tier>)"
        )
    written = _write_comparison(comparison, out) if out is not None else []
    if as_json:
        render.print_json(comparison.to_dict())
        return
    render.lifecycles(comparison)
    render.wrote(written, out)


def _write_comparison(comparison: LifecycleComparison, out: Path) -> list[Path]:
    """comparison.json (each protocol's full summary) and comparison.csv (one row each)."""
    import json

    from hetsim.outputs import staged

    with staged(out) as stage:
        summaries = stage.dir / "comparison.json"
        summaries.write_text(json.dumps(comparison.to_dict(), indent=2) + "\n")
        table = stage.dir / "comparison.csv"
        comparison.to_frame().to_csv(table)
    return stage.final([summaries, table])
