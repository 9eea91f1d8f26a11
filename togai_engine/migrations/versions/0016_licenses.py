"""licenses: seat changes per account and license id (update_license)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

A license rate card prices an account's seat count over each billing period; the count at an instant folds
the account's changes of that license at or before it (0 before any).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "license_updates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("license_id", sa.String(length=50), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_type", sa.String(length=10), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_license_updates_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_license_updates")),
        sa.UniqueConstraint("account_id", "idempotency_key", name=op.f("uq_license_updates_account_id")),
    )
    op.create_index("ix_license_updates_account_license", "license_updates",
                    ["account_id", "license_id", "effective_from"], unique=False)


def downgrade() -> None:
    op.drop_table("license_updates")
