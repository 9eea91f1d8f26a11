"""Attaching a price plan to an account from an instant on (Togai's plan association / schedule).

Attaching plan P at instant T means: from T on, the account is on P (open-ended). The association in
effect at T ends at T (its partial period closes there); associations that started at or after T are
replaced. T may be in the past, but not inside a period already invoiced DUE.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.service import get_row as get_account_row
from togai_engine.billing.close import close_due_cycles
from togai_engine.billing.models import AccountBillingRow
from togai_engine.cycles import cycle_containing
from togai_engine.errors import InvalidInput
from togai_engine.events.models import BillingWatermarkRow
from togai_engine.invoices.models import InvoiceRow
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.service import get_plan


async def attach_plan(
    session: AsyncSession,
    account_id: str,
    plan_id: str,
    effective_from: datetime,
    now: datetime,
    *,
    field: str = "pricePlanId",
) -> None:
    """Puts the account on `plan_id` from `effective_from` on; attaching the plan already in effect there
    (for example, a retried call) changes nothing."""
    from_field = field.removesuffix("pricePlanId") + "effectiveFrom"
    if effective_from.tzinfo is None or effective_from.utcoffset() is None:
        raise InvalidInput(from_field, f"{effective_from.isoformat()} has no timezone; send an ISO 8601 instant "
                                       "such as 2026-02-01T00:00:00Z")
    effective_from = effective_from.astimezone(UTC)
    plan = await get_plan(session, plan_id, field=field)
    try:
        cycle_containing(plan.cycle_config, effective_from, effective_from)
    except InvalidInput:
        raise InvalidInput(from_field, f"{effective_from.isoformat()} is out of the range billing cycles can be "
                                       "computed for; use an instant between the years 2000 and 9000") from None
    account = await get_account_row(session, account_id)
    if account.invoice_currency not in plan.supportedCurrencies:
        raise InvalidInput(
            field, f"price plan {plan.name!r} ({plan.id}) does not support {account.invoice_currency}, the "
                   f"account's invoiceCurrency; it supports {', '.join(plan.supportedCurrencies)}. Pick a plan "
                   f"that supports {account.invoice_currency} or change the account's invoiceCurrency first")
    await session.execute(insert(AccountBillingRow).values(account_id=account_id).on_conflict_do_nothing())
    await session.execute(insert(BillingWatermarkRow).values(account_id=account_id).on_conflict_do_nothing())
    # Invoice what is due first, so the check below sees every period that is already final.
    await close_due_cycles(session, now, [account_id])
    billing = await session.scalar(
        select(AccountBillingRow).where(AccountBillingRow.account_id == account_id).with_for_update()
        .execution_options(populate_existing=True))
    assert billing is not None
    if billing.billed_until is not None and effective_from < billing.billed_until:
        raise InvalidInput(
            from_field, f"{effective_from.isoformat()} falls in a period already invoiced (DUE) for account "
                        f"{account_id!r}; invoices are final up to {billing.billed_until.isoformat()}, so choose an "
                        "effectiveFrom at or after that")
    associations = list(await session.scalars(
        select(PlanAssociationRow).where(PlanAssociationRow.account_id == account_id)
        .order_by(PlanAssociationRow.effective_from).with_for_update()))
    current = next((a for a in associations if a.effective_from <= effective_from
                    and (a.effective_until is None or effective_from < a.effective_until)), None)
    later = [a for a in associations if a.effective_from > effective_from]
    if current is not None and current.price_plan_id == plan_id and current.effective_until is None and not later:
        return  # already on this plan from before effective_from, open-ended

    # Periods from effective_from on are re-cut: their DRAFTs (never a DUE one, checked above) go.
    await session.execute(delete(InvoiceRow).where(
        InvoiceRow.account_id == account_id, InvoiceRow.status == "DRAFT",
        InvoiceRow.period_start >= effective_from))
    replaced = [a.id for a in associations if a.effective_from >= effective_from]
    if replaced:
        await session.execute(delete(PlanAssociationRow).where(PlanAssociationRow.id.in_(replaced)))
    if current is not None and current.effective_from < effective_from:
        if current.price_plan_id == plan_id:
            await session.execute(update(PlanAssociationRow).where(PlanAssociationRow.id == current.id)
                                  .values(effective_until=None))
        else:
            await session.execute(update(PlanAssociationRow).where(PlanAssociationRow.id == current.id)
                                  .values(effective_until=effective_from))
            current = None
    else:
        current = None
    if current is None:
        await session.execute(insert(PlanAssociationRow).values(
            account_id=account_id, price_plan_id=plan_id, effective_from=effective_from,
            effective_until=None, anchor=effective_from))
    billing.next_run_at = now
    await session.flush()
    await close_due_cycles(session, now, [account_id])
