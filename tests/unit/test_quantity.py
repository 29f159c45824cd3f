"""The one quantity parser (pure): Kubernetes semantics, and a ValueError, never an
ArithmeticError or a slow parse, for whatever a person sends."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from valeria_hub.quantity import MAX_AMOUNT, parse_quantity, shown


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("2Gi", Decimal(2**31)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        ("1E+2", Decimal(100)),
        ("12e-1", Decimal("1.2")),
        ("+1", Decimal(1)),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        (" 1 ", Decimal(1)),
        ("0", Decimal(0)),
        ("0e1000", Decimal(0)),
        ("1e-999", Decimal("1e-999")),  # the API server rounds it up to 1n
        ("7Ei", Decimal(7 * 2**60)),
        ("9223372036854775807", MAX_AMOUNT),
        (2, Decimal(2)),
        (0.5, Decimal("0.5")),
        (1e-7, Decimal("1e-7")),
    ],
)
def test_kubernetes_quantities(value, expected):
    assert parse_quantity(value) == expected


MALFORMED = [
    ("-1", "negative"),
    ("-0", "negative"),
    ("-1Gi", "negative"),
    (-1, "negative"),
    (-0.5, "negative"),
    ("NaN", "not a quantity"),
    ("nan", "not a quantity"),
    ("Infinity", "not a quantity"),
    ("inf", "not a quantity"),
    (float("nan"), "not a finite number"),
    (float("inf"), "not a finite number"),
    (float("-inf"), "not a finite number"),
    ("1e999999", "exponent is out of range"),
    ("1e1000000", "exponent is out of range"),
    ("50e999999", "exponent is out of range"),
    ("1e-999999999999", "exponent is out of range"),  # int32 wraps it to 1e727379969
    ("1e" + "9" * 98, "exponent is out of range"),
    ("9" * 10_000, "longer than 100"),
    ("9" * 5_000 + "e5", "longer than 100"),
    ("0." + "0" * 200 + "1", "longer than 100"),
    ("1e19", "larger than Kubernetes holds"),
    ("8Ei", "larger than Kubernetes holds"),
    ("9223372036854775808", "larger than Kubernetes holds"),
    (10**30, "larger than Kubernetes holds"),
    (10**4000, "larger than Kubernetes holds"),
    (1e308, "larger than Kubernetes holds"),
    (True, "not a quantity"),
    (None, "not a quantity"),
    ([1], "not a quantity"),
    ({"a": 1}, "not a quantity"),
    ("", "not a quantity"),
    ("1.5e3Gi", "not a quantity"),
    ("0x10", "not a quantity"),
    ("1_000", "not a quantity"),
    ("１", "not a quantity"),  # a fullwidth digit
    ("1 Gi", "not a quantity"),
    ("1Gi\n1", "not a quantity"),
    ("1e", "not a quantity"),
    ("--1", "not a quantity"),
]


@pytest.mark.parametrize(("value", "why"), MALFORMED, ids=[shown(v, 24) for v, _ in MALFORMED])
def test_malformed_quantities_are_value_errors_saying_why(value, why):
    started = time.perf_counter()
    with pytest.raises(ValueError, match=why) as err:
        parse_quantity(value)
    assert time.perf_counter() - started < 0.05
    assert len(str(err.value)) < 120  # the value is cut, never echoed whole


def test_a_body_sized_string_is_refused_at_once():
    started = time.perf_counter()
    with pytest.raises(ValueError, match="longer than"):
        parse_quantity("9" * 2_000_000 + "x")
    assert time.perf_counter() - started < 0.05


def test_results_fit_the_default_decimal_context():
    """Callers compare and add in the default context: what the parser returns never
    makes that raise."""
    for text in ("1e-1000", "7Ei", "0.000000001", "9223372036854775807", "0e-1000"):
        value = parse_quantity(text)
        assert value + value >= value
        assert value * Decimal(10) ** 9 >= 0


def test_shown_cuts_long_values():
    assert shown("x" * 100) == "'" + "x" * 36 + "..."
    assert shown(10**5000) == "<int>"  # too long for Python to print at all
