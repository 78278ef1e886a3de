"""KV residency tiers in a cascade: where a prompt's cached prefix blocks live, and what moves.

A :class:`TierStore` is one tier (HBM, host DRAM, local SSD, a remote pool) of one owner — an
instance, a pool or the cluster, per the tier's scope — holding prefix blocks least recently
used first out (:class:`~hetsim.kv.prefix_cache.PrefixCache`), with its traffic counters. A
:class:`Cascade` is what one instance looks prompts up in: its stores, highest tier first.
Lower tiers of a pool or cluster scope are the same store in every cascade that shares them.

Semantics (assumptions, documented):

- **Lookup.** The leading blocks of a prompt found in *any* tier count (a prefix match stops
  at the first block no tier holds); each block is served by the highest tier holding it.
- **write_back.** A tier that evicts a block writes it to the next tier down (whose own
  evictions go on down; the last tier's are dropped). A block lives in at most one tier of
  each owner: putting it into a tier removes it from the other tiers of the cascade with the
  same owner. Tiers of different owners may both hold it (an instance's HBM and the pool's
  shared DRAM, say) — their owners manage them independently.
- **write_through.** A computed block is written to every tier as it is cached; each tier
  evicts on its own and evictions are dropped (a copy was written below when it was computed).
- **promote.** A hit served from a lower tier is cached in the top tier with the prompt's
  computed blocks (under write_back moved: removed from the lower tiers of the top tier's
  owner). Without it, the loaded blocks stay where they were found (refreshed there).
- **Top tier.** Blocks enter the top tier with no write traffic (the prompt's KV is computed
  there). Writes into every lower tier are counted (and, in the simulator, cross its link).
- **Crash.** An instance that crashes loses what its HBM held; lower tiers survive.

Counters are in blocks; a store knows its block size in tokens and bytes for the figures.
Occupancy over time is integrated with a clock the simulator supplies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hetsim.kv.prefix_cache import PrefixCache

__all__ = ["Cascade", "TierStore"]


class TierStore(PrefixCache):
    """One tier of one owner: an LRU of prefix blocks, its counters and occupancy integral."""

    def __init__(
        self,
        tier: str,
        owner: tuple,
        capacity_blocks: int,
        block_bytes: float,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        super().__init__(capacity_blocks)
        self.tier = tier
        self.owner = owner  # e.g. ("instance", 3), ("pool", "prefill"), ("cluster",)
        self.block_bytes = block_bytes
        self.link = None  # the link loads from and writes into this tier cross (None: HBM)
        self.write_cost = 1.0  # link bytes one byte written takes (read over write bandwidth)
        self._clock = clock
        self.hit_tokens = 0  # ... their prompt tokens (the last prompt token never counts)
        self.load_bytes = 0.0  # KV bytes those hits loaded into device memory
        self.written_blocks = 0  # blocks written into this tier from above or by write-through
        self.write_bytes = 0.0
        self.peak = 0
        self.area = 0.0  # block-seconds held
        self._since = clock()

    def _account(self) -> None:
        now = self._clock()
        self.area += len(self._blocks) * (now - self._since)
        self._since = now

    def put(self, blocks: Sequence[int]) -> list[int]:
        """Store ``blocks`` (most recent last); returns the blocks evicted to make room."""
        if self.capacity == 0:  # holds nothing: every block passes straight through
            return list(blocks)
        if not blocks:
            return []
        self._account()
        evicted = self.insert(blocks)
        self.peak = max(self.peak, len(self._blocks))
        return evicted

    def discard(self, blocks: Sequence[int]) -> None:
        """Drop ``blocks`` wherever present (they moved to another tier of this owner)."""
        self._account()
        for b in blocks:
            self._blocks.pop(b, None)

    def clear(self) -> None:
        """Everything held is gone (the owner crashed)."""
        self._account()
        self._blocks.clear()

    def mean(self, end: float, start: float = 0.0) -> float:
        """Time-mean blocks held from ``start`` until ``end``."""
        area = self.area + len(self._blocks) * (end - self._since)
        return area / (end - start) if end > start else float(len(self._blocks))


class Cascade:
    """The tiers one instance looks prompts up in, highest first (``stores[0]`` is the top).

    ``match`` is the lookup routers score instances with; :meth:`locate` is the lookup that
    serves a prompt; :meth:`store` caches a computed prompt and returns the blocks written into
    each lower tier (the simulator moves those bytes over the tier's link).
    """

    def __init__(self, stores: list[TierStore], write_back: bool, promote: bool) -> None:
        self.stores = stores
        self.write_back = write_back
        self.promote = promote

    def _tier_of(self, block: int) -> int:
        for k, s in enumerate(self.stores):
            if block in s._blocks:
                return k
        return -1

    def match(self, blocks: Sequence[int], touch: bool = True) -> int:
        """Number of leading ``blocks`` held in any tier (refreshing them where found when
        ``touch``)."""
        return len(self.locate(blocks, touch=touch))

    def locate(self, blocks: Sequence[int], touch: bool = True) -> list[int]:
        """For each leading block held somewhere, the index of the highest tier holding it;
        ``touch`` refreshes each in that tier (the caller counts the hit's tokens)."""
        found = []
        for b in blocks:
            k = self._tier_of(b)
            if k < 0:
                break
            found.append(k)
            if touch:
                self.stores[k]._blocks.move_to_end(b)
        return found

    def store(self, blocks: Sequence[int]) -> dict[TierStore, int]:
        """Cache a computed prompt's ``blocks``; returns blocks written into each lower tier."""
        top = self.stores[0]
        if not self.promote:  # loaded blocks stay in the lower tier they were found in
            blocks = [b for b in blocks if b in top._blocks or self._tier_of(b) < 0]
        writes: dict[TierStore, int] = {}
        if not self.write_back:
            top.put(blocks)
            for s in self.stores[1:]:
                new = [b for b in blocks if b not in s._blocks]
                s.put(blocks)
                self._wrote(writes, s, len(new))
            return writes
        self._place(0, blocks, writes)
        return writes

    def _place(self, k: int, blocks: Sequence[int], writes: dict[TierStore, int]) -> None:
        """Put ``blocks`` into tier ``k`` (write_back): drop them from the other tiers of its
        owner, and write what it evicts into tier ``k + 1``."""
        s = self.stores[k]
        if s.capacity == 0:  # nothing stays here: straight on down
            if k + 1 < len(self.stores):
                self._place(k + 1, blocks, writes)
            return
        for other in self.stores:
            if other is not s and other.owner == s.owner:
                other.discard(blocks)
        if k:
            self._wrote(writes, s, sum(b not in s._blocks for b in blocks))
        evicted = s.put(blocks)
        if evicted and k + 1 < len(self.stores):
            self._place(k + 1, evicted, writes)

    @staticmethod
    def _wrote(writes: dict[TierStore, int], s: TierStore, n: int) -> None:
        if n:
            s.written_blocks += n
            writes[s] = writes.get(s, 0) + n

    def lose_device_memory(self) -> None:
        """The instance crashed: its own HBM tier's blocks are gone (lower tiers survive)."""
        top = self.stores[0]
        if top.tier == "hbm":
            top.clear()
