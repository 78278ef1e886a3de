"""Serving instances as simpy processes: one event per batch step.

Each instance runs a loop that forms a batch, asks its :class:`~hetsim.perf.step.StepModel` how
long the step takes, waits that long, and then applies the step's effects. An idle instance
sleeps on a wake-up event that arrivals, finished transfers and freed blocks trigger.

* :class:`PrefillInstance` — FCFS over a max-batched-tokens budget with chunked prefill; KV
  blocks for the whole prompt are allocated when a request is admitted to the batch.
* :class:`DecodeInstance` — continuous batching up to ``max_num_seqs``; the handoff protocol
  decides when a request is admitted; a sequence takes a new block each time its context crosses
  a page; when blocks run out the newest sequence is preempted (recomputed or swapped to host).
* :class:`ColocatedInstance` — the aggregated baseline: decodes first, then prefill chunks in
  the remaining token budget, in one step (vLLM V1's scheduler).

Policy (who is admitted, in which order) lives in the ``_schedule``/``_admit`` methods; the
mechanism (block accounting, per-sequence arrays) in :class:`DecodeBatch` and
:class:`~hetsim.kv.blocks.BlockPool`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from hetsim.kv.blocks import BlockPool
from hetsim.sim.state import Req

if TYPE_CHECKING:
    from hetsim.sim.engine import Simulation

__all__ = ["Instance", "PrefillInstance", "DecodeInstance", "ColocatedInstance", "DecodeBatch"]


class DecodeBatch:
    """Running sequences as parallel arrays: context length, tokens left, the request."""

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.context = np.zeros(capacity, dtype=np.int64)
        self.remaining = np.zeros(capacity, dtype=np.int64)
        self.reqs: list[Req] = []

    def add(self, req: Req) -> None:
        i = self.n
        self.context[i] = req.context
        self.remaining[i] = req.output - req.generated
        self.reqs.append(req)
        self.n = i + 1

    def pop_newest(self) -> Req:
        """Remove the most recently added sequence (vLLM preempts the newest first)."""
        self.n -= 1
        req = self.reqs.pop()
        req.context = int(self.context[self.n])
        return req

    def blocks_needed(self, page: int) -> int:
        """New blocks for the token each sequence writes this step."""
        return int(np.count_nonzero(self.context[: self.n] % page == 0))

    def advance(self) -> list[int]:
        """One token for every sequence; returns the positions that finished (descending)."""
        n = self.n
        self.context[:n] += 1
        self.remaining[:n] -= 1
        done = np.flatnonzero(self.remaining[:n] <= 0)
        return done[::-1].tolist()

    def remove(self, i: int) -> Req:
        """Remove position ``i`` by moving the last sequence into it."""
        last = self.n - 1
        req = self.reqs[i]
        req.context = int(self.context[i])
        if i != last:
            self.context[i] = self.context[last]
            self.remaining[i] = self.remaining[last]
            self.reqs[i] = self.reqs[last]
        self.reqs.pop()
        self.n = last
        return req


class Instance:
    """What every instance has: a step model, KV blocks, a wake-up event, busy-time accounting."""

    role = "instance"

    def __init__(self, sim: Simulation, pool, index: int, gid: int, step_model, footprint) -> None:
        self.sim = sim
        self.env = sim.env
        self.pool = pool
        self.index = index
        self.gid = gid  # index over all instances, used in logs
        self.name = f"{pool.name}[{index}]"
        self.step_model = step_model
        self.blocks = BlockPool(footprint.kv_capacity_blocks, footprint.kv_page_tokens)
        self.page = footprint.kv_page_tokens
        self.max_seqs = pool.batching.max_num_seqs
        self.max_tokens = pool.batching.max_batched_tokens
        self.chunk = pool.batching.chunk_size or pool.batching.max_batched_tokens
        self.busy_s = 0.0
        self.steps = 0
        self.outstanding_tokens = 0  # routing signal: work queued or running here
        self._wake = None
        self.process = self.env.process(self._loop())

    def kick(self) -> None:
        """Wake the loop if it sleeps (new work or freed capacity)."""
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _sleep(self):
        self._wake = self.env.event()
        return self._wake

    def _step(self, dt: float):
        self.busy_s += dt
        self.steps += 1
        self.sim.steps += 1
        return self.env.timeout(dt)

    def _loop(self):  # pragma: no cover - overridden
        raise NotImplementedError
        yield


class PrefillInstance(Instance):
    role = "prefill"

    def __init__(self, *args, **kwargs) -> None:
        self.waiting: deque[Req] = deque()
        self.running: list[Req] = []
        super().__init__(*args, **kwargs)

    def enqueue(self, req: Req) -> None:
        self.waiting.append(req)
        self.outstanding_tokens += req.input - req.cached
        self.kick()

    @property
    def queue_len(self) -> int:
        return len(self.waiting)

    def _schedule(self) -> tuple[list[Req], list[int]]:
        """FCFS: continue running chunked prefills, then admit waiting requests in order while
        the token budget, the sequence limit and free KV blocks allow (head-of-line)."""
        budget = self.max_tokens
        batch: list[Req] = []
        chunks: list[int] = []
        for req in self.running:
            if budget <= 0:
                break
            n = min(req.input - req.computed, self.chunk, budget)
            batch.append(req)
            chunks.append(n)
            budget -= n
        now = self.env.now
        while self.waiting and budget > 0 and len(self.running) < self.max_seqs:
            req = self.waiting[0]
            need = self.blocks.blocks_for(req.input)
            if not self.blocks.can_allocate(need):
                break
            self.waiting.popleft()
            self.blocks.allocate(now, need)
            req.p_blocks = need
            req.t_prefill_start = now
            self.running.append(req)
            n = min(req.input - req.computed, self.chunk, budget)
            batch.append(req)
            chunks.append(n)
            budget -= n
        return batch, chunks

    def _loop(self):
        while True:
            batch, chunks = self._schedule()
            if not batch:
                yield self._sleep()
                continue
            new = np.fromiter(chunks, dtype=np.int64, count=len(chunks))
            cached = np.fromiter((r.computed for r in batch), dtype=np.int64, count=len(batch))
            yield self._step(self.step_model.step_time(new, cached))
            now = self.env.now
            for req, n in zip(batch, chunks, strict=True):
                req.computed += n
                self.outstanding_tokens -= n
                if req.computed >= req.input:
                    self.running.remove(req)
                    req.t_prefill_end = now
                    self.sim.prefill_finished(req, self)

    def release(self, req: Req, state: str = "used") -> None:
        """Free a request's prefill-side blocks (after its KV has been handed over)."""
        if req.p_blocks:
            self.blocks.release(self.env.now, req.p_blocks, state)
            req.p_blocks = 0
            self.kick()


class DecodeInstance(Instance):
    role = "decode"

    def __init__(self, *args, **kwargs) -> None:
        self.waiting: deque[Req] = deque()  # waiting for admission (pull) / reservation (push)
        self.incoming = 0  # admitted, KV still arriving
        self.ready: list[Req] = []
        self.preempted: deque[Req] = deque()
        self.recompute: list[Req] = []
        super().__init__(*args, **kwargs)
        self.batch = DecodeBatch(self.max_seqs)
        self.swap = self.pool.preemption == "swap"

    @property
    def queue_len(self) -> int:
        return len(self.waiting) + len(self.preempted)

    @property
    def slots_taken(self) -> int:
        return self.batch.n + self.incoming + len(self.ready) + len(self.recompute)

    def load(self) -> float:
        """Routing signal: KV blocks in use or promised, as a share of capacity."""
        return (self.blocks.allocated + sum(r.d_blocks for r in self.waiting)) / max(
            self.blocks.capacity, 1
        )

    def enqueue(self, req: Req) -> None:
        self.waiting.append(req)
        self.outstanding_tokens += req.output
        self.kick()

    def deliver(self, req: Req) -> None:
        """The request's KV is here: it joins the batch at the next step."""
        self.incoming -= 1
        self.ready.append(req)
        self.kick()

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
            if self.swap:
                self.incoming += 1
                self.sim.swap_in(req, self)
            else:
                req.recomputed_tokens += req.context
                self.recompute.append(req)
        self.sim.handoff.admit(self)

    def _make_room(self, need: int) -> None:
        now = self.env.now
        while need > self.blocks.free and self.batch.n > 0:
            req = self.batch.pop_newest()
            self.blocks.release(now, req.d_blocks)
            req.d_blocks = 0
            req.preemptions += 1
            self.sim.preemptions += 1
            if self.swap:
                self.sim.swap_out(req, self)
            self.preempted.appendleft(req)
            need = self.batch.blocks_needed(self.page)

    def _loop(self):
        batch = self.batch
        page = self.page
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
            need = batch.blocks_needed(page)
            if need > self.blocks.free:
                self._make_room(need)
                need = batch.blocks_needed(page)
                if batch.n == 0 and not recompute:
                    continue
            if need:
                self.blocks.allocate(now, need)
            n = batch.n
            if recompute:
                # rebuild preempted sequences' KV in the same step as the decodes
                new = np.concatenate([np.ones(n, dtype=np.int64), [r.context for r in recompute]])
                cached = np.concatenate([batch.context[:n], np.zeros(len(recompute), np.int64)])
                dt = self.step_model.step_time(new, cached)
            else:
                dt = self.step_model.decode_time(batch.context[:n])
            yield self._step(dt)
            now = self.env.now
            reqs = batch.reqs
            for i in range(n):
                req = reqs[i]
                if req.generated == 0:
                    req.t_first = now
                req.generated += 1
            self.outstanding_tokens -= n
            if need:
                # each sequence that crossed a page took one block; attribute them
                crossed = np.flatnonzero(batch.context[:n] % page == 0)
                for i in crossed.tolist():
                    reqs[i].d_blocks += 1
            for i in batch.advance():
                req = batch.remove(i)
                self.blocks.release(now, req.d_blocks)
                req.d_blocks = 0
                self.sim.finish(req)
            for req in recompute:
                batch.add(req)
            recompute.clear()

    def release(self, req: Req) -> None:
        if req.d_blocks:
            self.blocks.release(self.env.now, req.d_blocks)
            req.d_blocks = 0
            self.kick()


class ColocatedInstance(Instance):
    """Prefill and decode on one instance: decodes first, prefill chunks fill the budget."""

    role = "colocated"

    def __init__(self, *args, **kwargs) -> None:
        self.waiting: deque[Req] = deque()
        self.prefilling: list[Req] = []
        super().__init__(*args, **kwargs)
        self.batch = DecodeBatch(self.max_seqs)

    @property
    def queue_len(self) -> int:
        return len(self.waiting)

    def enqueue(self, req: Req) -> None:
        self.waiting.append(req)
        self.outstanding_tokens += req.input - req.cached + req.output
        self.kick()

    def _loop(self):
        batch = self.batch
        page = self.page
        while True:
            now = self.env.now
            n_dec = batch.n
            need = batch.blocks_needed(page)
            while need > self.blocks.free and batch.n > 0:
                # recompute preemption: back to the head of the queue, KV dropped
                req = batch.pop_newest()
                self.blocks.release(now, req.p_blocks)
                req.p_blocks = 0
                req.preemptions += 1
                req.recomputed_tokens += req.context
                req.computed = 0
                self.sim.preemptions += 1
                self.waiting.appendleft(req)
                n_dec = batch.n
                need = batch.blocks_needed(page)
            budget = self.max_tokens - n_dec
            chunks: list[int] = []
            for req in self.prefilling:
                if budget <= 0:
                    break
                c = min(self._prefill_target(req) - req.computed, self.chunk, budget)
                chunks.append(c)
                budget -= c
            while self.waiting and budget > 0 and n_dec + len(self.prefilling) < self.max_seqs:
                req = self.waiting[0]
                target = self._prefill_target(req)
                blocks = self.blocks.blocks_for(target)
                if blocks + need > self.blocks.free:
                    break
                self.waiting.popleft()
                self.blocks.allocate(now, blocks)
                req.p_blocks = blocks
                if req.t_prefill_start != req.t_prefill_start:  # NaN: first admission
                    req.t_prefill_start = now
                self.prefilling.append(req)
                c = min(target - req.computed, self.chunk, budget)
                chunks.append(c)
                budget -= c
            if n_dec == 0 and not chunks:
                yield self._sleep()
                continue
            if need:
                self.blocks.allocate(now, need)
            prefills = self.prefilling[: len(chunks)]
            new = np.concatenate([np.ones(n_dec, dtype=np.int64), np.asarray(chunks, np.int64)])
            cached = np.concatenate(
                [
                    batch.context[:n_dec],
                    np.fromiter((r.computed for r in prefills), np.int64, count=len(prefills)),
                ]
            )
            yield self._step(self.step_model.step_time(new, cached))
            now = self.env.now
            reqs = batch.reqs
            for i in range(n_dec):
                reqs[i].generated += 1
            self.outstanding_tokens -= n_dec
            if need:
                for i in np.flatnonzero(batch.context[:n_dec] % page == 0).tolist():
                    reqs[i].p_blocks += 1
            for i in batch.advance():
                req = batch.remove(i)
                self.blocks.release(now, req.p_blocks)
                req.p_blocks = 0
                self.sim.finish(req)
            for req, c in zip(prefills, chunks, strict=True):
                req.computed += c
                self.outstanding_tokens -= c
            done = [r for r in prefills if r.computed >= self._prefill_target(r)]
            for req in done:
                self.prefilling.remove(req)
                self._prefill_complete(req, now)

    def _prefill_target(self, req: Req) -> int:
        """Tokens whose KV must exist before decoding: the prompt, plus what was generated
        before a recompute preemption."""
        return req.input + req.generated

    def _prefill_complete(self, req: Req, now: float) -> None:
        if req.generated == 0:
            # the step that finishes the prompt samples the first token
            req.t_prefill_end = now
            req.t_first = now
            req.t_decode_start = now
            req.generated = 1
            self.outstanding_tokens -= 1
        req.context = req.computed
        if req.generated >= req.output:
            self.blocks.release(now, req.p_blocks)
            req.p_blocks = 0
            self.sim.finish(req)
            return
        self.batch.add(req)
