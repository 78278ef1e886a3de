"""How close are hetsim's predictions to NVIDIA's measured serving runs? (reports, never asserts)

Reads the silicon sample (aiconfigurator-core's ``systems/silicon_sample.csv`` when the
``nvidia`` extra is installed, else the excerpt under ``tests/data/silicon``), collapses repeated
measurements, takes a fixed seeded subset, simulates each row hetsim can pose under a closed loop
at its concurrency, and prints median |error|, p90 |error| and signed median of mean TTFT and
TPOT by system, runtime, model, model family and mode, the coverage by reason per model family
and per system, and the issue's targets beside the overall figures. A family is the architecture a
checkpoint is posed on (DeepSeek-R1 and the NVFP4 checkpoints count as DeepSeek-V3). The sample
is the validation set: nothing here is fitted to it.

    python benchmarks/bench_accuracy.py [--limit 200] [--seed 0] [--systems h200_sxm] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from hetsim.validation import collapse_duplicates, read_silicon, select_rows, validate_silicon

EXCERPT = Path(__file__).resolve().parents[1] / "tests" / "data" / "silicon"
#: issue #13's done-when: median |error| (p90) in %, and aiconfigurator 0.12.0 on the same sample
TARGETS = {"ttft": (20.0, 50.0), "tpot": (10.0, 30.0)}
AICONFIGURATOR = {"ttft": (46.0, 89.0), "tpot": (19.0, 66.0)}


def sample_path() -> Path:
    try:
        import aiconfigurator_core
    except ImportError:
        return EXCERPT / "silicon_sample_excerpt.csv"
    return Path(aiconfigurator_core.__file__).parent / "systems" / "silicon_sample.csv"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=Path, default=None, help="a silicon-sample CSV")
    parser.add_argument("--limit", type=int, default=200, help="rows in the seeded subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems", default="", help="comma-separated, e.g. h200_sxm,b200_sxm")
    parser.add_argument("--out", type=Path, default=None, help="write silicon*.csv here")
    args = parser.parse_args()
    path = args.sample or sample_path()
    unique = collapse_duplicates(read_silicon(path))
    systems = [s for s in args.systems.split(",") if s] or None
    rows = select_rows(unique, systems=systems, limit=args.limit, seed=args.seed)
    print(
        f"{path}: {len(unique)} unique measurements, {len(rows)} in the subset (seed {args.seed})"
    )
    start = time.perf_counter()
    result = validate_silicon(rows, progress=_dots)
    wall = time.perf_counter() - start
    predicted = result.predicted()
    print(
        f"\n{len(predicted)} rows predicted in {wall:.1f} s ({wall / max(len(rows), 1):.2f} s/row)"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(result.error_table().round(1).to_string(index=False))
        print()
        print(result.coverage(by="family").to_string(index=False))
        print()
        print(result.coverage(by="system").to_string(index=False))
    _targets(result.error_table())
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result.to_frame().to_csv(args.out / "silicon.csv", index=False)
        result.error_table().to_csv(args.out / "silicon_errors.csv", index=False)


def _dots(done: int, total: int) -> None:
    print("." if done < total else ".\n", end="", flush=True)


def _targets(errors: pd.DataFrame) -> None:
    overall = errors[errors["by"] == "all"]
    if overall.empty:
        print("\nno row was predicted: see the reasons above")
        return
    row = overall.iloc[0]
    print("\n           hetsim median / p90   target   aiconfigurator 0.12.0")
    for what in ("ttft", "tpot"):
        med, p90 = row[f"{what}_median_abs_pct"], row[f"{what}_p90_abs_pct"]
        (t_med, t_p90), (a_med, a_p90) = TARGETS[what], AICONFIGURATOR[what]
        print(f"  {what.upper()}   {med:6.1f}% / {p90:6.1f}%   <= {t_med:.0f}% / {t_p90:.0f}%"
              f"   {a_med:.0f}% / {a_p90:.0f}%")  # fmt: skip


if __name__ == "__main__":
    main()
