"""plan.html as a reviewer reads it: one self-contained page whose tables carry display names
and units, stating the recommendation, what bounds it and how robust it is."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

import hetsim
from hetsim.planner.objective import Objective
from hetsim.report.display import (
    accelerator_aliases,
    objective_heading,
    objective_text,
    plain,
    plain_numbers,
)
from hetsim.report.planning import write_plan_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# four disaggregated candidates, the colocated baselines and yours, 300 requests: seconds
SMALL = [
    "workload.synthetic.requests=300",
    "search.prefill.instances=[1]",
    "search.decode.kv=[bf16]",
]


class _Page(HTMLParser):
    """Each <h2> section's text, table headings and rows, and every <img> src."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.images: list[str] = []
        self.tags: list[str] = []
        self._current: dict | None = None
        self._in: str | None = None
        self._cell: list[str] = []
        self._new_row = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "h2":
            self._in = "h2"
            self._current = {"heading": "", "text": "", "columns": [], "rows": []}
        elif tag in ("th", "td"):
            self._in, self._cell = tag, []
            if tag == "td" and self._new_row and self._current is not None:
                self._current["rows"].append([])
            self._new_row = False
        elif tag == "tr":
            self._new_row = True

    def handle_endtag(self, tag):
        if tag == "h2" and self._current is not None:
            self.sections[self._current["heading"]] = self._current
            self._in = None
        elif tag in ("th", "td") and self._current is not None:
            cell = "".join(self._cell).strip()
            if tag == "th":
                self._current["columns"].append(cell)
            else:
                self._current["rows"][-1].append(cell)
            self._in = None

    def handle_data(self, data):
        if self._current is None:
            return
        if self._in == "h2":
            self._current["heading"] += data
        elif self._in in ("th", "td"):
            self._cell.append(data)
        self._current["text"] += data


@pytest.fixture(scope="module")
def plan_page(tmp_path_factory):
    result = hetsim.plan(hetsim.load_scenario("tests/data/plan-small.yaml", SMALL), workers=1)
    path = write_plan_report(result, tmp_path_factory.mktemp("plan"))
    page = path.read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(page)
    return result, page, parser


def test_plan_html_stands_alone_with_every_figure_embedded(plan_page):
    _, page, parser = plan_page
    assert path_free(page)
    assert "script" not in parser.tags and "link" not in parser.tags
    result = plan_page[0]
    assert result.own is not result.best and result.own.points
    # the recommendation's rate sweep, yours and the Pareto figure
    assert len(parser.images) == 3
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_SIGNATURE


def path_free(page: str) -> bool:
    return not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|file:)?//""", page, re.I)


def test_plan_html_tables_use_display_names_and_human_units(plan_page):
    result, page, parser = plan_page
    ranked = parser.sections["Ranked candidates"]
    assert ranked["columns"][:4] == ["#", "", "deployment", "goodput (req/s)"]
    for heading in ("req/$", "cost ($/h)", "TTFT p90 (ms)", "TPOT p90 (ms)",
                    "$ per M output tokens"):  # fmt: skip
        assert heading in ranked["columns"]
    text = re.sub(r'src="data:[^"]*"', "", page)
    for raw in ("ttft_p_s", "tpot_p_s", "cost_per_million_tokens", "nvidia-h1…"):
        assert raw not in text
    assert not re.search(r"\d\.?\d*e[+-]\d", text)  # no 1.807e+04
    # the best's row: its id, its goodput in plain digits, its TTFT in ms
    best = result.best
    row = next(r for r in ranked["rows"] if r[0] == str(best.id))
    assert row[1] == "recommended"
    ttft_ms = best.summary.ttft_at_sla_percentile_s * 1e3
    assert row[ranked["columns"].index("TTFT p90 (ms)")] == plain(ttft_ms)
    assert "h100-sxm" in row[2] and "nvidia-" not in row[2]


def test_plan_html_states_the_recommendation_its_bound_and_its_robustness(plan_page):
    result, _, parser = plan_page
    best = result.best
    assert [h for h in parser.sections][:5] == [
        "What was asked",
        "Recommendation: what and why",
        "What bounds it",
        "How robust it is",
        "What was assumed",
    ]
    recommended = parser.sections["Recommendation: what and why"]["text"]
    assert f"Deployment #{best.id}" in recommended and best.label in recommended
    assert f"{plain(best.goodput)} req/s" in recommended
    bounds = parser.sections["What bounds it"]
    assert len(bounds["rows"]) == len(best.points)  # every simulated rate
    # what stops it: its capacity bound, the rate above that missed, or how the search ended
    stops = ("bound of", "one grid step above its goodput", "Its goodput search ended at")
    assert any(phrase in bounds["text"] for phrase in stops)
    robust = result.robustness()
    section = parser.sections["How robust it is"]["text"]
    assert robust.verdict.capitalize() in section
    for b in robust.break_even:
        assert b.assumption in section and f"#{b.overtaken_by}" in section
    assert f"Yours (#{result.own.id}" in section
    assert "Price basis: prices on a rental basis" in parser.sections["What was assumed"]["text"]


def test_plan_html_without_a_recommendation_says_why(tmp_path):
    # no deployment serves a 10 ms TTFT: even alone a prompt takes longer
    overrides = [*SMALL, "sla.ttft=10 ms", "search.decode.accelerators=[nvidia-h100-sxm]"]
    result = hetsim.plan(hetsim.load_scenario("tests/data/plan-small.yaml", overrides), workers=1)
    assert result.best is None
    parser = _Page()
    parser.feed(write_plan_report(result, tmp_path).read_text(encoding="utf-8"))
    assert "What bounds it" not in parser.sections and "How robust it is" not in parser.sections
    why = parser.sections["No deployment meets the SLA"]["text"]
    assert result.explain_failure().splitlines()[0] in why
    # no recommended sweep to draw: yours (every rate it missed at) and the Pareto figure
    assert result.own.points and "Yours at each simulated rate" in parser.sections
    assert len(parser.images) == 2


def test_numbers_read_in_plain_digits_with_separators():
    assert plain(18072.4) == "18,072"
    assert plain(34.0039) == "34.0"
    assert plain(0.44949) == "0.449"
    assert plain(float("nan")) == "–"
    assert plain_numbers("ties with #14 (1.658e+04) at 2e-3") == "ties with #14 (16,580) at 0.00200"
    assert plain_numbers("#1234 gives at most 7940 requests per $") == (
        "#1234 gives at most 7,940 requests per $"
    )


def test_cheapest_for_rate_shows_the_price_not_its_negative():
    assert objective_heading(Objective.CHEAPEST_FOR_RATE) == "$/h (lower wins)"
    assert objective_text(Objective.CHEAPEST_FOR_RATE, -12.5) == "12.50"
    assert objective_text(Objective.CHEAPEST_FOR_RATE, -12.5, unit=True) == "$12.50/h"
    assert objective_text(Objective.GOODPUT_PER_DOLLAR, 18072.4, unit=True) == (
        "18,072 requests per $"
    )


def test_accelerator_aliases_drop_the_vendor_unless_two_would_collide():
    class P:
        def __init__(self, name: str, vendor: str) -> None:
            self.name, self.vendor = name, vendor

    aliases = accelerator_aliases(
        [
            P("nvidia-h100-sxm", "NVIDIA"),
            P("cpu-host", "Generic"),
            P("amd-x1", "AMD"),
            P("acme-x1", "Acme"),
        ]  # fmt: skip
    )
    assert aliases == {
        "nvidia-h100-sxm": "h100-sxm",
        "cpu-host": "cpu-host",
        "amd-x1": "amd-x1",
        "acme-x1": "acme-x1",
    }
