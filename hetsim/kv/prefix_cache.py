"""A prefix cache over prompt block hashes, least recently used first out.

Keys are the ids of fixed-size prompt blocks (Mooncake's ``hash_ids``: block ``j`` of a prompt
stands for its first ``(j+1)·block_tokens`` tokens, so equal ids mean equal prefixes). A lookup
counts the leading blocks of a prompt that are cached — a prefix match stops at the first miss,
as in vLLM and SGLang. Capacity is in blocks; inserting past it evicts the least recently used.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["PrefixCache"]


class PrefixCache:
    def __init__(self, capacity_blocks: int) -> None:
        self.capacity = max(0, int(capacity_blocks))
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self.hits = 0
        self.lookups = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block: int) -> bool:
        return block in self._blocks

    def match(self, blocks: Iterable[int], touch: bool = True) -> int:
        """Number of leading ``blocks`` present; refreshes their recency when ``touch``."""
        matched = 0
        cache = self._blocks
        for b in blocks:
            if b not in cache:
                break
            if touch:
                cache.move_to_end(b)
            matched += 1
        if touch:
            self.lookups += 1
            self.hits += matched > 0
        return matched

    def insert(self, blocks: Iterable[int]) -> list[int]:
        """Cache these blocks (most recent last), evicting the least recent beyond capacity;
        returns the evicted blocks, oldest first."""
        if self.capacity == 0:
            return []
        cache = self._blocks
        for b in blocks:
            if b in cache:
                cache.move_to_end(b)
            else:
                cache[b] = None
        evicted = []
        while len(cache) > self.capacity:
            evicted.append(cache.popitem(last=False)[0])
        self.evictions += len(evicted)
        return evicted
