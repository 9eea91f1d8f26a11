"""usage_summed (series over all accounts, summed in SQL and from usage_totals) equals the per-account
quantities of usage_by_bucket added up, for any window, bucket size, account filter and aggregation."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import call, rows_by_stripe
from togai_engine.events.ingest import ingest_events
from togai_engine.meters.catalog import meters_by_ids
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import usage_by_bucket, usage_summed
from togai_engine.store.database import raw_connection

BASE = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNTS = ("a1", "a2", "a3")


async def _setup(client, db, clock) -> list[str]:
    ids = []
    for name, aggregation, computations in (
        ("count", "COUNT", []), ("sum", "SUM", [{"computation": "tokens"}]), ("max", "MAX", [{"computation": "tokens"}]),
        ("latest", "LATEST", [{"computation": "tokens"}]),
        ("users", "UNIQUE_COUNT", [{"computation": {"var": "dimensions.user"}}]),
    ):
        ids.append((await call(client, "create_usage_meter", name=name, eventSchemaName="api",
                               aggregation=aggregation, computations=computations))["id"])
    for account in ACCOUNTS:
        await call(client, "create_customer", id=f"c_{account}", name="C", account={"id": account, "name": "A"})
    # the schema learns its attribute and dimension first (registering them locks the schema row)
    await call(client, "ingest_event", event={"id": "p", "schemaName": "api", "accountId": "a1",
                                              "timestamp": BASE.isoformat(), "attributes": {"tokens": "3"},
                                              "dimensions": {"user": "u0"}})
    # two batches open at once, so totals and rollups get rows in two stripes per hour; values differ
    # per account
    first_open, second_done = asyncio.Event(), asyncio.Event()

    async def batch(number: int) -> None:
        if number == 1:
            await first_open.wait()
        async with db.unit_of_work() as session:
            await ingest_events(session, [
                {"id": f"e{number}_{n}", "schemaName": "api", "accountId": ACCOUNTS[n % 3],
                 "timestamp": (BASE + timedelta(minutes=53 * n + 7 * number)).isoformat(),
                 "attributes": {"tokens": str((n * 7 + number) % 11)}, "dimensions": {"user": f"u{n % 5}"}}
                for n in range(400)], clock.now())
            if number == 0:
                first_open.set()
                await second_done.wait()
        if number == 1:
            second_done.set()

    await asyncio.wait_for(asyncio.gather(batch(0), batch(1)), timeout=30)
    for table in ("usage_rollups", "usage_totals", "usage_rollups_daily"):
        assert set(await rows_by_stripe(db, table)) == {0, 1}, table
    return ids


async def test_summed_series_equal_per_account_quantities_added_up(client, db, clock):
    meter_ids = await _setup(client, db, clock)
    cases: list[tuple[datetime, timedelta, str | None, tuple[str, ...] | None]] = []

    @settings(max_examples=40, deadline=None)
    @given(st.integers(min_value=0, max_value=60 * 24 * 16), st.integers(min_value=1, max_value=60 * 24 * 10),
           st.sampled_from([None, "HOUR", "DAY", "WEEK", "MONTH"]),
           st.sampled_from([None, ("a1",), ("a2", "a3"), ()]))
    def draw(offset: int, length: int, period: str | None, accounts: tuple[str, ...] | None) -> None:
        cases.append((BASE + timedelta(minutes=offset), timedelta(minutes=length), period, accounts))

    draw()
    # aligned windows too: whole hours without edges, where MAX and LATEST are summed in SQL (with and
    # without an account filter)
    aligned = [(BASE + timedelta(days=2), timedelta(days=9), "DAY", None), (BASE, timedelta(days=20), None, None)]
    aligned += [(BASE + timedelta(days=1), timedelta(days=7), period, accounts)
                for period in ("HOUR", "WEEK", "MONTH", None) for accounts in (("a1",), ("a2", "a3"))]
    # whole hours around whole days (Jan 2 05:00 .. Jan 9 19:00): MAX and LATEST read the hours of Jan 2
    # and Jan 9 from the hourly rollups and Jan 3 .. Jan 8 from the daily ones, merged per account
    # before the buckets (a WEEK or MONTH bucket holds both kinds)
    aligned += [(BASE + timedelta(days=1, hours=5), timedelta(days=7, hours=14), period, accounts)
                for period in ("DAY", "WEEK", "MONTH", None) for accounts in (None, ("a1",), ("a2", "a3"))]
    cases += aligned
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []  # totals included
        meters = await meters_by_ids(session, meter_ids)
        for start, length, period, accounts in cases:
            per_account = await usage_by_bucket(session, meters, start=start, end=start + length, period=period,
                                                account_ids=accounts)
            expected: dict[tuple[str, datetime | None], Decimal] = defaultdict(Decimal)
            for (_, meter_id, bucket), value in per_account.items():
                expected[(meter_id, bucket)] += value
            summed = await usage_summed(session, meters, start=start, end=start + length, period=period,
                                        account_ids=accounts)
            assert summed == dict(expected), (start, length, period, accounts)
            if (start, length, period, accounts) in aligned:
                assert summed, (start, length, period, accounts)  # the aligned windows all hold usage


async def test_whole_days_of_max_and_latest_come_from_the_daily_rollups(client, db, clock):
    meter_ids = await _setup(client, db, clock)
    start, end = BASE + timedelta(hours=5), BASE + timedelta(days=9, hours=19)
    async with db.unit_of_work() as session:
        meters = [m for m in await meters_by_ids(session, meter_ids) if m.aggregation in ("MAX", "LATEST")]
        before = await usage_summed(session, meters, start=start, end=end, period="WEEK")
        per_account = await usage_by_bucket(session, meters, start=start, end=end, period="WEEK")
        assert sum(before.values()) == sum(per_account.values()) > 0
        # a2's Jan 4 in the daily rows only: +1000 to its maximum and latest value of that day, both
        # stripes. Jan 4 is the last day (a Sunday) of the week of Dec 29, so that week's points grow by
        # exactly 1000: LATEST, as a2's newest value of the week is on Jan 4; MAX, as a2's maximum is 10
        # on every day of the week (values cycle through 0..10) and becomes Jan 4's 10 + 1000
        await (await raw_connection(session)).execute(
            "UPDATE usage_rollups_daily SET value_max = value_max + 1000, latest_value = latest_value + 1000 "
            "WHERE account_id = 'a2' AND day = '2026-01-04 00:00+00'")
        after = await usage_summed(session, meters, start=start, end=end, period="WEEK")
        week = datetime(2025, 12, 29, tzinfo=UTC)
        assert {key: after[key] - before[key] for key in after if after[key] != before[key]} == {
            (m.id, week): Decimal(1000) for m in meters}
        # the hourly rows alone still give the old answer: a window of hours only (Jan 4 01:00 .. 23:00)
        hours = await usage_summed(session, meters, start=BASE + timedelta(days=3, hours=1),
                                   end=BASE + timedelta(days=3, hours=23), period="WEEK")
        assert hours == await _added_up(session, meters, BASE + timedelta(days=3, hours=1),
                                        BASE + timedelta(days=3, hours=23))
        await session.rollback()


async def _added_up(session, meters, start: datetime, end: datetime,
                    period: str | None = "WEEK") -> dict[tuple[str, datetime | None], Decimal]:
    expected: dict[tuple[str, datetime | None], Decimal] = defaultdict(Decimal)
    for (_, meter_id, bucket), value in (await usage_by_bucket(session, meters, start=start, end=end,
                                                               period=period)).items():
        expected[(meter_id, bucket)] += value
    return dict(expected)


async def test_windows_in_other_offsets_and_at_the_end_of_time(client, db, clock):
    meter_ids = await _setup(client, db, clock)
    india = timezone(timedelta(hours=5, minutes=30))
    async with db.unit_of_work() as session:
        meters = await meters_by_ids(session, meter_ids)
        # Jan 2 16:00+05:30 .. Jan 9 16:00+05:30 is Jan 2 10:30Z .. Jan 9 10:30Z: whole UTC hours start at
        # 11:00Z, not at 16:00+05:30 (10:30Z); the same instants in UTC give the same quantities
        start, end = datetime(2026, 1, 2, 16, tzinfo=india), datetime(2026, 1, 9, 16, tzinfo=india)
        utc_start, utc_end = BASE + timedelta(days=1, hours=10, minutes=30), BASE + timedelta(days=8, hours=10, minutes=30)
        assert (start, end) == (utc_start, utc_end)
        for period in (None, "DAY", "WEEK"):
            in_utc = await usage_by_bucket(session, meters, start=utc_start, end=utc_end, period=period)
            assert in_utc  # the window holds usage
            assert await usage_by_bucket(session, meters, start=start, end=end, period=period) == in_utc
            assert await usage_summed(session, meters, start=start, end=end, period=period) == await _added_up(
                session, meters, utc_start, utc_end, period)
        # a window inside the last day of year 9999: no whole day, no overflow, no usage
        last = datetime(9999, 12, 31, 5, tzinfo=UTC)
        assert await usage_summed(session, meters, start=last, end=last + timedelta(hours=5), period="DAY") == {}
