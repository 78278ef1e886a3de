"""Per-request state while a request is in flight, and the log it leaves behind.

Only requests in the system have a :class:`Req` object; when one ends, its row goes into the
columnar :class:`RequestLog` (numpy arrays grown by doubling) and the object is dropped, so a
million-request trace never has a million objects alive.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import pandas as pd

from hetsim.kv.blocks import BlockState

__all__ = ["Req", "RequestLog", "RequestStatus", "LOG_COLUMNS"]


class RequestStatus(StrEnum):
    """How a request left the system (the ``status`` column)."""

    COMPLETED = "completed"
    FAILED = "failed"


NAN = math.nan


class Req:
    """One request in flight. Times are simulated seconds; NaN until the event happens."""

    __slots__ = (
        "id", "arrival", "input", "output", "hashes", "cached", "computed", "generated",
        "t_prefill_start", "t_prefill_end", "t_transfer_start", "t_transfer_end",
        "t_decode_start", "t_first", "t_finish", "prefill", "decode", "p_blocks", "d_blocks",
        "p_state", "d_state", "context", "preemptions", "recomputed_tokens", "retries",
        "corrupted", "transfer", "kv_eta", "spec_steps", "spec_accepted",
        "session", "turn",
        "loaded", "reusable", "evicted",
    )  # fmt: skip

    def __init__(self, rid: int, arrival: float, input_tokens: int, output_tokens: int,
                 hashes: np.ndarray | None, session: int = -1, turn: int = 0) -> None:  # fmt: skip
        self.id = rid
        self.arrival = arrival
        self.input = input_tokens
        self.output = output_tokens
        self.hashes = hashes
        self.cached = 0  # prompt tokens served by the prefix cache
        self.computed = 0  # prompt tokens whose KV exists on the prefill side
        self.generated = 0  # output tokens produced so far
        self.context = 0  # tokens in the decode-side KV
        self.t_prefill_start = NAN
        self.t_prefill_end = NAN
        self.t_transfer_start = NAN
        self.t_transfer_end = NAN
        self.t_decode_start = NAN
        self.t_first = NAN
        self.t_finish = NAN
        self.prefill = None  # instance objects; their index goes to the log
        self.decode = None
        self.p_blocks = 0  # blocks this request holds on its prefill instance
        self.d_blocks = 0  # ... and on its decode instance
        self.p_state = BlockState.USED  # what those blocks are for
        self.d_state = BlockState.USED
        self.preemptions = 0
        self.recomputed_tokens = 0
        self.retries = 0
        self.corrupted = False  # its KV was read after the producer freed it (a silent error)
        self.transfer = None  # the network transfer moving its KV, while one is under way
        self.kv_eta = math.inf  # the earliest its KV may land on the decode side (a hint)
        self.spec_steps = 0  # speculative decode steps it took part in (over all attempts)
        self.spec_accepted = 0  # tokens those steps accepted: 1 + accepted drafts, unclipped
        self.session = session  # its session (hetsim.workload.sessions); -1: not a session's
        self.turn = turn  # its turn in the session, from 1; 0: not a session's
        self.loaded = 0  # cached prompt tokens loaded from a tier below HBM (last attempt)
        self.reusable = 0  # leading prompt tokens computed anywhere before (last attempt)
        self.evicted = 0  # ... of those, missed because no instance's cascade held them any more

    def reset_attempt(self) -> None:
        """Forget everything but the arrival: the request starts over (a retry)."""
        self.cached = self.computed = self.generated = self.context = 0
        self.t_prefill_start = self.t_prefill_end = NAN
        self.t_transfer_start = self.t_transfer_end = NAN
        self.t_decode_start = self.t_first = self.t_finish = NAN
        self.prefill = self.decode = None
        self.p_blocks = self.d_blocks = 0
        self.p_state = self.d_state = BlockState.USED
        self.transfer = None


LOG_COLUMNS = {
    "request_id": np.int64,
    "arrival_s": np.float64,
    "prefill_start_s": np.float64,
    "prefill_end_s": np.float64,
    "transfer_start_s": np.float64,
    "transfer_end_s": np.float64,
    "decode_start_s": np.float64,
    "first_token_s": np.float64,
    "finish_s": np.float64,
    "input_tokens": np.int64,
    "cached_tokens": np.int64,
    "output_tokens": np.int64,
    "prefill_instance": np.int32,
    "decode_instance": np.int32,
    "preemptions": np.int32,
    "recomputed_tokens": np.int64,
    "retries": np.int32,
    "corrupted": np.bool_,
    "speculative_steps": np.int32,
    "accepted_tokens": np.int64,
    "session": np.int64,
    "turn": np.int32,
    "loaded_tokens": np.int64,
    "reusable_tokens": np.int64,
    "evicted_tokens": np.int64,
}


class RequestLog:
    """Columnar rows of ended requests; status and failure reasons as small integer codes."""

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self._cols = {k: np.empty(capacity, dtype=t) for k, t in LOG_COLUMNS.items()}
        self._status = np.empty(capacity, dtype=np.int8)
        self._reason = np.empty(capacity, dtype=np.int16)
        self.reasons: list[str] = [""]
        self._reason_code = {"": 0}

    def _grow(self) -> None:
        size = 2 * len(self._status)
        for k, col in self._cols.items():
            new = np.empty(size, dtype=col.dtype)
            new[: self.n] = col[: self.n]
            self._cols[k] = new
        for name in ("_status", "_reason"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def add(self, r: Req, failed_reason: str | None = None) -> None:
        if self.n == len(self._status):
            self._grow()
        i = self.n
        c = self._cols
        c["request_id"][i] = r.id
        c["arrival_s"][i] = r.arrival
        c["prefill_start_s"][i] = r.t_prefill_start
        c["prefill_end_s"][i] = r.t_prefill_end
        c["transfer_start_s"][i] = r.t_transfer_start
        c["transfer_end_s"][i] = r.t_transfer_end
        c["decode_start_s"][i] = r.t_decode_start
        c["first_token_s"][i] = r.t_first
        c["finish_s"][i] = r.t_finish
        c["input_tokens"][i] = r.input
        c["cached_tokens"][i] = r.cached
        c["output_tokens"][i] = r.output
        c["prefill_instance"][i] = r.prefill.gid if r.prefill is not None else -1
        c["decode_instance"][i] = r.decode.gid if r.decode is not None else -1
        c["preemptions"][i] = r.preemptions
        c["recomputed_tokens"][i] = r.recomputed_tokens
        c["retries"][i] = r.retries
        c["corrupted"][i] = r.corrupted
        c["speculative_steps"][i] = r.spec_steps
        c["accepted_tokens"][i] = r.spec_accepted
        c["session"][i] = r.session
        c["turn"][i] = r.turn
        c["loaded_tokens"][i] = r.loaded
        c["reusable_tokens"][i] = r.reusable
        c["evicted_tokens"][i] = r.evicted
        if failed_reason is None:
            self._status[i] = 0
            self._reason[i] = 0
        else:
            code = self._reason_code.get(failed_reason)
            if code is None:
                code = len(self.reasons)
                self.reasons.append(failed_reason)
                self._reason_code[failed_reason] = code
            self._status[i] = 1
            self._reason[i] = code
        self.n = i + 1

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({k: v[: self.n] for k, v in self._cols.items()})
        status = np.where(
            self._status[: self.n] == 0, RequestStatus.COMPLETED.value, RequestStatus.FAILED.value
        )
        reason = np.array(self.reasons, dtype=object)[self._reason[: self.n]]
        # the documented columns first, in their documented order; extras after
        at = frame.columns.get_loc("decode_instance") + 1
        frame.insert(at, "status", status)
        frame.insert(at + 1, "failure_reason", reason)
        return frame.sort_values("request_id", kind="stable").reset_index(drop=True)
