"""Timing one kernel call: warm-up, then repeats until both a count and a time are reached.

On a CPU every repeat is timed with :func:`time.perf_counter`. On a CUDA device every repeat is
timed with a pair of CUDA events; before the start event the stream is held busy for a moment
(``torch.cuda._sleep``) so that the host has queued the kernel by the time the GPU reaches it, and
the measured interval is the kernel's own execution, not the host's launch latency. The ``launch``
kernel is the exception: it is timed without the hold, over many back-to-back calls, because there
the host-side dispatch is exactly what is measured.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "TimingPolicy",
    "Timing",
    "DEFAULT_POLICY",
    "QUICK_POLICY",
    "time_kernel",
    "Timer",
    "OtherLoad",
]


@dataclass(frozen=True)
class TimingPolicy:
    """How long to warm up and how many repeats to time."""

    warmup_calls: int = 1  #: at least this many untimed calls ...
    warmup_s: float = 0.02  #: ... and at least this much untimed time
    min_repeats: int = 3  #: timed repeats: at least this many ...
    min_time_s: float = 0.1  #: ... and at least this much timed time in total ...
    max_repeats: int = 400  #: ... but never more than this many

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_POLICY = TimingPolicy()
QUICK_POLICY = TimingPolicy(
    warmup_calls=1, warmup_s=0.002, min_repeats=3, min_time_s=0.01, max_repeats=50
)


@dataclass(frozen=True)
class Timing:
    """Median and standard deviation of one call's time over the timed repeats."""

    median_s: float
    std_s: float
    repeats: int


#: a timer runs ``fn`` ``inner`` times back to back and returns the elapsed seconds
Timer = Callable[[Callable[[], Any], int], float]


def cpu_timer(fn: Callable[[], Any], inner: int) -> float:
    if inner == 1:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return time.perf_counter() - start


def cuda_timer(torch: Any, *, hold: bool) -> Timer:
    """A CUDA-event timer; ``hold`` keeps the stream busy while the host queues the calls."""
    # ~0.1 ms at typical clocks: long enough for the host to queue one call behind it
    hold_cycles = 200_000

    def timer(fn: Callable[[], Any], inner: int) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        if hold:
            torch.cuda._sleep(hold_cycles * inner)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return timer


def time_kernel(
    fn: Callable[[], Any],
    policy: TimingPolicy = DEFAULT_POLICY,
    timer: Timer = cpu_timer,
    inner: int = 1,
) -> Timing:
    """Warm up, then time repeats of ``inner`` back-to-back calls; per-call median and std."""
    calls = 0
    spent = 0.0
    while calls < policy.warmup_calls or (spent < policy.warmup_s and calls < policy.max_repeats):
        spent += timer(fn, inner)
        calls += 1
    samples: list[float] = []
    total = 0.0
    while (len(samples) < policy.min_repeats or total < policy.min_time_s) and len(samples) < max(
        policy.max_repeats, policy.min_repeats
    ):
        elapsed = timer(fn, inner)
        samples.append(elapsed / inner)
        total += elapsed
    median = statistics.median(samples)
    std = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return Timing(median, std, len(samples))


class OtherLoad:
    """Share of this machine's CPU time that *other* processes used over an interval.

    On a shared machine a kernel that runs on every core is slowed badly when another process
    takes one of them (a parallel kernel waits for its slowest thread). Reading ``/proc/stat``
    (all CPUs) and ``/proc/self/stat`` (this process) before and after a measurement tells how
    much CPU the rest of the machine used meanwhile, so the sweep can time the kernel again.
    Where ``/proc`` cannot be read the share is reported as 0.
    """

    def __init__(self) -> None:
        self.hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self._start: tuple[float, float, float] | None = None

    @staticmethod
    def _ticks() -> tuple[float, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()[1:]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
        values = [float(x) for x in fields[:8]]
        busy = sum(values) - values[3] - values[4]
        mine = float(own[11]) + float(own[12])  # utime, stime (fields 14 and 15 of stat)
        return busy, mine

    def start(self) -> None:
        ticks = self._ticks()
        self._start = None if ticks is None else (*ticks, time.perf_counter())

    def stop(self) -> float:
        """Others' share of all CPUs since :meth:`start` (0 … 1)."""
        ticks = self._ticks()
        if ticks is None or self._start is None:
            return 0.0
        busy0, mine0, t0 = self._start
        others = (ticks[0] - busy0) - (ticks[1] - mine0)
        wall = time.perf_counter() - t0
        if others < 2 or wall <= 0:  # below the clock-tick resolution
            return 0.0
        return min(1.0, others / (self.hz * wall * self.cpus))
