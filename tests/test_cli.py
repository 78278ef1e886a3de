"""The ``hetsim`` command line, run as a user runs it: a subprocess, JSON on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIO = "scenarios/qwen3-32b-6p2d.yaml"


def hetsim(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hetsim", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def ok_json(*args: str) -> Any:
    result = hetsim(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_profiles_json_lists_the_h100() -> None:
    profiles = ok_json("profiles", "--json")
    assert isinstance(profiles, list)
    by_name = {p["name"]: p for p in profiles}
    assert "nvidia-h100-sxm" in by_name
    h100 = by_name["nvidia-h100-sxm"]
    assert "fp8_e4m3" in h100["formats"]["kv"]
    assert h100["price_per_hour"]["confidence"] == "assumption"


def test_models_json_reports_derived_quantities() -> None:
    models = {m["name"]: m for m in ok_json("models", "--json")}
    assert {"Qwen3-32B", "tiny-llama"} <= set(models)
    qwen = models["Qwen3-32B"]
    assert qwen["params_total"] == pytest.approx(32.8e9, rel=0.01)
    assert qwen["params_active"] == qwen["params_total"]  # dense
    kv = qwen["kv_bytes_per_token"]
    assert kv["bf16"] == 262144  # 2 (K, V) · 64 layers · 8 KV heads · 128 · 2 bytes
    assert kv["fp8_e4m3"] == 131072
    assert set(kv) >= {"bf16", "fp16", "fp8_e4m3", "int8", "int4"}


def test_models_with_a_custom_config(tmp_path: Path) -> None:
    config = json.loads((REPO / "hetsim/model_configs/tiny-llama.json").read_text())
    config.pop("_hetsim_meta")
    (tmp_path / "my-llama").mkdir()
    (tmp_path / "my-llama" / "config.json").write_text(json.dumps(config))
    models = {
        m["name"]: m
        for m in ok_json("models", "--json", "--config", str(tmp_path / "my-llama" / "config.json"))
    }
    assert models["my-llama"]["layers"] == 4
    # 2 · 4 layers · 2 KV heads · 32 · 2 bytes
    assert models["my-llama"]["kv_bytes_per_token"]["bf16"] == 1024


def test_schema_is_json_schema_of_the_scenario() -> None:
    schema = ok_json("schema")
    assert schema["type"] == "object"
    assert {"pools", "workload", "sla", "search"} <= set(schema["properties"])
    assert {"name", "model", "pools", "workload", "sla"} <= set(schema["required"])


def test_schema_out_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "scenario.schema.json"
    result = hetsim("schema", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "pools" in json.loads(out.read_text())["properties"]


def test_check_json_reports_kv_capacity() -> None:
    info = ok_json("check", SCENARIO, "--json")
    assert info["scenario"] == "qwen3-32b-6p2d"
    assert [p["name"] for p in info["pools"]] == ["prefill", "decode"]
    for pool in info["pools"]:
        assert pool["memory"]["kv_capacity_tokens"] > 0
        assert pool["kv_bytes_per_token"] == 262144
    assert info["devices"] == 8
    assert info["paths"][0]["from"] == "prefill" and info["paths"][0]["to"] == "decode"


def test_check_set_override_shows_in_json() -> None:
    base = ok_json("check", SCENARIO, "--json")
    info = ok_json(
        "check", SCENARIO, "--json", "--set", "pools.decode.instances=3", "--set", "sla.ttft=1.5 s"
    )
    decode = {p["name"]: p for p in info["pools"]}["decode"]
    assert decode["instances"] == 3
    assert info["devices"] == base["devices"] + 1
    assert info["cost_per_hour"] > base["cost_per_hour"]
    assert info["sla"]["ttft"] == pytest.approx(1.5)


def test_check_table_output() -> None:
    result = hetsim("check", SCENARIO)
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout
    assert "Qwen3-32B" in result.stdout


def test_check_table_shows_hop_efficiency_and_both_kv_byte_counts() -> None:
    # MLA with decode TP 8: the network carries one latent copy per decode rank
    result = hetsim("check", "scenarios/cphd-glm51.yaml")
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split("KV transfer paths")[1].split("KV portability")[0]
    assert "359,424" in paths and "44,928" in paths
    roce_tx = next(line for line in paths.splitlines() if "roce-tx" in line)
    assert all(cell in roce_tx for cell in ("200 GB/s", "0.75", "profile‡", "150 GB/s"))
    assert "‡ hop efficiency from the source pool profile's efficiency.network" in result.stdout


def test_check_prints_names_that_look_like_markup(tmp_path: Path) -> None:
    """User text such as "[/x]" is printed as written, not parsed as rich markup."""
    data = yaml.safe_load((REPO / SCENARIO).read_text())
    data["name"] = "run[/x]"
    path = tmp_path / "odd[name].yaml"
    path.write_text(yaml.safe_dump(data))
    result = hetsim("check", str(path))
    assert result.returncode == 0, result.stderr
    assert "run[/x]" in result.stdout
    assert "odd[name].yaml" in result.stdout


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("check",), "Missing argument"),
        (("check", SCENARIO, "--bogus"), "No such option"),
        (("frobnicate",), "No such command"),
    ],
    ids=["missing-argument", "unknown-option", "unknown-command"],
)
def test_usage_errors_exit_2_without_traceback(args: tuple[str, ...], expect: str) -> None:
    result = hetsim(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert expect in result.stderr


def test_help_exits_0() -> None:
    result = hetsim("check", "--help")
    assert result.returncode == 0, result.stderr
    assert "--set" in result.stdout


def test_plan_with_a_bad_file_exits_2(tmp_path: Path) -> None:
    result = hetsim("plan", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "missing.yaml" in result.stderr and "not found" in result.stderr
