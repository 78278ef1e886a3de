"""The scenario file: one pydantic model, the single source of truth for the YAML format.

``hetsim schema`` prints this model as JSON Schema; ``hetsim check`` validates a file against it
and then runs the cross-field checks in :mod:`hetsim.spec.resolve`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hetsim.spec._types import (
    Bandwidth,
    Bytes,
    Count,
    InstanceCount,
    LatencySeconds,
    PricePerHour,
    RequestRate,
    Seconds,
    StepSeconds,
    StrictModel,
)
from hetsim.spec.faults import FaultsSpec
from hetsim.spec.precision import (
    ACTIVATION_FORMATS,
    FP8_SCALINGS,
    KV_FORMATS,
    PRECISION_SHORTHANDS,
    WEIGHT_FORMATS,
    gemm_compute_format,
    named_fp8_scaling,
)
from hetsim.spec.workload import WorkloadSpec
from hetsim.units import format_bandwidth, format_time

if TYPE_CHECKING:
    from hetsim.spec.hardware import AcceleratorProfile

__all__ = [
    "PrecisionPolicy",
    "Batching",
    "SpeculativeSpec",
    "PoolSpec",
    "Hop",
    "PathSpec",
    "AS_WRITTEN",
    "Interconnect",
    "InterconnectAlternative",
    "TierSpec",
    "PrefixCacheSpec",
    "ConversionSpec",
    "KVPolicy",
    "LifecycleSpec",
    "SLASpec",
    "CostsSpec",
    "SearchSpec",
    "ROLE_POLICIES",
    "parse_token_bounds",
    "RouteCondition",
    "RouteRule",
    "RoleRouting",
    "RoutingSpec",
    "ScenarioSpec",
    "link_of",
]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
Role = Literal["prefill", "decode", "colocated"]


class PrecisionPolicy(StrictModel):
    """Numeric formats of one role. A string is a shorthand: ``bf16``, ``fp8``, ``w8a8``,
    ``w8a16``, ``w4a16``/``awq``, ``fp4`` (KV then stays bf16); ``fp16`` and ``fp32`` set the KV
    format too, as vLLM's ``--dtype half`` does."""

    weights: str = Field(default="bf16", description=f"one of {', '.join(WEIGHT_FORMATS)}")
    activations: str = Field(default="bf16", description=f"one of {', '.join(ACTIVATION_FORMATS)}")
    kv: str = Field(default="bf16", description=f"KV cache storage; one of {', '.join(KV_FORMATS)}")
    fp8_scales: Literal["block", "tensor", "tensor_dynamic"] | None = Field(
        default=None,
        description="fp8 weights only: how the checkpoint scales them and the activations, "
        "which picks the GEMM kernel: "
        + "; ".join(f"{k}: {v}" for k, v in FP8_SCALINGS.items())
        + ". Unset: block",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        if isinstance(data, str):
            if data not in PRECISION_SHORTHANDS:
                raise ValueError(
                    f"unknown precision shorthand {data!r}; allowed: "
                    f"{', '.join(PRECISION_SHORTHANDS)} or a mapping with weights/activations/kv"
                )
            return dict(PRECISION_SHORTHANDS[data])
        return data

    @field_validator("weights")
    @classmethod
    def _w(cls, v: str) -> str:
        return _one_of(v, WEIGHT_FORMATS, "weight format")

    @field_validator("activations")
    @classmethod
    def _a(cls, v: str) -> str:
        return _one_of(v, ACTIVATION_FORMATS, "activation format")

    @field_validator("kv")
    @classmethod
    def _kv(cls, v: str) -> str:
        return _one_of(v, KV_FORMATS, "KV format")

    @model_validator(mode="after")
    def _pair(self) -> PrecisionPolicy:
        if gemm_compute_format(self.weights, self.activations) is None:
            raise ValueError(
                f"weights={self.weights} with activations={self.activations} is not a GEMM any "
                "engine runs; use matching formats (w8a8 int8, fp8 × fp8, fp4 × fp4) or "
                "weight-only quantization with bf16/fp16 activations"
            )
        if self.fp8_scales is not None and self.weights != "fp8_e4m3":
            raise ValueError(
                f"fp8_scales={self.fp8_scales} says how fp8 weights are scaled; these weights "
                f"are {self.weights}: drop fp8_scales or use weights fp8_e4m3"
            )
        return self

    @property
    def fp8_scaling(self) -> str | None:
        """How the fp8 weights are scaled (``block`` unless said), None for other weights."""
        if self.weights != "fp8_e4m3":
            return None
        return self.fp8_scales or "block"

    @property
    def compute_format(self) -> str:
        key = gemm_compute_format(self.weights, self.activations)
        assert key is not None
        return key

    @property
    def named_scaling(self) -> str | None:
        """The fp8 scaling where it is not the default block one (what labels show)."""
        return named_fp8_scaling(self.fp8_scales)

    def label(self) -> str:
        scaled = f"/{self.named_scaling}" if self.named_scaling else ""
        return f"W:{self.weights}{scaled} A:{self.activations} KV:{self.kv}"


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


class Batching(StrictModel):
    """Scheduler limits of one instance (vLLM's names). One instance schedules all its
    data-parallel ranks together, so with ``dp`` > 1 these are vLLM's per-rank limits × dp."""

    max_num_seqs: Count = Field(
        default=256, gt=0, description="requests in one batch of the instance (all dp ranks)"
    )
    max_batched_tokens: Count = Field(
        default=8192,
        gt=0,
        description="new tokens (prefill chunks + decodes) in one step of the instance (all dp "
        "ranks)",
    )
    chunk_size: Count | None = Field(
        default=None,
        gt=0,
        description="longest prefill chunk of one request per step (chunked prefill); null: a "
        "prompt is prefilled in one step, up to max_batched_tokens",
    )
    batch_wait_timeout_iters: Count = Field(
        default=0,
        ge=0,
        description="TensorRT-LLM batch waiting (colocated pools): while sequences decode, "
        "prompts the scheduler would start are held back for up to this many steps, unless "
        "the step's tokens (the prompts' and one per decode) reach batch_wait_max_tokens_ratio "
        "x max_batched_tokens; 0: off (TensorRT-LLM's default). Needs both settings",
    )
    batch_wait_max_tokens_ratio: float = Field(
        default=0.0,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="TensorRT-LLM batch waiting: the share of max_batched_tokens at which "
        "held prompts start at once; 0: off (TensorRT-LLM's default)",
    )
    attention_dp_balance_timeout_iters: Count = Field(
        default=0,
        ge=0,
        description="TensorRT-LLM attention_dp_config {enable_balance: true, timeout_iters: N} "
        "(colocated pools with dp > 1): prompts start only in a step where every attention-DP "
        "rank has one, or after N steps without (ranks taken as evenly loaded); 0: off",
    )
    attention_dp_batching_wait_iters: Count = Field(
        default=10,
        ge=0,
        description="TensorRT-LLM attention_dp_config batching_wait_iters: with balancing on and "
        "every rank decoding, steps that hold prompts back once every rank has one (10, "
        "TensorRT-LLM's default)",
    )
    scheduler_recv_interval: Count = Field(
        default=1,
        ge=1,
        description="SGLang's --scheduler-recv-interval (colocated pools): while the engine "
        "only decodes, the scheduler takes in newly arrived requests every this many decode "
        "steps (at once after a step that computed prompt tokens, and when idle); 1: before "
        "every step (SGLang's default)",
    )
    mixed_chunk: bool | None = Field(
        default=None,
        description="colocated pools: whether prompt chunks run in the same step as the "
        "decodes, sharing max_batched_tokens (vLLM, TensorRT-LLM, SGLang "
        "--enable-mixed-chunk), or in prompt-only steps of up to max_batched_tokens that go "
        "before decoding whenever a prompt can start (false: SGLang's default); null: the "
        "pool runtime's default (true without a runtime, and with dp > 1, where attention-DP "
        "ranks with no prompt decode in the same step)",
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> Batching:
        # TensorRT-LLM waits only while the count is below the timeout and the tokens below
        # the ratio: with either at 0 it never waits, so one alone is a setting with no effect
        if (self.batch_wait_timeout_iters > 0) != (self.batch_wait_max_tokens_ratio > 0):
            raise ValueError(
                "batch waiting needs both batch_wait_timeout_iters and "
                "batch_wait_max_tokens_ratio above 0 (TensorRT-LLM holds prompts only while "
                "under both); set both, or neither"
            )
        return self

    @property
    def batch_waits(self) -> bool:
        return self.batch_wait_timeout_iters > 0


SPECULATIVE_METHODS = ("mtp",)


class SpeculativeSpec(StrictModel):
    """Speculative decoding on a decode (or colocated) pool, as vLLM, SGLang and TRT-LLM run it.

    Each decode step verifies ``tokens`` draft tokens plus one: the target model takes
    ``tokens + 1`` tokens per sequence after its cached context, and the draft is ``tokens``
    sequential passes of the model's MTP module (about one extra decoder layer and the LM head
    each, at one token per sequence). A sequence keeps 1 + the accepted drafts (draft ``j`` is
    accepted with ``acceptance[j]`` only if every draft before it was), never more than its
    output length; its KV grows by the tokens kept and the rejected drafts' slots are released
    in the same step. Acceptance is sampled per step and sequence from the scenario's seed."""

    method: str = Field(
        default="mtp",
        description="draft source; one of: mtp (the model's own multi-token-prediction "
        "layers, config.json num_nextn_predict_layers >= 1). draft_model is not modelled",
    )
    tokens: Count = Field(
        ge=1, le=16, description="draft tokens proposed per step (SGLang speculative_num_steps)"
    )
    acceptance: list[float] = Field(
        description="per-position acceptance rate: acceptance[j] is the probability that draft "
        "j+1 is accepted given drafts 1..j were; one entry per draft token, each in (0, 1]. "
        "The mean accepted length is 1 + a1 + a1·a2 + ...",
    )

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        return _one_of(v, SPECULATIVE_METHODS, "speculative method")

    @field_validator("acceptance")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        bad = [p for p in v if not 0.0 < p <= 1.0]
        if bad:
            raise ValueError(
                f"acceptance rate {bad[0]!r} out of range; allowed: each in (0, 1], e.g. [0.8, 0.6]"
            )
        return v

    @model_validator(mode="after")
    def _one_rate_per_token(self) -> SpeculativeSpec:
        if len(self.acceptance) != self.tokens:
            raise ValueError(
                f"acceptance has {len(self.acceptance)} rate(s) for tokens={self.tokens}; "
                f"allowed: exactly {self.tokens} (one per draft position)"
            )
        return self

    @property
    def mean_accepted(self) -> float:
        """Expected tokens kept per step and sequence: 1 + a1 + a1·a2 + ... (before clipping at
        the output length)."""
        total, run = 1.0, 1.0
        for p in self.acceptance:
            run *= p
            total += run
        return total


def _check_mixing(v: Batching, role: str | None, dp: int) -> Batching:
    """An explicit ``mixed_chunk`` where hetsim cannot honour it. (Prompt-only steps beside
    batch waiting are a scenario check, explicit or by the runtime's default: the default is
    the perf layer's.)"""
    if v.mixed_chunk is None:
        return v
    if role not in ("colocated", None):
        raise ValueError(
            f"mixed_chunk says whether prompts share steps with decodes; a {role} pool never "
            "runs both; allowed here: null (colocated pools only)"
        )
    if v.mixed_chunk is False and dp > 1:
        raise ValueError(
            f"under attention DP (this pool has dp {dp}) the ranks with no prompt decode in the "
            "same step, which hetsim models as mixed; allowed here: true or null, or dp 1"
        )
    return v


class PoolSpec(StrictModel):
    """A set of identical instances of one role on one accelerator type."""

    name: str = Field(description="unique pool name, e.g. 'prefill' or 'decode_h20'")
    role: Role
    accelerator: str = Field(description="a hardware profile name (see `hetsim profiles`)")
    instances: InstanceCount = Field(default=1, description="number of serving instances")
    tp: Count = Field(default=1, ge=1, description="tensor-parallel degree (devices per replica)")
    dp: Count = Field(
        default=1, ge=1, description="data-parallel attention ranks per instance (MoE, DP-attn)"
    )
    ep: Count = Field(
        default=1,
        ge=1,
        description="expert-parallel degree for MoE: the routed experts are split ep ways by "
        "expert and tp·dp/ep ways within each expert (moe_tp); a divisor of tp·dp and of the "
        "model's expert count. 1: every expert tensor-parallel over all devices; tp·dp: whole "
        "experts, experts/ep per device",
    )
    expert_imbalance: float = Field(
        default=1.2,
        ge=1,
        description="MoE with ep > 1: routed tokens on the busiest device over the mean "
        "(an assumption; balanced routing with EPLB-style replication brings it near 1)",
    )
    runtime: Literal["vllm", "sglang", "trtllm"] | None = Field(
        default=None,
        description="serving runtime: selects the measured kernel tables of the profile's "
        "`measured_tables` for this runtime (an input error where there are none); omitted: "
        "calibrated or roofline step times as before",
    )
    precision: PrecisionPolicy = Field(default_factory=PrecisionPolicy)
    batching: Batching = Field(default_factory=Batching)
    memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="share of device memory the engine may use"
    )
    kv_page_tokens: Count = Field(default=16, gt=0, description="KV block (page) size in tokens")
    kv_layout: Literal["NHD", "HND"] = Field(
        default="NHD",
        description="memory layout of a KV page: NHD (tokens, heads, head_dim; vLLM's "
        "FlashAttention default) or HND (heads, tokens, head_dim; FlashInfer, some NPU "
        "backends). Meaningless for MLA, whose latent has no head axis",
    )
    preemption: Literal["recompute", "swap"] = Field(
        default="recompute",
        description="when KV blocks run out: drop the newest sequence's KV and recompute it, or "
        "swap it to host memory over PCIe and back",
    )
    router: (
        Literal["round_robin", "least_outstanding_tokens", "prefix_aware", "least_kv_load"] | None
    ) = Field(
        default=None,
        description="how requests are spread over the instances of this pool's role when the "
        "scenario has no top-level `routing:`. One router spans all pools of a role: pools "
        "that name one must name the same, the others follow it; none named: round_robin. Use "
        "`routing:` for cache_aware, length rules or parameters",
    )
    speculative: SpeculativeSpec | None = Field(
        default=None,
        description="speculative decoding on decode steps (decode and colocated pools), e.g. "
        "{method: mtp, tokens: 2, acceptance: [0.8, 0.6]}; null: one token per step",
    )

    @field_validator("batching")
    @classmethod
    def _batch_waiting_pool(cls, v: Batching, info: ValidationInfo) -> Batching:
        role = info.data.get("role")  # None: the role is invalid, and reported as such
        if v.batch_waits and role not in ("colocated", None):
            raise ValueError(
                "batch waiting holds prompts back while sequences decode beside them; a "
                f"{role} pool never runs both in one step; allowed on colocated pools only"
            )
        if v.attention_dp_balance_timeout_iters and role not in ("colocated", None):
            raise ValueError(
                "attention-DP balancing holds prompts back while sequences decode beside them, "
                f"modelled on colocated pools only (a {role} pool); allowed here: 0"
            )
        dp = info.data.get("dp", 1)
        if v.attention_dp_balance_timeout_iters and dp == 1:
            raise ValueError(
                "attention-DP balancing waits for every attention-DP rank; this pool has dp 1 "
                "(one rank); allowed here: 0, or dp > 1"
            )
        if v.batch_waits and dp > 1:
            raise ValueError(
                f"TensorRT-LLM skips batch waiting under attention DP (this pool has dp {dp}); "
                "use attention_dp_balance_timeout_iters there, or dp 1"
            )
        if v.scheduler_recv_interval > 1 and role not in ("colocated", None):
            raise ValueError(
                "scheduler_recv_interval delays new requests while the engine decodes beside "
                f"them, modelled on colocated pools only (a {role} pool); allowed here: 1"
            )
        if v.scheduler_recv_interval > 1 and dp > 1:
            raise ValueError(
                "SGLang's scheduler_recv_interval does not run with DP attention (this pool "
                f"has dp {dp}); allowed here: 1, or dp 1"
            )
        return _check_mixing(v, role, dp)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("a pool name starts with a letter and has only letters, digits, _ -")
        return v

    @field_validator("speculative")
    @classmethod
    def _decoding_pool(
        cls, v: SpeculativeSpec | None, info: ValidationInfo
    ) -> SpeculativeSpec | None:
        if v is not None and info.data.get("role") == "prefill":
            raise ValueError(
                "speculative decoding applies to decode steps; allowed on decode and colocated "
                "pools, not on a prefill pool"
            )
        return v

    # field validators run only on a value the file sets (pydantic does not validate defaults),
    # so a default never trips them and a dump of a valid pool re-validates
    @field_validator("preemption")
    @classmethod
    def _preemption(cls, v: str, info: ValidationInfo) -> str:
        role = info.data.get("role")  # None: the role is invalid, and reported as such
        if v == "swap" and role not in ("decode", None):
            # prefill instances never preempt; colocated ones recompute (only decode swaps)
            raise ValueError(
                f"preemption swap is modelled on decode pools only; a {role} pool "
                f"{'never preempts' if role == 'prefill' else 'recomputes what it preempts'}; "
                "allowed here: recompute"
            )
        return v

    @field_validator("router")
    @classmethod
    def _router(cls, v: str | None, info: ValidationInfo) -> str | None:
        role = info.data.get("role")  # None: the role is invalid, and reported as such
        if v == "least_kv_load" and role not in ("decode", None):
            raise ValueError(
                "least_kv_load ranks decode instances by their KV blocks used or promised; "
                f"a {role} pool has no such load; allowed here: round_robin, "
                "least_outstanding_tokens, prefix_aware"
            )
        if v == "prefix_aware" and role == "decode":
            raise ValueError(
                "prefix_aware ranks instances by the prompt prefix their prefix cache holds; "
                "decode instances compute no prompts and have no prefix cache; allowed here: "
                "round_robin, least_outstanding_tokens, least_kv_load"
            )
        return v

    @field_validator("ep")
    @classmethod
    def _ep(cls, v: int, info: ValidationInfo) -> int:
        devices = info.data.get("tp", 1) * info.data.get("dp", 1)
        if devices % v:
            allowed = ", ".join(str(d) for d in range(1, devices + 1) if devices % d == 0)
            raise ValueError(
                f"ep={v} must divide the instance's tp·dp={devices} devices (the routed experts "
                f"are split ep × moe_tp over them); allowed: {allowed}"
            )
        return v

    @property
    def devices(self) -> int:
        """Accelerators per instance."""
        return self.tp * self.dp

    @property
    def total_devices(self) -> int:
        return self.devices * self.instances


class Hop(StrictModel):
    """One stage of a KV transfer path (device→NIC, NIC→NIC, host staging...)."""

    name: str
    kind: Literal["scale_up", "pcie", "nic", "fabric", "host_staging"] = Field(
        description="scale_up (NVLink, MetaXLink, HCCS), pcie, nic (RDMA NIC), fabric (switched "
        "network), host_staging (copy through host memory, e.g. across vendors)"
    )
    bandwidth: Bandwidth = Field(description="per direction, e.g. '400 Gbps' or '50 GB/s'")
    latency: LatencySeconds = Field(default=0.0, description="added once per transfer, e.g. '5 us'")
    shared_by: Literal["source_instance", "destination_instance", "path", "cluster"] = Field(
        default="source_instance",
        description="who shares this hop's bandwidth: each source instance has its own (its "
        "NICs), each destination instance has its own, all transfers on this path, or all "
        "transfers in the cluster",
    )
    efficiency: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="achieved / nominal bandwidth of this hop, if measured; null: the source "
        "pool's efficiency.network (an assumption, applied to every hop of the path)",
    )


class PathSpec(StrictModel):
    """How KV gets from the instances of one pool to those of another."""

    from_: str = Field(alias="from", description="producing pool (prefill)")
    to: str = Field(description="consuming pool (decode)")
    hops: list[Hop] = Field(min_length=1)

    @field_validator("hops")
    @classmethod
    def _hops_once(cls, v: list[Hop]) -> list[Hop]:
        # a hop's name is its link: a transfer cannot cross one link twice
        _unique_names("hop", [h.name for h in v])
        return v

    def bottleneck_bandwidth(self) -> float:
        return min(h.bandwidth for h in self.hops)

    def latency(self) -> float:
        return sum(h.latency for h in self.hops)


#: the label of the scenario's own interconnect among a plan's alternatives
AS_WRITTEN = "as written"


class Interconnect(StrictModel):
    """The KV paths between pools, and what they add to the deployment's price."""

    name: str | None = Field(default=None, description=f"a label for plans; null: '{AS_WRITTEN}'")
    price_per_device_hour: PricePerHour = Field(
        default=0.0,
        description="what these links add per hour for every accelerator of the pools their "
        "paths connect (its share of NICs, switch ports, cabling), on top of the accelerator "
        "prices and on the same basis (costs.basis; not converted); 0: the accelerator prices "
        "include them (an assumption, like every price)",
    )
    paths: list[PathSpec] = Field(default_factory=list)

    @field_validator("paths")
    @classmethod
    def _one_link_per_hop_name(cls, v: list[PathSpec]) -> list[PathSpec]:
        _same_hop_settings(v)
        return v

    def cost_per_hour(self, pools: list[PoolSpec]) -> float:
        """The price times the devices of every pool a path starts or ends at, each pool
        counted once: a deployment with no path between pools (colocated) pays nothing."""
        ends = {x.from_ for x in self.paths} | {x.to for x in self.paths}
        return self.price_per_device_hour * sum(p.total_devices for p in pools if p.name in ends)


class InterconnectAlternative(Interconnect):
    """One interconnect the planner may choose instead of the scenario's own: its paths
    replace ``interconnect.paths`` whole (NICs per node are hop bandwidth multiples, e.g.
    ``2 x 400 Gbps``)."""

    name: str = Field(description="a label for plans, e.g. roce-400g")
    paths: list[PathSpec] = Field(
        min_length=1, description="replace interconnect.paths: {from, to, hops: [...]} each"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r}: a letter, then letters, digits, '-' or '_' (e.g. roce-400g)")
        return v


class TierSpec(StrictModel):
    """A place KV can live besides device memory."""

    name: str
    kind: Literal["hbm", "dram", "ssd", "remote"]
    capacity: Bytes
    bandwidth: Bandwidth = Field(
        description="bandwidth of the tier's link: prefix-cache loads into device memory and "
        "writes into the tier (write-back evictions, write-through copies) share it fairly"
    )
    write_bandwidth: Bandwidth | None = Field(
        default=None,
        description="write bandwidth into the tier where slower than `bandwidth` (NVMe SSDs "
        "write ~2-5 GB/s, read ~7-14 GB/s); a write occupies the shared link as long as it "
        "takes at this rate. null: `bandwidth`",
    )
    latency: LatencySeconds = 0.0
    scope: Literal["instance", "pool", "cluster"] = Field(
        default="instance",
        description="one per instance, one per pool, or one shared pool (a cluster-scoped "
        "prefix-cache tier needs one KV format across the pools that compute prompts)",
    )


class PrefixCacheSpec(StrictModel):
    enabled: bool = False
    block_tokens: Count = Field(
        default=512, gt=0, description="prefix hash block size (Mooncake traces: 512)"
    )
    hit_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="share of prompt tokens served from cache when the workload has no block "
        "hashes; null: use the trace's hash_ids (or the synthetic prefix_hit_rate)",
    )
    tier: str | None = Field(
        # null rather than 'hbm', so a dumped scenario with a cascade re-validates
        default=None,
        description="shorthand for a one-tier cache (null: 'hbm' unless `tiers` is given): "
        "'hbm' (the instance's own KV memory) or "
        "the name of a kv.tiers entry, which then holds the cache alone (every hit loads over "
        "its link; nothing is cached in HBM across requests). Give `tiers` instead for a cascade",
    )
    tiers: list[str] | None = Field(
        default=None,
        description="the residency cascade, highest tier first: 'hbm' (the instance's own KV "
        "memory) then names of kv.tiers entries, e.g. [hbm, host_dram, local_ssd]. A prompt "
        "looks up its leading blocks in every tier; each block is served by the highest tier "
        "holding it, loaded over that tier's link. null: the one-tier `tier`",
    )
    write_policy: Literal["write_back", "write_through"] = Field(
        default="write_back",
        description="how blocks reach the lower tiers. write_back: a block is written to the "
        "next tier down when the tier above evicts it, and lives in one tier per owner "
        "(SGLang HiCache's write_back; vLLM's CPU offload of evicted blocks). write_through: "
        "every computed block is written to every lower tier as it is cached, and each tier "
        "evicts on its own (LMCache's default store; Mooncake Store's put after prefill; "
        "SGLang HiCache's write_through)",
    )
    promote: bool = Field(
        default=True,
        description="a hit served from a lower tier is cached in HBM once the prompt is "
        "computed (write_back: moved up, leaving the lower tier of the same owner); false: "
        "it stays only where it was found",
    )

    def cascade(self) -> list[str]:
        """The tier names a prompt is looked up in, highest first."""
        return list(self.tiers) if self.tiers is not None else [self.tier or "hbm"]


ConversionKind = Literal["dtype", "layout", "page_size", "tp"]
ConversionSide = Literal["producer", "consumer", "staging"]


class ConversionSpec(StrictModel):
    """Where one KV conversion at the prefill→decode boundary runs.

    KV bytes are never copied raw between different representations. A ``dtype`` difference
    (producer KV format, ``kv.transfer_format``, consumer KV format) and a ``layout`` difference
    (NHD/HND) must each be declared here, or ``hetsim check`` fails naming both values. A
    ``page_size`` or ``tp`` difference is converted implicitly, as vLLM and SGLang do, on the
    consumer unless declared otherwise; it is still reported and costed. See ``hetsim check``.
    """

    kind: ConversionKind = Field(
        description="dtype: cast / re-quantise the KV (e.g. bf16 → fp8_e4m3); layout: permute "
        "NHD ↔ HND; page_size: re-page into the consumer's page size; tp: re-partition the KV "
        "heads between different tensor-parallel degrees (changes the reads, not the bytes)"
    )
    from_: str | Count | None = Field(
        default=None,
        alias="from",
        description="the value converted from (a KV format, NHD/HND, a page size or a tp "
        "degree); null: any",
    )
    to: str | Count | None = Field(
        default=None, description="the value converted to (same kinds as `from`); null: any"
    )
    where: ConversionSide = Field(
        description="where it runs: producer (a kernel on the prefill devices, before sending), "
        "consumer (a kernel on the decode devices, after receiving) or staging (on the host "
        "of a host_staging hop of the path, at host memory bandwidth). A cast to "
        "kv.transfer_format runs on the producer or in staging; a cast from it on the consumer "
        "or in staging"
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: object) -> object:
        if isinstance(data, dict) and any(isinstance(k, bool) for k in data):
            raise ValueError(
                "a key reads as a YAML boolean (on/off/yes/no are booleans in YAML 1.1); "
                "the side a conversion runs on is `where: producer|consumer|staging`"
            )
        return data

    @model_validator(mode="after")
    def _values(self) -> ConversionSpec:
        for end, value in (("from", self.from_), ("to", self.to)):
            if value is None:
                continue
            if self.kind == "dtype":
                _one_of(str(value), KV_FORMATS, f"KV format in `{end}`")
            elif self.kind == "layout":
                _one_of(str(value), ("NHD", "HND"), f"layout in `{end}`")
            elif isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
                raise ValueError(
                    f"`{end}` of a {self.kind} conversion is a whole number ≥ 1, got {value!r}"
                )
        return self

    def label(self) -> str:
        ends = f" {self.from_ or 'any'} → {self.to or 'any'}"
        return f"{self.kind}{ends} on the {self.where}"


class KVPolicy(StrictModel):
    transfer_format: str | None = Field(
        default=None,
        description="format KV travels in; null: the producer's KV format",
    )
    conversions: list[ConversionSpec] = Field(
        default_factory=list,
        description="where each KV conversion at the boundary runs, e.g. "
        "[{kind: dtype, from: bf16, to: fp8_e4m3, where: producer}]. Required for every dtype or "
        "layout difference between the producer's KV, the transfer format and the consumer's "
        "KV; optional for page_size and tp (implicit: on the consumer). An entry applies to "
        "every conversion of its kind whose from/to it matches; the first one whose `where` is "
        "possible for that conversion wins",
    )
    layerwise_transfer: bool = Field(
        default=False,
        description="stream KV layer by layer, overlapping the last prefill step (push only)",
    )
    tiers: list[TierSpec] = Field(default_factory=list)
    prefix_cache: PrefixCacheSpec = Field(default_factory=PrefixCacheSpec)

    @field_validator("transfer_format")
    @classmethod
    def _fmt(cls, v: str | None) -> str | None:
        return None if v is None else _one_of(v, KV_FORMATS, "KV transfer format")


class LifecycleSpec(StrictModel):
    """Who reserves, owns, moves and frees KV across the boundary. A string is the protocol."""

    protocol: Literal["pull", "push", "store"] = Field(
        default="pull",
        description="pull (vLLM NIXL: prefill holds under a lease, decode reads), push (SGLang: "
        "decode pre-allocates, prefill writes), store (Mooncake Store/LMCache: via a shared tier)",
    )
    lease: Seconds = Field(default=30.0, gt=0, description="pull: vLLM kv_lease_duration")
    heartbeat: Seconds = Field(default=5.0, gt=0, description="pull: lease heartbeat interval")
    reserved_decode_tokens: Count = Field(
        default=512, ge=0, description="push: SGLang --num-reserved-decode-tokens"
    )
    bootstrap_timeout: Seconds = Field(default=300.0, gt=0, description="push: SGLang default")
    waiting_timeout: Seconds = Field(default=300.0, gt=0, description="push: SGLang default")
    store_tier: str | None = Field(default=None, description="store: name of a kv.tiers entry")
    store_lease: Seconds = Field(default=5.0, gt=0, description="store: Mooncake read lease TTL")
    store_high_watermark: float = Field(
        default=0.95, gt=0, le=1, description="store: eviction starts at this usage (Mooncake)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        if isinstance(data, str):
            return {"protocol": data}
        return data


class SLASpec(StrictModel):
    ttft: Seconds = Field(gt=0, description="time-to-first-token bound, e.g. '2 s'")
    tpot: StepSeconds = Field(gt=0, description="time-per-output-token bound, e.g. '50 ms'")
    percentile: float = Field(
        default=90,
        gt=0,
        le=100,
        description="percentile at which the bounds are reported, in percent (90: p90)",
    )
    attainment: float = Field(
        default=0.9, gt=0, le=1, description="target share of requests meeting both bounds"
    )

    @field_validator("percentile")
    @classmethod
    def _in_percent(cls, v: float) -> float:
        # attainment is a share (0.9) and percentile a percent (90): 0.9 here would judge the
        # 0.9th percentile, a bound almost every run meets
        if v < 1:
            raise ValueError(
                f"percentile is in percent (90 means p90); {v:g} would be the {v:g}th "
                f"percentile. Allowed: 1 to 100 (for p{v * 100:g}, write {v * 100:g})"
            )
        return v


#: the provider margin a tco price gets to compare with rental ones (and a rental one loses
#: to compare with tco ones) unless ``costs.tco_margin`` says otherwise: the profiles' own
#: ownership arithmetic gives ~$2.0/h for an H100 that rents at $2.7-4.0/h (1.35-2x); an
#: assumption, printed with every conversion
DEFAULT_TCO_MARGIN = 0.5


class CostsSpec(StrictModel):
    """Prices, on one basis per scenario: profiles priced on the other basis are converted with
    ``tco_margin`` (and every conversion is printed), so a plan never ranks a rented device
    against an owned one at face value."""

    basis: Literal["rental", "tco"] = Field(
        default="rental",
        description="what every price is compared as: `rental` (what a provider charges, its "
        "margin included) or `tco` (owning the device: purchase amortised plus power)",
    )
    tco_margin: float = Field(
        default=DEFAULT_TCO_MARGIN,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="provider margin converting between bases: rental = tco x (1 + margin) "
        "(default 0.5, an assumption)",
    )
    prices: dict[str, PricePerHour] = Field(
        default_factory=dict,
        description="price per device-hour by accelerator name, on `basis`, overriding the "
        "profiles' assumed prices (not converted)",
    )
    idle_power: float = Field(
        default=0.3,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="share of its board power (tdp) a device draws while idle, for energy "
        "(default 0.3, an assumption)",
    )
    note: str | None = None

    def device_price(self, profile: AcceleratorProfile) -> float:
        """US$ per device-hour of ``profile`` on this scenario's basis (one definition, used
        by every cost)."""
        if profile.name in self.prices:
            return self.prices[profile.name]
        return profile.price_on(self.basis, self.tco_margin)

    def conversion(self, profile: AcceleratorProfile) -> str | None:
        """How ``profile``'s price was converted to this basis; None when it was not."""
        if profile.name in self.prices or profile.basis in (None, self.basis):
            return None
        op = "x" if self.basis == "rental" else "/"
        return (
            f"{profile.name} {profile.basis} ${profile.price:.2f}/h {op} (1 + {self.tco_margin:.0%}"
            f" margin) = {self.basis} ${self.device_price(profile):.2f}/h"
        )

    def basis_line(self, profiles: Iterable[AcceleratorProfile]) -> str:
        """One line: the basis every price is on and each conversion applied."""
        seen = {p.name: p for p in profiles}
        done = [c for p in seen.values() if (c := self.conversion(p)) is not None]
        given = sorted(n for n in seen if n in self.prices)
        line = f"prices on a {self.basis} basis"
        if done:
            line += "; converted: " + ", ".join(done) + " (costs.tco_margin, an assumption)"
        if given:
            line += "; from costs.prices: " + ", ".join(given)
        return line


class RoleSearch(StrictModel):
    """Values to try for one role; an empty list keeps the scenario's pool value. For MoE
    models whose pool sets ep > 1, ep follows tp (experts spread over the instance's devices)."""

    accelerators: list[str] = Field(default_factory=list, description="hardware profile names")
    instances: list[InstanceCount] = Field(
        default_factory=list, description="instance counts (the P:D ratio)"
    )
    tp: list[Annotated[Count, Field(ge=1)]] = Field(
        default_factory=list, description="tensor-parallel degrees"
    )
    precision: list[PrecisionPolicy] = Field(
        default_factory=list,
        description="precision policies (shorthands such as w8a8, fp8, bf16, awq); a shorthand "
        "keeps the pool's KV format, except fp16 and fp32, which set it",
    )
    kv: list[str] = Field(default_factory=list, description="KV cache storage formats")
    chunk_size: list[Annotated[Count, Field(gt=0)]] = Field(
        default_factory=list, description="prefill chunk sizes (tokens)"
    )
    max_num_seqs: list[Annotated[Count, Field(gt=0)]] = Field(
        default_factory=list, description="batch limits (requests per step)"
    )

    @field_validator("kv")
    @classmethod
    def _kv(cls, v: list[str]) -> list[str]:
        return [_one_of(x, KV_FORMATS, "KV format") for x in v]


class SearchSpec(StrictModel):
    """The planner's design space. Empty lists mean: keep the scenario's value."""

    prefill: RoleSearch = Field(default_factory=RoleSearch)
    decode: RoleSearch = Field(default_factory=RoleSearch)
    transfer_format: list[str] = Field(default_factory=list, description="KV wire formats")
    max_requests: Count | None = Field(
        default=None,
        gt=0,
        description="replay only the first N requests of the workload in each planning "
        "simulation (faster plans; the workload must still span many TTFT bounds)",
    )
    rel_tol: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="goodput resolution: the reported rate meets the SLA, rate·(1 + rel_tol) "
        "does not",
    )
    lifecycle: list[Literal["pull", "push", "store"]] = Field(default_factory=list)
    colocated: bool = Field(default=True, description="also evaluate a colocated baseline")
    inventory: dict[str, Annotated[Count, Field(ge=0)]] = Field(
        default_factory=dict,
        description="devices available per accelerator name (an accelerator not listed is not "
        "limited)",
    )
    budget_per_hour: PricePerHour | None = None
    min_rate: RequestRate | None = Field(default=None, description="rate to serve at least")
    objective: Literal[
        "goodput", "goodput_per_device", "goodput_per_dollar", "cheapest_for_rate", "energy"
    ] = "goodput_per_dollar"
    interconnect: list[InterconnectAlternative] = Field(
        default_factory=list,
        description="interconnects to try for disaggregated candidates besides the scenario's "
        f"own ('{AS_WRITTEN}', always tried): [{{name, price_per_device_hour, paths}}, ...]",
    )

    @field_validator("interconnect")
    @classmethod
    def _interconnect_names(cls, v: list[InterconnectAlternative]) -> list[InterconnectAlternative]:
        _unique_names("interconnect", [x.name for x in v])
        return v


def link_of(name: str, shared_by: str, source_pool: str, destination_pool: str) -> tuple:
    """Which paths' hops of this name are one link (the simulator builds one per name and
    scope): all of them for ``cluster``, those into one pool's instances for
    ``destination_instance``, out of one pool's for ``source_instance``, one path's alone for
    ``path``."""
    scope = {
        "cluster": (),
        "destination_instance": (destination_pool,),
        "source_instance": (source_pool,),
        "path": (source_pool, destination_pool),
    }[shared_by]
    return (name, shared_by, *scope)


def _same_hop_settings(paths: list[PathSpec]) -> None:
    """Paths whose hops are one link (:func:`link_of`) must describe it alike: otherwise
    whichever path built it first would silently set it for the others."""
    seen: dict[tuple[str, ...], tuple[int, Hop]] = {}
    for i, path in enumerate(paths):
        for hop in path.hops:
            first = seen.setdefault(link_of(hop.name, hop.shared_by, path.from_, path.to), (i, hop))
            if first[1] != hop:
                j, other = first
                fields = ", ".join(
                    f"{k} {_shown(k, getattr(other, k))} vs {_shown(k, getattr(hop, k))}"
                    for k in Hop.model_fields
                    if getattr(other, k) != getattr(hop, k)
                )
                raise ValueError(
                    f"hop {hop.name!r} is one link, but paths[{j}] and paths[{i}] describe it "
                    f"differently ({fields}); allowed: the same settings on every path that "
                    "names it, or different names for different links"
                )


def _shown(field: str, value: object) -> str:
    """A hop setting in the units a scenario writes it in."""
    if field == "bandwidth":
        return format_bandwidth(value)  # type: ignore[arg-type]
    if field == "latency":
        return format_time(value)  # type: ignore[arg-type]
    return repr(value)


def _unique_names(what: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")


RoutingPolicy = Literal[
    "round_robin", "least_outstanding_tokens", "prefix_aware", "cache_aware", "least_kv_load"
]
#: the policies each role's router may use (the others rank by a load the role does not have)
ROLE_POLICIES: dict[str, tuple[str, ...]] = {
    "prefill": ("round_robin", "least_outstanding_tokens", "prefix_aware", "cache_aware"),
    "colocated": ("round_robin", "least_outstanding_tokens", "prefix_aware", "cache_aware"),
    "decode": ("round_robin", "least_outstanding_tokens", "least_kv_load"),
}
_BOUND = re.compile(r"^(>=|<=|>|<)\s*([0-9]+)$")
_CONDITION_FORMS = "'>8192', '>=8192', '<2048', '<=2048', or a range such as '>=2048 <8192'"


def parse_token_bounds(text: str) -> tuple[int, int | None]:
    """``'>8192'`` → ``(8193, None)``; ``'>=2048 <8192'`` → ``(2048, 8192)``: the half-open
    interval ``[low, high)`` of prompt lengths a condition admits (None: unbounded above)."""
    parts = [p for p in re.split(r"[\s,]+(?=[<>])", text.strip()) if p]
    low, high = 0, None
    seen: set[str] = set()
    for part in parts:
        m = _BOUND.match(part.strip())
        if m is None:
            raise ValueError(f"cannot read {part!r} as a bound; allowed: {_CONDITION_FORMS}")
        op, n = m.group(1), int(m.group(2))
        side = "lower" if op[0] == ">" else "upper"
        if side in seen:
            raise ValueError(f"two {side} bounds in {text!r}; allowed: {_CONDITION_FORMS}")
        seen.add(side)
        if side == "lower":
            low = n + 1 if op == ">" else n
        else:
            high = n if op == "<" else n + 1
    if not parts or len(parts) > 2:
        raise ValueError(f"expected one or two bounds; allowed: {_CONDITION_FORMS}")
    if high is not None and high <= low:
        raise ValueError(f"{text!r} admits no prompt length; allowed: {_CONDITION_FORMS}")
    return low, high


class RouteCondition(StrictModel):
    """When a routing rule applies: bounds on the request's prompt length in tokens."""

    input_tokens: str = Field(
        description="prompt length bounds: '>8192', '>=8192', '<2048', '<=2048', or a range "
        "'>=2048 <8192' (both bounds, space or comma between)"
    )

    @field_validator("input_tokens", mode="before")
    @classmethod
    def _bounds(cls, v: object) -> object:
        if not isinstance(v, str):  # a bare number has no direction: say which forms exist
            raise ValueError(f"a comparison is needed, not {v!r}; allowed: {_CONDITION_FORMS}")
        parse_token_bounds(v)
        return v

    @property
    def bounds(self) -> tuple[int, int | None]:
        return parse_token_bounds(self.input_tokens)


class RouteRule(StrictModel):
    """One routing rule: requests matching ``when`` (all, without it) go to the pools ``to``."""

    when: RouteCondition | None = Field(
        default=None, description="{input_tokens: '>8192'}; omitted: every request (catch-all)"
    )
    to: list[str] = Field(
        min_length=1, description="a pool name or a list of pool names of the routed role"
    )

    @field_validator("to", mode="before")
    @classmethod
    def _one_pool(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


class RoleRouting(StrictModel):
    """The router of one role: a policy over all live instances of the role's pools, or over
    those of the pools the first matching rule names."""

    policy: RoutingPolicy = Field(
        default="round_robin",
        description="round_robin | least_outstanding_tokens | prefix_aware (longest cached "
        "prefix, then least outstanding) | cache_aware (overlap_weight × prompt blocks to "
        "compute + outstanding blocks, least wins) | least_kv_load (decode; prefers instances "
        "with KV room for prompt + output now)",
    )
    overlap_weight: float | None = Field(
        default=None,
        gt=0,
        description="cache_aware only: weight of the prompt blocks left to compute against the "
        "blocks already queued (Dynamo's overlap_score_weight); default 1.0",
    )
    rules: list[RouteRule] | None = Field(
        default=None,
        description="prefill or colocated only: ordered rules, first match wins, the last one "
        "without `when` (a catch-all), e.g. [{when: {input_tokens: '>8192'}, to: prefill-a100}, "
        "{to: prefill-4090}]",
    )

    @field_validator("overlap_weight")
    @classmethod
    def _weight_applies(cls, v: float | None, info: ValidationInfo) -> float | None:
        policy = info.data.get("policy")  # None: invalid, and reported as such
        if v is not None and policy not in ("cache_aware", None):
            raise ValueError(
                f"overlap_weight weighs the prompt blocks left to compute in cache_aware's cost; "
                f"policy {policy} has no such cost; allowed: policy cache_aware, or no "
                "overlap_weight"
            )
        return v

    @property
    def weight(self) -> float:
        return 1.0 if self.overlap_weight is None else self.overlap_weight


class RoutingSpec(StrictModel):
    """One router per role that takes requests, across all pools of that role."""

    prefill: RoleRouting | None = None
    colocated: RoleRouting | None = None
    decode: RoleRouting | None = None


class ScenarioSpec(StrictModel):
    """A serving scenario: model, pools, links, KV policy, workload, SLA, costs and search space."""

    name: str = Field(description="the scenario's name, shown in outputs")
    description: str | None = None
    model: str = Field(description="a bundled model name or a path to a HF config.json")
    pools: list[PoolSpec] = Field(
        min_length=1, description="one or more pools: {name, role, accelerator, instances, ...}"
    )
    interconnect: Interconnect = Field(default_factory=Interconnect)
    kv: KVPolicy = Field(default_factory=KVPolicy)
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)
    workload: WorkloadSpec = Field(description="one of synthetic, trace or closed_loop")
    sla: SLASpec = Field(
        description="{ttft: 2 s, tpot: 50 ms, percentile: 90, attainment: 0.9}: the latency "
        "bounds and the share of requests that must meet them"
    )
    costs: CostsSpec = Field(default_factory=CostsSpec)
    seed: Count = Field(default=0, ge=0)
    faults: FaultsSpec = Field(default_factory=FaultsSpec)
    search: SearchSpec | None = None
    routing: RoutingSpec | None = Field(
        default=None,
        description="one router per role across all its pools: {prefill: {policy: cache_aware, "
        "rules: [...]}, decode: {policy: least_kv_load}}; omitted: the pools' `router`",
    )

    @field_validator("pools")
    @classmethod
    def _pools(cls, pools: list[PoolSpec]) -> list[PoolSpec]:
        # a field validator, not a model one, so that the error names the field `pools`
        _unique_names("pool", [p.name for p in pools])
        roles = {p.role for p in pools}
        if "colocated" in roles and len(roles) > 1:
            raise ValueError(
                "a scenario is either disaggregated (prefill + decode pools) or colocated; "
                "compare the two as separate scenarios (the planner does)"
            )
        if ("prefill" in roles) != ("decode" in roles):
            missing = "decode" if "prefill" in roles else "prefill"
            raise ValueError(
                f"a disaggregated deployment needs both prefill and decode pools; no {missing} pool"
            )
        return pools

    def pool(self, name: str) -> PoolSpec:
        for p in self.pools:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def disaggregated(self) -> bool:
        return any(p.role == "prefill" for p in self.pools)

    def role_routing(self, role: str) -> RoleRouting:
        """The router of ``role``: ``routing.<role>`` where given, else the policy its pools'
        ``router`` names (the checks refuse pools of one role that disagree)."""
        given = getattr(self.routing, role, None) if self.routing is not None else None
        if given is not None:
            return given
        named = [p.router for p in self.pools if p.role == role and p.router is not None]
        return RoleRouting(policy=named[0] if named else "round_robin")
