"""Daily rollups of MAX and LATEST meters: kept with the hourly ones at ingest, by a backfill and a
rebuild, and held to a raw recompute by verify_rollups, which names a daily row that is wrong,
missing or where none belongs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from alembic import command

from conftest import pg_connection
from helpers import call, ingest_in_two_stripes, rows_by_stripe
from togai_engine.meters.rollups import rebuild_rollups, verify_rollups
from togai_engine.store import migrate
from togai_engine.store.database import raw_connection

JAN4, JAN5 = datetime(2026, 1, 4, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)


async def _daily(db) -> dict[tuple[str, datetime], tuple[int, Decimal, Decimal | None, Decimal | None]]:
    async with db.unit_of_work() as session:
        rows = await (await raw_connection(session)).fetch(
            "SELECT m.name, d.day, sum(d.event_count), sum(d.value_sum), max(d.value_max), "
            "(array_agg(d.latest_value ORDER BY d.latest_time DESC, d.latest_id COLLATE \"C\" DESC))[1] "
            "FROM usage_rollups_daily d JOIN usage_meters m ON m.id = d.meter_id GROUP BY 1, 2")
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


async def test_ingest_keeps_daily_rows_of_max_and_latest_meters_only(client, db, clock):
    await ingest_in_two_stripes(client, db, clock)
    # (count, sum, max, latest value) per meter and day; a MAX meter keeps no latest value.
    # Jan 4: the priming event (1). Jan 5: 5 at 10:00, 7 at 10:59 ("a1"), 11 at 10:30, 2 at 10:59 ("b1"):
    # 4 events, sum 25, max 11; the tie at 10:59 goes to the id last in byte order, "b1": latest 2
    expected = {
        ("tokens max", JAN4): (1, Decimal(1), Decimal(1), None),
        ("tokens latest", JAN4): (1, Decimal(1), Decimal(1), Decimal(1)),
        ("tokens max", JAN5): (4, Decimal(25), Decimal(11), None),
        ("tokens latest", JAN5): (4, Decimal(25), Decimal(11), Decimal(2)),
    }
    assert await _daily(db) == expected
    # a late event of Jan 4 (after Jan 5's) lands in Jan 4's daily rows: max 1 -> 9, latest -> 9
    await call(client, "ingest_event", event={"id": "late", "schemaName": "llm", "timestamp": "2026-01-04T23:59:59Z",
                                              "accountId": "acc", "attributes": {"tokens": "9"}})
    expected[("tokens max", JAN4)] = (2, Decimal(10), Decimal(9), None)
    expected[("tokens latest", JAN4)] = (2, Decimal(10), Decimal(9), Decimal(9))
    assert await _daily(db) == expected
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []
        assert await rebuild_rollups(session) > 0  # rebuilt from raw events: the same daily rows, in stripe 0
    assert await _daily(db) == expected
    assert await rows_by_stripe(db, "usage_rollups_daily") == {0: 4}


async def test_verify_names_a_wrong_a_missing_and_a_stray_daily_row(client, db, clock):
    meters = await ingest_in_two_stripes(client, db, clock)
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        await conn.execute("UPDATE usage_rollups_daily SET value_max = 12 WHERE meter_id = $1 AND day = $2 "
                           "AND stripe = 1", meters["max"], JAN5)
        await conn.execute("DELETE FROM usage_rollups_daily WHERE meter_id = $1 AND day = $2", meters["latest"], JAN4)
        await conn.execute("INSERT INTO usage_rollups_daily (account_id, meter_id, day, event_count, value_sum) "
                           "VALUES ('acc', $1, $2, 1, 1)", meters["count"], JAN4)
        found = {(d.meter_id, d.hour, d.grain): (d.stored, d.recomputed) for d in await verify_rollups(session)}
    assert found == {
        (meters["max"], JAN5, "day"): ((4, Decimal(25), Decimal(12), None, None, None),
                                       (4, Decimal(25), Decimal(11), None, None, None)),
        (meters["latest"], JAN4, "day"): (None, (1, Decimal(1), Decimal(1), datetime(2026, 1, 4, tzinfo=UTC), "x",
                                                 Decimal(1))),
        (meters["count"], JAN4, "day"): ((1, Decimal(1), None, None, None, None), None),
    }


def test_migration_0008_fills_daily_rows_from_the_hourly_ones(scratch_url):
    migrate.upgrade(scratch_url, "0007")

    async def seed() -> None:
        async with pg_connection(scratch_url) as conn:
            await conn.execute(
                "INSERT INTO usage_meters (id, name, event_schema_name, aggregation, computations) VALUES "
                "('um_max', 'peak', 'llm', 'MAX', '[]'), ('um_latest', 'seats', 'llm', 'LATEST', '[]'), "
                "('um_count', 'calls', 'llm', 'COUNT', '[]')")
            # (meter, hour, stripe, count, sum, max, latest time, latest id, latest value)
            await conn.executemany(
                "INSERT INTO usage_rollups (account_id, meter_id, hour, stripe, event_count, value_sum, value_max, "
                "latest_time, latest_id, latest_value) VALUES ('acc', $1, $2, $3, $4, $5, $6, $7, $8, $9)", [
                    ("um_max", datetime(2026, 1, 4, 0, tzinfo=UTC), 0, 2, 7, 5, None, None, None),
                    ("um_max", datetime(2026, 1, 4, 23, tzinfo=UTC), 0, 1, 3, 3, None, None, None),
                    ("um_max", datetime(2026, 1, 4, 23, tzinfo=UTC), 2, 1, 9, 9, None, None, None),
                    ("um_max", datetime(2026, 1, 5, 0, tzinfo=UTC), 0, 1, 4, 4, None, None, None),
                    ("um_latest", datetime(2026, 1, 4, 8, tzinfo=UTC), 0, 1, 6, 6,
                     datetime(2026, 1, 4, 8, 30, tzinfo=UTC), "b", 6),
                    ("um_latest", datetime(2026, 1, 4, 9, tzinfo=UTC), 0, 1, 2, 2,
                     datetime(2026, 1, 4, 9, 15, tzinfo=UTC), "a", 2),
                    ("um_latest", datetime(2026, 1, 4, 9, tzinfo=UTC), 1, 1, 8, 8,
                     datetime(2026, 1, 4, 9, 15, tzinfo=UTC), "c", 8),
                    ("um_count", datetime(2026, 1, 4, 9, tzinfo=UTC), 0, 3, 3, 1, None, None, None),
                ])

    async def daily() -> list[tuple[object, ...]]:
        async with pg_connection(scratch_url) as conn:
            return [tuple(r) for r in await conn.fetch(
                "SELECT meter_id, day, stripe, event_count, value_sum, value_max, latest_id, latest_value "
                "FROM usage_rollups_daily ORDER BY meter_id, day")]

    asyncio.run(seed())
    migrate.upgrade(scratch_url)
    # MAX, Jan 4: 3 hourly rows (two stripes of 23:00) -> count 2+1+1 = 4, sum 7+3+9 = 19, max 9; Jan 5 alone.
    # LATEST, Jan 4: 09:15 ties, "c" is last in byte order -> 8; count 3, sum 16, max 8. COUNT: no daily row.
    filled = [
        ("um_latest", JAN4, 0, 3, Decimal(16), Decimal(8), "c", Decimal(8)),
        ("um_max", JAN4, 0, 4, Decimal(19), Decimal(9), None, None),
        ("um_max", JAN5, 0, 1, Decimal(4), Decimal(4), None, None),
    ]
    assert asyncio.run(daily()) == filled
    migrate.check(scratch_url)
    command.downgrade(migrate.alembic_config(scratch_url), "0007")
    migrate.upgrade(scratch_url)
    assert asyncio.run(daily()) == filled  # the round trip fills the same rows again
