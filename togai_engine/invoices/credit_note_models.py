"""Credit notes and their lines: rows are only ever inserted (a note is never edited or deleted).

A note credits a DUE or PAID invoice by an amount, or line by line. Its amount splits in two stored
parts: what it took off the invoice's amountDue (`credited_from_due`) and what it credited to the
account's wallet as a CREDIT_NOTE grant (`credited_to_wallet`, linked by `grant_id`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.invoices.credit_note_schemas import Reason
from togai_engine.store.base import Base

# Stripe's reasons, plus OTHER (which needs a memo saying why).
REASONS = get_args(Reason)
CREDITABLE_STATUSES = ("DUE", "PAID")
COUNTER = "CREDIT_NOTE"  # its row in invoice_counters: gapless CN-000001 numbers


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class CreditNoteRow(Base):
    __tablename__ = "credit_notes"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_credit_notes_account_idempotency_key"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("credited_from_due >= 0 AND credited_to_wallet >= 0", name="parts_not_negative"),
        CheckConstraint("amount = credited_from_due + credited_to_wallet", name="parts_add_up"),
        CheckConstraint("(credited_to_wallet > 0) = (grant_id IS NOT NULL)", name="wallet_part_has_grant"),
        CheckConstraint(f"reason IN ({_quoted(REASONS)})", name="reason_known"),
        CheckConstraint(f"invoice_status IN ({_quoted(CREDITABLE_STATUSES)})", name="invoice_status_creditable"),
        Index("ix_credit_notes_invoice_seq", "invoice_id", "seq"),
        Index("ix_credit_notes_account_seq", "account_id", "seq"),
        # With the account: credit grants are keyed by (account_id, id) so they can be distributed by account.
        ForeignKeyConstraint(["account_id", "grant_id"], ["credit_grants.account_id", "credit_grants.id"],
                             name="fk_credit_notes_account_id_grant"),
    )

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    sequence_number: Mapped[int] = mapped_column(BigInteger, unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    invoice_status: Mapped[str] = mapped_column(String(16))  # DUE or PAID when the note was issued
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Numeric)
    credited_from_due: Mapped[Decimal] = mapped_column(Numeric)
    credited_to_wallet: Mapped[Decimal] = mapped_column(Numeric)
    grant_id: Mapped[str | None] = mapped_column(String(50), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CreditNoteLineRow(Base):
    """The part of a note that credits one top-level invoice line (line notes only)."""

    __tablename__ = "credit_note_lines"
    __table_args__ = (
        ForeignKeyConstraint(["invoice_id", "line_position"], ["invoice_lines.invoice_id", "invoice_lines.position"]),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("credits_voided IS NULL OR credits_voided >= 0", name="credits_voided_not_negative"),
        Index("ix_credit_note_lines_invoice_line", "invoice_id", "line_position"),
    )

    credit_note_id: Mapped[str] = mapped_column(ForeignKey("credit_notes.id"), primary_key=True)
    line_number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1 = the invoice's first top-level line
    invoice_id: Mapped[str] = mapped_column(String(50))
    line_position: Mapped[int] = mapped_column(Integer)  # invoice_lines.position of that line
    amount: Mapped[Decimal] = mapped_column(Numeric)
    # a PREPAID purchase line only (NULL on other lines): the credits this part takes back, voided from the grant
    # the line sold (invoice PAID) or withheld from the grant its PAID will issue (invoice DUE)
    credits_voided: Mapped[Decimal | None] = mapped_column(Numeric)
