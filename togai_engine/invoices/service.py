"""Invoice operations: list, get (a DRAFT is computed when read), status changes, accrued charges.

These read what is stored; the application layer (togai_engine/app/invoices.py) first brings the
accounts' bill runs up to `now` (catch-up on read), so a server that was down bills correctly when it
comes back. DRAFTs are computed from their own rows (drafts.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.service import lock_accounts
from togai_engine.common.numbers import EXACT_MONEY_CONTEXT, exact_sum
from togai_engine.common.pagination import fetch_page
from togai_engine.common.schemas import Page
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.invoices.compose import OVERAGE_LINE, ComposedLine
from togai_engine.invoices.credit_note_schemas import CreditNoteRef
from togai_engine.invoices.credit_notes import check_voidable, credit_notes_for
from togai_engine.invoices.display import invoice_number
from togai_engine.invoices.display import money as money_of
from togai_engine.invoices.drafts import Draft, compute_drafts
from togai_engine.invoices.models import InvoiceLineRow, InvoiceRow, overlapping
from togai_engine.invoices.schemas import (
    Invoice,
    InvoiceLine,
    InvoiceSummary,
    PricingRuleLog,
    UsageInfo,
    UsagePeriod,
)
from togai_engine.plans.models import PlanAssociationRow, PricePlanRow
from togai_engine.pricing import round_money
from togai_engine.wallets import service as wallets

ZERO = Decimal(0)


# --- DRAFT invoices -----------------------------------------------------------------------------


async def draft_rows(session: AsyncSession, account_id: str) -> list[InvoiceRow]:
    """The account's DRAFT invoices, oldest period first."""
    stmt = (select(InvoiceRow).where(InvoiceRow.account_id == account_id, InvoiceRow.status == "DRAFT")
            .order_by(InvoiceRow.period_start).execution_options(populate_existing=True))
    return list(await session.scalars(stmt))


async def accrued_charges(session: AsyncSession, account_id: str, currency: str, now: datetime) -> Decimal | None:
    """Charges of the periods started by `now` and not yet DUE (the open cycle, and a previous one still in
    its grace period); None when there is none. Raises when one cannot be computed (its invoice says why)."""
    rows = [r for r in await draft_rows(session, account_id) if r.period_start <= now]
    if not rows:
        return None
    drafts = await compute_drafts(session, rows)
    total = ZERO
    for draft in drafts.values():
        if draft.composed is None:
            raise NotFound(f"the charges of account {account_id!r} cannot be computed: invoice {draft.row.id!r}: "
                           f"{draft.problem}")
        total = EXACT_MONEY_CONTEXT.add(total, draft.composed.total)
    return round_money(total, currency)


async def outstanding_by_currency(session: AsyncSession, account_id: str) -> dict[str, Decimal]:
    """The amounts due of the account's DUE invoices, summed per invoice currency (an invoiceCurrency change
    leaves earlier invoices in theirs, and two currencies are never added), by currency code; a currency
    with nothing due is left out."""
    rows = await session.execute(
        select(InvoiceRow.currency, func.sum(InvoiceRow.amount_due))
        .where(InvoiceRow.account_id == account_id, InvoiceRow.status == "DUE").group_by(InvoiceRow.currency))
    return {currency: round_money(Decimal(total), currency) for currency, total in sorted(rows.tuples())
            if total}  # None: no amount at all; 0: every invoice of that currency settled


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
    return value.quantize(Decimal(1), context=EXACT_MONEY_CONTEXT)  # every digit: the default context keeps 28


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
        and line.type != OVERAGE_LINE  # its quantity is the overage, not the meter's usage
    ]


def _summary(row: InvoiceRow, plan_name: str, draft: Draft | None,
             credit_notes: Sequence[CreditNoteRef] = (), version: tuple[int, bool] = (1, False)) -> InvoiceSummary:
    common = {"id": row.id, "accountId": row.account_id, "customerId": row.customer_id, "pricePlanId": row.price_plan_id,
              "pricePlanName": plan_name, "pricePlanVersion": version[0], "isOverridden": version[1],
              "currency": row.currency, "startDate": row.period_start, "endDate": row.period_end,
              "invoiceType": row.invoice_type}
    if row.status == "DRAFT":
        assert draft is not None
        if draft.composed is None:
            return InvoiceSummary(**common, status="DRAFT", closesAt=draft.closes_at, problem=draft.problem,
                                  creditNotesTotal=money_of(row.currency)(ZERO))
        composed = draft.composed
        money = money_of(row.currency)
        return InvoiceSummary(
            **common, status="DRAFT", closesAt=draft.closes_at, problem=draft.problem,
            subTotalAmount=money(composed.sub_total),
            trueUpAmount=money(composed.true_up), totalAmount=money(composed.total), creditsApplied=money(ZERO),
            amountDue=money(composed.total), creditNotesTotal=money(ZERO),
        )
    assert row.invoice_date is not None and row.total_amount is not None
    money = money_of(row.currency)
    return InvoiceSummary(
        **common, sequenceId=invoice_number(row.sequence_number),
        status=row.status,  # type: ignore[arg-type]
        closesAt=row.invoice_date, invoiceDate=row.invoice_date, dueDate=row.due_date,
        subTotalAmount=money(row.sub_total), trueUpAmount=money(row.true_up), totalAmount=money(row.total_amount),
        creditsApplied=money(row.credits_applied), amountDue=money(row.amount_due),
        statusUpdatedAt=row.status_changed_at,
        creditNotesTotal=money(exact_sum(n.amount for n in credit_notes)), creditNotes=list(credit_notes),
    )


async def _plan_names(session: AsyncSession, plan_ids: set[str]) -> dict[str, str]:
    if not plan_ids:
        return {}
    rows = await session.execute(select(PricePlanRow.id, PricePlanRow.name).where(PricePlanRow.id.in_(plan_ids)))
    return dict(rows.tuples().all())


async def _versions(session: AsyncSession, rows: Sequence[InvoiceRow]) -> dict[int, tuple[int, bool]]:
    """association id -> (the plan version that priced its invoices, whether the account's overrides did)."""
    ids = {r.association_id for r in rows if r.association_id is not None}
    if not ids:
        return {}
    found = await session.execute(select(
        PlanAssociationRow.id, PlanAssociationRow.version, PlanAssociationRow.rate_card_overrides.is_not(None))
        .where(PlanAssociationRow.id.in_(ids)))
    return {association_id: (version, overridden) for association_id, version, overridden in found.tuples()}


async def render(session: AsyncSession, row: InvoiceRow) -> Invoice:
    """One invoice with every line; a DRAFT that cannot be computed raises its problem."""
    names = await _plan_names(session, {row.price_plan_id})
    if row.status == "DRAFT":
        draft = (await compute_drafts(session, [row]))[row.id]
        if draft.composed is None:
            raise NotFound(f"invoice {row.id!r}: {draft.problem}")
        lines = [_line(line, row.currency) for line in draft.composed.lines]
        logs = list(draft.composed.rule_logs)
    else:
        draft = None
        stored = await session.scalars(select(InvoiceLineRow).where(InvoiceLineRow.invoice_id == row.id))
        lines = _stored_lines(list(stored), row.currency)
        logs = row.pricing_rule_logs or []
    notes = await credit_notes_for(session, [row.id]) if row.status != "DRAFT" else {}
    versions = await _versions(session, [row])
    summary = _summary(row, names.get(row.price_plan_id, row.price_plan_id), draft, notes.get(row.id, ()),
                       versions.get(row.association_id, (1, False)))
    return Invoice(**dict(summary), lineItems=lines, usageInfo=_usage_info(lines),
                   pricingRuleLogs=[PricingRuleLog.model_validate(log) for log in logs])


# --- tools --------------------------------------------------------------------------------------


async def list_invoices(
    session: AsyncSession,
    *,
    account_id: str | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    page_size: int | None = None,
    next_token: str | None = None,
) -> Page[InvoiceSummary]:
    """Invoices whose period overlaps [start_time, end_time), newest period first and, within a period, the one
    created last first (`seq`, an identity: two advance invoices of one period, say). A DRAFT that cannot be computed is listed
    with its `problem` and no amounts."""
    if start_time is not None and end_time is not None and end_time <= start_time:
        raise InvalidInput("endTime", f"must be after startTime ({start_time.isoformat()})")
    stmt = select(InvoiceRow)
    if account_id is not None:
        stmt = stmt.where(InvoiceRow.account_id == account_id)
    if customer_id is not None:
        stmt = stmt.where(InvoiceRow.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(InvoiceRow.status == status)
    stmt = stmt.where(overlapping(start_time, end_time))
    rows, token = await fetch_page(session, stmt.execution_options(populate_existing=True),
                                   (InvoiceRow.period_start, InvoiceRow.seq), "invoices", page_size, next_token,
                                   descending=True)
    drafts = await compute_drafts(session, rows)
    names = await _plan_names(session, {r.price_plan_id for r in rows})
    notes = await credit_notes_for(session, [r.id for r in rows if r.status != "DRAFT"])
    versions = await _versions(session, rows)
    data = [_summary(r, names.get(r.price_plan_id, r.price_plan_id), drafts.get(r.id), notes.get(r.id, ()),
                     versions.get(r.association_id, (1, False))) for r in rows]
    return Page[InvoiceSummary](data=data, nextToken=token)


async def get_row(session: AsyncSession, invoice_id: str, *, lock: bool = False) -> InvoiceRow:
    """The invoice's row; with `lock`, read again after its account's lock (exclusive: a status change, its
    credit notes and its account's bill runs wait for each other; accounts.service.lock_accounts)."""
    stmt = select(InvoiceRow).where(InvoiceRow.id == invoice_id).execution_options(populate_existing=True)
    row = await session.scalar(stmt)
    if row is not None and lock:
        await lock_accounts(session, [row.account_id])
        row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"invoice {invoice_id!r} does not exist; list_invoices shows the ids (a plan change "
                       "replaces the DRAFT invoices of the periods it re-cuts)")
    return row


async def current_draft(session: AsyncSession, account_id: str, now: datetime) -> InvoiceRow | None:
    """The DRAFT of the period containing `now`; else the latest one started by `now` (a previous period still
    in grace), else the earliest one not started yet (opened by a bill run ahead of the clock)."""
    rows = await draft_rows(session, account_id)
    started = [r for r in rows if r.period_start <= now]
    containing = [r for r in started if now < r.period_end]
    if containing:
        return containing[0]
    if started:
        return started[-1]
    return rows[0] if rows else None


async def update_invoice_status(session: AsyncSession, invoice_id: str, status: str, now: datetime, *,
                                unclosed: wallets.UnclosedPeriods,
                                on_paid: Callable[[InvoiceRow], Awaitable[object]] | None = None) -> Invoice:
    """DUE -> PAID or DUE -> VOID (voiding gives applied credits back). Repeating the change is a no-op.
    `on_paid` runs once, under the account's lock, when the invoice becomes PAID (it grants what it sold)."""
    row = await get_row(session, invoice_id, lock=True)
    if status not in ("PAID", "VOID"):
        raise InvalidInput("status", f"{status!r} cannot be set by hand; set PAID or VOID on a DUE invoice (DRAFT "
                                     "invoices become DUE by themselves at period end + grace period)")
    if row.status == status:
        return await render(session, row)
    if row.status == "DRAFT":
        draft = (await compute_drafts(session, [row]))[row.id]
        raise InvalidInput("status", f"invoice {invoice_id!r} is DRAFT: its period is still open; it becomes DUE at "
                                     f"{draft.closes_at.isoformat()}, after which it can be marked {status}")
    if row.status != "DUE":
        raise InvalidInput("status", f"invoice {invoice_id!r} is {row.status}, which is final; only DUE invoices "
                                     "can be marked PAID or VOID")
    if status == "VOID":
        await check_voidable(session, row)  # a credited invoice is not voided
        returned = await wallets.reverse_invoice_credits(session, invoice_id=row.id, at=now, unclosed=unclosed)
        row.credits_applied = max(EXACT_MONEY_CONTEXT.subtract(row.credits_applied or ZERO, returned), ZERO)
        row.amount_due = ZERO
    row.status = status
    row.status_changed_at = now
    await session.flush()
    if status == "PAID" and on_paid is not None:
        await on_paid(row)
    return await render(session, row)
