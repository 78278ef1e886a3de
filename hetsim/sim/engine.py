"""The simulation of one scenario: arrivals → router → prefill → KV handoff → decode → done.

:class:`Simulation` builds the instances, links and prefix caches of a checked
:class:`~hetsim.spec.resolve.Scenario`, streams the workload's requests in, and runs simpy until
every request has ended. Events are one per arrival, one per batch step per instance, and a few
per KV transfer — never one per token.

The KV handoff follows the scenario's lifecycle protocol (:mod:`hetsim.sim.handoff`). TTFT counts
from arrival to the first output token, which the decode side produces in its first step after
the KV has arrived (as vLLM and SGLang do); in colocated serving it is the step that finishes the
prompt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import simpy

from hetsim.kv.lifecycle import LifecycleLog
from hetsim.kv.prefix_cache import PrefixCache
from hetsim.perf.step import step_model_for_pool
from hetsim.sim.faults import FaultInjector
from hetsim.sim.handoff import make_handoff
from hetsim.sim.instance import ColocatedInstance, DecodeInstance, Instance, PrefillInstance
from hetsim.sim.network import Link, Network
from hetsim.sim.router import Router
from hetsim.sim.state import Req, RequestLog
from hetsim.spec.resolve import Scenario
from hetsim.workload import RequestChunk, iter_requests

__all__ = ["Simulation", "SimOutput"]


@dataclass
class SimOutput:
    """What a run leaves: request rows, sampled time series, and run facts."""

    requests: pd.DataFrame
    timeseries: pd.DataFrame
    links: pd.DataFrame
    facts: dict[str, Any] = field(default_factory=dict)


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
        self.scenario = scenario
        self.progress = progress
        spec = scenario.spec
        self.seed = spec.seed if seed is None else seed
        self.env = simpy.Environment()
        self.network = Network(self.env)
        self.log = RequestLog()
        self.max_requests = max_requests
        self.sample_interval = sample_interval
        self._requests = requests
        self.steps = 0
        self.preemptions = 0
        self.arrivals = 0
        self.transfers = 0
        self.in_flight: dict[int, Req] = {}
        self._occupancy_area = 0.0  # ∫ requests-in-system dt, for Little's law
        self._occupancy_t = 0.0
        self.first_arrival = math.nan
        self.last_departure = math.nan
        self._samples: list[tuple] = []
        self._link_samples: list[tuple] = []
        self._links: dict[tuple, Link] = {}
        self._path_cache: dict[tuple[int, int], list[Link]] = {}
        self._arrivals_done = False

        self.instances: list[Instance] = []
        self.prefill: list[PrefillInstance] = []
        self.decode: list[DecodeInstance] = []
        self.colocated: list[ColocatedInstance] = []
        kinds = {
            "prefill": PrefillInstance,
            "decode": DecodeInstance,
            "colocated": ColocatedInstance,
        }
        for pool in spec.pools:
            step_model = step_model_for_pool(scenario.model, scenario.profiles[pool.name], pool)
            fp = scenario.footprints[pool.name]
            for i in range(pool.instances):
                inst = kinds[pool.role](self, pool, i, len(self.instances), step_model, fp)
                self.instances.append(inst)
                getattr(self, pool.role).append(inst)
        self.entry = self.prefill or self.colocated
        self.prefill_router = Router(self._router_policy(self.entry), self)
        self.decode_router = Router(self._router_policy(self.decode), self) if self.decode else None
        self._setup_prefix_caches()
        self.handoff = make_handoff(self)
        protocol = spec.lifecycle.protocol if self.decode else "colocated"
        self.life = LifecycleLog(protocol)
        self.fault_counts: dict[str, int] = {}
        faults = spec.faults
        self.recovery = faults.recovery
        self.max_retries = faults.max_retries
        self.transfer_timeout = faults.transfer_timeout
        # pull: decode's heartbeats extend a lease to 2/3 of its length past the last one, so
        # prefill learns of a lost consumer about that long after it went quiet (vLLM: 20 s)
        self.lease_remaining = spec.lifecycle.lease * 2 / 3
        self.heartbeat = spec.lifecycle.heartbeat
        self.dead = 0
        self.parked: list[tuple[Req, int, str]] = []  # waiting for a crashed role to return
        self.faults = FaultInjector(self, faults)

    # ---- building -----------------------------------------------------------------------------

    @staticmethod
    def _router_policy(instances: list[Instance]) -> str:
        return instances[0].pool.router if instances else "round_robin"

    def link(self, key: tuple, name: str, bandwidth: float, latency: float) -> Link:
        """The link for ``key``, created on first use (hops are shared per their scope)."""
        found = self._links.get(key)
        if found is None:
            found = self.network.add_link(name, bandwidth, latency)
            self._links[key] = found
        return found

    def path_links(self, src: Instance, dst: Instance) -> list[Link]:
        """The hops a transfer from ``src`` to ``dst`` crosses, as shared link resources."""
        key = (src.gid, dst.gid)
        links = self._path_cache.get(key)
        if links is None:
            spec = self.scenario.spec
            path = next(
                p
                for p in spec.interconnect.paths
                if p.from_ == src.pool.name and p.to == dst.pool.name
            )
            eff = self.scenario.profiles[src.pool.name].efficiency.network.value
            links = []
            for hop in path.hops:
                scope = {
                    "source_instance": (src.gid,),
                    "destination_instance": (dst.gid,),
                    "path": (path.from_, path.to),
                    "cluster": (),
                }[hop.shared_by]
                name = f"{hop.name}" + "".join(f"[{s}]" for s in scope)
                links.append(
                    self.link(("hop", hop.name, *scope), name, hop.bandwidth * eff, hop.latency)
                )
            self._path_cache[key] = links
        return links

    def _setup_prefix_caches(self) -> None:
        """One prefix cache per instance, pool or cluster (the tier's scope); a load link for
        tiers other than HBM."""
        spec = self.scenario.spec
        pc = spec.kv.prefix_cache
        self.prefix_block_tokens = pc.block_tokens
        self.prefix_hit_rate = pc.hit_rate
        self.prefix_enabled = pc.enabled
        for inst in self.entry:
            inst.prefix_cache = None
            inst.prefix_link = None
        if not pc.enabled:
            return
        tier = next((t for t in spec.kv.tiers if t.name == pc.tier), None)
        model = self.scenario.model
        shared: dict[tuple, PrefixCache] = {}
        for inst in self.entry:
            kv_per_block = model.kv_bytes_per_token(inst.pool.precision.kv) * pc.block_tokens
            if tier is None:  # HBM: the instance's own KV capacity doubles as cache
                capacity = inst.blocks.capacity * inst.page // pc.block_tokens
                inst.prefix_cache = PrefixCache(capacity)
                continue
            scope = {"instance": (inst.gid,), "pool": (inst.pool.name,), "cluster": ()}[tier.scope]
            if scope not in shared:
                shared[scope] = PrefixCache(int(tier.capacity // kv_per_block))
            inst.prefix_cache = shared[scope]
            inst.prefix_link = self.link(
                ("tier", tier.name, *scope), f"{tier.name}{scope}", tier.bandwidth, tier.latency
            )

    # ---- request flow -------------------------------------------------------------------------

    def _chunks(self) -> Iterator[RequestChunk]:
        if self._requests is not None:
            return iter(self._requests)
        sc = self.scenario
        return iter_requests(sc.spec.workload, sc.base_dir, self.seed)

    def _arrivals(self):
        env = self.env
        limit = self.max_requests
        for chunk in self._chunks():
            hashes = chunk.has_hashes
            arrival = chunk.arrival_s.tolist()
            inputs = chunk.input_tokens.tolist()
            outputs = chunk.output_tokens.tolist()
            ids = chunk.request_id.tolist()
            for i in range(len(ids)):
                if limit is not None and self.arrivals >= limit:
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
                self._arrive(req)

    def _integrate_occupancy(self) -> None:
        """Add requests-in-system × elapsed time; call before the count changes."""
        now = self.env.now
        self._occupancy_area += len(self.in_flight) * (now - self._occupancy_t)
        self._occupancy_t = now

    def _arrive(self, req: Req) -> None:
        self._integrate_occupancy()
        if self.arrivals == 0:
            self.first_arrival = req.arrival
        self.arrivals += 1
        self.in_flight[req.id] = req
        self.handoff.arrive(req)

    def route_prefill(self, req: Req) -> None:
        """Pick the instance that computes the prompt, apply its prefix cache, queue it there
        (after loading the cached prefix from its tier, if the tier is not HBM)."""
        inst = self.prefill_router.pick(self._live(self.entry), req)
        if inst is None:  # all down: wait for one to come back
            self.parked.append((req, req.retries, "prefill"))
            return
        req.prefill = inst
        max_blocks = inst.blocks.blocks_for(
            req.input + (req.output if inst.role == "colocated" else 0)
        )
        if max_blocks > inst.blocks.capacity:
            self.fail(
                req,
                f"needs {max_blocks} KV blocks; {inst.pool.name} instances hold "
                f"{inst.blocks.capacity}",
            )
            return
        cached = self._prefix_hit(inst, req)
        req.cached = cached
        req.computed = cached
        if cached and inst.prefix_link is not None:
            kvb = self.scenario.model.kv_bytes_per_token(inst.pool.precision.kv)
            load = self.network.transfer(cached * kvb, [inst.prefix_link], tag=req.id)
            load.callbacks.append(lambda _e, inst=inst, req=req: inst.enqueue(req))
            return
        inst.enqueue(req)

    def _prefix_hit(self, inst: Instance, req: Req) -> int:
        if not self.prefix_enabled:
            return 0
        if req.hashes is not None and inst.prefix_cache is not None:
            blocks = inst.prefix_cache.match(req.hashes.tolist())
            cached = blocks * self.prefix_block_tokens
        elif self.prefix_hit_rate is not None:
            cached = int(self.prefix_hit_rate * req.input)
        else:
            cached = 0
        # the last prompt token is always computed: its logits give the first output token
        return max(0, min(cached, req.input - 1))

    def prompt_cached(self, req: Req, inst: Instance) -> None:
        """A prompt's KV now exists on ``inst``: later prompts sharing its prefix can hit."""
        if inst.prefix_cache is not None and req.hashes is not None:
            inst.prefix_cache.insert(req.hashes.tolist())

    def prefill_finished(self, req: Req, inst: PrefillInstance) -> None:
        self.prompt_cached(req, inst)
        self.handoff.prefill_finished(req, inst)

    def route_decode(self, req: Req) -> DecodeInstance | None:
        assert self.decode_router is not None
        inst = self.decode_router.pick(self._live(self.decode), req)
        if inst is None:  # all down: wait for one to come back
            self.parked.append((req, req.retries, "decode"))
            return None
        need = inst.blocks.blocks_for(req.input + req.output)
        if need > inst.blocks.capacity:
            self.fail(
                req,
                f"prompt + output needs {need} KV blocks; {inst.pool.name} instances "
                f"hold {inst.blocks.capacity}",
            )
            return None
        req.decode = inst
        return inst

    def build_all_paths(self) -> None:
        """Create every prefill→decode path's links now (faults need them before first use)."""
        for p in self.prefill:
            for d in self.decode:
                self.path_links(p, d)

    def link_items(self):  # noqa: ANN201 - (key, Link) pairs
        return list(self._links.items())

    @property
    def done(self) -> bool:
        """Every request has arrived and ended (random faults stop then)."""
        return self._arrivals_done and not self.in_flight

    def _live(self, instances: list[Instance]) -> list[Instance]:
        return instances if not self.dead else [i for i in instances if i.alive]

    # ---- lifecycle and recovery ---------------------------------------------------------------

    def mark(self, req: Req, side: str, state: str) -> None:
        life, env = self.life, self.env
        life.move(req.id, env._now, side, state)  # noqa: SLF001 - the clock, without a call

    def count(self, what: str, n: int = 1) -> None:
        self.fault_counts[what] = self.fault_counts.get(what, 0) + n

    def current(self, req: Req, attempt: int) -> bool:
        """Is this still the same attempt of a request in flight?"""
        return req.id in self.in_flight and req.retries == attempt

    def crash(self, inst: Instance) -> None:
        """An instance dies: requests it only queued go elsewhere; those whose KV it held are
        recovered by the scenario's policy."""
        self.count("instance_crashes")
        was_alive = inst.alive
        affected = inst.crash()
        if was_alive:
            self.dead += 1
        for req, lost in affected:
            if req.id not in self.in_flight:
                continue
            if lost:
                self.recover(req, f"{inst.name} crashed", crashed=inst)
            elif inst.role == "decode":
                req.decode = None
                d = self.route_decode(req)
                if d is not None:
                    d.enqueue(req)
            else:
                req.prefill = None
                self.route_prefill(req)

    def restart(self, inst: Instance) -> None:
        if not inst.restart():
            return
        self.dead -= 1
        parked, self.parked = self.parked, []
        for req, attempt, role in parked:
            if not self.current(req, attempt):
                continue
            if role == "prefill":
                self.route_prefill(req)
            else:
                d = self.route_decode(req)
                if d is not None:
                    d.enqueue(req)

    def recover(self, req: Req, reason: str, crashed: Instance | None = None) -> None:
        """A request lost its KV (or its transfer): retry it, let decode recompute it, or fail."""
        if req.id not in self.in_flight:
            return
        self.count("requests_disrupted")
        self._strip(req, crashed)
        if self.recovery == "retry" and req.retries < self.max_retries:
            self.count("retries")
            self._restart_attempt(req)
            self.handoff.arrive(req)
        elif self.recovery == "fallback" and self.decode:
            d = min(self._live(self.decode), key=lambda i: (i.load(), i.gid), default=None)
            if d is None:
                self.fail(req, reason + "; no live decode instance to fall back to")
                return
            self.count("fallbacks")
            self._restart_attempt(req)
            self.mark(req, "D", "waiting")
            self.mark(req, "D", "committed")  # decode recomputes the prompt itself
            req.decode = d
            req.context = req.input
            d.preempted.append(req)
            d.kick()
        else:
            self.fail(req, reason)

    def _restart_attempt(self, req: Req) -> None:
        for side in ("P", "D", "S"):
            if self.life.state(req.id, side) not in ("none", "freed", "expired", "failed"):
                self.mark(req, side, "lost")
        self.life.forget(req.id)  # the next attempt starts from scratch (history is kept)
        req.retries += 1
        req.recomputed_tokens += req.input
        req.reset_attempt()

    def _strip(self, req: Req, crashed: Instance | None) -> None:
        """Take a request out of every live instance and give its blocks back — at once, or
        when the protocol's owner would notice (a lease, missed heartbeats)."""
        now = self.env.now
        transfer, req.transfer = req.transfer, None
        if transfer is not None:
            self.network.abort(transfer)
        protocol = self.life.protocol
        p = req.prefill
        if p is not None and p is not crashed and p.alive:
            p.forget(req)
            if req.p_blocks:
                if protocol == "pull" and req.p_state == "held":
                    # prefill keeps lending its blocks until the lease runs out
                    self.release_later(p, req.p_blocks, "held", self.lease_remaining)
                else:
                    p.blocks.release(now, req.p_blocks, req.p_state)
                    p.kick()
        req.p_blocks = 0
        d = req.decode
        if d is not None and d is not crashed and d.alive:
            d.forget(req)
            if req.d_blocks:
                if protocol == "push" and req.d_state == "reserved" and crashed is req.prefill:
                    # SGLang: decode gives up after two missed heartbeats from prefill
                    self.release_later(d, req.d_blocks, "reserved", 2 * self.heartbeat)
                else:
                    d.blocks.release(now, req.d_blocks, req.d_state)
                    d.kick()
        req.d_blocks = 0
        self.handoff.drop(req)

    def release_later(self, inst: Instance, blocks: int, state: str, delay: float) -> None:
        """Blocks an owner frees only after ``delay`` (unless it crashes first, losing them)."""
        if not blocks:
            return
        epoch = inst.epoch
        if state == "held":
            self.count("lease_expiries")

        def free(_event: object) -> None:
            if inst.epoch == epoch:
                inst.blocks.release(self.env.now, blocks, state)
                inst.kick()

        self.env.timeout(delay).callbacks.append(free)

    def expire(self, req: Req) -> None:
        """Pull: the lease on a held request ran out while its consumer was unreachable."""
        p = req.prefill
        if p is None or req.id not in p.held or not req.p_blocks:
            return
        p.held.pop(req.id, None)
        p.blocks.release(self.env.now, req.p_blocks, "held")
        req.p_blocks = 0
        self.count("lease_expiries")
        if req.transfer is not None:  # a read under way now reads freed blocks
            req.corrupted = True
            self.count("silent_corruptions")
        self.mark(req, "P", "expired")
        p.kick()

    def swap_out(self, req: Req, inst: DecodeInstance) -> None:
        """Copy a preempted sequence's KV to host memory (fire and forget: the blocks are free)."""
        self.network.transfer(
            req.context * inst.step_model.kv_bytes_per_token_layer * self.scenario.model.num_layers,
            [self._host_link(inst)],
        )

    def swap_in(self, req: Req, inst: DecodeInstance) -> None:
        nbytes = (
            req.context * inst.step_model.kv_bytes_per_token_layer * self.scenario.model.num_layers
        )
        done = self.network.transfer(nbytes, [self._host_link(inst)], tag=req.id)
        done.callbacks.append(lambda _e: inst.deliver(req))

    def _host_link(self, inst: Instance) -> Link:
        host = self.scenario.profiles[inst.pool.name].host
        return self.link(
            ("pcie", inst.gid),
            f"pcie[{inst.gid}]",
            host.pcie_bandwidth.value * inst.pool.devices,
            2e-6,
        )

    def finish(self, req: Req) -> None:
        req.t_finish = self.env.now
        self.mark(req, "D" if self.decode else "P", "freed")
        self._end(req, None)

    def fail(self, req: Req, reason: str) -> None:
        if req.id in self.in_flight:
            for side in ("P", "D", "S"):
                if self.life.state(req.id, side) not in ("none", "freed", "expired"):
                    self.mark(req, side, "failed")
            transfer, req.transfer = req.transfer, None
            if transfer is not None:
                self.network.abort(transfer)
            for inst in (req.prefill, req.decode):
                if inst is not None and inst.alive:
                    inst.forget(req)
            self.handoff.drop(req)
        self._end(req, reason)

    def _end(self, req: Req, reason: str | None) -> None:
        if req.id not in self.in_flight:
            return
        self._integrate_occupancy()
        del self.in_flight[req.id]
        self.life.forget(req.id)
        now = self.env.now
        self.last_departure = now
        # a failed request gives back whatever it held, on both sides
        if req.p_blocks and req.prefill is not None:
            req.prefill.blocks.release(now, req.p_blocks, req.p_state)
            req.p_blocks = 0
            req.prefill.kick()
        if req.d_blocks and req.decode is not None:
            req.decode.blocks.release(now, req.d_blocks, req.d_state)
            req.d_blocks = 0
            req.decode.kick()
        self.log.add(req, reason)
        if self.progress is not None and self.log.n % 256 == 0:
            self.progress(self.log.n)

    # ---- sampling -----------------------------------------------------------------------------

    def _sampler(self):
        env = self.env
        last_busy = [0.0] * len(self.instances)
        while True:
            yield env.timeout(self.sample_interval)
            now = env.now
            for inst in self.instances:
                b = inst.blocks
                batch = inst.batch.n if hasattr(inst, "batch") else len(inst.running)
                busy = (inst.busy_s - last_busy[inst.gid]) / self.sample_interval
                last_busy[inst.gid] = inst.busy_s
                self._samples.append(
                    (
                        now,
                        inst.gid,
                        inst.pool.name,
                        inst.role,
                        batch,
                        inst.queue_len,
                        b.used,
                        b.reserved,
                        b.held,
                        b.capacity,
                        min(busy, 1.0),
                    )
                )
            for link in self._links.values():
                self._link_samples.append(
                    (
                        now,
                        link.name,
                        link.bytes_in_flight,
                        link.active_transfers,
                        link.bandwidth,
                        link.utilisation,
                    )
                )
            if self.done and self.env.peek() == math.inf:  # nothing else will happen
                return

    # ---- running ------------------------------------------------------------------------------

    def run(self) -> SimOutput:
        start = time.perf_counter()

        def arrivals():
            yield from self._arrivals()
            self._arrivals_done = True

        self.env.process(arrivals())
        if self.sample_interval:  # None: no time series (the planner's many runs skip them)
            self.env.process(self._sampler())
        self.env.run()
        end_time = self.env.now
        for req in list(self.in_flight.values()):
            self.fail(req, "unfinished when the simulation ended (stuck: no capacity)")
        self._integrate_occupancy()
        if self.progress is not None:
            self.progress(self.log.n)
        wall = time.perf_counter() - start
        requests = self.log.to_frame()
        names = {i.gid: i.name for i in self.instances}
        ts = pd.DataFrame(
            self._samples,
            columns=[
                "time_s",
                "instance",
                "pool",
                "role",
                "batch_size",
                "queue_len",
                "kv_used_blocks",
                "kv_reserved_blocks",
                "kv_held_blocks",
                "kv_capacity_blocks",
                "busy",
            ],
        )
        ts.insert(2, "instance_name", ts["instance"].map(names))
        links = pd.DataFrame(
            self._link_samples,
            columns=[
                "time_s",
                "link",
                "bytes_in_flight",
                "active_transfers",
                "bandwidth",
                "utilisation_since_start",
            ],
        )
        facts = {
            "wall_s": wall,
            "events": self.steps
            + self.arrivals
            + self.transfers
            + len(self._samples) // max(len(self.instances), 1),
            "steps": self.steps,
            "arrivals": self.arrivals,
            "end_time_s": end_time,
            "first_arrival_s": self.first_arrival,
            "last_departure_s": self.last_departure,
            "preemptions": self.preemptions,
            "occupancy_area": self._occupancy_area,
            "kv_blocks_leaked": sum(i.blocks.allocated for i in self.instances)
            + (self.handoff.store.allocated if hasattr(self.handoff, "store") else 0),
            "faults": dict(sorted(self.fault_counts.items())),
            "lifecycle_transitions": dict(sorted(self.life.counts.items())),
            "instances": [
                {
                    "name": i.name,
                    "pool": i.pool.name,
                    "role": i.role,
                    "busy_s": i.busy_s,
                    "steps": i.steps,
                    "peak_blocks": i.blocks.peak,
                    "capacity_blocks": i.blocks.capacity,
                    "used_block_s": i.blocks.used_block_s,
                    "reserved_block_s": i.blocks.reserved_block_s,
                    "held_block_s": i.blocks.held_block_s,
                }
                for i in self.instances
            ],
            "links": {
                link.name: {"bytes_carried": link.bytes_carried, "utilisation": link.utilisation}
                for link in self._links.values()
            },
        }
        for inst in self.instances:
            inst.blocks.advance(end_time)
        return SimOutput(requests, ts, links, facts)
