"""Routing policies: which instance of a pool takes a request.

* ``round_robin`` — in turn.
* ``least_outstanding_tokens`` — fewest prompt (prefill) or output (decode) tokens queued or
  running.
* ``prefix_aware`` — the prefill instance whose prefix cache holds the longest prefix of the
  prompt; ties go to the least outstanding tokens (SGLang's cache-aware router, simplified).
* ``least_kv_load`` — the decode instance with the smallest share of KV blocks used or promised.
"""

from __future__ import annotations

from hetsim.sim.instance import Instance
from hetsim.sim.state import Req

__all__ = ["Router", "POLICIES"]

POLICIES = ("round_robin", "least_outstanding_tokens", "prefix_aware", "least_kv_load")


class Router:
    def __init__(self, policy: str) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown router policy {policy!r}")
        self.policy = policy
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
            return min(instances, key=lambda i: (i.load(), i.gid))
        # a prompt shorter than one block has no hashes and scores no hit anywhere
        if policy == "prefix_aware" and req.hashes is not None and len(req.hashes):
            blocks = req.hashes.tolist()

            def score(i: Instance) -> tuple:
                cache = i.prefix_cache
                hit = cache.match(blocks, touch=False) if cache is not None else 0
                return (-hit, i.outstanding_tokens, i.gid)

            return min(instances, key=score)
        return min(instances, key=lambda i: (i.outstanding_tokens, i.gid))
