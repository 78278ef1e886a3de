"""What the predictors built on measured tables share (:mod:`~hetsim.perf.cost.measured`, and
:mod:`~hetsim.perf.cost.transferred` through surfaces derived from them): the source they label
their ops with, the roofline that prices what the tables do not cover, a memo of priced kernels
and a launch floor no kernel goes below."""

from __future__ import annotations

from collections.abc import Callable

from hetsim.perf.cost.base import Bound, ScaleUpLink, Source
from hetsim.perf.cost.roofline import RooflinePredictor
from hetsim.perf.ops import Kernel

__all__ = ["GROUPED_GEMMS", "MEMO_SIZE", "TableBacked", "memoised"]

#: GEMMs a runtime runs as one grouped (fused MoE) kernel: a dense-GEMM table or surface, which
#: would charge each expert's small GEMM a launch of its own, does not describe them
GROUPED_GEMMS = frozenset({"routed_experts"})
#: kernel shapes a table-backed predictor memoises before it starts over
MEMO_SIZE = 200_000

Priced = tuple[float, Bound, Source]


def memoised(memo: dict[tuple, Priced], k: Kernel, price: Callable[[Kernel], Priced]) -> Priced:
    """``price(k)``, memoised by the kernel's value in ``memo`` (cleared when full). Decode
    attention is priced afresh: its mean context changes every step, a memo would only grow."""
    if k.family == "attention_decode":
        return price(k)
    # a grouped GEMM (the routed experts) is priced apart from a dense GEMM of the same shape
    # (a DeepSeek shared expert is one routed expert's shape): the key says which it is, or the
    # price depends on which of the two was asked first
    # shapes of different kernels carry different keys (fp8 scaling, MLA geometry): named
    key = (k.name in GROUPED_GEMMS, k.family, k.dtype, k.flops, k.bytes, *k.shape.items())
    found = memo.get(key)
    if found is None:
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        found = memo[key] = price(k)
    return found


class TableBacked:
    """The shared half of a table-backed predictor; a subclass (a dataclass with ``source``,
    ``fallback`` and ``_memo``) prices one kernel in ``_price``."""

    source: Source
    fallback: RooflinePredictor
    _memo: dict[tuple, Priced]

    @property
    def provenance(self) -> Source:
        return self.source

    @property
    def link(self) -> ScaleUpLink:
        return self.fallback.link

    def kernel(self, k: Kernel) -> Priced:
        return memoised(self._memo, k, self._price)

    def _price(self, k: Kernel) -> Priced:
        raise NotImplementedError

    def _floored(self, k: Kernel, priced: Priced, floor: float) -> Priced:
        """One launch at least (the source's label then priced it); a grouped (fused MoE)
        GEMM's experts share one launch, so no floor per expert."""
        if priced[0] < floor and k.name not in GROUPED_GEMMS:
            return floor, "overhead", self.source
        return priced
