"""Composing the invoice of a stored invoice row's period from the usage recorded so far: the DRAFT view, and
the recomposition of a closed period that late usage reopens (late_usage.py). Pure given its inputs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from togai_engine.cycles import Cycle, cut_by_change, cycle_containing, cycle_index, run_starts
from togai_engine.errors import EngineError
from togai_engine.invoices.compose import ComposedInvoice, compose_invoice
from togai_engine.invoices.fixed_fees import fee_schedule
from togai_engine.invoices.models import InvoiceRow
from togai_engine.licenses.service import Seats
from togai_engine.meters.usage import Window
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.schemas import PricePlan


def compose_period(row: InvoiceRow, plan: PricePlan, associations: list[PlanAssociationRow],
                   quantities: dict[Window, dict[str, Decimal]], *,
                   seats: Mapping[Window, Seats] | None = None) -> ComposedInvoice:
    """The invoice of `row`'s period under its plan and association, from `quantities` (quantities_by_window
    over the period) and `seats` (licenses.seats_by_window); `associations` are the account's."""
    association = next((a for a in associations if a.id == row.association_id), None)
    if association is None:
        raise EngineError(f"its plan association was replaced by a plan change; list_invoices again for "
                          f"account {row.account_id!r}'s current invoices")
    period = Cycle(row.period_start, row.period_end)
    full_cycle = cycle_containing(plan.cycle_config, association.anchor, period.start)
    follows = any(a.effective_until == association.effective_from for a in associations)
    cut = cut_by_change(period, full_cycle, association.effective_from, association.effective_until, follows)
    window = (row.account_id, period.start, period.end)
    plan_since = _plan_since(associations, association)
    index = cycle_index(plan.cycle_config, association.anchor, plan_since, period.start) \
        if plan.pricingRules else 0  # only rules read it
    fees = fee_schedule(plan.cycle_config, association.anchor, association.effective_from,
                        association.effective_until, full_cycle, follows, plan_since)
    return compose_invoice(plan, row.currency, period, full_cycle, quantities.get(window, {}), cut_by_change=cut,
                           licenses=(seats or {}).get(window, {}), cycle_index=index, fees=fees,
                           opening_fees=row.carries_opening_fees)


def plan_meters(plan: PricePlan) -> list[str]:
    """The meters the plan's invoices price: usage cards' and entitlement overage cards' feature meters."""
    return plan.billed_meter_ids


def _plan_since(associations: list[PlanAssociationRow], association: PlanAssociationRow) -> datetime:
    """Where the account's unbroken run on `association`'s plan began (cycles.run_starts)."""
    ordered = sorted(associations, key=lambda a: a.effective_from)
    runs = run_starts([(a.price_plan_id, a.effective_from, a.effective_until) for a in ordered])
    return next(since for a, since in zip(ordered, runs, strict=True) if a.id == association.id)
