"""get_metrics: EVENTS and USAGE series over UTC buckets; REVENUE is computed from invoices in revenue.py.

USAGE is computed by `meters.usage.usage_by_bucket`, the same code as `meter_quantities`, so a
USAGE series summed over a billing period equals the quantity invoiced for it; a series not grouped
by account adds the same per-account quantities up in SQL (`meters.usage.usage_summed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountRow
from togai_engine.common.numbers import EXACT_QUANTITY_CONTEXT
from togai_engine.common.validation import utc_instant
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.events.ingest import VOIDED
from togai_engine.meters.catalog import meters_by_ids
from togai_engine.meters.sql import bucket_sql
from togai_engine.meters.usage import usage_by_bucket, usage_summed
from togai_engine.metrics.revenue import revenue_series
from togai_engine.metrics.schemas import (
    GetMetricsResponse,
    MetricDataPoints,
    MetricQuery,
    MetricQueryResponse,
)
from togai_engine.metrics.scope import MAX_POINTS, account_scope, bucket_starts, query_filters, series
from togai_engine.store.arrays import any_of
from togai_engine.store.database import raw_connection

MAX_QUERIES = 5
EVENTS_GROUPS = ("ACCOUNT_ID", "SCHEMA_NAME", "EVENT_STATUS")
EVENTS_FILTERS = ("ACCOUNT_ID", "CUSTOMER_ID", "SCHEMA_NAME", "EVENT_STATUS")
USAGE_GROUPS = ("ACCOUNT_ID", "USAGE_METER_ID", "CUSTOMER_ID")
USAGE_FILTERS = ("ACCOUNT_ID", "CUSTOMER_ID", "USAGE_METER_ID")
_EVENT_COLUMNS = {"ACCOUNT_ID": "e.account_id", "SCHEMA_NAME": "e.schema_name", "EVENT_STATUS": "e.status"}


async def get_metrics(
    session: AsyncSession, start: datetime, end: datetime, queries: Sequence[MetricQuery]
) -> GetMetricsResponse:
    start, end = utc_instant(start, "startTime"), utc_instant(end, "endTime")
    if end <= start:
        raise InvalidInput("endTime", "must be after startTime (startTime is inclusive, endTime exclusive)")
    if not 1 <= len(queries) <= MAX_QUERIES:
        raise InvalidInput("metricQueries", f"send 1 to {MAX_QUERIES} queries; got {len(queries)}")
    ids = [q.id for q in queries]
    if len(set(ids)) != len(ids):
        raise InvalidInput("metricQueries", "each query needs a distinct id")
    results = []
    for index, query in enumerate(queries):
        field = f"metricQueries[{index}]"
        try:
            buckets = bucket_starts(start, end, query.aggregationPeriod)
        except ValueError:
            raise InvalidInput(
                f"{field}.aggregationPeriod",
                f"{query.aggregationPeriod} buckets over this range give more than {MAX_POINTS} points per series; "
                "use a longer aggregationPeriod (e.g. DAY, WEEK or MONTH) or a shorter time range",
            ) from None
        _check_configs(query, field)
        if query.name == "EVENTS":
            data = await _events(session, query, field, start, end, buckets)
        elif query.name in ("USAGE", "METER_USAGE"):
            data = await _usage(session, query, field, start, end, buckets)
        else:
            data = await revenue_series(session, query, start, end, buckets, field=field)
        results.append(MetricQueryResponse(id=query.id, name=query.name, data=data))
    return GetMetricsResponse(results=results)


def _check_configs(query: MetricQuery, field: str) -> None:
    """Togai's REVENUE config {CURRENCY: INVOICE} is what REVENUE does (amounts in the accounts' invoice
    currency); BASE needs exchange rates, which this engine does not keep. Anything else is refused."""
    for key, value in (query.configs or {}).items():
        if query.name != "REVENUE":
            raise InvalidInput(f"{field}.configs", f"{query.name} takes no configs; remove them")
        if key != "CURRENCY":
            raise InvalidInput(f"{field}.configs.{key}", "is not a REVENUE config; the only one is CURRENCY")
        if value != "INVOICE":
            raise InvalidInput(f"{field}.configs.CURRENCY",
                               f"{value!r} is not supported: amounts are in each account's invoice currency "
                               "(no exchange rates are kept); use INVOICE or omit configs")


async def _events(
    session: AsyncSession, query: MetricQuery, field: str, start: datetime, end: datetime, buckets: list[datetime]
) -> list[MetricDataPoints]:
    filters = query_filters(query, field, EVENTS_FILTERS, EVENTS_GROUPS)
    accounts = await account_scope(session, filters, field)
    conditions = ["e.event_time >= $1", "e.event_time < $2"]
    args: list[Any] = [start, end]
    for column, values in (("e.account_id", accounts), ("e.schema_name", filters.get("SCHEMA_NAME")),
                           ("e.status", filters.get("EVENT_STATUS"))):
        if values is not None:
            args.append(values)
            conditions.append(f"{column} = ANY(${len(args)}::text[])")
    if "EVENT_STATUS" not in filters:
        conditions.append(f"e.status <> '{VOIDED}'")  # a voided event is not usage: counted only when asked for
    group = _EVENT_COLUMNS[query.groupBy] if query.groupBy else "CAST(NULL AS text)"
    conn = await raw_connection(session)
    rows = await conn.fetch(
        f"SELECT {group} AS grp, {bucket_sql('e.event_time', query.aggregationPeriod)} AS bucket, count(*) FROM events e "
        f"WHERE {' AND '.join(conditions)} GROUP BY grp, bucket",
        *args,
    )
    return series({(grp, bucket): Decimal(count) for grp, bucket, count in rows}, query.groupBy, buckets)


async def _usage(
    session: AsyncSession, query: MetricQuery, field: str, start: datetime, end: datetime, buckets: list[datetime]
) -> list[MetricDataPoints]:
    filters = query_filters(query, field, USAGE_FILTERS, USAGE_GROUPS)
    accounts = await account_scope(session, filters, field)
    meter_ids = filters.get("USAGE_METER_ID")
    meters = await meters_by_ids(session, meter_ids)
    if meter_ids is not None:
        missing = sorted(set(meter_ids) - {m.id for m in meters})
        if missing:
            raise NotFound(f"{field}.filters: usage meter {missing[0]!r} does not exist; "
                           "list_usage_meters shows the ids")
    if query.groupBy in (None, "USAGE_METER_ID"):
        # Not grouped by account: summed over accounts in SQL (meters.usage.usage_summed), the same numbers
        # as adding up the per-account quantities below.
        summed = await usage_summed(session, meters, start=start, end=end, period=query.aggregationPeriod,
                                    account_ids=accounts)
        grouped: dict[tuple[str | None, datetime], Decimal] = {}
        for (meter_id, bucket), quantity in summed.items():
            key = (meter_id if query.groupBy else None, bucket)
            grouped[key] = EXACT_QUANTITY_CONTEXT.add(grouped.get(key, Decimal(0)), quantity)  # type: ignore[index]
        return series(grouped, query.groupBy, buckets)
    quantities = await usage_by_bucket(session, meters, start=start, end=end, period=query.aggregationPeriod,
                                       account_ids=accounts)
    customer_of: dict[str, str] = {}
    if query.groupBy == "CUSTOMER_ID" and quantities:
        customer_of = dict((await session.execute(
            select(AccountRow.id, AccountRow.customer_id)
            .where(any_of(AccountRow.id, sorted({a for a, _, _ in quantities})))
        )).tuples().all())
    values: dict[tuple[str | None, datetime], Decimal] = {}
    for (account_id, _, bucket), quantity in quantities.items():
        # ACCOUNT_ID or CUSTOMER_ID: the other groupings returned above
        key = (account_id if query.groupBy == "ACCOUNT_ID" else customer_of.get(account_id), bucket)
        values[key] = EXACT_QUANTITY_CONTEXT.add(values.get(key, Decimal(0)), quantity)  # exact, as SQL adds
    return series(values, query.groupBy, buckets)
