"""Instants as scenario files and reports write them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable
from datetime import UTC, datetime, time

from togai_engine.common import validation

iso = validation.instant_text  # 2026-01-10T00:00:00Z, as the tools return instants


def period_name(start: datetime) -> str:
    """How a billing period is named: its start date when it starts at 00:00 UTC (2026-01-01), else its start
    instant (2026-01-15T12:00:00Z). An account's periods start at distinct instants, so the name is unique."""
    start = start.astimezone(UTC)
    return start.date().isoformat() if start.time() == time(0) else iso(start)


ADVANCE = " advance"  # an advance invoice (invoiceType STANDARD_ADVANCED) is named after its instant: "2026-01-01 advance"
ORDINAL = re.compile(r" #([1-9][0-9]*)$")  # the n-th invoice of one name, in the order issued: "2026-01-01 advance #2"


def invoice_name(start: datetime, advance: bool, ordinal: int = 1) -> str:
    """How an invoice is named in a scenario: its period's name, with " advance" for the advance invoice issued
    as a plan association starts (it shares its start with that period's own invoice), and " #2", " #3" for the
    later ones of that name (a plan changed from its first instant issues a second advance invoice of the period),
    so that every invoice of an account has a name of its own."""
    return period_name(start) + (ADVANCE if advance else "") + (f" #{ordinal}" if ordinal > 1 else "")


def parse_invoice_name(name: str, field: str) -> tuple[datetime, bool, int]:
    """(start, advance, ordinal) of an invoice's name; raises InvalidInput."""
    ordinal = ORDINAL.search(name)
    if ordinal is not None:
        name = name[:ordinal.start()]
    advance = name.endswith(ADVANCE)
    return parse(name.removesuffix(ADVANCE), field), advance, int(ordinal[1]) if ordinal else 1


def period_of(name: str) -> str:
    """The period part of an invoice's name (what must be an instant)."""
    return ORDINAL.sub("", name).removesuffix(ADVANCE)


def ordinals(names: Iterable[Hashable]) -> list[int]:
    """For names in the order their invoices were issued, each one's place among those of its name (1, 2, ...)."""
    seen: Counter[Hashable] = Counter()
    places = []
    for name in names:
        seen[name] += 1
        places.append(seen[name])
    return places


def parse(value: object, field: str) -> datetime:
    """An instant as the tools read it (a date is 00:00 UTC); raises InvalidInput."""
    return validation.parse_instant(value, field)
