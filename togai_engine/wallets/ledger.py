"""The SQL of the wallet ledger: locking, lazy expiry, sums. Every balance here is computed from
`wallet_entries`; nothing is cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, not_, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import LateralFromClause

from togai_engine.common.locks import advisory_lock_sql
from togai_engine.wallets.burn import Spendable
from togai_engine.wallets.models import (
    APPLICATION,
    EXPIRY,
    RATE_CARD,
    REVERSAL,
    VOID,
    CreditGrantRow,
    WalletEntryRow,
    WalletRow,
)

G = CreditGrantRow
E = WalletEntryRow


CURRENCY_LOCK_CLASS = 0x77616C63  # "walc": the key space of hold_wallet_currency's locks


async def hold_wallet_currency(session: AsyncSession, account_id: str, *, exclusive: bool) -> None:
    """Until the transaction ends: shared, no change of the account's invoiceCurrency (the wallet's currency) or
    status can happen while a grant is being written; exclusive, for such a change. A transaction advisory lock rather
    than a lock on the account's row: on Citus `accounts` is a reference table, whose row locks are taken on
    every node and make concurrent grants wait for each other, even of different accounts."""
    await session.execute(text(advisory_lock_sql(CURRENCY_LOCK_CLASS, ":a", exclusive=exclusive)), {"a": account_id})


async def lock_wallet(session: AsyncSession, account_id: str) -> bool:
    """Locks the account's wallet row (FOR UPDATE); False when the account has no wallet yet.

    Every write to grants and entries of an account happens under this lock, so concurrent grants,
    applications, reversals and expiry materialisation are serialised per account.
    """
    found = await session.scalar(
        select(WalletRow.account_id).where(WalletRow.account_id == account_id).with_for_update()
    )
    return found is not None


async def share_wallet(session: AsyncSession, account_id: str) -> bool:
    """Holds the account's wallet row FOR SHARE until the transaction ends, so no writer (they all take
    it FOR UPDATE) changes the ledger between two reads; False when the account has no wallet yet."""
    found = await session.scalar(
        select(WalletRow.account_id).where(WalletRow.account_id == account_id).with_for_update(read=True)
    )
    return found is not None


async def ensure_wallet(session: AsyncSession, account_id: str) -> None:
    """Creates the wallet row if missing, then locks it."""
    await session.execute(insert(WalletRow).values(account_id=account_id).on_conflict_do_nothing())
    await lock_wallet(session, account_id)


def _grant_totals() -> LateralFromClause:
    """Per grant: the sum of its entries, and whether an EXPIRY entry exists."""
    return (
        select(
            func.sum(E.amount).label("total"),
            func.bool_or(E.kind == EXPIRY).label("expired_before"),
            func.max(E.at).label("last_at"),
        )
        .where(E.account_id == G.account_id, E.grant_id == G.id)
        .lateral("totals")
    )


# (period end, due instant) of a billed period whose invoice is not DUE yet
Unclosed = tuple[datetime, datetime]


def may_pay(at: datetime, period_end: datetime | None) -> ColumnElement[bool]:
    """SQL: the grant may pay an invoice that becomes DUE at `at` for a period ending at `period_end`
    (README, "Which grants pay an invoice"): started by `at` — a rate-card grant also before the
    period ended, so it never pays an earlier period — and valid at `at` or through the period (valid at its
    end: started before it, expiring at or after it; a grant given and expired between the period's end and `at`
    was valid at neither)."""
    started = [G.effective_from <= at]
    valid = [G.effective_until.is_(None), G.effective_until > at]
    if period_end is not None:
        started.append(or_(G.source != RATE_CARD, G.effective_from < period_end))
        valid.append(and_(G.effective_from < period_end, G.effective_until >= period_end))
    return and_(*started, or_(*valid))


def _unsettled(account_id: str, now: datetime, unclosed: Sequence[Unclosed]) -> Select[Any]:
    """Grants past their expiry (or already expired once) whose entries do not sum to zero, except those
    held for an invoice not DUE yet (`unclosed`): they may still pay it, and expire after it."""
    totals = _grant_totals()
    held = [may_pay(due_at, period_end) for period_end, due_at in unclosed]
    return (
        select(G.account_id, G.id, literal(EXPIRY), -totals.c.total, func.greatest(G.effective_until, totals.c.last_at))
        .select_from(G)
        .join(totals, literal(True))
        .where(
            G.account_id == account_id,
            G.effective_until.is_not(None),
            or_(G.effective_until <= now, totals.c.expired_before),
            totals.c.total != 0,
            *([not_(or_(*held))] if held else []),
        )
    )


async def needs_settling(session: AsyncSession, account_id: str, now: datetime,
                         unclosed: Sequence[Unclosed]) -> bool:
    return bool(await session.scalar(select(exists(_unsettled(account_id, now, unclosed)))))


async def settle_expiries(session: AsyncSession, account_id: str, now: datetime,
                          unclosed: Sequence[Unclosed]) -> None:
    """Takes every expired grant's remainder to zero with an EXPIRY entry dated at its expiry (or at
    the grant's latest entry, when a reversal or late application came after the expiry).

    `unclosed`: the account's billed periods whose invoices are not DUE yet; a grant that may pay one of
    them (`may_pay`) is held: its expiry is recorded once that invoice is DUE, after the credit it
    paid. Idempotent: a settled grant sums to zero and is skipped. Run under the wallet lock. A reversal
    touching an expired grant is settled by the next call; so is an application by a grant whose
    expiry was recorded before (the EXPIRY entry is then positive: it gives back what that application
    used) — which the hold prevents for invoices billing knows of.
    """
    await session.execute(
        insert(E).from_select(["account_id", "grant_id", "kind", "amount", "at"],
                              _unsettled(account_id, now, unclosed))
    )


async def balance(session: AsyncSession, account_id: str, now: datetime) -> Decimal:
    """The ledger sum as of `now` (entries dated at or before it)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(E.amount), 0)).where(E.account_id == account_id, E.at <= now)
    )
    return Decimal(total)


async def grants_with_remaining(
    session: AsyncSession, account_id: str, *where: ColumnElement[bool]
) -> list[tuple[CreditGrantRow, Decimal]]:
    """Grants of the account (those meeting `where`, if given) with the sum of their entries."""
    remaining = func.coalesce(func.sum(E.amount), 0).label("remaining")
    stmt = (
        select(G, remaining)
        .outerjoin(E, (E.account_id == G.account_id) & (E.grant_id == G.id))
        .where(G.account_id == account_id, *where)
        .group_by(G.account_id, G.id)  # the primary key: every column of G may be selected
        .order_by(G.seq)
    )
    return [(row, Decimal(rest)) for row, rest in (await session.execute(stmt)).all()]


async def spendable_grants(
    session: AsyncSession, account_id: str, currency: str, at: datetime, period_end: datetime | None
) -> list[Spendable]:
    """Grants in `currency` that may pay an invoice at `at`, with what each can still give.

    Eligible (README, "Which grants pay an invoice"): started by `at`, and either still valid at `at`
    or valid through `period_end` (the end of the invoiced period: started before it, valid at it). A grant issued by a credit-grant
    rate card must also have started before `period_end`: it pays the periods it overlapped, never an
    earlier one (the next cycle's grant starts when the previous period ends, before that period's
    invoice becomes DUE). What a grant can give ignores EXPIRY entries: a grant valid through the
    period pays for it even if its expiry was already recorded (settle_expiries then balances it); what a
    credit note voided (VOID) is gone from it for good.
    """
    used = func.coalesce(func.sum(E.amount).filter(E.kind.in_((APPLICATION, REVERSAL, VOID))), 0)
    stmt = (
        select(G.id, G.priority, G.effective_from, G.effective_until, G.amount, (G.amount + used).label("spendable"),
               G.applicable_entity_ids)
        .outerjoin(E, (E.account_id == G.account_id) & (E.grant_id == G.id))
        .where(G.account_id == account_id, G.currency == currency, may_pay(at, period_end))
        .group_by(G.account_id, G.id)  # the primary key: every column of G may be selected
    )
    return [
        Spendable(grant_id=r.id, priority=r.priority, effective_from=r.effective_from,
                  effective_until=r.effective_until, amount=r.amount, spendable=Decimal(r.spendable),
                  applicable=None if r.applicable_entity_ids is None else frozenset(r.applicable_entity_ids))
        for r in (await session.execute(stmt)).all()
    ]


def unreversed_applications(invoice_id: str) -> Select[Any]:
    """APPLICATION entries of an invoice that no REVERSAL undoes yet."""
    reversal = E.__table__.alias("reversal")
    return select(E).where(
        E.invoice_id == invoice_id,
        E.kind == APPLICATION,
        ~exists().where(reversal.c.account_id == E.account_id, reversal.c.reverses_entry_id == E.id),
    )
