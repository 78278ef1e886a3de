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

import numpy as np

from hetsim.perf.ops import Kernel
from hetsim.perf.step import StepModel

__all__ = ["SpeculativeStep", "mtp_module_model"]


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
    are memoised per batch size; with ``tokens == 0`` the verify step is exactly the step
    model's decode step."""

    __slots__ = ("step_model", "tokens", "module", "_module_overhead", "_linear", "_offsets")

    def __init__(self, step_model: StepModel, tokens: int) -> None:
        self.step_model = step_model
        self.tokens = tokens
        self.module = mtp_module_model(step_model)
        self._module_overhead = self.module.overhead
        self._linear: dict[int, float] = {}
        self._offsets = np.arange(tokens + 1, dtype=np.int64)

    def _attention(self, kernels: list[Kernel]) -> float:
        kernel = self.step_model.cost.kernel
        return self.step_model.model.num_layers * sum(kernel(k)[0] for k in kernels)

    def _linear_time(self, rows: int) -> float:
        """Seconds of everything but attention for ``rows`` query tokens (one LM-head row each),
        overhead included: a decode step of ``rows`` empty sequences less its attention."""
        found = self._linear.get(rows)
        if found is None:
            sm = self.step_model
            empty = np.zeros(rows, dtype=np.int64)
            found = sm.decode_time(empty) - self._attention(
                sm.ops.attention_kernels(sm.ops.decode_work(empty))
            )
            self._linear[rows] = found
        return found

    def verify_time(self, context: np.ndarray) -> float:
        """Seconds of the target model over ``k + 1`` query positions per sequence after these
        cached lengths."""
        n = int(context.size)
        if n == 0:
            return 0.0
        sm, q = self.step_model, self.tokens + 1
        ops = sm.ops
        # position j of sequence i attends context[i] + j + 1 tokens
        queries = (context[:, None] + self._offsets).ravel()
        kernels = ops.attention_kernels(ops.decode_work(queries))
        if q > 1:
            dp = sm.config.dp
            last = context + q
            topk = sm.model.index_topk
            once = float((np.minimum(last, topk) if sm.model.is_sparse_attention else last).sum())
            kernels = [
                k._replace(
                    bytes=once / dp * ops.kv_bytes_per_token_layer
                    + 4.0 * n * q / dp * ops.heads_per_device * ops.decode_head_dim,
                    shape={**k.shape, "batch": n / dp, "heads": k.shape["heads"] * q},
                )
                if k.family == "attention_decode"
                else k
                for k in kernels
            ]
        return self._linear_time(n * q) + self._attention(kernels)

    def draft_time(self, context: np.ndarray) -> float:
        """Seconds of the ``k`` MTP passes over sequences with these cached lengths."""
        if context.size == 0 or self.tokens == 0:
            return 0.0
        per_pass = self.module.decode_time(context) - self._module_overhead
        return self.tokens * per_pass

    def step_time(self, context: np.ndarray) -> float:
        """Seconds of one speculative decode step: verify ``k + 1`` tokens per sequence, then
        draft ``k``."""
        return self.verify_time(context) + self.draft_time(context)
