"""idempotencyKey of credit notes, one call at a time: a key that names an earlier note answers for that
note before anything about the invoice the request names (its status, its lines) is looked at. Also:
a note reads the sums of its invoice's notes once.

The account (credit_note_helpers): 0.01 per token and a 49.00 platform fee a month; an invoice becomes
DUE on the 4th of the next month. Its lines as get_invoice lists them: 1 = tokens, 2 = platform.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from conftest import row_counts
from credit_note_helpers import due_invoice, priced_account, tokens
from helpers import at, break_stored_deal, call, call_error


async def test_a_key_of_a_note_on_another_invoice_is_a_conflict_whatever_that_invoice_is(client, clock, db):
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    await tokens(client, "acme", "e2", "2026-02-10T00:00:00Z", 1000)
    clock.set(at(2026, 2, 4))
    january = (await due_invoice(client, "acme"))["id"]  # 3000 × 0.01 = 30.00 + 49.00 = 79.00
    note = (await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE", amount="10.00",
                       idempotencyKey="k"))["creditNote"]
    used = (f"idempotencyKey 'k' was already used for credit note '{note['id']}' (CN-000001) on invoice "
            f"'{january}' (INV-000001) with a different ")

    # February is still DRAFT: the key is the answer, not "invoice is DRAFT"
    february = (await call(client, "get_invoice", accountId="acme"))["id"]
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=february, reason="DUPLICATE", amount="10.00",
                             idempotencyKey="k")
    assert used + "invoiceId; reuse a key only to retry the same credit note, or choose a new key" in error, error
    assert await row_counts(db) == before

    # February DUE (1000 × 0.01 = 10.00 + 49.00 = 59.00), asked for a line it does not have: still the key
    clock.set(at(2026, 3, 4))
    assert (await call(client, "get_invoice", invoiceId=february))["status"] == "DUE"
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=february, reason="ORDER_CHANGE",
                             lines=[{"lineNumber": 3, "amount": "1.00"}], idempotencyKey="k")
    assert used + "invoiceId, reason, amount;" in error, error  # 1.00 asked, the note credits 10.00
    assert await row_counts(db) == before

    # the key still replays its own note, and February takes notes under other keys
    again = await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE", amount="10",
                       idempotencyKey="k")
    assert again["replayed"] is True and again["creditNote"] == note
    other = await call(client, "create_credit_note", invoiceId=february, reason="DUPLICATE", amount="10.00",
                       idempotencyKey="k2")
    assert (other["creditNote"]["sequenceId"], other["invoice"]["amountDue"]) == ("CN-000002", "49.00")  # 59 - 10


async def test_a_note_sums_the_notes_of_its_invoice_once(client, clock, db):
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    january = (await due_invoice(client, "acme"))["id"]  # 79.00 due
    await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE", amount="10.00")
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        second = await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE", amount="5.00")
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert len([s for s in statements if "sum(credit_notes.amount)" in s]) == 1, statements
    # the answer still counts both notes: 10.00 + 5.00 = 15.00; 79.00 - 15.00 = 64.00 owed and creditable
    assert {k: second["invoice"][k] for k in ("creditNotesTotal", "creditedFromDue", "amountDue",
                                              "creditableAmount")} == {
        "creditNotesTotal": "15.00", "creditedFromDue": "15.00", "amountDue": "64.00", "creditableAmount": "64.00"}


async def test_a_key_retried_on_its_invoice_with_content_no_note_could_have_is_a_conflict_naming_it(client, clock, db):
    """The same key on the same invoice with other content is a Conflict naming what differs, even when that content
    would be refused on its own (a retry hears of the note its key made first, as on another invoice)."""
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    january = (await due_invoice(client, "acme"))["id"]  # 3000 × 0.01 = 30.00 + 49.00 = 79.00
    by_amount = (await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE", amount="10.00",
                            idempotencyKey="k"))["creditNote"]
    by_lines = (await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE",
                           lines=[{"lineNumber": 1, "amount": "5.00"}], idempotencyKey="k2"))["creditNote"]
    used = "idempotencyKey '{}' was already used for credit note '{}' ({}) on invoice '" + january + \
        "' (INV-000001) with a different {}; reuse a key only to retry"
    cases = [
        ("k", {"reason": "OTHER", "amount": "10.00"}, "reason"),  # OTHER without a memo
        ("k", {"reason": "DUPLICATE", "amount": "10.005"}, "amount"),  # finer than a cent
        ("k", {"reason": "DUPLICATE", "amount": "0"}, "amount"),
        ("k", {"reason": "DUPLICATE", "amount": "10.00", "lines": [{"lineNumber": 1, "amount": "10.00"}]},
         "amount, lines"),  # both
        ("k2", {"reason": "DUPLICATE", "lines": [{"lineNumber": 9, "amount": "5.00"}]}, "lines"),  # no line 9
        ("k2", {"reason": "DUPLICATE", "lines": [{"rateCardName": "nope", "amount": "5.00"}]}, "lines"),
        ("k2", {"reason": "DUPLICATE", "lines": [{"lineNumber": 1, "rateCardName": "tokens", "amount": "5.00"}]},
         "lines"),
    ]
    before = await row_counts(db)
    for key, arguments, fields in cases:
        note = by_amount if key == "k" else by_lines
        error = await call_error(client, "create_credit_note", invoiceId=january, idempotencyKey=key, **arguments)
        assert used.format(key, note["id"], note["sequenceId"], fields) in error, (arguments, error)
    assert await row_counts(db) == before
    # the same content still replays, the line named either way
    again = await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE",
                       lines=[{"rateCardName": "tokens", "amount": "5"}], idempotencyKey="k2")
    assert again["replayed"] is True and again["creditNote"] == by_lines


async def test_the_keys_billing_gives_its_own_notes_are_refused_to_an_operator(client, clock, db):
    """Billing tells the notes it issued at a plan change by their key's prefix (it takes one back when the change
    is undone, the lab nets it out): an operator's note under such a key would pass for billing's own."""
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    january = await due_invoice(client, "acme")
    before = await row_counts(db)
    for key in ("in-advance-fee:acme", "advance-replaced:x"):
        error = await call_error(client, "create_credit_note", invoiceId=january["id"], reason="ORDER_CHANGE",
                                 amount="1.00", idempotencyKey=key)
        assert "idempotencyKey" in error and "reserved" in error and key.split(":")[0] in error
    assert await row_counts(db) == before


async def test_a_retry_replays_its_note_when_the_accounts_deal_no_longer_validates(client, clock, db, monkeypatch):
    """A retry of a committed note returns the note, whatever became of the account since: its deal stopping to
    validate while a grant expired unrecorded only leaves the wallet's balance unknown (whether the grant is held
    for a period not DUE yet depends on the periods the deal prices), so that is what the replay says."""
    clock.set(at(2026, 1, 15))
    plan = await priced_account(client, "acme")
    platform = {"id": "platform", "rateValues": [{"currency": "USD", "rate": "49"}], "invoiceTiming": "IN_ARREARS",
                "enableProration": True}
    await call(client, "create_customer", id="cust_bad", name="Bad", account={
        "id": "bad", "name": "Bad", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z",
        "rateCardOverrides": {"fixedFeeRateCards": [platform]}})
    await tokens(client, "bad", "e1", "2026-01-10T00:00:00Z", 3000)
    clock.set(at(2026, 2, 4))
    january = (await due_invoice(client, "bad"))["id"]  # 3000 × 0.01 = 30.00 + the deal's 49.00 = 79.00
    await call(client, "grant_credit", accountId="bad", amount="5.00", effectiveUntil="2026-02-10T00:00:00Z")
    first = await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE", amount="10.00",
                       idempotencyKey="k")
    # 79.00 - 10.00 = 69.00 still due; the wallet holds the 5.00 grant, valid until 10 February
    assert (first["invoice"]["amountDue"], first["walletBalance"], first["problem"]) == ("69.00", "5.00", None)
    # An upgrade with stricter checks, or a hand edit: bad's stored deal no longer parses; the engine restarts
    await break_stored_deal(db, monkeypatch, "bad", "{fixedFeeRateCards,0,rateValues,0,rate}", '"49 USD"')

    clock.set(at(2026, 2, 15))  # the grant expired on 10 February, and no read recorded it yet
    before = await row_counts(db)
    again = await call(client, "create_credit_note", invoiceId=january, reason="DUPLICATE", amount="10.00",
                       idempotencyKey="k")
    assert (again["replayed"], again["creditNote"], again["invoice"]) == (True, first["creditNote"], first["invoice"])
    # 5.00 granted, less 5.00 expired unless held for a period not DUE yet, which only the deal can tell: unknown
    problem = again["problem"]
    assert again["walletBalance"] is None
    assert "the wallet balance is unknown" in problem and "'49 USD' is not a decimal number" in problem
    assert await row_counts(db) == before | {"audit_log": before["audit_log"] + 1}  # the replay is audited only
    # a new note is still refused naming the deal: it could not show a true balance, nor credit the wallet
    error = await call_error(client, "create_credit_note", invoiceId=january, reason="DUPLICATE", amount="1.00",
                             idempotencyKey="k-new")
    assert "account 'bad'" in error and "'49 USD' is not a decimal number" in error
