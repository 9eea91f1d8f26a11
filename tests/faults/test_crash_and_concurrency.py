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

from billing.test_scenarios import tiered
from conftest import hosted
from helpers import at, call
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
    """Clients ingesting overlapping batches, bill runs and credit grants (each call sent twice at once), all
    at the same time, while January is open: the bill runs close it in the middle of the ingestion."""
    from togai_engine.billing.close import close_due_cycles
    from togai_engine.meters.usage import meter_quantities

    async with hosted(Client(build_server(db, clock=clock))) as setup:
        meter = await seed(setup)
        plan = await call(setup, "create_price_plan", name="Calls", pricingCycleConfig={
            "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0},
            rateCards={"usageRateCards": [tiered(meter, ("0", "0.01"))]})
        for i in range(3):
            await call(setup, "update_account", accountId=f"acc_{i}", pricePlanId=plan["id"],
                       effectiveFrom="2026-01-01T00:00:00Z")
    clock.set(at(2026, 1, 31, 23))  # clients ingest and grant while January is still open
    close_at = at(2026, 2, 1, 0, 0, 1)  # the bill runs close January (grace 0) as of this instant
    accounts = ("acc_0", "acc_1", "acc_2")
    batches = make_batches(batches=8, size=150)
    windows = [batches[0:5], batches[3:8], batches[1:8:2]]
    stored_some = asyncio.Event()  # a first batch is committed: billable usage exists
    closed = asyncio.Event()  # a bill run has committed January's close
    granted_some = {a: asyncio.Event() for a in accounts}  # a first grant of the account is committed
    reports: list[dict[str, Any]] = []

    async def ingest(window: list[list[dict[str, Any]]]) -> None:
        async with hosted(Client(build_server(db, clock=clock))) as c:
            for n, batch in enumerate(window):
                if n == len(window) - 1:
                    await closed.wait()  # batch 7 (only ever sent last) arrives after the close: all late
                reports.append(await call(c, "ingest_batch_events", events=batch))
                stored_some.set()

    async def bill() -> None:
        await stored_some.wait()
        await asyncio.gather(*(e.wait() for e in granted_some.values()))
        for _ in range(3):  # the first run closes January, the others find nothing left (or wait for it)
            async with db.unit_of_work() as session:
                await close_due_cycles(session, close_at)
            closed.set()

    async def grants(account: str) -> dict[str, dict[str, Any]]:
        async with hosted(Client(build_server(db, clock=clock))) as c:
            results = {}
            for n in range(4):
                key = f"{account}-{n}"
                results[key] = await call(c, "grant_credit", accountId=account, amount="0.25", idempotencyKey=key)
                granted_some[account].set()
            return results

    # every grant coroutine runs twice at once: the same calls, with the same idempotency keys
    *_, granted_calls = await asyncio.wait_for(asyncio.gather(
        *(ingest(w) for w in windows), bill(), bill(),
        asyncio.gather(*(grants(a) for a in accounts for _ in range(2)))), timeout=120)
    async with db.unit_of_work() as session:
        await close_due_cycles(session, close_at)
    for key in {k for r in granted_calls for k in r}:
        pair = [r[key] for r in granted_calls if key in r]
        assert len(pair) == 2 and pair[0]["grant"]["id"] == pair[1]["grant"]["id"], key  # one grant per key
        assert sorted(r["replayed"] for r in pair) == [False, True], key  # written once, replayed once

    calls = {(e["accountId"], e["id"]): Decimal(e["attributes"]["calls"]) for batch in batches for e in batch}
    assert all(r["rejected"] == 0 for r in reports)
    async with db.unit_of_work() as session:
        q = lambda sql: session.execute(text(sql))  # noqa: E731
        assert (await q("SELECT count(*) FROM events")).scalar() == 8 * 150  # each event once
        assert (await q("SELECT count(*) FROM (SELECT 1 FROM events GROUP BY account_id, id "
                        "HAVING count(*) > 1) d")).scalar() == 0
        stored = {(r[0], r[1]): r[2] for r in await q("SELECT account_id, id, status FROM events")}
        assert set(stored) == set(calls)  # every event sent is stored, exactly once
        billed = [k for k, status in stored.items() if status == "ACCEPTED"]
        late = [k for k, status in stored.items() if status == "NOT_BILLED_CYCLE_CLOSED"]
        assert len(billed) + len(late) == len(calls) == 8 * 150  # each counted either billed or not billed
        # the race happened: usage went in before the close (the first batch of some window: 150 events at
        # least) and after it (each window's last batch waits for the close: batch 7 at least)
        assert len(billed) >= 150 and len(late) >= 150
        # what the clients were told matches what is stored (duplicates are the overlapping windows' resends)
        assert sum(r["accepted"] for r in reports) == len(billed)
        assert sum(r["notBilled"] for r in reports) == len(late)
        assert sum(r["accepted"] + r["notBilled"] + r["duplicates"] for r in reports) == sum(map(len, windows)) * 150
        assert (await q("SELECT count(*) FROM (SELECT 1 FROM invoices GROUP BY account_id, period_start "
                        "HAVING count(*) > 1) d")).scalar() == 0  # one invoice per account and cycle
        january = {r[0]: r[1:] for r in await q(
            "SELECT i.account_id, l.quantity, i.total_amount, i.credits_applied, i.amount_due FROM invoices i "
            "JOIN invoice_lines l ON l.invoice_id = i.id AND l.line_type = 'USAGE_RATE_CARD_AMOUNT' "
            "WHERE i.period_start = '2026-01-01' AND i.status = 'DUE'")}
        billable = await meter_quantities(session, start=at(2026, 1, 1), end=at(2026, 2, 1))
        entries = [tuple(r) for r in await q("SELECT account_id, kind, amount FROM wallet_entries ORDER BY id")]
        assert set(january) == set(accounts)
        for account, (quantity, total, applied, due) in january.items():
            # the invoice billed exactly the billable usage; late events are stored but not billed
            assert quantity == billable.get((account, meter), 0)
            assert quantity == sum(calls[k] for k in billed if k[0] == account) > 0  # the ACCEPTED events' calls
            # one slab from 0 at 0.01 per call: quantity × 0.01, e.g. 1234 calls -> 12.34 (no rounding needed)
            assert total == quantity * Decimal("0.01")
            assert applied + due == total and due >= 0 and applied >= 0
            # Wallet writes are serialised by the wallet row lock, so entry ids follow commit order: the
            # GRANT entries before the close's APPLICATION entries are the credit the close could spend.
            mine = [(kind, amount) for a, kind, amount in entries if a == account]
            first_application = next(i for i, (kind, _) in enumerate(mine) if kind == "APPLICATION")
            before_close = sum((amount for kind, amount in mine[:first_application] if kind == "GRANT"), Decimal(0))
            assert before_close >= Decimal("0.25")  # the bill runs started after a first grant of each account
            assert applied == min(before_close, total)  # e.g. 0.75 granted by then, 1.53 due -> 0.75 applied
        ledger = {r[0]: r[1] for r in await q(
            "SELECT account_id, sum(amount) FROM wallet_entries GROUP BY account_id")}
        granted = {r[0]: r[1] for r in await q("SELECT account_id, sum(amount) FROM credit_grants GROUP BY account_id")}
        grant_rows = {r[0]: r[1] for r in await q("SELECT account_id, count(*) FROM credit_grants GROUP BY account_id")}
        applied_total = {r[0]: r[1] for r in await q(
            "SELECT account_id, -sum(amount) FROM wallet_entries WHERE kind = 'APPLICATION' GROUP BY account_id")}
        for account in accounts:
            assert granted[account] == Decimal("1.00")  # 4 grants x 0.25, none twice
            assert grant_rows[account] == 4
            # conservation: balance = grants - applications, and what left the wallet is on an invoice
            assert ledger[account] == granted[account] - applied_total.get(account, 0)
            assert applied_total.get(account, 0) == january[account][2]
    clock.set(close_at)  # every entry is dated by now: the wallet's balance is the sum of its ledger
    async with hosted(Client(build_server(db, clock=clock))) as reader:
        for account in accounts:
            wallet = await call(reader, "get_wallet_balance", accountId=account)
            assert Decimal(str(wallet["balance"])) == ledger[account] == Decimal("1.00") - january[account][2]
