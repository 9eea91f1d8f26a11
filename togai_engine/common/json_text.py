"""Parsing JSON text fast without changing what it means.

orjson parses ~3x faster than the json module, but it differs on three inputs: an integer literal
beyond 64 bits becomes a float (12345678901234567890123 -> 1.2345678901234568e+22: digits lost),
and it refuses NaN/Infinity and lone surrogates, which the json module accepts. So: text holding a
run of 19 or more digits, and text orjson refuses, is parsed by the json module, and the result
is always exactly what `json.loads` gives (a property test holds the two to that).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Every digit becomes "0" and every other byte ".", so a run of 19 digits is one substring search
# (a regex over the text costs 2-5 us per event line; this ~0.8 us). int64 holds every 18-digit integer.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
_LONG_RUN = b"0" * 19


def has_long_digit_run(text: str | bytes) -> bool:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _LONG_RUN in data.translate(_DIGITS_AS_ZEROS)


def loads(text: str | bytes) -> Any:
    """`json.loads(text)`, faster for the common case. Raises what json.loads raises."""
    if not has_long_digit_run(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
