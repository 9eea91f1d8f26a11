"""Fixed fees' `type` (ONE_TIME setup fees), `recurrenceConfig` and IN_ADVANCE timing, through the MCP tools with
the clock moved across cycles (policy: togai_engine/invoices/fixed_fees.py and the billing README). Every amount
is worked out by hand next to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from conftest import row_counts
from helpers import at, break_stored_version, call, call_error, iso
from test_scenarios import account, invoices

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


def fee(name: str, amount: str, **fields: Any) -> dict[str, Any]:
    return {"id": name, "rateValues": [{"currency": "USD", "rate": amount}], **fields}


async def plan(client: Any, name: str, *fees: dict[str, Any]) -> str:
    created = await call(client, "create_price_plan", name=name, pricingCycleConfig=MONTHLY,
                         rateCards={"fixedFeeRateCards": list(fees)})
    return str(created["id"])


async def lines(client: Any, invoice_id: str) -> list[tuple[str, str]]:
    """(description, value) of the invoice's fee lines."""
    invoice = await call(client, "get_invoice", invoiceId=invoice_id)
    return [(line["description"], line["value"]) for line in invoice["lineItems"]]


async def oldest_first(client: Any, account_id: str) -> list[dict[str, Any]]:
    """The account's period invoices (STANDARD), oldest first."""
    return [i for i in reversed(await invoices(client, account_id)) if i["invoiceType"] == "STANDARD"]


async def advance_invoices(client: Any, account_id: str) -> list[tuple[str, str, str, str]]:
    """(date, status, total, the line's description) of the account's advance invoices, oldest first."""
    found = [i for i in reversed(await invoices(client, account_id)) if i["invoiceType"] == "STANDARD_ADVANCED"]
    return [(i["invoiceDate"], i["status"], i["totalAmount"], " | ".join(d for d, _ in await lines(client, i["id"])))
            for i in found]


async def test_a_setup_fee_is_charged_once_per_association_even_across_a_plan_change(client, clock) -> None:
    basic = await plan(client, "Basic", fee("basic_setup", "100", type="ONE_TIME", displayName="Basic setup"),
                       fee("basic_base", "30", displayName="Basic base"))
    plus = await plan(client, "Plus", fee("plus_setup", "250", type="ONE_TIME", displayName="Plus setup"),
                      fee("plus_base", "60", displayName="Plus base"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", basic, iso(2026, 1, 1))
    clock.set(at(2026, 2, 10))
    # Change to Plus on 15 February 12:00: 14.5 of February's 28 days on Basic, 13.5 on Plus
    await call(client, "update_account", accountId="acme", pricePlanId=plus, effectiveFrom="2026-02-15T12:00:00Z")
    clock.set(at(2026, 4, 1))
    listed = await oldest_first(client, "acme")
    assert [(i["pricePlanName"], i["status"], i["totalAmount"]) for i in listed] == [
        ("Basic", "DUE", "130.00"),  # January: setup 100.00 + base 30.00
        ("Basic", "DUE", "15.54"),  # [1 Feb, 15 Feb 12:00): base 30 × 14.5/28 = 15.5357.. -> 15.54; no setup again
        ("Plus", "DUE", "278.93"),  # [15 Feb 12:00, 1 Mar): Plus's own setup 250.00 in full (never prorated)
        #                             + base 60 × 13.5/28 = 28.9285.. -> 28.93
        ("Plus", "DUE", "60.00"),  # March: base only
        ("Plus", "DRAFT", "60.00"),  # April, open
    ]
    assert await lines(client, listed[0]["id"]) == [("Basic setup", "100.00"), ("Basic base", "30.00")]
    assert (await lines(client, listed[2]["id"]))[0] == ("Plus setup", "250.00")


async def test_recurrence_config_charges_cycles_1_and_4_of_seven_counted_from_a_partial_first_period(
        client, clock) -> None:
    quarterly = await plan(client, "Quarterly review", fee(
        "review", "90", displayName="Review", recurrenceConfig={"interval": 3, "offset": 1}))
    clock.set(at(2026, 1, 15))
    # Cycle 0 is the partial [15 Jan, 1 Feb); cycles 1..6 are February..July
    await account(client, "acme", quarterly, iso(2026, 1, 15))
    clock.set(at(2026, 8, 1))
    listed = list(reversed(await invoices(client, "acme", status="DUE")))
    assert [i["startDate"] for i in listed] == [iso(2026, 1, 15)] + [iso(2026, m, 1) for m in range(2, 8)]
    # i >= 1 and (i - 1) % 3 == 0: cycles 1 (February) and 4 (May) pay 90.00, the others nothing
    assert [i["totalAmount"] for i in listed] == ["0.00", "90.00", "0.00", "0.00", "90.00", "0.00", "0.00"]
    # ... and cycle 7 (August, open) pays again
    assert (await call(client, "get_invoice", accountId="acme"))["totalAmount"] == "90.00"


async def test_an_in_advance_fee_is_invoiced_a_cycle_ahead_and_credited_when_cancelled_mid_cycle(
        client, clock) -> None:
    monthly = await plan(client, "Seat", fee("platform", "31", displayName="Platform", invoiceTiming="IN_ADVANCE",
                                             enableProration=True))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", monthly, iso(2026, 1, 1))
    # January's fee is invoiced as the association starts, DUE at once (no invoice precedes it) ...
    assert await advance_invoices(client, "acme") == [
        ("2026-01-01T00:00:00Z", "DUE", "31.00", "Platform (in advance for 2026-01-01 – 2026-02-01)")]
    # ... and January's own invoice carries February's
    january = (await oldest_first(client, "acme"))[0]
    assert await lines(client, january["id"]) == [("Platform (in advance for 2026-02-01 – 2026-03-01)", "31.00")]
    assert january["totalAmount"] == "31.00"

    clock.set(at(2026, 3, 10))
    listed = await oldest_first(client, "acme")
    assert [(i["status"], i["totalAmount"]) for i in listed] == [("DUE", "31.00"), ("DUE", "31.00"),
                                                                  ("DRAFT", "31.00")]
    february, march = listed[1], listed[2]
    assert await lines(client, february["id"]) == [("Platform (in advance for 2026-03-01 – 2026-04-01)", "31.00")]
    assert await lines(client, march["id"]) == [("Platform (in advance for 2026-04-01 – 2026-05-01)", "31.00")]

    # Cancel on 16 March: March's fee (on February's DUE invoice) is unused for 16 of its 31 days:
    # 31 × 16/31 = 16.00, credited with a note issued by the change; April's fee never comes
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-03-16T00:00:00Z")
    notes = (await call(client, "list_credit_notes", accountId="acme"))["data"]
    assert [(n["invoiceId"], n["amount"], n["reason"], n["creditedFromDue"]) for n in notes] == [
        (february["id"], "16.00", "ORDER_CHANGE", "16.00")]
    assert [line["amount"] for line in notes[0]["lines"]] == ["16.00"]
    credited = await call(client, "get_invoice", invoiceId=february["id"])
    assert (credited["totalAmount"], credited["amountDue"]) == ("31.00", "15.00")  # 31.00 - 16.00
    clock.set(at(2026, 5, 1))
    listed = await oldest_first(client, "acme")
    assert [(i["startDate"], i["endDate"], i["totalAmount"]) for i in listed][2:] == [
        (iso(2026, 3, 1), iso(2026, 3, 16), "0.00")]  # no fee for April: the plan ended before it started
    # Cancelling again (a retry) credits nothing more
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-03-16T00:00:00Z")
    assert len((await call(client, "list_credit_notes", accountId="acme"))["data"]) == 1


async def test_a_cut_after_the_fee_was_invoiced_leaves_what_a_draft_would_have_charged_to_the_cent(
        client, clock) -> None:
    """Both accounts end their plan at 1 Feb 03:21:36, 1/200 of February (12,096,000,000 of 2,419,200,000,000 µs):
    February's 1.00 fee is used for 1.00 × 1/200 = 0.005, a half cent. Early ends while January (which carries
    the fee) is a DRAFT: the fee is composed prorated, 0.005 -> 0.01. Late ends once January is DUE: the note
    credits the fee less that same used share, 1.00 - 0.01 = 0.99, so it too pays 0.01 (crediting the unused
    share rounded, 0.995 -> 1.00, would leave 0.00)."""
    cent = await plan(client, "Cent", fee("cent", "1", displayName="Cent", invoiceTiming="IN_ADVANCE",
                                          enableProration=True))
    clock.set(at(2026, 1, 1))
    await account(client, "early", cent, iso(2026, 1, 1))
    await account(client, "late", cent, iso(2026, 1, 1))
    end = "2026-02-01T03:21:36Z"
    clock.set(at(2026, 1, 20))
    await call(client, "update_account", accountId="early", effectiveUntil=end)
    clock.set(at(2026, 2, 1, 1))  # January is DUE for both
    await call(client, "update_account", accountId="late", effectiveUntil=end)
    early_january = (await oldest_first(client, "early"))[0]
    assert early_january["totalAmount"] == "0.01"
    late_january = (await oldest_first(client, "late"))[0]
    notes = (await call(client, "list_credit_notes", accountId="late"))["data"]
    assert (late_january["totalAmount"], [n["amount"] for n in notes]) == ("1.00", ["0.99"])
    assert (await call(client, "get_invoice", invoiceId=late_january["id"]))["amountDue"] == "0.01"


async def test_an_in_advance_fee_across_plan_changes_is_prorated_while_draft_and_credited_once_due(
        client, clock) -> None:
    small = await plan(client, "Small", fee("small", "31", displayName="Small", invoiceTiming="IN_ADVANCE",
                                            enableProration=True))
    large = await plan(client, "Large", fee("large", "62", displayName="Large", invoiceTiming="IN_ADVANCE",
                                            enableProration=True))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", small, iso(2026, 1, 1))
    clock.set(at(2026, 1, 20))
    # Scheduled change on 15 February: January's invoice is still DRAFT, so February's fee on it is composed
    # prorated, 31 × 14/28 = 15.50, and no credit note is needed (January's own was on the advance invoice)
    await call(client, "update_account", accountId="acme", pricePlanId=large, effectiveFrom="2026-02-15T00:00:00Z")
    january = (await oldest_first(client, "acme"))[0]
    assert await lines(client, january["id"]) == [
        ("Small (prorated: 14 days of 28 days) (in advance for 2026-02-01 – 2026-02-15)", "15.50")]
    clock.set(at(2026, 3, 2))
    listed = await oldest_first(client, "acme")
    assert [(i["pricePlanName"], i["status"], i["totalAmount"]) for i in listed] == [
        ("Small", "DUE", "15.50"),  # February's fee, prorated
        ("Small", "DUE", "0.00"),  # [1 Feb, 15 Feb): its fee was paid in advance; no March fee for Small
        ("Large", "DUE", "62.00"),  # [15 Feb, 1 Mar) carries March's 62.00
        ("Large", "DRAFT", "62.00"),  # March's invoice carries April's fee
    ]
    # Each association's first period was invoiced as it started: Small's January, Large's 62 × 14/28 = 31.00
    assert await advance_invoices(client, "acme") == [
        ("2026-01-01T00:00:00Z", "DUE", "31.00", "Small (in advance for 2026-01-01 – 2026-02-01)"),
        ("2026-02-15T00:00:00Z", "DUE", "31.00",
         "Large (prorated: 14 days of 28 days) (in advance for 2026-02-15 – 2026-03-01)")]
    # Back to Small on 16 March: Large's March fee is on an invoice already PAID: credit 62 × 16/31 = 32.00,
    # all of it to the wallet
    await call(client, "update_invoice_status", invoiceId=listed[2]["id"], status="PAID")
    await call(client, "update_account", accountId="acme", pricePlanId=small, effectiveFrom="2026-03-16T00:00:00Z")
    notes = (await call(client, "list_credit_notes", accountId="acme"))["data"]
    assert [(n["invoiceId"], n["amount"], n["creditedFromDue"], n["creditedToWallet"]) for n in notes] == [
        (listed[2]["id"], "32.00", "0.00", "32.00")]
    clock.set(at(2026, 3, 20))
    listed = await oldest_first(client, "acme")
    assert [(i["pricePlanName"], i["startDate"], i["status"], i["totalAmount"]) for i in listed][3:] == [
        ("Large", iso(2026, 3, 1), "DUE", "0.00"),  # [1 Mar, 16 Mar): no April fee, Large ends first
        # Small again, a new association: its DRAFT carries April's 31.00 ...
        ("Small", "2026-03-16T00:00:00Z", "DRAFT", "31.00"),
    ]
    # ... and its advance invoice 31 × 16/31 = 16.00 for [16 Mar, 1 Apr)
    assert (await advance_invoices(client, "acme"))[2][:3] == ("2026-03-16T00:00:00Z", "DUE", "16.00")


async def test_fixed_fee_fields_are_validated_naming_the_field(client) -> None:
    async def refused(card: dict[str, Any]) -> str:
        return await call_error(client, "create_price_plan", name="Bad", pricingCycleConfig=MONTHLY,
                                rateCards={"fixedFeeRateCards": [card]})

    error = await refused(fee("setup", "100", type="ONE_TIME", recurrenceConfig={"interval": 2}))
    assert "rateCards.fixedFeeRateCards[0].recurrenceConfig" in error and "ONE_TIME" in error
    error = await refused(fee("every", "10", recurrenceConfig={"interval": 0}))
    assert "rateCards.fixedFeeRateCards[0].recurrenceConfig.interval" in error and "1 or more" in error
    error = await refused(fee("every", "10", recurrenceConfig={"interval": 1, "offset": -1}))
    assert "rateCards.fixedFeeRateCards[0].recurrenceConfig.offset" in error and "0 or more" in error
    error = await refused(fee("every", "10", type="SOMETIMES"))
    assert "type" in error


async def test_a_one_time_fee_sent_with_enable_proration_is_refused_wherever_a_plan_is_sent(
        client, clock, db, monkeypatch) -> None:
    """A ONE_TIME fee is never prorated (fixed_fees.py), so enableProration true on it would be accepted and ignored:
    a new plan, a new version, a deal and an inline plan in the lab refuse it, naming the field and the fix."""
    prorated_setup = fee("setup", "100", type="ONE_TIME", enableProration=True)
    fix = "never prorated"
    before = await row_counts(db)
    error = await call_error(client, "create_price_plan", name="Setup", pricingCycleConfig=MONTHLY,
                             rateCards={"fixedFeeRateCards": [prorated_setup]})
    assert "rateCards.fixedFeeRateCards[0].enableProration" in error and fix in error and "RECURRING" in error
    assert await row_counts(db) == before  # no plan stored
    plan_id = await plan(client, "Setup", fee("setup", "100", type="ONE_TIME"), fee("base", "30"))
    before = await row_counts(db)
    error = await call_error(client, "update_price_plan", pricePlanId=plan_id,
                             rateCards={"fixedFeeRateCards": [fee("base", "30"), prorated_setup]})
    assert "rateCards.fixedFeeRateCards[1].enableProration" in error and fix in error
    error = await call_error(client, "calculate_revenue", usage={}, pricePlan={
        "name": "Inline", "pricingCycleConfig": MONTHLY, "rateCards": {"fixedFeeRateCards": [prorated_setup]}})
    assert "pricePlan.rateCards.fixedFeeRateCards[0].enableProration" in error and fix in error
    assert await row_counts(db) == before  # no DRAFT version stored
    clock.set(at(2026, 1, 10))
    await account(client, "acme", plan_id, iso(2026, 1, 10))
    before, shown = await row_counts(db), await call(client, "get_account", accountId="acme")
    error = await call_error(client, "update_account", accountId="acme", pricePlanId=plan_id,
                             effectiveFrom=iso(2026, 2, 1), rateCardOverrides={"fixedFeeRateCards": [prorated_setup]})
    assert "rateCardOverrides.fixedFeeRateCards[0].enableProration" in error and fix in error
    # no association (deal) stored, and the one in effect not cut at 1 February
    assert await row_counts(db) == before and await call(client, "get_account", accountId="acme") == shown

    # A version stored before the check keeps working: a deal on its other card is not refused for it.
    await break_stored_version(db, monkeypatch, plan_id, 1, "{rateCards,fixedFeeRateCards,0,enableProration}", "true")
    await call(client, "update_account", accountId="acme", pricePlanId=plan_id, effectiveFrom=iso(2026, 2, 1),
               rateCardOverrides={"fixedFeeRateCards": [fee("base", "25")]})
    # January [10 Jan, 1 Feb), on the stored version: setup 100.00 in full (ONE_TIME: the stored enableProration
    # changes nothing) + base 30.00 (not prorated: base has no enableProration) = 130.00
    assert (await call(client, "get_invoice", accountId="acme"))["totalAmount"] == "130.00"


async def test_a_new_version_does_not_charge_the_setup_fee_again_and_credits_the_in_advance_fee_it_replaces(
        client, clock) -> None:
    monthly = await plan(client, "Versioned", fee("setup", "100", type="ONE_TIME"),
                         fee("platform", "31", invoiceTiming="IN_ADVANCE", enableProration=True))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", monthly, iso(2026, 1, 1))
    clock.set(at(2026, 3, 16))
    # January: setup 100.00 + February's 31.00 = 131.00 (January's 31.00 was on the advance invoice);
    # February: March's 31.00
    listed = await oldest_first(client, "acme")
    assert [(i["status"], i["totalAmount"]) for i in listed] == [("DUE", "131.00"), ("DUE", "31.00"),
                                                                  ("DRAFT", "31.00")]
    february = listed[1]
    # Version 2 doubles the platform fee, from now (16 March, IMMEDIATE)
    await call(client, "update_price_plan", pricePlanId=monthly, rateCards={"fixedFeeRateCards": [
        fee("setup", "100", type="ONE_TIME"), fee("platform", "62", invoiceTiming="IN_ADVANCE", enableProration=True)]})
    await call(client, "finalize_price_plan", pricePlanId=monthly, migrationMode="IMMEDIATE")
    # March's 31.00 (on February's DUE invoice) is unused from 16 March for 16 of 31 days: 31 × 16/31 = 16.00
    notes = (await call(client, "list_credit_notes", accountId="acme"))["data"]
    assert [(n["invoiceId"], n["amount"], n["reason"]) for n in notes] == [(february["id"], "16.00", "ORDER_CHANGE")]
    clock.set(at(2026, 4, 1))
    listed = await oldest_first(client, "acme")
    # [1 Mar, 16 Mar) on version 1: its fee was paid in advance, and the association ends before April: 0.00.
    # [16 Mar, 1 Apr) on version 2: April's 62.00; no setup fee (the account's run on the plan goes on).
    # April's DRAFT: May's 62.00.
    assert [(i["startDate"], i["pricePlanVersion"], i["status"], i["totalAmount"]) for i in listed][2:] == [
        (iso(2026, 3, 1), 1, "DUE", "0.00"), (iso(2026, 3, 16), 2, "DUE", "62.00"),
        (iso(2026, 4, 1), 2, "DRAFT", "62.00")]
    # version 2's own first period was invoiced as it started: 62 × 16/31 = 32.00
    assert [a[:3] for a in await advance_invoices(client, "acme")] == [
        ("2026-01-01T00:00:00Z", "DUE", "31.00"), ("2026-03-16T00:00:00Z", "DUE", "32.00")]


async def _early_and_late_change(client: Any, clock: Any, fees: list[dict[str, Any]], rules: list[dict[str, Any]]
                                 ) -> tuple[dict[str, Any], dict[str, Any], Callable[[], Awaitable[Any]]]:
    """Two accounts on a monthly plan of `fees` and pricing `rules` from 1 January, both moving to another plan on
    15 February (14 of February's 28 days used): "early" changes on 20 January, while January's invoice (carrying
    February's in-advance fee) is a DRAFT; on 10 February (January DUE) -> (early's January, late's January, the
    call that changes late)."""
    discounted = str((await call(client, "create_price_plan", name="Discounted", pricingCycleConfig=MONTHLY,
                                 rateCards={"fixedFeeRateCards": fees}, pricingRules=rules))["id"])
    other = await plan(client, "Other", fee("other", "10", displayName="Other"))
    clock.set(at(2026, 1, 1))
    await account(client, "late", discounted, iso(2026, 1, 1))
    await account(client, "early", discounted, iso(2026, 1, 1))
    change = "2026-02-15T00:00:00Z"
    clock.set(at(2026, 1, 20))
    await call(client, "update_account", accountId="early", pricePlanId=other, effectiveFrom=change)
    clock.set(at(2026, 2, 10))
    early_january = (await oldest_first(client, "early"))[0]
    late_january = (await oldest_first(client, "late"))[0]
    return early_january, late_january, lambda: call(client, "update_account", accountId="late",
                                                       pricePlanId=other, effectiveFrom=change)


async def test_an_in_advance_fee_discounted_by_a_pricing_rule_is_credited_net_of_the_discount(client, clock) -> None:
    """A rule takes 10% off the total of each period's invoice, which carries the next cycle's in-advance fee: the
    customer paid 90.00 for February's 100.00 fee, so a change on 15 February credits the unused half of 90.00, not of
    100.00, and leaves what a DRAFT cut the same way charges."""
    ten_off = {"name": "ten off", "order": 1, "invoiceTiming": "IN_ARREARS",
               "computation": '{"*":[{"var":"total"},-0.1]}', "action": {"type": "ADD", "description": "10% off"}}
    platform = fee("platform", "100", displayName="Platform", invoiceTiming="IN_ADVANCE", enableProration=True)
    # early changes while January (which carries February's fee) is a DRAFT: the fee is prorated, 100 × 14/28 =
    # 50.00, and the rule takes 10% of that: 50.00 - 5.00 = 45.00
    early_january, late_january, change_late = await _early_and_late_change(client, clock, [platform], [ten_off])
    assert (early_january["status"], early_january["totalAmount"]) == ("DUE", "45.00")
    # late's January is DUE: February's fee 100.00 less the rule's 10.00 = 90.00
    assert await lines(client, late_january["id"]) == [
        ("Platform (in advance for 2026-02-01 – 2026-03-01)", "100.00"), ("10% off", "-10.00")]
    assert late_january["totalAmount"] == "90.00"
    await change_late()
    # unused: 100.00 - 100 × 14/28 = 50.00 of the fee's value, of which the rule took 10% (10.00 of 100.00):
    # 50.00 × 90.00/100.00 = 45.00 (50.00 would refund 5.00 the customer never paid)
    notes = (await call(client, "list_credit_notes", accountId="late"))["data"]
    assert [(n["invoiceId"], n["amount"], n["reason"]) for n in notes] == [(late_january["id"], "45.00", "ORDER_CHANGE")]
    assert notes[0]["memo"].endswith("; 45.00 of its 50.00, net of the pricing rules' discount")
    # what stays charged is what the DRAFT cut the same way charged: 90.00 - 45.00 = 45.00
    assert (await call(client, "get_invoice", invoiceId=late_january["id"]))["amountDue"] == "45.00"


async def test_a_discount_of_a_total_a_surcharge_raised_is_spread_over_the_surcharge_too(client, clock) -> None:
    """A flat 20.00 surcharge (order 1), then 10% off the total (order 2): the discount, 12.00 = 10% of 120.00, is
    10.00 of the fee and 2.00 of the surcharge, so the customer paid 90.00 for February's 100.00 fee and a change on 15
    February credits half of 90.00 = 45.00, leaving what a DRAFT cut the same way charges."""
    rules = [{"name": "surcharge", "order": 1, "invoiceTiming": "IN_ARREARS", "computation": "20",
              "action": {"type": "ADD", "description": "Surcharge"}},
             {"name": "ten off", "order": 2, "invoiceTiming": "IN_ARREARS",
              "computation": '{"*":[{"var":"total"},-0.1]}', "action": {"type": "ADD", "description": "10% off"}}]
    platform = fee("platform", "100", displayName="Platform", invoiceTiming="IN_ADVANCE", enableProration=True)
    # early changes while January is a DRAFT: the fee 100 × 14/28 = 50.00, + 20.00, - 10% of 70.00 = 63.00
    early_january, late_january, change_late = await _early_and_late_change(client, clock, [platform], rules)
    assert (early_january["status"], early_january["totalAmount"]) == ("DUE", "63.00")
    assert await lines(client, late_january["id"]) == [
        ("Platform (in advance for 2026-02-01 – 2026-03-01)", "100.00"), ("Surcharge", "20.00"), ("10% off", "-12.00")]
    assert late_january["totalAmount"] == "108.00"
    await change_late()
    # the fee's share of the 12.00 off is 12.00 × 100.00/120.00 = 10.00: 90.00 paid, its unused half 45.00
    # (not 50.00 × (100.00 - 12.00)/100.00 = 44.00, which bills the fee for the surcharge's discount)
    notes = (await call(client, "list_credit_notes", accountId="late"))["data"]
    assert [(n["invoiceId"], n["amount"]) for n in notes] == [(late_january["id"], "45.00")]
    # 108.00 - 45.00 = 63.00, what early's DRAFT cut the same way charged
    assert (await call(client, "get_invoice", invoiceId=late_january["id"]))["amountDue"] == "63.00"


async def test_a_discount_of_another_card_leaves_an_in_advance_fee_credited_whole(client, clock) -> None:
    """A rule takes half off the support card only (it reads rateCards.support, not the total): the in-advance
    platform fee was paid in full, so a change on 15 February credits its unused half, 50.00, whole."""
    half_off_support = {"name": "half off support", "order": 1, "invoiceTiming": "IN_ARREARS",
                        "computation": '{"*":[{"var":"rateCards.support"},-0.5]}',
                        "action": {"type": "ADD", "description": "Support half off"}}
    platform = fee("platform", "100", displayName="Platform", invoiceTiming="IN_ADVANCE", enableProration=True)
    support = fee("support", "100", displayName="Support")
    # early changes while January is a DRAFT: platform 100 × 14/28 = 50.00 + support 100.00 - 50.00 = 100.00
    early_january, late_january, change_late = await _early_and_late_change(
        client, clock, [platform, support], [half_off_support])
    assert (early_january["status"], early_january["totalAmount"]) == ("DUE", "100.00")
    assert await lines(client, late_january["id"]) == [
        ("Platform (in advance for 2026-02-01 – 2026-03-01)", "100.00"), ("Support", "100.00"),
        ("Support half off", "-50.00")]
    await change_late()
    # the 50.00 off is all the support card's: the platform fee paid 100.00, its unused half is 50.00 (not
    # 50.00 × 150.00/200.00 = 37.50, spreading support's discount over the platform fee)
    notes = (await call(client, "list_credit_notes", accountId="late"))["data"]
    assert [(n["invoiceId"], n["amount"]) for n in notes] == [(late_january["id"], "50.00")]
    # 150.00 - 50.00 = 100.00, what early's DRAFT cut the same way charged
    assert (await call(client, "get_invoice", invoiceId=late_january["id"]))["amountDue"] == "100.00"
