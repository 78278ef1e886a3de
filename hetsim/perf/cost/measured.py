"""The measured predictor: NVIDIA's per-op kernel tables, interpolated in log space.

For each op whose family, format and shape family a table measured, the time is the table's
latency interpolated in log space (:class:`~hetsim.perf.measured.grid.LogGrid`): exact at the
measured points, never extrapolated. Outside the grid — or for an op no table covers — the op
falls back to the roofline at the profile's default efficiencies and records
``roofline-default``. Ops priced from a table record ``measured:<system>/<runtime>-<version>``.

How ops map onto tables:

* ``gemm`` (``m, n, k``, compute format ``bf16``/``fp8``/``fp4``) → the GEMM table; ``m`` may
  be fractional (tokens per data-parallel rank) and is interpolated like any point. An fp8 GEMM
  is read as its checkpoint scales the weights (:data:`~hetsim.spec.precision.FP8_SCALINGS`):
  ``block`` on the ``fp8_block`` rows (vLLM's were not read, see
  :mod:`~hetsim.perf.measured.tables`: there the dynamic ``fp8`` rows stand in),
  ``tensor_dynamic`` on the ``fp8`` rows, ``tensor`` (static activation scales) on the ``fp8``
  rows less the activation-scale computation they include
  (:meth:`~hetsim.perf.measured.tables.MeasuredTables.scale_computation`), never below the
  datasheet roofline; without the quantize tables such a GEMM falls back to the roofline.
* ``attention_prefill`` → context attention at (``batch``, ``seq_len``) for the exact
  (``heads``, ``kv_heads``, ``head_dim``, ``kv``) family; ``attention_decode`` → generation
  attention at (``batch``, ``context``). Needs ``kv_heads`` and ``kv`` in the kernel's shape;
  a prefill chunk after a cached prefix is priced as a full prompt of ``seq_len`` tokens. A
  dense MLA layer's attention (its shape names the latent geometry instead of KV heads) reads
  the MLA attention tables the same way, per (heads per device, ``kv``), where its geometry
  is the one they measured (DeepSeek-V3's).
* ``tp_allreduce`` and ``qk_norm_allreduce`` → the custom all-reduce table at (ranks, message
  elements).
* routed experts → the fused MoE table (:meth:`MeasuredPredictor.fused_experts`), one kernel
  per layer at (tokens entering the layer, hidden, expert intermediate, top-k, experts, moe tp,
  moe ep) for bf16 weights and activations, block-scaled fp8 or nvfp4 ones (per-tensor fp8
  weights stay on the roofline: the table's per-tensor rows are not read), or int4 weights
  with bf16 activations (w4a16, the table's ``int4_wo``), from the same runtime
  version as the other tables (a version without the MoE table prices them on the roofline as
  ``touched`` grouped GEMMs). The dense GEMM table never prices them: it would charge each
  expert's small GEMM a launch of its own.
* a dense MLA attention block with DeepSeek-V3's geometry (DeepSeek-V3/R1, Kimi K2 at its
  heads per device) → the MLA module tables (:meth:`MeasuredPredictor.mla_block`): the
  block's projections, ``kv_b``, attention and ``o_proj`` as one time per layer at (batch,
  attended tokens) for decode and (batch, prompt length) for prefill, per (heads per device,
  KV format, projection format). The step model uses it only when every phase of the step is
  inside the tables, in place of those GEMMs and attention; other MLA models (GLM-5's
  geometry, sparse attention) keep their GEMMs and roofline attention.
* elementwise passes, MoE all-to-all (the runtimes' measured all-to-all tables are DeepEP's, a
  backend vLLM runs only when asked to) and the step overhead stay on the roofline.

Board power (:meth:`MeasuredPredictor.kernel_power`): where the table set carries measured power
(:attr:`~hetsim.perf.measured.tables.MeasuredTables.power`, possibly from another version of
the same runtime, which its label names), an attention kernel or the fused MoE kernel draws the
power interpolated at its shape (log-space, exact at the measured points, never extrapolated);
every other op, and those outside the power grids, draw the profile's tdp (an assumption the
step model labels); so does a kernel whose time the tables did not measure (a draw pairs with a
measured time only).

Kernel floor: no kernel finishes faster than the shortest the tables measured on this system and
runtime (the smallest GEMM's latency: launch and scheduling of one kernel inside a CUDA graph,
~2.4 us on H100/H200, ~1.8 us on B200). Roofline-priced ops, each one kernel call, are charged at
least that (the op is then labelled with the tables' source, which set its time): a decode step's
fused elementwise passes are latency-bound, not bandwidth-bound.

Mixed provenance: a step model's :attr:`provenance` is the measured label when a table set is
loaded, even though some of its ops may be ``roofline-default``; each op of
:meth:`~hetsim.perf.step.StepModel.explain_step` says which source priced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hetsim.perf.cost.base import (
    Bound,
    MeasuredSource,
    Provenance,
    Source,
)
from hetsim.perf.cost.roofline import RooflinePredictor
from hetsim.perf.cost.tabled import GROUPED_GEMMS, TableBacked
from hetsim.perf.measured.grid import LogGrid
from hetsim.perf.measured.tables import MeasuredTables
from hetsim.perf.ops import Collective, Kernel
from hetsim.perf.transferred import peak_time
from hetsim.spec.hardware import AcceleratorProfile

__all__ = ["FusedExpertsPricer", "MeasuredPredictor", "MlaBlockPricer", "PowerPricer"]

#: (compute format, weight format) of a fused MoE kernel or an MLA block's projections ->
#: the format the MoE and MLA module tables name
_QUANT_FORMATS = {("bf16", "bf16"): "bf16", ("fp8", "fp8_e4m3"): "fp8", ("fp4", "fp4"): "fp4"}
#: the fused MoE table also measured int4 weight-only experts (bf16 compute): hetsim's w4a16
_MOE_FORMATS = {**_QUANT_FORMATS, ("bf16", "w4a16"): "w4a16"}


@runtime_checkable
class FusedExpertsPricer(Protocol):
    """A predictor that measured the routed experts as one fused kernel (the others price them
    as grouped GEMMs)."""

    def fused_experts(self, k: Kernel) -> tuple[float, Source] | None:
        """(seconds, source) of one call of the fused MoE kernel ``k``
        (:meth:`~hetsim.perf.ops.OpInventory.fused_experts`), or None where not measured."""
        ...


@runtime_checkable
class PowerPricer(Protocol):
    """A predictor whose tables measured the board power of some kernels."""

    def kernel_power(self, k: Kernel) -> tuple[float, float | None]:
        """``kernel(k)``'s seconds and the watts a call draws where the tables measured both
        its time and its power at that shape, else None (the caller charges tdp);
        :meth:`power_source` labels it."""
        ...

    def draw(self, k: Kernel) -> float | None:
        """Watts the power grid gives ``k`` at its shape, or None, for a kernel whose measured
        time the caller has (the fused MoE kernel, :meth:`FusedExpertsPricer.fused_experts`)."""
        ...

    def power_source(self, k: Kernel) -> str | None:
        """The ``measured-power:<…>`` label of ``k``'s power grid where its family, format and
        geometry have one (at any shape), else None."""
        ...


#: the MLA geometry the module tables measured (DeepSeek-V3's)
_MLA_MODULE_GEOMETRY = (
    ("hidden", 7168),
    ("q_lora_rank", 1536),
    ("kv_lora_rank", 512),
    ("qk_nope_head_dim", 128),
    ("qk_rope_head_dim", 64),
    ("v_head_dim", 128),
)


#: the MLA latent geometry the attention-only tables measured (their collectors fix it)
_MLA_ATTENTION_GEOMETRY = _MLA_MODULE_GEOMETRY[2:]


@runtime_checkable
class MlaBlockPricer(Protocol):
    """A predictor that measured whole MLA attention blocks (projections and attention)."""

    def mla_block(self, k: Kernel) -> tuple[float, Source] | None:
        """(seconds, source) of one layer's MLA block ``k``
        (:meth:`~hetsim.perf.ops.OpInventory.mla_blocks`), or None where not measured."""
        ...


@dataclass(frozen=True, eq=False)
class MeasuredPredictor(TableBacked):
    """One table set on one profile (whose roofline prices what the tables do not cover)."""

    tables: MeasuredTables
    fallback: RooflinePredictor
    source: MeasuredSource
    profile: AcceleratorProfile  # its datasheet peaks bound what a table difference may claim
    eager_elementwise: bool = False
    floor: float = 0.0  # seconds: the shortest kernel the tables measured
    _memo: dict[tuple, tuple[float, Bound, Source]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, profile: AcceleratorProfile, tables: MeasuredTables) -> MeasuredPredictor:
        floor = float(tables.rows["gemm"]["latency"].min())
        fallback, source = RooflinePredictor.of(profile), MeasuredSource(tables.label)
        return cls(tables, fallback, source, profile, floor=floor)

    def _price(self, k: Kernel) -> tuple[float, Bound, Source]:
        t = self._lookup(k)
        if t is None:
            return self._floored(k, self.fallback.kernel(k), self.floor)
        # the bound the roofline would name: a measured time has no bound of its own
        return t, self.fallback.kernel(k)[1], self.source

    def _lookup(self, k: Kernel) -> float | None:
        s, tables = k.shape, self.tables
        if k.family == "gemm":
            return None if k.name in GROUPED_GEMMS else self._gemm(k)
        if k.family not in ("attention_prefill", "attention_decode"):
            return None
        if "kv_lora_rank" in s:
            return self._mla_attention(k)
        family = _attention_family(s) if "kv_heads" in s else None
        if family is None:
            return None
        if k.family == "attention_prefill":
            grid = tables.context.get(family)
            return None if grid is None else grid(s["batch"], s["seq_len"])
        grid = tables.generation.get(family)
        return None if grid is None else grid(s["batch"], s["context"])

    def _gemm(self, k: Kernel) -> float | None:
        """A dense GEMM: an fp8 one as its weights are scaled (``scales``). Block-scaled on the
        block rows where the version has them (vLLM's were not read, and collections before
        them measured none: there the dynamic rows, the nearest graph-timed fp8 kernel, stand
        in), static per-tensor on the dynamic rows less their scale computation (never below
        the datasheet roofline), dynamic on those rows."""
        s, tables = k.shape, self.tables
        scales = s.get("scales")
        block = scales == "block" and "fp8_block" in tables.gemm
        grid = tables.gemm.get("fp8_block" if block else k.dtype)
        t = None if grid is None else grid(s["m"], s["n"], s["k"])
        if t is None or scales != "tensor":
            return t
        computing = tables.scale_computation(s["m"], s["k"])
        if computing is None:
            return None
        return max(t - computing, peak_time(self.profile, k.dtype, k.flops, k.bytes))

    def _mla_attention(self, k: Kernel) -> float | None:
        """A dense MLA layer's attention kernel from the MLA attention tables, for the
        geometry they measured (DeepSeek-V3's latent)."""
        s = k.shape
        if any(s[n] != v for n, v in _MLA_ATTENTION_GEOMETRY):
            return None
        if k.family == "attention_prefill":
            grids, point = self.tables.mla_context_attention, (s["batch"], s["seq_len"])
        else:
            grids, point = self.tables.mla_generation_attention, (s["batch"], s["context"])
        return _across_heads(grids, float(s["heads"]), str(s["kv"]), point)

    def fused_experts(self, k: Kernel) -> tuple[float, Source] | None:
        s = k.shape
        fmt = _table_format(k, _MOE_FORMATS)
        if fmt is None:
            return None
        key = (fmt, *(int(s[a]) for a in ("hidden", "inter", "topk", "experts", "tp", "ep")))
        grid = self.tables.moe.get(key)  # type: ignore[arg-type]
        t = None if grid is None else grid(float(s["tokens"]))
        if t is None:
            return None
        # measured under balanced routing; hetsim routes uniformly at random, touching fewer
        # experts: scale by the two routings' roofline times (1 where compute-bound)
        balanced = k._replace(bytes=float(s.get("balanced_bytes", k.bytes)))
        return t * self.fallback.kernel(k)[0] / self.fallback.kernel(balanced)[0], self.source

    def mla_block(self, k: Kernel) -> tuple[float, Source] | None:
        s = k.shape
        fmt = _table_format(k, _QUANT_FORMATS)
        heads = float(s["heads"])
        if fmt is None or heads != int(heads):
            return None
        for name, value in _MLA_MODULE_GEOMETRY:
            if s[name] != value:
                return None
        grids = self.tables.mla_generation if k.family == "mla_decode" else self.tables.mla_context
        grid = grids.get((int(heads), str(s["kv"]), fmt))
        t = None if grid is None else grid(float(s["batch"]), float(s["length"]))
        return None if t is None else (t, self.source)

    def _power_grid(self, k: Kernel):
        """The power grid of ``k`` and the point it is read at, or None."""
        s, grids = k.shape, self.tables.power
        if k.family == "moe":
            fmt = _table_format(k, _QUANT_FORMATS)
            if fmt is None or "moe" not in grids:
                return None
            key = (fmt, *(int(s[a]) for a in ("hidden", "inter", "topk", "experts", "tp", "ep")))
            grid = grids["moe"].get(key)
            return None if grid is None else (grid, "moe", (float(s["tokens"]),))
        if k.family not in ("attention_prefill", "attention_decode") or "kv_heads" not in s:
            return None
        family = _attention_family(s)
        name = "context" if k.family == "attention_prefill" else "generation"
        grid = None if family is None else grids.get(name, {}).get(family)
        if grid is None:
            return None
        length = s["seq_len"] if k.family == "attention_prefill" else s["context"]
        return grid, name, (s["batch"], length)

    def kernel_power(self, k: Kernel) -> tuple[float, float | None]:
        # a draw is paired with a measured time only: where the roofline (or another version's
        # wider grid) prices the kernel, its power stays the tdp assumption. The memoised price
        # says which: a measured time carries the tables' source
        t, _, source = self.kernel(k)
        return t, (self.draw(k) if source == self.source else None)

    def draw(self, k: Kernel) -> float | None:
        found = self._power_grid(k)
        return None if found is None else found[0](*found[2])

    def power_source(self, k: Kernel) -> str | None:
        found = self._power_grid(k)
        return None if found is None else self.tables.power_label(found[1])

    def collective(self, c: Collective, ranks: int) -> tuple[float, Source]:
        if c.is_allreduce and c.bytes:
            grid = self.tables.allreduce.get(ranks)
            t = None if grid is None else grid(c.table_message(ranks, grid.axes[0][0]))
            if t is not None:
                return t, self.source
        return self.link.time(c.bytes, c.latencies), Provenance.ROOFLINE_DEFAULT

    def roofline_rates(self, dtype: str) -> None:
        return None  # measured attention has no closed form in the batch's context sum

    def step_overhead(self, modeled_kernels_per_layer: int, layers: int) -> tuple[float, Source]:
        # the kernel tables hold no per-step runtime overhead: the profile's assumed one stands
        return self.fallback.step_overhead(modeled_kernels_per_layer, layers)


def _across_heads(
    grids: dict[tuple[int, str], LogGrid], heads: float, kv: str, point: tuple[float, float]
) -> float | None:
    """The time at ``point`` for ``heads`` query heads: the grid of that head count, else
    log-interpolated between the nearest measured counts around it (a speculative verify step
    attends with the heads times the positions it checks), never beyond them."""
    found = grids.get((int(heads), kv)) if heads == int(heads) else None
    if found is not None:
        return found(*point)
    counts = sorted(h for h, f in grids if f == kv)
    below = [h for h in counts if h < heads]
    above = [h for h in counts if h > heads]
    if not below or not above:
        return None
    lo, hi = below[-1], above[0]
    t_lo, t_hi = grids[(lo, kv)](*point), grids[(hi, kv)](*point)
    if t_lo is None or t_hi is None:
        return None
    w = (math.log(heads) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return math.exp((1 - w) * math.log(t_lo) + w * math.log(t_hi))


def _table_format(k: Kernel, formats: dict[tuple[str, str], str]) -> str | None:
    """The format the MoE and MLA module tables name for a fused kernel: their fp8 rows are
    block-scaled (the per-tensor ones are not read), so per-tensor fp8 weights have none."""
    if k.shape.get("scales", "block") != "block":
        return None
    return formats.get((k.dtype, str(k.shape["weights"])))


def _attention_family(s: dict[str, float]) -> tuple[int, int, int, str] | None:
    """The table family of an attention shape; None where heads split unevenly over ranks."""
    heads, kv_heads = s["heads"], s["kv_heads"]
    if heads != int(heads) or kv_heads != int(kv_heads):
        return None
    return (int(heads), int(kv_heads), int(s["head_dim"]), str(s["kv"]))
