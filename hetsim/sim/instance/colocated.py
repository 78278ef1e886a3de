"""A colocated instance, the aggregated baseline: decodes first, then prefill chunks in the
remaining token budget, in one step (vLLM V1's scheduler); or, where prompts do not mix with
decodes (``mixed_chunk``, SGLang's default), a prompt-only step of up to the whole budget
whenever a prompt can start and a decode-only step otherwise (SGLang's
``get_next_batch_to_run``). With ``speculative`` on the pool the decodes verify ``k + 1``
positions each (and take that much of the token budget); prefill chunks do not speculate."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from hetsim.kv.lifecycle import COMPUTING, PREFILL, QUEUED
from hetsim.perf.runtimes import pool_mixes_prompts
from hetsim.perf.speculative import speculative_step
from hetsim.sim.instance.base import Instance
from hetsim.sim.instance.batch import DecodeBatch
from hetsim.sim.instance.prefill import PrefillInstance
from hetsim.sim.instance.speculative import SpeculativeBatch
from hetsim.sim.scheduler import prefill_chunks
from hetsim.sim.state import Req

__all__ = ["ColocatedInstance"]


class ColocatedInstance(Instance):
    """Prefill and decode on one instance: decodes first, prefill chunks fill the budget."""

    role = "colocated"

    def __init__(self, *args, **kwargs) -> None:
        self.waiting: deque[Req] = deque()
        self.prefilling: list[Req] = []
        super().__init__(*args, **kwargs)
        spec = self.pool.speculative
        self.spec = None if spec is None else speculative_step(self.step_model, spec.tokens)
        # tokens a running sequence brings to a step: one, or k + 1 under speculation
        self.per_decode = 1 if spec is None else spec.tokens + 1
        self.batch: DecodeBatch | SpeculativeBatch = (
            DecodeBatch(self.max_seqs, self.page)
            if spec is None
            else SpeculativeBatch(self.max_seqs, self.page, spec, self.gid, self.seed)
        )
        pool = self.pool
        batching = pool.batching
        self.mixed = pool_mixes_prompts(pool)
        # (steps, share of the token budget) of TensorRT-LLM's batch waiting; None: off
        self.batch_wait = (
            (batching.batch_wait_timeout_iters, batching.batch_wait_max_tokens_ratio)
            if batching.batch_waits
            else None
        )
        self._waited = 0  # decode-only steps in a row that held prompts back
        # (timeout, batching wait) steps of TensorRT-LLM's attention-DP balancing; None: off.
        # Its count runs through every step, so such a pool takes its steps one by one
        self.adp_balance = (
            (batching.attention_dp_balance_timeout_iters, batching.attention_dp_batching_wait_iters)
            if batching.attention_dp_balance_timeout_iters
            else None
        )
        self._adp_waited = self._adp_batched = 0
        # SGLang's scheduler_recv_interval: arrivals wait in the inbox until the scheduler
        # takes them in, every `recv_interval` decode steps counted from `_recv_anchor` (the
        # step count when it last took them in after a prompt step or idling)
        self.recv_interval = batching.scheduler_recv_interval
        self.inbox: deque[Req] = deque()
        self._recv_anchor = 0
        self._recv_now = True

    @property
    def queue_len(self) -> int:
        return len(self.waiting) + len(self.inbox)

    def enqueue(self, req: Req) -> None:
        self.outstanding_tokens += req.input - req.cached + req.output
        self._mark(req, PREFILL, QUEUED)
        if self.recv_interval > 1:
            # the steps until the scheduler takes it in are taken one by one
            self.inbox.append(req)
            self.kick()
            return
        # behind a queue that no prompt joins from (its head does not fit, or the decodes
        # leave no budget) it changes nothing until the batch does: a fast-forward goes on
        behind = bool(self.waiting)
        self.waiting.append(req)
        if not (behind and self._ff is not None):
            self.kick()

    def _receive(self) -> None:
        """SGLang's ``SchedulerRecvSkipper`` at the top of a scheduler iteration: a decode step
        weighs 1 and a prompt step 1000, and the scheduler takes in new requests whenever the
        weights since it last did reach the interval. An idle engine spins through its
        iterations in microseconds: it takes them in at once (taken as immediate)."""
        steps = self._steps
        if self._recv_now:
            self._recv_now = False
            self._recv_anchor = steps
        elif (steps - self._recv_anchor) % self.recv_interval:
            return
        self.waiting.extend(self.inbox)
        self.inbox.clear()

    def forget(self, req: Req) -> None:
        if self._ff is not None:
            self._cut()
        if req in self.waiting:
            self.waiting.remove(req)
        if req in self.inbox:
            self.inbox.remove(req)
        if req in self.prefilling:
            self.prefilling.remove(req)
        if req in self.batch.reqs:
            self.batch.remove(self.batch.reqs.index(req))
            req.p_blocks = self.blocks.blocks_for(req.context)

    def _drop_requests(self) -> list[tuple[Req, bool]]:
        out = [(r, False) for r in (*self.inbox, *self.waiting)]
        out += [(r, True) for r in self.prefilling]
        out += [(r, True) for r in self.batch.drain()]
        self.inbox.clear()
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
            if self.recv_interval > 1:
                self._receive()
            if self.mixed:
                need = self._make_room(now)
                chunks = self._schedule(now, batch.n, need)
            else:
                chunks, need = self._prompts_first(now)
            n_dec = batch.n
            if n_dec == 0 and not chunks:
                self._recv_now = True  # idle: what arrives is taken in at once
                if self.inbox:
                    continue
                yield self._sleep()
                continue
            if need:
                blocks.allocate(now, need)
            prefills = self.prefilling[: len(chunks)]
            if self.spec is None and not chunks and self.fast_forward and not self._holding:
                # no prompt joins while nothing else happens: the queue's head stays blocked
                # (blocks only shrink, the decodes' slots and budget stay the same); prompts
                # held by batch waiting go after a count of steps: those are taken one by one
                run = self._run_steps(now)
                if run is not None:
                    yield run[0]
                    self._apply_step(self.env.now, n_dec, [], [], run[1])
                    continue
            if chunks and not self.mixed:  # the decodes wait out a prompt-only step
                yield self._step(*self._priced_prompts(prefills, chunks))
                self._recv_now = True
                self._advance_prompts(self.env.now, prefills, chunks)
                continue
            computed = np.fromiter((r.computed for r in prefills), np.int64, count=len(prefills))
            yield self._step(*self._priced(chunks, computed))
            self._recv_now = self._recv_now or bool(chunks)
            self._apply_step(self.env.now, n_dec, prefills, chunks)

    @property
    def _holding(self) -> bool:
        """Whether arrivals wait for the scheduler to take them in, batch waiting holds prompts
        back, or attention-DP balancing counts steps: each step until then is taken alone."""
        return bool(self.inbox) or self._waited > 0 or self.adp_balance is not None

    def _priced(self, chunks: list[int], computed: np.ndarray) -> tuple[float, float]:
        """Seconds of the step and the joules its measured ops draw below tdp (0 without
        measured power; priced after the time, whose kernel prices the step model keeps for
        it): speculative, decode only, or decodes beside prompt chunks."""
        batch, sm, spec, measured = self.batch, self.step_model, self.spec, self.measured_power
        if spec is not None:
            batch.begin()
            contexts, new = batch.contexts(), np.asarray(chunks, np.int64)
            dt = spec.step_time(contexts, new, computed)
            return dt, spec.below_tdp(contexts, new, computed) if measured else 0.0
        if not chunks:
            # decode only (most steps): the decode pools' O(1) closed form (it may differ
            # from the generic pricing below in the last place)
            dt = batch.step_time(sm)
            return dt, batch.below_tdp(sm) if measured else 0.0
        new = np.concatenate([np.ones(batch.n, np.int64), np.asarray(chunks, np.int64)])
        cached = np.concatenate([batch.contexts(), computed])
        dt = sm.step_time(new, cached)
        return dt, sm.below_tdp(new, cached) if measured else 0.0

    def _prompts_first(self, now: float) -> tuple[list[int], int]:
        """SGLang's order without mixed chunks: (the chunks of a prompt-only step, 0) when a
        prompt can start or continue, admitted only where the decodes' next blocks still fit
        beside it (as SGLang reserves room for the running decodes); else ([], the decode
        step's new blocks), preempting for them."""
        chunks = self._pack(0, self._admit(now, self.batch.blocks_needed()))
        if chunks:
            return chunks, 0
        return [], self._make_room(now)

    def _priced_prompts(self, prefills: list[Req], chunks: list[int]) -> tuple[float, float]:
        """A prompt-only step: its chunks after the tokens each prompt computed before, priced
        as a prefill instance prices its steps (memoised: a prompt's chunks repeat)."""
        computed, sm = tuple([r.computed for r in prefills]), self.step_model
        dt = sm.chunks_time(tuple(chunks), computed)
        return dt, sm.below_tdp(chunks, computed) if self.measured_power else 0.0

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
        """Prefill chunks in the token budget and the sequence slots the decodes leave, packed
        by the chunked-prefill rule; waiting requests are admitted as the rule takes them.
        Empty while batch waiting or attention-DP balancing holds the prompts back (a
        decode-only step)."""
        if self.batch_wait is not None and n_dec and self._held(n_dec, need):
            return []
        if self.adp_balance is not None and self._balance_held(n_dec, need):
            return []
        return self._pack(n_dec, self._admit(now, need))

    def _pack(self, n_dec: int, joining: Iterator[int]) -> list[int]:
        """The next step's prompt chunks beside ``n_dec`` decodes (0: a prompt-only step, whose
        prompts still take only the sequence slots the running decodes leave)."""
        decoding = self.batch.n
        chunks, _ = prefill_chunks(
            [self._prefill_target(req) - req.computed for req in self.prefilling],
            joining,
            token_budget=self.max_tokens - n_dec * self.per_decode,
            chunk=self.chunk,
            max_seqs=self.max_seqs - decoding,
        )
        return chunks

    def _would_start(self, n_dec: int, need: int) -> list[int]:
        """The prompt chunks the next step would start, admitting nobody (what
        :meth:`_admit` would take)."""
        free = self.blocks.free - need

        def fitting() -> Iterator[int]:
            nonlocal free
            for req in self.waiting:
                target = self._prefill_target(req)
                blocks = self.blocks.blocks_for(target)
                if blocks > free:
                    return
                free -= blocks
                yield target - req.computed

        return self._pack(n_dec, fitting())

    def _held(self, n_dec: int, need: int) -> bool:
        """TensorRT-LLM's batch waiting (``PyExecutor._waiting_requests``): a step that would
        start prompts beside decodes runs the decodes alone instead, until it has done so
        ``timeout`` times in a row or the step's tokens (each prompt's whole length, one per
        decode) reach ``ratio`` x the token budget; then the prompts go and the count starts
        over.
        A step with no prompt to start, or no decode, neither waits nor counts."""
        chunks = self._would_start(n_dec, need)
        if not chunks:
            return False
        timeout, ratio = self.batch_wait
        # it counts each prompt whole (``len(req.get_tokens(0))``), not the chunk it would
        # compute: the running prompts served first, then the queue's head in order
        served = len(self.prefilling)
        starting = self.prefilling[: len(chunks)]
        starting += [self.waiting[i] for i in range(max(0, len(chunks) - served))]
        tokens = sum(self._prefill_target(r) for r in starting) + n_dec * self.per_decode
        if self._waited >= timeout or tokens >= ratio * self.max_tokens:
            self._waited = 0
            return False
        self._waited += 1
        return True

    def _balance_held(self, n_dec: int, need: int) -> bool:
        """TensorRT-LLM's attention-DP balancing (``PyExecutor._balance_adp_requests``),
        asked at every step: prompts start only in a step where every rank has one to start
        and a free slot, or after ``timeout`` steps without (the count runs on through steps
        with no prompt at all), or when some rank has nothing decoding; and, where every rank
        decodes, only after ``batching_wait`` such steps. hetsim does not place requests on
        ranks: the ranks are taken as evenly loaded, as the runtime's request assignment keeps
        them (every rank has a prompt when ``dp`` prompts would start, decodes when ``dp``
        sequences decode)."""
        timeout, batching_wait = self.adp_balance
        dp = self.pool.dp
        all_decode = n_dec >= dp
        if n_dec < self.max_seqs and len(self._would_start(n_dec, need)) >= dp:
            self._adp_waited = 0
            if all_decode and self._adp_batched < batching_wait:
                self._adp_batched += 1
                return True
            self._adp_batched = 0
            return False
        self._adp_waited += 1
        if self._adp_waited >= timeout or not all_decode:
            self._adp_waited = 0
            return False
        return True

    def _admit(self, now: float, need: int) -> Iterator[int]:
        """Admit waiting requests in order, each as the packing rule takes it, while blocks for
        its prefill target fit beside the decodes' ``need`` (head-of-line); yields the tokens
        each has to compute."""
        waiting, blocks = self.waiting, self.blocks
        while waiting:
            req = waiting[0]
            target = self._prefill_target(req)
            need_prompt = blocks.blocks_for(target)
            if need_prompt + need > blocks.free:
                return
            waiting.popleft()
            blocks.allocate(now, need_prompt)
            req.p_blocks = need_prompt
            if req.t_prefill_start != req.t_prefill_start:  # NaN: first admission
                req.t_prefill_start = now
                self._mark(req, PREFILL, COMPUTING)
            self.prefilling.append(req)
            yield target - req.computed

    def _apply_step(
        self, now: float, n_dec: int, prefills: list[Req], chunks: list[int], run=None
    ) -> None:
        """The end of a step (or of a fast-forward's decode-only steps)."""
        batch, blocks = self.batch, self.blocks
        batch.fresh.clear()  # colocated sequences join with their first token already out
        if run is None:
            finished = batch.advance()
            self._emitted(now, n_dec)
        else:
            finished = self._close_run()
        for i in finished:
            req = batch.remove(i)
            blocks.release(now, blocks.blocks_for(req.context))
            req.p_blocks = 0
            self._finish(req)
        self._advance_prompts(now, prefills, chunks)

    def _advance_prompts(self, now: float, prefills: list[Req], chunks: list[int]) -> None:
        """The prompts' part of a step's end: chunks computed, finished prompts decoding."""
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
