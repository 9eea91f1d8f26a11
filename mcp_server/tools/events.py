"""Event tools: ingest_event, ingest_batch_events, void_event, void_events, list_events, list_event_schemas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from pydantic import Field, WithJsonSchema

from mcp_server.progress import progress_notifier
from mcp_server.registry import NextToken, PageSize, UnitOfWork, tool, uow
from togai_engine.common.schemas import Page
from togai_engine.events import service as event_service
from togai_engine.events import voids
from togai_engine.events.schemas import (
    EventRecord,
    EventSchema,
    IngestBatchResult,
    IngestEventResult,
    StoredStatus,
    VoidedEvents,
)

T = TypeVar("T")
MAX_ATTEMPTS = 3

# A value is a decimal string or a JSON number; spelled as anyOf, not `"type": [...]`, which clients that map
# schemas onto a single-type dialect (Gemini's OpenAPI subset, for one) reject or flatten.
ATTRIBUTE_VALUE_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "number"}]}

EVENT_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "maxLength": 512,
               "description": "idempotency key. When retrying, send the SAME id again; never make up a new id "
                              "for an event you already sent. If absent, it is derived from the event's content."},
        "schemaName": {"type": "string", "minLength": 1, "maxLength": 50, "description": "event type, e.g. api_call"},
        "timestamp": {"type": "string", "format": "date-time",
                      "description": "when the usage happened, ISO 8601; without an offset it is UTC"},
        "accountId": {"type": "string", "description": "account id or one of its aliases"},
        "attributes": {
            "description": "numeric values (at most 10): [{name, value, unit}] or {name: value}; values are "
                           "decimal strings such as \"12.5\" (JSON numbers are accepted too, but only strings keep more than "
                           "15 significant digits)",
            "anyOf": [
                {"type": "array", "maxItems": 10, "items": {
                    "type": "object", "required": ["name", "value"],
                    "properties": {"name": {"type": "string"}, "value": ATTRIBUTE_VALUE_SCHEMA,
                                   "unit": {"type": "string"}}}},
                {"type": "object", "additionalProperties": ATTRIBUTE_VALUE_SCHEMA},
            ],
        },
        "dimensions": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 200},
                       "description": "text labels, e.g. {\"region\": \"eu\"}"},
    },
    "required": ["schemaName", "timestamp", "accountId"],
}

EventArgument = Annotated[Any, WithJsonSchema(EVENT_JSON_SCHEMA)]
EventsArgument = Annotated[Any, WithJsonSchema(
    {"type": "array", "minItems": 1, "maxItems": 1000, "items": EVENT_JSON_SCHEMA})]


async def with_retry(ctx: Context, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Runs the unit of work again when the database reports a deadlock or serialization failure
    (the failed attempt rolled back completely, so a rerun is safe)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with uow(ctx) as u:
                return await work(u)
        except Exception as exc:
            if attempt == MAX_ATTEMPTS or not event_service.is_retryable(exc):
                raise
    raise AssertionError("unreachable")


@tool("ingest_event", scope="events:write", idempotent=True, title="Ingest usage event", checks_own_text=True)
async def ingest_event(
    ctx: Context,
    event: Annotated[EventArgument, Field(description="the usage event: {id, schemaName, timestamp, accountId, "
                                                      "attributes, dimensions}")],
) -> IngestEventResult:
    """Record one usage event for an account. The event's `id` is its idempotency key: if a call
    fails or times out, retry with exactly the same event and the SAME id; never invent a new id for
    usage you already sent. An id already stored returns status DUPLICATE (success, counted once).
    Without an id, one is derived from the content, so an identical retry is also a DUPLICATE.
    A stored event's status says what was true when it arrived: ACCEPTED (metered, billable);
    NOT_BILLED_NO_PLAN (metered, but the account had no price plan in effect at its timestamp: before
    its first plan starts, after a plan ended, or no plan at all; billed only if a plan is later
    attached from a time at or before it); NOT_BILLED_CYCLE_CLOSED (its cycle is already invoiced:
    never billed); ACCEPTED_LATE (its cycle is already invoiced, and that cycle's plan bills late
    usage: billed on the account's next invoice, on a line for that cycle). An invalid event is an error naming the field and a reason code (e.g.
    UNKNOWN_ACCOUNT; NEGATIVE_VALUE when a meter of its schema rejects negative values); nothing is
    stored for it. For many events use ingest_batch_events."""

    async def work(u: UnitOfWork) -> IngestEventResult:
        result = await event_service.ingest_event(u.session, event, u.now, refuse_after_now=u.app.sandbox)
        u.changed(result.accountId, result.eventId)
        return result

    return await with_retry(ctx, work)


def summarize_batch(arguments: dict[str, Any]) -> dict[str, Any]:
    """The audit record of a batch: its size and accounts, not a copy of every event (the events
    table holds those, with their received time)."""
    events = arguments.get("events")
    if not isinstance(events, list):
        return {"events": "<not a list>"}
    accounts = sorted({e["accountId"] for e in events if isinstance(e, dict) and isinstance(e.get("accountId"), str)})
    ids = [e["id"] for e in events if isinstance(e, dict) and isinstance(e.get("id"), str)]
    return {"eventCount": len(events), "accountIds": accounts[:50], "accountCount": len(accounts),
            "firstEventId": ids[0] if ids else None, "lastEventId": ids[-1] if ids else None}


@tool("ingest_batch_events", scope="events:write", idempotent=True, title="Ingest usage events (batch)",
      audit_arguments=summarize_batch, checks_own_text=True, bulk=True)
async def ingest_batch_events(
    ctx: Context,
    events: Annotated[EventsArgument, Field(description="1 to 1000 events")],
) -> IngestBatchResult:
    """Record 1 to 1000 usage events in one call. Each event's `id` is its idempotency key: when
    retrying a batch, resend the same events with the SAME ids; never invent new ids. Valid events
    are stored even when others are rejected. The result counts accepted, duplicates (already
    stored: success, counted once) and rejected, and lists each rejected event's index, code and
    reason (e.g. NEGATIVE_VALUE: a meter of its schema rejects negative values); fix those and resend
    only them. Stored events that are not billable are counted apart, with their indexes:
    notBilledNoPlan (metered, but dated when the account had no price plan in effect; billed only if
    a plan is later attached from a time at or before them), notBilled (their cycle is already
    invoiced) and acceptedLate (their cycle is invoiced, and its plan bills late usage on the account's
    next invoice). More than 1000 events, or `events` not being a list, is one error and stores nothing."""
    progress = progress_notifier(ctx)  # one for every attempt: a retry's phases are not announced twice

    async def work(u: UnitOfWork) -> IngestBatchResult:
        report = await event_service.ingest_batch_report(u.session, events, u.now, progress=progress,
                                                         refuse_after_now=u.app.sandbox)
        # the accounts, what list_audit_log(entityId) is searched by; not up to 1000 event ids
        u.changed(*report.accounts())
        return event_service.batch_result(report)

    return await with_retry(ctx, work)


@tool("void_event", scope="events:write", destructive=True, idempotent=True, title="Void usage event")
async def void_event(
    ctx: Context,
    accountId: Annotated[str, Field(description="the event's account (id or alias)")],
    eventId: Annotated[str, Field(description="the event's id, as list_events shows it")],
    reason: Annotated[str, Field(description="why the event is voided (1 to 255 characters); kept with the "
                                             "event and in the audit log")],
) -> EventRecord:
    """Void a usage event that should not have been billed (sent by mistake, wrong values). The event
    stays stored with status VOIDED, voidedAt and the reason; its usage leaves every quantity at once:
    the open cycle's DRAFT invoice, get_metrics, entitlement checks. Its id stays taken: re-sending
    the same id is a DUPLICATE that stores nothing, so send a corrected event with a NEW id. Only an
    event of an open billing period can be voided: one in a period already invoiced (DUE) is refused
    (correct that invoice with a credit note, create_credit_note). Voiding an event already VOIDED
    returns it unchanged. Returns the voided event. For several events use void_events."""

    async def work(u: UnitOfWork) -> EventRecord:
        record = await voids.void_event(u.session, accountId, eventId, reason, u.now)
        u.changed(record.accountId, record.id)
        return record

    return await with_retry(ctx, work)


VoidTargets = Annotated[Any, WithJsonSchema({
    "type": "array", "minItems": 1, "maxItems": voids.MAX_BATCH, "items": {
        "type": "object", "required": ["accountId", "eventId"], "additionalProperties": False,
        "properties": {"accountId": {"type": "string", "description": "the event's account (id or alias)"},
                       "eventId": {"type": "string", "description": "the event's id, as list_events shows it"}}}})]


@tool("void_events", scope="events:write", destructive=True, idempotent=True, title="Void usage events (batch)",
      bulk=True)
async def void_events(
    ctx: Context,
    events: Annotated[VoidTargets, Field(description=f"1 to {voids.MAX_BATCH} events: [{{accountId, eventId}}]")],
    reason: Annotated[str, Field(description="why these events are voided (1 to 255 characters)")],
) -> VoidedEvents:
    """Void several usage events at once, all or none, with one reason: e.g. a batch that was sent
    twice under new ids. Same rules as void_event: each event stays stored as VOIDED and leaves every
    quantity; ids stay taken; events already VOIDED are returned unchanged. If any event is unknown or
    in a period already invoiced, the error names it (events[i]) and nothing is voided: fix or drop it
    and call again. Returns the events in the order given."""

    async def work(u: UnitOfWork) -> VoidedEvents:
        records = await voids.void_events(u.session, events, reason, u.now)
        u.changed(*sorted({r.accountId for r in records}), *[r.id for r in records])
        return VoidedEvents(data=records)

    return await with_retry(ctx, work)


@tool("list_events", scope="events:read", read_only=True, idempotent=True, title="List events")
async def list_events(
    ctx: Context,
    accountId: Annotated[str | None, Field(description="only this account's events (id or alias)")] = None,
    schemaName: Annotated[str | None, Field(description="only events of this schema")] = None,
    status: Annotated[StoredStatus | None, Field(
        description="only events with this status (the one they got when ingested, or VOIDED)")] = None,
    pageSize: PageSize = 20,
    nextToken: NextToken = None,
) -> Page[EventRecord]:
    """List stored raw events, newest event time first, with their processing status and the value
    each one contributes to each usage meter. Rejected events are never stored (the ingest result
    reports them); duplicates are stored once; a voided event is listed with status VOIDED, voidedAt
    and voidReason, and feeds no meter. A stored event edited by hand into what ingest refuses is still
    listed, without the part that cannot be read, and its `problem` names that part."""
    async with uow(ctx) as u:
        return await event_service.list_events(u.session, account_id=accountId, schema_name=schemaName, status=status,
                                        page_size=pageSize, next_token=nextToken)


@tool("list_event_schemas", scope="events:read", read_only=True, idempotent=True, title="List event schemas")
async def list_event_schemas(ctx: Context, pageSize: PageSize = 20, nextToken: NextToken = None) -> Page[EventSchema]:
    """List the event schemas (event types) seen so far, with the attribute names and units and the
    dimension names their events carried, and the ids of the usage meters that use each one."""
    async with uow(ctx) as u:
        return await event_service.list_event_schemas(u.session, page_size=pageSize, next_token=nextToken)
