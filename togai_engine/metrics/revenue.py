"""REVENUE for get_metrics: the whole invoice (usage, fixed fees, true-up), in time buckets that add up exactly.

For an invoice period P, let R(t) be what its invoice has charged by instant t, with R(P.start) = 0:
- each usage rate card: its amount (rounded, as invoiced) for the usage in [P.start, t);
- each IN_ADVANCE fixed fee line: its amount (prorated as invoiced) from the first instant, t > P.start
  (that includes the fee of the next cycle, which this invoice carries: revenue as invoiced);
- each IN_ARREARS fixed fee, each license (seat) card, the minimum-commitment true-up, a pricing rule's line and a
  late-usage line (usage of an earlier period received after it closed, billed on this invoice): only at
  t = P.end (a card a rule UPDATEd takes its ruled value there too).
At P.end every line takes its invoiced value: the frozen line of a DUE/PAID invoice, the live composition
(`compose_invoice` over the usage so far) of a DRAFT. A bucket's revenue is R(its end) - R(its start), both
clipped to P and to the query range. The sum over the buckets covering P telescopes to R(P.end): REVENUE over
a closed period equals the invoice's totalAmount (subTotal + trueUp, before wallet credits) to the cent, and
over an open period what its DRAFT shows so far. An advance fee thus falls in the bucket holding P.start, an
arrears fee and the true-up in the bucket holding P's last instant; a base fee (a first-slab FLAT rate) in P's
first bucket. Values are in the accounts' invoice currency; VOID invoices carry no revenue.

Grouped by USAGE_METER_ID, usage amounts fall under their meter and the other lines under their rate card
name (a fixed fee's name, `minimum_commitment` for the true-up), as invoice lines name them. A USAGE_METER_ID
filter keeps those meters' usage amounts only.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.cycles import Cycle, cycle_containing
from togai_engine.errors import InvalidInput
from togai_engine.invoices.compose import (
    CREDIT_GRANT_LINE,
    FIXED_FEE_LINE,
    LATE_USAGE_LINE,
    LICENSE_LINE,
    OVERAGE_LINE,
    TRUE_UP_LINE,
    USAGE_LINE,
    usage_charge,
)
from togai_engine.invoices.drafts import compute_drafts
from togai_engine.invoices.late_usage import with_late_events
from togai_engine.invoices.models import ADVANCED, InvoiceLineRow, InvoiceRow, overlapping
from togai_engine.invoices.pricing_rules import PRICING_RULE_LINE
from togai_engine.meters.usage import meter_quantities
from togai_engine.metrics.schemas import GroupedBy, MetricDataPoints, MetricQuery
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import plans_by_association

REVENUE_GROUPS = ("ACCOUNT_ID", "USAGE_METER_ID", "CUSTOMER_ID")
REVENUE_FILTERS = ("ACCOUNT_ID", "CUSTOMER_ID", "USAGE_METER_ID")
ZERO = Decimal(0)


@dataclass(frozen=True)
class _Line:
    """A top-level invoice line as REVENUE places it."""

    line_type: str
    rate_card_name: str
    value: Decimal  # rounded, as on the invoice
    in_advance: bool  # an IN_ADVANCE fixed fee: charged from the period's first instant


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

    stmt = select(InvoiceRow).where(overlapping(start, end), InvoiceRow.status != "VOID")
    if accounts is not None:
        stmt = stmt.where(InvoiceRow.account_id.in_(accounts))
    rows = list(await session.scalars(stmt))
    if query.groupBy != "ACCOUNT_ID" and len({r.currency for r in rows}) > 1:
        raise InvalidInput(f"{field}.groupBy", "the selected accounts invoice in several currencies "
                                               f"({', '.join(sorted({r.currency for r in rows}))}); group by "
                                               "ACCOUNT_ID or filter by ACCOUNT_ID/CUSTOMER_ID to one currency")
    # an advance invoice (empty period, ADVANCED) bills no usage: only its lines are read, at its instant
    plans = await plans_by_association(session, {r.association_id for r in rows if r.invoice_type != ADVANCED})
    stored = await _stored_lines(session, [r.id for r in rows if r.status != "DRAFT"])
    drafts = await compute_drafts(session, rows)  # composed exactly as get_invoice shows them

    # Cut each period at the bucket boundaries inside it (and at the query range).
    cuts: dict[str, list[datetime]] = {}
    wanted: dict[tuple[datetime, datetime], tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for row in rows:
        lower, upper = max(row.period_start, start), min(row.period_end, end)
        points = [lower, *(b for b in buckets if lower < b < upper), upper]
        cuts[row.id] = points
        if row.invoice_type == ADVANCED:
            continue
        card_meters = {c.usageMeterId for c in plans[row.association_id].rateCards.usageRateCards}
        if meters is not None:
            card_meters &= meters
        for point in points:
            # At the period's end the amounts are the invoice's own lines (stored, or the DRAFT's composition).
            if row.period_start < point < row.period_end and card_meters:
                accounts_in, meters_in = wanted[(row.period_start, point)]
                accounts_in.add(row.account_id)
                meters_in.update(card_meters)
    quantities: dict[tuple[datetime, datetime], dict[tuple[str, str], Decimal]] = {}
    for (lower, upper), (accounts_in, meters_in) in wanted.items():
        quantities[(lower, upper)] = await meter_quantities(
            session, start=lower, end=upper, account_ids=sorted(accounts_in), meter_ids=sorted(meters_in))

    values: dict[tuple[str | None, datetime], Decimal] = defaultdict(lambda: ZERO)

    def bucket_of(instant: datetime) -> datetime:
        return buckets[bisect_right(buckets, instant) - 1]  # buckets[0] <= start <= instant

    anchors = await _anchors(session, [r for r in rows if r.invoice_type != ADVANCED])
    # A closed period's usage now includes the late events billed on a later invoice (which carries their
    # revenue): inside such a period the amount never exceeds what its own invoice charged.
    reopened = await with_late_events(session, [r.id for r in rows if r.status != "DRAFT"])
    for row in rows:
        group_of_row = {"ACCOUNT_ID": row.account_id, "CUSTOMER_ID": row.customer_id, None: None}
        if row.invoice_type == ADVANCED:
            if meters is None:
                _add_lines(values, stored.get(row.id, []), row, start, end, buckets, bucket_of, query.groupBy,
                           group_of_row)
            continue
        plan = plans[row.association_id]
        # A partial period's minimumRate counts by time share, on the way as on the invoice.
        period = Cycle(row.period_start, row.period_end)
        full_cycle = cycle_containing(plan.cycle_config, anchors[row.association_id], row.period_start)
        base = full_cycle if full_cycle != period else None
        if row.status == "DRAFT":
            composed = drafts[row.id].composed
            if composed is None:
                continue  # it cannot be computed (its invoice says why): no revenue, and no other account fails
            final = [_line(line.line_type, line.rate_card_name, line.value, line.details) for line in composed.lines]
        else:
            final = stored.get(row.id, [])
        invoiced = {line.rate_card_name: line.value for line in final if line.line_type == USAGE_LINE}
        points = cuts[row.id]
        for usage in plan.usage_pricing:
            meter_id = usage.card.usageMeterId
            if meters is not None and meter_id not in meters:
                continue

            def amount(point: datetime, *, row: Any = row, usage: Any = usage, meter_id: str = meter_id,
                       invoiced: dict[str, Decimal] = invoiced, period: Cycle = period,
                       base: Cycle | None = base, capped: bool = row.id in reopened) -> Decimal:
                if point <= row.period_start:
                    return ZERO
                if point == row.period_end:
                    return invoiced.get(usage.card.name, ZERO)
                quantity = quantities[(row.period_start, point)].get((row.account_id, meter_id), ZERO)
                charged = usage_charge(usage, row.currency, period, quantity, base).amount
                return min(charged, invoiced.get(usage.card.name, ZERO)) if capped else charged

            group = meter_id if query.groupBy == "USAGE_METER_ID" else group_of_row[query.groupBy]
            previous = amount(points[0])
            for lower, upper in pairwise(points):
                current = amount(upper)
                values[(group, bucket_of(lower))] += current - previous
                previous = current
        if meters is None:  # a meter filter keeps usage amounts only
            _add_lines(values, final, row, start, end, buckets, bucket_of, query.groupBy, group_of_row)
    return _series(values, query.groupBy, buckets)


def _add_lines(values: dict[tuple[str | None, datetime], Decimal], final: list[_Line], row: InvoiceRow,
               start: datetime, end: datetime, buckets: list[datetime], bucket_of: Any, group_by: str | None,
               group_of_row: dict[str | None, str | None]) -> None:
    """The invoice's lines but usage: paid-ahead lines at the period's start, the others at its last instant."""
    for line in final:
        if line.line_type == USAGE_LINE:
            continue
        group = line.rate_card_name if group_by == "USAGE_METER_ID" else group_of_row[group_by]
        values[(group, bucket_of(max(row.period_start, start)))] += ZERO  # every card in range has a series
        if line.in_advance and row.period_start >= start:
            values[(group, bucket_of(row.period_start))] += line.value
        elif not line.in_advance and row.period_end <= end:
            # The bucket holding the period's last instant: the one before the bucket starting at P.end.
            values[(group, buckets[bisect_left(buckets, row.period_end) - 1])] += line.value


def _line(line_type: str, rate_card_name: str | None, value: Decimal, details: dict[str, Any] | None) -> _Line:
    # a pricing rule's line (PRICING_RULE_AMOUNT, at the period's end like the true-up) is named by its rule
    return _Line(line_type, rate_card_name or (details or {}).get("pricingRule", ""), value,
                 # paid ahead: in-advance fees, and PREPAID credits sold (a credit-grant card's line)
                 line_type in (FIXED_FEE_LINE, CREDIT_GRANT_LINE)
                 and (details or {}).get("invoiceTiming") in ("IN_ADVANCE", "PREPAID"))


async def _anchors(session: AsyncSession, rows: list[InvoiceRow]) -> dict[int, datetime]:
    """Plan association id -> its cycle anchor, for the associations of `rows`."""
    found = await session.execute(select(PlanAssociationRow.id, PlanAssociationRow.anchor).where(
        PlanAssociationRow.id.in_({row.association_id for row in rows})))
    return dict(found.tuples().all())


async def _stored_lines(session: AsyncSession, invoice_ids: list[str]) -> dict[str, list[_Line]]:
    """Invoice -> the top-level lines of the frozen invoice (usage, fixed fees, true-up)."""
    if not invoice_ids:
        return {}
    rows = await session.execute(
        select(InvoiceLineRow.invoice_id, InvoiceLineRow.line_type, InvoiceLineRow.rate_card_name,
               InvoiceLineRow.value, InvoiceLineRow.details)
        .where(InvoiceLineRow.invoice_id.in_(invoice_ids), InvoiceLineRow.parent_position.is_(None),
               InvoiceLineRow.line_type.in_((USAGE_LINE, LICENSE_LINE, OVERAGE_LINE, FIXED_FEE_LINE, TRUE_UP_LINE,
                                             LATE_USAGE_LINE, PRICING_RULE_LINE))))
    lines: dict[str, list[_Line]] = defaultdict(list)
    for invoice_id, line_type, name, value, details in rows.tuples():
        lines[invoice_id].append(_line(line_type, name, value, details))
    return lines


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
