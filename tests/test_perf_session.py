"""Step models are memoised by the content of what they depend on, never by a name or an id."""

from pathlib import Path

import numpy as np
import pytest
from test_perf_golden import synthetic_calibration

import hetsim
from hetsim.perf.calibration import write_table
from hetsim.perf.step import InstanceConfig, StepModel, StepModels, step_model_for_pool
from hetsim.spec.hardware import load_profile
from hetsim.spec.model import load_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def slow_local_h100(tmp_path):
    """A scenario-local profile with the bundled H100's name and 1.0 TB/s of memory."""
    text = (ROOT / "hardware_profiles" / "nvidia-h100-sxm.yaml").read_text()
    assert "bandwidth: 3.35 TB/s" in text
    (tmp_path / "nvidia-h100-sxm.yaml").write_text(
        text.replace("bandwidth: 3.35 TB/s", "bandwidth: 1.0 TB/s", 1)
    )
    return load_profile("nvidia-h100-sxm", extra=[tmp_path])


def test_a_local_profile_named_like_a_bundled_one_gets_its_own_step_model(slow_local_h100):
    """Regression: step models were keyed by profile name, so the local 1.0 TB/s H100 loaded
    after the bundled one got the bundled step model back (52 ms instead of 171 ms)."""
    scenario = hetsim.load_scenario(ROOT / "scenarios" / "qwen3-32b-6p2d.yaml")
    pool = scenario.spec.pools[-1]
    bundled = load_profile("nvidia-h100-sxm")
    assert slow_local_h100.memory_bandwidth == 1.0e12 != bundled.memory_bandwidth
    context = np.full(64, 4096)
    fast = step_model_for_pool(scenario.model, bundled, pool).decode_time(context)
    slow = step_model_for_pool(scenario.model, slow_local_h100, pool).decode_time(context)
    fresh = StepModel(scenario.model, slow_local_h100, InstanceConfig.from_pool(pool))
    assert slow == fresh.decode_time(context)
    assert fast == pytest.approx(0.05235, rel=1e-3)
    assert slow == pytest.approx(0.17067, rel=1e-3)


def test_equal_content_shares_a_step_model_and_different_tables_do_not():
    models, model, h100 = StepModels(), load_model("tiny-llama"), load_profile("nvidia-h100-sxm")
    first = models.get(model, h100, InstanceConfig(), synthetic_calibration())
    assert models.get(model, h100, InstanceConfig(), synthetic_calibration()) is first
    other = synthetic_calibration()
    other.rows["time_s"] *= 2  # twice as slow kernels, same object layout
    slower = models.get(model, h100, InstanceConfig(), other)
    assert slower is not first
    assert slower.decode_time(np.full(4, 100)) > first.decode_time(np.full(4, 100))
    assert models.get(model, h100, InstanceConfig(tp=2)) is not models.get(
        model, h100, InstanceConfig()
    )


def test_a_rewritten_calibration_file_is_read_again(tmp_path):
    table = synthetic_calibration()
    path = write_table(table, tmp_path / "h100.csv")
    h100 = load_profile("nvidia-h100-sxm").model_copy(update={"calibration": str(path)})
    models, model = StepModels(), load_model("tiny-llama")
    before = models.get(model, h100, InstanceConfig())
    assert before.provenance == "calibrated"
    assert models.get(model, h100, InstanceConfig()) is before
    table.rows["time_s"] *= 2
    write_table(table, path)
    after = models.get(model, h100, InstanceConfig())
    assert after.decode_time(np.full(4, 100)) > before.decode_time(np.full(4, 100))


def test_the_session_forgets_the_least_recently_used_models_beyond_its_bound():
    models, model, h100 = (
        StepModels(max_models=2),
        load_model("tiny-llama"),
        load_profile("nvidia-h100-sxm"),
    )
    one = models.get(model, h100, InstanceConfig(tp=1))
    models.get(model, h100, InstanceConfig(tp=2))
    assert models.get(model, h100, InstanceConfig(tp=1)) is one  # refreshes tp=1
    models.get(model, h100, InstanceConfig(tp=4))  # evicts tp=2
    assert len(models) == 2
    assert models.get(model, h100, InstanceConfig(tp=1)) is one


def test_a_local_profiles_relative_calibration_is_found_next_to_it(tmp_path, monkeypatch):
    """Regression: a relative ``calibration:`` was resolved against the bundled profile of the
    same name (or the cwd), so a scenario-local profile's table next to it was not found."""
    local = tmp_path / "scenario"
    profiles = local / "hardware_profiles"
    profiles.mkdir(parents=True)
    text = (ROOT / "hardware_profiles" / "nvidia-h100-sxm.yaml").read_text()
    (profiles / "nvidia-h100-sxm.yaml").write_text(text + "\ncalibration: h100-table.csv\n")
    write_table(synthetic_calibration(), profiles / "h100-table.csv")
    scenario_text = (ROOT / "scenarios" / "qwen3-32b-6p2d.yaml").read_text()
    (local / "local.yaml").write_text(scenario_text)
    monkeypatch.chdir(tmp_path)  # neither the scenario's folder nor the profile's

    scenario = hetsim.load_scenario(local / "local.yaml")
    pool = scenario.spec.pools[0]
    profile = scenario.profiles[pool.name]
    assert Path(profile.calibration) == (profiles / "h100-table.csv").resolve()
    assert StepModels().for_pool(scenario.model, profile, pool).provenance == "calibrated"
