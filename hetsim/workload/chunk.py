"""The request representation the simulator consumes: flat numpy arrays, one chunk at a time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["RequestChunk"]

_EMPTY_I64 = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class RequestChunk:
    """A run of consecutive requests as flat arrays (no per-request Python objects).

    ``request_id`` is consecutive across the chunks of one workload; ``arrival_s`` is seconds from
    the first replayed arrival and never decreases (NaN in a closed loop's chunks, whose arrivals
    the simulation decides: see :mod:`hetsim.workload.closed_loop`). Prefix block hashes are
    stored as CSR: the hashes of request ``i`` (position ``i`` in this chunk) are
    ``hash_ids[hash_offsets[i]:hash_offsets[i + 1]]``, one id per block of prompt tokens (512 by
    default; the last block may be partial). Both are ``None`` when the workload has no hashes.
    """

    request_id: np.ndarray  # int64
    arrival_s: np.ndarray  # float64
    input_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64
    hash_ids: np.ndarray | None = None  # int64, flat
    hash_offsets: np.ndarray | None = None  # int64, len n + 1
    # multi-turn sessions (hetsim.workload.sessions), all four or none: the request's session
    # and turn (1 = the first), the request id of the turn it follows (-1: none) and the
    # seconds it is sent after that turn ends; it is also sent no earlier than arrival_s
    session: np.ndarray | None = None  # int64
    turn: np.ndarray | None = None  # int64
    parent: np.ndarray | None = None  # int64
    think_s: np.ndarray | None = None  # float64

    _SESSION_FIELDS = ("session", "turn", "parent", "think_s")

    def __post_init__(self) -> None:
        n = len(self.request_id)
        for name in ("arrival_s", "input_tokens", "output_tokens"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        if (self.hash_ids is None) != (self.hash_offsets is None):
            raise ValueError("hash_ids and hash_offsets go together (both or neither)")
        if self.hash_offsets is not None:
            if len(self.hash_offsets) != n + 1:
                raise ValueError(f"hash_offsets needs {n + 1} entries")
            assert self.hash_ids is not None
            if n and self.hash_offsets[-1] != len(self.hash_ids):
                raise ValueError("hash_offsets[-1] must equal len(hash_ids)")

        have = [getattr(self, k) is not None for k in self._SESSION_FIELDS]
        if any(have) and not all(have):
            raise ValueError(f"{', '.join(self._SESSION_FIELDS)} go together (all or none)")
        for name in self._SESSION_FIELDS:
            if all(have) and len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {n}")

    @property
    def has_sessions(self) -> bool:
        return self.session is not None

    def __len__(self) -> int:
        return len(self.request_id)

    @property
    def has_hashes(self) -> bool:
        return self.hash_ids is not None

    def hashes(self, i: int) -> np.ndarray:
        """Prefix block hashes of the request at position ``i`` of this chunk (may be empty)."""
        if self.hash_ids is None or self.hash_offsets is None:
            return _EMPTY_I64
        return self.hash_ids[self.hash_offsets[i] : self.hash_offsets[i + 1]]

    def hash_counts(self) -> np.ndarray | None:
        """Number of hash blocks per request, or None without hashes."""
        if self.hash_offsets is None:
            return None
        return np.diff(self.hash_offsets)

    @classmethod
    def empty(cls, with_hashes: bool = False) -> RequestChunk:
        z = np.zeros(0, dtype=np.int64)
        return cls(
            request_id=z,
            arrival_s=np.zeros(0, dtype=np.float64),
            input_tokens=z.copy(),
            output_tokens=z.copy(),
            hash_ids=z.copy() if with_hashes else None,
            hash_offsets=np.zeros(1, dtype=np.int64) if with_hashes else None,
        )

    @classmethod
    def concat(cls, chunks: Iterable[RequestChunk]) -> RequestChunk:
        """One chunk from several (for small workloads and tests)."""
        parts = list(chunks)
        if not parts:
            return cls.empty()
        with_hashes = parts[0].has_hashes
        if any(p.has_hashes != with_hashes for p in parts):
            raise ValueError("cannot concatenate chunks with and without prefix hashes")
        hash_ids = hash_offsets = None
        if with_hashes:
            hash_ids = np.concatenate([p.hash_ids for p in parts])  # type: ignore[misc]
            offsets = [np.zeros(1, dtype=np.int64)]
            base = 0
            for p in parts:
                assert p.hash_offsets is not None
                offsets.append(p.hash_offsets[1:] + base)
                base += int(p.hash_offsets[-1])
            hash_offsets = np.concatenate(offsets)
        with_sessions = parts[0].has_sessions
        if any(p.has_sessions != with_sessions for p in parts):
            raise ValueError("cannot concatenate chunks with and without sessions")
        sessions = {
            k: np.concatenate([getattr(p, k) for p in parts]) if with_sessions else None
            for k in cls._SESSION_FIELDS
        }
        return cls(
            **sessions,
            request_id=np.concatenate([p.request_id for p in parts]),
            arrival_s=np.concatenate([p.arrival_s for p in parts]),
            input_tokens=np.concatenate([p.input_tokens for p in parts]),
            output_tokens=np.concatenate([p.output_tokens for p in parts]),
            hash_ids=hash_ids,
            hash_offsets=hash_offsets,
        )
