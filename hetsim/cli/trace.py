"""``hetsim trace``: look at a request trace before simulating with it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.cli import render
from hetsim.cli.options import JsonOption
from hetsim.errors import InputError

trace_app = typer.Typer(
    help="Inspect request traces: Mooncake JSONL, Azure LLM inference CSV, BurstGPT CSV, or a "
    "generic CSV/JSONL with a column mapping.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

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
    as_json: JsonOption = False,
) -> None:
    """Summarise a trace: requests, duration, rate, length percentiles, prefix reuse.

    Arrival rate as a mean and the busiest minute; p50/p90/p99/max of prompt and output tokens;
    the share of 512-token prefix blocks already seen earlier in the trace (n/a without hashes).

    Example: [bold]hetsim trace stats tests/data/mooncake_conversation_2k.jsonl --plot trace.png[/]
    """
    from hetsim.workload import plot_trace_stats, trace_stats

    if plot is not None and (
        plot.suffix.lower() != ".png" or not plot.parent.is_dir() or plot.is_dir()
    ):
        # before the read: a long trace's minutes are not lost to a path it cannot write
        raise InputError(
            "the plot is a PNG written into an existing folder",
            field="--plot",
            value=str(plot),
            allowed="a path ending in .png whose folder exists",
        )
    result = trace_stats(
        file,
        fmt,
        columns=_parse_columns(columns),
        time_unit=time_unit,
        on_bad_row="skip" if skip_bad_rows else "error",
        block_tokens=block_tokens,
    )
    if plot is not None:
        render.err_console.print(f"wrote {plot_trace_stats(result, plot)}")
    if as_json:
        render.print_json(result.to_dict())
        return
    render.trace_stats(result.to_dict())
