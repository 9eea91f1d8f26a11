"""Invoice composition from quantities (pure): hand-worked amounts with the arithmetic in comments."""

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
    ADJUSTMENT_LINE,
    FIXED_FEE_LINE,
    OVERAGE_LINE,
    SLAB_LINE,
    TRUE_UP_LINE,
    USAGE_LINE,
    compose_invoice,
)
from togai_engine.plans.schemas import PricePlan, PricePlanCreate
from togai_engine.plans.validation import normalize_plan
from togai_engine.pricing import round_money

D = Decimal
JAN = Cycle(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
FEB_2028 = Cycle(datetime(2028, 2, 1, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC))


def make_plan(rate_cards: dict[str, Any], currencies: list[str] | None = None) -> PricePlan:
    data = normalize_plan(PricePlanCreate.model_validate({
        "name": "p", "pricingCycleConfig": {"interval": "MONTHLY"}, "supportedCurrencies": currencies or ["USD"],
        "rateCards": rate_cards,
    }))
    return PricePlan.model_validate({**data.model_dump(), "id": "pp_test", "createdAt": JAN.start})


def usage_card(meter: str, model: str, slabs: list[tuple[str, str, str]], currency: str = "USD",
               **config: str) -> dict[str, Any]:
    """slabs: (startAfter, priceType, rate); PACKAGE slabs use packageSize 10."""
    return {
        "usageMeterId": meter,
        "ratePlan": {"pricingModel": model, "slabs": [
            {"order": i, "startAfter": start, "priceType": kind,
             **({"slabConfig": {"packageSize": "10"}} if kind == "PACKAGE" else {})}
            for i, (start, kind, _) in enumerate(slabs, start=1)]},
        "rateValues": [{"currency": currency, "slabRates": [{"order": i, "rate": rate}
                                                            for i, (_, _, rate) in enumerate(slabs, start=1)],
                        **({"rateConfig": config} if config else {})}],
    }


TIERED = [("0", "PER_UNIT", "0.10"), ("1000", "PER_UNIT", "0.05"), ("10000", "PER_UNIT", "0.01")]


def test_tiered_usage_line_shows_exact_slabs_and_rounds_once() -> None:
    plan = make_plan({"usageRateCards": [usage_card("api", "TIERED", TIERED)]})
    invoice = compose_invoice(plan, "USD", JAN, JAN, {"api": D("12345.5")})
    (line,) = invoice.lines
    # 1000 × 0.10 = 100; 9000 × 0.05 = 450; 2345.5 × 0.01 = 23.455; sum 573.455 -> half-up 573.46
    assert [(c.quantity, c.value_per_quantity, c.value) for c in line.children] == [
        (D("1000"), D("0.10"), D("100.00")), (D("9000"), D("0.05"), D("450.00")), (D("2345.5"), D("0.01"), D("23.455")),
    ]
    assert all(c.line_type == SLAB_LINE for c in line.children)
    assert (line.line_type, line.value, line.quantity, line.usage_meter_id) == (USAGE_LINE, D("573.46"), D("12345.5"), "api")
    assert (line.usage_start, line.usage_end) == (JAN.start, JAN.end)
    assert invoice.sub_total == invoice.total == D("573.46")
    assert invoice.quantities == {"api": D("12345.5")}


def test_volume_at_a_boundary_uses_the_lower_slab_and_missing_usage_is_zero() -> None:
    plan = make_plan({"usageRateCards": [usage_card("api", "VOLUME", TIERED), usage_card("gb", "VOLUME", TIERED)]})
    invoice = compose_invoice(plan, "USD", JAN, JAN, {"api": D("1000")})
    api, gb = invoice.lines
    assert api.value == D("100.00")  # 1000 is not > 1000: all 1000 units at slab 1's 0.10
    assert gb.quantity == 0 and gb.value == D("0.00")  # no usage reported for gb -> 0
    assert invoice.total == D("100.00")


def test_package_flat_rate_and_yen_rounding() -> None:
    card = usage_card("calls", "TIERED", [("0", "PACKAGE", "7"), ("100", "PER_UNIT", "0.5")], currency="JPY")
    card["rateValues"][0]["slabRates"][1]["flatRate"] = "30"
    plan = make_plan({"usageRateCards": [card]}, currencies=["JPY"])
    invoice = compose_invoice(plan, "JPY", JAN, JAN, {"calls": D("103")})
    # slab 1: 100 units -> ceil(100/10) = 10 packages × 7 = 70; slab 2: 3 × 0.5 = 1.5, + flat 30 on entering = 31.5
    # 70 + 31.5 = 101.5 -> JPY has no minor unit: half-up -> 102
    assert [c.value for c in invoice.lines[0].children] == [D("70"), D("31.5")]
    assert invoice.lines[0].children[0].details["packageCount"] == 10
    assert invoice.total == D("102")


def test_rate_config_minimum_shows_an_adjustment_line() -> None:
    plan = make_plan({"usageRateCards": [usage_card("api", "TIERED", [("0", "PER_UNIT", "0.01")], minimumRate="5")]})
    (line,) = compose_invoice(plan, "USD", JAN, JAN, {"api": D("1")}).lines
    # 1 × 0.01 = 0.01, below the minimum 5: adjustment +4.99, card amount 5.00
    assert [(c.line_type, c.value) for c in line.children] == [(SLAB_LINE, D("0.01")), (ADJUSTMENT_LINE, D("4.99"))]
    assert line.value == D("5.00")


def test_sub_cent_rates_round_half_up_once_per_card() -> None:
    plan = make_plan({"usageRateCards": [
        usage_card("tokens", "TIERED", [("0", "PER_UNIT", "0.000000000001")]),
        usage_card("pings", "TIERED", [("0", "PER_UNIT", "0.001")]),
        usage_card("bytes", "TIERED", [("0", "PER_UNIT", "0.001")]),
    ]})
    invoice = compose_invoice(plan, "USD", JAN, JAN,
                              {"tokens": D("1000000000000"), "pings": D("5"), "bytes": D("4")})
    # 10^12 × 10^-12 = 1.00; 5 × 0.001 = 0.005 -> half-up 0.01; 4 × 0.001 = 0.004 -> 0.00
    assert [line.value for line in invoice.lines] == [D("1.00"), D("0.01"), D("0.00")]
    assert invoice.total == D("1.01")  # the sum of the rounded lines, not round(1.009) = 1.01 by luck


def test_fixed_fees_prorated_on_a_leap_february_partial_period() -> None:
    fee = {"rateValues": [{"currency": "USD", "rate": "99"}]}
    plan = make_plan({"fixedFeeRateCards": [
        {"id": "platform", "invoiceTiming": "IN_ADVANCE", "enableProration": True, **fee},
        {"id": "support", "enableProration": False, **fee},
    ]})
    partial = Cycle(datetime(2028, 2, 10, tzinfo=UTC), FEB_2028.end)
    invoice = compose_invoice(plan, "USD", partial, FEB_2028, {})
    platform, support = invoice.lines
    # Feb 2028 has 29 days; 10 Feb -> 1 Mar is 20 days: 99 × 20/29 = 68.275862... -> 68.28
    assert (platform.line_type, platform.value) == (FIXED_FEE_LINE, D("68.28"))
    assert "20 days of 29 days" in platform.description
    assert platform.details["invoiceTiming"] == "IN_ADVANCE"
    assert support.value == D("99.00")  # no proration: the full fee
    assert invoice.total == D("167.28")


def test_minimum_commitment_true_up_full_and_prorated() -> None:
    plan = make_plan({
        "usageRateCards": [usage_card("api", "TIERED", [("0", "PER_UNIT", "0.25")])],
        "fixedFeeRateCards": [{"id": "base", "rateValues": [{"currency": "USD", "rate": "99"}]}],
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "500"}]},
    })
    full = compose_invoice(plan, "USD", JAN, JAN, {"api": D("481")})
    # usage 481 × 0.25 = 120.25; fixed 99; subtotal 219.25; true-up 500 - 219.25 = 280.75; total 500.00
    assert (full.sub_total, full.true_up, full.total) == (D("219.25"), D("280.75"), D("500.00"))
    assert full.lines[-1].line_type == TRUE_UP_LINE
    over = compose_invoice(plan, "USD", JAN, JAN, {"api": D("10000")})
    assert over.true_up == 0 and over.total == D("2599.00")  # 2500 + 99 exceeds the commitment: no true-up
    half = Cycle(JAN.start, datetime(2026, 1, 16, 12, tzinfo=UTC))  # 15.5 of 31 days = exactly half
    partial = compose_invoice(plan, "USD", half, JAN, {"api": D("0")})
    # commitment share 500 × 1/2 = 250; subtotal 0 + 99 (no proration on this fee) = 99; true-up 151.00
    assert (partial.sub_total, partial.true_up, partial.total) == (D("99.00"), D("151.00"), D("250.00"))


def test_a_currency_the_plan_does_not_support_is_refused() -> None:
    plan = make_plan({})
    with pytest.raises(InvalidInput, match="does not support EUR"):
        compose_invoice(plan, "EUR", JAN, JAN, {})


quantities = st.decimals(min_value=0, max_value=10**7, places=4)


@settings(max_examples=200, deadline=None)
@given(api=quantities, gb=quantities, hours=st.integers(1, 24 * 31))
def test_totals_are_sums_of_rounded_lines(api: Decimal, gb: Decimal, hours: int) -> None:
    plan = make_plan({
        "usageRateCards": [usage_card("api", "TIERED", TIERED),
                           usage_card("gb", "VOLUME", [("0", "FLAT", "3"), ("50", "PACKAGE", "0.333")],
                                      maximumRate="400")],
        "fixedFeeRateCards": [{"id": "f", "enableProration": True, "rateValues": [{"currency": "USD", "rate": "10.01"}]}],
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "700"}]},
    })
    period = Cycle(JAN.start, JAN.start.replace(day=1) + (JAN.end - JAN.start) * hours / (24 * 31))
    invoice = compose_invoice(plan, "USD", period, JAN, {"api": api, "gb": gb})
    assert invoice.total == sum(line.value for line in invoice.lines) >= 0
    assert invoice.sub_total == sum(line.value for line in invoice.lines if line.line_type != TRUE_UP_LINE)
    for line in invoice.lines:
        assert line.value == round_money(line.value, "USD")
        if line.line_type == USAGE_LINE:
            assert line.value == round_money(sum(c.value for c in line.children), "USD")


def _overage_plan(max_quantity: str | None, **config: str) -> PricePlan:
    card = usage_card("calls", "TIERED", [("0", "PER_UNIT", "0.10"), ("100", "PER_UNIT", "0.05")], **config)
    del card["usageMeterId"]
    return make_plan({
        "billingEntitlementRateCards": [{"featureId": "calls", "usageMeterId": "calls",
                                         "featureConfigs": [{"featureCreditLimit": "1000"}]}],
        "entitlementOverageRateCards": [{"featureId": "calls", **card,
                                         **({"maxQuantity": max_quantity} if max_quantity else {})}]})


@pytest.mark.parametrize(("usage", "quantity", "value", "capped"), [
    ("0", "0", "0.00", False),
    ("999.5", "0", "0.00", False),  # below the limit: nothing over
    ("1000", "0", "0.00", False),
    ("1080", "80", "8.00", False),  # 80 × 0.10
    ("1250.5", "250.5", "17.53", False),  # 100 × 0.10 + 150.5 × 0.05 = 10 + 7.525 = 17.525 -> 17.53 (half-up)
    ("1300", "300", "20.00", False),  # at maxQuantity: 100 × 0.10 + 200 × 0.05 = 20.00
    ("5000", "300", "20.00", True),  # 4000 over, capped at 300
])
def test_overage_line_bills_usage_past_the_limit_capped_by_max_quantity(usage, quantity, value, capped) -> None:
    invoice = compose_invoice(_overage_plan("300"), "USD", JAN, JAN, {"calls": D(usage)})
    [line] = invoice.lines
    assert (line.line_type, line.quantity, line.value, line.details["capped"]) == (
        OVERAGE_LINE, D(quantity), D(value), capped)
    assert (line.usage_meter_id, line.details["usage"], line.details["featureCreditLimit"]) == (
        "calls", usage, "1000")
    assert invoice.total == D(value) and invoice.quantities == {"calls": D(usage)}


def test_a_partial_period_keeps_the_whole_limit_and_prorates_only_minimum_rate() -> None:
    plan = _overage_plan(None, minimumRate="31.00")
    second_half = Cycle(datetime(2026, 1, 17, tzinfo=UTC), JAN.end)  # 15 of 31 days
    # 1050 used: 50 over the (unprorated) 1000 -> 50 × 0.10 = 5.00 < minimumRate 31.00 × 15/31 = 15.00
    [line] = compose_invoice(plan, "USD", second_half, JAN, {"calls": D(1050)}).lines
    assert (line.quantity, line.value, line.details["minimumApplied"]) == (D(50), D("15.00"), True)
    # no cap: 9000 over -> 100 × 0.10 + 8900 × 0.05 = 10 + 445 = 455.00
    [line] = compose_invoice(plan, "USD", second_half, JAN, {"calls": D(10000)}).lines
    assert (line.quantity, line.value, line.details["maxQuantity"]) == (D(9000), D("455.00"), None)


# A fee rate the plan accepts: at most 40 significant digits (pricing.money.MAX_SIGNIFICANT_DIGITS), here 37
# before the point and 2 after; a sum of a few has more than the 28 digits of Python's default context.
large_rates = st.decimals(min_value=0, max_value=10**37 - 1, places=2)


@settings(max_examples=50, deadline=None)
@given(rates=st.lists(large_rates, min_size=2, max_size=4))
def test_totals_of_large_lines_are_their_exact_sums(rates: list[Decimal]) -> None:
    plan = make_plan({"fixedFeeRateCards": [{"id": f"f{i}", "rateValues": [{"currency": "USD", "rate": str(rate)}]}
                                            for i, rate in enumerate(rates)]})
    invoice = compose_invoice(plan, "USD", JAN, JAN, {})
    # Fractions add exactly whatever the decimal context, so they are the independent oracle.
    assert [line.value for line in invoice.lines] == rates
    assert Fraction(invoice.total) == Fraction(invoice.sub_total) == sum(Fraction(rate) for rate in rates)


def test_a_cent_beside_a_large_fee_is_not_lost() -> None:
    fee = {"id": "platform", "rateValues": [{"currency": "USD", "rate": "1000000000000000000000000000"}]}
    plan = make_plan({"usageRateCards": [usage_card("api", "TIERED", [("0", "PER_UNIT", "0.01")])],
                      "fixedFeeRateCards": [fee]})
    invoice = compose_invoice(plan, "USD", JAN, JAN, {"api": D(1)})
    # 1 × 0.01 = 0.01, plus the fee 10^27 = 1000000000000000000000000000.01: 30 digits, which the default context
    # (28 digits) would round to 10^27, dropping the cent.
    assert [str(line.value) for line in invoice.lines] == ["0.01", "1000000000000000000000000000.00"]
    assert str(invoice.total) == str(invoice.sub_total) == "1000000000000000000000000000.01"
