"""DRAFT invoices, computed from their own rows and the usage recorded so far.

A DRAFT row names its period, plan, association and the instant it closes (`invoice_date`, written by the
bill run that opened or re-cut it). Its lines are composed from exactly that, never from a schedule
recomputed at read time: a row read while a plan change commits, or opened by a bill run ahead of the
clock (`togai-engine bill --as-of`), is still one consistent invoice. An account whose invoice cannot be
composed (a plan that does not price its currency, data no policy covers) gets a `problem` on that draft;
it never fails the read of another account's invoices.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.cycles import Cycle, cut_by_change, cycle_containing, grace_end
from togai_engine.errors import EngineError
from togai_engine.invoices.compose import ComposedInvoice, compose_invoice
from togai_engine.invoices.models import InvoiceRow
from togai_engine.meters.usage import Window, quantities_by_window
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.schemas import PricePlan
from togai_engine.plans.service import get_plans

log = logging.getLogger("togai_engine.invoices")


@dataclass(frozen=True)
class Draft:
    row: InvoiceRow
    closes_at: datetime
    composed: ComposedInvoice | None  # None when it cannot be computed: `problem` says why
    problem: str | None = None


async def compute_drafts(session: AsyncSession, rows: Sequence[InvoiceRow]) -> dict[str, Draft]:
    """invoice id -> its live computation, for the DRAFT rows among `rows`."""
    drafts = [r for r in rows if r.status == "DRAFT"]
    if not drafts:
        return {}
    plans = await get_plans(session, {r.price_plan_id for r in drafts})
    associations: dict[str, list[PlanAssociationRow]] = defaultdict(list)
    for association in await session.scalars(
            select(PlanAssociationRow).where(PlanAssociationRow.account_id.in_({r.account_id for r in drafts}))):
        associations[association.account_id].append(association)
    quantities = await quantities_by_window(session, [
        (r.account_id, r.period_start, r.period_end, _meters(plans[r.price_plan_id])) for r in drafts])
    result: dict[str, Draft] = {}
    for row in drafts:
        plan = plans[row.price_plan_id]
        period = Cycle(row.period_start, row.period_end)
        closes_at = row.invoice_date or grace_end(period, plan.cycle_config)
        try:
            composed = _compose(row, plan, period, associations[row.account_id], quantities)
        except Exception as exc:  # one account's bad data is reported on its invoice, never raised to others
            problem = exc.message if isinstance(exc, EngineError) else f"internal error: {type(exc).__name__}"
            log.warning("cannot compute DRAFT invoice %s of account %s: %s", row.id, row.account_id, problem,
                        exc_info=not isinstance(exc, EngineError))
            result[row.id] = Draft(row, closes_at, None, f"this invoice cannot be computed: {problem}")
            continue
        result[row.id] = Draft(row, closes_at, composed)
    return result


def _compose(row: InvoiceRow, plan: PricePlan, period: Cycle, associations: list[PlanAssociationRow],
             quantities: dict[Window, dict[str, Decimal]]) -> ComposedInvoice:
    association = next((a for a in associations if a.id == row.association_id), None)
    if association is None:
        raise EngineError(f"its plan association was replaced by a plan change; list_invoices again for "
                          f"account {row.account_id!r}'s current invoices")
    full_cycle = cycle_containing(plan.cycle_config, association.anchor, period.start)
    follows = any(a.effective_until == association.effective_from for a in associations)
    cut = cut_by_change(period, full_cycle, association.effective_from, association.effective_until, follows)
    return compose_invoice(plan, row.currency, period, full_cycle,
                           quantities.get((row.account_id, period.start, period.end), {}), cut_by_change=cut)


def _meters(plan: PricePlan) -> list[str]:
    return [card.usageMeterId for card in plan.rateCards.usageRateCards]
