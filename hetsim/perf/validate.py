"""How well the step-time model predicts what it did not see.

Two checks, both against measurements on the machine at hand:

* **Held-out kernels**: the calibration sweep times some shapes (``split == "holdout"``) that the
  efficiency surfaces are not fitted on; we predict them and report the absolute % error per op
  family (median and p90).
* **Model level**: a small Llama-like transformer with random weights runs real prefill and
  decode steps in PyTorch on this device; hetsim predicts the same steps from the calibrated
  profile of this device (:func:`profile_from_calibration`) and we compare.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hetsim.perf.calibration import SHAPE_AXES, CalibrationTable
from hetsim.perf.step import InstanceConfig, StepModel
from hetsim.spec.hardware import AcceleratorProfile
from hetsim.spec.model import ModelConfig

__all__ = [
    "profile_from_calibration",
    "holdout_errors",
    "model_level_errors",
    "ValidationResult",
    "summarise_errors",
    "validate",
]


def _total_memory_bytes() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 * 2.0**30


def profile_from_calibration(table: CalibrationTable) -> AcceleratorProfile:
    """An accelerator profile of the calibrated device itself: its peaks are the best figures
    measured in the sweep (so calibrated efficiencies are relative to them)."""
    meta = table.meta
    dtypes = sorted(table.peak_flops)
    floats = [d for d in dtypes if d in ("fp32", "bf16", "fp16")] or ["fp32"]
    kind = "gpu" if meta.get("device_kind") == "cuda" else "cpu"
    note = "measured by hetsim calibrate: best achieved in the sweep"
    data = {
        "name": "local-" + kind,
        "display_name": str(meta.get("device") or platform.processor() or "this machine"),
        "vendor": "local",
        "kind": kind,
        "memory": {
            "capacity": {
                "value": f"{float(_total_memory_bytes())!r} B",
                "confidence": "measured",
                "note": "physical memory of this machine",
            },
            "bandwidth": {
                "value": f"{float(table.peak_bandwidth)!r} B/s",
                "confidence": "measured",
                "note": note,
            },
            "type": "local",
        },
        "compute": {
            d: {"value": f"{float(v)!r} FLOPS", "confidence": "measured", "note": note}
            for d, v in table.peak_flops.items()
        },
        "formats": {
            "weights": [d for d in dtypes if d in ("fp32", "bf16", "fp16", "int8")],
            "activations": [d for d in dtypes if d in ("fp32", "bf16", "fp16", "int8")],
            "kv": floats,
        },
        "host": {
            "pcie_gen": 4,
            "pcie_bandwidth": {
                "value": "32 GB/s",
                "confidence": "assumption",
                "note": "not used on a single device",
            },
        },
        "tdp": {"value": "0 W", "confidence": "assumption", "note": "not measured"},
        "price_per_hour": {"value": 0.0, "confidence": "assumption", "note": "not priced"},
        "efficiency": {
            "compute": {"value": 1.0, "confidence": "assumption", "note": "calibrated instead"},
            "memory": {"value": 1.0, "confidence": "assumption", "note": "calibrated instead"},
            "network": {"value": 1.0, "confidence": "assumption", "note": "no links"},
            "step_overhead": {
                "value": f"{float(table.launch_overhead())!r} s",
                "confidence": "measured",
                "note": "one trivial op's dispatch time",
            },
        },
        "calibration": str(table.path) if table.path else None,
        "sources": [
            {
                "id": "calibration",
                "url": f"file://{table.path or 'in-memory'}",
                "supports": "every measured figure",
            }
        ],
    }
    return AcceleratorProfile.model_validate(data)


def holdout_errors(table: CalibrationTable) -> pd.DataFrame:
    """One row per held-out kernel: measured and predicted time and the absolute % error."""
    rows = []
    for (op, dtype), group in table.rows[table.rows["split"] == "holdout"].groupby(["op", "dtype"]):
        if op not in SHAPE_AXES:
            continue
        try:
            surface = table.surface(op, dtype)
        except KeyError:
            continue
        for r in group.itertuples():
            shape = {a: getattr(r, a) for a in surface.axes}
            roof = table.roofline_time(op, dtype, r.flops, r.bytes)
            predicted = roof / surface.efficiency(**shape)
            rows.append(
                {
                    "check": "kernel",
                    "family": op,
                    "dtype": dtype,
                    "case": ", ".join(
                        f"{a}={getattr(r, a):g}"
                        for a in SHAPE_AXES[op]
                        if not pd.isna(getattr(r, a))
                    ),
                    "measured_s": r.time_s,
                    "predicted_s": predicted,
                }
            )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["abs_error_pct"] = (
            100 * (frame["predicted_s"] - frame["measured_s"]).abs() / frame["measured_s"]
        )
    return frame


def model_level_errors(
    table: CalibrationTable, model: ModelConfig, measured: pd.DataFrame, dtype: str = "fp32"
) -> pd.DataFrame:
    """Predict each measured reference-model step on the calibrated profile of this device."""
    profile = profile_from_calibration(table)
    sm = StepModel(
        model, profile, InstanceConfig(weights=dtype, activations=dtype, kv=dtype), table
    )
    rows = []
    for r in measured.itertuples():
        batch = int(r.batch)
        if r.phase == "prefill":
            predicted = sm.prefill_time(
                np.full(batch, int(r.new_tokens)), np.full(batch, int(r.context))
            )
            case = f"prefill {int(r.new_tokens)} tokens x{batch}"
        else:
            predicted = sm.decode_time(np.full(batch, int(r.context)))
            case = f"decode batch {batch} @ {int(r.context)}"
        rows.append(
            {
                "check": "model",
                "family": r.phase,
                "dtype": dtype,
                "case": case,
                "measured_s": r.time_s,
                "predicted_s": predicted,
            }
        )
    frame = pd.DataFrame(rows)
    frame["abs_error_pct"] = (
        100 * (frame["predicted_s"] - frame["measured_s"]).abs() / frame["measured_s"]
    )
    return frame


@dataclass
class ValidationResult:
    kernels: pd.DataFrame
    model: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return pd.concat([self.kernels, self.model], ignore_index=True)

    def summary(self) -> pd.DataFrame:
        return summarise_errors(self.to_frame())


def summarise_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Median and p90 absolute % error per check and family."""
    if frame.empty:
        return pd.DataFrame(columns=["check", "family", "cases", "median_pct", "p90_pct"])
    grouped = frame.groupby(["check", "family"])["abs_error_pct"]
    return pd.DataFrame(
        {
            "cases": grouped.size(),
            "median_pct": grouped.median(),
            "p90_pct": grouped.quantile(0.9),
        }
    ).reset_index()


def validate(
    table: CalibrationTable, *, model_check: bool = True, quick: bool = False
) -> ValidationResult:
    """Held-out kernel errors of ``table`` and, with ``model_check`` (needs PyTorch), the
    model-level errors of a small Llama-like transformer timed on this machine."""
    kernels = holdout_errors(table)
    model = kernels.iloc[0:0]
    if model_check:
        try:
            from hetsim.perf.microbench import reference_model as ref
        except ImportError as exc:  # torch missing
            from hetsim.errors import InputError

            raise InputError(
                f"the model-level check needs PyTorch ({exc})",
                field="--model",
                allowed="pip install -e '.[torch]', or pass --no-model",
            ) from None
        config = ModelConfig.from_hf_config(ref.reference_config(), "reference-llama")
        # per-op dispatch cost is charged per op the reference model runs per layer
        table.meta.setdefault("ops_per_layer", ref.ops_per_layer("decode")["total"])
        measured = ref.time_reference_model(quick=quick)
        dtype = str(measured["dtype"].iloc[0]) if "dtype" in measured else "fp32"
        model = model_level_errors(table, config, measured, dtype=dtype)
    return ValidationResult(kernels, model)
