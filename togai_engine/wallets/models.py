"""Wallet tables: one lock row per account, credit grants, and the append-only ledger.

Keys lead with account_id (primary keys, unique keys and the references between these tables), so the
three tables can be distributed by account on Citus (README, "Scaling out").

Nothing here stores a balance: the balance is the sum of `wallet_entries`, a grant's remaining
amount is the sum of its own entries. Rows are only ever inserted.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base

GRANT = "GRANT"
APPLICATION = "APPLICATION"
REVERSAL = "REVERSAL"
EXPIRY = "EXPIRY"
VOID = "VOID"  # credits a credit note took back from the grant a PREPAID purchase line sold (Togai: VOIDED)
ENTRY_KINDS = (GRANT, APPLICATION, REVERSAL, EXPIRY, VOID)

MANUAL = "MANUAL"
RATE_CARD = "RATE_CARD"
CREDIT_NOTE = "CREDIT_NOTE"  # the part of a credit note that credits the wallet (credit_notes domain)


class WalletRow(Base):
    """One row per account that ever had credit: the row every wallet writer locks (FOR UPDATE)."""

    __tablename__ = "wallets"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CreditGrantRow(Base):
    """A credit grant: immutable once written; what is left of it is derived from the ledger."""

    __tablename__ = "credit_grants"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_credit_grants_account_idempotency_key"),
        # A free credit-grant rate card issues at most one grant per account and cycle start; a PREPAID card's
        # credits are granted once per sale (the invoice line that sold them), which may sell a cycle again
        # after an earlier sale of it was credited (a replaced advance invoice).
        Index("uq_credit_grants_account_grantor_cycle", "account_id", "grantor_id", "cycle_start", unique=True,
              postgresql_where=text("sale_invoice_id IS NULL")),
        UniqueConstraint("account_id", "sale_invoice_id", "sale_line_position", name="uq_credit_grants_account_sale"),
        CheckConstraint("(sale_invoice_id IS NULL) = (sale_line_position IS NULL)", name="sale_whole"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("priority >= 0", name="priority_not_negative"),
        CheckConstraint("effective_until IS NULL OR effective_until > effective_from", name="window_not_empty"),
        CheckConstraint("source IN ('MANUAL', 'RATE_CARD', 'CREDIT_NOTE')", name="source_known"),
        Index("ix_credit_grants_account_seq", "account_id", "seq"),
    )

    # Keys lead with the account (see the module docstring); the id alone is unique too (a generated id).
    account_id: Mapped[str] = mapped_column(ForeignKey("wallets.account_id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Numeric)
    purpose: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    # "<pricePlanId>:<rate card>" for rate-card grants; the credit note's id for CREDIT_NOTE grants
    grantor_id: Mapped[str | None] = mapped_column(Text)
    cycle_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # rate card names whose invoice lines the grant may pay (grantDetails.applicableEntityIds); NULL: any line
    applicable_entity_ids: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # PREPAID credits: the invoice line that sold them (text, not a foreign key: the wallet does not depend on
    # the invoices tables' shape); a credit note on that line voids them from this grant
    sale_invoice_id: Mapped[str | None] = mapped_column(String(50))
    sale_line_position: Mapped[int | None] = mapped_column(Integer)


class WalletEntryRow(Base):
    """One ledger line, signed: GRANT +, APPLICATION - (to an invoice), REVERSAL + (undoes one
    APPLICATION, at most once), EXPIRY (takes an expired grant's remainder to zero), VOID - (credits a credit
    note took back from the grant its PREPAID purchase line sold, at most once per note and grant)."""

    __tablename__ = "wallet_entries"
    __table_args__ = (
        CheckConstraint("kind IN ('GRANT', 'APPLICATION', 'REVERSAL', 'EXPIRY', 'VOID')", name="kind_known"),
        CheckConstraint(
            "(kind = 'GRANT' AND amount > 0)"
            " OR (kind = 'APPLICATION' AND amount < 0 AND invoice_id IS NOT NULL)"
            " OR (kind = 'REVERSAL' AND amount > 0 AND reverses_entry_id IS NOT NULL)"
            " OR (kind = 'EXPIRY' AND amount <> 0)"
            " OR (kind = 'VOID' AND amount < 0 AND credit_note_id IS NOT NULL)",
            name="sign_matches_kind",
        ),
        Index("ix_wallet_entries_account_at", "account_id", "at"),
        Index("ix_wallet_entries_grant", "grant_id"),
        Index("ix_wallet_entries_invoice", "invoice_id"),
        # An APPLICATION is reversed at most once.
        UniqueConstraint("account_id", "reverses_entry_id", name="uq_wallet_entries_account_id_reverses"),
        # A credit note voids a grant once.
        Index("uq_wallet_entries_account_note_grant", "account_id", "credit_note_id", "grant_id", unique=True,
              postgresql_where=text("credit_note_id IS NOT NULL")),
        ForeignKeyConstraint(["account_id", "reverses_entry_id"], ["wallet_entries.account_id", "wallet_entries.id"],
                             name="fk_wallet_entries_account_id_reverses"),
        ForeignKeyConstraint(["account_id", "grant_id"], ["credit_grants.account_id", "credit_grants.id"],
                             name="fk_wallet_entries_account_id_grant"),
    )

    # The primary key (account_id, id) also serves ledger pages, newest first.
    account_id: Mapped[str] = mapped_column(ForeignKey("wallets.account_id"), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Numeric)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Text, not a foreign key: the wallet must not depend on the invoices table's shape.
    invoice_id: Mapped[str | None] = mapped_column(String(50))
    reverses_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    # Text, as invoice_id: the credit note whose credit on a PREPAID purchase line a VOID entry records
    credit_note_id: Mapped[str | None] = mapped_column(String(50))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
