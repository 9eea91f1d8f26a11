"""Invoice operations: list, get (a DRAFT is computed when read), status changes, accrued charges.

Every read first closes the due cycles of the accounts it reads (catch-up on read), so a server that
was down bills correctly when it comes back. `close_due_cycles` lives in billing/close.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountRow
from togai_engine.accounts.service import get_row as get_account_row
from togai_engine.billing.close import CloseSummary, close_due_cycles
from togai_engine.billing.hooks import wallets
from togai_engine.billing.runs import run_bill
from togai_engine.billing.schedule import BillingPeriod
from togai_engine.billing.state import load_states
from togai_engine.billing.usage import UsageSource, meter_usage
from togai_engine.common.pagination import fetch_page
from togai_engine.common.schemas import Page
from togai_engine.credit_notes.schemas import CreditNoteRef
from togai_engine.credit_notes.service import check_voidable, credit_notes_for
from togai_engine.customers.service import get_row as get_customer_row
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.invoices.compose import ComposedInvoice, ComposedLine, compose_invoice
from togai_engine.invoices.models import InvoiceLineRow, InvoiceRow
from togai_engine.invoices.schemas import Invoice, InvoiceLine, InvoiceSummary, UsageInfo, UsagePeriod
from togai_engine.plans.models import PricePlanRow
from togai_engine.pricing import round_money

__all__ = [
    "CloseSummary", "accrued_charges", "close_due_cycles", "get_invoice", "list_invoices", "open_invoices",
    "outstanding", "run_bill", "update_invoice_status",
]

ZERO = Decimal(0)
Draft = tuple[BillingPeriod, ComposedInvoice]


def _money(currency: str) -> Callable[[Decimal | None], Decimal]:
    """Amounts shown with the currency's minor unit (0 -> 0.00 for USD); they are rounded already."""
    return lambda value: round_money(value or ZERO, currency)


def sequence_id(number: int | None) -> str | None:
    return f"INV-{number:06d}" if number is not None else None


# --- DRAFT invoices -----------------------------------------------------------------------------


async def open_invoices(
    session: AsyncSession, account_ids: Sequence[str], now: datetime, *, usage: UsageSource = meter_usage
) -> dict[str, list[Draft]]:
    """The invoices of every started, not yet DUE period of the accounts, computed from current usage.

    Call after close_due_cycles for the same accounts and `now`.
    """
    states, plans = await load_states(session, account_ids)
    periods = [(account_id, bp) for account_id, state in states.items() for bp in state.timeline(plans, now).open]
    windows: dict[tuple[datetime, datetime], tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for account_id, bp in periods:
        accounts_in, meters_in = windows[(bp.period.start, bp.period.end)]
        accounts_in.add(account_id)
        meters_in.update(card.usageMeterId for card in bp.plan.rateCards.usageRateCards)
    found: dict[tuple[str, datetime], dict[str, Decimal]] = defaultdict(dict)
    for (start, end), (accounts_in, meters_in) in windows.items():
        if meters_in:
            quantities = await usage(session, start=start, end=end, account_ids=sorted(accounts_in),
                                     meter_ids=sorted(meters_in))
            for (account_id, meter_id), quantity in quantities.items():
                found[(account_id, start)][meter_id] = quantity
    drafts: dict[str, list[Draft]] = defaultdict(list)
    for account_id, bp in periods:
        composed = compose_invoice(bp.plan, states[account_id].currency, bp.period, bp.full_cycle,
                                   found.get((account_id, bp.period.start), {}))
        drafts[account_id].append((bp, composed))
    return drafts


async def accrued_charges(session: AsyncSession, account_id: str, now: datetime) -> Decimal | None:
    """Charges of the periods not yet DUE (the open cycle, and a previous one still in its grace period);
    None when the account has no plan in effect and nothing open."""
    await close_due_cycles(session, now, [account_id])
    drafts = (await open_invoices(session, [account_id], now)).get(account_id, [])
    if not drafts:
        states, _ = await load_states(session, [account_id])
        state = states.get(account_id)
        if state is None or state.association_at(now) is None:
            return None
        return round_money(ZERO, state.currency)
    return round_money(sum((composed.total for _, composed in drafts), ZERO), drafts[0][1].currency)


async def outstanding(session: AsyncSession, account_id: str, currency: str) -> Decimal:
    """The sum of the amounts due of the account's DUE invoices."""
    total = await session.scalar(
        select(func.coalesce(func.sum(InvoiceRow.amount_due), 0))
        .where(InvoiceRow.account_id == account_id, InvoiceRow.status == "DUE"))
    return round_money(Decimal(total), currency)


# --- rendering ----------------------------------------------------------------------------------


def _line(line: ComposedLine, currency: str) -> InvoiceLine:
    return InvoiceLine(
        type=line.line_type, description=line.description, rateCardName=line.rate_card_name,
        quantity=_plain(line.quantity), valuePerQuantity=_plain(line.value_per_quantity), value=line.value,
        units=currency,
        usageMeterId=line.usage_meter_id,
        usagePeriod=UsagePeriod(start=line.usage_start, end=line.usage_end)
        if line.usage_start and line.usage_end else None,
        details=line.details, lineItems=[_line(child, currency) for child in line.children],
    )


def _plain(value: Decimal | None) -> Decimal | None:
    """PostgreSQL hands 10000 back as 1E+4 (trailing zero groups are not stored): show it as 10000."""
    if value is None or value.as_tuple().exponent <= 0:  # type: ignore[operator]
        return value
    return value.quantize(Decimal(1))


def _stored_lines(rows: Sequence[InvoiceLineRow], currency: str) -> list[InvoiceLine]:
    built: dict[int, InvoiceLine] = {}
    top: list[InvoiceLine] = []
    for row in sorted(rows, key=lambda r: r.position):
        line = InvoiceLine(
            type=row.line_type, description=row.description, rateCardName=row.rate_card_name,
            quantity=_plain(row.quantity), valuePerQuantity=_plain(row.value_per_quantity), value=_plain(row.value),
            units=currency,
            usageMeterId=row.usage_meter_id,
            usagePeriod=UsagePeriod(start=row.usage_start, end=row.usage_end)
            if row.usage_start and row.usage_end else None,
            details=row.details,
        )
        built[row.position] = line
        if row.parent_position is None:
            top.append(line)
        else:
            built[row.parent_position].lineItems.append(line)
    return top


def _usage_info(lines: list[InvoiceLine]) -> list[UsageInfo]:
    return [
        UsageInfo(usageMeterId=line.usageMeterId, quantity=line.quantity, usagePeriod=line.usagePeriod)
        for line in lines
        if line.usageMeterId and line.quantity is not None and line.usagePeriod is not None
    ]


def _summary(row: InvoiceRow, plan_name: str, draft: Draft | None,
             credit_notes: Sequence[CreditNoteRef] = ()) -> InvoiceSummary:
    if row.status == "DRAFT":
        assert draft is not None
        bp, composed = draft
        money = _money(composed.currency)
        return InvoiceSummary(
            id=row.id, accountId=row.account_id, customerId=row.customer_id, pricePlanId=row.price_plan_id,
            pricePlanName=plan_name, status="DRAFT", currency=composed.currency, startDate=row.period_start,
            endDate=row.period_end, closesAt=bp.due_at, subTotalAmount=money(composed.sub_total),
            trueUpAmount=money(composed.true_up), totalAmount=money(composed.total), creditsApplied=money(ZERO),
            amountDue=money(composed.total), creditNotesTotal=money(ZERO),
        )
    assert row.invoice_date is not None and row.total_amount is not None
    money = _money(row.currency)
    return InvoiceSummary(
        id=row.id, sequenceId=sequence_id(row.sequence_number), accountId=row.account_id,
        customerId=row.customer_id, pricePlanId=row.price_plan_id, pricePlanName=plan_name,
        status=row.status,  # type: ignore[arg-type]
        currency=row.currency, startDate=row.period_start, endDate=row.period_end, closesAt=row.invoice_date,
        invoiceDate=row.invoice_date, dueDate=row.due_date, subTotalAmount=money(row.sub_total),
        trueUpAmount=money(row.true_up), totalAmount=money(row.total_amount), creditsApplied=money(row.credits_applied),
        amountDue=money(row.amount_due), statusUpdatedAt=row.status_changed_at,
        creditNotesTotal=money(sum((n.amount for n in credit_notes), ZERO)), creditNotes=list(credit_notes),
    )


async def _plan_names(session: AsyncSession, plan_ids: set[str]) -> dict[str, str]:
    if not plan_ids:
        return {}
    rows = await session.execute(select(PricePlanRow.id, PricePlanRow.name).where(PricePlanRow.id.in_(plan_ids)))
    return dict(rows.tuples().all())


async def _drafts_for(session: AsyncSession, rows: Sequence[InvoiceRow], now: datetime) -> dict[str, Draft]:
    """DRAFT rows -> their live computation, matched by (account, period start)."""
    accounts = sorted({r.account_id for r in rows if r.status == "DRAFT"})
    if not accounts:
        return {}
    computed = await open_invoices(session, accounts, now)
    by_period = {(a, bp.period.start): (bp, c) for a, drafts in computed.items() for bp, c in drafts}
    result = {}
    for row in rows:
        if row.status == "DRAFT":
            draft = by_period.get((row.account_id, row.period_start))
            if draft is None:  # pragma: no cover - catch-up keeps DRAFT rows and open periods in step
                raise NotFound(f"invoice {row.id!r} no longer matches an open period; list_invoices again")
            result[row.id] = draft
    return result


async def _render(session: AsyncSession, row: InvoiceRow, now: datetime) -> Invoice:
    names = await _plan_names(session, {row.price_plan_id})
    if row.status == "DRAFT":
        draft = (await _drafts_for(session, [row], now))[row.id]
        lines = [_line(line, row.currency) for line in draft[1].lines]
    else:
        draft = None
        stored = await session.scalars(select(InvoiceLineRow).where(InvoiceLineRow.invoice_id == row.id))
        lines = _stored_lines(list(stored), row.currency)
    notes = await credit_notes_for(session, [row.id]) if row.status != "DRAFT" else {}  # credit notes
    summary = _summary(row, names.get(row.price_plan_id, row.price_plan_id), draft, notes.get(row.id, ()))
    return Invoice(**dict(summary), lineItems=lines, usageInfo=_usage_info(lines))


# --- tools --------------------------------------------------------------------------------------


async def list_invoices(
    session: AsyncSession,
    now: datetime,
    *,
    account_id: str | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    page_size: int | None = None,
    next_token: str | None = None,
) -> Page[InvoiceSummary]:
    """Invoices whose period overlaps [start_time, end_time), newest period first."""
    if start_time is not None and end_time is not None and end_time <= start_time:
        raise InvalidInput("endTime", f"must be after startTime ({start_time.isoformat()})")
    stmt = select(InvoiceRow)
    if account_id is not None:
        await get_account_row(session, account_id)
        await close_due_cycles(session, now, [account_id])
        stmt = stmt.where(InvoiceRow.account_id == account_id)
    elif customer_id is not None:
        await get_customer_row(session, customer_id)
        ids = list(await session.scalars(select(AccountRow.id).where(AccountRow.customer_id == customer_id)))
        await close_due_cycles(session, now, ids)
    else:
        await close_due_cycles(session, now)
    if customer_id is not None:
        stmt = stmt.where(InvoiceRow.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(InvoiceRow.status == status)
    if start_time is not None:
        stmt = stmt.where(InvoiceRow.period_end > start_time)
    if end_time is not None:
        stmt = stmt.where(InvoiceRow.period_start < end_time)
    rows, token = await fetch_page(session, stmt.execution_options(populate_existing=True),
                                   (InvoiceRow.period_start, InvoiceRow.seq), "invoices", page_size, next_token,
                                   descending=True)
    drafts = await _drafts_for(session, rows, now)
    names = await _plan_names(session, {r.price_plan_id for r in rows})
    notes = await credit_notes_for(session, [r.id for r in rows if r.status != "DRAFT"])  # credit notes
    data = [_summary(r, names.get(r.price_plan_id, r.price_plan_id), drafts.get(r.id), notes.get(r.id, ()))
            for r in rows]
    return Page[InvoiceSummary](data=data, nextToken=token)


async def get_invoice(
    session: AsyncSession, now: datetime, *, invoice_id: str | None = None, account_id: str | None = None
) -> Invoice:
    """One invoice with every line; with account_id instead, the DRAFT of the account's current cycle."""
    if (invoice_id is None) == (account_id is None):
        raise InvalidInput("invoiceId", "pass either invoiceId, or accountId for the open cycle's DRAFT invoice")
    if invoice_id is not None:
        row = await session.get(InvoiceRow, invoice_id)
        if row is None:
            raise NotFound(f"invoice {invoice_id!r} does not exist; list_invoices shows the ids")
        await close_due_cycles(session, now, [row.account_id])
        row = await session.get(InvoiceRow, invoice_id, populate_existing=True)
        if row is None:
            raise NotFound(f"invoice {invoice_id!r} was replaced by a plan change; list_invoices shows the "
                           "account's current invoices")
        return await _render(session, row, now)
    assert account_id is not None
    await get_account_row(session, account_id)
    await close_due_cycles(session, now, [account_id])
    drafts = (await open_invoices(session, [account_id], now)).get(account_id, [])
    if not drafts:
        raise NotFound(f"account {account_id!r} has no open billing period at {now.isoformat()} (no price plan in "
                       "effect); attach one with update_account(pricePlanId), or list_invoices for past invoices")
    current = next((d for d in drafts if d[0].period.contains(now)), drafts[-1])
    row = await session.scalar(
        select(InvoiceRow).where(InvoiceRow.account_id == account_id,
                                 InvoiceRow.period_start == current[0].period.start)
        .execution_options(populate_existing=True))
    assert row is not None, "catch-up opens a DRAFT row for every started period"
    return await _render(session, row, now)


async def update_invoice_status(session: AsyncSession, invoice_id: str, status: str, now: datetime) -> Invoice:
    """DUE -> PAID or DUE -> VOID (voiding gives applied credits back). Repeating the change is a no-op."""
    row = await session.get(InvoiceRow, invoice_id)
    if row is None:
        raise NotFound(f"invoice {invoice_id!r} does not exist; list_invoices shows the ids")
    await close_due_cycles(session, now, [row.account_id])
    row = await session.scalar(select(InvoiceRow).where(InvoiceRow.id == invoice_id).with_for_update()
                               .execution_options(populate_existing=True))
    if row is None:
        raise NotFound(f"invoice {invoice_id!r} was replaced by a plan change; list_invoices shows the ids")
    if status not in ("PAID", "VOID"):
        raise InvalidInput("status", f"{status!r} cannot be set by hand; set PAID or VOID on a DUE invoice (DRAFT "
                                     "invoices become DUE by themselves at period end + grace period)")
    if row.status == status:
        return await _render(session, row, now)
    if row.status == "DRAFT":
        draft = (await _drafts_for(session, [row], now))[row.id]
        raise InvalidInput("status", f"invoice {invoice_id!r} is DRAFT: its period is still open; it becomes DUE at "
                                     f"{draft[0].due_at.isoformat()}, after which it can be marked {status}")
    if row.status != "DUE":
        raise InvalidInput("status", f"invoice {invoice_id!r} is {row.status}, which is final; only DUE invoices "
                                     "can be marked PAID or VOID")
    if status == "VOID":
        await check_voidable(session, row)  # credit notes: a credited invoice is not voided
        returned = await wallets().reverse_invoice_credits(session, invoice_id=row.id, at=now)
        row.credits_applied = max((row.credits_applied or ZERO) - returned, ZERO)
        row.amount_due = ZERO
    row.status = status
    row.status_changed_at = now
    await session.flush()
    return await _render(session, row, now)
