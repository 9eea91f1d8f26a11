"""Voiding an event: a correction of an open billing period that edits no history away.

The event stays stored with status VOIDED, `voided_at` and `void_reason`; its id stays claimed in
`event_ids`, so re-sending the same id is a DUPLICATE (a corrected event needs a new id). A VOIDED
event is not usage: every reader of raw events for quantities goes through `valued_sql`, which takes
metered events only (meters.sql.METERED_STATUSES: ACCEPTED and NOT_BILLED_NO_PLAN), and the rollups of the event's hour are recomputed
(meters.rollups.recompute_account_hour), so the DRAFT invoice, metrics, entitlements and
`togai-engine verify` all follow at once.

Only an event of an open period can be voided. One dated before the account's billing watermark is
on a DUE (or later) invoice whose amounts never change: refused, naming the invoice and the way to
correct it (a credit note). One stored NOT_BILLED_CYCLE_CLOSED was never billed: refused too.

Locks, in the order ingest takes them: the event schema's lock, EXCLUSIVE (ingest holds it shared,
so no batch of the schema, of any account, is writing the rollup rows or the all-account totals
being recomputed); the due cycles of the account are closed first, as ingest does before it judges
an event late; the account's billing watermark FOR SHARE (a bill run cannot close the period under
this void); stripe 0's advisory lock (compaction, which needs it, folds no stripe meanwhile); then
the event row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.service import resolve_account_id
from togai_engine.billing.close import close_due_cycles
from togai_engine.errors import Conflict, InvalidInput, NotFound
from togai_engine.events.ingest import NOT_BILLED_CYCLE_CLOSED, VOIDED, lock_watermarks
from togai_engine.events.models import EventRow
from togai_engine.events.schemas import EventRecord
from togai_engine.events.service import event_records
from togai_engine.events.validation import MAX_ID_CHARS
from togai_engine.meters import catalog
from togai_engine.meters.models import UsageMeterRow
from togai_engine.meters.rollups import recompute_account_hour
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


async def void_event(session: AsyncSession, account_handle: str, event_id: str, reason: str,
                     now: datetime) -> EventRecord:
    """Voids one event of an open billing period; voiding it again returns it as it is (idempotent)."""
    return (await void_events(session, [{"accountId": account_handle, "eventId": event_id}], reason, now,
                              single=True))[0]


async def void_events(session: AsyncSession, events: object, reason: str, now: datetime, *,
                      single: bool = False) -> list[EventRecord]:
    """Voids 1 to MAX_BATCH events ({accountId, eventId}) of open billing periods, all or none: one
    that is unknown or in an invoiced period fails the call and voids nothing. Events already VOIDED
    are returned as they are. Returns the events in the order given."""
    reason = check_reason(reason)
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
        raise InvalidInput("events", f"must be a list of 1 to {MAX_BATCH} {{accountId, eventId}}; nothing was voided")
    targets = [await _target(session, "" if single else f"events[{i}].", item) for i, item in enumerate(events)]
    rows = {t: await _event(session, t) for t in targets}
    pending = [t for t in targets if rows[t].status != VOIDED]
    if pending:
        await _void(session, pending, rows, reason, now)
    return await event_records(session, [rows[t] for t in targets])


async def _target(session: AsyncSession, field: str, item: object) -> _Target:
    """Resolves one {accountId, eventId}; NotFound naming the tool that lists the right ids."""
    if not isinstance(item, dict) or set(item) != {"accountId", "eventId"}:
        raise InvalidInput(field.rstrip(".") or "events", "must be {accountId, eventId}")
    handle, event_id = item["accountId"], item["eventId"]
    if not isinstance(handle, str) or not handle or "\x00" in handle:
        raise InvalidInput(f"{field}accountId", "must be an account id or alias without NUL characters")
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_CHARS or "\x00" in event_id:
        raise InvalidInput(f"{field}eventId", f"must be 1 to {MAX_ID_CHARS} characters without NUL: the "
                                              "id list_events shows for the event")
    account_id = await resolve_account_id(session, handle)
    if account_id is None:
        raise NotFound(f"{field}accountId: account {handle!r} does not exist; list_accounts shows the ids")
    event_time = await (await raw_connection(session)).fetchval(
        "SELECT event_time FROM event_ids WHERE account_id = $1 AND id = $2", account_id, event_id)
    if event_time is None:
        raise NotFound(f"{field}eventId: account {account_id!r} has no event {event_id!r}; list_events "
                       f"(accountId {account_id!r}) shows its events and their ids")
    return _Target(field, account_id, event_id, event_time)


async def _void(session: AsyncSession, targets: list[_Target], rows: dict[_Target, EventRow], reason: str,
                now: datetime) -> None:
    conn = await raw_connection(session)
    accounts = sorted({t.account_id for t in targets})
    await conn.fetchval(lock_schemas_sql(exclusive=True), sorted({rows[t].schema_name for t in targets}))
    await close_due_cycles(session, now, accounts)
    closed_before = await lock_watermarks(conn, accounts)
    await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", STRIPE_LOCK_CLASS)
    hours: set[tuple[str, str, datetime]] = set()
    for target in sorted(set(targets), key=lambda t: (t.account_id, t.event_id)):
        row = rows[target] = await _event(session, target, lock=True)
        if row.status == VOIDED:  # a concurrent void of the same event committed first
            continue
        if row.status == NOT_BILLED_CYCLE_CLOSED:
            raise Conflict(f"{target.field}eventId: event {target.event_id!r} of account {target.account_id!r} was "
                           "stored NOT_BILLED_CYCLE_CLOSED (its billing period was already invoiced when it "
                           "arrived): it was never billed, so there is nothing to void; nothing was voided")
        closed = closed_before.get(target.account_id)
        if closed is not None and target.event_time < closed:
            raise Conflict(await _closed_message(conn, target))
        await conn.execute(
            "UPDATE events SET status = $4, voided_at = $5, void_reason = $6 "
            "WHERE account_id = $1 AND event_time = $2 AND id = $3",
            target.account_id, target.event_time, target.event_id, VOIDED, now, reason)
        hours.add((row.schema_name, target.account_id, floor_hour(target.event_time)))
    for schema in sorted({schema for schema, _, _ in hours}):
        meters = catalog.compiled(await session.scalars(
            select(UsageMeterRow).where(UsageMeterRow.event_schema_name == schema).order_by(UsageMeterRow.id)))
        for _, account_id, hour in sorted(h for h in hours if h[0] == schema):
            await recompute_account_hour(session, meters, account_id, hour)
    for target in targets:
        rows[target] = await _event(session, target)


async def _event(session: AsyncSession, target: _Target, *, lock: bool = False) -> EventRow:
    # by (account_id, event_time) first: one partition, one probe of the (account_id, event_time) index
    stmt = select(EventRow).where(
        EventRow.account_id == target.account_id, EventRow.event_time == target.event_time,
        EventRow.id == target.event_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:  # claimed in event_ids but not stored: only a hand-made row can do that
        raise NotFound(f"{target.field}eventId: event {target.event_id!r} of account {target.account_id!r} is not "
                       "stored; list_events shows the stored events")
    return row


async def _closed_message(conn: Any, target: _Target) -> str:
    invoice = await conn.fetchrow(
        "SELECT id, status FROM invoices WHERE account_id = $1 AND period_start <= $2 AND period_end > $2 "
        "AND status <> 'DRAFT' ORDER BY period_start DESC LIMIT 1", target.account_id, target.event_time)
    where = (f"on invoice {invoice['id']!r} ({invoice['status']})" if invoice is not None
             else "before the end of its last invoiced billing period")
    return (f"{target.field}eventId: event {target.event_id!r} of account {target.account_id!r} "
            f"({target.event_time.isoformat()}) is in a billing period that is already invoiced ({where}), and an "
            "invoiced amount never changes, so the event cannot be voided. Correct the charge with a credit note "
            "on that invoice (create_credit_note); nothing was voided")
