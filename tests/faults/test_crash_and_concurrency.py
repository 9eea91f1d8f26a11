"""Proof under faults: a server killed with SIGKILL mid-ingestion, and concurrent writers.

After a crash and a full resend, the stored events and rollups equal exactly one copy of the input.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from sqlalchemy import text

from conftest import hosted
from helpers import call
from mcp_server.server import build_server
from togai_engine.meters.rollups import verify_rollups

BIN = Path(sys.executable).parent / "togai-engine"
pytestmark = pytest.mark.slow


def make_batches(batches: int, size: int) -> list[list[dict[str, Any]]]:
    return [[{"id": f"ev_{b}_{i}", "schemaName": "api", "accountId": f"acc_{(b * size + i) % 3}",
              "timestamp": f"2026-01-{1 + (i % 28):02d}T{b % 24:02d}:00:00Z",
              "attributes": {"calls": str(1 + (i % 5))}} for i in range(size)] for b in range(batches)]


def expected_total(batches: list[list[dict[str, Any]]]) -> Decimal:
    return sum((Decimal(e["attributes"]["calls"]) for batch in batches for e in batch), Decimal(0))


async def seed(client: Client) -> str:
    await call(client, "create_customer", id="c", name="C")
    for i in range(3):
        await call(client, "create_account", id=f"acc_{i}", customerId="c", name=f"A{i}")
    meter = await call(client, "create_usage_meter", name="calls", eventSchemaName="api", aggregation="SUM",
                       computations=[{"computation": "calls"}])
    return meter["id"]


async def stored_state(db) -> tuple[int, int, Decimal]:
    async with db.unit_of_work() as session:
        events = await session.scalar(text("SELECT count(*) FROM events"))
        claimed = await session.scalar(text("SELECT count(*) FROM event_ids"))
        from datetime import UTC, datetime

        from togai_engine.meters.usage import meter_quantities

        quantities = await meter_quantities(session, start=datetime(2026, 1, 1, tzinfo=UTC),
                                            end=datetime(2026, 2, 1, tzinfo=UTC))
        assert await verify_rollups(session) == []  # rollups equal a recompute from raw events
    return events, claimed, sum(quantities.values(), Decimal(0))


class RawStdioServer:
    """`togai-engine serve` over stdio, spoken to line by line so it can be killed mid-request."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
        env |= {"TOGAI_DATABASE_URL": self.database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}
        self.proc = await asyncio.create_subprocess_exec(
            str(BIN), "serve", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env)
        await self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "crash", "version": "1"}}})
        await self.receive()
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.proc and self.proc.stdout
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            message = json.loads(line)
            if "id" in message:
                return message

    def kill(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)


async def test_sigkill_mid_ingestion_then_resend_counts_each_event_once(client, db, database_url):
    await seed(client)
    batches = make_batches(batches=24, size=250)
    server = RawStdioServer(database_url)
    await server.start()
    for n, batch in enumerate(batches):  # all requests in flight at once
        await server.send({"jsonrpc": "2.0", "id": n + 1, "method": "tools/call",
                           "params": {"name": "ingest_batch_events", "arguments": {"events": batch}}})
    answered = [await server.receive() for _ in range(5)]
    assert all("result" in a and not a["result"].get("isError") for a in answered)
    server.kill()  # mid-stream: some batches committed, some half-way, some never started
    await server.proc.wait()

    events_after_crash, _, _ = await stored_state(db)
    assert 5 * 250 <= events_after_crash <= 24 * 250

    params = __import__("mcp").StdioServerParameters(
        command=str(BIN), args=["serve"],
        env={k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
        | {"TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"})
    async with hosted(Client(params)) as restarted:
        duplicates = 0
        for batch in batches:  # the client resends everything it is not sure about: here, all of it
            result = await call(restarted, "ingest_batch_events", events=batch)
            assert result["rejected"] == 0
            duplicates += result["duplicates"]
    events, claimed, total = await stored_state(db)
    assert (events, claimed) == (24 * 250, 24 * 250)
    assert duplicates == events_after_crash  # exactly what had committed before the kill
    assert total == expected_total(batches)


async def test_concurrent_clients_with_overlapping_batches_count_each_event_once(db, clock):
    async with hosted(Client(build_server(db, clock=clock))) as first:
        await seed(first)
    batches = make_batches(batches=12, size=200)
    # four clients each send an overlapping window of the batches, at the same time
    windows = [batches[0:6], batches[3:9], batches[6:12], batches[0:12:2]]

    async def send(window: list[list[dict[str, Any]]]) -> None:
        async with hosted(Client(build_server(db, clock=clock))) as c:
            for batch in window:
                await call(c, "ingest_batch_events", events=batch)

    await asyncio.gather(*(send(w) for w in windows))
    events, claimed, total = await stored_state(db)
    assert (events, claimed) == (12 * 200, 12 * 200)
    assert total == expected_total(batches)


async def test_concurrent_ingest_bill_runs_and_grants_keep_every_invariant(db, clock):
    """Clients ingesting overlapping batches, bill runs and credit grants, all at once."""
    from datetime import UTC, datetime

    from togai_engine.billing.close import close_due_cycles
    from togai_engine.meters.usage import meter_quantities

    async with hosted(Client(build_server(db, clock=clock))) as setup:
        meter = await seed(setup)
        plan = await call(setup, "create_price_plan", name="Calls", pricingCycleConfig={
            "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0},
            rateCards={"usageRateCards": [{"usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}]})
        for i in range(3):
            await call(setup, "update_account", accountId=f"acc_{i}", pricePlanId=plan["id"],
                       effectiveFrom="2026-01-01T00:00:00Z")
    clock.set(datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC))  # January is due from now on
    batches = make_batches(batches=8, size=150)
    windows = [batches[0:5], batches[3:8], batches[1:8:2]]

    async def ingest(window: list[list[dict[str, Any]]]) -> None:
        async with hosted(Client(build_server(db, clock=clock))) as c:
            for batch in window:
                await call(c, "ingest_batch_events", events=batch)

    async def bill() -> None:
        for _ in range(3):
            async with db.unit_of_work() as session:
                await close_due_cycles(session, clock.now())

    async def grants(account: str) -> None:
        async with hosted(Client(build_server(db, clock=clock))) as c:
            for n in range(4):
                await call(c, "grant_credit", accountId=account, amount="0.25", idempotencyKey=f"{account}-{n}")

    await asyncio.gather(*(ingest(w) for w in windows), bill(), bill(), *(grants(f"acc_{i}") for i in range(3)))
    async with db.unit_of_work() as session:
        await close_due_cycles(session, clock.now())
    async with db.unit_of_work() as session:
        q = lambda sql: session.execute(text(sql))  # noqa: E731
        assert (await q("SELECT count(*) FROM events")).scalar() == 8 * 150  # each event once
        assert (await q("SELECT count(*) FROM (SELECT 1 FROM invoices GROUP BY account_id, period_start "
                        "HAVING count(*) > 1) d")).scalar() == 0  # one invoice per account and cycle
        january = {r[0]: r[1:] for r in await q(
            "SELECT i.account_id, l.quantity, i.total_amount, i.credits_applied, i.amount_due FROM invoices i "
            "JOIN invoice_lines l ON l.invoice_id = i.id AND l.line_type = 'USAGE_RATE_CARD_AMOUNT' "
            "WHERE i.period_start = '2026-01-01' AND i.status = 'DUE'")}
        billable = await meter_quantities(session, start=datetime(2026, 1, 1, tzinfo=UTC),
                                          end=datetime(2026, 2, 1, tzinfo=UTC))
        assert set(january) == {"acc_0", "acc_1", "acc_2"}
        for account, (quantity, total, applied, due) in january.items():
            # the invoice billed exactly the billable usage; late events are stored but not billed
            assert quantity == billable.get((account, meter), 0)
            assert applied + due == total and due >= 0 and applied >= 0
        ledger = {r[0]: r[1] for r in await q(
            "SELECT account_id, sum(amount) FROM wallet_entries GROUP BY account_id")}
        granted = {r[0]: r[1] for r in await q("SELECT account_id, sum(amount) FROM credit_grants GROUP BY account_id")}
        applied_total = {r[0]: r[1] for r in await q(
            "SELECT account_id, -sum(amount) FROM wallet_entries WHERE kind = 'APPLICATION' GROUP BY account_id")}
        for account in ("acc_0", "acc_1", "acc_2"):
            assert granted[account] == Decimal("1.00")  # 4 grants x 0.25, none twice
            # conservation: balance = grants - applications, and what left the wallet is on an invoice
            assert ledger[account] == granted[account] - applied_total.get(account, 0)
            assert applied_total.get(account, 0) == january[account][2]
