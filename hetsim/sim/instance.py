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
from collections.abc import Callable

import numpy as np
import simpy

from hetsim.kv.blocks import BlockPool
from hetsim.sim.ports import Handover, Ledger, Stats, Swap
from hetsim.sim.state import Req

__all__ = ["Instance", "PrefillInstance", "DecodeInstance", "ColocatedInstance", "DecodeBatch"]


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
        self.fresh: list[Req] = []  # added with no output yet: their first token comes next

    def add(self, req: Req) -> None:
        i, step = self.n, self.step
        rel = req.context - step
        self.rel[i] = rel
        self.gen[i] = req.generated - step
        end = step + max(req.output - req.generated, 1)
        self.finish_at[i] = end
        self._finishing[end] = self._finishing.get(end, 0) + 1
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

    def blocks_needed(self) -> int:
        """New blocks for the token each sequence writes this step (its context is a multiple
        of the page size)."""
        return self.residues[(-self.step) % self.page]

    def advance(self) -> list[int]:
        """One token for every sequence; returns the positions that finished (descending)."""
        self.step += 1
        if self._finishing.pop(self.step, 0) == 0:
            return []
        return np.flatnonzero(self.finish_at[: self.n] == self.step)[::-1].tolist()

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
            self._finishing[end] -= 1
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


class Instance:
    """What every instance has: a step model, KV blocks, a wake-up event, busy-time accounting.

    Its loop calls out through ports bound once in :meth:`connect`: the lifecycle protocol
    (``handover``), host swap, the request book's ``finish`` and the prefix caches."""

    role = "instance"

    def __init__(
        self,
        env: simpy.Environment,
        pool,
        index: int,
        gid: int,
        step_model,
        footprint,
        stats: Stats,
        ledger: Ledger,
    ) -> None:
        self.env = env
        self.stats = stats
        self._mark = ledger.mark
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
        self.prefix_cache = None  # set by the prefix caches when this instance computes prompts
        self.prefix_link = None
        self._wake = None
        self.alive = True
        self.down = 0  # outages in progress (faults may overlap)
        self.epoch = 0  # crashes so far: KV promised before a crash is gone after it
        self.slowdown = 1.0  # straggler factor on step times
        self._restart = None
        self.process = self.env.process(self._run())

    def connect(
        self,
        handover: Handover,
        swap: Swap,
        finish: Callable[[Req], None],
        prompt_cached: Callable[[Req, Instance], None],
    ) -> None:
        """Bind the ports the loop calls (once, so a step pays no attribute chains)."""
        self.handover = handover
        self.host_swap = swap
        self._finish = finish
        self._prompt_cached = prompt_cached

    def _run(self):
        """The step loop, restarted after a crash once the instance is back."""
        while True:
            try:
                yield from self._loop()
            except simpy.Interrupt:
                self._wake = None
                while not self.alive:
                    yield self._restart

    def crash(self) -> list[tuple[Req, bool]]:
        """The instance dies: its HBM KV is gone. Returns the requests it had, each with whether
        its KV was lost (else it can simply be routed elsewhere)."""
        now = self.env.now
        self.down += 1
        if self.down > 1:  # already down: overlapping faults extend the outage
            return []
        self.alive = False
        self.epoch += 1
        self._restart = self.env.event()
        affected = self._drop_requests()
        self.blocks.clear(now)
        self.outstanding_tokens = 0
        if self.process.is_alive and self.env.active_process is not self.process:
            self.process.interrupt("crash")
        return affected

    def restart(self) -> bool:
        """End one outage; True when the instance is up again (no other outage remains)."""
        self.down -= 1
        if self.down > 0:
            return False
        self.alive = True
        if self._restart is not None and not self._restart.triggered:
            self._restart.succeed()
        return True

    def _drop_requests(self) -> list[tuple[Req, bool]]:  # pragma: no cover - overridden
        return []

    def kick(self) -> None:
        """Wake the loop if it sleeps (new work or freed capacity)."""
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _sleep(self):
        self._wake = self.env.event()
        return self._wake

    def _step(self, dt: float):
        dt *= self.slowdown
        self.busy_s += dt
        self.steps += 1
        self.stats.steps += 1
        return self.env.timeout(dt)

    def _loop(self):  # pragma: no cover - overridden
        raise NotImplementedError
        yield


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
        self._mark(req, "P", "queued")
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
            self._mark(req, "P", "computing")
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
            dt = self.step_model.step_time(new, cached)
            if self.handover.layerwise:
                for req, n in zip(batch, chunks, strict=True):
                    if req.computed + n >= req.input:
                        self.handover.last_step_started(req, self, dt)
            attempts = [r.retries for r in batch]
            yield self._step(dt)
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
        self.blocks.move(self.env.now, req.p_blocks, "used", "held")
        req.p_state = "held"
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
            self.kick()


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
        self.batch = DecodeBatch(self.max_seqs, self.page)
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
        self.waiting.append(req)
        self._mark(req, "D", "waiting")
        self.queued_blocks += self.blocks.blocks_for(req.input)
        self.outstanding_tokens += req.output
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
        while self.batch.n:
            out.append((self.batch.remove(self.batch.n - 1), True))
        self.batch.fresh.clear()
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

    def _loop(self):
        batch = self.batch
        blocks = self.blocks
        sm = self.step_model
        sparse = sm.model.is_sparse_attention
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
            if need > blocks.free:
                self._make_room(need)
                need = batch.blocks_needed()
                if batch.n == 0 and not recompute:
                    continue
            if need:
                blocks.allocate(now, need)
            n = batch.n
            if recompute:
                # rebuild preempted sequences' KV in the same step as the decodes
                new = np.concatenate([np.ones(n, dtype=np.int64), [r.context for r in recompute]])
                cached = np.concatenate([batch.contexts(), np.zeros(len(recompute), np.int64)])
                dt = sm.step_time(new, cached)
            elif sparse:
                dt = sm.decode_time(batch.contexts())
            else:
                dt = sm.decode_time_from_sum(n, batch.context_sum())
            yield self._step(dt)
            now = self.env.now
            for req in batch.fresh:
                req.t_first = now
            batch.fresh.clear()
            self.outstanding_tokens -= n
            for i in batch.advance():
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
        self.blocks.allocate(self.env.now, need, "reserved")
        req.d_blocks = need
        req.d_state = "reserved"
        self.incoming += 1
        self.receiving[req.id] = req

    def commit(self, req: Req) -> None:
        """The KV has landed in the reservation: the blocks are in use, the request joins the
        batch at the next step."""
        self.blocks.move(self.env.now, req.d_blocks, "reserved", "used")
        req.d_state = "used"
        req.context = req.input
        self.deliver(req)

    def adopt(self, req: Req) -> None:
        """A request whose KV is gone recomputes its prompt here (the fallback policy)."""
        req.decode = self
        req.context = req.input
        self.preempted.append(req)
        self.kick()

    def free(self, req: Req) -> None:
        """Give back the blocks the request holds here, in the state they are in."""
        if req.d_blocks:
            self.blocks.release(self.env.now, req.d_blocks, req.d_state)
            req.d_blocks = 0
            self.kick()


class ColocatedInstance(Instance):
    """Prefill and decode on one instance: decodes first, prefill chunks fill the budget."""

    role = "colocated"

    def __init__(self, *args, **kwargs) -> None:
        self.waiting: deque[Req] = deque()
        self.prefilling: list[Req] = []
        super().__init__(*args, **kwargs)
        self.batch = DecodeBatch(self.max_seqs, self.page)

    @property
    def queue_len(self) -> int:
        return len(self.waiting)

    def enqueue(self, req: Req) -> None:
        self.waiting.append(req)
        self.outstanding_tokens += req.input - req.cached + req.output
        self._mark(req, "P", "queued")
        self.kick()

    def forget(self, req: Req) -> None:
        if req in self.waiting:
            self.waiting.remove(req)
        if req in self.prefilling:
            self.prefilling.remove(req)
        if req in self.batch.reqs:
            self.batch.remove(self.batch.reqs.index(req))
            req.p_blocks = self.blocks.blocks_for(req.context)

    def _drop_requests(self) -> list[tuple[Req, bool]]:
        out = [(r, False) for r in self.waiting] + [(r, True) for r in self.prefilling]
        while self.batch.n:
            out.append((self.batch.remove(self.batch.n - 1), True))
        self.batch.fresh.clear()
        self.waiting.clear()
        self.prefilling.clear()
        for req, _ in out:
            req.p_blocks = 0
        return out

    free = PrefillInstance.free

    def _loop(self):
        batch = self.batch
        blocks = self.blocks
        while True:
            now = self.env.now
            need = self._make_room(now)
            n_dec = batch.n
            chunks = self._schedule(now, n_dec, need)
            if n_dec == 0 and not chunks:
                yield self._sleep()
                continue
            if need:
                blocks.allocate(now, need)
            prefills = self.prefilling[: len(chunks)]
            new = np.concatenate([np.ones(n_dec, dtype=np.int64), np.asarray(chunks, np.int64)])
            cached = np.concatenate(
                [
                    batch.contexts(),
                    np.fromiter((r.computed for r in prefills), np.int64, count=len(prefills)),
                ]
            )
            yield self._step(self.step_model.step_time(new, cached))
            self._apply_step(self.env.now, n_dec, prefills, chunks)

    def _make_room(self, now: float) -> int:
        """Preempt the newest sequences until this step's new decode blocks fit; returns them.
        Recompute preemption: back to the head of the queue, KV dropped."""
        batch, blocks = self.batch, self.blocks
        need = batch.blocks_needed()
        while need > blocks.free and batch.n > 0:
            req = batch.pop_newest()
            blocks.release(now, blocks.blocks_for(req.context))
            req.p_blocks = 0
            req.preemptions += 1
            req.recomputed_tokens += req.context
            req.computed = 0
            self.stats.preemptions += 1
            self.waiting.appendleft(req)
            need = batch.blocks_needed()
        return need

    def _schedule(self, now: float, n_dec: int, need: int) -> list[int]:
        """Prefill chunks for the budget the decodes leave: running prefills first, then waiting
        requests in order while slots and blocks (beyond the decodes' ``need``) allow."""
        blocks = self.blocks
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
            need_prompt = blocks.blocks_for(target)
            if need_prompt + need > blocks.free:
                break
            self.waiting.popleft()
            blocks.allocate(now, need_prompt)
            req.p_blocks = need_prompt
            if req.t_prefill_start != req.t_prefill_start:  # NaN: first admission
                req.t_prefill_start = now
                self._mark(req, "P", "computing")
            self.prefilling.append(req)
            c = min(target - req.computed, self.chunk, budget)
            chunks.append(c)
            budget -= c
        return chunks

    def _apply_step(self, now: float, n_dec: int, prefills: list[Req], chunks: list[int]) -> None:
        batch, blocks = self.batch, self.blocks
        batch.fresh.clear()  # colocated sequences join with their first token already out
        self.outstanding_tokens -= n_dec
        for i in batch.advance():
            req = batch.remove(i)
            blocks.release(now, blocks.blocks_for(req.context))
            req.p_blocks = 0
            self._finish(req)
        # requests taken away during the step (retried or failed) are skipped
        kept = [(r, c) for r, c in zip(prefills, chunks, strict=True) if r in self.prefilling]
        for req, c in kept:
            req.computed += c
            self.outstanding_tokens -= c
        done = [r for r, _ in kept if r.computed >= self._prefill_target(r)]
        for req in done:
            self.prefilling.remove(req)
            self._prefill_complete(req, now)

    def _prefill_target(self, req: Req) -> int:
        """Tokens whose KV must exist before decoding: the prompt, plus what was generated
        before a recompute preemption."""
        return req.input + req.generated

    def _prefill_complete(self, req: Req, now: float) -> None:
        if req.generated == 0:
            self._prompt_cached(req, self)
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
            self._finish(req)
            return
        self.batch.add(req)
