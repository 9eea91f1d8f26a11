"""Billing-cycle arithmetic for Togai's PricingCycleConfig: pure functions, no clock, no I/O.

Every datetime is timezone-aware and handled in UTC; naive ones are rejected. Periods are half-open
[start, end), so an instant exactly on a boundary belongs to the cycle that starts there. Cycles start
at 00:00:00 UTC of their anchor day. Month arithmetic is dateutil's relativedelta, whose absolute
`day=` clamps to the month's last day: that is Togai's rule "if a day with offset doesn't exist for a
month, closest previous day is considered" (dayOffset 31 -> 28/29 Feb, 30 Apr), and because each
start is computed from its own month rather than from the previous start, a clamped day springs back
(30 Jan -> 28 Feb -> 30 Mar).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from dateutil.relativedelta import relativedelta

from togai_engine.common.messages import quote
from togai_engine.errors import InvalidInput

WEEKLY = "WEEKLY"
MONTHLY = "MONTHLY"
QUARTERLY = "QUARTERLY"
HALF_YEARLY = "HALF_YEARLY"
ANNUALLY = "ANNUALLY"
INTERVALS = (WEEKLY, MONTHLY, QUARTERLY, HALF_YEARLY, ANNUALLY)

# Months in one cycle; the calendar is cut into blocks of this size starting in January
# (quarters Jan-Mar, Apr-Jun, ...; halves Jan-Jun, Jul-Dec) and monthOffset picks a month of the block.
MONTHS_PER_CYCLE = {MONTHLY: 1, QUARTERLY: 3, HALF_YEARLY: 6, ANNUALLY: 12}

LAST = "LAST"
FIRST = "FIRST"
NIL = "NIL"
MAX_GRACE_PERIOD_DAYS = 3650  # sanity bound: ten years keeps grace_end far from datetime's limits

_DIGITS = re.compile(r"[0-9]{1,3}")
_MONTH_ZERO = datetime(2000, 1, 1, tzinfo=UTC)  # month index 0 for the arithmetic below
_MIN_YEAR, _MAX_YEAR = 2, 9997  # leaves a cycle of room on each side of datetime's range
_CONFIG_KEYS = ("interval", "startOffset", "gracePeriod", "anniversaryCycle")
_OFFSET_KEYS = ("dayOffset", "monthOffset")


# ---------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class CycleConfig:
    """A validated PricingCycleConfig in canonical form.

    day_offset: "1"-"7" for WEEKLY (1 = Monday), else "1"-"31" or "LAST". month_offset: None for
    MONTHLY/WEEKLY, else "1".."months per cycle" (FIRST/LAST are stored as numbers). With
    anniversary=True both offsets come from the association date and may be None.
    """

    interval: str
    day_offset: str | None
    month_offset: str | None
    grace_period_days: int
    anniversary: bool

    def __post_init__(self) -> None:
        # Direct construction (e.g. from stored columns) gets the same checks as parse().
        if self.interval not in INTERVALS:
            raise InvalidInput("interval", _allowed_intervals(self.interval))
        if self.day_offset is not None and _canonical_day(self.interval, self.day_offset) != self.day_offset:
            raise InvalidInput("day_offset", _day_rule(self.interval, self.day_offset))
        if self.month_offset is not None and (
            _canonical_month(self.interval, self.month_offset) != self.month_offset
        ):
            raise InvalidInput("month_offset", _month_rule(self.interval, self.month_offset))
        if not self.anniversary and self.day_offset is None:
            raise InvalidInput("day_offset", "is required unless the cycle is an anniversary cycle")
        needs_month = self.interval in MONTHS_PER_CYCLE and self.interval != MONTHLY
        if not self.anniversary and needs_month and self.month_offset is None:
            raise InvalidInput("month_offset", f"is required for a {self.interval} cycle")
        if not _is_int(self.grace_period_days) or not 0 <= self.grace_period_days <= MAX_GRACE_PERIOD_DAYS:
            raise InvalidInput("grace_period_days", _grace_rule(self.grace_period_days))
        if not isinstance(self.anniversary, bool):
            raise InvalidInput("anniversary", f"must be true or false; got {quote(self.anniversary)}")

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, field_prefix: str = "pricingCycleConfig") -> CycleConfig:
        """Validate Togai's dict shape; missing keys default to MONTHLY, dayOffset 1, no grace period."""
        raw = {} if raw is None else raw
        if not isinstance(raw, Mapping):
            raise InvalidInput(field_prefix, f"must be an object with keys {', '.join(_CONFIG_KEYS)}")
        _reject_unknown_keys(raw, _CONFIG_KEYS, field_prefix)

        interval = raw.get("interval")
        interval = MONTHLY if interval is None else interval
        if interval not in INTERVALS:
            raise InvalidInput(f"{field_prefix}.interval", _allowed_intervals(interval))

        anniversary = raw.get("anniversaryCycle")
        anniversary = False if anniversary is None else anniversary
        if not isinstance(anniversary, bool):
            raise InvalidInput(
                f"{field_prefix}.anniversaryCycle", f"must be true or false; got {quote(anniversary)}"
            )

        grace = raw.get("gracePeriod")
        grace = 0 if grace is None else grace
        if not _is_int(grace) or not 0 <= grace <= MAX_GRACE_PERIOD_DAYS:
            raise InvalidInput(f"{field_prefix}.gracePeriod", _grace_rule(grace))

        offsets = raw.get("startOffset")
        offsets = {} if offsets is None else offsets
        offsets_path = f"{field_prefix}.startOffset"
        if not isinstance(offsets, Mapping):
            example = '{"dayOffset": "1", "monthOffset": "NIL"}'
            raise InvalidInput(offsets_path, f"must be an object like {example}")
        _reject_unknown_keys(offsets, _OFFSET_KEYS, offsets_path)

        day_raw = offsets.get("dayOffset")
        if day_raw is None:
            day = None if anniversary else "1"
        else:
            day = _canonical_day(interval, day_raw)
            if day is None:
                raise InvalidInput(f"{offsets_path}.dayOffset", _day_rule(interval, day_raw))

        month_raw = offsets.get("monthOffset")
        month_absent = month_raw is None or _as_offset_text(month_raw) == NIL
        if interval not in MONTHS_PER_CYCLE or interval == MONTHLY:
            if not month_absent:
                raise InvalidInput(f"{offsets_path}.monthOffset", _month_rule(interval, month_raw))
            month = None
        elif month_absent:
            month = None if anniversary else "1"
        else:
            month = _canonical_month(interval, month_raw)
            if month is None:
                raise InvalidInput(f"{offsets_path}.monthOffset", _month_rule(interval, month_raw))

        return cls(interval, day, month, grace, anniversary)

    def to_dict(self) -> dict[str, Any]:
        """Togai's shape: offsets as strings, "NIL" monthOffset for MONTHLY/WEEKLY."""
        out: dict[str, Any] = {"interval": self.interval}
        if self.day_offset is not None or self.month_offset is not None:
            offsets: dict[str, str] = {"monthOffset": self.month_offset or NIL}
            if self.day_offset is not None:
                offsets = {"dayOffset": self.day_offset, **offsets}
            out["startOffset"] = offsets
        out["gracePeriod"] = self.grace_period_days
        out["anniversaryCycle"] = self.anniversary
        return out


def resolve_offsets(config: CycleConfig, anchor: datetime) -> CycleConfig:
    """The same schedule with fixed offsets: an anniversary cycle's offsets read off `anchor`'s UTC day.

    MONTHLY on 12 Oct -> dayOffset 12; on 31 Oct -> LAST (same schedule as 31); on 30 Jan -> 30.
    WEEKLY -> the ISO weekday. QUARTERLY/HALF_YEARLY/ANNUALLY -> the month's position in its block and
    the day (29 Feb 2028 ANNUALLY -> monthOffset 2, dayOffset 29, so 28 Feb in common years).
    Non-anniversary configs come back unchanged; useful for retainStartOffsets and for display.
    """
    anchor = _utc(anchor, "anchor")
    if not config.anniversary:
        return config
    if config.interval == WEEKLY:
        return replace(config, day_offset=str(anchor.isoweekday()), month_offset=None, anniversary=False)
    day = LAST if anchor.day == 31 else str(anchor.day)
    months = MONTHS_PER_CYCLE[config.interval]
    month = None if config.interval == MONTHLY else str((anchor.month - 1) % months + 1)
    return replace(config, day_offset=day, month_offset=month, anniversary=False)


# ---------------------------------------------------------------------------------------------------
# Cycles


@dataclass(frozen=True)
class Cycle:
    """A half-open billing period [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # Frozen, so normalise to UTC through object.__setattr__.
        object.__setattr__(self, "start", _utc(self.start, "start"))
        object.__setattr__(self, "end", _utc(self.end, "end"))
        if not self.start < self.end:
            raise InvalidInput("end", f"a cycle must end after it starts; got [{self.start}, {self.end})")

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def grace_end(self, config: CycleConfig) -> datetime:
        return grace_end(self, config)


def grace_end(cycle: Cycle, config: CycleConfig) -> datetime:
    """When late events stop counting for `cycle` and its invoice becomes DUE: end + gracePeriod days."""
    return cycle.end + timedelta(days=config.grace_period_days)


def cycle_containing(config: CycleConfig, anchor: datetime, instant: datetime) -> Cycle:
    """The schedule's cycle with start <= instant < end (anchor only matters for anniversary cycles)."""
    fixed = resolve_offsets(config, anchor)
    instant = _utc(instant, "instant")
    assert fixed.day_offset is not None  # resolved configs always carry offsets
    if fixed.interval == WEEKLY:
        weekday = int(fixed.day_offset)
        day = instant.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=(instant.isoweekday() - weekday) % 7)
        return Cycle(start, start + timedelta(days=7))

    months = MONTHS_PER_CYCLE[fixed.interval]
    phase = int(fixed.month_offset or "1") - 1
    day_of_month = 31 if fixed.day_offset == LAST else int(fixed.day_offset)
    instant_month = (instant.year - _MONTH_ZERO.year) * 12 + instant.month - 1
    # Latest cycle month at or before the instant's month; step back one cycle if the start day
    # in that month is still ahead of the instant.
    start_month = instant_month - (instant_month - phase) % months
    if _start_in_month(start_month, day_of_month) > instant:
        start_month -= months
    start = _start_in_month(start_month, day_of_month)
    return Cycle(start, _start_in_month(start_month + months, day_of_month))


def cycle_index(config: CycleConfig, anchor: datetime, effective_from: datetime, instant: datetime) -> int:
    """The place of the cycle containing `instant` among the cycles of a plan association that starts at
    `effective_from`: 0 for its first cycle (partial or not), 1 for the next. O(1): month arithmetic."""
    first = cycle_containing(config, anchor, effective_from)
    current = cycle_containing(config, anchor, instant)
    if config.interval == WEEKLY:
        return (current.start - first.start).days // 7
    months = (current.start.year - first.start.year) * 12 + current.start.month - first.start.month
    return months // MONTHS_PER_CYCLE[config.interval]


def usage_cycle(cycle: Cycle, since: datetime) -> Cycle:
    """The part of the schedule `cycle` a quota counts: the whole cycle, NOT clipped to a plan association (a
    mid-cycle change keeps counting from where the cycle started), but never before `since`, where the account's
    uninterrupted run of plans began (usage from before it had a plan never counts). check_entitlement counts it
    (entitlements README) and a period's entitlement overage is based on it (invoices README)."""
    return Cycle(max(cycle.start, since), cycle.end)


def run_starts(spans: Sequence[tuple[str, datetime, datetime | None]]) -> list[datetime]:
    """For (key, start, end) spans ordered by start: where the unbroken run of same-key spans each belongs to
    began. A span continues the one before it when it has the same key and starts where that one ended, so a
    plan association split by a version migration or a new deal counts its cycles from the plan's start."""
    starts: list[datetime] = []
    for i, (key, start, _) in enumerate(spans):
        previous = spans[i - 1] if i else None
        continues = previous is not None and previous[0] == key and previous[2] == start
        starts.append(starts[-1] if continues else start)
    return starts


def next_cycle(config: CycleConfig, anchor: datetime, cycle: Cycle) -> Cycle:
    """The first schedule cycle starting at or after `cycle.end` (for a clipped cycle ending mid-cycle,
    the one after the cycle that contains that end)."""
    following = cycle_containing(config, anchor, cycle.end)
    if following.start == cycle.end:
        return following
    return cycle_containing(config, anchor, following.end)


def cycles_between(config: CycleConfig, anchor: datetime, start: datetime, end: datetime) -> list[Cycle]:
    """All schedule cycles intersecting [start, end), unclipped, in order; [] when start == end."""
    start, end = _utc(start, "start"), _utc(end, "end")
    if end < start:
        raise InvalidInput("end", f"must not be before start ({start.isoformat()}); got {end.isoformat()}")
    cycles: list[Cycle] = []
    if start == end:
        return cycles
    cycle = cycle_containing(config, anchor, start)
    while cycle.start < end:
        cycles.append(cycle)
        cycle = next_cycle(config, anchor, cycle)
    return cycles


def clip(cycle: Cycle, start: datetime | None, end: datetime | None) -> Cycle | None:
    """The part of `cycle` inside [start, end) (None = unbounded), or None when they do not overlap."""
    lower = cycle.start if start is None else max(cycle.start, _utc(start, "start"))
    upper = cycle.end if end is None else min(cycle.end, _utc(end, "end"))
    return Cycle(lower, upper) if lower < upper else None


def schedule_periods(
    config: CycleConfig,
    anchor: datetime,
    effective_from: datetime,
    effective_until: datetime | None,
    until: datetime,
) -> list[Cycle]:
    """Billing periods of one plan association: schedule cycles clipped to [effective_from,
    effective_until), from the first up to and including the period containing `until`.

    The first period of a plan starting mid-cycle is [effective_from, next boundary); the last one of a
    plan that ends (or changes) mid-cycle ends at effective_until. Empty when `until` < effective_from.
    """
    effective_from = _utc(effective_from, "effectiveFrom")
    if effective_until is not None:
        effective_until = _utc(effective_until, "effectiveUntil")
        if effective_until <= effective_from:
            raise InvalidInput(
                "effectiveUntil",
                f"must be after effectiveFrom ({effective_from.isoformat()}); "
                f"got {effective_until.isoformat()}",
            )
    until = _utc(until, "until")
    periods: list[Cycle] = []
    if until < effective_from:
        return periods
    cycle = cycle_containing(config, anchor, effective_from)
    while effective_until is None or cycle.start < effective_until:
        period = clip(cycle, effective_from, effective_until)
        assert period is not None  # the cycle starts before effective_until and ends after effective_from
        periods.append(period)
        if until < cycle.end:
            break
        cycle = next_cycle(config, anchor, cycle)
    return periods


def cycle_fraction(part: Cycle, full: Cycle) -> Decimal:
    """part's share of full by exact elapsed time (microseconds), for proration; part must lie in full."""
    if part.start < full.start or part.end > full.end:
        raise InvalidInput("part", f"[{part.start}, {part.end}) must lie inside [{full.start}, {full.end})")
    tick = timedelta(microseconds=1)
    with localcontext() as context:
        context.prec = 34  # far beyond the 18 decimals rates keep; exact whenever the ratio terminates
        return Decimal(part.duration // tick) / Decimal(full.duration // tick)


# ---------------------------------------------------------------------------------------------------
# Helpers


def _start_in_month(month_index: int, day_of_month: int) -> datetime:
    # relativedelta's absolute day clamps to the month's last day (31 -> 28 Feb).
    return _MONTH_ZERO + relativedelta(months=month_index, day=day_of_month)


def _utc(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(field, f"must be a timezone-aware datetime; got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, f"must be timezone-aware (UTC); got naive {value.isoformat()}")
    value = value.astimezone(UTC)
    if not _MIN_YEAR <= value.year <= _MAX_YEAR:
        raise InvalidInput(field, f"must fall in years {_MIN_YEAR}-{_MAX_YEAR}; got {value.isoformat()}")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_offset_text(value: object) -> str | None:
    """An offset given as int or str, as upper-case text; None for anything else."""
    if _is_int(value):
        return str(value)
    if isinstance(value, str):
        return value.strip().upper()
    return None


def _canonical_day(interval: str, value: object) -> str | None:
    text = _as_offset_text(value)
    if text is None:
        return None
    highest = 7 if interval == WEEKLY else 31
    if text == LAST and interval != WEEKLY:
        return LAST
    if _DIGITS.fullmatch(text) and 1 <= int(text) <= highest:
        return str(int(text))
    return None


def _canonical_month(interval: str, value: object) -> str | None:
    months = MONTHS_PER_CYCLE.get(interval, 1)
    if months == 1:
        return None
    text = _as_offset_text(value)
    if text is None:
        return None
    if text == FIRST:
        return "1"
    if text == LAST:
        return str(months)
    if _DIGITS.fullmatch(text) and 1 <= int(text) <= months:
        return str(int(text))
    return None


def _reject_unknown_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise InvalidInput(f"{path}.{key}", f"is not a known field; use {', '.join(allowed)}")


def _allowed_intervals(value: object) -> str:
    return f"must be one of {', '.join(INTERVALS)}; got {quote(value)}"


def _grace_rule(value: object) -> str:
    return f"must be a whole number of days from 0 to {MAX_GRACE_PERIOD_DAYS}; got {quote(value)}"


def _day_rule(interval: str, value: object) -> str:
    if interval == WEEKLY:
        return f'for a WEEKLY cycle must be "1"-"7" (the weekday it starts on, 1 = Monday); got {quote(value)}'
    return (
        f'for a {interval} cycle must be "1"-"31" or "LAST" (the day of the month it starts on; '
        f"months without that day use their last day); got {quote(value)}"
    )


def _month_rule(interval: str, value: object) -> str:
    months = MONTHS_PER_CYCLE.get(interval, 1)
    if months == 1:
        return f'must be absent or "NIL" for a {interval} cycle; got {quote(value)}'
    block = {QUARTERLY: "quarter", HALF_YEARLY: "half-year", ANNUALLY: "year"}[interval]
    return (
        f'for a {interval} cycle must be "1"-"{months}", "FIRST" or "LAST" (the month of the {block} '
        f"the cycle starts in); got {quote(value)}"
    )


def cut_by_change(period: Cycle, full_cycle: Cycle, effective_from: datetime, effective_until: datetime | None,
                  follows_another_plan: bool) -> bool:
    """True when a plan change or a plan's end cut `period` (one association's part of `full_cycle`) short:
    it starts mid-cycle where another plan ended, or ends mid-cycle where its plan ends. An account's first
    partial period (its plan starts mid-cycle with no plan before it) is not cut by a change."""
    starts_at_change = follows_another_plan and period.start == effective_from and period.start > full_cycle.start
    ends_at_change = effective_until is not None and period.end == effective_until and period.end < full_cycle.end
    return starts_at_change or ends_at_change
