"""Migration 0023 (creation association) on a database written before it: the upgrade marks the association each
account's creation wrote, as the older engine found it (the account's first written at its created_at), and no
other; a plan-less account's later plan stays unmarked, so replaying its creation still finds no plan.

The data is written through the MCP tools at head, then the database goes down to 0022 (which drops the marks)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from mcp import Client

from conftest import hosted, pg_connection
from helpers import at, call, call_error
from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.store import migrate
from togai_engine.store.database import Database

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}
FEE = {"fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "31"}]}]}


async def _with_client(url: str, story: Any) -> Any:
    db = Database(url)
    try:
        async with hosted(Client(build_server(db, clock=FixedClock(at(2026, 1, 1))), raise_exceptions=False)) as client:
            return await story(client)
    finally:
        await db.dispose()


async def _marks(url: str) -> list[tuple[str, str, bool]]:
    async with pg_connection(url) as conn:
        return [tuple(r) for r in await conn.fetch(
            "SELECT account_id, price_plan_id, by_account_creation FROM plan_associations ORDER BY account_id, id")]


async def _columns(url: str) -> set[str]:
    async with pg_connection(url) as conn:
        return {r[0] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'plan_associations'")}


def test_upgrade_marks_the_association_each_creation_wrote(scratch_url) -> None:
    migrate.upgrade(scratch_url)

    async def onboard(client: Client) -> str:
        plan = await call(client, "create_price_plan", name="Growth", pricingCycleConfig=MONTHLY, rateCards=FEE)
        await call(client, "create_customer", id="cust_acme", name="Acme")
        # acme: created on the plan; globex: created without one, the plan attached afterwards by update_account
        await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme", pricePlanId=plan["id"],
                   effectiveFrom="2026-01-01T00:00:00Z")
        await call(client, "create_account", id="globex", customerId="cust_acme", name="Globex")
        await call(client, "update_account", accountId="globex", pricePlanId=plan["id"],
                   effectiveFrom="2026-01-01T00:00:00Z")
        return str(plan["id"])

    plan_id = asyncio.run(_with_client(scratch_url, onboard))
    marked = [("acme", plan_id, True), ("globex", plan_id, False)]
    assert asyncio.run(_marks(scratch_url)) == marked
    command.downgrade(migrate.alembic_config(scratch_url), "0022")
    assert "by_account_creation" not in asyncio.run(_columns(scratch_url))
    migrate.upgrade(scratch_url)
    assert asyncio.run(_marks(scratch_url)) == marked  # as the older engine found them
    migrate.check(scratch_url)

    async def replay(client: Client) -> str:
        # acme's creation replays with its plan; globex's without one, and one bringing the plan is refused
        await call(client, "create_account", id="acme", customerId="cust_acme", name="Acme", pricePlanId=plan_id)
        await call(client, "create_account", id="globex", customerId="cust_acme", name="Globex")
        return await call_error(client, "create_account", id="globex", customerId="cust_acme", name="Globex",
                                pricePlanId=plan_id)

    assert "different pricePlanId (stored none" in asyncio.run(_with_client(scratch_url, replay))
