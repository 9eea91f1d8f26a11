"""Minor units, half-up rounding and strict decimal parsing."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext
from fractions import Fraction

import pytest

from togai_engine.errors import InvalidInput
from togai_engine.pricing.money import (
    currency_exponent,
    is_known_currency,
    minor_unit,
    parse_decimal,
    round_fraction,
    round_money,
)

D = Decimal


@pytest.mark.parametrize(("code", "exponent"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3)])
def test_currency_exponent_follows_iso_minor_units(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize("code", ["ZZZ", "usd", "US", "USDD", "", " USD", "U$D"])
def test_currency_exponent_rejects_unknown_codes(code: str) -> None:
    with pytest.raises(InvalidInput) as error:
        currency_exponent(code)
    assert error.value.field == "currency"
    assert "USD" in error.value.reason  # says what a valid code looks like


@pytest.mark.parametrize(
    ("code", "known"),
    [
        ("USD", True),
        ("JPY", True),
        ("KWD", True),
        ("usd", False),
        ("Usd", False),
        ("ZZZ", False),
        ("EURO", False),
    ],
)
def test_is_known_currency(code: str, known: bool) -> None:
    assert is_known_currency(code) is known


def test_is_known_currency_rejects_non_strings() -> None:
    assert is_known_currency(840) is False  # type: ignore[arg-type]


def test_minor_unit() -> None:
    assert minor_unit("USD") == D("0.01")
    assert minor_unit("JPY") == D("1")
    assert minor_unit("KWD") == D("0.001")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.005", "USD", "0.01"),  # a tie rounds up
        ("0.0049999999", "USD", "0.00"),  # just below the tie rounds down
        ("2.675", "USD", "2.68"),  # exact decimal tie (a float 2.675 would give 2.67)
        ("-0.005", "USD", "-0.01"),  # ties go away from zero
        ("12", "USD", "12.00"),  # always shown at the minor unit
        ("0.5", "JPY", "1"),  # JPY has no minor unit
        ("1.4999", "JPY", "1"),
        ("1.0005", "KWD", "1.001"),  # KWD has three decimals
        ("1.00049", "KWD", "1.000"),
        # 33 digits: more than the default 28-digit context could quantize
        ("123456789012345678901234567890.125", "USD", "123456789012345678901234567890.13"),
    ],
)
def test_round_money_half_up_to_minor_unit(amount: str, currency: str, expected: str) -> None:
    rounded = round_money(D(amount), currency)
    assert rounded == D(expected)
    assert str(rounded) == expected  # same exponent, not merely the same value


def test_round_money_ignores_the_ambient_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = ROUND_DOWN
        assert round_money(D("1234.565"), "USD") == D("1234.57")


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (Fraction(1, 200), "USD", "0.01"),  # 0.005, a tie
        (Fraction(-1, 200), "USD", "-0.01"),
        (Fraction(1, 3), "USD", "0.33"),
        (Fraction(2, 3), "USD", "0.67"),
        (Fraction(5, 2), "JPY", "3"),
        (Fraction(0), "KWD", "0.000"),
        (Fraction(1, 2000) - Fraction(1, 10**70), "KWD", "0.000"),  # below the tie by 1e-70
    ],
)
def test_round_fraction_is_exact_half_up(value: Fraction, currency: str, expected: str) -> None:
    assert str(round_fraction(value, currency)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", D("12.50")),
        (" 7 ", D("7")),
        ("-3", D("-3")),  # the sign is checked by the caller, which knows whether it is allowed
        (".5", D("0.5")),
        ("1e-9", D("1E-9")),
        ("2.5E3", D("2500")),
        (5, D("5")),
        (D("1.5"), D("1.5")),
        (0.1, D("0.1")),  # a float is taken at its shortest text form, not its binary value
        (1e16, D("1E+16")),
        (0.000001, D("0.000001")),
    ],
)
def test_parse_decimal_accepts(value: object, expected: Decimal) -> None:
    parsed = parse_decimal(value, "rate")
    assert parsed == expected
    assert isinstance(parsed, Decimal)


def test_parse_decimal_keeps_the_scale_of_strings() -> None:
    assert str(parse_decimal("1.500", "rate")) == "1.500"


def test_parse_decimal_negative_zero_is_plain_zero() -> None:
    assert str(parse_decimal("-0", "quantity")) == "0"
    assert not parse_decimal(D("-0.00"), "quantity").is_signed()


@pytest.mark.parametrize(
    "value",
    [
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-inf",
        D("NaN"),
        D("Infinity"),
        float("nan"),
        float("inf"),
        True,
        False,
        "",
        "   ",
        "abc",
        "1,5",
        "1_000",  # Decimal() would accept this, a request should not
        "0x10",
        "1.2.3",
        None,
        [1],
        0.30000000000000004,  # 17 digits: binary noise, must be sent as a string
        "1e999999999",
        "1e-50",
        "1" * 41,  # more significant digits than exact rating can carry
    ],
)
def test_parse_decimal_rejects_with_the_field_name(value: object) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_decimal(value, "rateValues[0].slabRates[1].rate")
    assert error.value.field == "rateValues[0].slabRates[1].rate"
    assert error.value.reason


def test_parse_decimal_rejects_float_artifacts_but_says_how_to_fix() -> None:
    with pytest.raises(InvalidInput, match="decimal string"):
        parse_decimal(0.1 + 0.2, "rate")
