"""Compaction folds past hours' rollup stripes into stripe 0 without changing any quantity, and
never touches a stripe an ingest transaction holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from helpers import call, events_of_hour, ingest_in_two_stripes, rows_by_stripe, tokens_meter
from togai_engine.events.ingest import ingest_events
from togai_engine.meters.compaction import compact_rollups
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.sql import STRIPE_LOCK_CLASS
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import raw_connection

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
LATER = datetime(2026, 1, 6, tzinfo=UTC)  # "now" for compaction: Jan 5 is well in the past


async def test_folding_stripes_keeps_every_quantity(client, db, clock):
    meters = await ingest_in_two_stripes(client, db, clock)
    # 4 meters x (Jan 4 00:00, the priming event) in stripe 0, and x Jan 5 10:00 in stripes 0 and 1
    assert await rows_by_stripe(db) == {0: 8, 1: 4}
    assert await rows_by_stripe(db, "usage_totals") == {0: 8, 1: 4}

    # daily rollups (max and latest only): x Jan 4 in stripe 0, x Jan 5 in stripes 0 and 1
    assert await rows_by_stripe(db, "usage_rollups_daily") == {0: 4, 1: 2}

    summary = await compact_rollups(db, LATER)
    assert summary.rows_folded == 4 and summary.stripes_skipped == []
    assert await rows_by_stripe(db) == {0: 8}
    assert await rows_by_stripe(db, "usage_totals") == {0: 8}
    # at Jan 6 00:00 the hour Jan 5 23:00 is still hot, so Jan 5 keeps its daily stripes for now
    assert summary.daily_rows_folded == 0
    assert await rows_by_stripe(db, "usage_rollups_daily") == {0: 4, 1: 2}
    assert (await compact_rollups(db, datetime(2026, 1, 6, 1, tzinfo=UTC))).daily_rows_folded == 2
    assert await rows_by_stripe(db, "usage_rollups_daily") == {0: 4}
    async with db.unit_of_work() as session:
        quantities = await meter_quantities(session, start=JAN, end=FEB)
        assert await verify_rollups(session) == []
    # with the priming event (1 on Jan 4): sum 1 + 5 + 7 + 11 + 2 = 26; max 11; count 5; latest: at
    # Jan 5 10:59:00 "a1" (7) and "b1" (2) tie on time, the id last in byte order wins: "b1", so 2
    assert {name: quantities[("acc", meter_id)] for name, meter_id in meters.items()} == {
        "sum": Decimal(26), "max": Decimal(11), "latest": Decimal(2), "count": Decimal(5)}
    assert (await compact_rollups(db, LATER)).rows_folded == 0  # nothing left to fold


async def test_the_current_hours_keep_their_stripes(client, db, clock):
    await ingest_in_two_stripes(client, db, clock)
    summary = await compact_rollups(db, datetime(2026, 1, 5, 11, 30, tzinfo=UTC))  # 10:00 is the previous hour
    assert summary.rows_folded == 0
    # the same instant given in +05:30: hours are UTC ones (flooring 17:00+05:30 would fold 10:00)
    india = timezone(timedelta(hours=5, minutes=30))
    assert (await compact_rollups(db, datetime(2026, 1, 5, 17, 0, tzinfo=india))).rows_folded == 0
    assert await rows_by_stripe(db) == {0: 8, 1: 4}
    # from 12:00 on, 10:00 is before the previous hour: folded
    assert (await compact_rollups(db, datetime(2026, 1, 5, 12, 0, tzinfo=UTC))).rows_folded == 4
    assert await rows_by_stripe(db) == {0: 8}


async def test_a_stripe_held_by_an_ingest_transaction_is_skipped(client, db, clock):
    await ingest_in_two_stripes(client, db, clock)
    async with db.unit_of_work() as session:  # an ingest transaction holding stripe 1, as ingestion does
        conn = await raw_connection(session)
        assert await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, 1)", STRIPE_LOCK_CLASS)
        summary = await compact_rollups(db, LATER)
        assert summary.stripes_skipped == [1] and summary.rows_folded == 0
    assert await rows_by_stripe(db) == {0: 8, 1: 4}
    assert (await compact_rollups(db, LATER)).rows_folded == 4  # next run, once it is free
    assert await rows_by_stripe(db) == {0: 8}


async def test_ingestion_takes_the_lowest_free_stripe(client, db, clock):
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    await tokens_meter(client)
    for n in range(3):  # batches one after another: all in stripe 0, one row per key
        async with db.unit_of_work() as session:
            await ingest_events(session, events_of_hour(f"s{n}_", [("00:00", "1")]), clock.now())
    assert await rows_by_stripe(db) == {0: 1}
    for held, expected in (([0], {0: 1, 1: 1}), ([0, 1], {0: 1, 1: 1, 2: 1})):
        async with db.unit_of_work() as holder:  # transactions holding the lowest stripes, as ingestion does
            conn = await raw_connection(holder)
            for stripe in held:
                assert await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", STRIPE_LOCK_CLASS, stripe)
            async with db.unit_of_work() as session:
                await ingest_events(session, events_of_hour(f"h{len(held)}_", [("00:00", "1")]), clock.now())
        assert await rows_by_stripe(db) == expected  # the next free stripe, not a held one
