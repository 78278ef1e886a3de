"""Routing: which instance of a role takes a request, across all the pools of that role.

One :class:`RoleRouter` per role that takes requests (prefill or colocated, and decode) spans
every pool of the role — pools on different accelerators form one routing set. For the entry
role, ordered length rules (``routing.prefill.rules``) may first narrow the set: the first rule
whose ``when`` admits the prompt length names the pools, and the last rule is a catch-all (the
scenario checks make sure of it). The policy then picks among the live instances of those pools.
If every instance of the matched pools is down, the request waits for one of them to come back
(the dispatcher parks it): a request is never sent to another tier than its rule names, as a
real length-tiered deployment would not either.

Policies (each keeps one round-robin counter per rule, so a tier is cycled on its own):

* ``round_robin`` — in turn.
* ``least_outstanding_tokens`` — fewest prompt (prefill) or output (decode) tokens queued or
  running.
* ``prefix_aware`` — the instance whose prefix cache holds the longest prefix of the prompt;
  ties go to the least outstanding tokens. SGLang's cache-aware router, without its balance
  thresholds: the longest match wins however loaded its instance is.
* ``cache_aware`` — Dynamo's KV router cost, in prompt-block units: ``overlap_weight × (prompt
  blocks left to compute there) + (blocks of work already outstanding there)``, least wins
  (Dynamo: ``overlap_score_weight × prefill blocks + active blocks``, default weight 1.0). The
  load term plays the part of SGLang's balance thresholds (which switch from cache matching to
  the shortest queue once loads differ by more than an absolute and a relative threshold)
  continuously: a long hit on a busy instance loses to a short one on an idle instance once the
  extra queue outweighs the tokens it spares. A larger weight favours hits, a smaller one load.
* ``least_kv_load`` (decode) — KV-room aware: among the instances whose free KV blocks (not
  used, not promised to queued requests) can take the request's prompt + output now, the one
  with the smallest share of KV blocks used or promised; when none can, the least loaded of
  all (the request then waits in its queue for room). With identical instances the least loaded
  always has the most room, so this differs from the plain share only across unequal pools.

The prefix-cache scores use only ``inst.prefix_cache.match(blocks, touch=False)`` (leading
prompt blocks found, in whichever tier): scoring must not refresh recency or promote blocks.
"""

from __future__ import annotations

from collections.abc import Callable

from hetsim.sim.instance import Instance
from hetsim.sim.state import Req
from hetsim.spec.scenario import RoleRouting

__all__ = ["Router", "RoleRouter", "POLICIES"]

POLICIES = ("round_robin", "least_outstanding_tokens", "prefix_aware", "cache_aware",
            "least_kv_load")  # fmt: skip


def _hit_blocks(inst: Instance, blocks: list[int]) -> int:
    cache = inst.prefix_cache
    return cache.match(blocks, touch=False) if cache is not None else 0


class Router:
    """One policy over a candidate set of instances."""

    def __init__(self, policy: str, block_tokens: int = 512, overlap_weight: float = 1.0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown router policy {policy!r}")
        self.policy = policy
        self.block_tokens = block_tokens  # the prefix cache's hash block size
        self.overlap_weight = overlap_weight
        self._next = 0

    def pick(self, instances: list[Instance], req: Req) -> Instance | None:
        """The instance to use, or None when ``instances`` (the live ones) is empty."""
        if not instances:
            return None
        if len(instances) == 1:
            return instances[0]
        policy = self.policy
        if policy == "round_robin":
            inst = instances[self._next % len(instances)]
            self._next += 1
            return inst
        if policy == "least_kv_load":  # decode pools only (the scenario's checks)
            return self._kv_room(instances, req)
        # a prompt shorter than one block has no hashes and scores no hit anywhere
        if req.hashes is not None and len(req.hashes):
            blocks = req.hashes.tolist()  # once per request, not once per instance scored
            if policy == "prefix_aware":
                return min(
                    instances,
                    key=lambda i: (-_hit_blocks(i, blocks), i.outstanding_tokens, i.gid),
                )
            if policy == "cache_aware":
                return min(instances, key=lambda i: (self.cost(i, req, blocks), i.gid))
        return min(instances, key=lambda i: (i.outstanding_tokens, i.gid))

    def cost(self, inst: Instance, req: Req, blocks: list[int] | None = None) -> float:
        """cache_aware's cost of sending ``req`` to ``inst``, in prompt blocks: the weighted
        blocks it would compute there plus the blocks of work already outstanding there
        (``blocks``: the prompt's hashes as a list, when the caller already has them)."""
        if blocks is None:
            blocks = req.hashes.tolist() if req.hashes is not None else []
        # the last prompt token is always computed (as the prefix caches' hit counts it)
        cached = min(_hit_blocks(inst, blocks) * self.block_tokens, req.input - 1)
        to_compute = req.input - cached
        return (self.overlap_weight * to_compute + inst.outstanding_tokens) / self.block_tokens

    @staticmethod
    def _kv_room(instances: list[Instance], req: Req) -> Instance:
        tokens = req.input + req.output
        fits = []
        for i in instances:  # one read of each pool (a read books a fast-forward's steps)
            blocks = i.blocks
            # free blocks less those promised to requests queued there (the load's numerator)
            if blocks.free - i.queued_blocks >= blocks.blocks_for(tokens):
                fits.append(i)
        return min(fits or instances, key=lambda i: (i.load(), i.gid))


class RoleRouter:
    """The router of one role across its pools: rules narrow the candidates by prompt length,
    the policy picks among their live instances."""

    def __init__(
        self,
        routing: RoleRouting,
        instances: list[Instance],
        block_tokens: int = 512,
    ) -> None:
        self.routing = routing
        self.all = instances
        rules = routing.rules or []
        by_pool: dict[str, list[Instance]] = {}
        for inst in instances:
            by_pool.setdefault(inst.pool.name, []).append(inst)
        # (low, high, candidates) per rule; no rules: one catch-all over every instance
        self.rules: list[tuple[int, int | None, list[Instance]]] = [
            (
                *(r.when.bounds if r.when is not None else (0, None)),
                [i for name in r.to for i in by_pool.get(name, [])],
            )
            for r in rules
        ] or [(0, None, instances)]
        self.routers = [Router(routing.policy, block_tokens, routing.weight) for _ in self.rules]

    def candidates(self, req: Req) -> tuple[int, list[Instance]]:
        """The first matching rule's index and its instances (live or not)."""
        n = req.input
        for k, (low, high, insts) in enumerate(self.rules):
            if n >= low and (high is None or n < high):
                return k, insts
        # the checks require a final catch-all: reaching here is a simulator bug
        raise AssertionError(f"no routing rule matched a {n}-token prompt")

    def pick(self, req: Req, live: Callable[[list[Instance]], list[Instance]]) -> Instance | None:
        """The instance for ``req`` among ``live(candidates)``; None when all are down (the
        request then waits for its own candidates, never another rule's)."""
        k, insts = self.candidates(req)
        return self.routers[k].pick(live(insts), req)
