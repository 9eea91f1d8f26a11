"""Fixed fees' type, recurrenceConfig and IN_ADVANCE timing in invoice composition (pure), by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from togai_engine.cycles import Cycle, cycle_containing, schedule_periods
from togai_engine.invoices.compose import ComposedInvoice, compose_invoice, compose_opening_invoice
from togai_engine.invoices.fixed_fees import fee_schedule
from togai_engine.plans.schemas import PricePlan, PricePlanCreate
from togai_engine.plans.validation import normalize_plan

D = Decimal
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)


def fee(name: str, rate: str, **fields: Any) -> dict[str, Any]:
    return {"id": name, "rateValues": [{"currency": "USD", "rate": rate}], **fields}


def make_plan(*fees: dict[str, Any], commitment: str | None = None) -> PricePlan:
    cards: dict[str, Any] = {"fixedFeeRateCards": list(fees)}
    if commitment is not None:
        cards["minimumCommitment"] = {"rateValues": [{"currency": "USD", "rate": commitment}]}
    data = normalize_plan(PricePlanCreate.model_validate({
        "name": "p", "pricingCycleConfig": {"interval": "MONTHLY"}, "rateCards": cards}))
    return PricePlan.model_validate({**data.model_dump(), "id": "pp_test", "createdAt": JAN_1})


def invoices(plan: PricePlan, start: datetime, until: datetime | None, now: datetime, *,
             follows: bool = False) -> list[ComposedInvoice]:
    """Every period's invoice of an association of `plan` from `start` to `until`, as billing composes them."""
    config = plan.cycle_config
    composed = []
    for period in schedule_periods(config, start, start, until, now):
        full = cycle_containing(config, start, period.start)
        cut = (follows and period.start == start and period.start > full.start) or (
            until is not None and period.end == until and period.end < full.end)
        fees = fee_schedule(config, start, start, until, full, follows)
        composed.append(compose_invoice(plan, "USD", period, full, {}, cut_by_change=cut, fees=fees))
    return composed


def opening(plan: PricePlan, start: datetime, until: datetime | None, *, follows: bool = False) -> ComposedInvoice | None:
    """The association's advance invoice: its first period's in-advance fees, issued as it starts."""
    config = plan.cycle_config
    full = cycle_containing(config, start, start)
    first = Cycle(start, min(full.end, until) if until is not None else full.end)
    cut = (follows and start > full.start) or (until is not None and first.end == until and until < full.end)
    return compose_opening_invoice(plan, "USD", first, full, cut_by_change=cut,
                                   fees=fee_schedule(config, start, start, until, full, follows))


@given(interval=st.integers(1, 5), offset=st.integers(0, 6))
def test_recurrence_charges_exactly_the_cycles_its_rule_picks(interval: int, offset: int) -> None:
    plan = make_plan(fee("review", "10", recurrenceConfig={"interval": interval, "offset": offset}))
    # an association from 15 January: cycle 0 is [15 Jan, 1 Feb), cycles 1..11 are February to December
    totals = [i.total for i in invoices(plan, datetime(2026, 1, 15, tzinfo=UTC), None,
                                        datetime(2026, 12, 15, tzinfo=UTC))]
    assert len(totals) == 12
    assert totals == [D("10.00") if i >= offset and (i - offset) % interval == 0 else D(0) for i in range(12)]


def test_in_advance_fees_of_the_next_cycle_do_not_count_towards_this_commitment() -> None:
    plan = make_plan(fee("base", "30", invoiceTiming="IN_ADVANCE"), commitment="50")
    january, february = invoices(plan, JAN_1, None, datetime(2026, 2, 10, tzinfo=UTC))
    # January's own fee is on the advance invoice issued on January 1: 30.00, no commitment there
    advance = opening(plan, JAN_1, None)
    assert advance is not None and (advance.total, advance.true_up) == (D("30.00"), D(0))
    # January: February's 30.00 only; its own charges are 0 (paid on the advance invoice): true-up 50.00
    assert (january.sub_total, january.true_up, january.total) == (D("30.00"), D("50.00"), D("80.00"))
    # February: March's 30.00 only; its own charges are 0 (paid on January's invoice): true-up 50.00
    assert (february.sub_total, february.true_up, february.total) == (D("30.00"), D("50.00"), D("80.00"))


def test_a_setup_fee_is_never_prorated_and_an_in_advance_fee_stops_with_the_association() -> None:
    plan = make_plan(fee("setup", "100", type="ONE_TIME", enableProration=True),
                     fee("base", "28", invoiceTiming="IN_ADVANCE"))
    start, until = datetime(2026, 2, 15, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)
    first, second = invoices(plan, start, until, datetime(2026, 3, 1, tzinfo=UTC), follows=True)
    # [15 Feb, 1 Mar) after a plan change: setup 100.00 in full (in arrears, on the period's invoice)
    # March's base for [1 Mar, 8 Mar), the association ends there: 28 × 7/31 = 6.3225.. -> 6.32
    assert [line.value for line in first.lines] == [D("100.00"), D("6.32")]
    assert first.lines[1].details is not None and first.lines[1].details["servicePeriodEnd"] == until.isoformat()
    # the advance invoice of 15 February: base 28 × 14/28 = 14.00 for [15 Feb, 1 Mar) (a change prorates)
    advance = opening(plan, start, until, follows=True)
    assert advance is not None and [line.value for line in advance.lines] == [D("14.00")]
    assert advance.lines[0].details is not None and advance.lines[0].details["servicePeriodStart"] == start.isoformat()
    # [1 Mar, 8 Mar): nothing: its fee was paid ahead, April is never reached
    assert second.period == Cycle(datetime(2026, 3, 1, tzinfo=UTC), until) and second.lines == ()


def test_without_a_schedule_a_period_is_an_associations_first_and_only_one() -> None:
    plan = make_plan(fee("setup", "100", type="ONE_TIME"), fee("base", "30", invoiceTiming="IN_ADVANCE"),
                     fee("later", "5", recurrenceConfig={"interval": 1, "offset": 1}))
    jan = Cycle(JAN_1, datetime(2026, 2, 1, tzinfo=UTC))
    # setup 100.00 + base 30.00 once; "later" starts at cycle 1
    assert compose_invoice(plan, "USD", jan, jan, {}).total == D("130.00")


def test_a_version_split_mid_cycle_keeps_the_fee_beat_and_charges_no_second_setup_fee() -> None:
    """The account has been on the plan since January 1; a version migration (or a deal) splits its association
    on April 15. The split's periods count their cycles from January: April is cycle 3."""
    plan = make_plan(fee("support", "90", recurrenceConfig={"interval": 3, "offset": 0}, enableProration=True),
                     fee("setup", "500", type="ONE_TIME"))
    config = plan.cycle_config
    april = cycle_containing(config, JAN_1, datetime(2026, 4, 15, tzinfo=UTC))
    split = datetime(2026, 4, 15, tzinfo=UTC)
    # the old association's last period, [Apr 1, Apr 15): cycle 3, 90 × 14/30 = 42.00
    before = compose_invoice(plan, "USD", Cycle(april.start, split), april, {}, cut_by_change=True,
                             fees=fee_schedule(config, JAN_1, JAN_1, split, april, False))
    # the new association's first period, [Apr 15, May 1): still cycle 3, 90 × 16/30 = 48.00; no setup fee
    after = compose_invoice(plan, "USD", Cycle(split, april.end), april, {}, cut_by_change=True,
                            fees=fee_schedule(config, JAN_1, split, None, april, True, JAN_1))
    assert [(line.rate_card_name, line.value) for line in before.lines] == [("support", D("42.00"))]
    assert [(line.rate_card_name, line.value) for line in after.lines] == [("support", D("48.00"))]
    # May is cycle 4: no support fee (its beat is 0, 3, 6...)
    may = cycle_containing(config, JAN_1, april.end)
    later = compose_invoice(plan, "USD", may, may, {}, fees=fee_schedule(config, JAN_1, split, None, may, True, JAN_1))
    assert later.lines == ()
