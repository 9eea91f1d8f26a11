"""REVENUE for get_metrics: the whole invoice (usage, overage, fixed fees, true-up), in time buckets that add up
exactly.

For an invoice period P, let R(t) be what its invoice has charged by instant t, with R(P.start) = 0:
- each usage rate card: its amount (rounded, as invoiced) for the usage in [P.start, t);
- each entitlement overage card: its amount (rounded, as invoiced) for the overage the usage of its feature's
  meter in [P.start, t) adds to the quota's cycle, priced as `overage_line` does: max(0, usage - featureCreditLimit),
  at most maxQuantity, for a period that starts its cycle; for one a change cut from its cycle's start S (the
  line's cycleStart), overage(usage of [S, t)) - overage(usage of [S, P.start)) (overage is billed as usage, so it
  accrues as usage does: nothing until the cycle's usage passes the limit, but a minimumRate, from the first
  instant as on a usage card);
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

Grouped by USAGE_METER_ID, usage amounts fall under their meter, overage amounts under their feature's meter
(the usage that produced them; the line's usageMeterId), and the other lines under their rate card name (a fixed
fee's name, `minimum_commitment` for the true-up), as invoice lines name them. A USAGE_METER_ID filter keeps
those meters' usage and overage amounts only: REVENUE of meter M over P is the sum of P's lines priced on M.
"""

from __future__ import annotations

import dataclasses
import logging
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from itertools import pairwise
from typing import Any

from sqlalchemy import String, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.numbers import EXACT_MONEY_CONTEXT
from togai_engine.cycles import Cycle, CycleConfig, cycle_containing
from togai_engine.errors import Conflict, EngineError, InvalidInput
from togai_engine.invoices.compose import (
    CREDIT_GRANT_LINE,
    FIXED_FEE_LINE,
    OVERAGE_LINE,
    USAGE_LINE,
    overage_quantity,
    usage_charge,
)
from togai_engine.invoices.drafts import compute_drafts
from togai_engine.invoices.late_usage import with_late_events
from togai_engine.invoices.models import ADVANCED, InvoiceLineRow, InvoiceRow, overlapping
from togai_engine.meters.usage import isolated_reads, meter_quantities
from togai_engine.metrics.schemas import GroupedBy, MetricDataPoints, MetricQuery
from togai_engine.metrics.scope import account_scope, query_filters
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import plans_by_association
from togai_engine.plans.schemas import OveragePricing, PricePlan, UsagePricing
from togai_engine.pricing.money import minor_unit
from togai_engine.store.arrays import any_of
from togai_engine.store.database import raw_connection

REVENUE_GROUPS = ("ACCOUNT_ID", "USAGE_METER_ID", "CUSTOMER_ID")
REVENUE_FILTERS = ("ACCOUNT_ID", "CUSTOMER_ID", "USAGE_METER_ID")
ACCRUED_LINES = (USAGE_LINE, OVERAGE_LINE)  # priced on a meter's usage: they accrue with it, under that meter
ZERO = Decimal(0)
log = logging.getLogger("togai_engine.metrics")
_Group = tuple[str | None, str | None]  # a series of REVENUE: (its groupBy value, its currency)
# the invoice columns REVENUE reads (rows of them stand for InvoiceRow below: same attribute names)
_INVOICE_COLUMNS = (InvoiceRow.id, InvoiceRow.account_id, InvoiceRow.customer_id, InvoiceRow.association_id,
                    InvoiceRow.period_start, InvoiceRow.period_end, InvoiceRow.status, InvoiceRow.currency,
                    InvoiceRow.invoice_type)


@dataclass(frozen=True)
class _Line:
    """A top-level invoice line as REVENUE places it."""

    line_type: str
    rate_card_name: str
    value: Decimal  # rounded, as on the invoice
    in_advance: bool  # an IN_ADVANCE fixed fee: charged from the period's first instant
    meter_id: str | None = None  # the meter a usage or overage line is priced on
    cycle_start: datetime | None = None  # an overage line's quota cycle start (absent on lines billed before it)


async def revenue_series(
    session: AsyncSession, query: MetricQuery, start: datetime, end: datetime, buckets: list[datetime], *,
    field: str = "metricQueries",
) -> list[MetricDataPoints]:
    filters = query_filters(query, field, REVENUE_FILTERS, REVENUE_GROUPS)
    accounts = await account_scope(session, filters, field)
    meters = set(filters["USAGE_METER_ID"]) if "USAGE_METER_ID" in filters else None
    placed = _Series(start, end, buckets, query.groupBy)

    # the columns REVENUE reads, not ORM entities (their identity map and state cost more than the rest per invoice)
    stmt = select(*_INVOICE_COLUMNS).where(overlapping(start, end), InvoiceRow.status != "VOID")
    if accounts is not None:
        stmt = stmt.where(any_of(InvoiceRow.account_id, accounts))
    rows: list[Any] = list((await session.execute(stmt)).all())
    if query.groupBy != "ACCOUNT_ID" and len({r.currency for r in rows}) > 1:
        raise InvalidInput(f"{field}.groupBy", "the selected accounts invoice in several currencies "
                                               f"({', '.join(sorted({r.currency for r in rows}))}); group by "
                                               "ACCOUNT_ID or filter by ACCOUNT_ID/CUSTOMER_ID to one currency")
    # an advance invoice (empty period, ADVANCED) bills no usage: only its lines are read, at its instant
    plans = await plans_by_association(session, {r.association_id for r in rows if r.invoice_type != ADVANCED})
    # what each plan prices, read once per plan, not per invoice (plans are shared by their associations' invoices;
    # `plans` keeps every one alive through the call, so id() names one plan only)
    plan_facts: dict[int, _PlanFacts] = {}

    def _facts(plan: PricePlan) -> _PlanFacts:
        if (found := plan_facts.get(id(plan))) is None:
            cards = _metered_cards(plan, meters)
            found = plan_facts[id(plan)] = _PlanFacts(plan.cycle_config, cards, {card.meter_id for card in cards})
        return found

    stored = await _stored_lines(session, [r.id for r in rows if r.status != "DRAFT"])
    # composed exactly as get_invoice shows them (from the DRAFTs' whole rows)
    draft_ids = [r.id for r in rows if r.status == "DRAFT"]
    drafts = await compute_drafts(session, list(await session.scalars(
        select(InvoiceRow).where(any_of(InvoiceRow.id, draft_ids))))) if draft_ids else {}

    finals: dict[str, list[_Line]] = {}  # the lines each invoice comes to (absent: a DRAFT that cannot be computed)
    for row in rows:
        if row.status != "DRAFT":
            finals[row.id] = stored.get(row.id, [])
        # get_metrics reads in autocommit: a DRAFT a plan change dropped, or a bill run closed, after the first
        # read is not among the DRAFTs the second one composed; it counts nothing in this read (as one that cannot
        # be computed), never failing the others'
        elif (draft := drafts.get(row.id)) is not None and (composed := draft.composed) is not None:
            finals[row.id] = [_line(line.line_type, line.rate_card_name, line.value, line.details,
                                    line.usage_meter_id) for line in composed.lines]
    # Cut each period at the bucket boundaries inside it (and at the query range).
    cuts: dict[str, list[datetime]] = {}
    from_cycles: dict[str, dict[str, tuple[datetime, str]]] = {}  # invoice -> _cycle_starts of its final lines
    wanted: dict[tuple[datetime, datetime], tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for row in rows:
        lower, upper = max(row.period_start, start), min(row.period_end, end)
        points = [lower, *(b for b in buckets if lower < b < upper), upper]
        cuts[row.id] = points
        if row.invoice_type == ADVANCED or row.id not in finals:
            continue  # a DRAFT that cannot be computed counts nothing (below): no usage to read
        # the usage of every meter a card accrues on: usage cards' meters and overage cards' features' meters
        plan = plans.get(row.association_id)  # None: it cannot be resolved (below)
        accrued_meters = _facts(plan).accrued_meters if plan is not None else set()
        from_cycle = from_cycles[row.id] = _cycle_starts(row, finals[row.id])
        for point in points:
            # At the period's end the amounts are the invoice's own lines (stored, or the DRAFT's composition).
            if row.period_start < point < row.period_end and accrued_meters:
                accounts_in, meters_in = wanted[(row.period_start, point)]
                accounts_in.add(row.account_id)
                meters_in.update(accrued_meters)
                # an overage line based on its quota's cycle: that cycle's usage before the period and up to point
                for cycle_start, meter_id in from_cycle.values():
                    for upper in (row.period_start, point):
                        accounts_in, meters_in = wanted[(cycle_start, upper)]
                        accounts_in.add(row.account_id)
                        meters_in.add(meter_id)
    # one statement per window over every account; an account whose stored events the database refuses to meter is
    # found by halves (isolated_reads): its usage in that window is unreadable (_Accrual._usage raises why)
    quantities: dict[tuple[datetime, datetime], dict[tuple[str, str], Decimal]] = {}
    unreadable: dict[tuple[datetime, datetime], dict[str, Conflict]] = {}
    conn = await raw_connection(session) if wanted else None
    for (lower, upper), (accounts_in, meters_in) in wanted.items():
        read, unreadable[(lower, upper)] = await isolated_reads(conn, sorted(accounts_in), partial(
            _window_quantities, session, lower, upper, sorted(meters_in)))
        quantities[(lower, upper)] = {key: found for part in read for key, found in part.items()}

    anchors = await _anchors(session, [r for r in rows if r.invoice_type != ADVANCED])
    periods: dict[tuple[CycleConfig, datetime, datetime, datetime], tuple[Cycle, Cycle | None]] = {}
    charges: dict[tuple[int, str, Cycle, Cycle | None, Decimal], Decimal] = {}  # _Accrual.charges
    # A closed period's usage now includes the late events billed on a later invoice (which carries their
    # revenue): inside such a period the amount never exceeds what its own invoice charged.
    reopened = await with_late_events(session, [r for r in rows if r.status != "DRAFT"])
    for row in rows:
        if row.invoice_type == ADVANCED:
            if meters is None:
                placed.add_lines(row, stored.get(row.id, []))
            continue
        if row.id not in finals:
            continue  # a DRAFT that cannot be computed (its invoice says why): no revenue, no other account fails
        final = finals[row.id]
        plan = plans.get(row.association_id)
        if plan is None:
            # A frozen invoice whose plan can no longer be resolved (its account's stored deal no longer validates;
            # its DRAFTs and bill runs say why): its usage cannot be placed as it accrued, so its lines fall whole
            # in the bucket holding the period's last instant, as an arrears fee: the period still adds up.
            log.warning("REVENUE of invoice %s (account %s): its plan cannot be resolved; its lines are placed at "
                        "the period's end", row.id, row.account_id)
            placed.add_lines(row, [line for line in final if meters is None or (
                line.line_type in ACCRUED_LINES and line.meter_id in meters)], accrued_at_end=True)
            continue
        facts = _facts(plan)
        # many invoices share a schedule, an anchor and a period: each (period, full cycle) is worked out once
        cycle_key = (facts.cycle_config, anchors[row.association_id], row.period_start, row.period_end)
        if (cycles := periods.get(cycle_key)) is None:
            period = Cycle(row.period_start, row.period_end)
            full_cycle = cycle_containing(facts.cycle_config, anchors[row.association_id], row.period_start)
            cycles = periods[cycle_key] = (period, full_cycle if full_cycle != period else None)
        period, partial_of = cycles
        accrual = _Accrual(row, period, partial_of,
                           {(line.line_type, line.rate_card_name): line.value for line in final
                            if line.line_type in ACCRUED_LINES},
                           row.id in reopened, quantities, unreadable,
                           {name: start for name, (start, _) in from_cycles[row.id].items()}, charges)
        for card in facts.metered_cards:
            placed.add_accrued(placed.group(row, card.meter_id), cuts[row.id],
                               _accrued_or_at_end(accrual, card, cuts[row.id]))
        if meters is None:  # a meter filter keeps the meters' usage and overage amounts only
            placed.add_lines(row, final)
    return placed.data()


@dataclass(frozen=True)
class _PlanFacts:
    """What REVENUE reads of a plan, for all the invoices it prices."""

    cycle_config: CycleConfig
    metered_cards: list[UsagePricing]  # _metered_cards
    accrued_meters: set[str]  # their meters


def _metered_cards(plan: PricePlan, meters: set[str] | None) -> list[UsagePricing]:
    """The plan's cards priced on a meter's usage, that a USAGE_METER_ID filter (`meters`, None: all) keeps: its
    usage cards, and its entitlement overage cards on their feature's meter."""
    return [card for card in (*plan.usage_pricing, *plan.overage_pricing) if meters is None or card.meter_id in meters]


@dataclass(frozen=True)
class _Accrual:
    """R(t) of a period's metered cards: what each has charged for the usage in [period.start, t)."""

    row: InvoiceRow
    period: Cycle
    full_cycle: Cycle | None  # of a partial period: its minimumRate counts by time share, as on the invoice
    invoiced: dict[tuple[str, str], Decimal]  # (line type, card name) -> the value of its line on the invoice
    capped: bool  # late events reopened the period: never more than its invoice charged
    quantities: dict[tuple[datetime, datetime], dict[tuple[str, str], Decimal]]  # [start, t) -> (account, meter)
    unreadable: dict[tuple[datetime, datetime], dict[str, Conflict]]  # [start, t) -> account -> why it cannot be read
    cycle_starts: dict[str, datetime]  # overage card name -> its quota cycle's start before the period (_cycle_starts)
    # (card, currency, period, full cycle, quantity) -> usage_charge's amount, shared by the call's invoices: a card
    # prices the same quantity alike (a pure function of these), and many points repeat one (no usage since the
    # last cut, accounts without usage). Cards are the plans' own objects, alive through the call: id() names one.
    charges: dict[tuple[int, str, Cycle, Cycle | None, Decimal], Decimal]

    def line_value(self, card: UsagePricing) -> Decimal:
        """The value of the card's line on the invoice (0 when it has none)."""
        line_type = OVERAGE_LINE if isinstance(card, OveragePricing) else USAGE_LINE
        return self.invoiced.get((line_type, card.card.name or ""), ZERO)

    def _usage(self, start: datetime, end: datetime, meter_id: str) -> Decimal:
        if start == end:
            return ZERO
        if (unread := self.unreadable[(start, end)].get(self.row.account_id)) is not None:
            raise unread  # its line is placed at the period's end (_accrued_or_at_end)
        return self.quantities[(start, end)].get((self.row.account_id, meter_id), ZERO)

    def amount(self, card: UsagePricing, point: datetime) -> Decimal:
        invoiced = self.line_value(card)
        if point <= self.period.start:
            return ZERO
        if point == self.period.end:
            return invoiced
        usage = self._usage(self.period.start, point, card.meter_id)
        # an overage card prices the overage its usage so far adds to the quota's cycle, exactly as overage_line does
        if isinstance(card, OveragePricing):
            cycle_start = self.cycle_starts.get(card.card.name or "")
            quantity = overage_quantity(card, usage) if cycle_start is None else overage_quantity(
                card, self._usage(cycle_start, point, card.meter_id),
                self._usage(cycle_start, self.period.start, card.meter_id))
        else:
            quantity = usage
        key = (id(card), self.row.currency, self.period, self.full_cycle, quantity)
        if (charged := self.charges.get(key)) is None:
            charged = self.charges[key] = usage_charge(card, self.row.currency, self.period, quantity,
                                                       self.full_cycle).amount
        return min(charged, invoiced) if self.capped else charged


async def _window_quantities(session: AsyncSession, start: datetime, end: datetime, meter_ids: list[str],
                             account_ids: list[str]) -> dict[tuple[str, str], Decimal]:
    return await meter_quantities(session, start=start, end=end, account_ids=account_ids, meter_ids=meter_ids)


def _cycle_starts(row: InvoiceRow, lines: list[_Line]) -> dict[str, tuple[datetime, str]]:
    """Overage card name -> (its quota cycle's start, its meter) for the overage lines of `lines` based on a cycle
    that started before the row's period (a change cut it); lines billed before overage counted the cycle have
    none: their period's usage alone, as they were billed."""
    return {line.rate_card_name: (line.cycle_start, line.meter_id) for line in lines
            if line.line_type == OVERAGE_LINE and line.cycle_start is not None and line.meter_id is not None
            and line.cycle_start < row.period_start}


def _accrued_or_at_end(accrual: _Accrual, card: UsagePricing, points: list[datetime]) -> Callable[[datetime], Decimal]:
    """R(t) of the card at `points`. When its usage cannot be priced at one of them (data no policy covers, e.g. an
    invoice in a currency its plan does not price), its line falls whole in the bucket holding the period's last
    instant, as an arrears fee does: the period still adds up to its invoice, and no other account's REVENUE fails."""
    try:
        amounts = {point: accrual.amount(card, point) for point in points}
    except Exception as exc:  # one account's bad data must not fail a query over many
        log.warning("REVENUE of invoice %s (account %s), card %r: its usage cannot be priced between its period's "
                    "bounds (%s); its line is placed at the period's end", accrual.row.id, accrual.row.account_id,
                    card.card.name, exc, exc_info=not isinstance(exc, EngineError))
        amounts = {point: accrual.line_value(card) if point == accrual.period.end else ZERO for point in points}
    return amounts.__getitem__


@dataclass
class _Series:
    """Where REVENUE puts amounts: the query's range [start, end), its bucket starts and groupBy, and the sums
    so far by ((group, currency), bucket start)."""

    start: datetime
    end: datetime
    buckets: list[datetime]
    group_by: str | None
    values: defaultdict[tuple[_Group, datetime], Decimal] = dataclasses.field(
        default_factory=lambda: defaultdict(lambda: ZERO))

    def group(self, row: InvoiceRow, billable: str) -> _Group:
        """The series an amount of `row` falls in, with the invoice's currency (two are never added: an account
        whose invoiceCurrency changed has a series per currency); `billable` (a meter id, else a rate card name)
        names it under USAGE_METER_ID."""
        group_by = self.group_by  # one of REVENUE_GROUPS or None (query_filters refuses any other)
        return (row.account_id if group_by == "ACCOUNT_ID" else row.customer_id if group_by == "CUSTOMER_ID"
                else billable if group_by == "USAGE_METER_ID" else None, row.currency)

    def add(self, group: _Group, bucket: datetime, amount: Decimal) -> None:
        """`amount` into the series' bucket, exactly."""
        self.values[(group, bucket)] = EXACT_MONEY_CONTEXT.add(self.values[(group, bucket)], amount)

    def bucket_of(self, instant: datetime) -> datetime:
        return self.buckets[bisect_right(self.buckets, instant) - 1]  # buckets[0] <= start <= instant

    def add_accrued(self, group: _Group, points: list[datetime], amount: Callable[[datetime], Decimal]) -> None:
        """R(upper) - R(lower) of each cut [lower, upper) of a period into the bucket holding it."""
        previous = amount(points[0])
        for lower, upper in pairwise(points):
            current = amount(upper)
            self.add(group, self.bucket_of(lower), EXACT_MONEY_CONTEXT.subtract(current, previous))
            previous = current

    def add_lines(self, row: InvoiceRow, lines: list[_Line], *, accrued_at_end: bool = False) -> None:
        """The invoice's lines but the accrued ones (with `accrued_at_end`, those too, under their meter, as
        arrears lines): paid-ahead lines at the period's start, the others at its last instant."""
        for line in lines:
            accrued = line.line_type in ACCRUED_LINES
            if accrued and not accrued_at_end:
                continue
            group = self.group(row, (line.meter_id or line.rate_card_name) if accrued else line.rate_card_name)
            # every card in range has a series
            self.add(group, self.bucket_of(max(row.period_start, self.start)), ZERO)
            if line.in_advance and row.period_start >= self.start:
                self.add(group, self.bucket_of(row.period_start), line.value)
            elif not line.in_advance and row.period_end <= self.end:
                # The bucket holding the period's last instant: the one before the bucket starting at P.end.
                self.add(group, self.buckets[bisect_left(self.buckets, row.period_end) - 1], line.value)

    def data(self) -> list[MetricDataPoints]:
        """One series per (group, currency), sorted; without groupBy the one series (its currency is the only one,
        revenue_series refuses several), all zeros without invoices."""
        groups = sorted({group for group, _ in self.values}, key=lambda g: (g[0] or "", g[1] or ""))
        if self.group_by is None and not groups:
            groups = [(None, None)]
        return [
            MetricDataPoints(
                # no group name is None under a groupBy: every line names one
                groupedBy=GroupedBy(fieldName=self.group_by, fieldValue=name) if self.group_by and name is not None else None,
                currency=currency, timestamps=self.buckets,
                metricValues=[_in_minor_unit(self.values.get(((name, currency), bucket), ZERO), currency)
                              for bucket in self.buckets])
            for name, currency in groups
        ]


def _in_minor_unit(amount: Decimal, currency: str | None) -> Decimal:
    """`amount` written with at least the currency's decimals: an empty bucket, or one whose sum is the exact
    integer 0, reads "0.00" beside "8.00" in USD. Adding a zero never rounds."""
    return amount if currency is None else EXACT_MONEY_CONTEXT.add(amount, minor_unit(currency) * 0)


def _line(line_type: str, rate_card_name: str | None, value: Decimal, details: dict[str, Any] | None,
          meter_id: str | None) -> _Line:
    details = details or {}
    return _placed(line_type, rate_card_name, value, meter_id, details.get("pricingRule"),
                   details.get("invoiceTiming"), details.get("cycleStart"))


def _placed(line_type: str, rate_card_name: str | None, value: Decimal, meter_id: str | None,
            pricing_rule: str | None, invoice_timing: str | None, cycle_start: str | None) -> _Line:
    """The line from its details' pricingRule, invoiceTiming and cycleStart (None: absent)."""
    # a pricing rule's line (PRICING_RULE_AMOUNT, at the period's end like the true-up) is named by its rule
    cycle_start = cycle_start if line_type == OVERAGE_LINE else None
    return _Line(line_type, rate_card_name or pricing_rule or "", value,
                 # paid ahead: in-advance fees, and PREPAID credits sold (a credit-grant card's line)
                 line_type in (FIXED_FEE_LINE, CREDIT_GRANT_LINE) and invoice_timing in ("IN_ADVANCE", "PREPAID"),
                 meter_id, None if cycle_start is None else datetime.fromisoformat(cycle_start))


async def _anchors(session: AsyncSession, rows: list[InvoiceRow]) -> dict[int, datetime]:
    """Plan association id -> its cycle anchor, for the associations of `rows`."""
    found = await session.execute(select(PlanAssociationRow.id, PlanAssociationRow.anchor).where(
        any_of(PlanAssociationRow.id, {row.association_id for row in rows})))
    return dict(found.tuples().all())


def _detail(key: str) -> Any:
    """details ->> 'key' (the key written in the SQL, a constant: the statement's one parameter stays the array)."""
    return InvoiceLineRow.details.op("->>", return_type=String)(literal_column(f"'{key}'"))


async def _stored_lines(session: AsyncSession, invoice_ids: list[str]) -> dict[str, list[_Line]]:
    """Invoice -> the top-level lines of the frozen invoice, every kind (usage, licenses, overage, fixed fees,
    PREPAID credits sold, true-up, late usage, pricing rules): the invoice's total is their sum, so REVENUE reads
    them all rather than a list of kinds to keep in step with compose."""
    if not invoice_ids:
        return {}
    # the three keys of details REVENUE reads, as text, rather than each line's whole details decoded
    rows = await session.execute(
        select(InvoiceLineRow.invoice_id, InvoiceLineRow.line_type, InvoiceLineRow.rate_card_name,
               InvoiceLineRow.value, InvoiceLineRow.usage_meter_id, _detail("pricingRule"), _detail("invoiceTiming"),
               _detail("cycleStart"))
        .where(any_of(InvoiceLineRow.invoice_id, invoice_ids), InvoiceLineRow.parent_position.is_(None)))
    lines: dict[str, list[_Line]] = defaultdict(list)
    for invoice_id, line_type, name, value, meter_id, pricing_rule, timing, cycle_start in rows.tuples():
        lines[invoice_id].append(_placed(line_type, name, value, meter_id, pricing_rule, timing, cycle_start))
    return lines
