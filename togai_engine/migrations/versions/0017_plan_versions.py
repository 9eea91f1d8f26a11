"""plan versions and per-account rate card overrides

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

`price_plan_versions` holds every version of a plan (version 1 is the content create_price_plan stored in
price_plans.definition, copied here); at most one DRAFT per plan. An association names the version it
prices with and may carry `rate_card_overrides` (the account's deal: cards replacing the plan's by name).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "price_plan_versions",
        sa.Column("plan_id", sa.String(50), sa.ForeignKey("price_plans.id"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("definition", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("migration_mode", sa.String(40), nullable=True),
        sa.CheckConstraint("status IN ('DRAFT', 'ACTIVE')", name="ck_price_plan_versions_status"),
        sa.CheckConstraint("version >= 1", name="ck_price_plan_versions_version"),
    )
    op.create_index("ix_price_plan_versions_one_draft", "price_plan_versions", ["plan_id"], unique=True,
                    postgresql_where=sa.text("status = 'DRAFT'"))
    op.execute("INSERT INTO price_plan_versions (plan_id, version, status, definition, created_at, finalized_at) "
               "SELECT id, 1, 'ACTIVE', definition, created_at, created_at FROM price_plans")
    op.add_column("plan_associations", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.add_column("plan_associations", sa.Column("rate_card_overrides", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("plan_associations", "rate_card_overrides")
    op.drop_column("plan_associations", "version")
    op.drop_index("ix_price_plan_versions_one_draft", table_name="price_plan_versions")
    op.drop_table("price_plan_versions")
