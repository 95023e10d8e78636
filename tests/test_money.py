import time
from decimal import Decimal

import pytest

from keeptrusts_authz.money import AmountError, ceil_micros, format_micros, parse_amount


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        ("1200.00", 1_200_000_000),
        (1200.00, 1_200_000_000),  # the seed's JSON number
        (1200, 1_200_000_000),
        (Decimal("0.000001"), 1),
        (1e3, 1_000_000_000),  # a JSON number in exponent form is still a number
        ("999999999999999.999999", 999_999_999_999_999_999_999),
        ("5", 5_000_000),
    ],
)
def test_accepted_amounts(value: object, micros: int) -> None:
    assert parse_amount(value) == micros


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "must not be negative"),
        ("0", "must be greater than zero"),
        ("-0", "must be greater than zero"),
        ("nan", "not a decimal number"),
        ("Infinity", "not a decimal number"),
        (float("nan"), "finite"),
        ("0.0000001", "at most 6 decimal places"),
        ("abc", "not a decimal number"),
        ("", "empty string"),
        (True, "got bool"),
        (None, "got NoneType"),
        ([1], "got list"),
        ("1e999990", "not a decimal number"),
        (Decimal("1e999990"), "too large"),
        ("123456789012345678901234.123456", "too large"),
        ("1" * 65, "too long"),
    ],
)
def test_rejected_amounts_name_the_problem(value: object, message: str) -> None:
    with pytest.raises(AmountError, match=message) as err:
        parse_amount(value, field="amount")
    assert str(err.value).startswith("amount: ")


def test_huge_exponents_are_refused_without_computing_them() -> None:
    started = time.perf_counter()
    for text in ("1e999990", "9" * 60, "1e-999999"):
        with pytest.raises(AmountError):
            parse_amount(text)
    assert time.perf_counter() - started < 0.5


def test_zero_allowed_when_asked() -> None:
    assert parse_amount("0", allow_zero=True) == 0


def test_format_and_round_up() -> None:
    assert format_micros(1_200_000_000) == "1200.00"
    assert format_micros(1) == "0.000001"
    assert format_micros(-1_500) == "-0.0015"
    assert ceil_micros(Decimal("0.0000001")) == 1
    assert ceil_micros(Decimal("2")) == 2
