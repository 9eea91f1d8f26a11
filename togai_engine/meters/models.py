"""Usage meters and their hourly rollups."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base

MAX_SCHEMA_NAME_CHARS = 50  # event schema names (the event type)


class UsageMeterRow(Base):
    __tablename__ = "usage_meters"
    __table_args__ = (
        Index("ix_usage_meters_event_schema_name", "event_schema_name"),
        # prefix search (completion): a byte-order index, whatever the database collation (migration 0014)
        Index("ix_usage_meters_id_prefix", "id", postgresql_ops={"id": "text_pattern_ops"}),
        CheckConstraint("negative_values IN ('ALLOW', 'REJECT')", name="negative_values_known"),
    )

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    billable_name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    event_schema_name: Mapped[str] = mapped_column(String(50))
    type: Mapped[str] = mapped_column(String(16), server_default="COUNTER")
    aggregation: Mapped[str] = mapped_column(String(16))
    computations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)  # [{id, matcher, computation, order}]
    status: Mapped[str] = mapped_column(String(16), server_default="ACTIVE")
    # ALLOW: a negative value is metered as it is (a correction); REJECT: ingestion rejects the event
    negative_values: Mapped[str] = mapped_column(String(8), server_default="ALLOW")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class _RollupAggregates:
    """The aggregate columns of a rollup row: each merges associatively (see meters/sql.py)."""

    stripe: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    event_count: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[Decimal] = mapped_column(Numeric)
    value_max: Mapped[Decimal | None] = mapped_column(Numeric)
    latest_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latest_id: Mapped[str | None] = mapped_column(Text)
    latest_value: Mapped[Decimal | None] = mapped_column(Numeric)


class UsageRollupRow(_RollupAggregates, Base):
    """Per (account, meter, UTC hour): the aggregates of the billable events that meter values.

    event_count/value_sum/value_max add up across hours; LATEST is the value of the newest event
    by (event_time, id), so merging two partial rollups is order independent. That is also why a
    key may have several `stripe` rows: concurrent ingest transactions upsert different stripes
    (no waiting on each other's row locks) and readers add them up.
    """

    __tablename__ = "usage_rollups"
    # all-account reads of some meters over a time range (get_metrics, bill runs) without a full scan
    __table_args__ = (
        Index("ix_usage_rollups_meter_hour", "meter_id", "hour"),
        # the rows compaction folds into stripe 0 (meters/compaction.py)
        Index("ix_usage_rollups_striped_hour", "stripe", "hour", postgresql_where=text("stripe <> 0")),
    )

    account_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    meter_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class UsageDailyRollupRow(_RollupAggregates, Base):
    """Per (account, meter, UTC day) of MAX and LATEST meters only: the same aggregates as their hourly
    rollups, maintained with them in the same ingest statement (same stripe). A series over all accounts
    sums each account's daily maximum or latest value, which usage_totals cannot hold; this reads ~1/3
    of the hourly rows. Equal to the day's hourly rows merged (verify_rollups checks it)."""

    __tablename__ = "usage_rollups_daily"
    __table_args__ = (
        Index("ix_usage_rollups_daily_meter_day", "meter_id", "day"),
        Index("ix_usage_rollups_daily_striped_day", "stripe", "day", postgresql_where=text("stripe <> 0")),
    )

    account_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    meter_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    day: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class UsageTotalRow(Base):
    """Per (meter, UTC hour): event count and value sum over ALL accounts, maintained with the rollups
    in the same ingest statement. Series of COUNT and SUM meters over all accounts (a dashboard's
    month of daily points) read ~meters x hours rows here instead of one row per account and hour.
    Striped like the rollups; small (it grows with time, not with accounts or events)."""

    __tablename__ = "usage_totals"

    meter_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    stripe: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    event_count: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[Decimal] = mapped_column(Numeric)


class EventSchemaRow(Base):
    """An event type (what meters measure), registered by ingest when first seen. `meters_tag` changes whenever a meter of the
    schema is created, so ingest processes can cache the schema's compiled meters."""

    __tablename__ = "event_schemas"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))  # {name: unit}
    dimensions: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))  # {name: true}
    meters_tag: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
