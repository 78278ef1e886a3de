"""Human quantities at the edges, SI inside.

Users write "80 GiB", "3.35 TB/s", "400 Gbit/s", "989 TFLOPS", "5 us", "12 req/s" or "$2.50/h";
the code works in bytes, bytes per second, operations per second, seconds, requests per second and
US dollars per hour. Each parser reads a string ``<number> <unit>``; an unknown unit is an error
that lists the units accepted for that kind of quantity.

A bare number is an error too, except zero (the same in every unit): read as SI, ``tpot: 50``
would be 50 s and a link's ``bandwidth: 400`` 400 B/s, and nothing downstream could tell. The error
suggests the unit that puts the number nearest the field's typical magnitude (``typical``, in SI,
given by the field), so "tpot: 50" asks "did you mean '50 ms'?".

A count may multiply a quantity: "8 x 400 Gbps" is eight NICs. Bits and bytes are told apart
by case the way the field writes them: ``GB/s`` is bytes, ``Gb/s``, ``Gbit/s`` and ``Gbps`` are
bits.
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
    "parse_rate",
    "format_bytes",
    "format_bandwidth",
    "format_flops",
    "format_time",
    "format_price_per_hour",
    "format_power",
    "format_rate",
    "format_plain",
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
        units[f"{p}bit/s"] = f / 8
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
    "µs": 1e-6,  # U+00B5 MICRO SIGN, what most keyboards type
    "μs": 1e-6,  # U+03BC GREEK SMALL LETTER MU, what some editors substitute
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
}

_RATE_UNITS = {
    "req/s": 1.0,
    "requests/s": 1.0,
    "rps": 1.0,
    "req/min": 1 / 60,
    "req/h": 1 / 3600,
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
    "rate": _Kind("request rate", _RATE_UNITS, "req/s", ("req/s", "req/min", "req/h")),
}


_MULTIPLIER_RE = re.compile(r"^\s*(?P<count>\d+)\s*[x×*]\s*(?P<rest>.+)$")


def _parse(kind: str, value: object, typical: float | None = None) -> float:
    """A quantity of ``kind``; "4 x 400 Gbps" (a count times a quantity) is accepted too.

    ``typical`` (SI) picks the unit a bare number's error suggests; None: the kind's example."""
    spec = KINDS[kind]
    if isinstance(value, str):
        multiple = _MULTIPLIER_RE.match(value)
        if multiple:
            return int(multiple.group("count")) * _parse(kind, multiple.group("rest"), typical)
    if isinstance(value, bool):
        raise UnitError(f"expected a {spec.name}, got a boolean {value!r}")
    if isinstance(value, int | float):
        number = _bare(kind, float(value), typical)
    elif isinstance(value, str):
        match = _QUANTITY_RE.match(value)
        if match is None:
            raise UnitError(
                f"{value!r} is not a {spec.name}: write '<number> <unit>', e.g. "
                f"'{_example(kind)}'; accepted units: {', '.join(spec.units)}"
            )
        unit = match.group("unit")
        if unit == "":
            number = _bare(kind, float(match.group("num")), typical)
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


def _bare(kind: str, number: float, typical: float | None) -> float:
    """A number written without a unit: zero is zero in every unit; anything else is refused
    with the unit that would make it most plausible."""
    if number == 0:
        return 0.0
    if not math.isfinite(number):
        raise UnitError(f"{number!r} is not a finite {KINDS[kind].name}")
    raise UnitError(
        f"a {KINDS[kind].name} needs a unit; did you mean '{suggest(kind, number, typical)}'? "
        f"(accepted units: {', '.join(KINDS[kind].units)})"
    )


_TYPICAL = {
    "bytes": 80e9,
    "bandwidth": 50e9,
    "flops": 1e15,
    "time": 1.0,
    "power": 700.0,
    "rate": 10.0,
    "price_per_hour": 2.5,
}


def suggest(kind: str, number: float, typical: float | None = None) -> str:
    """``number`` with the unit (of the kind's display units) that puts it nearest ``typical``
    on a log scale: suggest("time", 50, 0.05) == "50 ms"; suggest("bandwidth", 400) == "400 GB/s"
    (with the default typical magnitude of the kind)."""
    if kind == "price_per_hour":
        return f"${number:g}/h"
    spec = KINDS[kind]
    target = math.log10(typical if typical is not None else _TYPICAL[kind])
    magnitude = math.log10(abs(number))
    best = min(spec.display, key=lambda u: abs(magnitude + math.log10(spec.units[u]) - target))
    return f"{number:g} {best}"


def _example(kind: str) -> str:
    return {
        "bytes": "80 GiB",
        "bandwidth": "3.35 TB/s",
        "flops": "989 TFLOPS",
        "time": "5 us",
        "power": "700 W",
        "rate": "12 req/s",
    }[kind]


def parse_bytes(value: object, typical: float | None = None) -> float:
    """Bytes from "80 GiB", "141 GB", "512 MiB" (a bare number: only 0)."""
    return _parse("bytes", value, typical)


def parse_bandwidth(value: object, typical: float | None = None) -> float:
    """Bytes per second from "3.35 TB/s", "400 Gbps", "100 Gb/s", "400 Gbit/s"."""
    return _parse("bandwidth", value, typical)


def parse_flops(value: object, typical: float | None = None) -> float:
    """Operations per second from "989 TFLOPS", "1.98 PFLOPS", "1979 TOPS"."""
    return _parse("flops", value, typical)


def parse_time(value: object, typical: float | None = None) -> float:
    """Seconds from "5 us", "5 µs", "2 ms", "1.5 s", "10 min" (a bare number: only 0)."""
    return _parse("time", value, typical)


def parse_power(value: object, typical: float | None = None) -> float:
    """Watts from "700 W", "1.2 kW"."""
    return _parse("power", value, typical)


def parse_rate(value: object, typical: float | None = None) -> float:
    """Requests per second from "12 req/s", "12 requests/s", "12 rps", "600 req/min"."""
    return _parse("rate", value, typical)


def parse_price_per_hour(value: object, typical: float | None = None) -> float:
    """US dollars per hour from "$2.50/h", "2.5 USD/h", "$3/hr" (a bare number: only 0)."""
    if isinstance(value, bool):
        raise UnitError(f"expected a price per hour, got a boolean {value!r}")
    if isinstance(value, str) and re.fullmatch(rf"\s*{_NUMBER}\s*", value):
        value = float(value)  # a number in a string is as bare as one outside
    if isinstance(value, int | float):
        if value != 0 and math.isfinite(value):
            raise UnitError(
                f"a price needs a unit; did you mean '{suggest('price_per_hour', value)}'? "
                "(accepted: $N/h, $N/hr, $N/hour, N USD/h)"
            )
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


def format_rate(value: float, digits: int = 4) -> str:
    """ "12 req/s" for 12.0 requests per second."""
    return _format("rate", value, digits)


def format_plain(value: float, digits: int = 3) -> str:
    """A number in plain digits: thousands separators, never scientific notation; ``digits``
    significant digits below 10**digits, whole units above (18,070, not 1.807e+04)."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{value:,.{decimals}f}"


def format_price_per_hour(value: float) -> str:
    """ "$2.50/h" for 2.5 dollars per hour."""
    return f"${value:.2f}/h" if value >= 0.01 or value == 0 else f"${value:.3g}/h"


PARSERS: dict[str, Callable[[object, float | None], float]] = {
    "bytes": parse_bytes,
    "bandwidth": parse_bandwidth,
    "flops": parse_flops,
    "time": parse_time,
    "power": parse_power,
    "rate": parse_rate,
    "price_per_hour": parse_price_per_hour,
}
