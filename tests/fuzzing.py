"""Mutation fuzzing of scenario files, as a user who gets a scenario wrong would.

A :class:`Mutation` is one edit of a scenario mapping at a field path (delete a key, a number
set to 0 / negative / huge / nan / inf / a string / a bool, a unit dropped or changed, a near-miss
typo, an unknown enum value, a list turned scalar, a pool duplicated or renamed, no instances).
:func:`mutants` draws a fixed, seeded set of them; :func:`run_cli` runs the ``hetsim`` app in this
process; :func:`problems` is the oracle: what the user would see that breaks the project's rule
(bad input ends as one ``error:`` naming file, field and allowed values, exit 2; never a
traceback; exit codes 0, 1 or 2 only).
"""

from __future__ import annotations

import copy
import math
import re
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

import yaml
from typer.testing import CliRunner

from hetsim.cli import app
from hetsim.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))

Key = str | int
FieldPath = tuple[Key, ...]

#: string fields whose value is one of a known set (a literal, a profile, a model, a pool, a
#: format): a wrong value must be answered with the values that are allowed
ENUM_KEYS = frozenset(
    {
        "role", "router", "kind", "shared_by", "scope", "protocol", "arrival", "dist", "format",
        "recovery", "objective", "runtime", "preemption", "kv_layout", "where", "strategy",
        "method", "precision", "weights", "activations", "kv", "transfer_format", "accelerator",
        "model", "target", "from", "to", "store_tier", "tier", "lifecycle",
    }
)  # fmt: skip
#: free text, where any string is fine
FREE_TEXT_KEYS = frozenset({"name", "description", "note", "display_name"})
_UNIT = re.compile(r"^\s*[-+]?[\d.]+(e[-+]?\d+)?\s*(x\s*[\d.]+\s*)?[A-Za-zµμ/%]+")


@dataclass(frozen=True)
class Mutation:
    op: str
    path: FieldPath
    old: Any
    new: Any

    @property
    def field(self) -> str:
        return render_path(self.path)

    def describe(self) -> str:
        return f"{self.op} at {self.field or '<top>'}: {self.old!r} -> {self.new!r}"

    @property
    def wants_allowed(self) -> bool:
        """An unknown name (enum value, key, reference) must be answered with what is allowed."""
        if self.op in ("unknown_key", "rename_pool"):
            return True
        if self.op in ("unknown_enum", "typo") and self.path:
            return self.path[-1] in ENUM_KEYS
        return self.op in ("change_unit", "drop_unit", "wrong_dimension")


def render_path(path: FieldPath) -> str:
    """``('pools', 0, 'tp')`` as the loader names it: ``pools[0].tp``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load(path: Path) -> dict[str, Any]:
    """A bundled scenario, with a trace path made absolute so a copy elsewhere still finds it."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    trace = data.get("workload", {}).get("trace")
    if isinstance(trace, dict) and "path" in trace:
        trace["path"] = str((path.parent / trace["path"]).resolve())
    return data


def walk(node: Any, path: FieldPath = ()) -> Iterator[tuple[FieldPath, Any]]:
    """Every field path below ``node`` with its value (the root excluded)."""
    items: Iterator[tuple[Key, Any]]
    if isinstance(node, dict):
        items = iter(node.items())
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        yield (*path, key), value
        yield from walk(value, (*path, key))


def get(data: Any, path: FieldPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _typo(text: str, rng: Random) -> str:
    """A near miss: one character dropped, doubled or two swapped (never the same text)."""
    if len(text) < 2:
        return text + "x"
    i = rng.randrange(len(text) - 1)
    choice = rng.choice(("drop", "double", "swap"))
    if choice == "drop":
        out = text[:i] + text[i + 1 :]
    elif choice == "double":
        out = text[: i + 1] + text[i] + text[i + 1 :]
    else:
        out = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return out if out != text else text + "x"


def _number_values(value: float) -> list[Any]:
    return [0, -1, -value if value else -3, 10**30, math.nan, math.inf, -math.inf, "many"]


def _unit_values(text: str, rng: Random) -> list[tuple[str, Any]]:
    number = text.split()[0] if " " in text else re.sub(r"[^\d.]+$", "", text)
    unit = text[len(number) :].strip()
    return [
        ("drop_unit", number),
        ("change_unit", f"{number} furlongs"),
        ("change_unit", f"{number} {_typo(unit, rng)}"),
        ("wrong_dimension", f"{number} kg"),
        ("number", f"-{number} {unit}"),
        ("number", f"0 {unit}"),
        ("number", f"nan {unit}"),
        ("number", f"inf {unit}"),
    ]


def edge_candidates(data: dict[str, Any], rng: Random) -> list[tuple[str, FieldPath, Any]]:
    """Mutants that may well be valid, at the edges a simulation meets rarely: a number set to
    1, 2, tiny or huge, a quantity scaled by 1e-9 or 1e9."""
    out: list[tuple[str, FieldPath, Any]] = []
    for path, value in walk(data):
        if isinstance(value, bool) or path[-1] == "seed":
            continue
        if isinstance(value, int):
            out += [("edge", path, v) for v in (1, 2, 10**6)]
        elif isinstance(value, float):
            out += [("edge", path, v) for v in (1e-6, 0.999, 1e6)]
        elif isinstance(value, str) and _UNIT.match(value) and " " in value:
            number, unit = value.split(" ", 1)
            out += [("edge", path, f"{number}e{k} {unit}") for k in (-9, 9)]
    return out


def _candidates(data: dict[str, Any], rng: Random) -> list[tuple[str, FieldPath, Any]]:
    """Every (op, path, new value) the operators offer on this scenario (``new`` is unused by
    ``delete_key`` and ``duplicate_pool``; for ``unknown_key`` it is the misspelt key)."""
    out: list[tuple[str, FieldPath, Any]] = []
    for path, value in walk(data):
        key = path[-1]
        if isinstance(key, str):
            out.append(("delete_key", path, None))
            out.append(("unknown_key", path, _typo(key, rng)))
        if isinstance(value, bool):
            out += [("number", path, "yes please"), ("number", path, 2)]
        elif isinstance(value, int | float):
            out += [("number", path, v) for v in _number_values(value)]
            out.append(("bool_for_number", path, True))
        elif isinstance(value, str) and key not in FREE_TEXT_KEYS:
            if _UNIT.match(value):
                out += [(op, path, v) for op, v in _unit_values(value, rng)]
            else:
                out.append(("typo", path, _typo(value, rng)))
                out.append(("unknown_enum", path, "bogus_value"))
            out.append(("number", path, 7))
        elif isinstance(value, list):
            out.append(("list_to_scalar", path, value[0] if value else "x"))
            out.append(("list_to_scalar", path, "x"))
            out.append(("empty", path, []))
        elif isinstance(value, dict):
            out.append(("dict_to_scalar", path, "x"))
            out.append(("dict_to_list", path, [value]))
            out.append(("empty", path, {}))
        if key == "instances":
            out.append(("no_instances", path, 0))
    for i, _pool in enumerate(data.get("pools", [])):
        out.append(("duplicate_pool", ("pools", i), None))
        out.append(("rename_pool", ("pools", i, "name"), "renamed_pool"))
    return out


def apply(data: dict[str, Any], op: str, path: FieldPath, new: Any) -> tuple[dict, Mutation]:
    """A mutated deep copy and the :class:`Mutation` that made it."""
    data = copy.deepcopy(data)
    parent = get(data, path[:-1])
    key = path[-1]
    old = parent[key]
    if op == "delete_key":
        del parent[key]
    elif op == "unknown_key":
        parent[new] = parent.pop(key)
    elif op == "duplicate_pool":
        parent.append(copy.deepcopy(old))
        new = "appended copy"
    else:
        parent[key] = new
    if op in ("delete_key", "duplicate_pool"):
        old = _short(old)
    return data, Mutation(op, path, old, new)


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 60 else text[:57] + "..."


def mutants(
    data: dict[str, Any],
    count: int,
    rng: Random,
    only: Callable[[FieldPath], bool] | None = None,
    edges: bool = False,
) -> list[tuple[dict[str, Any], Mutation]]:
    """``count`` distinct mutants of ``data``, drawn by ``rng`` (so fixed by its seed); with
    ``edges``, from :func:`edge_candidates`, else from every operator."""
    offered = edge_candidates(data, rng) if edges else _candidates(data, rng)
    by_op: dict[str, list[tuple[str, FieldPath, Any]]] = {}
    for candidate in offered:
        _, path, new = candidate
        old = get(data, path)
        if (only is None or only(path)) and (type(new), new) != (type(old), old):  # no no-ops
            by_op.setdefault(candidate[0], []).append(candidate)
    picked = []
    # an operator first, then where: numbers offer many more candidates than pools do, and a
    # draw over candidates alone would hardly ever duplicate or rename a pool
    while by_op and len(picked) < count:
        op = rng.choice(sorted(by_op))
        group = by_op[op]
        picked.append(group.pop(rng.randrange(len(group))))
        if not group:
            del by_op[op]
    return [apply(data, *c) for c in picked]


def write(data: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# --- running and judging -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    output: str
    error: InputError | None
    crash: str | None  # the traceback of an exception that escaped, if any


class Hang(Exception):
    """A run that took longer than any few-request run should: a loop that never ends."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(args: list[str], limit_s: float = 15.0) -> Outcome:
    """``hetsim ARGS`` in this process, ending as ``hetsim.cli.main`` ends it.

    ``main`` turns an :class:`InputError` into ``error: <message>`` and its exit code; the
    runner hands the exception back instead, which lets the oracle read its parts.
    """
    with time_limit(limit_s):
        result = CliRunner().invoke(app, args)
    exc = result.exception
    if isinstance(exc, InputError):
        return Outcome(exc.exit_code, f"error: {exc.render()}", exc, None)
    if exc is not None and not isinstance(exc, SystemExit):
        return Outcome(result.exit_code, result.output, None, _crash(exc))
    return Outcome(result.exit_code, result.output, None, None)


def _crash(exc: BaseException) -> str:
    """Where in hetsim it broke: its innermost frames (not simpy's re-raise) and the error."""
    while exc.__cause__ is not None:  # simpy re-raises a process's exception from the original
        exc = exc.__cause__
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/hetsim/" in f.filename]
    where = "".join(traceback.format_list(frames[-3:]))
    return f"{where}{''.join(traceback.format_exception_only(exc))}"


_ALLOWED = re.compile(r"allowed|accepted|one of|expected", re.IGNORECASE)


def problems(outcome: Outcome, mutation: Mutation, scenario: Path) -> list[str]:
    """What breaks the rule for bad input in this run; empty when the run is fine."""
    if outcome.crash is not None:
        hang = f"{Hang.__name__}: still running" in outcome.crash
        return ["no answer: still running at the watchdog" if hang else "an exception escaped"]
    found = []
    if mutation.op == "bool_for_number" and outcome.code == 0:
        found.append("`true` was taken as a number (YAML's true is never a count or a share)")
    if outcome.code not in (0, 1, 2):
        found.append(f"exit code {outcome.code}")
    if "Traceback" in outcome.output:
        found.append("a traceback in the output")
    exc = outcome.error
    if exc is None:
        return found
    if not (exc.file or "") or Path(exc.file).name not in outcome.output:
        found.append("the message names no file")
    elif Path(exc.file).resolve() == scenario.resolve() and not _names_fields(exc):
        found.append("the message names the scenario but no field path")
    if mutation.wants_allowed and not (exc.allowed or _ALLOWED.search(exc.message)):
        found.append("the message names no allowed values")
    return found


_LISTED = re.compile(r"^\s*(\d+)\. [\w.\[\]-]+: ", re.MULTILINE)


def _names_fields(exc: InputError) -> bool:
    """A field path, or, for several problems found together, one at the head of each."""
    if exc.field:
        return True
    heads = re.match(r"(\d+) problems:\n", exc.message)
    return heads is not None and len(_LISTED.findall(exc.message)) == int(heads[1])


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def report(mutation: Mutation, scenario: Path, args: list[str], outcome: Outcome, found: list[str]):
    """One readable paragraph per bad run: the mutation, the command, what went wrong."""
    shown = outcome.crash if outcome.crash is not None else _tail(outcome.output, 6)
    return (
        f"{scenario.name}: {mutation.describe()}\n"
        f"  hetsim {' '.join(args)}  -> exit {outcome.code}\n"
        f"  problems: {'; '.join(found)}\n"
        f"  output:\n{shown}"
    )
