"""A small Llama-like decoder in eager PyTorch, with random weights, for the model-level check.

``hetsim validate`` predicts prefill and decode steps of this model from a calibration table and
compares them with the times measured here. The architecture is the Llama/Qwen3 family's:
token embedding, then per layer RMSNorm → fused QKV projection → rotary position embedding →
grouped-query attention (``scaled_dot_product_attention``) → output projection → residual, and
RMSNorm → fused gate/up projection → SiLU(gate)·up → down projection → residual; a final
RMSNorm and an untied LM head. Like a serving engine, it computes logits only for the last
token of each sequence, and decode steps read a preallocated KV cache.

The size (:func:`reference_config`) is chosen for a small CPU: a 2048-token prefill takes about
a second in fp32 on two cores.

Importing this module needs PyTorch (an :class:`ImportError` otherwise).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "reference_config",
    "ReferenceModel",
    "time_reference_model",
    "ops_per_layer",
    "PREFILL_TOKENS",
    "DECODE_BATCHES",
    "DECODE_CONTEXT",
]

#: prefill cases (tokens of one sequence, no cached context) of the default run
PREFILL_TOKENS = (128, 256, 512, 1024, 2048)
#: decode cases (sequences in the batch, one new token each) of the default run ...
DECODE_BATCHES = (1, 2, 4, 8, 16, 32)
#: ... each sequence with this many tokens already in its KV cache
DECODE_CONTEXT = 512

_QUICK_PREFILL = (64, 256)
_QUICK_BATCHES = (1, 8)
_QUICK_CONTEXT = 128

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def reference_config() -> dict[str, Any]:
    """The model as a Hugging Face ``config.json`` mapping (``ModelConfig.from_hf_config``)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 512,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "intermediate_size": 1536,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }


class _Layer:
    def __init__(self, cfg: dict[str, Any], dtype: torch.dtype, gen: torch.Generator) -> None:
        h, d = cfg["hidden_size"], cfg["head_dim"]
        heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        inter = cfg["intermediate_size"]

        def weight(rows: int, cols: int) -> torch.Tensor:
            return (torch.randn(rows, cols, generator=gen) * 0.02).to(dtype)

        self.attn_norm = torch.ones(h, dtype=dtype)
        self.qkv = weight((heads + 2 * kv) * d, h)
        self.o = weight(h, heads * d)
        self.mlp_norm = torch.ones(h, dtype=dtype)
        self.gate_up = weight(2 * inter, h)
        self.down = weight(h, inter)


class ReferenceModel:
    """Random-weight decoder; :meth:`prefill` and :meth:`decode` run one serving step each."""

    def __init__(
        self, config: dict[str, Any] | None = None, dtype: str = "fp32", seed: int = 0
    ) -> None:
        cfg = dict(config or reference_config())
        self.cfg = cfg
        self.dtype_key = dtype
        self.dtype = _DTYPES[dtype]
        gen = torch.Generator().manual_seed(seed)
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg["num_key_value_heads"]
        self.head_dim = cfg["head_dim"]
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        vocab = cfg["vocab_size"]
        self.embed = (torch.randn(vocab, self.hidden, generator=gen) * 0.02).to(self.dtype)
        self.layers = [_Layer(cfg, self.dtype, gen) for _ in range(cfg["num_hidden_layers"])]
        self.final_norm = torch.ones(self.hidden, dtype=self.dtype)
        self.lm_head = (torch.randn(vocab, self.hidden, generator=gen) * 0.02).to(self.dtype)
        # rotary tables (rotate-half convention), one row per position
        d = self.head_dim
        theta = float(cfg.get("rope_theta", 10000.0))
        inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
        positions = torch.arange(cfg["max_position_embeddings"], dtype=torch.float32)
        freqs = torch.outer(positions, inv_freq)
        angles = torch.cat([freqs, freqs], dim=-1)
        self.cos = angles.cos().to(self.dtype)
        self.sin = angles.sin().to(self.dtype)

    # -- building blocks ------------------------------------------------------------------------

    def _rms_norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * scale * weight

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def _qkv(
        self, layer: _Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projected, rotated q, k and v as (batch, tokens, heads, head_dim)."""
        b, t, _ = x.shape
        d, nq, nkv = self.head_dim, self.heads, self.kv_heads
        qkv = F.linear(self._rms_norm(x, layer.attn_norm), layer.qkv)
        q, k, v = qkv.split([nq * d, nkv * d, nkv * d], dim=-1)
        q = self._rope(q.view(b, t, nq, d), cos, sin)
        k = self._rope(k.view(b, t, nkv, d), cos, sin)
        return q, k, v.view(b, t, nkv, d)

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        gate, up = F.linear(self._rms_norm(x, layer.mlp_norm), layer.gate_up).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, layer.down)

    def _logits(self, last: torch.Tensor) -> torch.Tensor:
        return F.linear(self._rms_norm(last, self.final_norm), self.lm_head)

    # -- one layer of one step ------------------------------------------------------------------

    def prefill_layer(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        """One layer over whole prompts (no cached context): causal attention within each."""
        b, t, _ = x.shape
        cos = self.cos[:t].unsqueeze(1)
        sin = self.sin[:t].unsqueeze(1)
        q, k, v = self._qkv(layer, x, cos, sin)
        attn = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            is_causal=True,
            enable_gqa=True,
        )
        x = x + F.linear(attn.transpose(1, 2).reshape(b, t, self.heads * self.head_dim), layer.o)
        return self._mlp(layer, x)

    def decode_layer(
        self, layer: _Layer, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor], pos: int
    ) -> torch.Tensor:
        """One layer for one new token per sequence at position ``pos`` (the cached length):
        the token's K/V go into the cache, then its query heads attend the whole cache. The
        query heads sharing a KV head are laid out as that head's query rows (no K/V copy)."""
        b = x.shape[0]
        d, nkv = self.head_dim, self.kv_heads
        cos = self.cos[pos : pos + 1].unsqueeze(1)
        sin = self.sin[pos : pos + 1].unsqueeze(1)
        q, k, v = self._qkv(layer, x, cos, sin)
        k_cache, v_cache = cache
        k_cache[:, :, pos : pos + 1] = k.transpose(1, 2)
        v_cache[:, :, pos : pos + 1] = v.transpose(1, 2)
        grouped = q.view(b, nkv, self.heads // nkv, d)
        attn = F.scaled_dot_product_attention(
            grouped, k_cache[:, :, : pos + 1], v_cache[:, :, : pos + 1]
        )
        x = x + F.linear(attn.reshape(b, 1, self.heads * d), layer.o)
        return self._mlp(layer, x)

    # -- whole steps ----------------------------------------------------------------------------

    def prefill(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prefill of ``tokens`` (batch, length): logits of each sequence's last token."""
        x = F.embedding(tokens, self.embed)
        for layer in self.layers:
            x = self.prefill_layer(layer, x)
        return self._logits(x[:, -1])

    def new_cache(self, batch: int, context: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (K, V) of ``batch × kv_heads × (context + 1) × head_dim``, filled randomly
        up to ``context`` (the tokens already cached)."""
        shape = (batch, self.kv_heads, context + 1, self.head_dim)
        return [
            (torch.randn(shape).to(self.dtype), torch.randn(shape).to(self.dtype))
            for _ in self.layers
        ]

    def decode(
        self, tokens: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]], pos: int
    ) -> torch.Tensor:
        """One decode step: ``tokens`` (batch,) at position ``pos``; logits (batch, vocab)."""
        x = F.embedding(tokens.unsqueeze(1), self.embed)
        for layer, kv in zip(self.layers, cache, strict=True):
            x = self.decode_layer(layer, x, kv, pos)
        return self._logits(x[:, -1])


# ---- timing -----------------------------------------------------------------------------------


def _time(fn: Callable[[], Any], min_repeats: int, min_time_s: float) -> tuple[float, float, int]:
    fn()  # warm-up
    samples: list[float] = []
    while len(samples) < min_repeats or (sum(samples) < min_time_s and len(samples) < 50):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    std = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return statistics.median(samples), std, len(samples)


def time_reference_model(
    quick: bool = False,
    dtype: str = "fp32",
    prefill_tokens: tuple[int, ...] | None = None,
    decode_batches: tuple[int, ...] | None = None,
    context: int | None = None,
) -> pd.DataFrame:
    """Time prefill and decode steps of the reference model under ``torch.inference_mode``.

    One row per case: ``phase`` (prefill/decode), ``batch``, ``new_tokens`` (per sequence),
    ``context`` (cached tokens per sequence before the step), ``time_s`` (median over repeats,
    the faster of two passes as in the calibration sweep),
    ``time_std_s``, ``repeats`` and ``dtype``. Prefill: one sequence of 128…2048 tokens with
    nothing cached. Decode: 1…32 sequences, one new token each, over ``DECODE_CONTEXT`` cached
    tokens. ``attrs`` carry the config, the torch version and threads, and
    :func:`ops_per_layer` of both phases.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
    prefill_tokens = prefill_tokens or (_QUICK_PREFILL if quick else PREFILL_TOKENS)
    decode_batches = decode_batches or (_QUICK_BATCHES if quick else DECODE_BATCHES)
    context = context or (_QUICK_CONTEXT if quick else DECODE_CONTEXT)
    min_repeats, min_time = (2, 0.02) if quick else (3, 0.3)
    model = ReferenceModel(dtype=dtype)
    vocab = model.cfg["vocab_size"]
    gen = torch.Generator().manual_seed(1)
    # like the calibration sweep: every case is timed once per pass and keeps its faster
    # pass, so that predictions and measurements treat the machine's drift alike
    best: dict[tuple, tuple] = {}
    with torch.inference_mode():
        for _ in range(1 if quick else 2):
            for tokens in prefill_tokens:
                ids = torch.randint(0, vocab, (1, tokens), generator=gen)
                t, std, n = _time(lambda ids=ids: model.prefill(ids), min_repeats, min_time)
                key = ("prefill", 1, tokens, 0)
                if key not in best or t < best[key][0]:
                    best[key] = (t, std, n)
            for batch in decode_batches:
                cache = model.new_cache(batch, context)
                ids = torch.randint(0, vocab, (batch,), generator=gen)
                t, std, n = _time(
                    lambda ids=ids, cache=cache: model.decode(ids, cache, context),
                    min_repeats,
                    min_time,
                )
                key = ("decode", batch, 1, context)
                if key not in best or t < best[key][0]:
                    best[key] = (t, std, n)
                del cache
    rows = [(*key, *value) for key, value in best.items()]
    frame = pd.DataFrame(
        rows, columns=["phase", "batch", "new_tokens", "context", "time_s", "time_std_s", "repeats"]
    )
    frame["dtype"] = dtype
    frame.attrs.update(
        config=model.cfg,
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        ops_per_layer={
            "prefill": ops_per_layer("prefill", model=model),
            "decode": ops_per_layer("decode", model=model),
        },
    )
    return frame


# ---- counting dispatched ops ------------------------------------------------------------------


class _TorchCalls(TorchFunctionMode):
    """Counts the torch API calls Python makes (functions, tensor methods, indexing)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", str(func))
        if name not in _NOT_OPS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


#: attribute reads that pass through the torch-function hook but dispatch nothing
_NOT_OPS = {"__get__", "shape", "dim", "size", "dtype", "device", "is_floating_point"}


class _AtenCalls(TorchDispatchMode):
    """Counts the ATen operators that reach a backend kernel (after decompositions)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.counts[str(func.overloadpacket.__name__)] += 1
        if getattr(func, "is_view", False):
            self.views += 1
        return func(*args, **(kwargs or {}))


def ops_per_layer(
    phase: str = "decode", model: ReferenceModel | None = None, tokens: int = 16, batch: int = 4
) -> dict[str, Any]:
    """Ops one decoder layer dispatches in one ``phase`` step, counted two ways.

    ``total`` — the torch calls Python makes in the layer (functions such as ``F.linear`` and
    ``torch.rsqrt``, tensor methods such as ``view``/``transpose``/``split``, and slice reads and
    writes), counted with a :class:`~torch.overrides.TorchFunctionMode`: each pays the eager
    per-op dispatch cost that the calibration's ``launch`` kernel (one ``torch.add`` of
    1-element tensors) measures. ``aten`` — the ATen operators those calls reach, counted with a
    ``TorchDispatchMode`` (``F.linear`` on a 3-D input, for instance, is a view, a matmul and a
    view there), with ``aten_views`` of them views that launch no kernel. The counts do not
    depend on the shapes (``tokens``, ``batch`` only size the probe).
    """
    if phase not in ("prefill", "decode"):
        raise ValueError(f"phase must be prefill or decode, not {phase!r}")
    model = model or ReferenceModel(config=_tiny_config())
    layer = model.layers[0]
    with torch.inference_mode():
        if phase == "prefill":
            x = torch.randn(1, tokens, model.hidden).to(model.dtype)

            def run() -> Any:
                return model.prefill_layer(layer, x)
        else:
            x = torch.randn(batch, 1, model.hidden).to(model.dtype)
            cache = model.new_cache(batch, tokens)[0]

            def run() -> Any:
                return model.decode_layer(layer, x, cache, tokens)

        run()
        with _TorchCalls() as calls:
            run()
        with _AtenCalls() as aten:
            run()
    return {
        "phase": phase,
        "total": int(sum(calls.counts.values())),
        "by_call": dict(sorted(calls.counts.items())),
        "aten": int(sum(aten.counts.values())),
        "aten_views": int(aten.views),
        "by_aten_op": dict(sorted(aten.counts.items())),
    }


def _tiny_config() -> dict[str, Any]:
    """The reference architecture at a tiny size: op counts do not depend on sizes."""
    return {
        **reference_config(),
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "head_dim": 8,
        "intermediate_size": 96,
        "vocab_size": 128,
        "max_position_embeddings": 64,
    }
