"""Hourly rollups (and all-account totals, and daily rollups of MAX and LATEST meters) beyond the
ingest path: backfill a new meter, verify and rebuild from raw events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.meters import catalog
from togai_engine.meters.models import UsageMeterRow
from togai_engine.meters.sql import (
    DAILY,
    HOURLY,
    ROLLUP_COLUMNS,
    TOTALS_COLUMNS,
    MeterSql,
    RollupTable,
    lock_schemas_sql,
    merged_rollups_sql,
    rollup_select,
    totals_select,
    valued_sql,
)
from togai_engine.store.database import raw_connection

_COMPARED = ("event_count", "value_sum", "value_max", "latest_time", "latest_id", "latest_value")
ALL_ACCOUNTS = "*"  # the account of a usage_totals difference (totals are over all accounts)


@dataclass(frozen=True)
class RollupDifference:
    """A rollup row that disagrees with a recompute from raw events (None = row missing)."""

    account_id: str
    meter_id: str
    hour: datetime
    stored: tuple[int, Decimal, Decimal | None, datetime | None, str | None, Decimal | None] | None
    recomputed: tuple[int, Decimal, Decimal | None, datetime | None, str | None, Decimal | None] | None
    grain: str = "hour"  # "day": a daily rollup row (`hour` is then the day's start)


async def backfill_meter(session: AsyncSession, meter: MeterSql) -> int:
    """Rollups of a brand-new meter from the events already stored; returns the rows written.

    The caller holds the schema's exclusive lock, so no batch of that schema is in flight.
    """
    return await (await raw_connection(session)).fetchval(_recompute_sql([meter]))


def _recompute_sql(meters: Sequence[MeterSql]) -> str:
    """Writes the meters' rollups, daily rollups and totals (stripe 0) from all stored events; returns the
    rollup rows written. For meters that have none yet (backfill, or after a rebuild deleted them)."""
    daily = [m for m in meters if m.has_daily_rollups]
    daily_cte = (f"rolled_daily AS (INSERT INTO {DAILY.name} ({DAILY.columns}) "
                 f"{rollup_select('valued', any_latest=any(m.is_latest for m in daily), table=DAILY)}), "
                 if daily else "")
    return (
        f"WITH valued AS ({valued_sql(meters, 'events')}), "
        f"rolled AS (INSERT INTO usage_rollups ({ROLLUP_COLUMNS}) "
        f"{rollup_select('valued', any_latest=any(m.is_latest for m in meters))} RETURNING 1), "
        f"{daily_cte}"
        f"totaled AS (INSERT INTO usage_totals ({TOTALS_COLUMNS}) {totals_select('valued')}) "
        "SELECT count(*) FROM rolled"
    )


async def _meters(session: AsyncSession, meter_ids: Sequence[str] | None) -> list[MeterSql]:
    stmt = select(UsageMeterRow).order_by(UsageMeterRow.id)
    if meter_ids is not None:
        stmt = stmt.where(UsageMeterRow.id.in_(list(meter_ids)))
    return catalog.compiled(await session.scalars(stmt))


async def verify_rollups(session: AsyncSession, meter_ids: Sequence[str] | None = None) -> list[RollupDifference]:
    """Recomputes every (account, meter, hour) rollup, every daily rollup and every all-account total
    from raw events and returns the differences (an empty list means they are all exact).

    One pass over the raw events: their hourly aggregates go to a temporary table, and the daily rows
    and totals are recomputed from those (every rollup column merges associatively, as compaction and
    the stripes rely on), not from the stored hourly rows.
    """
    meters = await _meters(session, meter_ids)
    if not meters:
        return []
    conn = await raw_connection(session)
    await conn.execute("DROP TABLE IF EXISTS pg_temp.recomputed_rollups")
    await conn.execute(
        f"CREATE TEMP TABLE recomputed_rollups ({ROLLUP_COLUMNS}) ON COMMIT DROP AS "
        f"WITH valued AS ({valued_sql(meters, 'events')}) "
        f"{rollup_select('valued', any_latest=any(m.is_latest for m in meters))}")
    ids = [m.id for m in meters]
    daily = [m.id for m in meters if m.has_daily_rollups]
    differences = await _rollup_differences(conn, ids, HOURLY, "SELECT * FROM recomputed_rollups")
    differences += await _rollup_differences(conn, daily, DAILY, merged_rollups_sql(
        "meter_id = ANY($1::text[])", source="recomputed_rollups", bucket="date_trunc('day', hour, 'UTC')"))
    # daily rows of a meter that has none (COUNT, SUM, UNIQUE_COUNT)
    stray = await conn.fetch(merged_rollups_sql("meter_id = ANY($1::text[])", DAILY),
                             [m.id for m in meters if not m.has_daily_rollups])
    differences += [RollupDifference(row[0], row[1], row[2], tuple(row[3:]), None, "day")  # type: ignore[arg-type]
                    for row in stray]
    totals = await conn.fetch(
        "WITH raw AS (SELECT meter_id, hour, sum(event_count) AS event_count, sum(value_sum) AS value_sum "
        "  FROM recomputed_rollups GROUP BY meter_id, hour), "
        "stored AS (SELECT meter_id, hour, sum(event_count) AS event_count, sum(value_sum) AS value_sum "
        "  FROM usage_totals WHERE meter_id = ANY($1::text[]) GROUP BY meter_id, hour) "
        "SELECT coalesce(s.meter_id, w.meter_id) AS meter_id, coalesce(s.hour, w.hour) AS hour, "
        "s.event_count AS s_count, s.value_sum AS s_sum, w.event_count AS w_count, w.value_sum AS w_sum "
        "FROM stored s FULL JOIN raw w ON s.meter_id = w.meter_id AND s.hour = w.hour "
        "WHERE s.event_count IS DISTINCT FROM w.event_count OR s.value_sum IS DISTINCT FROM w.value_sum "
        "ORDER BY 1, 2",
        ids,
    )
    differences += [
        RollupDifference(ALL_ACCOUNTS, row["meter_id"], row["hour"],
                         None if row["s_count"] is None else (row["s_count"], row["s_sum"], None, None, None, None),
                         None if row["w_count"] is None else (row["w_count"], row["w_sum"], None, None, None, None))
        for row in totals
    ]
    await conn.execute("DROP TABLE recomputed_rollups")
    return differences


async def _rollup_differences(conn: Any, meter_ids: list[str], table: RollupTable,
                              recomputed: str) -> list[RollupDifference]:
    """`table`'s rows of the meters (stripes merged) against `recomputed` (rows of `table`'s columns
    computed from raw events); $1 is the meter ids."""
    if not meter_ids:
        return []
    differs = " OR ".join(f"s.{c} IS DISTINCT FROM w.{c}" for c in _COMPARED)
    time = table.time_column
    rows = await conn.fetch(
        f"WITH raw ({table.columns}) AS ({recomputed}), "
        f"stored ({table.columns}) AS ({merged_rollups_sql('meter_id = ANY($1::text[])', table)}) "
        "SELECT coalesce(s.account_id, w.account_id) AS account_id, coalesce(s.meter_id, w.meter_id) AS meter_id, "
        f"coalesce(s.{time}, w.{time}) AS at, s.account_id IS NOT NULL AS has_stored, "
        "w.account_id IS NOT NULL AS has_raw, "
        + ", ".join(f"s.{c} AS s_{c}, w.{c} AS w_{c}" for c in _COMPARED)
        + " FROM stored s FULL JOIN raw w ON s.account_id = w.account_id AND s.meter_id = w.meter_id "
        f"AND s.{time} = w.{time} WHERE {differs} ORDER BY 1, 2, 3",
        meter_ids,
    )
    return [
        RollupDifference(
            row["account_id"],
            row["meter_id"],
            row["at"],
            tuple(row[f"s_{c}"] for c in _COMPARED) if row["has_stored"] else None,  # type: ignore[arg-type]
            tuple(row[f"w_{c}"] for c in _COMPARED) if row["has_raw"] else None,  # type: ignore[arg-type]
            table.time_column,
        )
        for row in rows
    ]


async def rebuild_rollups(session: AsyncSession, meter_ids: Sequence[str] | None = None) -> int:
    """Replaces the rollups of the given meters (default all) by a recompute from raw events.

    Takes the schemas' exclusive locks, so no batch of those schemas runs meanwhile.
    """
    meters = await _meters(session, meter_ids)
    if not meters:
        return 0
    conn = await raw_connection(session)
    await conn.fetchval(lock_schemas_sql(exclusive=True), sorted({m.schema_name for m in meters}))
    ids = [m.id for m in meters]
    await conn.execute("DELETE FROM usage_rollups WHERE meter_id = ANY($1::text[])", ids)
    await conn.execute("DELETE FROM usage_totals WHERE meter_id = ANY($1::text[])", ids)
    await conn.execute(f"DELETE FROM {DAILY.name} WHERE meter_id = ANY($1::text[])", ids)
    return await conn.fetchval(_recompute_sql(meters))
