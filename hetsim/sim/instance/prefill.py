"""A prefill instance: FCFS over a max-batched-tokens budget with chunked prefill; KV blocks for
the whole prompt are allocated when a request is admitted to the batch, and stay here until
the lifecycle protocol has handed them over."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import simpy

from hetsim.kv.blocks import BlockState
from hetsim.kv.lifecycle import COMPUTING, PREFILL, QUEUED
from hetsim.sim.clock import reserve, schedule_reserved
from hetsim.sim.instance.base import Instance
from hetsim.sim.instance.fastforward import PromptRun
from hetsim.sim.instance.fastforward import plan_prompts as _plan_prompts
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
        # the last kick that left the loop asleep: its wake-up event, time and queue place
        self._kicked: tuple[simpy.Event, float, int] | None = None
        super().__init__(*args, **kwargs)

    def enqueue(self, req: Req) -> None:
        self.waiting.append(req)
        self.outstanding_tokens += req.input - req.cached
        self._mark(req, PREFILL, QUEUED)
        self.kick()

    def kick(self) -> None:
        """As :meth:`Instance.kick`, but a sleeping loop is woken only when it has something to
        start: with nothing running, a head of the queue whose blocks are not free stays
        queued (FIFO, head-of-line), so waking for it would only put the loop back to sleep.
        Under pull, prefill HBM fills with lent KV whenever decode falls behind, and arrivals
        and partial frees then wake it for nothing (about one event in ten of an overloaded
        run). Whatever frees blocks here kicks again."""
        if self._ff is not None:
            self._cut()
        wake = self._wake
        if wake is None or wake.triggered:
            return
        env = self.env
        now = env._now  # noqa: SLF001 - the clock, no call
        kicked = self._kicked
        if kicked is None or kicked[0] is not wake or kicked[1] != now:
            # the first kick of this sleep at this time: where the wake-up goes, now or at a
            # later kick at this time (the loop then sees what the events before it did)
            kicked = self._kicked = (wake, now, reserve(env))
        if not self.running and not (self.waiting and self._fits(self.waiting[0])):
            return
        self._kicked = None
        wake._value = None  # noqa: SLF001 - succeeded as simpy's Event.succeed does
        schedule_reserved(env, wake, now, kicked[2])

    def forget(self, req: Req) -> None:
        """Take a request out of this instance's queues (it is being retried or failed)."""
        if self._ff is not None:
            self._cut()
        head = bool(self.waiting) and self.waiting[0] is req
        if req in self.waiting:
            self.waiting.remove(req)
        if req in self.running:
            self.running.remove(req)
        self.held.pop(req.id, None)
        if head:  # the next in line may fit where this one did not
            self.kick()

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

    def _fits(self, req: Req) -> bool:
        """Whether blocks for ``req``'s whole prompt are free (what admits it)."""
        blocks = self._blocks
        return blocks.can_allocate(blocks.blocks_for(req.input))

    def _admit(self) -> Iterator[int]:
        """Admit waiting requests in order, each as the packing rule takes it, while KV blocks
        for its whole prompt are free (head-of-line); yields the tokens each has to compute."""
        now = self.env.now
        waiting, blocks = self.waiting, self.blocks
        while waiting:
            need = blocks.blocks_for(waiting[0].input)
            if not blocks.can_allocate(need):
                return
            req = waiting.popleft()
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
            attempts = [r.retries for r in batch]
            run = self._prompt_run(batch, chunks) if self.fast_forward else None
            if run is None:
                yield self._step(*self._priced(batch, chunks))
            else:
                yield run.event
                batch, chunks = self._close_prompt_run(run)
                attempts = attempts[: len(batch)]
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

    def _priced(self, batch: list[Req], chunks: list[int]) -> tuple[float, float]:
        """One step's seconds and the joules its measured ops draw below tdp; layer-wise
        streaming hears of each prompt this step completes as it starts."""
        computed = tuple([r.computed for r in batch])
        dt = self.step_model.chunks_time(tuple(chunks), computed)
        if self.handover.layerwise:
            for req, n in zip(batch, chunks, strict=True):
                if req.computed + n >= req.input:
                    self.handover.last_step_started(req, self, dt)
        below = self.step_model.below_tdp(chunks, computed) if self.measured_power else 0.0
        return dt, below

    # -- fast-forward of one long prompt's chunks (:mod:`hetsim.sim.instance.fastforward`) --

    def _prompt_run(self, batch: list[Req], chunks: list[int]) -> PromptRun | None:
        """With nothing waiting, the running prompts' next steps are known until one of them
        completes (nothing joins: an arrival cuts the run): take them in one event. None when
        the first step already completes a prompt, or with layer-wise streaming (it hears of
        each step)."""
        if self.waiting or self.handover.layerwise or len(batch) < len(self.running):
            return None
        remaining = [r.input - r.computed for r in batch]
        if any(n >= left for n, left in zip(chunks, remaining, strict=True)):
            return None
        run = _plan_prompts(self, [r.computed for r in batch], remaining, chunks)
        if run is None:
            return None
        run.reqs = list(batch)
        self._launch(run)
        return run

    def _end(self, run: PromptRun, m: int) -> None:
        """Book the ends of a prompt run's next ``m`` steps (none completes a prompt)."""
        reqs = run.reqs
        for s in range(run.ended, run.ended + m):
            step = run.chunk_lists[s]
            for req, n in zip(reqs, step, strict=False):
                req.computed += n
            self._outstanding -= sum(step)
        run.ended += m

    def _close_prompt_run(self, run: PromptRun) -> tuple[list[Req], list[int]]:
        """The run's last step has ended: book the rest but that step's end, which the loop
        books as a step's; returns that step's batch and chunks."""
        self._ff = None
        self._start(run, run.k)
        self._end(run, run.k - 1 - run.ended)
        last = run.chunk_lists[run.k - 1]
        return run.reqs[: len(last)], last

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
