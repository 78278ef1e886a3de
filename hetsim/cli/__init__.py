"""The ``hetsim`` command line: parse, call the public Python API, render.

One module per command group; :mod:`hetsim.cli.render` prints every table. Heavy imports
(simpy, pandas, the planner) happen inside the commands, so ``hetsim --help`` stays quick.
Bad input of any kind ends as one message on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from hetsim.cli import calibrate, catalog, check, plan, render, simulate, validate
from hetsim.cli.bench import bench_app
from hetsim.cli.trace import trace_app
from hetsim.errors import InputError

__all__ = ["app", "main"]

app = typer.Typer(
    name="hetsim",
    help="Simulate and plan heterogeneous prefill/decode LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(trace_app, name="trace")
app.add_typer(bench_app, name="bench")
# registration order is the order of `hetsim --help`
app.command()(check.check)
app.command()(catalog.profiles)
app.command()(catalog.models)
app.command()(catalog.schema)
app.command()(simulate.simulate)
app.command()(plan.plan)
app.command()(calibrate.calibrate)
app.command()(validate.validate)


def main() -> None:
    """Console entry point: user-input errors become one message and exit code 2.

    Typer runs in standalone mode, so usage errors (a missing argument, an unknown option) are
    printed by Typer itself with exit code 2, whichever click Typer bundles.
    """
    try:
        app()
    except InputError as exc:
        render.error(exc.render())
        sys.exit(exc.exit_code)
