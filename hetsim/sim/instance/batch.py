"""A decode batch's running sequences as flat arrays: O(1) work per step for the common case."""

from __future__ import annotations

import numpy as np

from hetsim.perf.step import StepModel
from hetsim.sim.state import Req

__all__ = ["DecodeBatch"]


class DecodeBatch:
    """Running sequences, with O(1) work per step for the common case.

    Every running sequence gains one token per step, so a sequence's context is stored as an
    offset from the batch's step counter (``context = rel + step``) and its output count
    likewise; the sum of contexts, the number of sequences crossing a page boundary (from a
    histogram of ``rel mod page``) and the sequences finishing at a step (a step → count map) are
    then known without touching every sequence.
    """

    def __init__(self, capacity: int, page: int) -> None:
        self.n = 0
        self.step = 0
        self.page = page
        self.rel = np.zeros(capacity, dtype=np.int64)  # context - step
        self.gen = np.zeros(capacity, dtype=np.int64)  # generated - step
        self.finish_at = np.zeros(capacity, dtype=np.int64)
        self.reqs: list[Req] = []
        self.rel_sum = 0
        self.residues = [0] * page
        self._finishing: dict[int, int] = {}
        self._first: int | None = None  # min(_finishing) while known (asked before each step)
        self.fresh: list[Req] = []  # added with no output yet: their first token comes next

    def add(self, req: Req) -> None:
        i, step = self.n, self.step
        rel = req.context - step
        self.rel[i] = rel
        self.gen[i] = req.generated - step
        end = step + max(req.output - req.generated, 1)
        self.finish_at[i] = end
        self._finishing[end] = self._finishing.get(end, 0) + 1
        if self._first is not None and end < self._first:
            self._first = end
        self.rel_sum += rel
        self.residues[rel % self.page] += 1
        self.reqs.append(req)
        if req.generated == 0:
            self.fresh.append(req)
        self.n = i + 1

    def context_sum(self) -> int:
        return self.rel_sum + self.n * self.step

    def contexts(self) -> np.ndarray:
        return self.rel[: self.n] + self.step

    def step_time(self, sm: StepModel) -> float:
        """One decode step of this batch: from its size and context sum alone (O(1)), unless
        sparse attention needs each context."""
        if sm.model.is_sparse_attention:
            return sm.decode_time(self.contexts())
        return sm.decode_time_from_sum(self.n, self.context_sum())

    def below_tdp(self, sm: StepModel) -> float:
        """What that step's measured ops draw below tdp (joules per device), priced as
        :meth:`step_time` prices the step."""
        if sm.model.is_sparse_attention:
            return sm.decode_below_tdp(self.contexts())
        return sm.decode_below_tdp_from_sum(self.n, self.context_sum())

    def blocks_needed(self) -> int:
        """New blocks for the token each sequence writes this step (its context is a multiple
        of the page size)."""
        return self.residues[(-self.step) % self.page]

    def advance(self) -> list[int]:
        """One token for every sequence; returns the positions that finished (descending)."""
        self.step += 1
        if self._finishing.pop(self.step, 0) == 0:
            return []
        self._first = None
        return np.flatnonzero(self.finish_at[: self.n] == self.step)[::-1].tolist()

    def steps_to_finish(self) -> int:
        """Steps until the first sequence finishes (it finishes at the end of that step)."""
        first = self._first
        if first is None:
            first = self._first = min(self._finishing)
        return first - self.step

    def needs(self, k: int) -> np.ndarray:
        """New blocks each of the next ``k`` steps takes (:meth:`blocks_needed` of each)."""
        residues = np.asarray(self.residues, dtype=np.int64)
        return residues[(-(self.step + np.arange(k))) % self.page]

    def remove(self, i: int) -> Req:
        """Remove position ``i`` (moving the last sequence into it); the request gets its
        current context and output count back."""
        last = self.n - 1
        req = self.reqs[i]
        rel = int(self.rel[i])
        req.context = rel + self.step
        req.generated = int(self.gen[i]) + self.step
        self.rel_sum -= rel
        self.residues[rel % self.page] -= 1
        end = int(self.finish_at[i])
        if end > self.step:  # removed before finishing: no longer expected then
            left = self._finishing[end] - 1
            if left:
                self._finishing[end] = left
            else:
                del self._finishing[end]
                if end == self._first:
                    self._first = None
        if i != last:
            self.rel[i] = self.rel[last]
            self.gen[i] = self.gen[last]
            self.finish_at[i] = self.finish_at[last]
            self.reqs[i] = self.reqs[last]
        self.reqs.pop()
        self.n = last
        return req

    def pop_newest(self) -> Req:
        """Remove the most recently added sequence (vLLM preempts the newest first)."""
        req = self.remove(self.n - 1)
        if req in self.fresh:
            self.fresh.remove(req)
        return req

    def drain(self) -> list[Req]:
        """Remove every sequence (the instance crashed), newest first."""
        out = [self.remove(self.n - 1) for _ in range(self.n)]
        self.fresh.clear()
        return out
