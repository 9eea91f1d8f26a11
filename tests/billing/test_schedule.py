"""An account's billing periods from its plan associations (pure): due/open split, plan changes, leap days."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from togai_engine.billing.schedule import Association, account_timeline
from togai_engine.cycles import Cycle
from togai_engine.plans.schemas import PricePlan, PricePlanCreate
from togai_engine.plans.validation import normalize_plan


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def plan(plan_id: str, **cycle: Any) -> PricePlan:
    data = normalize_plan(PricePlanCreate.model_validate({"name": plan_id, "pricingCycleConfig": cycle}))
    return PricePlan.model_validate({**data.model_dump(), "id": plan_id, "createdAt": at(2026, 1, 1)})


def assoc(plan_id: str, start: datetime, until: datetime | None = None, number: int = 1) -> Association:
    return Association(number, "acc", plan_id, start, until, start)


def windows(periods: list[Any]) -> list[tuple[datetime, datetime]]:
    return [(p.period.start, p.period.end) for p in periods]


MONTHLY = plan("monthly", interval="MONTHLY", gracePeriod=3)
PLANS = {"monthly": MONTHLY}


def test_first_period_starts_at_attachment_and_grace_delays_due() -> None:
    timeline = account_timeline([assoc("monthly", at(2026, 1, 15))], PLANS, None, at(2026, 2, 3, 12))
    # [15 Jan, 1 Feb) ended, due 1 Feb + 3 days = 4 Feb: still open at 3 Feb noon, with February
    assert timeline.due == []
    assert windows(timeline.open) == [(at(2026, 1, 15), at(2026, 2, 1)), (at(2026, 2, 1), at(2026, 3, 1))]
    assert timeline.open[0].full_cycle == Cycle(at(2026, 1, 1), at(2026, 2, 1))
    assert timeline.next_run_at == at(2026, 2, 4)  # the January period becomes due then
    later = account_timeline([assoc("monthly", at(2026, 1, 15))], PLANS, None, at(2026, 2, 4))
    assert windows(later.due) == [(at(2026, 1, 15), at(2026, 2, 1))]  # due exactly at grace end
    assert later.due[0].due_at == at(2026, 2, 4)
    assert later.next_run_at == at(2026, 3, 1)  # next: March starts


def test_billed_until_skips_closed_periods() -> None:
    timeline = account_timeline([assoc("monthly", at(2026, 1, 15))], PLANS, at(2026, 3, 1), at(2026, 4, 10))
    assert windows(timeline.due) == [(at(2026, 3, 1), at(2026, 4, 1))]
    assert windows(timeline.open) == [(at(2026, 4, 1), at(2026, 5, 1))]


def test_mid_cycle_plan_change_splits_the_cycle() -> None:
    weekly = plan("weekly", interval="WEEKLY", startOffset={"dayOffset": "1"}, gracePeriod=0)
    plans = {"monthly": MONTHLY, "weekly": weekly}
    change = at(2026, 1, 14, 6)  # a Wednesday, 06:00
    timeline = account_timeline(
        [assoc("monthly", at(2026, 1, 1), change), assoc("weekly", change, number=2)], plans, None, at(2026, 1, 27))
    # monthly [1 Jan, 14 Jan 06:00) is due at change + 3 days = 17 Jan 06:00; weekly periods start Mondays
    assert windows(timeline.due) == [(at(2026, 1, 1), change), (change, at(2026, 1, 19)), (at(2026, 1, 19), at(2026, 1, 26))]
    assert [p.plan.id for p in timeline.due] == ["monthly", "weekly", "weekly"]
    assert timeline.due[0].full_cycle == Cycle(at(2026, 1, 1), at(2026, 2, 1))
    # the first weekly period ended 19 Jan with no grace, but closes in order: not before 17 Jan 06:00
    assert [p.due_at for p in timeline.due] == [at(2026, 1, 17, 6), at(2026, 1, 19), at(2026, 1, 26)]
    assert windows(timeline.open) == [(at(2026, 1, 26), at(2026, 2, 2))]


def test_due_instants_never_go_backwards() -> None:
    long_grace = plan("long", interval="MONTHLY", gracePeriod=20)
    weekly = plan("weekly", interval="WEEKLY", startOffset={"dayOffset": "1"}, gracePeriod=0)
    change = at(2026, 1, 5)
    timeline = account_timeline([assoc("long", at(2026, 1, 1), change), assoc("weekly", change, number=2)],
                                {"long": long_grace, "weekly": weekly}, None, at(2026, 1, 20))
    # the old plan's 4-day period is due 25 Jan; the weekly periods ending 12 and 19 Jan wait for it;
    # the current week [19 Jan, 26 Jan) is due at its own end
    assert timeline.due == []
    assert [p.due_at for p in timeline.open] == [at(2026, 1, 25)] * 3 + [at(2026, 1, 26)]
    assert timeline.next_run_at == at(2026, 1, 25)


def test_due_instants_wait_for_the_invoiced_period_billed_until_skips() -> None:
    long_grace = plan("long", interval="MONTHLY", gracePeriod=20)
    weekly = plan("weekly", interval="WEEKLY", startOffset={"dayOffset": "1"}, gracePeriod=0)
    change = at(2026, 1, 5)
    associations = [assoc("long", at(2026, 1, 1), change), assoc("weekly", change, number=2)]
    plans = {"long": long_grace, "weekly": weekly}
    # the weekly plan attached at billed_until after the old plan's 4-day period was invoiced (due 25 Jan): its
    # weeks wait for that due instant as they do when it was attached before (test_due_instants_never_go_backwards)
    timeline = account_timeline(associations, plans, change, at(2026, 1, 26), at(2026, 1, 25))
    assert [p.due_at for p in timeline.due] == [at(2026, 1, 25)] * 2 + [at(2026, 1, 26)]
    once = account_timeline(associations, plans, None, at(2026, 1, 26))
    assert [(p.period, p.due_at) for p in once.due[1:]] == [(p.period, p.due_at) for p in timeline.due]


def test_future_association_is_upcoming() -> None:
    timeline = account_timeline([assoc("monthly", at(2026, 3, 10))], PLANS, None, at(2026, 2, 1))
    assert timeline.due == timeline.open == []
    assert timeline.next_run_at == at(2026, 3, 10)


def test_ended_association_stops_scheduling() -> None:
    timeline = account_timeline([assoc("monthly", at(2026, 1, 1), at(2026, 1, 20))], PLANS, None, at(2026, 1, 22))
    assert windows(timeline.open) == [(at(2026, 1, 1), at(2026, 1, 20))]
    assert timeline.next_run_at == at(2026, 1, 23)  # only its due instant is left
    closed = account_timeline([assoc("monthly", at(2026, 1, 1), at(2026, 1, 20))], PLANS, at(2026, 1, 20), at(2026, 9, 1))
    assert closed.due == closed.open == [] and closed.next_run_at is None


def test_leap_day_and_month_end_clamping() -> None:
    on_31st = plan("m31", interval="MONTHLY", startOffset={"dayOffset": "31"})
    timeline = account_timeline([assoc("m31", at(2028, 1, 31))], {"m31": on_31st}, None, at(2028, 4, 1))
    # dayOffset 31 clamps to the month's last day: 29 Feb in 2028 (leap), 31 Mar, 30 Apr
    assert windows(timeline.due) == [(at(2028, 1, 31), at(2028, 2, 29)), (at(2028, 2, 29), at(2028, 3, 31))]
    assert windows(timeline.open) == [(at(2028, 3, 31), at(2028, 4, 30))]
    yearly = plan("y", interval="ANNUALLY", anniversaryCycle=True)
    leap = account_timeline([assoc("y", at(2028, 2, 29, 9))], {"y": yearly}, None, at(2029, 3, 1))
    # anniversary on 29 Feb 2028: the next cycle starts 28 Feb 2029 (no 29th)
    assert windows(leap.due) == [(at(2028, 2, 29, 9), at(2029, 2, 28))]
