"""Instants as scenario files and reports write them."""

from __future__ import annotations

from datetime import UTC, datetime, time

from togai_engine.common import validation

iso = validation.instant_text  # 2026-01-10T00:00:00Z, as the tools return instants


def period_name(start: datetime) -> str:
    """How a billing period is named: its start date when it starts at 00:00 UTC (2026-01-01), else its start
    instant (2026-01-15T12:00:00Z). An account's periods start at distinct instants, so the name is unique."""
    start = start.astimezone(UTC)
    return start.date().isoformat() if start.time() == time(0) else iso(start)


ADVANCE = " advance"  # an advance invoice (invoiceType STANDARD_ADVANCED) is named after its instant: "2026-01-01 advance"


def invoice_name(start: datetime, advance: bool) -> str:
    """How an invoice is named in a scenario: its period's name, with " advance" for the advance invoice issued
    as a plan association starts (it shares its start with that period's own invoice)."""
    return period_name(start) + (ADVANCE if advance else "")


def parse_invoice_name(name: str, field: str) -> tuple[datetime, bool]:
    """(start, advance) of an invoice's name; raises InvalidInput."""
    advance = name.endswith(ADVANCE)
    return parse(name.removesuffix(ADVANCE), field), advance


def parse(value: object, field: str) -> datetime:
    """An instant as the tools read it (a date is 00:00 UTC); raises InvalidInput."""
    return validation.parse_instant(value, field)
