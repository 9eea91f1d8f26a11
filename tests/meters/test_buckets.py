"""bucket_sql's date_bin buckets are exactly date_trunc's UTC hours, days and ISO weeks: rollups keyed by
either (ingest, backfill, older rows) and reads bucketing by either always agree."""

from __future__ import annotations

from togai_engine.meters.sql import bucket_sql
from togai_engine.store.database import raw_connection


async def test_date_bin_buckets_equal_date_trunc_in_utc(db):
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        for period, unit in (("HOUR", "hour"), ("DAY", "day"), ("WEEK", "week"), ("MONTH", "month")):
            # 200,000 instants from 1960 to 2060 (steps of ~4.4 h that fall at every phase of an hour, day
            # and week), each also at its UTC hour's start and a microsecond before it
            mismatches, checked = await conn.fetchrow(
                f"SELECT count(*) FILTER (WHERE {bucket_sql('t', period)} <> date_trunc('{unit}', t, 'UTC')), "
                "count(*) FROM (SELECT timestamptz '1960-01-01 00:00:00+00' + n * interval '15778.476123 seconds' "
                "AS s FROM generate_series(0, 199999) AS n) AS steps, "
                "LATERAL (VALUES (s), (date_trunc('hour', s, 'UTC')), "
                "(date_trunc('hour', s, 'UTC') - interval '1 microsecond')) AS instants(t)")
            assert (mismatches, checked) == (0, 600_000), period
