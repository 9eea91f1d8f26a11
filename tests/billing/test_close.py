"""Bill runs on real PostgreSQL with quantities injected: idempotence, concurrency, pieces == once.

The fake usage source sums (account, meter, time, value) usage records over [start, end), like a SUM
meter, so these tests exercise closing on its own; tests/billing/test_scenarios.py uses real events.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from billing_helpers import setup_plan
from togai_engine.accounts.schemas import AccountCreate
from togai_engine.app.accounts import create_account
from togai_engine.billing.close import close_due_cycles
from togai_engine.billing.guards import check_plans_support_currency
from togai_engine.billing.runs import run_bill
from togai_engine.customers.schemas import CustomerCreate
from togai_engine.customers.service import create_customer
from togai_engine.errors import InvalidInput
from togai_engine.invoices.models import InvoiceLineRow, InvoiceRow
from togai_engine.store.database import Database

D = Decimal
_unique = itertools.count()


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


class FakeUsage:
    """A SUM meter over explicit usage records."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, datetime, Decimal]] = []
        self.calls = 0

    def add(self, account_id: str, meter_id: str, when: datetime, value: str) -> None:
        self.records.append((account_id, meter_id, when, D(value)))

    async def __call__(self, session: AsyncSession, *, start: datetime, end: datetime,
                       account_ids: Sequence[str] | None = None,
                       meter_ids: Sequence[str] | None = None) -> dict[tuple[str, str], Decimal]:
        self.calls += 1
        totals: dict[tuple[str, str], Decimal] = {}
        for account_id, meter_id, when, value in self.records:
            if start <= when < end and (account_ids is None or account_id in account_ids) \
                    and (meter_ids is None or meter_id in meter_ids):
                totals[(account_id, meter_id)] = totals.get((account_id, meter_id), D(0)) + value
        return totals


async def new_account(db: Database, plan_id: str, since: datetime, account_id: str | None = None) -> str:
    account_id = account_id or f"acc{next(_unique)}"
    async with db.unit_of_work() as s:
        await create_customer(s, CustomerCreate(id=f"c_{account_id}", name="C"))
        await create_account(s, AccountCreate(id=account_id, customerId=f"c_{account_id}", name="A",
                                              pricePlanId=plan_id, effectiveFrom=since), since)
    return account_id


async def close(db: Database, now: datetime, usage: FakeUsage, accounts: list[str] | None = None) -> Any:
    async with db.unit_of_work() as s:
        return await close_due_cycles(s, now, accounts, usage=usage)


async def invoices_of(db: Database, account_id: str) -> list[InvoiceRow]:
    async with db.unit_of_work() as s:
        return list(await s.scalars(select(InvoiceRow).where(InvoiceRow.account_id == account_id)
                                    .order_by(InvoiceRow.period_start)))


async def test_closing_twice_changes_nothing(db: Database) -> None:
    plan_id, meter_id = await setup_plan(db)
    usage = FakeUsage()
    account = await new_account(db, plan_id, at(2026, 1, 1))
    usage.add(account, meter_id, at(2026, 1, 5), "1500")  # January
    usage.add(account, meter_id, at(2026, 2, 28, 23, 59), "10")  # February, its last minute
    first = await close(db, at(2026, 3, 10), usage)
    assert (first.accounts, first.invoicesDue, first.draftsOpened) == (1, 2, 1)  # Jan + Feb DUE, Mar opened
    rows = await invoices_of(db, account)
    # January: 1000 × 0.10 + 500 × 0.05 = 125.00, + 20.00 fee = 145.00. February: 10 × 0.10 = 1.00 + 20 = 21.00
    assert [(r.period_start, r.status, r.total_amount, r.sequence_number) for r in rows] == [
        (at(2026, 1, 1), "DUE", D("145.00"), 1), (at(2026, 2, 1), "DUE", D("21.00"), 2), (at(2026, 3, 1), "DRAFT", None, None)]
    # invoice dates are the due instants (period end + 2 days grace), not the time of the run
    assert [r.invoice_date for r in rows[:2]] == [at(2026, 2, 3), at(2026, 3, 3)]
    again = await close(db, at(2026, 3, 10), usage)
    assert (again.accounts, again.invoicesDue, again.draftsOpened) == (0, 0, 0)
    assert [(r.id, r.status, r.total_amount) for r in await invoices_of(db, account)] == [
        (r.id, r.status, r.total_amount) for r in rows]


async def test_usage_lines_record_what_they_billed(db: Database) -> None:
    plan_id, meter_id = await setup_plan(db)
    usage = FakeUsage()
    account = await new_account(db, plan_id, at(2026, 1, 1))
    usage.add(account, meter_id, at(2026, 1, 31, 23), "1234.5")
    await close(db, at(2026, 2, 3), usage)
    jan = (await invoices_of(db, account))[0]
    async with db.unit_of_work() as s:
        lines = list(await s.scalars(select(InvoiceLineRow).where(InvoiceLineRow.invoice_id == jan.id)
                                     .order_by(InvoiceLineRow.position)))
    usage_line = lines[0]
    assert (usage_line.line_type, usage_line.usage_meter_id, usage_line.quantity) == (
        "USAGE_RATE_CARD_AMOUNT", meter_id, D("1234.5"))
    assert (usage_line.usage_start, usage_line.usage_end) == (at(2026, 1, 1), at(2026, 2, 1))
    # 1000 × 0.10 = 100 and 234.5 × 0.05 = 11.725: exact on the slab lines, 111.73 (half-up) on the card line
    assert [(line.parent_position, line.value) for line in lines[1:3]] == [(1, D("100.00")), (1, D("11.725"))]
    assert usage_line.value == D("111.73") and jan.total_amount == D("131.73")


async def test_concurrent_runs_make_one_invoice_per_account_and_period(db: Database) -> None:
    plan_id, meter_id = await setup_plan(db)
    usage = FakeUsage()
    accounts = [await new_account(db, plan_id, at(2026, 1, 1)) for _ in range(6)]
    for i, account in enumerate(accounts):
        usage.add(account, meter_id, at(2026, 1, 2), str(i * 100))
    results = await asyncio.gather(*(close(db, at(2026, 4, 15), usage) for _ in range(4)))
    assert sum(r.invoicesDue for r in results) == 6 * 3  # Jan, Feb, Mar for each account, made DUE once
    async with db.unit_of_work() as s:
        rows = (await s.execute(text(
            "SELECT account_id, period_start, status, sequence_number FROM invoices ORDER BY sequence_number"))).all()
    due = [r for r in rows if r.status == "DUE"]
    assert len(due) == 18 and len({(r.account_id, r.period_start) for r in rows}) == len(rows)
    assert [r.sequence_number for r in due] == list(range(1, 19))  # gapless and sequential


async def test_one_misconfigured_account_does_not_stop_the_run(db: Database) -> None:
    plan_id, _ = await setup_plan(db)
    usage = FakeUsage()
    good = await new_account(db, plan_id, at(2026, 1, 1))
    bad = await new_account(db, plan_id, at(2026, 1, 1))
    async with db.unit_of_work() as s:  # bypasses the service guard on purpose: a currency the plan lacks
        await s.execute(text("UPDATE accounts SET invoice_currency = 'EUR' WHERE id = :a"), {"a": bad})
    summary = await close(db, at(2026, 2, 5), usage)
    assert [f.accountId for f in summary.failed] == [bad] and "does not support EUR" in summary.failed[0].reason
    assert [r.status for r in await invoices_of(db, good)] == ["DUE", "DRAFT"]
    assert [r.status for r in await invoices_of(db, bad)] == ["DRAFT"]  # untouched; retried by the next run


instants = st.lists(st.integers(0, 24 * 120), min_size=1, max_size=5)
records = st.lists(st.tuples(st.integers(0, 24 * 120 - 1), st.decimals(0, 5000, places=2)), max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut_hours=instants, usage_records=records, grace=st.integers(0, 5))
async def test_closing_in_pieces_equals_closing_once(
    db: Database, cut_hours: list[int], usage_records: list[tuple[int, Decimal]], grace: int
) -> None:
    start, end = at(2026, 1, 20), at(2026, 1, 20) + timedelta(hours=24 * 120)
    plan_id, meter_id = await setup_plan(db, grace=grace, name=f"g{grace}")
    usage = FakeUsage()
    once, pieces = await new_account(db, plan_id, start), await new_account(db, plan_id, start)
    for hour, value in usage_records:
        for account in (once, pieces):
            usage.add(account, meter_id, start + timedelta(hours=hour), str(value))
    for hour in sorted(cut_hours):
        await close(db, start + timedelta(hours=hour), usage, [pieces])
    await close(db, end, usage, [pieces])
    await close(db, end, usage, [once])

    def content(rows: list[InvoiceRow]) -> list[tuple[Any, ...]]:
        return [(r.period_start, r.period_end, r.status, r.total_amount, r.invoice_date, r.due_date) for r in rows]

    once_rows, piece_rows = await invoices_of(db, once), await invoices_of(db, pieces)
    assert content(once_rows) == content(piece_rows)
    numbers = [r.sequence_number for r in piece_rows if r.sequence_number is not None]
    assert numbers == sorted(numbers)  # numbered in period order however the runs were cut


async def test_run_bill_is_the_cli_and_background_entry_point(db: Database) -> None:
    plan_id, _ = await setup_plan(db)
    account = await new_account(db, plan_id, at(2026, 1, 1))
    summary = await run_bill(db, at(2026, 3, 5))
    # January and February are past their 2-day grace: both DUE (20.00 fee each, no usage); March opens
    assert (summary.accounts, summary.invoicesDue, summary.draftsOpened) == (1, 2, 1)
    assert [(r.status, r.total_amount) for r in await invoices_of(db, account)] == [
        ("DUE", D("20.00")), ("DUE", D("20.00")), ("DRAFT", None)]
    assert (await run_bill(db, at(2026, 3, 5))).accounts == 0


async def test_currency_guard_names_the_plan(db: Database) -> None:
    plan_id, _ = await setup_plan(db)
    account = await new_account(db, plan_id, at(2026, 1, 1))
    async with db.unit_of_work() as s:
        await check_plans_support_currency(s, account, "USD")
        with pytest.raises(InvalidInput, match="does not support EUR") as raised:
            await check_plans_support_currency(s, account, "EUR")
        assert raised.value.field == "invoiceCurrency"
