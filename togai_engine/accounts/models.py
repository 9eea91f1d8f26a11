from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base


class AccountRow(Base):
    __tablename__ = "accounts"
    __table_args__ = (Index("ix_accounts_customer_seq", "customer_id", "seq"),)

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(Text)
    invoice_currency: Mapped[str] = mapped_column(String(3))
    primary_email: Mapped[str | None] = mapped_column(Text)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    net_term_days: Mapped[int] = mapped_column(Integer, server_default="0")
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="ACTIVE")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AccountHandleRow(Base):
    """Every account id and every alias, in one key space: the primary key makes an alias
    unique across all aliases and all account ids, and events resolve `accountId` with one lookup."""

    __tablename__ = "account_handles"
    __table_args__ = (
        Index("ix_account_handles_account", "account_id"),
        # prefix search (completion): a byte-order index, whatever the database collation (migration 0014)
        Index("ix_account_handles_handle_prefix", "handle", postgresql_ops={"handle": "text_pattern_ops"}),
    )

    handle: Mapped[str] = mapped_column(String(50), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(8))  # ID or ALIAS
