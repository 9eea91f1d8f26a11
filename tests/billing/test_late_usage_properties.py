"""Late usage billed on the next invoice, as a property: however usage arrives late and however the bill runs
are cut, an account on a BILL_ON_NEXT_INVOICE plan is charged in all exactly what an account sent the same
usage on time is charged, every late event is billed on exactly one invoice, and no DUE invoice changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from billing_helpers import setup_plan
from togai_engine.accounts.schemas import AccountCreate
from togai_engine.app.accounts import create_account
from togai_engine.billing.runs import run_bill
from togai_engine.customers.schemas import CustomerCreate
from togai_engine.customers.service import create_customer
from togai_engine.events.service import ingest_batch
from togai_engine.invoices.models import InvoiceRow
from togai_engine.store.database import Database

_unique = itertools.count()
START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 24 * 120  # January to April
END = datetime(2026, 8, 1, tzinfo=UTC)  # every arrival (by 29 June) is on an invoice DUE by then


async def billing_late_usage_plan(db: Database) -> str:
    """Monthly, no grace: 0.10 a token up to 1000, 0.05 above; 20.00 fixed; a 150.00 minimum commitment, so
    late usage also moves a true-up; lateUsage BILL_ON_NEXT_INVOICE."""
    plan_id, _ = await setup_plan(db, grace=0, name=f"late{next(_unique)}", late_usage="BILL_ON_NEXT_INVOICE",
                                  minimum_commitment="150")
    return plan_id


async def new_account(db: Database, plan_id: str) -> str:
    account_id = f"late_acc{next(_unique)}"
    async with db.unit_of_work() as s:
        await create_customer(s, CustomerCreate(id=f"c_{account_id}", name="C"))
        await create_account(s, AccountCreate(id=account_id, customerId=f"c_{account_id}", name="A",
                                              pricePlanId=plan_id, effectiveFrom=START), START)
    return account_id


async def send(db: Database, account_id: str, event_id: str, hour: int, tokens: Decimal, now: datetime) -> str:
    event = {"id": event_id, "schemaName": "llm", "accountId": account_id,
             "timestamp": (START + timedelta(hours=hour)).isoformat(), "attributes": {"tokens": str(tokens)}}
    async with db.unit_of_work() as s:
        result = await ingest_batch(s, [event], now)
    assert result.rejected == 0
    return "ACCEPTED_LATE" if result.acceptedLate else "ACCEPTED" if result.accepted else "OTHER"


async def totals(db: Database, account_id: str) -> dict[datetime, Decimal]:
    async with db.unit_of_work() as s:
        rows = await s.scalars(select(InvoiceRow).where(InvoiceRow.account_id == account_id))
        return {r.period_start: r.total_amount for r in rows if r.status == "DUE"}


usage = st.lists(st.tuples(
    st.integers(0, HOURS - 1),  # when the usage happened
    st.integers(0, 24 * 60),  # how many hours after that it arrives
    st.integers(1, 900).map(Decimal),
), min_size=1, max_size=8)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=usage, runs=st.lists(st.integers(0, HOURS + 24 * 30), max_size=4))
async def test_late_usage_costs_what_the_same_usage_on_time_costs(
        db: Database, events: list[tuple[int, int, Decimal]], runs: list[int]) -> None:
    plan_id = await billing_late_usage_plan(db)
    on_time, late = await new_account(db, plan_id), await new_account(db, plan_id)
    for n, (hour, _, tokens) in enumerate(events):
        await send(db, on_time, f"e{n}", hour, tokens, START)
    # The same events reach `late` hours or days after they happened, with bill runs in between.
    arrivals = sorted([(hour + delay, "event", n) for n, (hour, delay, _) in enumerate(events)]
                      + [(hour, "run", -1) for hour in runs])
    snapshots: list[dict[datetime, Decimal]] = []
    for arrival, kind, n in arrivals:
        now = START + timedelta(hours=arrival)
        if kind == "run":
            await run_bill(db, now)
        else:
            await send(db, late, f"e{n}", events[n][0], events[n][2], now)
        snapshots.append(await totals(db, late))
    await run_bill(db, END)
    await run_bill(db, END)  # a second run changes nothing

    final = await totals(db, late)
    for earlier in snapshots:  # a DUE invoice never changes
        assert {start: final[start] for start in earlier} == earlier
    # Charged in all: the same as on time (each late line is the period re-rated minus what was invoiced,
    # so over all invoices they add up to every period priced with all its usage).
    assert sum(final.values()) == sum((await totals(db, on_time)).values())
    async with db.unit_of_work() as s:
        waiting = await s.scalar(text("SELECT count(*) FROM late_usage_events WHERE account_id = :a "
                                      "AND invoice_id IS NULL"), {"a": late})
        late_events = await s.scalar(text("SELECT count(*) FROM events WHERE account_id = :a "
                                          "AND status = 'ACCEPTED_LATE'"), {"a": late})
        on_lines = await s.scalar(text(
            "SELECT coalesce(sum((l.details->>'eventCount')::int), 0) FROM invoice_lines l JOIN invoices i "
            "ON i.id = l.invoice_id WHERE i.account_id = :a AND i.status = 'DUE' "
            "AND l.line_type = 'LATE_USAGE_AMOUNT'"), {"a": late})
    event("some usage arrived late" if late_events else "all usage on time")
    # every late event was billed, on exactly one line of one invoice
    assert (waiting, on_lines) == (0, late_events)
