"""Advance invoices across plan changes: whatever changes an association from its first instant (a plan change or
end there, a version moved in place) credits its advance invoice whole and the period is invoiced anew; a cut
inside the period credits the unused share. Policy: togai_engine/app/advance_credits.py and the invoices README.
Amounts worked out by hand; each test is a story a second reader found broken."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from helpers import at, call, call_error, iso
from test_fixed_fee_timing import MONTHLY, advance_invoices, fee, oldest_first, plan
from test_scenarios import account

D = Decimal


async def notes(client: Any) -> list[tuple[str, str]]:
    listed = (await call(client, "list_credit_notes", accountId="acme"))["data"]
    return [(n["amount"], n["reason"]) for n in reversed(listed)]


async def net_advance(client: Any) -> Decimal:
    """What the advance invoices charge, less their credit notes."""
    charged = sum((D(total) for _, _, total, _ in await advance_invoices(client, "acme")), D(0))
    return charged - sum((D(amount) for amount, _ in await notes(client)), D(0))


async def test_a_plan_corrected_from_its_first_instant_credits_the_old_advance_invoice(client, clock) -> None:
    a = await plan(client, "A", fee("a_base", "31", displayName="A base", invoiceTiming="IN_ADVANCE"))
    b = await plan(client, "B", fee("b_base", "62", displayName="B base", invoiceTiming="IN_ADVANCE"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", a, iso(2026, 1, 1))
    clock.set(at(2026, 1, 10))
    # acme was on B from its first day: A's 31.00 is credited whole, B's first period invoiced: 62.00
    await call(client, "update_account", accountId="acme", pricePlanId=b, effectiveFrom="2026-01-01T00:00:00Z")
    assert [a[1:3] for a in await advance_invoices(client, "acme")] == [("DUE", "31.00"), ("DUE", "62.00")]
    assert await notes(client) == [("31.00", "ORDER_CHANGE")]
    assert await net_advance(client) == D("62.00")


async def test_ending_a_plan_at_its_first_instant_credits_its_advance_invoice(client, clock) -> None:
    monthly = await plan(client, "Monthly", fee("platform", "31", displayName="Platform", invoiceTiming="IN_ADVANCE"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", monthly, iso(2026, 1, 1))
    clock.set(at(2026, 1, 5))
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-01-01T00:00:00Z")
    # the plan never applied: its advance invoice stays (invoices are final) and is credited whole
    assert await notes(client) == [("31.00", "ORDER_CHANGE")]
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]]
    assert (advance["invoiceType"], advance["totalAmount"], advance["amountDue"]) == (
        "STANDARD_ADVANCED", "31.00", "0.00")  # 31.00 - 31.00
    clock.set(at(2026, 2, 1))
    assert await oldest_first(client, "acme") == []


async def test_a_version_moved_in_place_charges_its_setup_fee_once(client, clock) -> None:
    setup, base = (fee("setup", "100", type="ONE_TIME", displayName="Setup", invoiceTiming="IN_ADVANCE"),
                   fee("base", "31", displayName="Base", invoiceTiming="IN_ADVANCE"))
    p = await call(client, "create_price_plan", name="P", pricingCycleConfig=MONTHLY,
                   rateCards={"fixedFeeRateCards": [setup, base]})
    clock.set(at(2026, 1, 1))
    await account(client, "acme", p["id"], iso(2026, 1, 1))
    clock.set(at(2026, 1, 10))
    await call(client, "update_price_plan", pricePlanId=p["id"], rateCards={"fixedFeeRateCards": [
        setup, fee("base", "40", displayName="Base", invoiceTiming="IN_ADVANCE")]})
    # START_OF_CURRENT_CYCLE in the first cycle: version 2 from 1 January, the association moved in place
    await call(client, "finalize_price_plan", pricePlanId=p["id"], migrationMode="START_OF_CURRENT_CYCLE")
    # version 1's advance invoice (100.00 + 31.00) is credited line by line; version 2's: 100.00 + 40.00
    assert [a[1:3] for a in await advance_invoices(client, "acme")] == [("DUE", "131.00"), ("DUE", "140.00")]
    assert sorted(await notes(client)) == [("100.00", "ORDER_CHANGE"), ("31.00", "ORDER_CHANGE")]
    assert await net_advance(client) == D("140.00")


async def test_a_partial_unprorated_first_period_moved_in_place_is_charged_once(client, clock) -> None:
    cards = {"fixedFeeRateCards": [fee("base", "31", displayName="Base", invoiceTiming="IN_ADVANCE")]}
    p = await call(client, "create_price_plan", name="P", pricingCycleConfig=MONTHLY, rateCards=cards)
    clock.set(at(2026, 1, 10))
    await account(client, "acme", p["id"], iso(2026, 1, 10))  # [10 Jan, 1 Feb), not prorated: 31.00
    clock.set(at(2026, 1, 15))
    await call(client, "update_price_plan", pricePlanId=p["id"], rateCards=cards)
    await call(client, "finalize_price_plan", pricePlanId=p["id"], migrationMode="START_OF_CURRENT_CYCLE")
    assert await notes(client) == [("31.00", "ORDER_CHANGE")]  # the whole line, not 31 × 22/31 of the cycle
    assert await net_advance(client) == D("31.00")


async def test_a_cut_inside_a_partial_unprorated_first_period_credits_the_unused_share_of_it(client, clock) -> None:
    monthly = await plan(client, "Monthly", fee("platform", "33", displayName="Platform", invoiceTiming="IN_ADVANCE"))
    clock.set(at(2026, 1, 10))
    await account(client, "acme", monthly, iso(2026, 1, 10))  # [10 Jan, 1 Feb): 22 days, charged 33.00 in full
    clock.set(at(2026, 1, 12))
    # ended on 21 January: 11 of the 22 days it paid for are unused: 33 × 11/22 = 16.50
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-01-21T00:00:00Z")
    assert await notes(client) == [("16.50", "ORDER_CHANGE")]


async def test_ending_then_reattaching_the_plan_charges_the_first_period_in_full(client, clock) -> None:
    monthly = await plan(client, "Monthly", fee("platform", "31", displayName="Platform", invoiceTiming="IN_ADVANCE",
                                                enableProration=True))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", monthly, iso(2026, 1, 1))
    clock.set(at(2026, 1, 15))
    # ended on 21 January: 31 × 11/31 = 11.00 credited; then the end is undone by attaching the plan there again:
    # [21 Jan, 1 Feb) is invoiced in advance anew, 31 × 11/31 = 11.00
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-01-21T00:00:00Z")
    await call(client, "update_account", accountId="acme", pricePlanId=monthly, effectiveFrom="2026-01-21T00:00:00Z")
    assert await notes(client) == [("11.00", "ORDER_CHANGE")]
    clock.set(at(2026, 1, 21))  # the re-attached association's first period starts: its advance invoice
    assert [a[1:3] for a in await advance_invoices(client, "acme")] == [("DUE", "31.00"), ("DUE", "11.00")]
    assert await net_advance(client) == D("31.00")  # 31.00 - 11.00 + 11.00


async def test_the_first_periods_credit_grant_pays_its_advance_invoice(client, clock) -> None:
    p = await call(client, "create_price_plan", name="P", pricingCycleConfig=MONTHLY, rateCards={
        "fixedFeeRateCards": [fee("base", "40", displayName="Base", invoiceTiming="IN_ADVANCE")],
        "creditGrantRateCards": [{"id": "free", "displayName": "Free", "rateDetails": {
            "currencySlabRateDetails": [{"currency": "USD", "creditAmount": "50"}]}}]})
    clock.set(at(2026, 1, 1))
    await account(client, "acme", p["id"], iso(2026, 1, 1))
    # January's 50.00 pays January's fee on the advance invoice: 40.00
    [advance] = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    assert (advance["totalAmount"], advance["creditsApplied"], advance["amountDue"]) == ("40.00", "40.00", "0.00")
    clock.set(at(2026, 2, 1))
    # January's invoice carries February's 40.00; the 10.00 left of January's credit pays part: 30.00 due
    [january, _] = await oldest_first(client, "acme")
    assert (january["totalAmount"], january["creditsApplied"], january["amountDue"]) == ("40.00", "10.00", "30.00")


def prepaid(*, one_time: bool = False, currencies: tuple[str, ...] = ("USD",)) -> dict[str, Any]:
    return {"id": "credits", "displayName": "Credits", "invoiceTiming": "PREPAID",
            "type": "ONE_TIME" if one_time else "RECURRING", "grantDetails": {"expiryType": "NO_EXPIRY"},
            "rateDetails": {"currencySlabRateDetails": [
                {"currency": c, "creditAmount": "100",
                 "slabDetails": [{"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.8"}]} for c in currencies]}}


async def test_prepaid_credits_cannot_be_granted_in_a_currency_the_wallet_no_longer_has(client, clock) -> None:
    p = await call(client, "create_price_plan", name="P", pricingCycleConfig=MONTHLY, supportedCurrencies=["USD", "EUR"],
                   rateCards={"creditGrantRateCards": [prepaid(currencies=("USD", "EUR"))]})
    clock.set(at(2026, 1, 1))
    await account(client, "acme", p["id"], iso(2026, 1, 1))
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    clock.set(at(2026, 1, 3))
    await call(client, "update_account", accountId="acme", invoiceCurrency="EUR")
    error = await call_error(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    assert "status" in error and "USD" in error and "EUR" in error and "nothing was changed" in error
    assert (await call(client, "get_invoice", invoiceId=advance["id"]))["status"] == "DUE"
    assert (await call(client, "get_wallet_balance", accountId="acme"))["balance"] == "0.00"


async def test_a_one_time_prepaid_card_sold_again_on_a_new_run_grants_again(client, clock) -> None:
    p = await call(client, "create_price_plan", name="P", pricingCycleConfig=MONTHLY,
                   rateCards={"creditGrantRateCards": [prepaid(one_time=True)]})
    q = await plan(client, "Q", fee("q_base", "10", displayName="Q base"))

    async def pay_advance_invoices() -> None:
        for invoice in (await call(client, "list_invoices", accountId="acme", pageSize=100))["data"]:
            if invoice["invoiceType"] == "STANDARD_ADVANCED" and invoice["status"] == "DUE":
                await call(client, "update_invoice_status", invoiceId=invoice["id"], status="PAID")

    clock.set(at(2026, 1, 1))
    await account(client, "acme", p["id"], iso(2026, 1, 1))
    await pay_advance_invoices()
    clock.set(at(2026, 2, 10))
    await call(client, "update_account", accountId="acme", pricePlanId=q, effectiveFrom="2026-02-10T00:00:00Z")
    clock.set(at(2026, 3, 10))
    # back on P: a new run, its ONE_TIME credits sold again (80.00) and, once paid, granted again
    await call(client, "update_account", accountId="acme", pricePlanId=p["id"], effectiveFrom="2026-03-10T00:00:00Z")
    await pay_advance_invoices()
    assert [a[1:3] for a in await advance_invoices(client, "acme")] == [("PAID", "80.00"), ("PAID", "80.00")]
    entries = (await call(client, "list_wallet_entries", accountId="acme", pageSize=100))["data"]
    assert sorted(e["amount"] for e in entries if e["kind"] == "GRANT") == ["100.00", "100.00"]


async def test_a_change_then_an_end_at_the_same_instant_credit_the_unused_fee_once(client, clock) -> None:
    p = await plan(client, "P", fee("base", "28", displayName="Base", invoiceTiming="IN_ADVANCE"))
    q = await plan(client, "Q", fee("q_base", "10", displayName="Q base"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", p, iso(2026, 1, 1))
    clock.set(at(2026, 2, 10))  # January's invoice (DUE) carries February's 28.00
    await call(client, "update_account", accountId="acme", pricePlanId=q, effectiveFrom="2026-02-20T00:00:00Z")
    assert [amount for amount, _ in await notes(client)] == ["9.00"]  # 28.00 × 9/28 days unused (20 Feb - 1 Mar)
    clock.set(at(2026, 2, 11))
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-02-20T00:00:00Z")
    assert [amount for amount, _ in await notes(client)] == ["9.00"]  # nothing more of P's fee is unused


async def test_two_cuts_credit_the_unused_fee_less_what_was_credited(client, clock) -> None:
    p = await plan(client, "P", fee("base", "28", displayName="Base", invoiceTiming="IN_ADVANCE"))
    q = await plan(client, "Q", fee("q_base", "10", displayName="Q base"))
    r = await plan(client, "R", fee("r_base", "10", displayName="R base"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", p, iso(2026, 1, 1))
    clock.set(at(2026, 2, 10))
    await call(client, "update_account", accountId="acme", pricePlanId=q, effectiveFrom="2026-02-10T00:00:00Z")
    clock.set(at(2026, 2, 20))
    await call(client, "update_account", accountId="acme", pricePlanId=r, effectiveFrom="2026-02-20T00:00:00Z")
    # P's February fee: 28.00 × 19/28 = 19.00 unused from 10 Feb; the cut at 20 Feb leaves 9.00 of P unused, which
    # the 19.00 covers already: nothing more
    assert [amount for amount, _ in await notes(client)] == ["19.00"]


async def test_a_change_credits_the_unused_fee_less_a_goodwill_note_on_it(client, clock) -> None:
    p = await plan(client, "P", fee("base", "28", displayName="Base", invoiceTiming="IN_ADVANCE"))
    q = await plan(client, "Q", fee("q_base", "10", displayName="Q base"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", p, iso(2026, 1, 1))
    clock.set(at(2026, 2, 5))
    [january, _] = await oldest_first(client, "acme")
    fee_line = next(n for n, line in enumerate((await call(client, "get_invoice", invoiceId=january["id"]))["lineItems"],
                                               1) if line["rateCardName"] == "base")
    await call(client, "create_credit_note", invoiceId=january["id"], reason="PRODUCT_UNSATISFACTORY",
               lines=[{"lineNumber": fee_line, "amount": "5.00"}])
    await call(client, "update_account", accountId="acme", pricePlanId=q, effectiveFrom="2026-02-10T00:00:00Z")
    # P's February fee, 28.00 × 19/28 = 19.00 unused from 10 Feb, less the 5.00 the goodwill note credited: 14.00
    assert await notes(client) == [("5.00", "PRODUCT_UNSATISFACTORY"), ("14.00", "ORDER_CHANGE")]


async def test_reattaching_the_plan_before_its_credited_end_keeps_the_credited_days_paid(client, clock) -> None:
    monthly = await plan(client, "Monthly", fee("platform", "31", displayName="Platform", invoiceTiming="IN_ADVANCE"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", monthly, iso(2026, 1, 1))  # its advance invoice: January, 31.00
    clock.set(at(2026, 1, 10))
    # ended on 21 January: 31 × 11/31 = 11.00 of January credited
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-01-21T00:00:00Z")
    assert await notes(client) == [("11.00", "ORDER_CHANGE")]
    # then the plan is attached again from 15 January, before that end: acme is on it all January, so January
    # must cost 31.00 in all. The first association ends at 15 January (17 of its days unused: 17.00, less the
    # 11.00 credited: 6.00 more) and the new one's [15 Jan, 1 Feb) is invoiced in advance: 31 × 17/31 = 17.00
    await call(client, "update_account", accountId="acme", pricePlanId=monthly, effectiveFrom="2026-01-15T00:00:00Z")
    assert await notes(client) == [("11.00", "ORDER_CHANGE"), ("6.00", "ORDER_CHANGE")]
    clock.set(at(2026, 1, 15))
    assert [a[1:3] for a in await advance_invoices(client, "acme")] == [("DUE", "31.00"), ("DUE", "17.00")]
    assert await net_advance(client) == D("31.00")  # 31.00 - 11.00 - 6.00 + 17.00


async def test_undoing_a_credited_change_of_a_fee_first_charged_in_cycle_1_keeps_the_fee_paid(client, clock) -> None:
    # cycle 0 pays nothing (offset 1), so the association has no advance invoice; January's invoice carries February's
    p = await plan(client, "P", fee("base", "28", displayName="Base", invoiceTiming="IN_ADVANCE",
                                    recurrenceConfig={"interval": 1, "offset": 1}))
    q = await plan(client, "Q", fee("q_base", "10", displayName="Q base"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", p, iso(2026, 1, 1))
    clock.set(at(2026, 2, 10))  # January's invoice (DUE) carries February's 28.00
    await call(client, "update_account", accountId="acme", pricePlanId=q, effectiveFrom="2026-02-20T00:00:00Z")
    assert await notes(client) == [("9.00", "ORDER_CHANGE")]  # 28.00 × 9/28 (20 Feb - 1 Mar)
    # undone: back on P from 20 February. The 9.00 credited stays credited, so [20 Feb, 1 Mar) is P's again on a
    # new association, invoiced in advance: 28 × 9/28 = 9.00 (February in all: 28.00 - 9.00 + 9.00 = 28.00)
    await call(client, "update_account", accountId="acme", pricePlanId=p, effectiveFrom="2026-02-20T00:00:00Z")
    clock.set(at(2026, 2, 20))
    assert [a[1:3] for a in await advance_invoices(client, "acme")] == [("DUE", "9.00")]
    assert await net_advance(client) == D("0.00")  # 9.00 - 9.00: the credit is paid back for [20 Feb, 1 Mar)


async def test_a_new_deal_on_an_anniversary_plan_credits_and_invoices_in_advance_up_to_its_billing_day(
        client, clock) -> None:
    anniversary = {"interval": "MONTHLY", "anniversaryCycle": True, "gracePeriod": 0}
    pro = (await call(client, "create_price_plan", name="Pro", pricingCycleConfig=anniversary, rateCards={
        "fixedFeeRateCards": [fee("base", "31", displayName="Base", invoiceTiming="IN_ADVANCE")]}))["id"]
    clock.set(at(2026, 1, 10))
    await account(client, "acme", pro, iso(2026, 1, 10))  # billed on the 10th; advance invoice 31.00 for 10 Jan-10 Feb
    clock.set(at(2026, 1, 21))
    await call(client, "update_account", accountId="acme", pricePlanId=pro, effectiveFrom=iso(2026, 1, 21),
               rateCardOverrides={"fixedFeeRateCards": [
                   fee("base", "62", displayName="Base", invoiceTiming="IN_ADVANCE")]})
    # the old fee's unused 20 of 31 days (21 Jan - 10 Feb): 31 × 20/31 = 20.00 credited; the deal's first period
    # ends on the billing day, 10 Feb, cut by the change: 62 × 20/31 = 40.00 in advance
    assert await notes(client) == [("20.00", "ORDER_CHANGE")]
    assert [a[1:3] for a in await advance_invoices(client, "acme")] == [("DUE", "31.00"), ("DUE", "40.00")]
    assert await net_advance(client) == D("51.00")  # 31.00 - 20.00 + 40.00: 11 days at 31.00, 20 at 62.00
    clock.set(at(2026, 2, 10))
    # the deal's period [21 Jan, 10 Feb) carries the next whole cycle's fee, 10 Feb - 10 Mar: 62.00
    assert [(i["startDate"], i["endDate"], i["totalAmount"]) for i in await oldest_first(client, "acme")] == [
        (iso(2026, 1, 10), iso(2026, 1, 21), "0.00"), (iso(2026, 1, 21), iso(2026, 2, 10), "62.00"),
        (iso(2026, 2, 10), iso(2026, 3, 10), "62.00")]


async def test_withdrawing_a_plans_end_after_a_manual_order_change_note_keeps_the_plan_and_the_note(
        client, clock) -> None:
    monthly = await plan(client, "Monthly", fee("platform", "31", displayName="Platform", invoiceTiming="IN_ADVANCE"))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", monthly, iso(2026, 1, 1))  # its advance invoice: January, 31.00
    clock.set(at(2026, 1, 5))
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    # the operator credits 5.00 of January's fee by hand, with Stripe's reason ORDER_CHANGE (the customer's order
    # changed): a credit note like any other, issued by no plan change
    await call(client, "create_credit_note", invoiceId=advance["id"], reason="ORDER_CHANGE",
               lines=[{"lineNumber": 1, "amount": "5.00"}])
    clock.set(at(2026, 1, 10))
    # notice given for 1 February (January's fee paid up to there: nothing credited), then withdrawn the same day by
    # attaching the plan again from now: an undo, so the association continues, January stays paid 31.00 - 5.00
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-02-01T00:00:00Z")
    await call(client, "update_account", accountId="acme", pricePlanId=monthly)
    # no cut at 10 January: no 31 × 22/31 - 5.00 = 17.00 credited and no 22.00 invoiced again in advance, which
    # would bill January 31.00 - 5.00 - 17.00 + 22.00 = 31.00 and take back the operator's 5.00
    assert await notes(client) == [("5.00", "ORDER_CHANGE")]
    assert [a[1:3] for a in await advance_invoices(client, "acme")] == [("DUE", "31.00")]
    assert await net_advance(client) == D("26.00")
