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
#: ended requests' rows kept as tuples before they are written into the log's columns together
ROWS_BUFFERED = 4096


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
    """Columnar rows of ended requests; status and failure reasons as small integer codes.

    Rows gather as tuples and go into the columns :data:`ROWS_BUFFERED` at a time: one numpy
    write per column per batch rather than one per cell (a row is written per request, on the
    simulator's hot path)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self._cols = {k: np.empty(capacity, dtype=t) for k, t in LOG_COLUMNS.items()}
        self._status = np.empty(capacity, dtype=np.int8)
        self._reason = np.empty(capacity, dtype=np.int16)
        self.reasons: list[str] = [""]
        self._reason_code = {"": 0}
        self._rows: list[tuple] = []  # not yet in the columns: LOG_COLUMNS' values, then codes
        self._written = 0  # rows in the columns

    def _grow(self, size: int) -> None:
        for k, col in self._cols.items():
            new = np.empty(size, dtype=col.dtype)
            new[: self._written] = col[: self._written]
            self._cols[k] = new
        for name in ("_status", "_reason"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[: self._written] = old[: self._written]
            setattr(self, name, new)

    def _flush(self) -> None:
        """Write the gathered rows into the columns (grown by doubling)."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        start, stop = self._written, self._written + len(rows)
        size = len(self._status)
        if stop > size:
            while size < stop:
                size *= 2
            self._grow(size)
        cells = list(zip(*rows, strict=True))
        for col, values in zip(self._cols.values(), cells, strict=False):
            col[start:stop] = values
        self._status[start:stop] = cells[-2]
        self._reason[start:stop] = cells[-1]
        self._written = stop

    def add(self, r: Req, failed_reason: str | None = None) -> None:
        status = reason = 0
        if failed_reason is not None:
            status = 1
            reason = self._reason_code.get(failed_reason)
            if reason is None:
                reason = len(self.reasons)
                self.reasons.append(failed_reason)
                self._reason_code[failed_reason] = reason
        # LOG_COLUMNS' order, then the codes
        # fmt: off
        self._rows.append((
            r.id, r.arrival, r.t_prefill_start, r.t_prefill_end, r.t_transfer_start,
            r.t_transfer_end, r.t_decode_start, r.t_first, r.t_finish, r.input, r.cached,
            r.output, -1 if r.prefill is None else r.prefill.gid,
            -1 if r.decode is None else r.decode.gid, r.preemptions, r.recomputed_tokens,
            r.retries, r.corrupted, r.spec_steps, r.spec_accepted, r.session, r.turn, r.loaded,
            r.reusable, r.evicted, status, reason,
        ))
        # fmt: on
        self.n += 1
        if len(self._rows) >= ROWS_BUFFERED:
            self._flush()

    def to_frame(self) -> pd.DataFrame:
        self._flush()
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
