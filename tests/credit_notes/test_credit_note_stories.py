"""Credit notes through the MCP tools with the clock: they correct DUE and PAID invoices without
editing them, and everything still adds up. Every amount is worked out by hand next to it.

The account (credit_note_helpers): 0.01 per token and a 49.00 platform fee a month; January's
invoice becomes DUE on 4 February. Its lines as get_invoice lists them: 1 = tokens, 2 = platform.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from conftest import row_counts
from credit_note_helpers import due_invoice, january_and_february_due, january_due, priced_account, tokens
from helpers import at, call, call_error
from mcp_server.registry import SPECS


def adds_up(invoice: dict[str, Any]) -> bool:
    """amountDue + what the notes took off it == totalAmount - creditsApplied (exact decimals)."""
    from_due = sum((D(n["creditedFromDue"]) for n in invoice["creditNotes"]), D(0))
    notes = sum((D(n["amount"]) for n in invoice["creditNotes"]), D(0))
    return (D(invoice["amountDue"]) + from_due == D(invoice["totalAmount"]) - D(invoice["creditsApplied"])
            and D(invoice["creditNotesTotal"]) == notes <= D(invoice["totalAmount"]))


async def test_notes_on_a_due_invoice_reduce_what_is_owed_then_credit_the_wallet(client, clock, db):
    january = await january_due(client, clock, amount="9.00", idempotencyKey="prepaid")
    # 3000 tokens × 0.01 = 30.00 + platform 49.00 = 79.00; the prepaid 9.00 pays part: 79.00 - 9.00 = 70.00 due
    assert (january["totalAmount"], january["creditsApplied"], january["amountDue"]) == ("79.00", "9.00", "70.00")
    assert (january["creditNotesTotal"], january["creditNotes"]) == ("0.00", [])
    assert [(line["rateCardName"], line["value"]) for line in january["lineItems"]] == [
        ("tokens", "30.00"), ("platform", "49.00")]
    inv = january["id"]

    # 1. A partial note by amount: amountDue 70.00 - 10.00 = 60.00; nothing reaches the wallet.
    first = await call(client, "create_credit_note", invoiceId=inv, reason="ORDER_CHANGE", amount="10.00",
                       memo="usage recount", idempotencyKey="cn-1")
    note = first["creditNote"]
    assert (note["sequenceId"], note["amount"], note["creditedFromDue"], note["creditedToWallet"], note["grantId"]) \
        == ("CN-000001", "10.00", "10.00", "0.00", None)
    assert (note["invoiceSequenceId"], note["invoiceStatus"], note["memo"], note["lines"]) == (
        "INV-000001", "DUE", "usage recount", [])
    # creditable: 79.00 - 10.00 = 69.00
    assert first["invoice"] == {
        "id": inv, "status": "DUE", "currency": "USD", "totalAmount": "79.00", "creditsApplied": "9.00",
        "creditNotesTotal": "10.00", "creditedFromDue": "10.00", "amountDue": "60.00", "creditableAmount": "69.00"}
    assert (first["walletBalance"], first["replayed"]) == ("0.00", False)
    shown = await call(client, "get_invoice", invoiceId=inv)
    assert (shown["totalAmount"], shown["amountDue"], shown["creditNotesTotal"]) == ("79.00", "60.00", "10.00")
    assert [(n["id"], n["amount"]) for n in shown["creditNotes"]] == [(note["id"], "10.00")]
    assert shown["lineItems"] == january["lineItems"] and adds_up(shown)  # the invoice itself is untouched
    assert (await call(client, "get_account", accountId="acme"))["financial"]["outstanding"] == "60.00"

    # 2. A retry with the same key returns the same note and writes nothing; other content is a conflict.
    before = await row_counts(db)
    again = await call(client, "create_credit_note", invoiceId=inv, reason="ORDER_CHANGE", amount="10",
                       memo="usage recount", idempotencyKey="cn-1")
    assert again["replayed"] is True and again["creditNote"] == note and again["invoice"]["amountDue"] == "60.00"
    error = await call_error(client, "create_credit_note", invoiceId=inv, reason="DUPLICATE", amount="11.00",
                             memo="usage recount", idempotencyKey="cn-1")
    assert f"idempotencyKey 'cn-1' was already used for credit note '{note['id']}'" in error
    assert "different reason, amount" in error
    after = await row_counts(db)
    assert after == before | {"audit_log": before["audit_log"] + 1}  # the replay is audited, nothing else

    # 3. A note by line, named by its rate card: the platform fee, 49.00 -> amountDue 60.00 - 49.00 = 11.00.
    second = await call(client, "create_credit_note", invoiceId=inv, reason="DUPLICATE",
                        lines=[{"rateCardName": "platform", "amount": "49.00"}], idempotencyKey="cn-2")
    assert second["creditNote"]["lines"] == [
        {"lineNumber": 2, "rateCardName": "platform", "description": "platform", "amount": "49.00",
         "creditsVoided": None}]  # not a line selling PREPAID credits
    # notes 10.00 + 49.00 = 59.00; creditable 79.00 - 59.00 = 20.00
    assert (second["invoice"]["amountDue"], second["invoice"]["creditNotesTotal"],
            second["invoice"]["creditableAmount"]) == ("11.00", "59.00", "20.00")

    # 4. Over-credit is refused, naming the field and the most that is left; nothing is written.
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=inv, reason="DUPLICATE",
                             lines=[{"lineNumber": 2, "amount": "0.01"}])
    # platform 49.00 - 49.00 credited = 0.00 left on that line
    assert "lines[0].amount: 0.01 is more than line 2 (platform) can still be credited" in error
    assert "its value is 49.00 and earlier credit notes credit 49.00 of it, so at most 0.00" in error
    error = await call_error(client, "create_credit_note", invoiceId=inv, reason="ORDER_CHANGE", amount="20.01")
    assert "amount: 20.01 is more than invoice" in error
    assert "its totalAmount is 79.00 and its credit notes already credit 59.00, so at most 20.00" in error
    # line 1 (tokens 30.00) has 30.00 left, but the invoice only 20.00
    error = await call_error(client, "create_credit_note", invoiceId=inv, reason="ORDER_CHANGE",
                             lines=[{"lineNumber": 1, "amount": "25.00"}])
    assert "lines: 25.00 is more than invoice" in error and "at most 20.00" in error
    assert "amount: 0.001 has more decimals than USD allows (2); send an amount such as 0.00" in await call_error(
        client, "create_credit_note", invoiceId=inv, reason="ORDER_CHANGE", amount="0.001")
    assert await row_counts(db) == before

    # 5. The last 20.00, on the tokens line: 11.00 still owed comes off amountDue (-> 0.00), and the other
    #    9.00 (what the wallet had paid) goes back to the wallet as a CREDIT_NOTE grant.
    third = await call(client, "create_credit_note", invoiceId=inv, reason="PRODUCT_UNSATISFACTORY",
                       lines=[{"lineNumber": 1, "amount": "20.00"}], idempotencyKey="cn-3")
    note3 = third["creditNote"]
    assert (note3["creditedFromDue"], note3["creditedToWallet"]) == ("11.00", "9.00") and note3["grantId"]
    # notes 10.00 + 49.00 + 20.00 = 79.00 = the total; what they took off: 10.00 + 49.00 + 11.00 = 70.00 =
    # 79.00 - 9.00 applied. The invoice stays DUE with nothing owed.
    assert third["invoice"] | {"id": None} == {
        "id": None, "status": "DUE", "currency": "USD", "totalAmount": "79.00", "creditsApplied": "9.00",
        "creditNotesTotal": "79.00", "creditedFromDue": "70.00", "amountDue": "0.00", "creditableAmount": "0.00"}
    assert third["walletBalance"] == "9.00"
    shown = await call(client, "get_invoice", invoiceId=inv)
    assert (shown["status"], shown["amountDue"], shown["creditNotesTotal"]) == ("DUE", "0.00", "79.00")
    assert [n["sequenceId"] for n in shown["creditNotes"]] == ["CN-000001", "CN-000002", "CN-000003"]
    assert adds_up(shown)
    listed = next(i for i in (await call(client, "list_invoices", accountId="acme"))["data"] if i["id"] == inv)
    assert {k: listed[k] for k in ("amountDue", "creditNotesTotal", "creditNotes")} == {
        k: shown[k] for k in ("amountDue", "creditNotesTotal", "creditNotes")}
    assert (await call(client, "get_account", accountId="acme"))["financial"]["outstanding"] == "0.00"

    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert wallet["balance"] == "9.00"
    [grant] = [g for g in wallet["grants"] if g["id"] == note3["grantId"]]
    assert (grant["source"], grant["grantorId"], grant["amount"], grant["remaining"], grant["effectiveUntil"]) == (
        "CREDIT_NOTE", note3["id"], "9.00", "9.00", None)
    ledger = await call(client, "list_wallet_entries", accountId="acme")
    # newest first: the note's GRANT +9.00; the prepaid's APPLICATION -9.00 and GRANT +9.00: 9 - 9 + 9 = 9.00
    assert [(e["kind"], e["amount"]) for e in ledger["data"]] == [
        ("GRANT", "9.00"), ("APPLICATION", "-9.00"), ("GRANT", "9.00")]
    assert ledger["data"][0]["grantId"] == note3["grantId"] and ledger["balance"] == "9.00"

    # 6. A credited invoice is not voided; the error says why and what is left to do.
    before = await row_counts(db)
    error = await call_error(client, "update_invoice_status", invoiceId=inv, status="VOID")
    assert f"invoice '{inv}' has credit notes (CN-000001 10.00, CN-000002 49.00, CN-000003 20.00)" in error
    assert "cannot be voided" in error and "credited in full already" in error
    assert await row_counts(db) == before
    assert (await call(client, "update_invoice_status", invoiceId=inv, status="PAID"))["status"] == "PAID"

    # 7. The audit log holds each call with its arguments and the ids it touched.
    records = (await call(client, "list_audit_log", tool="create_credit_note"))["data"]
    assert len(records) == 4  # three notes and the replay; refused calls leave no record
    assert records[0]["changedIds"] == [note3["id"], inv, note3["grantId"]]
    assert records[0]["arguments"]["lines"] == [{"lineNumber": 1, "amount": "20.00"}]
    assert records[-1]["arguments"] | {"amount": None} == {
        "invoiceId": inv, "reason": "ORDER_CHANGE", "amount": None, "memo": "usage recount", "lines": None,
        "idempotencyKey": "cn-1"}
    assert [r["id"] for r in (await call(client, "list_audit_log", entityId=note["id"]))["data"]] == [
        records[-2]["id"], records[-1]["id"]]  # the replay, then the note (newest first)


async def test_a_note_on_a_paid_invoice_credits_the_wallet_that_pays_the_next_invoice(client, clock):
    january = await january_due(client, clock)
    assert (january["totalAmount"], january["amountDue"]) == ("79.00", "79.00")  # 30.00 + 49.00, no credit
    await call(client, "update_invoice_status", invoiceId=january["id"], status="PAID")

    # The whole note goes to the wallet: a PAID invoice owes nothing more.
    result = await call(client, "create_credit_note", invoiceId=january["id"], reason="PRODUCT_UNSATISFACTORY",
                        amount="30.00", memo="outage on 12 January", idempotencyKey="outage")
    note = result["creditNote"]
    assert (note["invoiceStatus"], note["creditedFromDue"], note["creditedToWallet"]) == ("PAID", "0.00", "30.00")
    # amountDue keeps what was due and paid: 79.00 + 0.00 taken off = 79.00 - 0.00 applied
    assert (result["invoice"]["status"], result["invoice"]["amountDue"], result["invoice"]["creditableAmount"]) == (
        "PAID", "79.00", "49.00")  # 79.00 - 30.00
    assert result["walletBalance"] == "30.00"
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert (wallet["balance"], [(g["source"], g["grantorId"], g["remaining"]) for g in wallet["grants"]]) == (
        "30.00", [("CREDIT_NOTE", note["id"], "30.00")])
    grant = wallet["grants"][0]
    assert grant["purpose"] == "credit note CN-000001 on invoice INV-000001"
    entries = (await call(client, "list_wallet_entries", accountId="acme"))["data"]
    assert [(e["kind"], e["amount"], e["grantId"], e["at"]) for e in entries] == [
        ("GRANT", "30.00", note["grantId"], "2026-02-04T00:00:00Z")]

    # February: 1000 tokens × 0.01 = 10.00 + platform 49.00 = 59.00; DUE on 4 March, paid from the wallet
    # first: 30.00 applied, 59.00 - 30.00 = 29.00 due, and the wallet is empty.
    await tokens(client, "acme", "e2", "2026-02-10T00:00:00Z", 1000)
    clock.set(at(2026, 3, 4))
    february = await due_invoice(client, "acme")
    assert (february["totalAmount"], february["creditsApplied"], february["amountDue"]) == ("59.00", "30.00", "29.00")
    assert (february["creditNotesTotal"], february["creditNotes"]) == ("0.00", [])
    ledger = await call(client, "list_wallet_entries", accountId="acme")
    assert [(e["kind"], e["amount"], e["invoiceId"]) for e in ledger["data"]] == [
        ("APPLICATION", "-30.00", february["id"]), ("GRANT", "30.00", None)]
    assert ledger["balance"] == (await call(client, "get_wallet_balance", accountId="acme"))["balance"] == "0.00"
    # January still shows its note and adds up: 79.00 due and paid, 30.00 credited to the wallet
    shown = await call(client, "get_invoice", invoiceId=january["id"])
    assert (shown["status"], shown["amountDue"], shown["creditNotesTotal"]) == ("PAID", "79.00", "30.00")
    assert adds_up(shown)


async def test_draft_void_and_malformed_notes_are_refused_and_write_nothing(client, clock, db):
    clock.set(at(2026, 1, 15))
    await priced_account(client)
    await tokens(client, "acme", "e1", "2026-01-10T00:00:00Z", 3000)
    draft = await call(client, "get_invoice", accountId="acme")
    assert draft["status"] == "DRAFT" and (draft["creditNotesTotal"], draft["creditNotes"]) == ("0.00", [])
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=draft["id"], reason="ORDER_CHANGE", amount="1")
    assert f"invoiceId: invoice '{draft['id']}' is DRAFT" in error and "recomputed from usage" in error
    assert await row_counts(db) == before

    clock.set(at(2026, 2, 4))
    january = await due_invoice(client, "acme")
    inv = january["id"]
    before = await row_counts(db)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"amount": "1", "lines": [{"lineNumber": 1, "amount": "1"}]}, "amount: pass either amount"),
        ({}, "amount: pass either amount"),
        ({"amount": "0"}, "amount: must be greater than 0; got 0"),
        ({"amount": "-5"}, "amount: must be greater than 0; got -5"),
        ({"amount": "abc"}, "amount: 'abc' is not a decimal number"),
        ({"amount": "79.01"}, "amount: 79.01 is more than invoice"),
        ({"lines": [{"lineNumber": 3, "amount": "1"}]},
         f"lines[0].lineNumber: invoice '{inv}' has 2 lines, numbered 1 to 2 as get_invoice lists them (1: tokens; "
         "2: platform)"),
        ({"lines": [{"rateCardName": "seats", "amount": "1"}]},
         f"lines[0].rateCardName: invoice '{inv}' has no line for rate card 'seats'; use lineNumber"),
        ({"lines": [{"amount": "1"}]}, "lines[0]: give either lineNumber or rateCardName"),
        ({"lines": [{"lineNumber": 1, "rateCardName": "tokens", "amount": "1"}]},
         "lines[0]: give either lineNumber or rateCardName"),
        ({"lines": [{"lineNumber": 2, "amount": "1"}, {"rateCardName": "platform", "amount": "2"}]},
         "lines[1]: line 2 is already credited by an earlier entry of lines"),
        ({"lines": [{"lineNumber": 1, "amount": "30.01"}]},
         "lines[0].amount: 30.01 is more than line 1 (tokens: 3000 units) can still be credited"),
        ({"lines": [{"lineNumber": 1, "amount": "0.005"}]}, "lines[0].amount: 0.005 has more decimals than USD"),
        ({"lines": []}, "lines: List should have at least 1 item"),
        ({"amount": "1", "reason": "OTHER"}, "memo: reason OTHER needs a memo"),
        ({"amount": "1", "reason": "REFUND"}, "reason: Input should be 'DUPLICATE'"),
    ]
    for arguments, expected in cases:
        arguments = {"reason": "ORDER_CHANGE"} | arguments
        error = await call_error(client, "create_credit_note", invoiceId=inv, **arguments)
        assert expected in error, (arguments, error)
    assert "invoice 'inv_nope' does not exist; list_invoices" in await call_error(
        client, "create_credit_note", invoiceId="inv_nope", reason="DUPLICATE", amount="1")
    assert await row_counts(db) == before

    # OTHER with a memo is fine; a VOID invoice (voided before any note) is refused.
    other = await call(client, "create_credit_note", invoiceId=inv, reason="OTHER", memo="goodwill", amount="1.00")
    assert other["creditNote"]["reason"] == "OTHER" and other["invoice"]["amountDue"] == "78.00"  # 79.00 - 1.00
    await call(client, "update_invoice_status", invoiceId=inv, status="PAID")
    await tokens(client, "acme", "e2", "2026-02-10T00:00:00Z", 100)
    clock.set(at(2026, 3, 4))
    february = await due_invoice(client, "acme")
    await call(client, "update_invoice_status", invoiceId=february["id"], status="VOID")
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=february["id"], reason="DUPLICATE", amount="1")
    assert error.endswith(f"invoiceId: invoice '{february['id']}' is VOID: nothing is owed on it, so there is "
                          "nothing to credit")
    assert await row_counts(db) == before


async def test_a_void_is_refused_with_the_remedy_that_does_what_it_would(client, clock):
    inv = (await january_due(client, clock, amount="9.00"))["id"]  # 79.00, 9.00 applied, 70.00 due
    await call(client, "create_credit_note", invoiceId=inv, reason="DUPLICATE", amount="4.00")
    error = await call_error(client, "update_invoice_status", invoiceId=inv, status="VOID")
    # 79.00 - 4.00 = 75.00 left to credit
    assert f"create_credit_note(invoiceId='{inv}', amount=\"75.00\")" in error
    # Doing so settles as a void would: 70.00 - 4.00 = 66.00 owed comes off; the 9.00 the wallet paid returns.
    rest = await call(client, "create_credit_note", invoiceId=inv, reason="ORDER_CHANGE", amount="75.00")
    assert (rest["creditNote"]["creditedFromDue"], rest["creditNote"]["creditedToWallet"]) == ("66.00", "9.00")
    assert (rest["invoice"]["amountDue"], rest["walletBalance"]) == ("0.00", "9.00")


async def test_a_wallet_part_needs_the_wallet_in_the_invoice_currency(client, clock, db):
    inv = (await january_due(client, clock, currencies=("USD", "EUR")))["id"]  # USD 79.00 due
    await call(client, "update_account", accountId="acme", invoiceCurrency="EUR")  # no wallet entries yet
    # Taking 5.00 off what is owed needs no wallet.
    assert (await call(client, "create_credit_note", invoiceId=inv, reason="DUPLICATE", amount="5.00"))[
        "invoice"]["amountDue"] == "74.00"  # 79.00 - 5.00
    await call(client, "update_invoice_status", invoiceId=inv, status="PAID")
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=inv, reason="DUPLICATE", amount="5.00")
    assert "is in USD but account 'acme' keeps its wallet in EUR" in error
    assert await row_counts(db) == before


async def test_list_credit_notes_by_invoice_and_account_in_pages(client, clock):
    january, february = await january_and_february_due(client, clock, 3000)
    made = []
    for n, inv in enumerate([january, february, january]):
        made.append((await call(client, "create_credit_note", invoiceId=inv, reason="DUPLICATE",
                                amount=f"{n + 1}.00"))["creditNote"]["id"])
    first = await call(client, "list_credit_notes", accountId="acme", pageSize=2)
    assert [n["id"] for n in first["data"]] == [made[2], made[1]] and first["nextToken"]
    rest = await call(client, "list_credit_notes", accountId="acme", pageSize=2, nextToken=first["nextToken"])
    assert [n["id"] for n in rest["data"]] == [made[0]] and rest["nextToken"] is None
    by_invoice = await call(client, "list_credit_notes", invoiceId=january)
    assert [(n["id"], n["amount"]) for n in by_invoice["data"]] == [(made[2], "3.00"), (made[0], "1.00")]
    assert "nextToken" in await call_error(client, "list_credit_notes", invoiceId=january,
                                           nextToken=first["nextToken"])  # a token of another list
    assert "pass invoiceId (the notes of one invoice) or accountId" in await call_error(client, "list_credit_notes")
    assert "invoice 'inv_x' does not exist" in await call_error(client, "list_credit_notes", invoiceId="inv_x")
    assert "account 'nobody' does not exist" in await call_error(client, "list_credit_notes", accountId="nobody")


async def test_tool_annotations_and_scopes(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    create = tools["create_credit_note"]
    # idempotent only with an idempotencyKey, which is optional; it lowers what an invoice asks for
    assert (create.annotations.idempotent_hint, create.annotations.read_only_hint,
            create.annotations.destructive_hint) == (False, False, True)
    assert {"invoiceId", "reason"} <= set(create.input_schema["required"])
    assert "reuse" in create.description.lower() and "DRAFT" in create.description
    assert tools["list_credit_notes"].annotations.read_only_hint is True
    assert (SPECS["create_credit_note"].scope, SPECS["list_credit_notes"].scope) == ("billing:write", "billing:read")


async def test_the_wallet_balance_a_note_shows_counts_no_expired_credit(client, clock):
    """A note that takes everything off amountDue writes nothing to the wallet, yet the walletBalance it shows is
    the wallet's balance after it, as get_wallet_balance tells it: an expired grant's credit is not in it."""
    # the grant expired on 20 January, before January ended and before it became DUE: it pays nothing
    january = await january_due(client, clock, amount="5.00", effectiveUntil="2026-01-20T00:00:00Z")
    assert (january["totalAmount"], january["creditsApplied"], january["amountDue"]) == ("79.00", "0.00", "79.00")
    note = await call(client, "create_credit_note", invoiceId=january["id"], reason="DUPLICATE", amount="10.00",
                      idempotencyKey="k")
    assert (note["creditNote"]["creditedToWallet"], note["invoice"]["amountDue"]) == ("0.00", "69.00")  # 79 - 10
    # 5.00 granted - 5.00 expired on 20 January = 0.00
    assert note["walletBalance"] == "0.00"
    replay = await call(client, "create_credit_note", invoiceId=january["id"], reason="DUPLICATE", amount="10.00",
                        idempotencyKey="k")
    assert (replay["replayed"], replay["walletBalance"]) == (True, "0.00")
    assert (await call(client, "get_wallet_balance", accountId="acme"))["balance"] == "0.00"


async def test_a_discount_line_is_refused_saying_it_lowers_the_invoice(client, clock, db):
    """A pricing rule's negative line (a discount) has nothing to credit: the error says so and points at the other
    lines, instead of "at most -10.00"."""
    clock.set(at(2026, 1, 15))
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name="Promo", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "100"}]}],
        "usageRateCards": [{"name": "tokens", "usageMeterId": meter["id"], "ratePlan": {
            "pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.5"}]}]}]},
        pricingRules=[{"name": "promo", "order": 1, "computation": -10,
                       "action": {"type": "ADD", "description": "promo"}}])
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
    clock.set(at(2026, 2, 1))
    january = await due_invoice(client, "acme")
    # tokens 0.00, platform 100.00, promo -10.00: 100.00 - 10.00 = 90.00
    assert [(line["description"], line["value"]) for line in january["lineItems"]][1:] == [
        ("platform", "100.00"), ("promo", "-10.00")]
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=january["id"], reason="DUPLICATE",
                             lines=[{"lineNumber": 3, "amount": "1.00"}])
    assert error.endswith("lines[0].lineNumber: line 3 (promo) is -10.00, a discount that lowers the invoice: it has "
                          "nothing to credit; credit another line (2: platform) or the invoice by amount"), error
    assert await row_counts(db) == before
