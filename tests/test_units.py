"""Units: human strings at the edges, SI floats inside."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hetsim import units
from hetsim.units import UnitError


@pytest.mark.parametrize(
    ("text", "parser", "expected"),
    [
        ("80 GiB", units.parse_bytes, 80 * 2**30),
        ("141 GB", units.parse_bytes, 141e9),
        ("512 MiB", units.parse_bytes, 512 * 2**20),
        ("3.35 TB/s", units.parse_bandwidth, 3.35e12),
        ("400 Gbps", units.parse_bandwidth, 50e9),
        ("100 Gb/s", units.parse_bandwidth, 12.5e9),
        ("4 x 400 Gbps", units.parse_bandwidth, 200e9),
        ("989 TFLOPS", units.parse_flops, 989e12),
        ("1.98 PFLOPS", units.parse_flops, 1.98e15),
        ("1979 TOPS", units.parse_flops, 1979e12),
        ("5 us", units.parse_time, 5e-6),
        ("2 ms", units.parse_time, 2e-3),
        ("1.5 s", units.parse_time, 1.5),
        ("10 min", units.parse_time, 600.0),
        ("700 W", units.parse_power, 700.0),
        ("$2.50/h", units.parse_price_per_hour, 2.5),
        ("2.5 USD/h", units.parse_price_per_hour, 2.5),
        ("$3/hr", units.parse_price_per_hour, 3.0),
    ],
)
def test_parses_the_units_people_write(text, parser, expected):
    assert parser(text) == pytest.approx(expected, rel=1e-12)


def test_plain_numbers_are_already_si():
    assert units.parse_bytes(1024) == 1024.0
    assert units.parse_time(0.25) == 0.25


def test_bits_and_bytes_differ_by_case():
    assert units.parse_bandwidth("8 Gb/s") * 8 == units.parse_bandwidth("8 GB/s")


@pytest.mark.parametrize(
    ("text", "parser", "must_mention"),
    [
        ("3 TB/sec", units.parse_bandwidth, "GB/s"),
        ("2 sec", units.parse_time, "ms"),
        ("80 Gib", units.parse_bytes, "GiB"),
        ("989 TFLOP", units.parse_flops, "TFLOPS"),
        ("fast", units.parse_bandwidth, "TB/s"),
        ("2.50 EUR/h", units.parse_price_per_hour, "$N/h"),
    ],
)
def test_unit_typo_lists_accepted_units(text, parser, must_mention):
    with pytest.raises(UnitError) as err:
        parser(text)
    assert text in str(err.value)
    assert must_mention in str(err.value)


@pytest.mark.parametrize("bad", ["-5 GB", "nan GB", True, None, [1]])
def test_rejects_negative_nonfinite_and_wrong_types(bad):
    with pytest.raises(UnitError):
        units.parse_bytes(bad)


finite = st.floats(min_value=1e-9, max_value=1e18, allow_nan=False, allow_infinity=False)


@given(finite)
def test_bytes_round_trip(x):
    assert units.parse_bytes(units.format_bytes(x, digits=12)) == pytest.approx(x, rel=1e-10)
    assert units.parse_bytes(units.format_bytes(x, digits=12, binary=True)) == pytest.approx(
        x, rel=1e-10
    )


@given(finite)
def test_bandwidth_flops_time_round_trip(x):
    assert units.parse_bandwidth(units.format_bandwidth(x, 12)) == pytest.approx(x, rel=1e-10)
    assert units.parse_flops(units.format_flops(x, 12)) == pytest.approx(x, rel=1e-10)
    assert units.parse_time(units.format_time(x, 12)) == pytest.approx(x, rel=1e-10)
    assert units.parse_power(units.format_power(x, 12)) == pytest.approx(x, rel=1e-10)


@given(st.floats(min_value=0.01, max_value=1e6, allow_nan=False))
def test_price_round_trip_to_the_cent(x):
    assert units.parse_price_per_hour(units.format_price_per_hour(x)) == pytest.approx(x, abs=0.005)


@given(finite)
def test_default_format_keeps_four_significant_digits(x):
    back = units.parse_time(units.format_time(x))
    assert math.isclose(back, x, rel_tol=5e-4)


def test_format_picks_a_readable_unit():
    assert units.format_bandwidth(3.35e12) == "3.35 TB/s"
    assert units.format_flops(989e12) == "989 TFLOPS"
    assert units.format_time(5e-6) == "5 us"
    assert units.format_bytes(80 * 2**30, binary=True) == "80 GiB"
    assert units.format_price_per_hour(2.5) == "$2.50/h"
