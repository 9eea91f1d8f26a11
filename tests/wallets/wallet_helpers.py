"""Service-level helpers for wallet tests: accounts, grants, and raw ledger reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from togai_engine.accounts import service as accounts
from togai_engine.accounts.schemas import AccountCreate
from togai_engine.app import financials
from togai_engine.billing.current import unclosed_periods
from togai_engine.customers import service as customers
from togai_engine.customers.schemas import CustomerCreate
from togai_engine.store.database import Database, raw_connection
from togai_engine.wallets import service as wallets
from togai_engine.wallets.schemas import GrantCreditInput, GrantCreditResult

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    """T0 + n days."""
    return T0 + timedelta(days=n)


async def make_account(db: Database, account_id: str = "acc_1", currency: str = "USD") -> str:
    async with db.unit_of_work() as s:
        await customers.create_customer(s, CustomerCreate(id=f"cust_{account_id}", name="Test Co"))
        await accounts.create_account(
            s, AccountCreate(id=account_id, customerId=f"cust_{account_id}", name="Main", invoiceCurrency=currency),
        )
    return account_id


async def grant(db: Database, account_id: str, amount: str, *, now: datetime = T0, **fields: Any) -> GrantCreditResult:
    async with db.unit_of_work() as s:
        return await wallets.grant_credit(
            s, GrantCreditInput(accountId=account_id, amount=Decimal(amount), **fields), now, unclosed=unclosed_periods
        )


async def apply(db: Database, account_id: str, invoice_id: str, amount: str, at: datetime, *,
                currency: str = "USD", period_end: datetime | None = None) -> Decimal:
    async with db.unit_of_work() as s:
        return await wallets.apply_credits_to_invoice(
            s, account_id=account_id, invoice_id=invoice_id, currency=currency, amount=Decimal(amount), at=at,
            period_end=period_end,
        )


async def reverse(db: Database, invoice_id: str, at: datetime) -> Decimal:
    async with db.unit_of_work() as s:
        return await wallets.reverse_invoice_credits(s, invoice_id=invoice_id, at=at, unclosed=unclosed_periods)


async def balance(db: Database, account_id: str, now: datetime) -> Any:
    async with db.unit_of_work() as s:
        return await financials.wallet_balance(s, account_id, now)


async def entries(db: Database, account_id: str) -> list[dict[str, Any]]:
    """The raw ledger, in insertion order."""
    async with db.unit_of_work() as s:
        conn = await raw_connection(s)
        rows = await conn.fetch(
            "SELECT e.id, e.kind, e.amount, e.at, e.invoice_id, e.reverses_entry_id, e.grant_id, g.purpose "
            "FROM wallet_entries e JOIN credit_grants g ON g.id = e.grant_id WHERE e.account_id = $1 ORDER BY e.id",
            account_id,
        )
    return [dict(r) for r in rows]


async def ledger_sum(db: Database, account_id: str, now: datetime) -> Decimal:
    """The definition of the balance, computed independently of the service."""
    async with db.unit_of_work() as s:
        conn = await raw_connection(s)
        total = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM wallet_entries WHERE account_id = $1 AND at <= $2", account_id, now
        )
    return Decimal(total)


async def applied_by_purpose(db: Database, account_id: str, invoice_id: str) -> dict[str, Decimal]:
    """Net credit taken from each grant (named by purpose) for one invoice."""
    result: dict[str, Decimal] = {}
    for e in await entries(db, account_id):
        if e["invoice_id"] == invoice_id:
            result[e["purpose"]] = result.get(e["purpose"], Decimal(0)) - e["amount"]
    return {k: v for k, v in result.items() if v}
