"""Composing an invoice for one billing period from quantities: pure (no I/O, no clock).

Top-level lines are rounded once, half-up, to the currency's minor unit: one per usage rate card
(its slab lines and any rate-config adjustment below it carry the exact values), one per license (seat) card,
one per entitlement overage card (the overage its feature meter's usage adds to the quota's cycle: usage past
featureCreditLimit, at most maxQuantity, counted from the cycle's start as check_entitlement counts it, priced like
usage; the limit is not prorated in a partial period, see README), one per fixed fee and cycle it pays for
on this invoice (fixed_fees.py: type, recurrenceConfig, IN_ADVANCE; prorated by time when the card says so and
the period is partial, or a plan change cut it), and the minimum-commitment true-up. Pricing rules run between
the rate cards and the true-up (pricing_rules.py), adding lines or setting a card's line. The subtotal and
total are sums of rounded top-level lines, so they always add up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from togai_engine.common.numbers import EXACT_MONEY_CONTEXT, EXACT_QUANTITY_CONTEXT, exact_sum
from togai_engine.common.validation import instant_text
from togai_engine.cycles import Cycle, cycle_fraction
from togai_engine.errors import InvalidInput
from togai_engine.invoices.fixed_fees import ChargeTiming, FeeCharge, FeePart, FeeSchedule, fee_charges
from togai_engine.invoices.pricing_rules import PRICING_RULE_LINE, apply_pricing_rules
from togai_engine.plans.schemas import (
    CreditGrantRateCard,
    FixedFeeRateCard,
    LicenseRateCard,
    OveragePricing,
    PricePlan,
    UsagePricing,
)
from togai_engine.pricing import (
    DECIMAL_CONTEXT,
    RateCardCharge,
    minimum_commitment_true_up,
    prorate_fixed_fee,
    rate_usage,
    round_fraction,
    round_money,
)
from togai_engine.pricing.seats import SeatCharge, SeatSpan, SpanCharge, rate_seats
from togai_engine.wallets.rate_cards import PREPAID, card_grant, is_prepaid

USAGE_LINE = "USAGE_RATE_CARD_AMOUNT"
SLAB_LINE = "USAGE_RATE_CARD_SLAB_AMOUNT"
ADJUSTMENT_LINE = "RATE_CONFIG_ADJUSTMENT_AMOUNT"
FIXED_FEE_LINE = "FIXED_FEE_RATE_CARD_AMOUNT"
LICENSE_LINE = "LICENSE_RATE_CARD_AMOUNT"
LICENSE_SLAB_LINE = "LICENSE_RATE_CARD_SLAB_AMOUNT"
LICENSE_SPAN_LINE = "LICENSE_SPAN_AMOUNT"  # one span of constant seats of a prorated license card
SPAN_DECIMALS = Decimal("1e-10")  # a span line shows its exact share to 10 places; the card's line is exact
TRUE_UP_LINE = "TRUE_UP_AMOUNT"
OVERAGE_LINE = "ENTITLEMENT_OVERAGE_AMOUNT"
CREDIT_GRANT_LINE = "CREDIT_GRANT_RATE_CARD_AMOUNT"  # PREPAID credits sold (granted once the invoice is PAID)
LATE_USAGE_LINE = "LATE_USAGE_AMOUNT"  # usage of an earlier, closed period (late_usage.py)
PAYS_LATER_PERIOD = "paysLaterPeriod"  # a fixed-fee line's detail: it pays a period after the invoice's own
ZERO = Decimal(0)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class ComposedLine:
    line_type: str
    description: str
    value: Decimal  # rounded for top-level lines, exact for child lines
    rate_card_name: str | None = None
    quantity: Decimal | None = None
    value_per_quantity: Decimal | None = None
    usage_meter_id: str | None = None
    usage_start: datetime | None = None
    usage_end: datetime | None = None
    details: dict[str, Any] | None = None
    children: tuple[ComposedLine, ...] = ()


@dataclass(frozen=True)
class ComposedInvoice:
    currency: str
    period: Cycle
    lines: tuple[ComposedLine, ...]
    sub_total: Decimal  # sum of the lines but the true-up (rate cards, pricing rules, late usage)
    true_up: Decimal
    total: Decimal  # sub_total + true_up; never negative (pricing rules never take sub_total below 0)
    quantities: Mapping[str, Decimal] = field(default_factory=dict)  # per usage meter, as billed
    rule_logs: tuple[dict[str, Any], ...] = ()  # one entry per pricing rule, in order (pricing_rules.py)


@dataclass(frozen=True)
class CycleUsage:
    """Per meter, the usage of the quota's cycle (cycles.usage_cycle, what check_entitlement counts) before a period
    and through its end, read from the cycle's start: the base of the period's entitlement overage (README). A
    period that starts its quota's cycle has none: nothing before it, its own usage through its end."""

    start: datetime  # the quota's cycle start, before the period's
    before: Mapping[str, Decimal]
    through: Mapping[str, Decimal]


def _text(value: Decimal) -> str:
    """A decimal as plain digits (no exponent), for descriptions."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _span(duration: timedelta) -> str:
    if duration % timedelta(days=1) == timedelta(0):
        return f"{duration.days} days"
    return f"{_text(Decimal(duration // _MICROSECOND) / Decimal(3_600_000_000))} hours"


def compose_invoice(
    plan: PricePlan, currency: str, period: Cycle, full_cycle: Cycle, quantities: Mapping[str, Decimal],
    *, cut_by_change: bool = False, licenses: Mapping[str, Sequence[SeatSpan]] | None = None,
    cycle_index: int = 0,
    fees: FeeSchedule | None = None,
    opening_fees: bool = False,
    cycle_usage: CycleUsage | None = None,
) -> ComposedInvoice:
    """The invoice of `period` (a clipped part of `full_cycle` or the whole of it) under `plan`.

    `quantities` maps usage meter id -> quantity over the period; a missing meter means 0.
    `cut_by_change`: a plan change or a plan's end cut the period short (cycles.cut_by_change); its fixed
    fees are then prorated whatever their enableProration, which governs an account's first partial period.
    `licenses` maps a license id -> its seat spans (start, end, count) over the period (licenses/README.md);
    an instant no span covers holds 0 seats.
    `cycle_index`: the period's place in its plan association (0 for the first), for pricing rules.
    `fees`: where the period sits in its plan association, for the fees' type, recurrenceConfig and
    IN_ADVANCE timing (fixed_fees.py); None prices the period as a quote of one whole cycle, cycle `cycle_index`
    (its own fees once, a ONE_TIME fee in cycle 0 only).
    `opening_fees`: the invoice also carries the first period's in-advance fees, which otherwise are on the
    association's advance invoice (compose_opening_invoice): only invoices opened before migration 0021 do.
    `cycle_usage`: the quota's cycle usage before the period and through its end, when the period does not start
    that cycle (a plan change, a new deal or a version moved IMMEDIATE cut it): its overage cards bill only the
    overage its usage adds to the cycle's.
    """
    _check_currency(plan, currency)
    partial = period != full_cycle
    lines: list[ComposedLine] = []
    billed: dict[str, Decimal] = {}
    for usage in plan.usage_pricing:
        quantity = quantities.get(usage.card.usageMeterId, ZERO)
        billed[usage.card.usageMeterId] = quantity
        lines.append(usage_line(usage, currency, period, quantity, full_cycle if partial else None))
    for seats in plan.license_pricing:
        lines.append(license_line(seats, currency, period, full_cycle, (licenses or {}).get(seats.card.id, ()),
                                  cut_by_change=cut_by_change))
    for overage in plan.overage_pricing:
        usage_of_meter = quantities.get(overage.usage_meter_id, ZERO)
        billed.setdefault(overage.usage_meter_id, usage_of_meter)
        lines.append(overage_line(overage, currency, period, usage_of_meter, full_cycle if partial else None,
                                  cycle_usage=cycle_usage))
    lines += _fee_lines(plan, currency, period, full_cycle, cut_by_change, fees,
                        "BOTH" if opening_fees else "PERIOD", quoted_cycle=cycle_index if fees is None else 0)
    rule_logs: tuple[dict[str, Any], ...] = ()
    if plan.pricingRules:  # after the rate cards, before the true-up (pricing_rules.py)
        lines, rule_logs = apply_pricing_rules(plan.compiled_rules, lines, currency, billed, cycle_index, _rule_line)
    sub_total = exact_sum(line.value for line in lines)
    # in-advance fees of a later period (as the rules left them) count in the subtotal, not towards this commitment
    ahead = exact_sum(line.value for line in lines if line.details and line.details.get(PAYS_LATER_PERIOD))
    true_up = ZERO
    commitment = plan.rateCards.minimumCommitment
    if commitment is not None:
        committed = next(v.rate for v in commitment.rateValues if v.currency == currency)
        true_up = _true_up(committed, EXACT_MONEY_CONTEXT.subtract(sub_total, ahead), currency, period, full_cycle)
        lines.append(ComposedLine(
            line_type=TRUE_UP_LINE,
            description=f"{commitment.displayName}: true-up to {_text(committed)} {currency}"
                        + (" (prorated)" if partial else ""),
            value=true_up, rate_card_name="minimum_commitment", value_per_quantity=committed,
            details={"minimumCommitment": str(committed), "subTotal": str(sub_total), "prorated": partial},
        ))
    return ComposedInvoice(
        currency=currency, period=period, lines=tuple(lines), sub_total=sub_total, true_up=true_up,
        total=EXACT_MONEY_CONTEXT.add(sub_total, true_up), quantities=billed, rule_logs=rule_logs,
    )


def compose_opening_invoice(plan: PricePlan, currency: str, period: Cycle, full_cycle: Cycle, *,
                            cut_by_change: bool, fees: FeeSchedule) -> ComposedInvoice | None:
    """The advance invoice (Togai's STANDARD_ADVANCED) of an association's first `period`: the in-advance charges
    of that period, which no earlier invoice carried; None when there is nothing to invoice (no such charge, or
    only ones of 0.00: a PREPAID sale is one even at 0.00, as paying it grants). Pricing rules and the minimum
    commitment belong to the period's own invoice and do not run here."""
    _check_currency(plan, currency)
    lines = _fee_lines(plan, currency, period, full_cycle, cut_by_change, fees, "OPENING")
    if not any(line.value or line.line_type == CREDIT_GRANT_LINE for line in lines):
        return None
    total = exact_sum(line.value for line in lines)
    return ComposedInvoice(currency=currency, period=period, lines=tuple(lines),
                           sub_total=total, true_up=ZERO, total=total)


def _check_currency(plan: PricePlan, currency: str) -> None:
    if currency not in plan.supportedCurrencies:
        raise InvalidInput("currency", f"price plan {plan.id!r} does not support {currency}; it supports "
                                       f"{', '.join(plan.supportedCurrencies)}")


def _fee_lines(plan: PricePlan, currency: str, period: Cycle, full_cycle: Cycle, cut_by_change: bool,
               fees: FeeSchedule | None, part: FeePart, *, quoted_cycle: int = 0) -> list[ComposedLine]:
    """The fixed fees, and the PREPAID credits sold, that `part` of the period's invoicing carries (without `fees`,
    a quote of cycle `quoted_cycle`)."""
    lines: list[ComposedLine] = []
    for fee in plan.rateCards.fixedFeeRateCards:
        rate = next(v.rate for v in fee.rateValues if v.currency == currency)
        lines.extend(fixed_fee_line(fee, rate, currency, charge) for charge in fee_charges(
            fee, period, full_cycle, cut_by_change, fees, part=part, quoted_cycle=quoted_cycle))
    for i, card in enumerate(plan.rateCards.creditGrantRateCards):
        if not is_prepaid(card.invoiceTiming):
            continue
        for charge in fee_charges(ChargeTiming("IN_ADVANCE", card.type), period, full_cycle, cut_by_change, fees,
                                  part=part, quoted_cycle=quoted_cycle):
            line = credit_purchase_line(plan.id, card, currency, charge.period, f"creditGrantRateCards[{i}]")
            if line is not None:
                lines.append(line)
    return lines


def credit_purchase_line(plan_id: str, card: CreditGrantRateCard, currency: str, service: Cycle,
                         path: str) -> ComposedLine | None:
    """A PREPAID card's credits for `service` (the association's part of a cycle), sold in advance: the line carries
    the grant that update_invoice_status(PAID) issues (app/prepaid.py); None when it sells none in `currency`."""
    grant = card_grant(card.model_dump(), plan_id, currency, service, path)
    if grant is None:
        return None
    credits = grant.amount  # what is sold is what the grant gives (the creditAmount in the currency's minor unit)
    row = next(r for r in card.rateDetails.currencySlabRateDetails if r.currency == currency)
    price = rate_usage(*row.rate_plan(card.rateDetails.pricingModel), credits)
    name = card.displayName or card.name or "Credits"
    return ComposedLine(
        line_type=CREDIT_GRANT_LINE,
        description=f"{name}: {_text(credits)} credits, prepaid for {_day(service.start)} – {_day(service.end)} "
                    "(granted when this invoice is paid)",
        value=price.amount, rate_card_name=card.name, quantity=credits,
        details={"invoiceTiming": PREPAID, PAYS_LATER_PERIOD: True, "pricingModel": card.rateDetails.pricingModel,
                 "subtotal": str(price.subtotal), "creditAmount": str(credits), "grantorId": grant.grantor_id,
                 "priority": grant.priority, "purpose": grant.purpose, "oneTime": grant.one_time,
                 "effectiveFrom": grant.effective_from.isoformat(),
                 "effectiveUntil": grant.effective_until.isoformat() if grant.effective_until else None,
                 "applicableEntityIds": list(grant.applicable_entity_ids) if grant.applicable_entity_ids else None,
                 "servicePeriodStart": service.start.isoformat(), "servicePeriodEnd": service.end.isoformat()})


def _rule_line(description: str, value: Decimal, details: dict[str, Any]) -> ComposedLine:
    return ComposedLine(line_type=PRICING_RULE_LINE, description=description, value=value, details=details)


def fixed_fee_line(fee: FixedFeeRateCard, rate: Decimal, currency: str, charge: FeeCharge) -> ComposedLine:
    """The fee's line for one cycle it pays for; an in-advance line names that cycle."""
    period, full_cycle = charge.period, charge.full_cycle
    details: dict[str, Any] = {"invoiceTiming": fee.invoiceTiming, "enableProration": fee.enableProration,
                               "type": fee.type}
    description = fee.displayName or fee.name or "Fixed fee"
    if charge.prorated:
        value = prorate_fixed_fee(rate, period.duration, full_cycle.duration, currency)
        fraction = cycle_fraction(period, full_cycle)
        details |= {"prorated": True, "fraction": str(fraction), "cycleStart": full_cycle.start.isoformat(),
                    "cycleEnd": full_cycle.end.isoformat()}
        description = f"{description} (prorated: {_span(period.duration)} of {_span(full_cycle.duration)})"
    else:
        value = round_money(rate, currency)
    if charge.in_advance:
        details[PAYS_LATER_PERIOD] = True
    if fee.invoiceTiming == "IN_ADVANCE":
        # the period paid for: a credit note for an in-advance fee cut short reads it (app/advance_credits.py)
        details |= {"servicePeriodStart": period.start.isoformat(), "servicePeriodEnd": period.end.isoformat(),
                    "cycleStart": full_cycle.start.isoformat(), "cycleEnd": full_cycle.end.isoformat()}
        description = f"{description} (in advance for {_day(period.start)} – {_day(period.end)})"
    return ComposedLine(
        line_type=FIXED_FEE_LINE, description=description, value=value, rate_card_name=fee.name,
        quantity=Decimal(1), value_per_quantity=rate, details=details,
    )


def _day(instant: datetime) -> str:
    return instant.date().isoformat() if instant.time() == time(0) else instant.isoformat()


def with_late_usage(invoice: ComposedInvoice, late_lines: Sequence[ComposedLine]) -> ComposedInvoice:
    """`invoice` with late-usage lines (each >= 0, rounded) after its own: they count in the subtotal and the
    total, not towards this period's minimum commitment (its true-up is of this period's charges only)."""
    if not late_lines:
        return invoice
    extra = exact_sum(line.value for line in late_lines)
    return replace(invoice, lines=(*invoice.lines, *late_lines),
                   sub_total=EXACT_MONEY_CONTEXT.add(invoice.sub_total, extra),
                   total=EXACT_MONEY_CONTEXT.add(invoice.total, extra))


def usage_charge(usage: UsagePricing, currency: str, period: Cycle, quantity: Decimal,
                 full_cycle: Cycle | None = None) -> RateCardCharge:
    """The card's charge for `quantity` in `period`; with `full_cycle` (a partial period) its minimumRate
    counts by time share."""
    rate = usage.rate_values[currency]
    if full_cycle is not None and rate.minimum_rate:
        rate = replace(rate, minimum_rate=rate.minimum_rate * cycle_fraction(period, full_cycle))
    return rate_usage(usage.rate_plan, rate, quantity)


def usage_line(usage: UsagePricing, currency: str, period: Cycle, quantity: Decimal,
               full_cycle: Cycle | None = None) -> ComposedLine:
    """The card's line for `period`; with `full_cycle` (a partial period) its minimumRate counts by time share,
    as the minimum commitment does."""
    card = usage.card
    charge = usage_charge(usage, currency, period, quantity, full_cycle)
    description = f"{card.displayName or card.name}: {_text(quantity)} units"
    if charge.net_negative:
        description += " (usage net negative: corrections exceed usage; charged as 0 units)"
    return ComposedLine(
        line_type=USAGE_LINE,
        description=description,
        value=charge.amount,
        rate_card_name=card.name,
        quantity=quantity,
        usage_meter_id=usage.meter_id,
        usage_start=period.start,
        usage_end=period.end,
        details={"pricingModel": usage.rate_plan.pricing_model, "subtotal": str(charge.subtotal),
                 "adjustment": str(charge.adjustment), "minimumApplied": charge.minimum_applied,
                 "maximumApplied": charge.maximum_applied, "netNegative": charge.net_negative},
        children=_slab_lines(charge, usage),
    )


def license_line(seats: UsagePricing, currency: str, period: Cycle, full_cycle: Cycle, spans: Sequence[SeatSpan],
                 *, cut_by_change: bool = False) -> ComposedLine:
    """A license card's line for `period` from its seat spans (pricing/seats.py has the policy)."""
    card = seats.card
    assert isinstance(card, LicenseRateCard)
    prorate = card.enableProration
    charge = rate_seats(seats.rate_plan, seats.rate_values[currency], spans, period.start, period.end,
                        full_cycle.duration, prorate=prorate, cut=cut_by_change and period != full_cycle)
    name = card.displayName or card.name
    if prorate:
        description = f"{name}: seats prorated over {len(charge.spans)} span(s), up to {charge.highest}"
        children = tuple(_span_line(seats, span, currency) for span in charge.spans)
    else:
        description = f"{name}: {charge.highest} seats (the period's highest count)"
        children = _slab_lines(charge.charge_at_highest, seats, line_type=LICENSE_SLAB_LINE)
    return ComposedLine(
        line_type=LICENSE_LINE, description=description, value=charge.amount, rate_card_name=card.name,
        quantity=Decimal(charge.highest), usage_start=period.start, usage_end=period.end,
        details=_seat_details(card.id, seats, charge), children=children)


def _seat_details(license_id: str, seats: UsagePricing, charge: SeatCharge) -> dict[str, Any]:
    return {"licenseId": license_id, "pricingModel": seats.rate_plan.pricing_model,
            "enableProration": charge.prorated, "highestQuantity": charge.highest,
            "spans": [{"quantity": s.quantity, "start": instant_text(s.start), "end": instant_text(s.end),
                       "share": str(s.share)} for s in charge.spans]}


def _span_line(seats: UsagePricing, span: SpanCharge, currency: str) -> ComposedLine:
    cycle_amount = EXACT_MONEY_CONTEXT.add(span.charge.subtotal, span.charge.adjustment)
    value = DECIMAL_CONTEXT.divide(Decimal(span.exact.numerator), Decimal(span.exact.denominator)).quantize(
        SPAN_DECIMALS, context=DECIMAL_CONTEXT)
    return ComposedLine(
        line_type=LICENSE_SPAN_LINE,
        description=f"{span.quantity} seats, {instant_text(span.start)} to {instant_text(span.end)}: "
                    f"{_text(cycle_amount)} {currency} per cycle × {span.share} of the cycle",
        value=value, rate_card_name=seats.card.name, quantity=Decimal(span.quantity),
        value_per_quantity=cycle_amount, usage_start=span.start, usage_end=span.end,
        details={"share": str(span.share), "cycleAmount": str(cycle_amount)})


def overage_quantity(overage: OveragePricing, through: Decimal, before: Decimal = ZERO) -> Decimal:
    """The units billed as overage for the usage that took the quota's cycle from `before` to `through`:
    cycle_overage(through) - cycle_overage(before), never below 0 (usage corrections that lower the cycle's usage
    credit nothing, as a net-negative usage line charges 0). For a period that starts its cycle (`before` 0):
    usage past the feature's limit, at most maxQuantity."""
    return added_overage(through, before, overage.limit, overage.max_quantity)


def added_overage(through: Decimal, before: Decimal, limit: Decimal, max_quantity: Decimal | None) -> Decimal:
    """overage_quantity judged by a limit and maxQuantity (None: no ceiling), for callers holding no
    OveragePricing (check_entitlement's usedOverage)."""
    return max(EXACT_QUANTITY_CONTEXT.subtract(cycle_overage(through, limit, max_quantity),
                                               cycle_overage(before, limit, max_quantity)), ZERO)


def cycle_overage(usage: Decimal, limit: Decimal, max_quantity: Decimal | None) -> Decimal:
    """The overage of a quota's cycle with `usage` counted so far, judged by a limit and maxQuantity (None: no
    ceiling): usage past the limit, at most maxQuantity, 0 below the limit."""
    over = max(EXACT_QUANTITY_CONTEXT.subtract(usage, limit), ZERO)
    return over if max_quantity is None else min(over, max_quantity)


def overage_line(overage: OveragePricing, currency: str, period: Cycle, usage: Decimal,
                 full_cycle: Cycle | None = None, *, cycle_usage: CycleUsage | None = None) -> ComposedLine:
    """The overage card's line for `period`, `usage` being the feature meter's usage in the period and
    `cycle_usage` the quota's cycle usage around it (None: the period starts that cycle). The limit and maxQuantity
    hold for the cycle whole, as check_entitlement allows them (README); a minimumRate counts by time share as on
    usage cards."""
    meter = overage.usage_meter_id
    before = cycle_usage.before.get(meter, ZERO) if cycle_usage is not None else ZERO
    through = cycle_usage.through.get(meter, ZERO) if cycle_usage is not None else usage
    quantity = overage_quantity(overage, through, before)
    line = usage_line(overage, currency, period, quantity, full_cycle)
    card = overage.card
    capped = (overage.max_quantity is not None
              and EXACT_QUANTITY_CONTEXT.subtract(through, overage.limit) > overage.max_quantity)
    description = (f"{card.displayName or card.name}: {_text(quantity)} units over the limit of "
                   f"{_text(overage.limit)} (usage {_text(usage)}"
                   + (f"; the cycle's since {_day(cycle_usage.start)}: {_text(before)} before this period, "
                      f"{_text(through)} through it" if cycle_usage is not None else "")
                   + (f", capped at maxQuantity {_text(overage.max_quantity)})" if capped else ")"))
    return replace(line, line_type=OVERAGE_LINE, description=description,
                   details={**(line.details or {}), "featureId": card.featureId, "usage": str(usage),
                            "featureCreditLimit": str(overage.limit),
                            "maxQuantity": None if overage.max_quantity is None else str(overage.max_quantity),
                            "capped": capped,
                            # what the overage was based on, for late usage and REVENUE to read it back
                            "cycleStart": (cycle_usage.start if cycle_usage is not None else period.start).isoformat(),
                            "cycleUsageBefore": str(before), "cycleUsage": str(through)})


def _slab_lines(charge: RateCardCharge, usage: UsagePricing, *,
                line_type: str = SLAB_LINE) -> tuple[ComposedLine, ...]:
    starts = {slab.order: slab.start_after for slab in usage.rate_plan.slabs}
    children: list[ComposedLine] = []
    for slab in charge.slabs:
        if not slab.entered and slab.quantity == 0 and slab.amount == 0:
            continue
        parts = []
        if slab.price_type == "PER_UNIT":
            parts.append(f"{_text(slab.quantity)} × {_text(slab.rate)}")
        elif slab.price_type == "PACKAGE":
            parts.append(f"{slab.package_count} packages × {_text(slab.rate)}")
        else:
            parts.append(f"flat {_text(slab.rate)}" if slab.entered else "flat (not reached)")
        if slab.flat_amount:
            parts.append(f"+ flat {_text(slab.flat_amount)}")
        children.append(ComposedLine(
            line_type=line_type,
            description=f"Slab {slab.order} (after {_text(starts[slab.order])}, {slab.price_type}): "
                        + " ".join(parts),
            value=slab.amount,
            rate_card_name=usage.card.name,
            quantity=slab.quantity,
            value_per_quantity=slab.rate,
            details={"order": slab.order, "priceType": slab.price_type, "startAfter": str(starts[slab.order]),
                     "packageCount": slab.package_count, "flatAmount": str(slab.flat_amount),
                     "entered": slab.entered},
        ))
    if charge.adjustment:
        which = "minimumRate" if charge.minimum_applied else "maximumRate"
        children.append(ComposedLine(
            line_type=ADJUSTMENT_LINE,
            description=f"Rate config {which}: adjusted by {_text(charge.adjustment)}",
            value=charge.adjustment,
            rate_card_name=usage.card.name,
            details={"rule": which},
        ))
    return tuple(children)


def _true_up(committed: Decimal, sub_total: Decimal, currency: str, period: Cycle, full_cycle: Cycle) -> Decimal:
    """max(0, commitment - subtotal); a partial period commits only its share of the cycle (by time)."""
    if period == full_cycle:
        return minimum_commitment_true_up(committed, sub_total, currency)
    share = Fraction(period.duration // _MICROSECOND, full_cycle.duration // _MICROSECOND)
    return round_fraction(max(Fraction(committed) * share - Fraction(sub_total), Fraction(0)), currency)
