"""Exact quantities per (account, meter[, UTC bucket]) over a half-open period [start, end).

Whole UTC hours inside the period come from the hourly rollups; the partial hours at its edges
(a period that does not start or end on the hour) come from raw events through the same meter
SQL, so any period is exact. UNIQUE_COUNT cannot be added up across hours, so it is counted
from raw events over the whole period. meter_quantities and get_metrics USAGE both use
`usage_by_bucket`, so they agree to the last unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.numbers import EXACT_QUANTITY_CONTEXT
from togai_engine.errors import Conflict, InvalidInput
from togai_engine.meters.catalog import compiled, meters_by_ids
from togai_engine.meters.sql import (
    DAILY,
    HOURLY,
    LATEST_ORDER,
    NO_LATEST,
    ROLLUP_LATEST,
    ROLLUP_LATEST_ORDER,
    MeterSql,
    bucket_sql,
    latest_columns,
    valued_sql,
)
from togai_engine.store.database import raw_connection

HOUR = timedelta(hours=1)


@dataclass
class _State:
    count: int = 0
    total: Decimal = Decimal(0)
    maximum: Decimal | None = None
    latest: tuple[datetime, str, Decimal] | None = None
    distinct: int = 0

    def add(self, count: int, total: Decimal, maximum: Decimal | None, latest: tuple[Any, Any, Any]) -> None:
        self.count += count
        self.total = EXACT_QUANTITY_CONTEXT.add(self.total, total)
        if maximum is not None and (self.maximum is None or maximum > self.maximum):
            self.maximum = maximum
        if latest[0] is not None:
            candidate = (latest[0], latest[1].encode(), latest[2])
            current = None if self.latest is None else (self.latest[0], self.latest[1].encode(), self.latest[2])
            if current is None or candidate[:2] > current[:2]:  # (time, id in byte order) as in SQL
                self.latest = (latest[0], latest[1], latest[2])

    def quantity(self, aggregation: str) -> Decimal | None:
        if aggregation == "COUNT":
            return Decimal(self.count)
        if aggregation == "SUM":
            return self.total
        if aggregation == "MAX":
            return self.maximum
        if aggregation == "LATEST":
            return None if self.latest is None else self.latest[2]
        return Decimal(self.distinct)


def floor_hour(moment: datetime) -> datetime:
    """The start of `moment`'s UTC hour, in UTC: rollups are kept per UTC hour, and in another offset
    (such as +05:30) the local hour would not be one."""
    return _utc(moment).replace(minute=0, second=0, microsecond=0)


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # an offset instant at the very edge of year 1 or 9999: clamp, nothing lies beyond
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def _ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    if floor == moment:
        return floor
    try:
        return floor + HOUR
    except OverflowError:  # the last hour of year 9999
        return moment


class _Split(NamedTuple):
    """[start, end) as whole UTC hours [first_hour, last_hour) (none when first_hour >= last_hour) and
    the non-empty ranges around them that only raw events can answer (all of [start, end) when there
    is no whole hour)."""

    first_hour: datetime
    last_hour: datetime
    edges: list[tuple[datetime, datetime]]

    @property
    def whole(self) -> bool:
        return self.first_hour < self.last_hour


def _split(start: datetime, end: datetime) -> _Split:
    start, end = _utc(start), _utc(end)
    first_hour, last_hour = _ceil_hour(start), floor_hour(end)
    if first_hour >= last_hour:
        return _Split(first_hour, last_hour, [(start, end)])
    return _Split(first_hour, last_hour, [(a, b) for a, b in ((start, first_hour), (last_hour, end)) if a < b])


def _whole_days(first_hour: datetime, last_hour: datetime) -> tuple[datetime, datetime]:
    """The whole UTC days [first_day, last_day) inside [first_hour, last_hour) (UTC hours, from _split);
    an empty range at last_hour when there is none."""
    first_day = first_hour.replace(hour=0, minute=0, second=0, microsecond=0)
    if first_day < first_hour:
        try:
            first_day += timedelta(days=1)
        except OverflowError:  # inside 9999-12-31: no whole day
            return last_hour, last_hour
    last_day = last_hour.replace(hour=0, minute=0, second=0, microsecond=0)
    return (first_day, last_day) if first_day < last_day else (last_hour, last_hour)


def _check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("startTime", "start and end must be timezone-aware (UTC) instants")
    if end <= start:
        raise InvalidInput("endTime", f"must be after startTime ({start.isoformat()}); the period is [start, end)")


async def usage_by_bucket(
    session: AsyncSession,
    meters: Sequence[MeterSql],
    *,
    start: datetime,
    end: datetime,
    period: str | None = None,
    account_ids: Sequence[str] | None = None,
) -> dict[tuple[str, str, datetime | None], Decimal]:
    """Quantity per (account, meter, bucket start) over [start, end), for buckets with usage.

    period None: one bucket (key None) for the whole period; else HOUR/DAY/WEEK/MONTH in UTC.
    """
    _check_period(start, end)
    if not meters or (account_ids is not None and not account_ids):
        return {}
    conn = await raw_connection(session)
    accounts = list(account_ids) if account_ids is not None else None
    states: dict[tuple[str, str, datetime | None], _State] = {}
    additive = [m for m in meters if m.aggregation != "UNIQUE_COUNT"]
    distinct = [m for m in meters if m.aggregation == "UNIQUE_COUNT"]

    if additive:
        split = _split(start, end)
        if split.whole:
            await _from_rollups(conn, states, additive, split.first_hour, split.last_hour, period, accounts)
        for range_start, range_end in split.edges:
            await _from_raw(conn, states, additive, range_start, range_end, period, accounts)
    if distinct:
        await _distinct_from_raw(conn, states, distinct, start, end, period, accounts)

    aggregation_of = {m.id: m.aggregation for m in meters}
    quantities = {}
    for key, state in states.items():
        value = state.quantity(aggregation_of[key[1]])
        if value is not None:
            quantities[key] = value
    return quantities


async def _from_rollups(
    conn: Any,
    states: dict[Any, _State],
    meters: Sequence[MeterSql],
    first_hour: datetime,
    last_hour: datetime,
    period: str | None,
    accounts: list[str] | None,
) -> None:
    latest = ROLLUP_LATEST if any(m.is_latest for m in meters) else NO_LATEST
    account_filter = " AND account_id = ANY($4::text[])" if accounts is not None else ""
    rows = await conn.fetch(
        f"SELECT account_id, meter_id, {bucket_sql('hour', period)} AS bucket, sum(event_count), sum(value_sum), "
        f"max(value_max), {latest} FROM usage_rollups "
        f"WHERE meter_id = ANY($1::text[]) AND hour >= $2 AND hour < $3{account_filter} "
        "GROUP BY account_id, meter_id, bucket",
        [m.id for m in meters],
        first_hour,
        last_hour,
        *([accounts] if accounts is not None else []),
    )
    _add_rows(states, rows)


async def _from_raw(
    conn: Any,
    states: dict[Any, _State],
    meters: Sequence[MeterSql],
    range_start: datetime,
    range_end: datetime,
    period: str | None,
    accounts: list[str] | None,
) -> None:
    where = "e.event_time >= $1 AND e.event_time < $2" + (" AND e.account_id = ANY($3::text[])" if accounts else "")
    latest = latest_columns("event_time", "id", "value", LATEST_ORDER, "is_latest") if any(
        m.is_latest for m in meters) else NO_LATEST
    rows = await conn.fetch(
        f"WITH valued AS ({valued_sql(meters, 'events', where)}) "
        f"SELECT account_id, meter_id, {bucket_sql('event_time', period)} AS bucket, count(*), sum(value), "
        f"max(value), {latest} FROM valued WHERE value IS NOT NULL GROUP BY account_id, meter_id, bucket",
        range_start,
        range_end,
        *([accounts] if accounts else []),
    )
    _add_rows(states, rows)


async def _distinct_from_raw(
    conn: Any,
    states: dict[Any, _State],
    meters: Sequence[MeterSql],
    start: datetime,
    end: datetime,
    period: str | None,
    accounts: list[str] | None,
) -> None:
    where = "e.event_time >= $1 AND e.event_time < $2" + (" AND e.account_id = ANY($3::text[])" if accounts else "")
    rows = await conn.fetch(
        f"WITH valued AS ({valued_sql(meters, 'events', where, with_key=True)}) "
        f"SELECT account_id, meter_id, {bucket_sql('event_time', period)} AS bucket, count(DISTINCT key) "
        "FROM valued WHERE value IS NOT NULL GROUP BY account_id, meter_id, bucket",
        start,
        end,
        *([accounts] if accounts else []),
    )
    for account_id, meter_id, bucket, count in rows:
        states.setdefault((account_id, meter_id, bucket), _State()).distinct = count


def _add_rows(states: dict[Any, _State], rows: list[Any]) -> None:
    for account_id, meter_id, bucket, count, total, maximum, latest_time, latest_id, latest_value in rows:
        state = states.setdefault((account_id, meter_id, bucket), _State())
        state.add(count, total, maximum, (latest_time, latest_id, latest_value))


async def meter_quantities(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    account_ids: Sequence[str] | None = None,
    meter_ids: Sequence[str] | None = None,
) -> dict[tuple[str, str], Decimal]:
    """Exact quantity per (account_id, meter_id) over [start, end) of billable events, with each
    meter's aggregation. Pairs without usage are absent (their quantity is 0)."""
    meters = await meters_by_ids(session, meter_ids)
    by_bucket = await usage_by_bucket(session, meters, start=start, end=end, account_ids=account_ids)
    return {(account_id, meter_id): value for (account_id, meter_id, _), value in by_bucket.items()}


async def account_usage(
    conn: Any, account_id: str, meter_ids: Sequence[str], *, start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Quantity per meter id of one account over [start, end) (0 when unused), for hot reads such as
    entitlement checks: ONE statement reads the meters' definitions and their rollups together.

    Exactly usage_by_bucket's answer: when the period is not whole hours, or a meter counts
    UNIQUE_COUNT, the raw parts are added through usage_by_bucket's own helpers.
    `conn` is the asyncpg connection of the caller's transaction.
    """
    _check_period(start, end)
    if not meter_ids:
        return {}
    split = _split(start, end)
    rows = await conn.fetch(
        "SELECT m.id, m.event_schema_name, m.aggregation, CAST(m.computations AS text) AS computations, "
        "m.negative_values, r.* FROM usage_meters m LEFT JOIN LATERAL ("
        f"  SELECT sum(event_count), sum(value_sum), max(value_max), {ROLLUP_LATEST} FROM usage_rollups "
        "  WHERE account_id = $1 AND meter_id = m.id AND hour >= $3 AND hour < $4 AND $5"
        ") AS r ON true WHERE m.id = ANY($2::text[])",
        account_id, list(meter_ids), split.first_hour, split.last_hour, split.whole,
    )
    meters = compiled(_MeterRow(r[0], r[1], r[2], r[3], r[4]) for r in rows)  # computations as text
    states: dict[tuple[str, str, datetime | None], _State] = {}
    for meter, row in zip(meters, rows, strict=True):
        if meter.aggregation != "UNIQUE_COUNT" and row[5] is not None:
            states[(account_id, meter.id, None)] = state = _State()
            state.add(row[5], row[6], row[7], (row[8], row[9], row[10]))
    additive = [m for m in meters if m.aggregation != "UNIQUE_COUNT"]
    distinct = [m for m in meters if m.aggregation == "UNIQUE_COUNT"]
    for edge_start, edge_end in split.edges:
        if additive:
            await _from_raw(conn, states, additive, edge_start, edge_end, None, [account_id])
    if distinct:
        await _distinct_from_raw(conn, states, distinct, start, end, None, [account_id])
    found = {m.id: states[(account_id, m.id, None)].quantity(m.aggregation)
             for m in meters if (account_id, m.id, None) in states}
    return {meter_id: found.get(meter_id) or Decimal(0) for meter_id in meter_ids}


class _MeterRow(NamedTuple):
    id: str
    event_schema_name: str
    aggregation: str
    computations: str  # the jsonb's text: catalog.compiled keys its cache on it
    negative_values: str


async def usage_summed(
    session: AsyncSession,
    meters: Sequence[MeterSql],
    *,
    start: datetime,
    end: datetime,
    period: str | None = None,
    account_ids: Sequence[str] | None = None,
) -> dict[tuple[str, datetime | None], Decimal]:
    """Per (meter, bucket start): the sum over the accounts of each account's quantity, i.e. what
    usage_by_bucket gives summed over accounts (a series not grouped by account), computed in SQL
    instead of shipping one row per account and bucket:

    - COUNT and SUM over whole hours: from usage_totals when no account filter (~ meters x hours rows),
      else from the rollups summed per meter and bucket;
    - MAX and LATEST over whole hours: each account's value per bucket in SQL (whole UTC days from the
      daily rollups, the other hours from the hourly ones), summed in SQL;
    - the partial hours at the edges, and UNIQUE_COUNT, per account through usage_by_bucket.
    """
    _check_period(start, end)
    if not meters or (account_ids is not None and not account_ids):
        return {}
    conn = await raw_connection(session)
    accounts = list(account_ids) if account_ids is not None else None
    split = _split(start, end)
    first_hour, last_hour, whole = split.first_hour, split.last_hour, split.whole
    summed: dict[tuple[str, datetime | None], Decimal] = {}

    def add(meter_id: str, bucket: datetime | None, value: Decimal | None) -> None:
        if value is not None:
            summed[(meter_id, bucket)] = EXACT_QUANTITY_CONTEXT.add(summed.get((meter_id, bucket), Decimal(0)), value)

    additive = [m for m in meters if m.aggregation in ("COUNT", "SUM")]
    # MAX and LATEST merge an account's rollup part with its raw edges first: in SQL only without edges
    per_account_sql = [m for m in meters if m.has_daily_rollups] if whole and not split.edges else []
    rest = [m for m in meters if m not in additive and m not in per_account_sql]
    bucket = bucket_sql("hour", period)
    # whole hours: $1 meter ids, [$2, $3) the hours, $4 the accounts when filtered
    hours = "meter_id = ANY($1::text[]) AND hour >= $2 AND hour < $3"
    if accounts is not None:
        hours += " AND account_id = ANY($4::text[])"
    scope = [accounts] if accounts is not None else []
    if additive and whole:
        # over all accounts the totals table holds exactly the rollups' sums, per meter and hour
        table = "usage_totals" if accounts is None else "usage_rollups"
        rows = await conn.fetch(
            f"SELECT meter_id, {bucket} AS bucket, sum(event_count), sum(value_sum) FROM {table} "
            f"WHERE {hours} GROUP BY 1, 2", [m.id for m in additive], first_hour, last_hour, *scope)
        counts = {m.id for m in additive if m.aggregation == "COUNT"}
        for meter_id, at, count, total in rows:
            add(meter_id, at, Decimal(count) if meter_id in counts else total)
    if per_account_sql:
        # Each account's value per bucket: whole UTC days from the daily rollups, the hours around them
        # from the hourly ones (HOUR buckets: hourly only). [$4, $5) are the days; $6 the accounts.
        first_day, last_day = _whole_days(first_hour, last_hour) if period != "HOUR" else (last_hour, last_hour)
        account_filter = " AND account_id = ANY($6::text[])" if accounts is not None else ""
        parts = (
            f"SELECT account_id, meter_id, hour AS at, value_max, latest_time, latest_id, latest_value FROM {HOURLY.name} "
            "WHERE meter_id = ANY($1::text[]) AND ((hour >= $2 AND hour < $4) OR (hour >= $5 AND hour < $3))"
            f"{account_filter} UNION ALL "
            f"SELECT account_id, meter_id, day, value_max, latest_time, latest_id, latest_value FROM {DAILY.name} "
            f"WHERE meter_id = ANY($1::text[]) AND day >= $4 AND day < $5{account_filter}"
        )
        per_bucket = bucket_sql("at", period)
        # MAX and LATEST apart: an ordered aggregate starts a sort per group, which MAX groups need not
        # pay for; LATEST takes each account's newest row per bucket with one DISTINCT ON sort.
        maxima = [m.id for m in per_account_sql if not m.is_latest]
        latest = [m.id for m in per_account_sql if m.is_latest]
        queries = []
        if maxima:
            queries.append((
                "SELECT meter_id, bucket, sum(value) FROM ("
                f"  SELECT account_id, meter_id, {per_bucket} AS bucket, max(value_max) AS value FROM ({parts}) AS p "
                "  GROUP BY 1, 2, 3) AS per_account GROUP BY 1, 2", maxima))
        if latest:
            queries.append((
                "SELECT meter_id, bucket, sum(latest_value) FROM ("
                f"  SELECT DISTINCT ON (account_id, meter_id, bucket) account_id, meter_id, {per_bucket} AS bucket, "
                f"    latest_value FROM ({parts}) AS p WHERE latest_time IS NOT NULL "
                f"  ORDER BY account_id, meter_id, bucket, {ROLLUP_LATEST_ORDER}"
                ") AS per_account GROUP BY 1, 2", latest))
        for sql, ids in queries:
            for meter_id, at, value in await conn.fetch(sql, ids, first_hour, last_hour, first_day, last_day, *scope):
                add(meter_id, at, value)
    # Edges of the additive meters (a few raw rows), and everything else, per account.
    raw_parts: list[tuple[list[MeterSql], datetime, datetime]] = [
        (additive, a, b) for a, b in split.edges if additive] + ([(rest, start, end)] if rest else [])
    for part_meters, part_start, part_end in raw_parts:
        by_account = await usage_by_bucket(session, part_meters, start=part_start, end=part_end, period=period,
                                           account_ids=accounts)
        for (_, meter_id, at), value in by_account.items():
            add(meter_id, at, value)
    return summed


class QuantitySource(Protocol):
    """`meter_quantities`' signature (tests inject their own source into bill runs)."""

    def __call__(self, session: AsyncSession, *, start: datetime, end: datetime,
                 account_ids: Sequence[str] | None = None,
                 meter_ids: Sequence[str] | None = None) -> Awaitable[dict[tuple[str, str], Decimal]]: ...


Window = tuple[str, datetime, datetime]  # (account, start, end)


async def quantities_by_window(
    session: AsyncSession, wanted: Iterable[tuple[str, datetime, datetime, Iterable[str]]], *,
    source: QuantitySource = meter_quantities,
) -> dict[Window, dict[str, Decimal]]:
    """(account, start, end) -> {meter: quantity} for each wanted (account, start, end, meter ids), with one
    `source` call per distinct window over all the accounts and meters wanted in it (bill runs, DRAFT
    reads and the pricing lab price many accounts' identical periods)."""
    windows: dict[tuple[datetime, datetime], tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for account_id, start, end, meter_ids in wanted:
        accounts_in, meters_in = windows[(start, end)]
        accounts_in.add(account_id)
        meters_in.update(meter_ids)
    found: dict[Window, dict[str, Decimal]] = defaultdict(dict)
    for (start, end), (accounts_in, meters_in) in windows.items():
        if not meters_in:
            continue
        quantities = await source(session, start=start, end=end, account_ids=sorted(accounts_in),
                                  meter_ids=sorted(meters_in))
        for (account_id, meter_id), quantity in quantities.items():
            found[(account_id, start, end)][meter_id] = quantity
    return found


def data_error(exc: Exception) -> BaseException | None:
    """The database's error when `exc` is a data exception (SQLSTATE class 22: a numeric overflow, a division by zero,
    a cast: what a stored row can cause), else None (a deadlock, a lost connection: never one account's)."""
    if isinstance(exc, DBAPIError):
        cause = exc.orig.__cause__ or exc.orig if exc.orig is not None else None
        return cause if isinstance(cause, asyncpg.DataError) else None
    return exc if isinstance(exc, asyncpg.DataError) else None


T = TypeVar("T")


async def isolated_reads(conn: Any, account_ids: list[str], read: Callable[[list[str]], Awaitable[T]]
                         ) -> tuple[list[T], dict[str, Conflict]]:
    """`read` of all `account_ids` at once, in a savepoint (so the transaction stays usable when the database refuses
    it; in autocommit, as get_metrics reads, none is needed: a refused statement leaves nothing behind). When it fails
    with a data exception, each half is read again the same way, down to single accounts: one bad account among n
    costs about 2 log2(n) reads, not n. Returns the reads that succeeded and the accounts whose own read fails, each
    with why. Every read that meters many accounts at once goes through it: the bill run's usage and late usage
    (billing/close.py), the DRAFTs' (invoices/drafts.py) and REVENUE's between a period's bounds (metrics/revenue.py).
    `conn` is the asyncpg connection under the caller's session, inside its transaction unless it reads in
    autocommit (store.database.raw_connection)."""
    found: list[T] = []
    failed: dict[str, Conflict] = {}
    in_transaction = conn.is_in_transaction()

    async def attempt(some: list[str]) -> None:
        try:
            if in_transaction:
                async with conn.transaction():
                    found.append(await read(some))
            else:
                found.append(await read(some))
            return
        except Exception as exc:
            error = data_error(exc)
            if error is None:
                raise
            if len(some) == 1:
                failed[some[0]] = Conflict(
                    f"account {some[0]!r}: its usage cannot be read: the database refuses to meter its stored "
                    f"events ({error}); one of them holds what a usage meter cannot compute (an attribute edited by "
                    "hand?): list_events of the account shows it with its problem; restore the row, or void_event it "
                    "and ingest it again under a new id; the next read of its usage (a bill run, its DRAFT) tries it "
                    "again")
                return
        half = len(some) // 2
        await attempt(some[:half])
        await attempt(some[half:])

    if account_ids:
        await attempt(account_ids)
    return found, failed
