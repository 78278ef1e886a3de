"""How a plan's numbers and deployments read in tables: display names, human units, short labels.

The terminal tables (:mod:`hetsim.cli.render`) and the HTML report share these, so a goodput,
a price or a deployment reads the same wherever a reviewer meets it. Values stay SI in the
results; only their text is made here. Plain pure functions: no pandas, no matplotlib.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hetsim.planner.objective import Objective
from hetsim.units import format_plain

if TYPE_CHECKING:
    from hetsim.planner.results import CandidateResult, PlanResult
    from hetsim.planner.space import Candidate, RoleChoice
    from hetsim.spec.hardware import AcceleratorProfile

__all__ = [
    "accelerator_aliases",
    "dollars_per_hour",
    "milliseconds",
    "objective_heading",
    "objective_text",
    "plain",
    "plain_numbers",
    "plan_aliases",
    "short_label",
]

MISSING = "–"


def plain(value: float | None, digits: int = 3) -> str:
    """A number in plain digits: thousands separators, never scientific notation; ``digits``
    significant digits below 10**digits, whole units above (18,070 requests per $, not
    1.807e+04)."""
    if value is None or not math.isfinite(value):
        return MISSING
    return format_plain(value, digits)


_SCIENTIFIC = re.compile(r"(?<![\w.])\d+(?:\.\d+)?e[+-]?\d+(?![\w.])")


#: a whole number of four or more digits without separators (not an id: those follow "#")
_LONG_INTEGER = re.compile(r"(?<![\w.,#-])\d{4,}(?![\w.,-])")


def plain_numbers(text: str) -> str:
    """``text`` (a verdict's reason, written once by the planner for plan.json) with every
    number in scientific notation rewritten in plain digits, and long whole numbers given
    thousands separators, as the tables print them."""
    text = _SCIENTIFIC.sub(lambda m: plain(float(m.group())), text)
    return _LONG_INTEGER.sub(lambda m: f"{int(m.group()):,}", text)


def milliseconds(seconds: float | None, digits: int = 3) -> str:
    """A latency in ms (TTFT and TPOT tables read in one unit, whatever their size)."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    return plain(seconds * 1e3, digits)


def dollars_per_hour(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:,.2f}"


def objective_heading(objective: Objective) -> str:
    """The objective's column heading. cheapest_for_rate scores minus the price (higher is
    better for every objective); its column shows the price itself, lower wins."""
    if objective is Objective.CHEAPEST_FOR_RATE:
        return "$/h (lower wins)"
    return objective.short_unit


def objective_text(objective: Objective, score: float | None, *, unit: bool = False) -> str:
    """A score as its heading reads it: plain digits, the price for cheapest_for_rate;
    ``unit`` appends the unit in prose (``18,070 requests per $``)."""
    if score is None or not math.isfinite(score):
        return MISSING
    return objective.format(score, unit)


# ---- deployments ---------------------------------------------------------------------------


def accelerator_aliases(profiles: Iterable[AcceleratorProfile]) -> dict[str, str]:
    """Each profile's name without its vendor's prefix (``nvidia-h100-sxm`` → ``h100-sxm``):
    the vendor repeats on every row and the model number is what tells deployments apart.
    Names that would then collide keep their full form."""
    aliases: dict[str, str] = {}
    for p in profiles:
        prefix = f"{p.vendor.lower()}-"
        short = p.name.removeprefix(prefix)
        aliases[p.name] = short if short else p.name
    taken: dict[str, int] = {}
    for short in aliases.values():
        taken[short] = taken.get(short, 0) + 1
    return {name: (short if taken[short] == 1 else name) for name, short in aliases.items()}


def plan_aliases(result: PlanResult) -> dict[str, str]:
    """Aliases of every accelerator a plan's candidates use."""
    profiles = {
        p.name: p
        for s in [result.scenario, *(r.candidate.scenario for r in result.results)]
        if s is not None
        for p in s.profiles.values()
    }
    return accelerator_aliases(profiles.values())


def _role(choice: RoleChoice, aliases: dict[str, str]) -> str:
    ep = f" ep{choice.ep}" if choice.ep > 1 else ""
    tp = f" tp{choice.tp}" if choice.tp > 1 or ep else ""
    return (
        f"{choice.instances}× {aliases.get(choice.accelerator, choice.accelerator)}{tp}{ep} "
        f"{choice.precision} kv {choice.kv}"
    )


def short_label(
    candidate: Candidate, aliases: dict[str, str], concurrency: int | None = None
) -> str:
    """A deployment in few words: vendor-less accelerator names, tp only when above 1, the
    wire format only when it differs from the prefill's KV format. The full label stays in
    plan.json and candidates.csv."""
    if candidate.kind == "colocated":
        text = f"colocated {_role(candidate.roles['serve'], aliases)}"
    else:
        p, d = candidate.roles["prefill"], candidate.roles["decode"]
        wire = candidate.transfer_format
        wire_text = f", wire {wire}" if wire and wire != p.kv else ""
        net = f", net {candidate.interconnect}" if candidate.interconnect else ""
        text = (
            f"P {_role(p, aliases)} → D {_role(d, aliases)} ({candidate.protocol}{wire_text}{net})"
        )
    if concurrency is not None:
        text += f" at concurrency {concurrency}"
    return text


def result_label(result: CandidateResult, aliases: dict[str, str]) -> str:
    """:func:`short_label` of a candidate's result (with its closed-loop concurrency)."""
    return short_label(result.candidate, aliases, result.concurrency)
