"""``plan --out``'s runnable output: ``best.yaml`` replays the plan's goodput run exactly, and
the launch templates carry the winner's parallelism and formats in the runtimes' own flags —
or say what they could not map."""

from __future__ import annotations

import dataclasses
import shlex
import shutil

import pytest
import yaml

import hetsim
from hetsim.report import best_scenario, write_launch
from hetsim.report.launch import TEMPLATE

# small plans (one or two candidates, 200 requests per run): seconds each
DISAGGREGATED = [
    "workload.synthetic.requests=200",
    "search.prefill.instances=[2]",
    "search.decode.instances=[1]",
    "search.decode.accelerators=[nvidia-h20]",
    "search.decode.kv=[fp8_e4m3]",
    "search.colocated=false",
]
COLOCATED = [
    "workload.synthetic.requests=200",
    "search.prefill.instances=[1]",
    "search.decode.instances=[1]",
    "search.decode.accelerators=[nvidia-h100-sxm]",
    "search.decode.kv=[bf16]",
]


def _plan(overrides: list[str], path: str = "tests/data/plan-small.yaml") -> hetsim.PlanResult:
    result = hetsim.plan(hetsim.load_scenario(path, overrides), workers=1)
    assert result.best is not None
    return result


@pytest.fixture(scope="module")
def disaggregated(tmp_path_factory):
    result = _plan(DISAGGREGATED)
    assert result.best.candidate.kind == "disaggregated"
    out = tmp_path_factory.mktemp("disaggregated")
    return result, out, write_launch(result, out)


def _serve_lines(text: str, program: str) -> list[list[str]]:
    return [shlex.split(line) for line in text.splitlines() if line.startswith(program)]


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _assert_replays(result: hetsim.PlanResult, path, requests: int | None = None) -> None:
    """The scenario file re-validates and simulating it gives the plan's goodput-run figures
    exactly: same deployment, rate, seed and requests, so the same run."""
    scenario = hetsim.load_scenario(path)
    assert scenario.spec.search is None
    replay = hetsim.simulate(scenario, max_requests=requests).summary
    planned = result.best.summary
    assert replay.attainment == result.best.attainment
    assert replay.ttft_s == planned.ttft_s
    assert replay.tpot_s == planned.tpot_s
    assert replay.completed == planned.completed


def test_best_yaml_replays_the_winners_goodput_run(disaggregated):
    result, out, written = disaggregated
    assert {p.relative_to(out).as_posix() for p in written} == {
        "best.yaml", "launch/vllm.sh", "launch/sglang.sh", "launch/dynamo.yaml",
    }  # fmt: skip
    _assert_replays(result, out / "best.yaml")
    data = yaml.safe_load((out / "best.yaml").read_text())
    assert data["workload"]["synthetic"]["rate"] == f"{result.best.goodput!r} req/s"
    header = (out / "best.yaml").read_text().split("\nname:")[0]
    assert f"candidate #{result.best.id}" in header and "hetsim simulate best.yaml" in header
    assert "Assumed prices" in header  # the profiles' prices, not the scenario's own


def test_the_planner_request_cap_is_written_into_the_synthetic_workload(disaggregated):
    result, _, _ = disaggregated
    capped = hetsim.plan(
        hetsim.load_scenario("tests/data/plan-small.yaml", DISAGGREGATED), workers=1,
        max_requests=120,
    )  # fmt: skip
    assert best_scenario(capped)["workload"]["synthetic"]["requests"] == 120


def test_vllm_and_sglang_servers_carry_the_winners_parallelism_and_formats(disaggregated):
    _, out, _ = disaggregated
    prefill, decode = _serve_lines((out / "launch/vllm.sh").read_text(), "vllm serve")
    assert _flag(prefill, "--tensor-parallel-size") == "1"
    assert _flag(prefill, "--kv-cache-dtype") == "bfloat16"
    assert _flag(decode, "--kv-cache-dtype") == "fp8_e4m3"
    assert _flag(decode, "--max-num-seqs") == "64"
    config = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    assert yaml.safe_load(_flag(decode, "--kv-transfer-config")) == config
    p, d = _serve_lines((out / "launch/sglang.sh").read_text(), "python -m sglang.launch_server")
    assert _flag(p, "--disaggregation-mode") == "prefill"
    assert _flag(d, "--disaggregation-mode") == "decode"
    assert _flag(d, "--disaggregation-transfer-backend") == "mooncake"
    assert _flag(d, "--kv-cache-dtype") == "fp8_e4m3" and _flag(d, "--tp-size") == "1"
    for name in ("vllm.sh", "sglang.sh", "dynamo.yaml"):
        text = (out / "launch" / name).read_text()
        assert TEMPLATE in text
        # prefill bf16 and decode fp8 KV: hetsim costed a conversion the connectors lack
        assert "KV formats differ across the boundary" in text


def test_the_dynamo_graph_has_a_worker_per_pool_with_its_instances(disaggregated):
    _, out, _ = disaggregated
    graph = yaml.safe_load((out / "launch/dynamo.yaml").read_text())
    assert graph["kind"] == "DynamoGraphDeployment"
    services = graph["spec"]["services"]
    assert set(services) == {"Frontend", "VllmPrefillWorker", "VllmDecodeWorker"}
    assert services["VllmPrefillWorker"]["replicas"] == 2
    assert services["VllmDecodeWorker"]["replicas"] == 1
    args = services["VllmDecodeWorker"]["extraPodSpec"]["mainContainer"]["args"]
    assert _flag(args, "--disaggregation-mode") == "decode"
    assert _flag(args, "--kv-cache-dtype") == "fp8_e4m3"


def test_a_colocated_winner_gets_aggregated_servers(tmp_path):
    result = _plan(COLOCATED)
    assert result.best.candidate.kind == "colocated"
    write_launch(result, tmp_path)
    _assert_replays(result, tmp_path / "best.yaml")
    vllm = (tmp_path / "launch/vllm.sh").read_text()
    sglang = (tmp_path / "launch/sglang.sh").read_text()
    (serve,) = _serve_lines(vllm, "vllm serve")
    assert "--kv-transfer-config" not in serve and "--enable-chunked-prefill" in serve
    assert "--disaggregation-mode" not in sglang
    # simulated with prompt chunks beside the decodes (no runtime): SGLang must be told to mix
    (sglang_serve,) = _serve_lines(sglang, "python -m sglang.launch_server")
    assert "--enable-mixed-chunk" in sglang_serve
    services = yaml.safe_load((tmp_path / "launch/dynamo.yaml").read_text())["spec"]["services"]
    assert set(services) == {"Frontend", "VllmWorker"}
    assert services["VllmWorker"]["replicas"] == result.best.candidate.roles["serve"].instances


def test_a_non_nvidia_pool_gets_a_not_mapped_note_instead_of_flags(tmp_path):
    overrides = [*DISAGGREGATED[:3], "search.decode.accelerators=[amd-mi300x]",
                 "search.decode.kv=[bf16]", "search.colocated=false"]  # fmt: skip
    result = _plan(overrides)
    write_launch(result, tmp_path)
    vllm = (tmp_path / "launch/vllm.sh").read_text()
    assert "NOT MAPPED: pool decode runs on" in vllm and "ROCm" in vllm
    assert len(_serve_lines(vllm, "vllm serve")) == 1  # the NVIDIA prefill pool only
    services = yaml.safe_load((tmp_path / "launch/dynamo.yaml").read_text())["spec"]["services"]
    assert "VllmDecodeWorker" not in services and "VllmPrefillWorker" in services


def test_a_trace_path_resolves_from_the_output_folder(tmp_path):
    """A trace named relative to the scenario is written absolute, and the replay command
    carries the planner's request cap (a trace has no field for it)."""
    here = tmp_path / "scenario"
    here.mkdir()
    shutil.copy("tests/data/azure_code_2k.csv", here / "trace.csv")
    with open("tests/data/plan-small.yaml") as f:
        data = yaml.safe_load(f)
    data["workload"] = {"trace": {"path": "trace.csv", "format": "azure", "target_rate": "2 req/s"}}
    data["search"] = {"prefill": {"instances": [1]}, "decode": {"instances": [1], "kv": ["bf16"]},
                      "colocated": False, "max_requests": 150}  # fmt: skip
    (here / "s.yaml").write_text(yaml.safe_dump(data))
    result = _plan([], str(here / "s.yaml"))
    out = tmp_path / "out"
    write_launch(result, out)
    trace = yaml.safe_load((out / "best.yaml").read_text())["workload"]["trace"]
    assert trace["path"] == str((here / "trace.csv").resolve())
    assert "hetsim simulate best.yaml --requests 150" in (out / "best.yaml").read_text()
    _assert_replays(result, out / "best.yaml", requests=150)


def test_no_recommendation_writes_nothing(disaggregated, tmp_path):
    result, _, _ = disaggregated
    assert write_launch(dataclasses.replace(result, best=None), tmp_path) == []


def test_a_closed_loop_winner_replays_at_its_concurrency(tmp_path):
    """tiny-llama on one H100, 4 clients x 3 requests: the file holds the concurrency the
    goodput was measured at, with the same requests per client."""
    scenario = hetsim.scenario_from_dict(
        {
            "name": "closed-loop-export",
            "model": "tiny-llama",
            "pools": [{"name": "serve", "role": "colocated", "accelerator": "nvidia-h100-sxm"}],
            "workload": {
                "closed_loop": {
                    "concurrency": 4,
                    "requests": 12,
                    "input_tokens": 512,
                    "output_tokens": 64,
                }  # fmt: skip
            },
            "sla": {"ttft": "20 ms", "tpot": "5 ms"},
            "seed": 3,
        }
    )
    result = hetsim.plan(scenario, workers=1)
    assert result.best is not None and result.best.concurrency is not None
    write_launch(result, tmp_path)
    loop = yaml.safe_load((tmp_path / "best.yaml").read_text())["workload"]["closed_loop"]
    assert loop["concurrency"] == result.best.concurrency
    assert loop["requests"] == 3 * result.best.concurrency
    _assert_replays(result, tmp_path / "best.yaml")
