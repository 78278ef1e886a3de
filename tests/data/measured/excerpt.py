"""Cuts the excerpt in this folder from aiconfigurator-core 0.12.0's h200_sxm vLLM 0.24.0 tables.

Run with the ``nvidia`` extra installed: ``python tests/data/measured/excerpt.py``. Rows are
copied unchanged (every column), only filtered; see NOTICE.
"""

from importlib.resources import files
from pathlib import Path

import pandas as pd

SYSTEM, RUNTIME, VERSION = "h200_sxm", "vllm", "0.24.0"
M = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
NK = [1024, 2048, 3072, 3584, 4096, 6144, 7168, 8192, 12288, 16384, 51200]
# (query heads, KV heads, head dim) of Llama-3.1-8B at tp 1 and 2, and of Llama-3.1-70B at tp 8
FAMILIES = [(32, 8, 128), (16, 4, 128), (8, 1, 128)]


def _attention(df: pd.DataFrame) -> pd.DataFrame:
    keep = df.window_size == 0
    fam = pd.Series(False, index=df.index)
    for h, kv, d in FAMILIES:
        fam |= (df.num_heads == h) & (df.num_key_value_heads == kv) & (df.head_dim == d)
    return df[keep & fam]


CUTS = {
    ("gemm", "gemm_perf.parquet"): lambda df: df[
        df.gemm_dtype.isin(["bfloat16", "fp8"]) & df.m.isin(M) & df.n.isin(NK) & df.k.isin(NK)
    ],
    ("attention", "context_attention_perf.parquet"): _attention,
    ("attention", "generation_attention_perf.parquet"): _attention,
    ("comm", "custom_allreduce_perf.parquet"): lambda df: df,
}


def main() -> None:
    src = Path(str(files("aiconfigurator_core"))) / "systems" / "data" / SYSTEM
    dst = Path(__file__).parent / SYSTEM
    for (op, name), cut in CUTS.items():
        folder = dst / op / RUNTIME / VERSION
        folder.mkdir(parents=True, exist_ok=True)
        rows = cut(pd.read_parquet(src / op / RUNTIME / VERSION / name)).reset_index(drop=True)
        rows.to_parquet(folder / name, index=False)
        meta = (src / op / RUNTIME / VERSION / "collection_meta.yaml").read_text()
        (folder / "collection_meta.yaml").write_text(meta)
        print(f"{op}/{name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
