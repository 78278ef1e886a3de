"""How the server that measured a silicon-sample row was launched: the scheduler and memory
settings its benchmark recipe gave it, where hetsim models them.

A row's TTFT depends on the server's scheduler as much as on its kernels. InferenceX
(SemiAnalysis, Apache-2.0) launches each runtime from a per-model shell script under
``benchmarks/`` whose settings changed from run to run: TensorRT-LLM's batch waiting (prompts
held for up to N decode steps), SGLang's ``--scheduler-recv-interval`` (arrivals taken in every
N decode steps), step token budgets other than the runtime's default (vLLM
``--max-num-batched-tokens`` of twice the ISL, TensorRT-LLM ``max_num_tokens`` of
concurrency + ISL + 64), memory fractions and KV dtypes. Posing those rows with the runtimes'
defaults poses a different server.

``inferencex_launches.csv`` holds, per InferenceX row id, the script and the InferenceX commit
its run executed (read from the repository's history by the run's workflow id or date) and the
settings that script gives that engine at that concurrency, mapped to hetsim's pool settings:

- ``max_batched_tokens`` (vLLM ``--max-num-batched-tokens``, SGLang ``--chunked-prefill-size``,
  TensorRT-LLM ``max_num_tokens``; the longest prompt chunk is the same budget, as posed rows
  use for the runtimes' defaults), ``max_num_seqs`` (``--max-num-seqs``,
  ``--max-running-requests``, ``max_batch_size``); vLLM's and TensorRT-LLM's are per
  attention-DP rank, so an engine of ``dp`` ranks gets ``dp`` times them (its chunk stays one
  rank's); SGLang's are the engine's;
- ``memory_utilization`` (``--gpu-memory-utilization``, ``--mem-fraction-static``,
  ``free_gpu_memory_fraction``: each read by its runtime's own rule), ``kv`` (an explicit FP8
  KV cache dtype);
- ``scheduler_recv_interval``, ``batch_wait_timeout_iters``, ``batch_wait_max_tokens_ratio``,
  ``attention_dp_balance_timeout_iters`` and ``attention_dp_batching_wait_iters``
  (TensorRT-LLM's ``attention_dp_config`` with ``enable_balance``; 50 and 10, its defaults,
  where the script sets only ``enable_balance``). A row whose columns record one rank where the
  script ran attention DP keeps no balancing, and its output says so.

Only rows whose run is tied to one commit and whose script gives one value per setting are
listed; runs on branches the history does not hold, or settings the script leaves to the
runtime, keep the runtime's defaults. Runs that may have decoded speculatively (an MTP script
of the same configuration) are left out too: hetsim poses every row without speculation. A
collapsed row whose repeats ran under different settings keeps the defaults and says so.
Nothing here is read from the measured TTFT or TPOT.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hetsim.validation.protocols import INFERENCEX, protocol_of
from hetsim.validation.silicon import SiliconRow

__all__ = ["AMBIGUOUS", "DEFAULTS", "Launch", "launch_of", "launch_table"]

TABLE_FILE = Path(__file__).with_name("inferencex_launches.csv")
#: the label of a row posed with the runtime's defaults
DEFAULTS = "runtime defaults"
#: the label of a collapsed row whose repeats ran under different settings
AMBIGUOUS = "runtime defaults (its repeats ran under different launch settings)"

_BATCHING = {
    "max_batched_tokens": int,
    "max_num_seqs": int,
    "scheduler_recv_interval": int,
    "batch_wait_timeout_iters": int,
    "batch_wait_max_tokens_ratio": float,
    "attention_dp_balance_timeout_iters": int,
    "attention_dp_batching_wait_iters": int,
}
_BALANCE = "attention_dp_balance_timeout_iters"
_BALANCING = (_BALANCE, "attention_dp_batching_wait_iters")


@dataclass(frozen=True, slots=True)
class Launch:
    """The pool settings a row's server ran with beyond the runtime's defaults (``batching``
    and ``precision`` hold only the keys set), where they come from (``label``: the script at
    its commit, or ``DEFAULTS`` / ``AMBIGUOUS``) and what the script set that hetsim does not
    model (``unmodelled``, empty when nothing)."""

    settings: dict[str, Any]
    label: str
    unmodelled: str = ""

    @property
    def description(self) -> str:
        """Where the settings come from, and what the script set that is not modelled."""
        if not self.unmodelled:
            return self.label
        return f"{self.label} (not modelled: {self.unmodelled})"

    def apply(self, pool: dict[str, Any]) -> None:
        """Set them on a posed pool dict."""
        for key, value in self.settings.items():
            pool[key] = {**pool.get(key, {}), **value} if isinstance(value, dict) else value


def launch_of(row: SiliconRow, table: dict[str, Launch] | None = None) -> Launch:
    """The launch of an aggregated InferenceX row under ``table`` (the bundled one by
    default); disaggregated rows are launched through other recipes, not read here."""
    if row.agg is None or protocol_of(row) is not INFERENCEX:
        return Launch({}, DEFAULTS)
    table = launch_table() if table is None else table
    launch, *repeats = (table.get(i) for i in row.repeat_ids or (row.id,))
    if any(other != launch for other in repeats):
        return Launch({}, AMBIGUOUS)
    if launch is None:
        return Launch({}, DEFAULTS)
    batching = launch.settings.get("batching", {})
    dp = row.agg.dp
    if dp > 1 and row.runtime.value in ("vllm", "trtllm") and batching:
        # vLLM's and TensorRT-LLM's limits are each rank's (SGLang divides its chunk among the
        # ranks): the engine's are dp times theirs; a prompt's chunk stays one rank's
        batching = {
            k: v * dp if k in ("max_batched_tokens", "max_num_seqs") else v
            for k, v in batching.items()
        }
        launch = Launch({**launch.settings, "batching": batching}, launch.label)
    if dp == 1 and _BALANCE in batching:
        # the script ran attention DP where the row's columns record one rank
        kept = {k: v for k, v in batching.items() if k not in _BALANCING}
        said = "TensorRT-LLM attention DP with balancing, where the row records dp 1"
        return Launch({**launch.settings, "batching": kept}, launch.label, said)
    return launch


@cache
def launch_table(path: Path = TABLE_FILE) -> dict[str, Launch]:
    """Row id -> its launch, from a table in the format of the bundled one."""
    with path.open(newline="", encoding="utf-8") as fh:
        lines = (line for line in fh if not line.startswith("#"))
        return {r["id"]: _launch(r) for r in csv.DictReader(lines)}


def _launch(record: dict[str, str]) -> Launch:
    batching: dict[str, Any] = {
        key: kind(record[key]) for key, kind in _BATCHING.items() if record.get(key)
    }
    if "max_batched_tokens" in batching:
        batching["chunk_size"] = batching["max_batched_tokens"]
    settings: dict[str, Any] = {"batching": batching} if batching else {}
    if record.get("memory_utilization"):
        settings["memory_utilization"] = float(record["memory_utilization"])
    if record.get("kv"):
        settings["precision"] = {"kv": record["kv"]}
    return Launch(settings, record["launch"])
