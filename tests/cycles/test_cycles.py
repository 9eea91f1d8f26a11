"""Hand-worked billing-cycle tables: every interval, clamping, anniversaries, clipping, validation.

Calendar facts used below: 2028 and 2032 are leap years, 2025/2027/2029-2031 are not.
Weekdays: 2024-12-30 Mon, 2025-01-01 Wed, 2025-03-06 Thu, 2025-03-09 Sun, 2025-03-10 Mon,
2025-03-12 Wed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from togai_engine.cycles import (
    Cycle,
    CycleConfig,
    clip,
    cycle_containing,
    cycle_fraction,
    cycles_between,
    grace_end,
    next_cycle,
    resolve_offsets,
    run_starts,
    schedule_periods,
)
from togai_engine.errors import InvalidInput

ANY_ANCHOR = datetime(2020, 6, 17, 9, 30, tzinfo=UTC)  # ignored by non-anniversary schedules


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0):
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def cfg(interval: str, day: Any = None, month: Any = None, **extra: Any) -> CycleConfig:
    offsets = {k: v for k, v in (("dayOffset", day), ("monthOffset", month)) if v is not None}
    raw: dict[str, Any] = {"interval": interval, **extra}
    if offsets:
        raw["startOffset"] = offsets
    return CycleConfig.parse(raw)


def span(start: datetime, end: datetime) -> Cycle:
    return Cycle(start, end)


# --- cycle_containing: fixed offsets, one table per interval -------------------------------------

MONTHLY_TABLE = [
    # dayOffset 1: plain calendar months.
    ("1", at(2025, 3, 15, 12), span(at(2025, 3, 1), at(2025, 4, 1))),
    # dayOffset 15: 10 Mar is before the 15th, so the cycle began 15 Feb.
    ("15", at(2025, 3, 10), span(at(2025, 2, 15), at(2025, 3, 15))),
    # Exactly on the boundary: belongs to the cycle that starts there.
    ("15", at(2025, 3, 15), span(at(2025, 3, 15), at(2025, 4, 15))),
    # One microsecond before the boundary: still the previous cycle.
    ("15", at(2025, 3, 14, 23, 59, 59, 999_999), span(at(2025, 2, 15), at(2025, 3, 15))),
    # Across the year end.
    ("15", at(2025, 12, 20), span(at(2025, 12, 15), at(2026, 1, 15))),
    ("15", at(2026, 1, 5), span(at(2025, 12, 15), at(2026, 1, 15))),
    # dayOffset 31 in leap 2028: Feb has no 31st, so the cycle starts 29 Feb; March has a 31st again.
    ("31", at(2028, 2, 10), span(at(2028, 1, 31), at(2028, 2, 29))),
    ("31", at(2028, 2, 28, 23), span(at(2028, 1, 31), at(2028, 2, 29))),
    ("31", at(2028, 2, 29), span(at(2028, 2, 29), at(2028, 3, 31))),
    # dayOffset 31 in common 2027: Feb's last day is the 28th.
    ("31", at(2027, 2, 27), span(at(2027, 1, 31), at(2027, 2, 28))),
    ("31", at(2027, 2, 28), span(at(2027, 2, 28), at(2027, 3, 31))),
    # dayOffset 31 and April (30 days): 30 Apr, then back to 31 May.
    ("31", at(2025, 4, 29), span(at(2025, 3, 31), at(2025, 4, 30))),
    ("31", at(2025, 4, 30), span(at(2025, 4, 30), at(2025, 5, 31))),
    # LAST is the month's last day: same as 31.
    ("LAST", at(2028, 2, 29, 8), span(at(2028, 2, 29), at(2028, 3, 31))),
    ("LAST", at(2025, 6, 15), span(at(2025, 5, 31), at(2025, 6, 30))),
    # dayOffset 30: 30 Jan -> 28 Feb (clamped) -> 30 Mar (un-clamped) in 2027 ...
    ("30", at(2027, 2, 1), span(at(2027, 1, 30), at(2027, 2, 28))),
    ("30", at(2027, 3, 1), span(at(2027, 2, 28), at(2027, 3, 30))),
    # ... and 29 Feb in leap 2028.
    ("30", at(2028, 3, 1), span(at(2028, 2, 29), at(2028, 3, 30))),
    # dayOffset 29: only clamped in common years.
    ("29", at(2027, 3, 1), span(at(2027, 2, 28), at(2027, 3, 29))),
    ("29", at(2028, 3, 1), span(at(2028, 2, 29), at(2028, 3, 29))),
]


@pytest.mark.parametrize(("day", "instant", "expected"), MONTHLY_TABLE)
def test_monthly_cycles(day: str, instant: datetime, expected: Cycle) -> None:
    assert cycle_containing(cfg("MONTHLY", day), ANY_ANCHOR, instant) == expected


WEEKLY_TABLE = [
    # Wed 12 Mar 2025 with Monday starts: Mon 10 Mar .. Mon 17 Mar.
    ("1", at(2025, 3, 12, 10), span(at(2025, 3, 10), at(2025, 3, 17))),
    # Wednesday starts and a Wednesday midnight instant: the cycle starting that instant.
    ("3", at(2025, 3, 12), span(at(2025, 3, 12), at(2025, 3, 19))),
    # Wednesday starts, Tuesday evening: previous Wednesday (5 Mar).
    ("3", at(2025, 3, 11, 23), span(at(2025, 3, 5), at(2025, 3, 12))),
    # Thursday starts, a Wednesday: Thu 6 Mar .. Thu 13 Mar.
    ("4", at(2025, 3, 12), span(at(2025, 3, 6), at(2025, 3, 13))),
    # Sunday starts (7), a Wednesday: Sun 9 Mar .. Sun 16 Mar.
    ("7", at(2025, 3, 12), span(at(2025, 3, 9), at(2025, 3, 16))),
    # Across the year: Wed 1 Jan 2025 with Monday starts -> Mon 30 Dec 2024.
    ("1", at(2025, 1, 1), span(at(2024, 12, 30), at(2025, 1, 6))),
]


@pytest.mark.parametrize(("day", "instant", "expected"), WEEKLY_TABLE)
def test_weekly_cycles(day: str, instant: datetime, expected: Cycle) -> None:
    assert cycle_containing(cfg("WEEKLY", day, "NIL"), ANY_ANCHOR, instant) == expected


QUARTERLY_TABLE = [
    # monthOffset 1, day 1: calendar quarters.
    ("1", "1", at(2025, 5, 20), span(at(2025, 4, 1), at(2025, 7, 1))),
    # monthOffset 2 day 15: starts 15 Feb, 15 May, 15 Aug, 15 Nov.
    ("2", "15", at(2025, 1, 10), span(at(2024, 11, 15), at(2025, 2, 15))),
    ("2", "15", at(2025, 2, 15), span(at(2025, 2, 15), at(2025, 5, 15))),
    ("2", "15", at(2025, 5, 14, 23), span(at(2025, 2, 15), at(2025, 5, 15))),
    ("2", "15", at(2025, 9, 1), span(at(2025, 8, 15), at(2025, 11, 15))),
    # monthOffset LAST (= 3rd month: Mar, Jun, Sep, Dec), day 31: Jun and Sep clamp to the 30th.
    ("LAST", "31", at(2025, 7, 1), span(at(2025, 6, 30), at(2025, 9, 30))),
    ("LAST", "31", at(2025, 12, 31), span(at(2025, 12, 31), at(2026, 3, 31))),
    # monthOffset 2, LAST day: 29 Feb 2028 -> 31 May 2028.
    ("2", "LAST", at(2028, 3, 1), span(at(2028, 2, 29), at(2028, 5, 31))),
    # FIRST is month 1.
    ("FIRST", "10", at(2025, 1, 9), span(at(2024, 10, 10), at(2025, 1, 10))),
]


@pytest.mark.parametrize(("month", "day", "instant", "expected"), QUARTERLY_TABLE)
def test_quarterly_cycles(month: str, day: str, instant: datetime, expected: Cycle) -> None:
    assert cycle_containing(cfg("QUARTERLY", day, month), ANY_ANCHOR, instant) == expected


HALF_YEARLY_TABLE = [
    # monthOffset 1 day 1: Jan-Jun and Jul-Dec.
    ("1", "1", at(2025, 8, 1), span(at(2025, 7, 1), at(2026, 1, 1))),
    # monthOffset 4 (Apr / Oct), day 10: 1 Jan 2025 is in the cycle that began 10 Oct 2024.
    ("4", "10", at(2025, 1, 1), span(at(2024, 10, 10), at(2025, 4, 10))),
    # monthOffset 6 (Jun / Dec), day 31: 30 Jun (clamped) and 31 Dec.
    ("6", "31", at(2025, 7, 15), span(at(2025, 6, 30), at(2025, 12, 31))),
    ("6", "31", at(2025, 12, 31), span(at(2025, 12, 31), at(2026, 6, 30))),
    # monthOffset LAST is 6.
    ("LAST", "1", at(2025, 3, 1), span(at(2024, 12, 1), at(2025, 6, 1))),
    # monthOffset 2 (Feb / Aug), day 30: 28 Feb 2027 (clamped) then 30 Aug.
    ("2", "30", at(2027, 3, 1), span(at(2027, 2, 28), at(2027, 8, 30))),
]


@pytest.mark.parametrize(("month", "day", "instant", "expected"), HALF_YEARLY_TABLE)
def test_half_yearly_cycles(month: str, day: str, instant: datetime, expected: Cycle) -> None:
    assert cycle_containing(cfg("HALF_YEARLY", day, month), ANY_ANCHOR, instant) == expected


ANNUAL_TABLE = [
    ("1", "1", at(2025, 12, 31, 23), span(at(2025, 1, 1), at(2026, 1, 1))),
    # monthOffset 7 = July: March 2025 is in the year that began 1 Jul 2024.
    ("7", "1", at(2025, 3, 1), span(at(2024, 7, 1), at(2025, 7, 1))),
    # 29 Feb: 28 Feb in 2027, 29 Feb in 2028, 28 Feb again in 2029.
    ("2", "29", at(2027, 6, 1), span(at(2027, 2, 28), at(2028, 2, 29))),
    ("2", "29", at(2028, 2, 29), span(at(2028, 2, 29), at(2029, 2, 28))),
    # FIRST month, LAST day: 31 Jan every year.
    ("FIRST", "LAST", at(2025, 1, 30), span(at(2024, 1, 31), at(2025, 1, 31))),
    # LAST month = December.
    ("LAST", "25", at(2025, 12, 25), span(at(2025, 12, 25), at(2026, 12, 25))),
]


@pytest.mark.parametrize(("month", "day", "instant", "expected"), ANNUAL_TABLE)
def test_annual_cycles(month: str, day: str, instant: datetime, expected: Cycle) -> None:
    assert cycle_containing(cfg("ANNUALLY", day, month), ANY_ANCHOR, instant) == expected


def test_monthly_31_walks_through_a_leap_year() -> None:
    config = cfg("MONTHLY", "31")
    starts = [c.start for c in cycles_between(config, ANY_ANCHOR, at(2028, 1, 31), at(2028, 6, 1))]
    # 31 Jan, 29 Feb (no 30/31 Feb), 31 Mar, 30 Apr, 31 May.
    assert starts == [at(2028, 1, 31), at(2028, 2, 29), at(2028, 3, 31), at(2028, 4, 30), at(2028, 5, 31)]


def test_monthly_30_clamps_in_february_and_springs_back() -> None:
    config = cfg("MONTHLY", "30")
    starts = [c.start for c in cycles_between(config, ANY_ANCHOR, at(2027, 1, 30), at(2027, 4, 1))]
    assert starts == [at(2027, 1, 30), at(2027, 2, 28), at(2027, 3, 30)]


def test_non_utc_instants_are_read_in_utc() -> None:
    # 02:00 on 1 Mar at +05:00 is 21:00 on 28 Feb UTC, still February's cycle.
    instant = datetime(2025, 3, 1, 2, tzinfo=timezone(timedelta(hours=5)))
    cycle = cycle_containing(cfg("MONTHLY", "1"), ANY_ANCHOR, instant)
    assert cycle == span(at(2025, 2, 1), at(2025, 3, 1))
    assert cycle.start.tzinfo is UTC


def test_non_anniversary_schedule_ignores_the_anchor() -> None:
    config = cfg("QUARTERLY", "15", "2")
    instant = at(2025, 6, 1)
    assert cycle_containing(config, at(2001, 1, 1), instant) == cycle_containing(
        config, at(2090, 9, 9), instant
    )


# --- anniversary cycles ------------------------------------------------------------------------------


def anniversary(interval: str) -> CycleConfig:
    return CycleConfig.parse({"interval": interval, "anniversaryCycle": True})


def test_anniversary_monthly_on_the_31st_is_last_day() -> None:
    anchor = at(2025, 10, 31, 14, 5)
    config = anniversary("MONTHLY")
    assert resolve_offsets(config, anchor).to_dict()["startOffset"] == {
        "dayOffset": "LAST",
        "monthOffset": "NIL",
    }
    starts = [c.start for c in cycles_between(config, anchor, anchor, at(2026, 3, 1))]
    # 31 Oct, 30 Nov, 31 Dec, 31 Jan, 28 Feb 2026: cycles start at midnight of the anchor day.
    assert starts == [at(2025, 10, 31), at(2025, 11, 30), at(2025, 12, 31), at(2026, 1, 31), at(2026, 2, 28)]


def test_anniversary_monthly_on_the_12th() -> None:
    anchor = at(2025, 10, 12, 15)
    config = anniversary("MONTHLY")
    assert resolve_offsets(config, anchor).day_offset == "12"
    assert cycle_containing(config, anchor, anchor) == span(at(2025, 10, 12), at(2025, 11, 12))
    # Instants before the association still land on the same grid: 1 Sep -> [12 Aug, 12 Sep).
    assert cycle_containing(config, anchor, at(2025, 9, 1)) == span(at(2025, 8, 12), at(2025, 9, 12))


def test_anniversary_monthly_on_30_january_springs_back_after_february() -> None:
    anchor = at(2027, 1, 30)
    starts = [c.start for c in cycles_between(anniversary("MONTHLY"), anchor, anchor, at(2027, 4, 1))]
    assert starts == [at(2027, 1, 30), at(2027, 2, 28), at(2027, 3, 30)]


def test_anniversary_annual_on_29_february() -> None:
    anchor = at(2028, 2, 29, 10)
    config = anniversary("ANNUALLY")
    assert resolve_offsets(config, anchor).to_dict()["startOffset"] == {"dayOffset": "29", "monthOffset": "2"}
    starts = [c.start for c in cycles_between(config, anchor, anchor, at(2032, 3, 1))]
    # 29 Feb 2028, then 28 Feb in 2029-2031, then 29 Feb 2032 again.
    assert starts == [at(2028, 2, 29), at(2029, 2, 28), at(2030, 2, 28), at(2031, 2, 28), at(2032, 2, 29)]


def test_anniversary_weekly_uses_the_weekday() -> None:
    anchor = at(2025, 3, 12, 18)  # a Wednesday
    config = anniversary("WEEKLY")
    assert resolve_offsets(config, anchor).day_offset == "3"
    assert cycle_containing(config, anchor, at(2025, 3, 20)) == span(at(2025, 3, 19), at(2025, 3, 26))


def test_anniversary_quarterly_uses_month_position_in_quarter() -> None:
    anchor = at(2025, 11, 15)  # Nov is the 2nd month of Oct-Dec
    config = anniversary("QUARTERLY")
    assert resolve_offsets(config, anchor).month_offset == "2"
    # Starts 15 Feb, 15 May, 15 Aug, 15 Nov.
    assert cycle_containing(config, anchor, at(2026, 3, 1)) == span(at(2026, 2, 15), at(2026, 5, 15))


def test_anniversary_half_yearly_uses_month_position_in_half() -> None:
    anchor = at(2025, 9, 30)  # Sep is the 3rd month of Jul-Dec: starts 30 Mar and 30 Sep
    config = anniversary("HALF_YEARLY")
    assert resolve_offsets(config, anchor).month_offset == "3"
    assert cycle_containing(config, anchor, at(2026, 1, 1)) == span(at(2025, 9, 30), at(2026, 3, 30))


def test_anniversary_anchor_day_is_taken_in_utc() -> None:
    # 01:00 on 12 Oct at +05:30 is 19:30 on 11 Oct UTC, so the cycles start on the 11th.
    anchor = datetime(2025, 10, 12, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert resolve_offsets(anniversary("MONTHLY"), anchor).day_offset == "11"


def test_anniversary_ignores_configured_offsets() -> None:
    raw = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "anniversaryCycle": True}
    anchor = at(2025, 10, 12)
    assert cycle_containing(CycleConfig.parse(raw), anchor, anchor).start == at(2025, 10, 12)


# --- next_cycle, cycles_between, grace ---------------------------------------------------------------


def test_next_cycle_follows_a_clamped_cycle() -> None:
    config = cfg("MONTHLY", "30")
    assert next_cycle(config, ANY_ANCHOR, span(at(2027, 1, 30), at(2027, 2, 28))) == span(
        at(2027, 2, 28), at(2027, 3, 30)
    )


def test_next_cycle_after_a_cycle_clipped_mid_cycle() -> None:
    # [1 Mar, 20 Mar) was cut short by a plan change; the next schedule cycle starts 1 Apr.
    config = cfg("MONTHLY", "1")
    assert next_cycle(config, ANY_ANCHOR, span(at(2025, 3, 1), at(2025, 3, 20))) == span(
        at(2025, 4, 1), at(2025, 5, 1)
    )


def test_cycles_between_includes_every_cycle_touching_the_range() -> None:
    config = cfg("MONTHLY", "15")
    cycles = cycles_between(config, ANY_ANCHOR, at(2025, 3, 20), at(2025, 5, 15))
    # 20 Mar is in [15 Mar, 15 Apr); 15 May is excluded (half-open), so [15 May, ...) is not included.
    assert cycles == [span(at(2025, 3, 15), at(2025, 4, 15)), span(at(2025, 4, 15), at(2025, 5, 15))]
    assert cycles_between(config, ANY_ANCHOR, at(2025, 3, 20), at(2025, 3, 20)) == []


def test_cycles_between_rejects_reversed_range() -> None:
    with pytest.raises(InvalidInput) as error:
        cycles_between(cfg("MONTHLY"), ANY_ANCHOR, at(2025, 3, 20), at(2025, 3, 1))
    assert error.value.field == "end"


def test_grace_end_adds_grace_days_to_the_cycle_end() -> None:
    config = cfg("MONTHLY", "1", gracePeriod=5)
    cycle = cycle_containing(config, ANY_ANCHOR, at(2025, 3, 15))
    # [1 Mar, 1 Apr) + 5 days -> 6 Apr 00:00.
    assert grace_end(cycle, config) == at(2025, 4, 6)
    assert cycle.grace_end(config) == at(2025, 4, 6)
    assert grace_end(cycle, cfg("MONTHLY")) == at(2025, 4, 1)


# --- clipping and schedule periods -------------------------------------------------------------------


def test_clip() -> None:
    march = span(at(2025, 3, 1), at(2025, 4, 1))
    assert clip(march, at(2025, 3, 10), None) == span(at(2025, 3, 10), at(2025, 4, 1))
    assert clip(march, None, at(2025, 3, 20)) == span(at(2025, 3, 1), at(2025, 3, 20))
    assert clip(march, at(2025, 2, 1), at(2025, 5, 1)) == march
    assert clip(march, at(2025, 4, 1), None) is None  # touching the end is not overlapping
    assert clip(march, None, at(2025, 3, 1)) is None


def test_plan_starting_mid_cycle_gets_a_partial_first_period() -> None:
    periods = schedule_periods(cfg("MONTHLY", "1"), at(2025, 3, 10), at(2025, 3, 10), None, at(2025, 5, 15))
    # [10 Mar, 1 Apr) is partial; then whole months up to the one containing 15 May.
    assert periods == [
        span(at(2025, 3, 10), at(2025, 4, 1)),
        span(at(2025, 4, 1), at(2025, 5, 1)),
        span(at(2025, 5, 1), at(2025, 6, 1)),
    ]


def test_plan_change_mid_cycle_ends_the_last_period_at_the_change() -> None:
    config = cfg("MONTHLY", "1")
    periods = schedule_periods(config, at(2025, 3, 10), at(2025, 3, 10), at(2025, 4, 20), at(2025, 12, 1))
    assert periods == [span(at(2025, 3, 10), at(2025, 4, 1)), span(at(2025, 4, 1), at(2025, 4, 20))]
    # until == effectiveUntil: no period contains it, so all periods of the association come back.
    assert (
        schedule_periods(config, at(2025, 3, 10), at(2025, 3, 10), at(2025, 4, 20), at(2025, 4, 20))
        == periods
    )


def test_schedule_periods_until_on_a_boundary_includes_the_cycle_starting_there() -> None:
    periods = schedule_periods(cfg("MONTHLY", "1"), ANY_ANCHOR, at(2025, 3, 1), None, at(2025, 5, 1))
    assert periods[-1] == span(at(2025, 5, 1), at(2025, 6, 1))
    assert len(periods) == 3


def test_schedule_periods_inside_one_cycle_and_before_start() -> None:
    config = cfg("MONTHLY", "1")
    one = schedule_periods(config, ANY_ANCHOR, at(2025, 3, 10), at(2025, 3, 20), at(2025, 3, 15))
    assert one == [span(at(2025, 3, 10), at(2025, 3, 20))]
    assert schedule_periods(config, ANY_ANCHOR, at(2025, 3, 10), None, at(2025, 3, 9)) == []


def test_anniversary_plan_associated_mid_day() -> None:
    # Associated 12 Oct 15:00: cycles run from midnight of the 12th, the plan from 15:00.
    anchor = at(2025, 10, 12, 15)
    periods = schedule_periods(anniversary("MONTHLY"), anchor, anchor, None, at(2025, 11, 20))
    assert periods == [span(anchor, at(2025, 11, 12)), span(at(2025, 11, 12), at(2025, 12, 12))]


def test_schedule_periods_rejects_until_before_from() -> None:
    with pytest.raises(InvalidInput) as error:
        schedule_periods(cfg("MONTHLY"), ANY_ANCHOR, at(2025, 3, 10), at(2025, 3, 10), at(2025, 4, 1))
    assert error.value.field == "effectiveUntil"


# --- proration ---------------------------------------------------------------------------------------


def test_cycle_fraction() -> None:
    april = span(at(2025, 4, 1), at(2025, 5, 1))
    # 15 of April's 30 days.
    assert cycle_fraction(span(at(2025, 4, 1), at(2025, 4, 16)), april) == Decimal("0.5")
    assert cycle_fraction(april, april) == Decimal(1)
    # 22 of March's 31 days (10 Mar - 1 Apr) = 22/31 to 34 significant digits.
    march = span(at(2025, 3, 1), at(2025, 4, 1))
    assert cycle_fraction(span(at(2025, 3, 10), at(2025, 4, 1)), march) == Decimal(
        "0.7096774193548387096774193548387097"
    )
    # 12 hours of a 28-day February: 12 / (28 * 24) = 1/56 = 0.017857142857142857... (34 digits),
    # measured in elapsed time, not rounded to whole days.
    february = span(at(2027, 2, 1), at(2027, 3, 1))
    fraction = cycle_fraction(span(at(2027, 2, 1), at(2027, 2, 1, 12)), february)
    assert fraction == Decimal("0.01785714285714285714285714285714286")


def test_cycle_fraction_rejects_part_outside_full() -> None:
    with pytest.raises(InvalidInput):
        cycle_fraction(span(at(2025, 3, 10), at(2025, 4, 2)), span(at(2025, 3, 1), at(2025, 4, 1)))


# --- CycleConfig.parse and to_dict ------------------------------------------------------------------


def test_parse_defaults() -> None:
    expected = CycleConfig("MONTHLY", "1", None, 0, False)
    assert CycleConfig.parse({}) == expected
    assert CycleConfig.parse(None) == expected
    assert CycleConfig.parse({"interval": "QUARTERLY"}) == CycleConfig("QUARTERLY", "1", "1", 0, False)
    assert CycleConfig.parse({"interval": "WEEKLY", "anniversaryCycle": True}) == CycleConfig(
        "WEEKLY", None, None, 0, True
    )


def test_parse_accepts_ints_and_normalises_aliases() -> None:
    assert CycleConfig.parse(
        {"interval": "QUARTERLY", "startOffset": {"dayOffset": 15, "monthOffset": 2}, "gracePeriod": 3}
    ) == CycleConfig("QUARTERLY", "15", "2", 3, False)
    assert cfg("QUARTERLY", "last", "LAST").month_offset == "3"
    assert cfg("QUARTERLY", "LAST", "LAST").day_offset == "LAST"
    assert cfg("HALF_YEARLY", "1", "LAST").month_offset == "6"
    assert cfg("ANNUALLY", "1", "LAST").month_offset == "12"
    assert cfg("ANNUALLY", "1", "FIRST").month_offset == "1"
    assert cfg("MONTHLY", "07", "NIL").day_offset == "7"


def test_to_dict_gives_togai_shape_back() -> None:
    config = cfg("MONTHLY", 31, gracePeriod=5)
    assert config.to_dict() == {
        "interval": "MONTHLY",
        "startOffset": {"dayOffset": "31", "monthOffset": "NIL"},
        "gracePeriod": 5,
        "anniversaryCycle": False,
    }
    assert CycleConfig.parse(config.to_dict()) == config
    anniversary_config = anniversary("ANNUALLY")
    assert "startOffset" not in anniversary_config.to_dict()
    assert CycleConfig.parse(anniversary_config.to_dict()) == anniversary_config


DAY = "pricingCycleConfig.startOffset.dayOffset"
MONTH = "pricingCycleConfig.startOffset.monthOffset"
INVALID_CONFIGS = [
    (
        {"interval": "MONTH"},
        "pricingCycleConfig.interval",
        "WEEKLY, MONTHLY, QUARTERLY, HALF_YEARLY, ANNUALLY",
    ),
    ({"interval": "monthly"}, "pricingCycleConfig.interval", "MONTHLY"),
    ({"startOffset": {"dayOffset": "32"}}, DAY, '"1"-"31" or "LAST"'),
    ({"startOffset": {"dayOffset": 0}}, DAY, '"1"-"31"'),
    ({"startOffset": {"dayOffset": "1.5"}}, DAY, '"1"-"31"'),
    ({"startOffset": {"dayOffset": True}}, DAY, '"1"-"31"'),
    ({"startOffset": {"dayOffset": 3.0}}, DAY, '"1"-"31"'),
    ({"interval": "WEEKLY", "startOffset": {"dayOffset": "8"}}, DAY, '"1"-"7"'),
    ({"interval": "WEEKLY", "startOffset": {"dayOffset": "LAST"}}, DAY, "1 = Monday"),
    ({"interval": "QUARTERLY", "startOffset": {"monthOffset": "4"}}, MONTH, '"1"-"3", "FIRST" or "LAST"'),
    ({"interval": "HALF_YEARLY", "startOffset": {"monthOffset": 7}}, MONTH, '"1"-"6"'),
    ({"interval": "ANNUALLY", "startOffset": {"monthOffset": "13"}}, MONTH, '"1"-"12"'),
    ({"interval": "MONTHLY", "startOffset": {"monthOffset": "2"}}, MONTH, 'absent or "NIL"'),
    ({"interval": "WEEKLY", "startOffset": {"monthOffset": 1}}, MONTH, 'absent or "NIL"'),
    ({"gracePeriod": -1}, "pricingCycleConfig.gracePeriod", "whole number of days"),
    ({"gracePeriod": 1.5}, "pricingCycleConfig.gracePeriod", "whole number of days"),
    ({"gracePeriod": "5"}, "pricingCycleConfig.gracePeriod", "whole number of days"),
    ({"gracePeriod": True}, "pricingCycleConfig.gracePeriod", "whole number of days"),
    ({"anniversaryCycle": "yes"}, "pricingCycleConfig.anniversaryCycle", "true or false"),
    ({"startOffsets": {"dayOffset": "1"}}, "pricingCycleConfig.startOffsets", "not a known field"),
    ({"startOffset": {"day": "1"}}, "pricingCycleConfig.startOffset.day", "dayOffset, monthOffset"),
    ({"startOffset": "1"}, "pricingCycleConfig.startOffset", "must be an object"),
]


@pytest.mark.parametrize(("raw", "field", "hint"), INVALID_CONFIGS)
def test_parse_rejects_with_field_path(raw: dict[str, Any], field: str, hint: str) -> None:
    with pytest.raises(InvalidInput) as error:
        CycleConfig.parse(raw)
    assert error.value.field == field
    assert hint in error.value.reason


def test_parse_uses_the_given_field_prefix() -> None:
    with pytest.raises(InvalidInput) as error:
        CycleConfig.parse(
            {"startOffset": {"dayOffset": "40"}}, field_prefix="edits[0].pricingCycleConfigOverride"
        )
    assert error.value.field == "edits[0].pricingCycleConfigOverride.startOffset.dayOffset"
    with pytest.raises(InvalidInput) as error:
        CycleConfig.parse(["MONTHLY"], field_prefix="plan.pricingCycleConfig")  # type: ignore[arg-type]
    assert error.value.field == "plan.pricingCycleConfig"


def test_direct_construction_is_validated() -> None:
    with pytest.raises(InvalidInput):
        CycleConfig("MONTHLY", "32", None, 0, False)
    with pytest.raises(InvalidInput):
        CycleConfig("QUARTERLY", "1", None, 0, False)  # monthOffset needed without anniversary
    with pytest.raises(InvalidInput):
        CycleConfig("QUARTERLY", "1", "FIRST", 0, False)  # aliases only through parse()
    with pytest.raises(InvalidInput):
        CycleConfig("MONTHLY", "1", None, -2, False)


# --- naive datetimes ---------------------------------------------------------------------------------

NAIVE = datetime(2025, 3, 1)


def test_naive_datetimes_are_rejected_with_their_field() -> None:
    config = cfg("MONTHLY")
    with pytest.raises(InvalidInput) as error:
        cycle_containing(config, ANY_ANCHOR, NAIVE)
    assert error.value.field == "instant"
    assert "timezone-aware" in error.value.reason
    with pytest.raises(InvalidInput) as error:
        cycle_containing(config, NAIVE, at(2025, 3, 1))
    assert error.value.field == "anchor"
    with pytest.raises(InvalidInput) as error:
        schedule_periods(config, ANY_ANCHOR, NAIVE, None, at(2025, 4, 1))
    assert error.value.field == "effectiveFrom"
    with pytest.raises(InvalidInput) as error:
        schedule_periods(config, ANY_ANCHOR, at(2025, 3, 1), NAIVE, at(2025, 4, 1))
    assert error.value.field == "effectiveUntil"
    with pytest.raises(InvalidInput):
        Cycle(NAIVE, at(2025, 4, 1))
    with pytest.raises(InvalidInput):
        clip(span(at(2025, 3, 1), at(2025, 4, 1)), NAIVE, None)


def test_empty_cycle_is_rejected() -> None:
    with pytest.raises(InvalidInput):
        Cycle(at(2025, 3, 1), at(2025, 3, 1))


def test_run_starts_join_spans_of_one_key_that_touch() -> None:
    jan, feb, mar, apr = at(2026, 1, 1), at(2026, 2, 1), at(2026, 3, 1), at(2026, 4, 1)
    spans = [("a", jan, feb), ("a", feb, mar), ("b", mar, apr), ("a", apr, None)]
    # a, a (split, touching), then b, then a again: a new run
    assert run_starts(spans) == [jan, jan, mar, apr]
    assert run_starts([("a", jan, feb), ("a", mar, None)]) == [jan, mar]  # a gap breaks the run
    assert run_starts([]) == []
