r"""KV blocks of one instance (or one tier), with who holds them and for how long.

Blocks are counted, not tracked one by one: a request holds a number of blocks in one of three
states (:class:`BlockState`) — ``used`` (its KV lives here and is being computed on or decoded
from), ``reserved`` (allocated for KV that has not arrived yet) and ``held`` (kept only so another
instance can read it). Time integrals of each state give block-seconds, the currency the
lifecycle protocols trade in. ``used + reserved + held`` never exceeds the capacity and never
goes negative: every method checks, so an accounting bug fails loudly instead of skewing results.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BlockPool", "BlockState", "KVAccountingError"]


class BlockState(StrEnum):
    """What a request's blocks on one instance are for; each value names the pool's counter."""

    USED = "used"
    RESERVED = "reserved"
    HELD = "held"


# the hot path compares by identity, and a lookup on an enum class is slow in Python 3.11
_USED, _RESERVED, _HELD = BlockState


class KVAccountingError(RuntimeError):
    """A block count went negative or past capacity: a simulator bug, never user error."""


class BlockPool:
    """Blocks of one instance by state, with block-second integrals and the peak."""

    __slots__ = ("capacity", "page_tokens", "used", "reserved", "held", "allocated", "peak",
                 "_last_t", "used_block_s", "reserved_block_s", "held_block_s")  # fmt: skip

    def __init__(self, capacity: int, page_tokens: int) -> None:
        self.capacity = capacity
        self.page_tokens = page_tokens
        self.used = self.reserved = self.held = 0
        self.allocated = 0  # used + reserved + held, kept up to date (the hot path reads it)
        self.peak = 0
        self._last_t = 0.0
        self.used_block_s = self.reserved_block_s = self.held_block_s = 0.0

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens (the last one partly filled)."""
        return -(-int(tokens) // self.page_tokens)

    @property
    def free(self) -> int:
        return self.capacity - self.allocated

    def can_allocate(self, blocks: int) -> bool:
        return blocks <= self.capacity - self.allocated

    def advance(self, now: float) -> None:
        """Accumulate block-seconds up to ``now`` (call before any change)."""
        dt = now - self._last_t
        if dt > 0:
            self.used_block_s += self.used * dt
            self.reserved_block_s += self.reserved * dt
            self.held_block_s += self.held * dt
            self._last_t = now

    def _add(self, state: BlockState, blocks: int) -> None:
        if state is _USED:
            self.used += blocks
        elif state is _RESERVED:
            self.reserved += blocks
        elif state is _HELD:
            self.held += blocks
        else:
            raise KVAccountingError(f"not a BlockState: {state!r}")
        self.allocated += blocks

    def allocate(self, now: float, blocks: int, state: BlockState = BlockState.USED) -> None:
        if blocks < 0 or blocks > self.capacity - self.allocated:
            raise KVAccountingError(f"allocate {blocks} blocks with {self.free} free")
        self.advance(now)
        self._add(state, blocks)
        if self.allocated > self.peak:
            self.peak = self.allocated

    def allocate_steps(self, times: list[float], counts: list[int], start: int, stop: int) -> None:
        """Used blocks ``counts[s]`` taken at ``times[s - 1]`` for each ``s`` in ``[start, stop)``
        with a count (``counts[0]`` is none: the steps of a decode run, each taking its blocks as
        it starts, when the previous one ends). The same arithmetic as one :meth:`allocate` per
        step, in one call: a run books hundreds of steps."""
        start = max(start, 1)
        total = sum(counts[start:stop])
        if total > self.capacity - self.allocated:
            raise KVAccountingError(f"allocate {total} blocks with {self.free} free")
        if not total:  # no step takes any (a prompt run; decode steps crossing no page)
            return
        used, last = self.used, self._last_t
        used_s, reserved_s, held_s = self.used_block_s, self.reserved_block_s, self.held_block_s
        reserved, held = self.reserved, self.held
        for s in range(start, stop):
            blocks = counts[s]
            if blocks:
                dt = times[s - 1] - last
                if dt > 0:
                    used_s += used * dt
                    reserved_s += reserved * dt
                    held_s += held * dt
                    last = times[s - 1]
                used += blocks
        self.used_block_s, self.reserved_block_s, self.held_block_s = used_s, reserved_s, held_s
        self._last_t = last
        self.used = used
        self.allocated += total
        if self.allocated > self.peak:
            self.peak = self.allocated

    def release(self, now: float, blocks: int, state: BlockState = BlockState.USED) -> None:
        have = getattr(self, state)
        if blocks < 0 or blocks > have:
            raise KVAccountingError(f"release {blocks} {state} blocks with {have} {state}")
        self.advance(now)
        self._add(state, -blocks)

    def move(self, now: float, blocks: int, source: BlockState, target: BlockState) -> None:
        """Change the state of blocks a request already has (e.g. used → held at handoff)."""
        have = getattr(self, source)
        if blocks < 0 or blocks > have:
            raise KVAccountingError(f"move {blocks} {source} blocks with {have} {source}")
        self.advance(now)
        self._add(source, -blocks)
        self._add(target, blocks)

    def clear(self, now: float) -> None:
        """Everything gone at once (the instance crashed and lost its memory)."""
        self.advance(now)
        self.used = self.reserved = self.held = self.allocated = 0
