"""void_events over several accounts and hours: the rollups (hourly rows of every stripe, daily rows,
all-account totals) equal a recompute from raw events afterwards, and the work is set-based (the
number of statements does not grow with the batch).

Every quantity is worked out by hand in the comments next to it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy import event

from helpers import at, call, call_error, ingest_in_two_stripes, rows_by_stripe
from togai_engine.events.voids import void_events
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import raw_connection

JAN, FEB = at(2026, 1, 1), at(2026, 2, 1)


def llm(event_id: str, account_id: str, when: str, tokens: int) -> dict[str, Any]:
    return {"id": event_id, "schemaName": "llm", "timestamp": when, "accountId": account_id,
            "attributes": {"tokens": str(tokens)}}


async def quantities(db: Any, account_id: str, meters: dict[str, str]) -> dict[str, Decimal]:
    async with db.unit_of_work() as session:
        found = await meter_quantities(session, start=JAN, end=FEB)
    return {name: found[(account_id, meter_id)] for name, meter_id in meters.items()}


async def test_a_batch_over_accounts_and_hours_leaves_the_rollups_equal_to_a_raw_recompute(client, db, clock):
    # account acc, meters sum / max / latest / count of llm tokens; acc's events: x (4 Jan 00:00, 1), and on
    # 5 January at 10:00 a0 10:00:00 = 5 and a1 10:59:00 = 7 in stripe 0, b0 10:30:00 = 11 and
    # b1 10:59:00 = 2 in stripe 1
    meters = await ingest_in_two_stripes(client, db, clock)
    for n in (2, 3):
        await call(client, "create_customer", id=f"c{n}", name="C", account={"id": f"acc{n}", "name": "A"})
    await call(client, "ingest_batch_events", events=[
        llm("c0", "acc", "2026-01-05T11:15:00Z", 4), llm("c1", "acc", "2026-01-06T23:30:00Z", 9),
        llm("d0", "acc2", "2026-01-05T10:20:00Z", 3), llm("d1", "acc2", "2026-01-05T10:40:00Z", 8),
        llm("d2", "acc2", "2026-01-06T23:10:00Z", 6), llm("d3", "acc2", "2026-01-07T00:05:00Z", 1),
        llm("f0", "acc3", "2026-01-05T10:50:00Z", 10), llm("f1", "acc3", "2026-01-05T11:05:00Z", 2)])
    await call(client, "void_event", accountId="acc", eventId="x", reason="priming")
    assert await rows_by_stripe(db) == {0: 32, 1: 4}  # 4 meters × 8 (account, hour) keys; b0 and b1's hour

    voided = await call(client, "void_events", reason="wrong tokens", events=[
        {"accountId": "acc", "eventId": "b0"},  # the max of acc's 10:00 hour, in stripe 1
        {"accountId": "acc", "eventId": "c0"},  # all of acc's 11:00 hour
        {"accountId": "acc2", "eventId": "d1"},  # the max and the latest of acc2's 10:00 hour
        {"accountId": "acc2", "eventId": "d2"},  # all of acc2's 6 January
        {"accountId": "acc3", "eventId": "f0"},  # all of acc3's 10:00 hour
        {"accountId": "acc2", "eventId": "d1"},  # again: voided once, listed twice
        {"accountId": "acc", "eventId": "x"},  # voided before: returned as it was
    ])
    assert [(e["id"], e["status"], e["voidReason"]) for e in voided["data"]] == [
        (event_id, "VOIDED", "wrong tokens") for event_id in ("b0", "c0", "d1", "d2", "f0", "d1")] + [
        ("x", "VOIDED", "priming")]

    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []  # hourly, daily and all-account totals: `togai-engine verify`
    # acc keeps a0 5, a1 7, b1 2, c1 9: sum 23, max 9, latest c1 (6 Jan 23:30) 9, count 4
    assert await quantities(db, "acc", meters) == {
        "sum": Decimal(23), "max": Decimal(9), "latest": Decimal(9), "count": Decimal(4)}
    # acc2 keeps d0 3 and d3 1: sum 4, max 3, latest d3 (7 Jan 00:05) 1, count 2
    assert await quantities(db, "acc2", meters) == {
        "sum": Decimal(4), "max": Decimal(3), "latest": Decimal(1), "count": Decimal(2)}
    # acc3 keeps f1 2
    assert await quantities(db, "acc3", meters) == {
        "sum": Decimal(2), "max": Decimal(2), "latest": Decimal(2), "count": Decimal(1)}
    # the stripes of every recomputed hour are folded into stripe 0; left are 4 meters × 5 keys: acc 10:00
    # and 6 Jan 23:00, acc2 10:00 and 7 Jan 00:00, acc3 11:00
    assert await rows_by_stripe(db) == {0: 20}
    async with db.unit_of_work() as session:
        totals = await (await raw_connection(session)).fetch(
            "SELECT hour, sum(value_sum) FROM usage_totals WHERE meter_id = $1 GROUP BY 1 ORDER BY 1", meters["sum"])
    # 5 Jan 10:00: acc 5 + 7 + 2 = 14, acc2 3, acc3 none = 17; 11:00: acc3's f1 2; 6 Jan 23:00: acc's c1 9;
    # 7 Jan 00:00: acc2's d3 1 (4 January's hour is gone with x)
    assert [(row[0], row[1]) for row in totals] == [
        (at(2026, 1, 5, 10), Decimal(17)), (at(2026, 1, 5, 11), Decimal(2)), (at(2026, 1, 6, 23), Decimal(9)),
        (at(2026, 1, 7), Decimal(1))]


async def test_the_statements_of_a_batch_do_not_grow_with_it(client, db, clock):
    await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="MAX",
               computations=[{"computation": "tokens"}])
    for n in (1, 2):
        await call(client, "create_customer", id=f"c{n}", name="C", account={"id": f"acc{n}", "name": "A"})
    # 12 events per account, each in an hour of its own on 5 January
    await call(client, "ingest_batch_events", events=[
        llm(f"e{hour}", f"acc{n}", f"2026-01-05T{hour:02}:30:00Z", hour) for n in (1, 2) for hour in range(12)])

    sent: list[str] = []

    def record_orm(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    def record_raw(query: Any) -> None:
        sent.append(query.query)

    async with db.unit_of_work() as session:

        async def statements_to_void(event_ids: list[str]) -> int:
            sent.clear()
            await void_events(session, [{"accountId": f"acc{n}", "eventId": e} for n in (1, 2) for e in event_ids],
                              "test", clock.now())
            await asyncio.sleep(0)  # asyncpg calls its query loggers soon after each query, not during it
            return len(sent)

        raw = await raw_connection(session)
        event.listen(db.engine.sync_engine, "before_cursor_execute", record_orm)
        raw.add_query_logger(record_raw)  # the statements sent on the asyncpg connection itself
        try:
            # one connection throughout: the first call also learns the types asyncpg needs (statements of
            # its own, once per connection)
            await statements_to_void(["e0"])
            one_hour_each = await statements_to_void(["e1"])  # 2 events, 2 (account, hour) keys
            ten_hours_each = await statements_to_void([f"e{hour}" for hour in range(2, 12)])  # 20 events, 20 keys
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", record_orm)
            raw.remove_query_logger(record_raw)
    assert ten_hours_each == one_hour_each, sent
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []


async def test_the_first_bad_item_of_a_batch_is_the_one_named(client, db, clock):
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    await call(client, "ingest_event", event=llm("e1", "acc", "2026-01-05T10:00:00Z", 1))
    # checked in order: an unknown account before a malformed item after it, and the other way round
    error = await call_error(client, "void_events", reason="x", events=[
        {"accountId": "acc", "eventId": "e1"}, {"accountId": "ghost", "eventId": "e1"}, {"accountId": "acc"}])
    assert "events[1].accountId: account 'ghost' does not exist; list_accounts shows the ids" in error
    error = await call_error(client, "void_events", reason="x", events=[
        {"accountId": "acc", "eventId": "e1"}, {"accountId": "acc"}, {"accountId": "ghost", "eventId": "e1"}])
    assert "events[1]: must be {accountId, eventId}" in error
    error = await call_error(client, "void_events", reason="x", events=[
        {"accountId": "acc", "eventId": "nope"}, {"accountId": "acc", "eventId": ""}])
    assert "events[0].eventId: account 'acc' has no event 'nope'" in error
