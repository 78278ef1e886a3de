"""What every serving instance has: a step loop as a simpy process, KV blocks, a wake-up event,
busy-time accounting, crash and restart."""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappush

import numpy as np
import simpy
from simpy.events import NORMAL

from hetsim.kv.blocks import BlockPool, BlockState
from hetsim.kv.tiers import Cascade
from hetsim.perf.speculative import SpeculativeStep
from hetsim.sim.ports import Handover, Ledger, Stats, Swap
from hetsim.sim.state import Req

__all__ = ["Instance", "MAX_RUN"]

#: steps one fast-forward may take at most (bounds its arrays)
MAX_RUN = 4096
#: the same with sparse attention, whose steps are priced one by one over every context
SPARSE_RUN = 64


class _At(simpy.Event):
    """An event that fires at the absolute time ``t``: a timeout's ``now + delay`` might
    round to a neighbouring float, and a fast-forward must end exactly where its last step
    would have (inlined like simpy's own Timeout)."""

    def __init__(self, env: simpy.Environment, t: float) -> None:
        self.env = env
        self.callbacks = []
        self._value = None
        self._ok = True
        heappush(env._queue, (t, NORMAL, next(env._eid), self))  # noqa: SLF001


class Instance:
    """What every instance has: a step model, KV blocks, a wake-up event, busy-time accounting.

    Its loop calls out through ports bound once in :meth:`connect`: the lifecycle protocol
    (``handover``), host swap, the request book's ``finish`` and the prefix caches."""

    role = "instance"
    #: the speculative step of a pool that speculates (decode and colocated instances set it)
    spec: SpeculativeStep | None = None
    #: take a steady decode batch's steps several to an event (False: one event per step)
    fast_forward = True

    @staticmethod
    def horizon() -> float:
        """The latest time an event may happen before the run's horizon guard steps in (the
        engine binds the guard's limit)."""
        return math.inf

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
        seed: int = 0,
    ) -> None:
        self.env = env
        self.seed = seed  # the simulation's: instances that draw at random mix it in
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
        self.busy_s = 0.0  # counts each step whole from its start
        self.step_end = 0.0  # when the current (or last) step ends
        self.busy_before_window = 0.0  # busy time before the measured window opened
        self.steps = 0
        self.outstanding_tokens = 0  # routing signal: work queued or running here
        self.prefix_cache = None  # set by the prefix caches when this instance computes prompts
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
        # the interrupted step stops now: its unserved remainder was never busy
        self.busy_s -= max(0.0, self.step_end - now)
        self.step_end = min(self.step_end, now)
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

    def straggle(self, factor: float) -> None:
        """Steps take ``factor`` times as long from now on (1.0: back to normal)."""
        self.slowdown = factor

    def attach_prefix_cache(self, cache: Cascade) -> None:
        """The prefix cache this instance looks prompts up in: its tiers, highest first (each
        lower tier's store carries the link its hits load over)."""
        self.prefix_cache = cache

    def release_late(self, blocks: int, state: BlockState) -> None:
        """Free blocks no request counts any more, which their owner frees late (a lease that
        ran out, a reservation abandoned after missed heartbeats)."""
        self.blocks.release(self.env.now, blocks, state)
        self.kick()

    def _emitted(self, now: float, decodes: int) -> None:
        """A step's output tokens leave the routing signal: one per decode, or under
        speculation what the batch emitted, whose rejected drafts give their blocks back."""
        if self.spec is None:
            self.outstanding_tokens -= decodes
            return
        batch = self.batch
        self.outstanding_tokens -= batch.emitted
        if batch.released:
            self.blocks.release(now, batch.released)

    def kick(self) -> None:
        """Wake the loop if it sleeps (new work or freed capacity)."""
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _sleep(self):
        self._wake = self.env.event()
        return self._wake

    def busy_until(self, t: float) -> float:
        """Busy time up to ``t`` (not before the current step started): ``busy_s`` less
        the part of a step still running at ``t``."""
        return self.busy_s - max(0.0, self.step_end - t)

    def open_window(self) -> None:
        """The measured window opens now: busy time from here on is what utilisation counts."""
        self.busy_before_window = self.busy_until(self.env.now)

    def _step(self, dt: float):
        dt *= self.slowdown
        self.busy_s += dt
        self.step_end = self.env._now + dt  # noqa: SLF001 - the clock, no call
        self.steps += 1
        self.stats.steps += 1
        return self.env.timeout(dt)

    def _run_steps(self, now: float, dt: float) -> tuple[simpy.Event, int, float] | None:
        """Fast-forward: the steps a steady decode batch takes before anything could change
        it, in one event, or None to take this one step alone.

        The caller has allocated this step's blocks and priced it (``dt``); the batch takes
        no new sequence and runs no prompt. Its later steps are the same batch a token
        further each, so the run may go on while (1) no sequence finishes before its last
        step, (2) each step's new blocks fit, and (3) each step ends before the next event
        already scheduled (nothing else in the run acts before it: no arrival, delivery,
        fault or sample can see or change the batch in between) and within the horizon.
        Blocks, busy time and step counts are booked at the steps' own times, so every
        figure is what step-by-step simulation gives. Returns the event at the last step's
        end, the steps taken and when the first ends."""
        batch = self.batch
        left = batch.steps_to_finish()
        slow = self.slowdown
        limit = self.env.peek()
        if left <= 1 or now + dt * slow >= limit:
            return None
        # contexts only grow, so no later step is shorter than this one (an estimate that
        # sizes the arrays: the run itself goes by each step's own time)
        room = (limit - now) / (dt * slow) + 2 if limit < math.inf else MAX_RUN
        cap = SPARSE_RUN if self.step_model.model.is_sparse_attention else MAX_RUN
        needs = batch.needs(int(min(left, cap, room)))
        # steps after this one whose blocks fit (blocks are only taken until the run ends)
        fit = 1 + int(np.searchsorted(np.cumsum(needs[1:]), self.blocks.free, side="right"))
        if fit <= 1:
            return None
        dts = self._decode_times(fit) * slow
        ends = np.add.accumulate(np.concatenate(([now], dts)))[1:]
        k = min(
            int(np.searchsorted(ends, limit, side="left")),
            int(np.searchsorted(ends, self.horizon(), side="right")),
        )
        if k <= 1:
            return None
        return self._book_steps(dts[:k].tolist(), ends[:k].tolist(), needs[:k].tolist())

    def _book_steps(
        self, dts: list[float], ends: list[float], needs: list[int]
    ) -> tuple[simpy.Event, int, float]:
        """Book a fast-forward's steps as step-by-step simulation would, each at its start."""
        blocks = self.blocks
        for i in range(1, len(needs)):
            if needs[i]:
                blocks.allocate(ends[i - 1], needs[i])
        busy = self.busy_s
        for d in dts:
            busy += d
        self.busy_s = busy
        self.step_end = ends[-1]
        k = len(dts)
        self.steps += k
        self.stats.steps += k
        return _At(self.env, ends[-1]), k, ends[0]

    def _decode_times(self, k: int) -> np.ndarray:
        """Seconds of each of the batch's next ``k`` decode steps (before stragglers)."""
        batch, sm = self.batch, self.step_model
        n = batch.n
        if sm.model.is_sparse_attention:
            contexts = batch.contexts()
            return np.array([sm.decode_time(contexts + i) for i in range(k)], np.float64)
        return sm.decode_times_from_sums(n, batch.context_sum() + n * np.arange(k))

    def _loop(self):  # pragma: no cover - overridden
        raise NotImplementedError
        yield
