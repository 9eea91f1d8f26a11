"""The credit notes billing issues itself when a plan change or end cuts what an invoice charged ahead.

app/advance_credits.py issues them (reason ORDER_CHANGE) and keys them with these prefixes, so they can be told
from a note an operator gave the same reason by hand: a cut's note credits the unused time of an in-advance fee or
the PREPAID credits of a cycle the plan no longer reaches; a replacement's credits an advance invoice whose period
is invoiced anew. The pricing lab nets them out of what an account was charged (`change_credited`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.numbers import exact_sum
from togai_engine.invoices.credit_note_models import CreditNoteLineRow, CreditNoteRow
from togai_engine.store.arrays import any_of

CUT_KEY = "in-advance-fee:"  # credit_unused_advance_fees: time from the cut on, unused
REPLACED_KEY = "advance-replaced:"  # credit_replaced_advance_invoices: the whole advance invoice, invoiced anew
CHANGE_KEYS = (CUT_KEY, REPLACED_KEY)


async def change_credited(session: AsyncSession, invoice_ids: Iterable[str]) -> dict[str, Decimal]:
    """Invoice id -> what changes left uncharged of it (absent: nothing): per line a change's note credited,
    everything notes credited on that line up to and including the last such note. A change's note is sized less
    what the line's earlier notes credited, so with them it is the share of the line the change found unused
    (an operator's note on the line before it was part of that credit). Notes on other lines, and on the line after
    the change, are corrections, not counted."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return {}
    by_change = or_(*(CreditNoteRow.idempotency_key.startswith(key, autoescape=True) for key in CHANGE_KEYS))
    rows = (await session.execute(
        select(CreditNoteLineRow.invoice_id, CreditNoteLineRow.line_position, CreditNoteRow.seq,
               CreditNoteLineRow.amount, (CreditNoteRow.reason == "ORDER_CHANGE") & by_change)
        .join(CreditNoteRow, CreditNoteRow.id == CreditNoteLineRow.credit_note_id)
        .where(any_of(CreditNoteLineRow.invoice_id, ids))
        .order_by(CreditNoteRow.seq))).tuples().all()
    lines: dict[tuple[str, int], list[Decimal]] = defaultdict(list)  # the line's note amounts, oldest first
    through: dict[tuple[str, int], int] = {}  # how many of them the last change's note closes
    for invoice_id, position, _, amount, by_a_change in rows:
        credited = lines[(invoice_id, position)]
        credited.append(amount)
        if by_a_change:
            through[(invoice_id, position)] = len(credited)
    found: dict[str, list[Decimal]] = defaultdict(list)
    for (invoice_id, position), count in through.items():
        found[invoice_id].extend(lines[(invoice_id, position)][:count])
    return {invoice_id: exact_sum(amounts) for invoice_id, amounts in found.items()}
