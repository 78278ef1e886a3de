"""Options and steps that several commands share: ``--set``, ``--json``, loading a scenario."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hetsim.errors import InputError

if TYPE_CHECKING:
    from hetsim import Scenario

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a scenario field: dotted.path=value (repeatable), e.g. "
        "--set pools.decode.instances=4 --set sla.ttft='2 s'",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ScenarioArgument = Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)]


def load(path: Path, overrides: list[str] | None) -> Scenario:
    from hetsim import load_scenario

    return load_scenario(path, overrides or [])


def need_out(out: Path | None, plots: bool, html: bool) -> None:
    """Figures and reports are files: asking for them without a folder is an input error."""
    if out is None and (plots or html):
        raise InputError(
            "--plots and --report write files and need a folder",
            field="--out",
            allowed="--out DIR",
        )
