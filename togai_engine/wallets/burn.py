"""The burn order: which grants pay an invoice, and how much each gives. Pure, no I/O.

Order (documented in the README): priority ascending (0 burns first), then the earliest expiry
(grants that never expire last), then the earliest effectiveFrom, then the smaller amount, then the
grant id. Every key is a property of the grant's content except the final id, so the outcome does
not depend on the order rows were inserted or read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class Spendable:
    grant_id: str
    priority: int
    effective_from: datetime
    effective_until: datetime | None
    amount: Decimal  # the grant's original amount (a tie-breaker)
    spendable: Decimal  # what the grant can still give


def burn_key(grant: Spendable) -> tuple[object, ...]:
    never_expires = grant.effective_until is None
    return (
        grant.priority,
        never_expires,
        grant.effective_until or grant.effective_from,  # unused when never_expires is True
        grant.effective_from,
        grant.amount,
        grant.grant_id,
    )


def plan_burn(grants: Iterable[Spendable], amount: Decimal) -> list[tuple[str, Decimal]]:
    """Splits `amount` over the grants in burn order; the parts sum to min(amount, total spendable)."""
    parts: list[tuple[str, Decimal]] = []
    left = amount
    for grant in sorted(grants, key=burn_key):
        if left <= 0:
            break
        take = min(grant.spendable, left)
        if take > 0:
            parts.append((grant.grant_id, take))
            left -= take
    return parts
