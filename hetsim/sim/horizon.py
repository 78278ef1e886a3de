"""How far a run's simulated clock may go: absurd inputs stop with an error naming the cause.

A positive but absurd value (a hop at 1e-300 B/s, a latency of 1e9 s, a straggler ×1e300,
every decode instance down for weeks) makes a run that never ends, or ends with numbers nobody
can use. hetsim allows any run to go :data:`HORIZON_S` (10^6 s, 11.6 days) of simulated time
past its reference, and says why a run that would go further does not:

- **Pre-flight**, before simulating (:func:`preflight`): a hop or KV tier whose latency alone, or
  whose time to move one token's KV, exceeds the horizon; a synthetic workload whose expected
  arrival span (requests over its mean rate) exceeds it; a closed loop whose think time or
  ramp-up does. Each names its field.
- **While running** (:class:`Horizon`): the clock never passes ``reference + HORIZON_S``. The
  reference is the arrival of the oldest request still in the system; when none is in it, the
  latest arrival (0 before the first) while requests are still to come — a trace's arrivals may
  span days, but two consecutive arrivals more than 10^6 s apart stop the run — and the last
  departure once every request has ended (a fault scheduled long after that). The error says
  what is outstanding: transfers on a slow hop, instances down, stragglers, queues.

The reference never decreases, so the run loop may cache the limit and ask again only when the
next event lies beyond it.
"""

from __future__ import annotations

import math

from hetsim import units
from hetsim.checks import handoff_plans
from hetsim.errors import InputError
from hetsim.sim.book import RequestBook
from hetsim.sim.network import Link
from hetsim.sim.topology import Topology
from hetsim.spec.faults import instance_target
from hetsim.spec.resolve import Scenario
from hetsim.spec.workload import SessionsSpec, WorkloadSpec
from hetsim.workload.traces import MAX_ARRIVAL_GAP_S

__all__ = ["HORIZON_S", "Horizon", "preflight"]

#: simulated seconds a run may go past its reference (see the module docstring); the trace
#: reader refuses arrivals further apart, so one number owns both
HORIZON_S = MAX_ARRIVAL_GAP_S
_LIMIT = "10^6 s (11.6 days)"


def _t(seconds: float) -> str:
    """A time in the unit that suits it, but absurd ones in plain seconds (as they were set)."""
    return units.format_time(seconds, 3) if 0 < seconds < 1e5 else f"{seconds:.3g} s"


# ---- pre-flight ---------------------------------------------------------------------------


def preflight(scenario: Scenario, workload: WorkloadSpec) -> None:
    """Reject, before simulating, inputs whose simplest consequence already exceeds the
    horizon; ``workload`` is the run's (``--requests`` applied)."""
    per_token = _kv_bytes_per_token(scenario)
    spec = scenario.spec
    for i, path in enumerate(spec.interconnect.paths):
        for j, hop in enumerate(path.hops):
            where = f"interconnect.paths[{i}].hops[{j}]"
            _check_carrier(
                scenario, where, f"hop {hop.name!r}", hop.bandwidth, hop.latency, per_token
            )
    for i, tier in enumerate(spec.kv.tiers):
        where = f"kv.tiers[{i}]"
        _check_carrier(
            scenario, where, f"tier {tier.name!r}", tier.bandwidth, tier.latency, per_token
        )
    _check_arrivals(scenario, workload)


def _kv_bytes_per_token(scenario: Scenario) -> float | None:
    """The fewest bytes one token's KV takes on any pool pair's path (None: no handoff)."""
    plans = handoff_plans(scenario).values()
    sizes = [min(p.network_bytes_per_token, p.copy_bytes_per_token) for p in plans]
    return min(sizes) if sizes else None


def _check_carrier(
    scenario: Scenario,
    where: str,
    what: str,
    bandwidth: float,
    latency: float,
    per_token: float | None,
) -> None:
    if latency > HORIZON_S:
        raise InputError(
            f"{what}: every transfer over it waits its latency, {_t(latency)}, longer than the "
            f"{_LIMIT} a run may simulate",
            file=scenario.path,
            field=f"{where}.latency",
            value=_t(latency),
            allowed=f"a latency of at most {_LIMIT}, e.g. '5 us'",
        )
    if per_token is not None and per_token / bandwidth > HORIZON_S:
        raise InputError(
            f"{what}: one token's KV ({units.format_bytes(per_token)}) takes "
            f"{_t(per_token / bandwidth)} to cross it, longer than the {_LIMIT} a run may "
            "simulate",
            file=scenario.path,
            field=f"{where}.bandwidth",
            value=f"{bandwidth:.3g} B/s",
            allowed=f"a bandwidth of at least {units.format_bandwidth(per_token / HORIZON_S)}, "
            "e.g. '400 Gbps'",
        )


def _check_arrivals(scenario: Scenario, workload: WorkloadSpec) -> None:
    syn, closed = workload.synthetic, workload.closed_loop
    for section, spec in (("synthetic", syn), ("closed_loop", closed)):
        if spec is not None and spec.sessions is not None:
            _check_think(scenario, f"workload.{section}.sessions.think_time", spec.sessions)
    if syn is not None:
        # bursty: arrivals at `rate` during on periods only
        mean = syn.rate * syn.on / (syn.on + syn.off) if syn.arrival == "bursty" else syn.rate
        # sessions: `rate` starts sessions, and `requests` counts their turns, so at least
        # requests / (most turns) sessions start (unbounded turns: nothing is known)
        turns = syn.sessions.turns if syn.sessions is not None else None
        most = 1 if turns is None else (turns.value if turns.dist == "fixed" else turns.max)
        span = syn.requests / (most or math.inf) / mean
        if span > HORIZON_S:
            raise InputError(
                f"{syn.requests:,} requests at a mean rate of {mean:.3g} req/s arrive "
                f"over about {_t(span)}, longer than the {_LIMIT} of synthetic arrivals a run "
                "may simulate",
                file=scenario.path,
                field="workload.synthetic.rate",
                value=f"{syn.rate:.3g} req/s",
                allowed=f"a mean rate of at least {syn.requests / HORIZON_S:.3g} req/s "
                "for this many requests"
                + (" (rate·on/(on+off))" if syn.arrival == "bursty" else ""),
            )
    if closed is not None:
        for name, seconds in (
            ("think_time", closed.think_time),
            ("ramp_up.duration", closed.ramp_up.duration),
        ):
            if seconds > HORIZON_S:
                raise InputError(
                    f"a closed loop's {name} of {_t(seconds)} is longer than the {_LIMIT} a run "
                    "may simulate",
                    file=scenario.path,
                    field=f"workload.closed_loop.{name}",
                    value=_t(seconds),
                    allowed=f"at most {_LIMIT}",
                )


def _check_think(scenario: Scenario, where: str, sessions: SessionsSpec) -> None:
    think = sessions.think_time
    seconds = think.value if think.dist == "fixed" else think.mean
    if seconds is not None and seconds > HORIZON_S:
        raise InputError(
            f"a session's think time of {_t(seconds)} is longer than the {_LIMIT} a run may "
            "simulate",
            file=scenario.path,
            field=f"{where}.{'value' if think.dist == 'fixed' else 'mean'}",
            value=_t(seconds),
            allowed=f"at most {_LIMIT}",
        )


# ---- while running ------------------------------------------------------------------------


class Horizon:
    """The run loop's guard: :meth:`limit` is the latest time the clock may reach now;
    :meth:`check` raises the error naming the cause when the next event lies beyond it."""

    def __init__(self, scenario: Scenario, book: RequestBook, topology: Topology) -> None:
        self.scenario = scenario
        self.book = book
        self.topology = topology

    def reference(self) -> tuple[float, str]:
        """(the time the horizon counts from, what it is)."""
        book = self.book
        if book.in_flight:
            return next(iter(book.in_flight.values())).arrival, "in flight"
        if not book.arrivals_done:
            return book.last_arrival, "arrivals"
        return (book.last_departure if book.log.n else 0.0), "ended"

    def limit(self) -> float:
        return self.reference()[0] + HORIZON_S

    def check(self, next_time: float) -> float:
        """The limit, if ``next_time`` lies within it; else the error naming the cause."""
        ref, state = self.reference()
        if next_time <= ref + HORIZON_S:
            return ref + HORIZON_S
        if state == "in flight":
            raise self._stuck(ref, next_time)
        if state == "arrivals":
            raise self._gap(ref, next_time)
        raise self._after(ref, next_time)

    # -- the causes --

    def _stuck(self, ref: float, next_time: float) -> InputError:
        oldest = next(iter(self.book.in_flight.values()))
        causes = self._down() + self._stragglers(ref + HORIZON_S) + self._slow_links()
        causes += self._long_settings()
        if not causes:
            causes = [(self._queues(), None)]
        field = next((f for _, f in causes if f is not None), None)
        return InputError(
            f"request {oldest.id} arrived at {_t(ref)} and is still unfinished {_LIMIT} later "
            f"(the next event is at {_t(next_time)}; {len(self.book.in_flight):,} requests in "
            f"the system): " + "; ".join(text for text, _ in causes),
            file=self.scenario.path,
            field=field,
            allowed="values that let a request finish within 10^6 s of simulated time",
        )

    def _gap(self, ref: float, next_time: float) -> InputError:
        trace = self.scenario.spec.workload.trace
        field = "workload.trace.target_rate" if trace is not None and trace.target_rate else None
        return InputError(
            f"no request arrives within {_LIMIT} of the latest, at {_t(ref)} (the next event "
            f"is at {_t(next_time)}): arrivals further apart are more than a run may simulate",
            file=self.scenario.path,
            field=field or "workload",
            allowed="arrivals at most 10^6 s apart",
        )

    def _after(self, ref: float, next_time: float) -> InputError:
        late = [
            (f"faults.events[{i}] ends at {_t(f.at + (f.duration or 0.0))}", f"faults.events[{i}]")
            for i, f in enumerate(self.scenario.spec.faults.events)
            if f.at is not None and f.at + (f.duration or 0.0) > ref + HORIZON_S
        ]
        # a transfer its request gave up on (a timeout, an abort) still occupies its link
        causes = late + self._slow_links() + self._long_settings()
        field = next((f for _, f in causes if f is not None), None)
        return InputError(
            f"every request ended by {_t(ref)}, but events are scheduled until at least "
            f"{_t(next_time)}, more than {_LIMIT} later"
            + (": " + "; ".join(text for text, _ in causes) if causes else ""),
            file=self.scenario.path,
            field=field,
            allowed=f"times and timeouts within {_LIMIT}",
        )

    def _long_settings(self) -> list[tuple[str, str | None]]:
        """Every time the scenario sets (leases, timeouts, faults) longer than the horizon: a
        timer that long outlives the requests it was set for."""
        spec = self.scenario.spec
        lc = spec.lifecycle
        times = {
            f"lifecycle.{n}": getattr(lc, n)
            for n in ("lease", "heartbeat", "bootstrap_timeout", "waiting_timeout", "store_lease")
        }
        times["faults.transfer_timeout"] = spec.faults.transfer_timeout
        for i, f in enumerate(spec.faults.events):
            times |= {f"faults.events[{i}].{n}": getattr(f, n) for n in ("at", "duration")}
        return [
            (f"{path} is {_t(v)}", path)
            for path, v in times.items()
            if v is not None and v > HORIZON_S
        ]

    def _faults(
        self, kind: str, instance_name: str | None = None, hop: str | None = None
    ) -> list[int]:
        """Indices of the scheduled faults of ``kind`` on an instance or a hop."""
        out = []
        for i, f in enumerate(self.scenario.spec.faults.events):
            if f.kind != kind or f.target is None:
                continue
            if hop is not None and f.target == hop:
                out.append(i)
            elif instance_name is not None:
                pool, index = instance_target(f.target)
                name_pool, _, rest = instance_name.partition("[")
                if pool == name_pool and (index is None or f"{index}]" == rest):
                    out.append(i)
        return out

    def _down(self) -> list[tuple[str, str | None]]:
        down = [i for i in self.topology.instances if not i.alive]
        if not down:
            return []
        faults = sorted({k for i in down for k in self._faults("instance_crash", i.name)})
        field = f"faults.events[{faults[0]}].duration" if faults else None
        names = ", ".join(i.name for i in down)
        where = f" (instance_crash: {', '.join(f'faults.events[{k}]' for k in faults)})"
        return [(f"instances down: {names}" + (where if faults else ""), field)]

    def _stragglers(self, limit: float) -> list[tuple[str, str | None]]:
        """Instances slowed now, or whose step under way ends past the limit (a straggler's
        step keeps its length after the fault ends)."""
        out = []
        for inst in self.topology.instances:
            if not inst.alive or (inst.slowdown <= 1 and inst.step_end <= limit):
                continue
            faults = self._faults("straggler", inst.name)
            field = f"faults.events[{faults[0]}].factor" if faults else None
            slowed = f"steps ×{inst.slowdown:g} as long now, " if inst.slowdown > 1 else ""
            fault = f" (straggler: {field})" if field else ""
            out.append(
                (
                    f"{inst.name}: {slowed}its step under way ends at {_t(inst.step_end)}{fault}",
                    field,
                )
            )
        return out

    def _slow_links(self) -> list[tuple[str, str | None]]:
        """The link whose transfers under way need the longest to finish, if that is long."""
        worst: tuple[float, tuple, Link] | None = None
        for key, link in self.topology.link_items():
            if not link.active_transfers:
                continue
            bw = link.bandwidth if link.is_up else 0.0
            need = link.latency + (link.bytes_in_flight / bw if bw > 0 else float("inf"))
            if worst is None or need > worst[0]:
                worst = (need, key, link)
        if worst is None or worst[0] < 1.0:
            return []
        need, key, link = worst
        field, what = self._link_field(key, link)
        state = "is down" if not link.is_up else f"runs at {units.format_bandwidth(link.bandwidth)}"
        text = (
            f"{link.active_transfers} KV transfer(s) on {what} ({field or link.name}: {state}, "
            f"latency {_t(link.latency)}) need about {_t(need)} to deliver "
            f"{units.format_bytes(link.bytes_in_flight)}"
        )
        return [(text, field)]

    def _link_field(self, key: tuple, link: Link) -> tuple[str | None, str]:
        """The field path of the hop or tier a link is built from, and how to name it."""
        spec = self.scenario.spec
        if key[0] == "hop":
            if not link.is_up or link.factor < 1:
                kind = "link_down" if not link.is_up else "link_degraded"
                faults = self._faults(kind, hop=key[1])
                if faults:
                    return f"faults.events[{faults[0]}]", f"hop {key[1]!r}"
            for i, path in enumerate(spec.interconnect.paths):
                for j, hop in enumerate(path.hops):
                    if hop.name == key[1]:
                        what = "latency" if link.latency > HORIZON_S / 10 else "bandwidth"
                        return f"interconnect.paths[{i}].hops[{j}].{what}", f"hop {key[1]!r}"
            return None, f"hop {key[1]!r}"
        if key[0] in ("store", "tier"):
            for i, tier in enumerate(spec.kv.tiers):
                if tier.name == key[1]:
                    return f"kv.tiers[{i}]", f"tier {key[1]!r}"
        return None, f"link {link.name}"

    def _queues(self) -> str:
        queued = {}
        for inst in self.topology.instances:
            queued[inst.pool.name] = queued.get(inst.pool.name, 0) + inst.queue_len
        shown = ", ".join(f"{pool}: {n:,}" for pool, n in queued.items())
        return f"no fault or slow link holds it up; requests queued by pool: {shown}"
