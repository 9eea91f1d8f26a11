"""billing: price plans, rate cards, plan associations, invoices

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_invoice_counters")),
    )
    op.create_table(
        "price_plans",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_plans")),
        sa.UniqueConstraint("name", name=op.f("uq_price_plans_name")),
        sa.UniqueConstraint("seq", name=op.f("uq_price_plans_seq")),
    )
    op.create_table(
        "account_billing",
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("billed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_account_billing_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_billing")),
    )
    op.create_index("ix_account_billing_next_run_at", "account_billing", ["next_run_at"], unique=False)
    op.create_table(
        "plan_associations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("price_plan_id", sa.String(length=50), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("anchor", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name=op.f("fk_plan_associations_account_id_accounts")),
        sa.ForeignKeyConstraint(["price_plan_id"], ["price_plans.id"],
                                name=op.f("fk_plan_associations_price_plan_id_price_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_associations")),
        sa.UniqueConstraint("account_id", "effective_from", name=op.f("uq_plan_associations_account_id")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("customer_id", sa.String(length=50), nullable=False),
        sa.Column("association_id", sa.BigInteger(), nullable=False),
        sa.Column("price_plan_id", sa.String(length=50), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=True),
        sa.Column("sub_total", sa.Numeric(), nullable=True),
        sa.Column("true_up", sa.Numeric(), nullable=True),
        sa.Column("total_amount", sa.Numeric(), nullable=True),
        sa.Column("credits_applied", sa.Numeric(), nullable=True),
        sa.Column("amount_due", sa.Numeric(), nullable=True),
        sa.Column("invoice_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_invoices_account_id_accounts")),
        sa.ForeignKeyConstraint(["association_id"], ["plan_associations.id"],
                                name=op.f("fk_invoices_association_id_plan_associations")),
        sa.ForeignKeyConstraint(["price_plan_id"], ["price_plans.id"],
                                name=op.f("fk_invoices_price_plan_id_price_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("account_id", "period_start", name=op.f("uq_invoices_account_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_invoices_seq")),
        sa.UniqueConstraint("sequence_number", name=op.f("uq_invoices_sequence_number")),
    )
    op.create_index("ix_invoices_customer_period", "invoices", ["customer_id", "period_start"], unique=False)
    op.create_index("ix_invoices_period_start_seq", "invoices", ["period_start", "seq"], unique=False)
    op.create_index("ix_invoices_status_account", "invoices", ["status", "account_id"], unique=False)
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.String(length=50), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("parent_position", sa.Integer(), nullable=True),
        sa.Column("line_type", sa.String(length=48), nullable=False),
        sa.Column("rate_card_name", sa.String(length=50), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=True),
        sa.Column("value_per_quantity", sa.Numeric(), nullable=True),
        sa.Column("value", sa.Numeric(), nullable=False),
        sa.Column("usage_meter_id", sa.String(length=50), nullable=True),
        sa.Column("usage_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("usage_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices")),
        sa.PrimaryKeyConstraint("invoice_id", "position", name=op.f("pk_invoice_lines")),
    )


def downgrade() -> None:
    op.drop_table("invoice_lines")
    op.drop_index("ix_invoices_status_account", table_name="invoices")
    op.drop_index("ix_invoices_period_start_seq", table_name="invoices")
    op.drop_index("ix_invoices_customer_period", table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("plan_associations")
    op.drop_index("ix_account_billing_next_run_at", table_name="account_billing")
    op.drop_table("account_billing")
    op.drop_table("price_plans")
    op.drop_table("invoice_counters")
