"""Who owns a request's KV blocks across the boundary, as explicit state machines.

Each request's KV has a state on each side it touches — ``P`` (prefill instance), ``D`` (decode
instance), ``S`` (shared store tier) — and each protocol allows only certain transitions. The
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

import numpy as np
import pandas as pd

__all__ = ["TRANSITIONS", "STATES", "LifecycleError", "LifecycleLog"]

STATES = (
    "none", "queued", "computing", "held", "writing", "freed", "expired", "lost", "failed",
    "waiting", "reserved", "receiving", "committed", "stored", "fetching", "evicted",
)  # fmt: skip
_CODE = {s: i for i, s in enumerate(STATES)}
_SIDES = ("P", "D", "S")
_SIDE_CODE = {s: i for i, s in enumerate(_SIDES)}
_ENDINGS = ("failed", "lost")

_P_PULL = {("none", "queued"), ("queued", "computing"), ("computing", "held"),
           ("held", "freed"), ("held", "expired")}  # fmt: skip
_P_PUSH = {("none", "queued"), ("queued", "computing"), ("computing", "freed")}
_P_STORE = {("none", "queued"), ("queued", "computing"), ("computing", "writing"),
            ("writing", "freed")}  # fmt: skip
_D_COMMON = {
    ("none", "waiting"),
    ("waiting", "reserved"),
    ("reserved", "receiving"),
    ("receiving", "committed"),
    ("committed", "freed"),
    ("waiting", "committed"),
}  # fmt: skip  (the last: fallback, decode recomputes)
_S_STORE = {("none", "stored"), ("stored", "fetching"), ("fetching", "freed"),
            ("stored", "evicted")}  # fmt: skip

TRANSITIONS: dict[str, dict[str, set[tuple[str, str]]]] = {
    "pull": {"P": _P_PULL, "D": set(_D_COMMON)},
    "push": {"P": _P_PUSH, "D": set(_D_COMMON)},
    "store": {"P": _P_STORE, "D": set(_D_COMMON), "S": _S_STORE},
    # colocated: one instance does it all; recorded on the P side
    "colocated": {"P": {("none", "queued"), ("queued", "computing"), ("computing", "freed")}},
}


class LifecycleError(RuntimeError):
    """A transition the protocol does not allow: a simulator bug, never user error."""


class LifecycleLog:
    """Current state per (request, side) for requests in flight, and every transition's time."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.allowed = TRANSITIONS[protocol]
        # side -> from-state -> states it may go to (a flat lookup on the hot path)
        self._next: dict[str, dict[str, frozenset[str]]] = {}
        for side, pairs in self.allowed.items():
            table: dict[str, set[str]] = {}
            for a, b in pairs:
                table.setdefault(a, set()).add(b)
            self._next[side] = {a: frozenset(b) for a, b in table.items()}
        self.current: dict[tuple[int, str], str] = {}
        # columns of compact machine types: a 1M-request run logs ~10M transitions
        self._rid = array("q")
        self._t = array("d")
        self._side = array("b")
        self._state = array("b")

    def state(self, rid: int, side: str) -> str:
        return self.current.get((rid, side), "none")

    def move(self, rid: int, t: float, side: str, to: str) -> None:
        key = (rid, side)
        now = self.current.get(key, "none")
        if to not in self._next.get(side, {}).get(now, ()) and not (
            to in _ENDINGS or (to in ("queued", "waiting") and now in (*_ENDINGS, "freed", to))
        ):  # failure from anywhere; a retry starts over; a re-route queues again
            raise LifecycleError(
                f"{self.protocol}: request {rid} side {side} cannot go {now} -> {to}"
            )
        self.current[key] = to
        self._rid.append(rid)
        self._t.append(t)
        self._side.append(_SIDE_CODE[side])
        self._state.append(_CODE[to])

    @property
    def counts(self) -> dict[str, int]:
        """How many times each state was entered."""
        tally = np.bincount(np.frombuffer(self._state, dtype=np.int8), minlength=len(STATES))
        return {STATES[code]: int(n) for code, n in enumerate(tally) if n}

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
                "side": pd.Categorical.from_codes(side, categories=list(_SIDES)),
                "state": pd.Categorical.from_codes(state, categories=list(STATES)),
            }
        )
