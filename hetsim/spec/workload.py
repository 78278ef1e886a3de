"""The ``workload:`` section: a real trace to replay, or a synthetic generator."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hetsim.spec._types import Seconds, StrictModel

__all__ = [
    "TRACE_FORMATS",
    "TRACE_COLUMNS",
    "TraceSpec",
    "LengthSpec",
    "SyntheticSpec",
    "WorkloadSpec",
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
    time_unit: Literal["s", "ms", "us"] = Field(
        default="s", description="unit of a numeric arrival column in generic formats"
    )
    time_window: tuple[Seconds, Seconds] | None = Field(
        default=None, description="[start, end] offsets from the first arrival to replay"
    )
    target_rate: float | None = Field(
        default=None,
        gt=0,
        description="rescale arrival times so the mean rate is this many requests/s (burstiness "
        "is kept: inter-arrival gaps are scaled by one factor)",
    )
    max_input_tokens: int | None = Field(default=None, gt=0, description="cap on prompt length")
    max_output_tokens: int | None = Field(default=None, gt=0, description="cap on output length")
    sample: float = Field(default=1.0, gt=0, le=1, description="keep this fraction of requests")
    on_bad_row: Literal["error", "skip"] = Field(
        default="error", description="unparsable rows: stop with an error, or skip and count them"
    )

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

    dist: Literal["fixed", "uniform", "lognormal", "empirical"] = "fixed"
    value: int | None = Field(default=None, gt=0, description="fixed: the length")
    min: int | None = Field(default=None, gt=0, description="uniform: lower bound; clip floor")
    max: int | None = Field(default=None, gt=0, description="uniform: upper bound; clip ceiling")
    mean: float | None = Field(default=None, gt=0, description="lognormal: mean length")
    cv: float | None = Field(default=None, gt=0, description="lognormal: coefficient of variation")
    trace: TraceSpec | None = Field(
        default=None, description="empirical: resample lengths from this trace"
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_int(cls, data: object) -> object:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"dist": "fixed", "value": data}
        return data

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
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self


class SyntheticSpec(StrictModel):
    """Generated arrivals and lengths."""

    arrival: Literal["poisson", "gamma", "bursty"] = Field(
        default="poisson",
        description="poisson; gamma (inter-arrival CV = `cv`); bursty (on/off: `rate` during "
        "`on` periods, silence during `off` periods)",
    )
    rate: float = Field(gt=0, description="mean request rate in requests/s")
    cv: float = Field(default=1.0, gt=0, description="gamma: coefficient of variation of gaps")
    on: Seconds = Field(default=10.0, gt=0, description="bursty: length of an on period")
    off: Seconds = Field(default=10.0, ge=0, description="bursty: length of an off period")
    requests: int = Field(default=1000, gt=0, description="number of requests to generate")
    input_tokens: LengthSpec
    output_tokens: LengthSpec
    prefix_hit_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of each prompt that is a shared prefix (system prompt or earlier "
        "turns) the prefix cache can serve",
    )


class WorkloadSpec(StrictModel):
    trace: TraceSpec | None = None
    synthetic: SyntheticSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WorkloadSpec:
        if (self.trace is None) == (self.synthetic is None):
            raise ValueError("set exactly one of `trace` or `synthetic`")
        return self
