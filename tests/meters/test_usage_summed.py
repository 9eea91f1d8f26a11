"""usage_summed (series over all accounts, summed in SQL and from usage_totals) equals the per-account
quantities of usage_by_bucket added up, for any window, bucket size, account filter and aggregation."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import call, rows_by_stripe
from togai_engine.events.ingest import ingest_events
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.service import meters_by_ids
from togai_engine.meters.usage import usage_by_bucket, usage_summed

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
    for table in ("usage_rollups", "usage_totals"):
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
