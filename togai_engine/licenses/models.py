from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from togai_engine.store.base import Base


class LicenseUpdateRow(Base):
    """One seat change of an account's license from `effective_from` on, as it was asked for.

    ABSOLUTE sets the count to `quantity`; RELATIVE adds `quantity` (may be negative) to the count just before.
    The count at an instant folds the changes at or before it in time order, changes at the same instant in the
    order they were made (`id`); 0 before the first. `idempotency_key` (optional, unique per account) makes a
    retry return the first call's result instead of changing the seats again.
    """

    __tablename__ = "license_updates"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key"),
        Index("ix_license_updates_account_license", "account_id", "license_id", "effective_from"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    license_id: Mapped[str] = mapped_column(String(50))
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_type: Mapped[str] = mapped_column(String(10))
    quantity: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
