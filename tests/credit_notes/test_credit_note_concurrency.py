"""Two notes on one invoice at once cannot credit more than its total together: the second waits for
the first's lock on the invoice row, then sees its note and is refused."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from credit_note_helpers import due_invoice, priced_account, tokens
from helpers import at, call
from togai_engine.app.invoices import create_credit_note, update_invoice_status
from togai_engine.errors import InvalidInput
from togai_engine.invoices.credit_note_schemas import CreditNoteCreate


async def test_concurrent_notes_never_credit_more_than_the_total(client, clock, db):
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    inv = (await due_invoice(client, "acme"))["id"]  # 30.00 + 49.00 = 79.00
    note = CreditNoteCreate(invoiceId=inv, reason="DUPLICATE", amount=Decimal("60.00"))
    first_written, second_started = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with db.unit_of_work() as session:
            await create_credit_note(session, note, clock.now())
            first_written.set()
            await second_started.wait()
            await asyncio.sleep(0.2)  # the second is now waiting on the invoice row

    async def second() -> None:
        await first_written.wait()
        second_started.set()
        async with db.unit_of_work() as session:
            await create_credit_note(session, note, clock.now())

    results = await asyncio.wait_for(asyncio.gather(first(), second(), return_exceptions=True), timeout=20)
    assert results[0] is None and isinstance(results[1], InvalidInput)
    # 60.00 + 60.00 = 120.00 > 79.00: after the first, at most 79.00 - 60.00 = 19.00 is left
    assert "its credit notes already credit 60.00, so at most 19.00" in results[1].message
    shown = await call(client, "get_invoice", invoiceId=inv)
    assert (shown["creditNotesTotal"], shown["amountDue"]) == ("60.00", "19.00")  # 79.00 - 60.00


async def test_a_note_and_a_void_at_once_leave_one_of_them(client, clock, db):
    """The VOID locks the invoice first: the note then finds it VOID and is refused."""
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    inv = (await due_invoice(client, "acme"))["id"]
    voided, note_started = asyncio.Event(), asyncio.Event()

    async def void() -> None:
        async with db.unit_of_work() as session:
            await update_invoice_status(session, inv, "VOID", clock.now())
            voided.set()
            await note_started.wait()
            await asyncio.sleep(0.2)

    async def note() -> None:
        await voided.wait()
        note_started.set()
        async with db.unit_of_work() as session:
            await create_credit_note(session, CreditNoteCreate(invoiceId=inv, reason="DUPLICATE",
                                                               amount=Decimal("1.00")), clock.now())

    results = await asyncio.wait_for(asyncio.gather(void(), note(), return_exceptions=True), timeout=20)
    assert results[0] is None and isinstance(results[1], InvalidInput) and "is VOID" in results[1].message
    assert (await call(client, "list_credit_notes", invoiceId=inv))["data"] == []
