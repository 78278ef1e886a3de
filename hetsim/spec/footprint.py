"""Memory of one instance: weights, activation workspace, and what is left for KV.

Sharding follows the engines: attention, dense MLPs, shared experts, embeddings and LM head are
split over ``tp`` (and replicated across ``dp`` ranks); routed experts are split over every
device of the instance, ``ep`` ways by expert and ``moe_tp = tp·dp / ep`` ways within each expert
(TRT-LLM's moe_tp × moe_ep = tp × attention dp; SGLang and vLLM split them the same way). GQA
KV heads are split over ``tp`` (replicated once ``tp`` exceeds the KV heads); the MLA latent is
not split by head, so every TP rank stores the whole latent of its requests. With ``dp``
attention ranks each rank serves its own requests.

The activation workspace and the runtime reserve are estimates (labelled as such by
``hetsim check``): vLLM measures the peak with a profiling run at start-up, which we cannot do.

How much is left for KV follows the serving runtime when the pool names one (a :class:`KvBudget`
built from ``hetsim/perf/runtimes.yaml`` by :func:`hetsim.perf.runtimes.runtime_memory`):
vLLM caps total memory, SGLang caps weights + KV, TensorRT-LLM takes a share of what is free.
Without a runtime: ``memory_utilization x capacity - weights - activations - reserve``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from hetsim.spec.hardware import AcceleratorProfile
from hetsim.spec.model import ModelConfig
from hetsim.spec.scenario import PoolSpec
from hetsim.units import format_bytes

__all__ = [
    "KvBudget",
    "MemoryFootprint",
    "footprint",
    "RUNTIME_RESERVE_BYTES",
    "kv_bytes_per_token_per_device",
]

#: CUDA/driver context, communicator buffers and graph pools per device — an assumption
RUNTIME_RESERVE_BYTES = 1.0 * 2**30


@dataclass(frozen=True)
class MemoryFootprint:
    capacity_per_device: float
    usable_per_device: float
    weights_per_device: float
    activations_per_device: float
    runtime_reserve_per_device: float
    kv_room_per_device: float
    kv_bytes_per_token_per_device: float
    kv_capacity_tokens: int  # per instance, whole pages only
    kv_capacity_blocks: int  # per instance
    kv_page_tokens: int
    kv_rule: str = ""  # which rule sized the KV pool, for `hetsim check`

    @property
    def fits(self) -> bool:
        return self.kv_room_per_device > 0 and self.kv_capacity_blocks > 0

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True)
class KvBudget:
    """How a serving runtime sizes its KV pool on one device.

    * ``total`` (vLLM ``gpu_memory_utilization``): ``fraction x capacity - weights - activations
      - reserve``; the runtime profiles the activation peak, hetsim estimates it.
    * ``static`` (SGLang ``mem_fraction_static``): ``fraction x capacity - weights``; the fraction
      already leaves room for activations and CUDA graphs.
    * ``free`` (TensorRT-LLM ``free_gpu_memory_fraction``): ``fraction x (capacity - weights -
      activations - reserve)``, a share of what is free once the model is loaded.

    ``reserve`` is what the rule subtracts besides weights and activations (CUDA graphs,
    non-torch allocations); ``label`` names the runtime's setting, e.g. "vLLM
    gpu_memory_utilization".
    """

    rule: Literal["total", "static", "free"]
    fraction: float
    reserve: float
    label: str


def kv_bytes_per_token_per_device(model: ModelConfig, tp: int, kv_format: str) -> float:
    """Bytes one token's KV occupies on each device of a TP group."""
    full = model.kv_bytes_per_token(kv_format)
    if model.is_mla:
        return full
    heads_per_device = max(1.0, model.num_kv_heads / tp)
    return full * heads_per_device / model.num_kv_heads


def activation_workspace_bytes(model: ModelConfig, pool: PoolSpec) -> float:
    """Peak activation memory of one step on one device (estimate).

    A step of ``max_batched_tokens`` tokens keeps a few hidden-size buffers (residual, normed
    input, attention output), the local slice of QKV, and the local MLP intermediate (gate and up)
    live at once, in 16-bit; sampling keeps fp32 logits for every sequence in the batch.
    """
    tokens = pool.batching.max_batched_tokens
    tp = pool.tp
    if model.is_moe:
        shards = pool.devices  # the routed experts' rows and widths spread over every device
        ffn = max(
            model.intermediate_size / tp if model.num_dense_layers else 0.0,
            model.experts_per_token * model.moe_intermediate_size / shards
            + model.shared_expert_intermediate_size / tp,
        )
    else:
        ffn = model.intermediate_size / tp
    if model.is_mla:
        qkv = (
            model.num_attention_heads
            * (model.qk_nope_head_dim + model.qk_rope_head_dim + model.v_head_dim)
            / tp
        )
    else:
        qkv = (model.num_attention_heads + 2 * model.num_kv_heads) * model.head_dim / tp
    per_token = 2.0 * (4 * model.hidden_size + qkv + 2 * ffn)
    logits = pool.batching.max_num_seqs * model.vocab_size / tp * 4.0
    return tokens * per_token + logits


def weights_per_device(model: ModelConfig, pool: PoolSpec) -> float:
    experts, other = model.weight_bytes_split(pool.precision.weights)
    # ep experts' groups of moe_tp slices: every device holds 1/(tp·dp) of the routed experts
    return other / pool.tp + experts / pool.devices


def footprint(
    model: ModelConfig,
    profile: AcceleratorProfile,
    pool: PoolSpec,
    budget: KvBudget | None = None,
) -> MemoryFootprint:
    """Memory of one device of ``pool``; ``budget``: the runtime's KV sizing rule (None:
    hetsim's own, ``memory_utilization`` of capacity less weights, activations and a reserve)."""
    capacity = profile.memory_bytes
    weights = weights_per_device(model, pool)
    activations = activation_workspace_bytes(model, pool)
    usable, room, reserve, rule = _kv_room(capacity, weights, activations, pool, budget)
    per_token = kv_bytes_per_token_per_device(model, pool.tp, pool.precision.kv)
    page = pool.kv_page_tokens
    blocks_per_rank = int(room // (per_token * page)) if room > 0 else 0
    blocks = blocks_per_rank * pool.dp
    return MemoryFootprint(
        capacity_per_device=capacity,
        usable_per_device=usable,
        weights_per_device=weights,
        activations_per_device=activations,
        runtime_reserve_per_device=reserve,
        kv_room_per_device=room,
        kv_bytes_per_token_per_device=per_token,
        kv_capacity_tokens=blocks * page,
        kv_capacity_blocks=blocks,
        kv_page_tokens=page,
        kv_rule=rule,
    )


def _kv_room(
    capacity: float,
    weights: float,
    activations: float,
    pool: PoolSpec,
    budget: KvBudget | None,
) -> tuple[float, float, float, str]:
    """(usable, KV room, reserve, rule in words) per device under ``budget``."""
    gb = format_bytes(capacity, 4, binary=True)
    if budget is None:
        usable = capacity * pool.memory_utilization
        room = usable - weights - activations - RUNTIME_RESERVE_BYTES
        rule = (
            f"hetsim memory_utilization {pool.memory_utilization:g} of {gb} − weights − "
            f"activations − {format_bytes(RUNTIME_RESERVE_BYTES, 3, binary=True)} reserve"
        )
        return usable, room, RUNTIME_RESERVE_BYTES, rule
    f, reserve = budget.fraction, budget.reserve
    head = f"{budget.label} {f:g}"
    if budget.rule == "total":
        usable = f * capacity
        rule = (
            f"{head} of {gb} − weights − activations − {format_bytes(reserve, 3, binary=True)} "
            "CUDA graphs and non-torch"
        )
        return usable, usable - weights - activations - reserve, reserve, rule
    if budget.rule == "static":
        usable = f * capacity
        return usable, usable - weights, reserve, f"{head} of {gb} − weights"
    usable = capacity - weights - activations - reserve
    left = f"{gb} − weights − activations − {format_bytes(reserve, 3, binary=True)} reserve"
    rule = f"{head} of ({left})"
    return usable, f * usable, reserve, rule
