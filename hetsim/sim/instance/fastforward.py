"""Fast-forward: a steady decode batch's steps several to one event, with step-by-step results.

Between two things that change a decode batch (a sequence joining or finishing, a preemption,
a fault, a request queued here) every running sequence gains one token per step and nothing
else happens on the instance, so its next steps are known in advance: their times (the step
model's price of each step's context sum, times the straggler factor), the KV blocks each takes
at its start (sequences crossing a page) and the tokens each emits at its end. A :class:`Run`
holds them; the instance waits one event, at the end of the run's last step.

Nothing outside sees the difference. The instance books a run's steps lazily, each at its own
time: when something reads it mid-run (a router's load signal, the sampler, the horizon guard)
it first books the steps started and ended by then (:meth:`Instance._sync`); when something
changes it (anything that wakes it, a fault, a request taken away) the run is also cut at the
step under way, whose end becomes the wake-up (:meth:`Instance._cut`). A run never passes the
step in which a sequence finishes or a step whose blocks would not fit, nor the horizon guard's
limit. At a time equal to a step's end, what happens there goes first and the step's end after
it: the order step-by-step simulation gives whenever that other event was scheduled before the
step began. The one order that can differ is an exact float tie between a step's end and an
event scheduled after that step's run was planned but before the step itself began (the run's
last wake-up was queued when the run was planned); none of the drawn or bundled scenarios has
one, and the property test compares every float exactly.

The same holds for a prefill instance with nothing waiting whose running prompts all take
part in the next step: their chunks are known until one of them completes, so those steps
(:class:`PromptRun`, :func:`plan_prompts`, that step included) are one event; an arrival cuts
the run at the step under way, where step by step would have admitted it.

Where the step model has measured power, a run also says what each step's measured ops draw
below tdp (``below``, times the straggler factor, as :meth:`Instance._step` books it), priced
as the step loop prices each step, so both book the same energy; each step's is priced when the
step is booked, so a cut run prices none of the steps it throws away.

Runs price their steps as the step loop would, float for float: the closed form of
:meth:`~hetsim.perf.step.StepModel.decode_time_from_sum` over the run's context sums, or each
step's contexts where sparse attention needs them; each step ends at the previous end plus its
time, the addition simpy's timeout makes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from math import inf as INF

import numpy as np

from hetsim.sim.clock import At
from hetsim.sim.scheduler import prefill_chunks

__all__ = [
    "BelowTdp", "PromptRun", "Run", "FIRST_RUN", "MAX_RUN", "MIN_RUN", "plan", "plan_prompts",
]  # fmt: skip

#: steps one run plans at most (bounds its arrays; a longer steady stretch takes several runs)
MAX_RUN = 512
#: the steps a first run plans; a run that ends uncut at its cap quadruples the next one's, a
#: cut run sets it to twice the steps it took (pricing steps a cut throws away is wasted work),
#: never below :data:`MIN_RUN`
FIRST_RUN = 16
#: the fewest steps a cut run's successor plans (a run of fewer is still taken when that is all
#: there is before a sequence finishes: two steps in one event beat two events)
MIN_RUN = 6
#: runs up to this many steps are priced one step at a time: numpy costs more per call than
#: Python per step below about this many (measured on bench_sim's shapes: 24 cost 10% more CPU)
SHORT_RUN = 192


class Run:
    """The planned steps of one fast-forward: their times (``dts``, ``ends``), the blocks
    each takes at its start (``needs``, the first already taken), the batch size ``n``; how
    many steps are planned (``k``), started and ended as booked so far; with measured power,
    the joules step ``s`` draws below tdp (``below(s)``; else None)."""

    __slots__ = ("dts", "ends", "needs", "n", "k", "started", "ended", "event", "below")

    def __init__(
        self,
        dts: list[float],
        ends: list[float],
        needs: list[int],
        n: int,
        below: BelowTdp | None = None,
    ) -> None:
        self.below = below
        self.dts = dts
        self.ends = ends
        self.needs = needs
        self.n = n
        self.k = len(dts)
        self.started = 0
        self.ended = 0
        self.event: At | None = None


def plan(inst, now: float, cap: int) -> Run | None:
    """The run a decode batch can take from the step starting ``now`` (its blocks taken), at
    most ``cap`` steps, or None when fewer than two are sure before a sequence finishes, blocks
    run out, the horizon guard's limit or the step a KV on its way here may land in
    (:meth:`Instance.next_delivery`; a run ends with that step, so as few as two)."""
    batch = inst.batch
    k = min(batch.steps_to_finish(), cap)
    if k < 2:
        return None
    eta = inst.next_delivery(now)
    if eta < INF:
        k = _steps_before(inst, now, eta, k)
        if k <= 1:
            return None
    if k <= SHORT_RUN:
        needs, dts, ends = _short(inst, now, k)
    else:
        needs, dts, ends = _long(inst, now, k)
    k = len(dts)
    if eta < ends[k - 1]:  # end with the step it may land in: its landing cuts nothing
        k = bisect_left(ends, eta, 0, k) + 1
    k = _within_horizon(inst, ends, k)
    if k <= 1:
        return None
    below = BelowTdp(inst) if inst.measured_power else None
    return Run(dts[:k], ends[:k], needs[:k], batch.n, below)


class BelowTdp:
    """Joules step ``s`` of a run from the batch as it is now draws below tdp, times the
    straggler factor: what the step loop passes :meth:`Instance._step` for that step (its
    context sum, or for sparse attention its contexts, grown by ``s`` tokens each), times the
    factor, the same floats."""

    __slots__ = ("step_model", "n", "context_sum", "contexts", "slowdown")

    def __init__(self, inst) -> None:
        batch = inst.batch
        self.step_model = inst.step_model
        self.n = batch.n
        self.context_sum = batch.context_sum()
        sparse = self.step_model.model.is_sparse_attention
        self.contexts = batch.contexts() if sparse else None
        self.slowdown = inst.slowdown

    def __call__(self, s: int) -> float:
        sm = self.step_model
        if self.contexts is not None:
            return sm.decode_below_tdp(self.contexts + s) * self.slowdown
        return sm.decode_below_tdp_from_sum(self.n, self.context_sum + self.n * s) * self.slowdown


def _steps_before(inst, now: float, eta: float, k: int) -> int:
    """At most ``k`` steps, no more than the step ``eta`` falls in can need: a step takes no
    less than the first (contexts only grow), so that step is at most ``(eta - now) / first``
    steps on. Pricing steps the run would end before is wasted; where a later step is shorter
    (a measured table's wrinkle) the run just ends sooner. Sparse attention: ``k``."""
    batch, sm = inst.batch, inst.step_model
    if sm.model.is_sparse_attention:
        return k
    first = sm.decode_time_from_sum(batch.n, batch.context_sum()) * inst.slowdown
    if now + first >= eta:
        return 1
    return min(k, int((eta - now) / first) + 1)


def _short(inst, now: float, k: int) -> tuple[list[int], list[float], list[float]]:
    """A short run's steps one by one, in plain floats: cheaper than arrays for a few steps
    (runs between frequent arrivals). Returns their blocks, times and ends, up to the first
    step whose blocks would not fit."""
    batch, sm = inst.batch, inst.step_model
    residues, page, step = batch.residues, batch.page, batch.step
    free = inst._blocks.free  # noqa: SLF001 - the instance's own pool, already synced
    needs = [0]  # the caller took the first step's blocks
    taken = 0
    for i in range(1, k):
        need = residues[(-(step + i)) % page]
        taken += need
        if taken > free:
            break
        needs.append(need)
    slow = inst.slowdown
    if sm.model.is_sparse_attention:
        dts = [d * slow for d in sm.decode_times_growing(batch.contexts(), len(needs))]
        return needs, dts, _ends(now, dts)
    dts, ends = sm.decode_run(batch.n, batch.context_sum(), len(needs), now, slow)
    return needs, dts, ends


def _ends(now: float, dts: list[float]) -> list[float]:
    """Each step's end: the previous end plus its time, the addition a step's timeout makes."""
    ends = []
    t = now
    for d in dts:
        t += d
        ends.append(t)
    return ends


def _within_horizon(inst, ends: list[float], k: int) -> int:
    """How many of the first ``k`` steps end by the horizon guard's limit (the limit never
    decreases: ask the guard again only when the cached one cuts the run)."""
    if ends[k - 1] > inst.horizon_limit:
        inst.horizon_limit = inst.horizon()
    while k and ends[k - 1] > inst.horizon_limit:
        k -= 1
    return k


def _long(inst, now: float, k: int) -> tuple[list[int], list[float], list[float]]:
    """:func:`_short` over arrays, for long runs (long outputs, few arrivals)."""
    batch = inst.batch
    needs = batch.needs(k)
    needs[0] = 0  # the caller took the first step's blocks
    # steps after the first whose blocks fit: blocks are only taken until the run ends
    free = inst._blocks.free  # noqa: SLF001
    k = 1 + int(np.searchsorted(np.cumsum(needs[1:]), free, side="right"))
    dts = _decode_times(inst, k) * inst.slowdown
    ends = np.add.accumulate(np.concatenate(([now], dts)))[1:]
    return needs[:k].tolist(), dts.tolist(), ends.tolist()


def _decode_times(inst, k: int) -> np.ndarray:
    """Seconds of each of the batch's next ``k`` decode steps (before stragglers)."""
    batch, sm = inst.batch, inst.step_model
    n = batch.n
    if sm.model.is_sparse_attention:
        return np.array(sm.decode_times_growing(batch.contexts(), k), np.float64)
    return sm.decode_times_from_sums(n, batch.context_sum() + n * np.arange(k))


class PromptRun(Run):
    """A run of prompt chunks (:func:`plan_prompts`): each step's chunks, for the prompts
    running when it was planned (``reqs``, in order; a step serves a prefix of them)."""

    __slots__ = ("chunk_lists", "reqs")

    def __init__(self, dts: list[float], ends: list[float], chunk_lists: list[list[int]],
                 below: Callable[[int], float] | None) -> None:  # fmt: skip
        super().__init__(dts, ends, [0] * len(dts), 0, below)
        self.chunk_lists = chunk_lists
        self.reqs: list = []


def plan_prompts(
    inst, computed: list[int], remaining: list[int], chunks: list[int]
) -> PromptRun | None:
    """The steps a prefill instance takes, from one starting now with ``chunks``, until one
    completes a prompt (that step included), with nothing joining: each packed by the
    chunked-prefill rule over what is left, priced as the step loop prices it (its chunks and
    the tokens computed before them), times the straggler factor. None under two steps."""
    sm, slow = inst.step_model, inst.slowdown
    computed, remaining = list(computed), list(remaining)
    chunk_lists: list[list[int]] = []
    befores: list[tuple[int, ...]] = []
    dts: list[float] = []
    step = chunks
    while len(dts) < MAX_RUN:
        if dts:
            step = prefill_chunks(remaining, (), token_budget=inst.max_tokens,
                                  chunk=inst.chunk, max_seqs=inst.max_seqs)[0]  # fmt: skip
        before = tuple(computed[: len(step)])
        dts.append(sm.chunks_time(tuple(step), before) * slow)
        chunk_lists.append(step)
        befores.append(before)
        done = False
        for i, n in enumerate(step):
            computed[i] += n
            remaining[i] -= n
            done = done or remaining[i] <= 0
        if done:
            break
    ends = _ends(inst.env._now, dts)  # noqa: SLF001 - the clock, no call
    k = _within_horizon(inst, ends, len(dts))
    if k <= 1:
        return None
    below = None
    if inst.measured_power:

        def below(s: int) -> float:
            return sm.below_tdp(chunk_lists[s], befores[s]) * slow

    return PromptRun(dts[:k], ends[:k], chunk_lists[:k], below)
