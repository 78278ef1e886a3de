"""Cuts the excerpt in this folder from aiconfigurator-core 0.12.0's h200_sxm vLLM 0.24.0 tables,
from its b200_sxm vLLM 0.24.0 tables with the 0.22.0 tables that measured board power, and from
its h200_sxm TensorRT-LLM 1.3.0rc20 tables (fp8 GEMMs by scaling, their quantize tables, MLA's
attention kernel).

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
# (hidden, expert intermediate, top-k, experts, moe_dtype) of DeepSeek-V3 (block fp8),
# Qwen3-235B-A22B (bf16 and block fp8) and Kimi-K2.5 (int4 weight-only experts);
# (moe_tp_size, moe_ep_size) of tp 1, 2, 4, 8 and ep 4, 8
MOE_SHAPES = [(7168, 2048, 8, 256, "fp8_block"), (4096, 1536, 8, 128, "bfloat16"),
              (4096, 1536, 8, 128, "fp8_block"), (7168, 2048, 8, 384, "int4_wo")]  # fmt: skip
MOE_SPLITS = [(1, 1), (2, 1), (4, 1), (8, 1), (1, 4), (1, 8)]


def _moe(df: pd.DataFrame) -> pd.DataFrame:
    shape = pd.Series(False, index=df.index)
    for h, i, k, e, dtype in MOE_SHAPES:
        shape |= (
            (df.hidden_size == h) & (df.inter_size == i) & (df.topk == k)
            & (df.num_experts == e) & (df.moe_dtype == dtype)
        )  # fmt: skip
    split = pd.Series(False, index=df.index)
    for tp, ep in MOE_SPLITS:
        split |= (df.moe_tp_size == tp) & (df.moe_ep_size == ep)
    # balanced routing (what hetsim reads), and one power-law split to show it is left out
    deepseek_ep8 = (df.hidden_size == 7168) & (df.moe_tp_size == 1) & (df.moe_ep_size == 8)
    routing = (df.distribution == "balanced") | (
        (df.distribution == "power_law_1.01") & deepseek_ep8
    )
    return df[shape & split & routing]


def _attention(df: pd.DataFrame) -> pd.DataFrame:
    keep = df.window_size == 0
    fam = pd.Series(False, index=df.index)
    for h, kv, d in FAMILIES:
        fam |= (df.num_heads == h) & (df.num_key_value_heads == kv) & (df.head_dim == d)
    return df[keep & fam]


#: GEMM shapes whose block-scaled fp8 rows are cut too (vLLM's are left out by hetsim)
BLOCK_NK = [4096, 8192]


def _gemm(df: pd.DataFrame) -> pd.DataFrame:
    grid = df.m.isin(M) & df.n.isin(NK) & df.k.isin(NK)
    block = (df.gemm_dtype == "fp8_block") & df.n.isin(BLOCK_NK) & df.k.isin(BLOCK_NK)
    return df[grid & (df.gemm_dtype.isin(["bfloat16", "fp8"]) | block)]


def _quantize(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.m.isin(M) & df.k.isin(NK)]


CUTS = {
    ("gemm", "gemm_perf.parquet"): _gemm,
    ("attention", "context_attention_perf.parquet"): _attention,
    ("attention", "generation_attention_perf.parquet"): _attention,
    ("comm", "custom_allreduce_perf.parquet"): lambda df: df,
    ("moe", "moe_perf.parquet"): _moe,
    # DeepSeek-V3's MLA block at tp 8 (16 query heads per device)
    ("mla", "mla_context_module_perf.parquet"): lambda df: df[df.num_heads == 16],
    ("mla", "mla_generation_module_perf.parquet"): lambda df: df[df.num_heads == 16],
    ("quantize", "computescale_perf.parquet"): _quantize,
    ("quantize", "scale_matrix_perf.parquet"): _quantize,
}

# h200_sxm TensorRT-LLM 1.3.0rc20: fp8 GEMMs (dynamic per-tensor and block-scaled) on the
# block shapes, the quantize tables, and Llama-3.1-70B's attention family at tp 8 (the least a
# table set needs to load)
TRT_VERSION = "1.3.0rc20"
TRT_CUTS = {
    ("gemm", "gemm_perf.parquet"): lambda df: df[
        df.gemm_dtype.isin(["fp8", "fp8_block"])
        & df.m.isin(M)
        & df.n.isin(BLOCK_NK)
        & df.k.isin(BLOCK_NK)
    ],  # fmt: skip
    ("attention", "context_attention_perf.parquet"): lambda df: _attention(df)[
        lambda a: (a.num_heads == 8) & (a.kv_cache_dtype == "fp8")
    ],
    ("attention", "generation_attention_perf.parquet"): lambda df: _attention(df)[
        lambda a: (a.num_heads == 8) & (a.kv_cache_dtype == "fp8")
    ],
    ("quantize", "computescale_perf.parquet"): lambda df: df[df.m.isin(M) & df.k.isin(BLOCK_NK)],
    ("quantize", "scale_matrix_perf.parquet"): lambda df: df[df.m.isin(M) & df.k.isin(BLOCK_NK)],
    # MLA's attention kernel alone: DeepSeek-V3 at tp 8 and 4 (16 and 32 query heads per
    # device), fp8 KV
    ("mla", "context_mla_perf.parquet"): lambda df: df[
        df.num_heads.isin([16, 32]) & (df.kv_cache_dtype == "fp8")
    ],
    ("mla", "generation_mla_perf.parquet"): lambda df: df[
        df.num_heads.isin([16, 32]) & (df.kv_cache_dtype == "fp8")
    ],
}


# b200_sxm: Llama-3.1-8B at tp 1 (bf16 GEMMs; attention (32, 8, 128) with bf16 KV) and
# Qwen3-30B-A3B's routed experts (bf16, moe tp 1, ep 1); the power-measuring 0.22.0 collection
# for the attention and MoE tables beside 0.24.0 (which has no GEMM table at 0.22.0)
B200_NK = [2048, 4096, 5120, 6144]


def _b200_attention(df: pd.DataFrame) -> pd.DataFrame:
    return df[
        (df.window_size == 0) & (df.num_heads == 32) & (df.num_key_value_heads == 8)
        & (df.head_dim == 128) & (df.kv_cache_dtype == "bfloat16")
    ]  # fmt: skip


def _b200_moe(df: pd.DataFrame) -> pd.DataFrame:
    return df[
        (df.hidden_size == 2048) & (df.inter_size == 768) & (df.topk == 8)
        & (df.num_experts == 128) & (df.moe_dtype == "bfloat16") & (df.moe_tp_size == 1)
        & (df.moe_ep_size == 1) & (df.distribution == "balanced")
    ]  # fmt: skip


B200_CUTS = {
    ("gemm", "gemm_perf.parquet", "0.24.0"): lambda df: df[
        (df.gemm_dtype == "bfloat16") & df.m.isin(M) & df.n.isin(B200_NK) & df.k.isin(B200_NK)
    ],
    ("attention", "context_attention_perf.parquet", "0.24.0"): _b200_attention,
    ("attention", "generation_attention_perf.parquet", "0.24.0"): _b200_attention,
    ("attention", "context_attention_perf.parquet", "0.22.0"): _b200_attention,
    ("attention", "generation_attention_perf.parquet", "0.22.0"): _b200_attention,
    ("moe", "moe_perf.parquet", "0.24.0"): _b200_moe,
    ("moe", "moe_perf.parquet", "0.22.0"): _b200_moe,
}


def _cut(
    system: str, op: str, name: str, version: str, cut, root: str = ".", runtime: str = RUNTIME
) -> None:
    src = Path(str(files("aiconfigurator_core"))) / "systems" / "data" / system
    folder = Path(__file__).parent / root / system / op / runtime / version
    folder.mkdir(parents=True, exist_ok=True)
    rows = cut(pd.read_parquet(src / op / runtime / version / name)).reset_index(drop=True)
    rows.to_parquet(folder / name, index=False)
    meta = (src / op / runtime / version / "collection_meta.yaml").read_text()
    (folder / "collection_meta.yaml").write_text(meta)
    print(f"{system}/{op}/{runtime}/{version}/{name}: {len(rows)} rows")


def main() -> None:
    for (op, name), cut in CUTS.items():
        _cut(SYSTEM, op, name, VERSION, cut)
    for (op, name, version), cut in B200_CUTS.items():
        # a root of its own: the h200 tests list the systems under theirs
        _cut("b200_sxm", op, name, version, cut, root="b200_power")
    for (op, name), cut in TRT_CUTS.items():
        _cut(SYSTEM, op, name, TRT_VERSION, cut, root="trtllm", runtime="trtllm")


if __name__ == "__main__":
    main()
