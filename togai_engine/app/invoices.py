"""Invoice reads and status changes, each after the accounts it touches are billed up to `now`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts import service as accounts
from togai_engine.accounts.models import AccountRow
from togai_engine.app.prepaid import grant_paid_credits
from togai_engine.billing.close import CloseSummary, close_due_cycles, one_connection_per_node
from togai_engine.billing.current import current_plan_and_cycle, unclosed_periods
from togai_engine.billing.schedule import Association
from togai_engine.billing.state import transaction_connection
from togai_engine.common.schemas import CloseFailure, Page
from togai_engine.customers import service as customers
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.invoices import credit_notes
from togai_engine.invoices import service as invoices
from togai_engine.invoices.change_credits import CHANGE_KEYS
from togai_engine.invoices.credit_note_schemas import CreditNoteCreate, CreditNoteResult
from togai_engine.invoices.models import InvoiceRow
from togai_engine.invoices.schemas import Invoice, InvoiceSummary


async def list_invoices(
    session: AsyncSession, now: datetime, *, account_id: str | None = None, customer_id: str | None = None,
    status: str | None = None, start_time: datetime | None = None, end_time: datetime | None = None,
    page_size: int | None = None, next_token: str | None = None,
) -> Page[InvoiceSummary]:
    if account_id is not None:
        account_id = await accounts.account_id_of(session, account_id)
        await close_due_cycles(session, now, [account_id])
    elif customer_id is not None:
        await customers.get_row(session, customer_id)
        ids = list(await session.scalars(select(AccountRow.id).where(AccountRow.customer_id == customer_id)))
        await close_due_cycles(session, now, ids)
    else:
        await close_due_cycles(session, now)  # touches only the accounts with a bill run due
    return await invoices.list_invoices(
        session, account_id=account_id, customer_id=customer_id, status=status, start_time=start_time,
        end_time=end_time, page_size=page_size, next_token=next_token)


async def get_invoice(session: AsyncSession, now: datetime, *, invoice_id: str | None = None,
                      account_id: str | None = None) -> Invoice:
    """One invoice with every line; with account_id (an id or alias) instead, the DRAFT of the account's
    current cycle."""
    if (invoice_id is None) == (account_id is None):
        raise InvalidInput("invoiceId", "pass either invoiceId, or accountId for the open cycle's DRAFT invoice")
    if invoice_id is not None:
        row = await invoices.get_row(session, invoice_id)
        await close_due_cycles(session, now, [row.account_id])
        return await invoices.render(session, await invoices.get_row(session, invoice_id))
    assert account_id is not None
    account_id = await accounts.account_id_of(session, account_id)
    summary = await close_due_cycles(session, now, [account_id])
    row = await invoices.current_draft(session, account_id, now)
    if row is None:
        failure = failure_of(summary, account_id)
        current = await current_plan_and_cycle(session, account_id, now) if failure is not None else None
        if failure is not None and current is not None:
            raise NotFound(missing_draft_problem(account_id, current[2], failure))
        raise NotFound(f"account {account_id!r} has no open billing period at {now.isoformat()} (no price plan in "
                       "effect); attach one with update_account(pricePlanId), or list_invoices for past invoices")
    return await invoices.render(session, row)


def failure_of(summary: CloseSummary, account_id: str) -> CloseFailure | None:
    """The account's failure in a bill run's summary, or None when the run billed it."""
    return next((f for f in summary.failed if f.accountId == account_id), None)


def missing_draft_problem(account_id: str, association: Association, failure: CloseFailure) -> str:
    """Why an account with a plan in effect (`association`) has no DRAFT: the bill run that opens its plan's first
    period fails on the account's data (it is retried by every run and read, so this read's run failed the same
    way: `failure`). Such a period gets no invoice row at all (the run leaves the account as it was), unlike a DRAFT
    that cannot be computed, which is listed with its `problem`."""
    return (f"account {account_id!r} has price plan {association.plan_id!r} in effect since "
            f"{association.effective_from.isoformat()}, but its first invoice cannot be composed, so it has "
            f"no DRAFT invoice yet: {failure.reason}. Fix what that names (in the account or its plan): until then "
            "bill runs report the account as failed and retry it; its DRAFT opens once it composes")


async def update_invoice_status(session: AsyncSession, invoice_id: str, status: str, now: datetime) -> Invoice:
    await one_connection_per_node(await transaction_connection(session))  # a VOID writes invoices after the wallet
    row = await invoices.get_row(session, invoice_id)
    await close_due_cycles(session, now, [row.account_id])

    async def grant_sold_credits(paid: InvoiceRow) -> None:
        await grant_paid_credits(session, paid.id, paid.account_id, paid.currency, now)

    return await invoices.update_invoice_status(session, invoice_id, status, now, unclosed=unclosed_periods,
                                                on_paid=grant_sold_credits)


async def create_credit_note(session: AsyncSession, data: CreditNoteCreate, now: datetime) -> CreditNoteResult:
    """An operator's note. Billing's own (a plan change's, app/advance_credits.py) are told by their key's prefix,
    so an operator's key may not start with one."""
    reserved = next((p for p in CHANGE_KEYS if (data.idempotencyKey or "").startswith(p)), None)
    if reserved is not None:
        raise InvalidInput("idempotencyKey", f"keys starting with {reserved!r} are reserved for the notes billing "
                                             "issues itself at a plan change; send another key")
    # On Citus: the note is written (a reference table) after the invoice's unclosed usage and the wallet were
    # read (distributed), which it allows only over one connection per worker (billing/close.py)
    await one_connection_per_node(await transaction_connection(session))
    row = await invoices.get_row(session, data.invoiceId)
    await close_due_cycles(session, now, [row.account_id])  # a period past its grace period is DUE first
    return await credit_notes.create_credit_note(session, data, now, unclosed=unclosed_periods)
