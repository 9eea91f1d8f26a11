"""SQL shared by ingestion, backfill, verification and quantity reads.

Everything that turns events into meter values goes through `valued_sql`, so rollups maintained
at ingest, a backfill, a raw recompute and the raw edges of a query can never disagree.
Compiled meter SQL is self-contained (literals inlined and escaped by the compiler); meter ids and
schema names are inlined with the compiler's `sql_text_literal`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from togai_engine.meters.compiler import CompiledMeter, sql_text_literal

# The event statuses that feed quantities (rollups, metrics, entitlements, invoices): ACCEPTED, and
# NOT_BILLED_NO_PLAN (no plan covered the event when it arrived; a plan attached later from a time at
# or before it bills it, so it must be metered), and ACCEPTED_LATE (its invoiced period's plan bills late
# usage: the next invoice prices the period again with it). NOT_BILLED_CYCLE_CLOSED events feed nothing.
METERED_STATUSES = ("ACCEPTED", "NOT_BILLED_NO_PLAN", "ACCEPTED_LATE")
METERED = f"e.status IN ({', '.join(sql_text_literal(s) for s in METERED_STATUSES)})"

# Meter changes vs. ingestion, per event schema: ingestion takes a transaction-scoped SHARED advisory
# lock on each schema of its batch before it reads the schema's meters; creating (or rebuilding) a
# meter takes it EXCLUSIVE before it backfills. So a batch either commits before the backfill reads
# the events, or sees the new meter. Advisory locks write nothing (row locks would create a
# MultiXact per concurrent batch) and work for a schema whose row does not exist yet.
SCHEMA_LOCK_CLASS = 0x6D657472  # "metr": the key space of these locks


def lock_schemas_sql(*, exclusive: bool) -> str:
    """SQL taking the schema locks of $1::text[] (sorted names), in order."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    return (
        f"SELECT count({function}({SCHEMA_LOCK_CLASS}, hashtext(n))) "
        "FROM (SELECT n FROM unnest($1::text[]) AS n ORDER BY n) AS names"
    )


NEGATIVE_VALUES = ("ALLOW", "REJECT")  # a meter's rule for negative event values (meters/README.md)
# Aggregations whose values can be negative (COUNT and UNIQUE_COUNT values are always 1).
SIGNED_AGGREGATIONS = ("SUM", "MAX", "LATEST")


@dataclass(frozen=True)
class MeterSql:
    """A meter ready to run: its id, schema and compiled SQL over an event row `e`; with its rule
    for negative values and the attributes its value is computed from (for REJECT's messages)."""

    id: str
    schema_name: str
    aggregation: str
    compiled: CompiledMeter
    negative_values: str = "ALLOW"
    value_attributes: tuple[str, ...] = ()

    @property
    def rejects_negative(self) -> bool:
        """Ingestion must reject an event whose value for this meter is negative."""
        return self.negative_values == "REJECT" and self.aggregation in SIGNED_AGGREGATIONS

    @property
    def is_latest(self) -> bool:
        return self.aggregation == "LATEST"

    @property
    def has_daily_rollups(self) -> bool:
        return self.aggregation in DAILY_AGGREGATIONS


def _value_sql(meter: MeterSql, validated: bool) -> str:
    return meter.compiled.input_value_sql if validated else meter.compiled.value_sql


def valued_sql(meters: Sequence[MeterSql], source: str, where: str = "", *, with_key: bool = False,
               validated: bool = False) -> str:
    """One row per (metered event of `source`, meter of its schema) with the event's value.

    Columns: account_id, meter_id, is_latest, event_time, id, value (NULL = not metered)
    [, key: the UNIQUE_COUNT text key]. `source` is a table or CTE name with events' columns;
    `where` is an extra condition on `e`. validated: `source` holds only the batch ingest has just
    validated (its attributes read with plain casts, CompiledMeter.input_value_sql); any read of
    stored rows leaves it False (attributes guarded: a hand-edited value is not metered, never an error).
    """
    parts = []
    for meter in meters:
        key = ""
        if with_key:
            distinct = meter.compiled.input_distinct_sql if validated else meter.compiled.distinct_sql
            key = f", {distinct or 'CAST(NULL AS text)'} AS key"
        parts.append(
            f"SELECT e.account_id, CAST({sql_text_literal(meter.id)} AS text) AS meter_id, "
            f"{'TRUE' if meter.is_latest else 'FALSE'} AS is_latest, e.event_time, CAST(e.id AS text) AS id, "
            f"{_value_sql(meter, validated)} AS value{key} FROM {source} e "
            f"WHERE e.schema_name = {sql_text_literal(meter.schema_name)} AND {METERED}"
            + (f" AND ({where})" if where else "")
        )
    return "\nUNION ALL\n".join(parts)


def negative_values_sql(meters: Sequence[MeterSql], source: str, *, validated: bool = False) -> str:
    """Rows (pos, meter_id, value) of the events of `source` (columns pos, schema_name, attributes,
    dimensions) whose value for one of `meters` is negative, whatever their status. validated: as valued_sql's."""
    return "\nUNION ALL\n".join(
        f"SELECT pos, CAST({sql_text_literal(meter.id)} AS text) AS meter_id, value FROM ("
        f"SELECT e.pos, {_value_sql(meter, validated)} AS value FROM {source} e "
        f"WHERE e.schema_name = {sql_text_literal(meter.schema_name)}) AS v WHERE value < 0"
        for meter in meters
    )


# HOUR, DAY and WEEK buckets by date_bin: plain arithmetic, where date_trunc with a time zone converts
# every row (a quarter of a month's all-account MAX query at 10M events). The origin is a Monday at
# midnight UTC, so weeks start on Mondays as date_trunc's ISO weeks do; the two agree on every
# instant (checked from 1960 to 2060). MONTH keeps date_trunc: months are not a fixed width.
_BIN_ORIGIN = "timestamptz '2000-01-03 00:00:00+00'"
_BUCKETS = {
    "HOUR": f"date_bin(interval '1 hour', {{column}}, {_BIN_ORIGIN})",
    "DAY": f"date_bin(interval '1 day', {{column}}, {_BIN_ORIGIN})",
    "WEEK": f"date_bin(interval '7 days', {{column}}, {_BIN_ORIGIN})",
    "MONTH": "date_trunc('month', {column}, 'UTC')",
}


def bucket_sql(column: str, period: str | None) -> str:
    """SQL for the UTC bucket start of `column` (a timestamptz) in `period`; NULL for one bucket."""
    return "CAST(NULL AS timestamptz)" if period is None else _BUCKETS[period].format(column=column)


@dataclass(frozen=True)
class RollupTable:
    """A table of per (account, meter, time bucket, stripe) aggregates (ROLLUP_COLUMNS, with its own
    name for the time column). Rows of both tables merge the same way."""

    name: str
    time_column: str  # "hour" or "day"

    @property
    def columns(self) -> str:
        return ROLLUP_COLUMNS.replace("hour", self.time_column)


# Per (account, meter, hour) aggregates of `valued` rows; LATEST is the value of the newest
# event by (event_time, id), which makes merging partial rollups independent of arrival order.
ROLLUP_COLUMNS = "account_id, meter_id, hour, event_count, value_sum, value_max, latest_time, latest_id, latest_value"
HOURLY = RollupTable("usage_rollups", "hour")
# The same per UTC day, for MAX and LATEST meters only: a series over all accounts sums each account's
# value per bucket, which usage_totals cannot hold, and daily rows are ~1/3 of the hourly ones to read.
DAILY = RollupTable("usage_rollups_daily", "day")
DAILY_AGGREGATIONS = ("MAX", "LATEST")
LATEST_ORDER = 'event_time DESC, id COLLATE "C" DESC'
ROLLUP_LATEST_ORDER = 'latest_time DESC, latest_id COLLATE "C" DESC'  # the same order over rollup rows
NO_LATEST = "CAST(NULL AS timestamptz), CAST(NULL AS text), CAST(NULL AS numeric)"


def latest_columns(time: str, ident: str, value: str, order: str, condition: str | None = None) -> str:
    """The (time, id, value) of the newest row by `order` among the group's rows (matching `condition`)."""
    where = f" FILTER (WHERE {condition})" if condition else ""
    return ", ".join(f"(array_agg({column} ORDER BY {order}){where})[1]" for column in (time, ident, value))


# The newest of a group of rollup rows (stripes, hours): what every reader of usage_rollups merges with.
ROLLUP_LATEST = latest_columns("latest_time", "latest_id", "latest_value", ROLLUP_LATEST_ORDER, "latest_time IS NOT NULL")


def rollup_select(valued_source: str, *, any_latest: bool) -> str:
    """SELECT of hourly rollup rows (ROLLUP_COLUMNS) from a `valued` relation, sorted by key.

    LATEST meters are aggregated apart: their ordered aggregates start a sort per group, which the
    other meters' groups (most of them) need not pay for.
    """
    hour = bucket_sql("event_time", "HOUR")

    def grouped(latest: str, where: str) -> str:
        return (
            f"SELECT account_id, meter_id, {hour} AS bucket, count(*), sum(value), max(value), {latest} "
            f"FROM {valued_source} WHERE value IS NOT NULL{where} GROUP BY account_id, meter_id, bucket"
        )

    if not any_latest:
        return grouped(NO_LATEST, "") + " ORDER BY 1, 2, 3"
    latest = latest_columns("event_time", "id", "value", LATEST_ORDER)
    return f"{grouped(NO_LATEST, ' AND NOT is_latest')} UNION ALL {grouped(latest, ' AND is_latest')} ORDER BY 1, 2, 3"


_NEWER = (
    "(EXCLUDED.latest_time IS NOT NULL AND (r.latest_time IS NULL OR EXCLUDED.latest_time > r.latest_time "
    'OR (EXCLUDED.latest_time = r.latest_time AND EXCLUDED.latest_id COLLATE "C" > r.latest_id COLLATE "C")))'
)

def _rollup_merge(table: RollupTable) -> str:
    return (
        f"ON CONFLICT (account_id, meter_id, {table.time_column}, stripe) DO UPDATE SET "
        "event_count = r.event_count + EXCLUDED.event_count, "
        "value_sum = r.value_sum + EXCLUDED.value_sum, "
        "value_max = GREATEST(r.value_max, EXCLUDED.value_max), "
        f"latest_time = CASE WHEN {_NEWER} THEN EXCLUDED.latest_time ELSE r.latest_time END, "
        f"latest_id = CASE WHEN {_NEWER} THEN EXCLUDED.latest_id ELSE r.latest_id END, "
        f"latest_value = CASE WHEN {_NEWER} THEN EXCLUDED.latest_value ELSE r.latest_value END"
    )


# Rollup stripes: a key (account, meter, hour) may have up to ROLLUP_STRIPES rows. An ingest
# transaction takes the lowest stripe no other running transaction holds (a transaction advisory
# try-lock), so concurrent batches of the same accounts and hours never wait on each other's rollup
# row locks, and rows gather in the low stripes (stripe 0 alone when batches do not overlap).
# Readers add the stripes up; the server folds past hours' other stripes into stripe 0
# (meters/compaction.py). With every stripe taken, the pid picks one without its lock.
ROLLUP_STRIPES = 8
STRIPE_LOCK_CLASS = 0x726F6C6C  # "roll"
STRIPE_SQL = (
    f"SELECT coalesce((SELECT s FROM (SELECT CAST(k AS smallint) AS s "
    f"FROM generate_series(0, {ROLLUP_STRIPES - 1}) AS k) AS candidates WHERE pg_try_advisory_xact_lock({STRIPE_LOCK_CLASS}, s) LIMIT 1), "
    f"CAST(pg_backend_pid() % {ROLLUP_STRIPES} AS smallint)) AS s"
)


def merge_into_rollups(rows_sql: str, stripe: str, table: RollupTable = HOURLY) -> str:
    """INSERT .. ON CONFLICT adding `rows_sql` (rows of `table`'s columns, one per key) to `table` in
    `stripe` (an SQL expression), in key order: writers of one stripe lock its rows in the same
    order, so they cannot deadlock. Ingest, backfill and compaction all merge through this."""
    return (
        f"INSERT INTO {table.name} AS r ({table.columns}, stripe) "
        f"SELECT *, {stripe} FROM ({rows_sql}) AS rolled ORDER BY 1, 2, 3 {_rollup_merge(table)}"
    )


def rollup_writes(valued_source: str, meters: Sequence[MeterSql], stripe: str) -> list[str]:
    """CTEs adding the `valued` rows of `meters` to the rollups in `stripe`: ONE aggregation of them
    (`hourly`, its rows also the count written), merged into the hourly rollups, into usage_totals per
    meter and hour, and per UTC day into the daily rollups of the MAX and LATEST meters. Ingest,
    backfill and rebuild all write through this."""
    ctes = [
        f"hourly ({ROLLUP_COLUMNS}) AS MATERIALIZED "
        f"({rollup_select(valued_source, any_latest=any(m.is_latest for m in meters))})",
        f"rolled AS ({merge_into_rollups('SELECT * FROM hourly', stripe)})",
        f"totaled AS ({merge_into_totals(totals_from('hourly'), stripe)})",
    ]
    daily = [sql_text_literal(m.id) for m in meters if m.has_daily_rollups]
    if daily:
        days = merged_rollups_sql(f"meter_id IN ({', '.join(daily)})", source="hourly", bucket=bucket_sql("hour", "DAY"))
        ctes.append(f"rolled_daily AS ({merge_into_rollups(days, stripe, DAILY)})")
    return ctes


def merged_rollups_sql(where: str, table: RollupTable = HOURLY, *, source: str | None = None,
                       bucket: str | None = None) -> str:
    """One row per (account, meter, time bucket) with `table`'s columns: the rows of `source` (default
    `table` itself: its stripes) matching `where` merged, per `bucket` (default `table`'s time column)."""
    bucket = bucket or table.time_column
    return (
        f"SELECT account_id, meter_id, {bucket} AS bucket, CAST(sum(event_count) AS bigint), sum(value_sum), "
        f"max(value_max), {ROLLUP_LATEST} FROM {source or table.name} WHERE {where} "
        "GROUP BY account_id, meter_id, bucket"
    )


# Totals over all accounts per (meter, hour): count and sum of the hourly rollup rows.
TOTALS_COLUMNS = "meter_id, hour, event_count, value_sum"


def totals_from(hourly_source: str) -> str:
    """SELECT of usage_totals rows (TOTALS_COLUMNS) from hourly rollup rows, sorted by key."""
    return (
        f"SELECT meter_id, hour, CAST(sum(event_count) AS bigint), sum(value_sum) FROM {hourly_source} "
        "GROUP BY meter_id, hour ORDER BY meter_id, hour"
    )


TOTALS_MERGE = (
    "ON CONFLICT (meter_id, hour, stripe) DO UPDATE SET event_count = t.event_count + EXCLUDED.event_count, "
    "value_sum = t.value_sum + EXCLUDED.value_sum"
)


def merge_into_totals(rows_sql: str, stripe: str) -> str:
    """INSERT .. ON CONFLICT adding `rows_sql` (rows of TOTALS_COLUMNS, one per key) to usage_totals in
    `stripe`, in key order."""
    return (
        f"INSERT INTO usage_totals AS t ({TOTALS_COLUMNS}, stripe) "
        f"SELECT *, {stripe} FROM ({rows_sql}) AS totaled ORDER BY 1, 2 {TOTALS_MERGE}"
    )
