"""Migration 0020 (citus ready) on a database that holds data: events, rollups, invoices with lines, a
wallet with grants, applications and a credit note's grant, all at 0019, then `db upgrade` to head.

The data is written through the MCP tools at head, then the database goes down to 0019 (0020's downgrade
rebuilds the single-column keys), so every row is one the engine really writes. Upgraded again, every row of
every table is still there unchanged, `verify` finds every rollup exact, `db check` finds no drift, and the
engine keeps working on the upgraded data (the wallet's balance and a new grant and application)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from mcp import Client

from conftest import hosted, pg_connection
from helpers import at, call
from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.meters.rollups import verify_rollups
from togai_engine.store import migrate
from togai_engine.store.database import Database


async def priced_account(client: Client, account_id: str) -> None:
    """0.01 per token plus a 49.00 platform fee a month, from 1 January 2026 (3 days' grace)."""
    meter = await call(client, "create_usage_meter", name=f"tokens-{account_id}", eventSchemaName="llm",
                       aggregation="SUM", computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name=f"Pro-{account_id}", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 3},
        rateCards={"usageRateCards": [{"name": "tokens", "usageMeterId": meter["id"], "ratePlan": {
            "pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}],
            "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "49"}],
                                   "invoiceTiming": "IN_ARREARS", "enableProration": True}]})
    await call(client, "create_customer", id=f"cust_{account_id}", name=account_id, account={
        "id": account_id, "name": account_id, "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})


async def tokens(client: Client, account_id: str, event_id: str, when: str, count: int) -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                              "accountId": account_id, "attributes": {"tokens": str(count)}})


async def _populate(url: str) -> None:
    db = Database(url)
    clock = FixedClock(at(2026, 1, 15))
    try:
        async with hosted(Client(build_server(db, clock=clock), raise_exceptions=False)) as client:
            await priced_account(client, "acme")
            await priced_account(client, "beta")
            for n in range(1, 21):
                await tokens(client, "acme" if n % 2 else "beta", f"e{n}", f"2026-01-{n:02d}T10:00:00Z", 100 * n)
            await call(client, "grant_credit", accountId="acme", amount="9.00", idempotencyKey="prepaid")
            await call(client, "grant_credit", accountId="acme", amount="5.00", idempotencyKey="promo")
            clock.set(at(2026, 2, 4))  # January DUE: the wallet's 14.00 pays part of acme's invoice
            listed = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
            invoice = listed[0]
            # acme: e1, e3, ..., e19: 100 × (1 + 3 + ... + 19) = 100 × 100 = 10000 tokens × 0.01 = 100.00
            # + 49.00 platform = 149.00; 9.00 + 5.00 of credit applied, 135.00 due
            assert (invoice["totalAmount"], invoice["creditsApplied"], invoice["amountDue"]) == (
                "149.00", "14.00", "135.00")
            # a note of 140.00: 135.00 off what is due, the other 5.00 back to the wallet as a grant
            note = await call(client, "create_credit_note", invoiceId=invoice["id"], reason="ORDER_CHANGE",
                              amount="140.00", idempotencyKey="cn-1")
            assert (note["creditNote"]["creditedToWallet"], note["walletBalance"]) == ("5.00", "5.00")
            await tokens(client, "beta", "e21", "2026-02-10T00:00:00Z", 700)  # February's DRAFT
    finally:
        await db.dispose()


# Columns later revisions add, which 0019 cannot hold: left out of the comparison (0021 marks the invoices that
# existed before it as carrying their opening fees, tests/billing/test_advance_invoices.py; 0022 links PREPAID
# grants to their sale and records the credits credit notes took back, tests/billing/test_prepaid_credit_notes.py;
# 0023 marks the association an account's creation wrote, tests/store/test_migration_0023_creation_association.py).
LATER_COLUMNS = {"invoice_type", "carries_opening_fees", "sale_invoice_id", "sale_line_position", "credit_note_id",
                 "credits_voided", "by_account_creation"}


async def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but alembic_version, in a stable order (without LATER_COLUMNS)."""
    async with pg_connection(url) as conn:
        tables = [r[0] for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND c.relname <> 'alembic_version'")]
        found = {}
        for table in tables:
            rows = await conn.fetch(f'SELECT * FROM "{table}"')
            found[table] = sorted((tuple(v for k, v in r.items() if k not in LATER_COLUMNS) for r in rows), key=repr)
        return found


async def _after_upgrade(url: str) -> None:
    db = Database(url)
    try:
        async with db.unit_of_work() as session:
            assert await verify_rollups(session) == []
        clock = FixedClock(at(2026, 2, 20))
        async with hosted(Client(build_server(db, clock=clock), raise_exceptions=False)) as client:
            assert (await call(client, "get_wallet_balance", accountId="acme"))["balance"] == "5.00"
            await call(client, "grant_credit", accountId="acme", amount="2.00", idempotencyKey="after")
            assert (await call(client, "get_wallet_balance", accountId="acme"))["balance"] == "7.00"
            entries = (await call(client, "list_wallet_entries", accountId="acme", pageSize=100))["data"]
            # grants 9.00, 5.00, the note's 5.00 and 2.00; applications 9.00 and 5.00 on January's invoice
            assert sorted((e["kind"], e["amount"]) for e in entries) == [
                ("APPLICATION", "-5.00"), ("APPLICATION", "-9.00"), ("GRANT", "2.00"), ("GRANT", "5.00"),
                ("GRANT", "5.00"), ("GRANT", "9.00")]
    finally:
        await db.dispose()


def test_upgrade_through_0020_keeps_every_row_of_a_populated_database(scratch_url):
    migrate.upgrade(scratch_url)
    asyncio.run(_populate(scratch_url))
    at_head = asyncio.run(_rows(scratch_url))
    command.downgrade(migrate.alembic_config(scratch_url), "0019")
    at_0019 = asyncio.run(_rows(scratch_url))
    assert at_0019 == at_head  # the downgrade keeps every row
    counts = {t: len(rows) for t, rows in at_0019.items()}
    # what the story wrote: 21 events (each id claimed once), two DUE invoices and two DRAFTs, wallet rows
    assert (counts["events"], counts["event_ids"]) == (21, 21)
    assert counts["invoices"] == 4 and counts["invoice_lines"] >= 4
    # grants: prepaid, promo, the credit note's; entries: three grants and two applications
    assert (counts["wallets"], counts["credit_grants"], counts["wallet_entries"], counts["credit_notes"]) == (
        1, 3, 5, 1)
    assert counts["usage_rollups"] > 0

    migrate.upgrade(scratch_url)
    assert asyncio.run(_rows(scratch_url)) == at_0019  # every row of every table, unchanged
    migrate.check(scratch_url)
    asyncio.run(_after_upgrade(scratch_url))
