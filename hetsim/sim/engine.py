"""The simulation of one scenario: arrivals → router → prefill → KV handoff → decode → done.

:class:`Simulation` owns the simpy environment and the run loop, and wires the parts: the
:mod:`~hetsim.sim.topology` (instances and links), the request book, dispatch and prefix caches,
the lifecycle protocol (:mod:`hetsim.sim.handoff`), recovery and fault injection, host swap and
the sampler. Each part gets the narrow ports it calls (:mod:`hetsim.sim.ports`), never the
engine. Events are one per arrival, one per batch step per instance (a steady decode batch's
steps several to one: :mod:`hetsim.sim.instance.fastforward`), and a few per KV transfer — never
one per token.

Arrivals are open or closed. Open loop: each request arrives at its workload time. Closed loop
(``workload.closed_loop``, :mod:`hetsim.workload.closed_loop`): ``concurrency`` clients start at
their ramp-up offsets; the book tells the loop when a request ends (completed or failed), and
that request's client sends the next one ``think_time`` later, with the next lengths in issue
order, until ``requests`` (or ``max_requests``) have been sent. Multi-turn sessions
(:mod:`hetsim.workload.sessions`: ``synthetic.sessions``, ``closed_loop.sessions`` or a trace
with ``sessions: true``) go through :class:`Sessions`: a turn is sent no earlier than its
arrival and ``think`` after the turn it follows ends (completed or failed); in a closed loop each
client runs whole sessions, one after another.

TTFT counts from arrival to the first output token, which the decode side produces in its first
step after the KV has arrived (as vLLM and SGLang do); in colocated serving it is the step that
finishes the prompt. Where the pools that take arrivals name a serving ``runtime``, a request
reaches them after that runtime's frontend, one server that handles requests in turn (HTTP and
tokenisation, :meth:`~hetsim.perf.runtimes.RuntimeOverheads.admission`): its arrival is the
client's send. Requests sent together therefore reach the engine one service time apart, which
is what disperses a closed loop's clients that all start at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator
from itertools import chain, groupby
from operator import attrgetter
from typing import NamedTuple

import numpy as np
import simpy

from hetsim.checks.scenario import frontend_runtime
from hetsim.kv.lifecycle import DECODE, PREFILL
from hetsim.perf.runtimes import RuntimeOverheads, runtime_overheads
from hetsim.sim.book import RequestBook
from hetsim.sim.clock import processed_events
from hetsim.sim.dispatch import Dispatcher
from hetsim.sim.faults import FaultInjector
from hetsim.sim.handoff import PROTOCOLS, Colocated, Handoff
from hetsim.sim.horizon import Horizon, preflight
from hetsim.sim.network import Network
from hetsim.sim.output import InstanceFacts, LinkFacts, RunFacts, SimOutput
from hetsim.sim.ports import Ledger, Stats
from hetsim.sim.prefix import PrefixCaches
from hetsim.sim.recovery import Recovery
from hetsim.sim.sampler import Sampler, points_for
from hetsim.sim.state import Req
from hetsim.sim.swap import HostSwap
from hetsim.sim.topology import Topology
from hetsim.sim.wiring import Wiring
from hetsim.spec.resolve import Scenario
from hetsim.workload import (
    ReadCounts,
    RequestChunk,
    client_starts,
    has_sessions,
    iter_requests,
    sized,
)

__all__ = ["Simulation"]


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        requests: Iterable[RequestChunk] | None = None,
        *,
        seed: int | None = None,
        max_requests: int | None = None,
        sample_interval: float | None = 1.0,
        progress: Callable[[int], None] | None = None,
        heartbeat: Callable[[int, float], None] | None = None,
        heartbeat_s: float = 10.0,
        fast_forward: bool = True,
    ) -> None:
        spec = scenario.spec
        self.scenario = scenario
        self.seed = spec.seed if seed is None else seed
        self.max_requests = max_requests
        self.sample_interval = sample_interval
        self._requests = requests
        # the scenario's generators make max_requests requests; a trace stops after that many
        self.workload = sized(spec.workload, max_requests)
        preflight(scenario, self.workload)  # absurd values fail here, not after hours
        # heartbeat(requests ended, simulated clock): every heartbeat_s of wall time
        self.heartbeat = heartbeat
        self.heartbeat_s = heartbeat_s
        self.read_counts = ReadCounts()  # what a trace read kept and dropped, filled as it goes
        self.env = env = simpy.Environment()
        self.network = Network(env, quiet=fast_forward)
        self.stats = Stats()
        has_decode = any(p.role == "decode" for p in spec.pools)
        self.protocol = spec.lifecycle.protocol if has_decode else "colocated"
        self.ledger = Ledger(env, self.protocol)
        # instances start their loops as they are built: the order of these steps is the
        # order of same-time events, which a seed's results depend on
        self.topology = Topology(scenario, env, self.network, self.stats, self.ledger, self.seed)
        final_side = DECODE if has_decode else PREFILL
        warmup = spec.workload.warmup_requests
        self.book = RequestBook(
            env, self.stats, self.ledger, self.network, final_side, progress, warmup
        )
        self.prefix = PrefixCaches(scenario, self.topology)
        self.dispatch = Dispatcher(self.topology, self.prefix, self.network, self.book)
        # the parts both the lifecycle protocol and recovery act through
        wiring = Wiring(
            env, self.stats, self.ledger, self.network, self.topology, self.book, self.dispatch
        )
        self.handoff: Handoff = PROTOCOLS.get(self.protocol, Colocated)(wiring)
        self._hand_in = self._admitting(self.handoff.arrive, _frontend(scenario))
        self.recovery = Recovery(wiring, self.handoff)
        self.faults = FaultInjector(
            env,
            spec.faults,
            self.seed,
            stats=self.stats,
            network=self.network,
            topology=self.topology,
            recovery=self.recovery,
            done=lambda: self.book.done,
        )
        self.clients = self._client_loop()
        self._connect()
        self.sampler = Sampler(
            env,
            self.topology,
            sample_interval or 0.0,
            max_points=points_for(len(self.topology.instances)),
        )
        self.horizon = Horizon(scenario, self.book, self.topology)
        for inst in self.topology.instances:
            # a fast-forward stops where the horizon guard would look at its steps
            inst.horizon = self.horizon.limit
            inst.fast_forward = fast_forward

    def _connect(self) -> None:
        """Late bindings: parts that call each other both ways."""
        self.handoff.connect(self.recovery, self.faults)
        self.book.connect(self.handoff.drop, self.clients.ended if self.clients else None)
        swap = HostSwap(self.topology, self.network)
        instances = self.topology.instances
        self.book.on_window(lambda: [inst.open_window() for inst in instances])
        for inst in instances:
            inst.connect(self.handoff, swap, self.book.finish, self.prefix.prompt_cached)

    # ---- arrivals -----------------------------------------------------------------------------

    def _chunks(self) -> Iterator[RequestChunk]:
        if self._requests is not None:
            return iter(self._requests)
        return iter_requests(
            self.workload,
            self.scenario.base_dir,
            self.seed,
            counts=self.read_counts,
            max_context=self.scenario.model.max_context,
        )

    def _client_loop(self) -> ClientLoop | Sessions | None:
        """The closed loop's clients, when the scenario's workload is one, or the driver of a
        session workload (when no ``requests`` replace the scenario's)."""
        closed = self.workload.closed_loop
        if self._requests is not None:
            return self._given_sessions()
        if has_sessions(self.workload):
            return Sessions(
                self.env,
                self.book,
                self._hand_in,
                self._chunks(),
                self.max_requests if closed is None else closed.requests,
                None if closed is None else client_starts(closed, self.seed).tolist(),
                0.0 if closed is None else closed.think_time,
            )
        if closed is None:
            return None
        return ClientLoop(
            self.env,
            self.book,
            self._hand_in,
            self._chunks(),
            closed.requests,
            closed.think_time,
            client_starts(closed, self.seed).tolist(),
        )

    def _given_sessions(self) -> Sessions | None:
        """The driver of given ``requests`` that come as sessions (their first chunk says),
        sent open loop; None for plain requests."""
        chunks = iter(self._requests or ())
        first = next(chunks, None)
        if first is None or not first.has_sessions:
            self._requests = [] if first is None else chain([first], chunks)
            return None
        if np.isnan(first.arrival_s).any():
            raise ValueError(
                "sessions without arrival times (a closed loop's) cannot be replayed open "
                "loop: simulate the closed-loop scenario itself"
            )
        return Sessions(
            self.env, self.book, self._hand_in, chain([first], chunks), self.max_requests, None, 0.0
        )

    def _arrivals(self) -> Generator[simpy.Event, None, None]:
        env, stats, limit = self.env, self.stats, self.max_requests
        arrive, hand_in = self.book.arrive, self._hand_in
        for chunk in self._chunks():
            if np.isnan(chunk.arrival_s).any():
                raise ValueError(
                    "requests without arrival times (a closed loop's) cannot be replayed open "
                    "loop: simulate the closed-loop scenario itself"
                )
            hashes = chunk.has_hashes
            arrival = chunk.arrival_s.tolist()
            inputs = chunk.input_tokens.tolist()
            outputs = chunk.output_tokens.tolist()
            ids = chunk.request_id.tolist()
            for i in range(len(ids)):
                if limit is not None and stats.arrivals >= limit:
                    return
                delay = arrival[i] - env.now
                if delay > 0:
                    yield env.timeout(delay)
                req = Req(
                    ids[i],
                    env.now,
                    inputs[i],
                    max(outputs[i], 1),
                    chunk.hashes(i) if hashes else None,
                )
                arrive(req)
                hand_in(req)

    def _admitting(
        self, hand_in: Callable[[Req], None], frontend: RuntimeOverheads | None
    ) -> Callable[[Req], None]:
        """``hand_in`` after the runtime's frontend: one server that parses and tokenises
        requests one after another (vLLM's API server, SGLang's tokenizer manager and
        trtllm-serve are single Python processes), so requests sent together reach the engine
        spread by their service times. One timeout event per request."""
        if frontend is None:
            return hand_in
        env, admission = self.env, frontend.admission
        free_at = 0.0  # when the frontend finishes the requests it already holds

        def admit(req: Req) -> None:
            nonlocal free_at
            now = env.now
            free_at = (free_at if free_at > now else now) + admission(req.input)
            env.timeout(free_at - now).callbacks.append(lambda _e: hand_in(req))

        return admit

    # ---- running ------------------------------------------------------------------------------

    def run(self) -> SimOutput:
        start = time.perf_counter()
        book = self.book

        def arrivals() -> Generator[simpy.Event, None, None]:
            yield from self._arrivals()
            book.arrivals_done = True

        if self.clients is not None:
            self.clients.start()
        else:
            self.env.process(arrivals())
        if self.sample_interval:  # None: no time series (the planner's many runs skip them)
            self.env.process(self.sampler.run())
        self._loop()
        end_time = self.env.now
        if isinstance(self.clients, Sessions):  # turns whose previous turn never ended
            self.read_counts.turns_unsent = self.clients.unsent
        book.connect(self.handoff.drop)  # the clients stop with the clock: nothing more is sent
        for req in list(book.in_flight.values()):
            book.fail(req, "unfinished when the simulation ended (stuck: no capacity)")
        book.integrate_occupancy()
        if book.progress is not None:
            book.progress(book.log.n)
        wall = time.perf_counter() - start
        requests = book.log.to_frame()
        ts, links = self.sampler.frames()
        facts = self._facts(wall, end_time)
        for inst in self.topology.instances:
            inst.blocks.advance(end_time)
        return SimOutput(requests, ts, links, facts, self.ledger.log.to_frame())

    def _loop(self) -> None:
        """simpy's ``env.run()``, with the horizon guard before each event and a heartbeat
        between batches of events. The guard compares the next event's time with a cached
        limit (the limit never decreases: :mod:`hetsim.sim.horizon`), so it costs one
        comparison per event; the clock is read once per batch."""
        env, horizon, sampler = self.env, self.horizon, self.sampler
        queue = env._queue  # noqa: SLF001 - the next event's time, without a call per event
        step = env.step
        at = horizon.limit()
        beat, every = self.heartbeat, self.heartbeat_s
        last_beat = time.perf_counter()
        while queue:
            for _ in range(1024):
                if not queue:
                    break
                if queue[0][0] > at:
                    if len(queue) == 1 and queue[0][3] is sampler.pending:
                        # a lone sampler tick is the last event: it records the end state,
                        # however far away (only its own ending follows, at the same time)
                        at = queue[0][0]
                    else:  # past the limit: the run stops with its cause
                        at = horizon.check(queue[0][0])
                step()
            if beat is not None and time.perf_counter() - last_beat >= every:
                beat(self.book.log.n, env.now)
                last_beat = time.perf_counter()

    def _facts(self, wall: float, end_time: float) -> RunFacts:
        stats, book, instances = self.stats, self.book, self.topology.instances
        # the measured window: from the first measured arrival until the system empties
        window_end = book.last_departure
        return RunFacts(
            wall_s=wall,
            events=processed_events(self.env),
            steps=stats.steps,
            arrivals=stats.arrivals,
            end_time_s=end_time,
            first_arrival_s=book.first_arrival,
            last_departure_s=book.last_departure,
            window_s=window_end - book.window_start,
            preemptions=stats.preemptions,
            occupancy_area=book.occupancy_area,
            kv_blocks_leaked=sum(i.blocks.allocated for i in instances) + self.handoff.allocated,
            faults=dict(sorted(stats.faults.items())),
            lifecycle_transitions=dict(sorted(self.ledger.log.counts.items())),
            instances=tuple(
                InstanceFacts(
                    name=i.name,
                    pool=i.pool.name,
                    role=i.role,
                    window_busy_s=i.busy_until(window_end) - i.busy_before_window,
                    steps=i.steps,
                    peak_blocks=i.blocks.peak,
                    capacity_blocks=i.blocks.capacity,
                    used_block_s=i.blocks.used_block_s,
                    reserved_block_s=i.blocks.reserved_block_s,
                    held_block_s=i.blocks.held_block_s,
                    window_busy_energy_j=(i.busy_energy_until(window_end) - i.energy_before_window)
                    * i.pool.devices
                    if i.measured_power
                    else None,
                    power_source=i.step_model.power_source if i.measured_power else None,
                )
                for i in instances
            ),
            links={
                link.name: LinkFacts(link.bytes_carried, link.utilisation)
                for link in self.topology.links
            },
            kv_tiers=self.prefix.facts(end_time),
        )


class ClientLoop:
    """A closed loop's clients: each request sent is one simpy event (a timeout whose callback
    sends it), scheduled at a client's start offset or ``think`` after a request ends.

    Clients are interchangeable — a free client is a free slot — so the loop counts slots
    rather than naming clients; the k-th request sent takes the k-th lengths of ``chunks``.
    """

    def __init__(
        self,
        env: simpy.Environment,
        book: RequestBook,
        hand_in: Callable[[Req], None],
        chunks: Iterator[RequestChunk],
        total: int,
        think: float,
        starts: list[float],
    ) -> None:
        self.env = env
        self.book = book
        self.hand_in = hand_in
        self.total = total
        self.think = think
        self.starts = starts
        self.scheduled = 0  # sends scheduled so far (sent or waiting on their timeout)
        self.sent = 0
        self._next = self._requests(chunks)

    @staticmethod
    def _requests(chunks: Iterator[RequestChunk]) -> Iterator[tuple[int, int, int]]:
        for chunk in chunks:
            yield from zip(
                chunk.request_id.tolist(),
                chunk.input_tokens.tolist(),
                chunk.output_tokens.tolist(),
                strict=True,
            )

    def start(self) -> None:
        """Schedule each client's first request (only as many clients as there are requests)."""
        for t in self.starts[: self.total]:
            self._schedule(t)
        if self.total == 0:
            self.book.arrivals_done = True

    def ended(self, req: Req) -> None:
        """A request left the system, completed or failed: its client sends the next one."""
        if self.scheduled < self.total:
            self._schedule(self.think)

    def _schedule(self, delay: float) -> None:
        self.scheduled += 1
        self.env.timeout(delay).callbacks.append(self._send)

    def _send(self, _event: simpy.Event) -> None:
        rid, n_in, n_out = next(self._next)
        req = Req(rid, self.env.now, n_in, max(n_out, 1), None)
        self.book.arrive(req)
        self.hand_in(req)
        self.sent += 1
        if self.sent == self.total:
            self.book.arrivals_done = True


class Turn(NamedTuple):
    """A session turn as the driver holds it."""

    id: int
    earliest: float  # its send time at the soonest (its arrival, or a trace's timestamp)
    input: int
    output: int
    hashes: np.ndarray | None
    session: int
    number: int  # its turn in the session, from 1
    parent: int  # the id of the turn it follows, or -1
    think: float  # seconds after that turn ends


class Sessions:
    """Sends the turns of multi-turn sessions (:mod:`hetsim.workload.sessions`).

    Open loop (``starts`` None): turns are read in order of their earliest send time; a first
    turn is sent then, a later one then too if the turn it follows has ended ``think`` before,
    else ``think`` after that turn ends. Closed loop: client c starts a session at
    ``starts[c]``; when one of its turns ends, it sends the session's next turn ``think`` later,
    or after its last turn starts its next session ``between`` later. A failed turn ends like a
    completed one: its session goes on. ``limit`` caps the turns read (None: all).
    """

    def __init__(
        self,
        env: simpy.Environment,
        book: RequestBook,
        hand_in: Callable[[Req], None],
        chunks: Iterator[RequestChunk],
        limit: int | None,
        starts: list[float] | None,
        between: float,
    ) -> None:
        self.env = env
        self.book = book
        self.hand_in = hand_in
        self.rows = self._turns(chunks, limit)
        self.starts = starts
        self.between = between
        self.reading = True  # turns may still come from the workload
        self.unsent = 0  # turns read and not sent yet (waiting on the turn they follow)
        self.ended_at: dict[int, float] = {}  # open loop: when each request ended
        self.waiting: dict[int, list[Turn]] = {}  # open loop: turns by the turn they follow
        self.rest: dict[int, list[Turn]] = {}  # closed loop: a session's turns after this one
        self._sessions = (list(g) for _, g in groupby(self.rows, key=attrgetter("session")))

    @staticmethod
    def _turns(chunks: Iterator[RequestChunk], limit: int | None) -> Iterator[Turn]:
        taken = 0
        for chunk in chunks:
            if not chunk.has_sessions:
                raise ValueError("a session workload's chunks carry sessions")
            hashes = chunk.has_hashes
            columns = (chunk.request_id, chunk.arrival_s, chunk.input_tokens)
            rest = (chunk.output_tokens, chunk.session, chunk.turn, chunk.parent, chunk.think_s)
            rid, arrival, n_in = (c.tolist() for c in columns)
            n_out, session, turn, parent, think = (c.tolist() for c in rest)  # type: ignore[union-attr]
            for i in range(len(rid)):
                if limit is not None and taken >= limit:
                    return
                taken += 1
                yield Turn(rid[i], arrival[i], n_in[i], n_out[i],
                           chunk.hashes(i) if hashes else None,
                           session[i], turn[i], parent[i], think[i])  # fmt: skip

    def start(self) -> None:
        if self.starts is None:
            self.env.process(self._open())
            return
        for t in self.starts:
            self.env.timeout(t).callbacks.append(lambda _e: self._next_session())

    def _open(self) -> Generator[simpy.Event, None, None]:
        env = self.env
        for turn in self.rows:
            delay = turn.earliest - env.now
            if delay > 0:
                yield env.timeout(delay)
            self.unsent += 1
            parent = turn.parent
            end = self.ended_at.get(parent)
            if parent < 0:
                self._send(turn)
            elif end is None:
                self.waiting.setdefault(parent, []).append(turn)
            else:
                self._later(end + turn.think - env.now, turn)
        self.reading = False
        self._check_done()

    def ended(self, req: Req) -> None:
        """A turn left the system, completed or failed: the turns that follow it go on."""
        if self.starts is None:
            self.ended_at[req.id] = self.env.now
            for turn in self.waiting.pop(req.id, ()):
                self._after(turn.think, turn)
            return
        rest = self.rest.pop(req.id, None)
        if rest:
            self.rest[rest[0].id] = rest[1:]
            self._after(rest[0].think, rest[0])
        elif rest is not None:  # the session's last turn: its client starts another
            self.env.timeout(self.between).callbacks.append(lambda _e: self._next_session())

    def _next_session(self) -> None:
        turns = next(self._sessions, None) if self.reading else None
        if turns is None:
            self.reading = False
            self._check_done()
            return
        self.unsent += len(turns)
        self.rest[turns[0].id] = turns[1:]
        self._send(turns[0])

    def _later(self, delay: float, turn: Turn) -> None:
        if delay <= 0:
            self._send(turn)
        else:
            self._after(delay, turn)

    def _after(self, delay: float, turn: Turn) -> None:
        # always an event, even after 0 s: a turn is never sent from inside another's ending
        self.env.timeout(max(delay, 0.0)).callbacks.append(lambda _e: self._send(turn))

    def _send(self, turn: Turn) -> None:
        req = Req(turn.id, self.env.now, turn.input, max(turn.output, 1), turn.hashes,
                  turn.session, turn.number)  # fmt: skip
        self.unsent -= 1
        self.book.arrive(req)
        self.hand_in(req)
        self._check_done()

    def _check_done(self) -> None:
        if not self.reading and not self.unsent:
            self.book.arrivals_done = True


def _frontend(scenario: Scenario) -> RuntimeOverheads | None:
    """The overheads of the runtime whose frontend admits the requests, if any names one."""
    runtime = frontend_runtime(scenario.spec)
    return None if runtime is None else runtime_overheads(runtime)
