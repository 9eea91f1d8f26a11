"""REVENUE for get_metrics: usage rate card amounts, spread over time buckets so they add up exactly.

For an invoice period P and a usage rate card, let R(t) be the card's amount (rounded, as invoiced) for the
usage in [P.start, t), with R(P.start) = 0 and, once the invoice is DUE or PAID, R(P.end) = the amount on
the invoice. A bucket's revenue is R(its end) - R(its start), both clipped to P and to the query range.
The sum over the buckets covering P telescopes to R(P.end): REVENUE over a closed period equals the
invoice's usage amounts to the cent, whatever the pricing model (a base fee shows in P's first bucket).
Values are in the accounts' invoice currency; VOID invoices carry no revenue; fixed fees and true-ups are
not usage revenue and are left out.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.errors import InvalidInput
from togai_engine.invoices.compose import USAGE_LINE
from togai_engine.invoices.models import InvoiceLineRow, InvoiceRow
from togai_engine.meters.usage import meter_quantities
from togai_engine.metrics.schemas import GroupedBy, MetricDataPoints, MetricQuery
from togai_engine.plans.service import get_plans
from togai_engine.pricing import rate_usage

REVENUE_GROUPS = ("ACCOUNT_ID", "USAGE_METER_ID", "CUSTOMER_ID")
REVENUE_FILTERS = ("ACCOUNT_ID", "CUSTOMER_ID", "USAGE_METER_ID")
ZERO = Decimal(0)


async def revenue_series(
    session: AsyncSession, query: MetricQuery, start: datetime, end: datetime, *, field: str = "metricQueries"
) -> list[MetricDataPoints]:
    from togai_engine.metrics.service import _account_scope, bucket_starts

    if query.groupBy is not None and query.groupBy not in REVENUE_GROUPS:
        raise InvalidInput(f"{field}.groupBy", f"{query.groupBy!r} is not a grouping of REVENUE; use one of: "
                                               f"{', '.join(REVENUE_GROUPS)}")
    filters: dict[str, list[str]] = {}
    for i, entry in enumerate(query.filters):
        if entry.fieldName not in REVENUE_FILTERS:
            raise InvalidInput(f"{field}.filters[{i}].fieldName", f"{entry.fieldName!r} cannot filter REVENUE; use "
                                                                  f"one of: {', '.join(REVENUE_FILTERS)}")
        filters.setdefault(entry.fieldName, []).extend(entry.fieldValues)
    accounts = await _account_scope(session, filters, field)
    meters = set(filters["USAGE_METER_ID"]) if "USAGE_METER_ID" in filters else None
    buckets = bucket_starts(start, end, query.aggregationPeriod)

    stmt = select(InvoiceRow).where(InvoiceRow.period_end > start, InvoiceRow.period_start < end,
                                    InvoiceRow.status != "VOID")
    if accounts is not None:
        stmt = stmt.where(InvoiceRow.account_id.in_(accounts))
    rows = list(await session.scalars(stmt))
    if query.groupBy != "ACCOUNT_ID" and len({r.currency for r in rows}) > 1:
        raise InvalidInput(f"{field}.groupBy", "the selected accounts invoice in several currencies "
                                               f"({', '.join(sorted({r.currency for r in rows}))}); group by "
                                               "ACCOUNT_ID or filter by ACCOUNT_ID/CUSTOMER_ID to one currency")
    plans = await get_plans(session, {r.price_plan_id for r in rows})
    invoiced = await _invoiced_amounts(session, [r.id for r in rows if r.status != "DRAFT"])

    # Cut each period at the bucket boundaries inside it (and at the query range).
    cuts: dict[str, list[datetime]] = {}
    wanted: dict[tuple[datetime, datetime], tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for row in rows:
        lower, upper = max(row.period_start, start), min(row.period_end, end)
        points = [lower, *(b for b in buckets if lower < b < upper), upper]
        cuts[row.id] = points
        card_meters = {c.usageMeterId for c in plans[row.price_plan_id].rateCards.usageRateCards}
        card_meters = card_meters & meters if meters is not None else card_meters
        for point in points:
            if point > row.period_start and card_meters:
                accounts_in, meters_in = wanted[(row.period_start, point)]
                accounts_in.add(row.account_id)
                meters_in.update(card_meters)
    quantities: dict[tuple[datetime, datetime], dict[tuple[str, str], Decimal]] = {}
    for (lower, upper), (accounts_in, meters_in) in wanted.items():
        quantities[(lower, upper)] = await meter_quantities(
            session, start=lower, end=upper, account_ids=sorted(accounts_in), meter_ids=sorted(meters_in))

    values: dict[tuple[str | None, datetime], Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        plan = plans[row.price_plan_id]
        for usage in plan.usage_pricing:
            meter_id = usage.card.usageMeterId
            if meters is not None and meter_id not in meters:
                continue

            def amount(point: datetime, *, row: Any = row, usage: Any = usage, meter_id: str = meter_id) -> Decimal:
                if point <= row.period_start:
                    return ZERO
                if point == row.period_end and row.status != "DRAFT":
                    return invoiced.get((row.id, usage.card.name), ZERO)
                quantity = quantities[(row.period_start, point)].get((row.account_id, meter_id), ZERO)
                return rate_usage(usage.rate_plan, usage.rate_values[row.currency], quantity).amount

            group = {"ACCOUNT_ID": row.account_id, "USAGE_METER_ID": meter_id, "CUSTOMER_ID": row.customer_id,
                     None: None}[query.groupBy]
            points = cuts[row.id]
            previous = amount(points[0])
            for lower, upper in pairwise(points):
                current = amount(upper)
                bucket = buckets[bisect_right(buckets, lower) - 1]  # buckets[0] <= start <= lower
                values[(group, bucket)] += current - previous
                previous = current
    return _series(values, query.groupBy, buckets)


async def _invoiced_amounts(session: AsyncSession, invoice_ids: list[str]) -> dict[tuple[str, str], Decimal]:
    """(invoice, rate card name) -> the usage amount on the frozen invoice."""
    if not invoice_ids:
        return {}
    rows = await session.execute(
        select(InvoiceLineRow.invoice_id, InvoiceLineRow.rate_card_name, InvoiceLineRow.value)
        .where(InvoiceLineRow.invoice_id.in_(invoice_ids), InvoiceLineRow.line_type == USAGE_LINE))
    return {(invoice_id, name): value for invoice_id, name, value in rows.tuples()}


def _series(values: dict[tuple[str | None, datetime], Decimal], group_by: str | None,
            buckets: list[datetime]) -> list[MetricDataPoints]:
    groups: list[str | None] = sorted({g for g, _ in values if g is not None}) if group_by else [None]
    return [
        MetricDataPoints(
            groupedBy=GroupedBy(fieldName=group_by, fieldValue=group) if group_by and group is not None else None,
            timestamps=buckets,
            metricValues=[values.get((group, bucket), ZERO) for bucket in buckets],
        )
        for group in groups
    ]
