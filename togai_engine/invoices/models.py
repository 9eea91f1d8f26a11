from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    and_,
    false,
    func,
    or_,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from togai_engine.common.locks import advisory_lock_sql
from togai_engine.store.base import Base


class InvoiceRow(Base):
    """One invoice per account and billing period (the unique key makes closing idempotent).

    DRAFT rows hold no amounts (they are computed when read); DUE rows are frozen, numbered and
    carry their lines. Periods are half-open [period_start, period_end).
    """

    __tablename__ = "invoices"
    __table_args__ = (
        # one STANDARD invoice per account and period; advance invoices share their period's start (migration 0021)
        Index("uq_invoices_account_period", "account_id", "period_start", unique=True,
              postgresql_where=text("invoice_type = 'STANDARD'")),
        Index("ix_invoices_period_start_seq", "period_start", "seq"),
        Index("ix_invoices_customer_period", "customer_id", "period_start"),
        Index("ix_invoices_status_account", "status", "account_id"),
        # prefix search (completion): a byte-order index, whatever the database collation (migration 0014)
        Index("ix_invoices_id_prefix", "id", postgresql_ops={"id": "text_pattern_ops"}),
    )

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    customer_id: Mapped[str] = mapped_column(String(50))
    # NULL only on an advance invoice whose association a plan change at its first instant dropped (migration 0021)
    association_id: Mapped[int | None] = mapped_column(ForeignKey("plan_associations.id", ondelete="SET NULL"))
    price_plan_id: Mapped[str] = mapped_column(ForeignKey("price_plans.id"))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    sequence_number: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    sub_total: Mapped[Decimal | None] = mapped_column(Numeric)
    true_up: Mapped[Decimal | None] = mapped_column(Numeric)
    total_amount: Mapped[Decimal | None] = mapped_column(Numeric)
    credits_applied: Mapped[Decimal | None] = mapped_column(Numeric)
    amount_due: Mapped[Decimal | None] = mapped_column(Numeric)
    invoice_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # the plan's pricing rules as they ran on this invoice (invoices/pricing_rules.py); NULL without rules
    pricing_rule_logs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    # Togai's invoiceType: STANDARD (a billing period's) or STANDARD_ADVANCED (an association's opening charges)
    invoice_type: Mapped[str] = mapped_column(String(24), server_default=text("'STANDARD'"))
    # opened before migration 0021: an association's first period carries its own in-advance fees (compose.py)
    carries_opening_fees: Mapped[bool] = mapped_column(Boolean, server_default=false())


ADVANCED = "STANDARD_ADVANCED"  # invoice_type of an advance invoice: its period is [start, start)


def overlapping(start: datetime | None, end: datetime | None) -> ColumnElement[bool]:
    """SQL: the invoice's period overlaps [start, end) (either side may be open); an advance invoice's empty
    period counts when its instant is inside."""
    conditions = []
    if start is not None:
        conditions.append(or_(InvoiceRow.period_end > start,
                              and_(InvoiceRow.invoice_type == ADVANCED, InvoiceRow.period_start >= start)))
    if end is not None:
        conditions.append(InvoiceRow.period_start < end)
    return and_(true(), *conditions)


class InvoiceLineRow(Base):
    """A frozen line of a DUE invoice. Top-level lines (parent NULL) carry rounded values that add up
    to the total; child lines (per slab, rate-config adjustment) carry the exact values behind them.
    Usage lines record the meter, the usage window and the quantity billed (lineage)."""

    __tablename__ = "invoice_lines"

    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_position: Mapped[int | None] = mapped_column(Integer)
    line_type: Mapped[str] = mapped_column(String(48))
    rate_card_name: Mapped[str | None] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal | None] = mapped_column(Numeric)
    value_per_quantity: Mapped[Decimal | None] = mapped_column(Numeric)
    value: Mapped[Decimal] = mapped_column(Numeric)
    usage_meter_id: Mapped[str | None] = mapped_column(String(50))
    usage_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    usage_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class InvoiceCounterRow(Base):
    """Gapless invoice numbers: the counter moves in the transaction that makes invoices DUE."""

    __tablename__ = "invoice_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger)


COUNTER_LOCK_CLASS = 0x636E7472  # "cntr"
INVOICE_COUNTER = "INVOICE"  # the invoices' counter (billing.close._number); credit notes have their own


def counter_lock_sql(name: str) -> str:
    """SQL taking the lock of counter `name` (a constant of the engine's) until the transaction ends; taken
    before the counter row is written. On one node the row's lock already orders its writers; on Citus, where
    the writers of reference tables hold no table-wide lock (accounts.service.lock_accounts), it keeps two
    transactions from writing the counter's copies on the nodes in different orders."""
    return advisory_lock_sql(COUNTER_LOCK_CLASS, f"'{name}'", exclusive=True)


class LateUsageEventRow(Base):
    """An event stored ACCEPTED_LATE: dated in `source_invoice_id`'s period after that invoice became DUE,
    under a plan whose lateUsage is BILL_ON_NEXT_INVOICE. `invoice_id` is the invoice whose late-usage line
    billed it, NULL until the account's next invoice closes (the lineage between the two invoices and the
    events; invoices/late_usage.py)."""

    __tablename__ = "late_usage_events"
    __table_args__ = (
        Index("ix_late_usage_events_pending", "account_id", postgresql_where=text("invoice_id IS NULL")),
        Index("ix_late_usage_events_invoice_id", "invoice_id"),
        Index("ix_late_usage_events_source_invoice_id", "source_invoice_id"),
    )

    # No foreign keys: ingest writes these rows holding the billing watermark, and a key check would then lock
    # the account row (FOR KEY SHARE) that update_account locks before the watermark: a deadlock. The ids come
    # from rows this transaction has locked or just read (accounts, DUE invoices, which are never deleted).
    account_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source_invoice_id: Mapped[str] = mapped_column(String(50))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    invoice_id: Mapped[str | None] = mapped_column(String(50))
