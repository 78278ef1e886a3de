"""What a serving runtime costs besides the GPU kernels: host work per step, eager launches,
CUDA-graph decode and the frontend a request passes before the engine sees it.

A pool that names ``runtime:`` is priced by that runtime's measured kernel tables
(:mod:`hetsim.perf.cost.measured`); this module adds the mechanisms around the kernels, with the
figures of ``runtimes.yaml`` (each labelled ``documented`` or ``assumption``, never fitted to an
end-to-end benchmark):

* **Overlapped scheduling.** vLLM (async scheduling), SGLang (overlap scheduler) and TensorRT-LLM
  (overlap scheduler) prepare step n+1 on the host while the GPU runs step n: a step costs
  ``max(gpu, step_host)``; without overlap it costs ``gpu + step_host``.
* **CUDA-graph decode, eager prefill.** A decode step of at most ``graph_max_batch`` sequences
  replays a captured graph (no per-kernel launch cost); any step with a prompt chunk, or a larger
  batch, launches its kernels one by one, and the GPU cannot finish before the host has launched
  them: ``gpu >= kernels x launch``.
* **Frontend.** Before the engine schedules a request the runtime's server parses it and
  tokenises the prompt: ``request_fixed + input_tokens / tokenize_rate``, part of TTFT.
* **KV pool sizing** (the ``memory:`` group, :class:`RuntimeMemory`). Each runtime sizes its KV
  pool by its own rule (vLLM ``gpu_memory_utilization`` of total memory, SGLang
  ``mem_fraction_static`` derived at start-up, TensorRT-LLM ``free_gpu_memory_fraction`` of the
  memory left free): :meth:`RuntimeMemory.budget` turns it into the
  :class:`~hetsim.spec.footprint.KvBudget` that :func:`~hetsim.spec.footprint.footprint` applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar, cast

import yaml

from hetsim.errors import InputError
from hetsim.spec.footprint import KvBudget
from hetsim.spec.scenario import PoolSpec
from hetsim.units import parse_bytes, parse_time

__all__ = [
    "RUNTIME_FILE",
    "RuntimeMemory",
    "RuntimeOverheads",
    "mixes_prompts",
    "pool_mixes_prompts",
    "runtime_memory",
    "runtime_overheads",
]

RUNTIME_FILE = Path(__file__).resolve().parent / "runtimes.yaml"


@dataclass(frozen=True, slots=True)
class RuntimeOverheads:
    """One runtime's costs besides the kernels (seconds; ``tokenize_rate`` in tokens/s)."""

    name: str
    step_host: float
    overlap: bool
    launch: float
    graph_max_batch: int
    request_fixed: float
    tokenize_rate: float
    mixed_chunk: bool

    def step(self, gpu: float, kernels: int, batch: int, prefill: bool) -> float:
        """Seconds of one step whose kernels take ``gpu`` on the device: ``kernels`` launches,
        ``batch`` sequences, ``prefill`` when a prompt chunk is in it (an eager step)."""
        if prefill or batch > self.graph_max_batch:
            launched = kernels * self.launch
            gpu = gpu if gpu >= launched else launched
        if self.overlap:
            return gpu if gpu >= self.step_host else self.step_host
        return gpu + self.step_host

    def admission(self, input_tokens: int) -> float:
        """Seconds from the client's send to the engine's queue."""
        return self.request_fixed + input_tokens / self.tokenize_rate


@lru_cache(maxsize=4)
def _table(path: Path) -> dict[str, RuntimeOverheads]:
    raw = yaml.safe_load(path.read_text())
    out = {}
    for name, figures in raw.items():
        value = {k: v["value"] for k, v in figures.items() if k != "memory"}
        out[name] = RuntimeOverheads(
            name=name,
            step_host=parse_time(value["step_host"]),
            overlap=bool(value["overlap"]),
            launch=parse_time(value["launch"]),
            graph_max_batch=int(value["graph_max_batch"]),
            request_fixed=parse_time(value["request_fixed"]),
            tokenize_rate=float(value["tokenize_rate"]),
            mixed_chunk=bool(value["mixed_chunk"]),
        )
    return out


def runtime_overheads(runtime: str) -> RuntimeOverheads:
    """The overheads of ``runtime`` (``vllm``, ``sglang``, ``trtllm``)."""
    return _entry(_table(RUNTIME_FILE), runtime, "runtime overheads")


def mixes_prompts(runtime: str | None, setting: bool | None, dp: int) -> bool:
    """Whether a colocated pool's prompt chunks run in the same step as its decodes: its
    ``batching.mixed_chunk`` when set, else its runtime's default (``mixed_chunk`` in
    ``runtimes.yaml``); vLLM's rule (mixed) without a runtime, and under attention DP
    (``dp`` > 1), where ranks with no prompt decode in the same iteration."""
    if setting is not None:
        return setting
    if runtime is None or dp > 1:
        return True
    return runtime_overheads(runtime).mixed_chunk


def pool_mixes_prompts(pool: PoolSpec) -> bool:
    """:func:`mixes_prompts` for ``pool``, as every reader of a pool's scheduling asks it."""
    return mixes_prompts(pool.runtime, pool.batching.mixed_chunk, pool.dp)


_T = TypeVar("_T")


def _entry(table: dict[str, _T], runtime: str, what: str) -> _T:
    if runtime not in table:
        raise InputError(
            f"no {what} for this runtime", field="runtime", value=runtime, allowed=sorted(table)
        )
    return table[runtime]


#: each runtime's name for its KV memory setting, for ``hetsim check``
_SETTING = {
    "vllm": "vLLM gpu_memory_utilization",
    "sglang": "SGLang mem_fraction_static",
    "trtllm": "TRT-LLM free_gpu_memory_fraction",
}


@dataclass(frozen=True, slots=True)
class RuntimeMemory:
    """How one runtime sizes its KV pool (``runtimes.yaml``'s ``memory:`` group; bytes).

    ``fraction`` is the runtime's default setting (None for SGLang, which derives it);
    ``reserve`` what the rule subtracts besides weights and activations. SGLang's
    ``mem_fraction_static`` is ``(capacity - reserved) / capacity`` rounded to 3 places, with
    ``reserved = base + per_chunk_token x max(chunk, min_chunk) + per_graph_seq x graph_bs +
    per_tp x tp`` (+ DP-attention and speculative terms), at least ``floor`` on devices above
    ``floor_above``; ``graph_bs`` comes from ``graph_tiers`` (below, tp < 4, tp >= 4).
    """

    name: str
    rule: Literal["total", "static", "free"]
    fraction: float | None
    reserve: float
    sglang: dict[str, float] | None = None
    graph_tiers: tuple[tuple[float, int, int], ...] = ()

    def budget(self, capacity: float, pool: PoolSpec) -> KvBudget:
        """The KV budget of one device of ``capacity`` bytes in ``pool``; a pool's explicit
        ``memory_utilization`` replaces the runtime's fraction."""
        label = _SETTING[self.name]
        explicit = "memory_utilization" in pool.model_fields_set
        if self.rule == "static":
            reserved = self.sglang_reserved(capacity, pool)
            fraction = pool.memory_utilization if explicit else self.sglang_fraction(capacity, pool)
            return KvBudget("static", fraction, reserved, label)
        assert self.fraction is not None
        fraction = pool.memory_utilization if explicit else self.fraction
        return KvBudget(self.rule, fraction, self.reserve, label)

    def sglang_reserved(self, capacity: float, pool: PoolSpec) -> float:
        """Bytes SGLang's ``_handle_gpu_memory_settings`` keeps out of ``mem_fraction_static``."""
        c = self.sglang
        assert c is not None
        graph_bs = next(
            (small if pool.tp < 4 else large)
            for below, small, large in self.graph_tiers
            if capacity < below
        )
        chunk = max(pool.batching.max_batched_tokens, c["reserve_min_chunk"])
        reserved = (
            c["reserve_base"]
            + c["reserve_per_chunk_token"] * chunk
            + c["reserve_per_graph_seq"] * graph_bs
            + c["reserve_per_tp"] * pool.tp
        )
        if pool.dp > 1:  # DP attention
            per = c["reserve_per_dp_graph_seq"] * graph_bs * pool.dp
            reserved += per + (per / 2 if graph_bs > 300 else 0.0)
        if capacity > c["reserve_floor_above"]:
            reserved = max(reserved, c["reserve_floor"])
        if pool.speculative is not None:
            reserved += c["reserve_speculative"]
        return reserved

    def sglang_fraction(self, capacity: float, pool: PoolSpec) -> float:
        """SGLang's derived ``mem_fraction_static`` (rounded to 3 places, as SGLang does)."""
        return round((capacity - self.sglang_reserved(capacity, pool)) / capacity, 3)


@lru_cache(maxsize=4)
def _memory_table(path: Path) -> dict[str, RuntimeMemory]:
    raw = yaml.safe_load(path.read_text())
    out = {}
    for name, figures in raw.items():
        value = {k: v["value"] for k, v in figures["memory"].items()}
        sglang = None
        tiers: tuple[tuple[float, int, int], ...] = ()
        if value["rule"] == "static":
            sglang = {
                k: (float(v) if k == "reserve_min_chunk" else parse_bytes(v))
                for k, v in value.items()
                if k.startswith("reserve_")
            }
            tiers = tuple(
                (float("inf") if below is None else parse_bytes(below), int(s), int(big))
                for below, s, big in value["cuda_graph_max_bs"]
            )
        out[name] = RuntimeMemory(
            name=name,
            rule=cast(Literal["total", "static", "free"], value["rule"]),
            fraction=float(value["fraction"]) if "fraction" in value else None,
            reserve=parse_bytes(value.get("cuda_graph", 0))
            + parse_bytes(value.get("non_torch", 0)),
            sglang=sglang,
            graph_tiers=tiers,
        )
    return out


def runtime_memory(runtime: str) -> RuntimeMemory:
    """How ``runtime`` (``vllm``, ``sglang``, ``trtllm``) sizes its KV pool."""
    return _entry(_memory_table(RUNTIME_FILE), runtime, "KV memory rule")
