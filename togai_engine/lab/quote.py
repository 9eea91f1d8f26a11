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
    LICENSE_LINE,
    LICENSE_SLAB_LINE,
    OVERAGE_LINE,
    SLAB_LINE,
    USAGE_LINE,
    ComposedLine,
    compose_invoice,
)
from togai_engine.invoices.schemas import PricingRuleLog
from togai_engine.lab.schemas import FixedFeeRevenue, LicenseCardRevenue, RevenueQuote, SlabRevenue, UsageCardRevenue
from togai_engine.plans.schemas import PricePlan
from togai_engine.pricing import round_money

ZERO = Decimal(0)


def quote(
    plan: PricePlan, currency: str, quantities: Mapping[str, Decimal], *, at: datetime, stored: bool,
    seats: Mapping[str, int] | None = None,
    cycle_index: int = 0,
) -> RevenueQuote:
    """`plan`'s charges for one full cycle (the one containing `at`), priced as cycle `cycle_index` of a plan
    association (0: its first): a ONE_TIME setup fee only in cycle 0, an IN_ADVANCE fee once, recurrenceConfig
    and pricing rules at that index; `seats` per license id are held all cycle long."""
    cycle = cycle_containing(plan.cycle_config, at, at)
    invoice = compose_invoice(plan, currency, cycle, cycle, quantities, licenses={
        license_id: [(cycle.start, cycle.end, count)] for license_id, count in (seats or {}).items()},
        cycle_index=cycle_index)
    priced = set(plan.billed_meter_ids)
    commitment = plan.rateCards.minimumCommitment
    return RevenueQuote(
        pricePlanId=plan.id if stored else None,
        pricePlanName=plan.name,
        pricePlanVersion=plan.version,
        isOverridden=plan.overridden,
        currency=currency,
        usageRateCards=[_usage_card(line) for line in invoice.lines if line.line_type == USAGE_LINE],
        licenseRateCards=[_license_card(line) for line in invoice.lines if line.line_type == LICENSE_LINE],
        fixedFees=[FixedFeeRevenue(name=line.rate_card_name, displayName=line.description, amount=line.value)
                   for line in invoice.lines if line.line_type == FIXED_FEE_LINE],
        subTotal=round_money(invoice.sub_total, currency),  # rounded already; 0 shows as 0.00
        minimumCommitment=next(v.rate for v in commitment.rateValues if v.currency == currency)
        if commitment is not None else None,
        trueUp=round_money(invoice.true_up, currency),
        total=round_money(invoice.total, currency),
        unpricedMeters=sorted(set(quantities) - priced),
        pricingRuleLogs=[PricingRuleLog.model_validate(log) for log in invoice.rule_logs],
        entitlementOverageRateCards=[_usage_card(line) for line in invoice.lines if line.line_type == OVERAGE_LINE],
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


def _license_card(line: ComposedLine) -> LicenseCardRevenue:
    details = line.details or {}
    assert line.quantity is not None
    return LicenseCardRevenue(
        name=line.rate_card_name, licenseId=str(details.get("licenseId")), pricingModel=str(details.get("pricingModel")),
        quantity=int(line.quantity), enableProration=bool(details.get("enableProration")),
        slabs=[_slab(child) for child in line.children if child.line_type == LICENSE_SLAB_LINE],
        amount=line.value)


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
