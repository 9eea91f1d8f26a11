"""Property tests: random cycle configs, anchors and instants between 2000 and 2100."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from togai_engine.cycles import (
    INTERVALS,
    WEEKLY,
    Cycle,
    CycleConfig,
    clip,
    cycle_containing,
    cycle_fraction,
    cycles_between,
    next_cycle,
    resolve_offsets,
    schedule_periods,
)
from togai_engine.cycles.cycles import MONTHS_PER_CYCLE

MICROSECOND = timedelta(microseconds=1)

# Shortest and longest possible cycle, in days, per interval (clamping included: e.g. QUARTERLY day 31
# gives 31 Jan -> 30 Apr = 89 days and 31 May -> 31 Aug = 92 days).
LENGTH_BOUNDS = {
    "WEEKLY": (7, 7),
    "MONTHLY": (28, 31),
    "QUARTERLY": (89, 92),
    "HALF_YEARLY": (181, 184),
    "ANNUALLY": (365, 366),
}

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def configs(draw: st.DrawFn, anniversary: bool | None = None) -> CycleConfig:
    interval = draw(st.sampled_from(INTERVALS))
    if interval == WEEKLY:
        day = str(draw(st.integers(1, 7)))
        month = None
    else:
        day = draw(st.sampled_from([*(str(d) for d in range(1, 32)), "LAST"]))
        months = MONTHS_PER_CYCLE[interval]
        month = None if months == 1 else str(draw(st.integers(1, months)))
    is_anniversary = draw(st.booleans()) if anniversary is None else anniversary
    return CycleConfig(interval, day, month, draw(st.integers(0, 60)), is_anniversary)


def is_midnight(instant: datetime) -> bool:
    return (instant.hour, instant.minute, instant.second, instant.microsecond) == (0, 0, 0, 0)


@given(configs(), instants, instants)
def test_cycle_contains_its_instant_and_has_a_plausible_length(
    config: CycleConfig, anchor: datetime, instant: datetime
) -> None:
    cycle = cycle_containing(config, anchor, instant)
    assert cycle.start <= instant < cycle.end
    assert is_midnight(cycle.start)
    assert is_midnight(cycle.end)
    shortest, longest = LENGTH_BOUNDS[config.interval]
    assert timedelta(days=shortest) <= cycle.duration <= timedelta(days=longest)
    fixed = resolve_offsets(config, anchor)
    if config.interval == WEEKLY:
        assert cycle.start.isoweekday() == int(fixed.day_offset or "")
    else:
        # The start month sits at monthOffset within its block of months (quarter, half, year).
        months = MONTHS_PER_CYCLE[config.interval]
        assert (cycle.start.month - 1) % months + 1 == int(fixed.month_offset or "1")


@given(configs(), instants, instants)
def test_cycles_are_contiguous(config: CycleConfig, anchor: datetime, instant: datetime) -> None:
    cycle = cycle_containing(config, anchor, instant)
    following = next_cycle(config, anchor, cycle)
    assert following.start == cycle.end
    assert cycle_containing(config, anchor, cycle.end) == following
    # The instant just before the start belongs to the cycle that ends at this start.
    assert cycle_containing(config, anchor, cycle.start - MICROSECOND).end == cycle.start


@given(configs(), instants, instants, st.floats(0, 1, exclude_max=True))
def test_every_instant_of_a_cycle_maps_back_to_it(
    config: CycleConfig, anchor: datetime, instant: datetime, position: float
) -> None:
    cycle = cycle_containing(config, anchor, instant)
    ticks = cycle.duration // MICROSECOND
    inside = cycle.start + MICROSECOND * min(int(ticks * position), ticks - 1)
    assert cycle_containing(config, anchor, inside) == cycle
    assert cycle_containing(config, anchor, cycle.start) == cycle
    assert cycle_containing(config, anchor, cycle.end - MICROSECOND) == cycle


@given(configs(anniversary=False), instants, instants, instants)
def test_anchor_is_ignored_without_anniversary(
    config: CycleConfig, anchor: datetime, other_anchor: datetime, instant: datetime
) -> None:
    assert cycle_containing(config, anchor, instant) == cycle_containing(config, other_anchor, instant)


@given(configs(anniversary=True), instants)
def test_anniversary_cycle_starts_at_midnight_of_the_anchor_day(
    config: CycleConfig, anchor: datetime
) -> None:
    cycle = cycle_containing(config, anchor, anchor)
    assert cycle.start == anchor.replace(hour=0, minute=0, second=0, microsecond=0)


@given(configs(), instants, instants, instants)
def test_resolved_offsets_give_the_same_schedule(
    config: CycleConfig, anchor: datetime, other_anchor: datetime, instant: datetime
) -> None:
    fixed = resolve_offsets(config, anchor)
    assert not fixed.anniversary
    assert cycle_containing(fixed, other_anchor, instant) == cycle_containing(config, anchor, instant)


@given(configs(), instants, instants, st.integers(0, 800))
def test_cycles_between_covers_the_range_in_order(
    config: CycleConfig, anchor: datetime, start: datetime, days: int
) -> None:
    end = start + timedelta(days=days, hours=1)
    cycles = cycles_between(config, anchor, start, end)
    assert cycles[0].contains(start)
    assert cycles[-1].start < end <= cycles[-1].end
    for earlier, later in pairwise(cycles):
        assert earlier.end == later.start


@settings(max_examples=200)
@given(
    configs(),
    instants,
    instants,
    st.one_of(st.none(), st.integers(1, 60 * 24 * 800)),
    st.integers(-60 * 24 * 30, 60 * 24 * 800),
)
def test_schedule_periods_tile_the_association(
    config: CycleConfig,
    anchor: datetime,
    effective_from: datetime,
    length_minutes: int | None,
    until_minutes: int,
) -> None:
    effective_until = None if length_minutes is None else effective_from + timedelta(minutes=length_minutes)
    until = effective_from + timedelta(minutes=until_minutes)
    periods = schedule_periods(config, anchor, effective_from, effective_until, until)
    if until < effective_from:
        assert periods == []
        return
    assert periods[0].start == effective_from
    for earlier, later in pairwise(periods):
        assert earlier.end == later.start  # no gaps, no overlaps
    for period in periods:
        # Each period is a schedule cycle clipped to the association, never more.
        assert period == clip(cycle_containing(config, anchor, period.start), effective_from, effective_until)
    if effective_until is not None and until >= effective_until:
        assert periods[-1].end == effective_until
    else:
        assert periods[-1].contains(until)
        expected_end = cycle_containing(config, anchor, until).end
        if effective_until is not None:
            expected_end = min(expected_end, effective_until)
        assert periods[-1].end == expected_end
    assert sum((p.duration for p in periods), timedelta()) == periods[-1].end - effective_from


@given(configs(), instants, instants, st.floats(0, 1, exclude_min=True, exclude_max=True))
def test_fractions_of_a_split_cycle_add_up(
    config: CycleConfig, anchor: datetime, instant: datetime, position: float
) -> None:
    full = cycle_containing(config, anchor, instant)
    ticks = full.duration // MICROSECOND
    cut = full.start + MICROSECOND * max(1, min(int(ticks * position), ticks - 1))
    head, tail = Cycle(full.start, cut), Cycle(cut, full.end)
    total = cycle_fraction(head, full) + cycle_fraction(tail, full)
    assert abs(total - 1) <= Decimal("1e-33")
    assert Decimal(0) < cycle_fraction(head, full) < 1
    assert cycle_fraction(full, full) == 1


@given(configs())
def test_to_dict_round_trips(config: CycleConfig) -> None:
    assert CycleConfig.parse(config.to_dict()) == config
