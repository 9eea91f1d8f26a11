"""credit notes: credit_notes, credit_note_lines, and CREDIT_NOTE wallet grants

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A credit note corrects a DUE or PAID invoice without editing it: it takes its amount off the
invoice's amountDue, and what the invoice no longer owed becomes a wallet grant of source
CREDIT_NOTE (so `credit_grants.source` accepts it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_credit_grants_source_known"), "credit_grants", type_="check")
    op.create_check_constraint(
        op.f("ck_credit_grants_source_known"), "credit_grants", "source IN ('MANUAL', 'RATE_CARD', 'CREDIT_NOTE')"
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("invoice_id", sa.String(length=50), nullable=False),
        sa.Column("invoice_status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("credited_from_due", sa.Numeric(), nullable=False),
        sa.Column("credited_to_wallet", sa.Numeric(), nullable=False),
        sa.Column("grant_id", sa.String(length=50), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_notes_amount_positive")),
        sa.CheckConstraint("credited_from_due >= 0 AND credited_to_wallet >= 0",
                           name=op.f("ck_credit_notes_parts_not_negative")),
        sa.CheckConstraint("amount = credited_from_due + credited_to_wallet", name=op.f("ck_credit_notes_parts_add_up")),
        sa.CheckConstraint("(credited_to_wallet > 0) = (grant_id IS NOT NULL)",
                           name=op.f("ck_credit_notes_wallet_part_has_grant")),
        sa.CheckConstraint("reason IN ('DUPLICATE', 'FRAUDULENT', 'ORDER_CHANGE', 'PRODUCT_UNSATISFACTORY', 'OTHER')",
                           name=op.f("ck_credit_notes_reason_known")),
        sa.CheckConstraint("invoice_status IN ('DUE', 'PAID')", name=op.f("ck_credit_notes_invoice_status_creditable")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_credit_notes_account_id_accounts")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")),
        sa.ForeignKeyConstraint(["grant_id"], ["credit_grants.id"], name=op.f("fk_credit_notes_grant_id_credit_grants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("account_id", "idempotency_key", name="uq_credit_notes_account_idempotency_key"),
        sa.UniqueConstraint("grant_id", name=op.f("uq_credit_notes_grant_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_credit_notes_seq")),
        sa.UniqueConstraint("sequence_number", name=op.f("uq_credit_notes_sequence_number")),
    )
    op.create_index("ix_credit_notes_invoice_seq", "credit_notes", ["invoice_id", "seq"])
    op.create_index("ix_credit_notes_account_seq", "credit_notes", ["account_id", "seq"])
    op.create_table(
        "credit_note_lines",
        sa.Column("credit_note_id", sa.String(length=50), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.String(length=50), nullable=False),
        sa.Column("line_position", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_note_lines_amount_positive")),
        sa.ForeignKeyConstraint(["credit_note_id"], ["credit_notes.id"],
                                name=op.f("fk_credit_note_lines_credit_note_id_credit_notes")),
        sa.ForeignKeyConstraint(["invoice_id", "line_position"], ["invoice_lines.invoice_id", "invoice_lines.position"],
                                name=op.f("fk_credit_note_lines_invoice_id_invoice_lines")),
        sa.PrimaryKeyConstraint("credit_note_id", "line_number", name=op.f("pk_credit_note_lines")),
    )
    op.create_index("ix_credit_note_lines_invoice_line", "credit_note_lines", ["invoice_id", "line_position"])


def downgrade() -> None:
    op.drop_index("ix_credit_note_lines_invoice_line", table_name="credit_note_lines")
    op.drop_table("credit_note_lines")
    op.drop_index("ix_credit_notes_account_seq", table_name="credit_notes")
    op.drop_index("ix_credit_notes_invoice_seq", table_name="credit_notes")
    op.drop_table("credit_notes")
    op.drop_constraint(op.f("ck_credit_grants_source_known"), "credit_grants", type_="check")
    op.create_check_constraint(
        op.f("ck_credit_grants_source_known"), "credit_grants", "source IN ('MANUAL', 'RATE_CARD')"
    )
