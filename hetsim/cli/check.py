"""``hetsim check``: validate a scenario and show what it implies."""

from __future__ import annotations

from hetsim.cli import render
from hetsim.cli.options import JsonOption, ScenarioArgument, SetOption, load


def check(scenario: ScenarioArgument, set_: SetOption = None, as_json: JsonOption = False) -> None:
    """Validate a scenario and show what it implies: weights and KV capacity per device,
    KV bytes per token per role, transfer paths, cost.

    Example: [bold]hetsim check scenarios/qwen3-32b-6p2d.yaml --set pools.decode.tp=2[/]
    """
    from hetsim.report.describe import describe

    info = describe(load(scenario, set_))
    if as_json:
        render.print_json(info)
        return
    render.check(info)
