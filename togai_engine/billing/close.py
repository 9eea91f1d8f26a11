"""Bill runs: open DRAFT invoices for started periods and make due ones DUE, for many accounts at once.

One run locks the accounts that have work (`account_billing.next_run_at <= now`) in account order
(their account locks, exclusive: accounts.service.lock_accounts), then their billing fences (billing/fence.py), so
concurrent runs and catch-up reads wait for each other and a second run finds nothing left to do;
the unique (account, period start) key on invoices backs that up. The invoice counter comes after every fence the
transaction holds (`shared_fences`; billing README, "Lock order"). Quantities come from one `meter_quantities` call per distinct period; rows
are written with array statements and lines with COPY, so 10,000 accounts close in one pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.service import lock_accounts
from togai_engine.billing.fence import hold_fences
from togai_engine.billing.schedule import BillingPeriod, Timeline
from togai_engine.billing.state import AccountState, load_states, transaction_connection
from togai_engine.common.ids import new_id
from togai_engine.common.schemas import CloseFailure, Model
from togai_engine.errors import Conflict, EngineError
from togai_engine.invoices import late_usage
from togai_engine.invoices.compose import (
    ComposedInvoice,
    ComposedLine,
    compose_invoice,
    compose_opening_invoice,
    with_late_usage,
)
from togai_engine.invoices.late_usage import LateLines
from togai_engine.invoices.models import INVOICE_COUNTER, counter_lock_sql
from togai_engine.invoices.periods import cycle_usage, overage_windows
from togai_engine.licenses.service import Seats, seats_by_window
from togai_engine.meters.usage import QuantitySource, Window, isolated_reads, meter_quantities, quantities_by_window
from togai_engine.store.distribution import ONE_CONNECTION_PER_NODE
from togai_engine.wallets import service as wallets
from togai_engine.wallets.models import WalletRow
from togai_engine.wallets.plan_view import plan_id, rate_cards
from togai_engine.wallets.rate_cards import RateCardGrant, grants_for_cycle

log = logging.getLogger("togai_engine.billing")


class CloseSummary(Model):
    asOf: datetime
    accounts: int = 0  # accounts that had work
    accountIds: list[str] = Field(default_factory=list)  # their ids, sorted (failed ones included)
    invoicesDue: int = 0  # invoices that became DUE in this run
    draftsOpened: int = 0  # DRAFT invoices created for periods that started
    advanceInvoices: int = 0  # advance invoices issued as associations started (their first in-advance charges)
    failed: list[CloseFailure] = Field(default_factory=list)


@dataclass
class _Closing:
    account: AccountState
    period: BillingPeriod
    invoice: ComposedInvoice
    invoice_id: str = ""
    number: int = 0
    bills_late_usage: bool = False  # carries the account's pending late usage (the first period closed)
    advance: bool = False  # the association's advance invoice (STANDARD_ADVANCED), issued as `period` starts

    @property
    def issued_at(self) -> datetime:
        return self.period.period.start if self.advance else self.period.due_at


def billing_due(billing: str, now: str) -> str:
    """SQL: the account_billing row `billing` has a bill run due at `now` (both SQL expressions). Ingest
    asks it of a batch's accounts; close_due_cycles of the accounts it may close."""
    return f"{billing}.next_run_at <= {now}"


# how a failure that only left the account's late usage pending begins (its invoices closed: it is not left due)
LATE_USAGE_PENDING = "late usage not billed, it stays pending"


async def close_due_cycles(
    session: AsyncSession,
    now: datetime,
    account_ids: Sequence[str] | None = None,
    *,
    usage: QuantitySource = meter_quantities,
    shared_fences: Sequence[str] = (),
    log_failures: bool = True,
) -> CloseSummary:
    """Brings the invoices of accounts with work up to `now` (all accounts, or only `account_ids`).

    Idempotent: running it again at the same `now` does nothing, and running it at several instants
    yields the same invoices as running it once at the last one.

    `shared_fences`: accounts whose billing fences the caller takes shared after this (an ingest or void batch's
    accounts). When this closes anything, they are taken here with the closed accounts' (exclusive) in one pass,
    before the invoice counter: the caller then never waits for a fence while holding the counter, which a
    closer of one of those accounts, holding its fence, may be waiting for (a deadlock).

    `log_failures`: each account that cannot be billed is logged as a warning; False logs it at DEBUG (the
    server's background loop logs the summary's `failed` itself, throttled).
    """
    summary = CloseSummary(asOf=now)
    if account_ids is not None and not account_ids:
        return summary
    await session.flush()
    conn = await transaction_connection(session)
    # Lock order everywhere: the accounts' locks (exclusive: closers of one account, and its changes, wait
    # for each other), then the billing fences, then the invoice counter (_number); the wallet hooks lock wallets
    # after that. Never a fence or an account lock after the counter (billing README, "Lock order").
    scope = "" if account_ids is None else " AND a.id = ANY($2::text[])"
    scope_args = [sorted(set(account_ids))] if account_ids is not None else []
    # Reads call this on every request: look before taking locks (a row lock is a write in PostgreSQL).
    if not await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM account_billing b JOIN accounts a ON a.id = b.account_id "
        f"WHERE {billing_due('b', '$1')}{scope})", now, *scope_args):
        return summary
    await one_connection_per_node(conn)
    candidates = await conn.fetch(
        "SELECT a.id FROM accounts a JOIN account_billing b ON b.account_id = a.id "
        f"WHERE {billing_due('b', '$1')}{scope} ORDER BY a.id", now, *scope_args)
    if not candidates:
        return summary
    # Advisory locks, not row locks on account_billing and accounts: on Citus those are reference tables,
    # where a row lock locks the table on every node and one account's bill run made every other wait.
    await lock_accounts(session, [r["id"] for r in candidates])
    # a new statement after the locks: an account another run closed meanwhile is no longer due
    locked = await conn.fetch(
        f"SELECT account_id FROM account_billing b WHERE account_id = ANY($1::text[]) AND {billing_due('b', '$2')} "
        "ORDER BY account_id", [r["id"] for r in candidates], now)
    if not locked:
        return summary
    ids = [r["account_id"] for r in locked]
    # Ingestion holds these shared while it decides whether an event is late; waiting for it here means
    # every event it accepts is counted below, and every later one sees the moved watermark.
    closing = set(ids)
    await hold_fences(conn, ids, exclusive=True, shared=[a for a in shared_fences if a not in closing])
    accounts, plans = await load_states(session, ids, conn)
    failed: set[str] = set()
    # the server's background loop logs the summary's failures itself, throttled (mcp_server.serve.FailureLog)
    failure_level = logging.WARNING if log_failures else logging.DEBUG

    def fail(account_id: str, exc: Exception) -> None:
        # One account's bad data must not stop the run: it keeps its state and is retried later. Only the
        # steps before any write are guarded (its timeline, a period to close already final, its invoices'
        # composition): nothing was written for it yet.
        reason = _reason(exc)
        log.log(failure_level, "cannot bill account %s: %s", account_id, reason,
                exc_info=not isinstance(exc, EngineError))
        summary.failed.append(CloseFailure(accountId=account_id, reason=reason))
        failed.add(account_id)

    timelines: dict[str, Timeline] = {}
    for account_id in ids:
        try:
            timelines[account_id] = accounts[account_id].timeline(plans, now)
        except Exception as exc:
            fail(account_id, exc)
    # One statement per window reads every account's usage; when the database refuses it (one account's stored event
    # that a meter cannot compute), it is read again by halves down to the accounts whose own read fails
    # (`meters.usage.isolated_reads`): those fail here, the others bill.
    read, unreadable = await isolated_reads(conn, [a for a, t in timelines.items() if t.due], lambda some: _quantities(
        session, usage, [(a, p) for a in some for p in timelines[a].due]))
    quantities = {window: found for part in read for window, found in part.items()}
    for account_id, exc in unreadable.items():
        fail(account_id, exc)
        del timelines[account_id]
    seats = await seats_by_window(session, [(a, p.period.start, p.period.end) for a, t in timelines.items()
                                            for p in t.due])
    late = await _late_usage(session, conn, accounts, timelines)
    # the first periods whose invoice row exists: True when it carries its opening fees (opened before 0021)
    existing = await _existing_first_rows(conn, [(a, p) for a, t in timelines.items() for p in (*t.due, *t.open)])
    final = await _already_final(conn, accounts, [(a, p) for a, t in timelines.items() for p in t.due])
    closings: list[_Closing] = []
    advance: list[_Closing] = []
    grants: dict[tuple[str, datetime], list[RateCardGrant]] = {}  # what each period's credit-grant cards issue
    for account_id, timeline in timelines.items():
        account = accounts[account_id]
        if account_id in final:
            fail(account_id, final[account_id])
            continue
        try:
            composed = [_Closing(account, period, _compose(period, account.currency, quantities, seats,
                                                           opening_fees=existing.get((account_id,
                                                                                      period.period.start), False)))
                        for period in timeline.due]
            opened = _openings(account, timeline, existing)
            grants.update(_grants(account, timeline))
        except Exception as exc:
            fail(account_id, exc)
            continue
        if composed and account_id in late.problems:
            # Its late usage stays pending (retried with the next invoice); its own invoices close as usual.
            reason = f"{LATE_USAGE_PENDING}: {_reason(late.problems[account_id])}"
            log.log(failure_level, "account %s: %s", account_id, reason)
            summary.failed.append(CloseFailure(accountId=account_id, reason=reason))
        if composed and account_id in late.lines:
            first = composed[0]
            first.invoice = with_late_usage(first.invoice, late.lines[account_id])
            first.bills_late_usage = True
        closings += composed
        advance += opened

    opening = [(accounts[a], p) for a, t in timelines.items() if a not in failed for p in t.open]
    started = await _upsert_drafts(conn, opening)
    summary.draftsOpened = len(started)
    # Numbered in the order they are issued, so billing in several runs numbers as billing once.
    issued = sorted(closings + advance, key=lambda c: (c.issued_at, c.period.period.start, c.account.id, c.advance))
    await _number(conn, issued)
    fresh = await _finalize(conn, closings, now) if closings else []
    await _issue_advance_invoices(conn, advance, now)
    summary.advanceInvoices = len(advance)
    # Credit-grant cards grant as each period starts: oldest first, so a ONE_TIME card grants with the first
    # period even when one run closes several (not with the open one). Then credit pays the issued invoices.
    await _issue_grants(session, accounts, sorted(fresh + started, key=lambda bp: bp.period.start), grants)
    if issued:
        await _apply_credits(conn, session, issued)
    summary.invoicesDue = len(closings)
    summary.accounts, summary.accountIds = len(ids), ids
    await _advance(conn, timelines, failed)
    return summary


# Closing writes invoices after reading usage (store.distribution.ONE_CONNECTION_PER_NODE says why that needs one
# connection per node on Citus), so its transaction runs multi-shard statements over one connection per worker.
async def one_connection_per_node(conn: Any) -> None:
    """Before a transaction's first multi-shard statement, when it may close cycles (see above)."""
    await conn.execute(ONE_CONNECTION_PER_NODE)


# --- steps ------------------------------------------------------------------------------------------


async def _quantities(
    session: AsyncSession, usage: QuantitySource, periods: list[tuple[str, BillingPeriod]]
) -> dict[Window, dict[str, Decimal]]:
    return await quantities_by_window(session, [
        wanted for account_id, bp in periods
        for wanted in [(account_id, bp.period.start, bp.period.end, bp.plan.billed_meter_ids),
                       *overage_windows(bp.plan, bp.quota_windows)]], source=usage)


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, EngineError) else f"internal error: {type(exc).__name__}: {exc}"


async def _late_usage(session: AsyncSession, conn: Any, accounts: dict[str, AccountState],
                      timelines: dict[str, Timeline]) -> LateLines:
    """Late usage goes on the first period each account closes in this run: the invoice that follows it. An account
    whose late usage the database cannot meter (`meters.usage.isolated_reads`) keeps it pending, as one that cannot be priced."""
    closing = {account_id: accounts[account_id].currency for account_id, t in timelines.items() if t.due}
    # which accounts have some waiting (one index probe; only accounts of `closing`): the savepoint only when some do
    pending = await late_usage.pending_late_usage(session, closing)
    waiting = sorted(pending)

    async def lines(some: list[str]) -> LateLines:
        return await late_usage.late_usage_lines(session, {a: pending[a] for a in some}, {a: closing[a] for a in some})

    read, unreadable = await isolated_reads(conn, waiting, lines)
    late = LateLines()
    for part in read:
        late.lines |= part.lines
        late.problems |= part.problems
    late.problems |= unreadable
    return late


def _openings(account: AccountState, timeline: Timeline,
              existing: dict[tuple[str, datetime], bool]) -> list[_Closing]:
    """The advance invoices of the account's first periods whose invoice row this run creates: they start now, so
    each gets its advance invoice exactly once (a change that drops that row and opens it again first credits the
    old one: app/advance_credits.py)."""
    opened = []
    for period in (*timeline.due, *timeline.open):
        if not period.opens_association or (account.id, period.period.start) in existing:
            continue
        assert period.fees is not None
        invoice = compose_opening_invoice(period.plan, account.currency, period.period, period.full_cycle,
                                          cut_by_change=period.cut_by_change, fees=period.fees)
        if invoice is not None:
            opened.append(_Closing(account, period, invoice, advance=True))
    return opened


def _grants(account: AccountState, timeline: Timeline) -> dict[tuple[str, datetime], list[RateCardGrant]]:
    """(account, period start) -> the grants the credit-grant cards of its periods issue as they start
    (_issue_grants, after the invoices are written), computed here so a card that cannot grant (an expiry no
    instant reaches) fails this account in its guard, not the whole run. Pure."""
    return {(account.id, bp.period.start): grants_for_cycle(rate_cards(bp.plan, "creditGrantRateCards"),
                                                            plan_id(bp.plan), account.currency, bp.period)
            for bp in (*timeline.due, *timeline.open) if bp.plan.rateCards.creditGrantRateCards}


def _compose(bp: BillingPeriod, currency: str, quantities: dict[Window, dict[str, Decimal]],
             seats: dict[Window, Seats], *, opening_fees: bool) -> ComposedInvoice:
    window = (bp.association.account_id, bp.period.start, bp.period.end)
    return compose_invoice(bp.plan, currency, bp.period, bp.full_cycle, quantities.get(window, {}),
                           cut_by_change=bp.cut_by_change, licenses=seats.get(window, {}),
                           cycle_index=bp.cycle_index_for(bp.plan), fees=bp.fees, opening_fees=opening_fees,
                           cycle_usage=cycle_usage(quantities, bp.quota_windows))


async def _existing_first_rows(conn: Any, periods: list[tuple[str, BillingPeriod]]) -> dict[tuple[str, datetime], bool]:
    """Of the periods that are their association's first, those whose invoice row exists, each with whether it was
    opened before advance invoices existed and so carries its opening fees itself."""
    firsts = [(a, bp.period.start) for a, bp in periods if bp.opens_association]
    if not firsts:
        return {}
    rows = await conn.fetch(
        "SELECT account_id, period_start, carries_opening_fees FROM invoices WHERE invoice_type = 'STANDARD' "
        "AND (account_id, period_start) IN (SELECT * FROM unnest($1::text[], $2::timestamptz[]))",
        [a for a, _ in firsts], [start for _, start in firsts])
    return {(r["account_id"], r["period_start"]): r["carries_opening_fees"] for r in rows}


async def _already_final(conn: Any, accounts: dict[str, AccountState],
                         periods: list[tuple[str, BillingPeriod]]) -> dict[str, Conflict]:
    """Accounts with a period to close whose invoice is final already, each with why: its billed_until is behind
    its invoices (a hand edit), and closing would write that invoice again. Failed in their guard, so the run bills
    every other account."""
    if not periods:
        return {}
    rows = await conn.fetch(
        "SELECT account_id, id, status, period_start, period_end FROM invoices WHERE invoice_type = 'STANDARD' "
        "AND status <> 'DRAFT' AND (account_id, period_start) IN (SELECT * FROM unnest($1::text[], $2::timestamptz[])) "
        "ORDER BY account_id, period_start",
        [a for a, _ in periods], [bp.period.start for _, bp in periods])
    if not rows:
        return {}
    last = {r["account_id"]: r["last_end"] for r in await conn.fetch(
        "SELECT account_id, max(period_end) AS last_end FROM invoices WHERE invoice_type = 'STANDARD' "
        "AND status <> 'DRAFT' AND account_id = ANY($1::text[]) GROUP BY account_id",
        sorted({r["account_id"] for r in rows}))}
    problems: dict[str, Conflict] = {}
    for r in rows:
        account_id = r["account_id"]
        if account_id in problems:
            continue
        billed_until = accounts[account_id].billed_until
        problems[account_id] = Conflict(
            f"account {account_id!r}: its invoice {r['id']} for [{r['period_start'].isoformat()}, "
            f"{r['period_end'].isoformat()}) is already {r['status']}, but its billing progress "
            f"(account_billing.billed_until = {billed_until.isoformat() if billed_until else 'NULL'}) says that "
            "period is not invoiced yet (was it edited by hand?), so it cannot be closed again; set "
            f"account_billing.billed_until to {last[account_id].isoformat()}, the end of its last final invoice, "
            "and the next bill run bills it from there")
    return problems


async def _upsert_drafts(conn: Any, opening: list[tuple[AccountState, BillingPeriod]]) -> list[BillingPeriod]:
    """DRAFT invoices of the periods that started; returns the periods whose DRAFT is new."""
    if not opening:
        return []
    rows = await conn.fetch(
        """
        INSERT INTO invoices (id, account_id, customer_id, association_id, price_plan_id, period_start, period_end,
                              status, currency, invoice_date)
        SELECT u.id, u.account_id, u.customer_id, u.association_id, u.price_plan_id, u.period_start, u.period_end,
               'DRAFT', u.currency, u.closes_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[],
                    $7::timestamptz[], $8::text[], $9::timestamptz[])
             AS u(id, account_id, customer_id, association_id, price_plan_id, period_start, period_end, currency,
                  closes_at)
        ON CONFLICT (account_id, period_start) WHERE invoice_type = 'STANDARD' DO UPDATE
            SET period_end = EXCLUDED.period_end, association_id = EXCLUDED.association_id,
                price_plan_id = EXCLUDED.price_plan_id, currency = EXCLUDED.currency,
                invoice_date = EXCLUDED.invoice_date
            WHERE invoices.status = 'DRAFT'
              AND (invoices.period_end, invoices.association_id, invoices.price_plan_id, invoices.currency,
                   invoices.invoice_date)
                  IS DISTINCT FROM
                  (EXCLUDED.period_end, EXCLUDED.association_id, EXCLUDED.price_plan_id, EXCLUDED.currency,
                   EXCLUDED.invoice_date)
        RETURNING account_id, period_start, (xmax = 0) AS inserted
        """,
        [new_id("inv") for _ in opening],
        [a.id for a, _ in opening],
        [a.customer_id for a, _ in opening],
        [p.association.id for _, p in opening],
        [p.plan.id for _, p in opening],
        [p.period.start for _, p in opening],
        [p.period.end for _, p in opening],
        [a.currency for a, _ in opening],
        [p.due_at for _, p in opening],
    )
    started = {(r["account_id"], r["period_start"]) for r in rows if r["inserted"]}
    return [p for a, p in opening if (a.id, p.period.start) in started]


async def _issue_grants(session: AsyncSession, accounts: dict[str, AccountState], periods: list[BillingPeriod],
                        grants: dict[tuple[str, datetime], list[RateCardGrant]]) -> None:
    """Credit-grant rate cards grant at the start of every period (idempotent in the wallet engine): the grants
    _grants computed for it in the account's guard."""
    for bp in periods:
        account_id = bp.association.account_id
        specs = grants.get((account_id, bp.period.start))
        if specs:
            await wallets.issue_rate_card_grants(session, account_id=account_id,
                                                 currency=accounts[account_id].currency, specs=specs,
                                                 at=bp.period.start)


async def _finalize(conn: Any, closings: list[_Closing], now: datetime) -> list[BillingPeriod]:
    """The closed invoices (numbered already, with their lines and late usage); returns the periods closed
    without a DRAFT before (they start in this run too)."""
    rows = await conn.fetch(
        """
        INSERT INTO invoices (id, account_id, customer_id, association_id, price_plan_id, period_start, period_end,
                              status, currency, sequence_number, sub_total, true_up, total_amount, credits_applied,
                              amount_due, invoice_date, due_date, finalized_at, status_changed_at)
        SELECT u.id, u.account_id, u.customer_id, u.association_id, u.price_plan_id, u.period_start, u.period_end,
               'DUE', u.currency, u.number, u.sub_total, u.true_up, u.total, 0, u.total, u.invoice_date,
               u.due_date, $15, $15
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[],
                    $7::timestamptz[], $8::text[], $9::bigint[], $10::numeric[], $11::numeric[], $12::numeric[],
                    $13::timestamptz[], $14::timestamptz[])
             AS u(id, account_id, customer_id, association_id, price_plan_id, period_start, period_end, currency,
                  number, sub_total, true_up, total, invoice_date, due_date)
        ON CONFLICT (account_id, period_start) WHERE invoice_type = 'STANDARD' DO UPDATE
            SET period_end = EXCLUDED.period_end, association_id = EXCLUDED.association_id,
                price_plan_id = EXCLUDED.price_plan_id, status = 'DUE', currency = EXCLUDED.currency,
                sequence_number = EXCLUDED.sequence_number, sub_total = EXCLUDED.sub_total,
                true_up = EXCLUDED.true_up, total_amount = EXCLUDED.total_amount, credits_applied = 0,
                amount_due = EXCLUDED.amount_due, invoice_date = EXCLUDED.invoice_date,
                due_date = EXCLUDED.due_date, finalized_at = EXCLUDED.finalized_at,
                status_changed_at = EXCLUDED.status_changed_at
            WHERE invoices.status = 'DRAFT'
        RETURNING id, account_id, period_start, (xmax = 0) AS inserted
        """,
        [new_id("inv") for _ in closings],
        [c.account.id for c in closings],
        [c.account.customer_id for c in closings],
        [c.period.association.id for c in closings],
        [c.period.plan.id for c in closings],
        [c.period.period.start for c in closings],
        [c.period.period.end for c in closings],
        [c.account.currency for c in closings],
        [c.number for c in closings],
        [c.invoice.sub_total for c in closings],
        [c.invoice.true_up for c in closings],
        [c.invoice.total for c in closings],
        [c.period.due_at for c in closings],
        [c.period.due_at + timedelta(days=c.account.net_term_days) for c in closings],
        now,
    )
    written = {(r["account_id"], r["period_start"]): r for r in rows}
    if len(written) != len(closings):
        # The account lock and _already_final make this unreachable; refuse rather than leave a gap in the numbers.
        raise RuntimeError("an invoice to close was already final; the bill run was rolled back")
    for closing in closings:
        closing.invoice_id = written[(closing.account.id, closing.period.period.start)]["id"]
    await _copy_lines(conn, closings)
    await late_usage.claim(conn, {c.account.id: c.invoice_id for c in closings if c.bills_late_usage})
    await _store_rule_logs(conn, [c for c in closings if c.invoice.rule_logs])
    return [c.period for c in closings if written[(c.account.id, c.period.period.start)]["inserted"]]


async def _number(conn: Any, invoices: list[_Closing]) -> None:
    """Gapless numbers for `invoices`, in their order, from the one invoice counter."""
    if not invoices:
        return
    await conn.execute(counter_lock_sql(INVOICE_COUNTER))
    last = await conn.fetchval(
        "INSERT INTO invoice_counters (name, last_value) VALUES ('INVOICE', $1) ON CONFLICT (name) DO UPDATE "
        "SET last_value = invoice_counters.last_value + EXCLUDED.last_value RETURNING last_value", len(invoices))
    for offset, invoice in enumerate(invoices):
        invoice.number = last - len(invoices) + 1 + offset


async def _copy_lines(conn: Any, invoices: list[_Closing]) -> None:
    await conn.copy_records_to_table(
        "invoice_lines",
        records=[record for c in invoices for record in line_records(c.invoice_id, c.invoice.lines)],
        columns=["invoice_id", "position", "parent_position", "line_type", "rate_card_name", "description",
                 "quantity", "value_per_quantity", "value", "usage_meter_id", "usage_start", "usage_end",
                 "details"],
    )


async def _issue_advance_invoices(conn: Any, advance: list[_Closing], now: datetime) -> None:
    """Advance invoices, DUE at once: dated the association's first instant, with the empty period
    [start, start) (no usage is billed on them; each line names the period it pays for)."""
    if not advance:
        return
    for invoice in advance:
        invoice.invoice_id = new_id("inv")
    await conn.execute(
        """
        INSERT INTO invoices (id, account_id, customer_id, association_id, price_plan_id, period_start, period_end,
                              status, currency, sequence_number, sub_total, true_up, total_amount, credits_applied,
                              amount_due, invoice_date, due_date, finalized_at, status_changed_at, invoice_type)
        SELECT u.id, u.account_id, u.customer_id, u.association_id, u.price_plan_id, u.issued_at, u.issued_at,
               'DUE', u.currency, u.number, u.total, 0, u.total, 0, u.total, u.issued_at, u.due_date, $10, $10,
               'STANDARD_ADVANCED'
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::text[],
                    $8::bigint[], $9::numeric[], $11::timestamptz[])
             AS u(id, account_id, customer_id, association_id, price_plan_id, issued_at, currency, number, total,
                  due_date)
        """,
        [c.invoice_id for c in advance],
        [c.account.id for c in advance],
        [c.account.customer_id for c in advance],
        [c.period.association.id for c in advance],
        [c.period.plan.id for c in advance],
        [c.issued_at for c in advance],
        [c.account.currency for c in advance],
        [c.number for c in advance],
        [c.invoice.total for c in advance],
        now,
        [c.issued_at + timedelta(days=c.account.net_term_days) for c in advance],
    )
    await _copy_lines(conn, advance)


async def _store_rule_logs(conn: Any, closings: list[_Closing]) -> None:
    """The pricing-rule log of each closed invoice whose plan has rules (a separate statement: most have none)."""
    if closings:
        await conn.execute(
            "UPDATE invoices AS i SET pricing_rule_logs = u.logs::jsonb FROM unnest($1::text[], $2::text[]) "
            "AS u(id, logs) WHERE i.id = u.id",
            [c.invoice_id for c in closings], [json.dumps(list(c.invoice.rule_logs)) for c in closings])


async def _apply_credits(conn: Any, session: AsyncSession, closings: list[_Closing]) -> None:
    payable = [c for c in closings if c.invoice.total > 0]
    with_wallet = await _accounts_with_wallets(conn, sorted({c.account.id for c in payable}))
    applied: list[tuple[str, Decimal]] = []
    for closing in payable:
        if closing.account.id not in with_wallet:
            continue  # never had credit: nothing to apply (the hook would return 0 after a query)
        credit = await wallets.apply_credits_to_invoice(
            session, account_id=closing.account.id, invoice_id=closing.invoice_id, currency=closing.account.currency,
            amount=closing.invoice.total, at=closing.issued_at, period_end=closing.period.period.end,
            lines=[(line.rate_card_name, line.value) for line in closing.invoice.lines])
        if credit:
            applied.append((closing.invoice_id, min(credit, closing.invoice.total)))
    if applied:
        await session.flush()
        await conn.execute(
            "UPDATE invoices AS i SET credits_applied = u.credit, amount_due = i.total_amount - u.credit "
            "FROM unnest($1::text[], $2::numeric[]) AS u(id, credit) WHERE i.id = u.id",
            [i for i, _ in applied], [c for _, c in applied])


async def _accounts_with_wallets(conn: Any, account_ids: list[str]) -> set[str]:
    """One query instead of one wallet lookup per invoice: accounts without a wallet row never had credit."""
    if not account_ids:
        return set()
    rows = await conn.fetch(f"SELECT account_id FROM {WalletRow.__tablename__} WHERE account_id = ANY($1::text[])",
                            account_ids)
    return {r["account_id"] for r in rows}


async def _advance(conn: Any, timelines: dict[str, Timeline], failed: set[str]) -> None:
    ids, billed, next_runs = [], [], []
    for account_id, timeline in timelines.items():
        if account_id in failed:
            continue
        ids.append(account_id)
        billed.append(timeline.due[-1].period.end if timeline.due else None)
        next_runs.append(timeline.next_run_at)
    await conn.execute(
        "UPDATE account_billing AS b SET billed_until = COALESCE(u.billed_until, b.billed_until), "
        "next_run_at = u.next_run_at "
        "FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS u(account_id, billed_until, next_run_at) "
        "WHERE b.account_id = u.account_id", ids, billed, next_runs)
    moved = [(a, b) for a, b in zip(ids, billed, strict=True) if b is not None]
    if moved:
        await conn.execute(
            "UPDATE billing_watermarks AS w SET closed_before = u.closed_before "
            "FROM unnest($1::text[], $2::timestamptz[]) AS u(account_id, closed_before) "
            "WHERE w.account_id = u.account_id AND w.closed_before < u.closed_before",
            [a for a, _ in moved], [b for _, b in moved])


def line_records(invoice_id: str, lines: Sequence[ComposedLine]) -> list[tuple[Any, ...]]:
    """Rows for invoice_lines: top-level lines numbered from 1, each followed by its children."""
    records: list[tuple[Any, ...]] = []

    def add(line: ComposedLine, parent: int | None) -> None:
        position = len(records) + 1
        records.append((
            invoice_id, position, parent, line.line_type, line.rate_card_name, line.description, line.quantity,
            line.value_per_quantity, line.value, line.usage_meter_id, line.usage_start, line.usage_end,
            json.dumps(line.details) if line.details is not None else None,
        ))
        for child in line.children:
            add(child, position)

    for line in lines:
        add(line, None)
    return records
