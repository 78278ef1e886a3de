"""``hetsim bench``: read your own benchmark runs (vLLM, SGLang, genai-perf, LLMServingSim).

``hetsim bench import FILE`` turns one run into a hetsim trace (Mooncake JSONL) and the measured
per-request latencies; ``hetsim validate --bench FILE SCENARIO`` replays it, and
``hetsim calibrate --bench FILE --scenario SCENARIO`` fits a pool to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hetsim.cli import render
from hetsim.cli.options import JsonOption

if TYPE_CHECKING:
    from hetsim import BenchRun

bench_app = typer.Typer(
    help="Read benchmark results: vllm bench serve --save-result --save-detailed JSON, SGLang "
    "bench_serving --output-details JSONL, genai-perf profile_export.json, or an LLMServingSim "
    "run folder (meta.json + requests.jsonl).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@bench_app.callback()
def _group() -> None:
    """Read your own benchmark runs, to replay (validate --bench) and fit (calibrate --bench)."""
    # a callback keeps `bench` a command group (``hetsim bench import``) even with one command


@bench_app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="Result file (or LLMServingSim run folder).", show_default=False)
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for trace.jsonl (Mooncake trace: `workload: {trace: {path: "
            "trace.jsonl, format: mooncake}}`), measured.csv and run.json.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Read a benchmark run: its requests (arrivals or clients, prompt and output lengths) and
    what each measured (TTFT, TPOT, ITL, E2E).

    Example: [bold]hetsim bench import results/vllm-qps8.json --out runs/qps8[/]
    """
    from hetsim import read_bench
    from hetsim.validation.bench import describe

    run = read_bench(file)
    if as_json:
        info = describe(run)
        info["measured"] = _percentiles(run)
        render.print_json(info)
    else:
        _summary(run)
    if out is not None:
        from hetsim.validation import write_import

        render.wrote(write_import(run, out), out, names=True)


def _percentiles(run: BenchRun) -> dict[str, dict[str, float | None]]:
    """Mean, p50 and p90 of each measured latency (None where no request defines it)."""
    return {
        col: {"mean": s.mean, "p50": s.p50, "p90": s.p90} for col, s in run.latency_stats().items()
    }


def _summary(run: BenchRun) -> None:
    load = {
        "timed": "send times from the file",
        "closed-loop": f"closed loop of {run.concurrency} clients",
        "burst": "all sent at once (rate inf)",
    }[run.arrivals.value]
    render.console.print(
        f"[bold]{run.path.name}[/]: {run.format.value}, {len(run.requests)} requests "
        f"({run.failed} failed, left out), {load}; model {run.model or 'not recorded'}"
    )
    t = render.table("Measured", ("latency", "mean", "p50", "p90"), ("mean", "p50", "p90"))
    for name, stats in _percentiles(run).items():
        t.add_row(name.removesuffix("_s").upper(), *(render.duration(v) for v in stats.values()))
    render.console.print(t)
