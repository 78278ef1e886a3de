"""What hetsim needs of simpy's clock that simpy has no public call for: taking a scheduled event
out of the queue, keeping an event's place in the queue's order before deciding whether to
schedule it, and the count of events processed.

simpy numbers every event it schedules (``env._eid``); the events processed are those numbered
less those still queued and those taken out before their time (a fast-forward cut short, a
superseded network timeout far ahead). Taking one out costs O(queue), so callers do it only
where leaving it would cost more (an extra event, or a clock held far ahead)."""

from __future__ import annotations

from heapq import heapify, heappush

import simpy
from simpy.events import NORMAL

__all__ = ["cancel", "forgo", "processed_events", "reserve", "schedule_reserved"]

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


def reserve(env: simpy.Environment) -> int:
    """The number simpy would give an event scheduled now, taken without scheduling one: a
    timeout decided on later keeps the place among events at its time that it would have had
    (simpy runs events due at one time in the order they were scheduled). Each reserved number
    is later either scheduled (:func:`schedule_reserved`) or given up (:func:`forgo`)."""
    return next(env._eid)  # noqa: SLF001 - simpy's own numbering


def schedule_reserved(env: simpy.Environment, event: simpy.Event, t: float, eid: int) -> None:
    """Schedule ``event`` (its value already set) at the absolute time ``t`` with the number
    :func:`reserve` gave: exactly where ``env.timeout(t - then)`` made back then would be."""
    event._ok = True  # noqa: SLF001 - set up as simpy's own Timeout is
    heappush(env._queue, (t, NORMAL, eid, event))  # noqa: SLF001


def forgo(env: simpy.Environment) -> None:
    """A reserved number will never be scheduled: the count of processed events leaves it out."""
    setattr(env, _CANCELLED, getattr(env, _CANCELLED, 0) + 1)


def processed_events(env: simpy.Environment) -> int:
    """Events ``env`` has processed, read once at the end of a run (simpy's own numbering, so
    counting costs the loop nothing; reading it takes a number, which only orders events)."""
    scheduled = next(env._eid)  # noqa: SLF001 - simpy's own count; no public counter exists
    return scheduled - len(env._queue) - getattr(env, _CANCELLED, 0)  # noqa: SLF001
