"""The ``workload:`` section: a real trace to replay, a synthetic generator (both open loop), or
a closed loop of clients."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from hetsim.errors import InputError
from hetsim.spec._types import MAX_CLIENTS, Count, RequestRate, Seconds, StrictModel

__all__ = [
    "TRACE_FORMATS",
    "TRACE_COLUMNS",
    "TraceSpec",
    "LengthSpec",
    "SyntheticSpec",
    "RampUpSpec",
    "ClosedLoopSpec",
    "SessionsSpec",
    "ThinkTimeSpec",
    "WorkloadSpec",
    "check_session_context",
    "lognormal_params",
]

#: required and optional columns per trace format, in the trace's own names
TRACE_COLUMNS: dict[str, dict[str, str | None]] = {
    # hetsim field: column (None = the format has no such column)
    "mooncake": {
        "arrival": "timestamp",
        "input_tokens": "input_length",
        "output_tokens": "output_length",
        "hash_ids": "hash_ids",
    },
    "azure": {
        "arrival": "TIMESTAMP",
        "input_tokens": "ContextTokens",
        "output_tokens": "GeneratedTokens",
        "hash_ids": None,
    },
    "burstgpt": {
        "arrival": "Timestamp",
        "input_tokens": "Request tokens",
        "output_tokens": "Response tokens",
        "hash_ids": None,
    },
}
TRACE_FORMATS = ("mooncake", "azure", "burstgpt", "csv", "jsonl")
#: seconds per unit of a numeric arrival column
TRACE_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


class TraceSpec(StrictModel):
    """A request trace file to replay."""

    path: str = Field(description="trace file, relative to the scenario file")
    format: Literal["mooncake", "azure", "burstgpt", "csv", "jsonl"] = Field(
        description="mooncake (JSONL, ms timestamps, hash_ids of 512-token blocks), azure "
        "(Azure LLM inference CSV, 2023/2024), burstgpt (BurstGPT CSV), or a generic csv/jsonl "
        "with `columns`"
    )
    columns: dict[Literal["arrival", "input_tokens", "output_tokens", "hash_ids"], str] | None = (
        Field(
            default=None,
            description="generic formats: which column holds arrival time, input and output "
            "tokens (and optionally prefix block hashes)",
        )
    )
    time_unit: Literal["s", "ms", "us", "datetime"] = Field(
        default="s",
        description="generic formats: unit of a numeric arrival column, or `datetime` for ISO "
        "date-time strings such as '2023-11-16 18:17:03.97996'",
    )
    time_window: tuple[Seconds, Seconds] | None = Field(
        default=None,
        description="[start, end] offsets from the trace's first arrival to replay, in the "
        "trace's own time (before `target_rate` rescaling)",
    )
    target_rate: RequestRate | None = Field(
        default=None,
        description="rescale arrival times so the mean rate is this, e.g. '12 req/s' (burstiness "
        "is kept: inter-arrival gaps are scaled by one factor)",
    )
    max_input_tokens: Count | None = Field(default=None, gt=0, description="cap on prompt length")
    max_output_tokens: Count | None = Field(default=None, gt=0, description="cap on output length")
    sample: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="keep each request with this probability (seeded by the scenario's seed)",
    )
    on_bad_row: Literal["error", "skip"] = Field(
        default="error",
        description="unparsable rows and rows whose timestamp goes backwards: stop with an "
        "error naming file, line and column, or skip and count them",
    )
    block_tokens: Count = Field(
        default=512,
        gt=0,
        description="tokens per prefix hash block of the `hash_ids` column (Mooncake: 512); "
        "used to cut the hashes of prompts shortened by `max_input_tokens`",
    )
    sessions: bool = Field(
        default=False,
        description="replay rows as multi-turn sessions inferred from their hash_ids: a row "
        "whose prompt extends an earlier row's whole prompt (its full blocks) is that row's "
        "next turn, sent at its trace time but never before the earlier turn ends (see "
        "hetsim.workload.sessions)",
    )

    @model_validator(mode="after")
    def _window_order(self) -> TraceSpec:
        if self.time_window is not None and self.time_window[0] > self.time_window[1]:
            raise ValueError(
                f"time_window start ({self.time_window[0]:g} s) is after its end "
                f"({self.time_window[1]:g} s)"
            )
        return self

    @model_validator(mode="after")
    def _unit_of_a_generic_trace(self) -> TraceSpec:
        # a published format fixes its timestamps' unit: another would be ignored
        if self.time_unit != "s" and self.format not in ("csv", "jsonl"):
            raise ValueError(
                f"time_unit {self.time_unit!r} is for csv and jsonl traces: the {self.format} "
                "format's timestamps have their own unit (mooncake ms, azure datetime, "
                "burstgpt s)"
            )
        return self

    @model_validator(mode="after")
    def _sessions_need_hashes(self) -> TraceSpec:
        if self.sessions and self.column_map().get("hash_ids") is None:
            raise ValueError(
                f"`sessions: true` infers turns from prefix block hashes, and a {self.format} "
                "trace has none (use mooncake, or a csv/jsonl trace with a hash_ids column)"
            )
        return self

    @model_validator(mode="after")
    def _columns_for_generic(self) -> TraceSpec:
        if self.format in ("csv", "jsonl"):
            needed = {"arrival", "input_tokens", "output_tokens"}
            have = set(self.columns or {})
            if not needed <= have:
                raise ValueError(
                    f"a generic {self.format} trace needs `columns` mapping "
                    f"{sorted(needed)} to column names (missing: {sorted(needed - have)})"
                )
        elif self.columns is not None:
            raise ValueError(f"`columns` is only for generic csv/jsonl traces, not {self.format}")
        return self

    def column_map(self) -> dict[str, str | None]:
        if self.format in TRACE_COLUMNS:
            return dict(TRACE_COLUMNS[self.format])
        mapping: dict[str, str | None] = {"hash_ids": None}
        mapping.update(self.columns or {})
        return mapping


class LengthSpec(StrictModel):
    """A token-length distribution. A bare integer in YAML means ``{dist: fixed, value: N}``."""

    dist: Literal["fixed", "uniform", "lognormal", "empirical"] = Field(
        default="fixed",
        description="fixed (`value`), uniform integers in [`min`, `max`], lognormal (`mean`, "
        "`cv`), or empirical (resampled from `trace`)",
    )
    value: Count | None = Field(default=None, gt=0, description="fixed: the length")
    min: Count | None = Field(
        default=None, gt=0, description="uniform: lower bound; lognormal/empirical: clip floor"
    )
    max: Count | None = Field(
        default=None, gt=0, description="uniform: upper bound; lognormal/empirical: clip ceiling"
    )
    mean: float | None = Field(default=None, gt=0, description="lognormal: mean length")
    cv: float | None = Field(default=None, gt=0, description="lognormal: coefficient of variation")
    trace: TraceSpec | None = Field(
        default=None,
        description="empirical: resample lengths from this trace (its prompt lengths for "
        "input_tokens, output lengths for output_tokens; when both name the same trace, "
        "(input, output) pairs are resampled together); path relative to the scenario file",
    )
    order: Literal["resample", "trace"] = Field(
        default="resample",
        description="empirical: `resample` draws rows at random; `trace` gives the k-th request "
        "the trace's k-th row (as `vllm bench serve --max-concurrency` sends a dataset in order), "
        "for both lengths of one trace, and needs as many rows as requests",
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_int(cls, data: object) -> object:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"dist": "fixed", "value": data}
        return data

    @property
    def bound(self) -> int | None:
        """The longest length this draws, or None where nothing bounds it (a lognormal or an
        empirical trace without ``max``)."""
        return self.value if self.dist == "fixed" else self.max

    @model_validator(mode="after")
    def _parameters(self) -> LengthSpec:
        need = {
            "fixed": ("value",),
            "uniform": ("min", "max"),
            "lognormal": ("mean", "cv"),
            "empirical": ("trace",),
        }[self.dist]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"dist {self.dist!r} needs {', '.join(missing)}")
        if self.order == "trace" and self.dist != "empirical":
            raise ValueError("order 'trace' takes a trace's rows in order: it needs dist empirical")
        # a parameter the distribution does not read would be ignored without a word
        unused = [k for k in _LENGTH_PARAMETERS if k not in _READS[self.dist]]
        unused = [k for k in unused if getattr(self, k) is not None]
        if unused:
            reads = ", ".join(_READS[self.dist])
            raise ValueError(
                f"dist {self.dist!r} does not use {', '.join(unused)} (it reads {reads})"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        if self.dist == "lognormal" and self.mean is not None and self.cv is not None:
            median = math.exp(lognormal_params(self.mean, self.cv)[0])
            if not (self.min or 0) <= median <= (self.max or math.inf):
                raise ValueError(
                    f"the median length ({median:,.0f}; mean {self.mean:g}, cv {self.cv:g}) is "
                    f"outside the clip bounds [{self.min or 1}, {self.max or 'none'}]: more "
                    "than half of the lengths would be the bound, not the distribution"
                )
        return self


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(μ, σ) of the underlying normal for a lognormal with this mean and CV."""
    # numpy's functions, float for float what the generators always drew with (imported here:
    # reading a scenario, or `hetsim --help`, loads no numpy)
    import numpy as np

    sigma2 = float(np.log1p(cv * cv))
    return float(np.log(mean) - sigma2 / 2), float(np.sqrt(sigma2))


_LENGTH_PARAMETERS = ("value", "min", "max", "mean", "cv", "trace")
#: the parameters each length distribution reads (min and max clip lognormal and empirical)
_READS = {
    "fixed": ("value",),
    "uniform": ("min", "max"),
    "lognormal": ("mean", "cv", "min", "max"),
    "empirical": ("trace", "min", "max"),
}


class ThinkTimeSpec(StrictModel):
    """Seconds between the end of a turn and the next turn of its session. A bare duration in
    YAML ('2 s') means ``{dist: fixed, value: 2 s}``."""

    dist: Literal["fixed", "exponential", "lognormal"] = Field(
        default="fixed",
        description="fixed (`value`; agent loops: 0 s), exponential (`mean`) or lognormal "
        "(`mean`, `cv`)",
    )
    value: Seconds | None = Field(default=None, ge=0, description="fixed: the think time")
    mean: Seconds | None = Field(
        default=None, gt=0, description="exponential, lognormal: mean think time"
    )
    cv: float | None = Field(default=None, gt=0, description="lognormal: coefficient of variation")

    @model_validator(mode="before")
    @classmethod
    def _bare_duration(cls, data: object) -> object:
        if isinstance(data, (int, float, str)) and not isinstance(data, bool):
            return {"dist": "fixed", "value": data}
        return data

    @model_validator(mode="after")
    def _parameters(self) -> ThinkTimeSpec:
        need = {"fixed": ("value",), "exponential": ("mean",), "lognormal": ("mean", "cv")}
        missing = [k for k in need[self.dist] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"dist {self.dist!r} needs {', '.join(missing)}")
        return self


class SessionsSpec(StrictModel):
    """Multi-turn sessions (conversations, agent loops): turn k+1's prompt is turn k's prompt,
    its output and `new_tokens` more; it is sent `think_time` after turn k ends (see
    :mod:`hetsim.workload.sessions`). The section's `input_tokens` is the first turn's prompt
    (after the system prompt) and `output_tokens` every turn's output; its `requests` counts
    turns."""

    turns: LengthSpec = Field(
        description="turns per session (fixed, uniform or lognormal; a count, at least 1)"
    )
    new_tokens: LengthSpec = Field(
        description="tokens a turn after the first adds to the context: the user's message or "
        "a tool's output"
    )
    think_time: ThinkTimeSpec = Field(
        default_factory=lambda: ThinkTimeSpec(value=0.0),
        description="from a turn's end (its last token, or its failure) to the next turn; "
        "default 0 s (an agent loop)",
    )
    system_prompt_tokens: Count = Field(
        default=0,
        ge=0,
        description="a system prompt every session's prompts start with (its full blocks are "
        "shared by all sessions)",
    )
    block_tokens: Count | None = Field(
        default=None,
        gt=0,
        description="tokens per prefix hash block, as `kv.prefix_cache.block_tokens`; default: "
        "the synthetic section's `block_tokens`, or 512 in a closed loop",
    )

    @model_validator(mode="after")
    def _turns_are_counts(self) -> SessionsSpec:
        if self.turns.dist == "empirical":
            raise ValueError("turns cannot be `empirical` (a trace holds token lengths)")
        return self


class SyntheticSpec(StrictModel):
    """Generated arrivals and lengths (see :mod:`hetsim.workload.synthetic` for the models)."""

    arrival: Literal["poisson", "gamma", "bursty"] = Field(
        default="poisson",
        description="poisson; gamma (inter-arrival CV = `cv`); bursty (on/off: Poisson at `rate` "
        "during `on` periods, silence during `off` periods)",
    )
    rate: RequestRate = Field(
        description="request rate, e.g. '12 req/s': the mean rate for poisson and gamma; for "
        "bursty the rate during on periods (long-run mean: rate·on/(on+off))",
    )
    cv: float = Field(default=1.0, gt=0, description="gamma: coefficient of variation of gaps")
    on: Seconds = Field(default=10.0, gt=0, description="bursty: length of an on period")
    off: Seconds = Field(default=10.0, ge=0, description="bursty: length of an off period")
    requests: Count = Field(default=1000, gt=0, description="number of requests to generate")
    input_tokens: LengthSpec = Field(description="prompt length distribution")
    output_tokens: LengthSpec = Field(description="output length distribution")
    prefix_hit_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="target share of prompt tokens covered by prefix blocks seen in earlier "
        "requests (shared system prompts, earlier turns); above 0, requests carry prefix block "
        "hashes like a Mooncake trace's hash_ids. Only full blocks are shared, so the share "
        "reachable is at most that of prompt tokens in full blocks",
    )
    prefix_groups: Count = Field(
        default=16,
        gt=0,
        description="number of distinct shared prefixes (system prompts / conversations) that "
        "requests draw from, uniformly",
    )
    block_tokens: Count = Field(
        default=512, gt=0, description="tokens per prefix hash block (Mooncake: 512)"
    )
    sessions: SessionsSpec | None = Field(
        default=None,
        description="multi-turn sessions: sessions (not requests) arrive at `rate`, "
        "`requests` counts their turns, `input_tokens` is a first turn's prompt",
    )

    @model_validator(mode="after")
    def _sessions_own_prefixes(self) -> SyntheticSpec:
        if self.sessions is not None and self.prefix_hit_rate > 0:
            raise ValueError(
                "`sessions` and `prefix_hit_rate` both shape prefix reuse: with sessions, "
                "reuse comes from the growing context (and `sessions.system_prompt_tokens`)"
            )
        if self.sessions is not None and self.arrival == "bursty":
            raise ValueError("sessions arrive `poisson` or `gamma`, not `bursty`")
        # a process's parameter given to another would be ignored without a word
        # (at its default it changes nothing, and a dumped spec carries every default)
        unused = [k for k, arrival in _ARRIVAL_PARAMETERS.items() if arrival != self.arrival]
        defaults = type(self).model_fields
        unused = [k for k in unused if getattr(self, k) != defaults[k].default]
        if unused:
            owners = ", ".join(f"{k}: {_ARRIVAL_PARAMETERS[k]}" for k in unused)
            raise ValueError(
                f"arrival {self.arrival!r} does not use {', '.join(unused)} ({owners})"
            )
        return self


#: the arrival process each synthetic parameter belongs to
_ARRIVAL_PARAMETERS = {"cv": "gamma", "on": "bursty", "off": "bursty"}


class RampUpSpec(StrictModel):
    """When each client of a closed loop sends its first request."""

    strategy: Literal["none", "uniform", "linear"] = Field(
        default="uniform",
        description="none: every client sends its first request at t = 0 (equal-length requests "
        "then move in lock-step waves); uniform: each client at an independent, seeded uniform "
        "time in [0, `duration`); linear: client c of N at c·`duration`/N (clients join at a "
        "constant rate)",
    )
    duration: Seconds = Field(
        default=1.0,
        ge=0,
        description="the window the clients' first requests are spread over. The default (1 s) "
        "is an assumption, not a measurement: real benchmark clients do not reach the engine "
        "together (client task start, connection set-up, HTTP parsing and tokenisation, mostly "
        "serial in the server's frontend), and 1 s spreads them over tens of batch steps. With "
        "equal lengths the phases set here persist through the run; a duration near one "
        "request's end-to-end time starts the clients already out of step",
    )

    @model_validator(mode="after")
    def _duration_used(self) -> RampUpSpec:
        default = type(self).model_fields["duration"].default
        if self.strategy == "none" and self.duration != default:
            raise ValueError("strategy 'none' starts every client at t = 0: it has no duration")
        return self


class ClosedLoopSpec(StrictModel):
    """N clients, each with at most one request in flight, as `vllm bench serve
    --max-concurrency`, SGLang's bench_serving and genai-perf measure (see
    :mod:`hetsim.workload.closed_loop`)."""

    concurrency: Count = Field(
        gt=0, le=MAX_CLIENTS, description="clients, each with at most one request in flight"
    )
    requests: Count = Field(gt=0, description="requests sent in all, by all clients together")
    think_time: Seconds = Field(
        default=0.0,
        ge=0,
        description="from the end of a client's request (its last token, or its failure) to "
        "that client's next request; with `sessions`, from the end of a session's last turn "
        "to the client's next session",
    )
    ramp_up: RampUpSpec = Field(
        default_factory=RampUpSpec,
        description="start-up dispersion of the clients' first requests",
    )
    input_tokens: LengthSpec = Field(description="prompt length distribution")
    output_tokens: LengthSpec = Field(description="output length distribution")
    sessions: SessionsSpec | None = Field(
        default=None,
        description="each client runs multi-turn sessions back to back: `requests` counts "
        "turns, `think_time` is between a client's sessions, `sessions.think_time` between "
        "turns, `input_tokens` is a first turn's prompt",
    )


class WorkloadSpec(StrictModel):
    """Where requests come from: exactly one of a trace, a synthetic generator or a closed loop."""

    trace: TraceSpec | None = Field(default=None, description="replay a request trace file")
    synthetic: SyntheticSpec | None = Field(default=None, description="generate requests")
    closed_loop: ClosedLoopSpec | None = Field(
        default=None,
        description="clients that send their next request when the previous one ends",
    )
    warmup_requests: Count = Field(
        default=0,
        ge=0,
        description="the first N requests (by arrival) are simulated but left out of the "
        "summary: latency percentiles, attainment and throughput describe the steady state, "
        "not a cold prefix cache and empty batches",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> WorkloadSpec:
        given = [s for s in (self.trace, self.synthetic, self.closed_loop) if s is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of `trace`, `synthetic` or `closed_loop`")
        return self

    def hash_blocks(self, trace_has_hashes: bool) -> tuple[int, str] | None:
        """(tokens per prefix hash block, the field that sets it) of the requests' block
        hashes, None when they carry none (``trace_has_hashes``: whether the trace file has
        its hash column; the spec alone cannot tell)."""
        if self.trace is not None:
            return (
                (self.trace.block_tokens, "workload.trace.block_tokens")
                if trace_has_hashes
                else None
            )
        closed = self.closed_loop is not None
        spec = self.closed_loop if closed else self.synthetic
        assert spec is not None
        if spec.sessions is not None and spec.sessions.block_tokens is not None:
            where = "closed_loop" if closed else "synthetic"
            return spec.sessions.block_tokens, f"workload.{where}.sessions.block_tokens"
        if isinstance(spec, SyntheticSpec) and (spec.sessions or spec.prefix_hit_rate > 0):
            return spec.block_tokens, "workload.synthetic.block_tokens"
        if spec.sessions is not None:  # a closed loop's sessions without a size of their own
            return CLOSED_LOOP_BLOCK_TOKENS, "workload.closed_loop.sessions.block_tokens"
        return None


#: the hash block size of a closed loop's sessions that set none (Mooncake's)
CLOSED_LOOP_BLOCK_TOKENS = 512


def check_session_context(
    shape: SessionsSpec, first: LengthSpec, output: LengthSpec, max_context: int, field: str
) -> None:
    """A session that can be bounded and can outgrow the context is an input error."""
    bounds = [x.bound for x in (shape.turns, first, output, shape.new_tokens)]
    if any(b is None for b in bounds):
        return  # unbounded: sessions end at the context limit while generated
    turns, f, o, n = (int(b) for b in bounds)  # type: ignore[arg-type]
    worst = shape.system_prompt_tokens + f + (turns - 1) * (o + n) + o
    if worst > max_context:
        raise InputError(
            f"a session can grow to {worst:,} tokens (system prompt + first prompt + "
            f"(turns − 1)·(output + new tokens) + output), beyond the model's {max_context:,}"
            "-token context (max_position_embeddings)",
            field=f"{field}.sessions.turns, {field}.input_tokens, {field}.output_tokens, "
            f"{field}.sessions.new_tokens",
            value=f"{shape.system_prompt_tokens} + {f} + ({turns} − 1)·({o} + {n}) + {o}",
            allowed=f"at most {max_context} (fewer turns or shorter lengths; or an unbounded "
            "distribution, whose sessions end at the context limit)",
        )
