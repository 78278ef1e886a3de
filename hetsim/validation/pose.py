"""Pose a silicon-sample row as a hetsim scenario, or say why it cannot be posed.

A row becomes a scenario dict (the YAML structure, before validation): ``agg`` -> one colocated
pool of one engine with the row's tp / attention dp / expert parallelism and its batch size as
``max_num_seqs``; ``disagg`` -> a prefill and a decode pool with the row's worker counts, batch
sizes and parallelism, joined by the system's NVLink when every worker fits in one scale-up
domain and by its scale-out NICs otherwise. The workload is the closed loop the row's benchmark
client ran (:mod:`hetsim.validation.protocols`): its concurrency, its lengths around the row's ISL
and OSL, its requests per client, every client starting at once, every request measured.

What hetsim cannot honour is a :class:`Reason`, never a silent approximation. The mappings below
that are judgements (which HF checkpoints share a bundled architecture, which KV format a
precision implies) are tables in this module, each entry with its justification.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from hetsim.errors import InputError
from hetsim.spec.hardware import AcceleratorProfile, available_profiles, load_profile
from hetsim.spec.model import ModelConfig, load_model
from hetsim.validation.launches import AMBIGUOUS, DEFAULTS, Launch, launch_of
from hetsim.validation.protocols import BenchmarkProtocol, protocol_of
from hetsim.validation.silicon import Parallelism, SiliconRow

__all__ = [
    "Reason",
    "Posed",
    "Unposed",
    "SYSTEM_PROFILES",
    "MODEL_ARCHITECTURES",
    "UNMODELLED_ARCHITECTURES",
    "FORMATS",
    "family",
    "pose",
    "contradiction",
]


class Reason(enum.Enum):
    """Why a row cannot be posed; the first that applies is reported."""

    NO_CONCURRENCY = "no_concurrency"
    CONTRADICTORY_PARALLELISM = "contradictory_parallelism"
    UNKNOWN_SYSTEM = "unknown_system"
    MODEL_NOT_BUNDLED = "model_not_bundled"
    ARCHITECTURE = "architecture"  # the model needs a feature hetsim's model spec lacks
    FORMAT = "format"
    PIPELINE_PARALLEL = "pipeline_parallel"
    MOE_SPLIT = "moe_split"  # moe_tp x moe_ep is not the devices, or the experts do not divide
    INSTANCE_SPANS_DOMAIN = "instance_spans_domain"
    WORKERS_NOT_RECORDED = "workers_not_recorded"  # disagg, and more than one client


@dataclass(frozen=True, slots=True)
class Posed:
    """A row hetsim can pose: its scenario dict and the facts it rests on."""

    row: SiliconRow
    scenario: dict[str, Any]
    model: str
    model_note: str
    profile: str
    protocol: BenchmarkProtocol
    launch: Launch


@dataclass(frozen=True, slots=True)
class Unposed:
    """A row hetsim cannot pose, and why."""

    row: SiliconRow
    reason: Reason
    detail: str


#: the sample's system names -> hetsim hardware profiles. GB200 and GB300 are NVL72 racks: their
#: profiles' scale-up domain is the rack's 72 GPUs, which the domain checks below use
SYSTEM_PROFILES: dict[str, str] = {
    "h100_sxm": "nvidia-h100-sxm",
    "h200_sxm": "nvidia-h200-sxm",
    "b200_sxm": "nvidia-b200",
    "b300_sxm": "nvidia-b300",
    "gb200": "nvidia-gb200",
    "gb300": "nvidia-gb300",
}

#: HF ids -> a bundled architecture, only where the shapes are the same (config.json layer
#: counts, widths, heads, experts); a quantised checkpoint keeps its base model's architecture
MODEL_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "deepseek-ai/DeepSeek-V3": ("DeepSeek-V3", "bundled"),
    "deepseek-ai/DeepSeek-R1": ("DeepSeek-V3", "R1 is DeepSeek-V3's architecture (same config)"),
    "nvidia/DeepSeek-R1-NVFP4": ("DeepSeek-V3", "NVFP4 checkpoint of R1: V3's architecture"),
    "nvidia/DeepSeek-V3.1-NVFP4": ("DeepSeek-V3", "V3.1 keeps V3's architecture; NVFP4 weights"),
    "meta-llama/Llama-3.1-70B": ("Llama-3.1-70B", "bundled"),
    "meta-llama/Llama-3.1-8B-Instruct": ("Llama-3.1-8B", "Instruct tune of the bundled base"),
    "nvidia/Llama-3.1-8B-Instruct-FP8": ("Llama-3.1-8B", "FP8 checkpoint of the Instruct tune"),
    "Qwen/Qwen3-32B": ("Qwen3-32B", "bundled"),
    "nvidia/Qwen3-32B-NVFP4": ("Qwen3-32B", "NVFP4 checkpoint of Qwen3-32B"),
    "Qwen/Qwen3-235B-A22B-FP8": ("Qwen3-235B-A22B", "FP8 checkpoint of Qwen3-235B-A22B"),
    "zhipuai/GLM-5": ("GLM-5", "bundled"),
    "moonshotai/Kimi-K2.5": (
        "Kimi-K2.5",
        "bundled: its language model (DeepSeek-V3's architecture, 384 experts, 64 heads); "
        "the vision tower is not served by text-only rows",
    ),
    "nvidia/Kimi-K2.5-NVFP4": ("Kimi-K2.5", "NVFP4 checkpoint of Kimi-K2.5 (same text_config)"),
    "MiniMaxAI/MiniMax-M2.5": ("MiniMax-M2.5", "bundled"),
    "nvidia/MiniMax-M2.5-NVFP4": ("MiniMax-M2.5", "NVFP4 checkpoint of MiniMax-M2.5 (same shapes)"),
}

#: how the fp8 checkpoint a row served scales its weights and activations (precision
#: ``fp8_scales``), by the sample's model id, where the checkpoint served is known: its own
#: config.json, or the checkpoint the run's launch workflow names (the sample's id is not always
#: the checkpoint served). Rows whose id names an unquantized base model served in fp8 take
#: the quantization the row records instead (:data:`RECORDED_FP8_SCALES`).
FP8_SCALES: dict[str, tuple[str, str]] = {
    "meta-llama/Llama-3.1-70B": (
        "tensor",
        "InferenceX's fp8 70B runs serve nvidia/Llama-3.3-70B-Instruct-FP8 "
        "(.github/workflows/70b-tmpl.yml at ac1998a504), ModelOpt FP8: per-tensor weight and "
        "static activation scales",
    ),
    "nvidia/Llama-3.1-8B-Instruct-FP8": (
        "tensor",
        "ModelOpt FP8: per-tensor weight and static activation scales",
    ),
    **{
        model: ("block", "config.json weight_block_size [128, 128]")
        for model in (
            "deepseek-ai/DeepSeek-V3",
            "deepseek-ai/DeepSeek-R1",
            "Qwen/Qwen3-235B-A22B-FP8",
            "MiniMaxAI/MiniMax-M2.5",
        )
    },
    "zhipuai/GLM-5": (
        "block",
        "InferenceX serves zai-org/GLM-5-FP8 (.github/configs/nvidia-master.yaml at "
        "13930ca61f), which vLLM's GLM-5 recipe runs on DeepGEMM, its block-scaled fp8 kernel",
    ),
}
#: the sample's ``gemm_quant_mode`` (aiconfigurator's names) -> ``fp8_scales``: for rows whose
#: checkpoint is not known otherwise
RECORDED_FP8_SCALES = {"fp8": "tensor_dynamic", "fp8_static": "tensor", "fp8_block": "block"}


#: runtimes whose ``--kv-cache-dtype`` defaults to ``auto``, the model's own dtype (bf16 for
#: every checkpoint posed) unless the checkpoint quantizes its KV cache (vLLM
#: ``CacheConfig.cache_dtype``, SGLang ``ServerArgs.kv_cache_dtype``)
KV_AUTO_RUNTIMES = ("vllm", "sglang")


def _runtime_kv_default(row: SiliconRow, launch: Launch) -> bool:
    """Whether the row's KV cache is the runtime's bf16 default rather than the FP8 that
    :data:`FORMATS` assumes for quantized rows: its launch script is known and sets no KV
    dtype, its runtime resolves ``auto`` to the model's dtype, and its checkpoint is
    block-scaled fp8, whose ``quantization_config`` quantizes weights only (NVIDIA's ModelOpt
    checkpoints also declare an FP8 KV cache: those keep FP8)."""
    return (
        launch.label not in (DEFAULTS, AMBIGUOUS)
        and "kv" not in launch.settings.get("precision", {})
        and row.runtime.value in KV_AUTO_RUNTIMES
        and row.precision == "fp8"
        and fp8_scales(row) == "block"
    )


def fp8_scales(row: SiliconRow) -> str:
    """How the row's fp8 weights are scaled: the served checkpoint's scaling where it is known
    (:data:`FP8_SCALES`), else what the row records (:data:`RECORDED_FP8_SCALES`), else block
    (hetsim's default)."""
    if row.model in FP8_SCALES:
        return FP8_SCALES[row.model][0]
    return RECORDED_FP8_SCALES.get(row.gemm_quant, "block")


#: HF ids whose architecture needs a feature hetsim's model spec and cost model do not have:
#: posing them on the nearest bundled shape would be a silent approximation, so they are a reason
_GPT_OSS = (
    "sliding-window attention with sinks (gpt-oss: every other layer attends the last 128 tokens) "
    "is not modelled"
)
_QWEN3_5 = (
    "hybrid linear attention (Qwen3.5: Gated DeltaNet in 3 of every 4 layers, with a "
    "fixed-size recurrent state instead of a KV cache) is not modelled"
)
UNMODELLED_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "openai/gpt-oss-120b": ("gpt-oss", _GPT_OSS),
    "openai/gpt-oss-20b": ("gpt-oss", _GPT_OSS),
    "Qwen/Qwen3.5-397B-A17B": ("Qwen3.5-MoE", _QWEN3_5),
    "nvidia/Qwen3.5-397B-A17B-NVFP4": ("Qwen3.5-MoE", _QWEN3_5),
}


def family(model: str) -> str:
    """The architecture family of an HF id: the bundled architecture it is posed on (R1 and the
    NVFP4 checkpoints count as DeepSeek-V3), the family of an unmodelled one, else the id."""
    if model in MODEL_ARCHITECTURES:
        return MODEL_ARCHITECTURES[model][0]
    if model in UNMODELLED_ARCHITECTURES:
        return UNMODELLED_ARCHITECTURES[model][0]
    return model


#: the row's precision -> (weights, activations, KV). The sample does not record the KV dtype;
#: the quantised deployments it measures (TRT-LLM FP8/NVFP4 checkpoints, SGLang/vLLM FP8) store
#: KV in FP8, weight-only int4 keeps a bf16 KV (where a known launch script sets no KV dtype,
#: vLLM and SGLang run a block-scaled fp8 checkpoint's KV in bf16: :func:`_runtime_kv_default`).
#: fp8_block is FP8 with per-block scales: the same tensor-core format, so the same hetsim
#: format.
FORMATS: dict[str, tuple[str, str, str]] = {
    # no precision and no quantisation recorded (366 rows, all of Qwen/Qwen3-32B and
    # meta-llama/Llama-3.1-8B-Instruct): the checkpoint's own dtype, bf16 for both
    "": ("bf16", "bf16", "bf16"),
    "bf16": ("bf16", "bf16", "bf16"),
    "fp8": ("fp8_e4m3", "fp8_e4m3", "fp8_e4m3"),
    "fp4": ("fp4", "fp4", "fp8_e4m3"),
    "int4": ("w4a16", "bf16", "bf16"),
}

#: runtime defaults for one step's new tokens (vLLM max_num_batched_tokens, SGLang
#: chunked_prefill_size, TRT-LLM max_num_tokens are all 8192): long prompts are chunked
STEP_TOKENS = 8192
#: one-way latency of a scale-out KV transfer (RDMA NIC to NIC), as the bundled scenarios use
NIC_LATENCY = "5 us"

_ID_PARALLELISM = re.compile(r"_tp(\d+)(?:_\d+)?_ep(\d+|none)")


def contradiction(row: SiliconRow, domain: int | None) -> str | None:
    """Why an agg row's parallelism columns contradict its id, or None.

    Two signatures: the id names ``tpX_epY`` and the engine's devices (tp x attention dp) are
    not X; or, with no such id, the columns give tp = moe_tp x moe_ep with both above 1 and an
    engine wider than the system's scale-up domain (``domain``; 8 where the system is unknown) --
    the world size counted twice, e.g. tp8/ep8 written as tp=64."""
    par = row.agg
    if par is None:
        return None
    named = _ID_PARALLELISM.search(row.id)
    world = par.tp * par.dp
    if named is not None:
        if int(named.group(1)) != world:
            said = f"tp{named.group(1)}/ep{named.group(2)}"
            return f"id says {said}; columns say tp={par.tp}, dp={par.dp}"
        return None
    doubled = par.moe_tp > 1 and par.moe_ep > 1 and world == par.moe_tp * par.moe_ep
    if doubled and world > (domain or 8):
        return (
            f"columns say tp={par.tp} = moe_tp {par.moe_tp} x moe_ep {par.moe_ep}, wider than "
            f"the {domain or 8}-device domain: a tp{par.moe_tp}/ep{par.moe_ep} engine counted twice"
        )
    return None


def pose(row: SiliconRow, launches: dict[str, Launch] | None = None) -> Posed | Unposed:
    """The row as a scenario dict, or the first reason it cannot be one; its server launched
    as ``launches`` say (the bundled InferenceX table by default)."""
    if row.concurrency is None:
        return Unposed(row, Reason.NO_CONCURRENCY, "silicon_data_source has no silicon_concurrency")
    _check_concurrency(row.concurrency, row)
    profile_name = SYSTEM_PROFILES.get(row.system)
    profile = _profile(profile_name)
    domain = profile.scale_up.domain_size if profile and profile.scale_up else None
    contradicted = contradiction(row, domain)
    if contradicted:
        return Unposed(row, Reason.CONTRADICTORY_PARALLELISM, contradicted)
    if profile is None or profile_name is None:
        known = ", ".join(SYSTEM_PROFILES)
        return Unposed(
            row, Reason.UNKNOWN_SYSTEM, f"no hardware profile for {row.system} ({known})"
        )
    if row.model in UNMODELLED_ARCHITECTURES:
        return Unposed(row, Reason.ARCHITECTURE, UNMODELLED_ARCHITECTURES[row.model][1])
    if row.model not in MODEL_ARCHITECTURES:
        return Unposed(row, Reason.MODEL_NOT_BUNDLED, f"{row.model}: no bundled architecture")
    model, note = MODEL_ARCHITECTURES[row.model]
    formats = _formats(row, profile)
    if isinstance(formats, str):
        return Unposed(row, Reason.FORMAT, formats)
    engines = [e for e in (row.agg, row.prefill, row.decode) if e is not None]
    if any(e.pp > 1 for e in engines):
        return Unposed(row, Reason.PIPELINE_PARALLEL, "pipeline parallelism (pp > 1)")
    spec = load_model(model)
    moe = spec.is_moe
    for engine in engines:
        heads = _heads_problem(engine, spec)
        if heads:
            return Unposed(row, Reason.CONTRADICTORY_PARALLELISM, heads)
        problem = _moe_problem(engine, spec) if moe else None
        if problem:
            return Unposed(row, Reason.MOE_SPLIT, problem)
        if domain is not None and engine.devices > domain:
            return Unposed(
                row,
                Reason.INSTANCE_SPANS_DOMAIN,
                f"an engine of {engine.devices} devices spans more than one {domain}-device domain",
            )
    if row.concurrency > 1 and not all(e.workers_recorded for e in engines):
        # with one client a worker count cannot matter; with more, assuming one worker per
        # role would be a silent guess at the deployment's size
        return Unposed(
            row,
            Reason.WORKERS_NOT_RECORDED,
            "disaggregated row without prefill/decode worker counts, at concurrency "
            f"{row.concurrency}: the deployment's size is not known",
        )
    protocol = protocol_of(row)
    launch = launch_of(row, launches)
    scenario = _scenario(row, model, profile, formats, moe, protocol, launch)
    return Posed(row, scenario, model, note, profile.name, protocol, launch)


def _check_concurrency(clients: int, row: SiliconRow) -> None:
    # read_silicon refuses these; a row built in code must not be posed as some other count
    if clients < 1:
        raise InputError(
            f"silicon row {row.id} (line {row.line}): concurrency must be at least one client",
            field="silicon_concurrency",
            value=clients,
            allowed="a whole number >= 1",
        )


def _profile(name: str | None) -> AcceleratorProfile | None:
    if name is None or name not in available_profiles():
        return None
    return load_profile(name)


def _formats(row: SiliconRow, profile: AcceleratorProfile) -> tuple[str, str, str] | str:
    """(weights, activations, KV) for the row, or why hetsim or the profile has not that."""
    if row.precision not in FORMATS:
        known = ", ".join(repr(k) for k in FORMATS)
        return f"precision {row.precision!r}: hetsim maps only {known}"
    weights, activations, kv = FORMATS[row.precision]
    have = profile.formats
    for role, fmt, allowed in (
        ("weights", weights, have.weights),
        ("activations", activations, have.activations),
        ("kv", kv, have.kv),
    ):
        if fmt not in allowed:
            return f"{row.precision} needs {role} {fmt}, which {profile.name} does not list"
    return weights, activations, kv


def _heads_problem(engine: Parallelism, model: ModelConfig) -> str | None:
    """Why an engine's attention tp cannot be what ran, or None.

    A tp that does not divide the attention heads (the GB200 rows' tp = 12, 20, ..., 72) is no
    tensor-parallel attention any runtime runs. Written as tp, an attention-dp + expert-parallel
    engine would show moe_tp 1 and moe_ep = tp (the experts over every device); no row of the
    sample does: they record moe_tp = tp (experts tensor-parallel over all the devices, which the
    expert width does not divide either) or a mixed split whose product is tp, so what ran cannot
    be read from the columns, and they are contradictory rather than re-interpreted."""
    heads = model.num_attention_heads
    if heads % engine.tp == 0:
        return None
    return (
        f"tp={engine.tp} does not divide the {heads} attention heads of {model.name}; the "
        f"columns (attention dp={engine.dp}, moe_tp={engine.moe_tp}, moe_ep={engine.moe_ep}) do "
        "not describe an attention-dp + expert-parallel engine either (moe_tp=1, moe_ep=tp), so "
        "what ran cannot be read from them"
    )


def _moe_problem(engine: Parallelism, model: ModelConfig) -> str | None:
    """Why an engine's MoE split is impossible, or None. hetsim splits the routed experts as the
    runtimes do, moe_ep ways by expert and moe_tp ways within each over every device of the
    engine (moe_tp x moe_ep = tp x attention dp), so only a split that does not cover the
    devices, or that the expert count or width does not divide, is refused."""
    devices = engine.tp * engine.dp
    split = f"MoE split moe_tp={engine.moe_tp} x moe_ep={engine.moe_ep}"
    if engine.moe_tp * engine.moe_ep != devices:
        return f"{split} is not the engine's {devices} devices (tp x attention dp)"
    if model.num_experts % engine.moe_ep:
        return f"{split}: moe_ep does not divide the {model.num_experts} experts"
    if model.moe_intermediate_size % engine.moe_tp:
        return (
            f"{split}: moe_tp does not divide the experts' intermediate width "
            f"{model.moe_intermediate_size}"
        )
    return None


def _scenario(
    row: SiliconRow,
    model: str,
    profile: AcceleratorProfile,
    formats: tuple[str, str, str],
    moe: bool,
    protocol: BenchmarkProtocol,
    launch: Launch,
) -> dict[str, Any]:
    n = row.concurrency
    assert n is not None, "pose() returns Unposed for a row without concurrency"
    weights, activations, kv = formats
    precision = {"weights": weights, "activations": activations, "kv": kv}
    if weights == "fp8_e4m3":
        precision["fp8_scales"] = fp8_scales(row)

    def pool(name: str, role: str, engine: Parallelism, prefill: bool) -> dict[str, Any]:
        # the sample's batch size is per attention-dp rank; no batch size: the clients bound it
        seqs = engine.batch_size * engine.dp if engine.batch_size else n
        if role == "colocated" and seqs < n and engine.batch_size * engine.devices == n:
            # 21 agg rows (one collection) write the clients per device as the batch size
            # (c80 on tp8: batch 10); the engine was not capped below its clients
            seqs = n
        batching: dict[str, Any] = {"max_num_seqs": seqs}
        batching["max_batched_tokens"] = max(STEP_TOKENS, seqs) if prefill else seqs
        if prefill:
            batching["chunk_size"] = STEP_TOKENS
        return {
            "name": name,
            "role": role,
            "accelerator": profile.name,
            "runtime": row.runtime.value,
            "instances": engine.workers,
            "tp": engine.tp,
            "dp": engine.dp,
            "ep": engine.moe_ep if moe else 1,
            "precision": dict(precision),
            "batching": batching,
        }

    if row.agg is not None:
        engine = pool("engine", "colocated", row.agg, prefill=True)
        launch.apply(engine)  # what the row's launch script sets
        if _runtime_kv_default(row, launch):
            engine["precision"]["kv"] = "bf16"
        pools = [engine]
        interconnect: dict[str, Any] = {"paths": []}
    else:
        assert row.prefill is not None and row.decode is not None
        pools = [
            pool("prefill", "prefill", row.prefill, prefill=True),
            pool("decode", "decode", row.decode, prefill=False),
        ]
        interconnect = {"paths": [_path(row.prefill, row.decode, profile)]}
    return {
        "name": row.id,
        "description": f"silicon sample line {row.line}: {row.model} on {row.system}",
        "model": model,
        "pools": pools,
        "interconnect": interconnect,
        "workload": protocol.workload(n, row.isl, row.osl),
        # required by the schema; validation reads latencies, not attainment
        "sla": {"ttft": "1 h", "tpot": "1 h"},
        "seed": 0,
    }


def _path(prefill: Parallelism, decode: Parallelism, profile: AcceleratorProfile) -> dict:
    """The KV path: NVLink when every worker sits in one scale-up domain, else the NICs.

    Bandwidths are per prefill instance: its devices send their KV shards in parallel."""
    total = prefill.workers * prefill.devices + decode.workers * decode.devices
    scale_up = profile.scale_up
    if scale_up is not None and total <= scale_up.domain_size:
        hop = {
            "name": "nvlink",
            "kind": "scale_up",
            "bandwidth": f"{prefill.devices} x {scale_up.bandwidth.value / 1e9:g} GB/s",
            "latency": f"{scale_up.latency.value * 1e6:g} us",
            "shared_by": "source_instance",
        }
    else:
        nic = profile.nic
        assert nic is not None, f"{profile.name} has no NIC for a scale-out KV path"
        nics = prefill.devices * nic.count_per_device
        hop = {
            "name": "scale_out",
            "kind": "nic",
            "bandwidth": f"{nics:g} x {nic.speed.value / 1e9:g} GB/s",
            "latency": NIC_LATENCY,
            "shared_by": "source_instance",
        }
    return {"from": "prefill", "to": "decode", "hops": [hop]}
