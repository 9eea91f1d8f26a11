from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base


class AccountBillingRow(Base):
    """Per account with a plan: how far invoicing has gone and when it next has work to do.

    `billed_until` is the end of the last period invoiced DUE (NULL: none yet). `next_run_at` is the
    earliest instant a period starts or becomes due (NULL: nothing scheduled), so a bill run finds
    the accounts with work by one index scan. Closers lock this row FOR UPDATE.
    """

    __tablename__ = "account_billing"
    __table_args__ = (Index("ix_account_billing_next_run_at", "next_run_at"),)

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    billed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
