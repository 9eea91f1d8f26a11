from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base


class PricePlanRow(Base):
    """A price plan; `definition` is its version 1's validated content (rate cards included; later versions are
    price_plan_versions rows)."""

    __tablename__ = "price_plans"
    __table_args__ = (
        # prefix search (completion): a byte-order index, whatever the database collation (migration 0014)
        Index("ix_price_plans_id_prefix", "id", postgresql_ops={"id": "text_pattern_ops"}),
    )

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PricePlanVersionRow(Base):
    """One version of a plan. Version 1 is what create_price_plan stored; update_price_plan writes the DRAFT
    of the next one (at most one per plan) and finalize_price_plan makes it ACTIVE. ACTIVE versions never change."""

    __tablename__ = "price_plan_versions"
    __table_args__ = (
        CheckConstraint("status IN ('DRAFT', 'ACTIVE')", name="ck_price_plan_versions_status"),
        CheckConstraint("version >= 1", name="ck_price_plan_versions_version"),
        Index("ix_price_plan_versions_one_draft", "plan_id", unique=True, postgresql_where=text("status = 'DRAFT'")),
    )

    plan_id: Mapped[str] = mapped_column(ForeignKey("price_plans.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    migration_mode: Mapped[str | None] = mapped_column(String(40))


class PlanAssociationRow(Base):
    """An account is on `price_plan_id` over [effective_from, effective_until); NULL until = open-ended.

    An account's associations never overlap. `anchor` fixes anniversary cycles (the attach instant).
    """

    __tablename__ = "plan_associations"
    __table_args__ = (
        UniqueConstraint("account_id", "effective_from"),
        # the one association the account's creation wrote (a replayed create_account compares with it)
        Index("uq_plan_associations_account_creation", "account_id", unique=True,
              postgresql_where=text("by_account_creation")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    price_plan_id: Mapped[str] = mapped_column(ForeignKey("price_plans.id"))
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    anchor: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The plan version it prices with, and the account's deal: cards replacing the version's cards of the same
    # name ({usageRateCards: [...], ...}). Never edited in place once the association has started: a new deal
    # or version from T on splits the association at T.
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    rate_card_overrides: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Written by create_account with the account (app/accounts.py): what a replay of the creation compares its plan
    # fields with. Not created_at: an update_account begun in the same microsecond has the account's created_at too.
    by_account_creation: Mapped[bool] = mapped_column(Boolean, server_default=false())
