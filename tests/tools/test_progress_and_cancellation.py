"""Long tools report progress, and a cancelled call stops its work and leaves nothing behind.

Through a real MCP client speaking JSON-RPC (mode="legacy": every progress and cancellation is a
notification on the wire, as over stdio or HTTP). A cancelled call's statement is stopped in the
server, its transaction rolled back, and its pooled connection handed back clean: no server process
stays behind waiting for a lock (holding its own), and the next call is answered.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from conftest import hosted, pg_connection, row_counts
from helpers import at, call, iso, on_plan, tokens_meter, wait_until_blocked_by
from mcp_server.server import build_server
from togai_engine.billing.fence import FENCE_LOCK_CLASS
from togai_engine.lab import service as lab

ACCOUNTS = 7
STEP = 3  # accounts per simulation step in these tests: 7 accounts take steps of 3, 3 and 1


@pytest.fixture
async def wire_client(db, clock) -> AsyncIterator[Client]:
    """A client that talks JSON-RPC to the server (the in-process default calls handlers directly)."""
    async with hosted(Client(build_server(db, clock=clock), mode="legacy", raise_exceptions=False)) as c:
        yield c


class Notes:
    """The progress notifications of one call, and an event set by the first."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float | None, str | None]] = []
        self.first = anyio.Event()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, total, message))
        self.first.set()


def per_token(name: str, meter: str, rate: str) -> dict[str, Any]:
    """A monthly plan charging `rate` USD per token."""
    return {"name": name, "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}},
            "supportedCurrencies": ["USD"], "rateCards": {"usageRateCards": [{
                "usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                    {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}]}}


async def accounts_with_usage(client: Client, clock: Any) -> tuple[str, dict[str, Any]]:
    """ACCOUNTS accounts on a stored plan since January, each with usage in January; returns the plan's id
    and an inline candidate."""
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", **per_token("Stored", meter, "0.002"))
    for n in range(ACCOUNTS):
        await call(client, "create_customer", id=f"cust_{n}", name="C", account={
            "id": f"acc_{n}", "name": "A", "pricePlanId": plan["id"], "effectiveFrom": iso(2026, 1, 1)})
        await call(client, "ingest_event", event={"id": f"e{n}", "schemaName": "llm", "accountId": f"acc_{n}",
                                                  "timestamp": iso(2026, 1, 10), "attributes": {"tokens": "1000"}})
    clock.set(at(2026, 2, 10))
    await call(client, "list_invoices")  # reading catches billing up: January's invoices become DUE
    return plan["id"], per_token("Inline", meter, "0.001")


async def blocked_processes(database_url: str, holder_pid: int) -> list[dict[str, Any]]:
    """Server processes waiting for a lock the holder has, and any other idle in a transaction."""
    async with pg_connection(database_url) as conn:
        rows = await conn.fetch(
            "SELECT pid, state, wait_event_type, left(query, 120) AS query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> $1 AND pid <> pg_backend_pid() "
            "AND ($1 = ANY(pg_blocking_pids(pid)) OR state LIKE 'idle in transaction%')", holder_pid)
    return [dict(row) for row in rows]


async def settled(database_url: str, holder_pid: int, *, within: float = 5.0) -> list[dict[str, Any]]:
    """Waits until no server process is blocked by the holder nor idle in a transaction; returns those
    still there after `within` seconds (none, when the cancelled work was stopped)."""
    deadline = asyncio.get_running_loop().time() + within
    while (left := await blocked_processes(database_url, holder_pid)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return left


# the account's billing fence, held as a bill run holds it: an ingest into acc waits
HOLD_WATERMARK = f"SELECT pg_advisory_xact_lock({FENCE_LOCK_CLASS}, hashtext('acc'))"


@asynccontextmanager
async def lock_held(database_url: str, statement: str) -> AsyncIterator[int]:
    """Runs `statement` (one that takes a lock) in a transaction of its own, kept open for the block; yields
    that server process's pid and rolls the transaction back after the block."""
    async with pg_connection(database_url) as holder:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(statement)
        yield await holder.fetchval("SELECT pg_backend_pid()")
        await transaction.rollback()


async def test_simulate_reports_accounts_priced_of_accounts_to_price(wire_client, clock, monkeypatch) -> None:
    plan, inline = await accounts_with_usage(wire_client, clock)
    monkeypatch.setattr(lab, "SIMULATION_STEP_ACCOUNTS", STEP)
    notes = Notes()
    result = await wire_client.call_tool("simulate_price_plan", {"candidates": [plan, inline], "lastCycles": 2},
                                         progress_callback=notes)
    assert not result.is_error, result.content
    assert result.structured_content["accountsSimulated"] == ACCOUNTS
    # 7 accounts × 2 periods: January (DUE) 1,000 tokens × 0.002 = 2.00 each, February (open) no usage: 0.00;
    # 7 × 2.00 = 14.00. The inline plan: 1,000 × 0.001 = 1.00 each, 7 × 1.00 = 7.00
    assert [(t["candidate"], t["cycles"], t["actual"], t["amount"]) for t in result.structured_content["totals"]] == [
        (0, 14, "14.00", "14.00"), (1, 14, "14.00", "7.00")]
    # 7 accounts in steps of 3: 0 before the first, then 3, 6 and 7, each of 7
    assert [(progress, total) for progress, total, _ in notes.seen] == [(0, 7), (3, 7), (6, 7), (7, 7)]
    assert [message for _, _, message in notes.seen] == [
        "pricing 7 account(s) under 2 candidate(s)", "priced 3 of 7 account(s)", "priced 6 of 7 account(s)",
        "priced 7 of 7 account(s)"]

    # a client that asks for no progress gets none, and the same result as when all accounts are priced in
    # one step (the default step holds all 7)
    monkeypatch.undo()
    quiet = await call(wire_client, "simulate_price_plan", candidates=[plan, inline], lastCycles=2)
    assert quiet == result.structured_content


async def test_a_batch_reports_its_phases(wire_client) -> None:
    await call(wire_client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    await tokens_meter(wire_client)
    notes = Notes()
    events = [{"id": f"e{i}", "schemaName": "llm", "timestamp": "2026-01-05T00:00:00Z", "accountId": "acc",
               "attributes": {"tokens": "1"}} for i in range(5)]
    events.append({"id": "bad", "schemaName": "llm", "timestamp": "yesterday", "accountId": "acc"})
    result = await wire_client.call_tool("ingest_batch_events", {"events": events}, progress_callback=notes)
    assert not result.is_error, result.content
    assert notes.seen == [(1, 3, "5 of 6 event(s) valid; checking accounts, ids and meters"),
                          (2, 3, "storing 5 event(s)"), (3, 3, "stored 5 event(s)")]


async def test_a_cancelled_batch_stores_nothing_and_leaves_no_transaction_behind(
        wire_client, db, database_url) -> None:
    await call(wire_client, "create_customer", id="c", name="C",
               account={"id": "acc", "name": "A", **(await on_plan(wire_client))})
    before = await row_counts(db)
    # A schema nobody sent before: the batch registers it (a row in event_schemas, and the schema's lock)
    # before it waits for the account's billing watermark, which another transaction holds.
    events = [{"id": f"e{i}", "schemaName": "new_schema", "timestamp": "2026-01-05T00:00:00Z", "accountId": "acc",
               "attributes": {"tokens": "1"}} for i in range(10)]
    notes = Notes()
    async with lock_held(database_url, HOLD_WATERMARK) as holder_pid:
        async with anyio.create_task_group() as calls:
            calls.start_soon(lambda: wire_client.call_tool("ingest_batch_events", {"events": events},
                                                           progress_callback=notes))
            await notes.first.wait()
            await wait_until_blocked_by(database_url, holder_pid)
            calls.cancel_scope.cancel()  # the client sends notifications/cancelled
        assert notes.seen[0][:2] == (1, 3)

        # the server stopped the statement and rolled back: nothing waits for the holder any more, no
        # connection is left inside a transaction
        assert await settled(database_url, holder_pid) == []
        # the cancelled batch's schema lock is gone with it: a meter of that schema can be created now
        with anyio.fail_after(10):
            await call(wire_client, "create_usage_meter", name="new", eventSchemaName="new_schema",
                       aggregation="SUM", computations=[{"computation": "tokens"}])

    after = await row_counts(db)
    # what the meter made (its row, its schema's, its audit record); of the batch, nothing
    assert {t: (before[t], after[t]) for t in before if before[t] != after[t]} == {
        "usage_meters": (0, 1), "event_schemas": (0, 1), "audit_log": (before["audit_log"], before["audit_log"] + 1)}
    assert after["events"] == after["event_ids"] == after["usage_rollups"] == 0
    # the server answers the next call, and the same batch is stored in full
    again = await call(wire_client, "ingest_batch_events", events=events)
    assert again["accepted"] == 10


async def test_a_cancelled_simulation_stops_its_query_and_the_server_answers_the_next_call(
        wire_client, db, clock, database_url, monkeypatch) -> None:
    plan, inline = await accounts_with_usage(wire_client, clock)
    monkeypatch.setattr(lab, "SIMULATION_STEP_ACCOUNTS", STEP)
    before = await row_counts(db)
    notes = Notes()
    # every read of invoices waits
    async with lock_held(database_url, "LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE") as holder_pid:
        async with anyio.create_task_group() as calls:
            calls.start_soon(lambda: wire_client.call_tool(
                "simulate_price_plan", {"candidates": [plan, inline], "lastCycles": 1},
                progress_callback=notes))
            await wait_until_blocked_by(database_url, holder_pid)
            calls.cancel_scope.cancel()
        assert await settled(database_url, holder_pid) == []
        # while the lock is still held: the server answers a call that does not need it
        with anyio.fail_after(10):
            assert len((await call(wire_client, "list_accounts", pageSize=100))["data"]) == ACCOUNTS
    assert await row_counts(db) == before
    again = await call(wire_client, "simulate_price_plan", candidates=[plan], lastCycles=1)
    assert again["accountsSimulated"] == ACCOUNTS


async def test_over_stdio_progress_arrives_and_a_cancelled_batch_leaves_nothing(db, database_url) -> None:
    """The same through `togai-engine serve` as a subprocess, as a desktop client runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {
        "TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}
    params = StdioServerParameters(command=str(Path(sys.executable).parent / "togai-engine"), args=["serve"], env=env)
    now = datetime.now(UTC).isoformat()
    async with hosted(Client(params)) as client:
        await call(client, "create_customer", id="c", name="C",
                   account={"id": "acc", "name": "A", **(await on_plan(client, now))})
        await tokens_meter(client)
        notes = Notes()
        first = await client.call_tool("ingest_batch_events", {"events": [
            {"id": "s1", "schemaName": "llm", "timestamp": now, "accountId": "acc", "attributes": {"tokens": "1"}}]},
            progress_callback=notes)
        assert not first.is_error and first.structured_content["accepted"] == 1, first.content
        assert [(progress, total) for progress, total, _ in notes.seen] == [(1, 3), (2, 3), (3, 3)]

        before = await row_counts(db)
        events = [{"id": f"n{i}", "schemaName": "new_schema", "timestamp": now, "accountId": "acc",
                   "attributes": {"tokens": "1"}} for i in range(10)]
        async with lock_held(database_url, HOLD_WATERMARK) as holder_pid:
            async with anyio.create_task_group() as calls:
                calls.start_soon(lambda: client.call_tool("ingest_batch_events", {"events": events}))
                await wait_until_blocked_by(database_url, holder_pid)
                calls.cancel_scope.cancel()
            assert await settled(database_url, holder_pid) == []
            with anyio.fail_after(10):
                assert (await call(client, "get_account", accountId="acc"))["id"] == "acc"
        assert await row_counts(db) == before


async def test_a_cancelled_read_without_a_transaction_stops_its_query_too(wire_client, db, database_url) -> None:
    """Tools that only read run in autocommit (mcp_server/reads.py), without a unit of work to roll back:
    their query is stopped all the same."""
    await call(wire_client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    # EVENTS metrics count them
    async with lock_held(database_url, "LOCK TABLE events IN ACCESS EXCLUSIVE MODE") as holder_pid:
        async with anyio.create_task_group() as calls:
            calls.start_soon(lambda: wire_client.call_tool("get_metrics", {
                "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-02-01T00:00:00Z",
                "metricQueries": [{"id": "e", "name": "EVENTS", "aggregationPeriod": "MONTH"}]}))
            await wait_until_blocked_by(database_url, holder_pid)
            calls.cancel_scope.cancel()
        assert await settled(database_url, holder_pid) == []
        with anyio.fail_after(10):
            assert (await call(wire_client, "get_account", accountId="acc"))["id"] == "acc"
