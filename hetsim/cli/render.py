"""What the CLI prints: rich tables, progress bars and the number formats, in one place.

Every renderer takes a result of the public API and only formats it; quantities with units go
through :mod:`hetsim.units`, so a time or a size reads the same in every table.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hetsim import units

if TYPE_CHECKING:
    from hetsim import AcceleratorProfile, CandidateResult, ModelConfig, PlanResult, RunSummary
    from hetsim.lifecycles import LifecycleComparison, LifecycleOutcome
    from hetsim.perf.calibration import CalibrationTable


# Piped output (files, CI logs, notebooks) gets a wide page instead of rich's 80 columns; a
# terminal gets its own width and the tables below fit it.
console = Console(width=None if sys.stdout.isatty() else 180)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 180)


def duration(seconds: float | None, digits: int = 3, missing: str = "—") -> str:
    """Every time the CLI prints, in the unit that suits it (``missing`` when there is none)."""
    return missing if seconds is None else units.format_time(seconds, digits)


def size(nbytes: float) -> str:
    """Every memory size the CLI prints, in binary units (KiB, MiB, GiB)."""
    return units.format_bytes(nbytes, digits=3, binary=True)


def number(x: float | None, digits: int = 4) -> str:
    """A plain count or measure: integers in full with separators, others to ``digits``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:,.0f}"
    return f"{x:,.{digits}g}"


#: under this many columns a table drops its cell borders and keeps only the heading rule
NARROW = 120


def table(title: str, columns: Sequence[str], right: Sequence[str] = ()) -> Table:
    """A table titled on the left; columns in ``right`` hold numbers and align right.

    Fitted to the terminal: a cell that does not fit folds onto the next line instead of
    ending in "…" (an accelerator's name cut to ``nvidia-h1…`` names no accelerator), and
    under :data:`NARROW` columns the borders give their room to the cells."""
    narrow = console.width < NARROW
    t = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAVY if narrow else box.HEAVY_HEAD,
        padding=(0, 1, 0, 0) if narrow else (0, 1),
        pad_edge=not narrow,
    )
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left", overflow="fold")
    return t


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def wrote(paths: Sequence[Path], out: Path | None, names: bool = False) -> None:
    """A dim line under the tables: how many files (or which) went to ``out``."""
    if paths:
        what = ", ".join(_under(p, out) for p in paths) if names else f"{len(paths)} files"
        console.print(f"[dim]wrote {what} to {out}/[/]")


def _under(path: Path, out: Path | None) -> str:
    """``path`` as the user finds it in ``out`` (``launch/vllm.sh``, not ``vllm.sh``)."""
    if out is not None and Path(out) in path.parents:
        return path.relative_to(out).as_posix()
    return path.name


def error(message: str) -> None:
    # escape: messages quote user text, and "[x]" or "[/b]" in it is not rich markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


# --- progress -------------------------------------------------------------------------------


@contextmanager
def simulation_progress(scenario: str) -> Iterator[Callable[[int, int], None]]:
    """A bar of requests ended out of the workload; yields ``report(done, total)``."""
    with count_progress("simulate", scenario, "requests") as report:
        yield report


@contextmanager
def count_progress(verb: str, name: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A bar of ``unit`` done out of a total; yields ``report(done, total)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"[bold]{verb}[/] {escape(name)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report


@contextmanager
def plan_progress(scenario: str) -> Iterator[Callable[[dict[str, int]], None]]:
    """A bar of candidates decided; yields ``report(counts)`` with the planner's counts."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"[bold]plan[/] {scenario}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None, counts="enumerating")

        def report(c: dict[str, int]) -> None:
            text = (
                f"{c['total']} candidates: {c['screened']} screened out, {c['beaten']} beaten "
                f"unsimulated, {c['simulated']} simulated ({c['simulations']} runs), "
                f"{c['remaining']} remaining"
            )
            bar.update(task, completed=c["total"] - c["remaining"], total=c["total"], counts=text)

        yield report


@contextmanager
def calibration_progress() -> Iterator[Callable[[int, int, str], None]]:
    """A bar of microkernels timed; yields ``report(done, total, label)``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]calibrate[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("", total=None)

        def report(done: int, total: int, label: str) -> None:
            progress.update(task, completed=done, total=total, description=label)

        yield report


# --- hetsim check ---------------------------------------------------------------------------


def check(info: dict[str, Any]) -> None:
    """``check``: the scenario's pools, transfer paths, KV portability, SLA and cost."""
    m = info["model"]
    console.print(
        f"[bold green]✓[/] {escape(info['file'] or info['scenario'])} is valid — scenario "
        f"[bold]{escape(info['scenario'])}[/]"
    )
    console.print(
        f"model [bold]{escape(m['name'])}[/] ({m['architecture']}): "
        f"{m['params_total'] / 1e9:.1f}B parameters, {m['params_active'] / 1e9:.1f}B active"
    )
    console.print(_pools_table(info["pools"]))
    if info.get("routing"):
        console.print(_routing_table(info["routing"]))
    if info["paths"]:
        console.print(_paths_table(info["paths"]))
        console.print(_hops_table(info["paths"]))
    if info.get("portability"):
        _portability(info)
    sla = info["sla"]
    console.print(
        f"lifecycle [bold]{info['lifecycle']}[/]; SLA: TTFT ≤ {duration(sla['ttft'], 4)}, "
        f"TPOT ≤ {duration(sla['tpot'], 4)} at p{sla['percentile']:g}, "
        f"attainment ≥ {sla['attainment']:.0%}"
    )
    console.print(
        f"{info['devices']} devices, [bold]{units.format_price_per_hour(info['cost_per_hour'])}[/]"
    )
    for note in _check_notes(info["pools"], info["paths"]):
        console.print(f"[dim]{note}[/]")


def _pools_table(pools: list[dict[str, Any]]) -> Table:
    """One row per pool; under 160 columns one column per pool instead (a dozen measures side
    by side need about 150 columns, a few pools fit 80)."""
    rows = []
    for p in pools:
        mem, prec = p["memory"], p["precision"]
        rows.append(
            {
                "pool": p["name"],
                "role": p["role"],
                "accelerator": p["accelerator"],
                "inst × dev": f"{p['instances']} × {p['devices_per_instance']}",
                "tp/dp/ep": f"{p['tp']}/{p['dp']}/{p['ep']}",
                "precision W/A/KV": f"{prec['weights']}{_scaled(p)}/{prec['activations']}/"
                f"{prec['kv']}",
                "weights": size(mem["weights_per_device"]),
                "activations*": size(mem["activations_per_device"]),
                "KV room": size(mem["kv_room_per_device"]),
                "KV B/token": f"{mem['kv_bytes_per_token_per_device']:,.0f}",
                "KV tokens/inst": f"{mem['kv_capacity_tokens']:,}",
                "$/h": units.format_price_per_hour(p["cost_per_hour"])
                + ("†" if p["price_is_assumption"] else ""),
            }
        )
    title = "Pools (per device unless stated)"
    if console.width < 160 and rows:
        t = table(title, ["", *(r["pool"] for r in rows)], right=[r["pool"] for r in rows])
        for measure in list(rows[0])[1:]:
            t.add_row(measure, *(r[measure] for r in rows))
        return t
    columns = list(rows[0]) if rows else ["pool"]
    t = table(title, columns, right=columns[3:5] + columns[6:])
    for r in rows:
        t.add_row(*r.values())
    return t


def _routing_table(roles: list[dict[str, Any]]) -> Table:
    """One router per role across its pools; its rules in order (first match wins)."""
    columns = ("role", "policy", "set by", "prompt tokens", "to pools")
    t = table("Routing (one router per role; first matching rule wins)", columns)
    for r in roles:
        params = ", ".join(f"{k} {v:g}" for k, v in r["parameters"].items())
        policy = r["policy"] + (f" ({params})" if params else "")
        for k, rule in enumerate(r["rules"]):
            t.add_row(
                r["role"] if k == 0 else "",
                policy if k == 0 else "",
                r["set_by"] if k == 0 else "",
                rule["when"] or "any",
                ", ".join(rule["to"]),
            )
    return t


def _paths_table(paths: list[dict[str, Any]]) -> Table:
    """Per path: the bytes all decode ranks read per token (net) beside one copy's (KV), and
    a lone 8K-token transfer."""
    columns = ("from → to", "format", "bottleneck", "latency", "net B/token", "KV B/token",
               "8K alone")  # fmt: skip
    t = table("KV transfer paths", columns, right=columns[2:])
    for p in paths:
        t.add_row(
            f"{p['from']} → {p['to']}",
            p["transfer_format"],
            units.format_bandwidth(p["bottleneck_bandwidth"], 3),
            duration(p["latency"]),
            f"{p['kv_bytes_per_token']:,.0f}",
            f"{p['kv_bytes_per_token_one_copy']:,.0f}",
            duration(p["lone_8k_token_transfer_s"]),
        )
    return t


def _hops_table(paths: list[dict[str, Any]]) -> Table:
    """Per hop: the nominal bandwidth, the efficiency the simulator applies and where it comes
    from, and the effective bandwidth it runs at."""
    columns = ("from → to", "hop", "nominal", "efficiency", "source", "effective", "latency")
    t = table("KV transfer hops", columns, right=columns[2:4] + columns[5:])
    for p in paths:
        for i, h in enumerate(p["hop_plans"]):
            t.add_row(
                f"{p['from']} → {p['to']}" if i == 0 else "",
                h["name"],
                units.format_bandwidth(h["bandwidth"], 3),
                f"{h['efficiency']:g}",
                _EFFICIENCY_SOURCE.get(h["efficiency_source"], h["efficiency_source"]),
                units.format_bandwidth(h["effective_bandwidth"], 3),
                duration(h["latency"]),
            )
    return t


# the table says where an efficiency comes from in a word; the note below it says what that means
_EFFICIENCY_SOURCE = {"hop": "hop", "source profile efficiency.network": "profile‡"}


_VERDICT_COLOUR = {"identical": "green", "convertible": "yellow", "incompatible": "red"}


def _portability(info: dict[str, Any]) -> None:
    """The KV portability verdict of every prefill → decode pair, then its notes."""
    k = info["portability"][0]["example_tokens"] // 1024
    columns = ("from → to", "verdict", "conversion", "where", "device", "read+write B/token",
               f"{k}K tokens")  # fmt: skip
    t = table(
        f"KV portability (conversions priced for a prompt of {k}K tokens)",
        columns,
        right=columns[-2:],
    )
    lines = []
    for v in info["portability"]:
        pair = f"{v['from']} → {v['to']}"
        verdict = f"[{_VERDICT_COLOUR[v['verdict']]}]{v['verdict']}[/]"
        for i, row in enumerate(_conversion_rows(v)):
            t.add_row(pair if i == 0 else "", verdict if i == 0 else "", *row)
        if v["transfers_per_request"] is not None:
            lines.append(
                f"{escape(pair)}: {v['transfers_per_request']} transfer(s) per request of "
                f"{v['bytes_per_transfer_per_token']:,.0f} B/token in {v['wire_format']} — "
                f"{escape(v['transfer_note'])}"
            )
        lines += [f"[yellow]{escape(pair)}: {escape(w)}[/]" for w in v["warnings"]]
        lines += [f"{escape(pair)}: {escape(n)}" for n in v["notes"]]
    console.print(t)
    for line in lines:
        console.print(line, highlight=False)
    for label in info.get("unused_conversions", []):
        console.print(f"[yellow]kv.conversions entry not needed by any pair: {escape(label)}[/]")


def _conversion_rows(verdict: dict[str, Any]) -> list[tuple[str, ...]]:
    if verdict["verdict"] == "incompatible":
        return [(escape(f"{m['field']}: {m['producer']} ≠ {m['consumer']}"), "", "", "", "")
                for m in verdict["mismatches"]]  # fmt: skip
    if not verdict["conversions"]:
        return [("none: the bytes are usable as they are", "", "", "", "")]
    return [
        (
            f"{c['kind']} {c['from']} → {c['to']}"
            + (" (implicit)" if c["origin"] == "implicit" else ""),
            c["where"],
            c["device"] or "",
            f"{c['bytes_read_per_token'] + c['bytes_written_per_token']:,.0f}",
            duration(c["seconds"] or None),
        )
        for c in verdict["conversions"]
    ]


def _scaled(pool: dict[str, Any]) -> str:
    """How fp8 weights are scaled, after their format, where not the default block scales."""
    # the CLI reads the described pool, not spec internals (hetsim.spec.precision owns the rule)
    scaling = pool.get("fp8_scaling")
    return f" ({scaling})" if scaling not in (None, "block") else ""


def _check_notes(pools: list[dict[str, Any]], paths: list[dict[str, Any]]) -> list[str]:
    notes = ["* activations: estimated peak workspace of one step (assumption, not measured)"]
    if any(p["price_is_assumption"] for p in pools):
        notes.append("† price from the hardware profile: an assumption (set costs.prices)")
    if any(_EFFICIENCY_SOURCE.get(h["efficiency_source"]) == "profile‡"
           for p in paths for h in p["hop_plans"]):  # fmt: skip
        notes.append(
            "‡ hop efficiency from the source pool profile's efficiency.network: an assumption "
            "(set the hop's efficiency)"
        )
    for p in pools:
        if p["uncertain_figures"]:
            notes.append(
                f"{p['accelerator']}: not from a vendor datasheet: "
                + ", ".join(p["uncertain_figures"])
            )
        notes.append(f"{p['name']}: step-time provenance {p['provenance']}")
        if p["memory"].get("kv_rule"):
            notes.append(f"{p['name']}: KV pool: {p['memory']['kv_rule']}")
        if p.get("mixed_chunk") is False:
            notes.append(
                f"{p['name']}: prompt-only steps, the decodes waiting them out (SGLang's "
                "scheduling; batching.mixed_chunk: true mixes them)"
            )
    return list(dict.fromkeys(notes))


# --- hetsim profiles / models ---------------------------------------------------------------


def profiles(rows: Sequence[AcceleratorProfile]) -> None:
    """``profiles``: units in the headings and bare figures in the cells, so the table fits a
    terminal; below 140 columns the wide, rarely compared columns (vendor, scale-up, formats,
    figures not from a datasheet) give way and a note says where to find them."""
    from hetsim.report.display import plain

    wide = console.width >= 140
    # under 100 columns the cell borders are what does not fit: keep only the heading rule
    narrow = console.width < 100
    t = Table(title="Accelerator profiles (dense peaks)", title_justify="left",
              box=box.SIMPLE_HEAVY if narrow else box.HEAVY_HEAD,
              padding=(0, 1, 0, 0) if narrow else (0, 1), pad_edge=not narrow)  # fmt: skip
    t.add_column("name", overflow="fold", min_width=10)
    if wide:
        t.add_column("vendor")
    numbers = ["memory\nGiB", "mem BW\nTB/s", "bf16\nTFLOPS", "fp8\nTFLOPS", "int8\nTFLOPS",
               "fp4\nTFLOPS", "tdp\nW", "$/h†\nbasis"]  # fmt: skip
    if wide:
        numbers[6:6] = ["scale-up\nGB/s /dir"]
    for heading in numbers:
        t.add_column(heading, justify="right", no_wrap=True)
    if wide:
        t.add_column("formats W | A | KV", overflow="fold")
        t.add_column("not\ndatasheet", justify="right")
    for p in rows:
        peaks = [
            plain(p.compute[key].value / 1e12) if key in p.compute else "—"
            for key in ("bf16", "fp8", "int8", "fp4")
        ]
        cells = [p.name, plain(p.memory_bytes / 2**30), plain(p.memory_bandwidth / 1e12), *peaks,
                 plain(p.tdp.value), f"{p.price:,.2f}\n{p.basis or ''}".strip()]  # fmt: skip
        if wide:
            scale_up = plain(p.scale_up.bandwidth.value / 1e9) if p.scale_up else "—"
            cells[1:1] = [p.vendor]
            cells[8:8] = [scale_up]
            cells += [
                f"{','.join(p.formats.weights)} | {','.join(p.formats.activations)} | "
                f"{','.join(p.formats.kv)}",
                str(len(p.uncertain_figures())),
            ]
        t.add_row(*cells)
    console.print(t)
    console.print(
        "[dim]† prices are assumptions; see each profile's note and sources. rental: what a "
        "provider charges; tco: owning the device, no margin (a scenario converts to its "
        "costs.basis)[/]"
    )
    if not wide:
        console.print(
            "[dim]vendor, scale-up bandwidth, supported formats and the figures not from a "
            "datasheet: at 140 columns or more, or with --json[/]"
        )


def models(loaded: Sequence[ModelConfig]) -> None:
    """``models``: units in the headings, figures in the cells; under 140 columns the
    architecture and the int8/int4 KV sizes give way (a note says where they are)."""
    from hetsim.report.display import plain

    wide = console.width >= 140
    kv_formats = ("bf16", "fp8_e4m3", "int8", "int4") if wide else ("bf16", "fp8_e4m3")
    columns = ["name", "layers", "params\nB", "active\nB", "bf16\nweights GiB"]
    columns += [f"KV {f.split('_')[0]}\nB/token" for f in kv_formats] + ["max\nctx"]
    if wide:
        columns.insert(1, "architecture")
    t = table("Models (KV bytes per token, all layers)", columns, right=columns[2 if wide else 1 :])
    for m in loaded:
        cells = [
            m.name,
            str(m.num_layers),
            plain(m.params_total / 1e9, 4),
            plain(m.params_active / 1e9, 4),
            plain(m.weight_bytes("bf16") / 2**30, 3),
            *(f"{m.kv_bytes_per_token(f):,.0f}" for f in kv_formats),
            f"{m.max_context:,}",
        ]
        if wide:
            cells.insert(1, m.description)
        t.add_row(*cells)
    console.print(t)
    console.print(
        "[dim]fp8 KV: per-tensor scale; int8/int4 KV: fp16 scale + zero point per token and head "
        "(MLA: per latent vector). Weights exclude MTP layers.[/]"
    )
    if not wide:
        console.print("[dim]architecture and int8/int4 KV: at 140 columns or more, or --json[/]")


# --- hetsim simulate ------------------------------------------------------------------------


def note(message: str) -> None:
    """A remark on stderr that is not an error (the run went on)."""
    err_console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def simulation_summary(s: RunSummary) -> None:
    """``simulate``: what the requests experienced, per pool utilisation, cost."""
    console.print(
        f"[bold]{escape(s.scenario)}[/]: {s.requests:,} requests, {s.completed:,} "
        f"completed, {s.failed:,} failed; {s.simulated_s:.1f} s simulated in "
        f"{s.wall_s:.2f} s ({s.events:,} events)"
    )
    for reason, count in s.failure_reasons.items():
        console.print(f"  [red]failed[/] {count:,}: {escape(reason)}")
    for reason, count in s.dropped_rows.items():
        console.print(f"  [yellow]trace rows dropped[/] {count:,}: {escape(reason)}")
    console.print(_latency_table(s))
    verdict = "[green]met[/]" if s.sla_met else "[red]missed[/]"
    console.print(
        f"attainment {s.attainment:.1%} (target {s.sla.attainment_target:.0%}): SLA {verdict}"
        f"; throughput {s.throughput_tokens_per_s:,.0f} output tokens/s; "
        f"prefix-cached {s.prefix_cached_share:.0%} of prompt tokens; "
        f"{s.preemptions:,} preemptions; KV blocks leaked {s.kv_blocks_leaked}"
    )
    if s.acceptance_length is not None:
        console.print(
            f"speculative decoding: {s.acceptance_length:.2f} tokens accepted per step "
            "(1 + accepted drafts, as vLLM and SGLang report it)"
        )
    console.print(_utilisation_table(s))
    _prefix_tiers(s)
    cost = s.cost_per_million_tokens
    console.print(
        f"cost {units.format_price_per_hour(s.cost_per_hour)} (assumed prices), "
        + (f"${cost:,.2f} per million output tokens" if cost is not None else "no tokens")
        + _energy(s)
    )
    price_basis(s.price_basis)


def _energy(s: RunSummary) -> str:
    e = s.energy
    if e is None or e.tokens_per_joule is None:
        return ""
    return (
        f"; energy {e.energy_j / 3.6e6:,.3g} kWh at a mean {units.format_power(e.power_w)} "
        f"(board power, busy-weighted, idle at {e.idle_power:.0%} of tdp): "
        f"{e.tokens_per_joule:.3g} output tokens/J{e.measured_power_note()}"
    )


def price_basis(line: str) -> None:
    """The basis every price is on and the conversions applied (``plan``, ``simulate``)."""
    if line:
        console.print(f"[dim]{escape(line)}[/]")


def _latency_table(s: RunSummary) -> Table:
    t = table("Latency", ("metric", "mean", "p50", "p90", "p99", "SLA"),
              right=("mean", "p50", "p90", "p99", "SLA"))  # fmt: skip
    for p, label, bound in (
        (s.ttft_s, "TTFT", s.sla.ttft_s),
        (s.tpot_s, "TPOT", s.sla.tpot_s),
        (s.e2e_s, "E2E", None),
    ):
        t.add_row(
            label,
            *(duration(q) for q in (p.mean, p.p50, p.p90, p.p99)),
            duration(bound) if bound else "",
        )
    return t


def _prefix_tiers(s: RunSummary) -> None:
    """Where the reusable prompt tokens went, and what each KV tier held, served and moved."""
    r = s.prefix_reuse
    if r is not None and r.reusable_tokens:
        share = lambda n: f"{n / max(r.prompt_tokens, 1):.1%}"  # noqa: E731
        console.print(
            f"prefix reuse: {share(r.reusable_tokens)} of prompt tokens reusable (computed "
            f"before); hit {share(r.hit_tokens)} ({share(r.loaded_tokens)} loaded from below "
            f"HBM), lost to eviction {share(r.lost_to_eviction_tokens)}, lost to routing "
            f"{share(r.lost_to_routing_tokens)}"
        )
    if not s.kv_tiers:
        return
    columns = ("tier", "stores", "capacity", "peak", "mean", "hit tokens", "hit share",
               "loaded", "written", "evictions")  # fmt: skip
    t = table("KV tiers (prefix cache; whole run, warm-up included)", columns, right=columns[1:])
    for f in s.kv_tiers:
        t.add_row(
            f.tier,
            str(f.stores),
            units.format_bytes(f.capacity_bytes, 3, binary=True),
            f"{f.peak_occupancy:.0%}",
            f"{f.mean_occupancy:.0%}",
            f"{f.hit_tokens:,}",
            f"{f.hit_share:.1%}",
            units.format_bytes(f.load_bytes, 3),
            units.format_bytes(f.write_bytes, 3),
            f"{f.evictions:,}",
        )
    console.print(t)


def _utilisation_table(s: RunSummary) -> Table:
    columns = ("pool", "instances", "busy", "peak KV", "held block·s", "reserved block·s",
               "provenance")  # fmt: skip
    t = table("Pools", columns, right=columns[1:-1])
    for name, u in s.utilisation.items():
        t.add_row(
            name,
            str(u.instances),
            f"{u.busy:.0%}",
            f"{u.peak_kv:.0%}",
            f"{u.held_block_s:,.0f}",
            f"{u.reserved_block_s:,.0f}",
            s.provenance.get(name, ""),
        )
    return t


def lifecycles(comparison: LifecycleComparison) -> None:
    """``simulate --compare-lifecycles``: one column per protocol."""
    rows: list[tuple[str, Callable[[LifecycleOutcome], str]]] = [
        ("completed / failed", lambda o: f"{o.completed:,} / {o.failed:,}"),
        ("TTFT p50 / p90", lambda o: f"{duration(o.ttft_p50_s)} / {duration(o.ttft_p90_s)}"),
        ("TPOT p90", lambda o: duration(o.tpot_p90_s)),
        ("attainment", lambda o: f"{o.attainment:.1%}"),
    ]
    for name in comparison.pools:
        rows += [
            (f"peak KV {name}", lambda o, n=name: f"{o.pool(n).peak_kv:.0%}"),
            (
                f"held / reserved block·s {name}",
                lambda o, n=name: (
                    f"{o.pool(n).held_block_s:,.0f} / {o.pool(n).reserved_block_s:,.0f}"
                ),
            ),
        ]
    rows += [
        ("double residency block·s", lambda o: f"{o.double_residency_block_s:,.0f}"),
        ("recomputed tokens", lambda o: f"{o.recomputed_tokens:,}"),
        ("store evictions before fetch", lambda o: f"{o.evicted_before_fetch:,}"),
        ("retries", lambda o: f"{o.retries:,}"),
        ("lease expiries", lambda o: f"{o.lease_expiries:,}"),
        ("silent corruptions", lambda o: f"{o.silent_corruptions:,}"),
    ]
    protocols = [o.protocol for o in comparison.outcomes]
    t = table(f"KV lifecycle protocols on {comparison.scenario}", ["", *protocols], protocols)
    for label, fmt in rows:
        t.add_row(label, *(fmt(o) for o in comparison.outcomes))
    console.print(t)
    for o in comparison.outcomes:
        for fault in o.skipped_faults:
            console.print(f"[yellow]faults:[/] {o.protocol} ran without {escape(fault)}")


# --- hetsim plan ----------------------------------------------------------------------------


def plan(result: PlanResult, top: int) -> None:
    """``plan``: the search in numbers, then the recommendation beside its runners-up."""
    spec = result.scenario.spec
    sla = spec.sla
    counts = result.counts()
    console.print(
        f"[bold]{escape(spec.name)}[/]: {spec.model}; SLA TTFT ≤ {sla.ttft:g} s, TPOT ≤ "
        f"{sla.tpot * 1e3:g} ms at p{sla.percentile:g} for {sla.attainment:.0%}; objective "
        f"[bold]{result.objective}[/]"
    )
    console.print(
        f"{sum(counts.values())} candidates: "
        + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        + f"; {result.simulations} simulations in {duration(result.wall_s, 4)} "
        f"({result.backend} x{result.workers})"
    )
    console.print(_ranking_table(result, top))
    price_basis(result.price_basis())
    network(result)
    for line in result.skipped_faults():
        console.print(f"[yellow]faults:[/] {escape(line)}")
    if any(r.goodput_at_limit for r in result.ranked):
        searched = (
            "concurrency searched, up to the most clients"
            if result.settings.get("search_axis") == "concurrency"
            else "rate searched, up to the deployment's capacity bound"
        )
        console.print(
            f"≥: met the SLA at every {searched} (see its reason); "
            "a longer workload would find where it stops"
        )
    _own_line(result)
    if result.best is not None:
        from hetsim.report.display import plan_aliases, result_label

        b = result.best
        provenance = b.summary.provenance if b.summary is not None else {}
        prov = ", ".join(f"{k} {v}" for k, v in provenance.items())
        console.print(
            f"[bold green]recommended:[/] #{b.id} {escape(result_label(b, plan_aliases(result)))}"
            + (f" (P:D {b.candidate.pd_ratio})" if b.candidate.pd_ratio else "")
            + _tie_note(result)
            + f"; step times: {prov}; prices: profile assumptions unless costs.prices sets them"
        )
        _robustness_line(result)


def _robustness_line(result: PlanResult) -> None:
    """Robust or fragile, and the nearest break-even of each assumption it rests on."""
    robust = result.robustness()
    if robust is None:
        return
    colour = "yellow" if robust.fragile else "green"
    detail = "; ".join(b.line() for b in robust.break_even) or (
        "no assumed step time or price changes the order of the "
        f"{robust.compared + 1} candidates with a measured goodput"
    )
    console.print(
        f"[bold {colour}]{robust.verdict}:[/] {escape(detail)} (first order: goodput ∝ 1 / "
        "step-time factor; plan.json's robustness has each factor)",
        highlight=False,
    )


def network(result: PlanResult) -> None:
    """With interconnect alternatives: for the best disaggregated candidate, whether a link
    binds it and what each other interconnect did for the same pools (plan.json has all)."""
    notes = result.network()
    if not notes:
        return
    first, *rest = notes
    for i, line in enumerate(first.lines(result.objective.unit)):
        console.print(("[bold]network:[/] " if i == 0 else "  ") + escape(line), highlight=False)
    if rest:
        console.print(f"  (plan.json's network lists the {len(rest)} other ranked disaggregated)")


def _own_line(result: PlanResult) -> None:
    """The scenario's own deployment: its verdict and the reason, whatever it is."""
    from hetsim.report.display import plain_numbers

    own = result.own
    if own is None:
        return
    console.print(
        f"[bold]yours[/] (#{own.id}, the scenario's pools): {own.verdict.value}: "
        f"{escape(plain_numbers(own.reason))}"
        + ("" if own.converged is not False else f" (search not converged: {own.not_converged})")
    )


def _tie_note(result: PlanResult) -> str:
    """A tie for the best said as one, with how it was broken ("" without a tie)."""
    others = [r for r in result.tied if r is not result.best]
    if not others:
        return ""
    rel_tol = result.settings.get("rel_tol", 0.1)
    return (
        f"; [yellow]tie[/] with {', '.join(f'#{r.id}' for r in others)} within the goodput "
        f"grid's {rel_tol:.0%} step (broken by {result.settings.get('tie_break')})"
    )


def _ranking_table(result: PlanResult, top: int) -> Table:
    """The recommendation beside its runners-up, the baseline and yours. Deployments are
    named short (:func:`~hetsim.report.display.short_label`: vendor-less accelerators) and
    fold over lines in their own column; the figures never wrap, and on a narrow terminal
    the columns a reader can spare go first ($ per M tokens, then the boundary)."""
    from hetsim import Objective
    from hetsim.report.display import (
        milliseconds,
        objective_heading,
        plain,
        plan_aliases,
        result_label,
    )

    p = f"p{result.scenario.spec.sla.percentile:g}"
    width = console.width
    objective = result.objective
    scored = objective not in (Objective.GOODPUT, Objective.CHEAPEST_FOR_RATE)
    t = Table(title="Recommended, runners-up, the colocated baseline and yours",
              title_justify="left")  # fmt: skip
    t.add_column("", no_wrap=True)  # what the row is, over its candidate id
    t.add_column("deployment", overflow="fold", ratio=1, min_width=20)
    # two-line headings: a column is as wide as its figures, not as its name
    figures = ["goodput\nreq/s", f"TTFT\n{p} ms", f"TPOT\n{p} ms", "$/h"]
    if scored:
        figures.insert(1, objective_heading(objective).replace(" ", "\n", 1))
    if width >= 120:
        figures.append("$/M\ntokens")
    for heading in figures:
        t.add_column(heading, justify="right", no_wrap=True)
    if width >= 100:
        t.add_column("KV\nboundary", no_wrap=True)
    aliases = plan_aliases(result)
    shown = result.ranked[: top + 1]
    for extra in (result.baseline, result.own):
        if extra is not None and extra not in shown:
            shown.append(extra)
    for r in shown:
        s = r.summary
        goodput = "-" if math.isnan(r.goodput) else plain(r.goodput)
        cells = [
            "\n".join(filter(None, (_tag(result, r), f"#{r.id}"))),
            escape(result_label(r, aliases)),
            ("≥ " if r.goodput_at_limit else "") + goodput,
            milliseconds(s and s.ttft_at_sla_percentile_s),
            milliseconds(s and s.tpot_at_sla_percentile_s),
            f"{r.cost_per_hour:,.2f}",
        ]
        if scored:
            cells.insert(3, _objective(result, r))
        if width >= 120:
            cells.append(plain(r.row()["cost_per_million_tokens"]))
        if width >= 100:
            cells.append(r.boundary or "-")
        t.add_row(*cells)
    return t


def _objective(result: PlanResult, r: CandidateResult) -> str:
    """The row's objective; for a searched deployment without one (yours, below min_rate)
    what its goodput scores, in brackets, so it compares with the rows above."""
    from hetsim.report.display import objective_text

    if not math.isnan(r.objective):
        return objective_text(result.objective, r.objective)
    if math.isnan(r.goodput) or r.goodput <= 0:
        return "-"
    return f"({objective_text(result.objective, r.score(result.objective))})"


def _tag(result: PlanResult, r: CandidateResult) -> str:
    """What a row of the plan table is: best, tie (for the best), colocated, yours; a row of
    yours that is not ranked says its verdict."""
    tags = []
    if r is result.best:
        tags.append("best")
    elif r.tie:
        tags.append("tie")
    elif r.baseline:
        tags.append("colocated")
    if r.candidate.own:
        tags.append("yours" if r.verdict.measured else f"yours: {r.verdict.value}")
    return ", ".join(tags)


def no_search_section() -> None:
    err_console.print(
        "[yellow]no search: section: judging the scenario's own deployment and a colocated "
        "baseline[/]"
    )


def no_deployment(explanation: str) -> None:
    err_console.print(f"[bold red]no deployment meets the SLA[/]\n{explanation}")


# --- hetsim calibrate / validate ------------------------------------------------------------


def calibration(table_: CalibrationTable, out: Path) -> None:
    """``calibrate``: what was written and the best rates this device reached."""
    peaks = table_.meta["peak"]
    console.print(f"wrote {len(table_.rows)} kernel timings to [bold]{out}[/]")
    console.print(
        f"device {table_.meta.get('device')} · backend {table_.meta.get('backend')} "
        f"{table_.meta.get('backend_version')}"
    )
    for dtype, flops in sorted(peaks["flops"].items()):
        console.print(f"  best {dtype} GEMM: {units.format_flops(flops, 3)}")
    console.print(f"  best copy bandwidth: {units.format_bandwidth(peaks['memory_bandwidth'], 3)}")
    console.print(f"  per-op dispatch: {duration(table_.launch_overhead())}")


def validation(summary: Any) -> None:
    """``validate``: the absolute prediction error per check and kernel family."""
    t = table("Absolute prediction error", ("check", "family", "cases", "median %", "p90 %"),
              right=("cases", "median %", "p90 %"))  # fmt: skip
    for r in summary.itertuples():
        t.add_row(r.check, r.family, str(r.cases), f"{r.median_pct:.1f}", f"{r.p90_pct:.1f}")
    console.print(t)


# --- hetsim trace stats ---------------------------------------------------------------------


def trace_stats(info: dict[str, Any]) -> None:
    """``trace stats``: one row per measure of the trace."""
    t = table(f"{info['file']} ({info['format']})", ("measure", "value"))
    dropped = []
    if info["skipped_bad_rows"]:
        dropped.append(f"{info['skipped_bad_rows']:,} unreadable")
    if info["skipped_out_of_order"]:
        dropped.append(f"{info['skipped_out_of_order']:,} out of order")
    if info["failed_zero_tokens"]:
        dropped.append(f"{info['failed_zero_tokens']:,} with zero tokens (failed)")
    t.add_row("requests", f"{info['requests']:,}")
    t.add_row(
        "rows read",
        f"{info['rows_read']:,}" + (f" (dropped: {', '.join(dropped)})" if dropped else ""),
    )
    if info["start"]:
        t.add_row("first arrival", info["start"])
    t.add_row("duration", f"{number(info['duration_s'], 6)} s")
    t.add_row(
        "mean rate",
        f"{number(info['mean_rate_rps'])} req/s ({number(info['mean_per_minute'])} req/min)",
    )
    t.add_row("peak minute", f"{info['peak_per_minute']:,} req/min")
    for key, label in (("input_tokens", "prompt tokens"), ("output_tokens", "output tokens")):
        s = info[key]
        figures = (f"{q} {number(s[q])}" for q in ("mean", "p50", "p90", "p99", "max"))
        t.add_row(label, "  ".join(figures))
    t.add_row("prefix reuse", _prefix_reuse(info))
    if info.get("sessions") is not None:
        t.add_row(
            "sessions",
            f"{info['sessions']:,} inferred from hash ids, {info['turns_per_session']:.2f} turns "
            f"per session (most {info['max_turns']}); "
            f"{info['session_reuse_tokens']:.1%} of prompt tokens repeat the previous turn's",
        )
    console.print(t)


def _prefix_reuse(info: dict[str, Any]) -> str:
    if info["prefix_reuse"] is None:
        return "n/a (no hash ids)"
    return (
        f"{info['prefix_reuse']:.1%} of {info['hash_blocks']:,} {info['block_tokens']}-token "
        f"blocks seen earlier ({info['prefix_reuse_tokens']:.1%} of prompt tokens)"
    )
