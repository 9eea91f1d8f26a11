"""Migration 0022 (prepaid credit voids) on a database whose PREPAID credits were granted before it: the upgrade links
each grant to the PAID invoice line that sold it, so a credit note on that line voids its share; a database holding
voided credits refuses to go below 0022 (an older engine would grant them again), nothing changed.

The data is written through the MCP tools at head, then the database goes down to 0021 (which drops the links),
so the grant is one the engine really issued."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from mcp import Client

from conftest import hosted, pg_connection
from helpers import at, call
from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.store import migrate
from togai_engine.store.database import Database

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}
# 1000 credits (USD, never expiring) sold once at 0.10 each: 100.00 on the account's advance invoice
CREDITS = {"id": "credits", "displayName": "Credits", "invoiceTiming": "PREPAID", "type": "ONE_TIME",
           "grantDetails": {"expiryType": "NO_EXPIRY"},
           "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "1000", "slabDetails": [
               {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.1"}]}]}}


async def _with_client(url: str, now: Any, story: Any) -> Any:
    db = Database(url)
    try:
        async with hosted(Client(build_server(db, clock=FixedClock(now)), raise_exceptions=False)) as client:
            return await story(client)
    finally:
        await db.dispose()


async def _buy_and_pay(client: Client) -> str:
    plan = await call(client, "create_price_plan", name="Bundle", pricingCycleConfig=MONTHLY,
                      rateCards={"creditGrantRateCards": [CREDITS]})
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    assert (await call(client, "get_wallet_balance", accountId="acme"))["balance"] == "1000.00"
    return str(advance["id"])


async def _links(url: str) -> list[tuple[Any, ...]]:
    async with pg_connection(url) as conn:
        return [tuple(r) for r in await conn.fetch(
            "SELECT g.sale_invoice_id, g.sale_line_position, l.line_type FROM credit_grants g "
            "JOIN invoice_lines l ON l.invoice_id = g.sale_invoice_id AND l.position = g.sale_line_position")]


async def _columns(url: str, table: str) -> set[str]:
    async with pg_connection(url) as conn:
        return {r[0] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table)}


def test_upgrade_links_grants_sold_before_it_and_a_note_then_voids_them(scratch_url) -> None:
    migrate.upgrade(scratch_url)
    advance = asyncio.run(_with_client(scratch_url, at(2026, 1, 2), _buy_and_pay))
    linked = asyncio.run(_links(scratch_url))  # as PAID issued it: the advance invoice's purchase line
    assert [(invoice_id, line_type) for invoice_id, _, line_type in linked] == [
        (advance, "CREDIT_GRANT_RATE_CARD_AMOUNT")]
    command.downgrade(migrate.alembic_config(scratch_url), "0021")
    assert "sale_invoice_id" not in asyncio.run(_columns(scratch_url, "credit_grants"))

    migrate.upgrade(scratch_url)
    assert asyncio.run(_links(scratch_url)) == linked  # linked again, by account, grantorId and cycle start
    migrate.check(scratch_url)

    async def credit_a_quarter(client: Client) -> dict[str, Any]:
        return await call(client, "create_credit_note", invoiceId=advance, reason="ORDER_CHANGE",
                          lines=[{"lineNumber": 1, "amount": "25.00"}])

    note = asyncio.run(_with_client(scratch_url, at(2026, 1, 3), credit_a_quarter))
    # 25.00 / 100.00 × 1000.00 = 250.00 credits voided; 1000.00 - 250.00 + the note's 25.00 = 775.00
    assert [line["creditsVoided"] for line in note["creditNote"]["lines"]] == ["250.00"]
    assert note["walletBalance"] == "775.00"

    with pytest.raises(RuntimeError, match=r"credit notes took back PREPAID credits .* downgrade refused, nothing "
                                           r"changed"):
        command.downgrade(migrate.alembic_config(scratch_url), "0021")
    migrate.check(scratch_url)  # still at head
