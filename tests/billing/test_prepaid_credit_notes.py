"""Credit notes on a line that sold PREPAID credits take those credits back (policy: togai_engine/invoices/README.md,
"PREPAID credits"; Lago voids the wallet credits a credit note on a prepaid-credits invoice credits, and refuses one
for credits already consumed). Through the MCP tools and the application layer, with the clock moved; every amount
worked out by hand.

The plan (`bundle`): monthly from the 1st, no grace period; tokens at 1.00 each (card "tokens"), and a ONE_TIME
PREPAID card selling 1000 credits (USD, never expiring, priority 10) at 0.10 each: 1000 × 0.10 = 100.00, on the
advance invoice of the account's first period, whose only line (line 1) is that purchase.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from conftest import row_counts
from helpers import at, call, call_error, iso, tokens_meter
from test_scenarios import account, tiered
from togai_engine.app.invoices import create_credit_note, update_invoice_status
from togai_engine.billing.current import unclosed_periods
from togai_engine.errors import InvalidInput
from togai_engine.invoices import credit_notes
from togai_engine.invoices.credit_note_schemas import CreditNoteCreate, CreditNoteLineInput
from togai_engine.invoices.models import InvoiceLineRow, InvoiceRow
from togai_engine.invoices.sold_credits import credits_voided, most_creditable

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


def credits_card(rate: str = "0.1") -> dict[str, Any]:
    return {"id": "credits", "displayName": "Credits", "invoiceTiming": "PREPAID", "type": "ONE_TIME",
            "grantDetails": {"priority": 10, "expiryType": "NO_EXPIRY"},
            "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "1000", "slabDetails": [
                {"startAfter": 0, "priceType": "PER_UNIT", "rate": rate}]}]}}


def bundle_cards(meter: str, rate: str = "0.1") -> dict[str, Any]:
    return {"usageRateCards": [tiered(meter, ("0", "1")) | {"name": "tokens"}],
            "creditGrantRateCards": [credits_card(rate)]}


async def advance_invoice(client: Any, clock: Any) -> dict[str, Any]:
    """acme on the bundle from 1 January (the clock then); its advance invoice: 100.00 DUE for the 1000 credits."""
    clock.set(at(2026, 1, 1))
    plan = await call(client, "create_price_plan", name="Bundle", pricingCycleConfig=MONTHLY,
                      rateCards=bundle_cards(await tokens_meter(client)))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    assert (advance["status"], advance["totalAmount"], advance["amountDue"]) == ("DUE", "100.00", "100.00")
    return advance


async def wallet(client: Any) -> tuple[str, list[tuple[str, str, str | None]], D]:
    """The balance, the ledger's (kind, amount, creditNoteId) oldest first, and the ledger's sum."""
    ledger = await call(client, "list_wallet_entries", accountId="acme", pageSize=100)
    entries = list(reversed(ledger["data"]))
    assert ledger["balance"] == (await call(client, "get_wallet_balance", accountId="acme"))["balance"]
    return (ledger["balance"], [(e["kind"], e["amount"], e["creditNoteId"]) for e in entries],
            sum((D(e["amount"]) for e in entries), D(0)))


async def prepaid_grant(client: Any) -> dict[str, Any]:
    [grant] = [g for g in (await call(client, "get_wallet_balance", accountId="acme"))["grants"]
               if g["source"] == "RATE_CARD"] or [None]
    return grant


async def first_line(session: Any, invoice: InvoiceRow) -> int:
    """The position of the invoice's first top-level line (get_invoice's line 1)."""
    return int(await session.scalar(select(InvoiceLineRow.position).where(
        InvoiceLineRow.invoice_id == invoice.id, InvoiceLineRow.parent_position.is_(None))
        .order_by(InvoiceLineRow.position).limit(1)))


async def purchase_room(db: Any, invoice_id: str, now: Any) -> tuple[int, D]:
    """credit_notes.line_room of the invoice's first line (its purchase line): (its number, the most still creditable)."""
    async with db.unit_of_work() as session:
        invoice = await session.get(InvoiceRow, invoice_id)
        assert invoice is not None
        room = await credit_notes.line_room(session, invoice, await first_line(session, invoice), now=now,
                                            unclosed=unclosed_periods)
        return room.number, room.room


def note_on_line_1(amount: str, key: str) -> dict[str, Any]:
    return {"reason": "PRODUCT_UNSATISFACTORY", "lines": [{"lineNumber": 1, "amount": amount}], "idempotencyKey": key}


async def test_a_note_on_paid_credits_voids_their_share_and_only_while_unused(client, clock, db) -> None:
    advance = await advance_invoice(client, clock)
    clock.set(at(2026, 1, 2))
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    assert (await wallet(client))[0] == "1000.00"
    await call(client, "ingest_event", event={"id": "e1", "schemaName": "llm", "accountId": "acme",
                                              "timestamp": "2026-01-10T00:00:00Z", "attributes": {"tokens": "300"}})
    clock.set(at(2026, 2, 1))
    # January is DUE: 300 tokens × 1.00 = 300.00, paid by 300.00 of the credits; 1000.00 - 300.00 = 700.00 unused
    [january] = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    assert (january["totalAmount"], january["creditsApplied"], january["amountDue"]) == ("300.00", "300.00", "0.00")
    assert (await prepaid_grant(client))["remaining"] == "700.00"

    # 5 February: half the purchase is credited, 50.00 of the line's 100.00: 50.00 / 100.00 × 1000.00 = 500.00 credits
    # are voided; the invoice was PAID, so the 50.00 goes to the wallet as a CREDIT_NOTE grant
    clock.set(at(2026, 2, 5))
    first = await call(client, "create_credit_note", invoiceId=advance["id"], **note_on_line_1("50.00", "cn-1"))
    note = first["creditNote"]
    assert [(line["amount"], line["creditsVoided"]) for line in note["lines"]] == [("50.00", "500.00")]
    assert (note["creditedFromDue"], note["creditedToWallet"]) == ("0.00", "50.00")
    # the credits: 1000.00 - 300.00 used - 500.00 voided = 200.00; the balance: 200.00 + the note's 50.00 = 250.00
    assert (await prepaid_grant(client))["remaining"] == "200.00"
    balance, entries, ledger_sum = await wallet(client)
    assert first["walletBalance"] == balance == "250.00" and ledger_sum == D("250.00")
    assert entries == [("GRANT", "1000.00", None), ("APPLICATION", "-300.00", None), ("GRANT", "50.00", None),
                       ("VOID", "-500.00", note["id"])]

    # 30.00 more would take back 80.00 / 100.00 × 1000.00 = 800.00 in all, 800.00 - 500.00 = 300.00 more, but only
    # 200.00 are unused: at most 20.00 (70.00 / 100.00 × 1000.00 = 700.00 = 500.00 + 200.00). Nothing is written.
    before = await row_counts(db)
    error = await call_error(client, "create_credit_note", invoiceId=advance["id"], **note_on_line_1("30.00", "cn-2"))
    assert "lines[0].amount: 30.00 is more than line 1 (Credits: 1000 credits" in error and (
        "it sold 1000.00 credits for 100.00, and crediting 30.00 of it (after the 50.00 earlier notes credited) "
        "takes back 300.00 credits, but only 200.00 of the 1000.00 credits it granted") in error
    assert "are unused: the rest paid invoices or expired" in error and error.endswith("so at most 20.00")
    # a note by amount cannot say how much of the purchase it credits: it names the lines while 50.00 is left
    error = await call_error(client, "create_credit_note", invoiceId=advance["id"], reason="OTHER", memo="refund",
                             amount="10.00")
    assert f"amount: invoice '{advance['id']}' sold PREPAID credits (line 1 (Credits: 1000 credits" in error
    assert "up to 50.00), so a credit note on it names the lines it credits" in error
    assert await row_counts(db) == before

    # the most that is left: 20.00 voids the last 200.00 unused credits; 250.00 - 200.00 + 20.00 = 70.00
    last = await call(client, "create_credit_note", invoiceId=advance["id"], **note_on_line_1("20.00", "cn-3"))
    assert [line["creditsVoided"] for line in last["creditNote"]["lines"]] == ["200.00"]
    assert await prepaid_grant(client) is None  # consumed: nothing left to list
    balance, entries, ledger_sum = await wallet(client)
    assert balance == last["walletBalance"] == "70.00" and ledger_sum == D("70.00")
    assert entries[-2:] == [("GRANT", "20.00", None), ("VOID", "-200.00", last["creditNote"]["id"])]
    # 30.00 of the line is still creditable as money, but its credits are all used: even 0.01 would take back
    # 0.01 / 100.00 × 1000.00 = 0.10 credits
    error = await call_error(client, "create_credit_note", invoiceId=advance["id"], **note_on_line_1("0.01", "cn-4"))
    assert "takes back 0.10 credits, but only 0.00 of the 1000.00 credits" in error and error.endswith("at most 0.00")

    # voided credits pay nothing: February's 100 tokens × 1.00 = 100.00 are paid by the notes' 50.00 + 20.00 only
    await call(client, "ingest_event", event={"id": "e2", "schemaName": "llm", "accountId": "acme",
                                              "timestamp": "2026-02-10T00:00:00Z", "attributes": {"tokens": "100"}})
    clock.set(at(2026, 3, 1))
    february = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"][0]
    assert (february["totalAmount"], february["creditsApplied"], february["amountDue"]) == ("100.00", "70.00", "30.00")
    assert (await wallet(client))[0] == "0.00"


async def test_a_note_before_the_invoice_is_paid_withholds_its_share_of_the_grant(client, clock) -> None:
    advance = await advance_invoice(client, clock)
    clock.set(at(2026, 1, 3))
    # DUE: 40.00 of the 100.00 comes off what is owed (100.00 - 40.00 = 60.00 due); nothing is granted yet, and the
    # note takes back 40.00 / 100.00 × 1000.00 = 400.00 of the credits its PAID will grant
    first = await call(client, "create_credit_note", invoiceId=advance["id"], **note_on_line_1("40.00", "cn-1"))
    assert (first["creditNote"]["creditedFromDue"], first["invoice"]["amountDue"]) == ("40.00", "60.00")
    assert [line["creditsVoided"] for line in first["creditNote"]["lines"]] == ["400.00"]
    assert (await wallet(client))[0] == "0.00"

    clock.set(at(2026, 1, 4))
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    # PAID grants 1000.00 - 400.00 = 600.00: the credited credits are never granted, so nothing is voided
    grant = await prepaid_grant(client)
    assert (grant["amount"], grant["remaining"]) == ("600.00", "600.00")
    assert grant["purpose"] == ("Credits (600.00 of 1000.00 credits: credit notes credited 40.00 of the 100.00 paid "
                                "for them before it was paid)")
    assert (await wallet(client))[:2] == ("600.00", [("GRANT", "600.00", None)])
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")  # a retry grants nothing
    assert (await wallet(client))[0] == "600.00"

    # the rest of the line after PAID, 60.00: 100.00 / 100.00 × 1000.00 = 1000.00 taken back in all, 1000.00 -
    # 400.00 = 600.00 of them now, the whole grant; the 60.00 goes to the wallet
    rest = await call(client, "create_credit_note", invoiceId=advance["id"], **note_on_line_1("60.00", "cn-2"))
    assert [line["creditsVoided"] for line in rest["creditNote"]["lines"]] == ["600.00"]
    balance, entries, ledger_sum = await wallet(client)
    assert balance == rest["walletBalance"] == "60.00" and ledger_sum == D("60.00")  # 600.00 - 600.00 + 60.00
    assert entries == [("GRANT", "600.00", None), ("GRANT", "60.00", None),
                       ("VOID", "-600.00", rest["creditNote"]["id"])]


async def test_a_full_credit_of_an_unused_paid_purchase_voids_every_credit(client, clock, db) -> None:
    """Through the application layer (as the tools call it): PAID, then the whole line credited."""
    advance = await advance_invoice(client, clock)
    clock.set(at(2026, 1, 2))
    async with db.unit_of_work() as session:
        await update_invoice_status(session, advance["id"], "PAID", clock.now())
    assert await purchase_room(db, advance["id"], clock.now()) == (1, D("100.00"))  # nothing used: the whole line

    before = await row_counts(db)
    over = CreditNoteCreate(invoiceId=advance["id"], reason="DUPLICATE",
                            lines=[CreditNoteLineInput(lineNumber=1, amount=D("100.01"))])
    with pytest.raises(InvalidInput) as refused:
        async with db.unit_of_work() as session:
            await create_credit_note(session, over, clock.now())
    assert refused.value.field == "lines[0].amount" and refused.value.reason.endswith("so at most 100.00")
    assert await row_counts(db) == before

    whole = CreditNoteCreate(invoiceId=advance["id"], reason="DUPLICATE",
                             lines=[CreditNoteLineInput(lineNumber=1, amount=D("100.00"))], idempotencyKey="all")
    async with db.unit_of_work() as session:
        result = await create_credit_note(session, whole, clock.now())
    # 100.00 / 100.00 × 1000.00 = 1000.00: every credit sold; the balance is the note's 100.00 alone
    assert [line.creditsVoided for line in result.creditNote.lines] == [D("1000.00")]
    assert result.walletBalance == D("100.00")
    balance, entries, ledger_sum = await wallet(client)
    assert (balance, ledger_sum) == ("100.00", D("100.00"))
    assert entries == [("GRANT", "1000.00", None), ("GRANT", "100.00", None),
                       ("VOID", "-1000.00", result.creditNote.id)]
    assert await purchase_room(db, advance["id"], clock.now()) == (1, D("0.00"))


async def test_a_purchase_credited_in_full_before_it_is_paid_grants_nothing(client, clock, db) -> None:
    advance = await advance_invoice(client, clock)
    async with db.unit_of_work() as session:
        note = await create_credit_note(session, CreditNoteCreate(
            invoiceId=advance["id"], reason="ORDER_CHANGE", memo="not wanted",
            lines=[CreditNoteLineInput(rateCardName="credits", amount=D("100.00"))]), clock.now())
    # 100.00 off what was due: 0.00 owed; all 1000.00 credits withheld
    assert (note.invoice.amountDue, note.creditNote.lines[0].creditsVoided) == (D("0.00"), D("1000.00"))
    async with db.unit_of_work() as session:
        await update_invoice_status(session, advance["id"], "PAID", clock.now())
    assert (await wallet(client))[:2] == ("0.00", [])
    # fully credited: a note by amount is no longer ambiguous, but there is nothing left to credit
    error = await call_error(client, "create_credit_note", invoiceId=advance["id"], reason="DUPLICATE",
                             amount="0.01")
    assert "amount: 0.01 is more than invoice" in error and "so at most 0.00" in error


async def test_a_replaced_advance_invoice_voids_its_credits_and_the_new_sale_grants_when_paid(client, clock) -> None:
    """A version moved in place credits the old advance invoice whole and sells the same card and cycle again."""
    advance = await advance_invoice(client, clock)
    clock.set(at(2026, 1, 2))
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")  # 1000.00 granted
    clock.set(at(2026, 1, 5))
    [plan] = (await call(client, "list_price_plans"))["data"]
    meter = (await call(client, "list_usage_meters"))["data"][0]["id"]
    await call(client, "update_price_plan", pricePlanId=plan["id"], rateCards=bundle_cards(meter, rate="0.08"))
    await call(client, "finalize_price_plan", pricePlanId=plan["id"], migrationMode="START_OF_CURRENT_CYCLE")
    # the old sale is credited whole (100.00 to the wallet) and its 1000.00 unused credits voided; the new version's
    # advance invoice sells them again, 1000 × 0.08 = 80.00, dated 1 January: the note's credit, granted on
    # 5 January, did not exist then and does not pay it
    [note] = (await call(client, "list_credit_notes", invoiceId=advance["id"]))["data"]
    assert (note["amount"], [line["creditsVoided"] for line in note["lines"]]) == ("100.00", ["1000.00"])
    [again] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
               if i["invoiceType"] == "STANDARD_ADVANCED" and i["id"] != advance["id"]]
    assert (again["totalAmount"], again["creditsApplied"], again["amountDue"]) == ("80.00", "0.00", "80.00")
    assert (await wallet(client))[0] == "100.00"  # 1000.00 - 1000.00 voided + 100.00
    # the same card and cycle, sold again: once paid it grants (one grant per sale), 100.00 + 1000.00 = 1100.00
    await call(client, "update_invoice_status", invoiceId=again["id"], status="PAID")
    balance, entries, ledger_sum = await wallet(client)
    assert (balance, ledger_sum) == ("1100.00", D("1100.00"))
    assert entries == [("GRANT", "1000.00", None), ("GRANT", "100.00", None), ("VOID", "-1000.00", note["id"]),
                       ("GRANT", "1000.00", None)]


# --- the arithmetic on its own -------------------------------------------------------------------------------------


def test_notes_take_back_the_share_of_what_they_credited_rounded_once_per_total() -> None:
    # 1000.00 credits for 3.00: three notes of 1.00 take 333.33 (333.333.. rounded), 333.34 (666.666.. -> 666.67,
    # less 333.33) and 333.33 (1000.00 - 666.67): every credit sold, none twice
    takes = [credits_voided(D("1000"), D("3.00"), D(n), D("1.00"), "USD") for n in (0, 1, 2)]
    assert takes == [D("333.33"), D("333.34"), D("333.33")] and sum(takes) == D("1000.00")
    # JPY has no minor unit: 1000 credits for 7 yen, 3 yen credited: 428.57.. -> 429
    assert credits_voided(D("1000"), D("7"), D(0), D("3"), "JPY") == D("429")
    # with 200.00 unused after 50.00 of 100.00 credited (500.00 taken): at most 20.00 more (700.00 in all)
    assert most_creditable(D("1000"), D("100.00"), D("50.00"), D("200.00"), "USD") == D("20.00")
    # 1 credit for 100.00: 0.49 credits 0.0049 -> 0.00 credits, 0.50 credits 0.005 -> 0.01: nothing unused allows 0.49
    assert most_creditable(D("1"), D("100.00"), D(0), D(0), "USD") == D("0.49")


@given(sold=st.integers(1, 10**7), value=st.integers(1, 10**6), cuts=st.lists(st.integers(1, 10**6), max_size=6),
       unused=st.integers(0, 10**7))
def test_the_takes_add_up_and_the_most_creditable_is_the_most(sold: int, value: int, cuts: list[int],
                                                               unused: int) -> None:
    sold_d, value_d, cent = D(sold) / 100, D(value) / 100, D("0.01")
    credited, taken = D(0), D(0)
    for cut in cuts:
        part = min(D(cut) / 100, value_d - credited)
        if part <= 0:
            break
        taken += credits_voided(sold_d, value_d, credited, part, "USD")
        credited += part
    # the notes together take back the share of their total, rounded once; the whole line takes back all
    assert taken == (credits_voided(sold_d, value_d, D(0), credited, "USD") if credited else 0)
    assert credits_voided(sold_d, value_d, D(0), value_d, "USD") == sold_d
    unused_d = D(unused) / 100
    most = most_creditable(sold_d, value_d, credited, unused_d, "USD")
    assert most >= 0 and (most == 0 or credits_voided(sold_d, value_d, credited, most, "USD") <= unused_d)
    assert credits_voided(sold_d, value_d, credited, most + cent, "USD") > unused_d


async def test_a_note_on_two_purchase_lines_voids_each_share_from_its_own_grant(client, clock) -> None:
    """Two PREPAID cards on one advance invoice: 1000 credits at 0.10 (100.00) and 500 "Bonus" credits at 0.20
    (100.00). One note credits both lines; each line's share is voided from the grant its own sale issued."""
    clock.set(at(2026, 1, 1))
    bonus = credits_card("0.2") | {"id": "bonus", "displayName": "Bonus"}
    bonus["rateDetails"]["currencySlabRateDetails"][0]["creditAmount"] = "500"
    cards = bundle_cards(await tokens_meter(client))
    cards["creditGrantRateCards"].append(bonus)
    plan = await call(client, "create_price_plan", name="Bundle", pricingCycleConfig=MONTHLY, rateCards=cards)
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    assert advance["totalAmount"] == "200.00"  # 1000 × 0.10 + 500 × 0.20
    clock.set(at(2026, 1, 2))
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    assert (await wallet(client))[0] == "1500.00"

    # credits: 50.00 / 100.00 × 1000.00 = 500.00; bonus: 25.00 / 100.00 × 500.00 = 125.00
    clock.set(at(2026, 1, 3))
    result = await call(client, "create_credit_note", invoiceId=advance["id"], reason="ORDER_CHANGE", lines=[
        {"rateCardName": "credits", "amount": "50.00"}, {"rateCardName": "bonus", "amount": "25.00"}])
    note = result["creditNote"]
    assert [(line["rateCardName"], line["creditsVoided"]) for line in note["lines"]] == [
        ("credits", "500.00"), ("bonus", "125.00")]
    grants = {g["purpose"]: g["remaining"] for g in (await call(client, "get_wallet_balance", accountId="acme"))["grants"]
              if g["source"] == "RATE_CARD"}
    assert grants == {"Credits": "500.00", "Bonus": "375.00"}  # 1000.00 - 500.00, 500.00 - 125.00
    balance, entries, ledger_sum = await wallet(client)
    # 1500.00 - 625.00 voided + the note's 75.00 = 950.00
    assert balance == result["walletBalance"] == "950.00" and ledger_sum == D("950.00")
    assert sorted(e for e in entries if e[0] == "VOID") == [("VOID", "-125.00", note["id"]),
                                                            ("VOID", "-500.00", note["id"])]


async def test_a_paid_note_that_voids_credits_settles_the_wallet_once(client, clock, db) -> None:
    """A note on a PAID purchase line both voids credits and credits the wallet; it records the wallet's expiries
    (reading the account's schedule, for the grants it holds) once, not once to find the unused credits and again to
    credit the wallet."""
    advance = await advance_invoice(client, clock)
    clock.set(at(2026, 1, 2))
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    # 5.00 of credit expiring on 10 January, not recorded as expired until the wallet is next settled
    await call(client, "grant_credit", accountId="acme", amount="5.00", effectiveUntil="2026-01-10T00:00:00Z")
    clock.set(at(2026, 1, 20))
    reads = []

    async def counted(session: Any, account_id: str, now: Any) -> list[Any]:
        reads.append(now)
        return await unclosed_periods(session, account_id, now)

    async with db.unit_of_work() as session:
        result = await credit_notes.create_credit_note(session, CreditNoteCreate(
            invoiceId=advance["id"], reason="ORDER_CHANGE",
            lines=[CreditNoteLineInput(lineNumber=1, amount=D("10.00"))]), clock.now(), unclosed=counted)
    assert reads == [clock.now()]
    # 10.00 / 100.00 × 1000.00 = 100.00 credits voided; 1000.00 - 100.00 + the note's 10.00 (+ 5.00 - 5.00 expired)
    assert [line.creditsVoided for line in result.creditNote.lines] == [D("100.00")]
    assert result.walletBalance == D((await wallet(client))[0]) == D("910.00")
