"""A quote: one full pricing cycle of a plan for given quantities, read off the composed invoice (pure).

The quote is `compose_invoice` for a whole cycle, so it is exactly what an invoice for that usage
says; this module only reshapes its lines into a breakdown per rate card and slab.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from togai_engine.cycles import cycle_containing
from togai_engine.invoices.compose import (
    ADJUSTMENT_LINE,
    FIXED_FEE_LINE,
    SLAB_LINE,
    USAGE_LINE,
    ComposedLine,
    compose_invoice,
)
from togai_engine.lab.schemas import FixedFeeRevenue, RevenueQuote, SlabRevenue, UsageCardRevenue
from togai_engine.plans.schemas import PricePlan
from togai_engine.pricing import round_money

ZERO = Decimal(0)


def quote(
    plan: PricePlan, currency: str, quantities: Mapping[str, Decimal], *, at: datetime, stored: bool
) -> RevenueQuote:
    """`plan`'s charges for one full cycle (the one containing `at`), priced as a plan association's first: a
    ONE_TIME setup fee is in, an IN_ADVANCE fee counts once, recurrenceConfig takes it as cycle 0."""
    cycle = cycle_containing(plan.cycle_config, at, at)
    invoice = compose_invoice(plan, currency, cycle, cycle, quantities)
    priced = {card.usageMeterId for card in plan.rateCards.usageRateCards}
    commitment = plan.rateCards.minimumCommitment
    return RevenueQuote(
        pricePlanId=plan.id if stored else None,
        pricePlanName=plan.name,
        currency=currency,
        usageRateCards=[_usage_card(line) for line in invoice.lines if line.line_type == USAGE_LINE],
        fixedFees=[FixedFeeRevenue(name=line.rate_card_name, displayName=line.description, amount=line.value)
                   for line in invoice.lines if line.line_type == FIXED_FEE_LINE],
        subTotal=round_money(invoice.sub_total, currency),  # rounded already; 0 shows as 0.00
        minimumCommitment=next(v.rate for v in commitment.rateValues if v.currency == currency)
        if commitment is not None else None,
        trueUp=round_money(invoice.true_up, currency),
        total=round_money(invoice.total, currency),
        unpricedMeters=sorted(set(quantities) - priced),
    )


def _usage_card(line: ComposedLine) -> UsageCardRevenue:
    details = line.details or {}
    adjustment = next((child.value for child in line.children if child.line_type == ADJUSTMENT_LINE), ZERO)
    assert line.usage_meter_id is not None and line.quantity is not None
    return UsageCardRevenue(
        name=line.rate_card_name,
        displayName=line.description.rsplit(":", 1)[0],
        usageMeterId=line.usage_meter_id,
        pricingModel=str(details.get("pricingModel")),
        quantity=line.quantity,
        slabs=[_slab(child) for child in line.children if child.line_type == SLAB_LINE],
        subtotal=Decimal(str(details.get("subtotal", "0"))),
        adjustment=adjustment,
        minimumApplied=bool(details.get("minimumApplied")),
        maximumApplied=bool(details.get("maximumApplied")),
        amount=line.value,
    )


def _slab(line: ComposedLine) -> SlabRevenue:
    details = line.details or {}
    assert line.quantity is not None and line.value_per_quantity is not None
    return SlabRevenue(
        order=int(details["order"]),
        priceType=str(details["priceType"]),
        startAfter=Decimal(str(details["startAfter"])),
        quantity=line.quantity,
        rate=line.value_per_quantity,
        packageCount=details.get("packageCount"),
        flatAmount=Decimal(str(details.get("flatAmount", "0"))),
        amount=line.value,
    )
