"""Options and steps that several commands share: ``--set``, ``--json``, loading a scenario."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hetsim.errors import InputError

if TYPE_CHECKING:
    from hetsim import Scenario


def _flags_take_no_value() -> None:
    """typer's rich help prints a flag's annotation (``--plots <bool>``) as if the flag took a
    value, and users then type ``--plots true``, which fails. A flag takes none: its help
    shows nothing after the name, as click's plain help already does. Applied once, when the
    CLI package imports this module (before any command's help is built); typer has no
    setting for it."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "hetsim_flags", False):
        return

    # ctx is click's Context; click is not imported here: typer bundles its own
    def display_type_rich(self: TyperOption, ctx: object) -> str | None:
        if self.is_flag or self.count:
            return None
        return shown(self, ctx)

    display_type_rich.hetsim_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="PATH=VALUE",
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


def need_out(out: Path | None, plots: bool, html: bool, csv: bool | None = None) -> None:
    """Figures, reports and tables are files: asking for them without a folder is an input
    error (``csv`` None: the command has no --csv)."""
    if out is None and (plots or html or csv):
        flags = "--plots, --report" + (" and --csv" if csv is not None else "")
        raise InputError(
            f"{flags} write files and need a folder", field="--out", allowed="--out DIR"
        )


def refuse_other_modes(
    mode: str, given: dict[str, bool], modes: dict[str, tuple[tuple[str, ...], str]], rest: str
) -> None:
    """A flag of another way of running a command (``modes``: mode -> (its flags, what it
    is)) would be ignored: an input error naming it; ``rest``: what a mode without flags of
    its own takes."""
    for other, (flags, what) in modes.items():
        for flag in flags:
            if other != mode and given[flag]:
                raise InputError(
                    f"belongs to {what}, not this run",
                    field=flag,
                    allowed=", ".join(modes[mode][0]) or rest,
                )
