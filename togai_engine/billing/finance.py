"""Billing's part of get_account's financial section: plan, current cycle, accrued charges, outstanding."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.schemas import Period, PlanRef
from togai_engine.billing.close import close_due_cycles
from togai_engine.billing.current import current_plan_and_cycle
from togai_engine.invoices.models import InvoiceRow
from togai_engine.invoices.service import accrued_charges, outstanding


async def billing_financials(
    session: AsyncSession, account_id: str, currency: str, now: datetime
) -> dict[str, Any]:
    """Fields of AccountFinancial: pricePlan, currentCycle, accruedCharges, outstanding (catching up first)."""
    await close_due_cycles(session, now, [account_id])
    fields: dict[str, Any] = {}
    current = await current_plan_and_cycle(session, account_id, now)
    if current is not None:
        plan, cycle, since = current
        fields["pricePlan"] = PlanRef(id=plan.id, name=plan.name, effectiveFrom=since)
        fields["currentCycle"] = Period(start=cycle.start, end=cycle.end)
    accrued = await accrued_charges(session, account_id, now)
    if accrued is not None:
        fields["accruedCharges"] = accrued
    has_invoices = await session.scalar(select(exists().where(InvoiceRow.account_id == account_id)))
    if current is not None or has_invoices:
        fields["outstanding"] = await outstanding(session, account_id, currency)
    return fields
