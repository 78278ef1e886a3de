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
        # the spellings users write for link speeds and latencies (hand-computed: bits / 8)
        ("400 Gbit/s", units.parse_bandwidth, 50e9),
        ("400 Gb/s", units.parse_bandwidth, 50e9),
        ("25 GB/s", units.parse_bandwidth, 25e9),
        ("1.6 Tbit/s", units.parse_bandwidth, 200e9),
        ("5 µs", units.parse_time, 5e-6),  # U+00B5 micro sign
        ("5 μs", units.parse_time, 5e-6),  # U+03BC Greek mu
        ("12 req/s", units.parse_rate, 12.0),
        ("12 rps", units.parse_rate, 12.0),
        ("600 req/min", units.parse_rate, 10.0),
        ("7200 req/h", units.parse_rate, 2.0),
    ],
)
def test_parses_the_units_people_write(text, parser, expected):
    assert parser(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("bare", "parser", "typical", "suggestion"),
    [
        (50, units.parse_time, 0.03, "'50 ms'"),  # a TPOT bound
        (2000, units.parse_time, 1.0, "'2000 ms'"),  # a TTFT bound
        (2, units.parse_time, 1.0, "'2 s'"),
        (5, units.parse_time, 5e-6, "'5 us'"),  # a hop latency
        (400, units.parse_bandwidth, None, "'400 GB/s'"),
        ("400", units.parse_bandwidth, None, "'400 GB/s'"),  # a number in a string is bare too
        (80, units.parse_bytes, None, "'80 GB'"),
        (989, units.parse_flops, None, "'989 TFLOPS'"),
        (4, units.parse_rate, None, "'4 req/s'"),
        (2.5, units.parse_price_per_hour, None, "'$2.5/h'"),
    ],
)
def test_bare_number_is_an_error_that_suggests_the_likely_unit(bare, parser, typical, suggestion):
    with pytest.raises(UnitError) as err:
        parser(bare, typical)
    assert "needs a unit" in str(err.value)
    assert f"did you mean {suggestion}?" in str(err.value)


@pytest.mark.parametrize(
    "parser",
    [units.parse_time, units.parse_bytes, units.parse_bandwidth, units.parse_price_per_hour],
)
def test_bare_zero_is_zero_in_every_unit(parser):
    assert parser(0) == 0.0
    assert parser("0") == 0.0


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


@pytest.mark.parametrize("bad", ["-5 GB", "nan GB", "inf GB", float("inf"), True, None, [1]])
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


# ---- the spec's quantity fields: one owner (hetsim.units), the field's typical magnitude ----


def test_hop_reads_the_spellings_users_write_as_si():
    from hetsim.spec.scenario import Hop

    hop = Hop(name="nic", kind="nic", bandwidth="400 Gbit/s", latency="5 µs")
    assert hop.bandwidth == 50e9  # 400e9 bits / 8
    assert hop.latency == pytest.approx(5e-6, rel=1e-12)
    assert Hop(name="nic", kind="nic", bandwidth="2 x 400 Gb/s", latency=0).latency == 0.0


def test_sla_bare_numbers_suggest_ms_for_tpot_and_ttft():
    from pydantic import ValidationError

    from hetsim.spec.scenario import SLASpec

    with pytest.raises(ValidationError) as err:
        SLASpec(ttft=2000, tpot=50)
    text = str(err.value)
    assert "did you mean '2000 ms'?" in text
    assert "did you mean '50 ms'?" in text


def test_zero_bandwidth_is_refused_naming_the_field():
    from pydantic import ValidationError

    from hetsim.spec.scenario import Hop

    with pytest.raises(ValidationError) as err:
        Hop(name="nic", kind="nic", bandwidth="0 GB/s")
    assert err.value.errors()[0]["loc"] == ("bandwidth",)
    assert "must be above zero" in str(err.value)


def test_a_dumped_quantity_is_valid_input_with_every_digit():
    from hetsim.spec.scenario import Hop

    hop = Hop(name="nic", kind="nic", bandwidth="1.1 Gbit/s", latency="3 us")
    dumped = hop.model_dump()
    assert dumped["bandwidth"] == f"{1.1e9 / 8!r} B/s"
    assert Hop.model_validate(dumped) == hop
