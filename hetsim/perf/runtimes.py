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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from hetsim.errors import InputError
from hetsim.units import parse_time

__all__ = ["RUNTIME_FILE", "RuntimeOverheads", "runtime_overheads"]

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
        value = {k: v["value"] for k, v in figures.items()}
        out[name] = RuntimeOverheads(
            name=name,
            step_host=parse_time(value["step_host"]),
            overlap=bool(value["overlap"]),
            launch=parse_time(value["launch"]),
            graph_max_batch=int(value["graph_max_batch"]),
            request_fixed=parse_time(value["request_fixed"]),
            tokenize_rate=float(value["tokenize_rate"]),
        )
    return out


def runtime_overheads(runtime: str) -> RuntimeOverheads:
    """The overheads of ``runtime`` (``vllm``, ``sglang``, ``trtllm``)."""
    table = _table(RUNTIME_FILE)
    if runtime not in table:
        raise InputError(
            "no runtime overheads for this runtime",
            field="runtime",
            value=runtime,
            allowed=sorted(table),
        )
    return table[runtime]
