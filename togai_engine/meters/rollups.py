"""Hourly rollups (and all-account totals, and daily rollups of MAX and LATEST meters) beyond the
ingest path: backfill a new meter, verify and rebuild from raw events, and recompute one account's
hour after one of its events stopped being billable (a void)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

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
    bucket_sql,
    lock_schemas_sql,
    merge_into_rollups,
    merged_rollups_sql,
    rollup_select,
    rollup_writes,
    totals_from,
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
    """Writes the meters' rollups, daily rollups and totals (stripe 0) from all stored events, as ingest
    writes them; returns the hourly rollup rows written. For meters that have none yet (backfill, or
    after a rebuild deleted them)."""
    ctes = [f"valued AS ({valued_sql(meters, 'events')})", *rollup_writes("valued", meters, "0")]
    return "WITH " + ", ".join(ctes) + " SELECT count(*) FROM hourly"


async def _meters(session: AsyncSession, meter_ids: Sequence[str] | None) -> list[MeterSql]:
    stmt = select(UsageMeterRow).order_by(UsageMeterRow.id)
    if meter_ids is not None:
        stmt = stmt.where(UsageMeterRow.id.in_(list(meter_ids)))
    return catalog.compiled(await session.scalars(stmt))


async def verify_rollups(session: AsyncSession, meter_ids: Sequence[str] | None = None) -> list[RollupDifference]:
    """Recomputes every (account, meter, hour) rollup, every daily rollup and every all-account total
    from raw events and returns the differences (an empty list means they are all exact).

    ONE statement, so one snapshot: batches committing meanwhile can never show up as differences.
    The raw events are read once, into their hourly aggregates; the daily rows and the totals are
    recomputed from those (every rollup column merges associatively), not from the stored rows.
    """
    meters = await _meters(session, meter_ids)
    if not meters:
        return []
    conn = await raw_connection(session)
    daily = [m.id for m in meters if m.has_daily_rollups]
    # only MAX and LATEST meters have daily rows: any other meter's stored daily row is a difference too
    recomputed_daily = merged_rollups_sql("meter_id = ANY($2::text[])", source="recomputed",
                                          bucket=bucket_sql("hour", "DAY"))
    rows = await conn.fetch(
        f"WITH valued AS ({valued_sql(meters, 'events')}), "
        f"recomputed ({ROLLUP_COLUMNS}) AS MATERIALIZED "
        f"({rollup_select('valued', any_latest=any(m.is_latest for m in meters))}) "
        + _compared(HOURLY, "SELECT * FROM recomputed", "$1") + " UNION ALL "
        + _compared(DAILY, recomputed_daily, "$1") + " UNION ALL "
        # the all-account totals: count and sum per meter and hour
        f"SELECT 'hour', '{ALL_ACCOUNTS}', coalesce(s.meter_id, w.meter_id), coalesce(s.hour, w.hour), "
        "s.meter_id IS NOT NULL, w.meter_id IS NOT NULL, s.event_count, s.value_sum, NULL, NULL, NULL, NULL, "
        "w.event_count, w.value_sum, NULL, NULL, NULL, NULL FROM "
        "(SELECT meter_id, hour, CAST(sum(event_count) AS bigint) AS event_count, sum(value_sum) AS value_sum "
        "  FROM usage_totals WHERE meter_id = ANY($1::text[]) GROUP BY 1, 2) AS s FULL JOIN "
        f"({totals_from('recomputed')}) AS w ({TOTALS_COLUMNS}) ON s.meter_id = w.meter_id AND s.hour = w.hour "
        "WHERE s.event_count IS DISTINCT FROM w.event_count OR s.value_sum IS DISTINCT FROM w.value_sum "
        "ORDER BY 1, 2, 3, 4",
        [m.id for m in meters], daily,
    )
    width = len(_COMPARED)
    return [RollupDifference(row[1], row[2], row[3], tuple(row[6:6 + width]) if row[4] else None,  # type: ignore[arg-type]
                             tuple(row[6 + width:]) if row[5] else None, row[0])  # type: ignore[arg-type]
            for row in rows]


def _compared(table: RollupTable, recomputed: str, meter_ids: str) -> str:
    """SELECT of the differences between `table`'s stored rows of the meters `meter_ids` (stripes merged)
    and `recomputed` (rows of `table`'s columns): grain, key, has_stored, has_raw, stored and raw values."""
    time = table.time_column
    differs = " OR ".join(f"s.{c} IS DISTINCT FROM w.{c}" for c in _COMPARED)
    return (
        f"SELECT * FROM (SELECT '{table.time_column}' AS grain, coalesce(s.account_id, w.account_id), "
        f"coalesce(s.meter_id, w.meter_id), coalesce(s.{time}, w.{time}), s.account_id IS NOT NULL, "
        "w.account_id IS NOT NULL, " + ", ".join(f"s.{c}" for c in _COMPARED) + ", "
        + ", ".join(f"w.{c}" for c in _COMPARED)
        + f" FROM ({merged_rollups_sql(f'meter_id = ANY({meter_ids}::text[])', table)}) AS s ({table.columns}) "
        f"FULL JOIN ({recomputed}) AS w ({table.columns}) ON s.account_id = w.account_id "
        f"AND s.meter_id = w.meter_id AND s.{time} = w.{time} WHERE {differs}) AS {table.time_column}_differences"
    )


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


async def recompute_account_hour(session: AsyncSession, meters: Sequence[MeterSql], account_id: str,
                                 hour: datetime) -> None:
    """Makes the rollups of one account's UTC `hour` for `meters` (all of one schema) equal to a
    recompute from its metered raw events again, after an event of that hour stopped being billable
    (voided): its COUNT/SUM contribution could be subtracted, but a MAX or LATEST (the value_max and
    latest columns every meter keeps) cannot, so the hour's rows are recomputed.

    - hourly: the key's rows of every stripe are replaced by one row in stripe 0 (none when no
      billable event is left);
    - usage_totals of (meter, hour): the stored stripes plus the hour's change (recomputed minus stored
      count and sum), folded into stripe 0, or no row when the count reaches 0 (as a recompute gives);
    - daily rows of MAX and LATEST meters: the day's hourly rows merged again.

    The caller holds the schema's lock EXCLUSIVE, so no ingest (of any account) writes these rows or
    the totals meanwhile, and stripe 0's advisory lock, so compaction (which needs it) folds none of
    them either. Several statements, each seeing the previous ones' writes.
    """
    if not meters:
        return
    conn = await raw_connection(session)
    ids = [m.id for m in meters]
    key = "account_id = $1 AND meter_id = ANY($2::text[]) AND hour = $3"
    none = (0, Decimal(0))
    stored: dict[str, tuple[int, Decimal]] = {}  # per meter, its stripes added up
    for meter_id, count, total in await conn.fetch(
            f"DELETE FROM {HOURLY.name} WHERE {key} RETURNING meter_id, event_count, value_sum", account_id, ids, hour):
        kept = stored.get(meter_id, none)
        stored[meter_id] = (kept[0] + count, kept[1] + total)
    where = "e.account_id = $1 AND e.event_time >= $2 AND e.event_time < $3"
    recomputed = {row[0]: (row[1], row[2]) for row in await conn.fetch(
        f"WITH valued AS ({valued_sql(meters, 'events', where)}), "
        f"hourly ({ROLLUP_COLUMNS}) AS MATERIALIZED ({rollup_select('valued', any_latest=any(m.is_latest for m in meters))}), "
        f"rolled AS ({merge_into_rollups('SELECT * FROM hourly', '0')}) "
        "SELECT meter_id, event_count, value_sum FROM hourly",
        account_id, hour, hour + timedelta(hours=1))}
    changes = {meter_id: (recomputed.get(meter_id, none)[0] - stored.get(meter_id, none)[0],
                          recomputed.get(meter_id, none)[1] - stored.get(meter_id, none)[1])
               for meter_id in sorted(stored.keys() | recomputed.keys())}
    changed = [meter_id for meter_id, change in changes.items() if change != none]
    if changed:
        totals: dict[str, tuple[int, Decimal]] = {}
        for meter_id, count, total in await conn.fetch(
                "DELETE FROM usage_totals WHERE meter_id = ANY($1::text[]) AND hour = $2 "
                "RETURNING meter_id, event_count, value_sum", changed, hour):
            kept = totals.get(meter_id, none)
            totals[meter_id] = (kept[0] + count, kept[1] + total)
        rows = [(meter_id, totals.get(meter_id, none)[0] + changes[meter_id][0],
                 totals.get(meter_id, none)[1] + changes[meter_id][1]) for meter_id in changed]
        await conn.execute(
            f"INSERT INTO usage_totals ({TOTALS_COLUMNS}, stripe) SELECT u.meter_id, $4, u.event_count, u.value_sum, 0 "
            "FROM unnest($1::text[], $2::bigint[], $3::numeric[]) AS u(meter_id, event_count, value_sum) "
            "WHERE u.event_count > 0 ORDER BY 1",
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], hour)
    daily = [m.id for m in meters if m.has_daily_rollups]
    if daily:
        day = hour.replace(hour=0)
        await conn.execute(
            f"DELETE FROM {DAILY.name} WHERE account_id = $1 AND meter_id = ANY($2::text[]) AND day = $3",
            account_id, daily, day)
        days = merged_rollups_sql("account_id = $1 AND meter_id = ANY($2::text[]) AND hour >= $3 AND hour < $4",
                                  bucket=bucket_sql("hour", "DAY"))
        await conn.execute(merge_into_rollups(days, "0", DAILY), account_id, daily, day, day + timedelta(days=1))
