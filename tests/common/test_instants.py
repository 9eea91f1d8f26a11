"""parse_instant: every form of an instant a tool takes reads as the same UTC instant, or is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from togai_engine.common.validation import EARLIEST_INSTANT, LATEST_INSTANT, parse_instant
from togai_engine.errors import InvalidInput

_ZONES = st.one_of(st.just(UTC), st.none(), st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))))


def _expected(value: datetime) -> datetime | None:
    """The instant in UTC by the definition (no offset: UTC), or None outside the range billing computes with."""
    moment = value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
    return moment if EARLIEST_INSTANT <= moment <= LATEST_INSTANT else None


# around both ends of the range as well as inside it
@given(st.one_of(st.datetimes(datetime(1999, 12, 30), datetime(2000, 1, 2), timezones=_ZONES),
                 st.datetimes(datetime(8999, 12, 30), datetime(9000, 1, 2), timezones=_ZONES),
                 st.datetimes(datetime(2000, 1, 1), datetime(8999, 12, 31), timezones=_ZONES)))
def test_a_datetime_and_its_iso_text_read_as_the_same_utc_instant(value: datetime):
    expected = _expected(value)
    for sent in (value, value.isoformat(), value.isoformat().replace("+00:00", "Z")):
        if expected is None:
            with pytest.raises(InvalidInput):
                parse_instant(sent, "at")
        else:
            parsed = parse_instant(sent, "at")
            assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize(("sent", "advice"), [
    ("2016-12-31T23:59:60Z", "leap second"), ("2016-12-31T23:59:60.5+00:00", "leap second"),
    ("2026-03-01T24:00:00Z", "2026-03-02T00:00:00"), ("2026-02-28T24:00Z", "2026-03-01T00:00:00")])
def test_a_leap_second_or_hour_24_is_refused_with_the_instant_to_send(sent: str, advice: str):
    """Both are valid ISO 8601 text that Python's parser refuses: the refusal says what to send instead."""
    with pytest.raises(InvalidInput) as refused:
        parse_instant(sent, "timestamp")
    assert refused.value.field == "timestamp" and advice in str(refused.value)
