"""The screen's queueing estimate of goodput: where the rate search starts, not a bound."""

from __future__ import annotations

import numpy as np

__all__ = ["queueing_estimate"]


def queueing_estimate(
    service: np.ndarray,
    fixed: np.ndarray,
    instances: int,
    ttft: float,
    target: float,
    decode_share_per_rate: float = 0.0,
) -> float:
    """The arrival rate at which the share of requests within the TTFT bound falls to the
    attainment target, if each prefill instance queued prompts like M/G/1 (Pollaczek-Khinchine
    mean wait) with an exponential waiting-time tail. ``service``: each sampled prompt's prefill
    time alone; ``fixed``: what its TTFT adds outside the queue. An estimate, not a bound:
    batching shortens waits, chunking lengthens service. ``decode_share_per_rate``: the share
    of an instance's time decodes take per request/s (colocated instances only), which
    stretches prompts' service by 1 / (1 - that share)."""
    room0 = ttft - fixed

    def attained(rate: float) -> float:
        lam = rate / instances
        free = 1.0 - decode_share_per_rate * rate
        if free <= 0:
            return 0.0
        stretched = service / free
        s1, s2 = float(np.mean(stretched)), float(np.mean(stretched**2))
        room = room0 - stretched
        rho = lam * s1
        if rho >= 1:
            return 0.0
        mean_wait = lam * s2 / (2 * (1 - rho))
        if mean_wait <= 0:
            return float((room >= 0).mean())
        within = 1 - rho * np.exp(-np.maximum(room, 0) * rho / mean_wait)
        return float(np.where(room >= 0, within, 0.0).mean())

    if attained(1e-9) < target:
        return 0.0
    lo, hi = 0.0, instances / float(np.mean(service))
    for _ in range(50):
        mid = (lo + hi) / 2
        if attained(mid) >= target:
            lo = mid
        else:
            hi = mid
    return lo
