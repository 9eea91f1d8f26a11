"""Hand-worked rating tables: every expected amount has its arithmetic next to it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from togai_engine.errors import InvalidInput
from togai_engine.pricing.rating import (
    RateCardCharge,
    RatePlan,
    RateValue,
    Slab,
    SlabRate,
    minimum_commitment_true_up,
    prorate_fixed_fee,
    rate_usage,
    validate_rate_plan,
)

D = Decimal


def per_unit(order: int, start_after: str) -> Slab:
    return Slab(order, D(start_after), "PER_UNIT")


def rates(
    currency: str, *slab_rates: str, minimum: str | None = None, maximum: str | None = None
) -> RateValue:
    return RateValue(
        currency,
        tuple(SlabRate(order, D(rate)) for order, rate in enumerate(slab_rates, start=1)),
        D(minimum) if minimum is not None else None,
        D(maximum) if maximum is not None else None,
    )


def rate(model: str, slabs: tuple[Slab, ...], value: RateValue, quantity: str) -> RateCardCharge:
    return rate_usage(RatePlan(model, slabs), value, D(quantity))  # type: ignore[arg-type]


def slab_quantities(charge: RateCardCharge) -> list[Decimal]:
    return [slab.quantity for slab in charge.slabs]


# The §12.2 reference plan: 1.00/unit up to 100, 0.50 up to 1000, 0.10 beyond.
THREE_TIERS = (per_unit(1, "0"), per_unit(2, "100"), per_unit(3, "1000"))
THREE_TIER_RATES = rates("USD", "1.00", "0.50", "0.10")


@pytest.mark.parametrize(
    ("quantity", "in_slabs", "subtotal", "amount"),
    [
        ("0", ["0", "0", "0"], "0", "0.00"),
        ("1", ["1", "0", "0"], "1", "1.00"),  # 1×1
        ("99.99", ["99.99", "0", "0"], "99.99", "99.99"),
        ("100", ["100", "0", "0"], "100", "100.00"),  # boundary: 100 is not > 100, all in slab 1
        # just past the boundary: 100×1 + 0.000001×0.5 = 100.0000005
        ("100.000001", ["100", "0.000001", "0"], "100.0000005", "100.00"),
        ("101", ["100", "1", "0"], "100.5", "100.50"),  # 100 + 1×0.5
        ("250.75", ["100", "150.75", "0"], "175.375", "175.38"),  # 100 + 75.375; the tie rounds up
        ("1000", ["100", "900", "0"], "550", "550.00"),  # 100 + 900×0.5
        ("1001", ["100", "900", "1"], "550.1", "550.10"),  # 550 + 1×0.1
        ("1500", ["100", "900", "500"], "600", "600.00"),  # §12.2: 100 + 450 + 50
        # 10^15: 100 + 450 + (10^15 - 1000)×0.1 = 550 + 99,999,999,999,900
        ("1000000000000000", ["100", "900", "999999999999000"], "100000000000450", "100000000000450.00"),
    ],
)
def test_tiered_three_slabs(quantity: str, in_slabs: list[str], subtotal: str, amount: str) -> None:
    charge = rate("TIERED", THREE_TIERS, THREE_TIER_RATES, quantity)
    assert slab_quantities(charge) == [D(q) for q in in_slabs]
    assert charge.subtotal == D(subtotal)
    assert str(charge.amount) == amount
    assert charge.adjustment == 0 and not charge.minimum_applied and not charge.maximum_applied


@pytest.mark.parametrize(
    ("quantity", "selected_order", "subtotal", "amount"),
    [
        ("0", 1, "0", "0.00"),  # zero usage falls in the first slab
        ("100", 1, "100", "100.00"),  # §12.2: 100 is not > 100 → slab 1, 100×1
        ("100.000001", 2, "50.0000005", "50.00"),  # 100.000001×0.5
        ("101", 2, "50.5", "50.50"),  # §12.2: 101×0.5
        ("250.75", 2, "125.375", "125.38"),  # 250.75×0.5, tie rounds up
        ("1000", 2, "500", "500.00"),  # 1000×0.5 (1000 is not > 1000)
        ("1001", 3, "100.1", "100.10"),  # 1001×0.1
        ("1500", 3, "150", "150.00"),  # §12.2: 1500×0.10
    ],
)
def test_volume_three_slabs(quantity: str, selected_order: int, subtotal: str, amount: str) -> None:
    charge = rate("VOLUME", THREE_TIERS, THREE_TIER_RATES, quantity)
    # All units sit in the selected slab; no other slab holds any or is entered.
    assert [(s.order, s.quantity, s.entered) for s in charge.slabs if s.entered] == [
        (selected_order, D(quantity), True)
    ]
    assert all(s.quantity == 0 and s.amount == 0 for s in charge.slabs if s.order != selected_order)
    assert charge.subtotal == D(subtotal)
    assert str(charge.amount) == amount


def test_breakdown_echoes_each_slab_rate_and_type() -> None:
    charge = rate("TIERED", THREE_TIERS, THREE_TIER_RATES, "1500")
    assert [(s.order, s.price_type, s.rate, s.package_count, s.flat_amount) for s in charge.slabs] == [
        (1, "PER_UNIT", D("1.00"), None, 0),
        (2, "PER_UNIT", D("0.50"), None, 0),
        (3, "PER_UNIT", D("0.10"), None, 0),
    ]
    assert [s.amount for s in charge.slabs] == [D("100"), D("450"), D("50")]  # 100×1, 900×0.5, 500×0.1
    assert charge.currency == "USD" and charge.quantity == D("1500")


# --- sub-cent rates, huge quantities, currencies ------------------------------------------------

PICO = rates("USD", "0.000000000001")  # 10^-12 per unit


@pytest.mark.parametrize(
    ("quantity", "subtotal", "amount"),
    [
        ("1000000000000000", "1000", "1000.00"),  # 10^15 × 10^-12 = 10^3 exactly
        ("4999", "4.999E-9", "0.00"),
        ("4999999999", "0.004999999999", "0.00"),  # just below half a cent
        ("5000000000", "0.005", "0.01"),  # 5×10^9 × 10^-12 = half a cent → rounds up
        ("0.5", "5E-13", "0.00"),
    ],
)
def test_sub_cent_rate(quantity: str, subtotal: str, amount: str) -> None:
    charge = rate("TIERED", (per_unit(1, "0"),), PICO, quantity)
    assert charge.subtotal == D(subtotal)
    assert str(charge.amount) == amount


def test_huge_quantity_times_tiny_rate_keeps_every_digit() -> None:
    # 24 significant digits × 15 significant digits: more than the default 28-digit context holds.
    quantity = D("123456789012345.123456789")
    unit_rate = D("0.000000000000123456789012345")
    charge = rate_usage(
        RatePlan("TIERED", (per_unit(1, "0"),)), RateValue("USD", (SlabRate(1, unit_rate),)), quantity
    )
    # Worked in integers: 123456789012345123456789 × 123456789012345, scaled by 10^-(9+27).
    exact = D(f"{123456789012345123456789 * 123456789012345}E-36")
    assert charge.subtotal == exact
    assert len(charge.subtotal.as_tuple().digits) > 28


def test_result_that_cannot_stay_exact_is_refused_not_rounded() -> None:
    # 40 digits × 40 digits needs 80 significant digits, beyond the 60-digit exact context.
    quantity = D("1234567890123456789012345678901234567891")
    unit_rate = D("0.1234567890123456789012345678901234567891")
    plan = RatePlan("TIERED", (per_unit(1, "0"),))
    with pytest.raises(InvalidInput) as error:
        rate_usage(plan, RateValue("USD", (SlabRate(1, unit_rate),)), quantity)
    assert error.value.field == "quantity"


@pytest.mark.parametrize(
    ("quantity", "subtotal", "amount"),
    [
        ("1", "1.5", "2"),  # 1×1.5 → JPY has no minor unit, tie rounds up
        ("3", "4.5", "5"),  # 3×1.5
        ("2", "3.0", "3"),
        ("0", "0", "0"),
    ],
)
def test_jpy_rounds_to_whole_yen(quantity: str, subtotal: str, amount: str) -> None:
    charge = rate("TIERED", (per_unit(1, "0"),), rates("JPY", "1.5"), quantity)
    assert charge.subtotal == D(subtotal)
    assert str(charge.amount) == amount


@pytest.mark.parametrize(
    ("quantity", "subtotal", "amount"),
    [
        ("1", "0.0125", "0.013"),  # 1×0.0125, tie at the fils rounds up
        ("2", "0.025", "0.025"),
        ("3", "0.0375", "0.038"),
        ("0", "0", "0.000"),
    ],
)
def test_kwd_rounds_to_three_decimals(quantity: str, subtotal: str, amount: str) -> None:
    charge = rate("TIERED", (per_unit(1, "0"),), rates("KWD", "0.0125"), quantity)
    assert charge.subtotal == D(subtotal)
    assert str(charge.amount) == amount


def test_card_is_rounded_once_not_per_slab() -> None:
    # Two slabs of 0.004 each: 0.004 + 0.004 = 0.008 → 0.01. Rounding each slab first would give 0.00.
    charge = rate("TIERED", (per_unit(1, "0"), per_unit(2, "1")), rates("USD", "0.004", "0.004"), "2")
    assert [s.amount for s in charge.slabs] == [D("0.004"), D("0.004")]
    assert str(charge.amount) == "0.01"


# --- FLAT, flatRate, PACKAGE --------------------------------------------------------------------

BASE_FEE_PLAN = (Slab(1, D(0), "FLAT"), per_unit(2, "1000"))
BASE_FEE_RATES = rates("USD", "25", "0.01")  # 25 base fee covers the first 1000 units, then 0.01 each


@pytest.mark.parametrize(
    ("model", "quantity", "amount"),
    [
        ("TIERED", "0", "25.00"),  # the first slab is always entered: base fee at zero usage
        ("TIERED", "1000", "25.00"),  # still inside the first slab
        ("TIERED", "1500", "30.00"),  # 25 + 500×0.01
        ("VOLUME", "0", "25.00"),  # zero usage selects slab 1, whose FLAT rate is charged
        ("VOLUME", "1000", "25.00"),
        ("VOLUME", "1500", "15.00"),  # slab 2 only: 1500×0.01; the FLAT slab is not entered
    ],
)
def test_flat_first_slab_is_a_base_fee(model: str, quantity: str, amount: str) -> None:
    charge = rate(model, BASE_FEE_PLAN, BASE_FEE_RATES, quantity)
    assert str(charge.amount) == amount


@pytest.mark.parametrize(("model", "amount"), [("TIERED", "5.00"), ("VOLUME", "15.00")])
def test_reference_1000_free_example(model: str, amount: str) -> None:
    # §12.2: (1, 0, FLAT, 0), (2, 1000, PER_UNIT, 0.01) at 1500 → TIERED 0 + 500×0.01, VOLUME 1500×0.01.
    charge = rate(model, BASE_FEE_PLAN, rates("USD", "0", "0.01"), "1500")
    assert str(charge.amount) == amount


@pytest.mark.parametrize(
    ("quantity", "amount", "flat_slab_entered"),
    [
        ("10", "10.00", False),  # 10×1; slab 2 starts after 10, so it is not reached
        ("10.5", "60.00", True),  # 10×1 + 50 once for reaching slab 2
        ("100", "60.00", True),  # FLAT does not grow with the quantity
    ],
)
def test_tiered_flat_slab_charges_once_when_reached(
    quantity: str, amount: str, flat_slab_entered: bool
) -> None:
    charge = rate("TIERED", (per_unit(1, "0"), Slab(2, D(10), "FLAT")), rates("USD", "1", "50"), quantity)
    assert str(charge.amount) == amount
    assert charge.slabs[1].entered is flat_slab_entered


FLAT_RATE_PLAN = (per_unit(1, "0"), per_unit(2, "100"))
FLAT_RATE_RATES = RateValue("USD", (SlabRate(1, D("0.10"), D("5")), SlabRate(2, D("0.05"), D("20"))))


@pytest.mark.parametrize(
    ("model", "quantity", "flat_amounts", "subtotal", "amount"),
    [
        ("TIERED", "0", ["5", "0"], "5", "5.00"),  # first slab entered at zero usage: 0×0.10 + 5
        ("TIERED", "100", ["5", "0"], "15", "15.00"),  # 100×0.10 + 5; slab 2 not reached
        # 100×0.10 + 5 + 0.000001×0.05 + 20 = 35.00000005
        ("TIERED", "100.000001", ["5", "20"], "35.00000005", "35.00"),
        ("VOLUME", "0", ["5", "0"], "5", "5.00"),
        ("VOLUME", "100", ["5", "0"], "15", "15.00"),  # 100×0.10 + 5
        ("VOLUME", "101", ["0", "20"], "25.05", "25.05"),  # only slab 2: 101×0.05 + 20
    ],
)
def test_flat_rate_is_charged_once_on_entering_a_slab(
    model: str, quantity: str, flat_amounts: list[str], subtotal: str, amount: str
) -> None:
    charge = rate(model, FLAT_RATE_PLAN, FLAT_RATE_RATES, quantity)
    assert [s.flat_amount for s in charge.slabs] == [D(f) for f in flat_amounts]
    assert charge.subtotal == D(subtotal)
    assert str(charge.amount) == amount


@pytest.mark.parametrize(
    ("package_size", "quantity", "packages", "amount"),
    [
        ("10", "0", 0, "0.00"),
        ("10", "1", 1, "20.00"),  # ceil(0.1) = 1 package × 20
        ("10", "10", 1, "20.00"),  # exactly one package
        ("10", "10.000001", 2, "40.00"),  # a sliver over starts a second package
        ("10", "25", 3, "60.00"),  # §12.2: ceil(2.5) = 3 × 20
        ("2.5", "5", 2, "40.00"),  # fractional package size: 5 / 2.5 = 2
        ("2.5", "5.1", 3, "60.00"),  # ceil(2.04) = 3
    ],
)
def test_package_rounds_packages_up(package_size: str, quantity: str, packages: int, amount: str) -> None:
    for model in ("TIERED", "VOLUME"):  # one slab: both models agree
        charge = rate(model, (Slab(1, D(0), "PACKAGE", D(package_size)),), rates("USD", "20"), quantity)
        assert charge.slabs[0].package_count == packages
        assert str(charge.amount) == amount


@pytest.mark.parametrize(
    ("quantity", "packages", "amount"),
    [
        ("100", 0, "0.00"),  # slab 2 holds nothing yet
        ("101", 1, "5.00"),  # 1 unit in slab 2 → 1 package × 5
        ("1100", 1, "5.00"),  # 1000 units in slab 2 → exactly 1 package
        ("1100.5", 2, "10.00"),  # 1000.5 units → 2 packages
    ],
)
def test_tiered_package_counts_only_the_slabs_own_part(quantity: str, packages: int, amount: str) -> None:
    plan = (per_unit(1, "0"), Slab(2, D(100), "PACKAGE", D(1000)))  # 100 free, then 5 per 1000
    charge = rate("TIERED", plan, rates("USD", "0", "5"), quantity)
    assert charge.slabs[1].package_count == packages
    assert str(charge.amount) == amount


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        ("100", "100.00"),  # slab 1: 100×1
        ("101", "90.00"),  # slab 2 for all units: ceil(101/50) = 3 packages × 30
        ("150", "90.00"),  # 150/50 = 3 × 30
    ],
)
def test_volume_picks_the_package_slab(quantity: str, amount: str) -> None:
    plan = (per_unit(1, "0"), Slab(2, D(100), "PACKAGE", D(50)))
    charge = rate("VOLUME", plan, rates("USD", "1", "30"), quantity)
    assert str(charge.amount) == amount


# --- minimumRate / maximumRate ------------------------------------------------------------------


@pytest.mark.parametrize("quantity", ["0", "1"])
def test_reference_maximum_rate_caps_a_flat_slab(quantity: str) -> None:
    # §12.2: (1, 0, FLAT, 99) with maximumRate 50 → 99 clamped to 50 (at 0 too: the first slab is entered).
    charge = rate("TIERED", (Slab(1, D(0), "FLAT"),), rates("USD", "99", maximum="50"), quantity)
    assert charge.subtotal == D("99")
    assert charge.adjustment == D("-49")  # 50 - 99
    assert charge.maximum_applied and not charge.minimum_applied
    assert str(charge.amount) == "50.00"


@pytest.mark.parametrize(
    ("quantity", "subtotal", "adjustment", "minimum_applied", "amount"),
    [
        ("0", "0", "10", True, "10.00"),  # 0 → raised to 10
        ("999", "9.99", "0.01", True, "10.00"),  # 999×0.01 = 9.99 → +0.01
        ("1000", "10", "0", False, "10.00"),  # exactly the minimum: nothing to raise
        ("1500", "15", "0", False, "15.00"),
    ],
)
def test_minimum_rate_raises_the_card(
    quantity: str, subtotal: str, adjustment: str, minimum_applied: bool, amount: str
) -> None:
    charge = rate("TIERED", (per_unit(1, "0"),), rates("USD", "0.01", minimum="10"), quantity)
    assert charge.subtotal == D(subtotal)
    assert charge.adjustment == D(adjustment)
    assert charge.minimum_applied is minimum_applied
    assert not charge.maximum_applied
    assert str(charge.amount) == amount


def test_adjusted_amount_is_rounded_after_the_cap() -> None:
    # 10000 × 0.001 = 10 → capped at 5.005 (adjustment -4.995) → rounded once to 5.01.
    charge = rate("TIERED", (per_unit(1, "0"),), rates("USD", "0.001", maximum="5.005"), "10000")
    assert charge.adjustment == D("-4.995")
    assert str(charge.amount) == "5.01"


def test_minimum_and_maximum_both_set_inside_the_range() -> None:
    charge = rate("VOLUME", THREE_TIERS, rates("USD", "1", "0.5", "0.1", minimum="10", maximum="200"), "101")
    assert charge.subtotal == D("50.5")  # 101×0.5, between 10 and 200
    assert charge.adjustment == 0 and not charge.minimum_applied and not charge.maximum_applied


def test_rate_config_applies_to_the_card_not_each_slab() -> None:
    # Slab 1: 100×1 = 100, slab 2: 900×0.5 = 450 → card 550 > 300 → capped to 300 once.
    charge = rate("TIERED", THREE_TIERS, rates("USD", "1", "0.5", "0.1", maximum="300"), "1000")
    assert [s.amount for s in charge.slabs] == [D("100"), D("450"), D("0")]
    assert charge.adjustment == D("-250")
    assert str(charge.amount) == "300.00"


# --- rejected inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [D("NaN"), D("Infinity"), D("-Infinity"), 5])
def test_rate_usage_rejects_bad_quantities(quantity: object) -> None:
    with pytest.raises(InvalidInput) as error:
        rate_usage(RatePlan("TIERED", THREE_TIERS), THREE_TIER_RATES, quantity)  # type: ignore[arg-type]
    assert error.value.field == "quantity"


@pytest.mark.parametrize("quantity", [D("-1"), D("-0.000001"), D("-1e30")])
def test_a_net_negative_quantity_is_rated_as_zero(quantity: Decimal) -> None:
    charge = rate_usage(RatePlan("TIERED", THREE_TIERS), THREE_TIER_RATES, quantity)
    zero = rate_usage(RatePlan("TIERED", THREE_TIERS), THREE_TIER_RATES, D(0))
    assert charge.net_negative and not zero.net_negative
    assert charge.quantity == quantity  # the period's quantity is reported as it is
    assert (charge.amount, charge.subtotal, charge.slabs) == (zero.amount, zero.subtotal, zero.slabs)
    assert str(charge.amount) == "0.00"


def test_a_net_negative_quantity_still_pays_the_cards_minimum() -> None:
    # minimumRate 5.00 applies to a period whose usage nets to -3, exactly as to one with none
    charge = rate_usage(RatePlan("TIERED", THREE_TIERS), rates("USD", "1", "0.5", "0.1", minimum="5"), D(-3))
    assert (str(charge.amount), charge.adjustment, charge.minimum_applied) == ("5.00", D(5), True)


def test_negative_zero_quantity_is_zero() -> None:
    charge = rate_usage(RatePlan("TIERED", THREE_TIERS), THREE_TIER_RATES, D("-0"))
    assert not charge.quantity.is_signed()
    assert str(charge.amount) == "0.00"


def test_rate_usage_refuses_an_inconsistent_card() -> None:
    with pytest.raises(InvalidInput) as error:
        rate_usage(RatePlan("TIERED", THREE_TIERS), rates("USD", "1", "0.5"), D(1))  # no rate for slab 3
    assert error.value.field == "rateValue.slabRates"
    with pytest.raises(InvalidInput) as error:
        rate_usage(RatePlan("TIERED", (per_unit(2, "0"), per_unit(1, "100"))), THREE_TIER_RATES, D(1))
    assert error.value.field == "ratePlan.slabs[1].order"


# --- minimum commitment and proration -----------------------------------------------------------


@pytest.mark.parametrize(
    ("commitment", "subtotal", "currency", "true_up"),
    [
        ("100", "30.50", "USD", "69.50"),  # 100 - 30.50
        ("100", "100.00", "USD", "0.00"),  # met exactly
        ("100", "130.50", "USD", "0.00"),  # exceeded: never negative
        ("10.005", "0", "USD", "10.01"),  # the true-up line is rounded half-up
        ("1000", "999.999", "KWD", "0.001"),
        ("1000", "999", "JPY", "1"),
    ],
)
def test_minimum_commitment_true_up(commitment: str, subtotal: str, currency: str, true_up: str) -> None:
    assert str(minimum_commitment_true_up(D(commitment), D(subtotal), currency)) == true_up


def test_minimum_commitment_must_not_be_negative() -> None:
    with pytest.raises(InvalidInput) as error:
        minimum_commitment_true_up(D("-1"), D("0"), "USD")
    assert error.value.field == "commitment"


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("amount", "served", "cycle", "currency", "prorated"),
    [
        ("99", 10 * DAY, 30 * DAY, "USD", "33.00"),  # 99 × 10/30
        ("10", 10 * DAY, 30 * DAY, "USD", "3.33"),  # 3.333…
        ("20", 10 * DAY, 30 * DAY, "USD", "6.67"),  # 6.666…
        ("99", 14 * DAY, 28 * DAY, "USD", "49.50"),  # half of February
        ("99", 30 * DAY, 30 * DAY, "USD", "99.00"),  # the whole cycle
        ("99", timedelta(0), 30 * DAY, "USD", "0.00"),
        ("0.01", 15 * DAY, 30 * DAY, "USD", "0.01"),  # 0.005 is a tie → up
        ("1000", 10 * DAY, 30 * DAY, "JPY", "333"),  # 333.33… yen
        ("30", timedelta(seconds=1), 30 * DAY, "USD", "0.00"),  # 30 / 2,592,000 ≈ 0.0000116
        ("1", 12 * timedelta(hours=1), DAY, "KWD", "0.500"),
    ],
)
def test_prorate_fixed_fee(
    amount: str, served: timedelta, cycle: timedelta, currency: str, prorated: str
) -> None:
    assert str(prorate_fixed_fee(D(amount), served, cycle, currency)) == prorated


@pytest.mark.parametrize(
    ("served", "cycle", "field"),
    [
        (31 * DAY, 30 * DAY, "served"),  # more time on the plan than the cycle has
        (-DAY, 30 * DAY, "served"),
        (DAY, timedelta(0), "cycle"),
    ],
)
def test_prorate_rejects_impossible_periods(served: timedelta, cycle: timedelta, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        prorate_fixed_fee(D("10"), served, cycle, "USD")
    assert error.value.field == field


# --- validation: exact field paths --------------------------------------------------------------

PREFIX = "rateCards.usageRateCards[0]"
VALID_PLAN = RatePlan(
    "TIERED", (per_unit(1, "0"), Slab(2, D(100), "PACKAGE", D(10)), Slab(3, D(1000), "FLAT"))
)
VALID_VALUES = (
    RateValue(
        "USD", (SlabRate(1, D("1")), SlabRate(2, D("2"), D("5")), SlabRate(3, D("3"))), D("1"), D("100")
    ),
    RateValue("EUR", (SlabRate(1, D("1")), SlabRate(2, D("2")), SlabRate(3, D("3")))),
)
SUPPORTED = ("USD", "EUR")


def assert_rejected(
    field: str,
    plan: RatePlan = VALID_PLAN,
    values: tuple[RateValue, ...] = VALID_VALUES,
    supported: tuple[str, ...] = SUPPORTED,
    hint: str = "",
) -> None:
    with pytest.raises(InvalidInput) as error:
        validate_rate_plan(plan, values, supported, PREFIX)
    assert error.value.field == field
    assert hint in error.value.reason


def with_slab(index: int, **changes: object) -> RatePlan:
    slabs = list(VALID_PLAN.slabs)
    slabs[index] = replace(slabs[index], **changes)
    return replace(VALID_PLAN, slabs=tuple(slabs))


def with_usd(**changes: object) -> tuple[RateValue, ...]:
    return (replace(VALID_VALUES[0], **changes), VALID_VALUES[1])


def with_usd_rate(index: int, **changes: object) -> tuple[RateValue, ...]:
    slab_rates = list(VALID_VALUES[0].slab_rates)
    slab_rates[index] = replace(slab_rates[index], **changes)
    return with_usd(slab_rates=tuple(slab_rates))


def test_valid_plan_passes() -> None:
    assert validate_rate_plan(VALID_PLAN, VALID_VALUES, SUPPORTED, PREFIX) is None
    assert validate_rate_plan(VALID_PLAN, VALID_VALUES, {"EUR", "USD"}, PREFIX) is None


def test_plan_shape_errors_name_the_field() -> None:
    assert_rejected(
        f"{PREFIX}.ratePlan.pricingModel", plan=replace(VALID_PLAN, pricing_model="GRADUATED"), hint="VOLUME"
    )
    assert_rejected(f"{PREFIX}.ratePlan.slabs", plan=replace(VALID_PLAN, slabs=()), hint="at least one slab")
    assert_rejected(
        f"{PREFIX}.ratePlan.slabs[0].startAfter", plan=with_slab(0, start_after=D(10)), hint="set it to 0"
    )
    assert_rejected(
        f"{PREFIX}.ratePlan.slabs[1].startAfter", plan=with_slab(1, start_after=D(0)), hint="greater"
    )
    assert_rejected(
        f"{PREFIX}.ratePlan.slabs[2].startAfter", plan=with_slab(2, start_after=D(50)), hint="greater"
    )
    assert_rejected(
        f"{PREFIX}.ratePlan.slabs[1].startAfter", plan=with_slab(1, start_after=D(-5)), hint=">= 0"
    )
    assert_rejected(f"{PREFIX}.ratePlan.slabs[1].startAfter", plan=with_slab(1, start_after=D("NaN")))
    assert_rejected(f"{PREFIX}.ratePlan.slabs[0].priceType", plan=with_slab(0, price_type="STAIRSTEP"))


def test_slab_order_errors_name_the_field() -> None:
    assert_rejected(f"{PREFIX}.ratePlan.slabs[1].order", plan=with_slab(1, order=1), hint="its own order")
    assert_rejected(f"{PREFIX}.ratePlan.slabs[2].order", plan=with_slab(2, order=0), hint="positive")
    assert_rejected(f"{PREFIX}.ratePlan.slabs[0].order", plan=with_slab(0, order=True))
    # orders 1, 4, 3: slab 3 is listed after slab 4
    assert_rejected(f"{PREFIX}.ratePlan.slabs[2].order", plan=with_slab(1, order=4), hint="ascending")


def test_package_size_errors_name_the_field() -> None:
    path = f"{PREFIX}.ratePlan.slabs[1].slabConfig.packageSize"
    assert_rejected(path, plan=with_slab(1, package_size=None), hint="packageSize > 0")
    assert_rejected(path, plan=with_slab(1, package_size=D(0)))
    assert_rejected(path, plan=with_slab(1, package_size=D(-10)))
    assert_rejected(
        f"{PREFIX}.ratePlan.slabs[0].slabConfig.packageSize",
        plan=with_slab(0, package_size=D(5)),
        hint="PACKAGE",
    )


def test_currency_coverage_errors_name_the_field() -> None:
    assert_rejected(f"{PREFIX}.rateValues", values=(), hint="USD")
    assert_rejected(f"{PREFIX}.rateValues", values=VALID_VALUES[:1], hint="EUR")  # EUR has no rates
    assert_rejected(
        f"{PREFIX}.rateValues[1].currency",
        values=(VALID_VALUES[0], replace(VALID_VALUES[1], currency="GBP")),
        hint="supportedCurrencies",
    )
    assert_rejected(
        f"{PREFIX}.rateValues[1].currency", values=(VALID_VALUES[0], VALID_VALUES[0]), hint="rateValues[0]"
    )
    assert_rejected(f"{PREFIX}.rateValues[0].currency", values=with_usd(currency="usd"), hint="upper-case")
    assert_rejected(
        f"{PREFIX}.rateValues[0].currency", values=with_usd(currency="ZZZ"), supported=("ZZZ", "EUR")
    )


def test_slab_rate_errors_name_the_field() -> None:
    usd = VALID_VALUES[0]
    assert_rejected(
        f"{PREFIX}.rateValues[0].slabRates",
        values=with_usd(slab_rates=usd.slab_rates[::2]),
        hint="slab order 2",
    )
    assert_rejected(
        f"{PREFIX}.rateValues[0].slabRates[3].order",
        values=with_usd(slab_rates=(*usd.slab_rates, SlabRate(9, D(1)))),
        hint="no slab has order 9",
    )
    assert_rejected(
        f"{PREFIX}.rateValues[0].slabRates[1].order",
        values=with_usd(slab_rates=(usd.slab_rates[0], usd.slab_rates[0], *usd.slab_rates[1:])),
        hint="slabRates[0]",
    )
    assert_rejected(f"{PREFIX}.rateValues[0].slabRates[1].rate", values=with_usd_rate(1, rate=D("-0.01")))
    assert_rejected(f"{PREFIX}.rateValues[0].slabRates[0].rate", values=with_usd_rate(0, rate=D("Infinity")))
    assert_rejected(f"{PREFIX}.rateValues[0].slabRates[1].flatRate", values=with_usd_rate(1, flat_rate=D(-5)))
    eur = VALID_VALUES[1]
    bad_eur = replace(eur, slab_rates=(replace(eur.slab_rates[0], rate=D(-1)), *eur.slab_rates[1:]))
    assert_rejected(f"{PREFIX}.rateValues[1].slabRates[0].rate", values=(usd, bad_eur))


def test_rate_config_errors_name_the_field() -> None:
    config = f"{PREFIX}.rateValues[0].rateConfig"
    assert_rejected(f"{config}.minimumRate", values=with_usd(minimum_rate=D(-1)))
    assert_rejected(f"{config}.maximumRate", values=with_usd(maximum_rate=D(-1)))
    assert_rejected(
        f"{config}.minimumRate",
        values=with_usd(minimum_rate=D(101), maximum_rate=D(100)),
        hint="maximumRate 100",
    )
    # equal bounds are allowed: the card always costs exactly that
    validate_rate_plan(VALID_PLAN, with_usd(minimum_rate=D(7), maximum_rate=D(7)), SUPPORTED, PREFIX)


def test_empty_prefix_has_no_leading_dot() -> None:
    with pytest.raises(InvalidInput) as error:
        validate_rate_plan(replace(VALID_PLAN, slabs=()), VALID_VALUES, SUPPORTED, "")
    assert error.value.field == "ratePlan.slabs"
