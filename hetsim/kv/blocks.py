"""KV blocks of one instance (or one tier), with who holds them and for how long.

Blocks are counted, not tracked one by one: a request holds a number of blocks in one of three
states — ``used`` (its KV lives here and is being computed on or decoded from), ``reserved``
(allocated for KV that has not arrived yet) and ``held`` (kept only so another instance can read
it). Time integrals of each state give block-seconds, the currency the lifecycle protocols trade
in. ``used + reserved + held`` never exceeds the capacity and never goes negative: every method
checks, so an accounting bug fails loudly instead of skewing results.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BlockPool", "KVAccountingError"]

STATES = ("used", "reserved", "held")


class KVAccountingError(RuntimeError):
    """A block count went negative or past capacity: a simulator bug, never user error."""


@dataclass
class BlockPool:
    capacity: int
    page_tokens: int
    used: int = 0
    reserved: int = 0
    held: int = 0
    peak: int = 0
    _last_t: float = 0.0
    used_block_s: float = 0.0
    reserved_block_s: float = 0.0
    held_block_s: float = 0.0

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens (the last one partly filled)."""
        return -(-int(tokens) // self.page_tokens)

    @property
    def allocated(self) -> int:
        return self.used + self.reserved + self.held

    @property
    def free(self) -> int:
        return self.capacity - self.allocated

    def can_allocate(self, blocks: int) -> bool:
        return blocks <= self.free

    def advance(self, now: float) -> None:
        """Accumulate block-seconds up to ``now`` (call before any change)."""
        dt = now - self._last_t
        if dt > 0:
            self.used_block_s += self.used * dt
            self.reserved_block_s += self.reserved * dt
            self.held_block_s += self.held * dt
            self._last_t = now

    def allocate(self, now: float, blocks: int, state: str = "used") -> None:
        if blocks < 0 or blocks > self.free:
            raise KVAccountingError(f"allocate {blocks} blocks with {self.free} free")
        self.advance(now)
        setattr(self, state, getattr(self, state) + blocks)
        self.peak = max(self.peak, self.allocated)

    def release(self, now: float, blocks: int, state: str = "used") -> None:
        have = getattr(self, state)
        if blocks < 0 or blocks > have:
            raise KVAccountingError(f"release {blocks} {state} blocks with {have} {state}")
        self.advance(now)
        setattr(self, state, have - blocks)

    def move(self, now: float, blocks: int, source: str, target: str) -> None:
        """Change the state of blocks a request already has (e.g. used → held at handoff)."""
        have = getattr(self, source)
        if blocks < 0 or blocks > have:
            raise KVAccountingError(f"move {blocks} {source} blocks with {have} {source}")
        self.advance(now)
        setattr(self, source, have - blocks)
        setattr(self, target, getattr(self, target) + blocks)
