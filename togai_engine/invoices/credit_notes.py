"""Credit notes: corrections to a DUE or PAID invoice that never edit it (README.md has the policy).

Services take the session first, never commit, and take the time as an argument. Invoices show their
notes through `credit_notes_for`; update_invoice_status asks `check_voidable` before a VOID. A note on a line
that sold PREPAID credits takes its share of them back (sold_credits.py; README.md, "PREPAID credits").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountRow
from togai_engine.accounts.service import account_id_of, lock_accounts
from togai_engine.common.ids import new_id
from togai_engine.common.numbers import EXACT_MONEY_CONTEXT, exact_sum
from togai_engine.common.pagination import fetch_page
from togai_engine.common.schemas import Page
from togai_engine.errors import Conflict, InvalidInput, NotFound
from togai_engine.invoices.compose import LATE_USAGE_LINE
from togai_engine.invoices.credit_note_models import COUNTER, CREDITABLE_STATUSES, CreditNoteLineRow, CreditNoteRow
from togai_engine.invoices.credit_note_schemas import (
    CreditedInvoice,
    CreditNote,
    CreditNoteCreate,
    CreditNoteLine,
    CreditNoteLineInput,
    CreditNoteRef,
    CreditNoteResult,
)
from togai_engine.invoices.display import credit_note_number, invoice_number
from togai_engine.invoices.display import money as display_money
from togai_engine.invoices.models import InvoiceCounterRow, InvoiceLineRow, InvoiceRow, counter_lock_sql
from togai_engine.invoices.sold_credits import credits_voided, is_purchase_line, most_creditable
from togai_engine.pricing.money import exact_money, round_money
from togai_engine.wallets import ledger
from togai_engine.wallets.rate_cards import sold_grant
from togai_engine.wallets.service import (
    Sale,
    SoldCredits,
    UnclosedPeriods,
    grant_from_credit_note,
    sale_was_granted,
    settle_for_replay,
    settle_wallet,
    sold_credits,
    void_sold_credits,
)

N = CreditNoteRow
NL = CreditNoteLineRow
ZERO = Decimal(0)


@dataclass(frozen=True)
class _Line:
    """A top-level invoice line: its number as get_invoice lists it, and its stored row."""

    number: int
    row: InvoiceLineRow


@dataclass(frozen=True)
class _LinePart:
    line: _Line
    amount: Decimal


@dataclass(frozen=True)
class _Request:
    amount: Decimal
    parts: tuple[_LinePart, ...]  # empty for a note by amount


@dataclass(frozen=True)
class _TakenBack:
    """The credits a note's part on a PREPAID purchase line (at `position`) takes back: voided now from the grant the
    line's sale issued (`granted`: PAID granted them), or withheld from the grant its PAID will issue (None)."""

    position: int
    credits: Decimal
    granted: SoldCredits | None


@dataclass(frozen=True)
class _Credited:
    """What an invoice's credit notes add up to: in all, and taken off its amountDue."""

    amount: Decimal
    from_due: Decimal


# ---------------------------------------------------------------------------------------------------
# Tools: create_credit_note, list_credit_notes


async def create_credit_note(session: AsyncSession, data: CreditNoteCreate, now: datetime, *,
                             unclosed: UnclosedPeriods) -> CreditNoteResult:
    """Issues a credit note against a DUE or PAID invoice; the same idempotencyKey with the same content
    returns the earlier note, with different content it is a Conflict. Call after billing caught the
    invoice's account up to `now` (app/invoices.py), so a period past its grace period is DUE first."""
    found = await session.get(InvoiceRow, data.invoiceId)
    if found is None:
        raise NotFound(f"invoice {data.invoiceId!r} does not exist; list_invoices shows the ids")
    account_id = found.account_id
    # Lock order as billing's: the account's lock (its currency cannot change under the note, no bill run of
    # it runs meanwhile, and notes of its invoices and a VOID wait for each other), then the wallet.
    await lock_accounts(session, [account_id])
    account = await session.scalar(select(AccountRow).where(AccountRow.id == account_id)
                                   .execution_options(populate_existing=True))
    invoice = await session.scalar(select(InvoiceRow).where(InvoiceRow.id == data.invoiceId)
                                   .execution_options(populate_existing=True))
    if invoice is None:
        raise NotFound(f"invoice {data.invoiceId!r} was replaced by a plan change; list_invoices shows the ids")
    assert account is not None, "an invoice's account exists (foreign key)"
    # The key before anything about this invoice or the account: a key that names an earlier note answers for that
    # note, so a retry sent to another invoice (DRAFT, VOID, other lines) hears of the note, not of the invoice, and
    # a retry of a committed note replays it even when the account could no longer take a new one.
    if data.idempotencyKey is not None:
        earlier = await _note_with_key(session, account_id, data.idempotencyKey)
        if earlier is not None:
            return await _replay(session, earlier, invoice, data, now, unclosed)
    # Once for the whole note: the unused credits of a sale it takes back, and the walletBalance it shows, count
    # no credit that expired (a refused note rolls the expiries back with it).
    await settle_wallet(session, account_id, now, unclosed)
    _check_status(invoice)
    request = await _request(session, invoice, data)
    credited = await _credited(session, invoice.id)
    await _check_purchase_lines_named(session, invoice, request)
    # what earlier notes credited on each line the note names, for both its caps and its PREPAID shares
    on_lines = await credited_on_lines(session, invoice.id, [p.line.row.position for p in request.parts])
    _check_room(invoice, request, credited.amount, on_lines)
    taken = await _credits_taken_back(session, invoice, request, on_lines)

    amount_due = invoice.amount_due if invoice.amount_due is not None else ZERO
    from_due = min(request.amount, amount_due) if invoice.status == "DUE" else ZERO
    to_wallet = EXACT_MONEY_CONTEXT.subtract(request.amount, from_due)
    if to_wallet > 0 and account.invoice_currency != invoice.currency:
        raise Conflict(
            f"invoice {invoice.id!r} is in {invoice.currency} but account {account_id!r} keeps its wallet in "
            f"{account.invoice_currency} (its invoiceCurrency now), so the {to_wallet} this note would credit to the "
            f"wallet cannot be held there; credit at most {from_due} (what the invoice still owes)")
    note = await _insert_note(session, invoice, data, request, from_due=from_due, to_wallet=to_wallet, taken=taken,
                              now=now)
    # None: a concurrent note of another invoice took the key first (notes of this invoice wait for its
    # lock, then find the key above)
    if note is None:
        earlier = await _note_with_key(session, account_id, data.idempotencyKey)
        assert earlier is not None, "ON CONFLICT DO NOTHING found a committed note with the key"
        return await _replay(session, earlier, invoice, data, now, unclosed)
    if request.parts:
        voided = {take.position: take.credits for take in taken}
        await session.execute(insert(NL).values([
            {"credit_note_id": note.id, "line_number": part.line.number, "invoice_id": invoice.id,
             "line_position": part.line.row.position, "amount": part.amount,
             "credits_voided": voided.get(part.line.row.position)}
            for part in request.parts
        ]))
    # The invoice's totals never change; only what is still owed on it does.
    invoice.amount_due = EXACT_MONEY_CONTEXT.subtract(amount_due, from_due)
    await session.flush()
    # the invoice is locked: its notes are the ones summed above plus this one
    after = _Credited(amount=EXACT_MONEY_CONTEXT.add(credited.amount, request.amount),
                      from_due=EXACT_MONEY_CONTEXT.add(credited.from_due, from_due))
    return await _result(session, note, invoice, after, now, replayed=False)


async def list_credit_notes(
    session: AsyncSession, *, invoice_id: str | None = None, account_id: str | None = None,
    page_size: int | None = None, next_token: str | None = None,
) -> Page[CreditNote]:
    """Credit notes of an invoice or of an account (named by its id or an alias), newest first."""
    if invoice_id is None and account_id is None:
        raise InvalidInput("invoiceId", "pass invoiceId (the notes of one invoice) or accountId (all of an account's)")
    stmt = select(N)
    if invoice_id is not None:
        if await session.get(InvoiceRow, invoice_id) is None:
            raise NotFound(f"invoice {invoice_id!r} does not exist; list_invoices shows the ids")
        stmt = stmt.where(N.invoice_id == invoice_id)
    if account_id is not None:
        account_id = await account_id_of(session, account_id)
        stmt = stmt.where(N.account_id == account_id)
    kind = f"credit_notes:{invoice_id or ''}:{account_id or ''}"
    rows, token = await fetch_page(session, stmt, N.seq, kind, page_size, next_token, descending=True)
    return Page[CreditNote](data=await _views(session, rows), nextToken=token)


# ---------------------------------------------------------------------------------------------------
# Hooks called by invoices


async def credit_notes_for(session: AsyncSession, invoice_ids: Sequence[str]) -> dict[str, list[CreditNoteRef]]:
    """The credit notes of each invoice, oldest first (as get_invoice and list_invoices show them)."""
    if not invoice_ids:
        return {}
    rows = await session.scalars(select(N).where(N.invoice_id.in_(list(invoice_ids))).order_by(N.seq))
    found: dict[str, list[CreditNoteRef]] = defaultdict(list)
    for row in rows:
        money = display_money(row.currency)
        found[row.invoice_id].append(CreditNoteRef(
            id=row.id, sequenceId=credit_note_number(row.sequence_number), amount=money(row.amount),
            reason=row.reason,  # type: ignore[arg-type]
            creditedFromDue=money(row.credited_from_due), creditedToWallet=money(row.credited_to_wallet),
            createdAt=row.created_at))
    return dict(found)


async def check_voidable(session: AsyncSession, invoice: InvoiceRow) -> None:
    """Refuses to void an invoice that has credit notes: they already took amounts off it or credited the
    wallet, and a VOID would undo its wallet credits a second time. A note for the rest does what VOID would."""
    if await sale_was_granted(session, account_id=invoice.account_id, invoice_id=invoice.id):
        # only a DUE invoice that migration 0022 linked to the grant an earlier sale of its cycle issued: a VOID
        # would leave those credits granted
        raise Conflict(f"invoice {invoice.id!r} sells PREPAID credits that its account already holds (granted before "
                       "migration 0022 for the same cycle), and a VOID would leave them granted; credit it by lines "
                       f"instead (create_credit_note(invoiceId={invoice.id!r}, lines=[...]), get_invoice lists them), "
                       "which takes the unused credits back")
    notes = (await credit_notes_for(session, [invoice.id])).get(invoice.id, [])
    if not notes:
        return
    credited = exact_sum(n.amount for n in notes)
    rest = round_money(EXACT_MONEY_CONTEXT.subtract(invoice.total_amount or ZERO, credited), invoice.currency)
    listed = ", ".join(f"{n.sequenceId} {n.amount}" for n in notes)
    if rest <= 0:
        remedy = "it is credited in full already, so nothing is left to cancel"
    elif await _purchase_lines_with_room(session, invoice):
        remedy = (f"to cancel the rest ({rest}), credit it by lines (create_credit_note(invoiceId={invoice.id!r}, "
                  "lines=[...]), naming its PREPAID purchase lines, whose credits are then not granted; get_invoice "
                  "lists the lines): what it still owes comes off amountDue and the rest goes back to the wallet")
    else:
        remedy = (f"to cancel the rest, issue create_credit_note(invoiceId={invoice.id!r}, amount=\"{rest}\"): what "
                  "it still owes comes off amountDue and the rest goes back to the wallet")
    raise Conflict(f"invoice {invoice.id!r} has credit notes ({listed}) and cannot be voided, because they already "
                   f"corrected it; {remedy}")


# ---------------------------------------------------------------------------------------------------
# Checks


def _check_status(invoice: InvoiceRow) -> None:
    if invoice.status == "DRAFT":
        raise InvalidInput(
            "invoiceId", f"invoice {invoice.id!r} is DRAFT: its period is still open and its amounts are recomputed "
            "from usage until it becomes DUE (list_invoices shows closesAt); correct the usage, or credit it once it "
            "is DUE")
    if invoice.status not in CREDITABLE_STATUSES:  # VOID
        raise InvalidInput("invoiceId", f"invoice {invoice.id!r} is {invoice.status}: nothing is owed on it, so "
                                        "there is nothing to credit")


async def _request(session: AsyncSession, invoice: InvoiceRow, data: CreditNoteCreate) -> _Request:
    """The note's amount, and its lines resolved to the invoice's top-level lines (amounts exact)."""
    currency = invoice.currency
    if data.reason == "OTHER" and not (data.memo or "").strip():
        raise InvalidInput("memo", "reason OTHER needs a memo saying why the invoice is credited; or choose "
                                   "DUPLICATE, FRAUDULENT, ORDER_CHANGE or PRODUCT_UNSATISFACTORY")
    if (data.amount is None) == (data.lines is None):
        raise InvalidInput("amount", "pass either amount (a credit on the invoice as a whole) or lines (credits on "
                                     "given invoice lines), not both and not neither")
    if data.amount is not None:
        amount = _exact(data.amount, currency, "amount")
        return _Request(amount=amount, parts=())
    assert data.lines is not None
    lines = await _top_lines(session, invoice.id)
    parts: list[_LinePart] = []
    for i, given in enumerate(data.lines):
        line = _resolve(lines, given, f"lines[{i}]", invoice)
        if any(p.line.number == line.number for p in parts):
            raise InvalidInput(f"lines[{i}]", f"line {line.number} is already credited by an earlier entry of lines; "
                                              "give one amount per line")
        parts.append(_LinePart(line=line, amount=_exact(given.amount, currency, f"lines[{i}].amount")))
    return _Request(amount=exact_sum(p.amount for p in parts), parts=tuple(parts))


def _resolve(lines: list[_Line], given: CreditNoteLineInput, field: str, invoice: InvoiceRow) -> _Line:
    invoice_id = invoice.id
    listing = "; ".join(f"{line.number}: {line.row.rate_card_name or line.row.description}" for line in lines)
    if (given.lineNumber is None) == (given.rateCardName is None):
        raise InvalidInput(field, f"give either lineNumber or rateCardName of the line to credit (lines of invoice "
                                  f"{invoice_id!r}: {listing})")
    if given.lineNumber is not None:
        if given.lineNumber > len(lines):
            raise InvalidInput(f"{field}.lineNumber", f"invoice {invoice_id!r} has {len(lines)} lines, numbered 1 to "
                                                      f"{len(lines)} as get_invoice lists them ({listing})")
        found = lines[given.lineNumber - 1]
    else:
        named = [line for line in lines if line.row.rate_card_name == given.rateCardName]
        if len(named) != 1:
            what = "no line" if not named else f"{len(named)} lines"
            raise InvalidInput(f"{field}.rateCardName", f"invoice {invoice_id!r} has {what} for rate card "
                                                        f"{given.rateCardName!r}; use lineNumber ({listing})")
        found = named[0]
    if found.row.value < 0:
        # "at most" its negative value would be no answer
        named = f"{field}.{'lineNumber' if given.lineNumber is not None else 'rateCardName'}"
        money = display_money(invoice.currency)
        if found.row.line_type == LATE_USAGE_LINE:
            raise InvalidInput(named, _negative_late_line(found, money))
        # a pricing rule's discount
        others = "; ".join(f"{line.number}: {line.row.rate_card_name or line.row.description}" for line in lines
                           if line.row.value > 0)
        raise InvalidInput(named, f"line {found.number} ({found.row.description}) is {money(found.row.value)}, a "
                                  f"discount that lowers the invoice: it has nothing to credit; credit another line "
                                  f"({others}) or the invoice by amount")
    return found


def _negative_late_line(line: _Line, money: Callable[[Decimal | None], Decimal]) -> str:
    """Why a late-usage line below zero takes no line credit, and what does: its period's recomposed charge fell and
    the line is the part of the fall offset against its quota cycle's other late lines on the invoice (invoices
    README, "A cycle's late lines bill its net"); a credit note by amount gives back more."""
    details = line.row.details or {}
    source = details.get("sourceInvoiceNumber") or details.get("sourceInvoiceId")
    period = " – ".join(_instant(at) for at in (line.row.usage_start, line.row.usage_end))
    message = (f"line {line.number} is {money(line.row.value)}, the late-usage line of period {period} (invoice "
               f"{source}): that period's charge fell when it was recomposed, and this line is the part of the fall "
               "offset against the other late-usage lines of its quota cycle on this invoice, so it lowers the invoice "
               "and has nothing to credit line by line; credit by amount instead (create_credit_note with amount, "
               "not lines)")
    try:
        rest = EXACT_MONEY_CONTEXT.add(Decimal(details["difference"]).copy_negate(), line.row.value)
    except (KeyError, TypeError, ArithmeticError):
        return message
    if rest > 0:  # what the offset does not cover, its description says, is left to a note on the period's invoice
        message += f"; the other {money(rest)} of the fall is not offset: credit it by amount on invoice {source}"
    return message


def _instant(at: datetime | None) -> str:
    """An instant as the late-usage line's description shows it: the date alone at midnight."""
    if at is None:
        return "?"
    return at.date().isoformat() if at.time() == time(0) else at.isoformat()


async def _check_purchase_lines_named(session: AsyncSession, invoice: InvoiceRow, request: _Request) -> None:
    """A note by amount does not say how much of a PREPAID purchase line it credits, so it could give back what the
    credits were bought with and leave them granted: while a purchase line can still be credited, a note on its
    invoice names its lines."""
    if request.parts:
        return
    open_lines = await _purchase_lines_with_room(session, invoice)
    if not open_lines:
        return
    money = display_money(invoice.currency)
    listing = "; ".join(f"line {line.number} ({line.row.description}), up to {money(room)}" for line, room in open_lines)
    raise InvalidInput(
        "amount", f"invoice {invoice.id!r} sold PREPAID credits ({listing}), so a credit note on it names the lines it "
                  "credits instead of an amount: lines=[{\"lineNumber\": 1, \"amount\": \"10.00\"}] (get_invoice "
                  "lists them). Credit on a purchase line takes back its credits in proportion (credited / value × "
                  "credits sold): from the wallet if the invoice is PAID, else from what its PAID grants")


async def _purchase_lines_with_room(session: AsyncSession, invoice: InvoiceRow) -> list[tuple[_Line, Decimal]]:
    """The invoice's PREPAID purchase lines that earlier notes have not credited in full, with what is left of each."""
    purchases = [line for line in await _top_lines(session, invoice.id)
                 if is_purchase_line(line.row.line_type, line.row.details)]
    if not purchases:
        return []
    credited = await credited_on_lines(session, invoice.id, [line.row.position for line in purchases])
    rooms = [(line, EXACT_MONEY_CONTEXT.subtract(line.row.value, credited.get(line.row.position, ZERO)))
             for line in purchases]
    return [(line, room) for line, room in rooms if room > 0]


async def _credits_taken_back(session: AsyncSession, invoice: InvoiceRow, request: _Request,
                              earlier: Mapping[int, Decimal]) -> list[_TakenBack]:
    """What the request's parts on PREPAID purchase lines take back (README.md, "PREPAID credits"), after what
    earlier notes credited on each line (`earlier`, by position). On a PAID invoice the credits were granted: only
    the unused part of the line's grant can be taken back, so a part that would take more is refused, naming it and
    the most it may credit. Writes nothing; the caller settled the wallet (settle_wallet)."""
    purchases = [(i, part) for i, part in enumerate(request.parts)
                 if is_purchase_line(part.line.row.line_type, part.line.row.details)]
    if not purchases:
        return []
    currency = invoice.currency
    shares = []
    for i, part in purchases:
        row = part.line.row
        assert row.details is not None, "a purchase line carries the grant it sold"
        sold = sold_grant(row.details).amount
        before = earlier.get(row.position, ZERO)
        shares.append((i, part, sold, before, credits_voided(sold, row.value, before, part.amount, currency)))
    grants = await _sold_grants(session, invoice, [part.line.row.position for _, part, _, _, credits in shares
                                                   if credits > 0])
    taken = []
    for i, part, sold, before, credits in shares:
        row = part.line.row
        found = grants.get(row.position)
        unused = _unused(invoice, found) if credits > 0 else None
        if unused is not None and credits > unused:  # else voided from the grant, or withheld when not granted yet
            money = display_money(currency)
            most = min(most_creditable(sold, row.value, before, unused, currency),
                       EXACT_MONEY_CONTEXT.subtract(row.value, before))
            where = (f"only {money(unused)} of the {money(found.amount)} credits it granted (grant "
                     f"{found.grant_id!r}) are unused: the rest paid invoices or expired") if found is not None \
                else f"the wallet of account {invoice.account_id!r} holds no grant of them"
            raise InvalidInput(
                f"lines[{i}].amount",
                f"{part.amount} is more than line {part.line.number} ({row.description}) can still be credited: "
                f"it sold {money(sold)} credits for {money(row.value)}, and crediting {money(part.amount)} of it "
                f"(after the {money(before)} earlier notes credited) takes back {money(credits)} credits, but "
                f"{where}. Credits already used cannot be credited back, so at most {money(most)}")
        taken.append(_TakenBack(position=row.position, credits=credits, granted=found))
    return taken


def _check_room(invoice: InvoiceRow, request: _Request, credited: Decimal, earlier: Mapping[int, Decimal]) -> None:
    """A line is credited at most its value (less what earlier notes credited on it: `earlier`, by position); the
    invoice at most its total, over all its notes (`credited` so far)."""
    currency = invoice.currency
    if request.parts:
        for i, part in enumerate(request.parts):
            done = earlier.get(part.line.row.position, ZERO)
            room = EXACT_MONEY_CONTEXT.subtract(part.line.row.value, done)
            if part.amount > room:
                raise InvalidInput(
                    f"lines[{i}].amount",
                    f"{part.amount} is more than line {part.line.number} ({part.line.row.description}) can still be "
                    f"credited: its value is {display_money(currency)(part.line.row.value)} and earlier credit notes credit "
                    f"{display_money(currency)(done)} of it, so at most {display_money(currency)(room)}")
    total = invoice.total_amount or ZERO
    room = EXACT_MONEY_CONTEXT.subtract(total, credited)
    if request.amount > room:
        money = display_money(currency)
        raise InvalidInput(
            "lines" if request.parts else "amount",
            f"{request.amount} is more than invoice {invoice.id!r} can still be credited: its totalAmount is "
            f"{money(total)} and its credit notes already credit {money(credited)}, so at most {money(room)} "
            "(creditableAmount)")


@dataclass(frozen=True)
class LineRoom:
    """A top-level line's number (as `lines[].lineNumber` takes it), what notes credited on it so far, and the most
    a credit note may still credit on it."""

    number: int
    credited: Decimal
    room: Decimal


async def line_room(session: AsyncSession, invoice: InvoiceRow, position: int, *, now: datetime,
                    unclosed: UnclosedPeriods) -> LineRoom:
    """For the top-level line of `invoice` at `position`: the most a credit note may still credit on it (its value
    less what notes credited on it, at most what the invoice's notes left of its total, and on a PAID invoice's
    PREPAID purchase line at most what takes back no more than its grant's unused credits as of `now`): the caps
    create_credit_note enforces."""
    line = next(line for line in await _top_lines(session, invoice.id) if line.row.position == position)
    on_line = (await credited_on_lines(session, invoice.id, [position])).get(position, ZERO)
    left = EXACT_MONEY_CONTEXT.subtract(invoice.total_amount or ZERO, (await _credited(session, invoice.id)).amount)
    room = min(EXACT_MONEY_CONTEXT.subtract(line.row.value, on_line), left)
    row = line.row
    if room > 0 and is_purchase_line(row.line_type, row.details):
        assert row.details is not None
        await settle_wallet(session, invoice.account_id, now, unclosed)
        unused = _unused(invoice, (await _sold_grants(session, invoice, [position])).get(position))
        if unused is not None:  # only its unused credits can go back
            room = min(room, most_creditable(sold_grant(row.details).amount, row.value, on_line, unused,
                                             invoice.currency))
    return LineRoom(line.number, on_line, room)


async def _sold_grants(session: AsyncSession, invoice: InvoiceRow, positions: list[int]) -> dict[int, SoldCredits]:
    """The grants the invoice's purchase lines at `positions` issued, by position, with their unused credits (the
    caller settled the wallet); a line whose credits are not granted is absent."""
    found = await sold_credits(session, account_id=invoice.account_id, sales=[Sale(invoice.id, p) for p in positions])
    return {sale.line_position: credits for sale, credits in found.items()}


def _unused(invoice: InvoiceRow, found: SoldCredits | None) -> Decimal | None:
    """What of a purchase line's credits a note can take back from the wallet, given the grant its sale issued
    (`found`): that grant's unused credits, or 0 when the invoice is PAID but the wallet holds no grant of them; None
    when they are not granted yet, so a note withholds them from what PAID grants. PAID granted them; a DUE sale may
    hold the grant an earlier sale of its cycle issued before migration 0022, which linked it there."""
    if found is None:
        return ZERO if invoice.status == "PAID" else None
    return found.unused


async def credited_on_lines(session: AsyncSession, invoice_id: str, positions: list[int]) -> dict[int, Decimal]:
    """What the invoice's notes credited on each of the lines at `positions` (absent: nothing)."""
    if not positions:  # nothing to sum (a note by amount, an invoice without purchase lines): no query
        return {}
    rows = await session.execute(
        select(NL.line_position, func.sum(NL.amount))
        .where(NL.invoice_id == invoice_id, NL.line_position.in_(positions)).group_by(NL.line_position))
    return {position: Decimal(total) for position, total in rows.tuples()}


async def _replay(session: AsyncSession, earlier: CreditNoteRow, invoice: InvoiceRow, data: CreditNoteCreate,
                  now: datetime, unclosed: UnclosedPeriods) -> CreditNoteResult:
    """The earlier note of the request's idempotencyKey when the request repeats it, with the wallet settled when
    it can be (else its balance unknown, saying why); a Conflict otherwise. `invoice` is the request's invoice,
    locked."""
    if earlier.invoice_id != invoice.id:
        # its lines are another invoice's, so only the fields that mean the same on both are compared
        differing = ["invoiceId", *_differing_fields(earlier, data, _requested_amount(data))]
        raise await _key_conflict(session, earlier, data, differing)
    # Compared as given, not validated first: content that would be refused on its own differs from the earlier
    # note's (which was accepted), so the retry hears of that note, naming what differs.
    earlier_lines = sorted((line.line_number, line.amount) for line in await session.scalars(
        select(NL).where(NL.credit_note_id == earlier.id)))
    differing = _differing_fields(earlier, data, _requested_amount(data))
    if earlier_lines != _lines_as_given(await _top_lines(session, invoice.id), data.lines or []):
        differing.append("lines")
    if differing:
        raise await _key_conflict(session, earlier, data, differing)
    problem = await settle_for_replay(session, invoice.account_id, now, unclosed)
    return await _result(session, earlier, invoice, await _credited(session, invoice.id), now, replayed=True,
                         balance_problem=problem)


def _lines_as_given(lines: list[_Line], given: Sequence[CreditNoteLineInput]) -> list[tuple[int, Decimal]] | None:
    """The requested lines as sorted (line number, amount) pairs, resolved as `_resolve` does; None when one names no
    single line of the invoice (so it cannot be a note's)."""
    numbered = []
    for line in given:
        if (line.lineNumber is None) == (line.rateCardName is None):
            return None
        if line.lineNumber is not None:
            found = [line.lineNumber] if line.lineNumber <= len(lines) else []
        else:
            found = [n.number for n in lines if n.row.rate_card_name == line.rateCardName]
        if len(found) != 1:
            return None
        numbered.append((found[0], line.amount))
    return sorted(numbered)


def _differing_fields(earlier: CreditNoteRow, data: CreditNoteCreate, amount: Decimal | None) -> list[str]:
    differing = []
    if earlier.reason != data.reason:
        differing.append("reason")
    if earlier.memo != data.memo:
        differing.append("memo")
    if earlier.amount != amount:
        differing.append("amount")
    return differing


def _requested_amount(data: CreditNoteCreate) -> Decimal | None:
    """The amount a request asks for, as given (None when it gives both amount and lines, or neither)."""
    if (data.amount is None) == (data.lines is None):
        return None
    if data.amount is not None:
        return data.amount
    assert data.lines is not None
    return exact_sum(line.amount for line in data.lines)


async def _key_conflict(session: AsyncSession, earlier: CreditNoteRow, data: CreditNoteCreate,
                        differing: list[str]) -> Conflict:
    invoice_sequence = await session.scalar(
        select(InvoiceRow.sequence_number).where(InvoiceRow.id == earlier.invoice_id))
    return Conflict(
        f"idempotencyKey {data.idempotencyKey!r} was already used for credit note {earlier.id!r} "
        f"({credit_note_number(earlier.sequence_number)}) on invoice {earlier.invoice_id!r} "
        f"({invoice_number(invoice_sequence)}) with a different {', '.join(differing)}; reuse a key only to "
        "retry the same credit note, or choose a new key")


# ---------------------------------------------------------------------------------------------------
# Helpers


async def _top_lines(session: AsyncSession, invoice_id: str) -> list[_Line]:
    rows = await session.scalars(select(InvoiceLineRow).where(
        InvoiceLineRow.invoice_id == invoice_id, InvoiceLineRow.parent_position.is_(None))
        .order_by(InvoiceLineRow.position))
    return [_Line(number=n, row=row) for n, row in enumerate(rows, start=1)]


async def _credited(session: AsyncSession, invoice_id: str) -> _Credited:
    amount, from_due = (await session.execute(
        select(func.coalesce(func.sum(N.amount), 0), func.coalesce(func.sum(N.credited_from_due), 0))
        .where(N.invoice_id == invoice_id))).one()
    return _Credited(amount=Decimal(amount), from_due=Decimal(from_due))


async def _note_with_key(session: AsyncSession, account_id: str, key: str | None) -> CreditNoteRow | None:
    return await session.scalar(select(N).where(N.account_id == account_id, N.idempotency_key == key))


async def _insert_note(session: AsyncSession, invoice: InvoiceRow, data: CreditNoteCreate, request: _Request, *,
                       from_due: Decimal, to_wallet: Decimal, taken: Sequence[_TakenBack],
                       now: datetime) -> CreditNoteRow | None:
    """Numbers the note, credits the wallet its part, voids the PREPAID credits it takes back (`taken`) and stores
    the note; or, when a concurrent note of another invoice committed the same idempotencyKey first, undoes all
    of it (a savepoint: the numbers stay gapless) and returns None. The key's unique index decides: ON CONFLICT
    DO NOTHING waits for a transaction that is inserting the same key and skips the row once that one committed."""
    savepoint = await session.begin_nested()
    try:
        note_id = new_id("cn")
        number = await _next_number(session)
        grant_id = None
        if to_wallet > 0:
            grant_id = await grant_from_credit_note(
                session, account_id=invoice.account_id, currency=invoice.currency, amount=to_wallet,
                credit_note_id=note_id, at=now,
                purpose=f"credit note {credit_note_number(number)} on invoice {invoice_number(invoice.sequence_number)}")
        for take in taken:
            if take.granted is not None:
                await void_sold_credits(session, account_id=invoice.account_id, sold=take.granted,
                                        credits=take.credits, credit_note_id=note_id, at=now)
        note = await session.scalar(
            insert(N).values(
                id=note_id, sequence_number=number, account_id=invoice.account_id, invoice_id=invoice.id,
                invoice_status=invoice.status, currency=invoice.currency, amount=request.amount,
                credited_from_due=from_due, credited_to_wallet=to_wallet, grant_id=grant_id, reason=data.reason,
                memo=data.memo, idempotency_key=data.idempotencyKey, created_at=now)
            .on_conflict_do_nothing(index_elements=[N.account_id, N.idempotency_key])
            .returning(N))
    except BaseException:
        await savepoint.rollback()
        raise
    if note is None:
        await savepoint.rollback()
        return None
    await savepoint.commit()
    return note


async def _next_number(session: AsyncSession) -> int:
    """Gapless: the counter moves in the note's own transaction (a row of invoice_counters)."""
    await session.execute(text(counter_lock_sql(COUNTER)))
    number = await session.scalar(
        insert(InvoiceCounterRow).values(name=COUNTER, last_value=1)
        .on_conflict_do_update(index_elements=[InvoiceCounterRow.name],
                               set_={"last_value": InvoiceCounterRow.last_value + 1})
        .returning(InvoiceCounterRow.last_value))
    assert number is not None
    return int(number)


async def _result(session: AsyncSession, note: CreditNoteRow, invoice: InvoiceRow, credited: _Credited,
                  now: datetime, *, replayed: bool, balance_problem: str | None = None) -> CreditNoteResult:
    """The note and its invoice; the wallet balance unless `balance_problem` says why it is unknown."""
    money = display_money(invoice.currency)
    balance = None if balance_problem is not None else round_money(
        await ledger.balance(session, note.account_id, now), invoice.currency)
    total = invoice.total_amount or ZERO
    [view] = await _views(session, [note])
    return CreditNoteResult(
        creditNote=view,
        invoice=CreditedInvoice(
            id=invoice.id, status=invoice.status,  # type: ignore[arg-type]
            currency=invoice.currency, totalAmount=money(total), creditsApplied=money(invoice.credits_applied),
            creditNotesTotal=money(credited.amount), creditedFromDue=money(credited.from_due),
            amountDue=money(invoice.amount_due),
            creditableAmount=money(EXACT_MONEY_CONTEXT.subtract(total, credited.amount))),
        walletBalance=balance, replayed=replayed, problem=balance_problem,
    )


async def _views(session: AsyncSession, rows: Sequence[CreditNoteRow]) -> list[CreditNote]:
    """Notes as callers see them, with their lines (described as on the invoice) and invoice numbers."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    lines: dict[str, list[CreditNoteLine]] = defaultdict(list)
    found = await session.execute(
        select(NL, InvoiceLineRow.rate_card_name, InvoiceLineRow.description)
        .join(InvoiceLineRow, (InvoiceLineRow.invoice_id == NL.invoice_id)
              & (InvoiceLineRow.position == NL.line_position))
        .where(NL.credit_note_id.in_(ids)).order_by(NL.credit_note_id, NL.line_number))
    currency = {row.id: row.currency for row in rows}
    for line, card, description in found.tuples():
        money = display_money(currency[line.credit_note_id])
        lines[line.credit_note_id].append(CreditNoteLine(
            lineNumber=line.line_number, rateCardName=card, description=description, amount=money(line.amount),
            creditsVoided=money(line.credits_voided) if line.credits_voided is not None else None))
    numbers = dict((await session.execute(
        select(InvoiceRow.id, InvoiceRow.sequence_number).where(InvoiceRow.id.in_({r.invoice_id for r in rows}))
    )).tuples().all())
    views = []
    for row in rows:
        money = display_money(row.currency)
        number = numbers.get(row.invoice_id)
        views.append(CreditNote(
            id=row.id, sequenceId=credit_note_number(row.sequence_number), invoiceId=row.invoice_id,
            invoiceSequenceId=invoice_number(number), accountId=row.account_id,
            currency=row.currency, amount=money(row.amount),
            reason=row.reason,  # type: ignore[arg-type]
            memo=row.memo, lines=lines.get(row.id, []),
            invoiceStatus=row.invoice_status,  # type: ignore[arg-type]
            creditedFromDue=money(row.credited_from_due), creditedToWallet=money(row.credited_to_wallet),
            grantId=row.grant_id, idempotencyKey=row.idempotency_key, createdAt=row.created_at))
    return views


def _exact(value: Decimal, currency: str, field: str) -> Decimal:
    """`value` if it is > 0 and fits the currency's minor unit exactly (a credit is never rounded)."""
    if value <= 0:
        raise InvalidInput(field, f"must be greater than 0; got {value}")
    return exact_money(value, currency, field)
