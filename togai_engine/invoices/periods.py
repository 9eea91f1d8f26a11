"""Composing the invoice of a stored invoice row's period from the usage recorded so far: the DRAFT view, and
the recomposition of a closed period that late usage reopens (late_usage.py). Pure given its inputs."""

from __future__ import annotations

from decimal import Decimal

from togai_engine.cycles import Cycle, cut_by_change, cycle_containing
from togai_engine.errors import EngineError
from togai_engine.invoices.compose import ComposedInvoice, compose_invoice
from togai_engine.invoices.fixed_fees import fee_schedule
from togai_engine.invoices.models import InvoiceRow
from togai_engine.meters.usage import Window
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.schemas import PricePlan


def compose_period(row: InvoiceRow, plan: PricePlan, associations: list[PlanAssociationRow],
                   quantities: dict[Window, dict[str, Decimal]]) -> ComposedInvoice:
    """The invoice of `row`'s period under its plan and association, from `quantities` (quantities_by_window
    over the period); `associations` are the account's."""
    association = next((a for a in associations if a.id == row.association_id), None)
    if association is None:
        raise EngineError(f"its plan association was replaced by a plan change; list_invoices again for "
                          f"account {row.account_id!r}'s current invoices")
    period = Cycle(row.period_start, row.period_end)
    full_cycle = cycle_containing(plan.cycle_config, association.anchor, period.start)
    follows = any(a.effective_until == association.effective_from for a in associations)
    cut = cut_by_change(period, full_cycle, association.effective_from, association.effective_until, follows)
    fees = fee_schedule(plan.cycle_config, association.anchor, association.effective_from,
                        association.effective_until, full_cycle, follows)
    return compose_invoice(plan, row.currency, period, full_cycle,
                           quantities.get((row.account_id, period.start, period.end), {}), cut_by_change=cut,
                           fees=fees)


def plan_meters(plan: PricePlan) -> list[str]:
    return [card.usageMeterId for card in plan.rateCards.usageRateCards]
