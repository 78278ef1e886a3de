"""Human quantities at the edges, SI inside.

Users write "80 GiB", "3.35 TB/s", "400 Gbps", "989 TFLOPS", "5 us" or "$2.50/h"; the code works in
bytes, bytes per second, operations per second, seconds and US dollars per hour. Each parser takes a
plain number as already being in SI and a string as ``<number> <unit>``; an unknown unit is an
error that lists the units accepted for that kind of quantity.

A count may multiply a quantity: "8 x 400 Gbps" is eight NICs. Bits and bytes are told apart
by case the way the field writes them: ``GB/s`` is bytes, ``Gb/s`` and ``Gbps`` are bits.
Decimal prefixes (k, M, G, T, P) are powers of 1000; binary ones (Ki, Mi, Gi, Ti, Pi) powers
of 1024.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "UnitError",
    "parse_bytes",
    "parse_bandwidth",
    "parse_flops",
    "parse_time",
    "parse_price_per_hour",
    "parse_power",
    "format_bytes",
    "format_bandwidth",
    "format_flops",
    "format_time",
    "format_price_per_hour",
    "format_power",
    "KINDS",
]


class UnitError(ValueError):
    """A quantity that could not be read: names what was given and what is accepted."""


_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}


def _byte_units() -> dict[str, float]:
    units = {f"{p}B": f for p, f in _DECIMAL.items() if p != "K"}
    units.update({f"{p}B": f for p, f in _BINARY.items()})
    units["bytes"] = 1.0
    return units


def _bandwidth_units() -> dict[str, float]:
    units: dict[str, float] = {}
    for unit, factor in _byte_units().items():
        if unit != "bytes":
            units[f"{unit}/s"] = factor
    for p, f in _DECIMAL.items():
        if p == "K":
            continue
        units[f"{p}b/s"] = f / 8
        units[f"{p}bps"] = f / 8
    return units


def _flops_units() -> dict[str, float]:
    units: dict[str, float] = {}
    for p, f in _DECIMAL.items():
        if p == "K":
            continue
        for word in ("FLOPS", "FLOP/s", "OPS", "OP/s"):
            units[f"{p}{word}"] = f
    return units


_TIME_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
}

_POWER_UNITS = {"W": 1.0, "kW": 1e3}

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY_RE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>\S*)\s*$")
_PRICE_RE = re.compile(
    rf"^\s*(?:\$\s*(?P<num1>{_NUMBER})|(?P<num2>{_NUMBER})\s*(?:USD|usd|\$))"
    r"\s*/\s*(?P<per>h|hr|hour)\s*$"
)


@dataclass(frozen=True)
class _Kind:
    name: str
    units: dict[str, float]
    si_unit: str
    # Units that format() picks from, largest first; all must be keys of `units`.
    display: tuple[str, ...]
    allow_negative: bool = False


KINDS: dict[str, _Kind] = {
    "bytes": _Kind(
        "size in bytes",
        _byte_units(),
        "B",
        ("PB", "TB", "GB", "MB", "kB", "B"),
    ),
    "bandwidth": _Kind(
        "bandwidth",
        _bandwidth_units(),
        "B/s",
        ("TB/s", "GB/s", "MB/s", "kB/s", "B/s"),
    ),
    "flops": _Kind(
        "compute throughput",
        _flops_units(),
        "FLOPS",
        ("PFLOPS", "TFLOPS", "GFLOPS", "MFLOPS", "kFLOPS", "FLOPS"),
    ),
    "time": _Kind("duration", _TIME_UNITS, "s", ("h", "min", "s", "ms", "us", "ns")),
    "power": _Kind("power", _POWER_UNITS, "W", ("kW", "W")),
}


_MULTIPLIER_RE = re.compile(r"^\s*(?P<count>\d+)\s*[x×*]\s*(?P<rest>.+)$")


def _parse(kind: str, value: object) -> float:
    """A quantity of ``kind``; "4 x 400 Gbps" (a count times a quantity) is accepted too."""
    spec = KINDS[kind]
    if isinstance(value, str):
        multiple = _MULTIPLIER_RE.match(value)
        if multiple:
            return int(multiple.group("count")) * _parse(kind, multiple.group("rest"))
    if isinstance(value, bool):
        raise UnitError(f"expected a {spec.name}, got a boolean {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        match = _QUANTITY_RE.match(value)
        if match is None:
            raise UnitError(
                f"{value!r} is not a {spec.name}: write '<number> <unit>', e.g. "
                f"'{_example(kind)}'; accepted units: {', '.join(spec.units)}"
            )
        unit = match.group("unit")
        if unit == "":
            number = float(match.group("num"))
        elif unit in spec.units:
            number = float(match.group("num")) * spec.units[unit]
        else:
            raise UnitError(
                f"{value!r} is not a {spec.name}: unknown unit {unit!r}; "
                f"accepted units: {', '.join(spec.units)}"
            )
    else:
        raise UnitError(f"expected a {spec.name} such as '{_example(kind)}', got {value!r}")
    if not math.isfinite(number):
        raise UnitError(f"{value!r} is not a finite {spec.name}")
    if number < 0 and not spec.allow_negative:
        raise UnitError(f"{value!r}: a {spec.name} cannot be negative")
    return number


def _example(kind: str) -> str:
    return {
        "bytes": "80 GiB",
        "bandwidth": "3.35 TB/s",
        "flops": "989 TFLOPS",
        "time": "5 us",
        "power": "700 W",
    }[kind]


def parse_bytes(value: object) -> float:
    """Bytes from "80 GiB", "141 GB", "512 MiB" or a plain number of bytes."""
    return _parse("bytes", value)


def parse_bandwidth(value: object) -> float:
    """Bytes per second from "3.35 TB/s", "400 Gbps", "100 Gb/s" or a plain number in B/s."""
    return _parse("bandwidth", value)


def parse_flops(value: object) -> float:
    """Operations per second from "989 TFLOPS", "1.98 PFLOPS", "1979 TOPS" or a number."""
    return _parse("flops", value)


def parse_time(value: object) -> float:
    """Seconds from "5 us", "2 ms", "1.5 s", "10 min" or a plain number of seconds."""
    return _parse("time", value)


def parse_power(value: object) -> float:
    """Watts from "700 W", "1.2 kW" or a plain number of watts."""
    return _parse("power", value)


def parse_price_per_hour(value: object) -> float:
    """US dollars per hour from "$2.50/h", "2.5 USD/h", "$3/hr" or a plain number."""
    if isinstance(value, bool):
        raise UnitError(f"expected a price per hour, got a boolean {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        match = _PRICE_RE.match(value)
        if match is None:
            raise UnitError(
                f"{value!r} is not a price per hour: write '$2.50/h' or '2.50 USD/h' "
                "(accepted: $N/h, $N/hr, $N/hour, N USD/h)"
            )
        number = float(match.group("num1") or match.group("num2"))
    else:
        raise UnitError(f"expected a price per hour such as '$2.50/h', got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise UnitError(f"{value!r}: a price must be a finite, non-negative amount")
    return number


def _format(kind: str, value: float, digits: int) -> str:
    spec = KINDS[kind]
    if value == 0:
        return f"0 {spec.display[-1]}"
    for unit in spec.display:
        factor = spec.units[unit]
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {unit}"
    unit = spec.display[-1]
    return f"{value / spec.units[unit]:.{digits}g} {unit}"


def format_bytes(value: float, digits: int = 4, binary: bool = False) -> str:
    """ "85.9 GB" for 85.9e9; with ``binary`` GiB-style units ("80 GiB")."""
    if binary:
        for unit in ("PiB", "TiB", "GiB", "MiB", "KiB"):
            factor = KINDS["bytes"].units[unit]
            if abs(value) >= factor:
                return f"{value / factor:.{digits}g} {unit}"
        return f"{value:.{digits}g} B"
    return _format("bytes", value, digits)


def format_bandwidth(value: float, digits: int = 4) -> str:
    """ "3.35 TB/s" for 3.35e12 bytes per second."""
    return _format("bandwidth", value, digits)


def format_flops(value: float, digits: int = 4) -> str:
    """ "989 TFLOPS" for 9.89e14 operations per second."""
    return _format("flops", value, digits)


def format_time(value: float, digits: int = 4) -> str:
    """ "5 us", "2 ms", "1.5 s" — the largest unit that keeps the number at or above one."""
    return _format("time", value, digits)


def format_power(value: float, digits: int = 4) -> str:
    """ "700 W" for 700.0."""
    return _format("power", value, digits)


def format_price_per_hour(value: float) -> str:
    """ "$2.50/h" for 2.5 dollars per hour."""
    return f"${value:.2f}/h" if value >= 0.01 or value == 0 else f"${value:.3g}/h"


PARSERS: dict[str, Callable[[object], float]] = {
    "bytes": parse_bytes,
    "bandwidth": parse_bandwidth,
    "flops": parse_flops,
    "time": parse_time,
    "power": parse_power,
    "price_per_hour": parse_price_per_hour,
}
