"""How invoice and credit-note numbers and amounts are shown (shared by invoices and credit notes)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from togai_engine.pricing import round_money

ZERO = Decimal(0)


def invoice_number(number: int | None) -> str | None:
    """INV-000001: the gapless number an invoice gets when it becomes DUE (None before)."""
    return f"INV-{number:06d}" if number is not None else None


def credit_note_number(number: int) -> str:
    return f"CN-{number:06d}"


def money(currency: str) -> Callable[[Decimal | None], Decimal]:
    """Amounts shown with the currency's minor unit (0 -> 0.00 for USD); they are exact already."""
    return lambda value: round_money(value if value is not None else ZERO, currency)
