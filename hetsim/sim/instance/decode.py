"""A decode instance: continuous batching up to ``max_num_seqs``; the lifecycle protocol decides
when a request is admitted; a sequence takes a new block each time its context crosses a page;
when blocks run out the newest sequence is preempted (recomputed, or swapped to host). With
``speculative`` on the pool, each step verifies drafts and sequences advance by the tokens they
keep (:mod:`hetsim.sim.instance.speculative`)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from hetsim.kv.blocks import BlockState
from hetsim.kv.lifecycle import DECODE, WAITING
from hetsim.perf.speculative import speculative_step
from hetsim.sim.instance.base import Instance
from hetsim.sim.instance.batch import DecodeBatch
from hetsim.sim.instance.speculative import SpeculativeBatch
from hetsim.sim.state import Req

__all__ = ["DecodeInstance"]


class DecodeInstance(Instance):
    role = "decode"

    def __init__(self, *args, **kwargs) -> None:
        self.waiting: deque[Req] = deque()  # waiting for admission (pull) / reservation (push)
        self.incoming = 0  # admitted, KV still arriving
        self.receiving: dict[int, Req] = {}
        self.ready: list[Req] = []
        self.preempted: deque[Req] = deque()
        self.recompute: list[Req] = []
        super().__init__(*args, **kwargs)
        spec = self.pool.speculative
        self.spec = None if spec is None else speculative_step(self.step_model, spec.tokens)
        self.batch: DecodeBatch | SpeculativeBatch = (
            DecodeBatch(self.max_seqs, self.page)
            if spec is None
            else SpeculativeBatch(self.max_seqs, self.page, spec, self.gid, self.seed)
        )
        self.swap = self.pool.preemption == "swap"
        self.queued_blocks = 0
        self._capacity = max(self.blocks.capacity, 1)

    @property
    def queue_len(self) -> int:
        return len(self.waiting) + len(self.preempted)

    @property
    def slots_taken(self) -> int:
        return self.batch.n + self.incoming + len(self.ready) + len(self.recompute)

    def load(self) -> float:
        """Routing signal: KV blocks in use or promised to queued requests, as a share of
        capacity."""
        return (self.blocks.allocated + self.queued_blocks) / self._capacity

    def enqueue(self, req: Req) -> None:
        # behind a queue whose head cannot be admitted it changes nothing until the batch
        # does: a fast-forward goes on
        behind = bool(self.waiting)
        self.waiting.append(req)
        self._mark(req, DECODE, WAITING)
        self.queued_blocks += self.blocks.blocks_for(req.input)
        self.outstanding_tokens += req.output
        if not (behind and self._ff is not None):
            self.kick()

    def dequeue(self) -> Req:
        """The head of the waiting queue, leaving it (the handoff admits it)."""
        req = self.waiting.popleft()
        self.queued_blocks -= self.blocks.blocks_for(req.input)
        return req

    def deliver(self, req: Req) -> None:
        """The request's KV is here: it joins the batch at the next step."""
        self.incoming -= 1
        self.receiving.pop(req.id, None)
        self.ready.append(req)
        self.kick()

    def forget(self, req: Req) -> None:
        """Take a request out of this instance (it is being retried or failed); the caller
        releases its blocks."""
        if self._ff is not None:
            self._cut()
        if req in self.waiting:
            self.waiting.remove(req)
            self.queued_blocks -= self.blocks.blocks_for(req.input)
        if self.receiving.pop(req.id, None) is not None:
            self.incoming -= 1
        for queue in (self.ready, self.recompute):
            if req in queue:
                queue.remove(req)
        if req in self.preempted:
            self.preempted.remove(req)
        if req in self.batch.reqs:
            self.batch.remove(self.batch.reqs.index(req))
            req.d_blocks = self.blocks.blocks_for(req.context)
        if req in self.batch.fresh:
            self.batch.fresh.remove(req)

    def _drop_requests(self) -> list[tuple[Req, bool]]:
        # queued requests have nothing here yet; everything admitted had KV (or a reservation)
        out = [(r, False) for r in self.waiting]
        out += [(r, True) for r in self.receiving.values()]
        out += [(r, True) for r in self.ready + self.recompute + list(self.preempted)]
        out += [(r, True) for r in self.batch.drain()]
        self.waiting.clear()
        self.receiving.clear()
        self.ready.clear()
        self.recompute.clear()
        self.preempted.clear()
        self.incoming = 0
        self.queued_blocks = 0
        for req, _ in out:
            req.d_blocks = 0
        return out

    def _admit(self) -> None:
        """Give free blocks to preempted sequences first, then to waiting requests (FIFO,
        head-of-line), as the handoff protocol directs."""
        now = self.env.now
        while self.preempted and self.slots_taken < self.max_seqs:
            req = self.preempted[0]
            need = self.blocks.blocks_for(req.context)
            if not self.blocks.can_allocate(need):
                return
            self.preempted.popleft()
            self.blocks.allocate(now, need)
            req.d_blocks = need
            if self.swap and req.generated > 0:
                self.incoming += 1
                self.host_swap.swap_in(req, self)
            else:
                req.recomputed_tokens += req.context
                self.recompute.append(req)
        if self.waiting:  # most steps have nobody waiting: skip the protocol's admission
            self.handover.admit(self)

    def _make_room(self, need: int) -> None:
        now = self.env.now
        batch = self.batch
        while need > self.blocks.free and batch.n > 0:
            req = batch.pop_newest()
            self.blocks.release(now, self.blocks.blocks_for(req.context))
            req.d_blocks = 0
            req.preemptions += 1
            self.stats.preemptions += 1
            if self.swap:
                self.host_swap.swap_out(req, self)
            self.preempted.appendleft(req)
            need = batch.blocks_needed()

    def _priced(self, recompute: list[Req]) -> tuple[float, float]:
        """Seconds of the step the batch (and ``recompute``) takes now, and the joules its
        measured ops draw below tdp (0 without measured power; priced after the time, whose
        kernel prices the step model keeps for it)."""
        batch, sm, spec, measured = self.batch, self.step_model, self.spec, self.measured_power
        if spec is not None:
            batch.begin()
            # verify k + 1 positions per sequence and draft k; recomputes do not speculate
            contexts, extra = batch.contexts(), _contexts(recompute)
            dt = spec.step_time(contexts, extra)
            return dt, spec.below_tdp(contexts, extra) if measured else 0.0
        if recompute:
            new, cached = self._with_recompute(recompute)
            dt = sm.step_time(new, cached)
            return dt, sm.below_tdp(new, cached) if measured else 0.0
        dt = batch.step_time(sm)
        return dt, batch.below_tdp(sm) if measured else 0.0

    def _with_recompute(self, recompute: list[Req]) -> tuple[np.ndarray, np.ndarray]:
        """(new tokens, cached tokens) of a step that rebuilds preempted sequences' KV beside
        the decodes."""
        batch = self.batch
        new = np.concatenate([np.ones(batch.n, dtype=np.int64), _contexts(recompute)])
        cached = np.concatenate([batch.contexts(), np.zeros(len(recompute), np.int64)])
        return new, cached

    def _loop(self):
        batch = self.batch
        blocks = self.blocks
        spec = self.spec
        while True:
            self._admit()
            now = self.env.now
            for req in self.ready:
                req.t_decode_start = now
                batch.add(req)
            self.ready.clear()
            recompute = self.recompute
            if batch.n == 0 and not recompute:
                yield self._sleep()
                continue
            need = batch.blocks_needed()
            # a preemption frees blocks the next step's admission may give out: no fast-forward
            steady = need <= blocks.free
            if not steady:
                self._make_room(need)
                need = batch.blocks_needed()
                if batch.n == 0 and not recompute:
                    continue
            if need:
                blocks.allocate(now, need)
            n = batch.n
            run = None
            if self.fast_forward and steady and spec is None and not recompute:
                run = self._run_steps(now)
            if run is None:
                yield self._step(*self._priced(recompute))
                now = self.env.now
                for req in batch.fresh:
                    req.t_first = now
                batch.fresh.clear()
                finished = batch.advance()
                self._emitted(now, n)
            else:
                yield run[0]
                now = self.env.now
                finished = self._close_run()
            for i in finished:
                req = batch.remove(i)
                req.d_blocks = blocks.blocks_for(req.context)
                self.free(req)
                self._finish(req)
            for req in recompute:
                req.d_blocks = blocks.blocks_for(req.context)
                batch.add(req)
            recompute.clear()

    # -- block-state transitions, called by the lifecycle protocols and recovery --

    def reserve(self, req: Req, need: int) -> None:
        """Take the head of the waiting queue and reserve ``need`` blocks for its KV."""
        self.dequeue()
        self.blocks.allocate(self.env.now, need, BlockState.RESERVED)
        req.d_blocks = need
        req.d_state = BlockState.RESERVED
        self.incoming += 1
        self.receiving[req.id] = req
        req.kv_eta = math.inf  # until its movement starts

    def next_delivery(self, now: float) -> float:
        """The soonest after ``now`` a KV on its way here may land (a lower bound: links may be
        shared or slowed), or inf: a fast-forward plans its run to end in that step. A KV whose
        bound has passed gives no hint (its landing cuts the run) and hides no later one."""
        if not self.receiving:
            return math.inf
        return min((r.kv_eta for r in self.receiving.values() if r.kv_eta > now), default=math.inf)

    def commit(self, req: Req) -> None:
        """The KV has landed in the reservation: the blocks are in use, the request joins the
        batch at the next step."""
        self.blocks.move(self.env.now, req.d_blocks, BlockState.RESERVED, BlockState.USED)
        req.d_state = BlockState.USED
        req.context = req.input
        self.deliver(req)

    def adopt(self, req: Req) -> None:
        """A request whose KV is gone recomputes its prompt here (the fallback policy)."""
        req.decode = self
        req.context = req.input
        self.preempted.append(req)
        self.kick()

    def disown(self, req: Req) -> int:
        """Stop counting blocks a request holds here that stay allocated until their owner frees
        them later (a reservation abandoned after missed heartbeats); returns how many."""
        blocks, req.d_blocks = req.d_blocks, 0
        return blocks

    def free(self, req: Req) -> None:
        """Give back the blocks the request holds here, in the state they are in."""
        if req.d_blocks:
            self.blocks.release(self.env.now, req.d_blocks, req.d_state)
            req.d_blocks = 0
            self.kick()


def _contexts(reqs: list[Req]) -> np.ndarray:
    return np.fromiter((r.context for r in reqs), np.int64, len(reqs))
