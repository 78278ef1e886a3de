"""``search.interconnect``: the prefill→decode path as one more axis of the plan, with its price,
and the plan's note on whether the network binds and what another interconnect is worth.

All in process and without simulating: candidates are enumerated and screened, and the
network note is built from hand-made results."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import pytest

import hetsim
from hetsim.errors import InputError
from hetsim.planner.network import network_notes
from hetsim.planner.objective import Objective
from hetsim.planner.results import CandidateResult
from hetsim.planner.screen import ScreenResult, WorkloadSample, screen
from hetsim.planner.space import enumerate_candidates
from hetsim.planner.verdict import Verdict

SMALL = "tests/data/plan-small.yaml"
# Llama-3.1-8B: 32 layers x 8 KV heads x 128 dims x (K and V) x 2 bytes of bf16
KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2


def _path(hop: str, bandwidth: str) -> str:
    return (
        f"{{from: prefill, to: decode, hops: [{{name: {hop}, kind: nic, bandwidth: {bandwidth}, "
        "shared_by: destination_instance}]}"
    )


SLOW = f"{{name: eth-100g, paths: [{_path('eth', '100 Gbps')}]}}"
FAST = f"{{name: roce-2x400g, price_per_device_hour: $0.25/h, paths: [{_path('roce', '2 x 400 Gbps')}]}}"  # noqa: E501
OK_PATH = _path("h", "400 Gbps")
PRICES = "costs.prices={nvidia-h100-sxm: $2/h, nvidia-h20: $1/h}"


def small(*overrides: str) -> hetsim.Scenario:
    return hetsim.load_scenario(SMALL, ["workload.synthetic.requests=50", PRICES, *overrides])


def with_alternatives(*overrides: str) -> hetsim.Scenario:
    return small(f"search.interconnect=[{SLOW}, {FAST}]", *overrides)


@functools.cache
def candidates() -> list:
    """The small space with both alternatives, enumerated once for the tests that only read it."""
    return enumerate_candidates(with_alternatives())


def _key(c) -> tuple:  # noqa: ANN001
    return (tuple(sorted(c.roles.items())), c.transfer_format, c.protocol)


def test_alternatives_multiply_disaggregated_candidates_only() -> None:
    before = enumerate_candidates(small())
    after = candidates()
    kinds = [c.kind for c in before]
    # plan-small: 2 prefill x (2 decode accelerators x 2 counts x 2 KV formats) = 16
    assert kinds.count("disaggregated") == 16
    assert [c.kind for c in after].count("disaggregated") == 3 * 16
    assert [c.kind for c in after].count("colocated") == kinds.count("colocated")
    assert all(c.interconnect is None for c in after if c.kind == "colocated")
    # without alternatives nothing changes: no name, no label suffix
    assert all(c.interconnect is None and "net" not in c.label for c in before)


def test_the_scenario_own_interconnect_is_always_tried_as_written() -> None:
    base = with_alternatives()
    groups: dict[tuple, list] = {}
    for c in enumerate_candidates(base):
        if c.kind == "disaggregated":
            groups.setdefault(_key(c), []).append(c)
    assert len(groups) == 16
    for cands in groups.values():
        assert [c.interconnect for c in cands] == ["as written", "eth-100g", "roce-2x400g"]
        own = cands[0].scenario
        assert own is not None and own.spec.interconnect.paths == base.spec.interconnect.paths
        assert cands[0].label.endswith("| net as written")


def test_link_price_is_added_per_device_of_the_connected_pools() -> None:
    cands = candidates()
    # 1 prefill H100 ($2/h) + 2 decode H20 ($1/h each), three devices at $0.25/h for the links
    pick = [
        c
        for c in cands
        if c.kind == "disaggregated"
        and c.roles["prefill"].instances == 1
        and c.roles["decode"].accelerator == "nvidia-h20"
        and c.roles["decode"].instances == 2
        and c.roles["decode"].kv == "bf16"
    ]
    costs = {c.interconnect: c.scenario.cost_per_hour() for c in pick if c.scenario}
    assert costs == pytest.approx({"as written": 4.0, "eth-100g": 4.0, "roce-2x400g": 4.75})


def test_a_colocated_deployment_pays_no_link_price() -> None:
    # the scenario's own links priced: a colocated baseline has no path, so pays nothing
    cands = enumerate_candidates(small("interconnect.price_per_device_hour=$1/h"))
    colocated = [c for c in cands if c.kind == "colocated" and c.scenario is not None]
    assert colocated
    for c in colocated:
        serve = c.roles["serve"]
        price = {"nvidia-h100-sxm": 2.0, "nvidia-h20": 1.0}[serve.accelerator]
        assert c.scenario.cost_per_hour() == pytest.approx(serve.devices * price)
    disagg = next(c for c in cands if c.kind == "disaggregated" and c.scenario is not None)
    assert disagg.scenario.cost_per_hour() == pytest.approx(
        sum(r.devices * {"nvidia-h100-sxm": 2.0, "nvidia-h20": 1.0}[r.accelerator]
            for r in disagg.roles.values()) + disagg.devices * 1.0
    )  # fmt: skip


def test_an_alternative_naming_an_unknown_pool_names_its_field_and_the_pools() -> None:
    bad = "{name: x, paths: [{from: prefil, to: decode, hops: [{name: h, kind: nic, bandwidth: 400 Gbps}]}]}"  # noqa: E501
    with pytest.raises(InputError) as info:
        enumerate_candidates(small(f"search.interconnect=[{bad}]"))
    err = info.value
    assert err.field == "search.interconnect[0].paths[0].from"
    assert err.value == "prefil"
    assert err.allowed == "prefill"
    assert err.file is not None and err.file.endswith("plan-small.yaml")


def test_an_alternative_reversed_names_the_decode_end() -> None:
    bad = "{name: x, paths: [{from: prefill, to: prefill, hops: [{name: h, kind: nic, bandwidth: 400 Gbps}]}]}"  # noqa: E501
    with pytest.raises(InputError) as info:
        enumerate_candidates(small(f"search.interconnect=[{bad}]"))
    assert info.value.field == "search.interconnect[0].paths[0].to"
    assert info.value.allowed == "decode"


@pytest.mark.parametrize(
    ("alternatives", "field", "needle"),
    [
        (f"[{SLOW}, {SLOW}]", "search.interconnect", "repeated: eth-100g"),
        (
            f"[{{name: 'as written', paths: [{OK_PATH}]}}]",
            "search.interconnect[0].name",
            "a letter",
        ),
        ("[{name: x, paths: []}]", "search.interconnect[0].paths", "at least 1"),
        (
            "[{name: x, paths: [{from: prefill, to: decode, hops: [{name: h, kind: nic, "
            "bandwidth: 400}]}]}]",
            "search.interconnect[0].paths[0].hops[0].bandwidth",
            "unit",
        ),
        (
            f"[{{name: x, price_per_device_hour: 3, paths: [{OK_PATH}]}}]",
            "search.interconnect[0].price_per_device_hour",
            "unit",
        ),
    ],
)
def test_bad_alternatives_are_input_errors_naming_the_field(
    alternatives: str, field: str, needle: str
) -> None:
    with pytest.raises(InputError) as info:
        small(f"search.interconnect={alternatives}")
    assert info.value.field == field
    assert needle in info.value.render()


def test_an_alternative_may_not_take_the_scenario_own_name() -> None:
    named = f"{{name: rdma, paths: [{_path('h', '400 Gbps')}]}}"
    with pytest.raises(InputError) as info:
        enumerate_candidates(small("interconnect.name=rdma", f"search.interconnect=[{named}]"))
    assert info.value.field == "search.interconnect[0].name"
    assert info.value.value == "rdma"


def test_a_slower_link_lowers_the_link_bound_by_bytes_over_bandwidth() -> None:
    base = with_alternatives()
    sample = WorkloadSample.of(base)
    mean_bytes = float(sample.input.mean()) * KV_BYTES_PER_TOKEN
    efficiency = hetsim.load_profile("nvidia-h100-sxm").efficiency.network.value
    cands = [
        c
        for c in enumerate_candidates(base)
        if c.kind == "disaggregated"
        and c.roles["decode"].accelerator == "nvidia-h100-sxm"
        and c.roles["decode"].instances == 2
        and c.roles["decode"].kv == "bf16"
        and c.roles["prefill"].instances == 1
    ]
    bounds = {c.interconnect: screen(c.scenario, sample).bounds for c in cands}
    # shared_by destination_instance: one link per decode instance, two of them
    assert bounds["eth-100g"]["link eth"] == pytest.approx(2 * 12.5e9 * efficiency / mean_bytes)
    assert bounds["as written"]["link rdma"] == pytest.approx(2 * 50e9 * efficiency / mean_bytes)
    assert bounds["roce-2x400g"]["link roce"] == pytest.approx(2 * 100e9 * efficiency / mean_bytes)


def _screen(bounds: dict[str, float]) -> ScreenResult:
    bound_by = min(bounds, key=bounds.__getitem__)
    return ScreenResult(bounds[bound_by], bound_by, bounds, bounds[bound_by], 1.0, 0.1, 0.01)


def test_network_note_says_whether_a_link_binds_and_what_the_others_are_worth() -> None:
    cands = {
        c.interconnect: c
        for c in candidates()
        if c.kind == "disaggregated" and c.id < 3  # the first deployment, over each link
    }
    as_written = CandidateResult(
        cands["as written"], Verdict.RECOMMENDED, cost_per_hour=4.0, goodput=2.0, objective=1800.0,
        screen=_screen({"decode": 3.0, "link rdma": 5.0}),
    )  # fmt: skip
    slow = CandidateResult(
        cands["eth-100g"], Verdict.BEATEN, "its link bound", cost_per_hour=4.0,
        screen=_screen({"decode": 3.0, "link eth": 1.0}),
    )  # fmt: skip
    fast = CandidateResult(
        cands["roce-2x400g"], Verdict.RANKED, cost_per_hour=4.75, goodput=3.0,
        objective=3.0 * 3600 / 4.75, screen=_screen({"decode": 3.0, "link roce": 10.0}),
    )  # fmt: skip
    results = [as_written, slow, fast]
    notes = network_notes(results, [as_written, fast], Objective.GOODPUT_PER_DOLLAR)
    assert [n.id for n in notes] == [as_written.id, fast.id]
    note = notes[0]
    assert not note.binding and note.bound_by == "decode" and note.link_bound == 5.0
    options = {o.interconnect: o for o in note.options}
    # measured: (3 req/s * 3600 / $4.75) / 1800 - 1
    assert options["roce-2x400g"].change == pytest.approx(3.0 * 3600 / 4.75 / 1800 - 1)
    # not measured: no change, the most its binding (link) bound allows: 1 req/s * 3600 / $4
    assert math.isnan(options["eth-100g"].change)
    assert options["eth-100g"].objective_bound == pytest.approx(900.0)
    lines = note.lines("requests per $")
    assert lines[0] == f"#{as_written.id} {as_written.label}"
    assert lines[1].startswith("over as written, no link binds it (bound by decode")
    assert "with eth-100g instead of as written: beaten, at most 900 requests per $" in lines[2]
    assert "with roce-2x400g instead of as written: +26.3% requests per $" in lines[3]
    # the fast one measured, the as-written one its sibling
    assert {o.interconnect for o in notes[1].options} == {"as written", "eth-100g"}


def test_a_link_that_is_the_smallest_bound_binds() -> None:
    c = next(c for c in candidates() if c.id == 1)
    r = CandidateResult(
        c, Verdict.RECOMMENDED, cost_per_hour=4.0, goodput=0.9, objective=810.0,
        screen=_screen({"decode": 3.0, "link eth": 1.0}),
    )  # fmt: skip
    (note,) = network_notes([r], [r], Objective.GOODPUT_PER_DOLLAR)
    assert note.binding and note.bound_by == "link eth"
    assert note.lines("requests per $")[1] == "over eth-100g, a link binds it (link eth: 1 req/s)"


def test_no_note_without_alternatives() -> None:
    c = next(c for c in enumerate_candidates(small()) if c.kind == "disaggregated")
    r = replace(CandidateResult(c, Verdict.RECOMMENDED), objective=1.0)
    assert network_notes([r], [r], Objective.GOODPUT_PER_DOLLAR) == []


def test_plan_json_lists_the_network_notes_and_the_csv_names_each_interconnect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hetsim.cli import render
    from hetsim.planner.results import PlanResult

    base = with_alternatives()
    cands = [c for c in candidates() if c.id < 3]
    best = CandidateResult(
        cands[0], Verdict.RECOMMENDED, cost_per_hour=4.0, goodput=2.0, objective=1800.0,
        screen=_screen({"decode": 3.0, "link rdma": 5.0}),
    )  # fmt: skip
    others = [CandidateResult(c, Verdict.BEATEN, "slower", cost_per_hour=4.0) for c in cands[1:]]
    result = PlanResult(base, Objective.GOODPUT_PER_DOLLAR, [best, *others], best, None, {})
    data = result.to_dict()
    (note,) = data["network"]
    assert note["id"] == best.id and note["binding"] is False
    assert [o["interconnect"] for o in note["options"]] == ["eth-100g", "roce-2x400g"]
    assert note["options"][0]["objective"] is None  # not measured: null, not NaN
    assert list(result.to_frame()["interconnect"]) == ["as written", "eth-100g", "roce-2x400g"]
    render.network(result)
    printed = capsys.readouterr().out
    assert "network:" in printed and "with roce-2x400g instead of as written: beaten" in printed


def test_the_link_figure_draws_each_reference_and_marks_a_link_without_goodput() -> None:
    import pandas as pd

    from hetsim.report.plots import per_dollar_vs_link

    links = pd.DataFrame({"label": ["slow", "fast", "faster"],
                          "bandwidth_Bps": [12.5e9, 50e9, 200e9],
                          "per_dollar": [0.0, 21.0, 37.0]})  # fmt: skip
    fig = per_dollar_vs_link(links, {"all-H200": 41.2, "colocated": 66.4})
    ax = fig.axes[0]
    levels = sorted(line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--")
    assert levels == [41.2, 66.4]
    served = next(line for line in ax.lines if line.get_label() == "over the link")
    assert list(served.get_ydata()) == [21.0, 37.0]  # the link with no goodput is not on it
    assert ax.collections[0].get_offsets().tolist() == [[12.5, 0.0]]


def test_interconnect_alternatives_on_a_colocated_scenario_are_refused() -> None:
    with pytest.raises(InputError) as info:  # with the scenario: `hetsim check` says so too
        hetsim.load_scenario(
            "scenarios/qwen3-32b-colocated.yaml",
            [f"search.interconnect=[{FAST}]", "workload.synthetic.requests=20"],
        )
    assert info.value.field == "search.interconnect"
    assert info.value.value == "roce-2x400g"
