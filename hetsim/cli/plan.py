"""``hetsim plan``: search deployments for the best one under the scenario's SLA."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hetsim.cli import render
from hetsim.cli.options import JsonOption, SetOption, load, need_out

if TYPE_CHECKING:
    from hetsim import PlanResult

ScenarioOrDefault = Annotated[
    Path | None,
    typer.Argument(
        help="Scenario YAML with a search: section (default: the bundled cphd-glm51.yaml).",
        show_default=False,
    ),
]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Write plan.json, candidates.csv and pareto.png here, and for the recommended "
        "deployment best.yaml (a scenario `hetsim simulate` replays at its goodput) and launch/ "
        "(vLLM, SGLang and Dynamo templates to review); files an earlier run wrote there and "
        "this one does not are removed.",
    ),
]
Backend = Annotated[str, typer.Option("--backend", help="local (process pool) or ray.")]
Address = Annotated[
    str | None, typer.Option("--address", help="Ray cluster address (default: a local Ray).")
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Local worker processes (default: all cores)."),
]
Wave = Annotated[
    int,
    typer.Option(
        "--wave",
        min=1,
        help="Candidates simulated per round. Results depend on it, not on the backend; "
        "raise it on a big cluster.",
    ),
]
Requests = Annotated[
    int | None,
    typer.Option(
        "--requests",
        min=1,
        help="Requests per planning simulation (default: search.max_requests, else the "
        "whole workload). A closed loop's search varies the concurrency: this is then the "
        "count at the scenario's concurrency, and every concurrency sends the same requests "
        "per client.",
    ),
]
Exhaustive = Annotated[
    bool, typer.Option("--exhaustive", help="No screening or pruning: search every candidate.")
]
Plots = Annotated[
    bool, typer.Option("--plots", help="Also write pareto and rate-sweep figures as SVG.")
]
Report = Annotated[
    bool, typer.Option("--report", help="Write a self-contained plan.html to --out.")
]
Top = Annotated[int, typer.Option("--top", min=0, help="Runners-up to show.")]


def plan(
    scenario: ScenarioOrDefault = None,
    set_: SetOption = None,
    out: Out = None,
    backend: Backend = "local",
    address: Address = None,
    workers: Workers = None,
    wave: Wave = 2,
    requests: Requests = None,
    exhaustive: Exhaustive = False,
    plots: Plots = False,
    html: Report = False,
    top: Top = 5,
    as_json: JsonOption = False,
) -> None:
    """Search deployments (accelerators, P:D ratio, tp/ep, precision and KV format per role,
    lifecycle) for the best goodput per dollar under the scenario's SLA.

    Example: [bold]hetsim plan scenarios/cphd-glm51.yaml --out plan/ --report[/]
    Exit code 1 when no candidate meets the SLA (with the reason).
    """
    from hetsim import default_scenario_path
    from hetsim import plan as run_plan
    from hetsim.outputs import prepare

    need_out(out, plots, html)
    if out is not None:
        prepare(out)  # before a long search: a folder that cannot take the outputs fails at once
    loaded = load(scenario or default_scenario_path(), set_)
    if loaded.spec.search is None:
        render.no_search_section()
    with render.plan_progress(loaded.name) as report:
        result = run_plan(
            loaded,
            backend=backend,
            workers=workers,
            address=address,
            max_requests=requests,
            wave=wave,
            exhaustive=exhaustive,
            progress=report,
        )
    written = _write(result, out, plots, html) if out is not None else []
    if as_json:
        render.print_json(result.to_dict())
    else:
        render.plan(result, top)
        _closed_loop_note(result)
        _warn_unmeasured(result)
        render.wrote(written, out, names=True)
    if result.best is None:
        if not as_json:
            render.no_deployment(result.explain_failure())
        raise typer.Exit(1)


def _write(result: PlanResult, out: Path, plots: bool, html: bool) -> list[Path]:
    """Every output of the plan, committed together (see :mod:`hetsim.outputs`)."""
    from hetsim import report
    from hetsim.outputs import staged

    with staged(out) as stage:
        written = result.write(stage.dir)
        written += report.write_launch(result, stage.dir)
        written += report.write_plan_plots(result, stage.dir, svg=plots)
        if html:
            written.append(report.write_plan_report(result, stage.dir / "plan.html"))
    return stage.final(written)


def _closed_loop_note(result: PlanResult) -> None:
    """For a closed loop, what was searched and what the goodput column means: the tables
    speak of rates, and this search varied the concurrency."""
    from rich.markup import escape

    settings = result.settings
    if settings.get("search_axis") != "concurrency":
        return
    top = settings["max_concurrency"]
    lines = [
        f"closed loop: searched the concurrency (1 to {top:,} clients), not a rate, with "
        f"{settings['requests_per_client']} request(s) per client at every concurrency (the "
        "scenario's requests over its concurrency, as vllm bench serve's --num-prompts = 10 x "
        "--max-concurrency); goodput = requests meeting the SLA per second of the measured "
        "span at the highest concurrency meeting it; the screen's capacity bounds cap that "
        "throughput, its queueing estimate (random arrivals) is not used"
    ]
    if any(r.goodput_at_limit for r in result.ranked):
        lines.append(
            "≥ here: met the SLA at every concurrency searched, up to the grid's top (not a "
            "capacity bound); the goodput is a lower bound"
        )
    best = result.best
    if best is not None and best.concurrency is not None:
        at_least = "at least " if best.goodput_at_limit else ""
        lines.append(
            f"best: goodput {at_least}{best.goodput:.3g} req/s at concurrency {best.concurrency}"
        )
    for line in lines:
        render.console.print(escape(line), highlight=False)


def _warn_unmeasured(result: PlanResult) -> None:
    """A warning line naming the recommended pools on roofline-default or transferred figures."""
    from rich.markup import escape

    from hetsim.report.describe import unmeasured_note

    best = result.best
    if best is None or best.summary is None:
        return
    note = unmeasured_note(best.summary.provenance)
    if note is not None:
        render.console.print(f"[yellow]warning:[/] {escape(note)}")
