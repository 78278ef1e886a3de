"""The simulation of one scenario: arrivals → router → prefill → KV handoff → decode → done.

:class:`Simulation` owns the simpy environment and the run loop, and wires the parts: the
:mod:`~hetsim.sim.topology` (instances and links), the request book, dispatch and prefix caches,
the lifecycle protocol (:mod:`hetsim.sim.handoff`), recovery and fault injection, host swap and
the sampler. Each part gets the narrow ports it calls (:mod:`hetsim.sim.ports`), never the
engine. Events are one per arrival, one per batch step per instance, and a few per KV transfer —
never one per token.

TTFT counts from arrival to the first output token, which the decode side produces in its first
step after the KV has arrived (as vLLM and SGLang do); in colocated serving it is the step that
finishes the prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator

import simpy

from hetsim.kv.lifecycle import DECODE, PREFILL
from hetsim.sim.book import RequestBook
from hetsim.sim.dispatch import Dispatcher
from hetsim.sim.faults import FaultInjector
from hetsim.sim.handoff import PROTOCOLS, Colocated, Handoff
from hetsim.sim.network import Network
from hetsim.sim.output import InstanceFacts, LinkFacts, RunFacts, SimOutput
from hetsim.sim.ports import Ledger, Stats
from hetsim.sim.prefix import PrefixCaches
from hetsim.sim.recovery import Recovery
from hetsim.sim.sampler import Sampler
from hetsim.sim.state import Req
from hetsim.sim.swap import HostSwap
from hetsim.sim.topology import Topology
from hetsim.spec.resolve import Scenario
from hetsim.workload import RequestChunk, iter_requests

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
    ) -> None:
        spec = scenario.spec
        self.scenario = scenario
        self.seed = spec.seed if seed is None else seed
        self.max_requests = max_requests
        self.sample_interval = sample_interval
        self._requests = requests
        self.env = env = simpy.Environment()
        self.network = Network(env)
        self.stats = Stats()
        has_decode = any(p.role == "decode" for p in spec.pools)
        self.protocol = spec.lifecycle.protocol if has_decode else "colocated"
        self.ledger = Ledger(env, self.protocol)
        # instances start their loops as they are built: the order of these steps is the
        # order of same-time events, which a seed's results depend on
        self.topology = Topology(scenario, env, self.network, self.stats, self.ledger)
        final_side = DECODE if has_decode else PREFILL
        self.book = RequestBook(env, self.stats, self.ledger, self.network, final_side, progress)
        self.prefix = PrefixCaches(scenario, self.topology)
        self.dispatch = Dispatcher(self.topology, self.prefix, self.network, self.book)
        # the ports both the lifecycle protocol and recovery act through
        ports = (env, self.stats, self.ledger, self.network, self.topology, self.book)
        self.handoff: Handoff = PROTOCOLS.get(self.protocol, Colocated)(*ports, self.dispatch)
        self.recovery = Recovery(*ports, self.dispatch, self.handoff)
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
        self._connect()
        self.sampler = Sampler(env, self.topology, sample_interval or 0.0, lambda: self.book.done)

    def _connect(self) -> None:
        """Late bindings: parts that call each other both ways."""
        self.handoff.connect(self.recovery, self.faults)
        self.book.connect(self.handoff.drop)
        swap = HostSwap(self.topology, self.network)
        for inst in self.topology.instances:
            inst.connect(self.handoff, swap, self.book.finish, self.prefix.prompt_cached)

    # ---- arrivals -----------------------------------------------------------------------------

    def _chunks(self) -> Iterator[RequestChunk]:
        if self._requests is not None:
            return iter(self._requests)
        sc = self.scenario
        return iter_requests(sc.spec.workload, sc.base_dir, self.seed)

    def _arrivals(self) -> Generator[simpy.Event, None, None]:
        env, stats, limit = self.env, self.stats, self.max_requests
        arrive, hand_in = self.book.arrive, self.handoff.arrive
        for chunk in self._chunks():
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

    # ---- running ------------------------------------------------------------------------------

    def run(self) -> SimOutput:
        start = time.perf_counter()
        book = self.book

        def arrivals() -> Generator[simpy.Event, None, None]:
            yield from self._arrivals()
            book.arrivals_done = True

        self.env.process(arrivals())
        if self.sample_interval:  # None: no time series (the planner's many runs skip them)
            self.env.process(self.sampler.run())
        self.env.run()
        end_time = self.env.now
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

    def _facts(self, wall: float, end_time: float) -> RunFacts:
        stats, book, instances = self.stats, self.book, self.topology.instances
        samples = len(self.sampler.samples) // max(len(instances), 1)
        return RunFacts(
            wall_s=wall,
            events=stats.steps + stats.arrivals + stats.transfers + samples,
            steps=stats.steps,
            arrivals=stats.arrivals,
            end_time_s=end_time,
            first_arrival_s=book.first_arrival,
            last_departure_s=book.last_departure,
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
                    busy_s=i.busy_s,
                    steps=i.steps,
                    peak_blocks=i.blocks.peak,
                    capacity_blocks=i.blocks.capacity,
                    used_block_s=i.blocks.used_block_s,
                    reserved_block_s=i.blocks.reserved_block_s,
                    held_block_s=i.blocks.held_block_s,
                )
                for i in instances
            ),
            links={
                link.name: LinkFacts(link.bytes_carried, link.utilisation)
                for link in self.topology.links
            },
        )
