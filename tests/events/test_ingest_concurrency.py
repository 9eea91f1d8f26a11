"""Concurrent ingestion through separate MCP client sessions: every event is counted exactly once."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from mcp import Client

from conftest import hosted
from helpers import call, on_plan
from mcp_server.server import build_server
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def event(number: int, account: str) -> dict[str, Any]:
    # two hours and two accounts, so concurrent batches share rollup rows
    return {"id": f"e{number}", "schemaName": "api_call", "accountId": account,
            "timestamp": f"2026-01-05T1{number % 2}:{number % 60:02}:00Z",
            "attributes": [{"name": "tokens", "value": str(number)}]}


async def clients(stack: AsyncExitStack, db, clock, count: int) -> list[Client]:
    return [await stack.enter_async_context(hosted(Client(build_server(db, clock=clock), raise_exceptions=False)))
            for _ in range(count)]


async def setup(client: Client) -> dict[str, str]:
    for account in ("acc_1", "acc_2"):
        await call(client, "create_customer", id=f"c_{account}", name="C",
                   account={"id": account, "name": "A", **await on_plan(client)})
    calls = await call(client, "create_usage_meter", name="calls", eventSchemaName="api_call", aggregation="COUNT")
    tokens = await call(client, "create_usage_meter", name="tokens", eventSchemaName="api_call", aggregation="SUM",
                        computations=[{"computation": "tokens", "order": 1}])
    return {"calls": calls["id"], "tokens": tokens["id"]}


async def test_concurrent_batches_with_overlapping_ids_count_each_event_once(db, clock):
    rng = random.Random(7)
    async with AsyncExitStack() as stack:
        sessions = await clients(stack, db, clock, 4)
        meters = await setup(sessions[0])
        for round_ in range(3):
            offset = round_ * 10_000
            batches = []
            for k in range(4):  # client k sends ids k*250 .. k*250+499: neighbours overlap by 250
                numbers = list(range(offset + k * 250, offset + k * 250 + 500))
                rng.shuffle(numbers)  # each batch in its own order: the engine must still not deadlock
                batches.append([event(n, "acc_1" if n % 3 else "acc_2") for n in numbers])
            results = await asyncio.gather(*(call(s, "ingest_batch_events", events=b)
                                             for s, b in zip(sessions, batches, strict=True)))
            # ids offset .. offset+1249 are distinct: 1250 stored; 4 * 500 - 1250 = 750 duplicates
            assert sum(r["accepted"] for r in results) == 1250
            assert sum(r["duplicates"] for r in results) == 750
            assert all(r["rejected"] == 0 for r in results)
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []
        got = await meter_quantities(session, start=JAN, end=FEB)
    numbers = [r * 10_000 + n for r in range(3) for n in range(1250)]
    for account, wanted in (("acc_1", lambda n: n % 3 != 0), ("acc_2", lambda n: n % 3 == 0)):
        mine = [n for n in numbers if wanted(n)]
        assert got[(account, meters["calls"])] == Decimal(len(mine))
        assert got[(account, meters["tokens"])] == Decimal(sum(mine))
    # 3 rounds x 1250 = 3750 calls in all; tokens = sum over rounds of (0+...+1249) + 10_000 * 1250 * (0+1+2)
    assert got[("acc_1", meters["calls"])] + got[("acc_2", meters["calls"])] == Decimal(3750)
    assert got[("acc_1", meters["tokens"])] + got[("acc_2", meters["tokens"])] == Decimal(3 * 780_625 + 37_500_000)


async def test_a_meter_created_while_batches_are_ingested_counts_every_event(db, clock):
    async with AsyncExitStack() as stack:
        sessions = await clients(stack, db, clock, 5)
        await setup(sessions[0])
        batches = [[event(k * 1000 + n, "acc_1") for n in range(300)] for k in range(4)]
        created, *results = await asyncio.gather(
            call(sessions[4], "create_usage_meter", name="late", eventSchemaName="api_call", aggregation="SUM",
                 computations=[{"computation": {"*": [{"var": "attributes.tokens"}, 2]}, "order": 1}]),
            *(call(s, "ingest_batch_events", events=b) for s, b in zip(sessions, batches, strict=False)),
        )
        assert sum(r["accepted"] for r in results) == 1200
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []
        got = await meter_quantities(session, start=JAN, end=FEB, meter_ids=[created["id"]])
    # every event feeds the new meter exactly once, whether it was stored before (backfill) or after it
    expected = 2 * sum(k * 1000 + n for k in range(4) for n in range(300))
    assert got == {("acc_1", created["id"]): Decimal(expected)}


async def test_the_same_single_event_sent_concurrently_is_stored_once(db, clock):
    async with AsyncExitStack() as stack:
        sessions = await clients(stack, db, clock, 6)
        meters = await setup(sessions[0])
        results = await asyncio.gather(*(call(s, "ingest_event", event=event(42, "acc_1")) for s in sessions))
    assert sorted(r["status"] for r in results) == ["ACCEPTED"] + ["DUPLICATE"] * 5
    async with db.unit_of_work() as session:
        got = await meter_quantities(session, start=JAN, end=FEB)
    assert got == {("acc_1", meters["calls"]): Decimal(1), ("acc_1", meters["tokens"]): Decimal(42)}
