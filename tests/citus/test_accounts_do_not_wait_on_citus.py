"""Work on one account does not wait for work on another on the cluster.

One transaction does something to one account (a bill run closing its cycle, a batch of its events, a change
of its profile or plan, a credit note on its invoice) and stays open; meanwhile another account's batch, grant
and bill run must finish. The second transaction runs with a lock_timeout, and the test bounds its wait too: a
wait for the first one (which never ends while the second runs) fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cluster import cclient, cclock, cdb, citus_database, citus_url, empty_citus_url
from conftest import pg_connection
from helpers import at, call
from togai_engine.accounts.schemas import AccountUpdate
from togai_engine.app import accounts as app_accounts
from togai_engine.app import financials
from togai_engine.app import invoices as app_invoices
from togai_engine.billing.close import close_due_cycles
from togai_engine.events.ingest import ingest_events
from togai_engine.invoices.credit_note_schemas import CreditNoteCreate
from togai_engine.invoices.models import COUNTER_LOCK_CLASS
from togai_engine.store.database import Database
from togai_engine.wallets.schemas import GrantCreditInput

FEB_4 = at(2026, 2, 4)  # January's grace period (3 days) has ended
BOUND = 30.0  # seconds: far more than any of these takes alone; reached only by waiting for the holder

Work = Callable[[AsyncSession, dict[str, Any]], Awaitable[Any]]


def batch(account: str, prefix: str) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{n}", "schemaName": "llm", "accountId": account, "timestamp": "2026-02-03T10:00:00Z",
             "attributes": {"tokens": str(n)}} for n in range(300)]


async def setup(client: Any, db: Database) -> dict[str, Any]:
    """acme and dyna have January DUE already; beta and corp are due (their bill run has not happened)."""
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    cycle = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 3}
    cards = {"usageRateCards": [{"name": "tokens", "usageMeterId": meter["id"], "ratePlan": {
        "pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}]}
    plan = await call(client, "create_price_plan", name="Tokens", pricingCycleConfig=cycle, rateCards=cards)
    other = await call(client, "create_price_plan", name="Other", pricingCycleConfig=cycle, rateCards=cards)
    for account in ("acme", "beta", "corp", "dyna"):
        await call(client, "create_customer", id=f"c_{account}", name=account, account={
            "id": account, "name": account, "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
        await call(client, "ingest_event", event={"id": f"{account}-jan", "schemaName": "llm", "accountId": account,
                                                  "timestamp": "2026-01-10T00:00:00Z", "attributes": {"tokens": "100"}})
    async with db.unit_of_work() as session:
        await close_due_cycles(session, FEB_4, ["acme", "dyna"])
    async with db.unit_of_work() as session:
        invoice = (await session.execute(text(
            "SELECT id FROM invoices WHERE account_id = 'acme' AND status = 'DUE'"))).scalar_one()
    return {"other_plan": other["id"], "acme_invoice": invoice}


# what the first transaction does to one account (acme, or corp for a bill run) and then holds
HOLDERS: dict[str, Work] = {
    "bill run": lambda s, _: close_due_cycles(s, FEB_4, ["corp"]),
    "batch": lambda s, _: ingest_events(s, batch("acme", "a"), FEB_4),
    "profile change": lambda s, _: app_accounts.update_account(s, "acme", AccountUpdate(name="Acme Inc"), FEB_4),
    "plan change": lambda s, ctx: app_accounts.update_account(
        s, "acme", AccountUpdate(pricePlanId=ctx["other_plan"], effectiveFrom=at(2026, 2, 10)), FEB_4),
    "credit note": lambda s, ctx: app_invoices.create_credit_note(
        s, CreditNoteCreate(invoiceId=ctx["acme_invoice"], reason="ORDER_CHANGE", amount=Decimal("0.50")), FEB_4),
}
# what another account's transaction must finish meanwhile (dyna is not due; beta is)
OTHERS: dict[str, Work] = {
    "batch": lambda s, _: ingest_events(s, batch("dyna", "d"), FEB_4),
    "grant": lambda s, _: financials.grant_credit(s, GrantCreditInput(accountId="dyna", amount=Decimal(5)), FEB_4),
    "bill run": lambda s, _: close_due_cycles(s, FEB_4, ["beta"]),
}


async def while_held(db: Database, ctx: dict[str, Any], holder: Work, other: Work) -> datetime | None:
    """Runs `other` while `holder`'s transaction is open; raises what `other` raised, or TimeoutError."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with db.unit_of_work() as session:
            await holder(session, ctx)
            holding.set()
            await release.wait()

    async def then() -> None:
        await holding.wait()
        async with db.unit_of_work() as session:
            await session.execute(text("SET LOCAL lock_timeout = '5s'"))
            await other(session, ctx)

    held = asyncio.create_task(hold())
    try:
        await asyncio.wait_for(then(), BOUND)
    finally:
        release.set()
        await held
    return None


# two bill runs that both number invoices wait for each other, as on one node: the next test
@pytest.mark.parametrize(("holder", "other"), [(h, o) for h in HOLDERS for o in OTHERS
                                               if (h, o) != ("bill run", "bill run")])
async def test_another_accounts_work_does_not_wait(cclient, cdb, holder: str, other: str) -> None:
    ctx = await setup(cclient, cdb)
    await while_held(cdb, ctx, HOLDERS[holder], OTHERS[other])


async def test_two_bill_runs_wait_only_for_the_invoice_number(cclient, cdb, citus_url) -> None:
    """Gapless numbers: the counter moves in the transaction that makes invoices DUE, so a second run that
    numbers invoices waits for the first to end (on one node it waits for the counter's row). It waits for
    that lock and nothing else, and finishes once the first commits."""
    ctx = await setup(cclient, cdb)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with cdb.unit_of_work() as session:
            await close_due_cycles(session, FEB_4, ["corp"])
            holding.set()
            await release.wait()

    async def other() -> None:
        await holding.wait()
        async with cdb.unit_of_work() as session:
            summary = await close_due_cycles(session, FEB_4, ["beta"])
        assert summary.invoicesDue == 1

    held, waiting = asyncio.create_task(hold()), asyncio.create_task(other())
    try:
        async with pg_connection(citus_url) as conn:
            for _ in range(int(BOUND / 0.05)):
                waits = await conn.fetch(
                    "SELECT locktype, classid::bigint AS class FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()")
                if waits:
                    break
                await asyncio.sleep(0.05)
        assert [(w["locktype"], w["class"]) for w in waits] == [("advisory", COUNTER_LOCK_CLASS)], ctx
    finally:
        release.set()
        await held
        await asyncio.wait_for(waiting, BOUND)
