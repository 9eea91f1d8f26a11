"""Hypothesis properties of rating: invariants that must hold for every valid rate card."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import accumulate

from hypothesis import assume, given
from hypothesis import strategies as st

from togai_engine.pricing.money import minor_unit, round_money
from togai_engine.pricing.rating import (
    PRICE_TYPES,
    PriceType,
    PricingModel,
    RateCardCharge,
    RatePlan,
    RateValue,
    Slab,
    SlabRate,
    prorate_fixed_fee,
    rate_usage,
)

CURRENCIES = ("USD", "JPY", "KWD")

quantities = st.decimals(min_value=0, max_value=10**6, places=6)
rate_amounts = st.decimals(min_value=0, max_value=1000, places=6)
slab_widths = st.decimals(min_value=Decimal("0.001"), max_value=1000, places=3)
package_sizes = st.decimals(min_value=Decimal("0.5"), max_value=100, places=1)


@st.composite
def rate_cards(
    draw: st.DrawFn,
    price_types: tuple[PriceType, ...] = PRICE_TYPES,
    one_price_type: bool = False,
    non_decreasing_rates: bool = False,
    max_slabs: int = 5,
) -> tuple[tuple[Slab, ...], RateValue]:
    """A valid plan shape and one currency's rates; optionally one price type and rising rates."""
    count = draw(st.integers(1, max_slabs))
    starts = [Decimal(0), *accumulate(draw(st.lists(slab_widths, min_size=count - 1, max_size=count - 1)))]
    if one_price_type:
        types = [draw(st.sampled_from(price_types))] * count
    else:
        types = draw(st.lists(st.sampled_from(price_types), min_size=count, max_size=count))
    shared_package_size = draw(package_sizes)
    slabs = tuple(
        Slab(
            order,
            start,
            price_type,
            (shared_package_size if one_price_type else draw(package_sizes))
            if price_type == "PACKAGE"
            else None,
        )
        for order, (start, price_type) in enumerate(zip(starts, types, strict=True), start=1)
    )
    unit_rates = draw(st.lists(rate_amounts, min_size=count, max_size=count))
    flat_rates = draw(st.lists(st.none() | rate_amounts, min_size=count, max_size=count))
    if non_decreasing_rates:
        unit_rates.sort()
        flat_rates = list(accumulate(rate or Decimal(0) for rate in flat_rates))
    bounds = sorted(draw(st.lists(rate_amounts, min_size=2, max_size=2)))
    minimum = draw(st.sampled_from([None, bounds[0]]))
    maximum = draw(st.sampled_from([None, bounds[1]]))
    value = RateValue(
        draw(st.sampled_from(CURRENCIES)),
        tuple(
            SlabRate(order, unit_rate, flat_rate)
            for order, (unit_rate, flat_rate) in enumerate(zip(unit_rates, flat_rates, strict=True), start=1)
        ),
        minimum,
        maximum,
    )
    return slabs, value


def rate(model: PricingModel, card: tuple[tuple[Slab, ...], RateValue], quantity: Decimal) -> RateCardCharge:
    slabs, value = card
    return rate_usage(RatePlan(model, slabs), value, quantity)


@given(rate_cards(), quantities)
def test_tiered_slab_quantities_sum_to_the_quantity(card, quantity: Decimal) -> None:
    charge = rate("TIERED", card, quantity)
    assert sum(slab.quantity for slab in charge.slabs) == quantity
    assert all(slab.quantity >= 0 for slab in charge.slabs)


@given(rate_cards(), quantities)
def test_volume_puts_every_unit_in_exactly_one_slab(card, quantity: Decimal) -> None:
    charge = rate("VOLUME", card, quantity)
    entered = [slab for slab in charge.slabs if slab.entered]
    assert len(entered) == 1
    assert entered[0].quantity == quantity
    # It is the latest slab starting below the quantity (the first one at zero usage).
    slabs = card[0]
    expected = max((s for s in slabs if s.start_after < quantity), key=lambda s: s.order, default=slabs[0])
    assert entered[0].order == expected.order


@given(rate_cards(), quantities, quantities)
def test_tiered_amount_never_decreases_as_quantity_grows(card, first: Decimal, second: Decimal) -> None:
    low, high = sorted((first, second))
    low_charge, high_charge = rate("TIERED", card, low), rate("TIERED", card, high)
    assert low_charge.subtotal <= high_charge.subtotal
    assert low_charge.amount <= high_charge.amount


@given(rate_cards(one_price_type=True, non_decreasing_rates=True), quantities, quantities)
def test_volume_amount_never_decreases_when_rates_rise(card, first: Decimal, second: Decimal) -> None:
    # Only with rising rates (and flatRates) and one price type: a cheaper later slab can lower the bill.
    low, high = sorted((first, second))
    low_charge, high_charge = rate("VOLUME", card, low), rate("VOLUME", card, high)
    assert low_charge.subtotal <= high_charge.subtotal
    assert low_charge.amount <= high_charge.amount


@given(rate_cards(), quantities, st.sampled_from(["TIERED", "VOLUME"]))
def test_subtotal_is_the_sum_of_slab_amounts_and_the_clamp_is_reported(
    card, quantity: Decimal, model: PricingModel
) -> None:
    charge = rate(model, card, quantity)
    value = card[1]
    assert charge.subtotal == sum(slab.amount for slab in charge.slabs)
    clamped = charge.subtotal + charge.adjustment
    assert charge.minimum_applied == (value.minimum_rate is not None and charge.subtotal < value.minimum_rate)
    assert charge.maximum_applied == (value.maximum_rate is not None and charge.subtotal > value.maximum_rate)
    if not (charge.minimum_applied or charge.maximum_applied):
        assert charge.adjustment == 0
    if value.minimum_rate is not None:
        assert clamped >= value.minimum_rate
    if value.maximum_rate is not None:
        assert clamped <= value.maximum_rate


@given(rate_cards(), quantities, st.sampled_from(["TIERED", "VOLUME"]))
def test_each_slab_amount_follows_its_price_type(card, quantity: Decimal, model: PricingModel) -> None:
    charge = rate(model, card, quantity)
    flat_rates = {slab_rate.order: slab_rate.flat_rate for slab_rate in card[1].slab_rates}
    for slab, slab_charge in zip(card[0], charge.slabs, strict=True):
        own = slab_charge.amount - slab_charge.flat_amount
        if slab.price_type == "PER_UNIT":
            assert own == slab_charge.quantity * slab_charge.rate
        elif slab.price_type == "PACKAGE":
            count = slab_charge.package_count
            assert count is not None and own == count * slab_charge.rate
            # ceil: the packages hold the quantity, one package fewer would not
            assert (count - 1) * slab.package_size < slab_charge.quantity <= count * slab.package_size or (
                count == 0 and slab_charge.quantity == 0
            )
        else:
            assert own == (slab_charge.rate if slab_charge.entered else 0)
        expected_flat = flat_rates[slab.order] if slab_charge.entered and flat_rates[slab.order] else 0
        assert slab_charge.flat_amount == expected_flat


@given(rate_cards(), quantities, st.sampled_from(["TIERED", "VOLUME"]))
def test_rounding_error_is_at_most_half_a_minor_unit(card, quantity: Decimal, model: PricingModel) -> None:
    charge = rate(model, card, quantity)
    unit = minor_unit(charge.currency)
    exact = Fraction(charge.subtotal) + Fraction(charge.adjustment)
    assert abs(Fraction(charge.amount) - exact) <= Fraction(unit) / 2
    assert charge.amount.as_tuple().exponent == unit.as_tuple().exponent


@given(rate_cards(max_slabs=1), quantities)
def test_one_slab_tiered_equals_volume(card, quantity: Decimal) -> None:
    assert rate("TIERED", card, quantity) == rate("VOLUME", card, quantity)


@st.composite
def integer_per_unit_cards(draw: st.DrawFn) -> tuple[tuple[Slab, ...], RateValue]:
    count = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 40), min_size=count - 1, max_size=count - 1))
    starts = [0, *accumulate(widths)]
    slabs = tuple(Slab(order, Decimal(start), "PER_UNIT") for order, start in enumerate(starts, start=1))
    unit_rates = draw(st.lists(rate_amounts, min_size=count, max_size=count))
    value = RateValue("USD", tuple(SlabRate(order, r) for order, r in enumerate(unit_rates, start=1)))
    return slabs, value


def unit_price(slabs: tuple[Slab, ...], value: RateValue, unit: int) -> Decimal:
    """The rate of the slab holding the `unit`-th unit: the last slab starting before it."""
    index = max(i for i, slab in enumerate(slabs) if slab.start_after < unit)
    return value.slab_rates[index].rate


@given(integer_per_unit_cards(), st.integers(0, 200))
def test_tiered_matches_pricing_unit_by_unit(card, quantity: int) -> None:
    slabs, value = card
    expected = sum((unit_price(slabs, value, unit) for unit in range(1, quantity + 1)), Decimal(0))
    assert rate("TIERED", card, Decimal(quantity)).subtotal == expected


@given(integer_per_unit_cards(), st.integers(1, 200))
def test_volume_matches_all_units_at_the_last_units_price(card, quantity: int) -> None:
    slabs, value = card
    expected = quantity * unit_price(slabs, value, quantity)
    assert rate("VOLUME", card, Decimal(quantity)).subtotal == expected


@given(
    st.decimals(min_value=0, max_value=10**6, places=4),
    st.integers(0, 31 * 86400),
    st.integers(1, 31 * 86400),
    st.sampled_from(CURRENCIES),
)
def test_prorated_fee_is_the_exact_share_rounded_once(
    amount: Decimal, served: int, cycle: int, currency: str
) -> None:
    assume(served <= cycle)
    prorated = prorate_fixed_fee(amount, timedelta(seconds=served), timedelta(seconds=cycle), currency)
    exact_share = Fraction(amount) * Fraction(served, cycle)
    assert abs(Fraction(prorated) - exact_share) <= Fraction(minor_unit(currency)) / 2
    assert 0 <= prorated <= round_money(amount, currency)


@given(st.decimals(allow_nan=False, allow_infinity=False), st.sampled_from(CURRENCIES))
def test_round_money_is_within_half_a_unit_and_idempotent(amount: Decimal, currency: str) -> None:
    assume(abs(amount.adjusted()) <= 40)
    rounded = round_money(amount, currency)
    assert abs(Fraction(rounded) - Fraction(amount)) <= Fraction(minor_unit(currency)) / 2
    assert round_money(rounded, currency) == rounded
