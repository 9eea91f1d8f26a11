"""Crediting the unused part of IN_ADVANCE fixed fees when a plan change or a plan's end cuts their cycle short.

An in-advance fee of cycle N is on the invoice of the period before it, or on the association's advance invoice
for its first period (invoices/fixed_fees.py). When the association ends at T inside cycle N (or before it: the
whole fee is unused):
- that invoice still DRAFT: it is recomposed with the fee prorated to [N.start, T) (nothing to do here);
- that invoice DUE or PAID: a credit note (ORDER_CHANGE) is issued with the change, for the line's value × the
  unused share of what it paid for (T to its service period's end, over that service period), rounded once
  half-up to the currency's minor unit, less what notes already credited on that line (and at most what the
  invoice's notes left creditable). A ONE_TIME fee is never credited for a cut. When pricing rules on that invoice
  took a discount (ADD rules of a negative amount), the unused part is credited net of the fee's share of it: each
  discount spread by value over the total it saw (over the cards it reads when it reads cards and not the total),
  × (base + discount) / base of each (invoices README, "In-advance fees and pricing rules").
PREPAID credits sold for a cycle that starts at or after T (the next cycle's, on the period's invoice) are credited
whole the same way, less what notes credited on the line: the plan no longer reaches that cycle (a change sells it
again on the new association's advance invoice). Credits of a cycle already started stay bought (they expire with
their cycle). A PAID purchase is credited as far as its credits are unused (credit_notes.line_room).
A change at an association's first instant (a plan change or end there, a version or deal moved in place) drops
or re-prices the association from its start: its advance invoice is credited whole, every line of it (ONE_TIME
fees and PREPAID credits sold included), because the period it paid for is invoiced anew (or not at all). A PAID
purchase of PREPAID credits is credited as far as its credits are unused (credit_notes.line_room): those are voided,
the used ones stay paid for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import DateTime, and_, cast, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from togai_engine.billing.current import unclosed_periods
from togai_engine.common.numbers import EXACT_MONEY_CONTEXT, exact_sum
from togai_engine.errors import EngineError
from togai_engine.invoices import credit_notes
from togai_engine.invoices.change_credits import CUT_KEY, REPLACED_KEY
from togai_engine.invoices.compose import CREDIT_GRANT_LINE, FIXED_FEE_LINE
from togai_engine.invoices.credit_note_models import CREDITABLE_STATUSES, CreditNoteLineRow, CreditNoteRow
from togai_engine.invoices.credit_note_schemas import CreditNoteCreate, CreditNoteLineInput
from togai_engine.invoices.models import ADVANCED, INVOICE_COUNTER, InvoiceLineRow, InvoiceRow, counter_lock_sql
from togai_engine.invoices.pricing_rules import PRICING_RULE_LINE
from togai_engine.invoices.sold_credits import PURCHASE_LINE
from togai_engine.plans.overrides import plans_by_association
from togai_engine.pricing import round_fraction
from togai_engine.pricing.rules import RATE_CARD_PREFIX, SUB_TOTAL, TOTAL

_MICROSECOND = timedelta(microseconds=1)


async def credit_unused_advance_fees(session: AsyncSession, account_id: str, instant: datetime,
                                     now: datetime) -> list[str]:
    """Credit notes for the in-advance fees the account's plan no longer uses from `instant` on; returns their ids.
    Call after the association was cut at `instant`."""
    in_advance_fee = and_(InvoiceLineRow.line_type == FIXED_FEE_LINE,
                          InvoiceLineRow.details["invoiceTiming"].astext == "IN_ADVANCE",
                          InvoiceLineRow.details["type"].astext == "RECURRING")
    lines = await _lines(session, InvoiceRow.account_id == account_id, or_(in_advance_fee, PURCHASE_LINE))
    issued: list[str] = []
    for invoice, line in lines:
        unused = _unused(line, invoice.currency, instant)
        if unused is None:
            continue
        net = ""
        if line.line_type == FIXED_FEE_LINE:
            share = Fraction(1)
            if any(log.get("status") == "APPLIED" and log.get("action") == "ADD" and Decimal(log["amount"]) < 0
                   for log in invoice.pricing_rule_logs or ()):
                share = _after_discounts(invoice, line.rate_card_name, await _rules_of_cards(session, invoice),
                                         await _card_values(session, invoice.id))
            if share != 1:
                gross, unused = unused, round_fraction(Fraction(unused) * share, invoice.currency)
                net = f"; {unused} of its {gross}, net of the pricing rules' discount"
        note = await _credit(session, invoice, line, unused, now, less_credited=True,
                             memo=f"{line.description}: unused from {instant.isoformat()} (the plan changed or ended "
                                  f"there){net}",
                             key=f"{CUT_KEY}{invoice.id}:{line.position}:{instant.isoformat()}")
        if note is not None:
            issued.append(note)
    return issued


def _after_discounts(invoice: InvoiceRow, fee_card: str | None, card_rules: Mapping[str, frozenset[str]],
                     card_values: Mapping[str, Decimal]) -> Fraction:
    """What the invoice's pricing rules left of the fee's line: 1 when no rule took a discount of it. Each discount
    (an ADD rule applied with a negative amount) is spread by value over the lines it saw: of a rule whose
    computation reads rate cards and not the total (`card_rules`: rule name -> those cards), their lines
    (`card_values`: card name -> its lines' value), so none of it is the fee's unless it reads the fee's card; of any
    other, the invoice's total before it (its log's totalBefore: the rate-card lines and the lines of the rules
    before it, a surcharge's too). Each leaves the lines it is spread over (base + discount) / base of their value;
    the rules run in order, so the shares multiply. A rule that adds a charge (a surcharge, a minimum) is not
    spread: it is the invoice's, as the minimum commitment's true-up, and a change credits neither; the true-up and
    late usage come after the rules, which never see them."""
    share = Fraction(1)
    for log in invoice.pricing_rule_logs or ():
        if log.get("status") != "APPLIED" or log.get("action") != "ADD" or Decimal(log["amount"]) >= 0:
            continue
        amount = Fraction(Decimal(log["amount"]))
        cards = card_rules.get(log.get("name", ""))
        if cards is not None:
            if fee_card not in cards:
                continue  # a discount of other cards
            base = Fraction(exact_sum(card_values.get(card, Decimal(0)) for card in cards))
        else:
            base = Fraction(Decimal(log["totalBefore"]))
        if base > 0:
            share *= max(base + amount, Fraction(0)) / base
    return share


async def _rules_of_cards(session: AsyncSession, invoice: InvoiceRow) -> dict[str, frozenset[str]]:
    """Rule name -> the rate cards its computation reads, for the rules of the invoice's plan that read rate cards
    and neither the total nor the subtotal: what they compute is of those cards (_after_discounts). Empty when the
    plan cannot be resolved (its deal no longer validates): every discount is then spread over the total."""
    try:
        plan = (await plans_by_association(session, {invoice.association_id}))[invoice.association_id]
    except (KeyError, EngineError):
        return {}
    found = {}
    for compiled in plan.compiled_rules:
        read = compiled.computation.variables
        cards = frozenset(name[len(RATE_CARD_PREFIX):] for name in read if name.startswith(RATE_CARD_PREFIX))
        if cards and TOTAL not in read and SUB_TOTAL not in read:
            found[compiled.rule.name] = cards
    return found


async def _card_values(session: AsyncSession, invoice_id: str) -> dict[str, Decimal]:
    """Rate card name -> the value of its top-level lines on the invoice (the rules' own lines aside), as the rules'
    rateCards.<name> reads them."""
    rows = (await session.execute(select(InvoiceLineRow.rate_card_name, InvoiceLineRow.value).where(
        InvoiceLineRow.invoice_id == invoice_id, InvoiceLineRow.parent_position.is_(None),
        InvoiceLineRow.line_type != PRICING_RULE_LINE, InvoiceLineRow.rate_card_name.is_not(None)))).tuples().all()
    values: dict[str, Decimal] = {}
    for name, value in rows:
        values[name] = EXACT_MONEY_CONTEXT.add(values.get(name, Decimal(0)), value)
    return values


def _unused(line: InvoiceLineRow, currency: str, instant: datetime) -> Decimal | None:
    """What of the line's value pays for time from `instant` on (None: nothing). An in-advance fee: its value less
    its value × the used share of its service period, rounded; the fee of a period the plan no longer reaches at
    all (it starts at or after `instant`) whole. PREPAID credits: whole when their cycle starts at or after `instant`, else nothing."""
    details = line.details or {}
    if line.line_type == CREDIT_GRANT_LINE:
        return line.value if datetime.fromisoformat(details["effectiveFrom"]) >= instant else None
    paid_until = datetime.fromisoformat(details["servicePeriodEnd"])
    if paid_until <= instant:
        return None
    paid_from = datetime.fromisoformat(details["servicePeriodStart"])
    unused_from = max(instant, paid_from)
    # The value less the used share rounded, not the unused share rounded: what stays charged is then what a DRAFT
    # prorates for the same time, to the cent (the two roundings part ways on a half cent)
    used = round_fraction(Fraction(line.value) * Fraction((unused_from - paid_from) // _MICROSECOND,
                                                          (paid_until - paid_from) // _MICROSECOND), currency)
    return EXACT_MONEY_CONTEXT.subtract(line.value, used)


async def credit_replaced_advance_invoices(session: AsyncSession, association_ids: list[int],
                                           now: datetime) -> list[str]:
    """Credit notes for the whole of the advance invoices of associations a change drops, or re-prices from their
    first instant (a version or deal moved in place): the re-opened period gets a new advance invoice, so every
    line of the old one (fees of any type, PREPAID credits sold) is credited, what is left of it."""
    if not association_ids:
        return []
    issued = []
    for invoice, line in await _lines(session, InvoiceRow.association_id.in_(association_ids),
                                      InvoiceRow.invoice_type == ADVANCED):
        note = await _credit(session, invoice, line, line.value, now,
                             memo=f"{line.description}: replaced (the plan changed from its first instant)",
                             key=f"{REPLACED_KEY}{invoice.id}:{line.position}")
        if note is not None:
            issued.append(note)
    return issued


async def credited_from(session: AsyncSession, association_id: int, instant: datetime) -> bool:
    """Whether a change's note (ORDER_CHANGE, issued by credit_unused_advance_fees: an operator's own ORDER_CHANGE
    note is a credit like any other) credited a line of the association's invoices that pays for time from
    `instant` on (an in-advance fee, PREPAID credits): a cut of the association credited that time as unused, so
    continuing the association across `instant` would use it unpaid."""
    found = await session.scalar(
        select(InvoiceLineRow.position)
        .join(InvoiceRow, InvoiceRow.id == InvoiceLineRow.invoice_id)
        .join(CreditNoteLineRow, and_(CreditNoteLineRow.invoice_id == InvoiceLineRow.invoice_id,
                                      CreditNoteLineRow.line_position == InvoiceLineRow.position))
        .join(CreditNoteRow, CreditNoteRow.id == CreditNoteLineRow.credit_note_id)
        .where(InvoiceRow.association_id == association_id, CreditNoteRow.reason == "ORDER_CHANGE",
               CreditNoteRow.idempotency_key.startswith(CUT_KEY, autoescape=True),
               cast(InvoiceLineRow.details["servicePeriodEnd"].astext, DateTime(timezone=True)) > instant)
        .limit(1))
    return found is not None


async def _lines(session: AsyncSession, *conditions: ColumnElement[bool]) -> list[tuple[InvoiceRow, InvoiceLineRow]]:
    """Top-level lines of creditable invoices, with their invoice, oldest invoice first."""
    return list((await session.execute(
        select(InvoiceRow, InvoiceLineRow)
        .join(InvoiceLineRow, InvoiceLineRow.invoice_id == InvoiceRow.id)
        .where(InvoiceRow.status.in_(CREDITABLE_STATUSES), InvoiceLineRow.parent_position.is_(None), *conditions)
        .order_by(InvoiceRow.period_start, InvoiceRow.seq, InvoiceLineRow.position))).tuples().all())


async def _credit(session: AsyncSession, invoice: InvoiceRow, line: InvoiceLineRow, wanted: Decimal, now: datetime,
                  *, memo: str, key: str, less_credited: bool = False) -> str | None:
    """A credit note of `wanted` on `line` (`less_credited`: less what notes credited on the line already, which came
    off what it paid for), within what create_credit_note allows still (credit_notes.line_room); None when nothing
    is left to credit. The note's key names what the line's notes credited before it: room can remain after a first
    change (a PAID purchase line is credited only as far as its credits are unused), and a later change crediting
    more of it is another note, not a replay of the first with another amount."""
    room = await credit_notes.line_room(session, invoice, line.position, now=now, unclosed=unclosed_periods)
    amount = min(EXACT_MONEY_CONTEXT.subtract(wanted, room.credited) if less_credited else wanted, room.room)
    if amount <= 0:
        return None
    # The invoice counter before the note's own (billing README, "Lock order"): the change invoices next (its
    # re-bill), and a change that numbers its note first while another, which closed a due period first, numbers
    # its note next would each wait for the counter the other holds.
    await session.execute(text(counter_lock_sql(INVOICE_COUNTER)))
    result = await credit_notes.create_credit_note(session, CreditNoteCreate(
        invoiceId=invoice.id, reason="ORDER_CHANGE", memo=memo[:500],
        lines=[CreditNoteLineInput(lineNumber=room.number, amount=amount)],
        idempotencyKey=f"{key}:after:{room.credited}",
    ), now, unclosed=unclosed_periods)
    return result.creditNote.id
