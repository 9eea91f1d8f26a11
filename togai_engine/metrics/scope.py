"""What a metric query covers: its UTC buckets and the accounts its filters select (EVENTS, USAGE, REVENUE)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountHandleRow, AccountRow
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.metrics.schemas import GroupedBy, MetricDataPoints, MetricQuery

MAX_POINTS = 300


def bucket_starts(start: datetime, end: datetime, period: str) -> list[datetime]:
    """Start of every UTC bucket overlapping [start, end); raises past MAX_POINTS."""
    first = start.replace(minute=0, second=0, microsecond=0)
    if period in ("DAY", "WEEK", "MONTH"):
        first = first.replace(hour=0)
    if period == "WEEK":
        first -= timedelta(days=first.weekday())  # ISO weeks start on Monday, as date_trunc('week')
    if period == "MONTH":
        first = first.replace(day=1)
    step = {"HOUR": relativedelta(hours=1), "DAY": relativedelta(days=1), "WEEK": relativedelta(weeks=1),
            "MONTH": relativedelta(months=1)}[period]
    starts, current = [], first
    while current < end:
        starts.append(current)
        if len(starts) > MAX_POINTS:
            raise ValueError
        try:
            current = first + step * len(starts)
        except (OverflowError, ValueError):  # past year 9999: no further bucket
            break
    return starts


def query_filters(query: MetricQuery, field: str, allowed: Sequence[str], groups: Sequence[str]) -> dict[str, list[str]]:
    """The query's filters by field name, once its groupBy is one of `groups`; every metric parses them here, so
    EVENTS, USAGE and REVENUE refuse the same mistakes with the same errors (a field given twice included)."""
    if query.groupBy is not None and query.groupBy not in groups:
        raise InvalidInput(f"{field}.groupBy", f"{query.groupBy!r} is not a grouping of {query.name}; "
                                              f"use one of: {', '.join(groups)}")
    found: dict[str, list[str]] = {}
    for i, entry in enumerate(query.filters):
        if any("\x00" in value for value in entry.fieldValues):
            raise InvalidInput(f"{field}.filters[{i}].fieldValues", "contains a NUL character; remove it")
        if entry.fieldName not in allowed:
            raise InvalidInput(f"{field}.filters[{i}].fieldName", f"{entry.fieldName!r} cannot filter "
                                                                  f"{query.name}; use one of: {', '.join(allowed)}")
        if entry.fieldName in found:
            raise InvalidInput(f"{field}.filters[{i}].fieldName", f"{entry.fieldName} is given twice; "
                                                                  "put all its values in one filter")
        found[entry.fieldName] = list(entry.fieldValues)
    return found


async def account_scope(session: AsyncSession, filters: dict[str, list[str]], field: str) -> list[str] | None:
    """Account ids selected by ACCOUNT_ID (ids or aliases) and CUSTOMER_ID filters; None = all."""
    scope: set[str] | None = None
    if "ACCOUNT_ID" in filters:
        handles = filters["ACCOUNT_ID"]
        rows = dict((await session.execute(
            select(AccountHandleRow.handle, AccountHandleRow.account_id).where(AccountHandleRow.handle.in_(handles))
        )).tuples().all())
        unknown = [h for h in handles if h not in rows]
        if unknown:
            raise NotFound(f"{field}.filters: account {unknown[0]!r} does not exist; list_accounts shows the ids")
        scope = set(rows.values())
    if "CUSTOMER_ID" in filters:
        owned = set(await session.scalars(
            select(AccountRow.id).where(AccountRow.customer_id.in_(filters["CUSTOMER_ID"]))))
        scope = owned if scope is None else scope & owned
    return sorted(scope) if scope is not None else None


def series(
    values: dict[tuple[str | None, datetime], Decimal], group_by: str | None, buckets: list[datetime]
) -> list[MetricDataPoints]:
    """One series per group (one in all without groupBy), a value per bucket start (0 where nothing fell)."""
    groups = sorted({group for group, _ in values}, key=lambda g: g or "")
    if group_by is None:
        groups = [None]
    return [
        MetricDataPoints(
            groupedBy=GroupedBy(fieldName=group_by, fieldValue=group) if group_by and group is not None else None,
            timestamps=buckets,
            metricValues=[values.get((group, bucket), Decimal(0)) for bucket in buckets],
        )
        for group in groups
    ]
