"""What hetsim needs of simpy's clock that simpy has no public call for: taking a scheduled event
out of the queue, and the count of events processed.

simpy numbers every event it schedules (``env._eid``); the events processed are those numbered
less those still queued and those taken out before their time (a fast-forward cut short, a
superseded network timeout far ahead). Taking one out costs O(queue), so callers do it only
where leaving it would cost more (an extra event, or a clock held far ahead)."""

from __future__ import annotations

from heapq import heapify

import simpy

__all__ = ["cancel", "processed_events"]

#: the attribute of an environment that counts the events taken out of its queue
_CANCELLED = "hetsim_cancelled"


def cancel(env: simpy.Environment, event: simpy.Event) -> bool:
    """Take ``event`` out of ``env``'s queue; False when it is not queued."""
    queue = env._queue  # noqa: SLF001 - simpy has no way to cancel a scheduled event
    for i, entry in enumerate(queue):
        if entry[3] is event:
            queue[i] = queue[-1]
            queue.pop()
            heapify(queue)
            setattr(env, _CANCELLED, getattr(env, _CANCELLED, 0) + 1)
            return True
    return False


def processed_events(env: simpy.Environment) -> int:
    """Events ``env`` has processed, read once at the end of a run (simpy's own numbering, so
    counting costs the loop nothing; reading it takes a number, which only orders events)."""
    scheduled = next(env._eid)  # noqa: SLF001 - simpy's own count; no public counter exists
    return scheduled - len(env._queue) - getattr(env, _CANCELLED, 0)  # noqa: SLF001
