"""`hetsim calibrate --from aiconfigurator` and a pool's `runtime:` from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hetsim.perf.measured import read_tables_file

REPO = Path(__file__).resolve().parents[1]
EXCERPT = REPO / "tests" / "data" / "measured"


def hetsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hetsim", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)  # fmt: skip


def scenario(tmp_path: Path, accelerator: str, runtime: str | None) -> Path:
    data = yaml.safe_load((REPO / "scenarios" / "qwen3-32b-colocated.yaml").read_text())
    pool = data["pools"][0]
    pool.update(accelerator=accelerator, instances=1)
    if runtime:
        pool["runtime"] = runtime
    data["workload"]["synthetic"].update(requests=40, rate="1 req/s")
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_calibrate_from_aiconfigurator_writes_one_file_readable_without_the_extra(tmp_path):
    out = tmp_path / "h200-vllm.npz"
    result = hetsim("calibrate", "--from", "aiconfigurator", "--tables", str(EXCERPT),
                    "--system", "h200_sxm", "--runtime", "vllm", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "measured:h200_sxm/vllm-0.24.0" in result.stdout
    tables = read_tables_file(out)
    assert (tables.system, tables.runtime, tables.version) == ("h200_sxm", "vllm", "0.24.0")
    assert len(tables.rows["gemm"]) == 3388 and len(tables.rows["allreduce"]) == 69


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("--version", "0.1"), "allowed: 0.24.0"),
        (("--runtime", "tgi"), "allowed: vllm, sglang, trtllm"),
        (("--from", "guess"), "allowed: microkernels, aiconfigurator"),
    ],
)
def test_calibrate_from_aiconfigurator_input_errors_exit_2(tmp_path, args, expect):
    base = {"--from": "aiconfigurator", "--tables": str(EXCERPT), "--system": "h200_sxm",
            "--runtime": "vllm", "--out": str(tmp_path / "t.npz")}  # fmt: skip
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = hetsim("calibrate", *[x for kv in base.items() for x in kv])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expect in result.stderr


def test_a_runtime_on_a_profile_without_tables_exits_2_naming_the_fix(tmp_path):
    result = hetsim("simulate", str(scenario(tmp_path, "nvidia-h20", "vllm")))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "measured_tables" in result.stderr and "drop `runtime:`" in result.stderr


def test_simulate_with_runtime_uses_the_installed_tables(tmp_path):
    pytest.importorskip("aiconfigurator_core")
    result = hetsim("simulate", str(scenario(tmp_path, "nvidia-h200-sxm", "vllm")), "--json")
    assert result.returncode in (0, 1), result.stderr  # 1: the SLA is not met, still a result
    assert "Traceback" not in result.stderr
