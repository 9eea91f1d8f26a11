"""The lab prices an association's first period with its advance invoice (the in-advance fees charged as it
started), and compares it with what the account was billed net of the credit notes billing issued itself: a change
credits the unused time of in-advance fees and PREPAID credits it cut, and a version moved in place credits the
replaced advance invoice whole. Notes an operator issued are not netted (lab README). Monthly from the 1st,
gracePeriod 2 (lab_helpers.MONTHLY)."""

from __future__ import annotations

from typing import Any

from helpers import at, call, iso, tokens_meter
from lab_helpers import MONTHLY, account, fee, per_unit_card, tokens


def in_advance(rate: str) -> dict[str, object]:
    return {**fee("base", {"USD": rate}), "invoiceTiming": "IN_ADVANCE"}


def per_token(meter: str, rate: str) -> dict[str, Any]:
    return per_unit_card(meter, "TIERED", {"USD": [("0", rate)]})


def prepaid_credits() -> dict[str, Any]:
    """Every cycle, 1000 credits at 0.10 each: 1000 × 0.10 = 100.00, sold a cycle ahead like an in-advance fee."""
    return {"id": "credits", "displayName": "Credits", "invoiceTiming": "PREPAID",
            "grantDetails": {"priority": 10, "expiryType": "PRICING_CYCLE"},
            "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "1000", "slabDetails": [
                {"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.1"}]}]}}


async def note_keys(client: Any) -> list[tuple[str, str, str]]:
    """(amount, reason, idempotencyKey's first part) of the account's credit notes, oldest first."""
    listed = (await call(client, "list_credit_notes", accountId="acme", pageSize=100))["data"]
    return [(n["amount"], n["reason"], (n["idempotencyKey"] or "").split(":")[0]) for n in reversed(listed)]


def compared(result: dict[str, Any]) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    return [(c["startDate"], c["status"], c["actual"], [(x["amount"], x["difference"]) for x in c["candidates"]])
            for c in result["accounts"][0]["cycles"]]


async def test_a_version_moved_in_place_counts_only_the_advance_invoice_that_stands(client, clock) -> None:
    plan = await call(client, "create_price_plan", name="Ahead", pricingCycleConfig=MONTHLY,
                      rateCards={"fixedFeeRateCards": [in_advance("31")]})
    clock.set(at(2026, 1, 1))
    await account(client, "acme", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 1, 10))
    await call(client, "update_price_plan", pricePlanId=plan["id"],
               rateCards={"fixedFeeRateCards": [in_advance("40")]})
    # version 2 from 1 January: the 31.00 advance invoice is credited whole, a 40.00 one issued
    await call(client, "finalize_price_plan", pricePlanId=plan["id"], migrationMode="START_OF_CURRENT_CYCLE")
    clock.set(at(2026, 2, 3))  # January DUE (2 days of grace)
    advance = [(i["totalAmount"], i["creditNotesTotal"]) for i in
               (await call(client, "list_invoices", accountId="acme", pageSize=100))["data"]
               if i["invoiceType"] == "STANDARD_ADVANCED"]
    assert advance == [("40.00", "0.00"), ("31.00", "31.00")]
    result = await call(client, "simulate_price_plan", candidates=[plan["id"]], accountIds=["acme"],
                        startTime=iso(2026, 1, 1), endTime=iso(2026, 3, 1))
    january = result["accounts"][0]["cycles"][0]
    # January's invoice: February's fee in advance, 40.00; with the advance invoice that stands, 40.00: 80.00
    # (not 111.00 with the replaced one); version 2 prices the same
    assert (january["status"], january["actual"]) == ("DUE", "80.00")
    assert [(c["amount"], c["difference"]) for c in january["candidates"]] == [("80.00", "0.00")]


async def test_a_plan_change_nets_the_note_billing_issued_for_the_unused_fee_not_an_operators(client, clock) -> None:
    meter = await tokens_meter(client)
    a = await call(client, "create_price_plan", name="A", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [per_token(meter, "1")], "fixedFeeRateCards": [in_advance("31")]})
    b = await call(client, "create_price_plan", name="B", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [per_token(meter, "2")]})
    clock.set(at(2026, 1, 1))
    await account(client, "acme", a["id"], iso(2026, 1, 1))  # its advance invoice: January's fee, 31.00, DUE
    [advance] = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
                 if i["invoiceType"] == "STANDARD_ADVANCED"]
    clock.set(at(2026, 1, 5))
    await tokens(client, "acme", iso(2026, 1, 5), "100", "t1")
    # an operator's goodwill on the fee line first: 5.00
    await call(client, "create_credit_note", invoiceId=advance["id"], reason="PRODUCT_UNSATISFACTORY",
               lines=[{"lineNumber": 1, "amount": "5.00"}])
    # acme moves to B on 16 January: 16 of January's 31 days of the fee are unused, 31 × 16/31 = 16.00, less the
    # 5.00 the line was credited already: billing's note is 11.00
    await call(client, "update_account", accountId="acme", pricePlanId=b["id"], effectiveFrom=iso(2026, 1, 16))
    clock.set(at(2026, 2, 3))  # [1 Jan, 16 Jan) and [16 Jan, 1 Feb) are DUE (2 days of grace)
    [january] = [i for i in (await call(client, "list_invoices", accountId="acme", pageSize=100))["data"]
                 if i["invoiceType"] == "STANDARD" and i["startDate"] == iso(2026, 1, 1)]
    assert (january["endDate"], january["totalAmount"]) == (iso(2026, 1, 16), "100.00")  # 100 tokens × 1.00
    # a goodwill note on the period's invoice afterwards: 7.00; a correction, not pricing
    await call(client, "create_credit_note", invoiceId=january["id"], reason="PRODUCT_UNSATISFACTORY", amount="7.00")
    assert await note_keys(client) == [("5.00", "PRODUCT_UNSATISFACTORY", ""), ("11.00", "ORDER_CHANGE", "in-advance-fee"),
                                       ("7.00", "PRODUCT_UNSATISFACTORY", "")]

    result = await call(client, "simulate_price_plan", candidates=[a["id"]], accountIds=["acme"],
                        startTime=iso(2026, 1, 1), endTime=iso(2026, 2, 1))
    assert compared(result) == [
        # billed 100.00 + the advance invoice's 31.00 = 131.00, less what the change left unused on the fee line: the
        # 5.00 it counted and its own 11.00, 131.00 - 16.00 = 115.00 (the 7.00 goodwill is not netted). A as a
        # candidate: 100.00 + the fee of [1 Jan, 16 Jan), 31 × 15/31 = 15.00: 115.00, as billed
        (iso(2026, 1, 1), "DUE", "115.00", [("115.00", "0.00")]),
        # on B: no usage, 0.00; A there: its advance fee for [16 Jan, 1 Feb), 31 × 16/31 = 16.00, and February's
        # 31.00 in advance on the period's invoice (B goes on into February): 47.00
        (iso(2026, 1, 16), "DUE", "0.00", [("47.00", "47.00")])]


async def test_a_change_at_a_period_end_nets_the_next_cycles_fee_and_credits_it_sold(client, clock) -> None:
    meter = await tokens_meter(client)
    a = await call(client, "create_price_plan", name="A", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [per_token(meter, "1")], "fixedFeeRateCards": [in_advance("31")],
        "creditGrantRateCards": [prepaid_credits()]})
    b = await call(client, "create_price_plan", name="B", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [per_token(meter, "2")]})
    clock.set(at(2026, 1, 1))
    await account(client, "acme", a["id"], iso(2026, 1, 1))  # advance invoice: fee 31.00 + credits 100.00
    await tokens(client, "acme", iso(2026, 1, 10), "50", "t1")
    clock.set(at(2026, 2, 5))  # January is DUE: 50 × 1.00 + February's fee 31.00 + February's credits 100.00
    [january] = [i for i in (await call(client, "list_invoices", accountId="acme", pageSize=100))["data"]
                 if i["invoiceType"] == "STANDARD" and i["startDate"] == iso(2026, 1, 1)]
    assert (january["status"], january["totalAmount"]) == ("DUE", "181.00")
    # acme is on B from 1 February (where January's invoice ends): A never reaches February, so its fee and its
    # credits sold on January's invoice are credited whole, 31.00 and 100.00
    await call(client, "update_account", accountId="acme", pricePlanId=b["id"], effectiveFrom=iso(2026, 2, 1))
    assert sorted(await note_keys(client)) == [("100.00", "ORDER_CHANGE", "in-advance-fee"),
                                               ("31.00", "ORDER_CHANGE", "in-advance-fee")]

    result = await call(client, "simulate_price_plan", candidates=[a["id"]], accountIds=["acme"],
                        startTime=iso(2026, 1, 1), endTime=iso(2026, 2, 1))
    # billed 131.00 (advance) + 181.00 = 312.00, less the change's 131.00: 181.00. A as a candidate, its plan ending
    # on 1 February: 131.00 + 50.00 (nothing for February) = 181.00
    assert compared(result) == [(iso(2026, 1, 1), "DUE", "181.00", [("181.00", "0.00")])]
