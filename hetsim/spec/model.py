"""Model architectures read from Hugging Face ``config.json`` files.

hetsim needs the shapes that decide cost: parameters per layer (dense MLP or MoE experts),
attention geometry (GQA heads, or MLA latent widths, and DeepSeek-style sparse attention), the
vocabulary. From them it derives total and active parameters, weight bytes per format, KV bytes
per token per KV format and FLOPs per token as a function of context length.

Counting conventions (they match the published totals): weights include embeddings and an untied
LM head; norms and biases are left out (well under 0.1% of any bundled model); MTP / next-n
prediction layers are left out, as serving engines do not run them unless speculative decoding is
on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from hetsim.errors import InputError
from hetsim.spec.precision import KV_FORMATS, WEIGHT_FORMATS, get_format

__all__ = ["ModelConfig", "load_model", "bundled_models", "MODEL_CONFIG_DIR"]

MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"

_SUPPORTED_TYPES = {
    "llama": "dense GQA",
    "qwen2": "dense GQA",
    "qwen3": "dense GQA",
    "mistral": "dense GQA",
    "mixtral": "MoE GQA",
    "minimax_m2": "MoE GQA",
    "qwen2_moe": "MoE GQA",
    "qwen3_moe": "MoE GQA",
    "glm4_moe": "MoE GQA",
    "deepseek_v2": "MoE MLA",
    "deepseek_v3": "MoE MLA",
    "kimi_k2": "MoE MLA",  # Kimi-K2/K2.5's language model: DeepseekV3ForCausalLM
    "deepseek_v32": "MoE MLA + sparse attention",
    "glm_moe_dsa": "MoE MLA + sparse attention",
}


@dataclass(frozen=True)
class ModelConfig:
    """The cost-relevant shape of a decoder-only transformer."""

    name: str
    model_type: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_context: int
    tie_word_embeddings: bool = False
    # MoE
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    num_dense_layers: int = 0  # leading dense layers before the MoE ones (first_k_dense_replace)
    # MLA (DeepSeek-V2/V3, GLM-5)
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # DeepSeek sparse attention: an indexer scores every cached token, attention reads top-k
    index_topk: int = 0
    index_n_heads: int = 0
    index_head_dim: int = 0
    # RMSNorm of q and k over all heads at once (MiniMax-M2 ``qk_norm_type: per_layer``): with
    # the heads split over tensor-parallel ranks, each layer all-reduces the partial sums
    qk_norm_across_heads: bool = False
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ---- kind ---------------------------------------------------------------------------------

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def is_sparse_attention(self) -> bool:
        return self.index_topk > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    @property
    def attention_kind(self) -> str:
        if self.is_mla:
            return "MLA + DSA" if self.is_sparse_attention else "MLA"
        if self.num_kv_heads == self.num_attention_heads:
            return "MHA"
        return "GQA" if self.num_kv_heads > 1 else "MQA"

    @property
    def description(self) -> str:
        kind = "MoE" if self.is_moe else "dense"
        return f"{kind} {self.attention_kind}"

    # ---- parameters ---------------------------------------------------------------------------

    @cached_property
    def attention_params_per_layer(self) -> int:
        h = self.hidden_size
        if self.is_mla:
            qk_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            heads = self.num_attention_heads
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank * heads * qk_head
            else:
                q = h * heads * qk_head
            kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_b = self.kv_lora_rank * heads * (self.qk_nope_head_dim + self.v_head_dim)
            o = heads * self.v_head_dim * h
            indexer = 0
            if self.is_sparse_attention:
                q_in = self.q_lora_rank or h
                indexer = (
                    q_in * self.index_n_heads * self.index_head_dim  # indexer queries
                    + h * self.index_head_dim  # indexer keys
                    + h * self.index_n_heads  # per-head weights
                )
            return q + kv_a + kv_b + o + indexer
        q = h * self.num_attention_heads * self.head_dim
        kv = 2 * h * self.num_kv_heads * self.head_dim
        o = self.num_attention_heads * self.head_dim * h
        return q + kv + o

    @property
    def dense_mlp_params(self) -> int:
        """Gated MLP (gate, up, down) of a dense layer."""
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def expert_params(self) -> int:
        return 3 * self.hidden_size * self.moe_intermediate_size

    @property
    def shared_expert_params(self) -> int:
        return 3 * self.hidden_size * self.shared_expert_intermediate_size

    @property
    def router_params(self) -> int:
        return self.hidden_size * self.num_experts

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @cached_property
    def params_total(self) -> int:
        layers = self.num_layers * self.attention_params_per_layer
        layers += self.num_dense_layers_effective * self.dense_mlp_params
        layers += self.num_moe_layers * (
            self.num_experts * self.expert_params + self.shared_expert_params + self.router_params
        )
        return layers + self.embedding_params + self.lm_head_params

    @cached_property
    def params_active(self) -> int:
        """Parameters touched per token: attention, dense MLPs, routed top-k + shared experts."""
        layers = self.num_layers * self.attention_params_per_layer
        layers += self.num_dense_layers_effective * self.dense_mlp_params
        layers += self.num_moe_layers * (
            self.experts_per_token * self.expert_params
            + self.shared_expert_params
            + self.router_params
        )
        return layers + self.embedding_params + self.lm_head_params

    @property
    def num_dense_layers_effective(self) -> int:
        return self.num_dense_layers if self.is_moe else self.num_layers

    @cached_property
    def params_matmul_active(self) -> int:
        """Active parameters in a matmul per token (the embedding lookup is not one)."""
        return (
            self.params_active
            - self.embedding_params
            + (self.embedding_params if self.tie_word_embeddings else 0)
        )

    @property
    def routed_expert_params(self) -> int:
        return self.num_moe_layers * self.num_experts * self.expert_params

    def weight_bytes(self, weight_format: str) -> float:
        """Bytes of all weights in ``weight_format``."""
        experts, other = self.weight_bytes_split(weight_format)
        return experts + other

    def weight_bytes_split(self, weight_format: str) -> tuple[float, float]:
        """(routed expert bytes, all other bytes) in ``weight_format``.

        Embeddings and the LM head stay 16-bit, as quantized checkpoints keep them; scale bytes
        of the format are included.
        """
        fmt = get_format(weight_format, "weights")
        edge = self.embedding_params + self.lm_head_params
        experts = self.routed_expert_params
        rest = self.params_total - edge - experts

        def stored(params: int) -> float:
            return fmt.bytes_for_vector(params) if fmt.scale_group else params * fmt.element_bytes

        edge_bytes = edge * (2.0 if fmt.element_bytes <= 2 else fmt.element_bytes)
        return stored(experts), stored(rest) + edge_bytes

    # ---- KV cache -----------------------------------------------------------------------------

    @property
    def kv_vectors_per_token_per_layer(self) -> tuple[int, int]:
        """(vectors, length): GQA stores K and V per KV head; MLA one latent + rope vector."""
        if self.is_mla:
            return 1, self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads, self.head_dim

    def kv_bytes_per_token(self, kv_format: str = "bf16") -> float:
        """KV cache bytes per token across all layers, scales included.

        GQA: ``2 · layers · kv_heads · head_dim · bytes``; MLA: ``layers · (kv_lora_rank +
        rope_dim) · bytes``; quantized formats add their scale (and zero-point) bytes per vector.
        The DSA indexer's key cache is not included (engines keep it in a separate small buffer).
        """
        vectors, length = self.kv_vectors_per_token_per_layer
        fmt = get_format(kv_format, "kv", vector_length=length)
        return self.num_layers * vectors * fmt.bytes_for_vector(length)

    @property
    def indexer_kv_bytes_per_token(self) -> float:
        """The DSA indexer's fp8 key cache (one ``index_head_dim`` key per token per layer)."""
        return float(self.num_layers * self.index_head_dim) if self.is_sparse_attention else 0.0

    # ---- FLOPs --------------------------------------------------------------------------------

    def attention_flops_per_token(self, context: float, phase: str = "decode") -> float:
        """FLOPs of score and value products for one query token attending ``context`` tokens.

        MLA decodes in the absorbed form (queries attend the shared latent: ``kv_lora_rank +
        rope`` for scores, ``kv_lora_rank`` for values) and prefills in the expanded form
        (``qk_nope + rope`` and ``v_head_dim`` per head). Sparse attention reads at most
        ``index_topk`` tokens, and its indexer scores every cached token.
        """
        heads = self.num_attention_heads
        attended = min(context, self.index_topk) if self.is_sparse_attention else context
        if self.is_mla:
            if phase == "decode":
                per_token = 2 * heads * (2 * self.kv_lora_rank + self.qk_rope_head_dim)
            else:
                per_token = (
                    2 * heads * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim)
                )
        else:
            per_token = 4 * heads * self.head_dim
        flops = self.num_layers * per_token * attended
        if self.is_sparse_attention:
            flops += self.num_layers * 2 * self.index_n_heads * self.index_head_dim * context
        return flops

    def flops_per_token(self, context: float, phase: str = "decode") -> float:
        """Forward FLOPs for one token at position ``context`` (tokens before it).

        ``2 · active matmul parameters`` plus attention over the context. For decode the new
        token attends ``context + 1`` tokens including itself.
        """
        return 2.0 * self.params_matmul_active + self.attention_flops_per_token(context + 1, phase)

    def prefill_flops(self, new_tokens: int, cached_tokens: int = 0) -> float:
        """Forward FLOPs to prefill ``new_tokens`` after ``cached_tokens`` already in the cache.

        Causal attention: token ``i`` of the chunk attends ``cached + i + 1`` tokens, so the
        attention term sums to ``new·cached + new·(new+1)/2`` token pairs — each capped at the
        sparse top-k where the model has one, while its indexer still scores every pair.
        """
        linear = 2.0 * self.params_matmul_active * new_tokens
        pairs = new_tokens * cached_tokens + new_tokens * (new_tokens + 1) / 2
        if not self.is_sparse_attention:
            return linear + self.attention_flops_per_token(1.0, "prefill") * pairs
        attended = _capped_context_sum(
            cached_tokens + 1, cached_tokens + new_tokens, self.index_topk
        )
        per_pair = (
            2
            * self.num_attention_heads
            * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim)
        )
        indexer = 2 * self.index_n_heads * self.index_head_dim * pairs
        return linear + self.num_layers * (per_pair * attended + indexer)

    # ---- summary ------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Machine-readable derived quantities (``hetsim models --json``)."""
        return {
            "name": self.name,
            "model_type": self.model_type,
            "architecture": self.description,
            "layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "attention_heads": self.num_attention_heads,
            "kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "experts": self.num_experts,
            "experts_per_token": self.experts_per_token,
            "kv_lora_rank": self.kv_lora_rank,
            "index_topk": self.index_topk,
            "max_context": self.max_context,
            "params_total": self.params_total,
            "params_active": self.params_active,
            "weight_bytes": {f: self.weight_bytes(f) for f in WEIGHT_FORMATS if f != "fp32"},
            "kv_bytes_per_token": {f: self.kv_bytes_per_token(f) for f in KV_FORMATS},
            "kv_scale_granularity": {
                f: get_format(f, "kv", self.kv_vectors_per_token_per_layer[1]).scale_granularity
                for f in KV_FORMATS
            },
            "source": self.source,
        }

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_hf_config(cls, config: dict[str, Any], name: str, source: str = "") -> ModelConfig:
        """Build from a Hugging Face ``config.json`` mapping; unknown architectures are an error."""
        where = source or name
        model_type = config.get("model_type")
        if not isinstance(model_type, str) or model_type not in _SUPPORTED_TYPES:
            raise InputError(
                "unsupported model_type",
                file=where,
                field="model_type",
                value=model_type,
                allowed=", ".join(sorted(_SUPPORTED_TYPES)),
            )

        def need(key: str) -> int:
            """A size the config must set: a whole number of at least 1."""
            if config.get(key) is None:
                raise InputError(
                    f"config.json of a {model_type} model must set {key!r}", file=where, field=key
                )
            value = num(key)
            if value < 1:
                raise InputError("must be at least 1", file=where, field=key, value=config[key])
            return value

        def num(key: str, default: int = 0) -> int:
            value = config.get(key)
            if value is None:
                return default
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (isinstance(value, float) and not value.is_integer())
                or value < 0
            ):
                raise InputError(
                    "expected a non-negative whole number", file=where, field=key, value=value
                )
            return int(value)

        hidden = need("hidden_size")
        heads = need("num_attention_heads")
        has = config.get
        kv_heads = need("num_key_value_heads") if has("num_key_value_heads") is not None else heads
        head_dim = need("head_dim") if has("head_dim") is not None else hidden // heads
        text = dict(
            name=name,
            model_type=model_type,
            hidden_size=hidden,
            num_layers=need("num_hidden_layers"),
            num_attention_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate_size=need("intermediate_size"),
            vocab_size=need("vocab_size"),
            max_context=need("max_position_embeddings")
            if has("max_position_embeddings") is not None
            else 4096,
            tie_word_embeddings=_flag(config, "tie_word_embeddings", where),
            source=source,
            raw=config,
        )
        if model_type in ("mixtral", "minimax_m2"):
            # every layer MoE, intermediate_size is one expert's; MiniMax-M2 has no shared expert
            text.update(
                num_experts=need("num_local_experts"),
                experts_per_token=need("num_experts_per_tok"),
                moe_intermediate_size=text["intermediate_size"],
                qk_norm_across_heads=_qk_norm_across_heads(config, model_type, where),
            )
        elif model_type in ("qwen2_moe", "qwen3_moe"):
            mlp_only = config.get("mlp_only_layers") or []
            if not isinstance(mlp_only, list) or not all(
                type(i) is int and i >= 0 for i in mlp_only
            ):
                raise InputError(
                    "expected a list of layer indices (whole numbers from 0)",
                    file=where,
                    field="mlp_only_layers",
                    value=mlp_only,
                )
            step = num("decoder_sparse_step", 1)
            dense_layers = sum(
                1
                for i in range(text["num_layers"])
                if i in mlp_only or (step > 1 and (i + 1) % step != 0)
            )
            # a missing size would make the MoE a dense model or its experts empty, silently
            text.update(
                num_experts=need("num_experts"),
                experts_per_token=need("num_experts_per_tok"),
                moe_intermediate_size=need("moe_intermediate_size"),
                shared_expert_intermediate_size=num("shared_expert_intermediate_size"),
                num_shared_experts=1 if num("shared_expert_intermediate_size") else 0,
                num_dense_layers=dense_layers,
            )
        elif model_type in (
            "glm4_moe",
            "deepseek_v2",
            "deepseek_v3",
            "kimi_k2",
            "deepseek_v32",
            "glm_moe_dsa",
        ):
            shared = num("n_shared_experts")
            moe_inter = num("moe_intermediate_size")
            text.update(
                num_experts=need("n_routed_experts"),
                experts_per_token=need("num_experts_per_tok"),
                moe_intermediate_size=moe_inter,
                num_shared_experts=shared,
                shared_expert_intermediate_size=shared * moe_inter,
                num_dense_layers=num("first_k_dense_replace"),
            )
        if config.get("kv_lora_rank"):
            text.update(
                kv_lora_rank=num("kv_lora_rank"),
                q_lora_rank=num("q_lora_rank"),
                qk_nope_head_dim=num("qk_nope_head_dim"),
                qk_rope_head_dim=num("qk_rope_head_dim"),
                v_head_dim=num("v_head_dim"),
                # MLA has no KV heads; report the latent as one shared "head"
                num_kv_heads=1,
                head_dim=num("kv_lora_rank") + num("qk_rope_head_dim"),
            )
        if config.get("index_topk"):
            text.update(
                index_topk=num("index_topk"),
                index_n_heads=num("index_n_heads"),
                index_head_dim=num("index_head_dim"),
            )
        _check_shape(text, where)
        _check_full_attention(config, model_type, where)
        return cls(**text)  # type: ignore[arg-type]


def _check_shape(text: dict[str, Any], where: str) -> None:
    """Sizes that no model has, which would divide by zero or count negative parameters."""
    heads, kv_heads = text["num_attention_heads"], text["num_kv_heads"]
    if text["hidden_size"] < heads:
        raise InputError(
            f"hidden_size is below the {heads} attention heads (each head needs at least one "
            "dimension)",
            file=where,
            field="hidden_size",
            value=text["hidden_size"],
            allowed=f"at least num_attention_heads ({heads})",
        )
    if not text.get("kv_lora_rank") and heads % kv_heads:
        raise InputError(
            f"num_key_value_heads must divide the {heads} attention heads (each KV head serves "
            "a whole group of query heads)",
            file=where,
            field="num_key_value_heads",
            value=kv_heads,
            allowed=", ".join(str(d) for d in range(1, heads + 1) if heads % d == 0),
        )
    experts, top_k = text.get("num_experts", 0), text.get("experts_per_token", 0)
    if experts and not 1 <= top_k <= experts:
        raise InputError(
            f"a token is routed to between 1 and the {experts} experts",
            file=where,
            field="num_experts_per_tok",
            value=top_k,
            allowed=f"1 to {experts}",
        )


#: model types whose HF code slides the window whenever ``sliding_window`` is set (Qwen's only
#: with ``use_sliding_window: true``)
_WINDOW_WITHOUT_FLAG = ("mistral", "mixtral", "minimax_m2")


def _check_full_attention(config: dict[str, Any], model_type: str, where: str) -> None:
    """hetsim sizes KV and attention for full causal attention over the whole context: a model
    whose layers attend a sliding window would be costed wrongly, so it is an error."""
    window = config.get("sliding_window")
    context = config.get("max_position_embeddings")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int | float)):
        raise InputError(
            "not a window length", file=where, field="sliding_window", value=window,
            allowed="a number of tokens, or null",
        )  # fmt: skip
    # a window as long as the context never slides
    slides = isinstance(window, int | float) and not (
        isinstance(context, int | float) and window >= context
    )
    layer_types = config.get("layer_types")
    if isinstance(layer_types, list) and "sliding_attention" in layer_types:
        field, value = "layer_types", "sliding_attention"
    elif slides and config.get("sliding_window_pattern"):
        field, value = "sliding_window_pattern", config["sliding_window_pattern"]
    elif slides and config.get("use_sliding_window", model_type in _WINDOW_WITHOUT_FLAG):
        field, value = "sliding_window", window
    else:
        return
    raise InputError(
        "sliding-window attention is not modelled (hetsim sizes KV and attention for the full "
        "context)",
        file=where,
        field=field,
        value=value,
        allowed="full attention: sliding_window null or use_sliding_window false, no "
        "sliding_attention layers",
    )


def checkpoint_weights(config: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the weight format a config.json's ``quantization_config`` declares, how it says so):
    (None, None) without one; (None, method) for a quantization hetsim has no format for
    (mxfp4, compressed-tensors, mixed precision)."""
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        return None, None
    method, algo = q.get("quant_method"), q.get("quant_algo")
    said = " ".join(str(x) for x in (method, algo) if x is not None) or "quantization_config"
    if method == "fp8" and algo is None or method is None and algo == "FP8":
        return "fp8_e4m3", said
    if method == "modelopt" and algo in ("FP8", "NVFP4"):
        return ("fp8_e4m3" if algo == "FP8" else "fp4"), said
    if method in ("awq", "gptq") and q.get("bits") in (4, 8):
        return ("w4a16" if q["bits"] == 4 else "int8"), f"{said} {q['bits']}-bit"
    return None, said


def checkpoint_fp8_scales(config: dict[str, Any]) -> tuple[str | None, str | None]:
    """(how a config.json's fp8 ``quantization_config`` scales weights and activations, how it
    says so), :data:`~hetsim.spec.precision.FP8_SCALINGS`; (None, None) for other checkpoints."""
    if checkpoint_weights(config)[0] != "fp8_e4m3":
        return None, None
    q = config["quantization_config"]
    if q.get("quant_method") == "modelopt" or q.get("quant_algo") == "FP8":
        return "tensor", "ModelOpt FP8: per-tensor, static activation scales"
    if q.get("weight_block_size"):
        return "block", f"weight_block_size {q['weight_block_size']}"
    scheme = q.get("activation_scheme", "dynamic")
    return ("tensor" if scheme == "static" else "tensor_dynamic"), f"activation_scheme {scheme}"


def _qk_norm_across_heads(config: dict[str, Any], model_type: str, where: str) -> bool:
    """Whether q and k are normalised over all heads together (MiniMax-M2's ``use_qk_norm``
    with ``qk_norm_type: per_layer``, vLLM's and SGLang's ``MiniMaxText01RMSNormTP``) rather
    than per head."""
    if model_type != "minimax_m2" or not _flag(config, "use_qk_norm", where):
        return False
    kind = config.get("qk_norm_type", "per_layer")
    if kind not in ("per_layer", "per_head"):
        raise InputError("unknown q/k norm type", file=where, field="qk_norm_type", value=kind,
                         allowed="per_layer, per_head")  # fmt: skip
    return kind == "per_layer"


def _flag(config: dict[str, Any], key: str, where: str) -> bool:
    """A true/false setting; a string such as "false" would read as true."""
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise InputError("not true or false", file=where, field=key, value=value,
                         allowed="true, false")  # fmt: skip
    return value


def _capped_context_sum(first: int, last: int, cap: int) -> float:
    """Sum of ``min(c, cap)`` for ``c`` from ``first`` to ``last`` inclusive."""
    if last < first:
        return 0.0
    below_last = min(last, cap)
    below = (below_last - first + 1) * (first + below_last) / 2 if below_last >= first else 0.0
    above = max(0, last - max(first, cap + 1) + 1) * cap
    return below + above


def bundled_models() -> dict[str, Path]:
    """Bundled model names → their config.json files."""
    return {p.stem: p for p in sorted(MODEL_CONFIG_DIR.glob("*.json"))}


def load_model(name_or_path: str | Path, base_dir: Path | None = None) -> ModelConfig:
    """A bundled model by name (``Qwen3-32B``) or a ``config.json`` path (or a directory holding
    one), relative paths resolved against ``base_dir`` (the scenario's folder)."""
    bundled = bundled_models()
    text = str(name_or_path)
    if text in bundled:
        path = bundled[text]
        name = text
    else:
        lowered = {k.lower(): k for k in bundled}
        if text.lower() in lowered:
            name = lowered[text.lower()]
            path = bundled[name]
        else:
            path = Path(text).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            if path.is_dir():
                path = path / "config.json"
            if not path.exists():
                raise InputError(
                    "unknown model: neither a bundled model name nor an existing config.json",
                    field="model",
                    value=text,
                    allowed=", ".join(bundled),
                )
            name = path.parent.name if path.name == "config.json" else path.stem
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text (is it a binary file?)", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read the model config: {exc.strerror}", file=path) from None
    except RecursionError:
        raise InputError("not valid JSON: nested too deeply", file=path) from None
    if not isinstance(config, dict):
        raise InputError("config.json must hold a JSON object", file=path)
    meta = config.get("_hetsim_meta") or {}
    return ModelConfig.from_hf_config(config, meta.get("model", name), source=str(path))
