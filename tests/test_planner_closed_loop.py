"""Goodput and plan on a closed loop: the search varies the concurrency (clients), not a rate,
and reports the SLA-meeting throughput at the largest concurrency that meets the SLA."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.planner.goodput import ConcurrencyGrid, requests_per_client, with_concurrency
from hetsim.spec._types import MAX_CLIENTS

SCENARIO = Path(__file__).parent.parent / "scenarios" / "closed-loop-llama70b-h200.yaml"


def tiny(sla: dict | None = None, **loop) -> hetsim.Scenario:
    """tiny-llama on one H100: 4 clients, 3 requests each (a run takes milliseconds)."""
    spec = {"concurrency": 4, "requests": 12, "input_tokens": 512, "output_tokens": 64}
    spec.update(loop)
    return hetsim.scenario_from_dict(
        {
            "name": "closed-loop-goodput",
            "model": "tiny-llama",
            "pools": [
                {
                    "name": "serve",
                    "role": "colocated",
                    "accelerator": "nvidia-h100-sxm",
                    "batching": {"max_num_seqs": 64, "max_batched_tokens": 4096},
                }
            ],
            "workload": {"closed_loop": spec},
            # alone a request takes ~2 ms to its first token and ~2 ms per token after: the
            # TTFT bound is met until a few dozen clients queue their prompts together
            "sla": sla or {"ttft": "20 ms", "tpot": "5 ms"},
            "seed": 3,
        }
    )


def test_the_concurrency_grid_is_every_integer_then_rounded_powers() -> None:
    values = ConcurrencyGrid(0.1).values
    # below 1/0.1 every integer; then round(1.1^j): 1.1^25 = 10.8, 11.9, 13.1, 14.4, 15.9, 17.4
    assert values[:16] == (*range(1, 15), 16, 17)
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] <= MAX_CLIENTS < round(values[-1] * 1.1)
    grid = ConcurrencyGrid(0.1)
    assert grid.concurrency(grid.floor(15)) == 14 and grid.concurrency(grid.ceil(15)) == 16
    assert grid.floor(0.5) == 0 and grid.ceil(10**9) == grid.top


def test_each_concurrency_keeps_the_requests_per_client_and_the_warmup_share() -> None:
    sc = tiny(requests=12)
    assert requests_per_client(sc) == 3
    assert requests_per_client(sc, max_requests=20) == 5  # a cap stated at 4 clients
    data = sc.spec.model_dump(by_alias=True, exclude_none=True)
    data["workload"]["warmup_requests"] = 4  # a third of the requests
    wide = with_concurrency(hetsim.scenario_from_dict(data), 10, 3)
    assert wide.spec.workload.closed_loop.concurrency == 10
    assert wide.spec.workload.closed_loop.requests == 30
    assert wide.spec.workload.warmup_requests == 10


def test_goodput_of_a_closed_loop_is_the_throughput_at_the_largest_concurrency_meeting_the_sla():
    r = hetsim.goodput(tiny())
    grid = ConcurrencyGrid(0.1)
    assert r.axis == "concurrency" and r.requests_per_client == 3 and not r.at_limit
    assert r.concurrency in grid.values
    s = r.summary
    assert s.requests == 3 * r.concurrency
    # requests meeting the SLA (the verdict's count) over the measured span
    assert r.rate == pytest.approx(s.attainment * s.requests / s.span_s)
    assert 0 < r.rate <= s.requests / s.span_s
    by_n = {p["concurrency"]: p for p in r.points}
    assert by_n[r.concurrency]["meets"] and by_n[r.concurrency]["chosen"]
    assert r.attainment >= r.target
    above = grid.concurrency(grid.floor(r.concurrency) + 1)
    assert by_n[above]["attainment"] < r.target  # one grid step up misses
    assert [p["concurrency"] for p in r.points if p["chosen"]] == [r.concurrency]
    frame = r.to_frame()
    assert list(frame["concurrency"]) == sorted(by_n)
    # a closed loop has no rate to reach
    with pytest.raises(ValueError, match="concurrency"):
        hetsim.goodput(tiny(), must_reach=1.0)


def test_a_loose_sla_stops_at_the_search_limit_as_a_lower_bound() -> None:
    r = hetsim.goodput(tiny(sla={"ttft": "10 s", "tpot": "1 s"}), high=8)
    assert r.at_limit and r.concurrency == 8 and r.summary.requests == 24


def test_plan_of_a_closed_loop_reports_its_concurrency() -> None:
    result = hetsim.plan(tiny(), workers=1)
    best = result.best
    assert best is not None and best.concurrency is not None
    assert best.label.endswith(f"at concurrency {best.concurrency}")
    assert result.settings["search_axis"] == "concurrency"
    assert result.settings["requests_per_client"] == 3
    row = result.to_dict()["best"]
    assert row["concurrency"] == best.concurrency == row["metrics"]["goodput_concurrency"]


def test_a_closed_loop_no_deployment_can_serve_gives_the_no_candidate_exit(tmp_path) -> None:
    # a prompt of 512 tokens cannot reach its first token in 1 µs
    result = hetsim.plan(tiny(sla={"ttft": "1 us", "tpot": "5 ms"}), workers=1)
    assert result.best is None
    assert result.explain_failure().startswith("No candidate meets the SLA")
    # alone a prompt takes 2.0 ms to its first token: past the screen (which allows 5% for
    # its closed forms), then simulated down to a single client, which misses too
    narrow = tiny(sla={"ttft": "1.95 ms", "tpot": "5 ms"})
    r = hetsim.goodput(narrow)
    assert r.rate == 0 and r.concurrency is None
    assert min(p["concurrency"] for p in r.points) == 1
    result = hetsim.plan(narrow, workers=1)
    assert result.best is None
    assert result.results[0].reason.startswith("misses the SLA even at concurrency 1 (")
    path = tmp_path / "impossible.yaml"
    path.write_text(SCENARIO.read_text())
    out = CliRunner().invoke(app, ["plan", str(path), "--set", "sla.ttft=1us", "--workers", "1"])
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output


def test_hetsim_plan_runs_the_bundled_closed_loop_scenario() -> None:
    out = CliRunner().invoke(app, ["plan", str(SCENARIO), "--requests", "64", "--workers", "1"])
    assert out.exit_code == 0, out.output
    assert "closed loop: searched the concurrency" in out.output
    assert "1 request(s) per client" in out.output
    assert "at concurrency" in out.output
