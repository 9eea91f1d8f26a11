"""Wallet operations. Services take the session first, never commit, and take the time as an argument.

The billing engine calls `apply_credits_to_invoice` when an invoice becomes DUE,
`reverse_invoice_credits` when a DUE invoice is voided, and `issue_rate_card_grants` for each cycle
that starts under a plan with credit-grant rate cards; the application layer calls `issue_prepaid_grants`
when an invoice selling PREPAID credits is PAID. Credit notes call `settle_wallet` once, then
`grant_from_credit_note`, and `sold_credits` / `void_sold_credits` when they credit a PREPAID purchase line; a
replayed note calls `settle_for_replay` instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import exists, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountRow
from togai_engine.accounts.schemas import WalletSummary
from togai_engine.common.ids import new_id
from togai_engine.common.numbers import EXACT_MONEY_CONTEXT, exact_sum
from togai_engine.common.pagination import check_page_size, decode_position, fetch_page
from togai_engine.common.validation import check_card_names, check_currency, utc_instant
from togai_engine.errors import Conflict, EngineError, InvalidInput, NotFound
from togai_engine.pricing.money import exact_money, round_money
from togai_engine.wallets import ledger
from togai_engine.wallets.burn import InvoiceLine, Spendable, burn_key, plan_burn
from togai_engine.wallets.models import (
    APPLICATION,
    CREDIT_NOTE,
    GRANT,
    MANUAL,
    RATE_CARD,
    REVERSAL,
    VOID,
    CreditGrantRow,
    WalletEntryRow,
)
from togai_engine.wallets.rate_cards import RateCardGrant
from togai_engine.wallets.schemas import (
    CreditGrant,
    GrantCreditInput,
    GrantCreditResult,
    PayableCards,
    WalletBalance,
    WalletEntry,
    WalletLedger,
)

G = CreditGrantRow
E = WalletEntryRow
CREDIT_NOTE_PRIORITY = 100  # as grant_credit's default: a credit note's credit burns with ordinary prepaid credit

# Billing's (period end, due instant) of the account's ended periods not invoiced DUE yet, as of an instant:
# a grant that may pay one of them is held, not expired (README "Which grants pay an invoice"). Billing sits
# above wallets, so the application layer hands its function in (billing.current.unclosed_periods).
UnclosedPeriods = Callable[[AsyncSession, str, datetime], Awaitable[list[tuple[datetime, datetime]]]]
# The rate cards a grant limited to cards may name on the account as of an instant (None: it is on no plan). Plans
# sit above wallets, so the application layer hands its function in; it is asked only for a new limited grant.
PayableOf = Callable[[AsyncSession, str, datetime], Awaitable[PayableCards | None]]


@dataclass(frozen=True)
class Sale:
    """The invoice line that sold PREPAID credits: its grant is found by it."""

    invoice_id: str
    line_position: int


@dataclass(frozen=True)
class SoldGrant:
    """What a PREPAID purchase line grants once its invoice is PAID: `grant` (its amount already less the credits
    credit notes took back before the payment), sold by `sale`."""

    grant: RateCardGrant
    sale: Sale


@dataclass(frozen=True)
class SoldCredits:
    """The grant a sale issued (its id, amount and start), and what of it is unused (the sum of its ledger entries,
    expiries recorded)."""

    grant_id: str
    amount: Decimal
    effective_from: datetime
    unused: Decimal


# ---------------------------------------------------------------------------------------------------
# Tools: grant_credit, get_wallet_balance


async def grant_credit(session: AsyncSession, data: GrantCreditInput, now: datetime, *,
                       unclosed: UnclosedPeriods, payable: PayableOf | None = None) -> GrantCreditResult:
    """Adds a credit grant (and its GRANT ledger entry); the same idempotencyKey with the same
    content returns the earlier grant, with different content it is a Conflict. A grant limited to rate cards
    (applicableEntityIds) names cards `payable` reads (without it, or None: the account is on no plan, so it
    can name none)."""
    account = await _account(session, data.accountId, share_lock=True)
    wallet_currency = account.invoice_currency
    await ledger.ensure_wallet(session, account.id)
    # The key before the content is judged: content that would be refused on its own differs from the earlier
    # grant's (which was accepted), so a retry hears of that grant, naming what differs. Before anything the
    # account's plan decides, too: a retry of a committed grant replays it whatever became of the account since.
    if data.idempotencyKey is not None:
        earlier = await session.scalar(
            select(G).where(G.account_id == account.id, G.idempotency_key == data.idempotencyKey)
        )
        if earlier is not None:
            _check_same_grant(earlier, data, wallet_currency)
            problem = await settle_for_replay(session, account.id, now, unclosed)
            return await _grant_result(session, earlier.id, account.id, earlier.currency, now, replayed=True,
                                       balance_problem=problem)
    # the periods are read only when a grant expired unrecorded (a deal that no longer validates fails no grant else)
    await _settle_if_needed(session, account.id, now, unclosed)
    currency = check_currency(data.currency, "currency") if data.currency else wallet_currency
    if currency != wallet_currency:
        raise InvalidInput(
            "currency",
            f"account {account.id!r} has its wallet in {wallet_currency} (its invoiceCurrency); grant in "
            f"{wallet_currency} or omit currency",
        )
    amount = exact_money(data.amount, currency, "amount")
    if amount <= 0:
        raise InvalidInput("amount", f"must be greater than 0; got {amount}")
    effective_from = utc_instant(data.effectiveFrom, "effectiveFrom") if data.effectiveFrom else now
    effective_until = utc_instant(data.effectiveUntil, "effectiveUntil") if data.effectiveUntil else None
    entities = _applicable(data.applicableEntityIds)
    if entities is not None:
        _check_payable(entities, None if payable is None else await payable(session, account.id, now), account.id)
    # After the replay: an omitted effectiveFrom is this call's now, which a retry made after the first grant
    # expired would put past its effectiveUntil.
    if effective_until is not None and effective_until <= effective_from:
        raise InvalidInput("effectiveUntil", f"must be after effectiveFrom ({effective_from.isoformat()}); "
                                             f"got {effective_until.isoformat()}")

    if account.status == "ARCHIVED":
        raise Conflict(f"account {account.id!r} is ARCHIVED; set its status to ACTIVE (update_account) first")
    if effective_until is not None and effective_until <= now:
        raise InvalidInput("effectiveUntil", f"must be in the future (now is {now.isoformat()}); the grant would "
                                             "expire before it could be used")
    grant_id = new_id("grant")
    await session.execute(
        insert(G).values(
            id=grant_id, account_id=account.id, currency=currency, amount=amount, purpose=data.purpose,
            priority=data.priority, effective_from=effective_from, effective_until=effective_until,
            source=MANUAL, idempotency_key=data.idempotencyKey, created_at=now, applicable_entity_ids=entities,
        )
    )
    await _insert_grant_entry(session, account.id, grant_id, amount, effective_from)
    return await _grant_result(session, grant_id, account.id, currency, now, replayed=False)


async def get_wallet_balance(
    session: AsyncSession, account_id: str, now: datetime, accrued: Decimal | None, *, unclosed: UnclosedPeriods
) -> WalletBalance:
    """The ledger balance as of `now`, the open cycle's accrued charges (billing's, given: None when the
    account has no plan in effect), and active/scheduled grants. Call after billing caught up to `now`."""
    account = await _account(session, account_id)
    currency = account.invoice_currency
    await _settle_if_needed(session, account.id, now, unclosed)
    balance = round_money(await ledger.balance(session, account.id, now), currency)
    available = EXACT_MONEY_CONTEXT.subtract(balance, accrued or 0)
    views = [_grant_view(row, rest, now) for row, rest in await ledger.grants_with_remaining(session, account.id)]
    # An EXPIRED grant with credit left after settling is held for an invoice in its grace period.
    open_grants = [g for g in views if g.status in ("ACTIVE", "SCHEDULED") or g.remaining > 0]
    open_grants.sort(key=lambda g: burn_key(_as_spendable(g)))
    scheduled = exact_sum(g.remaining for g in open_grants if g.status == "SCHEDULED")
    return WalletBalance(
        accountId=account.id, currency=currency, balance=balance, accruedCharges=accrued,
        availableBalance=round_money(available, currency), overage=available < 0,
        scheduledCredits=round_money(scheduled, currency), grants=open_grants, asOf=now,
    )


async def list_wallet_entries(session: AsyncSession, account_id: str, now: datetime, *, unclosed: UnclosedPeriods,
                              page_size: int | None = None,
                              next_token: str | None = None) -> WalletLedger:
    """The wallet's ledger, newest entry first, with the balance it sums to as of `now` (call after billing
    caught up to `now`: a DUE invoice applies credit)."""
    account = await _account(session, account_id)
    currency = account.invoice_currency
    await _settle_if_needed(session, account.id, now, unclosed)
    kind = f"wallet_entries:{account.id}"
    # the page and the balance from one state of the ledger (writers wait for this transaction)
    if not await ledger.share_wallet(session, account.id):  # no wallet yet: no entry
        check_page_size(page_size)
        decode_position(kind, next_token, (E.id,))  # refused as fetch_page would
        return WalletLedger(accountId=account.id, currency=currency, balance=round_money(Decimal(0), currency),
                            asOf=now, data=[], nextToken=None)
    rows, token = await fetch_page(session, select(E).where(E.account_id == account.id), E.id, kind, page_size,
                                   next_token, descending=True)
    entries = [WalletEntry(id=r.id, kind=r.kind, amount=round_money(r.amount, currency), grantId=r.grant_id,
                           invoiceId=r.invoice_id, reversesEntryId=r.reverses_entry_id, creditNoteId=r.credit_note_id,
                           at=r.at, recordedAt=r.recorded_at) for r in rows]
    balance = round_money(await ledger.balance(session, account.id, now), currency)
    return WalletLedger(accountId=account.id, currency=currency, balance=balance, asOf=now, data=entries,
                        nextToken=token)


async def wallet_summary(session: AsyncSession, account_id: str, now: datetime,
                         accrued: Decimal | None, *, unclosed: UnclosedPeriods) -> WalletSummary:
    """The wallet part of get_account's financial section."""
    wallet = await get_wallet_balance(session, account_id, now, accrued, unclosed=unclosed)
    return WalletSummary(currency=wallet.currency, balance=wallet.balance, availableBalance=wallet.availableBalance)


async def has_wallet_entries(session: AsyncSession, account_id: str) -> bool:
    """True once the account's wallet has any ledger entry (its currency is then fixed)."""
    return bool(await session.scalar(select(exists().where(E.account_id == account_id))))


# ---------------------------------------------------------------------------------------------------
# Hooks called by billing


async def apply_credits_to_invoice(
    session: AsyncSession,
    *,
    account_id: str,
    invoice_id: str,
    currency: str,
    amount: Decimal,
    at: datetime,
    period_end: datetime | None = None,
    lines: Sequence[InvoiceLine] | None = None,
) -> Decimal:
    """Pays up to `amount` of an invoice from the wallet; returns the total applied (0 <= it <= amount).

    Burn order: priority ascending (0 first), earliest expiry (never-expiring last), earliest
    effectiveFrom, smaller amount, grant id. Eligible grants are in `currency`, started by `at`, and
    valid at `at` — or, when `period_end` (the end of the invoiced period) is given, valid through
    it, so a credit expiring at the cycle end still pays that cycle's invoice after the grace period.
    With `period_end`, a rate-card grant must also have started before it: the next cycle's grant
    never pays the previous cycle (ledger.spendable_grants; README "Which grants pay an invoice").
    `lines`: the invoice's top-level (rate card name, amount) pairs, summing to `amount`; a grant restricted to
    rate cards (applicableEntityIds) pays only their lines, and without `lines` nothing (burn.plan_burn).
    Each debit is an APPLICATION ledger entry linked to the invoice. Calling again for the same
    invoice returns what is already applied and applies nothing more (until it is reversed).
    """
    amount = exact_money(amount, currency, "amount")
    if amount < 0:
        raise InvalidInput("amount", f"an invoice amount to pay cannot be negative; got {amount}")
    at = utc_instant(at, "at")
    zero = round_money(Decimal(0), currency)
    if not await ledger.lock_wallet(session, account_id):
        return zero  # the account never had credit
    already = list(await session.scalars(ledger.unreversed_applications(invoice_id)))
    if already:
        return round_money(exact_sum(entry.amount for entry in already).copy_negate(), currency)
    if amount == 0:
        return zero
    period_end = utc_instant(period_end, "period_end") if period_end is not None else None
    grants = await ledger.spendable_grants(session, account_id, currency, at, period_end)
    parts = plan_burn(grants, amount, lines=lines)
    if parts:
        await session.execute(
            insert(E).values([
                {"account_id": account_id, "grant_id": grant_id, "kind": APPLICATION, "amount": part.copy_negate(),
                 "at": at, "invoice_id": invoice_id}
                for grant_id, part in parts
            ])
        )
    # No expiry is recorded here (the next read or write of the wallet does it, holding the grants that may
    # pay invoices not DUE yet): a bill run closing many periods would otherwise read each account's
    # schedule again after every invoice.
    return round_money(exact_sum(part for _, part in parts), currency)


async def reverse_invoice_credits(session: AsyncSession, *, invoice_id: str, at: datetime,
                                  unclosed: UnclosedPeriods) -> Decimal:
    """Gives back every credit applied to the invoice (a voided invoice), exactly once: a second call
    reverses nothing and returns 0. A reversed credit whose grant has expired expires again at once."""
    at = utc_instant(at, "at")
    account_ids = list(
        await session.scalars(
            select(E.account_id).where(E.invoice_id == invoice_id, E.kind == APPLICATION).distinct()
        )
    )
    total = Decimal(0)
    for account_id in sorted(account_ids):
        await ledger.lock_wallet(session, account_id)
        # Record expiries due by `at` first, so each is dated and sized as of its own instant.
        held = await unclosed(session, account_id, at)
        await ledger.settle_expiries(session, account_id, at, held)
        pending = ledger.unreversed_applications(invoice_id).where(E.account_id == account_id).subquery()
        reversed_amounts = await session.scalars(
            insert(E)
            .from_select(
                ["account_id", "grant_id", "kind", "amount", "at", "invoice_id", "reverses_entry_id"],
                select(pending.c.account_id, pending.c.grant_id, literal(REVERSAL, E.kind.type),
                       -pending.c.amount, literal(at, E.at.type), pending.c.invoice_id, pending.c.id),
            )
            .on_conflict_do_nothing(index_elements=["account_id", "reverses_entry_id"])
            .returning(E.amount)
        )
        total = EXACT_MONEY_CONTEXT.add(total, exact_sum(reversed_amounts))
        await ledger.settle_expiries(session, account_id, at, held)
    return total


async def issue_rate_card_grants(session: AsyncSession, *, account_id: str, currency: str,
                                 specs: Sequence[RateCardGrant], at: datetime) -> None:
    """Issues `specs`, the grants of a plan's credit-grant rate cards for a cycle in the account's invoiceCurrency
    `currency` (rate_cards.grants_for_cycle, which the bill run computed in the account's guard); idempotent per
    (account, card, cycle start). ONE_TIME cards issue once per account and plan."""
    if not specs:
        return
    # No share lock on the account here: a bill run holds account_billing, and update_account takes the
    # account row before account_billing, so locking the account now could deadlock with it.
    # No settle_expiries here: grants are issued as a period starts, when the previous period's grant has
    # just expired but may not have paid its invoice yet (the next read or write of the wallet records it).
    await ledger.ensure_wallet(session, account_id)
    for spec in specs:
        await _insert_card_grant(session, account_id, currency, spec, at, once_per_plan=spec.one_time)


async def issue_prepaid_grants(session: AsyncSession, *, account_id: str, currency: str,
                               grants: Sequence[SoldGrant], at: datetime) -> list[str]:
    """The credits PREPAID cards sold on an invoice in `currency` that was just PAID (each sale once); returns the
    ids of the grants issued now. Refused when the wallet's currency (the account's invoiceCurrency) is no longer
    the invoice's: the credits could never pay an invoice."""
    if not grants:
        return []
    await ledger.hold_wallet_currency(session, account_id, exclusive=False)  # as grant_credit: no currency change
    account = await _account(session, account_id)
    if account.invoice_currency != currency:
        # named by the account's field that differs (and that the fix changes), not the call's status
        raise InvalidInput("invoiceCurrency", f"this invoice sold PREPAID credits in {currency}, granted when it is "
                                              f"PAID, but account {account_id!r} now invoices (and keeps its wallet) "
                                              f"in {account.invoice_currency}: change the account's invoiceCurrency "
                                              f"back to {currency} before marking it PAID, or VOID it and grant_credit "
                                              f"the credits in {account.invoice_currency}; nothing was changed")
    await ledger.ensure_wallet(session, account_id)
    issued = []
    for sold in grants:
        if sold.grant.amount <= 0:
            continue  # credit notes took every credit of the sale back before it was paid
        # one grant per sale: a ONE_TIME card's credits are sold once per run on the plan (invoices/fixed_fees.py),
        # and a cycle sold again after its first sale was credited (a replaced advance invoice) grants again
        grant_id = await _insert_card_grant(session, account_id, currency, sold.grant, at, once_per_plan=False,
                                            sale=sold.sale)
        if grant_id is not None:
            issued.append(grant_id)
    return issued


async def _insert_card_grant(session: AsyncSession, account_id: str, currency: str, spec: RateCardGrant,
                             at: datetime, *, once_per_plan: bool, sale: Sale | None = None) -> str | None:
    if once_per_plan and await session.scalar(
        select(exists().where(G.account_id == account_id, G.grantor_id == spec.grantor_id))
    ):
        return None
    grant_id = new_id("grant")
    values = insert(G).values(
        id=grant_id, account_id=account_id, currency=currency, amount=spec.amount,
        purpose=spec.purpose, priority=spec.priority, effective_from=spec.effective_from,
        effective_until=spec.effective_until, source=RATE_CARD, grantor_id=spec.grantor_id,
        cycle_start=spec.effective_from, created_at=utc_instant(at, "at"),
        applicable_entity_ids=list(spec.applicable_entity_ids) if spec.applicable_entity_ids else None,
        sale_invoice_id=sale.invoice_id if sale else None, sale_line_position=sale.line_position if sale else None,
    )
    # once per (card, cycle) for a free card's grant; once per sale for a PREPAID one (models.CreditGrantRow)
    inserted = await session.scalar(
        (values.on_conflict_do_nothing(constraint="uq_credit_grants_account_sale") if sale is not None else
         values.on_conflict_do_nothing(index_elements=[G.account_id, G.grantor_id, G.cycle_start],
                                       index_where=G.sale_invoice_id.is_(None)))
        .returning(G.id)
    )
    if inserted is None:
        return None
    await _insert_grant_entry(session, account_id, grant_id, spec.amount, spec.effective_from)
    return grant_id


# ---------------------------------------------------------------------------------------------------
# Hooks called by credit notes


async def settle_wallet(session: AsyncSession, account_id: str, now: datetime, unclosed: UnclosedPeriods) -> None:
    """Locks the account's wallet (if it has one) and records the expiries due by `now`, holding grants that may pay
    an invoice not DUE yet: a credit note calls it once, before it reads what a sale's grant has unused
    (`sold_credits`) or credits the wallet, and the balance it shows is then the one get_wallet_balance shows. The
    account's schedule is read only when some grant has expired unsettled."""
    if await ledger.lock_wallet(session, account_id):
        await _settle_if_needed(session, account_id, utc_instant(now, "now"), unclosed)


async def settle_for_replay(session: AsyncSession, account_id: str, now: datetime,
                            unclosed: UnclosedPeriods) -> str | None:
    """`settle_wallet` for the replay of a committed write, which answers whatever became of the account since:
    None once settled, else (nothing written) why the balance is unknown: a grant expired unrecorded and the
    account's periods, which decide whether it is held for an invoice not DUE yet, cannot be read."""
    try:
        async with session.begin_nested():
            await settle_wallet(session, account_id, now, unclosed)
    except EngineError as exc:
        return (f"the wallet balance is unknown: a credit grant expired by now, and whether it is still held for an "
                f"invoice not DUE yet depends on the account's periods, which cannot be read: {exc.message}")
    return None


async def grant_from_credit_note(
    session: AsyncSession, *, account_id: str, currency: str, amount: Decimal, credit_note_id: str, purpose: str,
    at: datetime,
) -> str:
    """Credits the wallet with the part of a credit note the invoice no longer owed: a CREDIT_NOTE grant
    (never expires, priority 100 like grant_credit's default, grantorId = the note's id) and its GRANT
    entry dated `at`. Returns the grant id. The caller checks that `currency` is the wallet's, and recorded the
    wallet's expiries due by `at` first (`settle_wallet`)."""
    amount = exact_money(amount, currency, "amount")
    if amount <= 0:
        raise InvalidInput("amount", f"a credit note grant must be greater than 0; got {amount}")
    at = utc_instant(at, "at")
    await ledger.ensure_wallet(session, account_id)
    grant_id = new_id("grant")
    await session.execute(
        insert(G).values(
            id=grant_id, account_id=account_id, currency=currency, amount=amount, purpose=purpose,
            priority=CREDIT_NOTE_PRIORITY, effective_from=at, effective_until=None, source=CREDIT_NOTE,
            grantor_id=credit_note_id, created_at=at,
        )
    )
    await _insert_grant_entry(session, account_id, grant_id, amount, at)
    return grant_id


async def sale_was_granted(session: AsyncSession, *, account_id: str, invoice_id: str) -> bool:
    """Some PREPAID purchase line of the invoice has a grant linked to it (its PAID granted it, or migration 0022
    linked it to the grant an earlier sale of its cycle issued)."""
    return bool(await session.scalar(select(exists().where(G.account_id == account_id,
                                                           G.sale_invoice_id == invoice_id))))


async def sold_credits(session: AsyncSession, *, account_id: str, sales: Sequence[Sale]) -> dict[Sale, SoldCredits]:
    """The grants `sales` issued when their invoices were PAID, with what of each is unused (the sum of its entries);
    a sale that issued none is absent. The caller locked the wallet and recorded its expiries due (`settle_wallet`),
    so credit that expired is not counted as unused."""
    if not sales:
        return {}
    found = {}
    for grant, unused in await ledger.grants_with_remaining(session, account_id, tuple_(
            G.sale_invoice_id, G.sale_line_position).in_([(s.invoice_id, s.line_position) for s in sales])):
        assert grant.sale_invoice_id is not None and grant.sale_line_position is not None, "found by its sale"
        # one grant per sale (uq_credit_grants_account_sale)
        found[Sale(grant.sale_invoice_id, grant.sale_line_position)] = SoldCredits(
            grant_id=grant.id, amount=grant.amount, effective_from=grant.effective_from, unused=unused)
    return found


async def void_sold_credits(session: AsyncSession, *, account_id: str, sold: SoldCredits, credits: Decimal,
                            credit_note_id: str, at: datetime) -> None:
    """Takes `credits` back from the PREPAID grant `sold` (as `sold_credits` found it) for a credit note on the line
    that sold it: a VOID ledger entry linked to the note, dated `at` (or the grant's start, if later, so a scheduled
    grant never counts negative). The caller holds the wallet lock `settle_wallet` took and checked that the grant's
    unused credit covers it."""
    if credits <= 0:
        raise InvalidInput("credits", f"credits to void must be greater than 0; got {credits}")
    await session.execute(insert(E).values(
        account_id=account_id, grant_id=sold.grant_id, kind=VOID, amount=credits.copy_negate(),
        at=max(utc_instant(at, "at"), sold.effective_from), credit_note_id=credit_note_id))


# ---------------------------------------------------------------------------------------------------
# Helpers


async def _account(session: AsyncSession, account_id: str, *, share_lock: bool = False) -> AccountRow:
    if share_lock:
        # Blocks update_account from changing the currency while a grant is being written; taken before the
        # row is read, so a change that committed meanwhile is the currency read.
        await ledger.hold_wallet_currency(session, account_id, exclusive=False)
    row = await session.scalar(select(AccountRow).where(AccountRow.id == account_id))
    if row is None:
        raise NotFound(f"account {account_id!r} does not exist; list_accounts shows the ids")
    return row


async def _settle_if_needed(session: AsyncSession, account_id: str, now: datetime,
                            unclosed: UnclosedPeriods) -> None:
    # Reads lock only when an expiry must be recorded, so ordinary reads never wait on writers; the
    # schedule is read only when some grant has expired unsettled (it may be held for an invoice).
    if not await ledger.needs_settling(session, account_id, now, ()):
        return
    held = await unclosed(session, account_id, now)
    if held and not await ledger.needs_settling(session, account_id, now, held):
        return
    await ledger.lock_wallet(session, account_id)
    await ledger.settle_expiries(session, account_id, now, held)


async def _insert_grant_entry(
    session: AsyncSession, account_id: str, grant_id: str, amount: Decimal, effective_from: datetime
) -> None:
    # Dated at effectiveFrom: a scheduled grant joins the balance when it starts.
    await session.execute(
        insert(E).values(account_id=account_id, grant_id=grant_id, kind=GRANT, amount=amount, at=effective_from)
    )


async def _grant_result(
    session: AsyncSession, grant_id: str, account_id: str, currency: str, now: datetime, *, replayed: bool,
    balance_problem: str | None = None,
) -> GrantCreditResult:
    """The grant and the wallet balance, unless `balance_problem` says why that is unknown."""
    [(row, remaining)] = await ledger.grants_with_remaining(session, account_id, G.id == grant_id)
    balance = None if balance_problem is not None else round_money(
        await ledger.balance(session, account_id, now), currency)
    return GrantCreditResult(grant=_grant_view(row, remaining, now), balance=balance, currency=currency,
                             replayed=replayed, problem=balance_problem)


def _grant_view(row: CreditGrantRow, remaining: Decimal, now: datetime) -> CreditGrant:
    if row.effective_from > now:
        status = "SCHEDULED"
    elif row.effective_until is not None and row.effective_until <= now:
        status = "EXPIRED"
    elif remaining <= 0:
        status = "CONSUMED"
    else:
        status = "ACTIVE"
    return CreditGrant(
        id=row.id, accountId=row.account_id, currency=row.currency,
        amount=round_money(row.amount, row.currency), remaining=round_money(remaining, row.currency),
        purpose=row.purpose, priority=row.priority, effectiveFrom=row.effective_from,
        effectiveUntil=row.effective_until, status=status,  # type: ignore[arg-type]
        source=row.source,  # type: ignore[arg-type]
        grantorId=row.grantor_id, idempotencyKey=row.idempotency_key, createdAt=row.created_at,
        applicableEntityIds=row.applicable_entity_ids,
    )


def _as_spendable(grant: CreditGrant) -> Spendable:
    return Spendable(grant_id=grant.id, priority=grant.priority, effective_from=grant.effectiveFrom,
                     effective_until=grant.effectiveUntil, amount=grant.amount, spendable=grant.remaining)


def _applicable(entities: Sequence[str] | None) -> list[str] | None:
    """applicableEntityIds as stored: None (any line), or rate card names, each once."""
    if entities is None:
        return None
    if not entities:
        raise InvalidInput("applicableEntityIds", "is empty; name the rate cards whose invoice lines the grant may "
                                                  "pay, or omit it for a grant that pays any line")
    check_card_names(entities, "applicableEntityIds")
    return list(entities)


def _check_payable(entities: Sequence[str], payable: PayableCards | None, account_id: str) -> None:
    if payable is None:
        raise InvalidInput("applicableEntityIds", (
            f"account {account_id!r} is on no price plan now, so it has no rate cards a grant could be limited to; "
            "attach a plan first (update_account pricePlanId), or omit applicableEntityIds"))
    check_card_names(entities, "applicableEntityIds", payable.names, whose=f"{payable.plan}, the account's plan now")


def _check_same_grant(earlier: CreditGrantRow, data: GrantCreditInput, wallet_currency: str) -> None:
    """A Conflict naming the fields a retry under `earlier`'s key gives otherwise, compared as given (not validated)."""
    differing = []
    if earlier.amount != data.amount:
        differing.append("amount")
    if earlier.currency != (data.currency.strip().upper() if data.currency else wallet_currency):
        differing.append("currency")
    if earlier.purpose != data.purpose:
        differing.append("purpose")
    if earlier.priority != data.priority:
        differing.append("priority")
    if not _same_instant(earlier.effective_until, data.effectiveUntil):
        differing.append("effectiveUntil")
    if (None if earlier.applicable_entity_ids is None else set(earlier.applicable_entity_ids)) != (
            None if data.applicableEntityIds is None else set(data.applicableEntityIds)):
        differing.append("applicableEntityIds")
    # An omitted effectiveFrom defaults to "now", which moves between retries: only compare a given one.
    if data.effectiveFrom is not None and not _same_instant(earlier.effective_from, data.effectiveFrom):
        differing.append("effectiveFrom")
    if differing:
        raise Conflict(
            f"idempotencyKey {data.idempotencyKey!r} was already used for grant {earlier.id!r} with a different "
            f"{', '.join(differing)}; reuse a key only to retry the same grant, or choose a new key"
        )


def _same_instant(stored: datetime | None, given: datetime | None) -> bool:
    if stored is None or given is None:
        return stored is given
    try:
        return utc_instant(given, "") == stored
    except InvalidInput:  # an instant billing cannot compute with: never a stored grant's
        return False


