"""What every serving instance has: a step loop as a simpy process, KV blocks, a wake-up event,
busy-time accounting, crash and restart.

Busy energy (joules per device) is booked with busy time where the step model has measured
power (:attr:`~hetsim.perf.step.StepModel.has_measured_power`, read once per instance): each
step draws ``tdp × time`` less what its measured ops draw below tdp, which the caller passes to
:meth:`Instance._step`; a straggler's longer step draws at the same power. A step cut short (a
crash) or counted up to a time inside it keeps the share of its energy its elapsed time is
(constant power within a step). Instances without measured power book no energy: the summary
charges them tdp while busy."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable

import simpy

from hetsim.kv.blocks import BlockPool, BlockState
from hetsim.kv.tiers import Cascade
from hetsim.perf.speculative import SpeculativeStep
from hetsim.sim.clock import At, cancel
from hetsim.sim.instance.fastforward import FIRST_RUN, MAX_RUN, MIN_RUN, Run, plan
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
        # whether steps book energy (else the summary charges tdp while busy): asked once here
        self.measured_power = step_model.has_measured_power
        self._tdp = step_model.tdp
        self._energy = 0.0  # joules per device, each step counted whole from its start
        self._power = 0.0  # watts per device of the current (or last) step
        self.energy_before_window = 0.0
        self._blocks = BlockPool(footprint.kv_capacity_blocks, footprint.kv_page_tokens)
        self.page = footprint.kv_page_tokens
        self.max_seqs = pool.batching.max_num_seqs
        self.max_tokens = pool.batching.max_batched_tokens
        self.chunk = pool.batching.chunk_size or pool.batching.max_batched_tokens
        self._ff: Run | None = None  # the fast-forward under way (its steps booked lazily)
        self._ff_cap = FIRST_RUN  # steps the next run plans at most
        self.horizon_limit = -math.inf  # the horizon guard's limit when last asked
        self._busy = 0.0  # counts each step whole from its start
        self._step_end = 0.0  # when the current (or last) step ends
        self.busy_before_window = 0.0  # busy time before the measured window opened
        self._steps = 0
        self._outstanding = 0  # routing signal: work queued or running here
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
        if self._ff is not None:  # the run stops with the step under way, like a step
            self._cut()
            self._ff = None
        self.alive = False
        self.epoch += 1
        # the interrupted step stops now: its unserved remainder was never busy
        self._busy -= max(0.0, self._step_end - now)
        if self.measured_power:
            self._energy -= max(0.0, self._step_end - now) * self._power
        self._step_end = min(self._step_end, now)
        self._restart = self.env.event()
        affected = self._drop_requests()
        self.blocks.clear(now)
        self._outstanding = 0
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

    def next_delivery(self, now: float) -> float:
        """The soonest after ``now`` a KV on its way here may land; inf: none is (only decode
        pools receive)."""
        return math.inf

    def _drop_requests(self) -> list[tuple[Req, bool]]:  # pragma: no cover - overridden
        return []

    def straggle(self, factor: float) -> None:
        """Steps take ``factor`` times as long from now on (1.0: back to normal)."""
        if self._ff is not None:  # the steps still to start take the new factor
            self._cut()
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
            self._outstanding -= decodes
            return
        batch = self.batch
        self._outstanding -= batch.emitted
        if batch.released:
            self.blocks.release(now, batch.released)

    def kick(self) -> None:
        """Wake the loop if it sleeps (new work or freed capacity), or end a fast-forward with
        the step under way."""
        if self._ff is not None:
            self._cut()
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _sleep(self):
        self._wake = self.env.event()
        return self._wake

    def busy_until(self, t: float) -> float:
        """Busy time up to ``t`` (not before the current step started): ``busy_s`` less
        the part of a step still running at ``t``."""
        if self._ff is not None:
            self._sync()
        return self._busy - max(0.0, self._step_end - t)

    def busy_energy_until(self, t: float) -> float:
        """Busy energy (J per device) up to ``t`` (not before the current step started), as
        :meth:`busy_until`; 0 without measured power."""
        if self._ff is not None:
            self._sync()
        return self._energy - max(0.0, self._step_end - t) * self._power

    def open_window(self) -> None:
        """The measured window opens now: busy time from here on is what utilisation counts."""
        self.busy_before_window = self.busy_until(self.env.now)
        self.energy_before_window = self.busy_energy_until(self.env.now)

    def _step(self, dt: float, below_tdp: float = 0.0):
        """A step of ``dt`` seconds whose measured ops draw ``below_tdp`` joules per device
        below ``tdp × dt`` (:meth:`~hetsim.perf.step.StepModel.below_tdp`; only read with
        measured power)."""
        dt *= self.slowdown
        self._busy += dt
        self._step_end = self.env._now + dt  # noqa: SLF001 - the clock, no call
        self._steps += 1
        self.stats.steps += 1
        if self.measured_power:
            self._book_energy(self._tdp * dt - below_tdp * self.slowdown, dt)
        return self.env.timeout(dt)

    def _book_energy(self, joules: float, dt: float) -> None:
        self._energy += joules
        self._power = joules / dt if dt > 0 else 0.0

    # -- what outside readers see: a fast-forward's steps booked up to the clock first (a
    # step's end before now is what there is to book: the next step's start comes with it) --

    @property
    def blocks(self) -> BlockPool:
        run = self._ff
        if run is not None and run.ends[run.ended] < self.env._now:  # noqa: SLF001
            self._sync()
        return self._blocks

    @property
    def outstanding_tokens(self) -> int:
        run = self._ff
        if run is not None and run.ends[run.ended] < self.env._now:  # noqa: SLF001
            self._sync()
        return self._outstanding

    @outstanding_tokens.setter
    def outstanding_tokens(self, value: int) -> None:
        self._outstanding = value

    @property
    def busy_s(self) -> float:
        run = self._ff
        if run is not None and run.ends[run.ended] < self.env._now:  # noqa: SLF001
            self._sync()
        return self._busy

    @property
    def step_end(self) -> float:
        run = self._ff
        if run is not None and run.ends[run.ended] < self.env._now:  # noqa: SLF001
            self._sync()
        return self._step_end

    @property
    def steps(self) -> int:
        run = self._ff
        if run is not None and run.ends[run.ended] < self.env._now:  # noqa: SLF001
            self._sync()
        return self._steps

    # -- fast-forward (:mod:`hetsim.sim.instance.fastforward`) --

    def _run_steps(self, now: float) -> tuple[simpy.Event, Run] | None:
        """Start a fast-forward from the step starting ``now`` (its blocks taken), or None to
        take this step alone."""
        run = plan(self, now, self._ff_cap)
        if run is None:
            return None
        self._launch(run)
        return run.event, run

    def _launch(self, run: Run) -> None:
        """The run is under way: its first step starts now, the loop waits for its last end."""
        self._start(run, 1)
        run.event = At(self.env, run.ends[-1])
        self._ff = run

    def _start(self, run: Run, j: int) -> None:
        """Book the starts of the run's steps before step ``j``, each at its own time."""
        i = run.started
        if j <= i:
            return
        # the first step's blocks were taken before the run (needs[0] is 0)
        self._blocks.allocate_steps(run.ends, run.needs, i, j)
        busy = self._busy
        for dt in run.dts[i:j]:
            busy += dt
        self._busy = busy
        self._step_end = run.ends[j - 1]
        self._steps += j - i
        self.stats.steps += j - i
        run.started = j
        if run.below is not None:
            self._start_energy(run, i, j)

    def _start_energy(self, run: Run, i: int, j: int) -> None:
        """Book the energy of the run's steps ``i`` to ``j - 1``, each as :meth:`_step` would."""
        tdp, dts, below = self._tdp, run.dts, run.below
        for s in range(i, j):
            self._book_energy(tdp * dts[s] - below(s), dts[s])

    def _end(self, run: Run, m: int) -> None:
        """Book the ends of a run's next ``m`` steps (no sequence finishes in them but the
        last planned): a token for each sequence at each."""
        if run.ended == 0:
            batch = self.batch
            for req in batch.fresh:
                req.t_first = run.ends[0]
            batch.fresh.clear()
        self.batch.step += m
        self._outstanding -= run.n * m
        run.ended += m

    def _sync(self) -> None:
        """Book the run's steps started, and the ends of those ended, before now (at a step's
        end itself, the step is still under way)."""
        run = self._ff
        assert run is not None
        t = self.env._now  # noqa: SLF001 - the clock, no call
        ended = bisect_left(run.ends, t, run.ended, run.k)
        self._start(run, min(run.k, ended + 1))
        if ended > run.ended:
            self._end(run, ended - run.ended)

    def _cut(self) -> None:
        """Something changes this instance mid-run: the run ends with the step under way."""
        self._sync()
        run = self._ff
        assert run is not None and run.event is not None
        last = run.ended  # the step under way: it ends at or after now
        if last + 1 >= run.k:
            return
        run.k = last + 1
        old = run.event
        cancel(self.env, old)
        run.event = new = At(self.env, run.ends[last])
        resume = self.process._resume  # noqa: SLF001 - move the loop's wait to the new event
        old.callbacks.remove(resume)
        new.callbacks.append(resume)
        self.process._target = new  # noqa: SLF001

    def _close_run(self) -> list[int]:
        """The run's last step has ended (the clock is there): book what is left; returns
        the batch positions that finished (descending)."""
        run = self._ff
        assert run is not None
        self._ff = None
        if run.k < len(run.dts):  # cut: plan about as far as runs get
            self._ff_cap = max(2 * run.k, MIN_RUN)
        elif run.k == self._ff_cap:  # ran uncut as far as it could: plan further
            self._ff_cap = min(4 * run.k, MAX_RUN)
        self._start(run, run.k)
        m = run.k - run.ended
        self._end(run, m - 1)
        self._outstanding -= run.n
        return self.batch.advance()

    def _loop(self):  # pragma: no cover - overridden
        raise NotImplementedError
        yield
