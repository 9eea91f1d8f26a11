"""The burn order: which grants pay an invoice, and how much each gives. Pure, no I/O.

Order (documented in the README): priority ascending (0 burns first), then the earliest expiry
(grants that never expire last), then the earliest effectiveFrom, then the smaller amount, then the
grant id. Every key is a property of the grant's content except the final id, so the outcome does
not depend on the order rows were inserted or read.

Line-aware burn: a grant restricted to rate cards (grantDetails.applicableEntityIds) pays only what is
left of those cards' lines. Grants still go in the order above, each taking what it may: a restricted
grant takes from its cards' lines in invoice order; an unrestricted grant takes first from the lines no
eligible restricted grant may pay (true-up, late usage, other cards), then from the rest, so a
higher-priority general credit does not use up the lines a restricted credit was granted for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from togai_engine.common.numbers import EXACT_MONEY_CONTEXT


@dataclass(frozen=True)
class Spendable:
    grant_id: str
    priority: int
    effective_from: datetime
    effective_until: datetime | None
    amount: Decimal  # the grant's original amount (a tie-breaker)
    spendable: Decimal  # what the grant can still give
    applicable: frozenset[str] | None = None  # rate card names whose lines it may pay; None: any line


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


@dataclass
class _Due:
    name: str | None
    left: Decimal  # what of the line no grant paid yet


InvoiceLine = tuple[str | None, Decimal]  # (rate card name, or None for a line of no card; its amount)


def plan_burn(grants: Iterable[Spendable], amount: Decimal, *,
              lines: Sequence[InvoiceLine] | None = None) -> list[tuple[str, Decimal]]:
    """Splits `amount` over the grants in burn order; the parts sum to at most min(amount, total spendable).

    `lines`: the invoice's top-level lines (summing to `amount`); without them the invoice is one line of no
    rate card, which restricted grants cannot pay."""
    ordered = sorted(grants, key=burn_key)
    due = [_Due(name, value) for name, value in (lines if lines is not None else [(None, amount)]) if value > 0]
    reserved = {name for g in ordered if g.applicable is not None for name in g.applicable}
    parts: list[tuple[str, Decimal]] = []
    left = amount
    for grant in ordered:
        if left <= 0:
            break
        if grant.applicable is None:
            payable = [d for d in due if d.name not in reserved] + [d for d in due if d.name in reserved]
        else:
            payable = [d for d in due if d.name in grant.applicable]
        give = min(grant.spendable, left)
        take = Decimal(0)
        for line in payable:
            part = min(EXACT_MONEY_CONTEXT.subtract(give, take), line.left)
            if part > 0:
                line.left = EXACT_MONEY_CONTEXT.subtract(line.left, part)
                take = EXACT_MONEY_CONTEXT.add(take, part)
        if take > 0:
            parts.append((grant.grant_id, take))
            left = EXACT_MONEY_CONTEXT.subtract(left, take)
    return parts
