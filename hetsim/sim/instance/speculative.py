"""A decode batch under speculative decoding: sequences advance by different numbers of tokens
per step, so their state is kept per sequence (context, output produced, output left) in flat
arrays rather than as offsets from a shared step counter (:class:`DecodeBatch`).

Each step verifies ``k`` drafts per sequence: the KV of ``k + 1`` positions is written (their
blocks are taken before the step, :meth:`SpeculativeBatch.blocks_needed`), the sequence keeps
1 + its accepted drafts, clipped at its output length, and the rejected positions' blocks are
given back after the step (:attr:`SpeculativeBatch.released`). A sequence's first output token
comes from its prompt alone (no drafts exist yet): that step keeps one token and is not counted
in the acceptance figures. Acceptance is sampled per step
and sequence: draft ``j`` is accepted with probability ``acceptance[j]`` if every draft before it
was. Between steps a sequence holds exactly the blocks of its context, as in the plain batch.
"""

from __future__ import annotations

import numpy as np

from hetsim.sim.instance.batch import DecodeBatch
from hetsim.sim.state import Req
from hetsim.spec.scenario import SpeculativeSpec

__all__ = ["SpeculativeBatch"]

#: mixed into the simulation's seed (with the instance's index) for the acceptance draws
_STREAM = 0x5BEC


class SpeculativeBatch:
    """Running sequences of a speculating instance; same interface as :class:`DecodeBatch`.

    :meth:`advance` also leaves :attr:`emitted` (output tokens produced by the step) and
    :attr:`released` (blocks of rejected draft positions, to give back)."""

    def __init__(
        self, capacity: int, page: int, spec: SpeculativeSpec, instance: int, seed: int = 0
    ) -> None:
        self.n = 0
        self.page = page
        self.k = spec.tokens
        # P(at most a drafts accepted) for a = 0..k-1: 1 - P(drafts 1..a+1 all accepted)
        self.cdf = 1.0 - np.cumprod(np.asarray(spec.acceptance, dtype=np.float64))
        self.rng = np.random.default_rng([seed, _STREAM, instance])
        self.ctx = np.zeros(capacity, dtype=np.int64)
        self.gen = np.zeros(capacity, dtype=np.int64)
        self.left = np.zeros(capacity, dtype=np.int64)  # output tokens still to produce
        self.steps = np.zeros(capacity, dtype=np.int64)  # speculative steps taken here
        self.accepted = np.zeros(capacity, dtype=np.int64)  # 1 + accepted drafts, summed
        self.reqs: list[Req] = []
        self.fresh: list[Req] = []  # added with no output yet: their first token comes next
        self.emitted = 0
        self.released = 0
        self.writing = False  # between a step's block allocation and its end
        self.fresh_in_step = False  # a sequence without output yet takes part in the next step
        self.orphaned = 0  # draft blocks of sequences removed during the step

    def add(self, req: Req) -> None:
        i = self.n
        self.ctx[i] = req.context
        self.gen[i] = req.generated
        self.left[i] = max(req.output - req.generated, 1)
        self.steps[i] = 0
        self.accepted[i] = 0
        self.reqs.append(req)
        if req.generated == 0:
            self.fresh.append(req)
            self.fresh_in_step = True
        self.n = i + 1

    def context_sum(self) -> int:
        return int(self.ctx[: self.n].sum())

    def contexts(self) -> np.ndarray:
        return self.ctx[: self.n].copy()

    def _blocks(self, tokens: np.ndarray) -> np.ndarray:
        return -(-tokens // self.page)

    def blocks_needed(self) -> int:
        """New blocks for the ``k + 1`` positions each sequence writes this step."""
        ctx = self.ctx[: self.n]
        return int((self._blocks(ctx + self.k + 1) - self._blocks(ctx)).sum())

    def begin(self) -> None:
        """The step's blocks are allocated: a sequence removed before :meth:`advance` leaves
        its draft positions' blocks behind, to be released with the rejected ones."""
        self.writing = True

    def abandon(self) -> None:
        """The instance crashed mid-step: its blocks are gone, nothing is left to release."""
        self.writing = False
        self.orphaned = 0

    def advance(self) -> list[int]:
        """Verify every sequence's drafts; returns the positions that finished (descending)."""
        n, k = self.n, self.k
        orphaned, self.orphaned, self.writing = self.orphaned, 0, False
        if n == 0:
            self.emitted, self.released = 0, orphaned
            return []
        # one uniform draw per sequence, inverted through the accepted-drafts distribution
        kept = 1 + np.searchsorted(self.cdf, self.rng.random(n), side="right")
        gen = self.gen[:n]
        drafted = gen > 0  # a sequence's first token comes from its prompt: no drafts yet
        if self.fresh_in_step:
            kept[~drafted] = 1
        left = self.left[:n]
        out = np.minimum(kept, left)
        ctx = self.ctx[:n]
        written = self._blocks(ctx + k + 1)
        ctx += out
        self.released = int((written - self._blocks(ctx)).sum()) + orphaned
        gen += out
        left -= out
        if self.fresh_in_step:
            self.steps[:n] += drafted
            self.accepted[:n] += kept * drafted
            self.fresh_in_step = False
        else:
            self.steps[:n] += 1
            self.accepted[:n] += kept
        self.emitted = int(out.sum())
        return np.flatnonzero(left == 0)[::-1].tolist()

    def remove(self, i: int) -> Req:
        """Remove position ``i`` (moving the last sequence into it); the request gets its
        current context, output count and acceptance counts back."""
        last = self.n - 1
        req = self.reqs[i]
        req.context = int(self.ctx[i])
        req.generated = int(self.gen[i])
        req.spec_steps += int(self.steps[i])
        req.spec_accepted += int(self.accepted[i])
        if self.writing:
            self.orphaned += int(self._blocks(self.ctx[i] + self.k + 1) - self._blocks(self.ctx[i]))
        if i != last:
            for col in (self.ctx, self.gen, self.left, self.steps, self.accepted):
                col[i] = col[last]
            self.reqs[i] = self.reqs[last]
        self.reqs.pop()
        self.n = last
        return req

    pop_newest = DecodeBatch.pop_newest

    def drain(self) -> list[Req]:
        """Remove every sequence (the instance crashed); its blocks are gone with the step."""
        out = DecodeBatch.drain(self)
        self.abandon()
        return out
