from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base


class AuditRow(Base):
    """Who did what, when: written in the same transaction as the change it records."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tool_id", "tool", "id"), Index("ix_audit_log_at", "at"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    tool: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONB)
    changed_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
