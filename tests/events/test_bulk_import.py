"""import_events: streamed bulk import with the same validation and dedupe as the tools."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from conftest import pg_connection
from helpers import call, on_plan, scalar, wait_until_blocked_by
from togai_engine.events.bulk import ImportSummary, Malformed, import_events
from togai_engine.events.ingest import RejectedEvent
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.sql import lock_schemas_sql
from togai_engine.meters.usage import meter_quantities

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def history(size: int, produced: list[int]) -> Iterator[object]:
    """`size` lines: every 10th repeats the previous id, line 7 is not JSON, line 11 has no account."""
    for n in range(size):
        produced[0] += 1
        if n == 7:
            yield Malformed("line 8: not valid JSON (Expecting value at column 1)")
            continue
        event: dict[str, Any] = {"id": f"h{n - 1 if n % 10 == 0 and n else n}", "schemaName": "api_call",
                                 "timestamp": f"2026-01-{1 + n % 28:02}T{n % 24:02}:00:00Z",
                                 "accountId": "acc_1", "attributes": {"tokens": n % 7}}
        if n == 11:
            del event["accountId"]
        yield event


async def test_a_bulk_import_streams_validates_dedupes_and_can_be_rerun(client, db, clock):
    await call(client, "create_customer", id="c", name="C",
               account={"id": "acc_1", "name": "A", **await on_plan(client)})
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="api_call", aggregation="SUM",
                       computations=[{"computation": "tokens", "order": 1}])
    rejected: list[tuple[int, RejectedEvent]] = []
    produced = [0]
    buffered: list[int] = []

    def progress(summary: ImportSummary) -> None:
        settled = summary.accepted + summary.duplicates + summary.not_billed + summary.rejected
        buffered.append(produced[0] - settled)  # lines read from the source but not yet stored

    summary = await import_events(db, history(2500, produced), clock=clock, batch_size=200, concurrency=2,
                                  on_rejected=lambda position, r: rejected.append((position, r)),
                                  on_progress=progress)
    # 2500 lines: 1 malformed, 1 without account, 249 repeat the previous id (n = 10, 20, ..., 2490);
    # accepted = 2500 - 2 - 249 = 2249
    assert summary.read == 2500
    assert (summary.rejected, summary.duplicates, summary.accepted) == (2, 249, 2249)
    assert [(position, r.code) for position, r in rejected] == [(7, "INVALID_EVENT"), (11, "MISSING_FIELD")]
    # memory stays flat: never more than (concurrency + 1) batches read ahead of what was stored
    assert max(buffered) <= 3 * 200
    async with db.unit_of_work() as session:
        first = await meter_quantities(session, start=JAN, end=FEB)
    stored = [n for n in range(2500) if n not in (7, 11) and not (n % 10 == 0 and n)]
    assert first == {("acc_1", meter["id"]): Decimal(sum(n % 7 for n in stored))}

    again = await import_events(db, history(2500, [0]), clock=clock, batch_size=1000)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 2498, 2)
    async with db.unit_of_work() as session:
        assert await meter_quantities(session, start=JAN, end=FEB) == first
        assert await verify_rollups(session) == []


async def test_an_async_source_and_an_empty_source(db, clock):
    async def nothing():
        for item in ():
            yield item

    assert await import_events(db, nothing(), clock=clock) == ImportSummary()


async def test_malformed_lines_are_reported_as_they_come_not_held_to_the_end(db, clock):
    reported: list[int] = []
    held_at: list[int] = []  # how many rejections were out when the stream reached item 2,500

    def stream():
        for n in range(3000):
            if n == 2500:
                held_at.append(len(reported))
            yield Malformed(f"line {n + 1}: not valid JSON")

    summary = await import_events(db, stream(), clock=clock, batch_size=1000,
                                  on_rejected=lambda position, _: reported.append(position))
    assert (summary.read, summary.rejected, summary.batches) == (3000, 3000, 0)
    # 3000 malformed items in batches of 1000: two full batches were reported before item 2,500 was read
    assert held_at == [2000]
    assert reported == list(range(3000))  # in stream order, each once


async def test_the_first_of_two_lines_with_one_id_wins_even_when_their_batches_overlap(client, db, database_url,
                                                                                        clock):
    """Two lines with the same accountId and id in batches in flight together: the earlier line is stored
    and the later one is the DUPLICATE, whichever batch reaches the database first."""
    await call(client, "create_customer", id="c", name="C",
               account={"id": "acc_1", "name": "A", **await on_plan(client)})
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="api_call", aggregation="SUM",
                       computations=[{"computation": "tokens", "order": 1}])

    def line(event_id: str, schema: str, tokens: int) -> dict[str, Any]:
        return {"id": event_id, "schemaName": schema, "timestamp": "2026-01-05T10:00:00Z", "accountId": "acc_1",
                "attributes": {"tokens": tokens}}

    # batch 1: x (1 token) and an event of schema "slow"; batch 2: x again (100 tokens) and y (10 tokens)
    lines = [line("x", "api_call", 1), line("s", "slow", 0), line("x", "api_call", 100), line("y", "api_call", 10)]
    async with pg_connection(database_url) as holder, holder.transaction():
        # "slow"'s schema lock, held as create_usage_meter holds it: batch 1 waits for it before claiming
        # any id, while batch 2 (api_call only) could go ahead and claim x first
        await holder.fetchval(lock_schemas_sql(exclusive=True), ["slow"])
        importing = asyncio.create_task(import_events(db, lines, clock=clock, batch_size=2, concurrency=2))
        await wait_until_blocked_by(database_url, holder.get_server_pid())  # batch 1, on "slow"'s lock
        assert not importing.done()
    summary = await importing
    assert (summary.accepted, summary.duplicates, summary.batches) == (3, 1, 2)
    async with db.unit_of_work() as session:
        # x from the first line (1) + y (10) = 11; had batch 2 claimed x first: 100 + 10 = 110
        assert await meter_quantities(session, start=JAN, end=FEB) == {("acc_1", meter["id"]): Decimal(11)}
    assert await scalar(db, "SELECT attributes->>'tokens' FROM events WHERE id = 'x'") == "1"


async def test_a_failing_source_leaves_no_batch_running(client, db, database_url, clock):
    """When reading the stream fails, the batches in flight are cancelled and finished before the error
    reaches the caller: no connection is still taken, and a connection whose BEGIN the cancellation cut
    short is never used again (store/database.py), so nothing stays open once the pool is next used."""
    await call(client, "create_customer", id="c", name="C",
               account={"id": "acc_1", "name": "A", **await on_plan(client)})

    def broken() -> Iterator[object]:
        for n in range(3):
            yield {"id": f"b{n}", "schemaName": "api_call", "timestamp": "2026-01-05T10:00:00Z", "accountId": "acc_1"}
        raise OSError("the file went away")

    with pytest.raises(OSError, match="went away"):
        await import_events(db, broken(), clock=clock, batch_size=2, concurrency=2)
    assert db.engine.pool.checkedout() == 0
    for _ in range(db.engine.pool.checkedin()):  # every pooled connection once (oldest first)
        async with db.unit_of_work() as session:
            await session.execute(text("SELECT 1"))
    async with pg_connection(database_url) as other:
        assert await other.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND state LIKE 'idle in transaction%'") == 0
