"""Derive the transferred efficiency surfaces shipped in hetsim/perf/transferred/.

For each measured system hetsim transfers from (``TRANSFER_SYSTEMS``), read aiconfigurator-core's
vLLM tables (the ``nvidia`` extra must be installed), divide the roofline time of every measured
shape on that system's hetsim profile (datasheet peaks at 100%) by its measured time, and write
``hetsim/perf/transferred/<system>-vllm.npz``. Reproducible: same wheel, same profiles, same
files. Run from the repository root::

    PYTHONPATH=$PWD python tools/derive_transferred.py

aiconfigurator-core 0.12.0's a100_sxm/vllm 0.14.0 attention tables predate the ``window_size``
column (they measured full attention only); they are read through a temporary copy that adds
``window_size = 0``, which is what hetsim's reader filters on.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from hetsim.perf.measured.tables import aiconfigurator_root, available_versions, load_tables
from hetsim.perf.transferred import DATA_DIR, RUNTIME, derive_surfaces, save_surfaces
from hetsim.spec.hardware import TRANSFER_SYSTEMS, load_profile


def _with_window_size(root: Path, system: str, tmp: Path) -> Path:
    """A copy of ``system``'s tables for the runtime, ``window_size`` added where missing."""
    for version in available_versions(root, system, RUNTIME):
        for op in ("gemm", "attention", "comm"):
            src = root / system / op / RUNTIME / version
            if not src.is_dir():
                continue
            dst = tmp / system / op / RUNTIME / version
            shutil.copytree(src, dst)
            for name in ("context_attention_perf.parquet", "generation_attention_perf.parquet"):
                path = dst / name
                if path.is_file():
                    df = pd.read_parquet(path)
                    if "window_size" not in df.columns:
                        df["window_size"] = 0
                        df.to_parquet(path)
    return tmp


def main() -> int:
    root = aiconfigurator_root()
    with tempfile.TemporaryDirectory() as tmp:
        for system, profile_name in TRANSFER_SYSTEMS.items():
            base = _with_window_size(root, system, Path(tmp))
            tables = load_tables(system, RUNTIME, root=base)
            surfaces = derive_surfaces(tables, load_profile(profile_name))
            path = save_surfaces(surfaces, DATA_DIR / f"{system}-{RUNTIME}.npz", profile_name)
            counts = {
                "gemm": {d: g.measured for d, g in surfaces.gemm.items()},
                "context": len(surfaces.context),
                "generation": len(surfaces.generation),
                "allreduce": sorted(surfaces.allreduce),
            }
            print(f"{path.name}: {surfaces.label}, {path.stat().st_size // 1024} KiB, {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
