"""A prefill instance: FCFS over a max-batched-tokens budget with chunked prefill; KV blocks for
the whole prompt are allocated when a request is admitted to the batch, and stay here until
the lifecycle protocol has handed them over."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from hetsim.kv.blocks import BlockState
from hetsim.kv.lifecycle import COMPUTING, PREFILL, QUEUED
from hetsim.sim.instance.base import Instance
from hetsim.sim.scheduler import prefill_chunks
from hetsim.sim.state import Req

__all__ = ["PrefillInstance"]


class PrefillInstance(Instance):
    role = "prefill"

    def __init__(self, *args, **kwargs) -> None:
        self.waiting: deque[Req] = deque()
        self.running: list[Req] = []
        # prompts computed here whose KV is still here for another side (pull: lent until
        # read; push/store: until written out)
        self.held: dict[int, Req] = {}
        super().__init__(*args, **kwargs)

    def enqueue(self, req: Req) -> None:
        self.waiting.append(req)
        self.outstanding_tokens += req.input - req.cached
        self._mark(req, PREFILL, QUEUED)
        self.kick()

    def forget(self, req: Req) -> None:
        """Take a request out of this instance's queues (it is being retried or failed)."""
        if req in self.waiting:
            self.waiting.remove(req)
        if req in self.running:
            self.running.remove(req)
        self.held.pop(req.id, None)

    def _drop_requests(self) -> list[tuple[Req, bool]]:
        out = [(r, False) for r in self.waiting] + [(r, True) for r in self.running]
        out += [(r, True) for r in self.held.values()]
        self.waiting.clear()
        self.running.clear()
        self.held.clear()
        for req, _ in out:
            req.p_blocks = 0
        return out

    @property
    def queue_len(self) -> int:
        return len(self.waiting)

    def _schedule(self) -> tuple[list[Req], list[int]]:
        """The next step's batch and each request's chunk, packed by the chunked-prefill rule
        that the planner's screen shares; waiting requests are admitted as the rule takes them."""
        chunks, _ = prefill_chunks(
            [req.input - req.computed for req in self.running],
            self._admit(),
            token_budget=self.max_tokens,
            chunk=self.chunk,
            max_seqs=self.max_seqs,
        )
        # the rule serves a prefix of the running prompts, then the ones it admitted
        return self.running[: len(chunks)], chunks

    def _admit(self) -> Iterator[int]:
        """Admit waiting requests in order, each as the packing rule takes it, while KV blocks
        for its whole prompt are free (head-of-line); yields the tokens each has to compute."""
        now = self.env.now
        waiting, blocks = self.waiting, self.blocks
        while waiting:
            req = waiting[0]
            need = blocks.blocks_for(req.input)
            if not blocks.can_allocate(need):
                return
            waiting.popleft()
            blocks.allocate(now, need)
            req.p_blocks = need
            req.t_prefill_start = now
            self._mark(req, PREFILL, COMPUTING)
            self.running.append(req)
            yield req.input - req.computed

    def _loop(self):
        while True:
            batch, chunks = self._schedule()
            if not batch:
                yield self._sleep()
                continue
            computed = tuple([r.computed for r in batch])
            dt = self.step_model.chunks_time(tuple(chunks), computed)
            if self.handover.layerwise:
                for req, n in zip(batch, chunks, strict=True):
                    if req.computed + n >= req.input:
                        self.handover.last_step_started(req, self, dt)
            attempts = [r.retries for r in batch]
            below = (
                self.step_model.below_tdp(np.array(chunks), np.array(computed))
                if self.measured_power
                else 0.0
            )
            yield self._step(dt, below)
            now = self.env.now
            for req, n, attempt in zip(batch, chunks, attempts, strict=True):
                if req.retries != attempt or req not in self.running:
                    continue  # taken away during the step (retried or failed)
                req.computed += n
                self.outstanding_tokens -= n
                if req.computed >= req.input:
                    self.running.remove(req)
                    req.t_prefill_end = now
                    self._prompt_cached(req, self)
                    self.handover.prefill_finished(req, self)

    # -- block-state transitions, called by the lifecycle protocols and recovery --

    def lend(self, req: Req) -> None:
        """Pull: the computed prompt's blocks stay here, held, until the consumer has read them."""
        self.blocks.move(self.env.now, req.p_blocks, BlockState.USED, BlockState.HELD)
        req.p_state = BlockState.HELD
        self.held[req.id] = req

    def hand_over(self, req: Req) -> None:
        """Push/store: the prompt's KV is being written out; it lives here until then."""
        self.held[req.id] = req

    def disown(self, req: Req) -> int:
        """Stop tracking a request whose blocks stay allocated (their owner frees them later,
        e.g. at lease expiry); returns how many."""
        self.held.pop(req.id, None)
        blocks, req.p_blocks = req.p_blocks, 0
        return blocks

    def release(self, req: Req) -> None:
        """Free a request's prefill-side blocks (its KV was handed over, or it gave up)."""
        self.held.pop(req.id, None)
        self.free(req)

    def free(self, req: Req) -> None:
        """Give back the blocks the request holds here, in the state they are in."""
        if req.p_blocks:
            self.blocks.release(self.env.now, req.p_blocks, req.p_state)
            req.p_blocks = 0
            if self.waiting:  # freed blocks matter to a prompt waiting for them, else to none
                self.kick()
