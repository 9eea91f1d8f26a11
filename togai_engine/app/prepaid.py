"""PREPAID credit-grant cards: the credits an invoice sold are granted once it is PAID (Togai: "credits will be
granted only after invoice is paid"), less what credit notes on its purchase lines took back while it was DUE.
Policy: togai_engine/invoices/README.md, "PREPAID credits"."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.current import pending_periods
from togai_engine.common.numbers import EXACT_MONEY_CONTEXT
from togai_engine.invoices.credit_notes import credited_on_lines
from togai_engine.invoices.display import money
from togai_engine.invoices.models import InvoiceLineRow
from togai_engine.invoices.sold_credits import PURCHASE_LINE, credits_voided
from togai_engine.plans.overrides import UnresolvedPlan
from togai_engine.wallets import service as wallets
from togai_engine.wallets.rate_cards import granted_when_paid, sold_grant


async def grant_paid_credits(session: AsyncSession, invoice_id: str, account_id: str, currency: str,
                             now: datetime) -> list[str]:
    """Grants the PREPAID credits the invoice (just marked PAID) sold; returns the new grants' ids. A purchase line
    that credit notes credited (on the DUE invoice) grants only what they left: its credits less credited / value ×
    credits, as those notes took back (sold_credits.credits_voided); a line credited in full grants nothing. Credits
    paid for once their window can pay no invoice are granted from the payment, for as long (granted_when_paid)."""
    lines = list(await session.scalars(
        select(InvoiceLineRow).where(
            InvoiceLineRow.invoice_id == invoice_id, InvoiceLineRow.parent_position.is_(None), PURCHASE_LINE)
        .order_by(InvoiceLineRow.position)))
    credited = await credited_on_lines(session, invoice_id, [line.position for line in lines])
    sold = []
    for line in lines:
        assert line.details is not None, "a purchase line carries the grant it sold"
        sold.append(sold_grant(line.details))
    # a window keeps its credits while it may pay the invoice of a period not DUE yet (in its grace period or under
    # way), else they are moved (the schedule is read only for windows that expire). An open window of an account
    # whose plan cannot be resolved (its bill runs fail, naming it) is kept, as before the schedule was read for it
    pending: list[tuple[datetime, datetime]] = []
    if any(g.effective_until is not None for g in sold):
        try:
            pending = await pending_periods(session, account_id, now)
        except UnresolvedPlan:
            if any(g.effective_until is not None and g.effective_until <= now for g in sold):
                raise
    grants = []
    for line, bought in zip(lines, sold, strict=True):
        grant = granted_when_paid(bought, now, pending)
        on_line = credited.get(line.position)
        if on_line:
            withheld = credits_voided(grant.amount, line.value, Decimal(0), on_line, currency)
            show = money(currency)
            granted = EXACT_MONEY_CONTEXT.subtract(grant.amount, withheld)
            grant = replace(grant, amount=granted, purpose=(
                f"{grant.purpose} ({show(granted)} of {show(grant.amount)} credits: credit notes "
                f"credited {show(on_line)} of the {show(line.value)} paid for them before it was paid)"))
        grants.append(wallets.SoldGrant(grant=grant, sale=wallets.Sale(invoice_id, line.position)))
    return await wallets.issue_prepaid_grants(session, account_id=account_id, currency=currency, grants=grants,
                                              at=now)
