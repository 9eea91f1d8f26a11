"""Random credit notes on a DUE invoice (with random usage, prepaid credit, and a payment at some
point), through the MCP tools. Invariants after every call:

- amountDue + sum(creditedFromDue) == totalAmount - creditsApplied; creditNotesTotal <= totalAmount;
- a note is accepted exactly when it fits the invoice's and its line's room (a simple model says
  which), and a refused one writes nothing;
- a note takes min(amount, amountDue) off a DUE invoice and nothing off a PAID one; the rest is
  wallet credit: the balance == the ledger sum == prepaid left over + what notes credited to it.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import row_counts
from credit_note_helpers import due_invoice, priced_account, tokens
from helpers import at, call, scalar

D = Decimal
cents = st.integers(1, 9000).map(lambda c: D(c).scaleb(-2))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("amount"), st.just(0), cents),
        # small enough that two or three notes on one line meet its value before the invoice's total
        st.tuples(st.just("line"), st.integers(1, 2), st.integers(1, 3000).map(lambda c: D(c).scaleb(-2))),
        st.tuples(st.just("pay"), st.just(0), st.just(D(0))),
    ),
    min_size=1, max_size=8,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(used=st.integers(0, 6000), prepaid=st.integers(0, 12000).map(lambda c: D(c).scaleb(-2)), ops=operations)
async def test_notes_keep_the_invoice_and_the_wallet_adding_up(client, clock, db, used, prepaid, ops):
    suffix = secrets.token_hex(4)
    acc = f"acc_{suffix}"
    clock.set(at(2026, 1, 15))
    await priced_account(client, acc, suffix=suffix)
    if used:
        await tokens(client, acc, "e1", "2026-01-10T00:00:00Z", used)
    if prepaid:
        await call(client, "grant_credit", accountId=acc, amount=str(prepaid))
    clock.set(at(2026, 2, 4))
    invoice = await due_invoice(client, acc)
    total, applied = D(invoice["totalAmount"]), D(invoice["creditsApplied"])
    assert total == D(used).scaleb(-2) + D(49) and applied == min(prepaid, total)  # tokens × 0.01 + 49.00
    values = {n: D(line["value"]) for n, line in enumerate(invoice["lineItems"], start=1)}
    due, status, credited, to_wallet = total - applied, "DUE", D(0), D(0)
    on_line = {1: D(0), 2: D(0)}

    for kind, line, amount in ops:
        if kind == "pay":
            if status == "DUE":
                await call(client, "update_invoice_status", invoiceId=invoice["id"], status="PAID")
                status = "PAID"
            continue
        fits = amount <= total - credited and (kind == "amount" or amount <= values[line] - on_line[line])
        arguments = {"amount": str(amount)} if kind == "amount" else {"lines": [{"lineNumber": line,
                                                                                 "amount": str(amount)}]}
        before = await row_counts(db)
        result = await client.call_tool("create_credit_note", {"invoiceId": invoice["id"], "reason": "ORDER_CHANGE",
                                                               **arguments})
        assert result.is_error != fits, (kind, line, amount, result.content[0].text)
        if not fits:
            assert await row_counts(db) == before
            continue
        note = result.structured_content["creditNote"]
        from_due = min(amount, due) if status == "DUE" else D(0)
        assert (D(note["creditedFromDue"]), D(note["creditedToWallet"])) == (from_due, amount - from_due)
        due -= from_due
        credited += amount
        to_wallet += amount - from_due
        if kind == "line":
            on_line[line] += amount

        shown = await call(client, "get_invoice", invoiceId=invoice["id"])
        notes = shown["creditNotes"]
        assert D(shown["totalAmount"]) == total and D(shown["creditsApplied"]) == applied  # never edited
        assert D(shown["amountDue"]) == due
        assert D(shown["amountDue"]) + sum(D(n["creditedFromDue"]) for n in notes) == total - applied
        assert D(shown["creditNotesTotal"]) == sum(D(n["amount"]) for n in notes) == credited <= total
        balance = D((await call(client, "get_wallet_balance", accountId=acc))["balance"])
        ledger = D(await scalar(db, f"SELECT coalesce(sum(amount), 0) FROM wallet_entries WHERE account_id = '{acc}'"))
        assert balance == ledger == prepaid - applied + to_wallet
