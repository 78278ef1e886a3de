"""How good is the step-time model on this machine? (reports, never asserts)

Runs the default calibration sweep (torch when installed, else numpy), then predicts the held-out
kernels and the reference transformer's prefill and decode steps, and prints median / p90
absolute % error per family with the issue's targets beside them. Run it on a quiet machine:
other processes on the 2 cores show up as error.

    python benchmarks/bench_validate.py [--table calib.csv] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hetsim.perf import validate as v
from hetsim.perf.calibration import read_table, write_table
from hetsim.perf.microbench import available_backends, run_calibration
from hetsim.report import predicted_vs_measured, save_figure
from hetsim.spec.model import ModelConfig

TARGETS = {"kernel": 10.0, "model": 20.0}  # median % error targets of issue #3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", type=Path, help="reuse a calibration table")
    parser.add_argument("--out", type=Path, default=Path("validation-out"))
    args = parser.parse_args()
    start = time.perf_counter()
    if args.table:
        table = read_table(args.table)
    else:
        backend = "torch" if "torch" in available_backends() else "numpy"
        table = run_calibration(backend=backend)
        write_table(table, args.out / "calibration.csv")
    calibrated = time.perf_counter() - start
    kernels = v.holdout_errors(table)
    model = kernels.iloc[0:0]
    if "torch" in available_backends():
        from hetsim.perf.microbench import reference_model as ref

        table.meta.setdefault("ops_per_layer", ref.ops_per_layer("decode")["total"])
        config = ModelConfig.from_hf_config(ref.reference_config(), "reference-llama")
        model = v.model_level_errors(table, config, ref.time_reference_model())
    result = v.ValidationResult(kernels, model)
    args.out.mkdir(parents=True, exist_ok=True)
    result.to_frame().to_csv(args.out / "validation.csv", index=False)
    figure = predicted_vs_measured(result.to_frame())
    save_figure(figure, args.out, "predicted_vs_measured", ("png",))
    print(
        f"device {table.meta.get('device')} · backend {table.meta.get('backend')} "
        f"{table.meta.get('backend_version')} · calibration {calibrated:.0f} s"
    )
    print(
        f"{'check':8s} {'family':18s} {'cases':>5s} {'median %':>9s} {'p90 %':>7s} "
        f"{'target':>7s} {'median/target':>14s}"
    )
    for r in result.summary().itertuples():
        target = TARGETS[r.check]
        print(
            f"{r.check:8s} {r.family:18s} {r.cases:5d} {r.median_pct:9.1f} {r.p90_pct:7.1f} "
            f"{target:7.0f} {r.median_pct / target:14.2f}"
        )


if __name__ == "__main__":
    main()
