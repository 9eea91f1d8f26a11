"""Exact decimals from floats.

A float is taken at its shortest text form (repr) only when that form has at most 15 significant
digits (`sys.float_info.dig`) and the float is normal: every decimal that short, in the normal range,
survives the trip through a binary float, so the text is the decimal the float was made from when
that decimal had at most 15 digits. A longer form (0.30000000000000004) is binary noise or a number
the JSON parser rounded, so it is refused. A number of more digits that happens to round to a short
float (1.00000000000000001 -> 1.0) cannot be told apart once parsed: only decimal strings keep more
than 15 significant digits, which is what the tools tell their callers.

Usage quantities are added and subtracted in `EXACT_QUANTITY_CONTEXT`, and money amounts in its twin
`EXACT_MONEY_CONTEXT` (`exact_sum`), never in Python's default context (28 significant digits, which rounds
silently).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from functools import reduce
from typing import Annotated, TypeVar

from pydantic import BeforeValidator

T = TypeVar("T")

FLOAT_EXACT_DIGITS = sys.float_info.dig

# The most digits a PostgreSQL NUMERIC holds: 131072 before the point and 16383 after.
NUMERIC_DIGITS = 131072 + 16383
# For adding, subtracting and comparing quantities (event values, meter sums, limits) exactly, as the meters'
# SQL does: an event value has at most 70 digits, but a meter's computation (a product, a quotient) can give
# longer ones, so the precision is every digit a NUMERIC can hold, plus one for a carry. Only an addition's
# digits cost time, not the precision. Inexact is trapped: should a result ever need rounding, it raises
# instead of changing a quantity silently. Not for division (that would expand to the full precision).
EXACT_QUANTITY_CONTEXT = Context(prec=NUMERIC_DIGITS + 1,
                                 traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
# For adding and subtracting money (invoice lines into totals, credits applied, amounts due, credit notes, wallet
# entries and balances, revenue buckets, lab totals): a rated line has up to 60 significant digits (pricing's
# contexts) and a plan accepts rates of 40, so a total can pass the default context's 28 digits, which would round
# it (an invoice total would stop being the sum of its lines). The same exact context as quantities; rounding to a
# currency's minor unit keeps every digit too (pricing.money.round_money). Not for multiplying or dividing.
EXACT_MONEY_CONTEXT = EXACT_QUANTITY_CONTEXT
_ZERO = Decimal(0)


def exact_sum(amounts: Iterable[Decimal]) -> Decimal:
    """The sum of `amounts` (0 for none) with every digit kept (`sum` would round past 28 digits)."""
    return reduce(EXACT_MONEY_CONTEXT.add, amounts, _ZERO)


def significant_digits(value: Decimal) -> int:
    """Digits of the coefficient without trailing zeros (no context involved, so nothing rounds)."""
    digits = value.as_tuple().digits
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(len(digits) - trailing_zeros, 1)


def exact_float_decimal(value: float) -> Decimal | None:
    """The decimal a finite float stands for, or None when its shortest form is too long to be exact
    or the float is subnormal (below ~2.2e-308, where fewer digits than 15 survive)."""
    if value != 0 and abs(value) < sys.float_info.min:
        return None
    number = Decimal(float.__repr__(value))  # float's own repr, also for a subclass with another one
    return number if significant_digits(number) <= FLOAT_EXACT_DIGITS else None


BOOLEAN_IS_NOT_A_NUMBER = "is a boolean; send a number"


def not_a_boolean(value: T) -> T:
    """A JSON `true` is not the number 1 (pydantic would read it as 1): refused wherever a number goes."""
    if isinstance(value, bool):
        raise ValueError(BOOLEAN_IS_NOT_A_NUMBER)
    return value


# For models filled from input no tool schema describes (inline plans, plan files); a tool's typed
# arguments are checked against its input schema before validation (mcp_server/argument_checks.py).
WholeNumber = Annotated[int, BeforeValidator(not_a_boolean)]
