"""usage_summed (series over all accounts, summed in SQL and from usage_totals) equals the per-account
quantities of usage_by_bucket added up, for any window, bucket size, account filter and aggregation."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import call
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.service import meters_by_ids
from togai_engine.meters.usage import usage_by_bucket, usage_summed

BASE = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNTS = ("a1", "a2", "a3")


async def _setup(client) -> list[str]:
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
    # two batches, so totals and rollups get several rows per hour; values differ per account
    for batch in range(2):
        await call(client, "ingest_batch_events", events=[
            {"id": f"e{batch}_{n}", "schemaName": "api", "accountId": ACCOUNTS[n % 3],
             "timestamp": (BASE + timedelta(minutes=53 * n + 7 * batch)).isoformat(),
             "attributes": {"tokens": str((n * 7 + batch) % 11)}, "dimensions": {"user": f"u{n % 5}"}}
            for n in range(400)])
    return ids


async def test_summed_series_equal_per_account_quantities_added_up(client, db):
    meter_ids = await _setup(client)
    cases: list[tuple[datetime, timedelta, str | None, tuple[str, ...] | None]] = []

    @settings(max_examples=40, deadline=None)
    @given(st.integers(min_value=0, max_value=60 * 24 * 16), st.integers(min_value=1, max_value=60 * 24 * 10),
           st.sampled_from([None, "HOUR", "DAY", "WEEK", "MONTH"]),
           st.sampled_from([None, ("a1",), ("a2", "a3"), ()]))
    def draw(offset: int, length: int, period: str | None, accounts: tuple[str, ...] | None) -> None:
        cases.append((BASE + timedelta(minutes=offset), timedelta(minutes=length), period, accounts))

    draw()
    # aligned windows too: whole days (the totals path without edges)
    cases += [(BASE + timedelta(days=2), timedelta(days=9), "DAY", None), (BASE, timedelta(days=20), None, None)]
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []  # totals included
        meters = await meters_by_ids(session, meter_ids)
        for start, length, period, accounts in cases:
            if period == "HOUR" and length > timedelta(days=10):
                continue
            per_account = await usage_by_bucket(session, meters, start=start, end=start + length, period=period,
                                                account_ids=accounts)
            expected: dict[tuple[str, datetime | None], Decimal] = defaultdict(Decimal)
            for (_, meter_id, bucket), value in per_account.items():
                expected[(meter_id, bucket)] += value
            summed = await usage_summed(session, meters, start=start, end=start + length, period=period,
                                        account_ids=accounts)
            assert summed == dict(expected), (start, length, period, accounts)
