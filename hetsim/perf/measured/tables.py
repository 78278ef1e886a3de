"""NVIDIA's measured per-op kernel tables (aiconfigurator-core), read into log-space grids.

aiconfigurator-core 0.12.0 (Apache-2.0) ships, per system, op family, runtime and runtime version,
Parquet tables of measured kernel latencies (ms) under
``aiconfigurator_core/systems/data/<system>/<op>/<runtime>/<version>/``. hetsim reads those it
maps onto its ops, and keeps each as :class:`~hetsim.perf.measured.grid.LogGrid` per shape family:

* ``gemm/gemm_perf.parquet`` — ``m, n, k`` per ``gemm_dtype``: ``bfloat16`` → hetsim ``bf16``,
  ``fp8`` → ``fp8``, ``fp8_block`` → ``fp8_block``, ``nvfp4`` → ``fp4``; where several kernels
  measured one shape the fastest counts (the one the runtime picks). Each collector times the
  activations' quantization with the GEMM, as a runtime runs it: ``fp8`` scales them at run
  time (TensorRT-LLM per tensor, computing the scale first; vLLM per tensor; SGLang per token),
  ``fp8_block`` per 128-element token group against 128×128-block weights. vLLM's
  ``fp8_block`` rows are left out: its collector timed them without CUDA graphs
  (``collector/vllm/collect_gemm.py``, aiconfigurator at 095f58a), so at decode sizes they
  measure host dispatch (173–540 µs for an 8192² GEMM at m ≤ 64 on Blackwell, where the
  graph-timed ``fp8`` kernel takes 19 µs), not what a served step, replayed from a graph, takes.
* ``quantize/computescale_perf.parquet`` and ``scale_matrix_perf.parquet`` (optional, both or
  neither) — at ``m, k``: quantizing the activations with a given scale (``scale_matrix``), and
  what computing that scale first adds (``compute_scale``: the dynamic quantize kernel's time
  less the static one's, 0 where not slower). A dynamic ``fp8`` GEMM row includes that scale
  computation; a checkpoint with static activation scales skips it
  (:meth:`MeasuredTables.scale_computation`). SGLang's per-token quantization computes its
  scales in the same kernel: its ``compute_scale`` rows are 0.
* ``attention/context_attention_perf.parquet`` — ``batch_size × isl`` per (query heads, KV heads,
  head dim, KV format), full attention (``window_size`` 0) only.
* ``attention/generation_attention_perf.parquet`` — ``batch_size × (step + 1)``: ``step`` is the
  cached length, so ``step + 1`` tokens are attended, the measure hetsim's decode shape uses.
* ``comm/custom_allreduce_perf.parquet`` — ``message_size`` (elements of bf16) per ``num_gpus``,
  the CUDA-graph variant where an eager one was measured too (vLLM and SGLang capture their decode
  steps in graphs).
* ``moe/moe_perf.parquet`` (optional) — the fused MoE kernel (routed experts' grouped GEMMs)
  at ``num_tokens`` per (format, hidden, expert intermediate, top-k, experts, ``moe_tp_size``,
  ``moe_ep_size``); ``num_tokens`` is what enters one MoE layer (aiconfigurator's convention:
  all tokens of the attention data-parallel group, before routing). ``moe_dtype`` ``bfloat16``
  → ``bf16``, ``fp8_block`` → ``fp8`` (hetsim's fp8 weights carry one scale per 128×128 block,
  :mod:`hetsim.spec.precision`; the per-tensor ``fp8`` rows are left out), ``nvfp4`` → ``fp4``,
  ``int4_wo`` (int4 weights, bf16 activations: vLLM's and SGLang's Marlin experts) → ``w4a16``
  (the table's int4 group size is the checkpoint's; hetsim sizes w4a16 weights at group 128).
  Only the
  ``balanced`` routing distribution is kept: hetsim routes uniformly at random and charges the
  busiest device's excess itself (``expert_imbalance``); the ``power_law`` tables would count a
  skew twice. Balanced routing touches every expert as soon as there are as many assignments;
  random routing touches fewer, so the predictor converts the measured time by the two
  routings' roofline times (:meth:`~hetsim.perf.cost.measured.MeasuredPredictor.fused_experts`).

* ``mla/mla_context_module_perf.parquet`` and ``mla_generation_module_perf.parquet``
  (optional) — DeepSeek-V3's whole MLA attention block (the q/kv down-projections, ``q_b``,
  ``kv_b``, attention and ``o_proj``) per layer, at ``batch_size × isl`` (context) and
  ``batch_size × (step + 1)`` (generation, as the GQA table), per (query heads per device,
  ``kv_cache_dtype``, ``gemm_type``): ``bfloat16`` → ``bf16``, ``fp8_block`` → ``fp8`` as for
  MoE. Only DeepSeek-V3's geometry was measured (``model`` column); the predictor checks it.

* ``mla/context_mla_perf.parquet`` and ``generation_mla_perf.parquet`` (optional) — MLA's
  attention kernel alone (latent KV of one head, DeepSeek-V3's geometry: the collectors fix
  ``kv_lora_rank`` 512, rope 64, nope 128), at ``batch_size × isl`` (context) and
  ``batch_size × (step + 1)`` (generation, as the GQA table), per (query heads per device,
  ``kv_cache_dtype``). SGLang's collections have only these (no module tables); they price an
  MLA layer's attention where no module table prices its block.

The optional tables are read where the version has them: a version without them loads, and its
routed experts stay on the roofline.

Board power. Some collections also measured ``power`` (W, the board's mean draw while the kernel
ran, against ``power_limit``): in aiconfigurator-core 0.12.0 only b200_sxm vLLM 0.22.0's context
and generation attention and MoE tables. The power of a table is read from the chosen version
where it has the column, else from the newest version of the same system, runtime and op that
has it — a different collection of the same kernel class at the same shapes, while the times
stay the chosen version's. Each such table's power is kept apart (``<table>_power`` rows, and
:attr:`MeasuredTables.power` grids over the same shape axes as latency) with the version it came
from (:attr:`MeasuredTables.power_versions`), so what prices a joule always says where it came
from (``measured-power:<system>/<runtime>-<version>``). Where one shape was measured by several
kernels, the power of the fastest (the one the latency grid keeps) counts.

The tables come either from the installed ``aiconfigurator_core`` package (the ``nvidia`` extra)
or from a directory in the same layout (tests/data/measured holds an excerpt), or from the one
``.npz`` file ``hetsim calibrate --from aiconfigurator`` writes (:func:`save_tables`), which needs
no extra to read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hetsim.errors import InputError
from hetsim.perf.measured.grid import LogGrid

__all__ = [
    "RUNTIMES",
    "MeasuredTables",
    "aiconfigurator_root",
    "available_versions",
    "load_tables",
    "read_tables_file",
    "save_tables",
]

RUNTIMES = ("vllm", "sglang", "trtllm")
EXTRA_FIX = "install the measured tables with `pip install -e '.[nvidia]'`, or drop `runtime:`"
LICENCE = "aiconfigurator-core 0.12.0 (NVIDIA), Apache-2.0"

#: NVFP4 (16-element groups, fp8 scales: hetsim's fp4, :mod:`hetsim.spec.precision`) was measured
#: on Blackwell only; MXFP4 variants (32-element groups) are not hetsim's fp4 and are left out
_GEMM_DTYPES = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "fp4"}
_KV_DTYPES = {"bfloat16": "bf16", "fp8": "fp8_e4m3"}
_ATTN_COLS = ["batch", "length", "heads", "kv_heads", "head_dim", "kv", "latency"]
#: (table, op folder, file, columns hetsim keeps); ``latency`` in seconds
_FILES = {
    "gemm": ("gemm", "gemm_perf.parquet"),
    "context_attention": ("attention", "context_attention_perf.parquet"),
    "generation_attention": ("attention", "generation_attention_perf.parquet"),
    "allreduce": ("comm", "custom_allreduce_perf.parquet"),
    "moe": ("moe", "moe_perf.parquet"),
    "mla_context": ("mla", "mla_context_module_perf.parquet"),
    "mla_generation": ("mla", "mla_generation_module_perf.parquet"),
    "mla_context_attention": ("mla", "context_mla_perf.parquet"),
    "mla_generation_attention": ("mla", "generation_mla_perf.parquet"),
    "compute_scale": ("quantize", "computescale_perf.parquet"),
    "scale_matrix": ("quantize", "scale_matrix_perf.parquet"),
}
_REQUIRED = ("gemm", "context_attention", "generation_attention")
#: tables whose collections may carry a ``power`` column -> the grid family they feed
_POWER_TABLES = {
    "context_attention": "context",
    "generation_attention": "generation",
    "moe": "moe",
}
#: runtimes whose collections timed the block-scaled fp8 GEMMs eagerly (module doc): not read
_EAGER_BLOCK_GEMMS = ("vllm",)
_MOE_DTYPES = {"bfloat16": "bf16", "fp8_block": "fp8", "nvfp4": "fp4"}
#: weight-only formats the fused MoE table measured besides those (vLLM and SGLang run int4
#: weight-only experts with bf16 activations on Marlin kernels: hetsim's w4a16)
_MOE_WEIGHT_ONLY = {"int4_wo": "w4a16"}
_MOE_FORMATS = {**_MOE_DTYPES, **_MOE_WEIGHT_ONLY}

AttentionKey = tuple[int, int, int, str]  # (query heads, KV heads, head dim, KV format)
#: (compute format, hidden, expert intermediate, top-k, experts, moe tp, moe ep)
MoeKey = tuple[str, int, int, int, int, int, int]
_MOE_COLS = ["dtype", "hidden", "inter", "topk", "experts", "tp", "ep"]
MlaKey = tuple[int, str, str]  # (query heads per device, KV format, projection format)
#: the model whose MLA block the module tables measured
MLA_MODULE_ARCHITECTURE = "DeepseekV3ForCausalLM"


@dataclass(frozen=True, eq=False)
class MeasuredTables:
    """One system's tables for one runtime version, as normalised rows and as grids."""

    system: str
    runtime: str
    version: str
    rows: dict[str, pd.DataFrame] = field(repr=False)  # normalised, latency in seconds
    gemm: dict[str, LogGrid] = field(init=False, repr=False)  # compute format -> (m, n, k)
    context: dict[AttentionKey, LogGrid] = field(init=False, repr=False)  # (batch, isl)
    generation: dict[AttentionKey, LogGrid] = field(init=False, repr=False)  # (batch, attended)
    allreduce: dict[int, LogGrid] = field(init=False, repr=False)  # ranks -> (elements,)
    moe: dict[MoeKey, LogGrid] = field(init=False, repr=False)  # (tokens,); empty without it
    mla_context: dict[MlaKey, LogGrid] = field(init=False, repr=False)  # (batch, isl)
    mla_generation: dict[MlaKey, LogGrid] = field(init=False, repr=False)  # (batch, attended)
    #: MLA attention kernels alone, (heads per device, KV format) -> (batch, isl or attended)
    mla_context_attention: dict[tuple[int, str], LogGrid] = field(init=False, repr=False)
    mla_generation_attention: dict[tuple[int, str], LogGrid] = field(init=False, repr=False)
    #: (dynamic, static) fp8 activation quantization at (m, k); None without the tables
    quantize: tuple[LogGrid, LogGrid] | None = field(init=False, repr=False)
    #: table -> the version its ``<table>_power`` rows come from (empty: no measured power)
    power_versions: dict[str, str] = field(default_factory=dict)
    #: "context", "generation", "moe" -> board power (W) grids keyed as the latency grids
    power: dict[str, dict] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        g = self.rows["gemm"]
        gemm = {
            d: LogGrid.from_points([s.m.to_numpy(), s.n.to_numpy(), s.k.to_numpy()], s.latency)
            for d, s in g.groupby("dtype")
        }
        ar = self.rows.get("allreduce")
        allreduce = {} if ar is None else {
            int(r): LogGrid.from_points([s.elements.to_numpy()], s.latency.to_numpy())
            for r, s in ar.groupby("ranks")
        }  # fmt: skip
        object.__setattr__(self, "gemm", gemm)
        object.__setattr__(self, "context", _attention_grids(self.rows["context_attention"]))
        object.__setattr__(self, "generation", _attention_grids(self.rows["generation_attention"]))
        object.__setattr__(self, "allreduce", allreduce)
        moe = self.rows.get("moe")
        object.__setattr__(self, "moe", {} if moe is None else _moe_grids(moe))
        object.__setattr__(self, "mla_context", _mla_grids(self.rows.get("mla_context")))
        object.__setattr__(self, "mla_generation", _mla_grids(self.rows.get("mla_generation")))
        for phase in ("context", "generation"):
            table = f"mla_{phase}_attention"
            object.__setattr__(self, table, _mla_attention_grids(self.rows.get(table)))
        object.__setattr__(self, "quantize", self._quantize_grids())
        object.__setattr__(self, "power", self._power_grids())

    def _power_grids(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for table, family in _POWER_TABLES.items():
            rows = self.rows.get(f"{table}_power")
            if rows is None:
                continue
            # one row per shape: the fastest kernel's, as the latency grid keeps it
            keys = _MOE_COLS + ["tokens"] if table == "moe" else _ATTN_COLS[:-1]
            rows = rows.sort_values("latency", kind="stable").drop_duplicates(keys)
            # a shape whose draw was not recorded (NaN, 0) has no measured power: never NaN joules
            rows = rows[np.isfinite(rows["power"]) & (rows["power"] > 0)]
            rows = rows.assign(latency=rows["power"])  # the grids interpolate this column
            out[family] = _moe_grids(rows) if table == "moe" else _attention_grids(rows)
        return out

    def _quantize_grids(self) -> tuple[LogGrid, LogGrid] | None:
        # the scale computation is a difference, often 0: interpolated as the difference of
        # the two positive quantize times, it stays exact at the measured points
        cs, sm = self.rows.get("compute_scale"), self.rows.get("scale_matrix")
        if cs is None or sm is None:
            return None
        both = cs.merge(sm, on=["m", "k"], suffixes=("_scale", "_quantize"))
        coords = [both.m.to_numpy(), both.k.to_numpy()]
        static = both.latency_quantize.to_numpy()
        dynamic = static + both.latency_scale.to_numpy()
        return LogGrid.from_points(coords, dynamic), LogGrid.from_points(coords, static)

    def scale_computation(self, m: float, k: float) -> float | None:
        """Seconds a dynamic per-tensor fp8 GEMM of ``m`` rows over ``k`` spends computing its
        activations' scale, which static scales skip; None without the tables or outside them."""
        if self.quantize is None:
            return None
        dynamic, static = (grid(m, k) for grid in self.quantize)
        if dynamic is None or static is None:
            return None
        return max(0.0, dynamic - static)

    @property
    def label(self) -> str:
        """``measured:<system>/<runtime>-<version>``, the provenance of what they price."""
        return f"measured:{self.system}/{self.runtime}-{self.version}"

    def power_label(self, family: str) -> str:
        """``measured-power:<system>/<runtime>-<version>``: where one grid family's board power
        (``context``, ``generation``, ``moe``) comes from."""
        table = next(t for t, f in _POWER_TABLES.items() if f == family)
        return f"measured-power:{self.system}/{self.runtime}-{self.power_versions[table]}"


def _attention_grids(rows: pd.DataFrame) -> dict[AttentionKey, LogGrid]:
    out = {}
    for key, s in rows.groupby(["heads", "kv_heads", "head_dim", "kv"]):
        h, kvh, d, kv = key
        coords = [s.batch.to_numpy(), s.length.to_numpy()]
        out[(int(h), int(kvh), int(d), str(kv))] = LogGrid.from_points(coords, s.latency)
    return out


def _moe_grids(rows: pd.DataFrame) -> dict[MoeKey, LogGrid]:
    return {
        (str(key[0]), *(int(v) for v in key[1:])): LogGrid.from_points(
            [s.tokens.to_numpy()], s.latency.to_numpy()
        )
        for key, s in rows.groupby(_MOE_COLS)
    }


def _mla_grids(rows: pd.DataFrame | None) -> dict[MlaKey, LogGrid]:
    if rows is None:
        return {}
    out = {}
    for (heads, kv, dtype), s in rows.groupby(["heads", "kv", "dtype"]):
        coords = [s.batch.to_numpy(), s.length.to_numpy()]
        out[(int(heads), str(kv), str(dtype))] = LogGrid.from_points(coords, s.latency)
    return out


def _mla_attention_grids(rows: pd.DataFrame | None) -> dict[tuple[int, str], LogGrid]:
    if rows is None:
        return {}
    return {
        (int(heads), str(kv)): LogGrid.from_points(
            [s.batch.to_numpy(), s.length.to_numpy()], s.latency
        )
        for (heads, kv), s in rows.groupby(["heads", "kv"])
    }


# ---- the aiconfigurator layout ----------------------------------------------------------------


def aiconfigurator_root() -> Path:
    """``systems/data`` of the installed aiconfigurator-core; an InputError without it."""
    try:
        from importlib.resources import files

        root = files("aiconfigurator_core") / "systems" / "data"
    except ModuleNotFoundError:
        raise InputError(
            "measured kernel tables need aiconfigurator-core, which is not installed",
            allowed=EXTRA_FIX,
        ) from None
    return Path(str(root))


def available_versions(root: Path, system: str, runtime: str) -> list[str]:
    """The runtime versions with every required table for ``system``, oldest first (the
    collections do not measure every op at every version: a version with GEMMs but no attention
    cannot price a step)."""
    folder = root / system / "gemm" / runtime
    if not folder.is_dir():
        return []
    complete = [
        p.name
        for p in folder.iterdir()
        if p.is_dir()
        and all(
            (root / system / _FILES[t][0] / runtime / p.name / _FILES[t][1]).is_file()
            for t in _REQUIRED
        )
    ]
    return sorted(complete, key=_version_key)


def _version_key(v: str) -> tuple:
    # 1.3.0rc20 < 1.3.0: a release candidate sorts before its release
    parts = re.findall(r"\d+|[a-z]+", v.lower())
    return tuple((int(p), "~") if p.isdigit() else (-1, p) for p in parts) + ((0, "~"),)


def load_tables(
    system: str, runtime: str, version: str | None = None, root: Path | str | None = None
) -> MeasuredTables:
    """The tables of ``system`` for ``runtime`` at ``version`` (newest when None), from ``root``
    (a directory in aiconfigurator's layout; the installed package when None). Cached by value."""
    base = aiconfigurator_root() if root is None else Path(root)
    return _load_cached(system, runtime, version, str(base.resolve()))


@lru_cache(maxsize=8)
def _load_cached(system: str, runtime: str, version: str | None, root: str) -> MeasuredTables:
    base = Path(root)
    if runtime not in RUNTIMES:
        raise InputError(
            "unknown serving runtime", field="runtime", value=runtime, allowed=RUNTIMES
        )
    versions = available_versions(base, system, runtime)
    if not versions:
        systems = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        with_runtime = [s for s in systems if available_versions(base, s, runtime)]
        raise InputError(
            f"no measured tables for system {system!r} with runtime {runtime!r} in {base}",
            value=system,
            allowed=", ".join(with_runtime) or "(none)",
        )
    chosen = version or versions[-1]
    if chosen not in versions:
        raise InputError(
            f"no measured tables for {system}/{runtime} version {chosen!r}",
            field="version",
            value=chosen,
            allowed=versions,
        )
    rows = {}
    for table, (op, name) in _FILES.items():
        path = base / system / op / runtime / chosen / name
        if not path.is_file():
            if table in _REQUIRED:
                raise InputError(
                    f"measured table {op}/{runtime}/{chosen}/{name} missing for {system}",
                    file=path,
                )
            continue
        rows[table] = _NORMALISE[table](pd.read_parquet(path))
    if runtime in _EAGER_BLOCK_GEMMS:  # timed without CUDA graphs: see the module doc
        rows["gemm"] = rows["gemm"][rows["gemm"].dtype != "fp8_block"].reset_index(drop=True)
    power_versions = {}
    for table in _POWER_TABLES:
        found = _power_version(base, system, runtime, table, chosen) if table in rows else None
        if found is None:
            continue
        if found == chosen:
            rows[f"{table}_power"] = rows[table]
        else:
            op, name = _FILES[table]
            df = pd.read_parquet(base / system / op / runtime / found / name)
            rows[f"{table}_power"] = _NORMALISE[table](df)
        power_versions[table] = found
    return MeasuredTables(system, runtime, chosen, rows, power_versions)


def _power_version(base: Path, system: str, runtime: str, table: str, chosen: str) -> str | None:
    """The version whose ``table`` measured board power: ``chosen`` where it did, else the
    newest that did (the same kernel class at the same shapes, collected with another runtime
    version); None where none did."""
    op, name = _FILES[table]
    folder = base / system / op / runtime
    others = sorted((p.name for p in folder.iterdir() if p.is_dir()), key=_version_key)
    for version in [chosen, *reversed([v for v in others if v != chosen])]:
        path = folder / version / name
        if path.is_file() and "power" in pq.read_schema(path).names:
            return version
    return None


def _gemm_rows(df: pd.DataFrame) -> pd.DataFrame:
    df = df[df.gemm_dtype.isin(list(_GEMM_DTYPES))]
    return pd.DataFrame({
        "dtype": df.gemm_dtype.map(_GEMM_DTYPES),
        "m": df.m, "n": df.n, "k": df.k,
        "latency": df.latency * 1e-3,
    }).reset_index(drop=True)  # fmt: skip


def _attention_rows(df: pd.DataFrame, attended_offset: int) -> pd.DataFrame:
    # older collections (a100_sxm vLLM 0.14) measured full attention only and have no column
    full = df.window_size == 0 if "window_size" in df.columns else True
    df = df[full & df.kv_cache_dtype.isin(list(_KV_DTYPES))]
    length = df.step + 1 if attended_offset else df.isl
    return _with_power(df, pd.DataFrame({
        "batch": df.batch_size, "length": length, "heads": df.num_heads,
        "kv_heads": df.num_key_value_heads, "head_dim": df.head_dim,
        "kv": df.kv_cache_dtype.map(_KV_DTYPES), "latency": df.latency * 1e-3,
    }))  # fmt: skip


def _with_power(raw: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the collection's board power (W) where it measured it."""
    if "power" in raw.columns:
        rows["power"] = raw["power"].astype(np.float64)
    return rows.reset_index(drop=True)


def _allreduce_rows(df: pd.DataFrame) -> pd.DataFrame:
    # vLLM and SGLang measured a CUDA-graph and an eager variant (their decode steps replay
    # graphs); TensorRT-LLM measured one kernel (source "TRTLLM"), kept as it is
    df = df[(df.allreduce_dtype == "bfloat16") & ~df.kernel_source.str.contains("eager")]
    return pd.DataFrame({
        "ranks": df.num_gpus, "elements": df.message_size, "latency": df.latency * 1e-3,
    }).reset_index(drop=True)  # fmt: skip


def _moe_rows(df: pd.DataFrame) -> pd.DataFrame:
    df = df[(df.distribution == "balanced") & df.moe_dtype.isin(list(_MOE_FORMATS))]
    return _with_power(df, pd.DataFrame({
        "dtype": df.moe_dtype.map(_MOE_FORMATS), "hidden": df.hidden_size,
        "inter": df.inter_size, "topk": df.topk, "experts": df.num_experts,
        "tp": df.moe_tp_size, "ep": df.moe_ep_size, "tokens": df.num_tokens,
        "latency": df.latency * 1e-3,
    }))  # fmt: skip


def _mla_rows(df: pd.DataFrame, attended_offset: int) -> pd.DataFrame:
    df = df[
        (df.architecture == MLA_MODULE_ARCHITECTURE)
        & (df.mla_dtype == "bfloat16")
        & df.kv_cache_dtype.isin(list(_KV_DTYPES))
        & df.gemm_type.isin(list(_MOE_DTYPES))
    ]
    length = df.step + 1 if attended_offset else df.isl
    return pd.DataFrame({
        "heads": df.num_heads, "kv": df.kv_cache_dtype.map(_KV_DTYPES),
        "dtype": df.gemm_type.map(_MOE_DTYPES), "batch": df.batch_size, "length": length,
        "latency": df.latency * 1e-3,
    }).reset_index(drop=True)  # fmt: skip


def _mla_attention_rows(df: pd.DataFrame, attended_offset: int) -> pd.DataFrame:
    df = df[(df.mla_dtype == "bfloat16") & df.kv_cache_dtype.isin(list(_KV_DTYPES))]
    length = df.step + 1 if attended_offset else df.isl
    return pd.DataFrame({
        "heads": df.num_heads, "kv": df.kv_cache_dtype.map(_KV_DTYPES),
        "batch": df.batch_size, "length": length, "latency": df.latency * 1e-3,
    }).reset_index(drop=True)  # fmt: skip


def _quantize_rows(df: pd.DataFrame) -> pd.DataFrame:
    df = df[df.quant_dtype == "fp8"]
    return pd.DataFrame({"m": df.m, "k": df.k, "latency": df.latency * 1e-3}).reset_index(drop=True)


_NORMALISE = {
    "gemm": _gemm_rows,
    "context_attention": lambda df: _attention_rows(df, 0),
    "generation_attention": lambda df: _attention_rows(df, 1),
    "allreduce": _allreduce_rows,
    "moe": _moe_rows,
    "mla_context": lambda df: _mla_rows(df, 0),
    "mla_generation": lambda df: _mla_rows(df, 1),
    "mla_context_attention": lambda df: _mla_attention_rows(df, 0),
    "mla_generation_attention": lambda df: _mla_attention_rows(df, 1),
    "compute_scale": _quantize_rows,
    "scale_matrix": _quantize_rows,
}


# ---- hetsim's own calibration file ------------------------------------------------------------


def save_tables(tables: MeasuredTables, path: Path | str) -> Path:
    """One ``.npz``: each table's normalised columns (``<table>/<column>``) and a JSON ``meta``
    naming source, system, runtime, version and licence. Readable without the extra."""
    arrays: dict[str, np.ndarray] = {}
    for table, df in tables.rows.items():
        for col in df.columns:
            values = df[col].to_numpy()
            arrays[f"{table}/{col}"] = values.astype(str) if values.dtype == object else values
    meta = {
        "source": "aiconfigurator",
        "system": tables.system,
        "runtime": tables.runtime,
        "version": tables.version,
        "licence": LICENCE,
        "latency_unit": "s",
        "tables": sorted(tables.rows),
        "power_versions": tables.power_versions,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    path = Path(path)
    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def read_tables_file(path: Path | str) -> MeasuredTables:
    """Tables from a file written by :func:`save_tables`."""
    path = Path(path)
    if not path.is_file():
        raise InputError("measured-table file not found", file=path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            rows = {
                t: pd.DataFrame({
                    k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{t}/")
                })
                for t in meta["tables"]
            }  # fmt: skip
    except (OSError, ValueError, KeyError) as e:
        msg = f"not a measured-table file written by hetsim calibrate: {e}"
        raise InputError(msg, file=path) from None
    # files written before power was read carry none
    power_versions = meta.get("power_versions", {})
    return MeasuredTables(meta["system"], meta["runtime"], meta["version"], rows, power_versions)
