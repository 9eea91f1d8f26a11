"""Exact decimals from floats.

A float is taken at its shortest text form (repr) only when that form has at most 15 significant
digits (`sys.float_info.dig`): every decimal that short survives the trip through a binary float, so
the text is the number that was sent. A longer form (0.30000000000000004, or a JSON number of 18
digits that the parser rounded to the nearest float) cannot be told apart from rounding, so money and
usage values like that must be sent as decimal strings.
"""

from __future__ import annotations

import sys
from decimal import Decimal

FLOAT_EXACT_DIGITS = sys.float_info.dig


def significant_digits(value: Decimal) -> int:
    """Digits of the coefficient without trailing zeros (no context involved, so nothing rounds)."""
    digits = value.as_tuple().digits
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(len(digits) - trailing_zeros, 1)


def exact_float_decimal(value: float) -> Decimal | None:
    """The decimal a finite float stands for, or None when its shortest form is too long to be exact."""
    number = Decimal(repr(value))
    return number if significant_digits(number) <= FLOAT_EXACT_DIGITS else None
