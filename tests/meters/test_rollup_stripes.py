"""Rollup stripes: concurrent ingest transactions of the same (account, meter, hour) do not wait for
each other, and readers add the stripes up exactly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from helpers import call
from togai_engine.events.ingest import ingest_events
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import raw_connection

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def events(prefix: str, values: list[tuple[str, str]]) -> list[dict[str, object]]:
    """Events of acc in one hour: (minute:second, tokens)."""
    return [{"id": f"{prefix}{n}", "schemaName": "llm", "timestamp": f"2026-01-05T10:{at}Z", "accountId": "acc",
             "attributes": {"tokens": tokens}} for n, (at, tokens) in enumerate(values)]


async def test_two_open_transactions_on_the_same_rollup_rows_do_not_block_and_add_up(client, db, clock):
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    meters = {}
    for name, aggregation in (("sum", "SUM"), ("max", "MAX"), ("latest", "LATEST"), ("count", "COUNT")):
        created = await call(client, "create_usage_meter", name=f"tokens {name}", eventSchemaName="llm",
                             aggregation=aggregation,
                             computations=[] if aggregation == "COUNT" else [{"computation": "tokens"}])
        meters[name] = created["id"]
    # the schema learns its attribute first (registering it locks the schema row until commit)
    await call(client, "ingest_event", event={"id": "x", "schemaName": "llm", "timestamp": "2026-01-04T00:00:00Z",
                                              "accountId": "acc", "attributes": {"tokens": "1"}})
    first_open, second_done = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with db.unit_of_work() as session:
            await ingest_events(session, events("a", [("00:00", "5"), ("59:00", "7")]), clock.now())
            first_open.set()
            await second_done.wait()  # still uncommitted while the second one writes the same rows

    async def second() -> None:
        await first_open.wait()
        async with db.unit_of_work() as session:
            await ingest_events(session, events("b", [("30:00", "11"), ("59:00", "2")]), clock.now())
        second_done.set()

    # Without stripes the second transaction would wait for the first one's row locks: a deadlock here.
    await asyncio.wait_for(asyncio.gather(first(), second()), timeout=20)

    async with db.unit_of_work() as session:
        stripes = await (await raw_connection(session)).fetchval(
            "SELECT count(DISTINCT stripe) FROM usage_rollups WHERE meter_id = $1 AND hour = '2026-01-05 10:00+00'",
            meters["sum"])
        quantities = await meter_quantities(session, start=JAN, end=FEB)
        assert await verify_rollups(session) == []
    assert stripes == 2
    # with the priming event (1 on Jan 4): sum 1 + 5 + 7 + 11 + 2 = 26; max 11; count 5; latest: 10:59:00
    # has "a1" (7) and "b1" (2): the id that sorts last in byte order wins, "b1" > "a1", so 2.
    assert {name: quantities[("acc", meter_id)] for name, meter_id in meters.items()} == {
        "sum": Decimal(26), "max": Decimal(11), "latest": Decimal(2), "count": Decimal(5)}
