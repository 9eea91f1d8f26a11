"""Late usage (billing/README.md): a plan's `lateUsage` says what becomes of usage that arrives after its
period's invoice is DUE. IGNORE (the default) stores it NOT_BILLED_CYCLE_CLOSED; BILL_ON_NEXT_INVOICE bills
it on the account's next invoice, one line per late period, charging what that period's invoice would have
grown by. Through the MCP tools and `bill --as-of` (run_bill); every amount worked out by hand."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

from sqlalchemy import text

from helpers import (
    at,
    backend_pid,
    break_stored_deal,
    call,
    call_error,
    iso,
    tokens_meter,
    void_refused_after_its_invoice_was_voided,
    wait_until_lock_waiting,
)
from test_revenue import metric
from test_scenarios import account, fee, invoices, tiered, usage
from togai_engine.accounts.service import get_row
from togai_engine.billing.close import close_due_cycles
from togai_engine.billing.runs import run_bill
from togai_engine.events.service import ingest_event

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


async def tiered_plan(client: Any, name: str, late_usage: str | None = None) -> str:
    """31.00 a month; tokens 0.01 each up to 10,000, 0.005 above."""
    extra = {"lateUsage": late_usage} if late_usage else {}
    created = await call(client, "create_price_plan", name=name, pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [tiered(await tokens_meter(client), ("0", "0.01"), ("10000", "0.005"))],
        "fixedFeeRateCards": [fee("base", "31", prorate=False)]}, **extra)
    assert created["lateUsage"] == (late_usage or "IGNORE")
    return str(created["id"])


def late_lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in invoice["lineItems"] if line["type"] == "LATE_USAGE_AMOUNT"]


async def january_billed(client: Any, db: Any, tokens: str | None = None) -> str:
    """acme on a BILL_ON_NEXT_INVOICE "Pro" from 1 January, with `tokens` used on 10 January, and January
    closed (DUE) by a bill run on 1 February. -> the plan id."""
    plan = await tiered_plan(client, "Pro", "BILL_ON_NEXT_INVOICE")
    await account(client, "acme", plan, iso(2026, 1, 1))
    if tokens is not None:
        await usage(client, "acme", "2026-01-10T00:00:00Z", tokens, "jan-1")
    await run_bill(db, at(2026, 2, 1))
    return plan


async def test_late_usage_is_billed_on_the_next_invoice_at_the_price_the_period_would_have_had(
        client, clock, db) -> None:
    await january_billed(client, db, "9000")
    (january,) = await invoices(client, "acme", status="DUE")
    assert january["totalAmount"] == "121.00"  # 9000 × 0.01 = 90.00 + 31.00

    clock.set(at(2026, 2, 3))
    late = await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "jan-late-1")
    assert late["status"] == "ACCEPTED_LATE" and "next invoice" in late["message"]
    # January again, with 12,000 tokens: 10,000 × 0.01 + 2,000 × 0.005 = 110.00, + 31.00 = 141.00;
    # 141.00 - 121.00 invoiced = 20.00 (the late 3,000 tokens fall partly in the cheaper tier, not 30.00)
    draft = await call(client, "get_invoice", accountId="acme")
    (line,) = late_lines(draft)
    assert (line["value"], draft["totalAmount"]) == ("20.00", "51.00")  # February: 31.00 + 20.00
    assert line["description"].startswith(
        "Usage of period 2026-01-01 – 2026-02-01 received after it closed (invoice INV-000001): 1 event")
    assert line["usagePeriod"] == {"start": iso(2026, 1, 1), "end": iso(2026, 2, 1)}
    assert (line["details"]["sourceInvoiceId"], line["details"]["eventIds"]) == (january["id"], ["jan-late-1"])
    tokens = await tokens_meter(client)
    assert line["details"]["quantities"] == {tokens: {"onInvoice": "9000", "now": "12000"}}
    # The closed January invoice never changes.
    assert (await call(client, "get_invoice", invoiceId=january["id"]))["totalAmount"] == "121.00"

    await run_bill(db, at(2026, 3, 1))
    february = next(i for i in await invoices(client, "acme", status="DUE") if i["startDate"] == iso(2026, 2, 1))
    february = await call(client, "get_invoice", invoiceId=february["id"])
    assert february["totalAmount"] == "51.00" and late_lines(february)[0]["value"] == "20.00"
    # REVENUE over February is the whole invoice: the fee and the late line (under "late_usage") = 51.00
    assert await metric(client, "REVENUE", at(2026, 2, 1), at(2026, 3, 1), "MONTH", "acme") == {
        tokens: [D("0.00")], "base": [D("31.00")], "late_usage": [D("20.00")]}

    # Later still: 1,000 more January tokens, and 500 February tokens, both after their invoices closed.
    clock.set(at(2026, 3, 2))
    await usage(client, "acme", "2026-01-25T00:00:00Z", "1000", "jan-late-2")
    await usage(client, "acme", "2026-02-10T00:00:00Z", "500", "feb-late-1")
    await run_bill(db, at(2026, 4, 1))
    march = next(i for i in await invoices(client, "acme", status="DUE") if i["startDate"] == iso(2026, 3, 1))
    march = await call(client, "get_invoice", invoiceId=march["id"])
    # January with 13,000 tokens: 100.00 + 3,000 × 0.005 = 115.00, + 31.00 = 146.00; invoiced so far
    # 121.00 + 20.00 = 141.00 -> 5.00. February on its own: 500 × 0.01 = 5.00 + 31.00 = 36.00; it was
    # invoiced 51.00 of which 20.00 was January's late line, so 31.00 -> 5.00. March: 31.00 + 5.00 + 5.00.
    assert [(line["details"]["sourceInvoiceId"], line["value"]) for line in late_lines(march)] == [
        (january["id"], "5.00"), (february["id"], "5.00")]
    assert march["totalAmount"] == "41.00"
    # Each late event was billed once: nothing is waiting for April.
    april = await call(client, "get_invoice", accountId="acme")
    assert late_lines(april) == [] and april["totalAmount"] == "31.00"


async def test_a_plan_that_ignores_late_usage_keeps_it_stored_and_unbilled(client, clock, db) -> None:
    plan = await tiered_plan(client, "Pro")  # lateUsage defaults to IGNORE
    await account(client, "acme", plan, iso(2026, 1, 1))
    await run_bill(db, at(2026, 2, 1))
    clock.set(at(2026, 2, 3))
    late = await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "jan-late-1")
    assert late["status"] == "NOT_BILLED_CYCLE_CLOSED"
    draft = await call(client, "get_invoice", accountId="acme")
    assert late_lines(draft) == [] and draft["totalAmount"] == "31.00"


async def test_a_late_correction_never_lowers_an_invoiced_period_by_itself(client, clock, db) -> None:
    await january_billed(client, db, "5000")  # January: 5000 × 0.01 = 50.00 + 31.00 = 81.00
    clock.set(at(2026, 2, 3))
    correction = await usage(client, "acme", "2026-01-11T00:00:00Z", "-2000", "jan-fix")
    assert correction["status"] == "ACCEPTED_LATE"
    # January would now be 3000 × 0.01 = 30.00 + 31.00 = 61.00: 20.00 less than invoiced. Money already
    # invoiced is lowered only by a credit note: the line is 0.00 and says which invoice to credit.
    (line,) = late_lines(await call(client, "get_invoice", accountId="acme"))
    assert line["value"] == "0.00" and line["details"]["difference"] == "-20.00"
    assert "lowers that period's charge by 20.00 USD" in line["description"]
    assert "create_credit_note against INV-000001" in line["description"]


async def test_one_bill_run_over_several_months_bills_late_usage_on_the_first_invoice_it_closes(
        client, clock, db) -> None:
    await january_billed(client, db)
    clock.set(at(2026, 2, 3))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "100", "jan-late-1")
    await run_bill(db, at(2026, 4, 1))  # February and March close in one run
    due = {i["startDate"]: i["totalAmount"] for i in await invoices(client, "acme", status="DUE")}
    # 100 × 0.01 = 1.00 on February (31.00 + 1.00), none on March
    assert due == {iso(2026, 1, 1): "31.00", iso(2026, 2, 1): "32.00", iso(2026, 3, 1): "31.00"}


async def test_the_late_periods_plan_decides_whether_its_late_usage_is_billed(
        client, clock, db) -> None:
    # The late period's plan decides: January on a BILL_ON_NEXT_INVOICE plan, February on an IGNORE one.
    billing = await tiered_plan(client, "Bills late", "BILL_ON_NEXT_INVOICE")
    ignoring = await tiered_plan(client, "Ignores late")
    await account(client, "acme", billing, iso(2026, 1, 1))
    await call(client, "update_account", accountId="acme", pricePlanId=ignoring, effectiveFrom=iso(2026, 2, 1))
    await run_bill(db, at(2026, 3, 1))
    clock.set(at(2026, 3, 2))
    january = await usage(client, "acme", "2026-01-20T00:00:00Z", "100", "jan-late")
    february = await usage(client, "acme", "2026-02-20T00:00:00Z", "100", "feb-late")
    assert (january["status"], february["status"]) == ("ACCEPTED_LATE", "NOT_BILLED_CYCLE_CLOSED")
    (line,) = late_lines(await call(client, "get_invoice", accountId="acme"))
    assert line["value"] == "1.00"  # 100 × 0.01 for January, on March's invoice (under the IGNORE plan)


async def test_late_usage_that_cannot_be_priced_waits_and_stops_nothing_else(client, clock, db) -> None:
    plan = await tiered_plan(client, "Pro", "BILL_ON_NEXT_INVOICE")
    await account(client, "bad", plan, iso(2026, 1, 1))
    await account(client, "good", plan, iso(2026, 1, 1))
    await run_bill(db, at(2026, 2, 1))
    clock.set(at(2026, 2, 3))
    await usage(client, "bad", "2026-01-20T00:00:00Z", "100", "bad-late")
    await usage(client, "good", "2026-01-20T00:00:00Z", "100", "good-late")
    # Data no policy covers: bad's January invoice says EUR, which its plan does not price.
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE invoices SET currency = 'EUR' WHERE account_id = 'bad' "
                                   "AND status = 'DUE'"))

    drafts = {i["accountId"]: i for i in (await call(client, "list_invoices", status="DRAFT"))["data"]}
    assert (drafts["good"]["totalAmount"], drafts["good"]["problem"]) == ("32.00", None)  # 31.00 + 100 × 0.01
    # bad's own February still reads (31.00); the late usage it cannot price is named, not billed
    assert drafts["bad"]["totalAmount"] == "31.00" and "does not support EUR" in drafts["bad"]["problem"]
    # get_account shows it owed and unpriced, on February's DRAFT when it can be priced
    pending = (await call(client, "get_account", accountId="bad"))["financial"]["pendingLateUsage"]
    assert ([(p["eventCount"], p["amount"]) for p in pending["periods"]], pending["total"], pending["billedOn"]) == (
        [(1, None)], None, drafts["bad"]["id"])
    assert pending["problem"].startswith("it cannot be priced, so no invoice bills it yet (it stays pending): ")
    assert "does not support EUR" in pending["problem"]
    summary = await run_bill(db, at(2026, 3, 1))
    assert [(f.accountId, f.reason.startswith("late usage not billed, it stays pending")) for f in summary.failed] \
        == [("bad", True)]
    february = {i["accountId"]: i["totalAmount"] for account_id in ("bad", "good")
                for i in await invoices(client, account_id, status="DUE") if i["startDate"] == iso(2026, 2, 1)}
    assert february == {"bad": "31.00", "good": "32.00"}
    async with db.unit_of_work() as session:
        pending = await session.scalar(text("SELECT count(*) FROM late_usage_events WHERE invoice_id IS NULL"))
    assert pending == 1  # bad's, for its next invoice once January can be priced again


async def test_an_ended_plan_taken_up_again_bills_only_the_late_usage(client, clock, db) -> None:
    plan = await tiered_plan(client, "Pro", "BILL_ON_NEXT_INVOICE")  # 31.00 a month, no proration
    await account(client, "acme", plan, iso(2026, 1, 1))
    clock.set(at(2026, 2, 10))
    await call(client, "update_account", accountId="acme", effectiveUntil=iso(2026, 2, 15))
    await run_bill(db, at(2026, 2, 15))  # [1 Feb, 15 Feb) closes cut short: 31 × 14/28 = 15.50
    clock.set(at(2026, 2, 16))
    await call(client, "update_account", accountId="acme", pricePlanId=plan, effectiveFrom=iso(2026, 2, 15))
    late = await usage(client, "acme", "2026-02-10T00:00:00Z", "100", "feb-late")
    assert late["status"] == "ACCEPTED_LATE"
    draft = await call(client, "get_invoice", accountId="acme")
    (line,) = late_lines(draft)
    # The late 100 tokens × 0.01 = 1.00, nothing else; the plan starts again at 15 Feb, cut the same way:
    # 31 × 14/28 = 15.50 (the first half was billed as cut short, so February is 15.50 + 15.50 = 31.00)
    assert (line["value"], draft["startDate"], draft["totalAmount"]) == ("1.00", iso(2026, 2, 15), "16.50")


async def test_corrections_left_to_credit_notes_are_not_asked_for_twice(client, clock, db) -> None:
    await january_billed(client, db, "5000")  # January: 50.00 + 31.00 = 81.00
    clock.set(at(2026, 2, 3))
    await usage(client, "acme", "2026-01-11T00:00:00Z", "-2000", "jan-fix-1")
    await run_bill(db, at(2026, 3, 1))
    february = next(i for i in await invoices(client, "acme", status="DUE") if i["startDate"] == iso(2026, 2, 1))
    (first,) = late_lines(await call(client, "get_invoice", invoiceId=february["id"]))
    assert (first["value"], first["details"]["difference"]) == ("0.00", "-20.00")  # 61.00 - 81.00, to credit
    clock.set(at(2026, 3, 2))
    await usage(client, "acme", "2026-01-12T00:00:00Z", "-1000", "jan-fix-2")
    (second,) = late_lines(await call(client, "get_invoice", accountId="acme"))
    # January now 2000 × 0.01 + 31.00 = 51.00; invoiced 81.00; -20.00 already left to a credit note: -10.00
    assert second["details"]["difference"] == "-10.00" and "lowers that period's charge by 10.00 USD" in \
        second["description"]
    clock.set(at(2026, 3, 3))
    await usage(client, "acme", "2026-01-13T00:00:00Z", "4000", "jan-more")
    (both,) = late_lines(await call(client, "get_invoice", accountId="acme"))
    # January 6000: 10,000 cap not reached, 60.00 + 31.00 = 91.00 - 81.00 + 20.00 settled = 30.00 (both events)
    assert (both["value"], both["details"]["eventCount"]) == ("30.00", 2)


async def test_a_late_event_not_billed_yet_can_be_voided(client, clock, db) -> None:
    await january_billed(client, db)
    clock.set(at(2026, 2, 3))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "wrong")
    await usage(client, "acme", "2026-01-21T00:00:00Z", "100", "right")
    listed = await call(client, "list_events", accountId="acme", status="ACCEPTED_LATE")
    assert sorted(e["id"] for e in listed["data"]) == ["right", "wrong"]
    await call(client, "void_event", accountId="acme", eventId="wrong", reason="sent to the wrong account")
    (line,) = late_lines(await call(client, "get_invoice", accountId="acme"))
    assert (line["value"], line["details"]["eventIds"]) == ("1.00", ["right"])  # 100 × 0.01 only
    await run_bill(db, at(2026, 3, 1))
    error = await call_error(client, "void_event", accountId="acme", eventId="right", reason="too late")
    assert "credit note" in error  # billed now: the invoice that billed it never changes


async def test_a_billed_late_event_is_refused_pointing_to_the_invoice_that_billed_it(client, clock, db) -> None:
    await january_billed(client, db, "9000")  # January, INV-000001: 9000 × 0.01 = 90.00 + 31.00 = 121.00
    clock.set(at(2026, 2, 3))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "jan-late")
    await run_bill(db, at(2026, 3, 1))
    # February, INV-000002: 31.00 + the late line 20.00 (January with 12,000 tokens: 100.00 + 2,000 × 0.005
    # = 110.00, + 31.00 = 141.00, less the 121.00 invoiced) = 51.00. The late event's 20.00 is on February.
    due = {i["sequenceId"]: i for i in await invoices(client, "acme", status="DUE")}
    assert (due["INV-000001"]["totalAmount"], due["INV-000002"]["totalAmount"]) == ("121.00", "51.00")
    february = await call(client, "get_invoice", invoiceId=due["INV-000002"]["id"])
    assert [line["type"] for line in february["lineItems"]] == [
        "USAGE_RATE_CARD_AMOUNT", "FIXED_FEE_RATE_CARD_AMOUNT", "LATE_USAGE_AMOUNT"]

    error = await call_error(client, "void_event", accountId="acme", eventId="jan-late", reason="sent twice")
    # Refused (billed), and the credit note it points to is February's late-usage line (line 3), which billed
    # the 20.00: January's invoice never billed the event, so a note there would credit other charges.
    assert f"invoice {due['INV-000002']['id']!r} (INV-000002, DUE)" in error and "line 3" in error
    assert due["INV-000001"]["id"] not in error and "create_credit_note" in error and "nothing was voided" in error


async def test_a_late_event_billed_on_an_invoice_since_voided_is_refused_without_asking_for_a_credit_note(
        client, clock, db) -> None:
    await january_billed(client, db, "9000")  # January, INV-000001: 9000 × 0.01 = 90.00 + 31.00 = 121.00
    clock.set(at(2026, 2, 3))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "jan-late")
    await run_bill(db, at(2026, 3, 1))
    # February, INV-000002: 31.00 + the late line 20.00 (141.00 - 121.00, as above) = 51.00, then voided
    due = {i["sequenceId"]: i for i in await invoices(client, "acme", status="DUE")}
    february = due["INV-000002"]
    assert february["totalAmount"] == "51.00"
    await void_refused_after_its_invoice_was_voided(client, db, february, "acme", "jan-late")


async def test_revenue_of_a_period_with_late_usage_never_goes_back(client, clock, db) -> None:
    await january_billed(client, db, "9000")
    clock.set(at(2026, 2, 3))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "jan-late")
    tokens = await tokens_meter(client)
    weekly = await metric(client, "REVENUE", at(2026, 1, 1), at(2026, 2, 1), "WEEK", "acme")
    # January's tokens: 90.00 in the week of 10 January, then nothing: the late 20.00 is February's revenue
    assert [v for v in weekly[tokens] if v] == [D("90.00")] and sum(weekly[tokens]) == D("90.00")


async def test_a_late_event_and_a_plan_change_of_its_account_never_deadlock(client, clock, db, database_url) -> None:
    await january_billed(client, db)
    now = at(2026, 2, 3)
    event = {"id": "jan-late", "schemaName": "llm", "timestamp": "2026-01-20T00:00:00Z", "accountId": "acme",
             "attributes": {"tokens": "100"}}
    async with db.unit_of_work() as changing:  # what update_account does: the account FOR UPDATE, then bill it
        await get_row(changing, "acme", lock=True)

        async def ingest() -> str:
            async with db.unit_of_work() as session:
                pid.set_result(await backend_pid(session))
                return (await ingest_event(session, event, now)).status

        pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        ingesting = asyncio.create_task(ingest())
        # The late event is recorded while ingest holds the billing watermark: it must not wait for the account
        # row this transaction holds (it finishes), else it is waiting on it (and the bill below deadlocks).
        waiting = asyncio.create_task(wait_until_lock_waiting(database_url, await pid))
        await asyncio.wait([ingesting, waiting], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        await changing.execute(text("UPDATE account_billing SET next_run_at = :now WHERE account_id = 'acme'"),
                               {"now": now})
        await close_due_cycles(changing, now, ["acme"])
    assert await ingesting == "ACCEPTED_LATE"


async def test_the_pricing_lab_compares_a_period_with_late_usage_on_what_was_charged_for_it(
        client, clock, db) -> None:
    plan = await january_billed(client, db, "9000")
    clock.set(at(2026, 2, 3))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "jan-late")
    await run_bill(db, at(2026, 3, 1))
    result = await call(client, "simulate_price_plan", candidates=[plan], startTime=iso(2026, 1, 1),
                        endTime=iso(2026, 3, 1))
    cycles = {c["startDate"]: (c["actual"], c["candidates"][0]["amount"]) for c in result["accounts"][0]["cycles"]}
    # January was charged 121.00 + the late 20.00 billed in February = 141.00, which its own plan prices for
    # 12,000 tokens; February was charged 51.00 of which 20.00 was January's: its own 31.00
    assert cycles == {iso(2026, 1, 1): ("141.00", "141.00"), iso(2026, 2, 1): ("31.00", "31.00")}


async def test_late_events_of_an_account_whose_deal_no_longer_validates_never_fail_the_others_batch(
        client, clock, db, monkeypatch) -> None:
    plan = await tiered_plan(client, "Pro", "BILL_ON_NEXT_INVOICE")
    await account(client, "acme", plan, iso(2026, 1, 1))
    await call(client, "create_customer", id="cust_bad", name="Customer", account={
        "id": "bad", "name": "bad", "invoiceCurrency": "USD", "pricePlanId": plan, "effectiveFrom": iso(2026, 1, 1),
        "rateCardOverrides": {"fixedFeeRateCards": [fee("base", "62", prorate=False)]}})
    await run_bill(db, at(2026, 2, 1))  # January DUE for both: acme 31.00, bad 62.00 (no usage)
    # An upgrade with stricter checks, or a hand edit: bad's stored deal no longer parses; the engine restarts
    await break_stored_deal(db, monkeypatch, "bad", "{fixedFeeRateCards,0,rateValues,0,rate}", '"62 USD"')

    clock.set(at(2026, 2, 3))
    result = await call(client, "ingest_batch_events", events=[
        {"id": "acme-late", "schemaName": "llm", "timestamp": "2026-01-20T00:00:00Z", "accountId": "acme",
         "attributes": {"tokens": "3000"}},
        {"id": "bad-late", "schemaName": "llm", "timestamp": "2026-01-20T00:00:00Z", "accountId": "bad",
         "attributes": {"tokens": "100"}}])
    # both periods' plan (version 1 of Pro) bills late usage: a deal replaces rate cards, never lateUsage
    assert (result["accepted"], result["acceptedLate"]) == (0, 2)
    # acme's January again with 3,000 tokens: 3,000 × 0.01 = 30.00 + 31.00 = 61.00; 61.00 - 31.00 = 30.00
    (line,) = late_lines(await call(client, "get_invoice", accountId="acme"))
    assert line["value"] == "30.00"
    # bad's own reads name its deal; its late event waits for its next invoice
    assert "account 'bad'" in await call_error(client, "get_invoice", accountId="bad")


async def test_late_usage_of_an_account_with_no_next_invoice_is_stored_with_a_warning_that_it_waits(
        client, clock, db) -> None:
    plan = await tiered_plan(client, "Pro", "BILL_ON_NEXT_INVOICE")  # 31.00 a month; tokens 0.01 up to 10,000
    await account(client, "acme", plan, iso(2026, 1, 1))
    clock.set(at(2026, 1, 20))
    await call(client, "update_account", accountId="acme", effectiveUntil=iso(2026, 2, 1))
    await run_bill(db, at(2026, 2, 1))  # January DUE: 31.00; no plan, no DRAFT after it
    clock.set(at(2026, 2, 3))
    late = await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "jan-late-1")
    # Stored and metered, but no invoice follows: the answer says the usage waits for a plan
    assert late["status"] == "ACCEPTED_LATE"
    assert late["warnings"] == [
        "account 'acme' has no price plan from now on, so no next invoice to bill its late usage (ACCEPTED_LATE) "
        "on: it waits, unbilled, until a plan is attached (update_account pricePlanId + effectiveFrom)"]
    await call(client, "update_account", accountId="acme", pricePlanId=plan, effectiveFrom=iso(2026, 3, 1))
    again = await usage(client, "acme", "2026-01-21T00:00:00Z", "1000", "jan-late-2")
    assert (again["status"], again["warnings"]) == ("ACCEPTED_LATE", [])  # March's invoice will bill it
    clock.set(at(2026, 3, 2))
    draft = await call(client, "get_invoice", accountId="acme")
    (line,) = late_lines(draft)
    # January with 4,000 tokens: 40.00 + 31.00 = 71.00, less the 31.00 invoiced = 40.00; March: 31.00 + 40.00
    assert (draft["startDate"], line["value"], line["details"]["eventCount"], draft["totalAmount"]) == (
        iso(2026, 3, 1), "40.00", 2, "71.00")


async def test_get_account_shows_late_usage_owed_and_not_invoiced_yet_and_why_it_waits(client, clock, db) -> None:
    plan = await january_billed(client, db, "9000")  # January, INV-000001: 9000 × 0.01 = 90.00 + 31.00 = 121.00
    (january,) = await invoices(client, "acme", status="DUE")
    assert (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"] is None
    clock.set(at(2026, 2, 3))
    await usage(client, "acme", "2026-01-20T00:00:00Z", "3000", "jan-late-1")
    february = await call(client, "get_invoice", accountId="acme")
    # January again with 12,000 tokens: 10,000 × 0.01 + 2,000 × 0.005 = 110.00, + 31.00 = 141.00; less the
    # 121.00 invoiced = 20.00, which February's invoice carries
    period = {"invoiceId": january["id"], "invoiceSequenceId": "INV-000001", "periodStart": iso(2026, 1, 1),
              "periodEnd": iso(2026, 2, 1), "eventCount": 1, "amount": "20.00"}
    pending = (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"]
    assert [{k: p[k] for k in period} for p in pending["periods"]] == [period]
    assert (pending["currency"], pending["total"], pending["billedOn"], pending["problem"]) == (
        "USD", "20.00", february["id"], None)

    # The plan ends at 1 February: February's DRAFT, which would have billed the 20.00, is dropped. The usage is
    # still owed; get_account says so and why no invoice bills it
    await call(client, "update_account", accountId="acme", effectiveUntil=iso(2026, 2, 1))
    assert await invoices(client, "acme", status="DRAFT") == []
    pending = (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"]
    assert [{k: p[k] for k in period} for p in pending["periods"]] == [period]
    assert (pending["total"], pending["billedOn"]) == ("20.00", None)
    assert pending["problem"] == (
        "account 'acme' has no price plan from now on, so no next invoice to bill its late usage (ACCEPTED_LATE) "
        "on: it waits, unbilled, until a plan is attached (update_account pricePlanId + effectiveFrom)")

    # A plan from 1 March: its first invoice will bill it
    await call(client, "update_account", accountId="acme", pricePlanId=plan, effectiveFrom=iso(2026, 3, 1))
    pending = (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"]
    assert (pending["total"], pending["billedOn"]) == ("20.00", None)
    assert pending["problem"] == (
        "no invoice carries it yet: the price plan starting at 2026-03-01T00:00:00+00:00 opens the next one, which "
        "bills it")
    clock.set(at(2026, 3, 2))
    march = await call(client, "get_invoice", accountId="acme")
    (line,) = late_lines(march)
    assert (line["value"], march["totalAmount"]) == ("20.00", "51.00")  # March: 31.00 + 20.00
    pending = (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"]
    assert (pending["total"], pending["billedOn"], pending["problem"]) == ("20.00", march["id"], None)
    await run_bill(db, at(2026, 4, 1))  # March closes with the late line: nothing is pending any more
    clock.set(at(2026, 4, 2))
    assert (await call(client, "get_account", accountId="acme"))["financial"]["pendingLateUsage"] is None
