"""PREPAID credit-grant cards: the credits an invoice sold are granted once it is PAID (Togai: "credits will be
granted only after invoice is paid"). Policy: togai_engine/invoices/README.md, "PREPAID credits"."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.invoices.compose import CREDIT_GRANT_LINE
from togai_engine.invoices.models import InvoiceLineRow
from togai_engine.wallets import service as wallets
from togai_engine.wallets.rate_cards import PREPAID, sold_grant


async def grant_paid_credits(session: AsyncSession, invoice_id: str, account_id: str, currency: str,
                             now: datetime) -> list[str]:
    """Grants the PREPAID credits the invoice (just marked PAID) sold; returns the new grants' ids."""
    details = list(await session.scalars(
        select(InvoiceLineRow.details).where(
            InvoiceLineRow.invoice_id == invoice_id, InvoiceLineRow.parent_position.is_(None),
            InvoiceLineRow.line_type == CREDIT_GRANT_LINE,
            InvoiceLineRow.details["invoiceTiming"].astext == PREPAID)
        .order_by(InvoiceLineRow.position)))
    return await wallets.issue_prepaid_grants(session, account_id=account_id, currency=currency,
                                              grants=[sold_grant(d) for d in details], at=now)
