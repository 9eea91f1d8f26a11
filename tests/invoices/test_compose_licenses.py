"""License (seat) rate cards in compose_invoice (pure): seat spans priced by the card's ratePlan, prorated by
time or at the period's highest count, with the arithmetic in comments."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from togai_engine.cycles import Cycle
from togai_engine.errors import InvalidInput
from togai_engine.invoices.compose import (
    LICENSE_LINE,
    LICENSE_SLAB_LINE,
    LICENSE_SPAN_LINE,
    compose_invoice,
)
from togai_engine.licenses.service import Change, count_at, fold, spans_over
from togai_engine.plans.schemas import PricePlan, PricePlanCreate
from togai_engine.plans.validation import normalize_plan
from togai_engine.pricing.seats import fill_spans

D = Decimal
APRIL = Cycle(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))  # 30 days
APR_16 = datetime(2026, 4, 16, tzinfo=UTC)


def day(n: int) -> datetime:
    return datetime(2026, 4, n, tzinfo=UTC)


def seat_card(model: str = "TIERED", slabs: list[tuple[str, str]] | None = None, *, prorate: bool = True,
              **extra: Any) -> dict[str, Any]:
    """A PER_UNIT license card in USD: slabs (startAfter, rate per seat)."""
    slabs = slabs or [("0", "10")]
    return {"id": "seats", "enableProration": prorate, "ratePlan": {"pricingModel": model, "slabs": [
        {"order": i, "startAfter": start, "priceType": "PER_UNIT"} for i, (start, _) in enumerate(slabs, start=1)]},
        "rateValues": [{"currency": "USD", "slabRates": [
            {"order": i, "rate": rate} for i, (_, rate) in enumerate(slabs, start=1)]}], **extra}


def make_plan(*cards: dict[str, Any]) -> PricePlan:
    data = normalize_plan(PricePlanCreate.model_validate({
        "name": "p", "pricingCycleConfig": {"interval": "MONTHLY"}, "rateCards": {"licenseRateCards": list(cards)}}))
    return PricePlan.model_validate({**data.model_dump(), "id": "pp_seats", "createdAt": APRIL.start})


FIVE_THEN_EIGHT = [(APRIL.start, APR_16, 5), (APR_16, APRIL.end, 8)]  # 5 seats, +3 on the 16th


def test_prorated_seats_pay_each_span_by_its_share_of_the_cycle() -> None:
    invoice = compose_invoice(make_plan(seat_card()), "USD", APRIL, APRIL, {}, licenses={"seats": FIVE_THEN_EIGHT})
    (line,) = invoice.lines
    # 5 × 10 = 50 for 15 of 30 days = 25 ; 8 × 10 = 80 for 15 of 30 days = 40 ; 25 + 40 = 65.00
    # (the tool description's example: 5 × 10 + 3 × 10 × 15/30 = 65.00)
    assert (line.line_type, line.value, line.quantity, invoice.total) == (LICENSE_LINE, D("65.00"), D(8), D("65.00"))
    assert [(c.line_type, c.quantity, c.value_per_quantity, c.value, c.details["share"]) for c in line.children] == [
        (LICENSE_SPAN_LINE, D(5), D(50), D("25.0000000000"), "1/2"),
        (LICENSE_SPAN_LINE, D(8), D(80), D("40.0000000000"), "1/2")]
    assert line.details["spans"][1] == {"quantity": 8, "start": "2026-04-16T00:00:00Z", "end": "2026-05-01T00:00:00Z",
                                        "share": "1/2"}


def test_without_proration_the_period_pays_its_highest_seat_count() -> None:
    invoice = compose_invoice(make_plan(seat_card(prorate=False)), "USD", APRIL, APRIL, {},
                              licenses={"seats": FIVE_THEN_EIGHT})
    (line,) = invoice.lines
    # the most seats held in April: 8 × 10 = 80.00, the slab line below it
    assert (line.value, line.quantity) == (D("80.00"), D(8))
    assert [(c.line_type, c.quantity, c.value) for c in line.children] == [(LICENSE_SLAB_LINE, D(8), D(80))]


def test_tiered_and_volume_price_the_seat_count_through_the_slabs() -> None:
    slabs = [("0", "10"), ("5", "6")]  # seats 1-5 at 10, above 5 at 6
    tiered = make_plan(seat_card("TIERED", slabs, prorate=False))
    volume = make_plan(seat_card("VOLUME", slabs, prorate=False))
    eight = {"seats": [(APRIL.start, APRIL.end, 8)]}
    # TIERED: 5 × 10 = 50 + 3 × 6 = 18 -> 68.00 ; VOLUME: all 8 in slab 2: 8 × 6 = 48.00
    assert compose_invoice(tiered, "USD", APRIL, APRIL, {}, licenses=eight).total == D("68.00")
    assert compose_invoice(volume, "USD", APRIL, APRIL, {}, licenses=eight).total == D("48.00")
    # Prorated TIERED, 5 then 8 seats: 50 × 1/2 = 25 + 68 × 1/2 = 34 -> 59.00
    # Prorated VOLUME: 5 seats in slab 1: 50 × 1/2 = 25 + 48 × 1/2 = 24 -> 49.00 (VOLUME drops the rate at 6 seats)
    assert compose_invoice(make_plan(seat_card("TIERED", slabs)), "USD", APRIL, APRIL, {},
                           licenses={"seats": FIVE_THEN_EIGHT}).total == D("59.00")
    assert compose_invoice(make_plan(seat_card("VOLUME", slabs)), "USD", APRIL, APRIL, {},
                           licenses={"seats": FIVE_THEN_EIGHT}).total == D("49.00")


def test_prorated_shares_are_summed_exactly_and_rounded_once() -> None:
    # 1 seat at 10 for 10 of 30 days (10/3 = 3.333...) and 2 seats for 20 days (20 × 2/3 = 13.333...):
    # 10/3 + 40/3 = 50/3 = 16.666... -> 16.67 (rounding each span first gives 3.33 + 13.33 = 16.66)
    spans = [(APRIL.start, day(11), 1), (day(11), APRIL.end, 2)]
    invoice = compose_invoice(make_plan(seat_card()), "USD", APRIL, APRIL, {}, licenses={"seats": spans})
    assert invoice.total == D("16.67")
    assert [c.value for c in invoice.lines[0].children] == [D("3.3333333333"), D("13.3333333333")]


def test_no_seats_is_zero_and_a_partial_period_pays_only_its_part() -> None:
    plan = make_plan(seat_card())
    assert compose_invoice(plan, "USD", APRIL, APRIL, {}).total == D("0.00")
    # The plan starts on the 16th (a partial first period): 4 seats × 10 × 15/30 = 20.00 when prorated,
    second_half = Cycle(APR_16, APRIL.end)
    four = {"seats": [(APR_16, APRIL.end, 4)]}
    assert compose_invoice(plan, "USD", second_half, APRIL, {}, licenses=four).total == D("20.00")
    # the whole 40.00 without proration, and 20.00 again when a plan change cut the period (as fixed fees)
    whole = make_plan(seat_card(prorate=False))
    assert compose_invoice(whole, "USD", second_half, APRIL, {}, licenses=four).total == D("40.00")
    assert compose_invoice(whole, "USD", second_half, APRIL, {}, licenses=four, cut_by_change=True).total == D("20.00")


def test_rate_config_bounds_the_card_amount_per_seat_count() -> None:
    # minimumRate 30 per cycle: 1 seat (10 -> 30) for half the month = 15 ; 5 seats (50) for the other half = 25
    card = seat_card()
    card["rateValues"][0]["rateConfig"] = {"minimumRate": "30"}
    spans = {"seats": [(APRIL.start, APR_16, 1), (APR_16, APRIL.end, 5)]}
    assert compose_invoice(make_plan(card), "USD", APRIL, APRIL, {}, licenses=spans).total == D("40.00")


def test_seat_timeline_folds_absolute_and_relative_changes() -> None:
    changes = [Change(day(1), "ABSOLUTE", 5), Change(day(16), "RELATIVE", 3), Change(day(20), "RELATIVE", -6)]
    points = fold(changes)
    assert [p.count for p in points] == [5, 8, 2]
    before = datetime(2026, 3, 31, tzinfo=UTC)
    assert (count_at(points, before), count_at(points, day(16)), count_at(points, day(19))) == (0, 8, 8)
    assert spans_over(points, APRIL.start, APRIL.end) == [
        (APRIL.start, day(16), 5), (day(16), day(20), 8), (day(20), APRIL.end, 2)]
    # a period that starts after the changes holds the last count throughout
    may = (APRIL.end, datetime(2026, 6, 1, tzinfo=UTC))
    assert spans_over(points, *may) == [(*may, 2)]
    # holes hold 0 seats; equal neighbours merge
    assert fill_spans([(day(5), day(10), 3), (day(10), day(12), 3)], APRIL.start, APRIL.end) == [
        (APRIL.start, day(5), 0), (day(5), day(12), 3), (day(12), APRIL.end, 0)]


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"invoiceTiming": "IN_ADVANCE"}, "rateCards.licenseRateCards[0].invoiceTiming", "IN_ARREARS"),
    ({"ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
        {"order": 2, "startAfter": "0", "priceType": "PER_UNIT"}]}},
     "rateCards.licenseRateCards[0].ratePlan.slabs[1].startAfter", "increasing"),
    ({"id": "not an id"}, "rateCards.licenseRateCards[0].id", "not a valid id"),
])
def test_license_card_errors_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        make_plan({**seat_card(), **change})
    assert raised.value.field == field
    assert words in raised.value.reason


def test_a_license_id_appears_once_per_plan_and_unsupported_fields_are_refused() -> None:
    with pytest.raises(InvalidInput) as raised:
        make_plan(seat_card(), {**seat_card(), "name": "other"})
    assert (raised.value.field, "update_license names a card by its id" in raised.value.reason) == (
        "rateCards.licenseRateCards[1].id", True)
    for unsupported in ({"usageCycle": "WEEKLY"}, {"proratedRefundMode": "CREDITS"},
                        {"config": {"maxQuantity": 5, "maxQuantityBreachAction": "DO_NOTHING"}}):
        with pytest.raises(ValueError, match="Extra inputs are not permitted"):
            make_plan({**seat_card(), **unsupported})


@settings(max_examples=60)
@given(changes=st.lists(st.tuples(st.integers(1, 30), st.integers(0, 40)), max_size=6),
       model=st.sampled_from(["TIERED", "VOLUME"]))
def test_prorated_spans_add_up_and_a_constant_count_prorates_to_itself(changes: list[tuple[int, int]],
                                                                     model: str) -> None:
    slabs = [("0", "7.77"), ("5", "3.33"), ("20", "1.01")]
    prorated, whole = make_plan(seat_card(model, slabs)), make_plan(seat_card(model, slabs, prorate=False))
    points = fold(Change(day(d), "ABSOLUTE", n) for d, n in changes)
    spans = {"seats": spans_over(points, APRIL.start, APRIL.end)}
    line = compose_invoice(prorated, "USD", APRIL, APRIL, {}, licenses=spans).lines[0]
    # the card's line is the exact sum of its spans, rounded once: within half a cent of the shown span values
    assert abs(sum(c.value for c in line.children) - line.value) <= D("0.005") + D("1e-9") * len(line.children)
    assert sum(Fraction(c.details["share"]) for c in line.children) == 1  # the spans cover the month
    if len({c.quantity for c in line.children}) == 1:  # one count all month: proration changes nothing
        assert line.value == compose_invoice(whole, "USD", APRIL, APRIL, {}, licenses=spans).total


def test_a_seat_rate_finer_than_28_digits_is_prorated_exactly() -> None:
    # A rate of 31 significant digits (a plan accepts 40): 1 seat × 0.004999999999999999999999999999999 for all of
    # April, share 30/30. Exactly, that is just under half a cent: 0.00 half-up. Added in the default context
    # (28 digits) it became 0.005000000000000000000000000000, which rounds half-up to 0.01.
    rate = "0.004999999999999999999999999999999"
    one_seat = [(APRIL.start, APRIL.end, 1)]
    prorated = compose_invoice(make_plan(seat_card(slabs=[("0", rate)])), "USD", APRIL, APRIL, {},
                               licenses={"seats": one_seat})
    whole = compose_invoice(make_plan(seat_card(slabs=[("0", rate)], prorate=False)), "USD", APRIL, APRIL, {},
                            licenses={"seats": one_seat})
    assert prorated.total == whole.total == D("0.00")
