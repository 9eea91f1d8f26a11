"""Event shapes (Togai field names): ingest results, stored events, event schemas."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from togai_engine.common.schemas import Model

StoredStatus = Literal["ACCEPTED", "ACCEPTED_LATE", "NOT_BILLED_CYCLE_CLOSED", "NOT_BILLED_NO_PLAN", "VOIDED"]
STORED_STATUS_DESCRIPTION = (
    "its status when it was ingested: ACCEPTED = feeds its schema's meters and was billable (a plan covered "
    "its time); NOT_BILLED_NO_PLAN = feeds its schema's meters, but the account had no price plan in effect at "
    "its time, so no invoice bills it unless a plan is later attached from a time at or before it; "
    "ACCEPTED_LATE = arrived after its cycle was invoiced, under a plan whose lateUsage is BILL_ON_NEXT_INVOICE: "
    "feeds its schema's meters and is billed on the account's next invoice as a late-usage line; "
    "NOT_BILLED_CYCLE_CLOSED = arrived after its cycle was invoiced (plan lateUsage IGNORE): feeds nothing, "
    "never billed; VOIDED = "
    "voided (void_event): kept, feeds nothing, its id stays taken"
)


class RejectedEventInfo(Model):
    index: int = Field(description="position of the event in the request (0-based)")
    eventId: str | None = Field(default=None, description="the id it was sent with, if any")
    code: str = Field(description="reason code, e.g. UNKNOWN_ACCOUNT, INVALID_VALUE, MISSING_FIELD, NEGATIVE_VALUE")
    field: str | None = Field(default=None, description="path of the offending field inside the event")
    message: str


class IngestEventResult(Model):
    eventId: str = Field(description="the idempotency key (given, or derived from the content); reuse it on retry")
    accountId: str = Field(description="the account the event belongs to (an alias is resolved to the id)")
    status: Literal["ACCEPTED", "ACCEPTED_LATE", "DUPLICATE", "NOT_BILLED_CYCLE_CLOSED", "NOT_BILLED_NO_PLAN"]
    message: str
    usageMeters: list[str] = Field(default_factory=list, description="ids of the usage meters this event fed")
    warnings: list[str] = Field(default_factory=list)


class IngestBatchResult(Model):
    accepted: int = Field(description="events stored and billable (status ACCEPTED)")
    duplicates: int = Field(description="events already stored (or repeated in this batch): counted once, not an error")
    rejected: int = Field(description="invalid events; nothing was stored for them and their ids stay unclaimed")
    notBilled: int = Field(description="events stored with status NOT_BILLED_CYCLE_CLOSED (their cycle is invoiced)")
    notBilledNoPlan: int = Field(
        default=0, description="events stored with status NOT_BILLED_NO_PLAN: metered, but dated when the account "
                               "had no price plan in effect, so not billed unless a plan is attached over their time")
    acceptedLate: int = Field(
        default=0, description="events stored with status ACCEPTED_LATE: their period is invoiced, and its plan "
                               "bills late usage on the account's next invoice (plan lateUsage BILL_ON_NEXT_INVOICE)")
    rejectedEvents: list[RejectedEventInfo] = Field(default_factory=list)
    duplicateIndexes: list[int] = Field(default_factory=list)
    notBilledIndexes: list[int] = Field(default_factory=list)
    notBilledNoPlanIndexes: list[int] = Field(default_factory=list)
    acceptedLateIndexes: list[int] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class EventAttribute(Model):
    name: str
    value: str
    unit: str | None = None


class MeterValue(Model):
    usageMeterId: str
    value: Decimal


class EventRecord(Model):
    id: str
    accountId: str
    schemaName: str
    timestamp: datetime
    receivedAt: datetime
    attributes: list[EventAttribute]
    dimensions: dict[str, str]
    status: StoredStatus = Field(description=STORED_STATUS_DESCRIPTION)
    usageMeters: list[MeterValue] = Field(default_factory=list, description="each meter this event feeds, with "
                                                                           "the value it contributes")
    voidedAt: datetime | None = Field(default=None, description="when it was voided (VOIDED only)")
    voidReason: str | None = Field(default=None, description="why it was voided (VOIDED only)")
    problem: str | None = Field(default=None, description="what of the stored event is not shown: it is not what "
                                                          "ingest stores (edited by hand); null when all is shown")


class VoidedEvents(Model):
    data: list[EventRecord] = Field(description="the events, VOIDED, in the order given")


class SchemaAttribute(Model):
    name: str
    unit: str | None = None


class EventSchema(Model):
    name: str
    attributes: list[SchemaAttribute]
    dimensions: list[str]
    usageMeterIds: list[str]
    createdAt: datetime
    updatedAt: datetime
