from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base


class PricePlanRow(Base):
    """An immutable price plan; `definition` is its validated content (rate cards included)."""

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


class PlanAssociationRow(Base):
    """An account is on `price_plan_id` over [effective_from, effective_until); NULL until = open-ended.

    An account's associations never overlap. `anchor` fixes anniversary cycles (the attach instant).
    """

    __tablename__ = "plan_associations"
    __table_args__ = (UniqueConstraint("account_id", "effective_from"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    price_plan_id: Mapped[str] = mapped_column(ForeignKey("price_plans.id"))
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    anchor: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
