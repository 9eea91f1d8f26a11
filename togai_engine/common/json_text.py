"""Parsing JSON text fast without changing what it means.

orjson parses ~3x faster than the json module, but it differs on three inputs: an integer literal
beyond 64 bits becomes a float (12345678901234567890123 -> 1.2345678901234568e+22: digits lost),
and it refuses NaN/Infinity and lone surrogates, which the json module accepts. So: text holding a
run of 19 or more digits, and text orjson refuses, is parsed by the json module, and the result
is always exactly what `json.loads` gives (a property test holds the two to that). `loads_exact`
is the same for event files, where a number with a fraction must keep all its digits.

`loads_checked` is for a request's arguments (the MCP transports): a JSON number whose float is not the
number written (1e-400 underflows to 0.0, 1e400 overflows to inf, 10.000000000000000001 rounds to 10.0)
comes back as an `InexactNumber`, a float that keeps the text written, so the argument checks refuse it by
name instead of an amount or a quantity being silently changed. `may_hold_inexact_number` tells, cheaply,
whether a text can hold such a number at all (a number token with an exponent, or of 16 digits or more).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

# Every digit becomes "0" and every other byte ".", so a run of 19 digits is one substring search
# (a regex over the text costs 2-5 us per event line; this ~0.8 us). int64 holds every 18-digit integer.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
_LONG_RUN = b"0" * 19


# For loads_exact: digits and "." become "0", "e" and "E" become "e". A number whose digits and point fit
# in 15 characters has at most 15 significant digits, which a double holds exactly (its shortest repr
# gives them back), unless an exponent takes it out of the double's normal range (1e-400 would become
# 0.0): so a digit followed by an exponent mark also goes to the Decimal parser.
_NUMBER_CHARS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 or byte == 0x2E else 0x65 if byte in b"eE" else 0x2E
                               for byte in range(256))
_LONG_NUMBER = b"0" * 16
_EXPONENT = b"0e"


def _as_bytes(text: str | bytes | bytearray) -> bytes | bytearray:
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text


def has_long_digit_run(text: str | bytes) -> bool:
    return _LONG_RUN in _as_bytes(text).translate(_DIGITS_AS_ZEROS)


def loads(text: str | bytes) -> Any:
    """`json.loads(text)`, faster for the common case. Raises what json.loads raises."""
    if not has_long_digit_run(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def loads_exact(text: str | bytes) -> Any:
    """`json.loads(text, parse_float=Decimal)` in meaning, for quantities that must keep every digit:
    a number of up to 15 significant digits may come back as the float that holds it exactly (its
    repr is the number); text with a longer run of digits and points, or a number with an exponent, is
    parsed with Decimal."""
    shape = _as_bytes(text).translate(_NUMBER_CHARS_AS_ZEROS)
    if _LONG_NUMBER not in shape and _EXPONENT not in shape:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text, parse_float=Decimal)


class InexactNumber(float):
    """A JSON number that a float does not hold: the float it was read as, with `text`, the number as written."""

    text: str

    def __new__(cls, text: str) -> InexactNumber:
        number = super().__new__(cls, float(text))
        number.text = text
        return number

    def __repr__(self) -> str:
        return self.text

    def reason(self) -> str:
        """What reading it as a float would do to it."""
        value = float(self)
        if not math.isfinite(value):
            return f"it is beyond the range of a JSON number and would be read as {value}"
        if value == 0:
            return "it is too small for a JSON number and would be read as 0"
        return f"it has more digits than a JSON number keeps and would be read as {value!r}"


def inexact_number_message(number: InexactNumber) -> str:
    """The refusal of an InexactNumber argument, after the name of its field."""
    return (f"the JSON number {number.text} cannot be read exactly: {number.reason()}; send it as a decimal "
            f'string, "{number.text}"')


def _float_or_inexact(text: str) -> float:
    value = float(text)
    if math.isfinite(value) and _holds(value, text):
        return value
    return InexactNumber(text)


def _holds(value: float, text: str) -> bool:
    """Whether the finite float `value` is the number `text` written."""
    try:
        return Decimal(text) == Decimal(float.__repr__(value))
    except InvalidOperation:
        # an exponent beyond a Decimal's (±10**18; Decimal(text) refuses it): the number is 0, which the float (0.0)
        # holds, when its digits are all 0, and otherwise far beyond a float's range, which made it 0.0 or inf
        return not text.lower().split("e")[0].strip("-+0.")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_checked(text: str | bytes) -> Any:
    """`json.loads(text)`, but a number whose float is not the number written is an InexactNumber, and NaN or
    Infinity (not JSON) is refused. Raises what json.loads raises (ValueError, RecursionError)."""
    return json.loads(text, parse_float=_float_or_inexact, parse_constant=_refuse_constant)


# For may_hold_inexact_number: "-", "+" and whitespace are dropped, the characters a JSON number follows (":", ","
# and "[") become ":", and everything else "." but for: in _EXPONENT_SHAPE, digits and "." are dropped too and "e"
# and "E" become "e", so a number with an exponent (-1.5e+400) is ":e" and any other number leaves nothing; in
# _DIGITS_SHAPE digits and "." become "0", so a number of 16 digits or more is ":" and 16 "0"s. Either inside a
# string follows no ":" unless the string has one there ("a,1e5"): at worst a false True.
_EXPONENT_SHAPE = bytes(0x65 if byte in b"eE" else 0x3A if byte in b":,[" else 0x2E for byte in range(256))
_DIGITS_SHAPE = bytes(0x30 if 0x30 <= byte <= 0x39 or byte == 0x2E else 0x3A if byte in b":,[" else 0x2E
                      for byte in range(256))
_SIGNS_AND_SPACE = b"-+ \t\r\n"
_DROPPED = b"0123456789." + _SIGNS_AND_SPACE
_LONG_NUMBER_TOKEN = b":" + _LONG_NUMBER


def may_hold_inexact_number(text: str | bytes | bytearray) -> bool:
    """False when no number in the JSON `text` can read as a float other than itself: none has an exponent
    or 16 or more digits. True may be wrong (such a shape inside a string), never False."""
    data = b":" + _as_bytes(text)  # a number at the very start follows the ":" put there
    return (b":e" in data.translate(_EXPONENT_SHAPE, _DROPPED)
            or _LONG_NUMBER_TOKEN in data.translate(_DIGITS_SHAPE, _SIGNS_AND_SPACE))
