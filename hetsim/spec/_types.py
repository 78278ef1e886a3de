"""Pydantic field types that read human units and keep SI floats."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from hetsim import units


def _quantity(kind: str, example: str, typical: float, positive: bool) -> Any:
    """A field of ``kind`` read by :mod:`hetsim.units`; ``typical`` (SI) is the magnitude a bare
    number's error suggests a unit for. ``positive`` refuses zero too: a zero bandwidth, capacity,
    peak or rate is a divisor downstream, never a meaningful setting."""
    parser = units.PARSERS[kind]
    name = units.KINDS[kind].name if kind in units.KINDS else kind.replace("_", " ")

    def parse(value: object) -> float:
        try:
            number = parser(value, typical)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None
        if positive and number <= 0:
            raise ValueError(f"a {name} must be above zero, e.g. '{example}'")
        return number

    # dumped with its SI unit and every digit (repr), so a dumped spec is valid input again (the
    # planner re-validates edited dumps) and reads the same as it did in
    unit = units.KINDS[kind].si_unit if kind in units.KINDS else None

    def dump(number: float) -> str:
        text = repr(float(number))  # a numpy scalar set by model_copy would repr as np.float64()
        return f"${text}/h" if unit is None else f"{text} {unit}"

    return Annotated[
        float,
        BeforeValidator(parse),
        PlainSerializer(dump),
        WithJsonSchema(
            {
                "type": "string",
                "examples": [example],
                "description": f"{kind} with its unit, e.g. '{example}' (a bare number is an "
                "error, except 0" + (", and this one must be above zero)" if positive else ")"),
            }
        ),
    ]


Bytes = _quantity("bytes", "80 GiB", 80e9, positive=True)
Bandwidth = _quantity("bandwidth", "3.35 TB/s", 50e9, positive=True)
Flops = _quantity("flops", "989 TFLOPS", 1e15, positive=True)
Watts = _quantity("power", "700 W", 700.0, positive=False)  # 0: not measured (calibrated hosts)
RequestRate = _quantity("rate", "12 req/s", 10.0, positive=True)
PricePerHour = _quantity("price_per_hour", "$2.50/h", 2.5, positive=False)
#: durations, by the magnitude a bare number most likely meant: whole-run times (timeouts, think
#: time, TTFT bounds), per-token and per-step times (TPOT bounds, step overheads), per-hop
#: latencies
Seconds = _quantity("time", "1.5 s", 1.0, positive=False)
StepSeconds = _quantity("time", "50 ms", 0.03, positive=False)
LatencySeconds = _quantity("time", "5 us", 5e-6, positive=False)


def _not_a_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(
            "expected a whole number, not a YAML boolean (yes/no/on/off/true/false are booleans)"
        )
    return value


#: a count (instances, tp, tokens, requests, a seed...): a whole number, never a YAML boolean,
#: which pydantic would otherwise read as 1 or 0 (``instances: yes``); a numeric string still
#: reads as its number, as pydantic's lax mode reads it
Count = Annotated[int, BeforeValidator(_not_a_bool)]
#: instances of one pool hetsim simulates at most: every instance is an object with its own
#: event stream and time series, and no single deployment serves one model from more replicas
MAX_INSTANCES = 4096
#: an instance count: 1 to MAX_INSTANCES
InstanceCount = Annotated[Count, Field(ge=1, le=MAX_INSTANCES)]
#: closed-loop clients at most (vllm bench serve --max-concurrency sweeps stop well below)
MAX_CLIENTS = 100_000

#: a share of a nominal figure achieved in practice: zero would divide, above one is a typo
Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    # inf and nan pass gt/ge bounds (nan compares false, inf is above any bound): refuse them
    # everywhere, as no input of hetsim is meaningful when infinite
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: object, info: ValidationInfo) -> object:
        # pydantic reads true/yes as 1.0 into a float field (memory_utilization: yes); counts
        # have their own type (Count), and unit-bearing fields their parsers
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and field.annotation in (float, float | None):
                raise ValueError(
                    "expected a number, not a YAML boolean (yes/no/on/off/true/false are booleans)"
                )
        return value


Confidence = Literal["datasheet", "secondary", "measured", "estimate", "uncertain", "assumption"]

CONFIDENCE_HELP = (
    "datasheet: vendor datasheet; secondary: third-party spec pages agreeing; measured: a public "
    "microbenchmark; estimate: derived by us from other figures; uncertain: sources disagree or "
    "only vendor claims without detail; assumption: a number we chose, not a fact"
)


def figure_model(value_type: Any, example: str) -> Any:
    """A figure with provenance: a plain value (from a vendor datasheet), or a mapping with
    ``value``, ``confidence`` and an optional ``note`` and ``source``."""

    class Figure(StrictModel):
        value: value_type  # type: ignore[valid-type]
        confidence: Confidence = Field(description=CONFIDENCE_HELP)
        note: str | None = None
        source: str | None = Field(default=None, description="URL or a source id from `sources`")

    def coerce(raw: object) -> object:
        if isinstance(raw, dict):
            return raw
        return {"value": raw, "confidence": "datasheet"}

    return Annotated[
        Figure,
        BeforeValidator(coerce),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": ["string", "number"], "examples": [example]},
                    {
                        "type": "object",
                        "properties": {
                            "value": {"type": ["string", "number"]},
                            "confidence": {"enum": list(Confidence.__args__)},  # type: ignore[attr-defined]
                            "note": {"type": "string"},
                            "source": {"type": "string"},
                        },
                        "required": ["value", "confidence"],
                    },
                ]
            }
        ),
    ]
