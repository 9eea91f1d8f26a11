"""Hourly rollups (and all-account totals, and daily rollups of MAX and LATEST meters) beyond the
ingest path: backfill a new meter, verify and rebuild from raw events, and recompute accounts' hours
after some of their events stopped being billable (voids)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.numbers import EXACT_QUANTITY_CONTEXT as EXACT
from togai_engine.meters import catalog
from togai_engine.meters.compiler import stored_decimal_sql
from togai_engine.meters.sql import (
    DAILY,
    HOURLY,
    METERED,
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
    # the events of the row's account and hour (or day) whose stored attributes are not what ingest stores (edited
    # by hand?), each with the value at fault: the meters read such a value as missing, so the event contributes
    # nothing to the recompute, while ingest rolled it up from its valid value
    unreadable: tuple[str, ...] = ()


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


async def verify_rollups(session: AsyncSession, meter_ids: Sequence[str] | None = None) -> list[RollupDifference]:
    """Recomputes every (account, meter, hour) rollup, every daily rollup and every all-account total
    from raw events and returns the differences (an empty list means they are all exact).

    ONE statement, so one snapshot: batches committing meanwhile can never show up as differences.
    The raw events are read once, into their hourly aggregates; the daily rows and the totals are
    recomputed from those (every rollup column merges associatively), not from the stored rows.
    """
    meters = await catalog.meters_by_ids(session, meter_ids)
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
    differences = [RollupDifference(row[1], row[2], row[3], tuple(row[6:6 + width]) if row[4] else None,  # type: ignore[arg-type]
                                    tuple(row[6 + width:]) if row[5] else None, row[0])  # type: ignore[arg-type]
                   for row in rows]
    return await _with_unreadable(conn, differences, sorted({m.schema_name for m in meters}))


_UNREADABLE_VALUE = stored_decimal_sql("(a.value #>> '{}')") + " IS NULL"  # a.value: an attribute's jsonb


def _span(difference: RollupDifference) -> tuple[str, datetime, datetime]:
    return (difference.account_id, difference.hour,
            difference.hour + (timedelta(hours=24) if difference.grain == "day" else timedelta(hours=1)))


async def _with_unreadable(conn: Any, differences: list[RollupDifference],
                           schemas: list[str]) -> list[RollupDifference]:
    """`differences` with the events of each account row's hour (or day) whose stored attributes the meters cannot
    read (an attribute that is not a decimal as ingest stores it, or attributes that are not an object)."""
    spans = sorted({_span(d) for d in differences if d.account_id != ALL_ACCOUNTS})
    if not spans:
        return differences
    # each span one range scan of the (account_id, event_time) index; attributes that are not an object: one row,
    # key NULL
    rows = await conn.fetch(
        "SELECT k.account_id, k.start_at, e.id, a.key, CAST(a.value AS text) "
        "FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(account_id, start_at, end_at) "
        "CROSS JOIN LATERAL (SELECT * FROM events AS e WHERE e.account_id = k.account_id "
        "  AND e.event_time >= k.start_at AND e.event_time < k.end_at AND e.schema_name = ANY($4::text[]) "
        f"  AND {METERED} OFFSET 0) AS e "
        "CROSS JOIN LATERAL (SELECT key, value FROM jsonb_each(CASE WHEN jsonb_typeof(e.attributes) = 'object' "
        "  THEN e.attributes END) UNION ALL SELECT NULL, e.attributes WHERE jsonb_typeof(e.attributes) <> 'object'"
        ") AS a(key, value) "
        f"WHERE a.key IS NULL OR {_UNREADABLE_VALUE} ORDER BY 1, 2, e.event_time, 3, 4",
        [s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans], schemas)
    found: dict[tuple[str, datetime], list[str]] = defaultdict(list)
    for account_id, start_at, event_id, key, value in rows:
        what = "attributes are" if key is None else f"attributes.{key} is"
        found[(account_id, start_at)].append(f"event {event_id!r}: {what} {value!r}, not a decimal")
    return [replace(d, unreadable=tuple(found.get((d.account_id, d.hour), ()))) for d in differences]


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
    meters = await catalog.meters_by_ids(session, meter_ids)
    if not meters:
        return 0
    conn = await raw_connection(session)
    await conn.fetchval(lock_schemas_sql(exclusive=True), sorted({m.schema_name for m in meters}))
    ids = [m.id for m in meters]
    await conn.execute("DELETE FROM usage_rollups WHERE meter_id = ANY($1::text[])", ids)
    await conn.execute("DELETE FROM usage_totals WHERE meter_id = ANY($1::text[])", ids)
    await conn.execute(f"DELETE FROM {DAILY.name} WHERE meter_id = ANY($1::text[])", ids)
    return await conn.fetchval(_recompute_sql(meters))


# the UTC hours (or day starts) $2 of one account $1, a relation `k` of one column hour
_HOURS = "unnest($2::timestamptz[]) AS k(hour)"


async def recompute_account_hours(session: AsyncSession, meters: Sequence[MeterSql],
                                  keys: Collection[tuple[str, datetime]]) -> None:
    """Makes the rollups of the given (account, UTC hour) keys for `meters` (all of one schema) equal to
    a recompute from their metered raw events again, after events of those hours stopped being billable
    (voided): a COUNT/SUM contribution could be subtracted, but a MAX or LATEST (the value_max and
    latest columns every meter keeps) cannot, so the hours' rows are recomputed.

    - hourly: each key's rows of every stripe are replaced by one row in stripe 0 (none when no
      billable event is left);
    - usage_totals of each (meter, hour) a key of it changed: the stored stripes plus the change
      (recomputed minus stored count and sum, added up over the hour's keys), folded into stripe 0, or
      no row when the count reaches 0 (as a recompute gives);
    - daily rows of MAX and LATEST meters: the days of the keys, their hourly rows merged again.

    The same statements for any number of keys; the result is that of recomputing the keys one at a
    time. The caller holds the schema's lock EXCLUSIVE, so no ingest (of any account) writes these rows
    or the totals meanwhile, and stripe 0's advisory lock, so compaction (which needs it) folds none of
    them either. Several statements, each seeing the previous ones' writes.
    """
    if not meters or not keys:
        return
    conn = await raw_connection(session)
    ids = [m.id for m in meters]
    hours_of: dict[str, list[datetime]] = defaultdict(list)
    for account_id, hour in sorted(set(keys)):  # each key once: a key listed twice would count its events twice
        hours_of[account_id].append(hour)
    none = (0, Decimal(0))
    # the sums are written to usage_totals: exact as SQL adds them, never rounded to the default 28 digits
    stored: dict[tuple[str, str, datetime], tuple[int, Decimal]] = {}  # per (account, meter, hour), stripes added
    recomputed: dict[tuple[str, str, datetime], tuple[int, Decimal]] = {}
    # One account at a time: each statement names its account ($1), so on Citus it runs on that account's
    # shard whole (a lateral subquery over events of several accounts is one Citus cannot push down).
    for account_id, hours in hours_of.items():
        for _, meter_id, hour, count, total in await conn.fetch(
                f"DELETE FROM {HOURLY.name} AS r USING {_HOURS} WHERE r.account_id = $1 AND r.hour = k.hour "
                "AND r.meter_id = ANY($3::text[]) RETURNING r.account_id, r.meter_id, r.hour, r.event_count, "
                "r.value_sum", account_id, hours, ids):
            kept = stored.get((account_id, meter_id, hour), none)
            stored[(account_id, meter_id, hour)] = (kept[0] + count, EXACT.add(kept[1], total))
        # the hours' events, each one range scan of the (account_id, event_time) index: OFFSET 0 keeps the
        # lateral subquery from being flattened into a join, which the planner runs as a hash join over every
        # stored event of the account (it cannot tell how few rows a range with bounds from another table matches)
        picked = (f"SELECT e.* FROM {_HOURS} CROSS JOIN LATERAL (SELECT * FROM events AS e WHERE e.account_id = $1 "
                  "AND e.event_time >= k.hour AND e.event_time < k.hour + interval '1 hour' OFFSET 0) AS e")
        for row in await conn.fetch(
                f"WITH picked AS ({picked}), valued AS ({valued_sql(meters, 'picked')}), "
                f"hourly ({ROLLUP_COLUMNS}) AS MATERIALIZED ({rollup_select('valued', any_latest=any(m.is_latest for m in meters))}), "
                f"rolled AS ({merge_into_rollups('SELECT * FROM hourly', '0')}) "
                "SELECT account_id, meter_id, hour, event_count, value_sum FROM hourly",
                account_id, hours):
            recomputed[(row[0], row[1], row[2])] = (row[3], row[4])
    changes: dict[tuple[str, datetime], tuple[int, Decimal]] = {}  # per (meter, hour), over its accounts
    for account_id, meter_id, hour in sorted(stored.keys() | recomputed.keys()):
        after = recomputed.get((account_id, meter_id, hour), none)
        before = stored.get((account_id, meter_id, hour), none)
        if after != before:
            summed = changes.get((meter_id, hour), none)
            changes[(meter_id, hour)] = (summed[0] + after[0] - before[0],
                                         EXACT.add(summed[1], EXACT.subtract(after[1], before[1])))
    if changes:
        changed = sorted(changes)
        totals: dict[tuple[str, datetime], tuple[int, Decimal]] = {}
        for meter_id, hour, count, total in await conn.fetch(
                "DELETE FROM usage_totals AS t USING unnest($1::text[], $2::timestamptz[]) AS c(meter_id, hour) "
                "WHERE t.meter_id = c.meter_id AND t.hour = c.hour "
                "RETURNING t.meter_id, t.hour, t.event_count, t.value_sum",
                [c[0] for c in changed], [c[1] for c in changed]):
            kept = totals.get((meter_id, hour), none)
            totals[(meter_id, hour)] = (kept[0] + count, EXACT.add(kept[1], total))
        rows = [(key, totals.get(key, none)[0] + changes[key][0], EXACT.add(totals.get(key, none)[1], changes[key][1]))
                for key in changed]
        await conn.execute(
            f"INSERT INTO usage_totals ({TOTALS_COLUMNS}, stripe) SELECT u.meter_id, u.hour, u.event_count, "
            "u.value_sum, 0 FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::numeric[]) "
            "AS u(meter_id, hour, event_count, value_sum) WHERE u.event_count > 0 ORDER BY 1, 2",
            [r[0][0] for r in rows], [r[0][1] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    daily = [m.id for m in meters if m.has_daily_rollups]
    for account_id, hours in hours_of.items() if daily else ():
        days = sorted({hour.replace(hour=0) for hour in hours})
        await conn.execute(
            f"DELETE FROM {DAILY.name} AS d USING {_HOURS} WHERE d.account_id = $1 AND d.day = k.hour "
            "AND d.meter_id = ANY($3::text[])", account_id, days, daily)
        # the days' hourly rows (every stripe), merged per day as ingest merges them; each day one range scan
        # of the primary key (OFFSET 0: as for the events above). A UTC day is 24 hours; interval '1 day'
        # would follow the session time zone's daylight saving changes.
        days_rows = (f"(SELECT r.* FROM {_HOURS} CROSS JOIN LATERAL (SELECT * FROM {HOURLY.name} AS r WHERE "
                     "r.account_id = $1 AND r.meter_id = ANY($3::text[]) AND r.hour >= k.hour "
                     "AND r.hour < k.hour + interval '24 hours' OFFSET 0) AS r) AS days_rows")
        merged = merged_rollups_sql("TRUE", source=days_rows, bucket=bucket_sql("hour", "DAY"))
        await conn.execute(merge_into_rollups(merged, "0", DAILY), account_id, days, daily)

