"""Floats as exact decimals: short decimals come back exactly, long or subnormal forms are refused."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from togai_engine.common.numbers import exact_float_decimal, significant_digits


def test_short_forms_are_kept_and_long_or_subnormal_ones_refused():
    assert exact_float_decimal(0.1) == Decimal("0.1")
    assert exact_float_decimal(1e22) == Decimal("1E+22")
    assert exact_float_decimal(-0.0) == Decimal("-0.0")
    assert exact_float_decimal(123456789.012345) == Decimal("123456789.012345")  # 15 digits
    assert exact_float_decimal(0.1 + 0.2) is None  # 0.30000000000000004: 17 digits
    assert exact_float_decimal(1.23456789012345e-320) is None  # subnormal: its repr is 1.2347e-320
    assert exact_float_decimal(5e-324) is None
    assert exact_float_decimal(1e-300) == Decimal("1E-300")  # normal, however small


def test_significant_digits_ignore_trailing_zeros():
    assert [significant_digits(Decimal(t)) for t in ("0", "1E+22", "120.500", "-0.00012", "0E+5")] == [1, 1, 4, 2, 1]


@given(st.integers(min_value=1, max_value=10**15 - 1), st.integers(min_value=-300, max_value=290))
def test_every_normal_decimal_of_at_most_15_digits_comes_back_exactly(coefficient, exponent):
    number = Decimal(coefficient).scaleb(exponent)
    assert exact_float_decimal(float(number)) == number
