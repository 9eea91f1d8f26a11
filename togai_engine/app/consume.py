"""Consume if entitled (Togai's `POST /entitled {event}`): check_entitlement with `consume` records the
usage it allows in the same transaction as the check, so an agent never races its own quota check.

Serialised per account by a transaction advisory lock taken before the usage is read: of two consumers
of the last unit, the second reads the usage after the first committed (READ COMMITTED: each statement
sees what committed before it), so exactly one wins. The lock is per account, not per feature, because
two features may count one meter and a plan change swaps features: one key per account is simply right,
and only consumers of the same account wait for each other. Only consumers take it, first, before
ingest's own locks (events/ingest.py), so the lock order stays acyclic.

The id is the caller's idempotency key (required). An id already stored for the same usage is a replay:
nothing is written and the answer is the first call's (entitled, consumed, eventStatus DUPLICATE). A refused consume
(not entitled, or bad input) stores nothing and claims no id, so the same id may be tried again later.
The feature's meter must be COUNT or SUM (the usage adds up event by event; a MAX or LATEST meter is not
moved by a quantity), and the recorded event must add exactly `quantity` to it, judged by the meter's own
SQL (filter, computation) on the stored event, which usage ingested meanwhile by other clients cannot
disturb. Otherwise the call fails, naming the field, and the write is rolled back. A replay must be the same
usage: an id stored for other usage (another value, schema or feature) is refused on consume.id.
The event is stored as ingest_event would store it: dated in a part of the cycle already invoiced, it is
ACCEPTED_LATE when that period's plan bills late usage (answered so, billed on the next invoice), else refused
on consume.timestamp (it would count no usage); dated after the account's plan ends (the cycle runs on to its end),
it is refused on consume.timestamp too: the quota would count usage that no invoice bills.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.service import account_id_of
from togai_engine.common.numbers import EXACT_QUANTITY_CONTEXT
from togai_engine.entitlements import service as entitlements
from togai_engine.entitlements.schemas import EntitlementCheck
from togai_engine.errors import InvalidInput
from togai_engine.events.ingest import DUPLICATE, NOT_BILLED_CYCLE_CLOSED, NOT_BILLED_NO_PLAN, REJECTED, ingest_events
from togai_engine.events.validation import Rejection, parse_event
from togai_engine.meters.catalog import compile_stored
from togai_engine.meters.sql import METERED_STATUSES, MeterSql
from togai_engine.meters.usage import account_usage
from togai_engine.store.database import raw_connection

CONSUME_LOCK_CLASS = 0x636F6E73  # "cons": the key space of the per-account consume locks
ADDITIVE = ("COUNT", "SUM")  # aggregations whose usage is the sum of each event's own value
CONSUME_FIELDS = ("id", "schemaName", "timestamp", "attributes", "dimensions")


def consume_event(consume: object, account: str, now: datetime) -> tuple[dict[str, Any], datetime]:
    """The event to record, from `consume` (an event without accountId; timestamp defaults to `now`), and its
    time; validated as ingest_event validates events; errors name the field as consume.<field>."""
    if not isinstance(consume, dict):
        raise InvalidInput("consume", "must be an object: the usage event {id, schemaName, attributes, dimensions, "
                                      "timestamp} to record if entitled")
    if "accountId" in consume:
        raise InvalidInput("consume.accountId", "leave it out: the event is recorded for the call's accountId")
    unknown = sorted(str(k) for k in consume if k not in CONSUME_FIELDS)
    if unknown:
        raise InvalidInput(f"consume.{unknown[0]}", f"is not a field of consume; the fields are {', '.join(CONSUME_FIELDS)}")
    if consume.get("id") is None:
        raise InvalidInput("consume.id", "is required: your idempotency key for this usage; send the SAME id when "
                                         "retrying, so the usage is recorded once")
    event = {**consume, "accountId": account}
    if event.get("timestamp") is None:
        event["timestamp"] = now.isoformat()
    parsed = parse_event(event)
    if isinstance(parsed, Rejection):
        raise InvalidInput(f"consume.{parsed.field}" if parsed.field else "consume",
                           f"{parsed.message} [{parsed.code}]; nothing was stored")
    return event, parsed.event_time


async def consume_if_entitled(
    session: AsyncSession, account: str, feature_id: str, quantity: Decimal, consume: object, now: datetime, *,
    sandbox: bool = False,
) -> EntitlementCheck:
    """The entitlement check of `quantity`, and when entitled, `consume` recorded under its id (one
    transaction: the caller's). `sandbox`: events dated after `now` are refused (EVENT_IN_FUTURE)."""
    event, event_time = consume_event(consume, account, now)
    event_id: str = event["id"]
    account_id = await account_id_of(session, account)
    conn = await raw_connection(session)
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", CONSUME_LOCK_CLASS, account_id)
    # after the lock: this statement and the next see every consumer that committed before it
    stored = await _stored_status(conn, account_id, event_id)
    check = await entitlements.check_entitlement(session, account_id, feature_id, quantity, now)
    if stored is not None:
        return await _replay(conn, check, account_id, event_id, stored, quantity)
    meter: MeterSql | None = None
    if check.reason in ("ENTITLED", "LIMIT_REACHED"):  # the plan has the feature: the event must fit it
        _check_fits(check, event_time)
        meter = await _additive_meter(conn, check)
    if not check.entitled:
        return check.model_copy(update={"consumed": False, "eventId": event_id})
    report = await ingest_events(session, [event], now, refuse_after_now=sandbox)
    status = report.statuses[0]
    if status == REJECTED:
        reason = report.rejected[0]
        raise InvalidInput(f"consume.{reason.field}" if reason.field else "consume",
                           f"{reason.message} [{reason.code}]; nothing was stored")
    if status == NOT_BILLED_CYCLE_CLOSED:  # the cycle spans a plan change whose old period is invoiced
        raise InvalidInput("consume.timestamp", f"{event['timestamp']} is in a period already invoiced, so the event "
                                                "would count no usage; leave timestamp out (it is then now) or send "
                                                "a later time in the current cycle. Nothing was stored")
    if status == NOT_BILLED_NO_PLAN:  # the cycle runs past the end of the account's plan (resetsAt is the cycle end)
        raise InvalidInput("consume.timestamp", f"{event['timestamp']} is a time when the account has no price plan in "
                                                "effect, so no invoice would bill the usage; leave timestamp out (it is "
                                                "then now) or send a time while its plan is in effect. Nothing was stored")
    if status == DUPLICATE:  # stored meanwhile by ingest_event, which does not take the consume lock
        stored = await _stored_status(conn, account_id, event_id)
        return await _replay(conn, check, account_id, event_id, stored or DUPLICATE, quantity)
    assert meter is not None  # entitled: the reason was ENTITLED
    moved = await _added(conn, account_id, event_id, meter)
    if moved != quantity:
        raise InvalidInput(
            "consume.attributes",
            f"the event would add {moved} to usage meter {meter.id!r} (feature {feature_id!r} counts it), not the "
            f"quantity {quantity}; send attributes (and dimensions) whose value for that meter is {quantity}, or "
            "set quantity to what the event counts. Nothing was stored")
    # the usage now, with what other clients ingested meanwhile (plain ingest does not take the consume lock)
    after = (await account_usage(conn, account_id, [meter.id], start=check.cycleStart,  # type: ignore[arg-type]
                                 end=check.resetsAt))[meter.id]  # type: ignore[arg-type]
    return check.model_copy(update={
        "consumed": True, "eventId": event_id, "eventStatus": status, "usedAfter": after,
        "remainingAfter": None if check.limit is None else max(EXACT_QUANTITY_CONTEXT.subtract(check.limit, after),
                                                              Decimal(0))})


def _check_fits(check: EntitlementCheck, event_time: datetime) -> None:
    """The feature can count the event: it is metered, and the event is dated in the cycle the quota counts."""
    if check.featureType != "METERED":
        raise InvalidInput("consume", f"feature {check.featureId!r} is BOOLEAN: it counts no usage, so there is "
                                      "nothing to consume; call check_entitlement without consume")
    start, end = check.cycleStart, check.resetsAt
    assert start is not None and end is not None
    if not start <= event_time < end:
        raise InvalidInput(
            "consume.timestamp",
            f"{event_time.isoformat()} is outside the current cycle [{start.isoformat()}, {end.isoformat()}) "
            "whose usage the quota counts; leave timestamp out (it is then now) or send a time in that cycle. "
            "Record usage of another cycle with ingest_event")


async def _replay(conn: Any, check: EntitlementCheck, account_id: str, event_id: str, stored_status: str,
                  quantity: Decimal) -> EntitlementCheck:
    """The answer to an id already stored: the first call's (it was entitled and consumed), when the stored
    event is the same usage (it adds `quantity` to the feature's meter); the numbers are now's, counting that
    event. An id reused for other usage is refused, as Stripe refuses an idempotency key sent with other
    parameters: telling the agent its usage was recorded would be false."""
    if stored_status not in METERED_STATUSES:
        raise InvalidInput("consume.id", f"{event_id!r} is the id of a stored event with status {stored_status}, "
                                         "which counts no usage; ids stay taken, so consume under a new id")
    meter = await _meter(conn, check.usageMeterId) if check.usageMeterId and check.featureType == "METERED" else None
    added = await _added(conn, account_id, event_id, meter) if meter is not None else None
    if added != quantity:
        counted = f"adds {added} to usage meter {meter.id!r}" if meter is not None else "is not usage of this feature"
        raise InvalidInput("consume.id", f"{event_id!r} is already the id of a stored event that {counted}, not the "
                                         f"quantity {quantity} of feature {check.featureId!r}: the id is your "
                                         "idempotency key for one usage; send a new id for new usage")
    return check.model_copy(update={
        "entitled": True, "reason": "ENTITLED", "consumed": True, "eventId": event_id, "eventStatus": DUPLICATE,
        "usedAfter": check.used, "remainingAfter": check.remaining})


async def _meter(conn: Any, meter_id: str) -> MeterSql:
    row = await conn.fetchrow("SELECT event_schema_name, aggregation, CAST(computations AS text), negative_values "
                              "FROM usage_meters WHERE id = $1", meter_id)
    return compile_stored(meter_id, row[0], row[1], json.loads(row[2]), row[3])


async def _additive_meter(conn: Any, check: EntitlementCheck) -> MeterSql:
    """The feature's meter, which must add up event by event: only COUNT and SUM do (a MAX or LATEST meter's
    usage is not moved by `quantity`, whatever the event carries)."""
    meter = await _meter(conn, check.usageMeterId or "")
    if meter.aggregation not in ADDITIVE:
        raise InvalidInput("consume", f"feature {check.featureId!r} counts usage meter {meter.id!r} by "
                                      f"{meter.aggregation}, which one event does not add a quantity to; consume "
                                      "works with COUNT and SUM meters. Check without consume, then ingest_event")
    return meter


async def _added(conn: Any, account_id: str, event_id: str, meter: MeterSql) -> Decimal:
    """What the stored event adds to a COUNT or SUM meter: the event's own value under the meter's SQL (filter
    and status included), unmoved by usage other clients ingest meanwhile (plain ingest does not take the
    consume lock, and each statement sees what committed before it)."""
    added = await conn.fetchval(
        f"SELECT {meter.compiled.aggregate_sql()} FROM event_ids x JOIN events e ON e.account_id = x.account_id "
        "AND e.event_time = x.event_time AND e.id = x.id WHERE x.account_id = $1 AND x.id = $2 "
        "AND e.schema_name = $3 AND e.status = ANY($4::text[])",
        account_id, event_id, meter.schema_name, list(METERED_STATUSES))
    return Decimal(added or 0)


async def _stored_status(conn: Any, account_id: str, event_id: str) -> str | None:
    """The status of the account's stored event with this id, or None (the id is free)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT e.status FROM event_ids x JOIN events e ON e.account_id = x.account_id "
        "AND e.event_time = x.event_time AND e.id = x.id WHERE x.account_id = $1 AND x.id = $2",
        account_id, event_id)
