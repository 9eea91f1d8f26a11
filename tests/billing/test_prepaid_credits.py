"""PREPAID credit-grant cards (Togai's invoiceTiming PREPAID: "credits will be granted only after invoice is paid"),
through the MCP tools with the clock moved across cycles. Policy: togai_engine/invoices/README.md, "PREPAID
credits". Amounts worked out by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from helpers import at, call, call_error, iso, tokens_meter
from test_fixed_fee_timing import lines, oldest_first
from test_scenarios import account, tiered
from togai_engine.accounts.schemas import AccountUpdate
from togai_engine.accounts.service import lock_accounts
from togai_engine.app import accounts as app_accounts
from togai_engine.app import invoices as app_invoices
from togai_engine.cycles import Cycle
from togai_engine.invoices.compose import credit_purchase_line
from togai_engine.plans.schemas import CreditGrantRateCard
from togai_engine.wallets.rate_cards import sold_grant

D = Decimal
MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


def credits_card(amount: str, *slabs: dict[str, Any], pricing_model: str = "TIERED", **fields: Any) -> dict[str, Any]:
    return {"id": "credits", "displayName": "Credits", "invoiceTiming": "PREPAID",
            "grantDetails": {"priority": 10, "applicableEntityIds": ["tokens"]},
            "rateDetails": {"pricingModel": pricing_model, "currencySlabRateDetails": [
                {"currency": "USD", "creditAmount": amount, "slabDetails": list(slabs)}]}, **fields}


async def balance(client: Any) -> str:
    return str((await call(client, "get_wallet_balance", accountId="acme"))["balance"])


async def acme_on_prepaid_plan(client: Any, clock: Any) -> None:
    """At 1 January 2026, account acme on a monthly plan from then: tokens at 0.10 each, and 100 credits sold at 0.8
    each (80.00) every cycle."""
    tokens = await tokens_meter(client)
    plan = (await call(client, "create_price_plan", name="Prepaid", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [tiered(tokens, ("0", "0.10")) | {"name": "tokens"}],
        "creditGrantRateCards": [credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.8"})]}))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))


async def test_prepaid_credits_are_sold_in_advance_and_granted_only_once_paid(client, clock) -> None:
    tokens = await tokens_meter(client)
    usage_card = tiered(tokens, ("0", "0.10")) | {"name": "tokens"}
    plan = (await call(client, "create_price_plan", name="Prepaid", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [usage_card],
        "creditGrantRateCards": [credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.8"})]}))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    # 1 January: January's 100 credits are sold on the advance invoice, 100 × 0.8 = 80.00, and not granted yet
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    assert (advance["status"], advance["totalAmount"]) == ("DUE", "80.00")
    assert await lines(client, advance["id"]) == [
        ("Credits: 100 credits, prepaid for 2026-01-01 – 2026-02-01 (granted when this invoice is paid)", "80.00")]
    assert await balance(client) == "0.00"
    # January's DRAFT sells February's credits, 80.00, before any usage
    [january] = await oldest_first(client, "acme")
    assert january["totalAmount"] == "80.00"

    # Paid on 5 January: 100.00 of credit, valid for January (the cycle it was bought for)
    clock.set(at(2026, 1, 5))
    paid = await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    assert paid["status"] == "PAID"
    assert await balance(client) == "100.00"
    # Marking it PAID again (a retry) grants nothing more
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    assert await balance(client) == "100.00"

    await call(client, "ingest_event", event={"id": "e1", "schemaName": "llm", "accountId": "acme",
                                              "timestamp": "2026-01-10T00:00:00Z", "attributes": {"tokens": "300"}})
    clock.set(at(2026, 2, 1))
    # January: usage 300 × 0.10 = 30.00 + February's credits 80.00 = 110.00; the credits pay only the tokens card
    # (applicableEntityIds): 30.00 applied, 80.00 due; the other 70.00 of January's credit expires with January
    [january, _] = await oldest_first(client, "acme")
    assert (january["status"], january["totalAmount"], january["creditsApplied"], january["amountDue"]) == (
        "DUE", "110.00", "30.00", "80.00")
    assert await balance(client) == "0.00"  # February's credits are not granted until January's invoice is paid
    await call(client, "update_invoice_status", invoiceId=january["id"], status="PAID")
    assert await balance(client) == "100.00"
    # A VOID invoice sold nothing: March's credits (on February's invoice) are never granted if it is voided
    clock.set(at(2026, 3, 1))
    [_, february, _] = await oldest_first(client, "acme")
    assert february["totalAmount"] == "80.00"  # March's credits; no usage
    await call(client, "update_invoice_status", invoiceId=february["id"], status="VOID")
    assert await balance(client) == "0.00"  # February's 100.00 expired unused at 1 March; March's never granted


async def test_prepaid_credits_in_volume_slabs_and_one_time(client, clock) -> None:
    # VOLUME: 1500 credits fall in the second slab, all at 0.7: 1500 × 0.7 = 1050.00
    plan = (await call(client, "create_price_plan", name="Bundle", pricingCycleConfig=MONTHLY, rateCards={
        "creditGrantRateCards": [credits_card(
            "1500", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.9"},
            {"startAfter": 1000, "priceType": "PER_UNIT", "rate": "0.7"}, pricing_model="VOLUME", type="ONE_TIME",
            grantDetails={"priority": 5, "expiryType": "NO_EXPIRY"})]}))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 3, 1))
    listed = (await call(client, "list_invoices", accountId="acme", pageSize=100))["data"]
    # ONE_TIME: sold once, on the advance invoice; January and February sell nothing
    assert sorted((i["invoiceType"], i["totalAmount"]) for i in listed) == [
        ("STANDARD", "0.00"), ("STANDARD", "0.00"), ("STANDARD", "0.00"), ("STANDARD_ADVANCED", "1050.00")]
    advance = next(i for i in listed if i["invoiceType"] == "STANDARD_ADVANCED")
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    assert await balance(client) == "1500.00"  # NO_EXPIRY: still there in March


async def test_prepaid_cards_are_validated_naming_the_field(client) -> None:
    async def refused(card: dict[str, Any]) -> str:
        card["grantDetails"] = {"priority": 10}  # no usage card here to name
        return await call_error(client, "create_price_plan", name="Bad", pricingCycleConfig=MONTHLY,
                                rateCards={"creditGrantRateCards": [card]})

    path = "rateCards.creditGrantRateCards[0]"
    unpriced = credits_card("100")
    unpriced["rateDetails"]["currencySlabRateDetails"][0].pop("slabDetails")
    error = await refused(unpriced)
    assert f"{path}.rateDetails.currencySlabRateDetails[0].slabDetails" in error and "price them" in error
    priced_free = credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "1"})
    priced_free.pop("invoiceTiming")
    error = await refused(priced_free)
    assert f"{path}.rateDetails.currencySlabRateDetails[0].slabDetails" in error and "PREPAID" in error
    error = await refused(credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "1"})
                          | {"invoiceTiming": "IN_ADVANCE"})
    assert f"{path}.invoiceTiming" in error and "PREPAID" in error
    error = await refused(credits_card("100", {"startAfter": 5, "priceType": "PER_UNIT", "rate": "1"}))
    assert f"{path}.rateDetails.currencySlabRateDetails[0].slabDetails[0].startAfter" in error
    error = await refused(credits_card("100", {"startAfter": 0, "priceType": "PACKAGE", "rate": "1"}))
    assert f"{path}.rateDetails.currencySlabRateDetails[0].slabDetails[0].slabConfig.packageSize" in error
    error = await refused(credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "-1"}))
    assert f"{path}.rateDetails.currencySlabRateDetails[0].slabDetails[0].rate" in error
    # sold for nothing: such a sale could not be credited back when a change replaces it (a note credits an amount)
    error = await refused(credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0"}))
    assert f"{path}.rateDetails.currencySlabRateDetails[0].slabDetails" in error and "sell for 0" in error
    error = await refused(credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0"},
                                       {"startAfter": 100, "priceType": "PER_UNIT", "rate": "1"}))
    assert "the 100 credits would sell for 0" in error  # the first 100 are free, and 100 are bought
    # priced as billing sells them: 100.004 USD of credit grants 100.00, inside the free slab (100.004 is not)
    error = await refused(credits_card("100.004", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0"},
                                       {"startAfter": 100, "priceType": "FLAT", "rate": "5"}))
    assert "the 100.004 credits would sell for 0" in error


def test_the_credits_sold_are_the_credits_granted_to_the_minor_unit() -> None:
    """creditAmount 100.005 USD grants 100.01 (rounded once, half-up, like every grant); the sale prices those
    100.01 credits, not 100.005: 100.01 × 0.5 = 50.005 -> 50.01 (with 100.005 it would be 50.0025 -> 50.00)."""
    card = credits_card("100.005", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.5"}) | {"name": "credits"}
    january = Cycle(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    line = credit_purchase_line("pp_x", CreditGrantRateCard.model_validate(card), "USD", january,
                                "creditGrantRateCards[0]")
    assert line is not None and (line.quantity, line.value) == (D("100.01"), D("50.01"))
    assert line.details is not None and sold_grant(line.details).amount == D("100.01")


def test_credits_sold_in_packages() -> None:
    """250 credits priced by packages of 100 at 30.00: ceil(250 / 100) = 3 packages × 30.00 = 90.00."""
    card = credits_card("250", {"startAfter": 0, "priceType": "PACKAGE", "rate": "30",
                                "slabConfig": {"packageSize": "100"}}) | {"name": "credits"}
    january = Cycle(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    line = credit_purchase_line("pp_x", CreditGrantRateCard.model_validate(card), "USD", january,
                                "creditGrantRateCards[0]")
    assert line is not None and (line.quantity, line.value) == (D("250.00"), D("90.00"))


async def test_revenue_counts_the_credits_each_invoice_sold_at_its_start(client, clock) -> None:
    """REVENUE of a month equals its invoices' totals, PREPAID purchase lines included, whether the invoice is
    DUE, PAID or a DRAFT: the credits are sold (and paid ahead) at the invoice's start."""
    await acme_on_prepaid_plan(client, clock)
    await call(client, "ingest_event", event={"id": "e1", "schemaName": "llm", "accountId": "acme",
                                              "timestamp": "2026-01-10T00:00:00Z", "attributes": {"tokens": "300"}})
    clock.set(at(2026, 2, 1))

    async def monthly_revenue() -> list[Decimal]:
        result = await call(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-03-01T00:00:00Z",
                            metricQueries=[{"id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH"}])
        return [D(v) for v in result["results"][0]["data"][0]["metricValues"]]

    # January: the advance invoice sold January's credits, 100 × 0.8 = 80.00 (DUE); January's invoice (DUE) bills
    # the tokens, 300 × 0.10 = 30.00, and sells February's credits, 80.00: 80.00 + 110.00 = 190.00.
    # February so far: its DRAFT sells March's credits, 80.00 (no usage yet).
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    [january, february] = await oldest_first(client, "acme")
    assert (advance["status"], advance["totalAmount"], january["status"], january["totalAmount"]) == (
        "DUE", "80.00", "DUE", "110.00")
    assert february["status"] == "DRAFT"
    assert await monthly_revenue() == [D("190.00"), D("80.00")]
    # Paid, the same: revenue is billed, whatever has been paid
    await call(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    await call(client, "update_invoice_status", invoiceId=january["id"], status="PAID")
    assert await monthly_revenue() == [D("190.00"), D("80.00")]


async def test_paying_a_sale_while_the_account_changes_status_does_not_deadlock(client, clock, db) -> None:
    """update_invoice_status(PAID) grants the credits under the account's lock and then the wallet-currency lock;
    update_account(status or invoiceCurrency) takes the same two. Taken in the opposite order they deadlock (one
    call fails with 40P01): a third transaction holds the account's lock while the PAID queues for it, then the
    account change, then lets go."""
    await acme_on_prepaid_plan(client, clock)
    [advance] = [i["id"] for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    now = at(2026, 1, 2)
    release = asyncio.Event()

    async def hold_the_account() -> None:
        async with db.unit_of_work() as session:
            await lock_accounts(session, ["acme"])
            await release.wait()

    async def pay() -> None:
        async with db.unit_of_work() as session:
            await app_invoices.update_invoice_status(session, advance, "PAID", now)

    async def reactivate() -> None:
        async with db.unit_of_work() as session:
            await app_accounts.update_account(session, "acme", AccountUpdate(status="ACTIVE"), now)

    holder = asyncio.create_task(hold_the_account())
    await asyncio.sleep(0.3)
    paying = asyncio.create_task(pay())
    await asyncio.sleep(0.3)  # the PAID waits for the account's lock
    changing = asyncio.create_task(reactivate())
    await asyncio.sleep(0.3)  # so does the account change
    assert not paying.done() and not changing.done()  # both queued behind the holder, in that order
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, paying, changing), timeout=30)
    assert await balance(client) == "100.00"  # 100 credits granted once
    assert [i["status"] for i in (await call(client, "list_invoices", accountId="acme"))["data"]
            if i["id"] == advance] == ["PAID"]
    assert (await call(client, "get_account", accountId="acme"))["status"] == "ACTIVE"


async def test_a_version_moved_from_the_current_cycle_credits_the_cycle_already_sold(client, clock) -> None:
    """January's invoice sold (and, paid, granted) February's credits. A version finalized on 2 February from the
    start of the current cycle starts a new association on 1 February, whose advance invoice sells February again at
    the new price: the old sale of February is credited whole (its unused credits voided), so the cycle is bought
    once (app/advance_credits.py)."""
    await acme_on_prepaid_plan(client, clock)
    [advance] = [i["id"] for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    await call(client, "update_invoice_status", invoiceId=advance, status="PAID")  # January's 100 credits
    clock.set(at(2026, 2, 2))
    [january, _] = await oldest_first(client, "acme")
    assert (january["status"], january["totalAmount"]) == ("DUE", "80.00")  # February's credits, no usage
    await call(client, "update_invoice_status", invoiceId=january["id"], status="PAID")
    assert await balance(client) == "100.00"  # January's expired with January; February's granted
    [listed] = (await call(client, "list_price_plans"))["data"]
    cards = (await call(client, "get_price_plan", pricePlanId=listed["id"]))["rateCards"]
    cards["creditGrantRateCards"] = [credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.7"})]
    await call(client, "update_price_plan", pricePlanId=listed["id"], rateCards=cards)
    await call(client, "finalize_price_plan", pricePlanId=listed["id"], migrationMode="START_OF_CURRENT_CYCLE")
    [note] = (await call(client, "list_credit_notes", accountId="acme"))["data"]
    # January's purchase line of February's credits, 80.00, credited whole: its 100 credits voided, the 80.00 back
    # to the wallet: 100.00 - 100.00 + 80.00 = 80.00
    assert (note["invoiceId"], note["amount"], note["lines"][0]["creditsVoided"]) == (january["id"], "80.00", "100.00")
    assert await balance(client) == "80.00"
    [resold] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                if i["invoiceType"] == "STANDARD_ADVANCED" and i["id"] != advance]
    assert (resold["status"], resold["totalAmount"]) == ("DUE", "70.00")  # February again, 100 × 0.7


async def test_credits_paid_after_the_cycle_they_were_bought_for_are_granted_from_the_payment(client, clock) -> None:
    """Policy (invoices/README.md, "PREPAID credits"): credits paid for once the window they were bought for can pay
    no invoice any more (the cycle ended and its invoice is DUE) are granted from the payment for the window's
    length, never expired unused at once: the customer paid for them (Togai grants PREPAID credits "after invoice is
    paid"; Lago's paid credits and Kong's invoice-funded credits are available from the settlement)."""
    await acme_on_prepaid_plan(client, clock)
    [advance] = [i["id"] for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    # January's 100 credits (window 1 January – 1 February, 31 days) paid on 10 February: January's invoice is DUE
    # since 1 February (no grace period), so in their window they could pay nothing
    clock.set(at(2026, 2, 10))
    await call(client, "update_invoice_status", invoiceId=advance, status="PAID")
    [grant] = (await call(client, "get_wallet_balance", accountId="acme"))["grants"]
    # 31 days from 10 February: 10 February – 13 March
    assert (grant["effectiveFrom"], grant["effectiveUntil"], grant["remaining"]) == (
        "2026-02-10T00:00:00Z", "2026-03-13T00:00:00Z", "100.00")
    assert await balance(client) == "100.00"
    await call(client, "ingest_event", event={"id": "e1", "schemaName": "llm", "accountId": "acme",
                                              "timestamp": "2026-02-15T00:00:00Z", "attributes": {"tokens": "300"}})
    clock.set(at(2026, 3, 1))
    # February: usage 300 × 0.10 = 30.00 + March's credits 80.00 = 110.00; the late-paid credits pay the tokens
    # line: 30.00 applied, 80.00 due, 100.00 - 30.00 = 70.00 left until 13 March
    [_, february, _] = await oldest_first(client, "acme")
    assert (february["totalAmount"], february["creditsApplied"], february["amountDue"]) == ("110.00", "30.00", "80.00")
    assert await balance(client) == "70.00"
    clock.set(at(2026, 3, 13))
    assert await balance(client) == "0.00"  # the other 70.00 expired with the moved window


async def test_credits_paid_in_the_grace_period_pay_the_cycle_they_were_bought_for(client, clock) -> None:
    """Paid after their cycle ended but before its invoice is DUE (grace period), the credits keep the window they
    were bought for and pay that cycle's invoice; what is left expires after it."""
    tokens = await tokens_meter(client)
    plan = (await call(client, "create_price_plan", name="Prepaid", pricingCycleConfig=MONTHLY | {"gracePeriod": 3},
                       rateCards={"usageRateCards": [tiered(tokens, ("0", "0.10")) | {"name": "tokens"}],
                                  "creditGrantRateCards": [credits_card(
                                      "100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.8"})]}))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    [advance] = [i["id"] for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    await call(client, "ingest_event", event={"id": "e1", "schemaName": "llm", "accountId": "acme",
                                              "timestamp": "2026-01-10T00:00:00Z", "attributes": {"tokens": "300"}})
    clock.set(at(2026, 2, 2))  # January ended; its invoice becomes DUE on 4 February
    await call(client, "update_invoice_status", invoiceId=advance, status="PAID")
    [grant] = (await call(client, "get_wallet_balance", accountId="acme"))["grants"]
    assert (grant["effectiveFrom"], grant["effectiveUntil"], grant["remaining"]) == (
        "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "100.00")
    clock.set(at(2026, 2, 4))
    # January: 300 × 0.10 = 30.00 + February's credits 80.00 = 110.00; January's credits pay the tokens line, 30.00;
    # the other 70.00 expires
    [january, _] = await oldest_first(client, "acme")
    assert (january["status"], january["creditsApplied"], january["amountDue"]) == ("DUE", "30.00", "80.00")
    assert await balance(client) == "0.00"


async def test_paying_a_sale_in_another_currency_than_the_account_is_refused_naming_invoice_currency(client,
                                                                                                     clock) -> None:
    """Credits sold in USD cannot be granted to a wallet now kept in EUR: marking the sale PAID is refused, naming the
    account's invoiceCurrency (what differs, and what the fix changes), not the call's status; nothing is written."""
    credits = {"id": "credits", "displayName": "Credits", "invoiceTiming": "PREPAID", "type": "ONE_TIME",
               "grantDetails": {"expiryType": "NO_EXPIRY"},
               "rateDetails": {"currencySlabRateDetails": [
                   {"currency": c, "creditAmount": "100", "slabDetails": [
                       {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.8"}]} for c in ("USD", "EUR")]}}
    plan = await call(client, "create_price_plan", name="Bundle", pricingCycleConfig=MONTHLY,
                      supportedCurrencies=["USD", "EUR"], rateCards={"creditGrantRateCards": [credits]})
    clock.set(at(2026, 1, 1))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    assert (advance["currency"], advance["totalAmount"]) == ("USD", "80.00")  # 100 credits × 0.8
    await call(client, "update_account", accountId="acme", invoiceCurrency="EUR")
    error = await call_error(client, "update_invoice_status", invoiceId=advance["id"], status="PAID")
    assert "invoiceCurrency: this invoice sold PREPAID credits in USD" in error, error
    assert "change the account's invoiceCurrency back to USD" in error
    assert (await call(client, "get_invoice", invoiceId=advance["id"]))["status"] == "DUE"
    assert await balance(client) == "0.00"


async def test_credits_of_a_short_cycle_paid_late_still_pay_the_cycle_they_are_paid_in(client, clock) -> None:
    """February's credits (a 28-day window) paid on 2 March: from the payment for 28 days alone would end on 30
    March, before March's invoice becomes DUE (1 April) and before March ends, so they could pay nothing and would
    expire unused though paid for. Granted from the payment, they last at least through the cycle they are paid in
    (invoices/README.md, "PREPAID credits")."""
    await acme_on_prepaid_plan(client, clock)
    clock.set(at(2026, 2, 1))
    [january, _] = await oldest_first(client, "acme")  # January's invoice sells February's credits, 80.00
    assert (january["status"], january["totalAmount"]) == ("DUE", "80.00")
    clock.set(at(2026, 3, 2))
    await call(client, "update_invoice_status", invoiceId=january["id"], status="PAID")
    [grant] = (await call(client, "get_wallet_balance", accountId="acme"))["grants"]
    # 28 days from 2 March end on 30 March: extended to March's end, 1 April
    assert (grant["effectiveFrom"], grant["effectiveUntil"], grant["remaining"]) == (
        "2026-03-02T00:00:00Z", "2026-04-01T00:00:00Z", "100.00")
    await call(client, "ingest_event", event={"id": "e1", "schemaName": "llm", "accountId": "acme",
                                              "timestamp": "2026-03-10T00:00:00Z", "attributes": {"tokens": "300"}})
    clock.set(at(2026, 4, 1))
    # March: 300 × 0.10 = 30.00 + April's credits 80.00 = 110.00; February's credits pay the tokens line, 30.00
    [_, _, march, _] = await oldest_first(client, "acme")
    assert (march["totalAmount"], march["creditsApplied"], march["amountDue"]) == ("110.00", "30.00", "80.00")


async def test_credits_whose_window_is_open_but_can_pay_no_invoice_are_granted_from_the_payment(client, clock) -> None:
    """A CUSTOM P45D card: February's credits are valid 1 February – 18 March. Paid on 5 March, their window has not
    ended, but February's invoice is DUE since 1 March and March's becomes DUE on 1 April, after the window: kept,
    they could pay nothing. They are granted from the payment for 45 days instead (5 March – 19 April)."""
    tokens = await tokens_meter(client)
    card = credits_card("100", {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.8"})
    card["grantDetails"] |= {"expiryType": "CUSTOM", "expiryDuration": "P45D"}
    plan = (await call(client, "create_price_plan", name="Prepaid", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [tiered(tokens, ("0", "0.10")) | {"name": "tokens"}], "creditGrantRateCards": [card]}))
    clock.set(at(2026, 1, 1))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 2, 1))
    [january, _] = await oldest_first(client, "acme")  # sells February's credits, 80.00
    assert (january["status"], january["totalAmount"]) == ("DUE", "80.00")
    clock.set(at(2026, 3, 5))
    await call(client, "update_invoice_status", invoiceId=january["id"], status="PAID")
    [grant] = (await call(client, "get_wallet_balance", accountId="acme"))["grants"]
    # 45 days from 5 March: 26 in March + 19 in April = 19 April
    assert (grant["effectiveFrom"], grant["effectiveUntil"], grant["remaining"]) == (
        "2026-03-05T00:00:00Z", "2026-04-19T00:00:00Z", "100.00")
    await call(client, "ingest_event", event={"id": "e1", "schemaName": "llm", "accountId": "acme",
                                              "timestamp": "2026-03-10T00:00:00Z", "attributes": {"tokens": "300"}})
    clock.set(at(2026, 4, 1))
    # March: 300 × 0.10 = 30.00 + April's credits 80.00 = 110.00; the late-paid credits pay the tokens line, 30.00
    [_, _, march, _] = await oldest_first(client, "acme")
    assert (march["totalAmount"], march["creditsApplied"], march["amountDue"]) == ("110.00", "30.00", "80.00")
