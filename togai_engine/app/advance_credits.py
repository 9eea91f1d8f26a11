"""Crediting the unused part of IN_ADVANCE fixed fees when a plan change or a plan's end cuts their cycle short.

An in-advance fee of cycle N is on the invoice of the period before it, or on the association's advance invoice
for its first period (invoices/fixed_fees.py). When the association ends at T inside cycle N (or before it: the
whole fee is unused):
- that invoice still DRAFT: it is recomposed with the fee prorated to [N.start, T) (nothing to do here);
- that invoice DUE or PAID: a credit note (ORDER_CHANGE) is issued with the change, for the fee × the unused
  share (T to the end of what the line paid for, over the whole cycle), rounded once half-up to the currency's
  minor unit, less what notes already credited on that line (and at most what the invoice's notes left
  creditable). A ONE_TIME fee is never credited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.current import unclosed_periods
from togai_engine.invoices import credit_notes
from togai_engine.invoices.compose import FIXED_FEE_LINE
from togai_engine.invoices.credit_note_models import CREDITABLE_STATUSES, CreditNoteLineRow, CreditNoteRow
from togai_engine.invoices.credit_note_schemas import CreditNoteCreate, CreditNoteLineInput
from togai_engine.invoices.models import InvoiceLineRow, InvoiceRow
from togai_engine.pricing import round_fraction

_MICROSECOND = timedelta(microseconds=1)


async def credit_unused_advance_fees(session: AsyncSession, account_id: str, instant: datetime,
                                     now: datetime) -> list[str]:
    """Credit notes for the in-advance fees the account's plan no longer uses from `instant` on; returns their ids.
    Call after the association was cut at `instant`."""
    lines = (await session.execute(
        select(InvoiceRow.id, InvoiceRow.currency, InvoiceRow.total_amount, InvoiceLineRow.position,
               InvoiceLineRow.value, InvoiceLineRow.value_per_quantity, InvoiceLineRow.description,
               InvoiceLineRow.details)
        .join(InvoiceLineRow, InvoiceLineRow.invoice_id == InvoiceRow.id)
        .where(InvoiceRow.account_id == account_id, InvoiceRow.status.in_(CREDITABLE_STATUSES),
               InvoiceLineRow.parent_position.is_(None),
               InvoiceLineRow.line_type == FIXED_FEE_LINE,
               InvoiceLineRow.details["invoiceTiming"].astext == "IN_ADVANCE",
               InvoiceLineRow.details["type"].astext == "RECURRING")
        .order_by(InvoiceRow.period_start, InvoiceLineRow.position))).all()
    issued: list[str] = []
    for invoice_id, currency, total, position, value, rate, description, details in lines:
        paid_until = datetime.fromisoformat(details["servicePeriodEnd"])
        if paid_until <= instant:
            continue
        # the fee of a period the plan no longer reaches at all (it started after `instant`) is credited whole
        unused_from = max(instant, datetime.fromisoformat(details["servicePeriodStart"]))
        cycle = datetime.fromisoformat(details["cycleEnd"]) - datetime.fromisoformat(details["cycleStart"])
        unused = round_fraction(Fraction(rate) * Fraction((paid_until - unused_from) // _MICROSECOND,
                                                          cycle // _MICROSECOND), currency)
        credited = Decimal(await session.scalar(
            select(func.coalesce(func.sum(CreditNoteLineRow.amount), 0))
            .where(CreditNoteLineRow.invoice_id == invoice_id, CreditNoteLineRow.line_position == position)))
        # notes by amount credit no line but count against the invoice's total: never ask for more than is left
        left = total - Decimal(await session.scalar(
            select(func.coalesce(func.sum(CreditNoteRow.amount), 0)).where(CreditNoteRow.invoice_id == invoice_id)))
        amount = min(min(unused, value) - credited, left)
        if amount <= 0:
            continue
        number = await session.scalar(select(func.count()).select_from(InvoiceLineRow).where(
            InvoiceLineRow.invoice_id == invoice_id, InvoiceLineRow.parent_position.is_(None),
            InvoiceLineRow.position <= position))
        result = await credit_notes.create_credit_note(session, CreditNoteCreate(
            invoiceId=invoice_id, reason="ORDER_CHANGE",
            memo=f"{description}: unused from {instant.isoformat()} (the plan changed or ended there)"[:500],
            lines=[CreditNoteLineInput(lineNumber=number, amount=amount)],
            idempotencyKey=f"in-advance-fee:{invoice_id}:{position}:{instant.isoformat()}",
        ), now, unclosed=unclosed_periods)
        issued.append(result.creditNote.id)
    return issued
