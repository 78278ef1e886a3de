"""How the server that measured a silicon-sample row was launched: the scheduler settings its
benchmark recipe documents, where hetsim models them.

A row's TTFT depends on the server's scheduler as much as on its kernels. InferenceX
(SemiAnalysis, Apache-2.0) launches each runtime from a per-model shell script under
``benchmarks/``, and some of those scripts set scheduler options whose effect on TTFT is large:
TensorRT-LLM's batch waiting (prompts held for up to N decode steps), SGLang's
``--scheduler-recv-interval`` (arrivals taken in every N decode steps), a step token budget other
than the runtime's default. Posing those rows with the runtimes' defaults would be posing a
different server. The settings and where each comes from are data
(``inferencex_launches.yaml``: the script, the commit, the line); a rule applies to a row when
the row's runtime, model, system, lengths, concurrency and tensor parallelism match and every
day the row was measured on lies in the rule's dates (the scripts changed over time). A row
measured on days under different settings is left at the defaults and says so.

Nothing here is read from the measured values: the rules come from the launch scripts alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from hetsim.validation.protocols import INFERENCEX, protocol_of
from hetsim.validation.silicon import SiliconRow

__all__ = ["Launch", "LaunchRule", "launch_of", "launch_rules", "DEFAULTS", "AMBIGUOUS"]

RULES_FILE = Path(__file__).with_name("inferencex_launches.yaml")
#: the label of a row posed with the runtime's defaults
DEFAULTS = "runtime defaults"
#: the label of a row whose measurement days fall under different launch settings
AMBIGUOUS = "runtime defaults (measured on days under different launch settings)"


@dataclass(frozen=True, slots=True)
class LaunchRule:
    """One documented launch setting group and the rows it applies to (None: any)."""

    runtime: str
    models: tuple[str, ...]
    settings: tuple[tuple[str, Any], ...]  # pool settings it sets (batching, precision nested)
    source: str  # script@commit: the line that sets it
    systems: tuple[str, ...] | None = None
    precision: str | None = None  # the row's precision column (fp8, fp4, ...)
    isl: int | None = None
    osl: int | None = None
    min_concurrency: int = 1
    max_concurrency: int | None = None
    tp: int | None = None  # the engine's tensor parallelism (the row's tp column)
    ep: int | None = None  # its expert parallelism (moe_ep)
    dp_attention: bool | None = None  # whether it runs attention data-parallel (dp > 1)
    since: dt.date | None = None
    until: dt.date | None = None  # inclusive

    def matches_engine(self, row: SiliconRow) -> bool:
        """Whether the row's server is one this rule's script launches (dates aside)."""
        engine, clients = row.agg, row.concurrency or 0
        return (
            engine is not None
            and row.runtime.value == self.runtime
            and row.model in self.models
            and (self.systems is None or row.system in self.systems)
            and (self.precision is None or row.precision == self.precision)
            and (self.isl is None or row.isl == self.isl)
            and (self.osl is None or row.osl == self.osl)
            and self.min_concurrency <= clients
            and (self.max_concurrency is None or clients <= self.max_concurrency)
            and (self.tp is None or engine.tp == self.tp)
            and (self.ep is None or engine.moe_ep == self.ep)
            and (self.dp_attention is None or (engine.dp > 1) == self.dp_attention)
        )

    def in_force(self, day: dt.date) -> bool:
        return (self.since is None or self.since <= day) and (
            self.until is None or day <= self.until
        )


@dataclass(frozen=True, slots=True)
class Launch:
    """The pool settings a row's server ran with beyond the runtime's defaults (``batching``
    and ``precision`` hold only the keys set), and their provenance (``DEFAULTS`` or
    ``AMBIGUOUS`` with no settings)."""

    settings: dict[str, Any]
    label: str

    def apply(self, pool: dict[str, Any]) -> None:
        """Set them on a posed pool dict."""
        for key, value in self.settings.items():
            if isinstance(value, dict):
                pool[key] = {**pool.get(key, {}), **value}
            else:
                pool[key] = value


def launch_of(row: SiliconRow, rules: tuple[LaunchRule, ...] | None = None) -> Launch:
    """The documented launch settings of an aggregated InferenceX row under ``rules`` (the
    bundled ones by default); disaggregated rows are launched through other recipes, not read
    here."""
    if row.agg is None or protocol_of(row) is not INFERENCEX:
        return Launch({}, DEFAULTS)
    rules = [r for r in (launch_rules() if rules is None else rules) if r.matches_engine(row)]
    days = [dt.date.fromisoformat(d) for d in row.measured_on]
    if not rules or not days:
        return Launch({}, DEFAULTS)
    per_day = {tuple(i for i, r in enumerate(rules) if r.in_force(day)) for day in days}
    if len(per_day) > 1:
        return Launch({}, AMBIGUOUS)
    applied = [rules[i] for i in per_day.pop()]
    if not applied:
        return Launch({}, DEFAULTS)
    settings: dict[str, Any] = {}
    for rule in applied:
        for key, value in rule.settings:
            settings[key] = {**settings.get(key, {}), **value} if isinstance(value, dict) else value
    return Launch(settings, "; ".join(r.source for r in applied))


@cache
def launch_rules(path: Path = RULES_FILE) -> tuple[LaunchRule, ...]:
    """The rules of a launch-settings file (the bundled InferenceX one by default)."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return tuple(_rule(entry) for entry in entries)


def _rule(entry: dict[str, Any]) -> LaunchRule:
    systems = entry.get("systems")
    since, until = entry.get("measured", [None, None])
    return LaunchRule(
        runtime=entry["runtime"],
        models=tuple(entry["models"]),
        settings=tuple(entry["settings"].items()),
        source=entry["source"],
        systems=tuple(systems) if systems is not None else None,
        precision=entry.get("precision"),
        isl=entry.get("isl"),
        osl=entry.get("osl"),
        min_concurrency=entry.get("min_concurrency", 1),
        max_concurrency=entry.get("max_concurrency"),
        tp=entry.get("tp"),
        ep=entry.get("ep"),
        dp_attention=entry.get("dp_attention"),
        since=_day(since),
        until=_day(until),
    )


def _day(value: object) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value  # type: ignore[return-value]
    return dt.date.fromisoformat(str(value))
