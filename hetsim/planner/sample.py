"""The requests the screen looks at: the first of the workload, with their prefix hits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from hetsim.spec.resolve import Scenario
from hetsim.workload import RequestChunk, iter_requests

__all__ = ["SAMPLE_REQUESTS", "WorkloadSample"]

#: how many of the workload's requests the screen looks at
SAMPLE_REQUESTS = 512


@dataclass(frozen=True, eq=False)
class WorkloadSample:
    """The first requests of the workload, with prefix hits as an unbounded cache would give.

    The arrays are read-only and ``digest`` identifies their content, so what is computed from
    a sample can be cached by value: two samples with equal requests share entries, two with
    different requests never do.
    """

    input: np.ndarray
    output: np.ndarray
    cached: np.ndarray
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        h = hashlib.blake2b(digest_size=16)
        for a in (self.input, self.output, self.cached):
            a.setflags(write=False)
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
            h.update(b"|")
        object.__setattr__(self, "digest", h.hexdigest())

    @classmethod
    def of(cls, scenario: Scenario, limit: int = SAMPLE_REQUESTS) -> WorkloadSample:
        spec = scenario.spec
        pc = spec.kv.prefix_cache
        inputs, outputs, cached = [], [], []
        seen: set[int] = set()
        taken = 0
        # the rows the simulation replays: none longer than the model's context
        max_context = scenario.model.max_context
        for chunk in iter_requests(
            spec.workload, scenario.base_dir, spec.seed, max_context=max_context
        ):
            n = min(len(chunk), limit - taken)
            inputs.append(chunk.input_tokens[:n])
            outputs.append(chunk.output_tokens[:n])
            hits = np.zeros(n, dtype=np.int64)
            if pc.enabled:
                if chunk.hash_ids is not None and pc.hit_rate is None:
                    hits = _leading_hits(chunk, n, seen) * pc.block_tokens
                elif pc.hit_rate is not None:
                    hits = (pc.hit_rate * chunk.input_tokens[:n]).astype(np.int64)
            cached.append(hits)
            taken += n
            if taken >= limit:
                break
        inp = np.concatenate(inputs).astype(np.int64)
        return cls(
            inp,
            np.concatenate(outputs).astype(np.int64),
            np.clip(np.concatenate(cached), 0, np.maximum(inp - 1, 0)),
        )


def _leading_hits(chunk: RequestChunk, n: int, seen: set[int]) -> np.ndarray:
    """Each of the first ``n`` requests' leading blocks already seen (then marks its own)."""
    hits = np.zeros(n, dtype=np.int64)
    offsets = chunk.hash_offsets
    for i in range(n):
        blocks = chunk.hash_ids[offsets[i] : offsets[i + 1]].tolist()
        m = 0
        while m < len(blocks) and blocks[m] in seen:
            m += 1
        seen.update(blocks)
        hits[i] = m
    return hits
