"""Time of one speculative decode step: the target model verifies the drafts, the MTP module
drafts the next ones.

With ``k`` draft tokens a step runs the target model over ``k + 1`` tokens per sequence after
its cached context (the last kept token and the ``k`` drafts: :meth:`StepModel.step_time` with
``new = k + 1``), then ``k`` sequential passes of the model's multi-token-prediction module at
one token per sequence, as SGLang's and TRT-LLM's MTP workers run them (DeepSeek-V3's
``num_nextn_predict_layers = 1``: one module, run ``k`` times).

An MTP module is priced as one decoder layer of the model (a MoE layer for a MoE model) plus the
shared LM head, by a step model of a one-layer copy of the model on the same predictor; its
per-step fixed overhead is not charged again (the passes run inside the step's launch, CUDA
graphs on). Left out: the module's input projection (``eh_proj``, 2·hidden × hidden) and its
norms, small beside an expert layer; the drafts' own context growth within a step (≤ k tokens).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from hetsim.perf.ops import Kernel
from hetsim.perf.step import StepModel

__all__ = ["SpeculativeStep", "mtp_module_model", "speculative_step"]


def mtp_module_model(step_model: StepModel) -> StepModel:
    """A step model of one MTP module of ``step_model``'s model: one decoder layer (MoE where
    the model is) and the LM head, on the same accelerator, parallelism and predictor."""
    model = dataclasses.replace(step_model.model, num_layers=1, num_dense_layers=0)
    return StepModel(
        model,
        step_model.profile,
        step_model.config,
        step_model.calibration,
        step_model.cost,
        step_model.runtime,
    )


class SpeculativeStep:
    """Prices decode steps with ``tokens`` drafts per sequence on one instance's step model.

    The verify pass runs in decode mode, as the runtimes' MLA and paged-attention decode kernels
    run a query of ``k + 1`` positions (FlashMLA packs them into the head axis): every query
    position pays its GEMM rows, LM-head row, absorbed ``kv_b`` rows, indexer scores and
    attention FLOPs (position ``j`` attends ``context + j + 1`` tokens), while each sequence's
    cached KV is read once. Pricing it as a prefill chunk of ``k + 1`` tokens would decompress
    an MLA model's whole cached latent every step, which no runtime does. The token-count ops
    are the step model's own (memoised by token count); with ``tokens == 0`` the verify step
    is exactly the step model's decode step."""

    __slots__ = ("step_model", "tokens", "module", "_offsets")

    def __init__(self, step_model: StepModel, tokens: int) -> None:
        self.step_model = step_model
        self.tokens = tokens
        self.module = mtp_module_model(step_model)
        self._offsets = np.arange(tokens + 1, dtype=np.int64)

    def _attention(self, kernels: list[Kernel]) -> float:
        kernel = self.step_model.cost.kernel
        return self.step_model.model.num_layers * sum(kernel(k)[0] for k in kernels)

    def _verify_kernels(self, context: np.ndarray) -> list[Kernel]:
        """Per-layer attention kernels of ``k + 1`` query positions per sequence."""
        sm, q = self.step_model, self.tokens + 1
        ops = sm.ops
        # position j of sequence i attends context[i] + j + 1 tokens
        queries = (context[:, None] + self._offsets).ravel()
        kernels = ops.attention_kernels(ops.decode_work(queries))
        if q == 1:
            return kernels
        n, dp = int(context.size), sm.config.dp
        last = context + q
        once = np.minimum(last, sm.model.index_topk) if sm.model.is_sparse_attention else last
        kv_bytes = float(once.sum()) / dp * ops.kv_bytes_per_token_layer
        qo_bytes = 4.0 * n * q / dp * ops.heads_per_device * ops.decode_head_dim
        return [
            k._replace(
                bytes=kv_bytes + qo_bytes,
                shape={**k.shape, "batch": n / dp, "heads": float(k.shape["heads"]) * q},
            )
            if k.family == "attention_decode"
            else k
            for k in kernels
        ]

    def draft_time(self, context: np.ndarray) -> float:
        """Seconds of the ``k`` MTP passes over sequences with these cached lengths."""
        if context.size == 0 or self.tokens == 0:
            return 0.0
        # the passes run inside the step: no step overhead or host work of their own
        return self.tokens * self.module.decode_kernels_time(context)

    def step_time(
        self,
        context: np.ndarray,
        new: np.ndarray | None = None,
        cached: np.ndarray | None = None,
    ) -> float:
        """Seconds of one step: verify ``k + 1`` positions of each sequence with these cached
        lengths and draft ``k`` more, beside optional prefill chunks of ``new`` tokens after
        ``cached`` (a colocated step's prompts, a preempted sequence's recompute), which do
        not speculate."""
        tokens, seqs, kernels = self._step_kernels(context, new, cached)
        if seqs == 0:
            return 0.0
        gpu = self.step_model.token_ops_time(tokens, seqs) + self._attention(kernels)
        gpu += self.draft_time(context)
        # a named runtime's host work, as for a plain step
        return self.step_model.with_host(gpu, seqs, new is not None and bool(new.size))

    def _step_kernels(
        self, context: np.ndarray, new: np.ndarray | None, cached: np.ndarray | None
    ) -> tuple[int, int, list[Kernel]]:
        """A step's tokens, sequences (LM-head rows) and per-layer attention kernels."""
        q = self.tokens + 1
        tokens = seqs = int(context.size) * q
        kernels = self._verify_kernels(context) if context.size else []
        if new is not None and new.size:
            ops = self.step_model.ops
            cached = np.zeros_like(new) if cached is None else cached
            tokens += int(new.sum())
            seqs += int(new.size)
            kernels += ops.attention_kernels(ops.work(new, cached))
        return tokens, seqs, kernels

    def below_tdp(
        self,
        context: np.ndarray,
        new: np.ndarray | None = None,
        cached: np.ndarray | None = None,
    ) -> float:
        """Joules per device the step :meth:`step_time` prices draws below ``tdp × its time``
        (:meth:`~hetsim.perf.step.StepModel.below_tdp`): the verify pass's and the drafts'
        ops with measured power; 0 without."""
        sm = self.step_model
        if not sm.has_measured_power:
            return 0.0
        tokens, seqs, kernels = self._step_kernels(context, new, cached)
        if seqs == 0:
            return 0.0
        below = sm.token_ops_below_tdp(tokens) + sm.attention_below_tdp(kernels)
        if context.size and self.tokens:
            below += self.tokens * self.module.decode_below_tdp(context)
        return below

    def verify_time(self, context: np.ndarray) -> float:
        """Seconds of the target model alone over ``k + 1`` positions per sequence."""
        if context.size == 0:
            return 0.0
        q = int(context.size) * (self.tokens + 1)
        return self.step_model.token_ops_time(q, q) + self._attention(self._verify_kernels(context))


@functools.lru_cache(maxsize=64)
def speculative_step(step_model: StepModel, tokens: int) -> SpeculativeStep:
    """The shared :class:`SpeculativeStep` of a step model (its instances share it)."""
    return SpeculativeStep(step_model, tokens)
