"""Credit notes in two transactions at once. Two notes on one invoice cannot credit more than its total
together: the second waits for the first's lock on the invoice row, then sees its note and is refused.
Two notes with one idempotencyKey end as one note: the second returns it (same content) or is a
Conflict naming it (another invoice), never a database error.

Each test holds the first transaction open until pg_stat_activity shows the second waiting for a lock.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from credit_note_helpers import due_invoice, january_and_february_due, priced_account, tokens
from helpers import at, backend_pid, call, wait_until_lock_waiting
from togai_engine.app.invoices import create_credit_note, update_invoice_status
from togai_engine.errors import Conflict, InvalidInput
from togai_engine.invoices.credit_note_schemas import CreditNoteCreate, CreditNoteResult


async def in_two_transactions(db, database_url, first_call, second_call) -> list[object]:
    """Runs `first_call(session)`, then, while its transaction is still open, `second_call(session)` in
    another; commits the first once the second waits for a lock. Returns both results (or exceptions)."""
    first_done = asyncio.Event()
    second_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def first() -> object:
        async with db.unit_of_work() as session:
            result = await first_call(session)
            first_done.set()
            await wait_until_lock_waiting(database_url, await second_pid)
            return result

    async def second() -> object:
        await first_done.wait()
        async with db.unit_of_work() as session:
            second_pid.set_result(await backend_pid(session))
            return await second_call(session)

    return await asyncio.wait_for(asyncio.gather(first(), second(), return_exceptions=True), timeout=60)


async def test_concurrent_notes_never_credit_more_than_the_total(client, clock, db, database_url):
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    inv = (await due_invoice(client, "acme"))["id"]  # 30.00 + 49.00 = 79.00
    note = CreditNoteCreate(invoiceId=inv, reason="DUPLICATE", amount=Decimal("60.00"))

    async def credit(session):
        return await create_credit_note(session, note, clock.now())

    results = await in_two_transactions(db, database_url, credit, credit)
    assert isinstance(results[0], CreditNoteResult) and isinstance(results[1], InvalidInput), results
    # 60.00 + 60.00 = 120.00 > 79.00: after the first, at most 79.00 - 60.00 = 19.00 is left
    assert "its credit notes already credit 60.00, so at most 19.00" in results[1].message
    shown = await call(client, "get_invoice", invoiceId=inv)
    assert (shown["creditNotesTotal"], shown["amountDue"]) == ("60.00", "19.00")  # 79.00 - 60.00


async def test_a_note_and_a_void_at_once_leave_one_of_them(client, clock, db, database_url):
    """The VOID locks the invoice first: the note then finds it VOID and is refused."""
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    inv = (await due_invoice(client, "acme"))["id"]

    async def void(session):
        return await update_invoice_status(session, inv, "VOID", clock.now())

    async def note(session):
        return await create_credit_note(session, CreditNoteCreate(invoiceId=inv, reason="DUPLICATE",
                                                                  amount=Decimal("1.00")), clock.now())

    results = await in_two_transactions(db, database_url, void, note)
    assert not isinstance(results[0], BaseException), results[0]
    assert isinstance(results[1], InvalidInput) and "is VOID" in results[1].message, results[1]
    assert (await call(client, "list_credit_notes", invoiceId=inv))["data"] == []


async def test_one_key_for_the_same_note_at_once_gives_one_note(client, clock, db, database_url):
    """The second waits for the invoice row, then finds the key taken by the same content: the first note."""
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    inv = (await due_invoice(client, "acme"))["id"]  # 79.00 due

    async def credit(session):
        return await create_credit_note(session, CreditNoteCreate(
            invoiceId=inv, reason="DUPLICATE", amount=Decimal("60.00"), idempotencyKey="k"), clock.now())

    first, second = await in_two_transactions(db, database_url, credit, credit)
    assert isinstance(first, CreditNoteResult) and isinstance(second, CreditNoteResult), (first, second)
    assert (first.replayed, second.replayed) == (False, True) and second.creditNote == first.creditNote
    shown = await call(client, "get_invoice", invoiceId=inv)
    assert (shown["creditNotesTotal"], shown["amountDue"]) == ("60.00", "19.00")  # one note: 79.00 - 60.00


async def test_one_key_on_two_invoices_at_once_is_a_conflict_that_leaves_nothing(client, clock, db, database_url):
    """Different invoices lock different rows, so both get past the key lookup: the second then waits for
    the note counter, and the key's unique index turns its note away. Its number and its wallet grant
    go too: the next note is CN-000002 and the wallet stays empty."""
    january, february = await january_and_february_due(client, clock, 1000)  # 79.00 and 59.00 (1000 × 0.01 + 49.00)
    # paid: all of a note on February goes to the wallet, as a grant written before the note itself
    await call(client, "update_invoice_status", invoiceId=february, status="PAID")

    def credit(invoice_id: str):
        async def run(session):
            return await create_credit_note(session, CreditNoteCreate(
                invoiceId=invoice_id, reason="DUPLICATE", amount=Decimal("5.00"), idempotencyKey="k"), clock.now())
        return run

    first, second = await in_two_transactions(db, database_url, credit(january), credit(february))
    assert isinstance(first, CreditNoteResult) and isinstance(second, Conflict), (first, second)
    assert (f"idempotencyKey 'k' was already used for credit note '{first.creditNote.id}' (CN-000001) on invoice "
            f"'{january}' (INV-000001) with a different invoiceId;") in second.message
    assert (await call(client, "list_credit_notes", invoiceId=february))["data"] == []
    assert (await call(client, "get_wallet_balance", accountId="acme"))["balance"] == "0.00"
    again = await call(client, "create_credit_note", invoiceId=february, reason="DUPLICATE", amount="5.00",
                       idempotencyKey="k2")
    assert (again["creditNote"]["sequenceId"], again["walletBalance"]) == ("CN-000002", "5.00")
