"""The ``hetsim`` command line: parse, call the Python API, render.

Bad input of any kind ends as one message on stderr and exit code 2; nothing here computes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hetsim import units
from hetsim.errors import InputError

app = typer.Typer(
    name="hetsim",
    help="Simulate and plan heterogeneous prefill/decode LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
# Piped output (files, CI logs, notebooks) gets a wide page instead of rich's 80 columns.
from hetsim.cli_trace import trace_app  # noqa: E402 - after `app` on purpose

app.add_typer(trace_app, name="trace")

console = Console(width=None if sys.stdout.isatty() else 180)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 180)

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


def _default_scenario() -> Path:
    from hetsim.spec.resolve import default_scenario_path

    return default_scenario_path()


def _load(path: Path, overrides: list[str] | None):  # noqa: ANN202 - returns hetsim Scenario
    from hetsim.checks import load_scenario

    return load_scenario(path, overrides or [])


def _bytes(x: float) -> str:
    return units.format_bytes(x, digits=3, binary=True)


@app.command()
def check(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    set_: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a scenario and show what it implies: weights and KV capacity per device,
    KV bytes per token per role, transfer paths, cost.

    Example: [bold]hetsim check scenarios/qwen3-32b-6p2d.yaml --set pools.decode.tp=2[/]
    """
    from hetsim.report.describe import describe

    loaded = _load(scenario, set_)
    info = describe(loaded)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    _render_check(info)


def _render_portability(info: dict[str, Any]) -> None:
    """Part of ``check``'s output: the KV portability verdict of every prefill → decode pair."""
    from rich.markup import escape

    colour = {"identical": "green", "convertible": "yellow", "incompatible": "red"}
    tokens = info["portability"][0]["example_tokens"]
    table = Table(
        title=f"KV portability (conversions priced for a prompt of {tokens // 1024}K tokens)",
        title_justify="left",
    )
    for col in ("from → to", "verdict", "conversion", "where", "device", "read+write B/token"):
        table.add_column(col, justify="right" if col.startswith("read") else "left")
    table.add_column(f"{tokens // 1024}K tokens", justify="right")
    lines = []
    for v in info["portability"]:
        pair = f"{v['from']} → {v['to']}"
        verdict = f"[{colour[v['verdict']]}]{v['verdict']}[/]"
        rows: list[tuple[str, ...]] = []
        if v["verdict"] == "incompatible":
            rows = [(escape(f"{m['field']}: {m['producer']} ≠ {m['consumer']}"), "", "", "", "")
                    for m in v["mismatches"]]  # fmt: skip
        elif not v["conversions"]:
            rows = [("none: the bytes are usable as they are", "", "", "", "")]
        for c in v["conversions"]:
            implicit = " (implicit)" if c["origin"] == "implicit" else ""
            rows.append(
                (
                    f"{c['kind']} {c['from']} → {c['to']}{implicit}",
                    c["where"],
                    c["device"] or "",
                    f"{c['bytes_read_per_token'] + c['bytes_written_per_token']:,.0f}",
                    units.format_time(c["seconds"], 3) if c["seconds"] else "—",
                )
            )
        for k, row in enumerate(rows):
            table.add_row(pair if k == 0 else "", verdict if k == 0 else "", *row)
        if v["transfers_per_request"] is not None:
            lines.append(
                f"{escape(pair)}: {v['transfers_per_request']} transfer(s) per request of "
                f"{v['bytes_per_transfer_per_token']:,.0f} B/token in {v['wire_format']} — "
                f"{escape(v['transfer_note'])}"
            )
        lines += [f"[yellow]{escape(pair)}: {escape(w)}[/]" for w in v["warnings"]]
        lines += [f"{escape(pair)}: {escape(n)}" for n in v["notes"]]
    console.print(table)
    for line in lines:
        console.print(line, highlight=False)
    for label in info.get("unused_conversions", []):
        console.print(f"[yellow]kv.conversions entry not needed by any pair: {escape(label)}[/]")


def _render_check(info: dict[str, Any]) -> None:
    from rich.markup import escape

    m = info["model"]
    console.print(
        f"[bold green]✓[/] {escape(info['file'] or info['scenario'])} is valid — scenario "
        f"[bold]{escape(info['scenario'])}[/]"
    )
    console.print(
        f"model [bold]{escape(m['name'])}[/] ({m['architecture']}): "
        f"{m['params_total'] / 1e9:.1f}B parameters, {m['params_active'] / 1e9:.1f}B active"
    )
    table = Table(title="Pools (per device unless stated)", title_justify="left")
    for col in (
        "pool",
        "role",
        "accelerator",
        "inst × dev",
        "tp/dp/ep",
        "precision W/A/KV",
        "weights",
        "activations*",
        "KV room",
        "KV B/token",
        "KV tokens/inst",
        "$/h",
    ):
        table.add_column(
            col,
            justify="right"
            if col not in ("pool", "role", "accelerator", "precision W/A/KV")
            else "left",
        )
    for p in info["pools"]:
        mem = p["memory"]
        prec = p["precision"]
        price = units.format_price_per_hour(p["cost_per_hour"])
        table.add_row(
            p["name"],
            p["role"],
            p["accelerator"],
            f"{p['instances']} × {p['devices_per_instance']}",
            f"{p['tp']}/{p['dp']}/{p['ep']}",
            f"{prec['weights']}/{prec['activations']}/{prec['kv']}",
            _bytes(mem["weights_per_device"]),
            _bytes(mem["activations_per_device"]),
            _bytes(mem["kv_room_per_device"]),
            f"{mem['kv_bytes_per_token_per_device']:,.0f}",
            f"{mem['kv_capacity_tokens']:,}",
            price + ("†" if p["price_is_assumption"] else ""),
        )
    console.print(table)
    if info["paths"]:
        paths = Table(title="KV transfer paths", title_justify="left")
        for col in (
            "from → to",
            "hops",
            "bottleneck",
            "latency",
            "format",
            "KV B/token",
            "8K-token KV alone",
        ):
            paths.add_column(col)
        for p in info["paths"]:
            paths.add_row(
                f"{p['from']} → {p['to']}",
                " → ".join(p["hops"]),
                units.format_bandwidth(p["bottleneck_bandwidth"], 3),
                units.format_time(p["latency"], 3),
                p["transfer_format"],
                f"{p['kv_bytes_per_token']:,.0f}",
                units.format_time(p["lone_8k_token_transfer_s"], 3),
            )
        console.print(paths)
    if info.get("portability"):
        _render_portability(info)
    sla = info["sla"]
    console.print(
        f"lifecycle [bold]{info['lifecycle']}[/]; SLA: TTFT ≤ {units.format_time(sla['ttft'])}, "
        f"TPOT ≤ {units.format_time(sla['tpot'])} at p{sla['percentile']:g}, "
        f"attainment ≥ {sla['attainment']:.0%}"
    )
    console.print(
        f"{info['devices']} devices, [bold]{units.format_price_per_hour(info['cost_per_hour'])}[/]"
    )
    notes = ["* activations: estimated peak workspace of one step (assumption, not measured)"]
    if any(p["price_is_assumption"] for p in info["pools"]):
        notes.append("† price from the hardware profile: an assumption (set costs.prices)")
    for p in info["pools"]:
        if p["uncertain_figures"]:
            notes.append(
                f"{p['accelerator']}: not from a vendor datasheet: "
                + ", ".join(p["uncertain_figures"])
            )
        notes.append(f"{p['name']}: step-time provenance {p['provenance']}")
    for n in dict.fromkeys(notes):
        console.print(f"[dim]{n}[/]")


@app.command()
def profiles(as_json: JsonOption = False) -> None:
    """List the accelerator profiles: memory, bandwidth, peak compute per format, links, price."""
    from hetsim.spec.hardware import available_profiles, load_profile

    rows = [load_profile(name) for name in available_profiles()]
    if as_json:
        print(json.dumps([p.model_dump(mode="json") for p in rows], indent=2))
        return
    table = Table(title="Accelerator profiles (dense peaks)", title_justify="left")
    for col in (
        "name",
        "vendor",
        "memory",
        "mem BW",
        "bf16",
        "fp8",
        "int8",
        "fp4",
        "scale-up /dir",
        "formats W | A | KV",
        "$/h†",
        "not datasheet",
    ):
        table.add_column(col)
    for p in rows:

        def peak(key: str, p=p) -> str:
            return units.format_flops(p.compute[key].value, 3) if key in p.compute else "—"

        table.add_row(
            p.name,
            p.vendor,
            _bytes(p.memory_bytes),
            units.format_bandwidth(p.memory_bandwidth, 3),
            peak("bf16"),
            peak("fp8"),
            peak("int8"),
            peak("fp4"),
            units.format_bandwidth(p.scale_up.bandwidth.value, 3) if p.scale_up else "—",
            f"{','.join(p.formats.weights)} | {','.join(p.formats.activations)} | "
            f"{','.join(p.formats.kv)}",
            units.format_price_per_hour(p.price),
            str(len(p.uncertain_figures())),
        )
    console.print(table)
    console.print("[dim]† prices are assumptions; see each profile's note and sources[/]")


@app.command()
def models(
    as_json: JsonOption = False,
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", help="Also show a Hugging Face config.json (repeatable)."),
    ] = None,
) -> None:
    """List the bundled models with derived parameters, weight bytes and KV bytes per token."""
    from hetsim.spec.model import bundled_models, load_model

    loaded = [load_model(name) for name in bundled_models()]
    loaded += [load_model(str(path)) for path in config or []]
    if as_json:
        print(json.dumps([m.summary() for m in loaded], indent=2))
        return
    table = Table(title="Models (KV bytes per token, all layers)", title_justify="left")
    for col in (
        "name",
        "architecture",
        "layers",
        "params",
        "active",
        "bf16 weights",
        "KV bf16",
        "KV fp8",
        "KV int8",
        "KV int4",
        "max ctx",
    ):
        table.add_column(col, justify="left" if col in ("name", "architecture") else "right")
    for m in loaded:
        table.add_row(
            m.name,
            m.description,
            str(m.num_layers),
            f"{m.params_total / 1e9:.2f}B",
            f"{m.params_active / 1e9:.2f}B",
            _bytes(m.weight_bytes("bf16")),
            f"{m.kv_bytes_per_token('bf16'):,.0f}",
            f"{m.kv_bytes_per_token('fp8_e4m3'):,.0f}",
            f"{m.kv_bytes_per_token('int8'):,.0f}",
            f"{m.kv_bytes_per_token('int4'):,.0f}",
            f"{m.max_context:,}",
        )
    console.print(table)
    console.print(
        "[dim]fp8 KV: per-tensor scale; int8/int4 KV: fp16 scale + zero point per token and head "
        "(MLA: per latent vector). Weights exclude MTP layers.[/]"
    )


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """Print the JSON Schema of the scenario file (for editors and validation)."""
    from hetsim.spec.scenario import ScenarioSpec

    text = json.dumps(ScenarioSpec.model_json_schema(by_alias=True), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        err_console.print(f"wrote {out}")
    else:
        print(text)


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    set_: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write requests.parquet, timeseries.parquet, summary.json."),
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Also write requests.csv.")] = False,
    requests: Annotated[
        int | None, typer.Option("--requests", help="Stop arrivals after this many requests.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the scenario seed.")] = None,
    compare_lifecycles: Annotated[
        bool,
        typer.Option(
            "--compare-lifecycles",
            help="Run the workload under pull, push and store "
            "(store needs lifecycle.store_tier) and compare them.",
        ),
    ] = False,
    plots: Annotated[
        bool,
        typer.Option("--plots", help="Write PNG and SVG figures to --out (latency CDFs, KV, ...)."),
    ] = False,
    html: Annotated[
        bool, typer.Option("--report", help="Write a self-contained report.html to --out.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Replay the scenario's workload through its cluster and report what requests experienced.

    Example: [bold]hetsim simulate scenarios/qwen3-32b-6p2d.yaml --set lifecycle=push --out run/[/]
    """
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from hetsim.simulation import SimulationResult
    from hetsim.simulation import simulate as run_simulation

    if compare_lifecycles:
        _compare_lifecycles(scenario, set_ or [], requests, seed, as_json)
        return
    _need_out(out, plots, html)
    loaded = _load(scenario, set_)
    with Progress(
        TextColumn(f"[bold]simulate[/] {escape(loaded.name)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("requests"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result: SimulationResult = run_simulation(
            loaded, max_requests=requests, seed=seed, progress=report
        )
    written = []
    if out is not None:
        written += result.write(out, csv=csv)
        if plots or html:
            from hetsim import report

            if plots:
                written += report.write_simulation_plots(result, out)
            if html:
                written.append(report.write_simulation_report(result, out / "report.html"))
    if as_json:
        from hetsim.simulation import _jsonable

        print(json.dumps(_jsonable(result.summary), indent=2))
        return
    _render_summary(result.summary)
    if written:
        console.print(f"[dim]wrote {len(written)} files to {out}/[/]")


def _need_out(out: Path | None, plots: bool, html: bool) -> None:
    if out is None and (plots or html):
        raise InputError(
            "--plots and --report write files and need a folder",
            field="--out",
            allowed="--out DIR",
        )


def _compare_lifecycles(
    path: Path, overrides: list[str], requests: int | None, seed: int | None, as_json: bool
) -> None:
    from hetsim.simulation import _jsonable
    from hetsim.simulation import simulate as run_simulation

    base = _load(path, overrides)
    protocols = ["pull", "push"] + (["store"] if base.spec.lifecycle.store_tier else [])
    results = {}
    for protocol in protocols:
        with err_console.status(f"simulating {protocol}..."):
            sc = _load(path, [*overrides, f"lifecycle.protocol={protocol}"])
            results[protocol] = run_simulation(sc, max_requests=requests, seed=seed).summary
    if as_json:
        print(json.dumps(_jsonable(results), indent=2))
        return
    table = Table(title=f"KV lifecycle protocols on {base.name}", title_justify="left")
    rows = [
        ("completed / failed", lambda s: f"{s['completed']:,} / {s['failed']:,}"),
        ("TTFT p50 / p90", lambda s: _pair(s["ttft_s"]["p50"], s["ttft_s"]["p90"])),
        ("TPOT p90", lambda s: _time(s["tpot_s"]["p90"])),
        ("attainment", lambda s: f"{s['attainment']:.1%}"),
    ]
    for pool in base.spec.pools:
        rows.append(
            (f"peak KV {pool.name}", lambda s, n=pool.name: f"{s['utilisation'][n]['peak_kv']:.0%}")
        )
        rows.append(
            (
                f"held / reserved block·s {pool.name}",
                lambda s, n=pool.name: (
                    f"{s['utilisation'][n]['held_block_s']:,.0f} / "
                    f"{s['utilisation'][n]['reserved_block_s']:,.0f}"
                ),
            )
        )
    rows += [
        ("double residency block·s", lambda s: f"{s['double_residency_block_s']:,.0f}"),
        ("recomputed tokens", lambda s: f"{s['recomputed_tokens']:,}"),
        (
            "store evictions before fetch",
            lambda s: f"{s['faults'].get('evicted_before_fetch', 0):,}",
        ),
        ("retries", lambda s: f"{s['retries']:,}"),
        ("lease expiries", lambda s: f"{s['faults'].get('lease_expiries', 0):,}"),
        ("silent corruptions", lambda s: f"{s['silent_corruptions']:,}"),
    ]
    table.add_column("")
    for protocol in results:
        table.add_column(protocol, justify="right")
    for label, fmt in rows:
        table.add_row(label, *(fmt(results[p]) for p in results))
    console.print(table)


def _time(v: float | None) -> str:
    return "—" if v is None else units.format_time(v, 3)


def _pair(a: float | None, b: float | None) -> str:
    return f"{_time(a)} / {_time(b)}"


def _render_summary(s: dict[str, Any]) -> None:
    from rich.markup import escape

    console.print(
        f"[bold]{escape(s['scenario'])}[/]: {s['requests']:,} requests, {s['completed']:,} "
        f"completed, {s['failed']:,} failed; {s['simulated_s']:.1f} s simulated in "
        f"{s['wall_s']:.2f} s ({s['events']:,} events)"
    )
    for reason, count in s["failure_reasons"].items():
        console.print(f"  [red]failed[/] {count:,}: {escape(reason)}")
    table = Table(title="Latency", title_justify="left")
    for col in ("metric", "mean", "p50", "p90", "p99", "SLA"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    sla = s["sla"]
    for key, label, bound in (
        ("ttft_s", "TTFT", sla["ttft_s"]),
        ("tpot_s", "TPOT", sla["tpot_s"]),
        ("e2e_s", "E2E", None),
    ):
        p = s[key]
        table.add_row(
            label,
            _time(p["mean"]),
            _time(p["p50"]),
            _time(p["p90"]),
            _time(p["p99"]),
            _time(bound) if bound else "",
        )
    console.print(table)
    verdict = "[green]met[/]" if s["sla_met"] else "[red]missed[/]"
    console.print(
        f"attainment {s['attainment']:.1%} (target {sla['attainment_target']:.0%}): SLA {verdict}"
        f"; throughput {s['throughput_tokens_per_s']:,.0f} output tokens/s; "
        f"prefix-cached {s['prefix_cached_share']:.0%} of prompt tokens; "
        f"{s['preemptions']:,} preemptions; KV blocks leaked {s['kv_blocks_leaked']}"
    )
    util = Table(title="Pools", title_justify="left")
    for col in (
        "pool",
        "instances",
        "busy",
        "peak KV",
        "held block·s",
        "reserved block·s",
        "provenance",
    ):
        util.add_column(col, justify="left" if col in ("pool", "provenance") else "right")
    for name, u in s["utilisation"].items():
        util.add_row(
            name,
            str(u["instances"]),
            f"{u['busy']:.0%}",
            f"{u['peak_kv']:.0%}",
            f"{u['held_block_s']:,.0f}",
            f"{u['reserved_block_s']:,.0f}",
            s["provenance"].get(name, ""),
        )
    console.print(util)
    cost = s["cost_per_million_tokens"]
    console.print(
        f"cost {units.format_price_per_hour(s['cost_per_hour'])} (assumed prices), "
        + (f"${cost:,.2f} per million output tokens" if cost is not None else "no tokens")
    )


@app.command()
def plan(
    scenario: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario YAML with a search: section (default: the bundled cphd-glm51.yaml).",
            show_default=False,
        ),
    ] = None,
    set_: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write plan.json, candidates.csv and pareto.png here."),
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="local (process pool) or ray.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (default: a local Ray).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Local worker processes (default: all cores).")
    ] = None,
    wave: Annotated[
        int,
        typer.Option(
            "--wave",
            help="Candidates simulated per round. Results depend on it, not on the backend; "
            "raise it on a big cluster.",
        ),
    ] = 2,
    requests: Annotated[
        int | None,
        typer.Option(
            "--requests",
            help="Requests per planning simulation (default: search.max_requests, else the "
            "whole workload).",
        ),
    ] = None,
    exhaustive: Annotated[
        bool,
        typer.Option("--exhaustive", help="No screening or pruning: search every candidate."),
    ] = False,
    plots: Annotated[
        bool, typer.Option("--plots", help="Also write pareto and rate-sweep figures as SVG.")
    ] = False,
    html: Annotated[
        bool, typer.Option("--report", help="Write a self-contained plan.html to --out.")
    ] = False,
    top: Annotated[int, typer.Option("--top", help="Runners-up to show.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Search deployments (accelerators, P:D ratio, tp/ep, precision and KV format per role,
    lifecycle) for the best goodput per dollar under the scenario's SLA.

    Example: [bold]hetsim plan scenarios/cphd-glm51.yaml --out plan/ --report[/]
    Exit code 1 when no candidate meets the SLA (with the reason).
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from hetsim.planner.search import plan as run_plan

    _need_out(out, plots, html)
    path = scenario or _default_scenario()
    loaded = _load(path, set_)
    if loaded.spec.search is None:
        err_console.print(
            "[yellow]no search: section: judging the scenario's own deployment and a colocated "
            "baseline[/]"
        )
    with Progress(
        TextColumn(f"[bold]plan[/] {loaded.name}"),
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
            done = c["total"] - c["remaining"]
            text = (
                f"{c['total']} candidates: {c['screened']} screened out, {c['beaten']} beaten "
                f"unsimulated, {c['simulated']} simulated ({c['simulations']} runs), "
                f"{c['remaining']} remaining"
            )
            bar.update(task, completed=done, total=c["total"], counts=text)

        result = run_plan(
            loaded,
            backend=backend,
            workers=workers,
            address=address,
            max_requests=requests,
            wave=wave,
            exhaustive=exhaustive,
            progress=report,
        )
    written = []
    if out is not None:
        from hetsim import report as figures

        written += result.write(out)
        written += figures.write_plan_plots(result, out, svg=plots)
        if html:
            written.append(figures.write_plan_report(result, out / "plan.html"))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _render_plan(result, top)
        if written:
            console.print(f"[dim]wrote {', '.join(p.name for p in written)} to {out}/[/]")
    if result.best is None:
        if not as_json:
            err_console.print(
                f"[bold red]no deployment meets the SLA[/]\n{result.explain_failure()}"
            )
        raise typer.Exit(1)


def _render_plan(result: Any, top: int) -> None:
    from rich.markup import escape

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
        + f"; {result.simulations} simulations in {units.format_time(result.wall_s)} "
        f"({result.backend} x{result.workers})"
    )
    unit = {
        "goodput": "req/s",
        "goodput_per_device": "req/s/dev",
        "goodput_per_dollar": "req/$",
        "cheapest_for_rate": "-$/h",
    }[result.objective]
    table = Table(title="Recommended, runners-up and the colocated baseline", title_justify="left")
    for col in ("", "deployment", "goodput req/s", unit, "$/h", "$/M tok",
                f"TTFT p{sla.percentile:g}", f"TPOT p{sla.percentile:g}", "boundary"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("", "deployment", "boundary") else "right")
    shown = result.ranked[: top + 1]
    if result.baseline is not None and result.baseline not in shown:
        shown.append(result.baseline)
    for r in shown:
        s = r.summary
        mark = "best" if r is result.best else ("colocated" if r.baseline else "")
        table.add_row(
            mark,
            escape(r.label),
            f"{r.goodput:.3g}",
            f"{r.objective:.4g}",
            f"{r.cost_per_hour:,.2f}",
            f"{s.get('cost_per_million_tokens') or float('nan'):.3g}",
            units.format_time(s["ttft_at_sla_percentile_s"])
            if s.get("ttft_at_sla_percentile_s") is not None
            else "-",
            units.format_time(s["tpot_at_sla_percentile_s"])
            if s.get("tpot_at_sla_percentile_s") is not None
            else "-",
            r.boundary or "-",
        )
    console.print(table)
    if result.best is not None:
        b = result.best
        prov = ", ".join(f"{k} {v}" for k, v in (b.summary.get("provenance") or {}).items())
        console.print(
            f"[bold green]recommended:[/] {escape(b.label)}"
            + (f" (P:D {b.candidate.pd_ratio})" if b.candidate.pd_ratio else "")
            + f"; step times: {prov}; prices: profile assumptions unless costs.prices sets them"
        )


@app.command()
def calibrate(
    out: Annotated[
        Path, typer.Option("--out", help="Calibration table to write (.csv or .parquet).")
    ],
    backend: Annotated[
        str, typer.Option("--backend", help="Kernel backend: numpy or torch.")
    ] = "numpy",
    device: Annotated[str, typer.Option("--device", help="cpu, or cuda with torch.")] = "cpu",
    quick: Annotated[
        bool, typer.Option("--quick", help="A tiny sweep (seconds), for tests.")
    ] = False,
) -> None:
    """Time GEMM, attention and memory-copy microkernels on this device and write a calibration
    table that hardware profiles can reference (`calibration:`).

    Example: [bold]hetsim calibrate --backend torch --out calib/this-cpu.parquet[/]
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from hetsim.perf.calibration import write_table
    from hetsim.perf.microbench import run_calibration

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

        table = run_calibration(backend=backend, device=device, quick=quick, progress=report)
    write_table(table, out)
    peaks = table.meta["peak"]
    console.print(f"wrote {len(table.rows)} kernel timings to [bold]{out}[/]")
    console.print(
        f"device {table.meta.get('device')} · backend {table.meta.get('backend')} "
        f"{table.meta.get('backend_version')}"
    )
    for dtype, flops in sorted(peaks["flops"].items()):
        console.print(f"  best {dtype} GEMM: {units.format_flops(flops, 3)}")
    console.print(f"  best copy bandwidth: {units.format_bandwidth(peaks['memory_bandwidth'], 3)}")
    console.print(f"  per-op dispatch: {units.format_time(table.launch_overhead(), 3)}")


@app.command()
def validate(
    table_path: Annotated[
        Path | None,
        typer.Option("--table", help="Calibration table (default: run a calibration first)."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="numpy or torch (default: torch when installed, since "
            "the reference model runs in torch).",
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sweeps, for tests.")] = False,
    model_check: Annotated[
        bool,
        typer.Option("--model/--no-model", help="Also time a real small transformer (torch)."),
    ] = True,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for validation.csv and the plot.")
    ] = None,
) -> None:
    """Predicted vs measured: held-out kernels of the calibration, and prefill/decode steps of
    a small Llama-like transformer timed in PyTorch on this CPU.
    """
    from hetsim.perf import validate as v
    from hetsim.perf.calibration import read_table

    if table_path is not None:
        table = read_table(table_path)
    else:
        from hetsim.perf.microbench import available_backends, run_calibration

        chosen = backend or ("torch" if "torch" in available_backends() else "numpy")
        with err_console.status(f"calibrating this device with {chosen}..."):
            table = run_calibration(backend=chosen, quick=quick)
    with err_console.status("validating against held-out kernels and a real transformer..."):
        result = v.validate(table, model_check=model_check, quick=quick)
    frame = result.to_frame()
    summary = result.summary()
    rich_table = Table(title="Absolute prediction error", title_justify="left")
    for col in ("check", "family", "cases", "median %", "p90 %"):
        rich_table.add_column(col, justify="left" if col in ("check", "family") else "right")
    for r in summary.itertuples():
        rich_table.add_row(
            r.check, r.family, str(r.cases), f"{r.median_pct:.1f}", f"{r.p90_pct:.1f}"
        )
    console.print(rich_table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / "validation.csv", index=False)
        if not frame.empty:
            from hetsim.report import predicted_vs_measured, save_figure

            save_figure(predicted_vs_measured(frame), out, "predicted_vs_measured", ("png",))
        console.print(f"wrote {out / 'validation.csv'} and {out / 'predicted_vs_measured.png'}")


def main() -> None:
    """Console entry point: user-input errors become one message and exit code 2.

    Typer runs in standalone mode, so usage errors (a missing argument, an unknown option) are
    printed by Typer itself with exit code 2, whichever click Typer bundles.
    """
    from rich.markup import escape

    try:
        app()
    except InputError as exc:
        # escape: messages quote user text, and "[x]" or "[/b]" in it is not rich markup
        err_console.print(
            f"[bold red]error:[/] {escape(exc.render())}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
