"""DRAFT invoices, computed from their own rows and the usage recorded so far.

A DRAFT row names its period, plan, association and the instant it closes (`invoice_date`, written by the
bill run that opened or re-cut it). Its lines are composed from exactly that, never from a schedule
recomputed at read time: a row read while a plan change commits, or opened by a bill run ahead of the
clock (`togai-engine bill --as-of`), is still one consistent invoice. An account whose invoice cannot be
composed (a plan that does not price its currency, data no policy covers, stored events the database refuses to
meter) gets a `problem` on that draft;
it never fails the read of another account's invoices.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.cycles import Cycle, grace_end
from togai_engine.errors import EngineError
from togai_engine.invoices.compose import ComposedInvoice, with_late_usage
from togai_engine.invoices.late_usage import LateLines, late_usage_lines, next_drafts, pending_late_usage, reason_of
from togai_engine.invoices.models import InvoiceRow
from togai_engine.invoices.periods import compose_period, period_windows
from togai_engine.licenses.service import seats_by_window
from togai_engine.meters.usage import isolated_reads, quantities_by_window
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import plans_by_association
from togai_engine.store.arrays import any_of
from togai_engine.store.database import raw_connection

log = logging.getLogger("togai_engine.invoices")


@dataclass(frozen=True)
class Draft:
    row: InvoiceRow
    closes_at: datetime
    composed: ComposedInvoice | None  # None when it cannot be computed: `problem` says why
    problem: str | None = None  # with `composed`: what it leaves out (late usage that cannot be priced)


async def compute_drafts(session: AsyncSession, rows: Sequence[InvoiceRow]) -> dict[str, Draft]:
    """invoice id -> its live computation, for the DRAFT rows among `rows`."""
    drafts = [r for r in rows if r.status == "DRAFT"]
    if not drafts:
        return {}
    plans = await plans_by_association(session, {r.association_id for r in drafts})
    associations: dict[str, list[PlanAssociationRow]] = defaultdict(list)
    for association in await session.scalars(
            select(PlanAssociationRow).where(any_of(PlanAssociationRow.account_id, {r.account_id for r in drafts}))):
        associations[association.account_id].append(association)
    # a DRAFT whose plan cannot be resolved (plans[...] raises why, below, inside its guard) needs no quantities
    windows: dict[str, list[tuple[str, datetime, datetime, list[str]]]] = defaultdict(list)
    for r in drafts:
        if r.association_id in plans:
            windows[r.account_id].extend(period_windows(r, plans[r.association_id], associations[r.account_id]))
    # one statement per window reads every account's usage; an account whose stored events the database refuses to
    # meter is found by halves (isolated_reads) and its DRAFTs say why, below, never failing the others' read
    read, unreadable = await isolated_reads(await raw_connection(session), sorted(windows), lambda some: (
        quantities_by_window(session, [wanted for a in some for wanted in windows[a]])))
    quantities = {window: found for part in read for window, found in part.items()}
    seats = await seats_by_window(session, [(r.account_id, r.period_start, r.period_end) for r in drafts])
    late = await _late_lines(session, drafts)
    result: dict[str, Draft] = {}
    for row in drafts:
        resolved = plans.get(row.association_id)
        period = Cycle(row.period_start, row.period_end)
        # rows opened since invoice_date exists carry their closing instant; without the plan, the period's end
        closes_at = row.invoice_date or (grace_end(period, resolved.cycle_config) if resolved is not None else period.end)
        try:
            if (unread := unreadable.get(row.account_id)) is not None:
                raise unread
            plan = plans[row.association_id]
            composed = with_late_usage(compose_period(row, plan, associations[row.account_id], quantities, seats=seats),
                                       late.lines.get(row.id, []))
        except Exception as exc:  # one account's bad data is reported on its invoice, never raised to others
            problem = reason_of(exc)
            log.warning("cannot compute DRAFT invoice %s of account %s: %s", row.id, row.account_id, problem,
                        exc_info=not isinstance(exc, EngineError))
            result[row.id] = Draft(row, closes_at, None, f"this invoice cannot be computed: {problem}")
            continue
        problem = late.problems.get(row.id)
        result[row.id] = Draft(row, closes_at, composed, None if problem is None else (
            f"its account's late usage cannot be priced, so this invoice does not bill it yet (it stays pending): "
            f"{reason_of(problem)}"))
    return result


async def _late_lines(session: AsyncSession, drafts: list[InvoiceRow]) -> LateLines:
    """Invoice id -> the late-usage lines it will carry: those of the DRAFTs among `drafts` that close first
    for an account with late usage pending (usually none: one index probe)."""
    pending = await pending_late_usage(session, {row.account_id for row in drafts})
    if not pending:
        return LateLines()
    by_id = {row.id: row for row in drafts}
    targets = {invoice: by_id[invoice] for invoice in (await next_drafts(session, pending)).values()
               if invoice in by_id}
    currencies = {row.account_id: row.currency for row in targets.values()}

    async def lines(some: list[str]) -> LateLines:
        return await late_usage_lines(session, {a: pending[a] for a in some}, {a: currencies[a] for a in some})

    # an account whose late usage the database cannot meter (isolated_reads) keeps it pending, as one that cannot be
    # priced: its DRAFT says why, the others' read
    read, unreadable = await isolated_reads(await raw_connection(session),
                                            sorted(a for a in pending if a in currencies), lines)
    invoice_of = {row.account_id: invoice for invoice, row in targets.items()}
    return LateLines(lines={invoice_of[a]: found for part in read for a, found in part.lines.items()},
                     problems={invoice_of[a]: exc for part in read for a, exc in part.problems.items()}
                     | {invoice_of[a]: exc for a, exc in unreadable.items()})

