"""Tables of raw usage: the dedupe ledger, the events, billing watermarks (event schemas: meters/models.py).

Every table that grows with usage is keyed by account_id first, and `events` has no unique
index of its own: it is range-partitioned by event_time (monthly partitions, made by
togai_engine/store/partitions.py) and could be distributed by account; uniqueness of
(account_id, id) lives in `event_ids`. Usage tables carry no foreign
keys, to keep the ingest path free of per-row lookups; ingestion resolves the account first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base


class EventIdRow(Base):
    """The permanent dedupe ledger: an event id is claimed once per account, in the same
    statement that stores the event."""

    __tablename__ = "event_ids"

    # The id compares byte-wise ("C": memcmp makes the claim index cheaper on the hot path); account_id keeps
    # the default collation of every other account_id, which Citus needs to colocate the tables by it.
    account_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    id: Mapped[str] = mapped_column(String(512, collation="C"), primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventRow(Base):
    """A stored event: ACCEPTED, NOT_BILLED_NO_PLAN, ACCEPTED_LATE, NOT_BILLED_CYCLE_CLOSED or VOIDED (voided_at and
    void_reason set, see events/voids.py). No primary key in the database on purpose (see the module
    docstring); the mapper's key is (account_id, id)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_account_time", "account_id", "event_time"),
        # BRIN: time-range scans over all accounts; nearly free to maintain at ingest
        Index("ix_events_time", "event_time", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (event_time)"},
    )
    __mapper_args__ = {"primary_key": ["account_id", "id"]}  # noqa: RUF012

    account_id: Mapped[str] = mapped_column(String(50))
    id: Mapped[str] = mapped_column(String(512))
    schema_name: Mapped[str] = mapped_column(String(50))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)  # {name: "decimal string"}
    dimensions: Mapped[dict[str, Any]] = mapped_column(JSONB)  # {name: "text"}
    units: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # {attribute name: unit}
    status: Mapped[str] = mapped_column(String(32))
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    void_reason: Mapped[str | None] = mapped_column(String(255))


class BillingWatermarkRow(Base):
    """Events before `closed_before` belong to a closed (invoiced) cycle of the account: they are
    stored as NOT_BILLED_CYCLE_CLOSED and feed no quantity. Billing moves it forward under FOR
    UPDATE; ingestion reads it FOR SHARE."""

    __tablename__ = "billing_watermarks"

    account_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    closed_before: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("'-infinity'::timestamptz")
    )

