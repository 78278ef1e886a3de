"""hetsim: design-space simulator and capacity planner for heterogeneous PD LLM inference.

The public Python API (the CLI and the notebooks use only this):

- :func:`load_scenario` — read, override and validate a scenario file into a :class:`Scenario`.
- :func:`load_model` — a bundled model or a Hugging Face ``config.json``.
- :func:`load_profile` — an accelerator profile by name.
- :func:`simulate` — replay a scenario's workload; returns a result with ``.requests``,
  ``.summary`` (a typed :class:`RunSummary`, ``.to_dict()`` for JSON) and ``.to_frame()``.
- :func:`compare_lifecycles` — the same workload under each KV lifecycle protocol, side by side
  (:func:`with_protocol`: one of them, less the faults it cannot have).
- :func:`goodput` — the highest request rate a deployment serves within its SLA.
- :func:`calibrate` / :func:`validate` — time microkernels on this machine; check the
  step-time model against held-out kernels and a real transformer.
- :func:`plan` — search the scenario's ``search:`` space for the best deployment.
- :func:`read_bench` / :func:`validate_bench` / :func:`fit_end_to_end` — read a benchmark run
  (vLLM, SGLang, genai-perf, LLMServingSim), replay it through a scenario and compare request
  for request, fit a pool's efficiencies to runs (an ``end-to-end`` calibration, held-out
  error included; :func:`read_end_to_end` reads one back, ``.apply(profile)`` uses it).
"""

from hetsim.checks import load_scenario, scenario_from_dict
from hetsim.errors import InputError
from hetsim.spec.hardware import AcceleratorProfile, available_profiles, load_profile
from hetsim.spec.model import ModelConfig, bundled_models, load_model
from hetsim.spec.resolve import Scenario
from hetsim.spec.scenario import ScenarioSpec


def __getattr__(name: str):  # noqa: ANN202 - lazy: simpy and pandas load only when used
    if name in ("simulate", "SimulationResult"):
        from hetsim import simulation

        return getattr(simulation, name)
    if name in ("goodput", "GoodputResult", "with_rate"):
        from importlib import import_module

        # the module, not the function hetsim.planner re-exports under the same name
        return getattr(import_module("hetsim.planner.goodput"), name)
    if name in ("attainment", "meets_sla", "RunSummary", "LatencyStats"):
        from hetsim import metrics

        return getattr(metrics, name)
    if name in ("compare_lifecycles", "LifecycleComparison", "with_protocol"):
        from hetsim import lifecycles

        return getattr(lifecycles, name)
    if name == "default_scenario_path":
        from hetsim.spec.resolve import default_scenario_path

        return default_scenario_path
    if name == "calibrate":
        from hetsim.perf.microbench import run_calibration

        return run_calibration
    if name in ("validate", "ValidationResult"):
        from hetsim.perf import validate as _validate

        return getattr(_validate, name)
    if name in ("read_bench", "BenchRun", "validate_bench", "BenchComparison", "fit_end_to_end"):
        from hetsim import validation

        return getattr(validation, name)
    if name in ("read_end_to_end", "EndToEndCalibration"):
        from hetsim.perf import calibration

        return getattr(calibration, name)
    if name in ("plan", "PlanResult", "CandidateResult"):
        from importlib import import_module

        return getattr(import_module("hetsim.planner.search"), name)
    if name == "Objective":
        from hetsim.planner.objective import Objective

        return Objective
    raise AttributeError(f"module 'hetsim' has no attribute {name!r}")


from hetsim._version import __version__ as __version__  # noqa: E402 - re-exported

__all__ = [
    "AcceleratorProfile",
    "InputError",
    "ModelConfig",
    "Scenario",
    "ScenarioSpec",
    "available_profiles",
    "bundled_models",
    "load_model",
    "load_profile",
    "load_scenario",
    "scenario_from_dict",
    "simulate",
    "SimulationResult",
    "compare_lifecycles",
    "LifecycleComparison",
    "with_protocol",
    "default_scenario_path",
    "goodput",
    "GoodputResult",
    "with_rate",
    "plan",
    "PlanResult",
    "Objective",
    "CandidateResult",
    "attainment",
    "meets_sla",
    "RunSummary",
    "LatencyStats",
    "calibrate",
    "validate",
    "ValidationResult",
    "read_bench",
    "BenchRun",
    "validate_bench",
    "BenchComparison",
    "fit_end_to_end",
    "read_end_to_end",
    "EndToEndCalibration",
]
