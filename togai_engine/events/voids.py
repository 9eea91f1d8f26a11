"""Voiding an event: a correction of an open billing period that edits no history away.

The event stays stored with status VOIDED, `voided_at` and `void_reason`; its id stays claimed in
`event_ids`, so re-sending the same id is a DUPLICATE (a corrected event needs a new id). A VOIDED
event is not usage: every reader of raw events for quantities goes through `valued_sql`, which takes
metered events only (meters.sql.METERED_STATUSES), and the rollups of the event's hour are recomputed
(meters.rollups.recompute_account_hours, for all the batch's hours at once), so the DRAFT invoice,
metrics, entitlements and `togai-engine verify` all follow at once.

Only an event of an open period can be voided. One dated before the account's billing watermark is
on a DUE (or later) invoice whose amounts never change: refused, naming the invoice and the way to
correct it (a credit note); one there in no invoiced period (a gap no plan covers: stored
NOT_BILLED_NO_PLAN) is refused as never billed, with nothing to correct. One stored NOT_BILLED_CYCLE_CLOSED
was never billed: refused too. One stored ACCEPTED_LATE that no invoice has billed yet (its late-usage line
waits for the account's next invoice) can be voided: it leaves the pending late usage, so that line does not
bill it; once billed, it is refused, naming the late-usage lines of the invoice that billed it (its period's, and
those of later periods of its quota cycle whose overage its usage moved: the credit note goes there, not on its
period's invoice, on the lines above zero; a line below zero, which lowers the invoice, takes a note by amount;
none when that invoice is VOID: nothing is owed).

Locks, in the order ingest takes them: the event schema's lock, EXCLUSIVE (ingest holds it shared,
so no batch of the schema, of any account, is writing the rollup rows or the all-account totals
being recomputed); the due cycles of the account are closed first, as ingest does before it judges
an event late; the account's billing fence, shared (a bill run cannot close the period under
this void), taken with the closed accounts' fences before the invoice counter, as ingest does; stripe 0's advisory lock (compaction, which needs it, folds no stripe meanwhile). The event
rows are then read by a new statement and take no row lock: only a void writes an event row, and every void
of an event holds its schema's lock exclusive, so a second void of the same event waits for the first and
then reads it VOIDED. (A `FOR UPDATE` over events of several accounts is a statement Citus refuses: their
rows are on several shards.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.service import resolve_account_ids
from togai_engine.billing.close import close_due_cycles
from togai_engine.errors import Conflict, InvalidInput, NotFound
from togai_engine.events.ingest import ACCEPTED_LATE, NOT_BILLED_CYCLE_CLOSED, VOIDED, lock_watermarks
from togai_engine.events.models import EventRow
from togai_engine.events.schemas import EventRecord
from togai_engine.events.service import event_records
from togai_engine.events.validation import MAX_ID_CHARS
from togai_engine.invoices import late_usage
from togai_engine.invoices.compose import LATE_USAGE_LINE
from togai_engine.invoices.display import invoice_number, money
from togai_engine.meters import catalog
from togai_engine.meters.models import UsageMeterRow
from togai_engine.meters.rollups import recompute_account_hours
from togai_engine.meters.sql import STRIPE_LOCK_CLASS, lock_schemas_sql
from togai_engine.meters.usage import floor_hour
from togai_engine.store.database import raw_connection

MAX_REASON_CHARS = 255
MAX_BATCH = 100  # a batch holds its schemas' exclusive lock (ingest of them waits) while it recomputes


def check_reason(reason: object) -> str:
    """The reason as stored: required free text, 1 to 255 characters (surrounding spaces dropped)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason", "is required: say why the event is voided (1 to 255 characters), "
                                     "e.g. 'sent twice under two ids'")
    text = reason.strip()
    if len(text) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"has {len(text)} characters; use at most {MAX_REASON_CHARS}")
    if "\x00" in text:
        raise InvalidInput("reason", "contains a NUL character; remove it")
    return text


@dataclass(frozen=True)
class _Target:
    field: str  # "" for void_event, "events[i]." for void_events: where an error points
    account_id: str
    event_id: str
    event_time: datetime

    @property
    def key(self) -> tuple[str, str]:
        return self.account_id, self.event_id


async def void_event(session: AsyncSession, account_handle: str, event_id: str, reason: str,
                     now: datetime) -> EventRecord:
    """Voids one event of an open billing period; voiding it again returns it as it is (idempotent)."""
    return (await void_events(session, [{"accountId": account_handle, "eventId": event_id}], reason, now,
                              single=True))[0]


async def void_events(session: AsyncSession, events: object, reason: str, now: datetime, *,
                      single: bool = False) -> list[EventRecord]:
    """Voids 1 to MAX_BATCH events ({accountId, eventId}) of open billing periods, all or none: one
    that is unknown or in an invoiced period fails the call and voids nothing. Events already VOIDED
    are returned as they are. Returns the events in the order given.

    Set-based: each step is one statement for the whole batch (accounts, event ids, events, their
    locks, the update, and the rollups of each schema), so the schemas' exclusive lock is held for a
    number of statements that does not grow with the batch."""
    reason = check_reason(reason)
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
        raise InvalidInput("events", f"must be a list of 1 to {MAX_BATCH} {{accountId, eventId}}; nothing was voided")
    targets = await _targets(session, events, single)
    rows = await _events(session, targets)
    pending = [t for t in _each_once(targets) if rows[t.key].status != VOIDED]
    if pending:
        schemas = sorted({rows[t.key].schema_name for t in pending})
        rows |= await _void(session, pending, schemas, reason, now)
    return await event_records(session, [rows[t.key] for t in targets])


def _given(field: str, item: object) -> tuple[str, str]:
    """The (accountId, eventId) of one item, checked for shape only."""
    if not isinstance(item, dict) or set(item) != {"accountId", "eventId"}:
        raise InvalidInput(field.rstrip(".") or "events", "must be {accountId, eventId}")
    handle, event_id = item["accountId"], item["eventId"]
    if not isinstance(handle, str) or not handle or "\x00" in handle:
        raise InvalidInput(f"{field}accountId", "must be an account id or alias without NUL characters")
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_CHARS or "\x00" in event_id:
        raise InvalidInput(f"{field}eventId", f"must be 1 to {MAX_ID_CHARS} characters without NUL: the "
                                              "id list_events shows for the event")
    return handle, event_id


async def _targets(session: AsyncSession, events: list[object], single: bool) -> list[_Target]:
    """Resolves every {accountId, eventId}: one lookup of the accounts, one of the event ids. The error
    raised is the one checking the items in order would meet first: a malformed item, or NotFound
    naming the tool that lists the right ids."""
    given: list[tuple[str, str, str]] = []  # (field, handle, event id) of the items before any malformed one
    malformed: InvalidInput | None = None
    for i, item in enumerate(events):
        field = "" if single else f"events[{i}]."
        try:
            given.append((field, *_given(field, item)))
        except InvalidInput as exc:
            malformed = exc
            break
    accounts = await resolve_account_ids(session, {handle for _, handle, _ in given})
    claimed = sorted({(accounts[handle], event_id) for _, handle, event_id in given if handle in accounts})
    times = {(row[0], row[1]): row[2] for row in await (await raw_connection(session)).fetch(
        "SELECT k.account_id, k.id, i.event_time FROM unnest($1::text[], $2::text[]) AS k(account_id, id) "
        "JOIN event_ids AS i ON i.account_id = k.account_id AND i.id = k.id",
        [c[0] for c in claimed], [c[1] for c in claimed])}
    targets = []
    for field, handle, event_id in given:
        account_id = accounts.get(handle)
        if account_id is None:
            raise NotFound(f"{field}accountId: account {handle!r} does not exist; list_accounts shows the ids")
        event_time = times.get((account_id, event_id))
        if event_time is None:
            raise NotFound(f"{field}eventId: account {account_id!r} has no event {event_id!r}; list_events "
                           f"(accountId {account_id!r}) shows its events and their ids")
        targets.append(_Target(field, account_id, event_id, event_time))
    if malformed is not None:
        raise malformed
    return targets


def _each_once(targets: list[_Target]) -> list[_Target]:
    """The targets without repeats of an event (the first mention stays), sorted by (account, event id):
    the order their rows are locked in and their errors are looked for."""
    first: dict[tuple[str, str], _Target] = {}
    for target in targets:
        first.setdefault(target.key, target)
    return sorted(first.values(), key=lambda t: t.key)


async def _void(session: AsyncSession, targets: list[_Target], schemas: list[str], reason: str,
                now: datetime) -> dict[tuple[str, str], EventRow]:
    """Voids `targets` (each event once; their events are of `schemas`) under the locks the module
    docstring lists; returns their rows as they are now."""
    conn = await raw_connection(session)
    accounts = sorted({t.account_id for t in targets})
    await conn.fetchval(lock_schemas_sql(exclusive=True), schemas)
    # the other accounts' fences with the closed ones', before the invoice counter (close_due_cycles)
    await close_due_cycles(session, now, accounts, shared_fences=accounts)
    closed_before = await lock_watermarks(conn, accounts)
    await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", STRIPE_LOCK_CLASS)
    rows = await _events(session, targets)  # a new statement: it sees a void that committed before the locks
    # late events not billed yet; the watermark lock held here keeps a bill run from billing them meanwhile
    pending = await late_usage.pending_late_events(
        conn, [t.key for t in targets if rows[t.key].status == ACCEPTED_LATE])
    voiding = []
    for target in targets:
        status = rows[target.key].status
        if status == VOIDED:  # a concurrent void of the same event committed first
            continue
        if status == NOT_BILLED_CYCLE_CLOSED:
            raise Conflict(f"{target.field}eventId: event {target.event_id!r} of account {target.account_id!r} was "
                           "stored NOT_BILLED_CYCLE_CLOSED (its billing period was already invoiced when it "
                           "arrived): it was never billed, so there is nothing to void; nothing was voided")
        closed = closed_before.get(target.account_id)
        if closed is not None and target.event_time < closed and target.key not in pending:
            raise Conflict(await _closed_message(conn, target, closed, status))
        voiding.append(target)
    if not voiding:
        return rows
    voided = await session.scalars(
        select(EventRow).from_statement(text(
            "UPDATE events AS e SET status = :status, voided_at = :now, void_reason = :reason "
            f"FROM {_KEYS} WHERE e.account_id = k.account_id AND e.event_time = k.event_time AND e.id = k.id "
            "RETURNING e.*"))
        .execution_options(populate_existing=True), _key_arrays(voiding) | {"status": VOIDED, "now": now, "reason": reason})
    rows |= {(row.account_id, row.id): row for row in voided}
    await late_usage.forget_pending(conn, [t.key for t in voiding if t.key in pending])
    hours: dict[str, set[tuple[str, datetime]]] = defaultdict(set)  # per schema, (account, hour)
    for target in voiding:
        hours[rows[target.key].schema_name].add((target.account_id, floor_hour(target.event_time)))
    meters = catalog.compiled(await session.scalars(
        select(UsageMeterRow).where(UsageMeterRow.event_schema_name.in_(sorted(hours))).order_by(UsageMeterRow.id)))
    meters_by_schema = catalog.by_schema(meters)
    for schema in sorted(hours):
        await recompute_account_hours(session, meters_by_schema.get(schema, []), hours[schema])
    return rows


# the targets as $-arrays :account_ids, :event_times, :ids; a relation `k` of their columns
_KEYS = ("unnest(CAST(:account_ids AS text[]), CAST(:event_times AS timestamptz[]), CAST(:ids AS text[])) "
         "AS k(account_id, event_time, id)")


def _key_arrays(targets: list[_Target]) -> dict[str, list[Any]]:
    return {"account_ids": [t.account_id for t in targets], "event_times": [t.event_time for t in targets],
            "ids": [t.event_id for t in targets]}


async def _events(session: AsyncSession, targets: list[_Target]) -> dict[tuple[str, str], EventRow]:
    """The stored rows of `targets`, in one statement."""
    # by (account_id, event_time) first: one partition, one probe of the (account_id, event_time) index each
    sql = (f"SELECT e.* FROM {_KEYS} JOIN events AS e ON e.account_id = k.account_id "
           "AND e.event_time = k.event_time AND e.id = k.id")
    found = await session.scalars(select(EventRow).from_statement(text(sql)).execution_options(populate_existing=True),
                                  _key_arrays(targets))
    rows = {(row.account_id, row.id): row for row in found}
    for target in targets:
        if target.key not in rows:  # claimed in event_ids but not stored: only a hand-made row can do that
            raise NotFound(f"{target.field}eventId: event {target.event_id!r} of account {target.account_id!r} "
                           "is not stored; list_events shows the stored events")
    return rows


def _fix(invoice_id: str, status: str, credit_note: str) -> str:
    """How to correct a charge on an invoice: a credit note (`credit_note` says where), except on a VOID invoice, which
    owes nothing and takes no credit note (invoices README)."""
    if status == "VOID":
        return f"invoice {invoice_id!r} is VOID, so nothing is owed for the event and there is no charge to correct"
    return f"Correct the charge with a credit note on {credit_note}"


async def _closed_message(conn: Any, target: _Target, closed_before: datetime, status: str) -> str:
    event = f"{target.field}eventId: event {target.event_id!r} of account {target.account_id!r}"
    late = await _late_line_of(conn, target)
    if late is not None:
        # billed as late usage: the charge is on the next invoice's late-usage line, not on its period's invoice
        # its usage may also have moved later periods of its quota cycle, billed on their own lines (late_usage._moved)
        number = invoice_number(late["sequence_number"]) or late["id"]
        numbers = list(late["lines"])
        fix = _fix(late["id"], late["status"], _late_credit(late["id"], numbers, list(late["line_values"]),
                                                              money(late["currency"])))
        where = _line_list(numbers)
        return (f"{event} ({target.event_time.isoformat()}) arrived after its billing period was invoiced and was "
                f"billed as late usage on invoice {late['id']!r} ({number}, {late['status']}), {where}; "
                f"an invoiced amount never changes, so the event cannot be voided. {fix}; nothing was voided")
    invoice = await conn.fetchrow(
        "SELECT id, status FROM invoices WHERE account_id = $1 AND period_start <= $2 AND period_end > $2 "
        "AND status <> 'DRAFT' ORDER BY period_start DESC LIMIT 1", target.account_id, target.event_time)
    if invoice is None:
        # before the watermark but in no invoiced period: a gap no plan covered (stored NOT_BILLED_NO_PLAN, or a plan
        # later cut short before it), so no invoice charged it and no credit note can apply
        return (f"{event} ({target.event_time.isoformat()}, stored {status}) was never billed: no invoiced billing "
                "period contains its time (no price plan covers it), so no invoice charged it and there is nothing "
                f"to correct. It cannot be voided: it is dated before {closed_before.isoformat()}, the end of the "
                "account's last invoiced billing period, and only events of open billing periods can be voided; "
                "nothing was voided")
    fix = _fix(invoice["id"], invoice["status"], "that invoice (create_credit_note)")
    return (f"{event} ({target.event_time.isoformat()}) is in a billing period that is already invoiced (on invoice "
            f"{invoice['id']!r}, {invoice['status']}), and an invoiced amount never changes, so the event cannot be "
            f"voided. {fix}; nothing was voided")


def _line_list(numbers: list[int]) -> str:
    return f"line {numbers[0]}" if len(numbers) == 1 else \
        f"lines {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


def _late_credit(invoice_id: str, numbers: list[int], values: list[Decimal],
                 shown: Callable[[Decimal | None], Decimal]) -> str:
    """Where a credit note for a late event's charge goes: the late-usage lines above zero take a line credit; a line
    below zero (its period's charge fell, offset against the cycle's other late lines: invoices README) lowers the
    invoice and has nothing to credit line by line, so what it stands for is credited by amount."""
    creditable = [n for n, value in zip(numbers, values, strict=True) if value > 0]
    below = [(n, value) for n, value in zip(numbers, values, strict=True) if value < 0]
    by_amount = f"by amount (create_credit_note, invoiceId {invoice_id!r}, amount)"
    if not creditable:
        return f"the invoice {by_amount}: " \
               f"{'its line takes no' if len(numbers) == 1 else 'none of its lines takes a'} line credit"
    where = (f"{_line_list(creditable)} (create_credit_note, invoiceId {invoice_id!r}, lineNumber "
             f"{' or '.join(map(str, creditable))})")
    if not below:
        return where
    lowering = ", ".join(f"line {n} is {shown(value)}" for n, value in below)
    return f"{where}, or by amount ({lowering} and {'takes' if len(below) == 1 else 'take'} no line credit)"


async def _late_line_of(conn: Any, target: _Target) -> Any:
    """For an event billed as late usage: the invoice that billed it (id, sequence_number, status, currency) and the
    numbers of its late-usage lines the event is charged on (`lines`, as create_credit_note's lineNumber counts: the
    top-level lines from 1) with their values (`line_values`): its period's, and those of later periods of its quota
    cycle its usage moved (their `movedBy` names its period's invoice); None for any other event."""
    return await conn.fetchrow(
        "SELECT i.id, i.sequence_number, i.status, i.currency, array_agg((SELECT count(*) FROM invoice_lines c WHERE "
        "c.invoice_id = l.invoice_id AND c.parent_position IS NULL AND c.position <= l.position) "
        "ORDER BY l.position) AS lines, array_agg(l.value ORDER BY l.position) AS line_values "
        "FROM late_usage_events u JOIN invoices i ON i.id = u.invoice_id "
        "JOIN invoice_lines l ON l.invoice_id = u.invoice_id AND l.parent_position IS NULL AND l.line_type = $3 "
        "AND (l.details->>'sourceInvoiceId' = u.source_invoice_id "
        "OR coalesce(l.details->'movedBy', '[]'::jsonb) @> jsonb_build_array(u.source_invoice_id)) "
        "WHERE u.account_id = $1 AND u.event_id = $2 GROUP BY i.id, i.sequence_number, i.status, i.currency",
        target.account_id, target.event_id, LATE_USAGE_LINE)
