"""late usage: events billed on the next invoice when their plan says BILL_ON_NEXT_INVOICE

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

An event dated in a period whose invoice is already DUE, under a plan with lateUsage BILL_ON_NEXT_INVOICE,
is stored ACCEPTED_LATE and gets a row here: the invoice of its period (source) and, once the account's next
invoice closes, the invoice whose late-usage line billed it (billing/README.md, invoices/late_usage.py).
No foreign keys: ingest writes the rows while it holds the billing watermark, and a key check would lock the
account row that update_account locks before the watermark (a deadlock). Plans stored before keep IGNORE (the field's default), so nothing already stored changes meaning.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "late_usage_events",
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_invoice_id", sa.String(length=50), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invoice_id", sa.String(length=50), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "event_id", name=op.f("pk_late_usage_events")),
    )
    op.create_index("ix_late_usage_events_pending", "late_usage_events", ["account_id"],
                    postgresql_where=sa.text("invoice_id IS NULL"))
    op.create_index("ix_late_usage_events_invoice_id", "late_usage_events", ["invoice_id"])
    op.create_index("ix_late_usage_events_source_invoice_id", "late_usage_events", ["source_invoice_id"])


def downgrade() -> None:
    op.drop_index("ix_late_usage_events_source_invoice_id", table_name="late_usage_events")
    op.drop_index("ix_late_usage_events_invoice_id", table_name="late_usage_events")
    op.drop_index("ix_late_usage_events_pending", table_name="late_usage_events")
    op.drop_table("late_usage_events")
