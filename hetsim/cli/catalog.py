"""``hetsim profiles``, ``models`` and ``schema``: what a scenario file can name and contain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hetsim.cli import render
from hetsim.cli.options import JsonOption


def profiles(as_json: JsonOption = False) -> None:
    """List the accelerator profiles: memory, bandwidth, peak compute per format, links, price."""
    from hetsim import available_profiles, load_profile

    rows = [load_profile(name) for name in available_profiles()]
    if as_json:
        render.print_json([p.model_dump(mode="json") for p in rows])
        return
    render.profiles(rows)


def models(
    as_json: JsonOption = False,
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", help="Also show a Hugging Face config.json (repeatable)."),
    ] = None,
) -> None:
    """List the bundled models with derived parameters, weight bytes and KV bytes per token."""
    from hetsim import bundled_models, load_model

    loaded = [load_model(name) for name in bundled_models()]
    loaded += [load_model(str(path)) for path in config or []]
    if as_json:
        render.print_json([m.summary() for m in loaded])
        return
    render.models(loaded)


def schema(
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """Print the JSON Schema of the scenario file (for editors and validation)."""
    from hetsim import ScenarioSpec

    text = json.dumps(ScenarioSpec.model_json_schema(by_alias=True), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        render.err_console.print(f"wrote {out}")
    else:
        print(text)
