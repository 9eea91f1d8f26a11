"""Event operations: ingest one or a batch, list stored events and event schemas.

Services take the session first and never commit; the hot path itself lives in ingest.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.service import resolve_account_id
from togai_engine.common.messages import brief, describe_errors, join_path
from togai_engine.common.pagination import fetch_page
from togai_engine.common.progress import ProgressCallback
from togai_engine.common.schemas import Page
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.events.ingest import (
    ACCEPTED_LATE,
    DUPLICATE,
    NOT_BILLED_CYCLE_CLOSED,
    NOT_BILLED_NO_PLAN,
    REJECTED,
    IngestReport,
    ingest_events,
)
from togai_engine.events.models import EventRow
from togai_engine.events.schemas import (
    EventAttribute,
    EventRecord,
    EventSchema,
    IngestBatchResult,
    IngestEventResult,
    MeterValue,
    RejectedEventInfo,
    SchemaAttribute,
)
from togai_engine.events.validation import MAX_BATCH_EVENTS
from togai_engine.meters import catalog
from togai_engine.meters.compiler import is_stored_decimal
from togai_engine.meters.models import EventSchemaRow, UsageMeterRow
from togai_engine.meters.sql import METERED_STATUSES, valued_sql
from togai_engine.store.database import raw_connection

RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
STATUS_MESSAGES = {
    "ACCEPTED": "stored; it feeds the usage meters of its schema",
    DUPLICATE: "an event with this id was already stored for this account; it is counted once and nothing changed "
               "(the id of a VOIDED event stays taken too: send a corrected event under a new id)",
    NOT_BILLED_CYCLE_CLOSED: "stored, but its billing cycle is already invoiced, so it is not billed (its plan's "
                             "lateUsage is IGNORE)",
    ACCEPTED_LATE: "stored after its billing cycle was invoiced; its plan bills late usage, so it feeds the usage "
                   "meters and is billed on the account's next invoice, on a line for that cycle's late usage",
    NOT_BILLED_NO_PLAN: "stored; it feeds the usage meters of its schema, but the account has no price plan in effect "
                        "at its timestamp, so no invoice bills it. It is billed only if a plan is attached to the "
                        "account from a time at or before it (update_account pricePlanId + effectiveFrom)",
}


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the whole transaction may simply be run again."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig.__cause__ or exc.orig  # type: ignore[assignment,union-attr]
    return isinstance(exc, RETRYABLE)


async def ingest_event(session: AsyncSession, event: object, now: datetime, *,
                       refuse_after_now: bool = False) -> IngestEventResult:
    """Ingests one event; a rejected event is an InvalidInput naming the field and the reason code.
    `refuse_after_now`: a sandbox, where an event dated after the clock has not happened yet."""
    report = await ingest_events(session, [event], now, report_meters=True, refuse_after_now=refuse_after_now)
    if report.statuses[0] == REJECTED:
        reason = report.rejected[0]
        raise InvalidInput(
            f"event.{reason.field}" if reason.field else "event",
            f"{reason.message} [{reason.code}]; nothing was stored",
        )
    status = report.statuses[0]
    return IngestEventResult(
        eventId=report.event_ids[0],  # type: ignore[arg-type]
        accountId=report.account_ids[0],  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        message=STATUS_MESSAGES[status],
        usageMeters=report.meters_fed or [],
        warnings=report.warnings,
    )


def check_batch(events: object) -> Sequence[object]:
    """The request-level check: a list of 1..1000 events, else one error and nothing stored."""
    if not isinstance(events, list):
        raise InvalidInput("events", "must be a list of events; nothing was stored")
    if not 1 <= len(events) <= MAX_BATCH_EVENTS:
        raise InvalidInput(
            "events",
            f"has {len(events)} events; send 1 to {MAX_BATCH_EVENTS} per call (split larger batches); "
            "nothing was stored",
        )
    return events


def batch_result(report: IngestReport) -> IngestBatchResult:
    duplicates = [i for i, s in enumerate(report.statuses) if s == DUPLICATE]
    not_billed = [i for i, s in enumerate(report.statuses) if s == NOT_BILLED_CYCLE_CLOSED]
    no_plan = [i for i, s in enumerate(report.statuses) if s == NOT_BILLED_NO_PLAN]
    late = [i for i, s in enumerate(report.statuses) if s == ACCEPTED_LATE]
    return IngestBatchResult(
        accepted=report.count("ACCEPTED"),
        duplicates=len(duplicates),
        rejected=len(report.rejected),
        notBilled=len(not_billed),
        notBilledNoPlan=len(no_plan),
        acceptedLate=len(late),
        rejectedEvents=[
            RejectedEventInfo(index=r.index, eventId=r.event_id, code=r.code, field=r.field or None, message=r.message)
            for r in report.rejected
        ],
        duplicateIndexes=duplicates,
        notBilledIndexes=not_billed,
        notBilledNoPlanIndexes=no_plan,
        acceptedLateIndexes=late,
        warnings=report.warnings,
    )


async def ingest_batch(session: AsyncSession, events: object, now: datetime, *,
                       progress: ProgressCallback | None = None, refuse_after_now: bool = False) -> IngestBatchResult:
    """Ingests 1..1000 events: valid ones are stored even when others are rejected."""
    return batch_result(await ingest_batch_report(session, events, now, progress=progress,
                                                  refuse_after_now=refuse_after_now))


async def ingest_batch_report(session: AsyncSession, events: object, now: datetime, *,
                              progress: ProgressCallback | None = None, refuse_after_now: bool = False) -> IngestReport:
    """ingest_batch's work, answered with the report of every event (batch_result makes the answer of it)."""
    return await ingest_events(session, check_batch(events), now, progress=progress, refuse_after_now=refuse_after_now)


# ---------------------------------------------------------------- reading


async def list_events(
    session: AsyncSession,
    *,
    account_id: str | None = None,
    schema_name: str | None = None,
    status: str | None = None,
    page_size: int | None = None,
    next_token: str | None = None,
) -> Page[EventRecord]:
    """Stored events, newest event time first, with the meters each one feeds."""
    for name, value in (("accountId", account_id), ("schemaName", schema_name)):
        if value is not None and "\x00" in value:
            raise InvalidInput(name, "contains a NUL character; remove it")
    stmt = select(EventRow)
    if account_id is not None:
        resolved = await resolve_account_id(session, account_id)
        if resolved is None:
            raise NotFound(f"account {account_id!r} does not exist; list_accounts shows the ids")
        stmt = stmt.where(EventRow.account_id == resolved)
    if schema_name is not None:
        stmt = stmt.where(EventRow.schema_name == schema_name)
    if status is not None:
        stmt = stmt.where(EventRow.status == status)
    page, token = await fetch_page(session, stmt, (EventRow.event_time, EventRow.account_id, EventRow.id), "events",
                                   page_size, next_token, descending=True)
    return Page[EventRecord](data=await event_records(session, page), nextToken=token)


async def event_records(session: AsyncSession, rows: list[EventRow]) -> list[EventRecord]:
    """Stored events as callers see them, each with the value it contributes to each meter (billable
    events only: the others feed nothing)."""
    values, unreadable = await _meter_values(session, rows)
    return [_record(row, values.get((row.account_id, row.id), []), unreadable.get((row.account_id, row.id)))
            for row in rows]


_DIMENSIONS = TypeAdapter(dict[str, str])  # and units


def _record(row: EventRow, meters: list[MeterValue], unreadable: str | None = None) -> EventRecord:
    """The event as stored. A row edited by hand into what ingest refuses is shown without the part at fault, and its
    `problem` names it: one row never fails a listing of many (another account's events)."""
    problems = [unreadable] if unreadable else []
    units: dict[str, str] = {}
    if row.units is not None:
        try:
            units = _DIMENSIONS.validate_python(row.units)  # {attribute: unit}, text as dimensions are
        except ValidationError as exc:
            problems += [f"{join_path('units', path)}: {message}" for path, message in describe_errors(exc)]
    attributes = row.attributes
    if not isinstance(attributes, dict):
        problems.append(f"attributes: is not an object ({brief(attributes)})")
        attributes = {}
    # a value the meters' SQL reads as missing (meters.compiler.stored_decimal_sql): the event contributes nothing
    problems += [f"attributes.{name}: {brief(value)} is not a decimal, so the usage meters read it as missing"
                 for name, value in attributes.items()
                 if isinstance(value, bool) or not is_stored_decimal(str(value))]
    try:
        dimensions = _DIMENSIONS.validate_python(row.dimensions)
    except ValidationError as exc:
        problems += [f"{join_path('dimensions', path)}: {message}" for path, message in describe_errors(exc)]
        dimensions = {}
    return EventRecord(
        id=row.id,
        accountId=row.account_id,
        schemaName=row.schema_name,
        timestamp=row.event_time,
        receivedAt=row.received_at,
        attributes=[EventAttribute(name=k, value=str(v), unit=units.get(k)) for k, v in attributes.items()],
        dimensions=dimensions,
        status=row.status,  # type: ignore[arg-type]
        usageMeters=meters,
        voidedAt=row.voided_at,
        voidReason=row.void_reason,
        problem=None if not problems else (
            f"event {row.id!r} of account {row.account_id!r} as stored is not what ingest stores (edited by hand?): "
            f"{'; '.join(problems)}; it is shown without that part. Restore the row, or void_event it and ingest "
            "the event again under a new id"),
    )


async def _meter_values(session: AsyncSession, rows: list[EventRow]
                        ) -> tuple[dict[tuple[str, str], list[MeterValue]], dict[tuple[str, str], str]]:
    """The value each listed event contributes to each meter of its schema (one query), and the events a meter
    cannot read (a row edited by hand: a value that is no number), each with why: then the query runs again event
    by event, so such a row never fails the others."""
    schemas = sorted({row.schema_name for row in rows if row.status in METERED_STATUSES})
    if not schemas:
        return {}, {}
    meters = catalog.compiled(await session.scalars(
        select(UsageMeterRow).where(UsageMeterRow.event_schema_name.in_(schemas)).order_by(UsageMeterRow.id)))
    if not meters:
        return {}, {}
    conn = await raw_connection(session)
    # (account_id, event_time) leads the index, so each listed event is one index probe
    where = "(e.account_id, e.event_time, e.id) IN (SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[]))"
    sql = (f"SELECT account_id, id, meter_id, value FROM ({valued_sql(meters, 'events', where)}) v "
           "WHERE value IS NOT NULL ORDER BY meter_id")
    unreadable: dict[tuple[str, str], str] = {}
    try:
        async with conn.transaction():  # a savepoint: a row no meter can read fails this statement alone
            found = await conn.fetch(sql, [row.account_id for row in rows], [row.event_time for row in rows],
                                     [row.id for row in rows])
    except asyncpg.DataError:
        found = []
        for row in rows:
            try:
                async with conn.transaction():
                    found += await conn.fetch(sql, [row.account_id], [row.event_time], [row.id])
            except asyncpg.DataError as exc:
                unreadable[(row.account_id, row.id)] = (
                    f"a usage meter of schema {row.schema_name!r} cannot read it ({exc}), so its meter values are "
                    "not shown")
    values: dict[tuple[str, str], list[MeterValue]] = {}
    for account, event_id, meter_id, value in found:
        values.setdefault((account, event_id), []).append(MeterValue(usageMeterId=meter_id, value=value))
    return values, unreadable


async def list_event_schemas(
    session: AsyncSession, *, page_size: int | None = None, next_token: str | None = None
) -> Page[EventSchema]:
    """Event schemas in the order they were first seen, with their attributes, dimensions and meters."""
    page, token = await fetch_page(session, select(EventSchemaRow), EventSchemaRow.seq, "event_schemas", page_size,
                                   next_token)
    meter_ids: dict[str, list[str]] = {}
    if page:
        for name, meter_id in await session.execute(
            select(UsageMeterRow.event_schema_name, UsageMeterRow.id)
            .where(UsageMeterRow.event_schema_name.in_([r.name for r in page]))
            .order_by(UsageMeterRow.seq)
        ):
            meter_ids.setdefault(name, []).append(meter_id)
    return Page[EventSchema](data=[_schema(row, meter_ids.get(row.name, [])) for row in page], nextToken=token)


def _schema(row: EventSchemaRow, meter_ids: list[str]) -> EventSchema:
    attributes: dict[str, Any] = row.attributes or {}
    return EventSchema(
        name=row.name,
        attributes=[SchemaAttribute(name=name, unit=attributes[name]) for name in sorted(attributes)],
        dimensions=sorted(row.dimensions or {}),
        usageMeterIds=meter_ids,
        createdAt=row.created_at,
        updatedAt=row.updated_at,
    )
