"""parse_event / parse_decimal / derive_event_id: the pure validation core of ingestion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from togai_engine.events.validation import (
    Code,
    ParsedEvent,
    Rejection,
    derive_event_id,
    parse_decimal,
    parse_event,
)


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "e1", "schemaName": "api_call", "timestamp": "2026-01-05T10:00:00Z", "accountId": "acc_1",
        "attributes": [{"name": "tokens", "value": "12.5", "unit": "Tokens"}], "dimensions": {"region": "eu"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def rejection(raw: object) -> Rejection:
    result = parse_event(raw)
    assert isinstance(result, Rejection), result
    return result


def test_a_valid_event_is_parsed_exactly():
    parsed = parse_event(event())
    assert isinstance(parsed, ParsedEvent)
    assert parsed.attributes == {"tokens": "12.5"}
    assert parsed.units == {"tokens": "Tokens"}
    assert parsed.dimensions == {"region": "eu"}
    assert parsed.event_time == datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_attributes_may_be_a_name_value_map_and_timestamps_without_offset_are_utc():
    parsed = parse_event(event(attributes={"tokens": 3, "ms": "0.25"}, timestamp="2026-01-05T10:00:00.123"))
    assert isinstance(parsed, ParsedEvent)
    assert parsed.attributes == {"tokens": "3", "ms": "0.25"}
    assert parsed.event_time == datetime(2026, 1, 5, 10, 0, 0, 123000, tzinfo=UTC)
    # an offset is converted to UTC: 12:00+02:00 is 10:00Z
    other = parse_event(event(timestamp="2026-01-05T12:00:00+02:00"))
    assert isinstance(other, ParsedEvent) and other.event_time == datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_attributes_and_dimensions_are_optional():
    parsed = parse_event(event(attributes=..., dimensions=...))
    assert isinstance(parsed, ParsedEvent)
    assert parsed.attributes == {} and parsed.dimensions == {} and parsed.units is None


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ("not an event", Code.INVALID_EVENT, ""),
        (event(accountID="acc_1"), Code.UNKNOWN_FIELD, "accountID"),
        (event(schemaName=...), Code.MISSING_FIELD, "schemaName"),
        (event(timestamp=...), Code.MISSING_FIELD, "timestamp"),
        (event(accountId=...), Code.MISSING_FIELD, "accountId"),
        (event(id=""), Code.INVALID_ID, "id"),
        (event(id="x" * 513), Code.INVALID_ID, "id"),
        (event(id=17), Code.INVALID_ID, "id"),
        (event(schemaName=""), Code.INVALID_SCHEMA_NAME, "schemaName"),
        (event(schemaName="s" * 51), Code.INVALID_SCHEMA_NAME, "schemaName"),
        (event(schemaName="nul\x00"), Code.INVALID_SCHEMA_NAME, "schemaName"),
        (event(timestamp="yesterday"), Code.INVALID_TIMESTAMP, "timestamp"),
        (event(timestamp=1767225600), Code.INVALID_TIMESTAMP, "timestamp"),
        (event(timestamp="2026-02-30T00:00:00Z"), Code.INVALID_TIMESTAMP, "timestamp"),
        (event(accountId=""), Code.INVALID_ACCOUNT_ID, "accountId"),
        (event(accountId=5), Code.INVALID_ACCOUNT_ID, "accountId"),
        (event(attributes="tokens=5"), Code.INVALID_ATTRIBUTE, "attributes"),
        (event(attributes=[{"name": "a", "value": "1", "colour": "red"}]), Code.INVALID_ATTRIBUTE,
         "attributes[0].colour"),
        (event(attributes=[{"value": "1"}]), Code.MISSING_FIELD, "attributes[0].name"),
        (event(attributes=[{"name": "a"}]), Code.MISSING_FIELD, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]), Code.INVALID_ATTRIBUTE,
         "attributes[1].name"),
        (event(attributes=[{"name": "n" * 51, "value": "1"}]), Code.INVALID_ATTRIBUTE, "attributes[0].name"),
        (event(attributes=[{"name": "a", "value": "1", "unit": ""}]), Code.INVALID_ATTRIBUTE, "attributes[0].unit"),
        (event(attributes=[{"name": f"a{i}", "value": "1"} for i in range(11)]), Code.TOO_MANY_ATTRIBUTES,
         "attributes"),
        (event(attributes={f"a{i}": 1 for i in range(11)}), Code.TOO_MANY_ATTRIBUTES, "attributes"),
        (event(attributes=[{"name": "a", "value": "NaN"}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": float("nan")}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": float("inf")}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": 0.1 + 0.2}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes={"a": 1 / 3}), Code.INVALID_VALUE, "attributes.a"),
        (event(attributes=[{"name": "a", "value": "-Infinity"}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": "1e999999999"}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": "9" * 41}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": "0." + "1" * 31}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": "twelve"}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": True}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes=[{"name": "a", "value": "٣"}]), Code.INVALID_VALUE, "attributes[0].value"),
        (event(attributes={"a": "1", "b": "x"}), Code.INVALID_VALUE, "attributes.b"),
        (event(dimensions=["eu"]), Code.INVALID_DIMENSION, "dimensions"),
        (event(dimensions={"region": 5}), Code.INVALID_DIMENSION, "dimensions.region"),
        (event(dimensions={"region": ""}), Code.INVALID_DIMENSION, "dimensions.region"),
        (event(dimensions={"region": "x" * 201}), Code.INVALID_DIMENSION, "dimensions.region"),
        (event(dimensions={"bad\ud800": "x"}), Code.INVALID_DIMENSION, "dimensions.bad\ud800"),
        (event(dimensions={f"d{i}": "x" for i in range(51)}), Code.TOO_MANY_DIMENSIONS, "dimensions"),
    ],
)
def test_every_rejection_has_a_code_a_field_and_a_message(raw, code, field):
    rejected = rejection(raw)
    assert (rejected.code, rejected.field) == (code, field)
    assert len(rejected.message) > 10


def test_unknown_field_suggests_the_right_spelling():
    assert "did you mean 'accountId'" in rejection(event(accountID="a")).message


def test_a_numeric_dimension_value_says_to_send_text():
    assert 'send it as text: "5"' in rejection(event(dimensions={"region": 5})).message


@pytest.mark.parametrize("value", [1e-320, -5e-324, 1.2345678901234567e-31])
def test_a_float_past_30_decimal_places_is_refused_for_its_places_not_its_digits(value):
    # 1e-320 has one significant digit but 320 decimal places (1.2345678901234567e-31: 47): the fix is to round
    # it or use a smaller unit; sending it as a string, as the message about a float's digits said, is refused too
    rejected = rejection(event(attributes={"tokens": value}))
    assert (rejected.code, rejected.field) == (Code.INVALID_VALUE, "attributes.tokens")
    assert rejected.message == f"{value!r} has more than 30 decimal places; round it or use a smaller unit"
    assert rejection(event(attributes={"tokens": repr(value)})).message == rejected.message


@pytest.mark.parametrize("value", ["1_5", "1_000", "0.1_5", "1e1_0", "_1", "1_"])
def test_an_underscore_is_not_a_digit_separator(value):
    # Python's Decimal reads "1_5" as 15 and "_1" as 1; no JSON number or SQL decimal has underscores, so the
    # value is refused, naming the field, instead of a mistyped 1.5 being metered as 15
    rejected = rejection(event(attributes={"tokens": value}))
    assert (rejected.code, rejected.field) == (Code.INVALID_VALUE, "attributes.tokens")
    assert rejected.message == (f"{value!r} is not a decimal number; send digits with an optional '-' and '.', "
                                'e.g. "12.5"')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.5", "12.5"), ("-3", "-3"), ("007", "007"), (" 4.20 ", "4.20"), (42, "42"),
        (0.1, "0.1"),  # a float is taken by its shortest repr, never its binary expansion
        (1e-7, "0.0000001"), (1e22, "10000000000000000000000"), (123456789.012345, "123456789.012345"),
        ("1e3", "1000"), ("2.50E+2", "250"), (Decimal("1.10"), "1.1"), ("-0", "-0"),
        ("1" * 40, "1" * 40), ("0." + "1" * 30, "0." + "1" * 30),
    ],
)
def test_values_are_kept_as_exact_decimal_strings(value, expected):
    text = parse_decimal(value)
    assert text == expected
    assert Decimal(text) == Decimal(expected)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20))
def test_any_finite_decimal_round_trips_exactly(value):
    assert Decimal(parse_decimal(str(value))) == value


def parsed(raw: dict[str, object]) -> ParsedEvent:
    result = parse_event(raw)
    assert isinstance(result, ParsedEvent)
    return result


def test_derived_ids_depend_on_content_only():
    first = derive_event_id(parsed(event(id=...)), "acc_1")
    assert first.startswith("evt_") and len(first) == 4 + 64
    # same content spelled differently: another offset for the same instant, 12.50 for 12.5, other key order
    same = parsed(event(id=..., timestamp="2026-01-05T11:00:00+01:00", dimensions={"region": "eu"},
                        attributes={"tokens": "12.50"}))
    assert derive_event_id(same, "acc_1") == first
    assert derive_event_id(parsed(event(id=...)), "acc_2") != first
    assert derive_event_id(parsed(event(id=..., dimensions={"region": "us"})), "acc_1") != first
    later = parsed(event(id=...))
    later.event_time += timedelta(microseconds=1)
    assert derive_event_id(later, "acc_1") != first


def test_naive_and_utc_timestamps_are_the_same_instant():
    naive = parsed(event(timestamp="2026-01-05T10:00:00"))
    aware = parsed(event(timestamp="2026-01-05T05:00:00-05:00"))
    assert naive.event_time == aware.event_time
    assert aware.event_time.tzinfo in (UTC, UTC)
