"""Command-line inputs that used to be ignored or end in a traceback are input errors (exit 2,
the flag or field named), and a profile path means the same file wherever the command runs
(found by fuzzing the CLI and custom profiles)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import hetsim
from hetsim.cli import app
from hetsim.errors import InputError

REPO = Path(__file__).resolve().parents[1]
LSS = REPO / "tests" / "data" / "bench" / "llmservingsim" / "RTX4090-Llama-3.1-8B"
LSS_SCENARIO = REPO / "tests" / "data" / "bench" / "scenarios" / "rtx4090-llama8b.yaml"
AZURE = REPO / "tests" / "data" / "azure_code_2k.csv"


def refused(*args: str) -> InputError:
    # outputs go nowhere: should a refusal regress, the run must not litter the checkout
    args = tuple(a.replace("OUT/", "/nonexistent-hetsim-test/") for a in args)
    result = CliRunner().invoke(app, list(args))
    assert isinstance(result.exception, InputError), result.output
    return result.exception


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("calibrate", "--out", "OUT/t.csv", "--held-out", "0.3"), "--held-out"),  # microkernels
        (("calibrate", "--out", "OUT/t.csv", "--system", "h200_sxm"), "--system"),
        (("calibrate", "--out", "OUT/t.json", "--bench", str(LSS), "--scenario", str(LSS_SCENARIO),
          "--backend", "torch"), "--backend"),
        (("validate", "--bench", str(LSS), str(LSS_SCENARIO), "--limit", "3"), "--limit"),
        (("trace", "stats", str(AZURE), "--plot", "/no/such/folder/x.png"), "--plot"),
        (("trace", "stats", str(AZURE), "--plot", "OUT/x.txt"), "--plot"),
        (("trace", "stats", str(AZURE), "--plot", str(REPO / "tests")), "--plot"),  # a folder
        (("calibrate", "--out", "OUT/t.json", "--from", "aiconfigurator", "--bench", str(LSS),
          "--scenario", str(LSS_SCENARIO)), "--from"),
    ],
)  # fmt: skip
def test_a_flag_the_command_would_ignore_or_fail_on_is_refused(args, flag) -> None:
    assert refused(*args).field == flag


def test_a_negative_split_seed_is_refused_before_the_fit() -> None:
    out = "/nonexistent-hetsim-test/t.json"
    result = CliRunner().invoke(app, ["calibrate", "--out", out, "--bench", str(LSS),
                                      "--scenario", str(LSS_SCENARIO), "--seed", "-1"])  # fmt: skip
    assert result.exit_code == 2 and "--seed" in result.output


def test_a_time_unit_on_a_published_format_is_refused() -> None:
    err = refused("trace", "stats", str(AZURE), "--time-unit", "ms")
    assert "time_unit 'ms' is for csv and jsonl traces" in err.message


def _scenario_with_profile(folder: Path, bandwidth: str) -> Path:
    """A scenario in ``folder`` whose pool runs on ``hw/myh100.yaml`` next to it."""
    profile = yaml.safe_load((REPO / "hardware_profiles" / "nvidia-h100-sxm.yaml").read_text())
    profile["name"] = "myh100"
    profile["memory"]["bandwidth"] = bandwidth
    (folder / "hw").mkdir(parents=True)
    (folder / "hw" / "myh100.yaml").write_text(yaml.safe_dump(profile))
    data = yaml.safe_load((REPO / "scenarios" / "qwen3-32b-colocated.yaml").read_text())
    data["pools"][0]["accelerator"] = "hw/myh100.yaml"
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_relative_profile_path_is_the_scenario_folders_wherever_the_command_runs(
    tmp_path: Path,
) -> None:
    mine = _scenario_with_profile(tmp_path / "mine", "3.35 TB/s")
    _scenario_with_profile(tmp_path / "elsewhere", "1 TB/s")  # a decoy where the command runs
    here = os.getcwd()
    try:
        os.chdir(tmp_path / "elsewhere")
        bandwidth = hetsim.load_scenario(mine).profiles["serve"].memory.bandwidth.value
    finally:
        os.chdir(here)
    assert bandwidth == pytest.approx(3.35e12)
    (tmp_path / "mine" / "hw" / "myh100.yaml").unlink()
    with pytest.raises(InputError, match="profile file not found"):
        hetsim.load_scenario(mine)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("plan", "tests/data/plan-small.yaml", "--workers", "1", "--backend", "ray"), "--workers"),
        (("plan", "tests/data/plan-small.yaml", "--address", "10.0.0.1:6379"), "--address"),
        (("plan", "tests/data/plan-small.yaml", "--backend", "bogus"), "--backend"),
        (("simulate", "scenarios/qwen3-32b-colocated.yaml", "--csv"), "--out"),
    ],
)
def test_settings_a_run_would_ignore_are_refused_before_it_starts(args, flag) -> None:
    result = CliRunner().invoke(app, list(args))
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == flag
    assert result.output.strip() == ""  # nothing ran: no progress printed before the refusal


def test_a_profile_whose_calibration_file_is_missing_is_refused_at_load(tmp_path: Path) -> None:
    scenario = _scenario_with_profile(tmp_path, "3.35 TB/s")
    profile = tmp_path / "hw" / "myh100.yaml"
    data = yaml.safe_load(profile.read_text())
    data["calibration"] = "nosuch.csv"
    profile.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="names a calibration file that does not exist"):
        hetsim.load_scenario(scenario)


def test_a_refused_validate_creates_no_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    refused("validate", "--bench", str(LSS), str(LSS_SCENARIO), "--limit", "3", "--out", str(out))
    assert not out.exists()


def test_measured_tables_of_an_unknown_system_name_the_profiles_field(tmp_path: Path) -> None:
    pytest.importorskip("aiconfigurator_core")  # installed: the fix is the name, not the extra
    scenario = _scenario_with_profile(tmp_path, "3.35 TB/s")
    profile = tmp_path / "hw" / "myh100.yaml"
    data = yaml.safe_load(profile.read_text())
    data["measured_tables"] = "nosuch_sys"
    profile.write_text(yaml.safe_dump(data))
    sc = hetsim.load_scenario(scenario, ["pools.serve.runtime=vllm"])
    with pytest.raises(InputError) as info:
        hetsim.simulate(sc, max_requests=5)
    err = info.value
    assert err.field == "measured_tables" and err.value == "nosuch_sys"
    assert "h200_sxm" in err.allowed and "pip install" not in err.render()
