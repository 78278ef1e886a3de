"""Pydantic field types that read human units and keep SI floats."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from hetsim import units


def _quantity(kind: str, example: str) -> Any:
    parser = units.PARSERS[kind]

    def parse(value: object) -> float:
        try:
            return parser(value)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None

    return Annotated[
        float,
        BeforeValidator(parse),
        WithJsonSchema(
            {
                "anyOf": [{"type": "string", "examples": [example]}, {"type": "number"}],
                "description": f"{kind} (SI number, or a string such as '{example}')",
            }
        ),
    ]


Bytes = _quantity("bytes", "80 GiB")
Bandwidth = _quantity("bandwidth", "3.35 TB/s")
Flops = _quantity("flops", "989 TFLOPS")
Seconds = _quantity("time", "5 us")
Watts = _quantity("power", "700 W")
PricePerHour = _quantity("price_per_hour", "$2.50/h")


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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
