"""Late usage billed on the next invoice: a plan's `lateUsage: BILL_ON_NEXT_INVOICE` (billing/README.md).

Ingest asks `late_sources` which invoice an event dated in an invoiced (DUE or PAID) period belongs to, when
that period's plan bills late usage; such an event is stored ACCEPTED_LATE, feeds its meters like any metered
event, and is recorded here (`record_late_events`). The account's next invoice to close carries one line per
such period: what that period's invoice comes to now, recomposed from all its usage, minus what was invoiced
for it: the invoice recomposed from the quantities it billed (so only usage moves the difference), plus the
differences earlier late-usage lines of that period settled. Money already invoiced is never lowered
automatically beyond what the same invoice bills for the same quota cycle: a difference below zero (a later part
of a cycle whose overage the late usage moved to an earlier part) offsets the positive lines of its cycle's other
parts on the invoice, up to their sum (`_offsets`: the cycle's net is what is owed); what is left below zero is
billed as 0, the line names the invoice to credit, and the whole difference counts as settled (offset, or left to
that credit note), as does one not billed because the currencies differ. A DRAFT shows
the lines it will carry (`late_usage_lines`); the bill run computes them the same way and `claim`s the events
for the invoice it closes, holding the billing watermark that ingest takes before it records a late event, so
each late event is billed once. Until then it is owed and not invoiced: get_account shows it
(`pending_for_account`), with the invoice that carries it or why none does. Late events of a period also move the
entitlement overage of every later invoiced period of the same quota cycle (based on the cycle's usage before it,
invoices README "Overage across a cut"): such a period gets a line too when its difference is not 0, with no
events of its own (`_moved`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.schemas import PendingLatePeriod, PendingLateUsage
from togai_engine.common.numbers import EXACT_MONEY_CONTEXT, exact_sum
from togai_engine.errors import EngineError
from togai_engine.invoices.compose import LATE_USAGE_LINE, OVERAGE_LINE, USAGE_LINE, ComposedInvoice, ComposedLine
from togai_engine.invoices.display import invoice_number
from togai_engine.invoices.models import InvoiceLineRow, InvoiceRow, LateUsageEventRow
from togai_engine.invoices.periods import compose_period, period_windows, row_quota_windows
from togai_engine.licenses.service import seats_by_window
from togai_engine.meters.usage import Window, quantities_by_window
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import plans_by_association
from togai_engine.pricing.money import round_money
from togai_engine.store.arrays import any_of

BILL_ON_NEXT_INVOICE = "BILL_ON_NEXT_INVOICE"
LATE_USAGE_CARD = "late_usage"  # the rate card name of late-usage lines (REVENUE groups them under it)
MAX_LISTED_EVENTS = 100  # event ids a line lists; late_usage_events holds them all
ZERO = Decimal(0)
L = LateUsageEventRow


# --- ingest -----------------------------------------------------------------------------------------


async def late_sources(session: AsyncSession, conn: Any, events: Sequence[tuple[str, datetime]]) -> list[str | None]:
    """For each (account id, event time) dated before the account's billing watermark: the id of the DUE or
    PAID invoice whose period holds it when that invoice's plan bills late usage, else None (not billed)."""
    if not events:
        return []
    # The policy is the plan version's lateUsage as stored (a deal replaces rate cards and pricing rules, never
    # lateUsage): no plan is parsed, so one account's deal or version that no longer validates (its bill runs
    # report it) never fails a batch that names other accounts, nor decides its own events wrongly.
    rows = await conn.fetch(
        "SELECT i.id, i.account_id, i.period_start, i.period_end FROM invoices i "
        "JOIN plan_associations a ON a.id = i.association_id "
        "JOIN price_plan_versions v ON v.plan_id = a.price_plan_id AND v.version = a.version "
        "WHERE i.account_id = ANY($1::text[]) AND i.status IN ('DUE', 'PAID') AND i.period_end > $2 "
        "AND i.period_start <= $3 AND i.invoice_type = 'STANDARD' AND v.definition->>'lateUsage' = $4",
        sorted({account for account, _ in events}), min(at for _, at in events), max(at for _, at in events),
        BILL_ON_NEXT_INVOICE)
    billing: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for r in rows:
        billing[r["account_id"]].append((r["period_start"], r["period_end"], r["id"]))
    return [next((invoice for start, end, invoice in billing.get(account, ()) if start <= at < end), None)
            for account, at in events]


async def record_late_events(conn: Any, events: Sequence[tuple[str, str, datetime, str]], now: datetime) -> None:
    """Records stored ACCEPTED_LATE events: (account id, event id, event time, source invoice id)."""
    if events:
        await conn.execute(
            "INSERT INTO late_usage_events (account_id, event_id, event_time, source_invoice_id, received_at) "
            "SELECT u.a, u.e, u.t, u.s, $5 FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) "
            "AS u(a, e, t, s) ON CONFLICT DO NOTHING",
            [e[0] for e in events], [e[1] for e in events], [e[2] for e in events], [e[3] for e in events], now)


def no_next_invoice(account_id: str) -> str:
    """Why the late usage of an account `without_next_invoice` waits: ingest warns it, get_account shows it."""
    return (f"account {account_id!r} has no price plan from now on, so no next invoice to bill its late usage "
            "(ACCEPTED_LATE) on: it waits, unbilled, until a plan is attached (update_account pricePlanId + "
            "effectiveFrom)")


async def without_next_invoice(conn: Any, account_ids: Sequence[str], now: datetime) -> list[str]:
    """The accounts among `account_ids` with no invoice to carry late usage: no DRAFT, and no plan association in
    effect at or after `now` (one would open the next). Their late usage waits until a plan is attached."""
    if not account_ids:
        return []
    return list(await conn.fetchval(
        "SELECT coalesce(array_agg(a ORDER BY a), '{}') FROM unnest($1::text[]) AS a WHERE NOT EXISTS "
        "(SELECT 1 FROM invoices i WHERE i.account_id = a AND i.status = 'DRAFT') AND NOT EXISTS "
        "(SELECT 1 FROM plan_associations p WHERE p.account_id = a AND (p.effective_until IS NULL "
        "OR p.effective_until > $2))", sorted(set(account_ids)), now))


async def pending_late_events(conn: Any, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (account id, event id) among `keys` recorded late and billed by no invoice yet."""
    if not keys:
        return set()
    rows = await conn.fetch(
        "SELECT l.account_id, l.event_id FROM late_usage_events l JOIN unnest($1::text[], $2::text[]) AS k(a, e) "
        "ON l.account_id = k.a AND l.event_id = k.e WHERE l.invoice_id IS NULL",
        [k[0] for k in keys], [k[1] for k in keys])
    return {(r["account_id"], r["event_id"]) for r in rows}


async def forget_pending(conn: Any, keys: Sequence[tuple[str, str]]) -> None:
    """Voided late events leave the pending late usage (a billed one is never forgotten)."""
    if keys:
        await conn.execute(
            "DELETE FROM late_usage_events l USING unnest($1::text[], $2::text[]) AS k(a, e) "
            "WHERE l.account_id = k.a AND l.event_id = k.e AND l.invoice_id IS NULL",
            [k[0] for k in keys], [k[1] for k in keys])


# --- the next invoice -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """Late events of one invoiced period, not billed yet; or none (`count` 0), for a later invoiced period of the
    same quota cycle whose entitlement overage they move (`moved_by`)."""

    source_id: str
    count: int
    event_ids: tuple[str, ...]  # the first MAX_LISTED_EVENTS, by event time
    # the invoiced periods whose pending late events fall in this period's quota cycle before it, so move the cycle
    # usage its overage was based on (README, "Overage across a cut"), by period
    moved_by: tuple[str, ...] = ()


@dataclass
class LateLines:
    lines: dict[str, list[ComposedLine]] = field(default_factory=dict)  # account id -> its next invoice's
    problems: dict[str, Exception] = field(default_factory=dict)  # account id -> why its lines cannot be made


async def pending_late_usage(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, list[Pending]]:
    """Account id -> its late events waiting for its next invoice, by invoiced period, and the later invoiced periods
    of their quota cycles whose overage they move (`_moved`), by period start (absent: none; one probe of the pending
    index when there are none)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = await session.execute(text(
        "SELECT l.account_id, l.source_invoice_id, count(*) AS n, "
        f"(array_agg(l.event_id ORDER BY l.event_time, l.event_id))[1:{MAX_LISTED_EVENTS}] AS listed, "
        "min(i.period_start) AS period_start "
        "FROM late_usage_events l JOIN invoices i ON i.id = l.source_invoice_id "
        "WHERE l.account_id = ANY(:ids) AND l.invoice_id IS NULL GROUP BY l.account_id, l.source_invoice_id"),
        {"ids": ids})
    found: dict[str, dict[str, tuple[datetime, Pending]]] = defaultdict(dict)
    for account_id, source_id, count, listed, start in rows.tuples():
        found[account_id][source_id] = (start, Pending(source_id, count, tuple(listed)))
    if not found:
        return {}
    for account_id, moved_id, start, moved_by in await _moved(session, sorted(found)):
        own = found[account_id].get(moved_id)
        found[account_id][moved_id] = (start, replace(own[1], moved_by=moved_by) if own is not None
                                       else Pending(moved_id, 0, (), moved_by))
    return {account_id: [item for _, item in sorted(items.values(), key=lambda e: (e[0], e[1].source_id))]
            for account_id, items in found.items()}


async def _moved(session: AsyncSession, account_ids: list[str]) -> list[tuple[str, str, datetime, tuple[str, ...]]]:
    """(account id, invoice id, its period start, the invoices of the periods moving it) of each DUE or PAID invoice of
    the accounts whose entitlement overage was based on its quota cycle's usage before its period (an overage line
    with `cycleUsage`, README "Overage across a cut") and whose cycle, before the period, holds pending late events:
    they raise (or lower) the usage its overage was based on, so its recomposition moves with no late event of its
    own."""
    rows = await session.execute(text(
        "SELECT DISTINCT i.account_id, i.id, i.period_start, s.id AS source_id, s.period_start AS source_start "
        "FROM invoices i "
        "JOIN invoice_lines o ON o.invoice_id = i.id AND o.parent_position IS NULL AND o.line_type = :overage "
        "AND o.details->>'cycleUsage' IS NOT NULL "
        "JOIN late_usage_events l ON l.account_id = i.account_id AND l.invoice_id IS NULL "
        "AND l.event_time >= CAST(o.details->>'cycleStart' AS timestamptz) AND l.event_time < i.period_start "
        "JOIN invoices s ON s.id = l.source_invoice_id "
        "WHERE i.account_id = ANY(:ids) AND i.status IN ('DUE', 'PAID') AND i.invoice_type = 'STANDARD'"),
        {"ids": account_ids, "overage": OVERAGE_LINE})
    moved: dict[tuple[str, str, datetime], list[tuple[datetime, str]]] = defaultdict(list)
    for account_id, invoice_id, start, source_id, source_start in rows.tuples():
        moved[(account_id, invoice_id, start)].append((source_start, source_id))
    return [(*key, tuple(source_id for _, source_id in sorted(sources))) for key, sources in sorted(moved.items())]


async def next_drafts(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, str]:
    """account id -> its DRAFT invoice that closes first (the earliest period): the one late usage goes on."""
    rows = await session.execute(text(
        "SELECT DISTINCT ON (account_id) account_id, id FROM invoices WHERE account_id = ANY(:ids) "
        "AND status = 'DRAFT' ORDER BY account_id, period_start"), {"ids": sorted(set(account_ids))})
    return {account: invoice for account, invoice in rows.tuples()}


async def late_usage_lines(session: AsyncSession, pending: Mapping[str, list[Pending]],
                           currencies: Mapping[str, str]) -> LateLines:
    """The late-usage lines of the next invoice of each account in both `pending` (from `pending_late_usage`)
    and `currencies` (account id -> the currency of that invoice). One account's failure is in `problems`,
    never raised."""
    result = LateLines()
    waiting = {account: items for account, items in pending.items() if account in currencies}
    if not waiting:
        return result
    source_ids = sorted({p.source_id for items in waiting.values() for p in items})
    sources = {row.id: row for row in await session.scalars(
        select(InvoiceRow).where(any_of(InvoiceRow.id, source_ids)).execution_options(populate_existing=True))}
    settled = await _settled(session, list(sources.values()))
    on_invoice = await _invoiced_quantities(session, source_ids)
    plans = await plans_by_association(session, {row.association_id for row in sources.values()})
    associations: dict[str, list[PlanAssociationRow]] = defaultdict(list)
    for association in await session.scalars(
            select(PlanAssociationRow).where(any_of(PlanAssociationRow.account_id, sorted(waiting)))):
        associations[association.account_id].append(association)
    quantities = await quantities_by_window(session, [  # a plan not in `plans` raises below, per account
        wanted for row in sources.values() if row.association_id in plans
        for wanted in period_windows(row, plans[row.association_id], associations[row.account_id])])
    # The same seats on both sides: only usage moves what a late-usage line bills.
    seats = await seats_by_window(session, [(r.account_id, r.period_start, r.period_end) for r in sources.values()])
    for account_id, items in waiting.items():
        try:
            parts = []
            for item in items:
                source = sources[item.source_id]
                plan = plans[source.association_id]
                billed = on_invoice.get(source.id, _Billed())
                # an invoice closed before overage counted its quota's cycle is recomposed as it was billed
                cycle_overage = not billed.period_overage
                recomposed = compose_period(source, plan, associations[account_id], quantities, seats=seats,
                                            cycle_overage=cycle_overage)
                # What the invoice charged for its own usage, recomposed the same way from the quantities it
                # billed (its overage from the quota's cycle usage it was based on): only usage moves the
                # difference, never a later change of the association or the code.
                window = (source.account_id, source.period_start, source.period_end)
                as_billed: dict[Window, Mapping[str, Decimal]] = {window: billed.usage}
                quota = row_quota_windows(source, plan, associations[account_id])
                if quota is not None:
                    as_billed |= {quota[0]: billed.cycle_before, quota[1]: billed.cycle_through}
                invoiced = compose_period(source, plan, associations[account_id], as_billed, seats=seats,
                                          cycle_overage=cycle_overage)
                parts.append(_Part(source, item, recomposed, invoiced.total, settled[source.id], billed.usage))
            offsets = _offsets(parts, currencies[account_id])
            lines = []
            for part in parts:
                offset, offset_by = offsets.get(part.source.id, (ZERO, ()))
                line = _line(part, currencies[account_id], [sources[s] for s in part.pending.moved_by], offset,
                             offset_by)
                # a period with no late events of its own gets a line only when the earlier ones moved its charge
                if part.pending.count or part.difference != 0:
                    lines.append(line)
        except Exception as exc:  # one account's bad data must not fail the others' invoices
            result.problems[account_id] = exc
            continue
        result.lines[account_id] = lines
    return result


async def pending_for_account(session: AsyncSession, account_id: str, currency: str,
                              now: datetime) -> PendingLateUsage | None:
    """get_account's view of the account's late usage waiting for its next invoice: per period, what that invoice
    will bill for it in `currency` (the account's invoiceCurrency, which the bill run bills it in), the DRAFT that
    carries it, and why none does or why it cannot be priced. None when nothing waits (one probe of the pending
    index), so only an account with late usage pending pays for pricing it."""
    pending = await pending_late_usage(session, [account_id])
    items = pending.get(account_id)
    if not items:
        return None
    carrier = (await next_drafts(session, [account_id])).get(account_id)
    found = await late_usage_lines(session, pending, {account_id: currency})
    lines = {line.details["sourceInvoiceId"]: line for line in found.lines.get(account_id, [])}
    sources = {row.id: row for row in await session.scalars(
        select(InvoiceRow).where(any_of(InvoiceRow.id, [item.source_id for item in items])))}
    periods = []
    for item in items:
        source, line = sources[item.source_id], lines.get(item.source_id)
        if not item.count and line is None:
            continue  # a period the late usage before it does not move (or that cannot be priced: `problem`)
        periods.append(PendingLatePeriod(
            invoiceId=source.id, invoiceSequenceId=invoice_number(source.sequence_number),
            periodStart=source.period_start, periodEnd=source.period_end, eventCount=item.count,
            amount=None if line is None else line.value, description=None if line is None else line.description))
    failure = found.problems.get(account_id)
    problem = None
    if failure is not None:
        problem = f"it cannot be priced, so no invoice bills it yet (it stays pending): {reason_of(failure)}"
    elif carrier is None:
        problem = await _why_no_invoice(session, account_id, now)
    total = None if failure is not None else round_money(exact_sum(p.amount or ZERO for p in periods), currency)
    return PendingLateUsage(currency=currency, total=total, billedOn=carrier, periods=periods, problem=problem)


def reason_of(exc: Exception) -> str:
    """What a caller is told of an account's failure: the engine's message, never an internal one."""
    return exc.message if isinstance(exc, EngineError) else f"internal error: {type(exc).__name__}"


async def _why_no_invoice(session: AsyncSession, account_id: str, now: datetime) -> str:
    """Why an account with late usage pending has no DRAFT to carry it: no plan now or later, or the one that opens
    the next invoice starts later (or, in effect, could not open one: get_account's problem says why)."""
    start = await session.scalar(select(func.min(PlanAssociationRow.effective_from)).where(
        PlanAssociationRow.account_id == account_id,
        or_(PlanAssociationRow.effective_until.is_(None), PlanAssociationRow.effective_until > now)))
    if start is None:
        return no_next_invoice(account_id)
    if start > now:
        return (f"no invoice carries it yet: the price plan starting at {start.isoformat()} opens the next one, "
                "which bills it")
    return ("no invoice carries it yet: the plan in effect has no open invoice (the financial section's problem "
            "says why)")


async def with_late_events(session: AsyncSession, invoices: Iterable[InvoiceRow]) -> set[str]:
    """The ids of the `invoices` whose period received late events (billed or pending), or whose entitlement overage
    was based on a quota cycle that received some before the period (they move it as `_moved` says). Both need a
    late event of the invoice's account: one probe per account (the primary key's account_id) first, so a query over
    accounts that never received late usage reads no invoice line."""
    rows = list(invoices)
    if not rows:
        return set()
    late_accounts = set(await session.scalars(text(
        "SELECT a FROM unnest(CAST(:accounts AS text[])) AS a "
        "WHERE EXISTS (SELECT 1 FROM late_usage_events l WHERE l.account_id = a)"),
        {"accounts": sorted({row.account_id for row in rows})}))
    ids = sorted({row.id for row in rows if row.account_id in late_accounts})
    if not ids:
        return set()
    own = set(await session.scalars(text(
        "SELECT DISTINCT source_invoice_id FROM late_usage_events WHERE source_invoice_id = ANY(:ids)"), {"ids": ids}))
    moved = set(await session.scalars(text(
        "SELECT DISTINCT i.id FROM invoices i "
        "JOIN invoice_lines o ON o.invoice_id = i.id AND o.parent_position IS NULL AND o.line_type = :overage "
        "AND o.details->>'cycleUsage' IS NOT NULL "
        "WHERE i.id = ANY(:ids) AND EXISTS (SELECT 1 FROM late_usage_events l WHERE l.account_id = i.account_id "
        "AND l.event_time >= CAST(o.details->>'cycleStart' AS timestamptz) AND l.event_time < i.period_start)"),
        {"ids": ids, "overage": OVERAGE_LINE}))
    return own | moved


async def late_adjustments(session: AsyncSession, invoice_ids: Iterable[str]) -> dict[str, Decimal]:
    """Invoice id -> what to add to its total to get what was charged for its own period: minus the late-usage
    lines it carries for earlier periods, plus those billed for its period by later invoices (absent: 0)."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return {}
    carriers = select(L.invoice_id).distinct().where(any_of(L.invoice_id, ids))
    accounts = select(InvoiceRow.account_id).distinct().where(any_of(InvoiceRow.id, ids))
    adjustments: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for invoice_id, details, value in await _late_lines_on(session, _billed_for(accounts), carriers):
        if invoice_id in ids:
            adjustments[invoice_id] = EXACT_MONEY_CONTEXT.subtract(adjustments[invoice_id], value)
        source_id = (details or {}).get("sourceInvoiceId")
        if source_id in ids:
            adjustments[source_id] = EXACT_MONEY_CONTEXT.add(adjustments[source_id], value)
    return dict(adjustments)


async def claim(conn: Any, invoice_of_account: Mapping[str, str]) -> None:
    """Marks every pending late event of each account as billed on the invoice just closed for it."""
    if invoice_of_account:
        await conn.execute(
            "UPDATE late_usage_events AS l SET invoice_id = u.invoice_id "
            "FROM unnest($1::text[], $2::text[]) AS u(account_id, invoice_id) "
            "WHERE l.account_id = u.account_id AND l.invoice_id IS NULL",
            list(invoice_of_account), list(invoice_of_account.values()))


async def _settled(session: AsyncSession, sources: list[InvoiceRow]) -> dict[str, Decimal]:
    """Source invoice id -> the differences earlier late-usage lines of its period settled: billed, or left to a
    credit note or to invoicing by hand (whatever their invoice's status: a voided one was decided on). A line for the
    period may be on an invoice that billed only late events of an earlier period (which moved its overage), so every
    invoice that billed late events of the account is read."""
    settled = dict.fromkeys((row.id for row in sources), ZERO)
    for _, details, _ in await _late_lines_on(session, _billed_for({row.account_id for row in sources})):
        source_id = (details or {}).get("sourceInvoiceId")
        if source_id in settled:
            settled[source_id] = EXACT_MONEY_CONTEXT.add(settled[source_id], Decimal(details["difference"]))
    return settled


def _billed_for(account_ids: Iterable[str] | Select[tuple[str]]) -> Select[tuple[str | None]]:
    """The invoices that billed late events of the accounts: the only ones with late-usage lines, a line for a period
    being on one that billed its late events or those of an earlier period of its quota cycle (`_moved`)."""
    accounts = L.account_id.in_(account_ids) if isinstance(account_ids, Select) else any_of(L.account_id, set(account_ids))
    return select(L.invoice_id).distinct().where(accounts, L.invoice_id.is_not(None))


async def _late_lines_on(session: AsyncSession,
                         *invoices: Select[tuple[str | None]]) -> list[tuple[str, dict[str, Any] | None, Decimal]]:
    """(invoice id, details, value) of the top-level late-usage lines of the invoices any of `invoices` selects."""
    return list((await session.execute(
        select(InvoiceLineRow.invoice_id, InvoiceLineRow.details, InvoiceLineRow.value).where(
            or_(*(InvoiceLineRow.invoice_id.in_(q) for q in invoices)),
            InvoiceLineRow.line_type == LATE_USAGE_LINE, InvoiceLineRow.parent_position.is_(None)))).tuples())


@dataclass
class _Billed:
    """What an invoice billed its usage on."""

    usage: dict[str, Decimal] = field(default_factory=dict)  # meter -> the period's usage it billed
    cycle_before: dict[str, Decimal] = field(default_factory=dict)  # an overage meter -> its quota cycle's usage
    cycle_through: dict[str, Decimal] = field(default_factory=dict)  # before the period, and through its end
    period_overage: bool = False  # an overage line billed the period's usage alone (closed before cycleUsage)


async def _invoiced_quantities(session: AsyncSession, source_ids: list[str]) -> dict[str, _Billed]:
    """Invoice id -> what it billed: per meter, a usage line's quantity, or an overage line's `usage` (its quantity
    is only the part past the limit) for a meter no usage card prices; and the quota cycle's usage its overage lines
    were based on."""
    rows = await session.execute(
        select(InvoiceLineRow.invoice_id, InvoiceLineRow.line_type, InvoiceLineRow.usage_meter_id,
               InvoiceLineRow.quantity, InvoiceLineRow.details).where(
            any_of(InvoiceLineRow.invoice_id, source_ids), InvoiceLineRow.line_type.in_((USAGE_LINE, OVERAGE_LINE)),
            InvoiceLineRow.parent_position.is_(None)))
    found: dict[str, _Billed] = defaultdict(_Billed)
    for invoice_id, line_type, meter_id, quantity, details in rows.tuples():
        billed = found[invoice_id]
        if line_type == USAGE_LINE:
            billed.usage[meter_id] = quantity
            continue
        billed.usage.setdefault(meter_id, Decimal(details["usage"]))
        if "cycleUsage" in details:
            billed.cycle_before[meter_id] = Decimal(details["cycleUsageBefore"])
            billed.cycle_through[meter_id] = Decimal(details["cycleUsage"])
        else:
            billed.period_overage = True
    return found


@dataclass(frozen=True)
class _Part:
    """An invoiced period a late-usage line is made for: what it comes to now and what was charged for it."""

    source: InvoiceRow
    pending: Pending
    recomposed: ComposedInvoice  # the period's invoice recomposed from all its usage
    invoiced: Decimal  # the same invoice recomposed from the quantities it billed
    settled: Decimal  # the differences earlier late-usage lines of the period settled
    quantities_invoiced: Mapping[str, Decimal]

    @property
    def difference(self) -> Decimal:
        return EXACT_MONEY_CONTEXT.subtract(EXACT_MONEY_CONTEXT.subtract(self.recomposed.total, self.invoiced),
                                            self.settled)


def _billed_here(source: InvoiceRow, currency: str) -> bool:
    """A difference of the period is billed on an invoice in `currency` (not voided, invoiced in that currency)."""
    return source.status != "VOID" and source.currency == currency


def _offsets(parts: Sequence[_Part], currency: str) -> dict[str, tuple[Decimal, tuple[InvoiceRow, ...]]]:
    """Source invoice id -> (the part of its negative difference, rounded, that the positive differences of the other
    parts of its quota cycle on the same invoice offset; those parts' invoices) (README "Overage across a cut"). The
    parts of a cycle are those the late usage links: a part and the earlier parts whose late events move it
    (`moved_by`). The cycle's positive lines are billed whole; its negative differences take them, in period order,
    up to their sum, so the lines of a cycle never add up below 0 and what is left below 0 goes to a credit note."""
    cycle_of = {part.source.id: part.source.id for part in parts}

    def root(source_id: str) -> str:
        while cycle_of[source_id] != source_id:
            source_id = cycle_of[source_id]
        return source_id

    for part in parts:
        for earlier in part.pending.moved_by:
            if earlier in cycle_of:
                cycle_of[root(earlier)] = root(part.source.id)
    cycles: dict[str, list[_Part]] = defaultdict(list)
    for part in parts:  # in period order
        cycles[root(part.source.id)].append(part)
    found: dict[str, tuple[Decimal, tuple[InvoiceRow, ...]]] = {}
    for members in cycles.values():
        billed = [part for part in members if _billed_here(part.source, currency)]
        gains = [part for part in billed if part.difference > 0]
        available = exact_sum(round_money(part.difference, currency) for part in gains)
        for part in billed:
            if part.difference < 0 and available > 0:
                offset = min(round_money(part.difference.copy_negate(), currency), available)
                available = EXACT_MONEY_CONTEXT.subtract(available, offset)
                found[part.source.id] = (offset, tuple(gain.source for gain in gains))
    return found


def _numbers(rows: Sequence[InvoiceRow]) -> str:
    """"invoice INV-000001" or "invoices INV-000001, INV-000002"."""
    return (f"invoice{'s' if len(rows) > 1 else ''} "
            f"{', '.join(invoice_number(row.sequence_number) or row.id for row in rows)}")


def _line(part: _Part, currency: str, moved_by: Sequence[InvoiceRow] = (), offset: Decimal = ZERO,
          offset_by: Sequence[InvoiceRow] = ()) -> ComposedLine:
    source, pending, recomposed, invoiced, settled = (part.source, part.pending, part.recomposed, part.invoiced,
                                                      part.settled)
    number = invoice_number(source.sequence_number) or source.id
    difference = part.difference
    period = f"{_instant(source.period_start)} – {_instant(source.period_end)}"
    earlier = ""
    if moved_by:
        earlier = (f"late usage of {'earlier periods' if len(moved_by) > 1 else 'an earlier period'} of its quota "
                   f"cycle ({_numbers(moved_by)}) changed the cycle's usage before it")
    if pending.count:
        events = f"{pending.count} event{'s' if pending.count != 1 else ''}"
        description = f"Usage of period {period} received after it closed (invoice {number}): {events}"
        if earlier:
            description = f"{description}; {earlier} too"
    else:
        description = f"Period {period} (invoice {number}) recomposed: {earlier}; no late events of its own"
    value = difference
    if source.status == "VOID":
        value, description = ZERO, f"{description}; not billed: invoice {number} was voided"
    elif source.currency != currency:
        value, description = ZERO, (
            f"{description}; not billed here: that period was invoiced in {source.currency} and this invoice is "
            f"in {currency}; the difference is {difference} {source.currency}, to invoice by hand")
    elif difference < 0 and offset > 0:
        # the cycle's net is what is owed: the other parts' positive lines on this invoice take this part's decrease
        lowered = difference.copy_negate()
        value, against = offset.copy_negate(), (
            f"offset by the other parts of its quota cycle on this invoice ({_numbers(offset_by)})")
        rest = EXACT_MONEY_CONTEXT.subtract(lowered, offset)
        if round_money(rest, currency) == 0:
            description = f"{description}; it lowers that period's charge by {lowered} {currency}, {against}"
        else:
            description = (
                f"{description}; it lowers that period's charge by {lowered} {currency}, of which {offset} {currency} "
                f"is {against}; the other {rest} {currency} is not credited automatically: create_credit_note "
                f"against {number} if it should be")
    elif difference < 0:
        value, description = ZERO, (
            f"{description}; it lowers that period's charge by {difference.copy_negate()} {currency}, which is not "
            f"credited automatically: create_credit_note against {number} if it should be")
    elif difference == 0:
        description = f"{description}; the period's charge is unchanged"
    return ComposedLine(
        line_type=LATE_USAGE_LINE, description=description, value=round_money(value, currency), rate_card_name=LATE_USAGE_CARD,
        usage_start=source.period_start, usage_end=source.period_end,
        details={
            "sourceInvoiceId": source.id, "sourceInvoiceNumber": invoice_number(source.sequence_number),
            "periodStart": source.period_start.isoformat(), "periodEnd": source.period_end.isoformat(),
            "eventCount": pending.count, "eventIds": list(pending.event_ids),
            **({"movedBy": [row.id for row in moved_by]} if moved_by else {}),
            "recomposedTotal": str(recomposed.total), "invoicedTotal": str(invoiced),
            "settledByEarlierLines": str(settled), "difference": str(difference),
            **({"offset": str(offset), "offsetBy": [row.id for row in offset_by]} if value < 0 else {}),
            "quantities": {meter: {"onInvoice": str(part.quantities_invoiced.get(meter, ZERO)), "now": str(quantity)}
                           for meter, quantity in sorted(recomposed.quantities.items())},
        })


def _instant(at: datetime) -> str:
    return at.date().isoformat() if at.time() == time(0) else at.isoformat()

