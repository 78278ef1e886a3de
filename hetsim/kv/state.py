"""The Runtime KV State: what crosses the prefill/decode boundary for one request.

The seed paper's Runtime KV State is the KV tensor plus everything a consumer must know to use it:
its *format* (numeric format and scales, memory layout, page size, tensor-parallel partition), its
*metadata* (which model, tokenizer and adapter produced it, which tokens it covers), its
*residency* (tier and instance) and its *owner*. :class:`KVState` records exactly that for one
request on one side, as plain immutable data; :mod:`hetsim.kv.portability` compares two of them.

Bytes follow :meth:`hetsim.spec.model.ModelConfig.kv_bytes_per_token` (GQA: K and V per KV head per
layer; MLA: one latent + rope vector per layer; scale and zero-point bytes of quantized formats
included). ``bytes_per_token`` counts the KV once, however many ranks hold copies of it;
``bytes_per_token_per_rank`` is what one rank of the TP group stores, as in
:func:`hetsim.spec.footprint.kv_bytes_per_token_per_device`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from typing import Literal

from hetsim.spec.model import ModelConfig
from hetsim.spec.precision import get_format
from hetsim.spec.scenario import PoolSpec

__all__ = [
    "KVState",
    "ModelIdentity",
    "Tokenizer",
    "Geometry",
    "TPPartition",
    "Residency",
    "Layout",
    "model_config_hash",
]

Layout = Literal["NHD", "HND"]

#: ModelConfig fields that are bookkeeping, not shape: left out of the config hash
_NOT_SHAPE = {"name", "source", "raw"}


def model_config_hash(model: ModelConfig) -> str:
    """A short sha256 of the model's cost-relevant shape (every ModelConfig field but its name
    and where it was read from): two configs with the same hash lay out KV identically."""
    shape = {f.name: getattr(model, f.name) for f in fields(model) if f.name not in _NOT_SHAPE}
    text = json.dumps(shape, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelIdentity:
    """Which model computed the KV. ``name`` and ``config_hash`` are invariants at the boundary;
    a different ``weight_format`` (e.g. int8 prefill, fp8 decode — the seed case) keeps the KV's
    shape and meaning and is reported as a numerics warning, not an incompatibility."""

    name: str
    config_hash: str
    weight_format: str


@dataclass(frozen=True)
class Tokenizer:
    """The tokenizer the token ids come from: the model name stands in for it, with its
    vocabulary size (hetsim reads no tokenizer files)."""

    name: str
    vocab_size: int


@dataclass(frozen=True)
class Geometry:
    """Per-token KV shape. GQA: ``kv_heads`` heads of ``head_dim``, K and V each. MLA: one shared
    latent vector of ``kv_lora_rank + rope_dim`` per layer (``kv_heads`` = 1, ``head_dim`` = that
    width), as :class:`~hetsim.spec.model.ModelConfig` reports it."""

    layers: int
    attention: Literal["gqa", "mla"]
    kv_heads: int
    head_dim: int
    kv_lora_rank: int = 0
    rope_dim: int = 0

    @classmethod
    def of(cls, model: ModelConfig) -> Geometry:
        return cls(
            layers=model.num_layers,
            attention="mla" if model.is_mla else "gqa",
            kv_heads=model.num_kv_heads,
            head_dim=model.head_dim,
            kv_lora_rank=model.kv_lora_rank,
            rope_dim=model.qk_rope_head_dim if model.is_mla else 0,
        )

    @property
    def is_mla(self) -> bool:
        return self.attention == "mla"

    @property
    def vectors_per_token_per_layer(self) -> tuple[int, int]:
        """(vectors, length), as ``ModelConfig.kv_vectors_per_token_per_layer``."""
        if self.is_mla:
            return 1, self.kv_lora_rank + self.rope_dim
        return 2 * self.kv_heads, self.head_dim

    def bytes_per_token(self, kv_format: str) -> float:
        """KV bytes per token over all layers in ``kv_format``, scales included — the same
        formula as ``ModelConfig.kv_bytes_per_token``."""
        vectors, length = self.vectors_per_token_per_layer
        fmt = get_format(kv_format, "kv", vector_length=length)
        return self.layers * vectors * fmt.bytes_for_vector(length)


@dataclass(frozen=True)
class TPPartition:
    """How the KV of one request is spread over the ``tp`` ranks of an instance.

    GQA: KV heads are split over the ranks, ``heads_per_rank`` each; past ``tp = kv_heads`` every
    head is replicated on ``replicas`` ranks. MLA: the latent is not split by head — every rank
    holds the whole latent (``split_by_head`` False, ``replicas`` = ``tp``).
    """

    tp: int
    heads_per_rank: float
    replicas: int
    split_by_head: bool

    @classmethod
    def of(cls, geometry: Geometry, tp: int) -> TPPartition:
        if geometry.is_mla:
            return cls(tp=tp, heads_per_rank=1, replicas=tp, split_by_head=False)
        heads = geometry.kv_heads
        return cls(
            tp=tp,
            heads_per_rank=max(1.0, heads / tp),
            replicas=max(1, tp // heads),
            split_by_head=True,
        )


@dataclass(frozen=True)
class Residency:
    """Where this copy of the KV lives: ``hbm`` (device memory), a ``kv.tiers`` name, or
    ``transfer`` (in flight, in the transfer format); ``instance`` names the pool (or instance)."""

    tier: str
    instance: str | None = None


@dataclass(frozen=True)
class KVState:
    """The Runtime KV State of one request (or one pool's view of it) at the boundary.

    Invariants a consumer must share with the producer: ``model`` name and config hash,
    ``tokenizer``, ``adapter``, the token range and ``geometry``. Convertible representation:
    ``kv_format`` (with its ``scale_granularity``), ``layout``, ``page_tokens`` and the ``tp``
    partition. Bookkeeping: ``residency`` and ``owner``.
    """

    model: ModelIdentity
    tokenizer: Tokenizer
    adapter: str | None
    token_start: int
    token_end: int
    geometry: Geometry
    kv_format: str
    scale_granularity: str
    layout: Layout
    page_tokens: int
    tp: TPPartition
    residency: Residency
    owner: str | None
    #: KV bytes per token in ``kv_format``, counted once (not per replica), scales included
    bytes_per_token: float

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def for_pool(
        cls,
        model: ModelConfig,
        pool: PoolSpec,
        tokens: int,
        *,
        start: int = 0,
        instance: str | None = None,
        owner: str | None = None,
        adapter: str | None = None,
        tier: str = "hbm",
    ) -> KVState:
        """The KV of ``tokens`` tokens (from ``start``) as ``pool`` stores it in device memory:
        the pool's KV format, layout, page size and TP degree. ``owner`` defaults to the pool."""
        geometry = Geometry.of(model)
        return cls(
            model=ModelIdentity(model.name, model_config_hash(model), pool.precision.weights),
            tokenizer=Tokenizer(model.name, model.vocab_size),
            adapter=adapter,
            token_start=start,
            token_end=start + tokens,
            geometry=geometry,
            kv_format=pool.precision.kv,
            scale_granularity=_granularity(geometry, pool.precision.kv),
            layout=pool.kv_layout,
            page_tokens=pool.kv_page_tokens,
            tp=TPPartition.of(geometry, pool.tp),
            residency=Residency(tier, instance or pool.name),
            owner=owner or pool.name,
            bytes_per_token=model.kv_bytes_per_token(pool.precision.kv),
        )

    def in_transfer_format(self, fmt: str | None, *, tier: str = "transfer") -> KVState:
        """This KV as it travels: in ``fmt`` (None: unchanged format), resident in ``tier``
        (``transfer`` for a link, or the name of a store tier), no longer on an instance."""
        fmt = fmt or self.kv_format
        return replace(
            self,
            kv_format=fmt,
            scale_granularity=_granularity(self.geometry, fmt),
            bytes_per_token=self.geometry.bytes_per_token(fmt),
            residency=Residency(tier, None),
        )

    # ---- derived ------------------------------------------------------------------------------

    @property
    def tokens(self) -> int:
        return self.token_end - self.token_start

    @property
    def bytes(self) -> float:
        """KV bytes of the whole token range, counted once."""
        return self.tokens * self.bytes_per_token

    def bytes_per_token_per_rank(self, fmt: str | None = None) -> float:
        """What one TP rank holds per token (in ``fmt``, default this state's format): its share
        of the KV heads, or the whole latent for MLA."""
        full = self.geometry.bytes_per_token(fmt) if fmt else self.bytes_per_token
        if not self.tp.split_by_head:
            return full
        return full * self.tp.heads_per_rank / self.geometry.kv_heads

    def describe(self) -> dict[str, object]:
        """Plain data for JSON output."""
        g = self.geometry
        return {
            "model": self.model.name,
            "config_hash": self.model.config_hash,
            "weight_format": self.model.weight_format,
            "tokenizer": f"{self.tokenizer.name} (vocab {self.tokenizer.vocab_size})",
            "adapter": self.adapter,
            "tokens": [self.token_start, self.token_end],
            "geometry": (
                f"MLA: {g.layers} layers × latent {g.kv_lora_rank} + rope {g.rope_dim}"
                if g.is_mla
                else f"GQA: {g.layers} layers × {g.kv_heads} KV heads × {g.head_dim}"
            ),
            "kv_format": self.kv_format,
            "scale_granularity": self.scale_granularity,
            "layout": self.layout,
            "page_tokens": self.page_tokens,
            "tp": self.tp.tp,
            "heads_per_rank": self.tp.heads_per_rank if self.tp.split_by_head else "all (latent)",
            "residency": {"tier": self.residency.tier, "instance": self.residency.instance},
            "owner": self.owner,
            "bytes_per_token": self.bytes_per_token,
        }


def _granularity(geometry: Geometry, fmt: str) -> str:
    return get_format(fmt, "kv", geometry.vectors_per_token_per_layer[1]).scale_granularity
