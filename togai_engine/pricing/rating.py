"""Rating: the price of a quantity under a usage rate card, with a breakdown per slab.

Pure functions on frozen dataclasses: no I/O, no clock. Semantics follow Togai (README.md here):
slab i covers (startAfter_i, startAfter_{i+1}]; TIERED charges each slab for its own part,
VOLUME charges the whole quantity in the one slab that contains it. The card amount is
clamped by minimumRate/maximumRate and rounded once, half-up, to the currency's minor unit.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, DecimalException, localcontext
from fractions import Fraction
from typing import Literal

from togai_engine.common.messages import quote
from togai_engine.errors import InvalidInput
from togai_engine.pricing.money import EXACT_CONTEXT, is_known_currency, round_fraction, round_money

PriceType = Literal["PER_UNIT", "FLAT", "PACKAGE"]
PricingModel = Literal["TIERED", "VOLUME"]
PRICE_TYPES: tuple[PriceType, ...] = ("PER_UNIT", "FLAT", "PACKAGE")
PRICING_MODELS: tuple[PricingModel, ...] = ("TIERED", "VOLUME")

ZERO = Decimal(0)


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slab:
    """The shape of one slab; its price per currency lives in a SlabRate with the same order."""

    order: int
    start_after: Decimal
    price_type: PriceType
    package_size: Decimal | None = None  # PACKAGE only (Togai `slabConfig.packageSize`)


@dataclass(frozen=True)
class SlabRate:
    order: int
    rate: Decimal
    flat_rate: Decimal | None = None  # charged once when usage enters the slab (beyond Togai)


@dataclass(frozen=True)
class RatePlan:
    pricing_model: PricingModel
    slabs: tuple[Slab, ...]


@dataclass(frozen=True)
class RateValue:
    """One currency's rates for a rate plan; minimum/maximum clamp the whole card amount."""

    currency: str
    slab_rates: tuple[SlabRate, ...]
    minimum_rate: Decimal | None = None
    maximum_rate: Decimal | None = None


# --- outputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlabCharge:
    order: int
    price_type: PriceType
    quantity: Decimal  # exact units of the usage charged in this slab
    rate: Decimal
    package_count: int | None  # ceil(quantity / packageSize) for PACKAGE slabs, else None
    flat_amount: Decimal  # the slab's flatRate if the slab was entered, else 0
    amount: Decimal  # exact, unrounded: the slab's charge plus flat_amount
    entered: bool  # True when the slab holds usage, and always for the first slab (TIERED)


@dataclass(frozen=True)
class RateCardCharge:
    currency: str
    quantity: Decimal
    slabs: tuple[SlabCharge, ...]
    subtotal: Decimal  # exact sum of slab amounts
    adjustment: Decimal  # exact minimumRate/maximumRate correction; 0 if neither applied
    minimum_applied: bool
    maximum_applied: bool
    amount: Decimal  # subtotal + adjustment, rounded half-up to the minor unit
    net_negative: bool = False  # the period's quantity was below zero: rated as 0 (`quantity` keeps it)


# --- rating -------------------------------------------------------------------------------------


def rate_usage(plan: RatePlan, rate: RateValue, quantity: Decimal) -> RateCardCharge:
    """Price `quantity` under `plan` with the rates of one currency.

    A net-negative quantity (corrections outweighing usage in a period) is rated as 0: a usage charge
    never goes below zero and never stops billing; the charge keeps the quantity and says so.
    """
    if not isinstance(quantity, Decimal) or not quantity.is_finite():
        raise InvalidInput("quantity", f"quantity must be a finite decimal, got {quote(quantity)}")
    validate_slabs(plan, "ratePlan")
    _check_rate_value(rate, plan, "rateValue")
    net_negative = quantity < 0
    reported = quantity if net_negative else quantity.copy_abs()  # copy_abs turns "-0" into "0"
    quantity = ZERO if net_negative else reported

    try:
        with localcontext(EXACT_CONTEXT):
            rates = {slab_rate.order: slab_rate for slab_rate in rate.slab_rates}
            slab_charges = tuple(
                _charge_slab(slab, rates[slab.order], slab_quantity, entered)
                for slab, (slab_quantity, entered) in zip(
                    plan.slabs, _slab_quantities(plan, quantity), strict=True
                )
            )
            subtotal = sum((charge.amount for charge in slab_charges), ZERO)
            clamped, minimum_applied, maximum_applied = _apply_rate_config(subtotal, rate)
            adjustment = clamped - subtotal if (minimum_applied or maximum_applied) else ZERO
    except DecimalException as exc:
        raise InvalidInput(
            "quantity",
            f"rating {quantity} needs more than {EXACT_CONTEXT.prec} significant digits to stay exact; "
            "use fewer decimal places in the quantity or the rates.",
        ) from exc

    return RateCardCharge(
        currency=rate.currency,
        quantity=reported,
        slabs=slab_charges,
        subtotal=subtotal,
        adjustment=adjustment,
        minimum_applied=minimum_applied,
        maximum_applied=maximum_applied,
        amount=round_money(clamped, rate.currency),
        net_negative=net_negative,
    )


def _slab_quantities(plan: RatePlan, quantity: Decimal) -> list[tuple[Decimal, bool]]:
    """(quantity in slab, slab entered) for each slab, in slab order."""
    slabs = plan.slabs
    if plan.pricing_model == "VOLUME":
        # The latest slab whose startAfter is below the quantity; zero usage falls in the first.
        selected = max(i for i, slab in enumerate(slabs) if i == 0 or slab.start_after < quantity)
        return [(quantity if i == selected else ZERO, i == selected) for i in range(len(slabs))]

    parts: list[tuple[Decimal, bool]] = []
    for i, slab in enumerate(slabs):
        part = quantity - slab.start_after
        if part < 0:
            part = ZERO
        if i + 1 < len(slabs):
            part = min(part, slabs[i + 1].start_after - slab.start_after)
        # The first slab is always entered: its flat amount acts as a base fee.
        parts.append((part, i == 0 or part > 0))
    return parts


def _charge_slab(slab: Slab, slab_rate: SlabRate, quantity: Decimal, entered: bool) -> SlabCharge:
    package_count: int | None = None
    if slab.price_type == "PER_UNIT":
        charge = quantity * slab_rate.rate
    elif slab.price_type == "PACKAGE":
        assert slab.package_size is not None  # guaranteed by validate_slabs
        whole, remainder = divmod(quantity, slab.package_size)
        package_count = int(whole) + (1 if remainder else 0)
        charge = package_count * slab_rate.rate
    else:  # FLAT: the rate once, for reaching the slab
        charge = slab_rate.rate if entered else ZERO
    flat_amount = slab_rate.flat_rate if entered and slab_rate.flat_rate is not None else ZERO
    return SlabCharge(
        order=slab.order,
        price_type=slab.price_type,
        quantity=quantity,
        rate=slab_rate.rate,
        package_count=package_count,
        flat_amount=flat_amount,
        amount=charge + flat_amount,
        entered=entered,
    )


def _apply_rate_config(subtotal: Decimal, rate: RateValue) -> tuple[Decimal, bool, bool]:
    """(clamped amount, minimum applied, maximum applied)."""
    if rate.minimum_rate is not None and subtotal < rate.minimum_rate:
        return rate.minimum_rate, True, False
    if rate.maximum_rate is not None and subtotal > rate.maximum_rate:
        return rate.maximum_rate, False, True
    return subtotal, False, False


# --- invoice-level helpers ----------------------------------------------------------------------


def minimum_commitment_true_up(
    commitment: Decimal, subtotal_of_rounded_lines: Decimal, currency: str
) -> Decimal:
    """The TRUE_UP line: max(0, commitment - subtotal), rounded half-up to the minor unit."""
    _require_non_negative(commitment, "commitment", "the minimum commitment")
    if not isinstance(subtotal_of_rounded_lines, Decimal) or not subtotal_of_rounded_lines.is_finite():
        raise InvalidInput(
            "subtotal", f"subtotal must be a finite decimal, got {quote(subtotal_of_rounded_lines)}"
        )
    shortfall = Fraction(commitment) - Fraction(subtotal_of_rounded_lines)
    return round_fraction(max(shortfall, Fraction(0)), currency)


def prorate_fixed_fee(amount: Decimal, served: timedelta, cycle: timedelta, currency: str) -> Decimal:
    """`amount` × served / cycle, rounded half-up once to the minor unit (exact in between)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidInput("amount", f"amount must be a finite decimal, got {quote(amount)}")
    if cycle <= timedelta(0):
        raise InvalidInput("cycle", f"the cycle length must be positive, got {cycle}.")
    if served < timedelta(0) or served > cycle:
        raise InvalidInput(
            "served", f"time on the plan ({served}) must be between 0 and the cycle length ({cycle})."
        )
    microsecond = timedelta(microseconds=1)
    return round_fraction(Fraction(amount) * Fraction(served // microsecond, cycle // microsecond), currency)


# --- validation ---------------------------------------------------------------------------------


def validate_rate_plan(
    plan: RatePlan,
    rate_values: Sequence[RateValue],
    supported_currencies: Collection[str],
    field_prefix: str,
) -> None:
    """Raise InvalidInput naming the exact field (under `field_prefix`) of the first problem."""
    validate_slabs(plan, _join(field_prefix, "ratePlan"))
    values_path = _join(field_prefix, "rateValues")
    if not rate_values:
        raise InvalidInput(
            values_path,
            f"add one rateValue per supported currency ({_listing(supported_currencies)}), "
            "each with a slabRate for every slab order.",
        )
    first_index: dict[str, int] = {}
    for j, rate_value in enumerate(rate_values):
        path = f"{values_path}[{j}]"
        currency = rate_value.currency
        _check_currency(currency, f"{path}.currency")
        if currency in first_index:
            raise InvalidInput(
                f"{path}.currency",
                f"{currency} already has a rateValue at rateValues[{first_index[currency]}]; "
                "keep one rateValue per currency.",
            )
        if currency not in supported_currencies:
            raise InvalidInput(
                f"{path}.currency",
                f"{currency} is not a supported currency of the price plan "
                f"({_listing(supported_currencies)}); "
                f"remove this rateValue or add {currency} to supportedCurrencies.",
            )
        first_index[currency] = j
        _check_rate_value(rate_value, plan, path)
    missing = [currency for currency in supported_currencies if currency not in first_index]
    if missing:
        raise InvalidInput(
            values_path,
            f"no rateValue for supported currency {', '.join(sorted(missing))}; add "
            "{currency, slabRates: [{order, rate}]} with a slabRate for every slab order.",
        )


def validate_slabs(plan: RatePlan, path: str, *, slabs: str = "slabs") -> None:
    """The checks of a rate plan's slabs (model, types, sequence, package sizes), the slabs named `{path}.{slabs}`
    (slabDetails on a PREPAID credit-grant card, whose slabs carry their rate too)."""
    if plan.pricing_model not in PRICING_MODELS:
        raise InvalidInput(
            f"{path}.pricingModel", f"{plan.pricing_model!r} is not a pricing model; use TIERED or VOLUME."
        )
    if not plan.slabs:
        raise InvalidInput(
            f"{path}.{slabs}", "add at least one slab, e.g. {order: 1, startAfter: 0, priceType: PER_UNIT}."
        )
    for i, slab in enumerate(plan.slabs):
        slab_path = f"{path}.{slabs}[{i}]"
        if isinstance(slab.order, bool) or not isinstance(slab.order, int) or slab.order < 1:
            raise InvalidInput(f"{slab_path}.order", f"order must be a positive integer, got {quote(slab.order)}")
        if slab.price_type not in PRICE_TYPES:
            raise InvalidInput(
                f"{slab_path}.priceType",
                f"{slab.price_type!r} is not a price type; use PER_UNIT, FLAT or PACKAGE.",
            )
        _require_non_negative(slab.start_after, f"{slab_path}.startAfter", "startAfter")
        _check_package_size(slab, f"{slab_path}.slabConfig.packageSize")
    # The sequence before the first slab's start: in a list written the wrong way round the first slab
    # starts high, and "set it to 0" would point the wrong way.
    _check_slab_sequence(plan.slabs, path, slabs)
    first = plan.slabs[0]
    if first.start_after != 0:
        raise InvalidInput(
            f"{path}.{slabs}[0].startAfter",
            f"the first slab must start after 0 (got {first.start_after}) so every quantity falls "
            "in a slab; set it to 0.",
        )


_SLAB_RULE = ("slabs are listed by ascending order, each starting after a greater quantity (startAfter) "
              "than the one before, the first after 0")


def _check_slab_sequence(slabs: Sequence[Slab], path: str, name: str = "slabs") -> None:
    """Orders strictly ascending and startAfter strictly increasing, in list order; an error names the
    first slab out of place and how to put the list right."""
    by_order = sorted(slabs, key=lambda s: s.order)
    sorted_fits = all(a.start_after < b.start_after for a, b in itertools.pairwise(by_order))
    if sorted_fits and by_order == list(reversed(slabs)):
        fix = "They are listed in reverse: reverse the list."
    elif sorted_fits:
        fix = "Sorted by order they are consistent: list them by ascending order."
    else:
        fix = "Give order 1 to the slab starting after 0, order 2 to the next one up, and so on, and list them so."
    for i in range(1, len(slabs)):
        slab, previous, slab_path = slabs[i], slabs[i - 1], f"{path}.{name}[{i}]"
        if slab.order == previous.order:
            raise InvalidInput(
                f"{slab_path}.order",
                f"order {slab.order} is also used by slabs[{i - 1}]; give each slab its own order.",
            )
        if slab.order < previous.order:
            raise InvalidInput(
                f"{slab_path}.order",
                f"the slabs are out of order: order {slab.order} (startAfter {slab.start_after}) is listed after "
                f"order {previous.order} (startAfter {previous.start_after}); {_SLAB_RULE}. {fix}",
            )
        if slab.start_after == previous.start_after:
            raise InvalidInput(
                f"{slab_path}.startAfter",
                f"startAfter must be greater than the previous slab's ({previous.start_after}), got "
                f"{slab.start_after}: two slabs cannot start at the same quantity; slabs must cover increasing ranges.",
            )
        if slab.start_after < previous.start_after:
            raise InvalidInput(
                f"{slab_path}.startAfter",
                f"the slabs are out of order: slabs[{i}] (order {slab.order}) starts after {slab.start_after}, below "
                f"slabs[{i - 1}] (order {previous.order}, startAfter {previous.start_after}); startAfter must be "
                f"greater than the previous slab's: {_SLAB_RULE}. {fix}",
            )




def _check_package_size(slab: Slab, path: str) -> None:
    size = slab.package_size
    if slab.price_type == "PACKAGE":
        if not isinstance(size, Decimal) or not size.is_finite() or size <= 0:
            raise InvalidInput(
                path, f"a PACKAGE slab needs slabConfig.packageSize > 0 (units per package), got {quote(size)}"
            )
    elif size is not None:
        raise InvalidInput(
            path,
            f"packageSize only applies to PACKAGE slabs; remove it or set priceType to PACKAGE (got {quote(size)})",
        )


def _check_rate_value(rate_value: RateValue, plan: RatePlan, path: str) -> None:
    _check_currency(rate_value.currency, f"{path}.currency")
    slab_orders = {slab.order for slab in plan.slabs}
    seen: dict[int, int] = {}
    for k, slab_rate in enumerate(rate_value.slab_rates):
        rate_path = f"{path}.slabRates[{k}]"
        if slab_rate.order not in slab_orders:
            raise InvalidInput(
                f"{rate_path}.order",
                f"no slab has order {slab_rate.order!r} (slab orders: {sorted(slab_orders)}); "
                "remove this slabRate or fix its order.",
            )
        if slab_rate.order in seen:
            raise InvalidInput(
                f"{rate_path}.order",
                f"slab order {slab_rate.order} already has a rate at slabRates[{seen[slab_rate.order]}]; "
                "keep one slabRate per slab.",
            )
        seen[slab_rate.order] = k
        _require_non_negative(slab_rate.rate, f"{rate_path}.rate", "rate")
        if slab_rate.flat_rate is not None:
            _require_non_negative(slab_rate.flat_rate, f"{rate_path}.flatRate", "flatRate")
    missing = sorted(slab_orders - seen.keys())
    if missing:
        raise InvalidInput(
            f"{path}.slabRates",
            f"no rate for slab order {', '.join(map(str, missing))} in {rate_value.currency}; "
            "add {order, rate} for every slab.",
        )
    minimum, maximum = rate_value.minimum_rate, rate_value.maximum_rate
    if minimum is not None:
        _require_non_negative(minimum, f"{path}.rateConfig.minimumRate", "minimumRate")
    if maximum is not None:
        _require_non_negative(maximum, f"{path}.rateConfig.maximumRate", "maximumRate")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise InvalidInput(
            f"{path}.rateConfig.minimumRate",
            f"minimumRate {minimum} is above maximumRate {maximum}; lower the minimum or raise the maximum.",
        )


def _check_currency(currency: str, path: str) -> None:
    if not is_known_currency(currency):
        raise InvalidInput(
            path,
            f"{currency!r} is not a known ISO 4217 currency code; "
            "use three upper-case letters such as 'USD'.",
        )


def _require_non_negative(value: object, path: str, name: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidInput(path, f"{name} must be a finite decimal >= 0, got {quote(value)}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _listing(currencies: Collection[str]) -> str:
    return ", ".join(sorted(currencies)) or "none"
