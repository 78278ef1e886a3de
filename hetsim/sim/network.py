"""KV transfers over multi-hop paths: a fluid-flow model with max-min fair sharing.

A :class:`Network` owns :class:`Link` objects (one per hop resource: a NIC, a PCIe switch, a
fabric) and the transfers in progress. ``network.transfer(nbytes, hops)`` returns a
:class:`Transfer`, a simpy event that succeeds with a :class:`TransferRecord` when the last byte
has arrived. A transfer's life:

1. **Latency.** It first waits the sum of its hops' latencies. This is a pure delay: it consumes
   no bandwidth and is not slowed by other traffic (the first byte's propagation and set-up cost,
   paid once per hop). A zero-byte transfer completes right after it.
2. **Flow.** Its bytes then cross all of its hops at once (cut-through, no store-and-forward), at
   one rate per transfer set by *max-min fair sharing* over every flowing transfer: each hop's
   bandwidth is split equally among the transfers crossing it, and a transfer held back by a
   slower hop elsewhere leaves its unused share to the others (progressive filling).

Rates are re-planned whenever the set of flowing transfers or a link's capacity changes (flow
start, completion, failure, abort, bandwidth change, link down/up); in between, each transfer's
remaining bytes fall linearly. Only one simpy timeout is pending for the next completion; a
re-plan supersedes it through a generation counter (a stale timeout fires and is ignored).
Cost of a re-plan: O(T·H + L·rounds) for T flowing transfers of H hops over L busy links, where
a round freezes at least one bottleneck link.

A transfer started while nothing else is on the network (nothing flowing, no other latency
phase) is *quiet*: alone, its join and its rate are known, so one timeout at its last byte
stands for both of its events (the join a latency timeout would begin, and the completion the
re-plan at the join would schedule). Anything else that touches the network first (a transfer,
a failure, a bandwidth change, a read of progress) turns it back into what those events would
have made of it by then, float for float, its latency timeout in the place in the queue it
would have had (a transfer whose join falls on the time of an event already queued is not
quiet: what wakes it then could not tell whether it had joined). One order can differ: events
due at exactly its last byte's time that were scheduled during its latency now follow it. Most
KV transfers of an overloaded or lightly loaded cluster cross an idle network: a tenth of their
events.

Failures: a link that is *down* carries nothing (its transfers keep their place at rate 0 and
resume when it comes back up; latency phases run on regardless); :meth:`Network.fail_transfers`
and :meth:`Network.abort` end transfers with :class:`TransferFailed` and release their bandwidth.

A link's direction is its identity: a full-duplex NIC used both ways is two links.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import simpy

from hetsim.sim.clock import At, cancel, due_at, reserve, schedule_reserved

__all__ = ["Link", "Network", "Transfer", "TransferFailed", "TransferRecord"]

# A transfer whose remaining bytes fall below this share of its size when a completion timeout
# fires is complete: transfers finishing "at the same time" finish in the same event.
_DONE_REL = 1e-9
#: a superseded completion timeout further ahead than this is taken out of the event queue
FAR_TIMEOUT_S = 3600.0
# Links whose fair share is within this relative distance of the round's minimum are frozen in
# the same round (float noise must not add rounds).
_TIE_REL = 1e-12


class _TransferPhase(Enum):
    """Where a transfer is in its life (see the module docstring)."""

    LATENCY = 1
    FLOWING = 2
    DONE = 3
    FAILED = 4


# bound once: phases are checked per transfer event, and a lookup on an enum class is slow in
# Python 3.11
_LATENCY, _FLOWING, _DONE, _FAILED = _TransferPhase


class TransferFailed(Exception):
    """The exception a failed or aborted transfer's event fails with; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """The value of a completed transfer's event: ``start`` (when ``transfer`` was called,
    latency included), ``end`` (when the last byte arrived), ``nbytes`` and the caller's ``tag``."""

    start: float
    end: float
    nbytes: float
    tag: Any = None

    @property
    def duration(self) -> float:
        return self.end - self.start


class Link:
    """One hop resource in one direction: ``bandwidth`` in bytes/s, ``latency`` in s.

    Made by :meth:`Network.add_link`. The bandwidth can be degraded
    (:meth:`set_bandwidth_factor`) and the link taken down and up; each change re-plans the
    rates of every flowing transfer. Accounting (``bytes_carried``, ``utilisation``,
    ``bytes_in_flight``, ``active_transfers``) is always up to the current simulation time.
    """

    __slots__ = (
        "name", "nominal_bandwidth", "latency", "_net", "_bw", "_up", "_since",
        "_transfers", "_flows", "_rate", "_carried", "_busy", "_cap", "_left",
    )  # fmt: skip

    def __init__(self, network: Network, name: str, bandwidth: float, latency: float):
        if not bandwidth > 0 or not math.isfinite(bandwidth):
            raise ValueError(f"link {name!r}: bandwidth must be a positive number, got {bandwidth}")
        if not latency >= 0 or not math.isfinite(latency):
            raise ValueError(f"link {name!r}: latency must be >= 0 seconds, got {latency}")
        self.name = name
        self.nominal_bandwidth = float(bandwidth)
        self.latency = float(latency)
        self._net = network
        self._bw = float(bandwidth)  # current bandwidth (nominal × degradation factor)
        self._up = True
        self._since = network.env.now
        self._transfers: dict[Transfer, None] = {}  # on this link, latency phase included
        self._flows: dict[Transfer, None] = {}  # flowing through this link now
        self._rate = 0.0  # sum of the rates of _flows
        self._carried = 0.0  # bytes delivered through this link so far
        self._busy = 0.0  # integral of _rate / _bw over time, in seconds
        self._cap = 0.0  # water-filling scratch: capacity not yet handed out
        self._left = 0  # water-filling scratch: flows not yet frozen

    def __repr__(self) -> str:
        state = "" if self._up else ", down"
        return f"Link({self.name!r}, {self._bw:.4g} B/s, {self.latency:.3g} s{state})"

    @property
    def bandwidth(self) -> float:
        """Current bandwidth in bytes/s (the nominal one times the degradation factor); a down
        link keeps its bandwidth but carries nothing."""
        return self._bw

    @property
    def factor(self) -> float:
        """Current bandwidth over nominal."""
        return self._bw / self.nominal_bandwidth

    @property
    def is_up(self) -> bool:
        return self._up

    def set_bandwidth_factor(self, factor: float) -> None:
        """Degrade (or restore, with 1) the link to ``factor`` × its nominal bandwidth."""
        if not 0 < factor <= 1:
            raise ValueError(f"link {self.name!r}: a bandwidth factor is in (0, 1], got {factor}")
        self._net.set_bandwidth(self, self.nominal_bandwidth * factor)

    def down(self) -> None:
        """Stop all progress on this link; its transfers stay, at rate 0, until :meth:`up`."""
        self._net._set_up(self, False)

    def up(self) -> None:
        """Bring the link back; paused transfers resume with re-planned rates."""
        self._net._set_up(self, True)

    @property
    def bytes_carried(self) -> float:
        """Bytes that have crossed this link so far (completed transfers and partial ones)."""
        self._net._settle()
        return self._carried

    @property
    def bytes_in_flight(self) -> float:
        """Bytes not yet delivered of the transfers on this link (latency phase included)."""
        self._net._settle()
        return sum((t._left for t in self._transfers), 0.0)

    @property
    def active_transfers(self) -> int:
        """Transfers on this link: started and neither completed nor failed."""
        return len(self._transfers)

    @property
    def utilisation(self) -> float:
        """Time-weighted mean of allocated rate / current bandwidth since the link was added
        (a down link counts as idle); 0 before any time has passed."""
        self._net._settle()
        elapsed = self._net.env.now - self._since
        return self._busy / elapsed if elapsed > 0 else 0.0


class Transfer(simpy.Event):
    """A transfer in progress and the event of its completion (the handle for ``abort``).

    Succeeds with a :class:`TransferRecord` when its last byte arrives; fails with
    :class:`TransferFailed` if it is aborted or a link it crosses is failed. ``rate`` is its
    allocated rate in bytes/s as of the network's last change (0 during the latency phase and
    while paused; a quiet transfer reads 0 until something touches the network, which the
    simulator's parts always do through it, never through ``rate``).
    """

    def __init__(self, network: Network, nbytes: float, hops: tuple[Link, ...], tag: Any):
        super().__init__(network.env)
        self.nbytes = nbytes
        self.hops = hops
        self.tag = tag
        self.start = network.env.now
        self.rate = 0.0
        self._net = network
        self._left = nbytes  # bytes not yet delivered, as of the network's last settle
        self._state = _LATENCY

    @property
    def bytes_delivered(self) -> float:
        """Bytes that have arrived so far (all of them once the transfer has succeeded)."""
        self._net._settle()
        return self.nbytes - self._left


class _Quiet:
    """A quiet transfer (module docstring): when it joins, its latency timeout's place in the
    queue (a reserved number), when its last byte lands and the one event at that time."""

    __slots__ = ("transfer", "join", "eid", "end", "event")

    def __init__(self, transfer: Transfer, join: float, eid: int, end: float, event: At):
        self.transfer = transfer
        self.join = join
        self.eid = eid
        self.end = end
        self.event = event


class Network:
    """Links and the transfers in flight over them, in one simpy environment."""

    def __init__(self, env: simpy.Environment, quiet: bool = True):
        self.env = env
        self.quiet = quiet  # take a transfer alone on the network in one event (False: two)
        self.links: dict[str, Link] = {}
        self._flowing: dict[Transfer, None] = {}  # insertion order: deterministic float sums
        self._busy_links: dict[Link, None] = {}  # links with at least one flowing transfer
        self._last = env.now  # time up to which progress has been settled
        self._generation = 0  # identifies the one completion timeout that is still valid
        self._timeout: tuple[float, simpy.Event] | None = None  # (when it is due, it)
        self._next: Transfer | None = None  # the transfer that timeout completes
        self._latent = 0  # latency timeouts queued
        self._quiet: _Quiet | None = None  # the transfer alone on the network, if one is

    def add_link(self, name: str, bandwidth: float, latency: float = 0.0) -> Link:
        """A new link: ``bandwidth`` in bytes/s per direction, ``latency`` in s per transfer."""
        if name in self.links:
            raise ValueError(f"a link named {name!r} already exists")
        link = self.links[name] = Link(self, name, bandwidth, latency)
        return link

    def transfer(self, nbytes: float, hops: Sequence[Link], tag: Any = None) -> Transfer:
        """Start moving ``nbytes`` across ``hops`` (in path order, each link at most once).

        The returned event succeeds with a :class:`TransferRecord` once the bytes have arrived:
        no sooner than the sum of the hops' latencies plus ``nbytes`` over the slowest hop's
        bandwidth, later when the hops are shared or down. ``tag`` is handed back in the record.
        """
        hops = tuple(hops)
        if not hops:
            raise ValueError("a transfer needs at least one hop")
        if len(set(hops)) != len(hops):
            raise ValueError(f"a transfer crosses each link at most once: {[h.name for h in hops]}")
        for h in hops:
            if h._net is not self:
                raise ValueError(f"link {h.name!r} belongs to another network")
        if not nbytes >= 0 or not math.isfinite(nbytes):
            raise ValueError(f"a transfer's size must be >= 0 bytes, got {nbytes}")
        if self._quiet is not None:
            self._wake_quiet()
        t = Transfer(self, float(nbytes), hops, tag)
        for h in hops:
            h._transfers[t] = None
        latency = sum(h.latency for h in hops)
        if latency <= 0:
            self._begin_flow(t)
            return t
        quiet = self.quiet and nbytes and self._idle() and all(h._up for h in hops)
        if not (quiet and self._go_quiet(t, latency)):
            self._latent += 1
            self.env.timeout(latency, value=t).callbacks.append(self._latency_over)
        return t

    @staticmethod
    def flow_time(nbytes: float, hops: Sequence[Link]) -> float:
        """Seconds ``nbytes`` take to flow over ``hops`` alone: at the slowest hop's current
        bandwidth (latency not included)."""
        return nbytes / min(h._bw for h in hops)

    @staticmethod
    def fastest(nbytes: float, hops: Sequence[Link]) -> float:
        """Seconds a transfer of ``nbytes`` over ``hops`` takes at the soonest: its latency plus
        its :meth:`flow_time`, alone on the path."""
        return sum(h.latency for h in hops) + Network.flow_time(nbytes, hops)

    def set_bandwidth(self, link: Link, bandwidth: float) -> None:
        """Change a link's current bandwidth (bytes/s, > 0) and re-plan."""
        if not bandwidth > 0 or not math.isfinite(bandwidth):
            raise ValueError(f"link {link.name!r}: bandwidth must be positive, got {bandwidth}")
        self._settle()
        link._bw = float(bandwidth)
        self._replan()

    def fail_transfers(self, link: Link, reason: str = "link failed") -> list[Transfer]:
        """Fail every transfer on ``link`` (latency phase included) with ``TransferFailed(reason)``
        and release their bandwidth; returns them. The bytes they delivered stay counted on their
        links. As with any simpy event, a failure nobody waits for stops the simulation."""
        self._settle()
        victims = list(link._transfers)
        for t in victims:
            self._release(t)
            t._state = _FAILED
            t.fail(TransferFailed(reason))
        self._replan()
        return victims

    def abort(self, transfer: Transfer, reason: str = "aborted") -> bool:
        """Cancel one transfer: its bandwidth is released and its event fails with
        ``TransferFailed(reason)`` (defused: the simulation goes on if nobody waits for it).
        Returns False, doing nothing, if it had already completed or failed."""
        if transfer._net is not self:
            raise ValueError("this transfer belongs to another network")
        if transfer._state in (_DONE, _FAILED):
            return False
        self._settle()
        self._release(transfer)
        transfer._state = _FAILED
        transfer.defused = True
        transfer.fail(TransferFailed(reason))
        self._replan()
        return True

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per link name: ``bytes_in_flight``, ``active_transfers``, ``utilisation_since_start``
        and ``bytes_carried``, as of now."""
        return {
            name: {
                "bytes_in_flight": link.bytes_in_flight,
                "active_transfers": link.active_transfers,
                "utilisation_since_start": link.utilisation,
                "bytes_carried": link.bytes_carried,
            }
            for name, link in self.links.items()
        }

    # -- mechanism -------------------------------------------------------------------------------

    def _set_up(self, link: Link, up: bool) -> None:
        if link._up != up:
            self._settle()
            link._up = up
            self._replan()

    def _latency_over(self, event: simpy.Event) -> None:
        self._latent -= 1
        t = event.value
        if t._state is _LATENCY:  # not aborted or failed meanwhile
            self._begin_flow(t)

    # -- quiet transfers (module docstring) --

    def _idle(self) -> bool:
        return not self._flowing and not self._latent and self._timeout is None

    def _go_quiet(self, t: Transfer, latency: float) -> bool:
        """One timeout at ``t``'s last byte: at its join (where the latency timeout would be)
        the re-plan gives it the slowest hop's bandwidth, alone. Not when an event already
        queued is due at the join: that one would go before the latency timeout, so whatever
        wakes ``t`` at its join time would not know which of the two went first (an event
        scheduled from now on goes after it)."""
        env = self.env
        join = env._now + latency  # noqa: SLF001 - the time simpy's timeout would have
        if due_at(env, join):
            return False
        eid = reserve(env)  # the latency timeout's place, should it be needed
        end = join + self.flow_time(t.nbytes, t.hops)
        event = At(env, end)
        event.callbacks.append(self._quiet_over)
        self._quiet = _Quiet(t, join, eid, end, event)
        return True

    def _quiet_over(self, event: simpy.Event) -> None:
        self._joined_quiet()
        self._completion_due(event)

    def _wake_quiet(self) -> None:
        """Something else touches the network: the quiet transfer becomes what its events would
        have made of it by now, in its latency (its timeout queued in its place) or flowing."""
        q = self._quiet
        assert q is not None
        if self.env._now >= q.join:  # noqa: SLF001
            self._joined_quiet()
            return
        self._quiet = None
        cancel(self.env, q.event)
        latency_over = simpy.Event(self.env)
        latency_over._value = q.transfer  # noqa: SLF001 - a timeout's value, as simpy sets it
        latency_over.callbacks.append(self._latency_over)
        schedule_reserved(self.env, latency_over, q.join, q.eid)
        self._latent += 1

    def _joined_quiet(self) -> None:
        """The state the quiet transfer's join left (a settle to it, then :meth:`_begin_flow`'s
        re-plan of it alone), with its end as the completion timeout that re-plan schedules."""
        q = self._quiet
        assert q is not None
        self._quiet = None
        t, event = q.transfer, q.event
        self._last = q.join
        self._register_flow(t)
        t.rate = rate = min(h._bw for h in t.hops)
        for h in t.hops:
            h._rate = rate
        self._generation += 1
        self._next = t
        event._value = self._generation  # noqa: SLF001 - the value _completion_due checks
        if event.callbacks is not None:  # still queued (else it is firing: _quiet_over goes on)
            event.callbacks = [self._completion_due]
        self._timeout = (q.end, event)

    def _begin_flow(self, t: Transfer) -> None:
        if t.nbytes == 0:
            self._complete(t)
            return
        self._settle()
        self._register_flow(t)
        self._replan()

    def _register_flow(self, t: Transfer) -> None:
        """``t`` flows from now: on the network's and its hops' books (rates come after)."""
        t._state = _FLOWING
        self._flowing[t] = None
        for h in t.hops:
            if not h._flows:
                self._busy_links[h] = None
            h._flows[t] = None

    def _release(self, t: Transfer) -> None:
        """Take ``t`` off its links (call after settling)."""
        for h in t.hops:
            del h._transfers[t]
        if t._state is not _FLOWING:
            return
        del self._flowing[t]
        t.rate = 0.0
        for h in t.hops:
            del h._flows[t]
            if not h._flows:
                del self._busy_links[h]
                h._rate = 0.0

    def _complete(self, t: Transfer) -> None:
        """A zero-byte transfer is done: it succeeds as an event (its caller has not yet had
        the handle to wait on it)."""
        self._finish(t)
        t.succeed(TransferRecord(t.start, self.env.now, t.nbytes, t.tag))

    def _finish(self, t: Transfer) -> None:
        for h in t.hops:  # credit float residue, so that carried bytes add up exactly
            h._carried += t._left
        self._release(t)
        t._left = 0.0
        t._state = _DONE

    def _land(self, t: Transfer) -> None:
        """A flowing transfer's last byte is in: its waiters run now, inside the completion
        event, rather than in an event of their own at the same time (one event less per KV
        movement). Only the order against other events due at exactly this time can differ:
        the waiters now go before those queued earlier."""
        t._ok = True
        t._value = TransferRecord(t.start, self.env.now, t.nbytes, t.tag)
        callbacks, t.callbacks = t.callbacks, None
        for callback in callbacks:
            callback(t)

    def _drop_far_timeout(self) -> None:
        """Take the superseded completion timeout out of the event queue when it lies far
        ahead. It would fire and be ignored, but until then it holds the clock: after every
        request gave up on a transfer over a very slow link, it alone ran the run (and its
        sampler) on for days. Near ones are left: finding one in the queue costs O(n)."""
        if self._timeout is None:
            return
        due, timeout = self._timeout
        self._timeout = None
        if due - self.env.now < FAR_TIMEOUT_S or timeout.processed:
            return
        cancel(self.env, timeout)

    def _completion_due(self, event: simpy.Event) -> None:
        if event.value != self._generation:
            return  # superseded by a later re-plan
        self._settle()
        first = self._next
        landed = [t for t in self._flowing if t is first or t._left <= _DONE_REL * t.nbytes]
        for t in landed:
            self._finish(t)
        self._replan()
        for t in landed:
            self._land(t)

    def _settle(self) -> None:
        """Advance every flowing transfer and busy link to now at the current rates."""
        if self._quiet is not None:
            self._wake_quiet()
        dt = self.env.now - self._last
        if dt <= 0:
            return
        self._last = self.env.now
        for t in self._flowing:
            t._left -= t.rate * dt
        for link in self._busy_links:
            link._carried += link._rate * dt
            link._busy += link._rate / link._bw * dt

    def _replan(self) -> None:
        """Max-min fair rates by progressive filling, then the one timeout for the next finish.

        Each round finds the smallest fair share ``capacity left / unfrozen flows`` over the
        busy links, gives that rate to every unfrozen flow crossing a link at that share, and
        takes it off the capacity of all their hops. A down link has capacity 0, so its flows
        freeze at 0 in the first round and leave their shares elsewhere to others.
        """
        links = list(self._busy_links)
        for link in links:
            link._cap = link._bw if link._up else 0.0
            link._left = len(link._flows)
            link._rate = 0.0
        for t in self._flowing:
            t.rate = -1.0  # not frozen yet
        while links:
            shares = [link._cap / link._left for link in links]
            share = max(min(shares), 0.0)  # float noise can leave a capacity a hair below 0
            limit = share * (1 + _TIE_REL)
            # a bottleneck's share stays `share` as its flows freeze, the others' stay above it
            for link, link_share in zip(links, shares, strict=True):
                if link_share <= limit:
                    for t in link._flows:
                        if t.rate < 0:
                            t.rate = share
                            for h in t.hops:
                                h._cap -= share
                                h._left -= 1
                                h._rate += share
            links = [link for link in links if link._left]

        self._generation += 1
        self._drop_far_timeout()
        self._next, soonest = None, math.inf
        for t in self._flowing:
            if t.rate > 0 and t._left < soonest * t.rate:
                self._next, soonest = t, t._left / t.rate
        if self._next is not None:
            timeout = self.env.timeout(max(soonest, 0.0), value=self._generation)
            timeout.callbacks.append(self._completion_due)
            self._timeout = (self.env.now + max(soonest, 0.0), timeout)
