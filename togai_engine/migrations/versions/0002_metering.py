"""metering: events, event schemas, usage meters, hourly rollups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_watermarks",
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("closed_before", sa.DateTime(timezone=True), server_default=sa.text("'-infinity'::timestamptz"),
                  nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_billing_watermarks")),
    )
    # The dedupe ledger: (account_id, id) is unique here, not on events (which may be partitioned).
    op.create_table(
        "event_ids",
        sa.Column("account_id", sa.String(length=50, collation="C"), nullable=False),
        sa.Column("id", sa.String(length=512, collation="C"), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("pk_event_ids")),
    )
    op.create_table(
        "event_schemas",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("dimensions", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("meters_tag", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_schemas")),
        sa.UniqueConstraint("seq", name=op.f("uq_event_schemas_seq")),
    )
    op.create_table(
        "events",
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("schema_name", sa.String(length=50), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dimensions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("units", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
    )
    op.create_index("ix_events_account_time", "events", ["account_id", "event_time"], unique=False)
    op.create_index("ix_events_time", "events", ["event_time"], unique=False)
    op.create_table(
        "usage_meters",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("billable_name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("event_schema_name", sa.String(length=50), nullable=False),
        sa.Column("type", sa.String(length=16), server_default="COUNTER", nullable=False),
        sa.Column("aggregation", sa.String(length=16), nullable=False),
        sa.Column("computations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="ACTIVE", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_meters")),
        sa.UniqueConstraint("name", name=op.f("uq_usage_meters_name")),
        sa.UniqueConstraint("seq", name=op.f("uq_usage_meters_seq")),
    )
    op.create_index("ix_usage_meters_event_schema_name", "usage_meters", ["event_schema_name"], unique=False)
    op.create_table(
        "usage_rollups",
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("meter_id", sa.String(length=50), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Numeric(), nullable=False),
        sa.Column("value_max", sa.Numeric(), nullable=True),
        sa.Column("latest_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_id", sa.Text(), nullable=True),
        sa.Column("latest_value", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "meter_id", "hour", name=op.f("pk_usage_rollups")),
    )


def downgrade() -> None:
    op.drop_table("usage_rollups")
    op.drop_index("ix_usage_meters_event_schema_name", table_name="usage_meters")
    op.drop_table("usage_meters")
    op.drop_index("ix_events_time", table_name="events")
    op.drop_index("ix_events_account_time", table_name="events")
    op.drop_table("events")
    op.drop_table("event_schemas")
    op.drop_table("event_ids")
    op.drop_table("billing_watermarks")
