"""Monthly partitions of `events`: planned without overlap, created ahead and on demand, kept by 0006."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta, timezone

from alembic import command
from hypothesis import given
from hypothesis import strategies as st

from conftest import pg_connection
from helpers import call
from togai_engine.store import migrate
from togai_engine.store.database import Database, raw_connection
from togai_engine.store.partitions import (
    Coverage,
    ensure_ahead,
    ensure_months,
    month_key,
    month_keys,
    plan_partitions,
)

NOW = month_key(datetime(2026, 1, 15, tzinfo=UTC))


async def partitions(db: Database) -> dict[str, str]:
    async with db.unit_of_work() as session:
        rows = await (await raw_connection(session)).fetch(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c "
            "ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass")
    return {r[0]: r[1] for r in rows}


def test_near_months_are_monthly_and_far_ones_yearly():
    planned = plan_partitions(Coverage(partitioned=True), [NOW, NOW + 1, 1970 * 12, 1970 * 12 + 5, 9999 * 12 + 11], NOW)
    assert planned == [
        ("events_p1970", 1970 * 12, 1971 * 12),  # one partition for the far year, not one per month
        ("events_p202601", NOW, NOW + 1),
        ("events_p202602", NOW + 1, NOW + 2),
        ("events_p9999", 9999 * 12, 10000 * 12),
    ]
    # a year that already has a monthly partition gets monthly ones (a yearly one would overlap)
    known = Coverage(partitioned=True, months={2010 * 12 + 3})
    assert plan_partitions(known, [2010 * 12 + 4], NOW) == [("events_p201005", 2010 * 12 + 4, 2010 * 12 + 5)]


# instants within a day of a month's start (UTC), written in UTC, naive or at another offset
_NEAR_MONTH_STARTS = st.builds(
    lambda year, month, minutes, zone: (datetime(year, month, 1, tzinfo=UTC) + timedelta(minutes=minutes)).astimezone(
        zone) if zone is not None else datetime(year, month, 1) + timedelta(minutes=minutes),
    st.integers(2, 9998), st.integers(1, 12), st.integers(-1440, 1440),
    st.one_of(st.just(UTC), st.none(), st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))))


@given(st.lists(_NEAR_MONTH_STARTS, max_size=20))
def test_month_keys_of_a_batch_are_each_instants_month_key(instants: list[datetime]):
    # the batch form skips the call and the conversion of UTC instants; every instant keeps its month
    assert month_keys(instants) == {month_key(i) for i in instants}


@given(st.sets(st.integers(min_value=12, max_value=9999 * 12 + 11), max_size=30),
       st.sets(st.integers(min_value=12, max_value=9999 * 12 + 11), max_size=30))
def test_planned_partitions_cover_every_month_and_never_overlap(first: set[int], then: set[int]):
    coverage = Coverage(partitioned=True)
    ranges: list[tuple[int, int]] = []
    for wave in (first, then):  # two waves: the second sees what the first created
        for name, low, high in plan_partitions(coverage, wave, NOW):
            coverage.add(name)
            ranges.append((low, high))
        assert all(coverage.covers(m) for m in wave)
    ranges.sort()
    assert all(a_high <= b_low for (_, a_high), (b_low, _) in itertools.pairwise(ranges))


async def test_ingest_creates_the_partition_of_a_new_month_and_a_far_year(client, db):
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    before = await partitions(db)
    # 2023-09 (near the clock's 2026-01: monthly) and 2011 (far: yearly) are written by no other test; a month
    # past, so never among the months ahead of the real date that server starts create. Far years lie inside the
    # instants billing computes with (2000 to 9000): a timestamp outside them is refused
    assert not {"events_p202309", "events_p2011"} & before.keys()
    result = await call(client, "ingest_batch_events", events=[
        {"id": "jan", "schemaName": "api", "timestamp": "2026-01-05T00:00:00Z", "accountId": "acc"},
        {"id": "old", "schemaName": "api", "timestamp": "2003-03-01T00:00:00Z", "accountId": "acc"},
        {"id": "far", "schemaName": "api", "timestamp": "8999-12-31T23:59:59Z", "accountId": "acc"},
        {"id": "sep", "schemaName": "api", "timestamp": "2023-09-30T23:59:59.999999Z", "accountId": "acc"},
        {"id": "twenty_eleven", "schemaName": "api", "timestamp": "2011-03-01T00:00:00Z", "accountId": "acc"},
    ])
    assert result["notBilledNoPlan"] == 5  # all stored (acc has no price plan)
    after = await partitions(db)
    assert {"events_p202601", "events_p2003", "events_p8999", "events_p202309", "events_p2011"} <= after.keys()
    assert "FROM ('2003-01-01 00:00:00+00') TO ('2004-01-01 00:00:00+00')" in after["events_p2003"]
    assert after["events_p202309"] == "FOR VALUES FROM ('2023-09-01 00:00:00+00') TO ('2023-10-01 00:00:00+00')"
    assert after["events_p2011"] == "FOR VALUES FROM ('2011-01-01 00:00:00+00') TO ('2012-01-01 00:00:00+00')"
    # exactly the missing ones were created (the other months may already exist from earlier tests)
    needed = {"events_p202601", "events_p2003", "events_p8999", "events_p202309", "events_p2011"}
    assert after.keys() - before.keys() == needed - before.keys()
    assert set(before) <= set(after)  # nothing was dropped or replaced
    assert {name: after[name] for name in before} == before  # and the existing ones keep their bounds
    async with db.unit_of_work() as session:
        placed = await (await raw_connection(session)).fetch(
            "SELECT id, tableoid::regclass::text AS part FROM events ORDER BY id")
    assert {r["id"]: r["part"] for r in placed} == {
        "far": "events_p8999", "jan": "events_p202601", "old": "events_p2003", "sep": "events_p202309",
        "twenty_eleven": "events_p2011"}


async def test_partitions_ahead_and_concurrent_creators(db):
    created = await ensure_ahead(db.engine, datetime(2031, 5, 20, tzinfo=UTC))
    # May 2031 and the 3 months ahead, monthly (no other test writes 2031)
    assert created == ["events_p203105", "events_p203106", "events_p203107", "events_p203108"]
    assert await ensure_ahead(db.engine, datetime(2031, 5, 20, tzinfo=UTC)) == []  # known: no I/O, nothing new
    # Several creators of the same months at once: one creates, the others find them (no error, no overlap).
    month = month_key(datetime(2032, 7, 1, tzinfo=UTC))
    results = await asyncio.gather(*(ensure_months(db.engine, {month, month + 1}, datetime(2032, 7, 1, tzinfo=UTC))
                                     for _ in range(4)))
    assert sorted(name for names in results for name in names) == ["events_p203207", "events_p203208"]


def test_migration_0006_keeps_events_and_rollups_and_round_trips(scratch_url):
    migrate.upgrade(scratch_url, "0005")

    async def seed() -> None:
        async with pg_connection(scratch_url) as conn:
            await conn.execute(
                "INSERT INTO events (account_id, id, schema_name, event_time, received_at, attributes, dimensions, "
                "status) SELECT 'acc', 'e' || n, 'api', timestamptz '2025-06-01' + n * interval '9 days', now(), "
                "jsonb_build_object('x', n::text), jsonb_build_object('region', 'r' || n % 3), "
                "CASE WHEN n % 4 = 0 THEN 'NOT_BILLED_CYCLE_CLOSED' ELSE 'ACCEPTED' END "
                "FROM generate_series(1, 40) AS n")
            await conn.execute(
                "INSERT INTO usage_rollups (account_id, meter_id, hour, event_count, value_sum, value_max) "
                "VALUES ('acc', 'um_1', '2025-06-10 00:00+00', 3, 7, 4)")

    async def read() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], set[str]]:
        async with pg_connection(scratch_url) as conn:
            events = [tuple(r) for r in await conn.fetch(
                "SELECT id, account_id, schema_name, event_time, received_at, attributes, dimensions, units, status "
                "FROM events ORDER BY id")]
            rollups = [tuple(r) for r in await conn.fetch(
                "SELECT account_id, meter_id, hour, event_count, value_sum, value_max FROM usage_rollups "
                "ORDER BY account_id, meter_id, hour")]
            parts = {r[0] for r in await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'events'::regclass")}
            return events, rollups, parts

    def assert_every_event_month_partitioned(events: list[tuple[object, ...]], parts: set[str]) -> None:
        # the events run from 2025-06-10 (n = 1) to 2026-05-27 (n = 40, 360 days after 2025-06-01)
        months = {(t.astimezone(UTC).year, t.astimezone(UTC).month) for t in (e[3] for e in events)}
        assert len(months) == 12
        for year, month in months:  # a monthly partition, or a yearly one for a year far from now
            assert f"events_p{year}{month:02}" in parts or f"events_p{year}" in parts, (year, month)

    asyncio.run(seed())
    before = asyncio.run(read())
    assert len(before[0]) == 40
    assert {e[8] for e in before[0]} == {"ACCEPTED", "NOT_BILLED_CYCLE_CLOSED"}
    migrate.upgrade(scratch_url)
    events, rollups, parts = asyncio.run(read())
    assert (events, rollups) == before[:2]  # every column of every event, and the rollups, unchanged
    # every month with events got its partition
    assert_every_event_month_partitioned(events, parts)
    migrate.check(scratch_url)

    async def second_stripe() -> None:
        async with pg_connection(scratch_url) as conn:
            await conn.execute(
                "INSERT INTO usage_rollups (account_id, meter_id, hour, stripe, event_count, value_sum, value_max) "
                "VALUES ('acc', 'um_1', '2025-06-10 00:00+00', 5, 2, 5, 9)")

    asyncio.run(second_stripe())
    command.downgrade(migrate.alembic_config(scratch_url), "0005")  # rows survive, stripes are merged
    events, rollups, _ = asyncio.run(read())
    assert events == before[0]
    # stripes 0 and 5 of one hour: counts and sums add up (3 + 2, 7 + 5), the max is the larger (4 vs 9)
    assert [r[3:] for r in rollups] == [(5, 12, 9)]
    merged = rollups
    migrate.upgrade(scratch_url)
    events, rollups, parts = asyncio.run(read())
    assert events == before[0]  # the round trip keeps every event as it was
    assert rollups == merged == [("acc", "um_1", before[1][0][2], 5, 12, 9)]  # the merged row, still one row
    assert_every_event_month_partitioned(events, parts)
    migrate.check(scratch_url)
