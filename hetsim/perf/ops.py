"""The op inventory of one instance: what a step computes and moves, before any hardware.

A model × :class:`InstanceConfig` gives the GEMMs of a layer (QKV/O or MLA's projections, the
MLP, the MoE router, shared and routed experts, the LM head once per step), the attention work of
a batch (flops and bytes of prefill and decode attention, MLA's ``kv_b`` projection, the DSA
indexer), the elementwise passes, and the collectives (TP all-reduce, MoE all-to-all). Everything
here is arithmetic over shapes and formats, per device: no peak, no efficiency, no time. A
:mod:`hetsim.perf.cost` predictor turns each op into seconds.

Assumptions worth knowing: attention runs in bf16 (fp16, fp32 where bf16 is missing) whatever
the KV storage format; MLA's q_a/kv_a projections and the DSA indexer are replicated across TP
ranks (as in vLLM); experts are routed uniformly at random, with ``expert_imbalance`` scaling the
busiest device's share under expert parallelism.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from hetsim.spec.footprint import kv_bytes_per_token_per_device
from hetsim.spec.model import ModelConfig
from hetsim.spec.precision import FORMATS, gemm_compute_format, get_format
from hetsim.spec.scenario import PoolSpec

__all__ = [
    "AttentionWork",
    "Collective",
    "Gemm",
    "InstanceConfig",
    "Kernel",
    "MLA_BLOCK_GEMMS",
    "OpInventory",
    "RoutedExperts",
    "ring_allreduce_bytes",
]

#: the per-layer GEMMs of an MLA attention block besides ``kv_b`` (which comes with attention):
#: what a measured MLA module prices together with attention
MLA_BLOCK_GEMMS = frozenset({"q_a_proj", "q_b_proj", "q_proj", "kv_a_proj", "o_proj"})
#: an eager (unfused) decoder layer's elementwise ops: (count, width they run over) — two
#: RMSNorms of six ops and two residual adds on the hidden state, rotary embedding on queries
#: and keys, SiLU and the gate product, writing K and V into the cache
EAGER_ELEMENTWISE = ((14, "hidden"), (6, "q"), (6, "kh"), (2, "ffn"), (2, "kh"))
#: a serving engine's fused elementwise passes per decoder layer: add+RMSNorm twice, rotary
#: embedding, SiLU·mul and the KV-cache write
FUSED_ELEMENTWISE_KERNELS = 5


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
    #: how fp8 weights are scaled (:data:`~hetsim.spec.precision.FP8_SCALINGS`); ignored for
    #: other weights
    fp8_scales: str = "block"

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
            fp8_scales=pool.precision.fp8_scaling or "block",
        )

    @property
    def devices(self) -> int:
        return self.tp * self.dp

    @property
    def moe_tp(self) -> int:
        """Ways each routed expert's weights are split: the devices over the expert split."""
        return self.devices // self.ep


class Kernel(NamedTuple):
    """One kernel call per layer: its family and format (what a predictor looks up), the work,
    and the shape a calibrated efficiency surface is read at."""

    name: str
    family: str  # gemm, moe, attention_prefill, attention_decode, memcpy, elementwise
    dtype: str
    flops: float
    bytes: float
    shape: dict[str, float | str]  # the attention family names its KV format


@dataclass(frozen=True, slots=True)
class Gemm:
    """A GEMM that runs ``count`` times per step; ``m`` (its rows) comes with each step."""

    name: str
    n: float
    k: float
    count: int
    weight_bytes_per_param: float
    compute_format: str
    activation_bytes: float
    #: an fp8 GEMM's weight and activation scaling (which kernel runs it); empty otherwise
    scales: str = ""

    def kernel(self, m: float) -> Kernel:
        """Reads the weights and ``m × k`` activations, writes ``m × n`` 16-bit outputs."""
        flops = 2.0 * m * self.n * self.k
        nbytes = (
            self.k * self.n * self.weight_bytes_per_param
            + m * self.k * self.activation_bytes
            + m * self.n * 2.0
        )
        shape: dict[str, float | str] = {"m": m, "n": self.n, "k": self.k}
        if self.scales:
            shape["scales"] = self.scales
        return Kernel(self.name, "gemm", self.compute_format, flops, nbytes, shape)

    def scaled(self, scales: str) -> Gemm:
        """This GEMM with fp8 ``scales`` where it computes in fp8 (the others have none)."""
        return replace(self, scales=scales) if self.compute_format == "fp8" else self


@dataclass(frozen=True, slots=True)
class RoutedExperts:
    """The busiest device's grouped expert GEMMs: ``touched`` experts of ``rows`` rows each."""

    up: Gemm
    down: Gemm
    rows: float
    touched: float


@dataclass(frozen=True, slots=True)
class Collective:
    """Bytes one device sends per call over the scale-up link, ``latencies`` link latencies."""

    name: str
    bytes: float
    count: int
    latencies: int

    @property
    def is_allreduce(self) -> bool:
        """A tensor-parallel ring all-reduce, whose ``bytes`` are 2(n-1)/n of its message (the
        all-reduce tables price it by the message)."""
        return self.name in ("tp_allreduce", "qk_norm_allreduce")

    def table_message(self, ranks: int, smallest: float) -> float:
        """The all-reduce's message in bf16 elements, the all-reduce tables' axis (an fp32
        message of B bytes counts as B / 2 elements), and never below ``smallest``, the
        tables' smallest message: they are flat there (launch- and latency-bound; 128 to
        4,096 elements within a few percent), so a smaller one costs what it costs, where a
        link roofline would make a step dearer with fewer tokens."""
        return max(self.bytes * ranks / (2.0 * (ranks - 1)) / 2.0, smallest)


#: batches of up to this many sequences get their attention work summed in plain Python
SMALL_BATCH = 8


class AttentionWork(NamedTuple):
    """A batch reduced to what attention costs depend on. ``decode_context``: tokens attended by
    decode queries summed over sequences (context + 1 each); ``decode_capped``: the same capped at
    the sparse top-k. ``prefill_pairs``: causal (query, key) pairs of the prefill chunks;
    ``prefill_pairs_capped``: capped at top-k per query."""

    decode_seqs: int
    decode_context: float
    decode_capped: float
    prefill_seqs: int
    prefill_tokens: float
    prefill_cached: float
    prefill_pairs: float
    prefill_pairs_capped: float


def ring_allreduce_bytes(message_bytes: float, ranks: int) -> float:
    """Bytes each rank sends in a ring all-reduce: ``2·(n−1)/n`` of the message."""
    return 2.0 * (ranks - 1) / ranks * message_bytes if ranks > 1 else 0.0


@dataclass(frozen=True, slots=True)
class OpInventory:
    """The ops of one instance's steps, per device (build with :meth:`build`)."""

    model: ModelConfig
    config: InstanceConfig
    gemm_format: str  # the compute format of the weight GEMMs
    attention_format: str  # the float format attention computes in
    activation_bytes: float
    residual_bytes: float  # activations between kernels stay 16-bit (32 for an fp32 model)
    kv_bytes_per_token_layer: float
    heads_per_device: float
    kv_width_per_device: float
    ffn_width_per_device: float
    decode_head_dim: float
    decode_flops_per_attended: float
    prefill_head_dim: float
    prefill_flops_per_pair: float
    gemms: tuple[Gemm, ...]  # in the order a layer runs them, the LM head last
    lm_head: Gemm
    mla_kv_b: Gemm | None
    expert_up: Gemm | None
    expert_down: Gemm | None
    #: what names a measured attention kernel besides its heads and head size: KV heads per
    #: device and the KV format (GQA); a dense MLA layer's latent geometry and KV format (its
    #: latent attention has no KV heads); empty for sparse attention, whose kernel is another
    attention_family: dict[str, float | str]
    #: a dense MLA block's geometry, heads per device, KV and weight formats (None without one)
    mla_block_shape: dict[str, float | str] | None

    @classmethod
    def build(
        cls, model: ModelConfig, config: InstanceConfig, compute_formats: Collection[str]
    ) -> OpInventory:
        """The inventory on an accelerator with these compute formats (they pick the format
        attention runs in)."""
        m, c = model, config
        gemm_format = _gemm_format(c.weights, c.activations)
        # attention computes in the activations' float format, bf16 for quantized activations
        float_prefs = (c.activations,) if c.activations in ("bf16", "fp16", "fp32") else ()
        attention_format = next(
            k for k in (*float_prefs, "bf16", "fp16", "fp32") if k in compute_formats or k == "fp32"
        )
        act = FORMATS[c.activations].element_bytes
        wbpp = _weight_bytes_per_param(c.weights)
        gemms = _layer_gemms(m, c, wbpp, gemm_format, act)
        gemms.append(_lm_head(m, c, gemm_format, act))
        gemms = [g.scaled(c.fp8_scales) for g in gemms]
        heads = m.num_attention_heads / c.tp
        widths = _attention_widths(m, heads)
        up, down = _expert_gemms(m, c, wbpp, gemm_format, act)
        kv_b = _mla_kv_b(m, heads, wbpp, gemm_format, act)
        return cls(
            model=m,
            config=c,
            gemm_format=gemm_format,
            attention_format=attention_format,
            activation_bytes=act,
            residual_bytes=max(2.0, act),
            kv_bytes_per_token_layer=kv_bytes_per_token_per_device(m, c.tp, c.kv) / m.num_layers,
            heads_per_device=heads,
            kv_width_per_device=_kv_width(m, c.tp),
            ffn_width_per_device=_ffn_width(m, c),
            decode_head_dim=widths[0],
            decode_flops_per_attended=widths[1],
            prefill_head_dim=widths[2],
            prefill_flops_per_pair=widths[3],
            gemms=tuple(gemms),
            lm_head=gemms[-1],
            mla_kv_b=_scaled(kv_b, c),
            expert_up=_scaled(up, c),
            expert_down=_scaled(down, c),
            attention_family=_attention_family(m, c),
            mla_block_shape=_mla_block_shape(m, c, heads),
        )

    @property
    def modeled_kernels_per_layer(self) -> int:
        """Kernels per layer that are costed one by one in an eager runtime: the per-layer
        GEMMs, attention, and the eager elementwise ops."""
        layers = self.model.num_layers
        gemms = len({g.name for g in self.gemms if g.count == layers})
        return gemms + 1 + sum(n for n, _ in EAGER_ELEMENTWISE)

    @property
    def serving_kernels_per_layer(self) -> int:
        """Kernels a serving engine launches per layer: the per-layer GEMMs, attention, the
        fused elementwise passes and, with tensor parallelism, two all-reduces."""
        layers = self.model.num_layers
        gemms = len({g.name for g in self.gemms if g.count == layers})
        allreduces = (2 + self.model.qk_norm_across_heads) if self.config.tp > 1 else 0
        return gemms + 1 + FUSED_ELEMENTWISE_KERNELS + allreduces

    # ---- the ops of a step --------------------------------------------------------------------

    def routed_experts(self, tokens: int, per_rank: float) -> RoutedExperts:
        """How many experts the busiest device runs for ``tokens`` and how many rows each gets.

        Every device holds ``experts / ep`` experts (a ``1 / moe_tp`` slice of each) and sees the
        routing of all the step's ``tokens`` (``per_rank`` is kept for the callers: with ``dp ==
        1`` it equals ``tokens``)."""
        m, c = self.model, self.config
        e, k = m.num_experts, m.experts_per_token
        imbalance = c.expert_imbalance if c.ep > 1 else 1.0
        routed = tokens * k / c.ep * imbalance
        touched = max(e / c.ep * (1.0 - (1.0 - k / e) ** tokens), 1e-9)
        assert self.expert_up is not None and self.expert_down is not None
        return RoutedExperts(self.expert_up, self.expert_down, routed / touched, touched)

    def fused_experts(self, tokens: int, per_rank: float) -> Kernel:
        """The routed experts of one MoE layer as the one fused (grouped-GEMM) kernel the
        runtimes launch, for a measured table keyed by (moe_tp, ep): ``tokens`` is what enters
        the layer on a device before routing — every token of the step (scaled by
        ``expert_imbalance`` under expert parallelism: the busiest device runs what a balanced
        routing of that many tokens gives it). Flops and bytes are those of
        :meth:`routed_experts`."""
        m, c = self.model, self.config
        r = self.routed_experts(tokens, per_rank)
        up, down = r.up.kernel(r.rows), r.down.kernel(r.rows)
        # the tables routed the tokens evenly, touching min(experts, assignments) experts where
        # hetsim's uniformly random routing touches r.touched: the bytes of that balanced
        # routing let a predictor convert the measured time (weights dominate at decode)
        weight_bytes = r.up.kernel(0.0).bytes + r.down.kernel(0.0).bytes
        assignments = r.rows * r.touched
        balanced = min(m.num_experts / c.ep, assignments)
        shape: dict[str, float | str] = {
            "tokens": tokens * c.expert_imbalance if c.ep > 1 else tokens,
            "hidden": m.hidden_size,
            "inter": m.moe_intermediate_size,
            "topk": m.experts_per_token,
            "experts": m.num_experts,
            "tp": c.moe_tp,
            "ep": c.ep,
            "weights": c.weights,
            **_fp8_scales(self.gemm_format, c),
        }
        flops = (up.flops + down.flops) * r.touched
        nbytes = (up.bytes + down.bytes) * r.touched
        shape["balanced_bytes"] = nbytes + (balanced - r.touched) * weight_bytes
        return Kernel("routed_experts", "moe", self.gemm_format, flops, nbytes, shape)

    def moe_collectives(self, tokens: int) -> list[Collective]:
        """What the MoE layers move besides the TP all-reduce: with several attention ranks,
        the all-to-all of whole-expert parallelism (``ep == devices``), or for split experts
        (``moe_tp > 1``) the all-gather of the ranks' tokens and the reduce-scatter of the
        outputs; nothing with one attention rank, whose tokens every device already holds
        after the attention all-reduce, so each computes its experts' share and the MLP
        all-reduce sums the partial outputs (vLLM's and TensorRT-LLM's EP under TP)."""
        c = self.config
        if c.dp == 1:
            return []
        if c.ep > 1 and c.moe_tp == 1:
            return [self.moe_all_to_all(tokens)]
        if c.dp > 1:
            # ring all-gather + reduce-scatter over the dp ranks of the 16-bit hidden states
            message = tokens * self.model.hidden_size * 2.0
            sent = ring_allreduce_bytes(message, c.dp)
            return [Collective("moe_gather_scatter", sent, self.model.num_moe_layers, 2)]
        return []

    def moe_all_to_all(self, tokens: int) -> Collective:
        """Dispatch and combine: each token's hidden state to its k experts, (ep−1)/ep of them
        remote, the busiest device's share scaled by the imbalance."""
        m, c = self.model, self.config
        per_device = tokens / c.devices
        sent = (
            2.0
            * per_device
            * m.experts_per_token
            * m.hidden_size
            * self.activation_bytes
            * ((c.ep - 1) / c.ep)
            * c.expert_imbalance
        )
        return Collective("moe_all_to_all", sent, m.num_moe_layers, 2)

    def tp_allreduce(self, per_rank: float) -> Collective:
        """Ring all-reduce of the 16-bit activations after attention and after the MLP."""
        message = per_rank * self.model.hidden_size * 2.0
        sent = ring_allreduce_bytes(message, self.config.tp)
        return Collective("tp_allreduce", sent, 2 * self.model.num_layers, 1)

    def qk_norm_allreduce(self, per_rank: float) -> Collective | None:
        """A q/k norm over all heads with the heads split over tensor-parallel ranks: each layer
        all-reduces every token's partial sums of squares of q and of k (two fp32 values; vLLM
        ``minimax_qk_norm_fusion``, SGLang ``MiniMaxM2RMSNormTP``). None where there is none."""
        if not self.model.qk_norm_across_heads or self.config.tp == 1:
            return None
        sent = ring_allreduce_bytes(per_rank * 2 * 4.0, self.config.tp)
        return Collective("qk_norm_allreduce", sent, self.model.num_layers, 1)

    def elementwise_kernels(self, tokens: float, eager: bool) -> list[tuple[int, Kernel]]:
        """Norms, residual adds, rotary embedding, the gated activation and the KV cache write:
        memory-bound passes over the step's activations, as (calls per layer, kernel).

        Serving engines fuse them (vLLM: add+RMSNorm, rotary, SiLU·mul, cache write: one pass
        each); an ``eager`` runtime runs each as separate small ops whose fixed cost dominates at
        decode."""
        h = self.model.hidden_size
        q = self.heads_per_device * self.prefill_head_dim
        k = self.kv_width_per_device
        ffn = self.ffn_width_per_device
        if eager:
            widths = {"hidden": h, "q": q, "kh": k / 2, "ffn": ffn}  # kh: K (or V) alone
            out = []
            for count, width in EAGER_ELEMENTWISE:
                elems = tokens * widths[width]
                nbytes = 3.0 * elems * self.residual_bytes
                shape = {"m": max(elems, 1.0)}
                out.append(
                    (count, Kernel("elementwise", "elementwise", "fp32", elems, nbytes, shape))
                )
            return out
        # fused: add+norm twice (read 2, write 2 rows of h), rotary on q and k (read + write),
        # SiLU·mul (read 2, write 1 of ffn), the new K/V into the cache (write); the passes
        # stream their bytes once, so they are priced as a copy of half of them. They are five
        # kernels, not one: at decode each is latency-bound, which a predictor with a kernel
        # floor charges per launch
        per_token = 2 * 4 * h + 2 * (q + k / 2) + 3 * ffn + k
        nbytes = tokens * per_token * self.residual_bytes / FUSED_ELEMENTWISE_KERNELS
        kernel = Kernel("elementwise", "memcpy", "bytes", 0.0, nbytes, {"bytes": nbytes / 2})
        return [(FUSED_ELEMENTWISE_KERNELS, kernel)]

    def attention_kernels(self, w: AttentionWork) -> list[Kernel]:
        """Per-layer attention kernels of a batch: attention itself, MLA's ``kv_b`` projection
        (absorbed into queries and outputs for decode tokens, applied to every cached and new
        latent for prefill chunks) and the DSA indexer (scores every cached token, fp8 keys)."""
        m, dp, heads = self.model, self.config.dp, self.heads_per_device
        kvb, fmt = self.kv_bytes_per_token_layer, self.attention_format
        kernels = []
        if w.decode_seqs:
            b = w.decode_seqs / dp
            flops = self.decode_flops_per_attended * w.decode_capped / dp
            # read the attended KV in its stored format, read Q and write O in 16 bits
            nbytes = w.decode_capped / dp * kvb + 4.0 * b * heads * self.decode_head_dim
            shape = {
                "batch": b,
                "context": w.decode_context / w.decode_seqs,
                "heads": heads,
                "head_dim": self.decode_head_dim,
                **self.attention_family,
            }
            kernels.append(
                Kernel("attention_decode", "attention_decode", fmt, flops, nbytes, shape)
            )
        if w.prefill_seqs:
            pairs = w.prefill_pairs_capped if m.is_mla else w.prefill_pairs
            flops = self.prefill_flops_per_pair * pairs / dp
            # read the cached prefix's KV, write the new tokens' KV, read Q and write O
            nbytes = (
                (w.prefill_cached + w.prefill_tokens) * kvb
                + 4.0 * w.prefill_tokens * heads * self.prefill_head_dim
            ) / dp
            shape = {
                "batch": w.prefill_seqs / dp,
                "seq_len": (w.prefill_tokens + w.prefill_cached) / w.prefill_seqs,
                "heads": heads,
                "head_dim": self.prefill_head_dim,
                **self.attention_family,
            }
            kernels.append(
                Kernel("attention_prefill", "attention_prefill", fmt, flops, nbytes, shape)
            )
        if self.mla_kv_b is not None:
            kernels.append(
                self.mla_kv_b.kernel((w.decode_seqs + w.prefill_tokens + w.prefill_cached) / dp)
            )
        if m.is_sparse_attention:
            scored = (w.decode_context + w.prefill_pairs) / dp
            flops = 2 * m.index_n_heads * m.index_head_dim * scored
            nbytes = (
                (w.decode_context + w.prefill_cached + w.prefill_tokens) / dp * m.index_head_dim
            )
            shape = {"m": max(scored, 1.0), "n": m.index_n_heads, "k": m.index_head_dim}
            kernels.append(Kernel("dsa_indexer", "gemm", self.gemm_format, flops, nbytes, shape))
        return kernels

    @property
    def has_mla_block(self) -> bool:
        """Whether a layer's attention is a dense MLA block (:meth:`mla_blocks`)."""
        return self.mla_block_shape is not None

    def mla_blocks(self, w: AttentionWork) -> list[Kernel]:
        """The MLA attention block of a layer (the GEMMs of :data:`MLA_BLOCK_GEMMS`, MLA's
        ``kv_b`` projection and attention) as one kernel per phase, family ``mla_decode``
        (``batch`` sequences attending ``length`` tokens each on average, as
        ``attention_decode``) or ``mla_prefill`` (``batch`` prompts of ``length`` tokens, as
        ``attention_prefill``), with the model's MLA geometry, KV and weight formats to match
        a measured module table. Empty for a model without a dense MLA block (sparse
        attention's indexer is no part of a measured one). No flops or bytes: an explanation
        sums those of the ops a block replaces."""
        geometry = self.mla_block_shape
        if geometry is None:
            return []
        dp = self.config.dp
        out = []
        if w.decode_seqs:
            shape = {"batch": w.decode_seqs / dp, "length": w.decode_context / w.decode_seqs}
            out.append(Kernel("mla_block", "mla_decode", self.gemm_format, 0.0, 0.0,
                              shape | geometry))  # fmt: skip
        if w.prefill_seqs:
            length = (w.prefill_tokens + w.prefill_cached) / w.prefill_seqs
            shape = {"batch": w.prefill_seqs / dp, "length": length}
            out.append(Kernel("mla_block", "mla_prefill", self.gemm_format, 0.0, 0.0,
                              shape | geometry))  # fmt: skip
        return out

    # ---- a batch's attention work -------------------------------------------------------------

    def decode_work(self, context: np.ndarray) -> AttentionWork:
        """The attention work of a decode step over sequences with these cached lengths."""
        b = int(context.size)
        attended = float(context.sum()) + b
        return AttentionWork(b, attended, self._capped_decode(context, attended), 0, 0, 0, 0, 0)

    def work(self, new: np.ndarray, cached: np.ndarray) -> AttentionWork:
        """The attention work of a step mixing decode (``new == 1``) and prefill chunks."""
        if new.size <= SMALL_BATCH and not self.model.is_sparse_attention:
            return self.work_of(new.tolist(), cached.tolist())
        is_dec = new == 1
        dec_ctx_arr = cached[is_dec]
        dec_seqs = int(dec_ctx_arr.size)
        dec_ctx = float(dec_ctx_arr.sum()) + dec_seqs
        dec_capped = self._capped_decode(dec_ctx_arr, dec_ctx) if dec_seqs else 0.0
        pn = new[~is_dec].astype(np.float64)
        pc = cached[~is_dec].astype(np.float64)
        pre_seqs = int(pn.size)
        if not pre_seqs:
            return AttentionWork(dec_seqs, dec_ctx, dec_capped, 0, 0.0, 0.0, 0.0, 0.0)
        pairs = float((pn * pc).sum() + (pn * (pn + 1)).sum() / 2)
        if self.model.is_sparse_attention:
            capped = float(_capped_sums(pc + 1, pc + pn, self.model.index_topk).sum())
        else:
            capped = pairs
        return AttentionWork(
            dec_seqs, dec_ctx, dec_capped, pre_seqs, float(pn.sum()), float(pc.sum()), pairs, capped
        )

    def work_of(self, new: Sequence[int], cached: Sequence[int]) -> AttentionWork:
        """:meth:`work` of a few sequences given as ints, in plain Python (numpy's cost per
        call outweighs its arithmetic there): the same integer sums, so the same floats (every
        count and product here is an integer far below 2**53). Dense attention only."""
        dec_seqs = dec_ctx = pre_seqs = pre_new = pre_cached = pairs2 = prod = 0
        for n, c in zip(new, cached, strict=True):
            if n == 1:
                dec_seqs += 1
                dec_ctx += c
            else:
                pre_seqs += 1
                pre_new += n
                pre_cached += c
                prod += n * c
                pairs2 += n * (n + 1)
        attended = float(dec_ctx) + dec_seqs
        if not pre_seqs:
            return AttentionWork(dec_seqs, attended, attended, 0, 0.0, 0.0, 0.0, 0.0)
        pairs = float(prod + pairs2 / 2)
        return AttentionWork(
            dec_seqs, attended, attended, pre_seqs, float(pre_new), float(pre_cached), pairs, pairs
        )

    def _capped_decode(self, context: np.ndarray, attended: float) -> float:
        if not self.model.is_sparse_attention:
            return attended
        return float(np.minimum(context + 1, self.model.index_topk).sum())


# ---- building the inventory ----------------------------------------------------------------


def _gemm_format(weights: str, activations: str) -> str:
    key = gemm_compute_format(weights, activations)
    if key is None:
        raise ValueError(f"no GEMM format for weights={weights}, activations={activations}")
    return key


def _weight_bytes_per_param(weights: str) -> float:
    """Element bytes plus the group scales (and zero points) of a quantized format."""
    fmt = get_format(weights, "weights")
    if not fmt.scale_group:
        return fmt.element_bytes + 0.0
    return fmt.element_bytes + fmt.scale_bytes * (2 if fmt.zero_point else 1) / fmt.scale_group


def _layer_gemms(m: ModelConfig, c: InstanceConfig, w: float, fmt: str, act: float) -> list[Gemm]:
    tp, h, layers = c.tp, m.hidden_size, m.num_layers
    heads = m.num_attention_heads / tp
    g: list[Gemm] = []
    if m.is_mla:
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            g.append(Gemm("q_a_proj", m.q_lora_rank, h, layers, w, fmt, act))
            g.append(Gemm("q_b_proj", heads * qk, m.q_lora_rank, layers, w, fmt, act))
        else:
            g.append(Gemm("q_proj", heads * qk, h, layers, w, fmt, act))
        g.append(Gemm("kv_a_proj", m.kv_lora_rank + m.qk_rope_head_dim, h, layers, w, fmt, act))
        g.append(Gemm("o_proj", h, heads * m.v_head_dim, layers, w, fmt, act))
        if m.is_sparse_attention:
            q_in = m.q_lora_rank or h
            idx = "dsa_indexer_proj"
            g.append(Gemm(idx, m.index_n_heads * m.index_head_dim, q_in, layers, w, fmt, act))
            g.append(Gemm(idx, m.index_head_dim, h, layers, w, fmt, act))
            g.append(Gemm(idx, m.index_n_heads, h, layers, w, fmt, act))
    else:
        kv_heads = max(1.0, m.num_kv_heads / tp)
        g.append(Gemm("qkv_proj", (heads + 2 * kv_heads) * m.head_dim, h, layers, w, fmt, act))
        g.append(Gemm("o_proj", h, heads * m.head_dim, layers, w, fmt, act))
    dense_layers = m.num_dense_layers_effective
    if dense_layers:
        inter = m.intermediate_size / tp
        g.append(Gemm("mlp_gate_up", 2 * inter, h, dense_layers, w, fmt, act))
        g.append(Gemm("mlp_down", h, inter, dense_layers, w, fmt, act))
    if m.is_moe:
        moe_layers = m.num_moe_layers
        g.append(Gemm("moe_router", m.num_experts, h, moe_layers, 2.0, "bf16", act))
        if m.shared_expert_intermediate_size:
            inter = m.shared_expert_intermediate_size / tp
            g.append(Gemm("shared_expert_gate_up", 2 * inter, h, moe_layers, w, fmt, act))
            g.append(Gemm("shared_expert_down", h, inter, moe_layers, w, fmt, act))
    return g


def _lm_head(m: ModelConfig, c: InstanceConfig, fmt: str, act: float) -> Gemm:
    # quantized checkpoints keep the LM head in 16 bits; an fp32 model keeps it in fp32
    head_format = fmt if act >= 2 else "bf16"
    return Gemm("lm_head", m.vocab_size / c.tp, m.hidden_size, 1, max(2.0, act), head_format, act)


def _expert_gemms(
    m: ModelConfig, c: InstanceConfig, w: float, fmt: str, act: float
) -> tuple[Gemm | None, Gemm | None]:
    """The up (gate and up) and down GEMMs of one routed expert on one device: a ``1 / moe_tp``
    slice of its intermediate width (whole experts when ``ep`` is every device)."""
    if not m.is_moe:
        return None, None
    inter = m.moe_intermediate_size / c.moe_tp
    n_gate, n_down, k_down = 2 * inter, m.hidden_size, inter
    layers = m.num_moe_layers
    up = Gemm("routed_experts", n_gate, m.hidden_size, layers, w, fmt, act)
    return up, Gemm("routed_experts", n_down, k_down, layers, w, fmt, act)


def _mla_kv_b(m: ModelConfig, heads: float, w: float, fmt: str, act: float) -> Gemm | None:
    if not m.is_mla:
        return None
    n = heads * (m.qk_nope_head_dim + m.v_head_dim)
    return Gemm("mla_kv_b_proj", n, m.kv_lora_rank, m.num_layers, w, fmt, act)


def _attention_family(m: ModelConfig, c: InstanceConfig) -> dict[str, float | str]:
    if not m.is_mla:
        return {"kv_heads": max(1.0, m.num_kv_heads / c.tp), "kv": c.kv}
    if m.is_sparse_attention:
        return {}
    return {
        "kv_lora_rank": m.kv_lora_rank,
        "qk_rope_head_dim": m.qk_rope_head_dim,
        "qk_nope_head_dim": m.qk_nope_head_dim,
        "v_head_dim": m.v_head_dim,
        "kv": c.kv,
    }


def _mla_block_shape(m: ModelConfig, c: InstanceConfig, heads: float) -> dict | None:
    if not m.is_mla or m.is_sparse_attention:
        return None
    return {
        "hidden": m.hidden_size,
        "q_lora_rank": m.q_lora_rank,
        "kv_lora_rank": m.kv_lora_rank,
        "qk_nope_head_dim": m.qk_nope_head_dim,
        "qk_rope_head_dim": m.qk_rope_head_dim,
        "v_head_dim": m.v_head_dim,
        "heads": heads,
        "kv": c.kv,
        "weights": c.weights,
        **_fp8_scales(_gemm_format(c.weights, c.activations), c),
    }


def _scaled(gemm: Gemm | None, c: InstanceConfig) -> Gemm | None:
    return None if gemm is None else gemm.scaled(c.fp8_scales)


def _fp8_scales(gemm_format: str, c: InstanceConfig) -> dict[str, str]:
    """The scaling entry of a fused kernel's shape: fp8 kernels only, as :meth:`Gemm.scaled`."""
    return {"scales": c.fp8_scales} if gemm_format == "fp8" else {}


def _attention_widths(m: ModelConfig, heads: float) -> tuple[float, float, float, float]:
    """(decode head dim, decode flops per attended token, prefill head dim, prefill flops per
    causal pair): MLA decodes in absorbed form over the latent and prefills in expanded
    per-head form."""
    if m.is_mla:
        return (
            m.kv_lora_rank + m.qk_rope_head_dim,
            2 * heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim),
            m.qk_nope_head_dim + m.qk_rope_head_dim,
            2 * heads * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim),
        )
    flops = 4 * heads * m.head_dim
    return m.head_dim, flops, m.head_dim, flops


def _kv_width(m: ModelConfig, tp: int) -> float:
    if m.is_mla:
        return float(m.kv_lora_rank + m.qk_rope_head_dim)
    return 2 * max(1.0, m.num_kv_heads / tp) * m.head_dim


def _ffn_width(m: ModelConfig, c: InstanceConfig) -> float:
    """The MLP's intermediate width per device, averaged over dense and MoE layers."""
    dense, moe, tp = m.num_dense_layers_effective, m.num_moe_layers, c.tp
    moe_ffn = m.experts_per_token * m.moe_intermediate_size / c.devices
    moe_ffn += m.shared_expert_intermediate_size / tp
    return (dense * m.intermediate_size / tp + moe * moe_ffn) / max(dense + moe, 1)


def _capped_sums(first: np.ndarray, last: np.ndarray, cap: int) -> np.ndarray:
    """Per row, the sum of ``min(c, cap)`` for ``c`` from ``first`` to ``last`` inclusive."""
    below_last = np.minimum(last, cap)
    n_below = np.maximum(below_last - first + 1, 0)
    below = n_below * (first + below_last) / 2
    above = np.maximum(last - np.maximum(first, cap + 1) + 1, 0) * cap
    return below + above
