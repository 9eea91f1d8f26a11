"""Validation of one raw event (Togai's `Event` shape) into a ParsedEvent, or a Rejection.

Pure and hot: plain Python on plain dicts (no pydantic model per event), because batch ingest
validates 100k+ events per second. Every rejection carries a short code, the field path inside
the event, and a message that says how to fix it.

Values stay exact: attribute values are kept as canonical decimal strings (never floats), so the
meters' SQL reads them back as NUMERIC without loss.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from togai_engine.common.json_text import InexactNumber, inexact_number_message
from togai_engine.common.messages import json_kind, quote
from togai_engine.common.numbers import FLOAT_EXACT_DIGITS, exact_float_decimal
from togai_engine.common.validation import parse_instant
from togai_engine.errors import InvalidInput
from togai_engine.meters.models import MAX_SCHEMA_NAME_CHARS

MAX_BATCH_EVENTS = 1000
MAX_ID_CHARS = 512
MAX_ACCOUNT_ID_CHARS = 512
MAX_ATTRIBUTES = 10
MAX_ATTRIBUTE_NAME_CHARS = 50
MAX_UNIT_CHARS = 50
MAX_DIMENSIONS = 50
MAX_DIMENSION_NAME_CHARS = 50
MAX_DIMENSION_VALUE_CHARS = 200
MAX_INTEGER_DIGITS = 40
MAX_FRACTION_DIGITS = 30
_INTEGER_LIMIT = 10**MAX_INTEGER_DIGITS
_SMALLEST_PLACE = float(f"1e-{MAX_FRACTION_DIGITS}")  # a nonzero float below it has too many decimal places

EVENT_FIELDS = frozenset({"id", "schemaName", "timestamp", "accountId", "attributes", "dimensions"})
ATTRIBUTE_FIELDS = frozenset({"name", "value", "unit"})
_PLAIN_DECIMAL = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")  # ASCII digits only: SQL casts these
_INT_LIMIT = 10**MAX_INTEGER_DIGITS


class Code:
    """Rejection reason codes (stable: clients may switch on them)."""

    INVALID_EVENT = "INVALID_EVENT"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_ID = "INVALID_ID"
    INVALID_SCHEMA_NAME = "INVALID_SCHEMA_NAME"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    INVALID_ACCOUNT_ID = "INVALID_ACCOUNT_ID"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    ACCOUNT_ARCHIVED = "ACCOUNT_ARCHIVED"
    INVALID_ATTRIBUTE = "INVALID_ATTRIBUTE"
    TOO_MANY_ATTRIBUTES = "TOO_MANY_ATTRIBUTES"
    INVALID_VALUE = "INVALID_VALUE"
    INVALID_DIMENSION = "INVALID_DIMENSION"
    TOO_MANY_DIMENSIONS = "TOO_MANY_DIMENSIONS"
    NEGATIVE_VALUE = "NEGATIVE_VALUE"  # its value for a meter with negativeValues REJECT is below 0 (ingest.py)
    EVENT_IN_FUTURE = "EVENT_IN_FUTURE"  # dated after a sandbox's clock: it has not happened yet (ingest.py)


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str
    field: str
    message: str


@dataclass(slots=True)
class ParsedEvent:
    """A valid event before account resolution. `id` is None until derived (see derive_event_id)."""

    id: str | None
    schema_name: str
    event_time: datetime
    account_handle: str
    attributes: dict[str, str]  # name -> canonical decimal string
    units: dict[str, str] | None  # attribute name -> unit, None when no attribute has one
    dimensions: dict[str, str]


class _Reject(Exception):
    """Internal control flow of parse_event; never escapes this module."""

    def __init__(self, code: str, field: str, message: str) -> None:
        self.rejection = Rejection(code, field, message)


def _bad_text(value: str) -> str | None:
    """Why PostgreSQL could not store this text, or None when it can."""
    if "\x00" in value:
        return "contains the NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (lone surrogate)"
    return None


def _text(value: object, field: str, code: str, max_chars: int, what: str) -> str:
    if type(value) is not str:
        raise _Reject(code, field, f"must be a string ({what}), got {_describe(value)}")
    if not 1 <= len(value) <= max_chars:
        raise _Reject(code, field, f"must be 1-{max_chars} characters ({what}); got {len(value)}")
    problem = _bad_text(value)
    if problem:
        raise _Reject(code, field, f"{problem}; remove it")
    return value


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return f"the number {quote(value, 40)}"
    if isinstance(value, str):
        return f"the string {quote(value, 40)}"
    if isinstance(value, list):
        return "a list"
    return json_kind(value)


def parse_decimal(value: object, field: str = "value") -> str:
    """The exact canonical decimal string of an attribute value; raises _Reject otherwise.

    Accepts decimal strings ("12.5", "-3", "1e3"; not Python's "1_000") and JSON numbers (ints; floats by their shortest
    repr when it has at most 15 significant digits: a longer one may be a number the JSON parser
    rounded, so it must come as a string). NaN, Infinity and values beyond MAX_INTEGER_DIGITS / MAX_FRACTION_DIGITS are
    rejected, so SQL never sees a number it cannot store exactly.
    """
    kind = type(value)
    if kind is str:
        text = value.strip()  # type: ignore[union-attr]
        match = _PLAIN_DECIMAL.fullmatch(text)
        if match:
            integer, fraction = match.group(1), match.group(2)
            if len(integer) <= MAX_INTEGER_DIGITS and (fraction is None or len(fraction) <= MAX_FRACTION_DIGITS):
                return text
        return _decimal_slow(text, field, value)
    if kind is int:
        if -_INTEGER_LIMIT < value < _INTEGER_LIMIT:  # type: ignore[operator]
            return str(value)
        # (not str(value): past 4300 digits Python refuses to write an integer out)
        raise _Reject(Code.INVALID_VALUE, field, f"{quote(value, 20)} has more than {MAX_INTEGER_DIGITS} digits")
    if kind is InexactNumber:  # the transport read a JSON number its float does not hold (1e-400 would be 0)
        raise _Reject(Code.INVALID_VALUE, field, inexact_number_message(value))  # type: ignore[arg-type]
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise _Reject(Code.INVALID_VALUE, field, f"{value} is not a finite number; send a decimal such as \"12.5\"")
        if 0 < abs(value) < _SMALLEST_PLACE:  # type: ignore[arg-type]
            # past the decimal places allowed whatever its digits (1e-320, a subnormal float, is not even exact):
            # that is what to fix; sending it as a string, as the message below says, would be refused again
            raise _Reject(Code.INVALID_VALUE, field, _too_many_places(repr(value)))
        exact = exact_float_decimal(value)  # type: ignore[arg-type]
        if exact is None:
            raise _Reject(Code.INVALID_VALUE, field, f"the number {value!r} has more digits than a JSON number keeps "
                                                     f"exactly (at most {FLOAT_EXACT_DIGITS} significant digits); send "
                                                     "the value as a decimal string, e.g. \"0.1234567890123456789\"")
        return _bounded(exact, repr(value), field)
    if kind is Decimal:
        return _bounded(value, str(value), field)  # type: ignore[arg-type]
    raise _Reject(Code.INVALID_VALUE, field, f"must be a decimal number or decimal string such as \"12.5\", "
                                             f"got {_describe(value)}")


def _decimal_slow(text: str, field: str, original: object) -> str:
    try:
        # Decimal() also reads other digits and "_" separators ("1_5" is 15); a decimal has neither
        if not text.isascii() or "_" in text:
            raise InvalidOperation
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise _Reject(Code.INVALID_VALUE, field, f"{str(original)[:40]!r} is not a decimal number; "
                                                 "send digits with an optional '-' and '.', e.g. \"12.5\"") from None
    return _bounded(number, text, field)


def _bounded(number: Decimal, text: str, field: str) -> str:
    """The canonical text of a parsed value within the digit limits (`text`: how it was sent)."""
    if not number.is_finite():
        raise _Reject(Code.INVALID_VALUE, field, f"{text[:40]} is not a finite number (NaN and Infinity are not "
                                                 "usage); send a decimal such as \"12.5\"")
    if number.is_zero():
        return "0"
    if number.adjusted() >= MAX_INTEGER_DIGITS:
        raise _Reject(Code.INVALID_VALUE, field, f"{text[:40]} is too large: at most {MAX_INTEGER_DIGITS} digits "
                                                 "before the decimal point")
    if _fraction_digits(number) > MAX_FRACTION_DIGITS:
        raise _Reject(Code.INVALID_VALUE, field, _too_many_places(text))
    return _plain(number)


def _too_many_places(text: str) -> str:
    return f"{text[:40]} has more than {MAX_FRACTION_DIGITS} decimal places; round it or use a smaller unit"


def _fraction_digits(number: Decimal) -> int:
    """Decimal places of a finite number, ignoring trailing zeros (no context, so no rounding)."""
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing_zeros))


def _plain(number: Decimal) -> str:
    """Plain notation without trailing fractional zeros; exact (format never rounds here).
    Only called on numbers already bounded by the digit limits."""
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _parse_time(value: object) -> datetime:
    if type(value) is not str:
        raise _Reject(Code.INVALID_TIMESTAMP, "timestamp", f"must be an ISO 8601 string such as "
                                                           f"\"2026-01-31T12:00:00Z\", got {_describe(value)}")
    try:
        return parse_instant(value, "timestamp")
    except InvalidInput as exc:
        raise _Reject(Code.INVALID_TIMESTAMP, "timestamp", exc.reason) from None


def _fast_decimal(value: object) -> str | None:
    """The common case of parse_decimal (a short plain decimal string or a small int), else None."""
    if type(value) is str:
        body = value[1:] if value[:1] == "-" else value
        if body.isdigit():
            return value if body.isascii() and len(body) <= MAX_INTEGER_DIGITS else None
        integer, dot, fraction = body.partition(".")
        if (dot and integer.isdigit() and fraction.isdigit() and body.isascii()
                and len(integer) <= MAX_INTEGER_DIGITS and len(fraction) <= MAX_FRACTION_DIGITS):
            return value
        return None
    if type(value) is int and -_INT_LIMIT < value < _INT_LIMIT:  # type: ignore[operator]
        return str(value)
    return None


def _short_ascii(value: object, max_chars: int) -> bool:
    """The common case of a valid name: a short ASCII string without NUL (anything else takes
    the full check, which accepts other valid text and explains what is wrong)."""
    return type(value) is str and 0 < len(value) <= max_chars and value.isascii() and "\x00" not in value  # type: ignore[arg-type]


def _parse_attributes(raw: object) -> tuple[dict[str, str], dict[str, str] | None]:
    if raw is None:
        return {}, None
    if type(raw) is dict:
        return _parse_attribute_map(raw)  # type: ignore[arg-type]
    if type(raw) is not list:
        raise _Reject(Code.INVALID_ATTRIBUTE, "attributes", "must be a list of {name, value, unit} or an object "
                                                            f"{{name: value}}, got {_describe(raw)}")
    if len(raw) > MAX_ATTRIBUTES:  # type: ignore[arg-type]
        raise _Reject(Code.TOO_MANY_ATTRIBUTES, "attributes",
                      f"has {len(raw)} attributes; at most {MAX_ATTRIBUTES} per event")  # type: ignore[arg-type]
    attributes: dict[str, str] = {}
    units: dict[str, str] | None = None
    for index, item in enumerate(raw):  # type: ignore[arg-type]
        if type(item) is dict:
            # Fast path: exactly {name, value} or {name, value, unit}, all of the common shapes.
            size = len(item)
            name, value = item.get("name"), item.get("value")
            unit = item.get("unit") if size == 3 else None
            if (type(name) is str and value is not None and (size == 2 or unit is not None)
                    and 0 < len(name) <= MAX_ATTRIBUTE_NAME_CHARS and name.isascii() and "\x00" not in name
                    and name not in attributes and (unit is None or _short_ascii(unit, MAX_UNIT_CHARS))):
                text = _fast_decimal(value)
                if text is not None:
                    attributes[name] = text
                    if unit is not None:
                        if units is None:
                            units = {}
                        units[name] = unit
                    continue
        name, text, unit = _parse_attribute_item(item, f"attributes[{index}]", attributes)
        attributes[name] = text
        if unit is not None:
            if units is None:
                units = {}
            units[name] = unit
    return attributes, units


def _parse_attribute_map(raw: dict[str, object]) -> tuple[dict[str, str], None]:
    if len(raw) > MAX_ATTRIBUTES:
        raise _Reject(Code.TOO_MANY_ATTRIBUTES, "attributes",
                      f"has {len(raw)} attributes; at most {MAX_ATTRIBUTES} per event")
    attributes: dict[str, str] = {}
    for name, value in raw.items():
        # Fast path, as for the list form: a short ASCII name and a plain decimal value.
        if type(name) is str and 0 < len(name) <= MAX_ATTRIBUTE_NAME_CHARS and name.isascii() and "\x00" not in name:
            text = _fast_decimal(value)
            if text is not None:
                attributes[name] = text
                continue
        field = f"attributes.{name}"
        _text(name, field, Code.INVALID_ATTRIBUTE, MAX_ATTRIBUTE_NAME_CHARS, "the attribute name")
        attributes[name] = parse_decimal(value, field)
    return attributes, None


def _parse_attribute_item(item: object, field: str, seen: dict[str, str]) -> tuple[str, str, str | None]:
    """The full check of one {name, value, unit}, with a precise rejection."""
    if type(item) is not dict:
        raise _Reject(Code.INVALID_ATTRIBUTE, field, f"must be an object {{name, value, unit}}, got {_describe(item)}")
    if not item.keys() <= ATTRIBUTE_FIELDS:  # type: ignore[attr-defined]
        extra = sorted(set(item) - ATTRIBUTE_FIELDS)[0]  # type: ignore[call-overload]
        raise _Reject(Code.INVALID_ATTRIBUTE, f"{field}.{extra}", "is not an attribute field; use name, value, unit")
    if item.get("name") is None:  # type: ignore[attr-defined]
        raise _Reject(Code.MISSING_FIELD, f"{field}.name", "is required")
    name = _text(item["name"], f"{field}.name", Code.INVALID_ATTRIBUTE, MAX_ATTRIBUTE_NAME_CHARS,  # type: ignore[index]
                 "the attribute name")
    if name in seen:
        raise _Reject(Code.INVALID_ATTRIBUTE, f"{field}.name", f"{name!r} is given twice; send each attribute once")
    if item.get("value") is None:  # type: ignore[attr-defined]
        raise _Reject(Code.MISSING_FIELD, f"{field}.value", "is required (a decimal string such as \"12.5\")")
    text = parse_decimal(item["value"], f"{field}.value")  # type: ignore[index]
    unit = item.get("unit")  # type: ignore[attr-defined]
    if unit is not None:
        unit = _text(unit, f"{field}.unit", Code.INVALID_ATTRIBUTE, MAX_UNIT_CHARS, "the unit")
    return name, text, unit


def _parse_dimensions(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if type(raw) is not dict:
        raise _Reject(Code.INVALID_DIMENSION, "dimensions", f"must be an object {{name: \"text\"}}, got {_describe(raw)}")
    if len(raw) > MAX_DIMENSIONS:  # type: ignore[arg-type]
        raise _Reject(Code.TOO_MANY_DIMENSIONS, "dimensions",
                      f"has {len(raw)} dimensions; at most {MAX_DIMENSIONS} per event")  # type: ignore[arg-type]
    for name, value in raw.items():  # type: ignore[attr-defined]
        if (type(name) is str and type(value) is str and 0 < len(name) <= MAX_DIMENSION_NAME_CHARS
                and 0 < len(value) <= MAX_DIMENSION_VALUE_CHARS and name.isascii() and value.isascii()
                and "\x00" not in name and "\x00" not in value):
            continue  # the common case; anything else gets the full check below
        field = f"dimensions.{name}"
        _text(name, field, Code.INVALID_DIMENSION, MAX_DIMENSION_NAME_CHARS, "the dimension name")
        if type(value) is not str:
            number = isinstance(value, float) or (type(value) is int and abs(value) < 10**40)  # short enough to show
            hint = f'; send it as text: "{value}"' if number else ""
            raise _Reject(Code.INVALID_DIMENSION, field, f"must be a string, got {_describe(value)}{hint}")
        _text(value, field, Code.INVALID_DIMENSION, MAX_DIMENSION_VALUE_CHARS, "the dimension value")
    return raw  # type: ignore[return-value]


def _unknown_field(raw: dict[str, Any]) -> Rejection:
    extra = sorted(str(k) for k in raw if k not in EVENT_FIELDS)[0]
    near = next((f for f in EVENT_FIELDS if f.lower() == extra.lower()), None)
    hint = f"; did you mean {near!r}?" if near else f"; an event has {', '.join(sorted(EVENT_FIELDS))}"
    return Rejection(Code.UNKNOWN_FIELD, extra, f"is not an event field{hint}")


def parse_event(raw: object) -> ParsedEvent | Rejection:
    """Validates one event as sent; the account and a missing id are resolved by the caller."""
    if type(raw) is not dict:
        return Rejection(Code.INVALID_EVENT, "", f"an event must be an object, got {_describe(raw)}")
    if not raw.keys() <= EVENT_FIELDS:
        return _unknown_field(raw)
    get = raw.get
    schema_name, account, event_id = get("schemaName"), get("accountId"), get("id")
    try:
        if not _short_ascii(schema_name, MAX_SCHEMA_NAME_CHARS):
            if schema_name is None:
                raise _Reject(Code.MISSING_FIELD, "schemaName", "is required: the event type, e.g. \"api_call\"")
            _text(schema_name, "schemaName", Code.INVALID_SCHEMA_NAME, MAX_SCHEMA_NAME_CHARS, "the event type")
        timestamp = get("timestamp")
        if timestamp is None:
            raise _Reject(Code.MISSING_FIELD, "timestamp", "is required: when the usage happened, ISO 8601")
        event_time = _parse_time(timestamp)
        if not _short_ascii(account, MAX_ACCOUNT_ID_CHARS):
            if account is None:
                raise _Reject(Code.MISSING_FIELD, "accountId", "is required: the account id or one of its aliases")
            _text(account, "accountId", Code.INVALID_ACCOUNT_ID, MAX_ACCOUNT_ID_CHARS, "an account id or alias")
        if event_id is not None and not _short_ascii(event_id, MAX_ID_CHARS):
            _text(event_id, "id", Code.INVALID_ID, MAX_ID_CHARS, "the idempotency key")
        attributes, units = _parse_attributes(get("attributes"))
        dimensions = _parse_dimensions(get("dimensions"))
    except _Reject as reject:
        return reject.rejection
    return ParsedEvent(event_id, schema_name, event_time, account, attributes, units, dimensions)  # type: ignore[arg-type]


def canonical_decimal(text: str) -> str:
    """One spelling per value ("1.50" and "1.5" -> "1.5"), for derived ids."""
    number = Decimal(text)
    return "0" if number.is_zero() else _plain(number)


def derive_event_id(event: ParsedEvent, account_id: str) -> str:
    """`evt_` + sha256 of the canonical JSON of the event's content: an identical retry without an
    id derives the same id and is a DUPLICATE."""
    content = {
        "accountId": account_id,
        "schemaName": event.schema_name,
        "timestamp": event.event_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "attributes": {name: canonical_decimal(value) for name, value in event.attributes.items()},
        "dimensions": event.dimensions,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "evt_" + hashlib.sha256(canonical.encode()).hexdigest()
