"""What every serving instance has: a step loop as a simpy process, KV blocks, a wake-up event,
busy-time accounting, crash and restart."""

from __future__ import annotations

from collections.abc import Callable

import simpy

from hetsim.kv.blocks import BlockPool, BlockState
from hetsim.kv.tiers import Cascade
from hetsim.perf.speculative import SpeculativeStep
from hetsim.sim.ports import Handover, Ledger, Stats, Swap
from hetsim.sim.state import Req

__all__ = ["Instance"]


class Instance:
    """What every instance has: a step model, KV blocks, a wake-up event, busy-time accounting.

    Its loop calls out through ports bound once in :meth:`connect`: the lifecycle protocol
    (``handover``), host swap, the request book's ``finish`` and the prefix caches."""

    role = "instance"
    #: the speculative step of a pool that speculates (decode and colocated instances set it)
    spec: SpeculativeStep | None = None

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

    def _loop(self):  # pragma: no cover - overridden
        raise NotImplementedError
        yield
