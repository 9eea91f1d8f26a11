"""The PREPAID credits a credit note on a purchase line takes back. Pure: no I/O, no clock.

A purchase line (CREDIT_GRANT_RATE_CARD_AMOUNT, invoiceTiming PREPAID) sold `creditAmount` credits for its value.
The credit notes on it take back credits in proportion to what they credit: credited / value × sold, on the total
the line's notes credited so far, rounded half-up to the currency's minor unit (the wallet holds credit in it, as
the grant was). Each note takes the difference between that share after it and before it, so the notes add up to
the share of their total and crediting the whole line takes back every credit sold, never more. Policy:
README.md, "PREPAID credits".
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from math import ceil
from typing import Any

from sqlalchemy import and_

from togai_engine.common.numbers import EXACT_MONEY_CONTEXT
from togai_engine.invoices.compose import CREDIT_GRANT_LINE
from togai_engine.invoices.models import InvoiceLineRow
from togai_engine.pricing.money import minor_unit, round_fraction
from togai_engine.wallets.rate_cards import PREPAID

ZERO = Decimal(0)


def is_purchase_line(line_type: str, details: Mapping[str, Any] | None) -> bool:
    """A top-level line that sold PREPAID credits (granted when its invoice is PAID)."""
    return line_type == CREDIT_GRANT_LINE and (details or {}).get("invoiceTiming") == PREPAID


# is_purchase_line as a condition on invoice_lines
PURCHASE_LINE = and_(InvoiceLineRow.line_type == CREDIT_GRANT_LINE,
                     InvoiceLineRow.details["invoiceTiming"].astext == PREPAID)


def credits_voided(sold: Decimal, value: Decimal, credited_before: Decimal, credited: Decimal,
                   currency: str) -> Decimal:
    """The credits a credit of `credited` on a purchase line of `value` that sold `sold` credits takes back, after
    earlier notes credited `credited_before` of it."""
    after = _share(sold, value, EXACT_MONEY_CONTEXT.add(credited_before, credited), currency)  # exact past 28 digits
    return EXACT_MONEY_CONTEXT.subtract(after, _share(sold, value, credited_before, currency))


def most_creditable(sold: Decimal, value: Decimal, credited_before: Decimal, unused: Decimal,
                    currency: str) -> Decimal:
    """The most (in the currency's minor unit, at least 0) a new note may credit on the line when only `unused` of
    its credits can be taken back: the largest `a` with credits_voided(sold, value, credited_before, a) <= unused.
    Not capped by the line's value (create_credit_note's own cap)."""
    if sold <= 0 or value <= 0:
        return ZERO
    unit = Fraction(minor_unit(currency))
    # half-up rounding to `unit`: round(x) <= L  <=>  x < L + unit/2, for L a multiple of unit
    limit = Fraction(_share(sold, value, credited_before, currency)) + Fraction(unused) + unit / 2
    bound = limit * Fraction(value) / Fraction(sold) - Fraction(credited_before)  # the credit must stay below it
    most = (ceil(bound / unit) - 1) * unit
    return round_fraction(most, currency) if most > 0 else ZERO


def _share(sold: Decimal, value: Decimal, credited: Decimal, currency: str) -> Decimal:
    """credited / value × sold, rounded half-up to the minor unit (exact: no intermediate rounding)."""
    if credited <= 0:
        return round_fraction(Fraction(0), currency)
    return round_fraction(Fraction(sold) * Fraction(credited) / Fraction(value), currency)
