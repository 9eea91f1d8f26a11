"""Currency-aware decimal helpers: minor units, half-up rounding, strict parsing.

Money is `Decimal` end to end. Arithmetic that must be exact runs in `EXACT_CONTEXT`, which
raises instead of silently dropping digits; rounding to a currency runs in `DECIMAL_CONTEXT`.
"""

from __future__ import annotations

import math
import re
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from fractions import Fraction

from babel.numbers import get_currency_precision, is_currency

from togai_engine.common.messages import json_kind
from togai_engine.common.numbers import BOOLEAN_IS_NOT_A_NUMBER, NUMERIC_DIGITS, exact_float_decimal, significant_digits
from togai_engine.errors import InvalidInput

# 60 significant digits: a 10^15 quantity times a rate with 30 decimals still fits exactly.
DECIMAL_CONTEXT = Context(prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])
# Same precision, but any result that would need rounding raises `Inexact` instead.
EXACT_CONTEXT = Context(
    prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact]
)
# For rounding to a minor unit (round_money): the same half-up rounding with every digit a NUMERIC holds. What is
# rounded is a line of up to 60 significant digits (a large one has more digits before its cents), or a sum of
# lines (a total, a balance), which may pass 60: exact sums (common.numbers.EXACT_MONEY_CONTEXT) rounded at 60
# digits would raise, and fail every read of the account (and list_invoices for every account).
_ROUNDING_CONTEXT = Context(prec=NUMERIC_DIGITS + 1, rounding=ROUND_HALF_UP,
                            traps=[InvalidOperation, DivisionByZero, Overflow])

# Bounds on accepted input: far beyond any real price or quantity, but they keep exact
# products and sums inside the 60-digit context.
MAX_SIGNIFICANT_DIGITS = 40
MAX_ABS_EXPONENT = 40

_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def is_known_currency(code: str) -> bool:
    """True for a three-letter upper-case ISO 4217 code that babel knows (e.g. "USD"), the no-currency code
    (common.validation.NO_CURRENCY) included: a caller may not send that one (check_currency refuses it), but
    amounts stored in it before are still rounded, as they were priced, so reads over many accounts never fail on
    one such account."""
    return isinstance(code, str) and _CURRENCY_CODE.fullmatch(code) is not None and is_currency(code)


def currency_exponent(code: str) -> int:
    """Number of minor-unit digits of `code`: JPY 0, USD 2, KWD 3."""
    if not is_known_currency(code):
        raise InvalidInput(
            "currency",
            f"{code!r} is not a known ISO 4217 currency code; use three upper-case letters such as 'USD'.",
        )
    return get_currency_precision(code)


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency`: 0.01 for USD, 1 for JPY, 0.001 for KWD."""
    return Decimal(1).scaleb(-currency_exponent(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round `amount` half-up (ties away from zero) to the currency's minor unit."""
    unit = minor_unit(currency)
    try:
        return amount.quantize(unit, context=_ROUNDING_CONTEXT)
    except InvalidOperation as exc:
        raise InvalidInput(
            "amount", f"{amount} cannot be rounded to {currency}; it is not a finite amount of sane size."
        ) from exc


def round_fraction(value: Fraction, currency: str) -> Decimal:
    """Round an exact rational half-up to the minor unit, with no intermediate rounding."""
    return round_fraction_places(value, currency_exponent(currency))


def round_fraction_places(value: Fraction, exponent: int, context: Context = DECIMAL_CONTEXT) -> Decimal:
    """Round an exact rational half-up (ties away from zero) to `exponent` decimals, with no intermediate
    rounding; `context` builds the result (the default, 60 digits, is money's)."""
    scaled = value * 10**exponent
    magnitude = abs(scaled)
    # floor(x + 1/2) on the magnitude is half-up with ties away from zero.
    minor_units = (2 * magnitude.numerator + magnitude.denominator) // (2 * magnitude.denominator)
    if scaled < 0:
        minor_units = -minor_units
    return Decimal(minor_units).scaleb(-exponent, context=context)


def parse_decimal(value: object, field: str) -> Decimal:
    """Convert a request value to a finite Decimal, or raise InvalidInput naming `field`.

    Accepts Decimal, int, numeric strings ("12.5", "1e-9") and floats whose shortest text form
    has at most 15 significant digits (0.1 -> Decimal("0.1")); a longer float such as
    0.30000000000000004 cannot be told apart from binary noise, so it must be sent as a string.
    """
    if isinstance(value, bool):
        raise InvalidInput(field, f'{BOOLEAN_IS_NOT_A_NUMBER}, e.g. a decimal string such as "1.5"')
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = _decimal_from_float(value, field)
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_TEXT.fullmatch(text):
            raise InvalidInput(
                field, f'{value!r} is not a decimal number; send digits such as "12.50" or "1e-9".'
            )
        result = Decimal(text)
    else:
        raise InvalidInput(field, f'should be a decimal number, got {json_kind(value)}; send a string such as "12.50"')
    if not result.is_finite():
        raise InvalidInput(field, f'{value!r} is not a finite number; send a finite decimal such as "0".')
    return _check_magnitude(result, field)


def _decimal_from_float(value: float, field: str) -> Decimal:
    if not math.isfinite(value):
        raise InvalidInput(field, f'{value!r} is not a finite number; send a finite decimal such as "0".')
    result = exact_float_decimal(value)
    if result is None:
        raise InvalidInput(
            field,
            f"the float {value!r} has more digits than a float holds exactly; "
            "send the value as a decimal string.",
        )
    return result


def _check_magnitude(value: Decimal, field: str) -> Decimal:
    if value.is_zero():
        return value.copy_abs()  # "-0" is zero, shown without a sign
    digits = significant_digits(value)
    if digits > MAX_SIGNIFICANT_DIGITS or abs(value.adjusted()) > MAX_ABS_EXPONENT:
        raise InvalidInput(
            field,
            f"{value} is out of range; use at most {MAX_SIGNIFICANT_DIGITS} significant digits "
            f"and a magnitude between 1e-{MAX_ABS_EXPONENT} and 1e{MAX_ABS_EXPONENT}.",
        )
    return value


def exact_money(value: Decimal, currency: str, field: str) -> Decimal:
    """`value` if it fits the currency's minor unit exactly: money a caller sends (credit, a credit note) is
    never rounded silently; a finer amount is refused with one the caller could send instead."""
    rounded = round_money(value, currency)
    if rounded != value:
        raise InvalidInput(field, f"{value} has more decimals than {currency} allows ({currency_exponent(currency)}); "
                                  f"send an amount such as {rounded}")
    return rounded
