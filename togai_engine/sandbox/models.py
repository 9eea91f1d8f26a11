from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base


class SandboxClockRow(Base):
    """The one row of a sandbox database: its current time. A database is a sandbox iff this row exists
    (`one` is always true and the primary key, so a second row cannot be inserted)."""

    __tablename__ = "sandbox_clock"
    __table_args__ = (CheckConstraint("one", name="ck_sandbox_clock_one_row"),)

    one: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=True)
    now: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
