"""wallets: wallet ledger, credit grants

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

`wallet_entries.invoice_id` is text without a foreign key on purpose: the ledger links to invoices
by id and must not depend on the invoices table's shape.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallets",
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_wallets_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_wallets")),
    )
    op.create_table(
        "credit_grants",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("grantor_id", sa.Text(), nullable=True),
        sa.Column("cycle_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('MANUAL', 'RATE_CARD')", name=op.f("ck_credit_grants_source_known")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_grants_amount_positive")),
        sa.CheckConstraint(
            "effective_until IS NULL OR effective_until > effective_from",
            name=op.f("ck_credit_grants_window_not_empty"),
        ),
        sa.CheckConstraint("priority >= 0", name=op.f("ck_credit_grants_priority_not_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["wallets.account_id"], name=op.f("fk_credit_grants_account_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_grants")),
        sa.UniqueConstraint(
            "account_id", "grantor_id", "cycle_start", name="uq_credit_grants_account_grantor_cycle"
        ),
        sa.UniqueConstraint("account_id", "idempotency_key", name="uq_credit_grants_account_idempotency_key"),
        sa.UniqueConstraint("seq", name=op.f("uq_credit_grants_seq")),
    )
    op.create_index("ix_credit_grants_account_seq", "credit_grants", ["account_id", "seq"], unique=False)
    op.create_table(
        "wallet_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("grant_id", sa.String(length=50), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invoice_id", sa.String(length=50), nullable=True),
        sa.Column("reverses_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(kind = 'GRANT' AND amount > 0)"
            " OR (kind = 'APPLICATION' AND amount < 0 AND invoice_id IS NOT NULL)"
            " OR (kind = 'REVERSAL' AND amount > 0 AND reverses_entry_id IS NOT NULL)"
            " OR (kind = 'EXPIRY' AND amount <> 0)",
            name=op.f("ck_wallet_entries_sign_matches_kind"),
        ),
        sa.CheckConstraint(
            "kind IN ('GRANT', 'APPLICATION', 'REVERSAL', 'EXPIRY')", name=op.f("ck_wallet_entries_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["wallets.account_id"], name=op.f("fk_wallet_entries_account_id_wallets")
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["credit_grants.id"], name=op.f("fk_wallet_entries_grant_id_credit_grants")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            ["wallet_entries.id"],
            name=op.f("fk_wallet_entries_reverses_entry_id_wallet_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_entries")),
        sa.UniqueConstraint("reverses_entry_id", name=op.f("uq_wallet_entries_reverses_entry_id")),
    )
    op.create_index("ix_wallet_entries_account_at", "wallet_entries", ["account_id", "at"], unique=False)
    op.create_index("ix_wallet_entries_grant", "wallet_entries", ["grant_id"], unique=False)
    op.create_index("ix_wallet_entries_invoice", "wallet_entries", ["invoice_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_wallet_entries_invoice", table_name="wallet_entries")
    op.drop_index("ix_wallet_entries_grant", table_name="wallet_entries")
    op.drop_index("ix_wallet_entries_account_at", table_name="wallet_entries")
    op.drop_table("wallet_entries")
    op.drop_index("ix_credit_grants_account_seq", table_name="credit_grants")
    op.drop_table("credit_grants")
    op.drop_table("wallets")
