"""Who owns a request's KV blocks across the boundary, as explicit state machines.

Each request's KV has a :class:`LifecycleState` on each :class:`Side` it touches — ``P``
(prefill instance), ``D`` (decode instance), ``S`` (shared store tier) — and each protocol
allows only certain transitions. The
simulator calls :meth:`LifecycleLog.move` at every change; an illegal transition raises
(a simulator bug), and the log keeps the time of every transition for the request table.

Protocols (from vLLM's NIXL connector, SGLang's disaggregation and Mooncake Store):

``pull``  P: queued → computing → held → freed | expired | lost;
          D: waiting → reserved → receiving → committed → freed.
``push``  D: waiting → reserved first; then P: queued → computing; D: receiving → committed;
          P: freed at commit; D: freed when the request ends.
``store`` P: queued → computing → writing → freed; S: stored → fetching → freed | evicted;
          D: waiting → reserved → receiving → committed → freed.

Every state can also go to ``failed`` (the request gives up) or ``lost`` (its instance
crashed), and a retried request starts again from ``queued``/``waiting``.
"""

from __future__ import annotations

from array import array
from enum import StrEnum

import numpy as np
import pandas as pd

__all__ = [
    "TRANSITIONS", "Side", "LifecycleState", "LifecycleError", "LifecycleLog",
    "PREFILL", "DECODE", "STORE",
    "NONE", "QUEUED", "COMPUTING", "HELD", "WRITING", "FREED", "EXPIRED", "LOST", "FAILED",
    "WAITING", "RESERVED", "RECEIVING", "COMMITTED", "STORED", "FETCHING", "EVICTED",
]  # fmt: skip


class Side(StrEnum):
    """Where a request's KV can live across the boundary."""

    PREFILL = "P"
    DECODE = "D"
    STORE = "S"


class LifecycleState(StrEnum):
    """The state of a request's KV on one side; the order is the log's compact code."""

    NONE = "none"
    QUEUED = "queued"
    COMPUTING = "computing"
    HELD = "held"
    WRITING = "writing"
    FREED = "freed"
    EXPIRED = "expired"
    LOST = "lost"
    FAILED = "failed"
    WAITING = "waiting"
    RESERVED = "reserved"
    RECEIVING = "receiving"
    COMMITTED = "committed"
    STORED = "stored"
    FETCHING = "fetching"
    EVICTED = "evicted"


# The members are module constants too, as ``re`` exposes its flags: the simulator names them
# per request, and a lookup on an enum class is slow in Python 3.11.
PREFILL, DECODE, STORE = Side
(NONE, QUEUED, COMPUTING, HELD, WRITING, FREED, EXPIRED, LOST, FAILED, WAITING, RESERVED,
 RECEIVING, COMMITTED, STORED, FETCHING, EVICTED) = LifecycleState  # fmt: skip
_STATES = tuple(LifecycleState)
_CODE = {s: i for i, s in enumerate(_STATES)}
_SIDES = tuple(Side)
_SIDE_CODE = {s: i for i, s in enumerate(_SIDES)}
_ENDINGS = (FAILED, LOST)
_STARTS = (QUEUED, WAITING)  # where a retry or a re-route begins again

_P_PULL = {(NONE, QUEUED), (QUEUED, COMPUTING), (COMPUTING, HELD), (HELD, FREED),
           (HELD, EXPIRED)}  # fmt: skip
_P_PUSH = {(NONE, QUEUED), (QUEUED, COMPUTING), (COMPUTING, FREED)}
_P_STORE = {(NONE, QUEUED), (QUEUED, COMPUTING), (COMPUTING, WRITING), (WRITING, FREED)}
_D_COMMON = {
    (NONE, WAITING),
    (WAITING, RESERVED),
    (RESERVED, RECEIVING),
    (RECEIVING, COMMITTED),
    (COMMITTED, FREED),
    (WAITING, COMMITTED),
}  # fmt: skip  (the last: fallback, decode recomputes)
_S_STORE = {(NONE, STORED), (STORED, FETCHING), (FETCHING, FREED), (STORED, EVICTED)}

TRANSITIONS: dict[str, dict[Side, set[tuple[LifecycleState, LifecycleState]]]] = {
    "pull": {PREFILL: _P_PULL, DECODE: set(_D_COMMON)},
    "push": {PREFILL: _P_PUSH, DECODE: set(_D_COMMON)},
    "store": {PREFILL: _P_STORE, DECODE: set(_D_COMMON), STORE: _S_STORE},
    # colocated: one instance does it all; recorded on the prefill side
    "colocated": {PREFILL: {(NONE, QUEUED), (QUEUED, COMPUTING), (COMPUTING, FREED)}},
}


class LifecycleError(RuntimeError):
    """A transition the protocol does not allow: a simulator bug, never user error."""


class LifecycleLog:
    """Current state per (request, side) for requests in flight, and every transition's time."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.allowed = TRANSITIONS[protocol]
        # side -> from-state -> states it may go to (a flat lookup on the hot path; a side the
        # protocol never touches has an empty table)
        # side -> from-state -> to-state -> the log's (side, state) codes, for every move the
        # protocol allows, failure and restart included (one lookup on the hot path; a side
        # the protocol never touches allows only those)
        self._moves: dict[Side, dict[LifecycleState, dict[LifecycleState, tuple[int, int]]]] = {}
        for side in Side:
            pairs = set(self.allowed.get(side, ()))
            for now in _STATES:
                pairs.update((now, to) for to in _ENDINGS)  # failure from anywhere
                if now in (*_ENDINGS, FREED):  # a retry starts over; a re-route queues again
                    pairs.update((now, to) for to in _STARTS)
            pairs.update((to, to) for to in _STARTS)
            table: dict[LifecycleState, dict[LifecycleState, tuple[int, int]]] = {}
            for a, b in pairs:
                table.setdefault(a, {})[b] = (_SIDE_CODE[side], _CODE[b])
            self._moves[side] = {a: table.get(a, {}) for a in _STATES}
        self.current: dict[tuple[int, Side], LifecycleState] = {}
        # columns of compact machine types: a 1M-request run logs ~10M transitions
        self._rid = array("q")
        self._t = array("d")
        self._side = array("b")
        self._state = array("b")

    def state(self, rid: int, side: Side) -> LifecycleState:
        return self.current.get((rid, side), NONE)

    def move(self, rid: int, t: float, side: Side, to: LifecycleState) -> None:
        key = (rid, side)
        now = self.current.get(key, NONE)
        codes = self._moves[side][now].get(to)
        if codes is None:
            raise LifecycleError(
                f"{self.protocol}: request {rid} side {side} cannot go {now} -> {to}"
            )
        self.current[key] = to
        self._rid.append(rid)
        self._t.append(t)
        self._side.append(codes[0])
        self._state.append(codes[1])

    @property
    def counts(self) -> dict[LifecycleState, int]:
        """How many times each state was entered."""
        tally = np.bincount(np.frombuffer(self._state, dtype=np.int8), minlength=len(_STATES))
        return {_STATES[code]: int(n) for code, n in enumerate(tally) if n}

    def forget(self, rid: int) -> None:
        """The request has ended: drop its current states (the log keeps its history)."""
        for side in _SIDES:
            self.current.pop((rid, side), None)

    def to_frame(self) -> pd.DataFrame:
        side = np.frombuffer(self._side, dtype=np.int8).astype(np.intp)
        state = np.frombuffer(self._state, dtype=np.int8).astype(np.intp)
        return pd.DataFrame(
            {
                "request_id": np.frombuffer(self._rid, dtype=np.int64).copy(),
                "time_s": np.frombuffer(self._t, dtype=np.float64).copy(),
                "side": pd.Categorical.from_codes(side, categories=[s.value for s in _SIDES]),
                "state": pd.Categorical.from_codes(state, categories=[s.value for s in _STATES]),
            }
        )
