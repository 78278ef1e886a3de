"""Time of one batch step of one instance, as a sum over ops.

A step runs a batch of sequences; sequence ``i`` brings ``new[i]`` tokens and has ``cached[i]``
tokens already in its KV cache. A decode step is the case ``new = 1``; a prefill chunk has
``new > 1``; a colocated (mixed) step has both. Everything is computed per device, for the
busiest device where the work is uneven (MoE with expert parallelism), and ops do not overlap.

Ops, per layer unless said (``T`` tokens in the step, ``tp``/``dp``/``ep`` from the instance):

* GEMMs: attention projections (GQA: QKV and O; MLA: q_a, q_b, kv_a and O, plus the DSA
  indexer's projections), dense MLP (gate/up and down), MoE router, shared experts and routed
  experts (a grouped GEMM over the experts the batch touches on this device), LM head once.
* MLA's ``kv_b`` up-projection: absorbed into queries and outputs for decode tokens (``m`` =
  decode tokens), applied to every cached and new latent for prefill chunks (``m`` = context).
* Attention: causal prefill over cached prefix + new tokens; decode reading the KV in its stored
  format; MLA in absorbed form for decode, expanded for prefill; DeepSeek sparse attention reads
  at most ``index_topk`` tokens while its indexer scores every cached token (fp8 keys).
* Collectives: TP all-reduce after attention and after the MLP (ring, ``2(tp−1)/tp`` of the
  activations) and, with ``ep > 1``, the MoE all-to-all (dispatch + combine) over the scale-up link.
* A fixed runtime overhead per step.

Each op costs ``max(flops/(peak[format]·eff_compute), bytes/(bw·eff_memory))``. Without a
calibration table the efficiencies are the profile's documented defaults (``roofline-default``);
with one they come from efficiency surfaces fitted to measured kernels (``calibrated``), relative
to the peaks measured in that calibration.

Assumptions worth knowing: attention runs in bf16 (fp16, fp32 where bf16 is missing) whatever
the KV storage format; MLA's q_a/kv_a projections and the DSA indexer are replicated across TP
ranks (as in vLLM); experts are routed uniformly at random, with ``expert_imbalance`` scaling the
busiest device's share under expert parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hetsim.perf.calibration import CalibrationTable, EfficiencySurface, read_table
from hetsim.perf.roofline import OpCost, kernel_time, link_time, ring_allreduce_bytes
from hetsim.spec.footprint import kv_bytes_per_token_per_device
from hetsim.spec.hardware import AcceleratorProfile
from hetsim.spec.model import ModelConfig
from hetsim.spec.precision import FORMATS, get_format
from hetsim.spec.scenario import PoolSpec

__all__ = ["InstanceConfig", "StepModel", "StepBreakdown", "step_model_for_pool"]

#: kernels dispatched per layer per step in an eager runtime, for calibrated overheads
DEFAULT_OPS_PER_LAYER = 12

#: an eager (unfused) decoder layer's elementwise ops: (count, width they run over) — two
#: RMSNorms of six ops and two residual adds on the hidden state, rotary embedding on queries
#: and keys, SiLU and the gate product, writing K and V into the cache
_EAGER_ELEMENTWISE = ((14, "hidden"), (6, "q"), (6, "kh"), (2, "ffn"), (2, "kh"))


@dataclass(frozen=True)
class InstanceConfig:
    """What distinguishes one instance's cost from another's, besides model and device."""

    tp: int = 1
    dp: int = 1
    ep: int = 1
    weights: str = "bf16"
    activations: str = "bf16"
    kv: str = "bf16"
    expert_imbalance: float = 1.2

    @classmethod
    def from_pool(cls, pool: PoolSpec) -> InstanceConfig:
        return cls(
            tp=pool.tp,
            dp=pool.dp,
            ep=pool.ep,
            weights=pool.precision.weights,
            activations=pool.precision.activations,
            kv=pool.precision.kv,
            expert_imbalance=pool.expert_imbalance,
        )

    @property
    def devices(self) -> int:
        return self.tp * self.dp


@dataclass
class StepBreakdown:
    """A step explained: one row per op with flops, bytes, bound and time (per device)."""

    phase: str
    ops: list[OpCost]
    provenance: str

    @property
    def time(self) -> float:
        return sum(op.time for op in self.ops)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame([op.as_dict() for op in self.ops])
        frame["share"] = frame["time"] / self.time if self.time else 0.0
        return frame


@dataclass
class _Gemm:
    """A GEMM that runs ``count`` times per step: ``m`` is filled in per step."""

    name: str
    n: float
    k: float
    count: int
    weight_bytes_per_param: float
    compute_key: str


@dataclass
class StepModel:
    """Step-time model of one instance (model × accelerator × parallelism × precision)."""

    model: ModelConfig
    profile: AcceleratorProfile
    config: InstanceConfig
    calibration: CalibrationTable | None = None
    _linear_cache: dict[int, float] = field(default_factory=dict, repr=False)
    _head_cache: dict[int, float] = field(default_factory=dict, repr=False)
    _surfaces: dict[tuple[str, str], EfficiencySurface | None] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        m, c, p = self.model, self.config, self.profile
        self.provenance = "calibrated" if self.calibration is not None else "roofline-default"
        self.gemm_key = _compute_key(c.weights, c.activations)
        # attention computes in the activations' float format, bf16 for quantized activations
        float_prefs = (c.activations,) if c.activations in ("bf16", "fp16", "fp32") else ()
        self.attention_key = next(
            k for k in (*float_prefs, "bf16", "fp16", "fp32") if k in p.compute or k == "fp32"
        )
        self.act_bytes = FORMATS[c.activations].element_bytes
        fmt = get_format(c.weights, "weights")
        self.weight_bpp = fmt.element_bytes + (
            fmt.scale_bytes * (2 if fmt.zero_point else 1) / fmt.scale_group
            if fmt.scale_group
            else 0.0
        )
        eff = p.efficiency
        self.eff_compute = eff.compute.value
        self.eff_memory = eff.memory.value
        self.eff_network = eff.network.value
        if self.calibration is not None:
            table = self.calibration
            self.peaks = dict(table.peak_flops)
            self.bandwidth = table.peak_bandwidth
            per_layer = float(table.meta.get("ops_per_layer", DEFAULT_OPS_PER_LAYER))
            self._eager_ops_per_layer = per_layer  # dispatch-only ops are charged after gemms
            self.overhead = 0.0
        else:
            self.peaks = {k: f.value for k, f in p.compute.items()}
            self.bandwidth = p.memory_bandwidth
            self.overhead = eff.step_overhead.value
        # achieved peaks of the roofline-default model, per compute format
        self._default_peak = {k: v * self.eff_compute for k, v in self.peaks.items()}
        self._default_peak.setdefault("bf16", max(self._default_peak.values()))
        self._default_bw = self.bandwidth * self.eff_memory
        if p.scale_up is not None:
            self.link_bw = p.scale_up.bandwidth.value
            self.link_latency = p.scale_up.latency.value
        else:
            self.link_bw, self.link_latency = float("inf"), 0.0
        self.kv_bytes_per_token_layer = kv_bytes_per_token_per_device(m, c.tp, c.kv) / m.num_layers
        self._build_gemms()
        self._lm_head = next(g for g in self.gemms if g.name == "lm_head")
        self._attention_coefficients()
        self._gqa_default = self.calibration is None and not m.is_mla
        if self._gqa_default:
            peak = self._default_peak.get(self.attention_key) or self._default_peak["bf16"]
            self._dec_flops_coef = self.decode_flops_per_attended / peak
            self._dec_kv_coef = self.kv_bytes_per_token_layer / self._default_bw
            self._dec_qo_coef = (
                4.0 * self.heads_per_device * self.decode_head_dim / self._default_bw
            )
        if self.calibration is not None:
            # ops the model does not cost one by one (views, reshapes...) pay dispatch only
            modeled = len({g.name for g in self.gemms if g.count == m.num_layers}) + 1
            modeled += sum(n for n, _ in _EAGER_ELEMENTWISE)
            spare = max(self._eager_ops_per_layer - modeled, 0.0)
            self.overhead = self.calibration.launch_overhead() * (spare * m.num_layers + 4)

    # ---- construction -------------------------------------------------------------------------

    def _build_gemms(self) -> None:
        m, c = self.model, self.config
        tp, h, w = c.tp, m.hidden_size, self.weight_bpp
        key = self.gemm_key
        layers = m.num_layers
        g: list[_Gemm] = []
        if m.is_mla:
            heads = m.num_attention_heads / tp
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                g.append(_Gemm("q_a_proj", m.q_lora_rank, h, layers, w, key))
                g.append(_Gemm("q_b_proj", heads * qk, m.q_lora_rank, layers, w, key))
            else:
                g.append(_Gemm("q_proj", heads * qk, h, layers, w, key))
            g.append(_Gemm("kv_a_proj", m.kv_lora_rank + m.qk_rope_head_dim, h, layers, w, key))
            g.append(_Gemm("o_proj", h, heads * m.v_head_dim, layers, w, key))
            if m.is_sparse_attention:
                q_in = m.q_lora_rank or h
                idx = "dsa_indexer_proj"
                g.append(_Gemm(idx, m.index_n_heads * m.index_head_dim, q_in, layers, w, key))
                g.append(_Gemm(idx, m.index_head_dim, h, layers, w, key))
                g.append(_Gemm(idx, m.index_n_heads, h, layers, w, key))
        else:
            heads = m.num_attention_heads / tp
            kv_heads = max(1.0, m.num_kv_heads / tp)
            g.append(_Gemm("qkv_proj", (heads + 2 * kv_heads) * m.head_dim, h, layers, w, key))
            g.append(_Gemm("o_proj", h, heads * m.head_dim, layers, w, key))
        dense_layers = m.num_dense_layers_effective
        if dense_layers:
            inter = m.intermediate_size / tp
            g.append(_Gemm("mlp_gate_up", 2 * inter, h, dense_layers, w, key))
            g.append(_Gemm("mlp_down", h, inter, dense_layers, w, key))
        if m.is_moe:
            moe_layers = m.num_moe_layers
            g.append(_Gemm("moe_router", m.num_experts, h, moe_layers, 2.0, "bf16"))
            if m.shared_expert_intermediate_size:
                inter = m.shared_expert_intermediate_size / tp
                g.append(_Gemm("shared_expert_gate_up", 2 * inter, h, moe_layers, w, key))
                g.append(_Gemm("shared_expert_down", h, inter, moe_layers, w, key))
        g.append(
            # quantized checkpoints keep the LM head in 16 bits; an fp32 model keeps it in fp32
            _Gemm(
                "lm_head",
                m.vocab_size / tp,
                h,
                1,
                max(2.0, self.act_bytes),
                key if FORMATS[c.activations].element_bytes >= 2 else "bf16",
            )
        )
        self.gemms = g

    def _attention_coefficients(self) -> None:
        m = self.model
        tp = self.config.tp
        self.heads_per_device = m.num_attention_heads / tp
        heads = self.heads_per_device
        # activations between kernels stay 16-bit (32 for an fp32 model) whatever the GEMMs use
        self.residual_bytes = max(2.0, self.act_bytes)
        if m.is_mla:
            self.kv_width_per_device = float(m.kv_lora_rank + m.qk_rope_head_dim)
        else:
            self.kv_width_per_device = 2 * max(1.0, m.num_kv_heads / tp) * m.head_dim
        dense = m.num_dense_layers_effective
        moe = m.num_moe_layers
        shards = self.config.ep if self.config.ep > 1 else tp
        moe_ffn = (m.experts_per_token * m.moe_intermediate_size / shards
                   + m.shared_expert_intermediate_size / tp)  # fmt: skip
        self.ffn_width_per_device = (dense * m.intermediate_size / tp + moe * moe_ffn) / max(
            dense + moe, 1
        )
        if m.is_mla:
            # decode in absorbed form over the latent, prefill in expanded per-head form
            self.decode_head_dim = m.kv_lora_rank + m.qk_rope_head_dim
            self.decode_flops_per_attended = 2 * heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)
            self.prefill_head_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
            self.prefill_flops_per_pair = (
                2 * heads * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim)
            )
            self.mla_kv_b = _Gemm(
                "mla_kv_b_proj",
                heads * (m.qk_nope_head_dim + m.v_head_dim),
                m.kv_lora_rank,
                m.num_layers,
                self.weight_bpp,
                self.gemm_key,
            )
        else:
            self.decode_head_dim = self.prefill_head_dim = m.head_dim
            self.decode_flops_per_attended = self.prefill_flops_per_pair = 4 * heads * m.head_dim

    # ---- efficiencies -------------------------------------------------------------------------

    def _surface(self, op: str, dtype: str) -> EfficiencySurface | None:
        key = (op, dtype)
        if key not in self._surfaces:
            surface = None
            if self.calibration is not None:
                try:
                    surface = self.calibration.surface(op, dtype)
                except KeyError:
                    surface = None
            self._surfaces[key] = surface
        return self._surfaces[key]

    def _kernel(
        self, op: str, dtype: str, flops: float, nbytes: float, **shape: float
    ) -> tuple[float, str, str]:
        """(time, bound, source) of one kernel call."""
        if self.calibration is None:
            peak = self._default_peak.get(dtype) or self._default_peak["bf16"]
            compute = flops / peak
            memory = nbytes / self._default_bw
            if compute >= memory:
                return compute, "compute", "roofline-default"
            return memory, "memory", "roofline-default"
        surface = self._surface(op, dtype)
        peak = self.peaks.get(dtype) or self.peaks.get("bf16") or max(self.peaks.values())
        if surface is not None:
            t_roof, bound = kernel_time(flops, nbytes, peak, self.bandwidth, 1.0, 1.0)
            return t_roof / surface.efficiency(**shape), bound, "calibrated"
        t, bound = kernel_time(
            flops, nbytes, peak, self.bandwidth, self.eff_compute, self.eff_memory
        )
        return t, bound, "roofline-default"

    def _gemm_cost(self, g: _Gemm, m: float, calls: float = 1.0) -> OpCost:
        """``calls`` independent GEMMs of ``m`` rows each (a grouped GEMM), ``g.count`` times."""
        flops = 2.0 * m * g.n * g.k
        nbytes = g.k * g.n * g.weight_bytes_per_param + m * g.k * self.act_bytes + m * g.n * 2.0
        t, bound, source = self._kernel("gemm", g.compute_key, flops, nbytes, m=m, n=g.n, k=g.k)
        return OpCost(
            g.name,
            flops * calls * g.count,
            nbytes * calls * g.count,
            t * calls * g.count,
            bound,
            g.count,
            source,
        )  # type: ignore[arg-type]

    # ---- the ops of a step --------------------------------------------------------------------

    def _linear_ops(self, tokens: int, seqs: int | None) -> list[OpCost]:
        """Everything whose cost depends only on the token and sequence counts (the LM head
        runs once per sequence; ``seqs`` None leaves it out)."""
        m, c = self.model, self.config
        per_rank = tokens / c.dp
        ops = [
            self._gemm_cost(g, seqs / c.dp if g.name == "lm_head" else per_rank)
            for g in self.gemms
            if seqs is not None or g.name != "lm_head"
        ]
        if m.is_moe:
            ops.append(self._routed_experts(tokens, per_rank))
            if c.ep > 1:
                ops.append(self._all_to_all(tokens))
        ops.append(self._elementwise(per_rank))
        if c.tp > 1:
            message = per_rank * m.hidden_size * 2.0
            sent = ring_allreduce_bytes(message, c.tp)
            t = link_time(sent, self.link_bw, self.eff_network, self.link_latency)
            count = 2 * m.num_layers
            ops.append(OpCost("tp_allreduce", 0.0, sent * count, t * count, "network", count))
        return ops

    def _elementwise(self, tokens: float) -> OpCost:
        """Norms, residual adds, rotary embedding, the gated activation and the KV cache write:
        memory-bound passes over the step's activations.

        Serving engines fuse them (vLLM: add+RMSNorm, rotary, SiLU·mul, cache write: one pass
        each); an eager runtime runs each as separate small ops whose fixed cost dominates at
        decode. Calibrated profiles measure that runtime, so they are costed op by op."""
        m = self.model
        layers = m.num_layers
        h = m.hidden_size
        q = self.heads_per_device * self.prefill_head_dim
        k = self.kv_width_per_device
        ffn = self.ffn_width_per_device
        widths = {"hidden": h, "q": q, "kh": k / 2, "ffn": ffn}  # kh: K (or V) alone
        if self._surface("elementwise", "fp32") is not None:
            flops = nbytes = t = 0.0
            for count, width in _EAGER_ELEMENTWISE:
                elems = tokens * widths[width]
                f, b = elems, 3.0 * elems * self.residual_bytes
                dt, _, _ = self._kernel("elementwise", "fp32", f, b, m=max(elems, 1.0))
                flops, nbytes, t = flops + count * f, nbytes + count * b, t + count * dt
            return OpCost("elementwise", flops * layers, nbytes * layers, t * layers, "memory",
                          layers, "calibrated")  # fmt: skip
        # fused: add+norm twice (read 2, write 2 rows of h), rotary on q and k (read + write),
        # SiLU·mul (read 2, write 1 of ffn), the new K/V into the cache (write)
        per_token = 2 * 4 * h + 2 * (q + k / 2) + 3 * ffn + k
        nbytes = tokens * per_token * self.residual_bytes
        t, bound, src = self._kernel("memcpy", "bytes", 0.0, nbytes, bytes=nbytes / 2)
        return OpCost("elementwise", 0.0, nbytes * layers, t * layers, "memory", layers, src)  # type: ignore[arg-type]

    def _routed_experts(self, tokens: int, per_rank: float) -> OpCost:
        m, c = self.model, self.config
        e, k = m.num_experts, m.experts_per_token
        if c.ep > 1:
            # every device owns e/ep experts and sees all tokens' routing
            local_experts = e / c.ep
            routed = tokens * k / c.ep * c.expert_imbalance
            touched = local_experts * (1.0 - (1.0 - k / e) ** tokens)
            n_gate, n_down, k_down = (
                2 * m.moe_intermediate_size,
                m.hidden_size,
                m.moe_intermediate_size,
            )
        else:
            # tensor-parallel experts: every device holds a 1/tp slice of every expert
            routed = per_rank * k
            touched = e * (1.0 - (1.0 - k / e) ** per_rank)
            n_gate = 2 * m.moe_intermediate_size / c.tp
            n_down, k_down = m.hidden_size, m.moe_intermediate_size / c.tp
        touched = max(touched, 1e-9)
        rows = routed / touched
        layers = m.num_moe_layers
        up = _Gemm("routed_experts", n_gate, m.hidden_size, layers, self.weight_bpp, self.gemm_key)
        down = _Gemm("routed_experts", n_down, k_down, layers, self.weight_bpp, self.gemm_key)
        a, b = self._gemm_cost(up, rows, touched), self._gemm_cost(down, rows, touched)
        bound = a.bound if a.time >= b.time else b.bound
        return OpCost(
            "routed_experts",
            a.flops + b.flops,
            a.bytes + b.bytes,
            a.time + b.time,
            bound,
            layers,
            a.source,
        )

    def _all_to_all(self, tokens: int) -> OpCost:
        m, c = self.model, self.config
        per_device = tokens / c.devices
        # dispatch and combine: each token's hidden state to its k experts, (ep-1)/ep of them remote
        sent = (
            2.0
            * per_device
            * m.experts_per_token
            * m.hidden_size
            * self.act_bytes
            * ((c.ep - 1) / c.ep)
            * c.expert_imbalance
        )
        t = link_time(sent, self.link_bw, self.eff_network, 2 * self.link_latency)
        count = m.num_moe_layers
        return OpCost("moe_all_to_all", 0.0, sent * count, t * count, "network", count)

    def _attention_terms(
        self,
        dec_seqs: int,
        dec_ctx: float,
        dec_capped: float,
        pre_seqs: int,
        pre_tokens: float,
        pre_cached: float,
        pre_pairs: float,
        pre_pairs_capped: float,
    ) -> list[tuple[str, str, str, float, float, dict[str, float]]]:
        """Per-layer attention kernels: (name, op family, dtype, flops, bytes, shape).

        Covers attention itself, MLA's kv_b projection and the DSA indexer. ``dec_ctx``: tokens
        attended by decode queries summed over sequences (context + 1 each); ``dec_capped``: the
        same capped at the sparse top-k. ``pre_pairs``: causal (query, key) pairs of the prefill
        chunks; ``pre_pairs_capped``: capped at top-k per query.
        """
        m, dp, heads, kvb = (
            self.model,
            self.config.dp,
            self.heads_per_device,
            self.kv_bytes_per_token_layer,
        )
        key = self.attention_key
        terms = []
        if dec_seqs:
            b = dec_seqs / dp
            flops = self.decode_flops_per_attended * dec_capped / dp
            # read the attended KV in its stored format, read Q and write O in 16 bits
            nbytes = dec_capped / dp * kvb + 4.0 * b * heads * self.decode_head_dim
            shape = {
                "batch": b,
                "context": dec_ctx / dec_seqs,
                "heads": heads,
                "head_dim": self.decode_head_dim,
            }
            terms.append(("attention_decode", "attention_decode", key, flops, nbytes, shape))
        if pre_seqs:
            pairs = pre_pairs_capped if m.is_mla else pre_pairs
            flops = self.prefill_flops_per_pair * pairs / dp
            # read the cached prefix's KV, write the new tokens' KV, read Q and write O
            nbytes = (
                (pre_cached + pre_tokens) * kvb + 4.0 * pre_tokens * heads * self.prefill_head_dim
            ) / dp
            shape = {
                "batch": pre_seqs / dp,
                "seq_len": (pre_tokens + pre_cached) / pre_seqs,
                "heads": heads,
                "head_dim": self.prefill_head_dim,
            }
            terms.append(("attention_prefill", "attention_prefill", key, flops, nbytes, shape))
        if m.is_mla:
            # kv_b: absorbed (per decode token) or expanding every latent of a prefill context
            g = self.mla_kv_b
            rows = (dec_seqs + pre_tokens + pre_cached) / dp
            flops = 2.0 * rows * g.n * g.k
            nbytes = (
                g.k * g.n * g.weight_bytes_per_param
                + rows * g.k * self.act_bytes
                + rows * g.n * 2.0
            )
            terms.append(
                (g.name, "gemm", g.compute_key, flops, nbytes, {"m": rows, "n": g.n, "k": g.k})
            )
        if m.is_sparse_attention:
            scored = (dec_ctx + pre_pairs) / dp
            flops = 2 * m.index_n_heads * m.index_head_dim * scored
            nbytes = (dec_ctx + pre_cached + pre_tokens) / dp * m.index_head_dim  # fp8 keys
            shape = {"m": max(scored, 1.0), "n": m.index_n_heads, "k": m.index_head_dim}
            terms.append(("dsa_indexer", "gemm", self.gemm_key, flops, nbytes, shape))
        return terms

    def _attention_time(self, *args: float) -> float:
        layers = self.model.num_layers
        return layers * sum(
            self._kernel(op, dtype, flops, nbytes, **shape)[0]
            for _, op, dtype, flops, nbytes, shape in self._attention_terms(*args)
        )

    def _attention_ops(self, *args: float) -> list[OpCost]:
        layers = self.model.num_layers
        ops = []
        for name, op, dtype, flops, nbytes, shape in self._attention_terms(*args):
            t, bound, src = self._kernel(op, dtype, flops, nbytes, **shape)
            ops.append(
                OpCost(
                    name,
                    flops * layers,
                    nbytes * layers,
                    t * layers,
                    bound,  # type: ignore[arg-type]
                    layers,
                    src,
                )
            )
        return ops

    def _overhead_op(self) -> OpCost:
        return OpCost("step_overhead", 0.0, 0.0, self.overhead, "overhead", 1, self.provenance)

    # ---- public: fast path --------------------------------------------------------------------

    def _linear_time(self, tokens: int, seqs: int) -> float:
        """Token-count-only ops, memoised by tokens (everything but the LM head) and by
        sequences (the LM head), so prefill steps of any mix hit the cache after warm-up."""
        body = self._linear_cache.get(tokens)
        if body is None:
            body = sum(op.time for op in self._linear_ops(tokens, None))
            body += self.overhead
            self._linear_cache[tokens] = body
        head = self._head_cache.get(seqs)
        if head is None:
            head = self._gemm_cost(self._lm_head, seqs / self.config.dp).time
            self._head_cache[seqs] = head
        return body + head

    def decode_time(self, context: np.ndarray) -> float:
        """Seconds for one decode step of ``len(context)`` sequences with these cached lengths."""
        b = int(context.size)
        if b == 0:
            return 0.0
        attended = float(context.sum()) + b
        capped = self._capped_decode(context, attended)
        return self._linear_time(b, b) + self._attention_time(b, attended, capped, 0, 0, 0, 0, 0)

    def decode_time_from_sum(self, batch: int, context_sum: int) -> float:
        """:meth:`decode_time` from the batch size and the sum of contexts alone (exact for
        models without sparse attention, whose cost depends on nothing else)."""
        if batch == 0:
            return 0.0
        if self.model.is_sparse_attention:
            raise ValueError("sparse attention needs each context: use decode_time")
        attended = float(context_sum + batch)
        if self._gqa_default:
            # roofline-default GQA: the attention term of _attention_terms in closed form
            a = attended / self.config.dp
            compute = self._dec_flops_coef * a
            memory = self._dec_kv_coef * a + self._dec_qo_coef * batch / self.config.dp
            attention = (compute if compute >= memory else memory) * self.model.num_layers
            return self._linear_time(batch, batch) + attention
        return self._linear_time(batch, batch) + self._attention_time(
            batch, attended, attended, 0, 0, 0, 0, 0
        )

    def prefill_time(self, new: np.ndarray, cached: np.ndarray | None = None) -> float:
        """Seconds for one prefill step over chunks of ``new`` tokens after ``cached`` tokens."""
        return self.step_time(new, cached)

    def step_time(self, new: np.ndarray, cached: np.ndarray | None = None) -> float:
        """Seconds for one step of a batch mixing decode (``new == 1``) and prefill chunks."""
        new = np.asarray(new)
        cached = np.zeros_like(new) if cached is None else np.asarray(cached)
        if new.size == 0:
            return 0.0
        return self._linear_time(int(new.sum()), int(new.size)) + self._attention_time(
            *self._attention_args(new, cached)
        )

    def _capped_decode(self, context: np.ndarray, attended: float) -> float:
        if not self.model.is_sparse_attention:
            return attended
        return float(np.minimum(context + 1, self.model.index_topk).sum())

    def _attention_args(self, new: np.ndarray, cached: np.ndarray) -> tuple:
        is_dec = new == 1
        dec_ctx_arr = cached[is_dec]
        dec_seqs = int(dec_ctx_arr.size)
        dec_ctx = float(dec_ctx_arr.sum()) + dec_seqs
        dec_capped = self._capped_decode(dec_ctx_arr, dec_ctx) if dec_seqs else 0.0
        pn = new[~is_dec].astype(np.float64)
        pc = cached[~is_dec].astype(np.float64)
        pre_seqs = int(pn.size)
        if pre_seqs:
            pairs = float((pn * pc).sum() + (pn * (pn + 1)).sum() / 2)
            if self.model.is_sparse_attention:
                capped = float(_capped_sums(pc + 1, pc + pn, self.model.index_topk).sum())
            else:
                capped = pairs
            return (
                dec_seqs,
                dec_ctx,
                dec_capped,
                pre_seqs,
                float(pn.sum()),
                float(pc.sum()),
                pairs,
                capped,
            )
        return dec_seqs, dec_ctx, dec_capped, 0, 0.0, 0.0, 0.0, 0.0

    # ---- public: explanations -----------------------------------------------------------------

    def explain_step(self, new: np.ndarray, cached: np.ndarray | None = None) -> StepBreakdown:
        """The ops of one step with flops, bytes, bound and time (per device)."""
        new = np.asarray(new)
        cached = np.zeros_like(new) if cached is None else np.asarray(cached)
        ops = self._linear_ops(int(new.sum()), int(new.size))
        ops += self._attention_ops(*self._attention_args(new, cached))
        ops.append(self._overhead_op())
        phase = "decode" if np.all(new == 1) else "prefill" if np.all(new > 1) else "mixed"
        return StepBreakdown(phase, _merge(ops), self.provenance)

    def explain_decode(self, context: np.ndarray) -> StepBreakdown:
        context = np.asarray(context)
        return self.explain_step(np.ones_like(context), context)

    def explain_prefill(self, new: np.ndarray, cached: np.ndarray | None = None) -> StepBreakdown:
        return self.explain_step(new, cached)


def _merge(ops: list[OpCost]) -> list[OpCost]:
    """Ops that share a name (the two halves of an MLP...) reported as one row."""
    merged: dict[str, OpCost] = {}
    for op in ops:
        prev = merged.get(op.name)
        if prev is None:
            merged[op.name] = op
            continue
        bound = prev.bound if prev.time >= op.time else op.bound
        merged[op.name] = OpCost(
            op.name,
            prev.flops + op.flops,
            prev.bytes + op.bytes,
            prev.time + op.time,
            bound,
            prev.count,
            prev.source,
        )
    return list(merged.values())


def _capped_sums(first: np.ndarray, last: np.ndarray, cap: int) -> np.ndarray:
    """Per row, the sum of ``min(c, cap)`` for ``c`` from ``first`` to ``last`` inclusive."""
    below_last = np.minimum(last, cap)
    n_below = np.maximum(below_last - first + 1, 0)
    below = n_below * (first + below_last) / 2
    above = np.maximum(last - np.maximum(first, cap + 1) + 1, 0) * cap
    return below + above


def _compute_key(weights: str, activations: str) -> str:
    from hetsim.spec.precision import gemm_compute_format

    key = gemm_compute_format(weights, activations)
    if key is None:
        raise ValueError(f"no GEMM format for weights={weights}, activations={activations}")
    return key


_MODELS: dict[tuple, StepModel] = {}


def step_model_for_pool(
    model: ModelConfig,
    profile: AcceleratorProfile,
    pool: PoolSpec,
    calibration: CalibrationTable | None = None,
) -> StepModel:
    """The memoised step model of a pool's instances (one per distinct configuration)."""
    if calibration is None and profile.calibration:
        calibration = _profile_calibration(profile)
    config = InstanceConfig.from_pool(pool)
    key = (model.name, model.source, profile.name, config, id(calibration))
    found = _MODELS.get(key)
    if found is None:
        found = StepModel(model, profile, config, calibration)
        _MODELS[key] = found
    return found


_TABLES: dict[str, CalibrationTable] = {}


def _profile_calibration(profile: AcceleratorProfile) -> CalibrationTable:
    from hetsim.spec.hardware import available_profiles

    assert profile.calibration is not None
    base = available_profiles().get(profile.name)
    path = Path(profile.calibration)
    if not path.is_absolute() and base is not None:
        path = base.parent / path
    key = str(path)
    if key not in _TABLES:
        _TABLES[key] = read_table(path)
    return _TABLES[key]
