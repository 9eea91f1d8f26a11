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
from helpers import at, call, call_error
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


async def _grant_count(url: str) -> tuple[int, int]:
    """(rate-card grants, those linked to no sale): these plans' only rate-card grants are PREPAID ones."""
    async with pg_connection(url) as conn:
        row = await conn.fetchrow("SELECT count(*), count(*) FILTER (WHERE sale_invoice_id IS NULL) FROM credit_grants "
                                  "WHERE source = 'RATE_CARD'")
    return int(row[0]), int(row[1])


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
    migrate.check(scratch_url)  # still at head, the grant still linked and its credits still voided
    assert asyncio.run(_links(scratch_url)) == linked
    assert asyncio.run(_grant_count(scratch_url)) == (1, 0)


def test_a_cycle_sold_again_before_the_upgrade_keeps_one_grant_for_the_later_sale(scratch_url) -> None:
    """Under 0021 a cycle was granted once, whatever sold it: a replaced advance invoice (a plan version moved in place)
    was credited whole with its credits kept, and paying the replacement granted nothing. The upgrade links that one
    grant to the later sale, so a note on the replacement (still DUE) voids from it and paying it grants nothing."""
    migrate.upgrade(scratch_url)

    async def buy_pay_reprice(client: Client) -> str:
        first = await _buy_and_pay(client)  # 1000 credits for 100.00, PAID: balance 1000.00
        [plan] = (await call(client, "list_price_plans"))["data"]
        plan_id = plan["id"]
        cards = {"creditGrantRateCards": [CREDITS | {"rateDetails": {"currencySlabRateDetails": [
            {"currency": "USD", "creditAmount": "1000",
             "slabDetails": [{"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.08"}]}]}}]}
        await call(client, "update_price_plan", pricePlanId=plan_id, rateCards=cards)
        await call(client, "finalize_price_plan", pricePlanId=plan_id, migrationMode="START_OF_CURRENT_CYCLE")
        [again] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                   if i["invoiceType"] == "STANDARD_ADVANCED" and i["id"] != first]
        assert (again["status"], again["totalAmount"]) == ("DUE", "80.00")  # 1000 × 0.08
        return str(again["id"])

    again = asyncio.run(_with_client(scratch_url, at(2026, 1, 5), buy_pay_reprice))

    async def as_0021_left_it() -> None:
        # 0021 credited the replaced sale whole and kept its credits: no VOID entry, nothing voided on the note
        async with pg_connection(scratch_url) as conn:
            await conn.execute("DELETE FROM wallet_entries WHERE kind = 'VOID'")
            await conn.execute("UPDATE credit_note_lines SET credits_voided = NULL")

    asyncio.run(as_0021_left_it())
    command.downgrade(migrate.alembic_config(scratch_url), "0021")
    migrate.upgrade(scratch_url)
    assert [invoice_id for invoice_id, _, _ in asyncio.run(_links(scratch_url))] == [again]  # the later sale
    assert asyncio.run(_grant_count(scratch_url)) == (1, 0)  # the one grant, linked

    async def credit_then_pay(client: Client) -> tuple[dict[str, Any], str]:
        # a VOID would leave the credits the sale stands for granted: refused, pointing to a note by lines
        refused = await call_error(client, "update_invoice_status", invoiceId=again, status="VOID")
        assert "sells PREPAID credits that its account already holds" in refused and "lines=" in refused
        note = await call(client, "create_credit_note", invoiceId=again, reason="ORDER_CHANGE",
                          lines=[{"lineNumber": 1, "amount": "40.00"}])
        await call(client, "update_invoice_status", invoiceId=again, status="PAID")
        return note, str((await call(client, "get_wallet_balance", accountId="acme"))["balance"])

    note, balance = asyncio.run(_with_client(scratch_url, at(2026, 1, 6), credit_then_pay))
    # before: 1000.00 credits + the replaced sale's 100.00 credited to the wallet = 1100.00. The note credits 40.00 of
    # the 80.00 still due (nothing to the wallet) and voids 40 / 80 × 1000 = 500.00 credits from the one grant:
    # 600.00; paying the rest grants nothing (the grant stands for this sale)
    assert [line["creditsVoided"] for line in note["creditNote"]["lines"]] == ["500.00"]
    assert balance == "600.00"
