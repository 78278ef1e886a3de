"""``hetsim trace``: look at a request trace before simulating with it.

Thin: parse options, call :func:`hetsim.workload.trace_stats`, render. Bad input raises
:class:`~hetsim.errors.InputError`, which the main entry point turns into one message and exit 2.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hetsim.errors import InputError

trace_app = typer.Typer(
    help="Inspect request traces: Mooncake JSONL, Azure LLM inference CSV, BurstGPT CSV, or a "
    "generic CSV/JSONL with a column mapping.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
_console = Console(width=None if sys.stdout.isatty() else 180)
_err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 180)

_FIELDS = ("arrival", "input_tokens", "output_tokens", "hash_ids")


@trace_app.callback()
def _group() -> None:
    """Inspect request traces before simulating with them."""
    # a callback keeps `trace` a command group (``hetsim trace stats``) even with one command


def _parse_columns(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    mapping: dict[str, str] = {}
    for part in text.split(","):
        key, sep, column = part.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or key not in _FIELDS or not column:
            raise InputError(
                "write the mapping as field=column pairs separated by commas, e.g. "
                "arrival=ts,input_tokens=prompt,output_tokens=completion",
                field="--columns",
                value=part,
                allowed=_FIELDS,
            )
        mapping[key] = column
    return mapping


@trace_app.command()
def stats(
    file: Annotated[Path, typer.Argument(help="Trace file.", show_default=False)],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="mooncake, azure, burstgpt, csv or jsonl (default: guessed from the header).",
            show_default=False,
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="Generic csv/jsonl: field=column pairs, e.g. "
            "arrival=ts,input_tokens=prompt,output_tokens=completion[,hash_ids=blocks].",
            show_default=False,
        ),
    ] = None,
    time_unit: Annotated[
        str, typer.Option("--time-unit", help="Generic formats: s, ms, us or datetime.")
    ] = "s",
    skip_bad_rows: Annotated[
        bool,
        typer.Option("--skip-bad-rows", help="Skip and count unreadable or out-of-order rows."),
    ] = False,
    block_tokens: Annotated[
        int, typer.Option("--block-tokens", help="Tokens per prefix hash block.", min=1)
    ] = 512,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a PNG: arrivals per minute and length histograms.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Summarise a trace: requests, duration, rate, length percentiles, prefix reuse.

    Arrival rate as a mean and the busiest minute; p50/p90/p99/max of prompt and output tokens;
    the share of 512-token prefix blocks already seen earlier in the trace (n/a without hashes).

    Example: [bold]hetsim trace stats tests/data/mooncake_conversation_2k.jsonl --plot trace.png[/]
    """
    from hetsim.workload import plot_trace_stats, trace_stats

    result = trace_stats(
        file,
        fmt,
        columns=_parse_columns(columns),
        time_unit=time_unit,
        on_bad_row="skip" if skip_bad_rows else "error",
        block_tokens=block_tokens,
    )
    info = result.to_dict()
    if plot is not None:
        written = plot_trace_stats(result, plot)
        _err_console.print(f"wrote {written}")
    if as_json:
        print(json.dumps(info, indent=2))
        return
    _render(info)


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:,.0f}"
    return f"{x:,.{digits}g}"


def _render(info: dict[str, Any]) -> None:
    table = Table(title=f"{info['file']} ({info['format']})", title_justify="left")
    table.add_column("measure")
    table.add_column("value")
    dropped = []
    if info["skipped_bad_rows"]:
        dropped.append(f"{info['skipped_bad_rows']:,} unreadable")
    if info["skipped_out_of_order"]:
        dropped.append(f"{info['skipped_out_of_order']:,} out of order")
    if info["failed_zero_tokens"]:
        dropped.append(f"{info['failed_zero_tokens']:,} with zero tokens (failed)")
    table.add_row("requests", f"{info['requests']:,}")
    table.add_row(
        "rows read",
        f"{info['rows_read']:,}" + (f" (dropped: {', '.join(dropped)})" if dropped else ""),
    )
    if info["start"]:
        table.add_row("first arrival", info["start"])
    table.add_row("duration", f"{_num(info['duration_s'], 6)} s")
    table.add_row(
        "mean rate",
        f"{_num(info['mean_rate_rps'])} req/s ({_num(info['mean_per_minute'])} req/min)",
    )
    table.add_row("peak minute", f"{info['peak_per_minute']:,} req/min")
    for key, label in (("input_tokens", "prompt tokens"), ("output_tokens", "output tokens")):
        s = info[key]
        table.add_row(
            label,
            f"mean {_num(s['mean'])}  p50 {_num(s['p50'])}  p90 {_num(s['p90'])}  "
            f"p99 {_num(s['p99'])}  max {_num(s['max'])}",
        )
    if info["prefix_reuse"] is None:
        table.add_row("prefix reuse", "n/a (no hash ids)")
    else:
        table.add_row(
            "prefix reuse",
            f"{info['prefix_reuse']:.1%} of {info['hash_blocks']:,} {info['block_tokens']}-token "
            f"blocks seen earlier ({info['prefix_reuse_tokens']:.1%} of prompt tokens)",
        )
    _console.print(table)
