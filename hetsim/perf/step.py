"""Time of one batch step of one instance: the ops of the step, each priced by a predictor.

A step runs a batch of sequences; sequence ``i`` brings ``new[i]`` tokens and has ``cached[i]``
tokens already in its KV cache. A decode step is the case ``new = 1``; a prefill chunk has
``new > 1``; a colocated (mixed) step has both. Everything is computed per device, for the
busiest device where the work is uneven (MoE with expert parallelism), and ops do not overlap.

The ops (GEMMs, attention, elementwise passes, collectives) come from
:class:`~hetsim.perf.ops.OpInventory`; each costs what the instance's
:class:`~hetsim.perf.cost.KernelCostPredictor` says, and the step adds the predictor's fixed
overhead. Every op records the source that priced it; the step model's :attr:`provenance` is the
predictor's. A predictor with measured fused kernels prices the routed experts as one MoE kernel
per layer and, when every phase of a step is inside its tables, a dense MLA block (projections,
``kv_b``, attention) as one time per layer in place of those ops; elsewhere the ops stand as
they are.

Energy. A step draws, per device, Σ over its ops of op time × op power, where an op's power is
the board power its kernel table measured at that shape (attention, fused MoE: see
:mod:`hetsim.perf.cost.measured`) and the profile's tdp otherwise — an assumption, as are the
step's overheads (host work, launch gaps) at tdp. So a step's energy is ``tdp × time`` less
what its measured ops draw below tdp (:meth:`StepModel.below_tdp`), exactly ``tdp × time`` for
a step model without measured power (:attr:`StepModel.has_measured_power` False), whose callers
need not ask.

The simulator calls :meth:`StepModel.step_time` and the decode paths millions of times, so the
ops whose cost depends only on the token and sequence counts are memoised, and a roofline-priced
GQA decode step has a closed form in the batch size and the sum of contexts. :class:`StepModels`
memoises whole step models by the content of what they depend on.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from hetsim.perf.calibration import CalibrationTable, read_table
from hetsim.perf.cost import (
    KernelCostPredictor,
    OpCost,
    Source,
    predictor_for,
    price_collective,
)
from hetsim.perf.cost.measured import FusedExpertsPricer, MlaBlockPricer, PowerPricer
from hetsim.perf.ops import (
    MLA_BLOCK_GEMMS,
    AttentionWork,
    Collective,
    Gemm,
    InstanceConfig,
    Kernel,
    OpInventory,
)
from hetsim.perf.runtimes import RuntimeOverheads, runtime_overheads
from hetsim.spec.hardware import AcceleratorProfile
from hetsim.spec.model import ModelConfig
from hetsim.spec.scenario import PoolSpec

__all__ = [
    "TDP_POWER",
    "InstanceConfig",
    "OpCost",
    "StepBreakdown",
    "StepModel",
    "StepModels",
    "step_model_for_pool",
]


#: the power source of ops no table measured: the profile's board power, an assumption
TDP_POWER = "tdp (assumption)"
#: attention prices a step model with measured power keeps for the energy of the steps it
#: priced (a fast-forward run asks for up to MAX_RUN steps' energies after their times)
PRICED_KEPT = 2048


@dataclass(frozen=True)
class StepBreakdown:
    """A step explained: one row per op with flops, bytes, bound and time (per device)."""

    phase: str
    ops: list[OpCost]
    provenance: Source

    @property
    def time(self) -> float:
        return sum(op.time for op in self.ops)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame([op.as_dict() for op in self.ops])
        frame["share"] = frame["time"] / self.time if self.time else 0.0
        return frame


#: prefill steps :meth:`StepModel.chunks_time` remembers (about 500 bytes each; the simulator
#: clears them when a run starts, so a long-lived process holds one run's at most)
CHUNKS_CACHE = 1 << 16


@dataclass(slots=True, eq=False)
class StepModel:
    """Step-time model of one instance (model × accelerator × parallelism × precision).

    ``runtime`` picks the measured predictor (the profile's tables for that serving runtime),
    ``calibration`` the calibrated one; ``predictor`` passes one already built (a
    :class:`StepModels` session shares them between step models of one profile)."""

    model: ModelConfig
    profile: AcceleratorProfile
    config: InstanceConfig
    calibration: CalibrationTable | None = None
    predictor: InitVar[KernelCostPredictor | None] = None
    runtime: str | None = None
    cost: KernelCostPredictor = field(init=False)
    ops: OpInventory = field(init=False, repr=False)
    overhead: float = field(init=False)  # seconds per step besides the costed ops
    overhead_source: Source = field(init=False)
    # a named runtime's host costs (overlapped scheduling, eager launches) replace the
    # profile's fixed step overhead
    host: RuntimeOverheads | None = field(init=False, repr=False)
    kernels_per_step: int = field(init=False, repr=False)  # kernels one step launches
    # decode attention in closed form where the predictor charges a plain roofline over GQA
    # heads: seconds of compute per attended token, of KV reads per attended token and of Q/O
    # traffic per sequence (None otherwise)
    _decode_coefficients: tuple[float, float, float] | None = field(init=False, repr=False)
    _linear_cache: dict[int, float] = field(init=False, default_factory=dict, repr=False)
    # whether the predictor may price whole MLA blocks (then their GEMMs' time per token count)
    _mla_blocks: bool = field(init=False, repr=False)
    _mla_gemm_cache: dict[int, float] = field(init=False, default_factory=dict, repr=False)
    _head_cache: dict[int, float] = field(init=False, default_factory=dict, repr=False)
    _chunks_cache: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = field(
        init=False, default_factory=dict, repr=False
    )
    tdp: float = field(init=False)  # W per device: what ops without measured power draw
    # the measured-power labels of the op families this model runs (empty: all at tdp)
    power_sources: tuple[str, ...] = field(init=False)
    has_measured_power: bool = field(init=False)
    _below_cache: dict[int, float] = field(init=False, default_factory=dict, repr=False)
    # attention kernels' prices by work, kept for the energy of the steps just priced
    _priced: dict[AttentionWork, list] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self, predictor: KernelCostPredictor | None) -> None:
        self.cost = (
            predictor
            if predictor is not None
            else predictor_for(self.profile, self.calibration, self.runtime)
        )
        self.ops = OpInventory.build(self.model, self.config, self.profile.compute)
        self.overhead, self.overhead_source = self.cost.step_overhead(
            self.ops.modeled_kernels_per_layer, self.model.num_layers
        )
        self.host = None if self.runtime is None else runtime_overheads(self.runtime)
        if self.host is not None:
            self.overhead = 0.0
        self.kernels_per_step = self.ops.serving_kernels_per_layer * self.model.num_layers
        self._decode_coefficients = self._closed_form_decode()
        self._mla_blocks = isinstance(self.cost, MlaBlockPricer) and self.ops.has_mla_block
        self.tdp = self.profile.tdp.value
        self.power_sources = self._power_sources()
        self.has_measured_power = bool(self.power_sources)

    def _power_sources(self) -> tuple[str, ...]:
        """The labels of the power grids this model's attention and fused MoE kernels have."""
        cost = self.cost
        if not isinstance(cost, PowerPricer):
            return ()
        # one decode sequence and one prompt of two tokens: every attention kernel family
        kernels = self.ops.attention_kernels(AttentionWork(1, 2.0, 2.0, 1, 2.0, 0.0, 3.0, 3.0))
        if self.model.is_moe and isinstance(cost, FusedExpertsPricer):
            kernels.append(self.ops.fused_experts(1, 1 / self.config.dp))
        found = {cost.power_source(k) for k in kernels}
        return tuple(sorted(label for label in found if label is not None))

    @property
    def power_source(self) -> str:
        """Where a step's energy comes from: the measured-power labels, tdp elsewhere."""
        if not self.power_sources:
            return TDP_POWER
        return f"{' + '.join(self.power_sources)} where measured, {TDP_POWER} elsewhere"

    def _closed_form_decode(self) -> tuple[float, float, float] | None:
        ops = self.ops
        rates = self.cost.roofline_rates(ops.attention_format)
        if rates is None or self.model.is_mla:
            return None
        peak, bandwidth = rates
        return (
            ops.decode_flops_per_attended / peak,
            ops.kv_bytes_per_token_layer / bandwidth,
            4.0 * ops.heads_per_device * ops.decode_head_dim / bandwidth,
        )

    @property
    def provenance(self) -> Source:
        return self.cost.provenance

    @property
    def kv_bytes_per_token_layer(self) -> float:
        """Bytes one token's KV occupies per layer on each device."""
        return self.ops.kv_bytes_per_token_layer

    # ---- pricing ops --------------------------------------------------------------------------

    def _gemm_cost(self, g: Gemm, m: float, calls: float = 1.0) -> OpCost:
        """``calls`` independent GEMMs of ``m`` rows each (a grouped GEMM), ``g.count`` times."""
        k = g.kernel(m)
        t, bound, source = self.cost.kernel(k)
        n = g.count
        return OpCost(
            g.name, k.flops * calls * n, k.bytes * calls * n, t * calls * n, bound, n, source
        )

    def _routed_experts(self, tokens: int, per_rank: float) -> OpCost:
        r = self.ops.routed_experts(tokens, per_rank)
        a, b = self._gemm_cost(r.up, r.rows, r.touched), self._gemm_cost(r.down, r.rows, r.touched)
        bound = a.bound if a.time >= b.time else b.bound
        t, source = a.time + b.time, a.source
        if isinstance(self.cost, FusedExpertsPricer):
            # one fused kernel per layer where the predictor measured it; else the grouped GEMMs
            found = self.cost.fused_experts(self.ops.fused_experts(tokens, per_rank))
            if found is not None:
                t, source = found[0] * r.up.count, found[1]
        return OpCost(r.up.name, a.flops + b.flops, a.bytes + b.bytes, t, bound, r.up.count, source)

    def _collective(self, c: Collective) -> OpCost:
        t, source = price_collective(self.cost, c, self.config.tp)
        return OpCost(c.name, 0.0, c.bytes * c.count, t * c.count, "network", c.count, source)

    def _elementwise(self, tokens: float) -> OpCost:
        layers = self.model.num_layers
        flops = nbytes = t = 0.0
        source = self.provenance
        for count, k in self.ops.elementwise_kernels(tokens, self.cost.eager_elementwise):
            dt, _, source = self.cost.kernel(k)
            flops, nbytes, t = flops + count * k.flops, nbytes + count * k.bytes, t + count * dt
        return OpCost("elementwise", flops * layers, nbytes * layers, t * layers, "memory", layers,
                      source)  # fmt: skip

    def _linear_ops(self, tokens: int, seqs: int | None) -> list[OpCost]:
        """Everything whose cost depends only on the token and sequence counts (the LM head
        runs once per sequence; ``seqs`` None leaves it out)."""
        ops, c = self.ops, self.config
        per_rank = tokens / c.dp
        out = [
            self._gemm_cost(g, per_rank)
            if g is not ops.lm_head
            else self._gemm_cost(g, seqs / c.dp)
            for g in ops.gemms
            if seqs is not None or g is not ops.lm_head
        ]
        if self.model.is_moe:
            out.append(self._routed_experts(tokens, per_rank))
            out.extend(self._collective(m) for m in ops.moe_collectives(tokens))
        out.append(self._elementwise(per_rank))
        if c.tp > 1:
            out.append(self._collective(ops.tp_allreduce(per_rank)))
        qk_norm = ops.qk_norm_allreduce(per_rank)  # None without tp or a full-width q/k norm
        if qk_norm is not None:
            out.append(self._collective(qk_norm))
        return out

    def _attention_time(self, work: AttentionWork) -> float:
        kernel = self.cost.kernel
        per_layer = 0.0
        for k in self.ops.attention_kernels(work):
            per_layer += kernel(k)[0]
        return self.model.num_layers * per_layer

    def _decode_attention_over(
        self, batch: int, attended: np.ndarray, capped: np.ndarray
    ) -> np.ndarray | None:
        """:meth:`_attention_time` of decode steps of ``batch`` sequences at each of these
        attended and capped sums, the same floats: the kernels of
        :meth:`~hetsim.perf.ops.OpInventory.attention_kernels` for a decode-only step, priced
        as the plain roofline prices them, with the same operations in the same order over
        arrays. None where a kernel's price depends on more than its flops and bytes (measured,
        calibrated or transferred costs, measured MLA blocks): then each step is priced alone."""
        ops, m, dp = self.ops, self.model, self.config.dp
        rates = self.cost.roofline_rates(ops.attention_format)
        if rates is None or self._mla_blocks:
            return None
        peak, bandwidth = rates
        b = batch / dp
        flops = ops.decode_flops_per_attended * capped / dp
        nbytes = capped / dp * ops.kv_bytes_per_token_layer + (
            4.0 * b * ops.heads_per_device * ops.decode_head_dim
        )
        compute, memory = flops / peak, nbytes / bandwidth
        per_layer = 0.0 + np.where(compute >= memory, compute, memory)
        if ops.mla_kv_b is not None:  # its rows are the batch's sequences: one price a run
            per_layer = per_layer + self.cost.kernel(ops.mla_kv_b.kernel((batch + 0 + 0) / dp))[0]
        if m.is_sparse_attention:  # the DSA indexer scores every cached token, fp8 keys
            indexer = self.cost.roofline_rates(ops.gemm_format)
            assert indexer is not None  # a plain roofline prices every format so
            scored = (attended + 0) / dp
            flops = 2 * m.index_n_heads * m.index_head_dim * scored
            nbytes = (attended + 0 + 0) / dp * m.index_head_dim
            compute, memory = flops / indexer[0], nbytes / indexer[1]
            per_layer = per_layer + np.where(compute >= memory, compute, memory)
        return m.num_layers * per_layer

    def _mla_block_time(self, work: AttentionWork) -> tuple[float, Source] | None:
        """Seconds per step of the measured MLA blocks of a batch (every layer, every phase), or
        None unless the predictor measured each phase."""
        price = self.cost.mla_block  # type: ignore[attr-defined]  # _mla_blocks says it has one
        total, source = 0.0, None
        for k in self.ops.mla_blocks(work):
            found = price(k)
            if found is None:
                return None
            total, source = total + found[0], found[1]
        return (self.model.num_layers * total, source) if source is not None else None

    def _mla_gemm_time(self, tokens: int) -> float:
        """What the token-count ops charge for the MLA block's GEMMs, memoised by tokens."""
        t = self._mla_gemm_cache.get(tokens)
        if t is None:
            per_rank = tokens / self.config.dp
            t = sum(
                self._gemm_cost(g, per_rank).time
                for g in self.ops.gemms
                if g.name in MLA_BLOCK_GEMMS
            )
            self._mla_gemm_cache[tokens] = t
        return t

    def _block_time(self, work: AttentionWork, tokens: int) -> float:
        """Attention of a step; where the predictor measured the whole MLA block, the blocks'
        time less their GEMMs, which :meth:`_linear_time` (memoised by tokens alone) charged."""
        if self._mla_blocks:
            found = self._mla_block_time(work)
            if found is not None:
                return found[0] - self._mla_gemm_time(tokens)
        if self.has_measured_power:
            return self._attention_time_kept(work)
        return self._attention_time(work)

    def _attention_time_kept(self, work: AttentionWork) -> float:
        """:meth:`_attention_time`, the same floats, keeping each kernel's time and draw by the
        work: the energy of the step (:meth:`_block_below`) is asked next and needs them."""
        priced = self._kernel_powers(self.ops.attention_kernels(work))
        if len(self._priced) >= PRICED_KEPT:
            self._priced.clear()
        self._priced[work] = priced
        per_layer = 0.0
        for t, _ in priced:
            per_layer += t
        return self.model.num_layers * per_layer

    def _attention_ops(self, work: AttentionWork) -> list[OpCost]:
        layers = self.model.num_layers
        ops = []
        for k in self.ops.attention_kernels(work):
            t, bound, source = self.cost.kernel(k)
            ops.append(
                OpCost(
                    k.name, k.flops * layers, k.bytes * layers, t * layers, bound, layers, source
                )
            )
        return ops

    # ---- public: fast paths -------------------------------------------------------------------

    def with_host(self, gpu: float, batch: int, prefill: bool) -> float:
        """A step whose kernels take ``gpu`` seconds, with the named runtime's host work
        (:meth:`~hetsim.perf.runtimes.RuntimeOverheads.step`); without a runtime, the profile's
        overhead is already in ``gpu``."""
        if self.host is None:
            return gpu
        return self.host.step(gpu, self.kernels_per_step, batch, prefill)

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
            head = self._gemm_cost(self.ops.lm_head, seqs / self.config.dp).time
            self._head_cache[seqs] = head
        return body + head

    def token_ops_time(self, tokens: int, seqs: int) -> float:
        """Seconds of the ops whose cost depends only on a step's ``tokens`` and its ``seqs``
        LM-head rows (everything but attention), with the profile's fixed step overhead where
        no runtime is named."""
        return self._linear_time(tokens, seqs)

    def decode_kernels_time(self, context: np.ndarray) -> float:
        """A decode step's kernels alone, without the fixed step overhead or a runtime's host
        work: a pass that runs inside another step's launch (an MTP draft)."""
        b = int(context.size)
        if b == 0:
            return 0.0
        gpu = self._linear_time(b, b) + self._block_time(self.ops.decode_work(context), b)
        return gpu - self.overhead

    def decode_time(self, context: np.ndarray) -> float:
        """Seconds for one decode step of ``len(context)`` sequences with these cached lengths."""
        b = int(context.size)
        if b == 0:
            return 0.0
        gpu = self._linear_time(b, b) + self._block_time(self.ops.decode_work(context), b)
        return self.with_host(gpu, b, False)

    def decode_time_from_sum(self, batch: int, context_sum: int) -> float:
        """:meth:`decode_time` from the batch size and the sum of contexts alone (exact for
        models without sparse attention, whose cost depends on nothing else)."""
        if batch == 0:
            return 0.0
        if self.model.is_sparse_attention:
            raise ValueError("sparse attention needs each context: use decode_time")
        attended = float(context_sum + batch)
        coefficients = self._decode_coefficients
        if coefficients is not None:
            # the decode attention kernel of OpInventory.attention_kernels in closed form
            flops_coef, kv_coef, qo_coef = coefficients
            a = attended / self.config.dp
            compute = flops_coef * a
            memory = kv_coef * a + qo_coef * batch / self.config.dp
            attention = (compute if compute >= memory else memory) * self.model.num_layers
            gpu = self._linear_time(batch, batch) + attention
        else:
            work = AttentionWork(batch, attended, attended, 0, 0, 0, 0, 0)
            gpu = self._linear_time(batch, batch) + self._block_time(work, batch)
        return self.with_host(gpu, batch, False)

    def decode_times_stepping(self, batch: int, context_sum: int, k: int) -> list[float]:
        """:meth:`decode_time_from_sum` of ``k`` steps of one batch whose contexts each grow
        by a token a step (sums ``context_sum``, ``+ batch``, ...), the same floats."""
        return self.decode_run(batch, context_sum, k, 0.0, 1.0)[0]

    def decode_run(
        self, batch: int, context_sum: int, k: int, start: float, slow: float
    ) -> tuple[list[float], list[float]]:
        """:meth:`decode_times_stepping`'s ``k`` steps times ``slow`` (a straggler's factor;
        times 1.0 is the same float), and each one's end from ``start``: the previous end plus
        its time, as a step's timeout adds it. The closed form runs the scalar's operations in
        the same order, in one loop that also sums the ends (a steady decode run is planned
        once per batch change)."""
        coefficients = self._decode_coefficients
        if batch and coefficients is None and not self.model.is_sparse_attention:
            sums = context_sum + batch * np.arange(k, dtype=np.int64)
            found = self._decode_over_sums(batch, sums)
            if found is not None:
                return _run_ends(found.tolist(), start, slow)
        if batch == 0 or coefficients is None or self.model.is_sparse_attention:
            times = [self.decode_time_from_sum(batch, context_sum + batch * i) for i in range(k)]
            return _run_ends(times, start, slow)
        flops_coef, kv_coef, qo_coef = coefficients
        dp, layers = self.config.dp, self.model.num_layers
        qo = qo_coef * batch / dp
        linear = self._linear_time(batch, batch)
        host, kernels = self.host, self.kernels_per_step
        dts, ends = [], []
        t = start
        attended = context_sum + batch
        for _ in range(k):
            a = float(attended) / dp
            compute = flops_coef * a
            memory = kv_coef * a + qo
            gpu = linear + (compute if compute >= memory else memory) * layers
            dt = (gpu if host is None else host.step(gpu, kernels, batch, False)) * slow
            t += dt
            dts.append(dt)
            ends.append(t)
            attended += batch
        return dts, ends

    def _decode_over_sums(self, batch: int, sums: np.ndarray) -> np.ndarray | None:
        """:meth:`decode_time_from_sum` at each context sum (a model without sparse attention
        and without the closed form: MLA) over arrays, or None (see
        :meth:`_decode_attention_over`)."""
        attended = sums.astype(np.float64) + batch
        attention = self._decode_attention_over(batch, attended, attended)
        if attention is None:
            return None
        gpu = self._linear_time(batch, batch) + attention
        if self.host is None:
            return gpu
        return np.array([self.with_host(g, batch, False) for g in gpu.tolist()], np.float64)

    def decode_times_growing(self, context: np.ndarray, k: int) -> list[float]:
        """:meth:`decode_time` of ``context + i`` for i in 0..k-1 (a batch whose contexts each
        grow by a token a step), the same floats: each step's attended and capped sums are
        whole numbers, computed for all ``k`` steps at once instead of over a new array per
        step; the batch's token-count ops are priced once. Sparse attention only: without it
        the sum of contexts is all a step's price needs (:meth:`decode_times_stepping`)."""
        if not self.model.is_sparse_attention:
            raise ValueError("without sparse attention, use decode_times_stepping")
        b = int(context.size)
        if b == 0 or k == 0:
            return [0.0] * k
        steps = np.arange(k, dtype=np.int64)
        sums = int(context.sum()) + b * steps
        grown = context[None, :] + (steps + 1)[:, None]
        capped = np.minimum(grown, self.model.index_topk).sum(axis=1)
        linear = self._linear_time(b, b)
        attention = self._decode_attention_over(
            b, sums.astype(np.float64) + b, capped.astype(np.float64)
        )
        if attention is not None:
            gpu = linear + attention
            if self.host is None:
                return gpu.tolist()
            return [self.with_host(g, b, False) for g in gpu.tolist()]
        out = []
        for s, c in zip(sums.tolist(), capped.tolist(), strict=True):
            work = AttentionWork(b, float(s) + b, float(c), 0, 0, 0, 0, 0)
            out.append(self.with_host(linear + self._block_time(work, b), b, False))
        return out

    def decode_times_from_sums(self, batch: int, context_sums: np.ndarray) -> np.ndarray:
        """:meth:`decode_time_from_sum` of one batch size at each of ``context_sums`` (the
        steps of a batch that does not change), the same floats element for element: the
        closed form runs the scalar's operations in the same order over the array."""
        sums = np.asarray(context_sums, dtype=np.int64)
        coefficients = self._decode_coefficients
        if batch and coefficients is None and not self.model.is_sparse_attention:
            found = self._decode_over_sums(batch, sums)
            if found is not None:
                return found
        if batch == 0 or coefficients is None or self.model.is_sparse_attention:
            return np.array([self.decode_time_from_sum(batch, int(s)) for s in sums], np.float64)
        flops_coef, kv_coef, qo_coef = coefficients
        dp = self.config.dp
        a = (sums + batch).astype(np.float64) / dp
        compute = flops_coef * a
        memory = kv_coef * a + qo_coef * batch / dp
        attention = np.where(compute >= memory, compute, memory) * self.model.num_layers
        gpu = self._linear_time(batch, batch) + attention
        host = self.host
        if host is None:
            return gpu
        kernels = self.kernels_per_step
        return np.array([host.step(float(g), kernels, batch, False) for g in gpu], np.float64)

    def prefill_time(self, new: np.ndarray, cached: np.ndarray | None = None) -> float:
        """Seconds for one prefill step over chunks of ``new`` tokens after ``cached`` tokens."""
        return self.step_time(new, cached)

    def chunks_time(self, new: tuple[int, ...], cached: tuple[int, ...]) -> float:
        """:meth:`step_time` of prompt chunks given as tuples, memoised by them: a prefill
        instance's steps repeat (one prompt of a length seen before, its chunks of a long one)
        and pricing one costs about as much as a dozen simulator events."""
        key = (new, cached)
        seconds = self._chunks_cache.get(key)
        if seconds is None:
            if len(self._chunks_cache) >= CHUNKS_CACHE:  # bounded: start over
                self._chunks_cache.clear()
            if self.model.is_sparse_attention:
                seconds = self.step_time(np.array(new, np.int64), np.array(cached, np.int64))
            else:
                seconds = self._step_of(sum(new), len(new), self.ops.work_of(new, cached))
            self._chunks_cache[key] = seconds
        return seconds

    def forget_chunk_times(self) -> None:
        """Drop what :meth:`chunks_time` remembers (a step model outlives the runs it prices)."""
        self._chunks_cache.clear()

    def step_time(self, new: np.ndarray, cached: np.ndarray | None = None) -> float:
        """Seconds for one step of a batch mixing decode (``new == 1``) and prefill chunks."""
        new = np.asarray(new)
        cached = np.zeros_like(new) if cached is None else np.asarray(cached)
        if new.size == 0:
            return 0.0
        return self._step_of(int(new.sum()), int(new.size), self.ops.work(new, cached))

    def _step_of(self, tokens: int, seqs: int, work: AttentionWork) -> float:
        """Seconds of a step of ``tokens`` over ``seqs`` sequences whose attention is ``work``."""
        gpu = self._linear_time(tokens, seqs) + self._block_time(work, tokens)
        # every sequence brings at least one token: more tokens than sequences is a prompt chunk
        return self.with_host(gpu, seqs, tokens > seqs)

    # ---- energy: what measured-power ops draw below tdp (module docstring) --------------------

    def _below(self, seconds: float, watts: float | None) -> float:
        """Joules a kernel call of ``seconds`` drawing ``watts`` (None: tdp) draws below tdp."""
        return 0.0 if watts is None else seconds * (self.tdp - watts)

    def _linear_below(self, tokens: int) -> float:
        """What :meth:`_linear_time`'s ops draw below tdp: the fused MoE kernel alone has
        measured power among them (memoised by tokens, as its time is)."""
        below = self._below_cache.get(tokens)
        if below is None:
            below = 0.0
            if self.model.is_moe and isinstance(self.cost, FusedExpertsPricer):
                k = self.ops.fused_experts(tokens, tokens / self.config.dp)
                found = self.cost.fused_experts(k)
                if found is not None:  # _routed_experts charged the fused kernel
                    draw = self.cost.draw(k)  # type: ignore[attr-defined]  # measured power
                    below = self._below(found[0] * self.ops.expert_up.count, draw)
            self._below_cache[tokens] = below
        return below

    def _block_below(self, work: AttentionWork) -> float:
        """What :meth:`_block_time`'s kernels draw below tdp: a measured MLA block has no
        measured power (all of it at tdp), attention kernels their own."""
        if self._mla_blocks and self._mla_block_time(work) is not None:
            return 0.0
        priced = self._priced.get(work)
        if priced is None:
            priced = self._kernel_powers(self.ops.attention_kernels(work))
        below = 0.0
        for t, watts in priced:
            below += self._below(t, watts)
        return self.model.num_layers * below

    def _kernel_powers(self, kernels: list[Kernel]) -> list[tuple[float, float | None]]:
        """(seconds, watts or None) of each kernel, in one table lookup each."""
        kernel_power = self.cost.kernel_power  # type: ignore[attr-defined]  # measured power
        return [kernel_power(k) for k in kernels]

    def token_ops_below_tdp(self, tokens: int) -> float:
        """:meth:`below_tdp` of :meth:`token_ops_time`'s ops (per step, per device)."""
        return self._linear_below(tokens) if self.has_measured_power else 0.0

    def attention_below_tdp(self, kernels: list[Kernel]) -> float:
        """Joules these per-layer attention kernels, run in every layer, draw below tdp."""
        if not self.has_measured_power:
            return 0.0
        return self.model.num_layers * sum(self._below(*p) for p in self._kernel_powers(kernels))

    def below_tdp(self, new: np.ndarray, cached: np.ndarray | None = None) -> float:
        """Joules per device that the step :meth:`step_time` prices draws below ``tdp × its
        time``: Σ over its ops with measured power of op time × (tdp − power); 0 without."""
        if not self.has_measured_power:
            return 0.0
        new = np.asarray(new)
        if new.size == 0:
            return 0.0
        cached = np.zeros_like(new) if cached is None else np.asarray(cached)
        tokens = int(new.sum())
        return self._linear_below(tokens) + self._block_below(self.ops.work(new, cached))

    def step_energy(self, new: np.ndarray, cached: np.ndarray | None = None) -> float:
        """Joules per device of one step: ``tdp × step_time`` less :meth:`below_tdp`."""
        return self.tdp * self.step_time(new, cached) - self.below_tdp(new, cached)

    def decode_below_tdp(self, context: np.ndarray) -> float:
        """:meth:`below_tdp` of the step :meth:`decode_time` prices."""
        b = int(context.size)
        if b == 0 or not self.has_measured_power:
            return 0.0
        return self._linear_below(b) + self._block_below(self.ops.decode_work(context))

    def decode_below_tdp_from_sum(self, batch: int, context_sum: int) -> float:
        """:meth:`below_tdp` of the step :meth:`decode_time_from_sum` prices."""
        if batch == 0 or not self.has_measured_power:
            return 0.0
        attended = float(context_sum + batch)
        work = AttentionWork(batch, attended, attended, 0, 0, 0, 0, 0)
        return self._linear_below(batch) + self._block_below(work)

    # ---- public: explanations -----------------------------------------------------------------

    def explain_step(self, new: np.ndarray, cached: np.ndarray | None = None) -> StepBreakdown:
        """The ops of one step with flops, bytes, bound, time (per device) and source."""
        new = np.asarray(new)
        cached = np.zeros_like(new) if cached is None else np.asarray(cached)
        ops = self._linear_ops(int(new.sum()), int(new.size))
        work = self.ops.work(new, cached)
        block = self._mla_block_time(work) if self._mla_blocks else None
        if block is None:
            ops += self._attention_ops(work)
        else:
            # one measured row for the MLA block: its GEMMs, kv_b and attention
            parts = [op for op in ops if op.name in MLA_BLOCK_GEMMS] + self._attention_ops(work)
            ops = [op for op in ops if op.name not in MLA_BLOCK_GEMMS]
            bound = max(parts, key=lambda op: op.time).bound
            flops, nbytes = sum(op.flops for op in parts), sum(op.bytes for op in parts)
            layers = self.model.num_layers
            ops.append(OpCost("mla_block", flops, nbytes, block[0], bound, layers, block[1]))
        gpu = sum(op.time for op in ops)
        host = self.overhead
        if self.host is not None:
            host = self.with_host(gpu, int(new.size), int(new.sum()) > new.size) - gpu
        # with a runtime: what its host work adds (launches not hidden, scheduling not overlapped)
        ops.append(OpCost("step_overhead", 0.0, 0.0, host, "overhead", 1, self.overhead_source))
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


# ---- where step models come from ---------------------------------------------------------------


_V = TypeVar("_V")


class _Lru(Generic[_V]):
    """A dict that forgets its least recently used entries beyond ``size``."""

    __slots__ = ("_items", "size")

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[Hashable, _V] = OrderedDict()
        self.size = size

    def get(self, key: Hashable) -> _V | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: Hashable, value: _V) -> None:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class StepModels:
    """The step models of one session (a scenario, a plan), memoised by the content of what
    they depend on — the model, the profile's every figure, the instance configuration and the
    calibration table — never by a name or an object's identity, so a scenario-local profile
    that shares a bundled one's name gets its own step model. Predictors are shared between the
    step models of one profile and table; tables read from a profile's file are cached by path,
    modification time and size."""

    __slots__ = ("_models", "_predictors", "_tables")

    def __init__(self, max_models: int = 256) -> None:
        self._models: _Lru[StepModel] = _Lru(max_models)
        self._predictors: _Lru[KernelCostPredictor] = _Lru(max_models)
        self._tables: _Lru[CalibrationTable] = _Lru(16)

    def __len__(self) -> int:
        return len(self._models)

    def for_pool(
        self,
        model: ModelConfig,
        profile: AcceleratorProfile,
        pool: PoolSpec,
        calibration: CalibrationTable | None = None,
    ) -> StepModel:
        """The step model of a pool's instances (measured when the pool names its runtime)."""
        return self.get(model, profile, InstanceConfig.from_pool(pool), calibration, pool.runtime)

    def get(
        self,
        model: ModelConfig,
        profile: AcceleratorProfile,
        config: InstanceConfig,
        calibration: CalibrationTable | None = None,
        runtime: str | None = None,
    ) -> StepModel:
        """The step model of one instance configuration; ``calibration`` defaults to the table
        the profile names, if any; a ``runtime`` selects the profile's measured tables."""
        table, table_key = self._calibration(profile, calibration)
        profile_key = profile.model_dump_json()
        # measured tables are cached by value in hetsim.perf.measured; the runtime keys them here
        key = (model, profile_key, config, table_key, runtime)
        found = self._models.get(key)
        if found is None:
            predictor = self._predictors.get((profile_key, table_key, runtime))
            if predictor is None:
                predictor = predictor_for(profile, table, runtime)
                self._predictors.put((profile_key, table_key, runtime), predictor)
            found = StepModel(model, profile, config, table, predictor, runtime)
            self._models.put(key, found)
        return found

    def _calibration(
        self, profile: AcceleratorProfile, calibration: CalibrationTable | None
    ) -> tuple[CalibrationTable | None, Hashable]:
        """The table to use and a key for its content."""
        if calibration is not None:
            return calibration, ("content", _table_digest(calibration))
        if not profile.calibration:
            return None, None
        # spec made a loaded profile's path absolute; a profile built in code is taken as given
        path = Path(profile.calibration)
        stat = path.stat() if path.is_file() else None  # a missing file: read_table says so
        key = ("file", str(path), getattr(stat, "st_mtime_ns", 0), getattr(stat, "st_size", 0))
        table = self._tables.get(key)
        if table is None:
            table = read_table(path)
            self._tables.put(key, table)
        return table, key


def _table_digest(table: CalibrationTable) -> str:
    """A hash of a table's rows and metadata."""
    digest = hashlib.sha256(
        pd.util.hash_pandas_object(table.rows, index=False).to_numpy().tobytes()
    )
    digest.update(json.dumps(table.meta, sort_keys=True, default=str).encode())
    return digest.hexdigest()


#: the step models of callers that keep no session of their own
_DEFAULT = StepModels()


def step_model_for_pool(
    model: ModelConfig,
    profile: AcceleratorProfile,
    pool: PoolSpec,
    calibration: CalibrationTable | None = None,
) -> StepModel:
    """The memoised step model of a pool's instances (one per distinct configuration), from a
    bounded module-wide :class:`StepModels`."""
    return _DEFAULT.for_pool(model, profile, pool, calibration)


def _run_ends(times: list[float], start: float, slow: float) -> tuple[list[float], list[float]]:
    """(each time times ``slow``, each end from ``start``): :meth:`StepModel.decode_run`'s
    result from steps priced one by one."""
    dts, ends = [], []
    t = start
    for d in times:
        dt = d * slow
        t += dt
        dts.append(dt)
        ends.append(t)
    return dts, ends
