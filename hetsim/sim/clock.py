"""What hetsim needs of simpy's clock that simpy has no public call for: an event at an absolute
time, taking a scheduled event out of the queue, keeping an event's place in the queue's order
before deciding whether to schedule it, and the count of events processed.

simpy numbers every event it schedules (``env._eid``); the events processed are those numbered
less those still queued, those taken out before their time (a fast-forward cut short, a
superseded network timeout far ahead) and numbers reserved but never scheduled. Taking one
out costs O(queue), so callers do it only where leaving it would cost more (an extra event, or
a clock held far ahead)."""

from __future__ import annotations

from heapq import heapify, heappush

import simpy
from simpy.events import NORMAL

__all__ = ["At", "cancel", "due_at", "processed_events", "reserve", "schedule_reserved"]

#: the attributes of an environment that count the events taken out of its queue, and the
#: numbers reserved and not (yet) scheduled
_CANCELLED = "hetsim_cancelled"
_RESERVED = "hetsim_reserved"


class At(simpy.Event):
    """An event at the absolute time ``t``: a timeout's ``now + delay`` might round to a
    neighbouring float, and a fast-forward run must end exactly where its last step would
    have, a quiet transfer where its last byte would have (set up as simpy's own Timeout is)."""

    def __init__(self, env: simpy.Environment, t: float) -> None:
        self.env = env
        self.callbacks = []
        self._value = None
        self._ok = True
        heappush(env._queue, (t, NORMAL, next(env._eid), self))  # noqa: SLF001


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
    (simpy runs events due at one time in the order they were scheduled). A number never
    scheduled (:func:`schedule_reserved`) is no event processed."""
    setattr(env, _RESERVED, getattr(env, _RESERVED, 0) + 1)
    return next(env._eid)  # noqa: SLF001 - simpy's own numbering


def schedule_reserved(env: simpy.Environment, event: simpy.Event, t: float, eid: int) -> None:
    """Schedule ``event`` (its value already set) at the absolute time ``t`` with the number
    :func:`reserve` gave: exactly where ``env.timeout(t - then)`` made back then would be."""
    event._ok = True  # noqa: SLF001 - set up as simpy's own Timeout is
    heappush(env._queue, (t, NORMAL, eid, event))  # noqa: SLF001
    setattr(env, _RESERVED, getattr(env, _RESERVED) - 1)


def due_at(env: simpy.Environment, t: float) -> bool:
    """Whether an event is queued for exactly ``t`` (O(queue): asked once per quiet transfer)."""
    return any(entry[0] == t for entry in env._queue)  # noqa: SLF001


def processed_events(env: simpy.Environment) -> int:
    """Events ``env`` has processed, read once at the end of a run (simpy's own numbering, so
    counting costs the loop nothing; reading it takes a number, which only orders events)."""
    scheduled = next(env._eid)  # noqa: SLF001 - simpy's own count; no public counter exists
    unscheduled = getattr(env, _CANCELLED, 0) + getattr(env, _RESERVED, 0)
    return scheduled - len(env._queue) - unscheduled  # noqa: SLF001
